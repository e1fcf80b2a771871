// CRC-32C (Castagnoli).
//
// Three pieces of code, by buffer size and by who calls:
//   - under 256 bytes (every frame header, small values): inline here, on the SSE4.2 crc32
//     instruction;
//   - from 256 bytes, for code that computes checksums back to back (CrcPath::kBulk: the
//     appender's batch paths, Kafka record batches, the verifier): Intel's ISA-L
//     (crc32_iscsi, Debian's libisal), which picks its code for the CPU at run time,
//     carry-less-multiply folding on AVX-512 where there is one;
//   - from 256 bytes up to 4 KiB otherwise (CrcPath::kLatency, the default: single appends and
//     a reader's optional check): three interleaved crc32 streams, ours. ISA-L's AVX-512
//     code is 2.4x faster at 1 KiB in a loop, but called once between waits it costs more
//     than it saves: it added 130-190 ns to the 1 KiB one-way latency (docs/hand-written.md).
//     From 4 KiB the saving is larger than that, and ISA-L runs.
//
// Thread-safety: pure functions.
#pragma once

#include <nmmintrin.h>

#include <cstddef>
#include <cstdint>
#include <cstring>

namespace sluice::shm {

// Who computes a checksum (see above): it picks the code for buffers of 256 bytes and more.
enum class CrcPath { kLatency, kBulk };

// Buffers from this size go to ISA-L on either path.
inline constexpr std::size_t kCrcIsalAlwaysBytes = 4096;

// The out-of-line paths, for any size: ISA-L's, and our three interleaved crc32 streams.
std::uint32_t crc32c_extend_isal(std::uint32_t crc, const void* data, std::size_t size) noexcept;
std::uint32_t crc32c_extend_streams(std::uint32_t crc, const void* data, std::size_t size) noexcept;

// Continues a CRC-32C: crc32c_extend(crc32c_extend(0, a), b) == crc32c(a ++ b).
template <CrcPath kPath = CrcPath::kLatency>
inline std::uint32_t crc32c_extend(std::uint32_t crc, const void* data, std::size_t size) noexcept {
  if (size >= 256) [[unlikely]] {
    if (kPath == CrcPath::kBulk || size >= kCrcIsalAlwaysBytes)
      return crc32c_extend_isal(crc, data, size);
    return crc32c_extend_streams(crc, data, size);
  }
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

template <CrcPath kPath = CrcPath::kLatency>
inline std::uint32_t crc32c(const void* data, std::size_t size) noexcept {
  return crc32c_extend<kPath>(0, data, size);
}

}  // namespace sluice::shm
