#include "control_protocol.h"

namespace sluice::control {

json to_json(const TopicConfig& c) {
  return {{"partitions", c.partitions},
          {"segment_bytes", c.segment_bytes},
          {"retention_bytes", c.retention_bytes},
          {"retention_ms", c.retention_ms},
          {"max_record_bytes", c.max_record_bytes},
          {"slow_reader_policy",
           c.slow_reader_policy == SlowReaderPolicy::kBackpressure ? "backpressure" : "retain"}};
}

Result<TopicConfig> topic_config_from(const json& j, const TopicConfig& base) {
  TopicConfig c = base;
  try {
    if (!j.is_object()) return Status(ErrorCode::kProtocol, "topic config is not an object");
    if (j.contains("partitions")) c.partitions = j["partitions"].get<std::int32_t>();
    if (j.contains("segment_bytes")) c.segment_bytes = j["segment_bytes"].get<std::uint64_t>();
    if (j.contains("retention_bytes")) c.retention_bytes = j["retention_bytes"].get<std::int64_t>();
    if (j.contains("retention_ms")) c.retention_ms = j["retention_ms"].get<std::int64_t>();
    if (j.contains("max_record_bytes"))
      c.max_record_bytes = j["max_record_bytes"].get<std::uint32_t>();
    if (j.contains("slow_reader_policy")) {
      std::string p = j["slow_reader_policy"].get<std::string>();
      if (p == "retain") {
        c.slow_reader_policy = SlowReaderPolicy::kRetain;
      } else if (p == "backpressure") {
        c.slow_reader_policy = SlowReaderPolicy::kBackpressure;
      } else {
        return Status(ErrorCode::kInvalidArgument,
                      "slow-reader policy must be retain or backpressure, not '" + p + "'");
      }
    }
  } catch (const json::exception& e) {
    return Status(ErrorCode::kInvalidArgument, std::string("bad topic config: ") + e.what());
  }
  return c;
}

json to_json(const TopicDescription& d) {
  json parts = json::array();
  for (const auto& p : d.partitions)
    parts.push_back({{"partition", p.partition},
                     {"start_offset", p.start_offset},
                     {"end_offset", p.end_offset},
                     {"bytes", p.bytes},
                     {"segments", p.segments}});
  return {{"name", d.name}, {"config", to_json(d.config)}, {"partitions", parts}};
}

TopicDescription topic_description_from(const json& j) {
  TopicDescription d;
  d.name = j.value("name", std::string());
  if (auto c = topic_config_from(j.value("config", json::object()))) d.config = *c;
  for (const auto& p : j.value("partitions", json::array())) {
    TopicDescription::Partition part;
    part.partition = p.value("partition", 0);
    part.start_offset = p.value("start_offset", std::int64_t{0});
    part.end_offset = p.value("end_offset", std::int64_t{0});
    part.bytes = p.value("bytes", std::uint64_t{0});
    part.segments = p.value("segments", std::uint32_t{0});
    d.partitions.push_back(part);
  }
  return d;
}

}  // namespace sluice::control
