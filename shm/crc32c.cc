#include "shm/crc32c.h"

#include <isa-l/crc.h>

#include <algorithm>

namespace sluice::shm {
namespace {

// crc32_iscsi takes an int length; anything longer goes in pieces of this size.
constexpr std::size_t kMaxPiece = std::size_t{1} << 30;

}  // namespace

std::uint32_t crc32c_extend_large(std::uint32_t crc, const void* data, std::size_t size) noexcept {
  // ISA-L keeps the CRC register as is: no inversion before or after, so ours (inverted at
  // both ends) goes in and comes out complemented. It takes a non-const pointer but only
  // reads through it.
  auto* p = static_cast<unsigned char*>(const_cast<void*>(data));
  std::uint32_t reg = ~crc;
  while (size != 0) {
    std::size_t piece = std::min(size, kMaxPiece);
    reg = crc32_iscsi(p, static_cast<int>(piece), reg);
    p += piece;
    size -= piece;
  }
  return ~reg;
}

}  // namespace sluice::shm
