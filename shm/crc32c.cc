#include "shm/crc32c.h"

#include <isa-l/crc.h>
#include <wmmintrin.h>

#include <algorithm>
#include <cstring>

namespace sluice::shm {
namespace {

// Reflected CRC-32C polynomial.
constexpr std::uint32_t kPoly = 0x82f63b78u;

// Multiplies a and b modulo the polynomial (bit-reflected representation), bit by bit.
// Only used to build the shift constants at start-up.
constexpr std::uint32_t gf_multiply(std::uint32_t a, std::uint32_t b) {
  std::uint32_t product = 0;
  for (int i = 0; i < 32; ++i) {
    if (b & 0x80000000u) product ^= a;
    b <<= 1;
    a = (a & 1u) ? (a >> 1) ^ kPoly : a >> 1;
  }
  return product;
}

// x^bits mod P, in reflected form.
constexpr std::uint32_t x_power(std::size_t bits) {
  std::uint32_t result = 0x80000000u;  // x^0
  std::uint32_t square = 0x40000000u;  // x^1
  // x^bits = product of x^(2^k) for the set bits of `bits`.
  while (bits != 0) {
    if (bits & 1u) result = gf_multiply(result, square);
    square = gf_multiply(square, square);
    bits >>= 1;
  }
  return result;
}

// Shifting a CRC register over n zero bytes multiplies it by x^(8n). The carry-less product
// of two reflected 32-bit values is reflected and one bit short, and the crc32 instruction
// that reduces it multiplies by x^32 once more: hence the constant x^(8n - 33).
constexpr std::uint32_t shift_constant(std::size_t bytes) {
  return x_power(8 * bytes - 33);
}

// crc32_iscsi takes an int length; anything longer goes in pieces of this size.
constexpr std::size_t kMaxIsalPiece = std::size_t{1} << 30;

// Each round runs three streams of `block` bytes (a multiple of 8, at most kMaxBlock) and
// combines them; the block is chosen so that the rounds cover the buffer with < 24 bytes left.
constexpr std::size_t kMaxBlock = 4096;

struct ShiftPair {
  std::uint32_t one_block;
  std::uint32_t two_blocks;
};

// ShiftPair for every block size 8, 16, ... kMaxBlock, built once.
const ShiftPair* shift_table() {
  static const auto* table = [] {
    auto* t = new ShiftPair[kMaxBlock / 8 + 1];
    t[0] = {0, 0};
    for (std::size_t k = 1; k <= kMaxBlock / 8; ++k)
      t[k] = {shift_constant(8 * k), shift_constant(16 * k)};
    return t;
  }();
  return table;
}

// crc * x^(8n) mod P: carry-less multiply, then reduce with the crc32 instruction.
inline std::uint32_t shift_crc(std::uint32_t crc, std::uint32_t constant) {
  __m128i product = _mm_clmulepi64_si128(_mm_cvtsi32_si128(static_cast<int>(crc)),
                                         _mm_cvtsi32_si128(static_cast<int>(constant)), 0);
  auto low = static_cast<std::uint64_t>(_mm_cvtsi128_si64(product));
  return static_cast<std::uint32_t>(_mm_crc32_u64(0, low));
}

inline std::uint64_t load64(const unsigned char* p) {
  std::uint64_t v;
  std::memcpy(&v, p, sizeof v);
  return v;
}

}  // namespace

std::uint32_t crc32c_extend_streams(std::uint32_t crc, const void* data,
                                    std::size_t size) noexcept {
  const auto* p = static_cast<const unsigned char*>(data);
  std::uint64_t c = ~crc;

  const ShiftPair* shifts = shift_table();
  while (size >= 3 * 64) {
    std::size_t block = std::min(kMaxBlock, size / 24 * 8);
    std::uint64_t c0 = c, c1 = 0, c2 = 0;
    for (std::size_t i = 0; i < block; i += 8) {
      c0 = _mm_crc32_u64(c0, load64(p + i));
      c1 = _mm_crc32_u64(c1, load64(p + block + i));
      c2 = _mm_crc32_u64(c2, load64(p + 2 * block + i));
    }
    const ShiftPair& k = shifts[block / 8];
    c = shift_crc(static_cast<std::uint32_t>(c0), k.two_blocks) ^
        shift_crc(static_cast<std::uint32_t>(c1), k.one_block) ^ c2;
    p += 3 * block;
    size -= 3 * block;
  }

  return crc32c_extend(~static_cast<std::uint32_t>(c), p, size);
}

std::uint32_t crc32c_extend_isal(std::uint32_t crc, const void* data, std::size_t size) noexcept {
  // ISA-L keeps the CRC register as is: no inversion before or after, so ours (inverted at
  // both ends) goes in and comes out complemented. It takes a non-const pointer but only
  // reads through it.
  auto* p = static_cast<unsigned char*>(const_cast<void*>(data));
  std::uint32_t reg = ~crc;
  while (size != 0) {
    std::size_t piece = std::min(size, kMaxIsalPiece);
    reg = crc32_iscsi(p, static_cast<int>(piece), reg);
    p += piece;
    size -= piece;
  }
  return ~reg;
}

}  // namespace sluice::shm
