// `sluice perf --kafka HOST:PORT`: the perf run of tools/perf_command.cc against a Kafka
// endpoint (Sluice's gateway, the librdkafka mock cluster, a real Kafka), driven through
// librdkafka's C API. Same settings and report as the local tool: value size, --count or
// --duration, --rate (open loop; 0 = as fast as possible), records/s, MB/s and one-way latency
// percentiles in the same histogram (tools/histogram.h), --json.
//
// Shape: producers and consumers are threads of this process (each with an rd_kafka_t handle
// of its own; librdkafka adds its own threads). Every consumer reads every record: it assigns
// itself all partitions of the topic at the high watermarks read before the run (no group, no
// commits), so an existing topic works too. The topic is created with CreateTopics
// (--partitions) and deleted afterwards when the run made it; an endpoint without CreateTopics
// (the mock cluster) auto-creates it on the first Metadata request instead.
//
// Latency, one-way: each value's first 8 bytes carry the send time in CLOCK_REALTIME
// nanoseconds (the scheduled time with --rate, so a producer that falls behind shows as
// latency: no coordinated omission; the time of the produce() call otherwise), and the consumer
// takes its clock once per batch of up to 1024 delivered records, after handling them.
// Kafka's CreateTime is in milliseconds, too coarse. Values under 8 bytes carry no time.
//
// Produce (ack) latency: from each record's send time (the scheduled one with --rate, as for
// the one-way latency; the produce() call otherwise) to its delivery report (acks=1/all: the
// broker's response; acks=0: when the request was written), per record.
//
// Pacing (--rate) never spins a core away from what it measures: records 200 us or more
// apart are each sent on time (a sleep, then a short spin); closer ones go out in bursts of
// whatever is due after each sleep, their lateness counted in both latencies.
//
// --sequential produces everything first and then consumes it from the start offsets: separate
// produce and fetch throughput (what bench/kafka-compare measures); no one-way latency then.
// Its consumers long-poll for 1 ms (fetch.wait.max.ms), not 100: every record is there before
// they start, so a fetch waits only at the end of a pass, when every partition is read, and a
// 100 ms wait there was most of the fetch phase (two servers measured: 100 B fetch rate 1.6 M/s
// with 100 ms, 3.1-3.7 M/s with 1 ms). -X fetch.wait.max.ms=N overrides it.
//
// CPU per MB: getrusage(RUSAGE_SELF) of this process (all its threads, librdkafka's included)
// and, with --server-pid, the CPU-time clock of the endpoint's process, over the
// run (per phase with --sequential), per MB of values (1 MB = 1e6 B).
//
// Files: this one (the run: topic, threads, progress, report), perf_kafka_producer.cc and
// perf_kafka_consumer.cc (the workers), perf_kafka_shared.h/.cc (their state, the librdkafka
// and CPU-accounting helpers).
//
// Thread-safety: each producer and consumer thread owns its rd_kafka_t handle and histograms;
// they share only atomics in RunState. Delivery reports run on one thread per producer (inside
// rd_kafka_poll / rd_kafka_flush): the producer's own at full speed, a report thread of its
// own with --rate. The main thread merges the histograms after joining.
#include "tools/perf_kafka.h"

#include <fmt/format.h>
#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <limits>
#include <nlohmann/json.hpp>
#include <thread>

#include "shm/clock.h"
#include "tools/histogram.h"
#include "tools/perf_format.h"
#include "tools/perf_kafka_shared.h"

