// A helper thread that maps each registered partition's spare segment before the roll that
// takes it (PartitionLog::premap_spare), so that neither the producer that rolls nor a reader
// that follows it stalls on mmap. Chronicle Queue's pre-toucher and Aeron's conductor do the
// same kind of work off the hot path.
//
// Why: a roll otherwise maps the new segment on the hot path. Pre-faulted (LogOptions::populate,
// so that the appends after it do not fault page by page), that mmap takes about 0.7 ms for a
// 4 MiB segment, 3.3 ms for 16 MiB and 21 ms for 64 MiB on the reference VM (log_bench
// Ref/MapSegment); every record behind it waits (docs/benchmarks.md, "Segment rolls").
//
// Cost: every `period` one atomic load of each log's active segment base; only after a roll
// (the base moved) a stat(2) of the spare, and once the spare is there, its mmap. A log
// whose roll recycled a segment in place has no spare until its next prepare_next(): one stat
// a period after each roll. While no log
// rolls, the period stretches to kIdlePeriod; a roll is then noticed that much later, so a
// segment filled again within that time is mapped by its roll, as without a premapper.
//
// Thread-safety: add() from any thread. The thread starts with the first add() and is joined
// by the destructor. It holds the logs weakly: a log dropped by its owner is forgotten. The
// thread does not survive fork(): in a child, a premapper its parent started maps nothing more,
// and its destructor leaks its state rather than touch locks the parent's thread may have held.
// For the same reason a child should not use a log its parent gave to a premapper: open its
// own.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

#include "shm/partition_log.h"

namespace sluice::shm {

class SegmentPremapper {
 public:
  static constexpr std::chrono::milliseconds kDefaultPeriod{10};
  // The longest wait while nothing rolls: the period doubles with every pass that finds every
  // spare mapped and no roll, up to this (an idle consumer's thread then wakes about 6 times a
  // second, not 100: in this VM each wake-up cost about 60 µs of CPU).
  static constexpr std::chrono::milliseconds kIdlePeriod{160};

  explicit SegmentPremapper(std::chrono::milliseconds period = kDefaultPeriod);
  ~SegmentPremapper();
  SegmentPremapper(const SegmentPremapper&) = delete;
  SegmentPremapper& operator=(const SegmentPremapper&) = delete;

  // Keeps `log`'s spare mapped from now on (once is enough; adding a log twice is harmless).
  void add(const std::shared_ptr<PartitionLog>& log);

  // Spares mapped so far, and premap_spare() calls that failed (the next period retries).
  std::uint64_t mapped() const;
  std::uint64_t failures() const;

 private:
  struct Watched {
    std::weak_ptr<PartitionLog> log;
    std::int64_t mapped_for_base = -1;  // the active base when the spare was last found mapped
  };
  // Everything the thread shares, on the heap: a forked child leaks it rather than destroy a
  // mutex or condition variable that the parent's thread held or waited on at the fork.
  struct State {
    std::chrono::milliseconds period;
    mutable std::mutex mutex;  // guards everything below
    std::condition_variable wake;
    bool stop = false;
    bool added = false;  // a log was added since the last pass
    std::vector<Watched> logs;
    std::uint64_t mapped = 0;
    std::uint64_t failures = 0;
    std::thread thread;
    pid_t owner_pid = 0;  // the process that started the thread
  };
  static void run(State& state);

  std::unique_ptr<State> state_;
};

}  // namespace sluice::shm
