#include "shm/partition_log.h"

#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <thread>

#include "shm/clock.h"
#include "shm/frame_check.h"
#include "shm/orphaned_files.h"

namespace sluice::shm {

namespace {

constexpr const char* kControlName = "partition.ctl";
constexpr const char* kSpareName = "spare.seg";

std::string unique_suffix() {
  static std::atomic<std::uint32_t> counter{0};
  return std::to_string(::getpid()) + "-" +
         std::to_string(counter.fetch_add(1, std::memory_order_relaxed)) + "-" +
         std::to_string(monotonic_ns());
}

// A descriptor closed when it goes out of scope (or by close()).
class ScopedFd {
 public:
  explicit ScopedFd(int fd = -1) : fd_(fd) {}
  ~ScopedFd() { close(); }
  ScopedFd(const ScopedFd&) = delete;
  ScopedFd& operator=(const ScopedFd&) = delete;
  int get() const { return fd_; }
  int* out() {
    close();
    return &fd_;
  }
  void close() {
    if (fd_ >= 0) ::close(fd_);
    fd_ = -1;
  }

 private:
  int fd_;
};

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

// ---- rolling --------------------------------------------------------------------------------

bool PartitionLog::lock_roll() {
  auto self = static_cast<std::uint32_t>(::getpid());
  std::uint32_t owner = 0;
  // acq_rel: acquire pairs with the previous owner's release in unlock_roll, so its writes
  // (the published segment) are visible to us.
  if (control_->roll_owner.value.compare_exchange_strong(owner, self, std::memory_order_acq_rel))
    return true;
  if (owner != 0 && owner != self && process_gone(owner)) {
    // The roller died holding the lock: take it over.
    return control_->roll_owner.value.compare_exchange_strong(owner, self,
                                                              std::memory_order_acq_rel);
  }
  return false;
}

bool PartitionLog::roll_in_progress() const {
  // Relaxed: a hint that picks between waiting and retrying; both re-check under the lock.
  return control_->roll_owner.value.load(std::memory_order_relaxed) != 0;
}

void PartitionLog::unlock_roll() {
  // Release: publishes what we did under the lock to the next owner.
  control_->roll_owner.value.store(0, std::memory_order_release);
}

Status PartitionLog::create_spare_file(const std::string& final_path) {
  std::uint64_t capacity = segment_capacity();
  std::uint32_t interval = control_->index_interval;
  std::string tmp = path_of("new-" + unique_suffix() + ".tmp");
  std::uint64_t size = Segment::header_bytes_for(capacity, interval) + capacity;
  // New segments take the mode the partition was created with (the broker's --mode).
  struct stat ctl {};
  mode_t mode = ::stat(path_of(kControlName).c_str(), &ctl) == 0 ? (ctl.st_mode & 07777) : 0660;
  if (Status s = create_file(tmp, size, mode); !s) return s;
  auto file = MappedFile::open(tmp, Access::kReadWrite);
  if (!file) {
    (void)remove_file(tmp);
    return file.status();
  }
  Segment::format(*file, capacity, interval);
  // Never over an existing final_path, so two preparers never replace each other's spare.
  Status s = move_file_noreplace(tmp, final_path);
  if (!s) (void)remove_file(tmp);
  return s;
}

Result<std::shared_ptr<Segment>> PartitionLog::take_spare_or_create(std::int64_t base,
                                                                    std::uint32_t seq) {
  // The file that becomes the new segment, under a private name until it is ready.
  std::string source = path_of("rolling-" + unique_suffix() + ".tmp");
  ScopedFd fd;
  std::shared_ptr<MappedFile> file;
  // Take the prepared spare by renaming it (atomic: one taker wins).
  std::string spare = path_of(kSpareName);
  bool taken = ::rename(spare.c_str(), source.c_str()) == 0;
  if (!taken && errno != ENOENT) return errno_status("rename " + spare, errno);
  if (!taken && options_.recycle_segments && options_.retain_segments > 0) {
    // No spare, recycling with a full pool: the oldest segment becomes the new one in place.
    // Readers still on it see its seq change and get out-of-range.
    auto bases = segment_bases();
    std::int64_t active = control_->active.active_base.load(std::memory_order_acquire);
    if (bases && bases->size() >= options_.retain_segments && bases->front() < active) {
      // Claim the oldest file by renaming it to our private name first: retention in another
      // process (prepare_next) may be taking the same file; whoever renames it first has it.
      std::string oldest = path_of(segment_file_name(bases->front()));
      if (::rename(oldest.c_str(), source.c_str()) == 0) {
        auto mapped = open_cached(source, *fd.out());
        if (mapped && retire_for_reuse(**mapped, fd.get())) {
          taken = true;
          file = std::move(mapped).value();
        } else {
          // A reader (or an idle producer) still has it open: delete it and make a new file.
          // Unlinking is safe for the process still on it.
          fd.close();
          (void)remove_file(source);
        }
      }
    }
  }
  // Without either, create the file on this cold path.
  if (!taken)
    if (Status s = create_spare_file(source); !s) return s;
  if (!file) {
    auto mapped = open_cached(source, *fd.out());
    if (!mapped) return mapped.status();
    file = std::move(mapped).value();
  }
  std::uint64_t capacity = segment_capacity();
  if (!sized_for_partition(*file)) {
    // A file of another size (the topic's segment size was altered): drop it, use a new one.
    fd.close();
    (void)remove_file(source);
    if (Status s = create_spare_file(source); !s) return s;
    auto mapped = open_cached(source, *fd.out());
    if (!mapped) return mapped.status();
    file = std::move(mapped).value();
  }
  // Format first retires whatever the file held (seq 0, tail closed: see Segment::format).
  Segment::format(*file, capacity, control_->index_interval);
  auto* h = reinterpret_cast<SegmentHeader*>(file->data());
  h->base_offset = base;
  // Release: a process that finds the file under its new name and acquires the seq
  // (Segment::attach) sees the formatted header and base offset above.
  h->tail_line.seq.store(seq, std::memory_order_release);
  // Release: opens the tail. A producer whose fetch_add reads this value (or a later one)
  // acquires it and so sees the base offset and seq above (LogAppender::reserve).
  h->tail_line.tail.store(0, std::memory_order_release);
  std::string final_path = path_of(segment_file_name(base));
  if (Status s = rename_file(source, final_path); !s) return s;
  // Attach through the descriptor we hold (the file is ours until published): no second open.
  return attach_segment(base, std::move(file), final_path, fd.get());
}

Status PartitionLog::publish_roll(Segment& full, std::uint64_t end_position,
                                  std::int64_t next_base) {
  std::uint32_t seq = control_->active.next_seq.fetch_add(1, std::memory_order_relaxed);
  if (seq == 0) seq = control_->active.next_seq.fetch_add(1, std::memory_order_relaxed);
  auto next = take_spare_or_create(next_base, seq);
  if (!next) return next.status().with_context("rolling " + full.path());

  // Seal words first (for recovery and tools), then publish the new segment to producers,
  // then the END frame to readers. Release on each: a reader that acquires the END frame
  // sees the next segment's file and header complete.
  full.header()->seal_line.next_base.store(next_base, std::memory_order_relaxed);
  full.header()->seal_line.end_position.store(end_position, std::memory_order_release);
  control_->active.active_base.store(next_base, std::memory_order_release);

  FrameHeader* end = full.frame_at(end_position);
  end->offset = next_base;
  end->timestamp_ns = wall_clock_ns();
  end->type = kFrameEnd;
  end->flags = 0;
  end->reserved = 0;
  end->crc32c = frame_crc(end, kFrameHeaderBytes);
  end->commit.store(make_commit_word(static_cast<std::int32_t>(kFrameHeaderBytes), full.seq()),
                    std::memory_order_release);
  return Status::ok();
}

Status PartitionLog::roll(Segment& full, std::uint64_t end_position, std::uint64_t record_count) {
  std::int64_t next_base = full.base_offset() + static_cast<std::int64_t>(record_count);
  std::int64_t deadline = monotonic_ns() + options_.abandon_timeout_ns;
  while (!lock_roll()) {
    if (control_->active.active_base.load(std::memory_order_acquire) != full.base_offset())
      return Status::ok();  // someone finished it for us
    if (monotonic_ns() > deadline)
      return Status(ErrorCode::kTimedOut, dir_ + ": roll lock held by pid " +
                                              std::to_string(control_->roll_owner.value.load()));
    std::this_thread::yield();
  }
  Status s = Status::ok();
  if (control_->active.active_base.load(std::memory_order_acquire) == full.base_offset()) {
    SegmentSealLine& seal = full.header()->seal_line;
    // Record where the segment ends first: if the roll is refused (backpressure) or this
    // process dies, whoever rolls later uses the same end and base. Acquire/release: the
    // roll lock orders rollers; the release publishes next_base with end_position.
    if (seal.next_base.load(std::memory_order_acquire) < 0) {
      seal.end_position.store(end_position, std::memory_order_relaxed);
      seal.next_base.store(next_base, std::memory_order_release);
    }
    end_position = seal.end_position.load(std::memory_order_relaxed);
    next_base = seal.next_base.load(std::memory_order_relaxed);
    if (closed()) {
      s = closed_status();
    } else if (options_.roll_gate && !options_.roll_gate(*this)) {
      s = Status(ErrorCode::kBackPressured,
                 dir_ + ": a consumer group has not yet read what retention would delete");
    } else {
      s = publish_roll(full, end_position, next_base);
    }
  }
  unlock_roll();
  return s;
}

bool PartitionLog::closed() const {
  // Acquire: pairs with close()'s store; a roller that sees the mark refuses to roll.
  return (std::atomic_ref<std::uint32_t>(control_->flags).load(std::memory_order_acquire) &
          kControlClosed) != 0;
}

Status PartitionLog::closed_status() const {
  return Status(ErrorCode::kNotFound, dir_ + ": the partition was closed (its topic was deleted)");
}

Status PartitionLog::close() {
  if (!writable()) return Status(ErrorCode::kPermissionDenied, dir_ + ": opened read-only");
  // seq_cst: the mark must be visible to any roller that takes the roll lock after our
  // overflowing reservation below, whichever process it runs in.
  std::atomic_ref<std::uint32_t>(control_->flags)
      .fetch_or(kControlClosed, std::memory_order_seq_cst);
  // Reserve past the end of the active segment like a record too large for what is left: the
  // first such reservation seals the segment (roll() records the end, then refuses to open the
  // next one); every later one finds the seal. If a roll is in flight, it either publishes
  // the next segment before seeing the mark (then close that one too) or refuses.
  for (int attempt = 0; attempt < 1000; ++attempt) {
    auto seg = active_segment();
    if (!seg) return seg.status();
    Segment& s = **seg;
    std::atomic<std::uint64_t>& tail = s.header()->tail_line.tail;
    // Relaxed: the reservation only has to be one of the tail's RMWs; the roll lock orders
    // what follows.
    std::uint64_t old_tail =
        tail.fetch_add(kTailCountOne | (s.usable() + 1), std::memory_order_relaxed);
    std::uint64_t pos = tail_position(old_tail);
    Status st = pos <= s.usable() ? roll(s, pos, tail_count(old_tail)) : retry_pending_roll(s);
    if (control_->active.active_base.load(std::memory_order_acquire) == s.base_offset() &&
        s.header()->seal_line.next_base.load(std::memory_order_acquire) >= 0)
      return Status::ok();  // sealed, and no segment after it
    if (!st && st.code() != ErrorCode::kNotFound && st.code() != ErrorCode::kBusy &&
        st.code() != ErrorCode::kTimedOut)
      return st;
    std::this_thread::yield();
  }
  return Status(ErrorCode::kBusy, dir_ + ": could not seal the active segment to close it");
}

Status PartitionLog::retry_pending_roll(Segment& full) {
  std::int64_t next_base = full.header()->seal_line.next_base.load(std::memory_order_acquire);
  if (next_base < 0) return Status(ErrorCode::kBusy, dir_ + ": no roll pending");
  std::uint64_t end = full.header()->seal_line.end_position.load(std::memory_order_relaxed);
  return roll(full, end, static_cast<std::uint64_t>(next_base - full.base_offset()));
}

Status PartitionLog::recover_roll(Segment& full) {
  if (!lock_roll()) return Status::ok();  // a live roller is at work; wait for it
  Status s = Status::ok();
  if (control_->active.active_base.load(std::memory_order_acquire) == full.base_offset()) {
    // The seal words survive if the roller died after writing them.
    std::int64_t next_base = full.header()->seal_line.next_base.load(std::memory_order_acquire);
    std::uint64_t end = full.header()->seal_line.end_position.load(std::memory_order_acquire);
    if (next_base < 0) {
      // Walk the committed frames: the END goes after the last one, and the next segment
      // starts after the highest offset used. Offsets of claims that never committed are
      // free to be used again: nobody was told about them.
      std::uint64_t pos = 0;
      std::int64_t last_offset = full.base_offset() - 1;
      while (pos <= full.usable()) {
        FrameCheck fc = check_frame(full.data(), full.capacity(), full.seq(), pos, false);
        if (fc.problem == FrameProblem::kInProgress &&
            pos + align_frame(fc.length) <= full.usable()) {
          // A claim as old as the roll is abandoned too: step over it (readers pad it), so
          // that the frames committed after it stay before END and their offsets are not
          // handed out again.
          pos += align_frame(fc.length);
          continue;
        }
        if (fc.problem != FrameProblem::kNone) break;
        const FrameHeader* f = full.frame_at(pos);
        if (f->type == kFrameEnd) break;
        if (f->offset > last_offset) last_offset = f->offset;
        pos += align_frame(fc.length);
      }
      end = pos;
      next_base = last_offset + 1;
    }
    if (closed()) {
      s = closed_status();
    } else if (options_.roll_gate && !options_.roll_gate(*this)) {
      s = Status(ErrorCode::kBackPressured, dir_ + ": roll held back by a slow consumer group");
    } else {
      s = publish_roll(full, end, next_base);
    }
  }
  unlock_roll();
  return s;
}

// ---- preparation and retention --------------------------------------------------------------

Result<PartitionLog::PremapOutcome> PartitionLog::premap_spare() {
  return premap(path_of(kSpareName));
}

Result<std::size_t> PartitionLog::premap_segments(Pretouch pretouch) {
  if (pretouch == Pretouch::kForWriting && !writable())
    return Status(ErrorCode::kPermissionDenied, dir_ + ": opened read-only, nothing to pretouch");
  auto bases = segment_bases();
  if (!bases) return bases.status();
  // Oldest first and the spare last, so that the cache's least recently used are the oldest.
  std::vector<std::string> paths;
  const std::size_t keep = kept_mappings() - 1;
  std::size_t first = bases->size() > keep ? bases->size() - keep : 0;
  for (std::size_t i = first; i < bases->size(); ++i)
    paths.push_back(path_of(segment_file_name((*bases)[i])));
  paths.push_back(path_of(kSpareName));
  std::size_t mapped = 0;
  for (const std::string& path : paths) {
    auto r = premap(path);
    if (!r) return r.status();
    if (*r == PremapOutcome::kMapped) ++mapped;
    if (pretouch == Pretouch::kForWriting && *r != PremapOutcome::kNoSpare) {
      auto file = map_cached(path);  // from the cache: an open and a stat
      if (!file) {
        if (file.status().code() == ErrorCode::kNotFound) continue;  // a roll took the spare
        return file.status();
      }
      if (Status s = (*file)->pretouch_for_writing(); !s) return s;
    }
  }
  return mapped;
}

Result<PartitionLog::PremapOutcome> PartitionLog::premap(const std::string& path) {
  // A stat first: when the file is mapped already (the common case for a helper that asks
  // after every roll), that is the only system call.
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) {
    if (errno == ENOENT) return PremapOutcome::kNoSpare;
    return errno_status("stat " + path, errno);
  }
  {
    std::lock_guard<std::mutex> lock(mutex_);
    if (cached_mapping(st) != nullptr) return PremapOutcome::kAlreadyMapped;
  }
  int fd =
      ::open(path.c_str(), (options_.access == Access::kReadOnly ? O_RDONLY : O_RDWR) | O_CLOEXEC);
  if (fd < 0) {
    if (errno == ENOENT) return PremapOutcome::kNoSpare;  // taken since the stat
    return errno_status("open " + path, errno);
  }
  if (::fstat(fd, &st) != 0) {
    Status s = errno_status("stat " + path, errno);
    ::close(fd);
    return s;
  }
  // Not under mutex_: this is the slow part (MAP_POPULATE), and rolls and readers of this
  // handle go on meanwhile. A roll that takes the file now maps it itself; one of the two
  // mappings is kept.
  auto mapped = MappedFile::map_descriptor(fd, path, options_.access, options_.populate);
  ::close(fd);
  if (!mapped) return mapped.status();
  std::lock_guard<std::mutex> lock(mutex_);
  remember_mapping({st.st_dev, st.st_ino}, std::make_shared<MappedFile>(std::move(mapped).value()));
  return PremapOutcome::kMapped;
}

Result<std::vector<std::string>> PartitionLog::remove_orphaned_files() {
  if (!writable()) return Status(ErrorCode::kPermissionDenied, dir_ + ": opened read-only");
  return remove_orphans(dir_, [](std::string_view name) -> std::int64_t {
    if (name.size() < 4 || name.substr(name.size() - 4) != ".tmp") return 0;
    for (std::string_view kind : {"new-", "rolling-", "recycle-"})
      if (name.substr(0, kind.size()) == kind) return pid_after(name, kind);
    return 0;
  });
}

bool PartitionLog::has_spare() const {
  return file_exists(path_of(kSpareName));
}

Status PartitionLog::prepare_next() {
  if (!writable()) return Status(ErrorCode::kPermissionDenied, dir_ + ": opened read-only");
  (void)zero_step(0);  // a file retired for reuse and not all clear yet: finish it first
  if (Status s = apply_retention(); !s) return s;
  // A file retention just retired is the next spare once zero_step() has cleared it.
  if (has_spare() || clearing_pending_.load(std::memory_order_relaxed)) return Status::ok();
  if (options_.recycle_segments && options_.retain_segments > 0) {
    // The pool is retain_segments + 1 files: the segments kept and the spare. With more
    // segments than that (the excess pinned, or the active one), the next roll recycles the
    // oldest segment in place rather than have a new file created here. With retain_segments
    // or fewer it is a file short (a roll recycled in place, or a drop found its file pinned
    // and deleted it): make the spare, or every roll from then on would recycle in place and
    // zero a whole segment on its producer's hot path (retire_for_reuse).
    auto bases = segment_bases();
    if (bases && bases->size() > options_.retain_segments) return Status::ok();
  }
  Status s = create_spare_file(path_of(kSpareName));
  if (s.code() == ErrorCode::kAlreadyExists) return Status::ok();
  return s;
}

Status PartitionLog::apply_retention() {
  if (options_.retain_segments == 0) return Status::ok();
  auto bases = segment_bases();
  if (!bases) return bases.status();
  std::int64_t active = control_->active.active_base.load(std::memory_order_acquire);
  std::size_t excess =
      bases->size() > options_.retain_segments ? bases->size() - options_.retain_segments : 0;
  for (std::size_t i = 0; i < excess; ++i) {
    std::int64_t base = (*bases)[i];
    if (base >= active) break;
    (void)drop_segment(base);  // kNotFound: another process took it
  }
  return Status::ok();
}

Status PartitionLog::drop_segment(std::int64_t base) {
  if (!writable()) return Status(ErrorCode::kPermissionDenied, dir_ + ": opened read-only");
  std::string path = path_of(segment_file_name(base));
  // Relaxed: a file being cleared is this handle's own (clearing_), set by this thread or
  // under clearing_mutex_ below; a stale false only makes two candidates, and one is deleted.
  if (options_.recycle_segments && !has_spare() &&
      !clearing_pending_.load(std::memory_order_relaxed)) {
    // Move the old file aside under a private name, clear its header (readers still on it
    // see the seq change), then offer it as the spare. Its pages stay allocated.
    std::string tmp = path_of("recycle-" + unique_suffix() + ".tmp");
    if (::rename(path.c_str(), tmp.c_str()) != 0) return errno_status("rename " + path, errno);
    ScopedFd fd;
    auto file = open_cached(tmp, *fd.out());
    bool reuse = file && sized_for_partition(**file) && retire_for_reuse(**file, fd.get(), false);
    fd.close();
    // Pinned, or of a size the partition no longer uses.
    if (!reuse) return remove_file(tmp);
    {
      const auto* h = reinterpret_cast<const SegmentHeader*>((*file)->data());
      std::lock_guard<std::mutex> lock(clearing_mutex_);
      if (clearing_) return remove_file(tmp);  // another thread of this handle clears one
      clearing_ =
          Clearing{*file, tmp, h->header_bytes, std::uint64_t{h->header_bytes} + h->capacity};
      clearing_pending_.store(true, std::memory_order_relaxed);
    }
    // Cleared a step at a time by the owner's zero_step() calls, or all of it now.
    if (!options_.zero_in_steps) (void)zero_step(0);
    return Status::ok();
  }
  // Unlinking is safe for readers that still map the file: the pages live until unmapped.
  return remove_file(path);
}

bool PartitionLog::sized_for_partition(const MappedFile& file) const {
  const auto* h = reinterpret_cast<const SegmentHeader*>(file.data());
  return file.size() >= kSegmentIndexOffset && h->magic == kSegmentMagic &&
         h->capacity == segment_capacity();
}

bool PartitionLog::retire_for_reuse(MappedFile& file, int fd, bool clear) {
  auto* h = reinterpret_cast<SegmentHeader*>(file.data());
  if (file.size() < kSegmentIndexOffset || h->magic != kSegmentMagic) return false;
  // seq 0 tells every handle on the file that its segment is gone (out-of-range for readers;
  // producers overflow the tail and reload). seq_cst, the store and the load: Dekker's
  // handshake with Segment::attach's fetch_add of the pins and load of the seq. Either we see
  // its pin (and the file is deleted, not reused), or it sees seq 0 and reads nothing more.
  h->tail_line.tail.store(h->capacity, std::memory_order_relaxed);
  h->tail_line.seq.store(0, std::memory_order_seq_cst);
  if (h->seal_line.pins.load(std::memory_order_seq_cst) != 0) return false;
  // Read-only handles pin with a shared flock instead (Segment::attach): if any holds one,
  // our exclusive try fails. The same handshake, ordered by the kernel's lock calls. Taking
  // the lock for a moment is all it needs: a handle attaching later sees seq 0 or the file's
  // next use. (`fd` is a description of our own, so the lock is ours alone.)
  if (::flock(fd, LOCK_EX | LOCK_NB) != 0) return false;
  (void)::flock(fd, LOCK_UN);
  if (std::uint64_t{h->header_bytes} + h->capacity > file.size()) return false;  // damaged
  // Its old frames carry an older seq, but its old payload may hold any word at all, the next
  // seq included, and a reader that has caught up with the producers reads the word past the
  // tail: zero the data region, so that nothing there reads as a frame (Aeron cleans its term
  // buffers for the same reason). Plain stores: no handle maps it as a segment now (no pin, no
  // flock, seq 0); the roller's release of the next seq publishes them with the header.
  if (clear) std::memset(file.data() + h->header_bytes, 0, h->capacity);
  return true;
}

bool PartitionLog::zero_step(std::uint64_t max_bytes) {
  if (!clearing_pending_.load(std::memory_order_relaxed)) return false;
  std::lock_guard<std::mutex> lock(clearing_mutex_);
  if (!clearing_) return false;
  Clearing& c = *clearing_;
  std::uint64_t n = c.end - c.next;
  if (max_bytes != 0 && max_bytes < n) n = max_bytes;
  // Plain stores, as retire_for_reuse's: the file is private until the rename below, and the
  // roll that takes it publishes them with the header it writes.
  std::memset(c.file->data() + c.next, 0, n);
  c.next += n;
  if (c.next < c.end) return true;
  if (!move_file_noreplace(c.path, path_of(kSpareName))) (void)remove_file(c.path);
  clearing_.reset();
  clearing_pending_.store(false, std::memory_order_relaxed);
  return false;
}

// ---- abandoned claims -----------------------------------------------------------------------

UnblockOutcome PartitionLog::unblock(Segment& seg, std::uint64_t position,
                                     std::uint64_t tail_when_stalled) {
  FrameHeader* frame = seg.frame_at(position);
  std::uint64_t word = frame->commit.load(std::memory_order_acquire);
  std::int32_t length = commit_length(word);
  bool ours = commit_seq(word) == seg.seq();
  if (ours && length > 0) return UnblockOutcome::kAlreadyCommitted;
  std::uint64_t tail = seg.header()->tail_line.tail.load(std::memory_order_acquire);
  std::uint64_t tail_pos = tail_position(tail);
  if (tail_pos <= position) return UnblockOutcome::kNotYet;

  std::uint64_t gap_end = 0;
  if (ours && length < 0) {
    gap_end = position + align_frame(static_cast<std::uint64_t>(-std::int64_t{length}));
  } else {
    // The producer died before writing its header: the gap runs to the next frame header.
    std::uint64_t limit = std::min(tail_pos, seg.usable());
    std::uint64_t p = position + kFrameAlignment;
    for (; p < limit; p += kFrameAlignment) {
      std::uint64_t w = seg.frame_at(p)->commit.load(std::memory_order_acquire);
      std::int32_t l = commit_length(w);
      if (commit_seq(w) == seg.seq() && l != 0 &&
          p + align_frame(static_cast<std::uint64_t>(l < 0 ? -std::int64_t{l} : l)) <=
              seg.capacity())
        break;
    }
    if (p >= limit) {
      if (tail_pos > seg.usable()) {
        // The gap reaches the segment end: this was the roll's reservation.
        return recover_roll(seg) ? UnblockOutcome::kRolled : UnblockOutcome::kNotYet;
      }
      if (tail != tail_when_stalled) return UnblockOutcome::kNotYet;  // others still claim
      p = limit;
    }
    gap_end = p;
  }
  if (gap_end > seg.usable() + kFrameHeaderBytes || gap_end <= position)
    return UnblockOutcome::kNotYet;

  frame->offset = -1;
  frame->timestamp_ns = 0;
  frame->type = kFramePad;
  frame->flags = 0;
  auto pad_len = static_cast<std::int32_t>(gap_end - position);
  // Over the whole pad, like every frame's CRC (docs/format.md), so that verify accepts it.
  frame->crc32c = frame_crc(frame, static_cast<std::uint32_t>(pad_len));
  // CAS from the word we saw: if the producer committed meanwhile, leave its frame alone.
  // Release: readers acquire the word and then read the type.
  if (!frame->commit.compare_exchange_strong(word, make_commit_word(pad_len, seg.seq()),
                                             std::memory_order_release, std::memory_order_relaxed))
    return UnblockOutcome::kAlreadyCommitted;
  return UnblockOutcome::kUnblocked;
}

// ---- crash recovery -------------------------------------------------------------------------

Status PartitionLog::recover_torn_tail() {
  auto bases = segment_bases();
  if (!bases) return bases.status();
  if (bases->empty()) return Status(ErrorCode::kCorrupt, dir_ + ": partition has no segment files");
  std::int64_t active = control_->active.active_base.load(std::memory_order_acquire);
  if (!std::binary_search(bases->begin(), bases->end(), active)) {
    // The roll that named `active` never got its file in place: go back to the newest.
    active = bases->back();
    control_->active.active_base.store(active, std::memory_order_release);
  }
  auto seg = segment(active);
  if (!seg) return seg.status();
  Segment& s = **seg;
  std::uint64_t pos = 0;
  std::int64_t next_offset = s.base_offset();
  while (pos <= s.usable()) {
    FrameCheck fc = check_frame(s.data(), s.capacity(), s.seq(), pos, true);
    if (fc.problem != FrameProblem::kNone) break;
    const FrameHeader* f = s.frame_at(pos);
    if (f->type == kFrameEnd) {
      // Sealed, but the next segment never appeared: reopen this one at the END frame.
      break;
    }
    if (f->type == kFrameData && f->offset < next_offset) break;  // offsets must increase
    if (f->offset >= next_offset) next_offset = f->offset + 1;
    pos += align_frame(fc.length);
  }
  std::uint64_t old_tail = tail_position(s.header()->tail_line.tail.load());
  // Clear what follows the last good frame so that no stale word with this seq remains.
  std::uint64_t clear_to = std::min<std::uint64_t>(std::max(old_tail, pos), s.capacity());
  if (clear_to > pos) std::memset(s.data() + pos, 0, clear_to - pos);
  std::uint64_t count = static_cast<std::uint64_t>(next_offset - s.base_offset());
  s.header()->seal_line.end_position.store(0, std::memory_order_relaxed);
  s.header()->seal_line.next_base.store(-1, std::memory_order_relaxed);
  s.header()->tail_line.tail.store((count << kTailCountShift) | pos, std::memory_order_release);
  // Records deleted up to an offset the torn tail lost: the start is the end now.
  if (control_->log_start.offset.load(std::memory_order_relaxed) > next_offset)
    control_->log_start.offset.store(next_offset, std::memory_order_relaxed);
  return sync();
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
