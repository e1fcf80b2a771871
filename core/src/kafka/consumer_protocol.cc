// Decoding and encoding of the consumer protocol's subscription and assignment messages; the
// layout is drawn in consumer_protocol.h.
#include "kafka/consumer_protocol.h"

#include <algorithm>

#include "kafka/wire.h"

namespace sluice::kafka {

namespace {

std::int16_t clamp_version(std::int16_t v) {
  return std::clamp<std::int16_t>(v, 0, kConsumerProtocolHighestVersion);
}

std::optional<std::string> owned(std::optional<std::string_view> v) {
  if (!v) return std::nullopt;
  return std::string(*v);
}

std::vector<ConsumerTopicPartitions> read_topic_partitions(ByteReader& r) {
  std::vector<ConsumerTopicPartitions> out;
  // Each element is at least a string length (2) and an array length (4).
  const std::int32_t n = r.array_length(6);
  out.reserve(static_cast<std::size_t>(n));
  for (std::int32_t i = 0; i < n && r.ok(); ++i) {
    ConsumerTopicPartitions tp;
    tp.topic = std::string(r.string());
    const std::int32_t m = r.array_length(4);
    tp.partitions.reserve(static_cast<std::size_t>(m));
    for (std::int32_t j = 0; j < m && r.ok(); ++j) tp.partitions.push_back(r.i32());
    out.push_back(std::move(tp));
  }
  return out;
}

void write_topic_partitions(ByteWriter& w, const std::vector<ConsumerTopicPartitions>& tps) {
  w.array_length(tps.size());
  for (const ConsumerTopicPartitions& tp : tps) {
    w.string(tp.topic);
    w.array_length(tp.partitions.size());
    for (std::int32_t p : tp.partitions) w.i32(p);
  }
}

std::optional<std::string_view> view(const std::optional<std::string>& s) {
  if (!s) return std::nullopt;
  return std::string_view(*s);
}

}  // namespace

std::optional<ConsumerSubscription> decode_consumer_subscription(std::string_view bytes) {
  ByteReader r(bytes);
  ConsumerSubscription s;
  s.version = r.i16();
  if (!r.ok() || s.version < 0) return std::nullopt;
  const std::int16_t v = clamp_version(s.version);
  const std::int32_t n = r.array_length(2);
  s.topics.reserve(static_cast<std::size_t>(n));
  for (std::int32_t i = 0; i < n && r.ok(); ++i) s.topics.emplace_back(r.string());
  // A message that ends exactly where a field would start keeps that field's default.
  if (r.remaining() > 0) s.user_data = owned(r.nullable_bytes());
  if (v >= 1 && r.remaining() > 0) s.owned_partitions = read_topic_partitions(r);
  if (v >= 2 && r.remaining() > 0) s.generation_id = r.i32();
  if (v >= 3 && r.remaining() > 0) {
    std::optional<std::string_view> rack = r.nullable_string();
    if (rack) s.rack_id = std::string(*rack);
  }
  if (!r.ok()) return std::nullopt;
  return s;
}

std::optional<ConsumerAssignment> decode_consumer_assignment(std::string_view bytes) {
  ByteReader r(bytes);
  ConsumerAssignment a;
  a.version = r.i16();
  if (!r.ok() || a.version < 0) return std::nullopt;
  a.assigned_partitions = read_topic_partitions(r);
  if (r.remaining() > 0) a.user_data = owned(r.nullable_bytes());
  if (!r.ok()) return std::nullopt;
  return a;
}

std::string encode_consumer_subscription(const ConsumerSubscription& s) {
  const std::int16_t v = clamp_version(s.version);
  ByteWriter w;
  w.i16(v);
  w.array_length(s.topics.size());
  for (const std::string& t : s.topics) w.string(t);
  w.nullable_bytes(view(s.user_data));
  if (v >= 1) write_topic_partitions(w, s.owned_partitions);
  if (v >= 2) w.i32(s.generation_id);
  if (v >= 3) w.nullable_string(view(s.rack_id));
  return w.take();
}

std::string encode_consumer_assignment(const ConsumerAssignment& a) {
  ByteWriter w;
  w.i16(clamp_version(a.version));
  write_topic_partitions(w, a.assigned_partitions);
  w.nullable_bytes(view(a.user_data));
  return w.take();
}

}  // namespace sluice::kafka
