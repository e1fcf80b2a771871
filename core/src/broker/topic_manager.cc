#include "topic_manager.h"

#include <sys/stat.h>

#include <spdlog/spdlog.h>

#include "shm/log_verifier.h"
#include "shm/segment.h"

namespace sluice::broker {

namespace {

// How many records the abandoned-claim watcher of a partition steps over per watch tick
// before it jumps to the end: at the 10 ms tick of a busy broker, partitions appending up to
// about 1.6 M records/s are followed frame by frame, for at most about 0.3 ms of work a
// tick and partition (some 20 ns a record with the prefetch).
constexpr std::uint32_t kWatcherStepRecords = 1u << 14;
// How far ahead of each frame the watcher asks for the line it will read later
// (LogReader::poll_prefetching). Its frames are out of every cache near it: without this
// each frame header was a miss paid in turn (72% of the watcher's samples on that one
// load). Measured in sluiced's profile while librdkafka produced 100 B records as fast as
// it could (bench/kafka-compare's throughput shape): the watcher's share of the server's
// CPU 9.6-10% without, 8.4% at 512 B, 6.9-7.4% at 2 KiB, 6.4% at 8 KiB, 7.5% at 16 KiB.
constexpr std::uint32_t kWatcherAhead = 4096;

shm::LogOptions broker_log_options(std::int64_t abandon_timeout_ms) {
  shm::LogOptions o;
  o.access = shm::Access::kReadWrite;
  // The broker touches headers, and data only to zero a file it recycles: minor faults then,
  // on pages the file already has, not worth pre-faulting every segment it opens for.
  o.populate = false;
  // Retention makes a dropped segment the next spare when nobody pins it, zeroed here: the
  // roll that takes it then creates, zeroes and maps no file, in the broker or a producer.
  o.recycle_segments = true;
  o.abandon_timeout_ns = abandon_timeout_ms * 1'000'000;
  return o;
}

}  // namespace

Status TopicManager::open_topic(const std::string& name,
                                const std::function<void(const std::string&)>& warn) {
  auto config = store_.read(name);
  if (!config) return config.status();
  TopicState state;
  state.config = *config;
  for (std::int32_t p = 0; p < config->partitions; ++p) {
    std::string dir = store_.dir().partition(name, p);
    // Opening read-write runs torn-tail recovery if the machine restarted (boot id).
    auto log = shm::PartitionLog::open(dir, broker_log_options(abandon_timeout_ms_));
    if (!log) return topic_status(name, log.status());
    if (warn) {
      auto report = shm::verify_partition(dir);
      if (!report) {
        warn(report.status().message());
      } else {
        for (const auto& d : report->damage) warn("damage: " + d.to_string());
      }
    }
    PartitionState ps;
    ps.log = *log;
    auto reader = shm::LogReader::open(ps.log);
    if (reader) {
      (void)reader->seek_to_end();
      ps.watcher.emplace(std::move(reader).value());
    }
    state.partitions.push_back(std::move(ps));
  }
  topics_[name] = std::move(state);
  return Status::ok();
}

Status TopicManager::load(const std::function<void(const std::string&)>& warn) {
  auto names = store_.list();
  if (!names) return names.status();
  for (const auto& n : *names) {
    if (Status s = open_topic(n, warn); !s) {
      if (warn) warn("topic " + n + " not loaded: " + s.message());
    }
  }
  return Status::ok();
}

std::size_t TopicManager::remove_orphans(const std::function<void(const std::string&)>& warn,
                                         const std::function<void(const std::string&)>& info) {
  std::size_t count = 0;
  auto report = [&](const std::string& where, const Result<std::vector<std::string>>& removed) {
    if (!removed) {
      if (warn) warn("looking for half-made files: " + removed.status().message());
      return;
    }
    for (const std::string& n : *removed) {
      ++count;
      if (info) info("removed " + where + n + ", left half-made by a change that did not finish");
    }
  };
  report(store_.dir().topics() + "/", store_.remove_orphans());
  for (auto& [name, topic] : topics_)
    for (std::size_t p = 0; p < topic.partitions.size(); ++p)
      report(store_.dir().partition(name, static_cast<std::int32_t>(p)) + "/",
             topic.partitions[p].log->remove_orphaned_files());
  return count;
}

Status TopicManager::create(const std::string& name, const TopicConfig& config) {
  if (Status s = store_.create(name, config); !s) return s;
  return open_topic(name, {});
}

Status TopicManager::alter(const std::string& name, const TopicConfig& config) {
  if (Status s = store_.alter(name, config); !s) return s;
  return open_topic(name, {});
}

Status TopicManager::remove(const std::string& name) {
  // Close every partition first: producers that still have it mapped then get "deleted"
  // on their next append instead of writing records nobody will read.
  if (auto it = topics_.find(name); it != topics_.end())
    for (std::size_t p = 0; p < it->second.partitions.size(); ++p)
      if (Status s = it->second.partitions[p].log->close(); !s)
        spdlog::warn("topic {} partition {}: could not close it before deleting: {}", name, p,
                     s.message());
  if (Status s = store_.remove(name); !s) return s;
  topics_.erase(name);
  return Status::ok();
}

Result<TopicDescription> TopicManager::describe(const std::string& name) {
  return store_.describe(name);
}

std::vector<std::string> TopicManager::names() const {
  std::vector<std::string> out;
  for (const auto& [n, t] : topics_) out.push_back(n);
  return out;
}

const TopicState* TopicManager::find(const std::string& name) const {
  auto it = topics_.find(name);
  return it == topics_.end() ? nullptr : &it->second;
}

void TopicManager::housekeeping(std::int64_t now_ms, const SlowestCommitted& slowest,
                                const std::function<void(const std::string&)>& warn,
                                const std::function<void(const std::string&)>& info) {
  for (auto& [name, topic] : topics_)
    for (std::size_t p = 0; p < topic.partitions.size(); ++p)
      prepare_spare(name, topic, p, now_ms, slowest, warn, info);
}

std::size_t TopicManager::replace_taken_spares(
    std::int64_t now_ms, const SlowestCommitted& slowest,
    const std::function<void(const std::string&)>& warn,
    const std::function<void(const std::string&)>& info) {
  std::size_t rolling_fast = 0;
  for (auto& [name, topic] : topics_) {
    for (std::size_t p = 0; p < topic.partitions.size(); ++p) {
      PartitionState& ps = topic.partitions[p];
      // Relaxed: only compared with what this thread saw last; a roll missed now is seen at
      // the next tick.
      std::int64_t active = ps.log->control()->active.active_base.load(std::memory_order_relaxed);
      if (active == ps.spare_checked_base) continue;
      if (ps.spare_checked_base >= 0) {  // a roll, not this partition's first look
        if (now_ms - ps.rolled_at_ms < kFastRollMs) ++rolling_fast;
        ps.rolled_at_ms = now_ms;
      }
      ps.spare_checked_base = active;
      prepare_spare(name, topic, p, now_ms, slowest, warn, info);
    }
  }
  return rolling_fast;
}

void TopicManager::prepare_spare(const std::string& name, TopicState& topic, std::size_t p,
                                 std::int64_t now_ms, const SlowestCommitted& slowest,
                                 const std::function<void(const std::string&)>& warn,
                                 const std::function<void(const std::string&)>& info) {
  shm::PartitionLog& log = *topic.partitions[p].log;
  if (log.has_spare()) return;
  apply_retention(name, topic, p, now_ms, slowest, info);
  PartitionState& ps = topic.partitions[p];
  auto where = [&] { return "topic " + name + " partition " + std::to_string(p); };
  if (Status s = log.prepare_next(); !s) {
    if (ps.spare_warned_ms < 0 || now_ms - ps.spare_warned_ms >= kSpareWarnEveryMs) {
      if (warn) warn(where() + ": " + s.message() + " (retried every tick, logged once a minute)");
      ps.spare_warned_ms = now_ms;
    }
  } else if (ps.spare_warned_ms >= 0) {
    ps.spare_warned_ms = -1;
    if (info) info(where() + ": spare segment prepared again");
  }
}

std::int64_t TopicManager::watch() {
  std::int64_t stepped = 0;
  for (auto& [name, topic] : topics_) {
    for (PartitionState& ps : topic.partitions) {
      if (!ps.watcher) continue;
      // Follow the committed end frame by frame: a claim left uncommitted behind later
      // records (its producer died) stops the watcher, which pads it after the abandon
      // timeout (readers of a read-only mapping cannot). That reads one frame header per
      // record appended, a tick behind: only up to the end seen at the previous tick, so
      // that it does not read lines its writers are still writing next to, and with the
      // line 4 KiB ahead asked for (the frames are out of every cache near this thread).
      // A dead claim waits one tick more on top of the abandon timeout. A watcher more than
      // kWatcherStepRecords behind that end jumps to the log's end instead (seek_to_end: a
      // binary search of the sparse index and a short walk), and leaves the claims it jumps
      // over to the readers with write access that meet them.
      shm::LogReader& w = *ps.watcher;
      std::int64_t until = ps.watched_until;
      ps.watched_until = ps.log->end_offset();
      if (w.ready()) {
        std::int64_t behind = until - w.position();
        if (behind <= 0) continue;  // nothing came before the last tick's end
        stepped += behind;
        if (behind > static_cast<std::int64_t>(kWatcherStepRecords)) {
          (void)w.seek_to_end();
        } else {
          shm::PollResult r = w.poll_prefetching([](const shm::RecordView&) {},
                                                 static_cast<std::uint32_t>(behind), kWatcherAhead);
          if (r.outcome != shm::ReadOutcome::kOk) (void)w.seek_to_end();
        }
      } else {
        w.check_abandoned();
        if (!w.segment_current()) (void)w.seek_to_end();
      }
    }
  }
  return stepped;
}

void TopicManager::apply_retention(std::int64_t now_ms, const SlowestCommitted& slowest,
                                   const std::function<void(const std::string&)>& info) {
  for (auto& [name, topic] : topics_)
    for (std::size_t p = 0; p < topic.partitions.size(); ++p)
      apply_retention(name, topic, p, now_ms, slowest, info);
}

void TopicManager::apply_retention(const std::string& name, const TopicState& topic, std::size_t p,
                                   std::int64_t now_ms, const SlowestCommitted& slowest,
                                   const std::function<void(const std::string&)>& info) {
  const TopicConfig& c = topic.config;
  shm::PartitionLog& log = *topic.partitions[p].log;
  // Relaxed: only compared with offsets. Nonzero once records were deleted (DeleteRecords).
  if (c.retention_bytes < 0 && c.retention_ms < 0 &&
      log.control()->log_start.offset.load(std::memory_order_relaxed) == 0)
    return;
  auto bases = log.segment_bases();
  if (!bases || bases->size() < 2) return;
  const std::int64_t start = log.start_offset(*bases);
  std::int64_t active = log.control()->active.active_base.load(std::memory_order_acquire);
  std::uint64_t total = 0;
  std::vector<std::uint64_t> sizes;
  for (std::int64_t b : *bases) {
    struct stat st {};
    std::string path = log.dir() + "/" + shm::segment_file_name(b);
    std::uint64_t size =
        ::stat(path.c_str(), &st) == 0 ? static_cast<std::uint64_t>(st.st_size) : 0;
    sizes.push_back(size);
    total += size;
  }
  std::optional<std::int64_t> protect;
  if (c.slow_reader_policy == SlowReaderPolicy::kBackpressure)
    protect = slowest(TopicPartition{name, static_cast<std::int32_t>(p)});
  for (std::size_t i = 0; i + 1 < bases->size(); ++i) {
    std::int64_t base = (*bases)[i];
    if (base >= active) break;
    std::int64_t next_base = (*bases)[i + 1];
    bool too_big = c.retention_bytes >= 0 && total > static_cast<std::uint64_t>(c.retention_bytes);
    bool too_old = false;
    if (c.retention_ms >= 0) {
      // A sealed segment's END frame carries the roll time: newer than all its records.
      auto seg = log.segment(base);
      if (seg) {
        std::uint64_t end =
            (*seg)->header()->seal_line.end_position.load(std::memory_order_acquire);
        std::int64_t sealed = (*seg)->header()->seal_line.next_base.load(std::memory_order_acquire);
        if (sealed >= 0) {
          std::int64_t ts = (*seg)->frame_at(end)->timestamp_ns;
          too_old = ts / 1'000'000 < now_ms - c.retention_ms;
        }
      }
    }
    // Every record of it deleted (DeleteRecords): dropped whatever groups still need.
    bool deleted = next_base <= start;
    if (!too_big && !too_old && !deleted) break;
    // Backpressure: a segment is deleted only once every group has consumed past it.
    if (!deleted && protect && *protect < next_base) break;
    if (log.drop_segment(base)) {
      total -= sizes[i];
      if (info)
        info("retention: dropped " + log.dir() + "/" + shm::segment_file_name(base) +
             (deleted   ? " (records deleted)"
              : too_big ? " (retention.bytes)"
                        : " (retention.ms)"));
    }
  }
}

std::int64_t TopicManager::total_end_offsets() {
  std::int64_t sum = 0;
  for (auto& [name, topic] : topics_)
    for (auto& ps : topic.partitions) sum += ps.log->end_offset();
  return sum;
}

}  // namespace sluice::broker
