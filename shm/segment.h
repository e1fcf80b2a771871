// Segment: this process's handle on one mapped segment file (layout in log_format.h).
//
// Thread-safety: immutable after open; shared between the appenders and readers of one
// process through shared_ptr. The mapped bytes are shared with other processes.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <string>

#include "shm/log_format.h"
#include "shm/mapped_file.h"
#include "shm/status.h"

namespace sluice::shm {

class Segment {
 public:
  Segment() = default;
  Segment(const Segment&) = delete;
  Segment& operator=(const Segment&) = delete;
  ~Segment();

  // Maps and validates a segment file: magic, version, sizes. Errors name the file.
  static Result<std::shared_ptr<Segment>> open(const std::string& path, Access access,
                                               bool populate);
  // Validates a segment in a mapping that may be shared with other handles (a recycled file
  // keeps its mapping while it changes segment). The handle pins the file until it is
  // destroyed, so that recycling never reuses it in place and the bytes the handle reads are
  // never rewritten under it: on a writable mapping by the header's `pins` word; on a
  // read-only one, which cannot write that word, by a shared flock(2) on a description of the
  // file of its own, opened from `fd`, an open descriptor of the same file that the caller
  // keeps (-1: none, and the read-only handle does not pin). Its own, because a flock belongs
  // to an open file description, and a mapping made from one keeps it, and its lock, alive.
  // kNotFound when the file is a spare or is being reused (seq 0).
  static Result<std::shared_ptr<Segment>> attach(std::shared_ptr<MappedFile> file,
                                                 const std::string& path, int fd = -1);

  // Header bytes (header + sparse index, rounded to pages) for a given capacity/interval.
  static std::uint32_t header_bytes_for(std::uint64_t capacity, std::uint32_t index_interval);

  // Writes a fresh header into a mapped, not yet published file: base offset unset (-1),
  // seq 0, tail closed (every reservation overflows), index cleared. The data region is left
  // as it is: zero in a new file, zeroed by PartitionLog::retire_for_reuse in a recycled one.
  static void format(MappedFile& file, std::uint64_t capacity, std::uint32_t index_interval);

  SegmentHeader* header() const { return header_; }
  std::byte* data() const { return data_; }
  IndexSlot* index() const { return index_; }
  std::int64_t base_offset() const { return base_offset_; }
  std::uint64_t capacity() const { return capacity_; }
  // Bytes producers may reserve: the last kFrameHeaderBytes are kept for the END frame.
  std::uint64_t usable() const { return capacity_ - kFrameHeaderBytes; }
  std::uint32_t seq() const { return seq_; }
  std::uint32_t index_interval() const { return index_interval_; }
  std::uint32_t index_slots() const { return index_slots_; }
  const std::string& path() const { return path_; }
  const MappedFile& file() const { return *file_; }

  FrameHeader* frame_at(std::uint64_t position) const {
    return reinterpret_cast<FrameHeader*>(data_ + position);
  }

  // True when the file still holds the segment this handle opened (it was not recycled).
  bool still_current() const {
    return header_->tail_line.seq.load(std::memory_order_acquire) == seq_;
  }

 private:
  std::shared_ptr<MappedFile> file_;
  std::atomic<std::uint32_t>* pins_ = nullptr;  // set while this handle pins the file
  int lock_fd_ = -1;  // read-only mappings: holds the shared flock that pins the file
  std::string path_;
  SegmentHeader* header_ = nullptr;
  std::byte* data_ = nullptr;
  IndexSlot* index_ = nullptr;
  std::int64_t base_offset_ = -1;
  std::uint64_t capacity_ = 0;
  std::uint32_t seq_ = 0;
  std::uint32_t index_interval_ = 0;
  std::uint32_t index_slots_ = 0;
};

// "00000000000000001234.seg"
std::string segment_file_name(std::int64_t base_offset);
// Parses a segment file name; -1 if it is not one.
std::int64_t parse_segment_file_name(const std::string& name);

}  // namespace sluice::shm
