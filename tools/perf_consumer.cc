// `sluice perf`'s consumer worker: reads its assigned partitions, checks that each one's
// offsets arrive in sequence, records each record's one-way latency (its timestamp against
// the clock when it is handed over), and applies retention as a broker would.
//
// Thread-safety: one consumer per worker (process or thread).
#include <sched.h>
#include <x86intrin.h>

#include <algorithm>
#include <chrono>
#include <string>
#include <thread>
#include <vector>

#include <fmt/format.h>

#include "shm/clock.h"
#include "tools/perf_shared.h"

namespace sluice::tools::perf {
namespace {

// One partition a consumer reads.
struct AssignedPartition {
  int partition = 0;
  std::shared_ptr<PartitionLog> log;
  LogReader reader;
  bool retention = false;  // this consumer applies retention to it (group 0's reader)
  std::int64_t received = 0;
  std::int64_t next_offset = 0;  // expected next (offsets start at 0 and have no gaps)
};

}  // namespace

void run_consumer(const PerfConfig& cfg, const std::vector<std::string>& dirs, PerfShared& sh,
                  int id, int cpu) {
  ConsumerSlot& slot = sh.consumers[id];
  auto finish = [&] {
    slot.done.store(1, std::memory_order_release);
    slot.ready.store(1, std::memory_order_release);
  };
  if (cpu >= 0) pin_to_cpu(cpu);
  std::vector<AssignedPartition> parts;
  for (int p : cfg.topology.consumer_partitions[static_cast<std::size_t>(id)]) {
    bool retention = cfg.topology.retention_owner(p) == id;
    LogOptions owner_options = cfg.retention_options();
    // The files its retention recycles are cleared between polls, a step at a time (the loop
    // below; PartitionLog::zero_step), rather than a whole segment at once in prepare_next().
    owner_options.zero_in_steps = true;
    auto log = PartitionLog::open(dirs[static_cast<std::size_t>(p)],
                                  retention ? owner_options : LogOptions{});
    if (!log) {
      fail(slot, "consumer: " + log.status().message());
      return finish();
    }
    // The retention owner zeroes the files it recycles: written once a page now, they cost
    // it no first writes in the run (PartitionLog::premap_segments).
    auto pretouch = retention ? PartitionLog::Pretouch::kForWriting : PartitionLog::Pretouch::kNo;
    if (auto mapped = (*log)->premap_segments(pretouch); !mapped) {
      fail(slot, "consumer: " + mapped.status().message());
      return finish();
    }
    auto opened = LogReader::open(*log);
    if (!opened) {
      fail(slot, "consumer: " + opened.status().message());
      return finish();
    }
    const std::int64_t first = sh.first_offset[p];
    if (Status s = opened->seek(first); !s) {
      fail(slot, "consumer: " + s.message());
      return finish();
    }
    parts.push_back({p, *log, std::move(opened).value(), retention, 0, first});
  }
  slot.ready.store(1, std::memory_order_release);

  WaitStrategy strategy = cfg.wait_strategy();
  bool stamped = cfg.value_stamped();
  std::int64_t stamps[kPollLimit];
  std::uint32_t n = 0;
  std::int64_t bytes = 0;
  std::int64_t expected = 0;  // the next offset of the partition being polled
  std::int64_t out_of_sequence = 0;
  auto handler = [&](const RecordView& r) {
    std::string_view v = r.value.value_or(std::string_view{});
    std::int64_t t = r.timestamp_ns;
    if (stamped && v.size() >= 8) std::memcpy(&t, v.data(), 8);
    stamps[n++] = t;
    bytes += static_cast<std::int64_t>(v.size());
    if (r.offset != expected) [[unlikely]]
      ++out_of_sequence;
    expected = r.offset + 1;
  };
  std::int64_t received = 0;
  std::int64_t idle_since = 0;       // several partitions, adaptive wait: when the looks found none
  std::vector<LogReader*> wait_set;  // several partitions: the readers a blocking wait parks on
  for (AssignedPartition& a : parts) wait_set.push_back(&a.reader);
  std::int64_t bytes_at_step = 0;
  for (;;) {
    // Clear a step of a recycled file: kZeroStepBytes, plus four times what the last polls
    // read, so that clearing keeps ahead of the producers at any rate and the spare is ready
    // before the roll that needs it (prepare_after_roll() retires the file for it right
    // after the roll before, a segment earlier).
    const auto step = kZeroStepBytes + 4 * static_cast<std::uint64_t>(bytes - bytes_at_step);
    bytes_at_step = bytes;
    bool clearing = false;  // a recycled file with some of it still to clear
    for (AssignedPartition& a : parts)
      if (a.retention) clearing = a.log->zero_step(step) || clearing;
    bool any = false;
    for (AssignedPartition& a : parts) {
      n = 0;
      expected = a.next_offset;
      PollResult pr = a.reader.poll(handler, kPollLimit);
      a.next_offset = expected;
      if (pr.records != 0) {
        any = true;
        std::int64_t now = wall_clock_ns();
        for (std::uint32_t i = 0; i < n; ++i)
          slot.histogram.record(now > stamps[i] ? static_cast<std::uint64_t>(now - stamps[i]) : 0);
        received += pr.records;
        a.received += pr.records;
        // Release: paired with the producers' acquire in FlowControl::admit.
        slot.positions[a.partition].next_offset.store(a.reader.position(),
                                                      std::memory_order_release);
        slot.received.store(received, std::memory_order_relaxed);
        slot.bytes.store(bytes, std::memory_order_relaxed);
        slot.last_ns.store(now, std::memory_order_relaxed);
        // After each roll, a spare for the next (one load of the active base otherwise).
        if (a.retention && !a.log->prepare_after_roll())
          slot.prepare_failures.fetch_add(1, std::memory_order_relaxed);
        continue;
      }
      if (pr.outcome != ReadOutcome::kOk) {
        fail(slot, fmt::format("consumer {}: partition {}: {}", id, a.partition,
                               a.reader.error().message()));
        sh.stop.store(1, std::memory_order_relaxed);
        slot.out_of_sequence.store(out_of_sequence, std::memory_order_relaxed);
        return finish();
      }
    }
    if (any || clearing) {  // caught up but clearing: the next step before any wait
      idle_since = 0;
      continue;
    }
    if (sh.stop.load(std::memory_order_relaxed) != 0) break;
    // Acquire: paired with the parent's release store of target, after partition_target.
    if (sh.target.load(std::memory_order_acquire) >= 0) {
      bool all = true;
      for (const AssignedPartition& a : parts)
        all = all && a.received >= sh.partition_target[a.partition].load(std::memory_order_relaxed);
      if (all) break;
    }
    if (parts.size() == 1) {
      (void)parts[0].reader.wait(strategy, 100'000'000);
    } else if (parts.empty()) {
      std::this_thread::sleep_for(std::chrono::milliseconds(1));  // an idle member
    } else {
      // Several partitions, as the client library's Consumer::poll waits: spin (or yield)
      // over all of them; block and adaptive (after 50 us of spinning) park on all their
      // futexes at once (LogReader::wait_any), woken by a record in any of them.
      bool park = strategy == WaitStrategy::kBlock;
      if (strategy == WaitStrategy::kAdaptive) {
        std::int64_t now = wall_clock_ns();
        if (idle_since == 0) idle_since = now;
        park = now - idle_since > 50'000;
      }
      if (park) {
        (void)LogReader::wait_any(wait_set, 100'000'000);
      } else if (strategy == WaitStrategy::kYield) {
        sched_yield();
      } else {
        _mm_pause();
      }
    }
  }
  for (const AssignedPartition& a : parts)
    slot.received_from[a.partition].store(a.received, std::memory_order_relaxed);
  slot.out_of_sequence.store(out_of_sequence, std::memory_order_relaxed);
  finish();
}

}  // namespace sluice::tools::perf
