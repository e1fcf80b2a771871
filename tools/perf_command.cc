// `sluice perf`: a produce/consume run over temporary partitions. Producer and consumer
// processes (fork; --threads for threads) attach to the partition logs as any application
// would; the parent only orchestrates, prints a progress line once a second, and reports
// records/s, MB/s and one-way latency percentiles. This file is the parent and the command
// line; the workers are tools/perf_producer.cc and tools/perf_consumer.cc, and what they
// share with the parent is tools/perf_shared.h.
//
// Partitions and groups (--partitions, --groups): producers spread keyless records as Kafka's
// sticky partitioner does: 64 records (or one --batch claim) to one partition, then the next,
// round-robin; producer i starts on partition i. Consumers form groups (tools/perf_topology.h):
// within a group the partitions are dealt once, before the run, by the group coordinator's
// range assignor, and every group reads every record once. No broker takes part: the data
// path is the same as with one (the client library maps the same logs), but there are no
// rebalances or commits. Each consumer checks that every partition's offsets arrive in
// sequence (none missing, none twice); the parent checks each group's count per partition.
//
// Latency is measured per record, from its timestamp (CLOCK_REALTIME, shared by all the
// processes) to the consumer's clock when the record is handed to it. With --rate the
// producers run open loop: record i is scheduled at start + i / rate and carries its
// scheduled time, so a producer that falls behind shows as latency instead of hiding it
// (coordinated omission). With --batch and --rate the scheduled time travels in the value's
// first 8 bytes, because claim_batch() stamps records itself (kPerBatch). The consumer reads
// the clock once per poll() call of at most 64 records, after handling them: a slight
// overestimate at high rates, exact when records arrive one at a time.
//
// Retention keeps the partition's footprint bounded (--retain segments, recycled), so the
// producers do not outrun the slowest reader of a partition by more than (retain - 2) segments:
// they wait (flow control, counted in the report) rather than have retention take a segment a
// consumer has not read yet (its handle pins the file, so the file would be deleted rather than
// reused, but the consumer would skip to out-of-range). Group 0's reader of each partition calls
// prepare_after_roll() after each poll that read records there (prepare_next() right after each
// roll), as a broker's watch tick does, and clears the file that recycles a step at a time
// between its polls
// (LogOptions::zero_in_steps, PartitionLog::zero_step).
//
// Warm-up (unless --no-warmup): before the workers start, each partition is run once through
// its pool of recycled files with large filler records (warm_up), and every worker maps the
// whole pool before it reports ready (PartitionLog::premap_segments; producers and retention
// owners pretouch it for writing too). The run's records start
// at the offset where the warm-up ended, and none of its rolls creates or maps a file: the
// figures are the steady state. Cold, the first rolls of a 16 MiB pool cost their producer or
// consumer 3-6 ms each (a new file mapped and pre-faulted), which showed in p99 and beyond.
#include <fmt/format.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/statvfs.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <functional>
#include <limits>
#include <memory>
#include <new>
#include <nlohmann/json.hpp>
#include <optional>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "shm/clock.h"
#include "shm/log_appender.h"
#include "shm/log_reader.h"
#include "shm/partition_log.h"
#include "tools/commands.h"
#include "tools/hiccup_meter.h"
#include "tools/histogram.h"
#include "tools/perf_format.h"
#include "tools/perf_kafka.h"
#include "tools/perf_shared.h"
#include "tools/perf_topology.h"

namespace sluice::tools::perf {

namespace {

extern "C" void on_stop_signal(int) {
  if (g_shared != nullptr) g_shared->stop.store(1, std::memory_order_relaxed);
}

// A worker: a forked child process, or a thread.
class Worker {
 public:
  Worker(bool as_process, std::function<void()> fn) {
    if (as_process) {
      std::fflush(nullptr);
      pid_ = ::fork();
      if (pid_ == 0) {
        fn();
        std::fflush(nullptr);
        ::_exit(0);
      }
      if (pid_ < 0) throw std::runtime_error(std::string("fork: ") + std::strerror(errno));
    } else {
      thread_ = std::thread(std::move(fn));
    }
  }
  Worker(Worker&&) = default;
  Worker& operator=(Worker&&) = default;

  // Process mode: true if the child ended (and how, in *status_ok).
  bool exited(bool* status_ok) {
    if (pid_ <= 0) return false;
    int status = 0;
    pid_t r = ::waitpid(pid_, &status, WNOHANG);
    if (r != pid_) return false;
    pid_ = -1;
    *status_ok = WIFEXITED(status) && WEXITSTATUS(status) == 0;
    return true;
  }

