#include "shm/partition_log.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <thread>

#include "shm/clock.h"
#include "shm/partition_log_files.h"

namespace sluice::shm {

namespace partition_files {

std::string unique_suffix() {
  static std::atomic<std::uint32_t> counter{0};
  return std::to_string(::getpid()) + "-" +
         std::to_string(counter.fetch_add(1, std::memory_order_relaxed)) + "-" +
         std::to_string(monotonic_ns());
}

}  // namespace partition_files

namespace {

using partition_files::kControlName;
using partition_files::ScopedFd;
using partition_files::unique_suffix;

Status validate_config(const LogConfig& c) {
  if (c.segment_bytes < kMinSegmentCapacity || c.segment_bytes > kMaxSegmentCapacity ||
      c.segment_bytes % 4096 != 0)
    return Status(ErrorCode::kInvalidArgument, "segment bytes must be a multiple of 4096 between " +
                                                   std::to_string(kMinSegmentCapacity) + " and " +
                                                   std::to_string(kMaxSegmentCapacity) + ", not " +
                                                   std::to_string(c.segment_bytes));
  if (c.index_interval < 256 || (c.index_interval & (c.index_interval - 1)) != 0 ||
      c.index_interval > c.segment_bytes)
    return Status(ErrorCode::kInvalidArgument,
                  "index interval must be a power of two of at least 256 bytes");
  return Status::ok();
}

}  // namespace

void current_boot_id(std::uint8_t out[16]) {
  std::memset(out, 0, 16);
  std::ifstream in("/proc/sys/kernel/random/boot_id");
  std::string text;
  std::getline(in, text);
  std::size_t n = 0;
  for (std::size_t i = 0; i + 1 < text.size() && n < 16; ++i) {
    auto hex = [](char c) -> int {
      if (c >= '0' && c <= '9') return c - '0';
      if (c >= 'a' && c <= 'f') return c - 'a' + 10;
      return -1;
    };
    int hi = hex(text[i]);
    int lo = hex(text[i + 1]);
    if (hi < 0 || lo < 0) continue;
    out[n++] = static_cast<std::uint8_t>(hi * 16 + lo);
    ++i;
  }
}

// ---- create / open --------------------------------------------------------------------------

Result<std::shared_ptr<PartitionLog>> PartitionLog::create(const std::string& dir,
                                                           const LogConfig& config,
                                                           const LogOptions& options) {
  if (Status s = validate_config(config); !s) return s.with_context("create partition " + dir);
  if (file_exists(dir + "/" + kControlName))
    return Status(ErrorCode::kAlreadyExists, "partition " + dir + " already exists");

  // Build the partition in a private directory, then rename it into place: other processes
  // see either no partition or a complete one.
  std::string tmp = dir + ".tmp-" + unique_suffix();
  if (Status s = make_directories(tmp, 0770); !s) return s;
  auto cleanup = [&] { std::filesystem::remove_all(tmp); };

  std::string ctl_path = tmp + "/" + kControlName;
  if (Status s = create_file(ctl_path, kControlFileBytes, config.file_mode); !s) {
    cleanup();
    return s;
  }
  {
    auto ctl = MappedFile::open(ctl_path, Access::kReadWrite);
    if (!ctl) {
      cleanup();
      return ctl.status();
    }
    auto* c = reinterpret_cast<PartitionControl*>(ctl->data());
    c->magic = kControlMagic;
    c->version = kLogFormatVersion;
    c->file_bytes = kControlFileBytes;
    c->segment_capacity = config.segment_bytes;
    c->index_interval = config.index_interval;
    c->flags = 0;
    current_boot_id(c->boot_id);
    c->created_ns = wall_clock_ns();
    // Not yet visible to anyone: relaxed; the directory rename publishes the file.
    c->active.active_base.store(0, std::memory_order_relaxed);
    c->active.next_seq.store(2, std::memory_order_relaxed);  // the first segment has seq 1
    c->roll_owner.value.store(0, std::memory_order_relaxed);
    c->waiters.value.store(0, std::memory_order_relaxed);
    c->wake_seq.value.store(0, std::memory_order_relaxed);
  }

  std::uint32_t header_bytes =
      Segment::header_bytes_for(config.segment_bytes, config.index_interval);
  std::string seg_path = tmp + "/" + segment_file_name(0);
  if (Status s = create_file(seg_path, header_bytes + config.segment_bytes, config.file_mode); !s) {
    cleanup();
    return s;
  }
  {
    auto seg = MappedFile::open(seg_path, Access::kReadWrite);
    if (!seg) {
      cleanup();
      return seg.status();
    }
    Segment::format(*seg, config.segment_bytes, config.index_interval);
    auto* h = reinterpret_cast<SegmentHeader*>(seg->data());
    h->base_offset = 0;
    h->tail_line.seq.store(1, std::memory_order_relaxed);
    h->tail_line.tail.store(0, std::memory_order_relaxed);
  }

  if (::rename(tmp.c_str(), dir.c_str()) != 0) {
    int err = errno;
    cleanup();
    if (err == EEXIST || err == ENOTEMPTY)
      return Status(ErrorCode::kAlreadyExists, "partition " + dir + " already exists");
    return errno_status("create partition " + dir, err);
  }
  return open_existing(dir, options);
}

Result<std::shared_ptr<PartitionLog>> PartitionLog::open(const std::string& dir,
                                                         const LogOptions& options) {
  return open_existing(dir, options);
}

Result<std::shared_ptr<PartitionLog>> PartitionLog::open_or_create(const std::string& dir,
                                                                   const LogConfig& config,
                                                                   const LogOptions& options) {
  auto opened = open_existing(dir, options);
  if (opened || opened.status().code() != ErrorCode::kNotFound) return opened;
  if (std::size_t slash = dir.find_last_of('/'); slash != std::string::npos && slash > 0) {
    if (Status s = make_directories(dir.substr(0, slash), 0770); !s) return s;
  }
  auto created = create(dir, config, options);
  if (!created && created.status().code() == ErrorCode::kAlreadyExists)
    return open_existing(dir, options);  // another process won the race
  return created;
}

Result<std::shared_ptr<PartitionLog>> PartitionLog::open_existing(const std::string& dir,
                                                                  const LogOptions& options) {
  std::string ctl_path = dir + "/" + kControlName;
  auto ctl = MappedFile::open(ctl_path, options.access);
  if (!ctl) return ctl.status();
  if (ctl->size() < kControlFileBytes)
    return Status(ErrorCode::kCorrupt, ctl_path + ": too small for a partition control file");
  auto* c = reinterpret_cast<PartitionControl*>(ctl->data());
  if (c->magic != kControlMagic)
    return Status(ErrorCode::kBadFormat, ctl_path + ": not a Sluice partition control file");
  if (c->version != kLogFormatVersion)
    return Status(ErrorCode::kBadFormat,
                  ctl_path + ": format version " + std::to_string(c->version) +
                      ", this build reads version " + std::to_string(kLogFormatVersion));
  LogConfig cfg;
  cfg.segment_bytes = c->segment_capacity;
  cfg.index_interval = c->index_interval;
  if (Status s = validate_config(cfg); !s) return s.with_context(ctl_path);

  std::shared_ptr<PartitionLog> log(new PartitionLog());
  log->dir_ = dir;
  log->options_ = options;
  log->control_file_ = std::move(ctl).value();
  log->control_ = c;

  if (options.access == Access::kReadWrite) {
    std::uint8_t boot[16];
    current_boot_id(boot);
    if (std::memcmp(boot, c->boot_id, 16) != 0) {
      // The machine restarted since this partition was last opened for writing: nobody can
      // be mid-append, and the tail may be torn.
      if (Status s = log->recover_torn_tail(); !s) return s;
      std::memcpy(c->boot_id, boot, 16);
    }
  }
  return log;
}

PartitionLog::~PartitionLog() {
  // A file retired for reuse and not all clear: nobody else knows its private name.
  if (clearing_) (void)remove_file(clearing_->path);
}

// ---- segments -------------------------------------------------------------------------------

std::shared_ptr<MappedFile> PartitionLog::mapping_for(int fd, const std::string& path,
                                                      Status& error) {
  struct stat st {};
  if (::fstat(fd, &st) != 0) {
    error = errno_status("stat " + path, errno);
    return nullptr;
  }
  if (Mapping* m = cached_mapping(st)) {
    m->last_use = ++use_clock_;
    return m->file;
  }
  auto mapped = MappedFile::map_descriptor(fd, path, options_.access, options_.populate);
  if (!mapped) {
    error = mapped.status();
    return nullptr;
  }
  return remember_mapping({st.st_dev, st.st_ino},
                          std::make_shared<MappedFile>(std::move(mapped).value()));
}

PartitionLog::Mapping* PartitionLog::cached_mapping(const struct stat& st) {
  auto it = mappings_.find({st.st_dev, st.st_ino});
  if (it == mappings_.end() || it->second.file->size() != static_cast<std::uint64_t>(st.st_size))
    return nullptr;
  return &it->second;
}

std::shared_ptr<MappedFile> PartitionLog::remember_mapping(std::pair<dev_t, ino_t> key,
                                                           std::shared_ptr<MappedFile> file) {
  auto [at, added] = mappings_.try_emplace(key, Mapping{file, 0});
  if (!added && at->second.file->size() == file->size())
    file = at->second.file;  // another thread mapped it meanwhile: keep one mapping
  else
    at->second.file = file;
  at->second.last_use = ++use_clock_;
  // Drop the least recently used mappings nobody else holds.
  while (mappings_.size() > kept_mappings()) {
    auto victim = mappings_.end();
    for (auto m = mappings_.begin(); m != mappings_.end(); ++m)
      if (m->second.file.use_count() == 1 &&
          (victim == mappings_.end() || m->second.last_use < victim->second.last_use))
        victim = m;
    if (victim == mappings_.end()) break;
    mappings_.erase(victim);
  }
  return file;
}

Result<std::shared_ptr<MappedFile>> PartitionLog::map_cached(const std::string& path) {
  ScopedFd fd;
  return open_cached(path, *fd.out());
}

Result<std::shared_ptr<MappedFile>> PartitionLog::open_cached(const std::string& path, int& fd) {
  fd = ::open(path.c_str(), (options_.access == Access::kReadOnly ? O_RDONLY : O_RDWR) | O_CLOEXEC);
  if (fd < 0) return errno_status("open " + path, errno);
  Status error;
  std::shared_ptr<MappedFile> file;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    file = mapping_for(fd, path, error);
  }
  if (!file) return error;
  return file;
}

