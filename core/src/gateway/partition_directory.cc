#include "partition_directory.h"

#include <sys/stat.h>

#include <spdlog/spdlog.h>

#include <algorithm>

#include "shm/clock.h"

namespace sluice::gateway {

namespace {
constexpr std::int64_t kTopicRecheckNs = 1'000'000'000;
}

Result<std::shared_ptr<TopicEntry>> PartitionDirectory::topic(const std::string& name) {
  std::int64_t now = shm::monotonic_ns();
  {
    std::lock_guard<std::mutex> lock(mutex_);
    auto it = topics_.find(name);
    if (it != topics_.end() && now - it->second->checked_ns < kTopicRecheckNs) return it->second;
  }
  if (Status s = validate_topic_name(name); !s) return s;
  auto config = store_.read(name);
  struct stat st {};
  bool present = config && ::stat(dir_.topic(name).c_str(), &st) == 0;
  std::lock_guard<std::mutex> lock(mutex_);
  auto it = topics_.find(name);
  if (!present) {
    if (it != topics_.end()) topics_.erase(it);
    if (!config) return config.status();
    return Status(sluice::ErrorCode::kUnknownTopic, "unknown topic " + name);
  }
  if (it == topics_.end() || it->second->inode != st.st_ino) {
    // New, or deleted and created again: fresh writers (the old ones map deleted files).
    auto entry = std::make_shared<TopicEntry>();
    entry->name = name;
    entry->inode = st.st_ino;
    it = topics_.insert_or_assign(name, std::move(entry)).first;
  }
  TopicEntry& e = *it->second;
  e.config = *config;
  e.checked_ns = now;
  while (static_cast<std::int32_t>(e.writers.size()) < e.config.partitions) {
    e.writers.push_back(std::make_unique<PartitionWriter>());
    e.logs.emplace_back();
    e.log_starts.emplace_back(-1, 0);
  }
  return it->second;
}

Result<std::shared_ptr<shm::PartitionLog>> PartitionDirectory::open_log(
    const std::shared_ptr<TopicEntry>& topic, std::int32_t partition) {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    if (partition < 0 || static_cast<std::size_t>(partition) >= topic->logs.size())
      return Status(sluice::ErrorCode::kInvalidArgument,
                    "topic " + topic->name + " has no partition " + std::to_string(partition));
    if (auto& l = topic->logs[static_cast<std::size_t>(partition)]) return l;
  }
  shm::LogOptions o;
  std::weak_ptr<TopicEntry> weak = topic;
  o.roll_gate = [this, weak, partition](shm::PartitionLog& log) {
    auto t = weak.lock();
    if (!t) return true;
    TopicConfig config;
    {
      std::lock_guard<std::mutex> lock(mutex_);
      config = t->config;
    }
    std::lock_guard<std::mutex> lock(gate_mutex_);
    return gate_.may_grow(config, t->name, partition, log);
  };
  auto log = shm::PartitionLog::open(dir_.partition(topic->name, partition), o);
  if (!log) return topic_status(topic->name, log.status());
  std::lock_guard<std::mutex> lock(mutex_);
  auto& slot = topic->logs[static_cast<std::size_t>(partition)];
  if (!slot) {
    slot = *log;
    premapper_.add(slot);  // rolls (4 MiB segments: many a second) find the next one mapped
  }
  return slot;
}

Result<PartitionWriter*> PartitionDirectory::writer(const std::shared_ptr<TopicEntry>& topic,
                                                    std::int32_t partition) {
  auto log = open_log(topic, partition);
  if (!log) return log.status();
  PartitionWriter* w;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    w = topic->writers[static_cast<std::size_t>(partition)].get();
  }
  std::lock_guard<std::mutex> lock(w->mutex);
  if (!w->appender) {
    auto a = shm::LogAppender::open(*log);
    if (!a) return topic_status(topic->name, a.status());
    w->log = *log;
    w->appender.emplace(std::move(a).value());
    // The idempotent producers' state from before a restart. Without the file the gateway
    // still works; only a batch resent across the next restart could be written twice.
    struct stat ctl {};
    const std::string dir = (*log)->dir();
    mode_t mode =
        ::stat((dir + "/partition.ctl").c_str(), &ctl) == 0 ? (ctl.st_mode & 07777) : 0660;
    auto state = ProducerStateFile::open(dir, mode);
    Result<std::size_t> loaded = state ? state->load_into(w->sequences) : state.status();
    if (loaded) {
      w->state_file.emplace(std::move(state).value());
    } else {
      spdlog::warn(
          "kafka gateway: idempotent producers' state of {} will not outlive a restart: {}", dir,
          loaded.status().message());
    }
  }
  return w;
}

void PartitionWriter::appended(std::int64_t producer_id, std::int16_t epoch,
                               std::int32_t base_sequence, std::int32_t record_count,
                               std::int64_t first_offset) {
  const ProducerState& s =
      sequences.appended(producer_id, epoch, base_sequence, record_count, first_offset);
  if (!state_file) return;
  if (Status saved = state_file->save(producer_id, s, shm::wall_clock_ns() / 1'000'000); !saved)
    spdlog::warn("kafka gateway: producer {}'s state not kept for a restart: {}", producer_id,
                 saved.message());
}

Result<std::shared_ptr<shm::PartitionLog>> PartitionDirectory::log(
    const std::shared_ptr<TopicEntry>& topic, std::int32_t partition) {
  return open_log(topic, partition);
}

std::int64_t PartitionDirectory::log_start(const std::shared_ptr<TopicEntry>& topic,
                                           std::int32_t partition) {
  constexpr std::int64_t kRecheckNs = 100'000'000;
  std::int64_t now = shm::monotonic_ns();
  {
    std::lock_guard<std::mutex> lock(mutex_);
    if (partition < 0 || static_cast<std::size_t>(partition) >= topic->log_starts.size()) return -1;
    auto [start, when] = topic->log_starts[static_cast<std::size_t>(partition)];
    if (start >= 0 && now - when < kRecheckNs) {
      // Retention's drops show within kRecheckNs; a DeleteRecords cut at once, whoever made
      // it (a Kafka client here, `sluice topic delete-records`, a local Admin).
      const auto& log = topic->logs[static_cast<std::size_t>(partition)];
      return log ? std::max(start, log->deleted_before()) : start;
    }
  }
  auto l = open_log(topic, partition);
  if (!l) return -1;
  auto bases = (*l)->segment_bases();
  if (!bases || bases->empty()) return -1;
  std::int64_t start = (*l)->start_offset(*bases);
  std::lock_guard<std::mutex> lock(mutex_);
  topic->log_starts[static_cast<std::size_t>(partition)] = {start, now};
  return start;
}

void PartitionDirectory::forget(const std::string& name) {
  std::lock_guard<std::mutex> lock(mutex_);
  topics_.erase(name);
}

std::vector<std::string> PartitionDirectory::names() const {
  auto n = store_.list();
  return n ? *n : std::vector<std::string>{};
}

}  // namespace sluice::gateway
