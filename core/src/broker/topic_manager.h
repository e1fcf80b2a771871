// TopicManager: the broker's agent for topics and their partition logs. It opens every
// partition at start (recovering torn tails, reporting damage), keeps a spare segment ready
// for each, pads claims abandoned by dead producers, and applies retention.
//
// Thread-safety: called from the broker's io_context only (one thread at a time).
#pragma once

#include <cstdint>
#include <functional>
#include <limits>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "shm/log_reader.h"
#include "shm/partition_log.h"
#include "sluice/status.h"
#include "sluice/types.h"
#include "topic_store.h"

namespace sluice::broker {

struct PartitionState {
  std::shared_ptr<shm::PartitionLog> log;
  std::optional<shm::LogReader> watcher;  // follows the end, to find abandoned claims
  std::int64_t watched_until = 0;         // the end at the last watch: the watcher's next goal
  // The active segment's base offset when replace_taken_spares last made or found its spare,
  // and when (wall clock, ms) it saw that base move.
  std::int64_t spare_checked_base = -1;
  std::int64_t rolled_at_ms = std::numeric_limits<std::int64_t>::min() / 2;
  // While preparing its spare fails (a full disk, or tmpfs at the memory reserve): when the
  // failure was last logged (wall clock, ms); -1 while it succeeds.
  std::int64_t spare_warned_ms = -1;
};

// A failing spare is retried every housekeeping tick, and logged once in this many ms.
inline constexpr std::int64_t kSpareWarnEveryMs = 60'000;

// A partition that rolls again within this many ms of its last roll is "rolling fast": the
// broker then runs its watch tick every 2 ms so that the spare each roll takes is replaced
// before the next roll needs it (docs/benchmarks.md, "Spares for fast producers").
inline constexpr std::int64_t kFastRollMs = 30;

struct TopicState {
  TopicConfig config;
  std::vector<PartitionState> partitions;
};

// The lowest committed offset any group holds for a partition (nullopt: no group committed),
// for the backpressure policy.
using SlowestCommitted = std::function<std::optional<std::int64_t>(const TopicPartition&)>;

class TopicManager {
 public:
  TopicManager(TopicStore store, std::int64_t abandon_timeout_ms)
      : store_(std::move(store)), abandon_timeout_ms_(abandon_timeout_ms) {}

  // Opens every topic of the data directory. Damage found is reported through `warn`.
  Status load(const std::function<void(const std::string&)>& warn);

  Status create(const std::string& name, const TopicConfig& config);
  Status alter(const std::string& name, const TopicConfig& config);
  Status remove(const std::string& name);
  Result<TopicDescription> describe(const std::string& name);
  std::vector<std::string> names() const;
  const TopicState* find(const std::string& name) const;

  // Spare segments (every housekeeping tick). A partition whose spare a roll took has its
  // retention applied first, so that a segment retention drops becomes the next spare
  // (recycled: no file created, zeroed or mapped) instead of being deleted beside a new one.
  void housekeeping(std::int64_t now_ms, const SlowestCommitted& slowest,
                    const std::function<void(const std::string&)>& warn,
                    const std::function<void(const std::string&)>& info);
  // Prepares a new spare, as housekeeping does, for every partition that rolled since the last
  // call (every watch tick): a producer that rolls more often than housekeeping runs would
  // otherwise find no spare, and create, zero and map its next segment on its hot path. It
  // reads each partition's active segment from shared memory, and looks for the spare file
  // only where that moved. Returns how many of the partitions that rolled are rolling fast
  // (kFastRollMs).
  std::size_t replace_taken_spares(std::int64_t now_ms, const SlowestCommitted& slowest,
                                   const std::function<void(const std::string&)>& warn,
                                   const std::function<void(const std::string&)>& info);
  // Follows every partition's committed end to find and pad claims abandoned by dead
  // producers (every watch tick). Returns the records stepped over: 0 when nothing was
  // appended since the last call.
  std::int64_t watch();
  // Drops old segments per retention.bytes / retention.ms (the first one dropped becomes the
  // spare if there is none and nobody pins it; the others are deleted); under the backpressure
  // policy never one a group has not consumed.
  void apply_retention(std::int64_t now_ms, const SlowestCommitted& slowest,
                       const std::function<void(const std::string&)>& info);

  // Removes what changes that did not finish left behind, most of it by processes that died
  // (shm/orphaned_files.h): the topic store's temporary topics, partitions and topic.json
  // files and its partitions beyond a topic's count (TopicStore::remove_orphans), and every
  // loaded partition's private files (an interrupted roll, a spare being made, a recycled file
  // being cleared). Each removal is reported through `info`; a directory that cannot be swept,
  // through `warn`. Returns how many entries it removed.
  std::size_t remove_orphans(const std::function<void(const std::string&)>& warn,
                             const std::function<void(const std::string&)>& info);

  // Sum of end offsets (for a records/s figure) and of segment bytes.
  std::int64_t total_end_offsets();
  const TopicStore& store() const { return store_; }

 private:
  Status open_topic(const std::string& name, const std::function<void(const std::string&)>& warn);
  void apply_retention(const std::string& name, const TopicState& topic, std::size_t partition,
                       std::int64_t now_ms, const SlowestCommitted& slowest,
                       const std::function<void(const std::string&)>& info);
  // Retention, then a new spare, for a partition without one (housekeeping's work on one).
  void prepare_spare(const std::string& name, TopicState& topic, std::size_t partition,
                     std::int64_t now_ms, const SlowestCommitted& slowest,
                     const std::function<void(const std::string&)>& warn,
                     const std::function<void(const std::string&)>& info);

  TopicStore store_;
  std::int64_t abandon_timeout_ms_;
  std::map<std::string, TopicState> topics_;
};

}  // namespace sluice::broker
