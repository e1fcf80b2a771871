#include "topic_configs.h"

#include <charconv>

namespace sluice::gateway {

namespace {

template <class T>
bool parse_number(std::string_view text, T& out) {
  auto [p, ec] = std::from_chars(text.data(), text.data() + text.size(), out);
  return ec == std::errc() && p == text.data() + text.size();
}

Status invalid(std::string_view name, std::string_view value, const std::string& why) {
  return Status(sluice::ErrorCode::kInvalidArgument,
                "config " + std::string(name) + "=" + std::string(value) + ": " + why);
}

}  // namespace

Status apply_topic_config(std::string_view name, std::optional<std::string_view> value,
                          TopicConfig& config) {
  if (!value) return Status::ok();  // null: the default
  std::string_view v = *value;
  if (name == "segment.bytes") {
    std::uint64_t n = 0;
    if (!parse_number(v, n)) return invalid(name, v, "not a number");
    config.segment_bytes = n;
  } else if (name == "retention.bytes") {
    std::int64_t n = 0;
    if (!parse_number(v, n)) return invalid(name, v, "not a number");
    config.retention_bytes = n;
  } else if (name == "retention.ms") {
    std::int64_t n = 0;
    if (!parse_number(v, n)) return invalid(name, v, "not a number");
    config.retention_ms = n;
  } else if (name == "max.message.bytes") {
    std::uint32_t n = 0;
    if (!parse_number(v, n)) return invalid(name, v, "not a number");
    config.max_record_bytes = n;
  } else if (name == "sluice.slow.reader.policy") {
    if (v == "retain") {
      config.slow_reader_policy = SlowReaderPolicy::kRetain;
    } else if (v == "backpressure") {
      config.slow_reader_policy = SlowReaderPolicy::kBackpressure;
    } else {
      return invalid(name, v, "must be retain or backpressure");
    }
  } else if (name == "cleanup.policy") {
    if (v != "delete") return invalid(name, v, "Sluice offers only delete (no compaction)");
  } else if (name == "message.timestamp.type") {
    if (v != "CreateTime") return invalid(name, v, "Sluice stores the producer's CreateTime");
  }
  // Anything else (min.insync.replicas, compression.type, unclean.leader.election.enable...)
  // concerns replication or producers, which one host has no use for: accepted, ignored.
  return Status::ok();
}

Status reset_topic_config(std::string_view name, const TopicConfig& defaults, TopicConfig& config) {
  for (const auto& [n, value] : describe_topic_config(defaults))
    if (n == name) return apply_topic_config(name, value, config);
  return Status::ok();
}

std::vector<std::pair<std::string, std::string>> describe_topic_config(const TopicConfig& c) {
  return {
      {"cleanup.policy", "delete"},
      {"max.message.bytes", std::to_string(c.max_record_bytes)},
      {"message.timestamp.type", "CreateTime"},
      {"retention.bytes", std::to_string(c.retention_bytes)},
      {"retention.ms", std::to_string(c.retention_ms)},
      {"segment.bytes", std::to_string(c.segment_bytes)},
      {"sluice.slow.reader.policy",
       c.slow_reader_policy == SlowReaderPolicy::kBackpressure ? "backpressure" : "retain"},
  };
}

}  // namespace sluice::gateway
