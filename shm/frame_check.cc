#include "shm/frame_check.h"

#include <cstring>

namespace sluice::shm {

FrameCheck check_frame(const std::byte* data, std::uint64_t capacity, std::uint32_t seq,
                       std::uint64_t position, bool verify_crc) noexcept {
  FrameCheck out;
  const auto* frame = reinterpret_cast<const FrameHeader*>(data + position);
  // Acquire: pairs with the writer's release of the commit word (LogAppender::commit), so
  // the frame's bytes are visible once the word says committed.
  std::uint64_t word = frame->commit.load(std::memory_order_acquire);
  std::int32_t length = commit_length(word);
  if (commit_seq(word) != seq || length == 0) {
    out.problem = FrameProblem::kNotWritten;
    return out;
  }
  if (length < 0) {
    out.problem = FrameProblem::kInProgress;
    out.length = static_cast<std::uint32_t>(-static_cast<std::int64_t>(length));
    return out;
  }
  auto len = static_cast<std::uint32_t>(length);
  if (len < kFrameHeaderBytes || position + align_frame(len) > capacity) {
    out.problem = FrameProblem::kBadLength;
    return out;
  }
  out.length = len;
  std::uint8_t type = frame->type;
  if (type != kFrameData && type != kFramePad && type != kFrameEnd) {
    out.problem = FrameProblem::kBadType;
    return out;
  }
  if (type != kFrameData) return out;
  // Body structure: optional key and headers blocks must fit inside the frame.
  std::uint64_t body = kFrameHeaderBytes;
  const auto* bytes = reinterpret_cast<const unsigned char*>(frame);
  for (std::uint8_t flag : {std::uint8_t{kFlagKey}, std::uint8_t{kFlagHeaders}}) {
    if ((frame->flags & flag) == 0) continue;
    if (body + 4 > len) {
      out.problem = FrameProblem::kBadBody;
      return out;
    }
    std::uint32_t n;
    std::memcpy(&n, bytes + body, 4);
    body += 4 + std::uint64_t{n};
    if (body > len) {
      out.problem = FrameProblem::kBadBody;
      return out;
    }
  }
  if (verify_crc && frame_crc(frame, len) != frame->crc32c) out.problem = FrameProblem::kBadCrc;
  return out;
}

const char* describe(FrameProblem problem) noexcept {
  switch (problem) {
    case FrameProblem::kNone:
      return "ok";
    case FrameProblem::kNotWritten:
      return "no frame written here";
    case FrameProblem::kInProgress:
      return "frame claimed but never committed";
    case FrameProblem::kBadLength:
      return "frame length out of bounds";
    case FrameProblem::kBadType:
      return "unknown frame type";
    case FrameProblem::kBadCrc:
      return "CRC-32C mismatch";
    case FrameProblem::kBadBody:
      return "key/headers lengths overrun the frame";
  }
  return "unknown problem";
}

}  // namespace sluice::shm
