// Structure and checksum verification of segments and partitions, read-only, safe while
// producers and the broker run. Used by crash recovery's callers and by `sluice verify` and
// `sluice dump`.
//
// Thread-safety: free functions; each call maps what it reads.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "shm/log_format.h"
#include "shm/status.h"

namespace sluice::shm {

struct FrameInfo {
  std::uint64_t position = 0;  // byte position in the data region
  std::uint32_t length = 0;
  std::uint8_t type = 0;
  std::uint8_t flags = 0;
  std::int64_t offset = -1;
  std::int64_t timestamp_ns = 0;
  bool crc_ok = false;
  const FrameHeader* frame = nullptr;  // valid during the visitor call
};

struct Damage {
  std::string file;
  std::uint64_t position = 0;  // byte position in the data region
  std::int64_t after_offset = -1;
  std::string cause;
  std::string to_string() const;
};

struct SegmentReport {
  std::string path;
  std::int64_t base_offset = -1;
  std::uint32_t seq = 0;
  std::uint64_t capacity = 0;
  std::uint64_t records = 0;
  std::uint64_t padding_frames = 0;
  std::uint64_t end_position = 0;  // where the walk stopped
  std::int64_t next_base = -1;     // from the END frame, if sealed
  std::int64_t first_offset = -1;
  std::int64_t last_offset = -1;
  bool in_progress_at_end = false;  // a claim not yet committed where the walk stopped
  std::vector<Damage> damage;
};

struct PartitionReport {
  std::string dir;
  std::vector<SegmentReport> segments;
  std::vector<Damage> damage;  // all damage, segments' included
};

using FrameVisitor = std::function<void(const FrameInfo&)>;

// Walks every frame of one segment file, checking structure, CRC and offset order.
// The visitor, if given, sees each frame. Errors opening the file are a Status; damage inside
// it is reported in the SegmentReport.
Result<SegmentReport> verify_segment(const std::string& path, const FrameVisitor& visitor = {});

// Verifies partition.ctl and every segment of a partition directory, and that each sealed
// segment's END names the next segment present.
Result<PartitionReport> verify_partition(const std::string& dir);

}  // namespace sluice::shm
