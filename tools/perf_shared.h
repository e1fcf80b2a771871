// The state `sluice perf` shares between its parent and its workers (one MAP_SHARED
// anonymous mapping, so that forked producer and consumer processes and threads alike report
// through it), the run's settings, and the pieces the producer and consumer workers share.
// tools/perf_command.cc runs the parent; tools/perf_producer.cc and tools/perf_consumer.cc
// the workers.
//
// Thread-safety: the slots' atomics are written by their one worker and read by the parent
// (and, for ReadPosition, by the producers); PerfConfig is read-only once the run starts.
#pragma once

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <cstdio>
#include <memory>
#include <string>
#include <vector>

#include "shm/log_appender.h"
#include "shm/log_reader.h"
#include "shm/partition_log.h"
#include "shm/status.h"
#include "tools/cpu_pinning.h"
#include "tools/histogram.h"
#include "tools/perf_topology.h"

namespace sluice::tools::perf {

using namespace sluice::shm;

constexpr int kMaxProducers = 16;
constexpr int kMaxConsumers = 16;
constexpr int kMaxPartitions = 64;
constexpr std::int64_t kStickyRecords = 64;      // records to one partition before the next
constexpr std::uint32_t kPollLimit = 64;         // records per poll() call
constexpr std::int64_t kCopyChunk = 64;          // appends between clock / stop checks
constexpr std::int64_t kSleepAboveNs = 200'000;  // pacing: sleep when the next send is later
constexpr std::int64_t kWakeEarlyNs = 100'000;   // ... waking this much early, then spin
constexpr std::int64_t kDrainTimeoutNs = 10'000'000'000;  // consumers' catch-up after the end
// How often the parent looks at the workers (failures, the end of sending, exits). It ran
// unpinned every 10 ms until 2026-11-28: about 1,000 wake-ups of 10-25 µs in a 10 s demo, each
// taking a pinned worker's CPU for that long (perf sched).
constexpr std::int64_t kMonitorTickNs = 100'000'000;
// A retention owner clears a recycled file at least this much at a time, between polls:
// about 2 us (a whole 16 MiB segment at once stopped the consumer for about 1 ms).
constexpr std::uint64_t kZeroStepBytes = 32 * 1024;

struct PerfConfig {
  std::uint32_t size = 32;
  std::int64_t count = 0;  // 0: run for duration_s
  double duration_s = 10;
  double rate = 1'000'000;  // records/s over all producers; 0: as fast as possible
  int producers = 1;
  int consumers = 1;
  int partitions = 1;
  int groups = 0;         // 0: every consumer is a group of its own
  PerfTopology topology;  // from partitions, consumers and groups (run_perf)
  std::string wait = "adaptive";
  std::uint32_t batch = 0;  // 0: append() (copy); N: claim_batch of up to N records
  std::string data_dir = "/dev/shm/sluice";
  bool json = false;
  bool threads = false;
  std::uint32_t segment_mib = 16;
  std::uint32_t retain = 4;
  bool no_pin = false;
  bool no_progress = false;
  bool no_warmup = false;
  double hiccups_s = 2;  // the workers' CPUs measured for this long before the run; 0: not

