#include "shm/segment.h"

#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cinttypes>
#include <cstdio>
#include <cstring>

#include "shm/clock.h"

namespace sluice::shm {

namespace {
constexpr std::uint32_t kPage = 4096;
}

std::uint32_t Segment::header_bytes_for(std::uint64_t capacity, std::uint32_t index_interval) {
  std::uint64_t slots = capacity / index_interval;
  std::uint64_t bytes = kSegmentIndexOffset + slots * sizeof(IndexSlot);
  return static_cast<std::uint32_t>((bytes + kPage - 1) / kPage * kPage);
}

void Segment::format(MappedFile& file, std::uint64_t capacity, std::uint32_t index_interval) {
  auto* h = reinterpret_cast<SegmentHeader*>(file.data());
  std::uint32_t header_bytes = header_bytes_for(capacity, index_interval);
  // The fields that describe the file's shape are written only where they differ: a recycled
  // file already holds them, and a process opening it (Segment::attach) may be reading them
  // right now, before it learns that the file is being reused.
  auto set = [](auto& field, auto value) {
    if (field != value) field = value;
  };
  set(h->magic, kSegmentMagic);
  set(h->version, kLogFormatVersion);
  set(h->header_bytes, header_bytes);
  set(h->capacity, capacity);
  set(h->index_interval, index_interval);
  set(h->index_slots, static_cast<std::uint32_t>(capacity / index_interval));
  h->base_offset = -1;
  h->created_ns = wall_clock_ns();
  // A recycled file may still be mapped by a producer that has not noticed: the tail is set
  // "closed" (at the capacity, so any reservation overflows) and the seq to 0 before the
  // roller gives it a new seq and opens the tail (PartitionLog::take_spare_or_create).
  h->tail_line.tail.store(capacity, std::memory_order_relaxed);
  h->tail_line.seq.store(0, std::memory_order_release);
  h->seal_line.end_position.store(0, std::memory_order_relaxed);
  h->seal_line.next_base.store(-1, std::memory_order_relaxed);
  std::memset(file.data() + kSegmentIndexOffset, 0, header_bytes - kSegmentIndexOffset);
}

Result<std::shared_ptr<Segment>> Segment::open(const std::string& path, Access access,
                                               bool populate) {
  int fd = ::open(path.c_str(), (access == Access::kReadOnly ? O_RDONLY : O_RDWR) | O_CLOEXEC);
  if (fd < 0) return errno_status("open " + path, errno);
  auto file = MappedFile::map_descriptor(fd, path, access, populate);
  Result<std::shared_ptr<Segment>> seg =
      file ? attach(std::make_shared<MappedFile>(std::move(file).value()), path, fd)
           : Result<std::shared_ptr<Segment>>(file.status());
  ::close(fd);
  return seg;
}

Result<std::shared_ptr<Segment>> Segment::attach(std::shared_ptr<MappedFile> file,
                                                 const std::string& path, int fd) {
  auto seg = std::make_shared<Segment>();
  seg->file_ = std::move(file);
  const MappedFile& f = *seg->file_;
  seg->path_ = path;
  if (f.size() < kSegmentIndexOffset)
    return Status(ErrorCode::kCorrupt, path + ": too small for a segment header (" +
                                           std::to_string(f.size()) + " bytes)");
  auto* h = reinterpret_cast<SegmentHeader*>(f.data());
  std::uint32_t seq = 0;
  if (f.writable()) {
    // Pin the file before reading anything else in it, so that recycling cannot rewrite it
    // under this handle. seq_cst, both: with the recycler's seq_cst store of seq 0 and load
    // of the pins (PartitionLog::retire_for_reuse) this is Dekker's handshake: either the
    // recycler sees our pin and deletes the file instead of reusing it, or we see seq 0 (or
    // the seq of the file's next use, fully formatted: the load acquires its release) here.
    seg->pins_ = &h->seal_line.pins;
    seg->pins_->fetch_add(1, std::memory_order_seq_cst);
    seq = h->tail_line.seq.load(std::memory_order_seq_cst);
  } else {
    // A read-only mapping cannot write the pins word: it pins with a shared flock instead,
    // taken before reading anything else in the file. The recycler stores seq 0 and then
    // tries an exclusive flock (PartitionLog::retire_for_reuse); the kernel orders the two
    // lock calls, so either it fails (and deletes the file instead of reusing it), or it came
    // first and we see seq 0 below, or the seq of the file's next use. While the recycler
    // holds its exclusive lock for that moment the file is being retired: removed for us.
    if (fd >= 0) {
      // A description of its own (see segment.h), of the same file whatever its name is now;
      // without /proc, by its name, and a file of another inode there is not this segment.
      std::string self = "/proc/self/fd/" + std::to_string(fd);
      seg->lock_fd_ = ::open(self.c_str(), O_RDONLY | O_CLOEXEC);
      if (seg->lock_fd_ < 0) seg->lock_fd_ = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
      struct stat st {};
      if (seg->lock_fd_ < 0 || ::fstat(seg->lock_fd_, &st) != 0 ||
          st.st_ino != seg->file_->inode() || st.st_dev != seg->file_->device())
        return Status(ErrorCode::kNotFound, path + ": segment was removed by retention");
      if (::flock(seg->lock_fd_, LOCK_SH | LOCK_NB) != 0) {
        if (errno == EWOULDBLOCK)
          return Status(ErrorCode::kNotFound, path + ": segment was removed by retention");
        return errno_status("flock " + path, errno);
      }
    }
    // Acquire, before reading the rest of the header: pairs with the roller's release of the
    // seq (PartitionLog::take_spare_or_create), which follows its writes of the header.
    seq = h->tail_line.seq.load(std::memory_order_acquire);
  }
  // The shape fields are never rewritten while a file is in use (Segment::format), so they
  // can be checked whatever the seq says; a file with bad ones is damaged, not being reused.
  if (h->magic != kSegmentMagic)
    return Status(ErrorCode::kBadFormat, path + ": not a Sluice segment (bad magic)");
  if (h->version != kLogFormatVersion)
    return Status(ErrorCode::kBadFormat,
                  path + ": segment format version " + std::to_string(h->version) +
                      ", this build reads version " + std::to_string(kLogFormatVersion));
  if (h->capacity < kMinSegmentCapacity || h->capacity > kMaxSegmentCapacity ||
      h->index_interval == 0 || (h->index_interval & (h->index_interval - 1)) != 0 ||
      h->header_bytes != header_bytes_for(h->capacity, h->index_interval) ||
      h->index_slots != h->capacity / h->index_interval)
    return Status(ErrorCode::kCorrupt, path + ": inconsistent segment header sizes");
  if (f.size() != std::uint64_t{h->header_bytes} + h->capacity)
    return Status(ErrorCode::kCorrupt, path + ": file is " + std::to_string(f.size()) +
                                           " bytes, its header says " +
                                           std::to_string(h->header_bytes + h->capacity));
  if (seq == 0)
    return Status(ErrorCode::kNotFound,
                  path + ": segment was removed by retention (its file is being reused)");
  seg->header_ = h;
  seg->data_ = f.data() + h->header_bytes;
  seg->index_ = reinterpret_cast<IndexSlot*>(f.data() + kSegmentIndexOffset);
  seg->base_offset_ = h->base_offset;
  seg->capacity_ = h->capacity;
  seg->seq_ = seq;
  seg->index_interval_ = h->index_interval;
  seg->index_slots_ = h->index_slots;
  return seg;
}

Segment::~Segment() {
  // Release: our reads of the file happen before a recycler that acquires the pin count
  // (retire_for_reuse) rewrites it.
  if (pins_ != nullptr) pins_->fetch_sub(1, std::memory_order_release);
  if (lock_fd_ >= 0) ::close(lock_fd_);  // drops the shared flock
}

std::string segment_file_name(std::int64_t base_offset) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%020" PRId64 ".seg", base_offset);
  return buf;
}

std::int64_t parse_segment_file_name(const std::string& name) {
  if (name.size() != 24 || name.compare(20, 4, ".seg") != 0) return -1;
  std::int64_t v = 0;
  for (std::size_t i = 0; i < 20; ++i) {
    char c = name[i];
    if (c < '0' || c > '9') return -1;
    v = v * 10 + (c - '0');
  }
  return v;
}

}  // namespace sluice::shm