  // Waits for the end; false if a child process died abnormally.
  bool join() {
    if (thread_.joinable()) thread_.join();
    if (pid_ > 0) {
      int status = 0;
      ::waitpid(pid_, &status, 0);
      pid_ = -1;
      return WIFEXITED(status) && WEXITSTATUS(status) == 0;
    }
    return true;
  }

 private:
  pid_t pid_ = -1;
  std::thread thread_;
};

// ---- the run -------------------------------------------------------------------------------

// Runs a worker's body; an exception ends the run with the worker's error instead of escaping
// (from a thread: std::terminate; in a forked child: into the parent's code, leaving the
// parent waiting for a worker that never reports).
template <class Slot, class Fn>
void guarded(PerfShared& sh, Slot& slot, Fn&& fn) {
  try {
    fn();
  } catch (const std::exception& e) {
    fail(slot, std::string("unexpected error: ") + e.what());
    sh.stop.store(1, std::memory_order_relaxed);
    slot.ready.store(1);
    slot.done.store(1, std::memory_order_release);
  }
}

struct Totals {
  std::int64_t sent = 0;
  std::int64_t sent_bytes = 0;
  std::int64_t min_received = 0;
  std::int64_t min_received_bytes = 0;
};

Totals totals(const PerfShared& sh, const PerfConfig& cfg) {
  Totals t;
  for (int p = 0; p < cfg.producers; ++p) {
    t.sent += sh.producers[p].sent.load(std::memory_order_relaxed);
    t.sent_bytes += sh.producers[p].bytes.load(std::memory_order_relaxed);
  }
  // A group receives what its members do; the slowest group is the run's received figure.
  t.min_received = std::numeric_limits<std::int64_t>::max();
  t.min_received_bytes = std::numeric_limits<std::int64_t>::max();
  for (const PerfTopology::Group& g : cfg.topology.groups) {
    std::int64_t records = 0;
    std::int64_t bytes = 0;
    for (int c = g.first; c < g.first + g.members; ++c) {
      records += sh.consumers[c].received.load(std::memory_order_relaxed);
      bytes += sh.consumers[c].bytes.load(std::memory_order_relaxed);
    }
    t.min_received = std::min(t.min_received, records);
    t.min_received_bytes = std::min(t.min_received_bytes, bytes);
  }
  return t;
}

std::string describe_setup(const PerfConfig& cfg) {
  auto workers = [&](int n, const char* role) {
    const char* kind =
        cfg.threads ? (n > 1 ? "threads" : "thread") : (n > 1 ? "processes" : "process");
    return fmt::format("{} {} {}", n, role, kind);
  };
  std::string s = fmt::format("{} -> {}", workers(cfg.producers, "producer"),
                              workers(cfg.consumers, "consumer"));
  if (cfg.groups != 0 && cfg.groups != cfg.consumers)
    s += fmt::format(" in {} group{}", cfg.groups, cfg.groups > 1 ? "s" : "");
  if (cfg.partitions > 1) s += fmt::format(", {} partitions", cfg.partitions);
  s += fmt::format(", {}-byte values, ", cfg.size);
  s += cfg.batch > 0 ? fmt::format("claim_batch of up to {}", cfg.batch) : "append (copy)";
  s += cfg.rate > 0 ? fmt::format(", open loop at {} records/s",
                                  group_digits(static_cast<std::int64_t>(cfg.rate)))
                    : ", as fast as possible";
  s += ", wait " + cfg.wait;
  return s;
}

int run_perf(PerfConfig cfg) {
  // ---- validation
  if (cfg.producers < 1 || cfg.producers > kMaxProducers || cfg.consumers < 1 ||
      cfg.consumers > kMaxConsumers) {
    fmt::print(stderr, "sluice perf: --producers and --consumers must be 1..16\n");
    return 2;
  }
  if (cfg.retain < 3) {
    fmt::print(stderr, "sluice perf: --retain must be at least 3\n");
    return 2;
  }
  std::uint64_t usable = cfg.segment_bytes() - kFrameHeaderBytes;
  std::uint64_t claim = cfg.stride() * std::max<std::uint32_t>(cfg.batch, 1);
  if (claim * 4 > usable) {
    fmt::print(stderr,
               "sluice perf: a claim of {} bytes ({}-byte values x {}) needs segments of at "
               "least 4x that: raise --segment-mib\n",
               claim, cfg.size, std::max<std::uint32_t>(cfg.batch, 1));
    return 2;
  }
  if (cfg.count == 0 && !(cfg.duration_s > 0)) {
    fmt::print(stderr, "sluice perf: --duration must be positive\n");
    return 2;
  }
  if (cfg.partitions < 1 || cfg.partitions > kMaxPartitions) {
    fmt::print(stderr, "sluice perf: --partitions must be 1..{} for a local run (got {})\n",
               kMaxPartitions, cfg.partitions);
    return 2;
  }
  {
    std::string error;
    cfg.topology = PerfTopology::make(cfg.partitions, cfg.consumers, cfg.groups, &error);
    if (!cfg.topology.valid()) {
      fmt::print(stderr, "sluice perf: {}\n", error);
      return 2;
    }
  }
  // Each partition holds up to --retain segments and a spare: refuse what cannot fit.
  if (struct statvfs fs{}; ::statvfs(cfg.data_dir.c_str(), &fs) == 0) {
    std::uint64_t need = std::uint64_t(cfg.partitions) * (cfg.retain + 1) * cfg.segment_bytes();
    std::uint64_t avail = std::uint64_t{fs.f_bavail} * fs.f_frsize;
    if (need > avail) {
      fmt::print(stderr,
                 "sluice perf: {} partitions x {} segments of {} MiB need {} MiB, {} has {} MiB "
                 "free: lower --partitions, --retain or --segment-mib\n",
                 cfg.partitions, cfg.retain + 1, cfg.segment_mib, need >> 20, cfg.data_dir,
                 avail >> 20);
      return 2;
    }
  }

  // ---- the partitions: RUN_DIR/partition-P, each a partition log as a topic's (docs/format.md)
  static int run_counter = 0;
  std::string run_dir = fmt::format("{}/perf-{}-{}-{}", cfg.data_dir, ::getpid(),
                                    wall_clock_ns() / 1000, run_counter++);
  std::vector<std::string> part_dirs;
  for (int p = 0; p < cfg.partitions; ++p)
    part_dirs.push_back(fmt::format("{}/partition-{}", run_dir, p));
  std::error_code ec;
  std::filesystem::create_directories(run_dir, ec);
  if (ec) {
    fmt::print(stderr, "sluice perf: cannot create {}: {}\n", run_dir, ec.message());
    return 1;
  }
  struct Cleanup {
    std::string dir;
    ~Cleanup() {
      std::error_code e;
      std::filesystem::remove_all(dir, e);
    }
  } cleanup{run_dir};
  std::vector<std::int64_t> first_offsets;
  for (const std::string& part_dir : part_dirs) {
    LogConfig lc;
    lc.segment_bytes = cfg.segment_bytes();
    auto log = PartitionLog::create(part_dir, lc, cfg.retention_options());
    if (!log) {
      fmt::print(stderr, "sluice perf: {}\n", log.status().message());
      return 1;
    }
    if (Status s = (*log)->prepare_next(); !s) {
      fmt::print(stderr, "sluice perf: {}\n", s.message());
      return 1;
    }
    auto first = cfg.no_warmup ? Result<std::int64_t>(std::int64_t{0}) : warm_up(*log, cfg);
    if (!first) {
      fmt::print(stderr, "sluice perf: warm-up of {}: {}\n", part_dir, first.status().message());
      return 1;
    }
    first_offsets.push_back(*first);
  }

  // ---- shared state and signals
  void* mem = ::mmap(nullptr, sizeof(PerfShared), PROT_READ | PROT_WRITE,
                     MAP_SHARED | MAP_ANONYMOUS, -1, 0);
  if (mem == MAP_FAILED) {
    fmt::print(stderr, "sluice perf: mmap: {}\n", std::strerror(errno));
    return 1;
  }
  auto* sh = new (mem) PerfShared();
  for (std::size_t p = 0; p < first_offsets.size(); ++p) {
    sh->first_offset[p] = first_offsets[p];
    // Flow control starts from there too.
    for (ConsumerSlot& c : sh->consumers) c.positions[p].next_offset.store(first_offsets[p]);
  }
  struct Unmap {
    PerfShared* p;
    ~Unmap() {
      g_shared = nullptr;
      p->~PerfShared();
      ::munmap(p, sizeof(PerfShared));
    }
  } unmap{sh};
  g_shared = sh;
  struct sigaction sa {};
  sa.sa_handler = on_stop_signal;
  sigemptyset(&sa.sa_mask);
  ::sigaction(SIGINT, &sa, nullptr);
  ::sigaction(SIGTERM, &sa, nullptr);

  // Pin when every worker can have a CPU of its own: producers first, then consumers.
  bool pin = !cfg.no_pin && cfg.producers + cfg.consumers <= cpu_count();
  if (!cfg.json && cfg.producers + cfg.consumers > cpu_count())
    fmt::print(stderr,
               "sluice perf: note: {} workers on {} CPUs take turns; that shows in the latency\n",
               cfg.producers + cfg.consumers, cpu_count());

  // ---- the machine's hiccups on the workers' CPUs, while nothing else of ours runs there
  std::vector<int> worker_cpus;
  for (int i = 0; i < cfg.producers + cfg.consumers; ++i) worker_cpus.push_back(i);
  std::optional<HiccupMeasurement> hiccups;
  if (pin && cfg.hiccups_s > 0)
    hiccups = measure_hiccups(worker_cpus, static_cast<std::int64_t>(cfg.hiccups_s * 1e9));

  // ---- start: consumers first (positioned at the beginning), then producers
  std::vector<Worker> workers;
  const PerfConfig& c = cfg;
  try {
    for (int i = 0; i < cfg.consumers; ++i) {
      int cpu = pin ? cfg.producers + i : -1;
      workers.emplace_back(!cfg.threads, [&c, &part_dirs, sh, i, cpu] {
        guarded(*sh, sh->consumers[i], [&] { run_consumer(c, part_dirs, *sh, i, cpu); });
      });
    }
    for (int i = 0; i < cfg.consumers; ++i) {
      while (sh->consumers[i].ready.load(std::memory_order_acquire) == 0)
        std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
    for (int i = 0; i < cfg.producers; ++i) {
      int cpu = pin ? i : -1;
      workers.emplace_back(!cfg.threads, [&c, &part_dirs, sh, i, cpu] {
        guarded(*sh, sh->producers[i], [&] { run_producer(c, part_dirs, *sh, i, cpu); });
      });
    }
  } catch (const std::exception& e) {
    fmt::print(stderr, "sluice perf: {}\n", e.what());
    sh->stop.store(1);
    for (Worker& w : workers) w.join();
    return 1;
  }

  for (int i = 0; i < cfg.producers; ++i) {
    while (sh->producers[i].ready.load(std::memory_order_acquire) == 0 &&
           sh->producers[i].done.load(std::memory_order_acquire) == 0)
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  std::int64_t start = wall_clock_ns() + 20'000'000;  // everyone waiting for it by then
  sh->start_ns.store(start, std::memory_order_relaxed);
  sh->go.store(1, std::memory_order_release);

  // ---- monitor
  bool tty = ::isatty(STDERR_FILENO) != 0;
  bool progress = !cfg.no_progress && (cfg.count != 0 || cfg.duration_s > 2);
  // Runs over 2 s get a line a second: a --duration run from the first second, a --count run
  // (whose length is not known) once it has lasted 2 s.
  std::int64_t next_report = start + (cfg.count != 0 ? 2'000'000'000 : 1'000'000'000);
  Totals last{};
  std::int64_t last_ns = start;
  std::int64_t drain_deadline = std::numeric_limits<std::int64_t>::max();
  bool drained = true;
  bool crashed = false;
  bool printed_progress = false;
  std::size_t reaped = 0;  // process mode: children that have exited
  for (;;) {
    // Wake every kMonitorTickNs, and for each progress line. Nothing the run measures waits
    // for this loop (the rates end at the workers' own last records); a wake-up is a
    // preemption of a worker when they are pinned to every CPU.
    std::int64_t wake = wall_clock_ns() + kMonitorTickNs;
    if (progress) wake = std::min(wake, next_report);
    std::this_thread::sleep_for(
        std::chrono::nanoseconds(std::max<std::int64_t>(0, wake - wall_clock_ns())));
    if (!cfg.threads) {
      for (Worker& w : workers) {
        bool ok = true;
        if (w.exited(&ok)) {
          ++reaped;
          if (!ok) {
            crashed = true;  // killed, or died before it could say so in its slot
            sh->stop.store(1, std::memory_order_relaxed);
          }
        }
      }
      if (reaped == workers.size()) break;
    }
    bool producers_done = true;
    for (int p = 0; p < cfg.producers; ++p) {
      if (sh->producers[p].done.load(std::memory_order_acquire) == 0) producers_done = false;
      if (sh->producers[p].failed.load(std::memory_order_relaxed) != 0) sh->stop.store(1);
    }
    bool consumers_done = true;
    for (int i = 0; i < cfg.consumers; ++i) {
      if (sh->consumers[i].done.load(std::memory_order_acquire) == 0) consumers_done = false;
      if (sh->consumers[i].failed.load(std::memory_order_relaxed) != 0) sh->stop.store(1);
    }
    std::int64_t now = wall_clock_ns();
    if (producers_done && sh->target.load() < 0) {
      for (int p = 0; p < cfg.partitions; ++p) {
        std::int64_t n = 0;
        for (int i = 0; i < cfg.producers; ++i) n += sh->producers[i].sent_to[p].load();
        sh->partition_target[p].store(n, std::memory_order_relaxed);
      }
      // Release: publishes partition_target; paired with the consumers' acquire of target.
      sh->target.store(totals(*sh, cfg).sent, std::memory_order_release);
      drain_deadline = now + kDrainTimeoutNs;
    }
    if (consumers_done && producers_done) break;
    if (now > drain_deadline && sh->stop.load() == 0) {
      drained = false;
      sh->stop.store(1);
    }
    if (progress && now >= next_report) {
      Totals t = totals(*sh, cfg);
      double dt = static_cast<double>(now - last_ns) / 1e9;
      std::string line = fmt::format(
          "[{:5.1f}s] sent {} records/s  received {} records/s  {:.1f} MB/s  lag {} records",
          static_cast<double>(now - start) / 1e9,
          format_rate(static_cast<double>(t.sent - last.sent) / dt),
          format_rate(static_cast<double>(t.min_received - last.min_received) / dt),
          static_cast<double>(t.min_received_bytes - last.min_received_bytes) / dt / 1e6,
          group_digits(t.sent - t.min_received));
      if (tty) {
        fmt::print(stderr, "\r\033[2K{}", line);
      } else {
        fmt::print(stderr, "{}\n", line);
      }
      std::fflush(stderr);
      printed_progress = true;
      last = t;
      last_ns = now;
      next_report += 1'000'000'000;
    }
  }
  if (printed_progress && tty) fmt::print(stderr, "\n");
  bool children_ok = true;
  for (Worker& w : workers) children_ok = w.join() && children_ok;
  crashed = crashed || !children_ok;
  bool interrupted = sh->stop.load() != 0;

  // ---- results
  Totals t = totals(*sh, cfg);
  std::int64_t send_end = start;
  std::int64_t roll_failures = 0;
  std::int64_t flow_waits = 0;
  std::int64_t max_late = 0;
  std::vector<std::string> errors;
  for (int p = 0; p < cfg.producers; ++p) {
    const ProducerSlot& s = sh->producers[p];
    send_end = std::max(send_end, s.end_ns.load());
    roll_failures += s.roll_failures.load();
    flow_waits += s.flow_waits.load();
    max_late = std::max(max_late, s.max_late_ns.load());
    if (s.failed.load() != 0) errors.emplace_back(s.error);
  }
  LatencyHistogram merged;
  std::int64_t recv_end = start;
  std::int64_t prepare_failures = 0;
  std::vector<std::int64_t> per_consumer;
  for (int i = 0; i < cfg.consumers; ++i) {
    const ConsumerSlot& s = sh->consumers[i];
    merged.merge(s.histogram);
    recv_end = std::max(recv_end, s.last_ns.load());
    prepare_failures += s.prepare_failures.load();
    per_consumer.push_back(s.received.load());
    if (s.failed.load() != 0) errors.emplace_back(s.error);
  }
  if (crashed) errors.emplace_back("a worker process died");
  if (!drained) errors.emplace_back("consumers did not catch up within 10 s of the end");

  // Each group against what was sent to each partition: exactly those records, each once.
  std::vector<std::int64_t> sent_to(static_cast<std::size_t>(cfg.partitions), 0);
  for (int p = 0; p < cfg.partitions; ++p)
    for (int i = 0; i < cfg.producers; ++i)
      sent_to[static_cast<std::size_t>(p)] += sh->producers[i].sent_to[p].load();
  struct GroupResult {
    std::int64_t records = 0;
    std::int64_t out_of_sequence = 0;
    bool exact = true;
  };
  std::vector<GroupResult> groups;
  bool all_exact = true;
  for (std::size_t g = 0; g < cfg.topology.groups.size(); ++g) {
    const PerfTopology::Group& grp = cfg.topology.groups[g];
    GroupResult r;
    for (int m = grp.first; m < grp.first + grp.members; ++m) {
      const ConsumerSlot& s = sh->consumers[m];
      r.records += s.received.load();
      r.out_of_sequence += s.out_of_sequence.load();
      for (int p : cfg.topology.consumer_partitions[static_cast<std::size_t>(m)])
        r.exact = r.exact && s.received_from[p].load() == sent_to[static_cast<std::size_t>(p)];
    }
    r.exact = r.exact && r.out_of_sequence == 0 && r.records == t.sent;
    if (r.out_of_sequence > 0)
      errors.push_back(fmt::format("group {}: {} records out of offset sequence (missing or twice)",
                                   g, group_digits(r.out_of_sequence)));
    else if (!r.exact && !interrupted)
      errors.push_back(fmt::format("group {} received {} records of {} sent", g,
                                   group_digits(r.records), group_digits(t.sent)));
    all_exact = all_exact && r.exact;
    groups.push_back(r);
  }
  const bool grouped = cfg.groups != 0 && cfg.groups != cfg.consumers;
  double send_s = std::max(1e-9, static_cast<double>(send_end - start) / 1e9);
  double recv_s = std::max(1e-9, static_cast<double>(recv_end - start) / 1e9);
  double sent_rate = static_cast<double>(t.sent) / send_s;
  double recv_rate = static_cast<double>(t.min_received) / recv_s;
  double recv_mb = static_cast<double>(t.min_received_bytes) / recv_s / 1e6;
  double sent_mb = static_cast<double>(t.sent_bytes) / send_s / 1e6;
  bool complete = all_exact && t.min_received == t.sent && errors.empty() && !interrupted;

  struct Pct {
    const char* name;
    double q;
  };
  const Pct pcts[] = {
      {"p50", 0.5}, {"p90", 0.9}, {"p99", 0.99}, {"p99.9", 0.999}, {"p99.99", 0.9999}};

  if (cfg.json) {
    nlohmann::json j;
    j["config"] = {{"size", cfg.size},
                   {"count", cfg.count},
                   {"duration_s", cfg.count == 0 ? cfg.duration_s : 0.0},
                   {"rate", cfg.rate},
                   {"producers", cfg.producers},
                   {"consumers", cfg.consumers},
                   {"partitions", cfg.partitions},
                   {"groups", cfg.topology.groups.size()},
                   {"partitioner", "sticky: 64 records or one batch per partition, round-robin"},
                   {"assignment", "static range assignment per group (no broker)"},
                   {"wait", cfg.wait},
                   {"batch", cfg.batch},
                   {"mode", cfg.threads ? "threads" : "processes"},
                   {"segment_bytes", cfg.segment_bytes()},
                   {"retain_segments", cfg.retain},
                   {"warmup", !cfg.no_warmup},
                   {"pinned", pin},
                   {"data_dir", cfg.data_dir}};
    j["sent"] = {{"records", t.sent},           {"records_per_partition", sent_to},
                 {"value_bytes", t.sent_bytes}, {"seconds", send_s},
                 {"records_per_s", sent_rate},  {"mb_per_s", sent_mb}};
    nlohmann::json jgroups = nlohmann::json::array();
    std::vector<std::int64_t> per_group;
    for (std::size_t g = 0; g < groups.size(); ++g) {
      const PerfTopology::Group& grp = cfg.topology.groups[g];
      nlohmann::json members = nlohmann::json::array();
      for (int m = grp.first; m < grp.first + grp.members; ++m)
        members.push_back({{"consumer", m},
                           {"partitions", cfg.topology.consumer_partitions[std::size_t(m)]},
                           {"records", per_consumer[std::size_t(m)]}});
      jgroups.push_back({{"group", g},
                         {"members", members},
                         {"records", groups[g].records},
                         {"out_of_sequence", groups[g].out_of_sequence},
                         {"exactly_once", groups[g].exact}});
      per_group.push_back(groups[g].records);
    }
    j["received"] = {{"records_per_consumer", per_consumer},
                     {"records_per_group", per_group},
                     {"groups", jgroups},
                     {"min_records", t.min_received},
                     {"seconds", recv_s},
                     {"records_per_s", recv_rate},
                     {"mb_per_s", recv_mb}};
    nlohmann::json lat = {{"samples", merged.count()},
                          {"min", merged.min()},
                          {"mean", merged.mean()},
                          {"max", merged.max()}};
    for (const Pct& p : pcts) lat[p.name] = merged.percentile(p.q);
    j["latency_ns"] = lat;
    j["latency_from"] = cfg.rate > 0    ? "scheduled send time"
                        : cfg.batch > 0 ? "batch claim time"
                                        : "append time";
    j["flow_control_waits"] = flow_waits;
    j["roll_failures"] = roll_failures;
    j["prepare_failures"] = prepare_failures;
    j["max_behind_schedule_ns"] = max_late;
    if (hiccups) {
      nlohmann::json floor;
      for (const Pct& p : pcts) floor[p.name] = hiccups->floor_percentile(p.q);
      floor["max"] = hiccups->floor_percentile(1.0);
      j["machine_hiccups"] = {{"cpus", worker_cpus},
                              {"seconds", cfg.hiccups_s},
                              {"min_gap_ns", kMinHiccupNs},
                              {"gaps", hiccups->gaps()},
                              {"lost_fraction", hiccups->lost_fraction()},
                              {"longest_ns", hiccups->longest_ns()},
                              {"latency_floor_ns", floor}};
    } else {
      j["machine_hiccups"] = nullptr;
    }
    j["complete"] = complete;
    j["interrupted"] = interrupted && errors.empty();
    j["errors"] = errors;
    fmt::print("{}\n", j.dump(2));
  } else {
    fmt::print("sluice perf: {}\n", describe_setup(cfg));
    if (cfg.partitions == 1)
      fmt::print("  partition {}: {} MiB segments, {} retained and recycled (removed afterwards)\n",
                 part_dirs[0], cfg.segment_mib, cfg.retain);
    else
      fmt::print(
          "  partitions {}/partition-{{0..{}}}: {} MiB segments, {} retained and recycled "
          "each (removed afterwards)\n",
          run_dir, cfg.partitions - 1, cfg.segment_mib, cfg.retain);
    if (!cfg.no_warmup)
      fmt::print(
          "            warmed up: run once through the pool of {} files before timing, which "
          "every worker mapped (--no-warmup: start cold)\n",
          cfg.retain + 1);
    if (cfg.partitions > 1 || grouped) {
      std::string line;
      for (std::size_t g = 0; g < groups.size(); ++g) {
        const PerfTopology::Group& grp = cfg.topology.groups[g];
        line += fmt::format("{}group {}:", g == 0 ? "" : "; ", g);
        for (int m = grp.first; m < grp.first + grp.members; ++m)
          line += fmt::format(" c{} [{}]", m, cfg.topology.describe_partitions(m));
      }
      fmt::print("  groups    {}\n", line);
      fmt::print(
          "            consumer [partitions], by the range assignor, fixed for the run (no "
          "broker); records spread sticky, 64 (or a batch) per partition in turn\n");
    }
    fmt::print("  sent      {:>14} records in {:.3f} s: {} records/s, {:.1f} MB/s\n",
               group_digits(t.sent), send_s, format_rate(sent_rate), sent_mb);
    fmt::print("  received  {:>14} records in {:.3f} s: {} records/s, {:.1f} MB/s{}\n",
               group_digits(t.min_received), recv_s, format_rate(recv_rate), recv_mb,
               grouped             ? (groups.size() > 1 ? " (each group)" : "")
               : cfg.consumers > 1 ? " (each consumer)"
                                   : "");
    // "p50 422 ns  p90 ...  max 4.51 ms", `at(q)` giving each percentile (q = 1: the max).
    auto percentile_row = [&pcts](const auto& at) {
      std::string row;
      for (const Pct& p : pcts)
        row += fmt::format("{} {}  ", p.name, format_ns(static_cast<double>(at(p.q))));
      return row + "max " + format_ns(static_cast<double>(at(1.0)));
    };
    fmt::print("  latency   {}\n", percentile_row([&](double q) { return merged.percentile(q); }));
    fmt::print("            one-way, from each record's {} to its receipt; {} samples, mean {}\n",
               cfg.rate > 0    ? "scheduled send time"
               : cfg.batch > 0 ? "timestamp (its batch's claim)"
                               : "timestamp (taken at append)",
               group_digits(static_cast<std::int64_t>(merged.count())), format_ns(merged.mean()));
    if (hiccups) {
      fmt::print("  machine   {}\n",
                 percentile_row([&](double q) { return hiccups->floor_percentile(q); }));
      fmt::print(
          "            the latency this machine's hiccups alone would give (tools/hiccup_meter.h): "
          "before the run, a thread spinning on each worker CPU for {:.1f} s lost {:.1f}% of its "
          "time in {} gaps of {} or more (--hiccups 0: skip)\n",
          cfg.hiccups_s, hiccups->lost_fraction() * 100, group_digits(hiccups->gaps()),
          format_ns(static_cast<double>(kMinHiccupNs)));
    }
    if (cfg.rate > 0 && max_late > 1'000'000)
      fmt::print("  note      producers fell up to {} behind schedule (counted in the latency)\n",
                 format_ns(static_cast<double>(max_late)));
    if (flow_waits > 0)
      fmt::print("  note      producers waited {} times for the slowest consumer (flow control)\n",
                 group_digits(flow_waits));
    if (roll_failures > 0)
      fmt::print("  warning   {} segment rolls failed and were retried\n",
                 group_digits(roll_failures));
    if (prepare_failures > 0)
      fmt::print("  warning   prepare_next() failed {} times\n", group_digits(prepare_failures));
    if (interrupted && errors.empty()) fmt::print("  interrupted: partial results\n");
    for (const std::string& e : errors) fmt::print("  error     {}\n", e);
  }
  if (!errors.empty()) return 1;
  return interrupted ? 130 : 0;  // 128 + SIGINT, as a shell reports an interrupted command
}
}  // namespace

}  // namespace sluice::tools::perf

namespace sluice::tools {

void add_perf_command(CLI::App& app, int& exit_code) {
  using perf::kMaxConsumers;
  using perf::kMaxProducers;
  auto cfg = std::make_shared<perf::PerfConfig>();
  if (const char* env = std::getenv("SLUICE_DATA_DIR"); env != nullptr && *env != '\0')
    cfg->data_dir = env;
  CLI::App* cmd = app.add_subcommand(
      "perf",
      "Produce/consume run over temporary partitions: records/s, MB/s, one-way latency.\n"
      "Without options: 10 s, 1 producer process -> 1 consumer process, 1 partition, 32-byte\n"
      "values at 1,000,000 records/s (open loop), adaptive wait.\n"
      "With --partitions N, producers spread keyless records as Kafka's sticky partitioner\n"
      "does: 64 records (or one --batch claim) to a partition, then the next in turn (producer\n"
      "i starts at partition i). With --groups G, the consumers form G groups of consecutive\n"
      "consumers; each group reads every record once, its partitions dealt among its members\n"
      "by the range assignor before the run (a static assignment over the partition logs: no\n"
      "broker, no rebalance, no commit). --json reports each group's records per member.");
  cmd->add_option("--size", cfg->size, "Value bytes")->capture_default_str();
  auto* count =
      cmd->add_option("--count", cfg->count, "Records to send in all (instead of --duration)");
  cmd->add_option("--duration", cfg->duration_s, "Seconds to send for")
      ->capture_default_str()
      ->excludes(count);
  cmd->add_option("--rate", cfg->rate,
                  "Records/s over all producers, open loop (latency from the scheduled send "
                  "time); 0 = as fast as possible")
      ->capture_default_str()
      ->check(CLI::NonNegativeNumber);
  cmd->add_option("--producers", cfg->producers, "Producer processes (threads)")
      ->capture_default_str()
      ->check(CLI::Range(1, kMaxProducers));
  cmd->add_option("--consumers", cfg->consumers,
                  "Consumer processes (threads); each reads every record unless --groups")
      ->capture_default_str()
      ->check(CLI::Range(1, kMaxConsumers));
  cmd->add_option("--partitions", cfg->partitions,
                  "Partitions (local: 1..64, each with --retain segments; with --kafka: of a new "
                  "topic, 1..1024)")
      ->capture_default_str()
      ->check(CLI::Range(1, 1024));
  auto* groups = cmd->add_option(
      "--groups", cfg->groups,
      "Consumer groups, 1..--consumers: each group reads every record once, its members "
      "sharing the partitions (default: each consumer is a group of its own)");
  groups->check(CLI::Range(1, kMaxConsumers));
  cmd->add_option("--wait", cfg->wait, "How consumers wait for records")
      ->capture_default_str()
      ->check(CLI::IsMember({"spin", "yield", "block", "adaptive"}));
  cmd->add_option("--batch", cfg->batch,
                  "Append with claim_batch of up to N records (timestamp per batch); 0 = "
                  "append() one record at a time (copy)")
      ->capture_default_str();
  cmd->add_option("--data-dir", cfg->data_dir,
                  "Directory for the temporary partitions (env SLUICE_DATA_DIR)")
      ->capture_default_str();
  cmd->add_flag("--json", cfg->json, "Print the results as JSON on stdout");
  cmd->add_flag("--threads", cfg->threads, "Run producers and consumers as threads, not processes");
  cmd->add_option("--segment-mib", cfg->segment_mib, "Segment size in MiB")
      ->capture_default_str()
      ->check(CLI::Range(1, 1024));
  cmd->add_option("--retain", cfg->retain, "Segments kept (and recycled)")->capture_default_str();
  cmd->add_flag("--no-pin", cfg->no_pin, "Do not pin workers to CPUs");
  auto* hiccups =
      cmd->add_option("--hiccups", cfg->hiccups_s,
                      "Seconds to measure the machine's hiccups on the workers' CPUs before the "
                      "run (a thread spinning on each), printed as the latency floor they impose; "
                      "0 = skip. Pinned runs only")
          ->capture_default_str()
          ->check(CLI::Range(0.0, 60.0));
  cmd->add_flag("--no-progress", cfg->no_progress, "No progress line on stderr");
  cmd->add_flag("--no-warmup", cfg->no_warmup,
                "Start on fresh partitions: the first rolls then create and map new files");
  auto kafka = add_perf_kafka_options(cmd);
  cmd->callback([cfg, kafka, groups, hiccups, &exit_code] {
    if (perf_kafka_selected(*kafka)) {
      for (const auto* local_only : {groups, hiccups}) {
        if (local_only->count() > 0) {
          fmt::print(stderr, "sluice perf: {} applies to local runs, not with --kafka\n",
                     local_only->get_name());
          exit_code = 2;
          return;
        }
      }
      exit_code =
          run_perf_kafka(*kafka, cfg->partitions, cfg->size, cfg->count, cfg->duration_s, cfg->rate,
                         cfg->producers, cfg->consumers, cfg->json, cfg->no_progress);
    } else {
      exit_code = perf::run_perf(*cfg);
    }
  });
}

}  // namespace sluice::tools