Result<std::shared_ptr<Segment>> PartitionLog::segment(std::int64_t base_offset) {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    auto it = segments_.find(base_offset);
    if (it != segments_.end()) {
      if (auto seg = it->second.lock(); seg && seg->still_current()) return seg;
    }
  }
  std::string path = path_of(segment_file_name(base_offset));
  ScopedFd fd;
  auto file = open_cached(path, *fd.out());
  if (!file) return file.status();
  return attach_segment(base_offset, std::move(file).value(), path, fd.get());
}

Result<std::shared_ptr<Segment>> PartitionLog::attach_segment(std::int64_t base_offset,
                                                              std::shared_ptr<MappedFile> file,
                                                              const std::string& path, int fd) {
  std::lock_guard<std::mutex> lock(mutex_);
  auto it = segments_.find(base_offset);
  if (it != segments_.end()) {
    // Another thread attached it meanwhile: one handle per segment and process.
    if (auto seg = it->second.lock(); seg && seg->still_current()) return seg;
  }
  // A read-only handle pins the file with a flock on a description it opens from fd.
  auto seg = Segment::attach(std::move(file), path, fd);
  if (!seg) return seg.status();
  if ((*seg)->base_offset() != base_offset)
    // Retention recycled this file into another segment after we opened it.
    return Status(ErrorCode::kNotFound, path + ": segment was removed by retention");
  segments_[base_offset] = *seg;
  // Forget segments nobody in this process uses any more.
  for (auto i = segments_.begin(); i != segments_.end();) {
    i = i->second.expired() ? segments_.erase(i) : std::next(i);
  }
  return seg;
}

