// Topic configs altered through the gateway: IncrementalAlterConfigs (SET, DELETE back to the
// broker's default; APPEND and SUBTRACT refused), AlterConfigs (what is not listed goes back to
// the default), validate_only, and what is refused (bad values, unknown topics, broker
// resources, a resource named twice). A new max.message.bytes holds for the next Produce;
// DescribeConfigs tells the topic's own values from the defaults.
#include <map>
#include <string>
#include <vector>

#include "gateway_test_support.h"

namespace sluice::gateway_test {
namespace {

using Configs = std::vector<std::tuple<std::string, std::int8_t, std::optional<std::string>>>;

struct Alter {
  std::int8_t type = kafka::kConfigResourceTopic;
  std::string name;
  Configs configs;  // (name, operation, value); AlterConfigs ignores the operation
};

std::vector<ErrorCode> errors_of(const kafka::AlterConfigsResponse& resp,
                                 const std::vector<Alter>& alters) {
  REQUIRE(resp.responses.size() == alters.size());
  std::vector<ErrorCode> out;
  for (std::size_t i = 0; i < alters.size(); ++i) {
    CHECK(resp.responses[i].resource_name == alters[i].name);
    CHECK(resp.responses[i].resource_type == alters[i].type);
    CHECK(resp.responses[i].error_message.has_value() ==
          (resp.responses[i].error_code != ErrorCode::kNone));
    out.push_back(resp.responses[i].error_code);
  }
  return out;
}

std::vector<ErrorCode> incremental_alter(KafkaClient& c, const std::vector<Alter>& alters,
                                         bool validate_only = false) {
  kafka::IncrementalAlterConfigsRequest req;
  for (const Alter& a : alters) {
    req.resources.push_back({a.type, a.name, {}});
    for (const auto& [name, op, value] : a.configs)
      req.resources.back().configs.push_back(
          {name, op, value ? kafka::NullableString(*value) : std::nullopt});
  }
  req.validate_only = validate_only;
  return errors_of(
      c.call<kafka::AlterConfigsResponse>(ApiKey::kIncrementalAlterConfigs, 0, req).body, alters);
}

std::vector<ErrorCode> alter(KafkaClient& c, const std::vector<Alter>& alters,
                             std::int16_t version = 1) {
  kafka::AlterConfigsRequest req;
  for (const Alter& a : alters) {
    req.resources.push_back({a.type, a.name, {}});
    for (const auto& [name, op, value] : a.configs)
      req.resources.back().configs.push_back(
          {name, value ? kafka::NullableString(*value) : std::nullopt});
  }
  return errors_of(c.call<kafka::AlterConfigsResponse>(ApiKey::kAlterConfigs, version, req).body,
                   alters);
}

// DescribeConfigs v1's source of one config: 5 DEFAULT_CONFIG, 1 DYNAMIC_TOPIC_CONFIG.
std::int8_t config_source(KafkaClient& c, const std::string& topic, const std::string& name) {
  kafka::DescribeConfigsRequest req;
  req.resources.push_back(
      {kafka::kConfigResourceTopic, topic, std::vector<std::string_view>{name}});
  auto reply = c.call<kafka::DescribeConfigsResponse>(ApiKey::kDescribeConfigs, 1, req);
  REQUIRE(reply->results.size() == 1);
  REQUIRE(reply->results[0].configs.size() == 1);
  return reply->results[0].configs[0].config_source;
}

constexpr std::int8_t kSet = kafka::kConfigOpSet;
constexpr std::int8_t kDelete = kafka::kConfigOpDelete;

TEST_CASE(
    "gateway: IncrementalAlterConfigs and AlterConfigs change a topic's configs as Kafka "
    "does and refuse what it refuses",
    "[kafka][gateway]") {
  GatewayBroker broker;
  broker.create_topic("t", 2);
  KafkaClient c(broker);
  const auto defaults = describe_configs(c, kafka::kConfigResourceTopic, "t");
  REQUIRE(defaults.at("retention.ms") != "1234");
  const auto topic = [&] { return describe_configs(c, kafka::kConfigResourceTopic, "t"); };

  // SET one, then another: the first stays.
  CHECK(incremental_alter(
            c, {{kafka::kConfigResourceTopic, "t", {{"retention.bytes", kSet, "65536"}}}}) ==
        std::vector<ErrorCode>{ErrorCode::kNone});
  CHECK(incremental_alter(c,
                          {{kafka::kConfigResourceTopic, "t", {{"retention.ms", kSet, "1234"}}}}) ==
        std::vector<ErrorCode>{ErrorCode::kNone});
  CHECK(topic().at("retention.bytes") == "65536");
  CHECK(topic().at("retention.ms") == "1234");
  CHECK(broker.describe_topic("t")->config.retention_ms == 1234);  // the broker's own view
  // Reported as the topic's own, which kafka-configs.sh lists; untouched ones as defaults.
  CHECK(config_source(c, "t", "retention.ms") == 1);
  CHECK(config_source(c, "t", "segment.bytes") == 5);

  // validate_only changes nothing; DELETE goes back to the default.
  CHECK(incremental_alter(c, {{kafka::kConfigResourceTopic, "t", {{"retention.ms", kSet, "99"}}}},
                          true) == std::vector<ErrorCode>{ErrorCode::kNone});
  CHECK(topic().at("retention.ms") == "1234");
  CHECK(
      incremental_alter(c, {{kafka::kConfigResourceTopic, "t", {{"retention.ms", kDelete, {}}}}}) ==
      std::vector<ErrorCode>{ErrorCode::kNone});
  CHECK(topic().at("retention.ms") == defaults.at("retention.ms"));
  CHECK(topic().at("retention.bytes") == "65536");
  CHECK(config_source(c, "t", "retention.ms") == 5);

  // AlterConfigs: exactly what is listed; retention.bytes goes back to the default.
  for (std::int16_t v = 0; v <= 1; ++v) {
    INFO("AlterConfigs v" << v);
    CHECK(alter(c, {{kafka::kConfigResourceTopic, "t", {{"max.message.bytes", kSet, "2048"}}}},
                v) == std::vector<ErrorCode>{ErrorCode::kNone});
    CHECK(topic().at("max.message.bytes") == "2048");
    CHECK(topic().at("retention.bytes") == defaults.at("retention.bytes"));
  }
  // The next Produce is held to it.
  CHECK(produce(c, "t", 0, encode_batch({{"k", std::string(4096, 'x'), {}, -1, -1}}, 1000))
            .error_code == ErrorCode::kMessageTooLarge);
  CHECK(produce(c, "t", 0, encode_batch({{"k", std::string(512, 'x'), {}, -1, -1}}, 1000))
            .error_code == ErrorCode::kNone);

  // Refused, each changing nothing.
  auto errors = incremental_alter(
      c, {{kafka::kConfigResourceTopic, "t", {{"retention.ms", kSet, "soon"}}},
          {kafka::kConfigResourceTopic, "missing", {{"retention.ms", kSet, "1"}}},
          {kafka::kConfigResourceBroker, "0", {{"log.retention.ms", kSet, "1"}}},
          {kafka::kConfigResourceTopic, "t", {{"retention.ms", kSet, "5"}}},  // "t" again
          {std::int8_t{8}, "x", {}}});
  CHECK(errors == std::vector<ErrorCode>{ErrorCode::kInvalidConfig,
                                         ErrorCode::kUnknownTopicOrPartition,
                                         ErrorCode::kInvalidRequest, ErrorCode::kInvalidRequest,
                                         ErrorCode::kInvalidRequest});
  broker.create_topic("u", 1);
  CHECK(incremental_alter(c, {{kafka::kConfigResourceTopic,
                               "u",
                               {{"cleanup.policy", kafka::kConfigOpAppend, "compact"}}},
                              {kafka::kConfigResourceTopic, "t", {{"retention.ms", kSet, {}}}}}) ==
        std::vector<ErrorCode>{ErrorCode::kInvalidConfig, ErrorCode::kInvalidConfig});
  CHECK(alter(c, {{kafka::kConfigResourceTopic, "u", {{"cleanup.policy", kSet, "compact"}}}}) ==
        std::vector<ErrorCode>{ErrorCode::kInvalidConfig});
  CHECK(topic().at("retention.ms") == defaults.at("retention.ms"));
  CHECK(topic().at("max.message.bytes") == "2048");
}

}  // namespace
}  // namespace sluice::gateway_test
