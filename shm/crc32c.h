// CRC-32C (Castagnoli).
//
// Buffers of 256 bytes and more go to Intel's ISA-L (crc32_iscsi, Debian's libisal), which
// picks the fastest code for the CPU at run time (carry-less multiply folding, with AVX-512
// where there is one). Smaller buffers (every frame header, small values) run inline here on
// the SSE4.2 crc32 instruction: below 256 bytes ISA-L takes its slow path, and a call costs
// more than the CRC (docs/hand-written.md has the figures).
//
// Thread-safety: pure functions.
#pragma once

#include <nmmintrin.h>

#include <cstddef>
#include <cstdint>
#include <cstring>

namespace sluice::shm {

// Continues a CRC over a buffer of any size (the out-of-line path for large buffers, ISA-L).
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
