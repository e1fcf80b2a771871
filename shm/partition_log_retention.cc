#include "shm/partition_log.h"

#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>

#include <cerrno>
#include <cstring>

#include "shm/orphaned_files.h"
#include "shm/partition_log_files.h"

namespace sluice::shm {

namespace {

using partition_files::kSpareName;
using partition_files::ScopedFd;
using partition_files::unique_suffix;

}  // namespace

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
  return remove_orphans(dir_, transient_file_pid);
}

std::int64_t PartitionLog::transient_file_pid(std::string_view name) {
  if (name.size() < 4 || name.substr(name.size() - 4) != ".tmp") return 0;
  for (std::string_view kind : {"new-", "rolling-", "recycle-"})
    if (name.substr(0, kind.size()) == kind) return pid_after(name, kind);
  return 0;
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

Status PartitionLog::prepare_after_roll() {
  // Relaxed, both: the base is only compared with what this handle saw last; a roll missed
  // by this load is seen by the next call, and prepare_next() reads the files themselves.
  std::int64_t active = control_->active.active_base.load(std::memory_order_relaxed);
  if (active == prepared_for_base_.load(std::memory_order_relaxed)) return Status::ok();
  Status s = prepare_next();
  if (s) prepared_for_base_.store(active, std::memory_order_relaxed);
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

}  // namespace sluice::shm
