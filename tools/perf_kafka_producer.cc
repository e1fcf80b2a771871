// `sluice perf --kafka`'s producer threads: open-loop pacing, produce(), delivery reports.
#include <fmt/format.h>
#include <time.h>
#include <x86intrin.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cmath>
#include <cstring>
#include <limits>
#include <thread>

#include "shm/clock.h"
#include "tools/perf_kafka_shared.h"

namespace sluice::tools::perf_kafka {

namespace {

using sluice::shm::wall_clock_ns;

void sleep_until_realtime(std::int64_t ns) {
  timespec ts;
  ts.tv_sec = static_cast<time_t>(ns / 1'000'000'000);
  ts.tv_nsec = static_cast<long>(ns % 1'000'000'000);
  while (::clock_nanosleep(CLOCK_REALTIME, TIMER_ABSTIME, &ts, nullptr) == EINTR) {
    if (g_stop.load(std::memory_order_relaxed) != 0) return;
  }
}

// Delivery report, on the thread that serves them (the producer's own at full speed; with
// --rate a thread of its own, see run_producer). The message's opaque is its send time: the
// scheduled one with --rate, else the produce() call's.
extern "C" void on_delivery(rd_kafka_t*, const rd_kafka_message_t* m, void* opaque) {
  auto* ps = static_cast<ProducerState*>(opaque);
  std::int64_t now = wall_clock_ns();
  if (m->err != RD_KAFKA_RESP_ERR_NO_ERROR) {
    if (ps->failed.fetch_add(1, std::memory_order_relaxed) == 0)
      ps->delivery_error = fmt::format("delivery failed: {}", rd_kafka_err2str(m->err));
    return;
  }
  auto sent = static_cast<std::int64_t>(reinterpret_cast<std::intptr_t>(m->_private));
  ps->ack.record(static_cast<std::uint64_t>(std::max<std::int64_t>(0, now - sent)));
  ps->delivered.fetch_add(1, std::memory_order_relaxed);
  ps->last_dr_ns.store(now, std::memory_order_relaxed);
}

}  // namespace

void run_producer(const Settings& s, const KafkaPerfOptions& k, const std::string& topic,
                  RunState& rs, int id) {
  ProducerState& ps = *rs.producers[static_cast<std::size_t>(id)];
  auto finish = [&ps] { ps.done.store(1, std::memory_order_release); };
  std::string error;
  // Throughput-minded defaults (-X overrides them).
  rd_kafka_conf_t* conf =
      make_conf(k,
                {{"acks", k.acks},
                 {"compression.type", k.compression},
                 {"linger.ms", fmt::format("{}", k.linger_ms)},
                 {"batch.size", std::to_string(k.batch_bytes)},
                 // Keyless records spread evenly over the partitions (each partition still batches
                 // on its own), not all on one for a while (librdkafka's sticky default).
                 {"sticky.partitioning.linger.ms", "0"},
                 {"queue.buffering.max.messages", "1000000"},
                 {"queue.buffering.max.kbytes", "1048576"},
                 {"message.max.bytes", std::to_string(std::max(1'000'000, k.batch_bytes + 65536))}},
                &error);
  if (conf == nullptr) {
    ps.error = error;
    rs.stop.store(1);
    return finish();
  }
  rd_kafka_conf_set_dr_msg_cb(conf, on_delivery);
  rd_kafka_conf_set_opaque(conf, &ps);
  RkHandle rk = new_handle(RD_KAFKA_PRODUCER, conf, &error);
  if (!rk) {
    ps.error = error;
    rs.stop.store(1);
    return finish();
  }
  rd_kafka_topic_t* rkt = rd_kafka_topic_new(rk.get(), topic.c_str(), nullptr);

  std::int64_t quota = std::numeric_limits<std::int64_t>::max();
  if (s.count > 0) quota = s.count / s.producers + (id < s.count % s.producers ? 1 : 0);
  std::vector<char> value(std::max<std::uint32_t>(s.size, 8), 'Z');

  while (rs.go.load(std::memory_order_acquire) == 0) {
    if (stopping(rs)) break;
    std::this_thread::sleep_for(std::chrono::microseconds(100));
  }
  std::int64_t start = rs.start_ns.load(std::memory_order_relaxed);
  std::int64_t end = s.count == 0
                         ? start + static_cast<std::int64_t>(std::llround(s.duration_s * 1e9))
                         : std::numeric_limits<std::int64_t>::max();
  double interval_ns = s.rate > 0 ? 1e9 * s.producers / s.rate : 0;  // this producer's share
  bool paced = s.rate > 0;
  bool spin_paced = paced && interval_ns >= static_cast<double>(kSpinPacedBelowNs);
  // Paced, delivery reports are served by a thread of their own, blocked in rd_kafka_poll
  // until one arrives: the producer thread sleeps between its sends and would see a report
  // only when it wakes, adding its sleep to the measured latency. That thread also flushes
  // at the end, so that reports run on one thread only (on_delivery is not thread-safe).
  std::atomic<int> producing{1};
  std::string flush_error;
  auto serve_reports = [&] {
    while (producing.load(std::memory_order_acquire) != 0) rd_kafka_poll(rk.get(), 10);
    rd_kafka_resp_err_t fe = rd_kafka_flush(rk.get(), kFlushTimeoutMs);
    if (fe != RD_KAFKA_RESP_ERR_NO_ERROR)
      flush_error =
          fmt::format("flush: {} ({} records unacknowledged after {} s)", rd_kafka_err2str(fe),
                      rd_kafka_outq_len(rk.get()), kFlushTimeoutMs / 1000);
  };
  std::thread reports;
  if (paced) reports = std::thread(serve_reports);
  std::int64_t sent = 0;
  if (rs.go.load() != 0) sleep_until_realtime(start);
  while (!stopping(rs) && sent < quota) {
    std::int64_t stamp = 0;
    if (paced) {
      stamp =
          start + static_cast<std::int64_t>(std::llround(static_cast<double>(sent) * interval_ns));
      if (stamp >= end) break;
      std::int64_t now = wall_clock_ns();
      if (spin_paced) {
        while (now < stamp && !stopping(rs)) {
          if (stamp - now > kWakeEarlyNs)
            sleep_until_realtime(stamp - kWakeEarlyNs);
          else
            _mm_pause();
          now = wall_clock_ns();
        }
      } else if (now < stamp) {
        sleep_until_realtime(stamp);  // then every record now due goes out at once
        now = wall_clock_ns();
      }
      ps.max_late_ns = std::max(ps.max_late_ns, now - stamp);
    } else {
      stamp = wall_clock_ns();
      if (stamp >= end) break;
    }
    if (s.size >= 8) std::memcpy(value.data(), &stamp, 8);
    for (;;) {
      std::int64_t sent_at = paced ? stamp : wall_clock_ns();
      int r = rd_kafka_produce(rkt, RD_KAFKA_PARTITION_UA, RD_KAFKA_MSG_F_COPY, value.data(),
                               s.size, nullptr, 0,
                               reinterpret_cast<void*>(static_cast<std::intptr_t>(sent_at)));
      if (r == 0) break;
      rd_kafka_resp_err_t e = rd_kafka_last_error();
      if (e != RD_KAFKA_RESP_ERR__QUEUE_FULL) {
        ps.error = fmt::format("produce: {}", rd_kafka_err2str(e));
        rs.stop.store(1);
        break;
      }
      ++ps.queue_full_waits;  // the local queue is full: wait for acknowledgements
      if (paced)
        std::this_thread::sleep_for(std::chrono::milliseconds(1));
      else
        rd_kafka_poll(rk.get(), 1);
      if (stopping(rs)) break;
    }
    if (stopping(rs)) break;
    ++sent;
    if (paced || (sent & 63) == 0) {
      if (!paced) rd_kafka_poll(rk.get(), 0);  // serve delivery reports every 64 sends
      ps.produced.store(sent, std::memory_order_relaxed);
    }
  }
  ps.produced.store(sent, std::memory_order_relaxed);
  // Wait for every delivery report (also after an interruption: what was produced is counted).
  producing.store(0, std::memory_order_release);
  if (paced)
    reports.join();
  else
    serve_reports();  // flushes, on this thread
  if (!flush_error.empty() && ps.error.empty()) ps.error = flush_error;
  rd_kafka_topic_destroy(rkt);
  finish();
}

}  // namespace sluice::tools::perf_kafka
