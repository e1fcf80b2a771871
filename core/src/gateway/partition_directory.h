// PartitionDirectory: the gateway's view of the data directory's topics, shared by its
// threads: each topic's config (re-read at most once a second, and at once when its
// directory's inode changes: deleted and created again), and per partition one writer, the
// log appender plus the idempotent producers' sequences (kept in the partition's
// producers.tbl table, so that they outlive a restart), behind a mutex.
//
// Kafka appends of one partition are serialised by that mutex (the sequence check and the
// append are one step); other processes append concurrently through the log's lock-free
// reservation, which keeps each Kafka batch contiguous (LogAppender::append_batch).
//
// Every log it opens is given to a SegmentPremapper, so that a roll under a Produce request
// does not map the new segment on the connection's thread.
//
// Thread-safety: every method may be called from any thread.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "backpressure_gate.h"
#include "data_dir.h"
#include "producer_sequences.h"
#include "producer_state_file.h"
#include "shm/log_appender.h"
#include "shm/partition_log.h"
#include "shm/segment_premapper.h"
#include "sluice/status.h"
#include "sluice/types.h"
#include "topic_store.h"

namespace sluice::gateway {

struct PartitionWriter {
  std::mutex mutex;  // guards everything below
  std::shared_ptr<shm::PartitionLog> log;
  std::optional<shm::LogAppender> appender;
  ProducerSequences sequences;
  std::optional<ProducerStateFile> state_file;  // the sequences, kept across broker restarts

  // Records an idempotent producer's batch, appended at first_offset, in `sequences` and in
  // the state file.
  void appended(std::int64_t producer_id, std::int16_t epoch, std::int32_t base_sequence,
                std::int32_t record_count, std::int64_t first_offset);
};

struct TopicEntry {
  std::string name;
  TopicConfig config;
  ino_t inode = 0;
  std::int64_t checked_ns = 0;
  std::vector<std::unique_ptr<PartitionWriter>> writers;  // grows with the topic
  std::vector<std::shared_ptr<shm::PartitionLog>> logs;   // for readers, opened on demand
  // Each partition's start (Kafka's log start offset: PartitionLog::start_offset), re-read at
  // most every 100 ms: (offset, when read).
  std::vector<std::pair<std::int64_t, std::int64_t>> log_starts;
};

class PartitionDirectory {
 public:
  explicit PartitionDirectory(DataDir dir) : dir_(dir), store_(dir), gate_(dir) {}

  // The topic, or kUnknownTopic. The entry stays valid while the caller holds it.
  Result<std::shared_ptr<TopicEntry>> topic(const std::string& name);
  // The partition's writer, its appender opened (kInvalidArgument for a partition the topic
  // does not have; topic_status() errors for files that cannot be opened).
  Result<PartitionWriter*> writer(const std::shared_ptr<TopicEntry>& topic, std::int32_t partition);
  // The partition's log, for readers.
  Result<std::shared_ptr<shm::PartitionLog>> log(const std::shared_ptr<TopicEntry>& topic,
                                                 std::int32_t partition);
  // Kafka's log start offset: PartitionLog::start_offset, its segments listed at most every
  // 100 ms, a DeleteRecords cut seen at once; -1 if unknown.
  std::int64_t log_start(const std::shared_ptr<TopicEntry>& topic, std::int32_t partition);
  // Forgets a topic (after the broker deleted it), so that the next lookup reads it afresh.
  void forget(const std::string& name);
  std::vector<std::string> names() const;

  const DataDir& dir() const { return dir_; }
  const TopicStore& store() const { return store_; }

 private:
  Result<std::shared_ptr<shm::PartitionLog>> open_log(const std::shared_ptr<TopicEntry>& topic,
                                                      std::int32_t partition);

  DataDir dir_;
  TopicStore store_;
  mutable std::mutex mutex_;  // guards topics_ and the vectors of every entry
  std::map<std::string, std::shared_ptr<TopicEntry>> topics_;
  std::mutex gate_mutex_;
  BackpressureGate gate_;
  // Maps each open log's spare segment ahead of its roll (a thread of its own). Last, so
  // that it stops before the rest goes.
  shm::SegmentPremapper premapper_;
};

}  // namespace sluice::gateway
