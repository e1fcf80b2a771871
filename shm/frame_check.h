// Frame checksums and structural checks, shared by the appender (computes), the reader
// (optionally verifies), recovery and the verify/dump tools.
//
// Thread-safety: pure functions over bytes the caller has acquired (see log_format.h).
#pragma once

#include <cstdint>
#include <string>

#include "shm/crc32c.h"
#include "shm/log_format.h"

namespace sluice::shm {

// crc32c over bytes 8..24 (offset, timestamp) then 28..length (type, flags, body).
template <CrcPath kPath = CrcPath::kLatency>
inline std::uint32_t frame_crc(const FrameHeader* frame, std::uint32_t length) noexcept {
  const auto* bytes = reinterpret_cast<const unsigned char*>(frame);
  std::uint32_t crc = crc32c(bytes + 8, 16);
  return crc32c_extend<kPath>(crc, bytes + 28, length - 28);
}

enum class FrameProblem {
  kNone,
  kNotWritten,  // commit word of another seq, or zero: nothing (yet) at this position
  kInProgress,  // claimed, not committed
  kBadLength,   // length below the header size or past the segment end
  kBadType,     // unknown frame type
  kBadCrc,      // checksum mismatch
  kBadBody,     // key/headers lengths that do not fit the frame
};

struct FrameCheck {
  FrameProblem problem = FrameProblem::kNone;
  std::uint32_t length = 0;  // valid when problem == kNone (or kInProgress: claimed length)
};

// Checks the frame at `position` of a segment whose data region has `capacity` bytes and
// whose frames carry `seq`. Loads the commit word with acquire.
FrameCheck check_frame(const std::byte* data, std::uint64_t capacity, std::uint32_t seq,
                       std::uint64_t position, bool verify_crc) noexcept;

const char* describe(FrameProblem problem) noexcept;

}  // namespace sluice::shm