Result<std::shared_ptr<Segment>> PartitionLog::active_segment() {
  // A roll renames the next file into place before publishing active_base (release), so the
  // file named here exists; retry in case the partition rolled again in between.
  for (int attempt = 0;; ++attempt) {
    std::int64_t base = control_->active.active_base.load(std::memory_order_acquire);
    auto seg = segment(base);
    if (seg || attempt >= 100 || seg.status().code() != ErrorCode::kNotFound) return seg;
  }
}

std::int64_t PartitionLog::end_offset() {
  for (int attempt = 0; attempt < 100; ++attempt) {
    auto seg = active_segment();
    if (!seg) return control_->active.active_base.load(std::memory_order_acquire);
    const Segment& s = **seg;
    // Acquire: the seal words are released by the roller.
    std::int64_t sealed = s.header()->seal_line.next_base.load(std::memory_order_acquire);
    if (sealed >= 0) {
      // Sealed and still active: the roll is held back (backpressure) or refused (closed),
      // or its roller is about to publish; either way nothing is reserved past the seal.
      if (control_->active.active_base.load(std::memory_order_acquire) == s.base_offset())
        return sealed;
      continue;  // rolled meanwhile: look at the new segment
    }
    std::uint64_t tail = s.header()->tail_line.tail.load(std::memory_order_acquire);
    if (!s.still_current()) continue;
    if (tail_position(tail) <= s.usable())
      return s.base_offset() + static_cast<std::int64_t>(tail_count(tail));
    std::this_thread::yield();  // a roll is under way
  }
  return control_->active.active_base.load(std::memory_order_acquire);
}

