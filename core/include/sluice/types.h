// Plain types of the public API: topic-partitions, records as consumers see them, headers.
//
// Thread-safety: plain values; a Record is a view valid until the consumer's next poll.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace sluice {

struct TopicPartition {
  std::string topic;
  std::int32_t partition = 0;
  friend bool operator==(const TopicPartition&, const TopicPartition&) = default;
  friend auto operator<=>(const TopicPartition&, const TopicPartition&) = default;
};

// Where a record went: a record's identity is topic + partition + offset.
struct RecordId {
  std::int32_t partition = -1;
  std::int64_t offset = -1;
};

struct Header {
  std::string_view name;
  std::optional<std::string_view> value;  // nullopt: null
};

// What slow readers do to producers and retention.
enum class SlowReaderPolicy {
  kRetain,        // Kafka's: retention deletes old segments; a lagging reader gets out-of-range
  kBackpressure,  // producers are held back rather than delete what a group has not consumed
};

enum class AutoOffsetReset { kEarliest, kLatest, kNone };

// Per-topic configuration (Kafka's names in comments).
struct TopicConfig {
  std::int32_t partitions = 1;
  std::uint64_t segment_bytes = std::uint64_t{64} << 20;  // segment.bytes
  std::int64_t retention_bytes = -1;                      // retention.bytes, per partition
  std::int64_t retention_ms = 7LL * 24 * 3600 * 1000;     // retention.ms
  std::uint32_t max_record_bytes = 1 << 20;               // max.message.bytes
  SlowReaderPolicy slow_reader_policy = SlowReaderPolicy::kRetain;
};

struct TopicDescription {
  std::string name;
  TopicConfig config;
  struct Partition {
    std::int32_t partition = 0;
    std::int64_t start_offset = 0;  // earliest retained
    std::int64_t end_offset = 0;    // next offset to be assigned
    std::uint64_t bytes = 0;        // segment files' size
    std::uint32_t segments = 0;
  };
  std::vector<Partition> partitions;
};

// The data directory: --data-dir, else $SLUICE_DATA_DIR, else /dev/shm/sluice.
std::string default_data_dir();

}  // namespace sluice
