#include "topic_store.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "shm/clock.h"
#include "shm/log_format.h"
#include "shm/mapped_file.h"
#include "shm/orphaned_files.h"
#include "shm/partition_log.h"
#include "shm/segment.h"
#include "shm/storage_room.h"

namespace sluice {

namespace fs = std::filesystem;
using nlohmann::json;

namespace {

const char* policy_name(SlowReaderPolicy p) {
  return p == SlowReaderPolicy::kBackpressure ? "backpressure" : "retain";
}

Result<SlowReaderPolicy> policy_from(const std::string& s) {
  if (s == "retain") return SlowReaderPolicy::kRetain;
  if (s == "backpressure") return SlowReaderPolicy::kBackpressure;
  return Status(ErrorCode::kInvalidArgument,
                "slow-reader policy must be retain or backpressure, not '" + s + "'");
}

// The temporary names of a topic being created or deleted, in the topics directory (after the
// topic's name; '~' keeps them apart from every topic name), and of a topic.json being written
// and a partition being created (shm::PartitionLog::create), in the topic's directory.
constexpr char kCreatingMarker[] = "~tmp-";
constexpr char kDeletedMarker[] = "~deleted-";
constexpr char kTempMarker[] = ".tmp-";

std::string unique_suffix() {
  return std::to_string(::getpid()) + "-" + std::to_string(shm::monotonic_ns());
}

void apply_ownership(const std::string& path, const FileOwnership& own, bool directory) {
  // Best effort: a process may create files in a directory it does not own.
  if (own.group != static_cast<gid_t>(-1))
    (void)::chown(path.c_str(), static_cast<uid_t>(-1), own.group);
  mode_t mode = directory
                    ? static_cast<mode_t>((own.file_mode | ((own.file_mode & 0444) >> 2)) | 02000)
                    : own.file_mode;
  (void)::chmod(path.c_str(), mode);
}

}  // namespace

Status validate_topic_name(const std::string& name) {
  if (name.empty()) return Status(ErrorCode::kInvalidArgument, "topic name is empty");
  if (name.size() > 249)
    return Status(ErrorCode::kInvalidArgument, "topic name is longer than 249 characters");
  if (name == "." || name == "..")
    return Status(ErrorCode::kInvalidArgument, "topic name cannot be '.' or '..'");
  for (char c : name) {
    bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '.' || c == '_' || c == '-';
    if (!ok)
      return Status(ErrorCode::kInvalidArgument,
                    "topic name '" + name +
                        "' has a character other than ASCII letters, digits, '.', '_' and '-'");
  }
  return Status::ok();
}

Status validate_topic_config(const TopicConfig& c) {
  if (c.partitions < 1 || c.partitions > 100000)
    return Status(ErrorCode::kInvalidArgument,
                  "partitions must be between 1 and 100000, not " + std::to_string(c.partitions));
  if (c.segment_bytes < shm::kMinSegmentCapacity || c.segment_bytes > shm::kMaxSegmentCapacity ||
      c.segment_bytes % 4096 != 0)
    return Status(ErrorCode::kInvalidArgument,
                  "segment bytes must be a multiple of 4096 between 65536 and 1073741824, not " +
                      std::to_string(c.segment_bytes));
  if (c.max_record_bytes < 1 || c.max_record_bytes > c.segment_bytes - 2 * shm::kFrameHeaderBytes)
    return Status(ErrorCode::kInvalidArgument,
                  "max record bytes must be between 1 and the segment size less 64 bytes");
  if (c.retention_bytes < -1 || c.retention_ms < -1)
    return Status(ErrorCode::kInvalidArgument, "retention limits must be -1 (none) or positive");
  return Status::ok();
}

Status topic_status(const std::string& topic, const Status& s) {
  if (s.is_ok()) return s;
  if (s.code() == ErrorCode::kPermissionDenied)
    return Status(ErrorCode::kPermissionDenied,
                  "permission denied on topic " + topic + " (" + s.message() + ")");
  return s.with_context("topic " + topic);
}

Status TopicStore::write_config(const std::string& path, const std::string& name,
                                const TopicConfig& c) const {
  json j = {
      {"version", 1},
      {"name", name},
      {"partitions", c.partitions},
      {"segment_bytes", c.segment_bytes},
      {"retention_bytes", c.retention_bytes},
      {"retention_ms", c.retention_ms},
      {"max_record_bytes", c.max_record_bytes},
      {"slow_reader_policy", policy_name(c.slow_reader_policy)},
  };
  std::string tmp = path + kTempMarker + unique_suffix();
  {
    std::ofstream out(tmp);
    out << j.dump(2) << "\n";
    if (!out) return errno_status("write " + tmp, errno);
  }
  apply_ownership(tmp, ownership_, false);
  if (::rename(tmp.c_str(), path.c_str()) != 0) {
    int err = errno;
    ::unlink(tmp.c_str());
    return errno_status("rename " + tmp, err);
  }
  return Status::ok();
}

Status TopicStore::create_partition(const std::string& topic_dir, std::int32_t p,
                                    const TopicConfig& config) const {
  shm::LogConfig lc;
  lc.segment_bytes = config.segment_bytes;
  lc.file_mode = ownership_.file_mode;
  std::string dir = topic_dir + "/" + std::to_string(p);
  auto log = shm::PartitionLog::create(dir, lc);
  if (!log) return log.status();
  apply_ownership(dir, ownership_, true);
  if (auto names = shm::list_directory(dir))
    for (const auto& n : *names) apply_ownership(dir + "/" + n, ownership_, false);
  return Status::ok();
}

Status TopicStore::check_room(const std::string& name, std::int32_t count,
                              const TopicConfig& config) const {
  // Each new partition takes its control file and first segment now, and a spare segment soon
  // after (the broker prepares one for every partition). Refused up front, with the figure for
  // all of them, rather than partition after partition until the file system (or, on tmpfs,
  // the memory: shm/storage_room.h) runs out.
  std::uint64_t segment_file =
      shm::Segment::header_bytes_for(config.segment_bytes, shm::LogConfig{}.index_interval) +
      config.segment_bytes;
  std::uint64_t bytes =
      static_cast<std::uint64_t>(count) * (shm::kControlFileBytes + 2 * segment_file);
  std::string segment = config.segment_bytes % (1 << 20) == 0
                            ? std::to_string(config.segment_bytes >> 20) + " MiB"
                            : std::to_string(config.segment_bytes >> 10) + " KiB";
  return shm::check_storage_room(dir_.root, bytes,
                                 "topic " + name + ": " + std::to_string(count) + " new partition" +
                                     (count == 1 ? "" : "s") + " (each a " + segment +
                                     " segment and a spare)");
}

Status TopicStore::create(const std::string& name, const TopicConfig& requested) const {
  TopicConfig config = requested;
  // The default record limit (1 MiB, Kafka's) shrinks to fit a smaller segment.
  if (config.max_record_bytes == TopicConfig{}.max_record_bytes &&
      config.segment_bytes < std::uint64_t{config.max_record_bytes} + 2 * shm::kFrameHeaderBytes)
    config.max_record_bytes =
        static_cast<std::uint32_t>(config.segment_bytes - 2 * shm::kFrameHeaderBytes);
  if (Status s = validate_topic_name(name); !s) return s;
  if (Status s = validate_topic_config(config); !s) return s.with_context("topic " + name);
  if (fs::exists(dir_.topic_config(name)))
    return Status(ErrorCode::kAlreadyExists, "topic " + name + " already exists");
  if (Status s = shm::make_directories(dir_.topics(), 0770); !s) return s;
  apply_ownership(dir_.topics(), ownership_, true);
  if (Status s = check_room(name, config.partitions, config); !s) return s;
  std::string tmp = dir_.topics() + "/" + name + kCreatingMarker + unique_suffix();
  std::error_code ec;
  fs::create_directory(tmp, ec);
  if (ec) return Status(ErrorCode::kIo, "create " + tmp + ": " + ec.message());
  apply_ownership(tmp, ownership_, true);
  auto cleanup = [&] { fs::remove_all(tmp, ec); };
  for (std::int32_t p = 0; p < config.partitions; ++p) {
    if (Status s = create_partition(tmp, p, config); !s) {
      cleanup();
      return topic_status(name, s);
    }
  }
  if (Status s = write_config(tmp + "/topic.json", name, config); !s) {
    cleanup();
    return topic_status(name, s);
  }
  if (::rename(tmp.c_str(), dir_.topic(name).c_str()) != 0) {
    int err = errno;
    cleanup();
    if (err == EEXIST || err == ENOTEMPTY)
      return Status(ErrorCode::kAlreadyExists, "topic " + name + " already exists");
    return errno_status("create topic " + name, err);
  }
  return Status::ok();
}

Result<TopicConfig> TopicStore::read(const std::string& name) const {
  if (Status s = validate_topic_name(name); !s) return s;
  std::string path = dir_.topic_config(name);
  std::ifstream in(path);
  if (!in) {
    int err = errno;
    if (err == ENOENT || !fs::exists(dir_.root))
      return Status(ErrorCode::kUnknownTopic, "unknown topic " + name + " in " + dir_.root);
    return topic_status(name, errno_status("open " + path, err));
  }
  std::stringstream text;
  text << in.rdbuf();
  json j = json::parse(text.str(), nullptr, false);
  if (j.is_discarded() || !j.is_object())
    return Status(ErrorCode::kCorrupt, path + ": not valid JSON");
  try {
    if (j.value("version", 0) != 1)
      return Status(ErrorCode::kBadFormat, path + ": unknown topic config version");
    TopicConfig c;
    c.partitions = j.at("partitions").get<std::int32_t>();
    c.segment_bytes = j.at("segment_bytes").get<std::uint64_t>();
    c.retention_bytes = j.at("retention_bytes").get<std::int64_t>();
    c.retention_ms = j.at("retention_ms").get<std::int64_t>();
    c.max_record_bytes = j.at("max_record_bytes").get<std::uint32_t>();
    auto policy = policy_from(j.at("slow_reader_policy").get<std::string>());
    if (!policy) return policy.status().with_context(path);
    c.slow_reader_policy = *policy;
    return c;
  } catch (const json::exception& e) {
    return Status(ErrorCode::kCorrupt, path + ": " + e.what());
  }
}

Result<std::vector<std::string>> TopicStore::list() const {
  std::vector<std::string> names;
  if (!fs::exists(dir_.topics())) return names;
  auto entries = shm::list_directory(dir_.topics());
  if (!entries) return entries.status();
  for (const auto& n : *entries)
    if (validate_topic_name(n) && fs::exists(dir_.topic_config(n))) names.push_back(n);
  std::sort(names.begin(), names.end());
  return names;
}

Status TopicStore::alter(const std::string& name, const TopicConfig& config) const {
  auto current = read(name);
  if (!current) return current.status();
  if (Status s = validate_topic_config(config); !s) return s.with_context("topic " + name);
  if (config.partitions < current->partitions)
    return Status(ErrorCode::kInvalidArgument,
                  "topic " + name + " has " + std::to_string(current->partitions) +
                      " partitions: partitions can grow but never shrink");
  if (config.partitions > current->partitions)
    if (Status s = check_room(name, config.partitions - current->partitions, config); !s) return s;
  for (std::int32_t p = current->partitions; p < config.partitions; ++p) {
    if (Status s = create_partition(dir_.topic(name), p, config);
        !s && s.code() != ErrorCode::kAlreadyExists)
      return topic_status(name, s);
  }
  if (config.segment_bytes != current->segment_bytes) {
    // New segments of existing partitions take the new size.
    for (std::int32_t p = 0; p < current->partitions; ++p) {
      auto ctl = shm::MappedFile::open(dir_.partition(name, p) + "/partition.ctl",
                                       shm::Access::kReadWrite);
      if (!ctl) return topic_status(name, ctl.status());
      auto* c = reinterpret_cast<shm::PartitionControl*>(ctl->data());
      std::atomic_ref<std::uint64_t>(c->segment_capacity)
          .store(config.segment_bytes, std::memory_order_relaxed);
    }
  }
  return write_config(dir_.topic_config(name), name, config);
}

Status TopicStore::remove(const std::string& name) const {
  if (Status s = validate_topic_name(name); !s) return s;
  if (!fs::exists(dir_.topic_config(name)))
    return Status(ErrorCode::kUnknownTopic, "unknown topic " + name + " in " + dir_.root);
  std::string gone = dir_.topics() + "/" + name + kDeletedMarker + unique_suffix();
  if (::rename(dir_.topic(name).c_str(), gone.c_str()) != 0)
    return topic_status(name, errno_status("delete topic " + name, errno));
  std::error_code ec;
  fs::remove_all(gone, ec);  // mapped files live on until their last user unmaps them
  if (ec) return Status(ErrorCode::kIo, "delete " + gone + ": " + ec.message());
  return Status::ok();
}

Result<std::vector<shm::Orphan>> TopicStore::find_orphans() const {
  std::vector<shm::Orphan> found;
  if (!fs::exists(dir_.topics())) return found;
  auto top = shm::find_orphans(dir_.topics(), [](std::string_view n) -> std::int64_t {
    if (std::int64_t pid = shm::pid_after(n, kCreatingMarker)) return pid;
    return shm::pid_after(n, kDeletedMarker);
  });
  if (!top) return top.status();
  found = std::move(top).value();
  auto names = list();
  if (!names) return names.status();
  for (const std::string& name : *names) {
    // topic.json.tmp-<pid>-* (write_config) and <partition>.tmp-<pid>-* (a partition added by
    // alter, built by shm::PartitionLog::create).
    auto in_topic = shm::find_orphans(
        dir_.topic(name), [](std::string_view n) { return shm::pid_after(n, kTempMarker); });
    if (!in_topic) {
      if (in_topic.status().code() == ErrorCode::kNotFound) continue;  // deleted meanwhile
      return in_topic.status();
    }
    for (shm::Orphan& o : *in_topic) found.push_back({name + "/" + o.name, o.pid});
    // Partitions beyond topic.json's count: an alter that died after creating some of the new
    // partitions and before writing the new count. Nobody was told of them (clients find
    // partitions in topic.json), and each holds a segment; the next alter makes them anew.
    auto config = read(name);
    if (!config) continue;
    auto entries = shm::list_directory(dir_.topic(name));
    if (!entries) continue;
    for (const std::string& n : *entries) {
      if (n.empty() || n.size() > 9 || n.find_first_not_of("0123456789") != std::string::npos)
        continue;
      if (std::stoi(n) >= config->partitions) found.push_back({name + "/" + n, 0});
    }
  }
  return found;
}

Result<std::vector<std::string>> TopicStore::remove_orphans() const {
  auto found = find_orphans();
  if (!found) return found.status();
  return shm::remove_orphans(dir_.topics(), *found);
}

Result<TopicDescription> TopicStore::describe(const std::string& name) const {
  auto config = read(name);
  if (!config) return config.status();
  TopicDescription d;
  d.name = name;
  d.config = *config;
  shm::LogOptions ro;
  ro.access = shm::Access::kReadOnly;
  ro.populate = false;
  for (std::int32_t p = 0; p < config->partitions; ++p) {
    TopicDescription::Partition part;
    part.partition = p;
    auto log = shm::PartitionLog::open(dir_.partition(name, p), ro);
    if (!log) return topic_status(name, log.status());
    auto bases = (*log)->segment_bases();
    if (!bases) return topic_status(name, bases.status());
    part.segments = static_cast<std::uint32_t>(bases->size());
    part.start_offset = (*log)->start_offset(*bases);
    for (std::int64_t b : *bases) {
      struct stat st {};
      std::string path = dir_.partition(name, p) + "/" + shm::segment_file_name(b);
      if (::stat(path.c_str(), &st) == 0) part.bytes += static_cast<std::uint64_t>(st.st_size);
    }
    part.end_offset = (*log)->end_offset();
    d.partitions.push_back(part);
  }
  return d;
}

}  // namespace sluice
