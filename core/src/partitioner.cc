#include "partitioner.h"

#include <cstring>

namespace sluice {

std::int32_t murmur2(std::string_view data) noexcept {
  // Java does this arithmetic on int; unsigned arithmetic gives the same bits without
  // undefined behaviour on overflow.
  constexpr std::uint32_t kSeed = 0x9747b28c;
  constexpr std::uint32_t m = 0x5bd1e995;
  constexpr int r = 24;
  const auto length = static_cast<std::uint32_t>(data.size());
  std::uint32_t h = kSeed ^ length;
  const auto* p = reinterpret_cast<const unsigned char*>(data.data());
  std::size_t chunks = data.size() / 4;
  for (std::size_t i = 0; i < chunks; ++i) {
    std::uint32_t k = std::uint32_t{p[4 * i]} | std::uint32_t{p[4 * i + 1]} << 8 |
                      std::uint32_t{p[4 * i + 2]} << 16 | std::uint32_t{p[4 * i + 3]} << 24;
    k *= m;
    k ^= k >> r;
    k *= m;
    h *= m;
    h ^= k;
  }
  const unsigned char* tail = p + chunks * 4;
  switch (data.size() % 4) {
    case 3:
      h ^= std::uint32_t{tail[2]} << 16;
      [[fallthrough]];
    case 2:
      h ^= std::uint32_t{tail[1]} << 8;
      [[fallthrough]];
    case 1:
      h ^= tail[0];
      h *= m;
  }
  h ^= h >> 13;
  h *= m;
  h ^= h >> 15;
  std::int32_t out;
  std::memcpy(&out, &h, sizeof out);
  return out;
}

StickyPartitioner::StickyPartitioner(std::uint64_t seed) : state_(seed | 1) {}

std::int32_t StickyPartitioner::partition(std::int32_t partitions) {
  if (current_ < 0 || current_ >= partitions) {
    // xorshift64*: cheap, good enough to spread batches.
    state_ ^= state_ >> 12;
    state_ ^= state_ << 25;
    state_ ^= state_ >> 27;
    std::uint64_t r = state_ * 0x2545f4914f6cdd1dULL;
    auto choice = static_cast<std::int32_t>((r >> 33) % static_cast<std::uint64_t>(partitions));
    if (partitions > 1 && choice == previous_) choice = (choice + 1) % partitions;
    current_ = choice;
  }
  return current_;
}

}  // namespace sluice
