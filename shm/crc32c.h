// CRC-32C (Castagnoli) with the SSE4.2 crc32 instruction.
//
// Written by hand because Debian 12 packages no C/C++ CRC-32C library (google/crc32c is not
// packaged); see docs/hand-written.md. Buffers of 768 bytes and more are split into three
// interleaved streams that are combined with carry-less multiplication, so the instruction's
// three-cycle latency does not limit throughput on large values.
//
// Thread-safety: pure functions.
#pragma once

#include <cstddef>
#include <cstdint>

namespace sluice::shm {

// Continues a CRC-32C: crc32c_extend(crc32c_extend(0, a), b) == crc32c(a ++ b).
std::uint32_t crc32c_extend(std::uint32_t crc, const void* data, std::size_t size) noexcept;

inline std::uint32_t crc32c(const void* data, std::size_t size) noexcept {
  return crc32c_extend(0, data, size);
}

}  // namespace sluice::shm
