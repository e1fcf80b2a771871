#include "shm/crc32c.h"

#include <sys/mman.h>

#include <algorithm>
#include <catch2/catch.hpp>
#include <cstdint>
#include <random>
#include <string>
#include <vector>

namespace sluice::shm {
namespace {

// The definition, one bit at a time (reflected polynomial 0x82F63B78).
std::uint32_t crc32c_bitwise(const void* data, std::size_t size, std::uint32_t crc = 0) {
  const auto* p = static_cast<const unsigned char*>(data);
  crc = ~crc;
  for (std::size_t i = 0; i < size; ++i) {
    crc ^= p[i];
    for (int bit = 0; bit < 8; ++bit) crc = (crc >> 1) ^ (0x82f63b78u & (0u - (crc & 1u)));
  }
  return ~crc;
}

std::vector<unsigned char> random_bytes(std::size_t n, std::uint32_t seed) {
  std::mt19937 rng(seed);
  std::vector<unsigned char> v(n);
  for (auto& b : v) b = static_cast<unsigned char>(rng());
  return v;
}

TEST_CASE("crc32c: the published check values", "[crc32c]") {
  const std::string check = "123456789";
  CHECK(crc32c(check.data(), check.size()) == 0xE3069283u);
  CHECK(crc32c_bitwise(check.data(), check.size()) == 0xE3069283u);

  // RFC 3720 (iSCSI), appendix B.4.
  std::vector<unsigned char> zeros(32, 0x00), ones(32, 0xff), ascending(32), descending(32);
  for (int i = 0; i < 32; ++i) {
    ascending[static_cast<std::size_t>(i)] = static_cast<unsigned char>(i);
    descending[static_cast<std::size_t>(i)] = static_cast<unsigned char>(31 - i);
  }
  CHECK(crc32c(zeros.data(), zeros.size()) == 0x8A9136AAu);
  CHECK(crc32c(ones.data(), ones.size()) == 0x62A8AB43u);
  CHECK(crc32c(ascending.data(), ascending.size()) == 0x46DD794Eu);
  CHECK(crc32c(descending.data(), descending.size()) == 0x113FDB5Cu);
  CHECK(crc32c(nullptr, 0) == 0u);
}

TEST_CASE("crc32c: every length from 0 to 5000 matches a bitwise reference, on every path",
          "[crc32c]") {
  auto data = random_bytes(5000 + 16, 42);
  for (std::size_t len = 0; len <= 5000; ++len) {
    INFO("length " << len);
    const std::uint32_t expected = crc32c_bitwise(data.data(), len);
    REQUIRE(crc32c(data.data(), len) == expected);
    REQUIRE(crc32c<CrcPath::kBulk>(data.data(), len) == expected);
    REQUIRE(crc32c_extend_streams(0, data.data(), len) == expected);
    REQUIRE(crc32c_extend_isal(0, data.data(), len) == expected);
  }
  // Unaligned starts, around the 256-byte and 4 KiB thresholds and the streams' 768 bytes.
  for (std::size_t start = 1; start < 8; ++start) {
    for (std::size_t len :
         {7u, 64u, 255u, 256u, 257u, 767u, 768u, 1056u, 2304u, 4095u, 4096u, 4097u, 4999u}) {
      INFO("start " << start << " length " << len);
      const std::uint32_t expected = crc32c_bitwise(data.data() + start, len);
      REQUIRE(crc32c(data.data() + start, len) == expected);
      REQUIRE(crc32c<CrcPath::kBulk>(data.data() + start, len) == expected);
    }
  }
}

TEST_CASE("crc32c: large buffers match the bitwise reference", "[crc32c]") {
  auto data = random_bytes(1 << 20, 7);
  for (std::size_t len : {768u * 2 + 5, 768u * 10, 65536u + 3, 1u << 20}) {
    INFO("length " << len);
    const std::uint32_t expected = crc32c_bitwise(data.data(), len);
    REQUIRE(crc32c(data.data(), len) == expected);
    REQUIRE(crc32c_extend_streams(0, data.data(), len) == expected);
    REQUIRE(crc32c_extend_isal(0, data.data(), len) == expected);
  }
  std::vector<unsigned char> ones(4096, 0xff);
  REQUIRE(crc32c(ones.data(), ones.size()) == crc32c_bitwise(ones.data(), ones.size()));
}

TEST_CASE("crc32c: extending piece by piece equals one pass", "[crc32c]") {
  auto data = random_bytes(5000, 1234);
  const std::uint32_t whole = crc32c(data.data(), data.size());
  REQUIRE(whole == crc32c_bitwise(data.data(), data.size()));
  for (std::size_t split = 0; split <= data.size(); split += (split < 1600 ? 1 : 97)) {
    INFO("split at " << split);
    std::uint32_t c = crc32c_extend(0, data.data(), split);
    c = crc32c_extend(c, data.data() + split, data.size() - split);
    REQUIRE(c == whole);
  }
  // Three uneven pieces, each on either side of the large-buffer threshold, on both paths.
  for (std::size_t a : {0u, 5u, 255u, 256u, 1000u}) {
    for (std::size_t b : {1u, 255u, 256u, 700u, 2000u}) {
      INFO("pieces " << a << ", " << b << ", rest");
      std::uint32_t c = crc32c_extend(0, data.data(), a);
      c = crc32c_extend(c, data.data() + a, b);
      c = crc32c_extend(c, data.data() + a + b, data.size() - a - b);
      REQUIRE(c == whole);
      c = crc32c_extend<CrcPath::kBulk>(0, data.data(), a);
      c = crc32c_extend<CrcPath::kBulk>(c, data.data() + a, b);
      c = crc32c_extend<CrcPath::kBulk>(c, data.data() + a + b, data.size() - a - b);
      REQUIRE(c == whole);
    }
  }
  // Extending from a non-zero CRC agrees with the reference's continuation too.
  REQUIRE(crc32c_extend(0x12345678u, data.data(), 2000) ==
          crc32c_bitwise(data.data(), 2000, 0x12345678u));
  REQUIRE(crc32c_extend<CrcPath::kBulk>(0x12345678u, data.data(), 2000) ==
          crc32c_bitwise(data.data(), 2000, 0x12345678u));
}

TEST_CASE("crc32c: a buffer past ISA-L's int length goes in pieces", "[crc32c]") {
  // ISA-L takes the length as a 32-bit int: in one call, 4 GiB + 4099 bytes would be read as
  // 4099. The buffer is zero pages (mapped, never written: every page is the kernel's one
  // zero page, so it costs no memory). The reference extends in 200-byte steps, which never
  // leave the inline path.
  const std::size_t size = (std::size_t{4} << 30) + 4096 + 3;
  void* zeros =
      ::mmap(nullptr, size, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
  REQUIRE(zeros != MAP_FAILED);
  const auto* p = static_cast<const unsigned char*>(zeros);
  std::uint32_t reference = 0;
  for (std::size_t at = 0; at < size; at += 200)
    reference = crc32c_extend(reference, p + at, std::min<std::size_t>(200, size - at));
  std::uint32_t whole = crc32c(p, size);
  ::munmap(zeros, size);
  REQUIRE(whole == reference);
}

}  // namespace
}  // namespace sluice::shm
