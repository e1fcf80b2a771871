// Kafka topic config names <-> Sluice's TopicConfig, for CreateTopics, DescribeConfigs,
// AlterConfigs and IncrementalAlterConfigs:
//
//   partitions            CreateTopics' num_partitions
//   segment.bytes         TopicConfig::segment_bytes
//   retention.bytes       TopicConfig::retention_bytes (per partition, -1: none)
//   retention.ms          TopicConfig::retention_ms
//   max.message.bytes     TopicConfig::max_record_bytes
//   sluice.slow.reader.policy   retain | backpressure
//   cleanup.policy        "delete" only (compaction is not offered)
//
// Other names Kafka clients commonly send (min.insync.replicas, compression.type,
// message.timestamp.type=CreateTime, ...) are accepted and ignored when they ask for what
// Sluice does anyway; a value Sluice cannot honour is INVALID_CONFIG with the reason.
//
// Thread-safety: pure functions.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "sluice/status.h"
#include "sluice/types.h"

namespace sluice::gateway {

// Applies one Kafka config to `config`; an error names the config and why.
Status apply_topic_config(std::string_view name, std::optional<std::string_view> value,
                          TopicConfig& config);

// Gives config `name` of `config` its value in `defaults` (IncrementalAlterConfigs' DELETE).
// A name Sluice ignores is left alone.
Status reset_topic_config(std::string_view name, const TopicConfig& defaults, TopicConfig& config);

// Every config DescribeConfigs shows for a topic, (name, value).
std::vector<std::pair<std::string, std::string>> describe_topic_config(const TopicConfig& config);

}  // namespace sluice::gateway