  std::uint64_t segment_bytes() const { return std::uint64_t{segment_mib} << 20; }
  std::uint64_t stride() const { return align_frame(kFrameHeaderBytes + std::uint64_t{size}); }
  std::int64_t records_per_segment() const {
    return static_cast<std::int64_t>((segment_bytes() - kFrameHeaderBytes) / stride());
  }
  // How far (in offsets) producers may run ahead of the slowest reader of a partition.
  std::int64_t window() const {
    return static_cast<std::int64_t>(retain - 2) * records_per_segment() -
           static_cast<std::int64_t>(std::max<std::uint32_t>(batch, 1)) * producers;
  }
  bool value_stamped() const { return batch > 0 && rate > 0 && size >= 8; }
  // Group 0's reader of each partition applies retention to it (prepare_next() recycles the
  // oldest segment into the spare) after each roll (prepare_after_roll). Producers' handles have
  // the same retention: their rolls take the spare, and a roll that finds none (the reader's
  // prepare_next() came late) recycles the oldest segment in place rather than create a new
  // file, and the reader's next prepare_next() makes the spare again (zeroing a recycled file
  // is then the reader's work, not the producer's). The two paths claim the oldest file by
  // renaming it, so one of them has it. (With
  // no retention on the producers' handles, such rolls created, zeroed and pre-faulted
  // 31-65 new 16 MiB files in 2 s runs at 1 KiB, `--rate 0 --batch 8`, on 2026-11-26.)
  LogOptions retention_options() const {
    LogOptions o;
    o.retain_segments = retain;
    o.recycle_segments = true;
    return o;
  }
  WaitStrategy wait_strategy() const {
    return shm::parse_wait_strategy(wait).value_or(WaitStrategy::kAdaptive);
  }
};

// ---- state shared by the parent and the workers (a MAP_SHARED anonymous mapping) ----------

struct alignas(64) ProducerSlot {
  std::atomic<std::int64_t> sent{0};
  std::atomic<std::int64_t> bytes{0};
  std::atomic<std::int64_t> end_ns{0};  // CLOCK_REALTIME when it stopped
  std::atomic<std::int64_t> roll_failures{0};
  std::atomic<std::int64_t> flow_waits{0};
  std::atomic<std::int64_t> max_late_ns{0};  // open loop: furthest behind schedule
  std::atomic<int> ready{0};                 // its partitions open and mapped
  std::atomic<int> done{0};
  std::atomic<int> failed{0};
  char error[512] = {};
  std::atomic<std::int64_t> sent_to[kMaxPartitions] = {};  // per partition, once done
};

// A consumer's read position in one partition (flow control): on a cache line of its own,
// written by the consumer only, read by the producers.
struct alignas(64) ReadPosition {
  std::atomic<std::int64_t> next_offset{0};
};

struct alignas(64) ConsumerSlot {
  ReadPosition positions[kMaxPartitions];  // only its partitions' move
  std::atomic<std::int64_t> received{0};
  std::atomic<std::int64_t> bytes{0};
  std::atomic<std::int64_t> last_ns{0};  // CLOCK_REALTIME of the last receipt
  std::atomic<std::int64_t> prepare_failures{0};
  // Records whose offset was not the next one of their partition (one missing or repeated).
  std::atomic<std::int64_t> out_of_sequence{0};
  std::atomic<std::int64_t> received_from[kMaxPartitions] = {};  // per partition, once done
  std::atomic<int> ready{0};
  std::atomic<int> done{0};
  std::atomic<int> failed{0};
  char error[512] = {};
  LatencyHistogram histogram;
};

struct PerfShared {
  std::atomic<int> stop{0};  // interrupted or failed: everyone stops now
  std::atomic<int> go{0};
  std::atomic<std::int64_t> start_ns{0};  // CLOCK_REALTIME of the first scheduled send
  std::atomic<std::int64_t> target{-1};   // records sent in all, once every producer is done
  // Records sent to each partition; written before `target` (release), read after it.
  std::atomic<std::int64_t> partition_target[kMaxPartitions] = {};
  // Each partition's first offset of the run (where the warm-up ended); written before the
  // workers start.
  std::int64_t first_offset[kMaxPartitions] = {};
  ProducerSlot producers[kMaxProducers];
  ConsumerSlot consumers[kMaxConsumers];
};

// The run's shared state, for the stop signal's handler and the workers' sleeps.
extern PerfShared* g_shared;

template <class Slot>
void fail(Slot& slot, const std::string& message) {
  std::snprintf(slot.error, sizeof slot.error, "%s", message.c_str());
  slot.failed.store(1, std::memory_order_release);
}

// Waits until CLOCK_REALTIME reaches ns: sleeps while it is far, spins the rest.
void wait_until(std::int64_t ns, const std::atomic<int>& stop);

// A producer worker (tools/perf_producer.cc): appends to the partitions of `dirs` until the
// run's end, open loop at its share of the rate, or as fast as flow control lets it.
void run_producer(const PerfConfig& cfg, const std::vector<std::string>& dirs, PerfShared& sh,
                  int id, int cpu);
// Runs a new partition once through its pool of recycled segments before the workers start;
// returns the offset the run's records start at (tools/perf_producer.cc).
Result<std::int64_t> warm_up(const std::shared_ptr<PartitionLog>& log, const PerfConfig& cfg);
// A consumer worker (tools/perf_consumer.cc): reads its assigned partitions until every
// record sent to them has arrived, recording each record's one-way latency.
void run_consumer(const PerfConfig& cfg, const std::vector<std::string>& dirs, PerfShared& sh,
                  int id, int cpu);

}  // namespace sluice::tools::perf