namespace sluice::tools::perf_kafka {

namespace {

using sluice::shm::wall_clock_ns;

extern "C" void on_kafka_perf_signal(int) {
  g_stop.store(1, std::memory_order_relaxed);
}

// ---- the run -------------------------------------------------------------------------------

struct Phase {
  std::int64_t records = 0;
  double seconds = 0;
  CpuSample cpu0, cpu1;
};

nlohmann::json histogram_json(const LatencyHistogram& h) {
  nlohmann::json j = {
      {"samples", h.count()}, {"min", h.min()}, {"mean", h.mean()}, {"max", h.max()}};
  const std::pair<const char*, double> pcts[] = {
      {"p50", 0.5}, {"p90", 0.9}, {"p99", 0.99}, {"p99.9", 0.999}, {"p99.99", 0.9999}};
  for (const auto& [name, q] : pcts) j[name] = h.percentile(q);
  return j;
}

std::string histogram_line(const LatencyHistogram& h) {
  const std::pair<const char*, double> pcts[] = {
      {"p50", 0.5}, {"p90", 0.9}, {"p99", 0.99}, {"p99.9", 0.999}, {"p99.99", 0.9999}};
  std::string line;
  for (const auto& [name, q] : pcts)
    line += fmt::format("{} {}  ", name, format_ns(static_cast<double>(h.percentile(q))));
  return line + "max " + format_ns(static_cast<double>(h.max()));
}

// CPU seconds per MB of values in a phase; -1 when not measured.
double ms_per_mb(double cpu0, double cpu1, std::int64_t bytes) {
  if (cpu0 < 0 || cpu1 < 0 || bytes <= 0) return -1;
  return (cpu1 - cpu0) * 1e3 / (static_cast<double>(bytes) / 1e6);
}

int run(const KafkaPerfOptions& k, const Settings& s) {
  if (s.producers < 1 || s.producers > kMaxWorkers || s.consumers < 1 ||
      s.consumers > kMaxWorkers) {
    fmt::print(stderr, "sluice perf: --producers and --consumers must be 1..16\n");
    return 2;
  }
  if (k.acks != "0" && k.acks != "1" && k.acks != "all" && k.acks != "-1") {
    fmt::print(stderr, "sluice perf: --acks must be 0, 1 or all\n");
    return 2;
  }
  if (s.size == 0) {
    fmt::print(stderr, "sluice perf: --size must be at least 1\n");
    return 2;
  }
  g_stop.store(0);
  struct sigaction sa {};
  sa.sa_handler = on_kafka_perf_signal;
  sigemptyset(&sa.sa_mask);
  ::sigaction(SIGINT, &sa, nullptr);
  ::sigaction(SIGTERM, &sa, nullptr);

  // ---- the topic: created (or auto-created) and its partitions' start offsets
  bool own_topic = k.topic.empty();
  std::string topic =
      own_topic ? fmt::format("sluice-perf-{}-{}", ::getpid(), wall_clock_ns() / 1'000'000)
                : k.topic;
  std::string error;
  rd_kafka_conf_t* aconf = make_conf(k, {}, &error);
  if (aconf == nullptr) {
    fmt::print(stderr, "sluice perf: {}\n", error);
    return 2;
  }
  RkHandle admin = new_handle(RD_KAFKA_PRODUCER, aconf, &error);
  if (!admin) {
    fmt::print(stderr, "sluice perf: {}\n", error);
    return 1;
  }
  std::string create_note;
  if (!topic_exists(admin.get(), topic) && !create_topic(admin.get(), topic, k.partitions, &error))
    create_note = error + "; relying on auto-creation";
  int partitions = 0;
  std::int64_t deadline = wall_clock_ns() + 15'000'000'000;
  while ((partitions = partition_count(admin.get(), topic, &error)) <= 0) {
    if (wall_clock_ns() > deadline || g_stop.load() != 0) {
      fmt::print(stderr, "sluice perf: topic {} did not become available at {}: {}{}\n", topic,
                 k.bootstrap, error.empty() ? "no leader for every partition" : error,
                 create_note.empty() ? "" : " (" + create_note + ")");
      return 1;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  RunState rs;
  for (int p = 0; p < partitions; ++p) {
    std::int64_t lo = 0;
    std::int64_t hi = 0;
    rd_kafka_resp_err_t e =
        rd_kafka_query_watermark_offsets(admin.get(), topic.c_str(), p, &lo, &hi, 10000);
    if (e != RD_KAFKA_RESP_ERR_NO_ERROR) {
      fmt::print(stderr, "sluice perf: watermarks of {}/{}: {}\n", topic, p, rd_kafka_err2str(e));
      return 1;
    }
    rs.start_offsets.push_back(hi);
  }
  for (int i = 0; i < s.producers; ++i) rs.producers.push_back(std::make_unique<ProducerState>());
  bool record_latency = !k.sequential && s.size >= 8;
  int passes = k.sequential ? k.fetch_passes : 1;  // 0: produce only
  if (passes > 0)
    for (int i = 0; i < s.consumers; ++i) rs.consumers.push_back(std::make_unique<ConsumerState>());
  std::vector<std::thread> consumers;
  auto start_consumers = [&] {
    for (std::size_t i = 0; i < rs.consumers.size(); ++i)
      consumers.emplace_back(
          [&, i] { run_consumer(k, topic, rs, static_cast<int>(i), record_latency, passes); });
    for (auto& c : rs.consumers)
      while (c->ready.load(std::memory_order_acquire) == 0)
        std::this_thread::sleep_for(std::chrono::milliseconds(1));
  };
  if (!k.sequential) start_consumers();
  std::vector<std::thread> producers;
  for (int i = 0; i < s.producers; ++i)
    producers.emplace_back([&, i] { run_producer(s, k, topic, rs, i); });

  // ---- go, and monitor
  Phase produce_phase;
  Phase consume_phase;
  std::int64_t start = wall_clock_ns() + 100'000'000;  // producers connected by then
  produce_phase.cpu0 = sample_cpu(k.server_pid);
  consume_phase.cpu0 = produce_phase.cpu0;
  rs.start_ns.store(start, std::memory_order_relaxed);
  rs.go.store(1, std::memory_order_release);
  std::int64_t consume_start = start;

  bool tty = ::isatty(STDERR_FILENO) != 0;
  bool progress = !s.no_progress && !s.json;
  std::int64_t next_report = start + 1'000'000'000;
  std::int64_t last_sent = 0;
  std::int64_t last_recv = 0;
  std::int64_t last_ns = start;
  bool printed = false;
  auto delivered_total = [&] {
    std::int64_t d = 0;
    for (auto& p : rs.producers) d += p->delivered.load(std::memory_order_relaxed);
    return d;
  };
  auto min_received = [&] {
    std::int64_t m = std::numeric_limits<std::int64_t>::max();
    for (auto& c : rs.consumers) m = std::min(m, c->received.load(std::memory_order_relaxed));
    return rs.consumers.empty() ? 0 : m;
  };
  bool producers_done = false;
  for (;;) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
    if (!producers_done) {
      producers_done = true;
      for (auto& p : rs.producers)
        if (p->done.load(std::memory_order_acquire) == 0) producers_done = false;
      if (producers_done) {
        for (std::thread& t : producers) t.join();
        produce_phase.cpu1 = sample_cpu(k.server_pid);
        rs.target.store(delivered_total(), std::memory_order_release);
        if (k.sequential && passes > 0 && !stopping(rs)) {
          consume_phase.cpu0 = sample_cpu(k.server_pid);
          consume_start = wall_clock_ns();
          start_consumers();
          last_ns = consume_start;
          last_recv = 0;
        }
      }
    }
    bool consumers_done = producers_done;
    for (auto& c : rs.consumers)
      if (c->done.load(std::memory_order_acquire) == 0) consumers_done = false;
    if (producers_done && (consumers_done || (consumers.empty() && stopping(rs)))) break;
    if (g_stop.load() != 0) rs.stop.store(1);
    std::int64_t now = wall_clock_ns();
    if (progress && now >= next_report) {
      std::int64_t sent = delivered_total();
      std::int64_t recv = min_received();
      double dt = static_cast<double>(now - last_ns) / 1e9;
      std::string line = fmt::format(
          "[{:5.1f}s] acknowledged {} records/s  received {} records/s  {:.1f} MB/s  lag {} "
          "records",
          static_cast<double>(now - start) / 1e9,
          format_rate(static_cast<double>(sent - last_sent) / dt),
          format_rate(static_cast<double>(recv - last_recv) / dt),
          static_cast<double>((recv - last_recv) * s.size) / dt / 1e6, group_digits(sent - recv));
      if (tty) {
        fmt::print(stderr, "\r\033[2K{}", line);
      } else {
        fmt::print(stderr, "{}\n", line);
      }
      std::fflush(stderr);
      printed = true;
      last_sent = sent;
      last_recv = recv;
      last_ns = now;
      next_report += 1'000'000'000;
    }
  }
  if (printed && tty) fmt::print(stderr, "\n");
  for (std::thread& t : consumers) t.join();
  consume_phase.cpu1 = sample_cpu(k.server_pid);
  if (own_topic) delete_topic(admin.get(), topic);
  admin.reset();
  bool interrupted = g_stop.load() != 0;

  // ---- results
  LatencyHistogram* ack = new LatencyHistogram();
  std::unique_ptr<LatencyHistogram> ack_owner(ack);
  auto lat_owner = std::make_unique<LatencyHistogram>();
  std::vector<std::string> errors;
  std::int64_t produced = 0, delivered = 0, failed = 0, queue_full = 0, max_late = 0;
  std::int64_t send_end = start;
  for (auto& p : rs.producers) {
    ack->merge(p->ack);
    produced += p->produced.load();
    delivered += p->delivered.load();
    failed += p->failed.load();
    queue_full += p->queue_full_waits;
    max_late = std::max(max_late, p->max_late_ns);
    send_end = std::max(send_end, p->last_dr_ns.load());
    if (!p->error.empty()) errors.push_back(p->error);
    if (!p->delivery_error.empty()) errors.push_back(p->delivery_error);
  }
  std::int64_t recv_end = consume_start;
  std::vector<std::int64_t> per_consumer;
  for (auto& c : rs.consumers) {
    lat_owner->merge(c->latency);
    per_consumer.push_back(c->received.load());
    recv_end = std::max(recv_end, c->last_ns.load());
    if (!c->error.empty()) errors.push_back(c->error);
  }
  std::int64_t min_recv =
      per_consumer.empty() ? 0 : *std::min_element(per_consumer.begin(), per_consumer.end());
  if (failed > 0)
    errors.push_back(fmt::format("{} records were not acknowledged", group_digits(failed)));
  if (!interrupted && min_recv < delivered * passes)
    errors.push_back(fmt::format("consumers received {} of {} acknowledged records{}",
                                 group_digits(min_recv), group_digits(delivered * passes),
                                 passes > 1 ? fmt::format(" ({} passes)", passes) : ""));
  double send_s = std::max(1e-9, static_cast<double>(send_end - start) / 1e9);
  double recv_s = std::max(1e-9, static_cast<double>(recv_end - consume_start) / 1e9);
  double sent_rate = static_cast<double>(delivered) / send_s;
  double sent_mb = static_cast<double>(delivered) * s.size / send_s / 1e6;
  double recv_rate = static_cast<double>(min_recv) / recv_s;
  double recv_mb = static_cast<double>(min_recv) * s.size / recv_s / 1e6;
  std::int64_t sent_bytes = delivered * s.size;
  std::int64_t recv_bytes = min_recv * s.size;
  // CPU per MB: with --sequential per phase; otherwise the whole run per MB sent.
  CpuSample c0 = produce_phase.cpu0;
  CpuSample pc1 = k.sequential ? produce_phase.cpu1 : consume_phase.cpu1;
  double client_produce = ms_per_mb(c0.self_s, pc1.self_s, sent_bytes);
  double server_produce = ms_per_mb(c0.server_s, pc1.server_s, sent_bytes);
  double client_consume =
      k.sequential ? ms_per_mb(consume_phase.cpu0.self_s, consume_phase.cpu1.self_s, recv_bytes)
                   : -1;
  double server_consume =
      k.sequential ? ms_per_mb(consume_phase.cpu0.server_s, consume_phase.cpu1.server_s, recv_bytes)
                   : -1;
  bool complete = errors.empty() && !interrupted && min_recv >= delivered * passes;
  const char* latency_from = s.rate > 0 ? "scheduled send time" : "produce() call time";
  std::string acks = k.acks == "-1" ? "all" : k.acks;

  if (s.json) {
    nlohmann::json j;
    j["config"] = {{"size", s.size},
                   {"count", s.count},
                   {"duration_s", s.count == 0 ? s.duration_s : 0.0},
                   {"rate", s.rate},
                   {"producers", s.producers},
                   {"consumers", s.consumers},
                   {"mode", "threads"},
                   {"kafka", k.bootstrap},
                   {"topic", topic},
                   {"partitions", partitions},
                   {"acks", acks},
                   {"compression", k.compression},
                   {"linger_ms", k.linger_ms},
                   {"batch_bytes", k.batch_bytes},
                   {"sequential", k.sequential},
                   {"fetch_passes", passes},
                   {"kafka_config", k.config},
                   {"server_pid", k.server_pid}};
    j["sent"] = {{"records", delivered}, {"produced", produced},       {"value_bytes", sent_bytes},
                 {"seconds", send_s},    {"records_per_s", sent_rate}, {"mb_per_s", sent_mb}};
    j["received"] = {{"records_per_consumer", per_consumer},
                     {"min_records", min_recv},
                     {"seconds", recv_s},
                     {"records_per_s", recv_rate},
                     {"mb_per_s", recv_mb}};
    if (record_latency) {
      j["latency_ns"] = histogram_json(*lat_owner);
      j["latency_from"] = latency_from;
    } else {
      j["latency_ns"] = nullptr;
    }
    j["produce_latency_ns"] = histogram_json(*ack);
    auto num_or_null = [](double v) { return v < 0 ? nlohmann::json(nullptr) : nlohmann::json(v); };
    j["cpu_ms_per_mb"] = {{"client_produce", num_or_null(client_produce)},
                          {"server_produce", num_or_null(server_produce)},
                          {"client_consume", num_or_null(client_consume)},
                          {"server_consume", num_or_null(server_consume)}};
    j["queue_full_waits"] = queue_full;
    j["max_behind_schedule_ns"] = max_late;
    j["topic_creation"] = create_note.empty() ? "CreateTopics" : create_note;
    j["complete"] = complete;
    j["interrupted"] = interrupted && errors.empty();
    j["errors"] = errors;
    fmt::print("{}\n", j.dump(2));
  } else {
    fmt::print(
        "sluice perf --kafka {}: topic {} ({} partition{}), {} producer -> {} consumer threads, "
        "{}-byte values, {}, acks={}, compression {}, linger {} ms, batch {} B{}\n",
        k.bootstrap, topic, partitions, partitions == 1 ? "" : "s", s.producers,
        rs.consumers.size(), s.size,
        s.rate > 0 ? fmt::format("open loop at {} records/s",
                                 group_digits(static_cast<std::int64_t>(s.rate)))
                   : "as fast as possible",
        acks, k.compression, k.linger_ms, k.batch_bytes,
        passes == 0    ? std::string(", produce only")
        : k.sequential ? fmt::format(", sequential (produce all, then consume{})",
                                     passes > 1 ? fmt::format(" {} times", passes) : "")
                       : std::string());
    if (!create_note.empty()) fmt::print("  note      {}\n", create_note);
    fmt::print("  sent      {:>14} records in {:.3f} s: {} records/s, {:.1f} MB/s (acknowledged)\n",
               group_digits(delivered), send_s, format_rate(sent_rate), sent_mb);
    if (passes > 0)
      fmt::print("  received  {:>14} records in {:.3f} s: {} records/s, {:.1f} MB/s{}\n",
                 group_digits(min_recv), recv_s, format_rate(recv_rate), recv_mb,
                 s.consumers > 1 ? " (each consumer)" : "");
    if (record_latency) {
      fmt::print("  latency   {}\n", histogram_line(*lat_owner));
      fmt::print("            one-way, from each record's {} to its receipt; {} samples, mean {}\n",
                 latency_from, group_digits(static_cast<std::int64_t>(lat_owner->count())),
                 format_ns(lat_owner->mean()));
    }
    fmt::print("  produce   {}\n", histogram_line(*ack));
    fmt::print(
        "            acks={}: from each record's {} to its delivery report; {} samples, "
        "mean {}\n",
        acks, latency_from, group_digits(static_cast<std::int64_t>(ack->count())),
        format_ns(ack->mean()));
    auto cpu = [](double v) { return v < 0 ? std::string("-") : fmt::format("{:.2f} ms/MB", v); };
    if (k.sequential) {
      fmt::print("  cpu       produce: client {}, server {}; consume: client {}, server {}\n",
                 cpu(client_produce), cpu(server_produce), cpu(client_consume),
                 cpu(server_consume));
    } else {
      fmt::print("  cpu       client {}, server {} (whole run, per MB sent)\n", cpu(client_produce),
                 cpu(server_produce));
    }
    if (s.rate > 0 && max_late > 1'000'000)
      fmt::print("  note      producers fell up to {} behind schedule (counted in the latency)\n",
                 format_ns(static_cast<double>(max_late)));
    if (queue_full > 0)
      fmt::print("  note      producers waited {} times for a full local queue\n",
                 group_digits(queue_full));
    if (interrupted && errors.empty()) fmt::print("  interrupted: partial results\n");
    for (const std::string& e : errors) fmt::print("  error     {}\n", e);
  }
  if (!errors.empty()) return 1;
  return interrupted ? 130 : 0;
}

}  // namespace

}  // namespace sluice::tools::perf_kafka

namespace sluice::tools {

std::shared_ptr<KafkaPerfOptions> add_perf_kafka_options(CLI::App* perf) {
  auto k = std::make_shared<KafkaPerfOptions>();
  perf->add_option("--kafka", k->bootstrap,
                   "Drive a Kafka endpoint (bootstrap HOST:PORT[,...]) through librdkafka instead "
                   "of local partitions; producers and consumers are threads; --wait, --batch, "
                   "--groups, --threads, --segment-mib, --retain, --no-pin and --data-dir do "
                   "not apply");
  perf->add_option("--topic", k->topic,
                   "With --kafka: topic to use (default: a new one, created and deleted)");
  perf->add_option("--acks", k->acks, "With --kafka: 0, 1 or all")->capture_default_str();
  perf->add_option("--compression", k->compression, "With --kafka: compression.type")
      ->capture_default_str()
      ->check(CLI::IsMember({"none", "gzip", "snappy", "lz4", "zstd"}));
  perf->add_option("--linger-ms", k->linger_ms, "With --kafka: producer linger.ms")
      ->capture_default_str()
      ->check(CLI::NonNegativeNumber);
  perf->add_option("--batch-bytes", k->batch_bytes, "With --kafka: producer batch.size")
      ->capture_default_str()
      ->check(CLI::Range(1, 100'000'000));
  perf->add_flag("--sequential", k->sequential,
                 "With --kafka: produce everything, then consume it (separate produce and fetch "
                 "throughput; no one-way latency)");
  perf->add_option("--fetch-passes", k->fetch_passes,
                   "With --kafka --sequential: consumers read the produced records this many "
                   "times (longer fetch runs over a bounded log, e.g. the mock's 5 MiB a "
                   "partition); 0 = produce only")
      ->capture_default_str()
      ->check(CLI::Range(0, 1000));
  perf->add_option("--server-pid", k->server_pid,
                   "With --kafka: pid of the endpoint's process, for its CPU time per MB")
      ->check(CLI::PositiveNumber);
  perf->add_option("-X,--kafka-config", k->config,
                   "With --kafka: librdkafka property name=value for every handle (repeatable)");
  return k;
}

bool perf_kafka_selected(const KafkaPerfOptions& k) {
  return !k.bootstrap.empty();
}

int run_perf_kafka(const KafkaPerfOptions& k, int partitions, std::uint32_t size,
                   std::int64_t count, double duration_s, double rate, int producers, int consumers,
                   bool json, bool no_progress) {
  KafkaPerfOptions with_partitions = k;
  with_partitions.partitions = partitions;
  return perf_kafka::run(
      with_partitions,
      perf_kafka::Settings{size, count, duration_s, rate, producers, consumers, json, no_progress});
}

}  // namespace sluice::tools
