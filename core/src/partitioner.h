// Partition choice for a record, the same as Apache Kafka's Java client: a key goes to
// (murmur2(key) & 0x7fffffff) % partitions; no key: sticky (one partition per batch, changed
// when a batch is done); an explicit partition overrides both.
//
// Thread-safety: murmur2 and partition_for_key are pure; StickyPartitioner is per producer
// thread.
#pragma once

#include <cstdint>
#include <string_view>

namespace sluice {

// Kafka's murmur2 (org.apache.kafka.common.utils.Utils.murmur2): seed 0x9747b28c, signed result.
std::int32_t murmur2(std::string_view data) noexcept;

inline std::int32_t partition_for_key(std::string_view key, std::int32_t partitions) noexcept {
  return (murmur2(key) & 0x7fffffff) % partitions;
}

// Keyless records stick to one partition until the producer finishes a batch (next_batch),
// then move to another one chosen at random, as Kafka's sticky partitioner does.
class StickyPartitioner {
 public:
  explicit StickyPartitioner(std::uint64_t seed);
  std::int32_t partition(std::int32_t partitions);
  void next_batch() {
    previous_ = current_;
    current_ = -1;
  }

 private:
  std::uint64_t state_;
  std::int32_t current_ = -1;
  std::int32_t previous_ = -1;
};

}  // namespace sluice
