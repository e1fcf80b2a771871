// CRC-32C (Castagnoli) with the SSE4.2 crc32 instruction.
//
// Written by hand because Debian 12 packages no C/C++ CRC-32C library (google/crc32c is not
// packaged); see docs/hand-written.md. Small buffers (every frame header, small values) run
// inline; buffers of 256 bytes and more go to crc32c_extend_large, which splits them into
// three interleaved streams combined with carry-less multiplication, so the instruction's
// three-cycle latency does not limit throughput on large values.
//
// Thread-safety: pure functions.
#pragma once

#include <nmmintrin.h>

#include <cstddef>
#include <cstdint>
#include <cstring>

namespace sluice::shm {

// Continues a CRC over a buffer of any size (the out-of-line path for large buffers).
std::uint32_t crc32c_extend_large(std::uint32_t crc, const void* data, std::size_t size) noexcept;

// Continues a CRC-32C: crc32c_extend(crc32c_extend(0, a), b) == crc32c(a ++ b).
inline std::uint32_t crc32c_extend(std::uint32_t crc, const void* data, std::size_t size) noexcept {
  if (size >= 256) [[unlikely]]
    return crc32c_extend_large(crc, data, size);
  const auto* p = static_cast<const unsigned char*>(data);
  std::uint64_t c = ~crc;
  for (; size >= 8; size -= 8, p += 8) {
    std::uint64_t v;
    std::memcpy(&v, p, 8);
    c = _mm_crc32_u64(c, v);
  }
  auto c32 = static_cast<std::uint32_t>(c);
  if (size & 4) {
    std::uint32_t v;
    std::memcpy(&v, p, 4);
    c32 = _mm_crc32_u32(c32, v);
    p += 4;
  }
  if (size & 2) {
    std::uint16_t v;
    std::memcpy(&v, p, 2);
    c32 = _mm_crc32_u16(c32, v);
    p += 2;
  }
  if (size & 1) c32 = _mm_crc32_u8(c32, *p);
  return ~c32;
}

inline std::uint32_t crc32c(const void* data, std::size_t size) noexcept {
  return crc32c_extend(0, data, size);
}

}  // namespace sluice::shm
