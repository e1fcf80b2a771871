// The consumer protocol's embedded messages: what a Kafka consumer puts in JoinGroup's protocol
// metadata (ConsumerProtocolSubscription) and what its leader puts in SyncGroup's assignments
// (ConsumerProtocolAssignment), for protocol type "consumer". The group coordinator treats both
// as opaque bytes; Sluice decodes them only to show, in `sluice group describe`, what each Kafka
// member subscribes to and owns.
//
// Layout (Kafka's ConsumerProtocolSubscription.json / ConsumerProtocolAssignment.json, never
// flexible, big-endian, primitives as in wire.h):
//
//   Subscription  version int16
//                 topics            [string]                         v0+
//                 user_data         nullable bytes                   v0+
//                 owned_partitions  [topic string, partitions [int32]] v1+
//                 generation_id     int32 (absent: -1)               v2+
//                 rack_id           nullable string                  v3+
//
//   Assignment    version int16
//                 assigned_partitions [topic string, partitions [int32]]  v0+ (v1-v3 add nothing)
//                 user_data           nullable bytes                      v0+
//
// Like Kafka's own ConsumerProtocol, a version above the highest known (3) is read as the
// highest known, since versions only append fields, and bytes after the last known field are
// ignored. Some clients end the message early (no user_data): a message that ends exactly where
// a field would begin keeps that and later fields at their defaults. A negative version or a field
// that runs short makes the whole message malformed: the decoders return nullopt, never throw,
// never read out of bounds.
//
// Thread-safety: pure functions.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace sluice::kafka {

inline constexpr std::int16_t kConsumerProtocolHighestVersion = 3;

struct ConsumerTopicPartitions {
  std::string topic;
  std::vector<std::int32_t> partitions;

  bool operator==(const ConsumerTopicPartitions&) const = default;
};

struct ConsumerSubscription {
  std::int16_t version = 0;  // as sent (may exceed the highest known)
  std::vector<std::string> topics;
  std::optional<std::string> user_data;
  std::vector<ConsumerTopicPartitions> owned_partitions;  // v1+
  std::int32_t generation_id = -1;                        // v2+
  std::optional<std::string> rack_id;                     // v3+

  bool operator==(const ConsumerSubscription&) const = default;
};

struct ConsumerAssignment {
  std::int16_t version = 0;  // as sent
  std::vector<ConsumerTopicPartitions> assigned_partitions;
  std::optional<std::string> user_data;

  bool operator==(const ConsumerAssignment&) const = default;
};

// nullopt: malformed (empty, short, negative lengths or version).
std::optional<ConsumerSubscription> decode_consumer_subscription(std::string_view bytes);
std::optional<ConsumerAssignment> decode_consumer_assignment(std::string_view bytes);

// Encodes the fields of `version` (clamped to 0..3; the written version field is the clamped
// one). For tests and tools; the coordinator never encodes these.
std::string encode_consumer_subscription(const ConsumerSubscription& subscription);
std::string encode_consumer_assignment(const ConsumerAssignment& assignment);

}  // namespace sluice::kafka