Result<std::vector<std::int64_t>> PartitionLog::segment_bases() const {
  auto names = list_directory(dir_);
  if (!names) return names.status();
  std::vector<std::int64_t> bases;
  for (const std::string& n : *names) {
    std::int64_t b = parse_segment_file_name(n);
    if (b >= 0) bases.push_back(b);
  }
  std::sort(bases.begin(), bases.end());
  return bases;
}

std::int64_t PartitionLog::start_offset(const std::vector<std::int64_t>& bases) const {
  std::int64_t deleted_below = deleted_before();
  return bases.empty() ? deleted_below : std::max(bases.front(), deleted_below);
}

std::int64_t PartitionLog::deleted_before() const {
  // Relaxed: the start guards no other data; it is only compared with offsets.
  return control_->log_start.offset.load(std::memory_order_relaxed);
}

Result<std::int64_t> PartitionLog::start_offset() const {
  auto bases = segment_bases();
  if (!bases) return bases.status();
  return start_offset(*bases);
}

Result<std::int64_t> PartitionLog::delete_records_before(std::int64_t offset) {
  if (!writable()) return Status(ErrorCode::kPermissionDenied, dir_ + ": opened read-only");
  std::int64_t end = end_offset();
  if (offset < 0 || offset > end)
    return Status(ErrorCode::kOutOfRange, "cannot delete records before offset " +
                                              std::to_string(offset) + " of " + dir_ +
                                              ": its end offset is " + std::to_string(end));
  // Up only, whoever else moves it meanwhile. Relaxed, as in start_offset().
  std::atomic<std::int64_t>& start = control_->log_start.offset;
  std::int64_t now = start.load(std::memory_order_relaxed);
  while (now < offset && !start.compare_exchange_weak(now, offset, std::memory_order_relaxed)) {
  }
  return start_offset();
}

Status PartitionLog::sync() {
  std::vector<std::shared_ptr<Segment>> mapped;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    for (auto& [base, weak] : segments_)
      if (auto seg = weak.lock()) mapped.push_back(seg);
  }
  for (auto& seg : mapped)
    if (Status s = seg->file().sync(); !s) return s;
  return control_file_.sync();
}

}  // namespace sluice::shm
