// `sluice perf --kafka`'s consumer threads: every partition assigned at its start offset, read
// `passes` times, one-way latency from each value's first 8 bytes.
#include <fmt/format.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>

#include "shm/clock.h"
#include "tools/perf_kafka_shared.h"

namespace sluice::tools::perf_kafka {

using sluice::shm::wall_clock_ns;

void run_consumer(const KafkaPerfOptions& k, const std::string& topic, RunState& rs, int id,
                  bool record_latency, int passes) {
  ConsumerState& cs = *rs.consumers[static_cast<std::size_t>(id)];
  auto finish = [&cs] {
    cs.ready.store(1, std::memory_order_release);
    cs.done.store(1, std::memory_order_release);
  };
  std::string error;
  rd_kafka_conf_t* conf = make_conf(k,
                                    {// librdkafka's assign() wants a group.id; assign() never joins
                                     // the group, and nothing is committed.
                                     {"group.id", fmt::format("sluice-perf-{}", ::getpid())},
                                     {"enable.auto.commit", "false"},
                                     {"enable.partition.eof", "false"},
                                     // A start offset the endpoint no longer has (retention) is an
                                     // error, not a silent jump to the end.
                                     {"auto.offset.reset", "error"},
                                     {"fetch.wait.max.ms", k.sequential ? "1" : "100"},
                                     {"fetch.max.bytes", "52428800"},
                                     {"max.partition.fetch.bytes", "4194304"},
                                     {"queued.max.messages.kbytes", "262144"}},
                                    &error);
  if (conf == nullptr) {
    cs.error = error;
    rs.stop.store(1);
    return finish();
  }
  RkHandle rk = new_handle(RD_KAFKA_CONSUMER, conf, &error);
  if (!rk) {
    cs.error = error;
    rs.stop.store(1);
    return finish();
  }
  // Every partition at its start offset (again for each further pass).
  auto assign_all = [&]() -> bool {
    rd_kafka_topic_partition_list_t* parts =
        rd_kafka_topic_partition_list_new(static_cast<int>(rs.start_offsets.size()));
    for (std::size_t p = 0; p < rs.start_offsets.size(); ++p)
      rd_kafka_topic_partition_list_add(parts, topic.c_str(), static_cast<std::int32_t>(p))
          ->offset = rs.start_offsets[p];
    rd_kafka_resp_err_t ae = rd_kafka_assign(rk.get(), parts);
    rd_kafka_topic_partition_list_destroy(parts);
    if (ae != RD_KAFKA_RESP_ERR_NO_ERROR) {
      cs.error = fmt::format("assign: {}", rd_kafka_err2str(ae));
      rs.stop.store(1);
      return false;
    }
    return true;
  };
  if (!assign_all()) return finish();
  rd_kafka_queue_t* q = rd_kafka_queue_get_consumer(rk.get());
  if (q == nullptr) q = rd_kafka_queue_get_main(rk.get());
  cs.ready.store(1, std::memory_order_release);

  std::vector<rd_kafka_message_t*> batch(kConsumeBatch);
  std::int64_t received = 0;
  std::int64_t last_progress = wall_clock_ns();
  int pass = 1;
  for (;;) {
    std::int64_t target = rs.target.load(std::memory_order_acquire);
    if (target >= 0 && received >= target * pass) {
      if (pass >= passes) break;
      ++pass;  // read the range again: drop what is prefetched, re-assign at the start
      rd_kafka_assign(rk.get(), nullptr);
      if (!assign_all()) break;
      continue;
    }
    if (stopping(rs)) break;
    // Wait for the first record only (consume_batch_queue with a timeout waits for a whole
    // batch or the timeout: up to 100 ms of added latency at low rates), then take what else
    // is queued without waiting.
    ssize_t n = 0;
    if (rd_kafka_message_t* first = rd_kafka_consume_queue(q, 100)) {
      batch[0] = first;
      n = 1;
      ssize_t more = rd_kafka_consume_batch_queue(q, 0, batch.data() + 1, batch.size() - 1);
      n = more < 0 ? more : 1 + more;
    }
    if (n < 0) {
      cs.error = fmt::format("consume: {}", rd_kafka_err2str(rd_kafka_last_error()));
      rs.stop.store(1);
      break;
    }
    std::int64_t got = 0;
    std::int64_t stamps[kConsumeBatch];
    int stamped = 0;
    for (ssize_t i = 0; i < n; ++i) {
      rd_kafka_message_t* m = batch[static_cast<std::size_t>(i)];
      if (m->err != RD_KAFKA_RESP_ERR_NO_ERROR) {
        if (m->err != RD_KAFKA_RESP_ERR__PARTITION_EOF && cs.error.empty()) {
          cs.error = fmt::format("consumer {}: {}", id, rd_kafka_message_errstr(m));
          rs.stop.store(1);
        }
      } else {
        ++got;
        if (record_latency && m->len >= 8) std::memcpy(&stamps[stamped++], m->payload, 8);
      }
      rd_kafka_message_destroy(m);
    }
    std::int64_t now = wall_clock_ns();
    for (int i = 0; i < stamped; ++i)
      cs.latency.record(static_cast<std::uint64_t>(std::max<std::int64_t>(0, now - stamps[i])));
    if (got > 0) {
      received += got;
      last_progress = now;
      cs.received.store(received, std::memory_order_relaxed);
      cs.last_ns.store(now, std::memory_order_relaxed);
    } else if (target >= 0 && now - last_progress > kStallTimeoutNs) {
      cs.error = fmt::format("consumer {}: no record for {} s, {} of {} received", id,
                             kStallTimeoutNs / 1'000'000'000, received, target * passes);
      break;
    }
  }
  rd_kafka_queue_destroy(q);
  rd_kafka_consumer_close(rk.get());
  finish();
}

}  // namespace sluice::tools::perf_kafka
