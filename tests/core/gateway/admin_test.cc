// Topic administration through the gateway: CreateTopics (partitions, configs, replication
// factor, duplicates, validate_only), DeleteTopics, CreatePartitions, DescribeLogDirs,
// DescribeConfigs for topics and the broker, and auto-creation of topics by Metadata/Produce
// only when the broker allows it.
#include <map>
#include <string>
#include <vector>

#include "gateway_test_support.h"

namespace sluice::gateway_test {
namespace {

struct NewTopic {
  std::string name;
  std::int32_t partitions = 1;
  std::int16_t replication_factor = 1;
  std::vector<std::pair<std::string, std::string>> configs;
};

// CreateTopics v4 of `topics`; the error of each, in order.
std::vector<ErrorCode> create_topics(KafkaClient& c, const std::vector<NewTopic>& topics,
                                     bool validate_only = false, std::int16_t version = 4) {
  kafka::CreateTopicsRequest req;
  for (const NewTopic& t : topics) {
    kafka::CreateTopicsRequest::Topic rt;
    rt.name = t.name;
    rt.num_partitions = t.partitions;
    rt.replication_factor = t.replication_factor;
    for (const auto& [k, v] : t.configs) rt.configs.push_back({k, std::string_view(v)});
    req.topics.push_back(rt);
  }
  req.timeout_ms = 5000;
  req.validate_only = validate_only;
  auto reply = c.call<kafka::CreateTopicsResponse>(ApiKey::kCreateTopics, version, req);
  REQUIRE(reply->topics.size() == topics.size());
  std::vector<ErrorCode> out;
  for (std::size_t i = 0; i < topics.size(); ++i) {
    CHECK(reply->topics[i].name == topics[i].name);
    if (reply->topics[i].error_code != ErrorCode::kNone) {
      // v1+: a message says why.
      CHECK(reply->topics[i].error_message.has_value());
    }
    out.push_back(reply->topics[i].error_code);
  }
  return out;
}

TEST_CASE("gateway: CreateTopics creates with the partitions and configs asked for",
          "[kafka][gateway]") {
  GatewayBroker broker;
  KafkaClient c(broker);
  auto errors = create_topics(c, {{"configured",
                                   4,
                                   1,
                                   {{"segment.bytes", "8388608"},
                                    {"retention.ms", "3600000"},
                                    {"max.message.bytes", "65536"}}},
                                  {"defaults", -1, -1, {}}});
  CHECK(errors == std::vector<ErrorCode>{ErrorCode::kNone, ErrorCode::kNone});
  auto d = broker.describe_topic("configured");
  REQUIRE(d.has_value());
  CHECK(d->config.partitions == 4);
  CHECK(d->config.segment_bytes == 8388608u);
  CHECK(d->config.retention_ms == 3600000);
  CHECK(d->config.max_record_bytes == 65536u);
  auto def = broker.describe_topic("defaults");
  REQUIRE(def.has_value());
  CHECK(def->config.partitions == TopicConfig{}.partitions);

  // Described back through Kafka.
  auto cfg = describe_configs(c, kafka::kConfigResourceTopic, "configured");
  CHECK(cfg["segment.bytes"] == "8388608");
  CHECK(cfg["retention.ms"] == "3600000");
  CHECK(cfg["max.message.bytes"] == "65536");

  // Metadata sees the partitions.
  kafka::MetadataRequest mreq;
  mreq.topics = std::vector<std::string_view>{"configured"};
  auto meta = c.call<kafka::MetadataResponse>(ApiKey::kMetadata, 8, mreq);
  REQUIRE(meta->topics.size() == 1);
  CHECK(meta->topics[0].partitions.size() == 4);

  // max.message.bytes is enforced on produce.
  std::string big(70000, 'b');
  auto p = produce(c, "configured", 0, encode_batch({{"k", big, {}, -1, -1}}, 1000));
  CHECK(p.error_code == ErrorCode::kMessageTooLarge);
  CHECK(broker.end_offset("configured", 0) == 0);
}

TEST_CASE(
    "gateway: CreateTopics refuses replication factor 3, existing topics and bad "
    "configs; validate_only creates nothing",
    "[kafka][gateway]") {
  GatewayBroker broker;
  broker.create_topic("exists", 1);
  KafkaClient c(broker);
  auto errors = create_topics(c, {{"rf3", 1, 3, {}},
                                  {"exists", 1, 1, {}},
                                  {"badcfg", 1, 1, {{"retention.ms", "soon"}}},
                                  {"zero-partitions", 0, 1, {}},
                                  {"fine", 2, 1, {}}});
  CHECK(errors == std::vector<ErrorCode>{ErrorCode::kInvalidReplicationFactor,
                                         ErrorCode::kTopicAlreadyExists, ErrorCode::kInvalidConfig,
                                         ErrorCode::kInvalidPartitions, ErrorCode::kNone});
  CHECK_FALSE(broker.describe_topic("rf3").has_value());
  CHECK_FALSE(broker.describe_topic("badcfg").has_value());
  CHECK(broker.describe_topic("fine").has_value());

  SECTION("validate_only") {
    auto v =
        create_topics(c, {{"would-be", 3, 1, {}}, {"exists", 1, 1, {}}, {"rf", 1, 2, {}}}, true);
    CHECK(v == std::vector<ErrorCode>{ErrorCode::kNone, ErrorCode::kTopicAlreadyExists,
                                      ErrorCode::kInvalidReplicationFactor});
    CHECK_FALSE(broker.describe_topic("would-be").has_value());
    CHECK(metadata_topic_error(c, "would-be") == ErrorCode::kUnknownTopicOrPartition);
  }
  SECTION("creating it twice in a row") {
    CHECK(create_topics(c, {{"twice", 1, 1, {}}}) == std::vector<ErrorCode>{ErrorCode::kNone});
    CHECK(create_topics(c, {{"twice", 1, 1, {}}}) ==
          std::vector<ErrorCode>{ErrorCode::kTopicAlreadyExists});
  }
}

TEST_CASE(
    "gateway: CreateTopics of a topic larger than the data directory can hold gets "
    "KAFKA_STORAGE_ERROR and creates nothing",
    "[kafka][gateway]") {
  GatewayBroker broker;
  KafkaClient c(broker);
  // 100000 partitions of 1 GiB segments (each with a spare): 200 TiB.
  auto errors = create_topics(
      c, {{"huge", 100000, 1, {{"segment.bytes", "1073741824"}}}, {"fine", 2, 1, {}}});
  CHECK(errors == std::vector<ErrorCode>{ErrorCode::kKafkaStorageError, ErrorCode::kNone});
  CHECK_FALSE(broker.describe_topic("huge").has_value());
  CHECK(metadata_topic_error(c, "huge") == ErrorCode::kUnknownTopicOrPartition);
  CHECK(broker.describe_topic("fine").has_value());
  // validate_only says so too, and creates nothing either way.
  errors = create_topics(
      c, {{"huge", 100000, 1, {{"segment.bytes", "1073741824"}}}, {"would-fit", 2, 1, {}}}, true);
  CHECK(errors == std::vector<ErrorCode>{ErrorCode::kKafkaStorageError, ErrorCode::kNone});
  CHECK_FALSE(broker.describe_topic("huge").has_value());
  CHECK_FALSE(broker.describe_topic("would-fit").has_value());
}

TEST_CASE("gateway: DeleteTopics deletes; Metadata then says UNKNOWN_TOPIC_OR_PARTITION",
          "[kafka][gateway]") {
  GatewayBroker broker;
  broker.create_topic("doomed", 2);
  KafkaClient c(broker);
  REQUIRE(produce(c, "doomed", 1, encode_batch({{"k", "v", {}, -1, -1}}, 1000)).error_code ==
          ErrorCode::kNone);
  CHECK(metadata_topic_error(c, "doomed") == ErrorCode::kNone);
  kafka::DeleteTopicsRequest req;
  req.topic_names = {"doomed", "never-was"};
  req.timeout_ms = 5000;
  auto reply = c.call<kafka::DeleteTopicsResponse>(ApiKey::kDeleteTopics, 3, req);
  REQUIRE(reply->responses.size() == 2);
  CHECK(reply->responses[0].name == "doomed");
  CHECK(reply->responses[0].error_code == ErrorCode::kNone);
  CHECK(reply->responses[1].name == "never-was");
  CHECK(reply->responses[1].error_code == ErrorCode::kUnknownTopicOrPartition);
  CHECK(metadata_topic_error(c, "doomed") == ErrorCode::kUnknownTopicOrPartition);
  CHECK(metadata_topic_error(c, "doomed", 0) == ErrorCode::kUnknownTopicOrPartition);
  // Produce and Fetch to it now fail per partition.
  CHECK(produce(c, "doomed", 1, encode_batch({{"k", "v", {}, -1, -1}}, 1000)).error_code ==
        ErrorCode::kUnknownTopicOrPartition);
  CHECK(fetch(c, "doomed", 1, 0).error == ErrorCode::kUnknownTopicOrPartition);
  // Re-created, it starts empty (the gateway forgets the old one).
  broker.create_topic("doomed", 2);
  FetchedPartition f = fetch(c, "doomed", 1, 0);
  CHECK(f.error == ErrorCode::kNone);
  CHECK(f.high_watermark == 0);
  CHECK(f.records.empty());
}

struct Growth {
  std::string topic;
  std::int32_t count = 0;
  std::optional<std::vector<std::vector<std::int32_t>>> assignments;
};

// CreatePartitions v1 of `growths`; the error of each, in order.
std::vector<ErrorCode> create_partitions(KafkaClient& c, const std::vector<Growth>& growths,
                                         bool validate_only = false) {
  kafka::CreatePartitionsRequest req;
  for (const Growth& g : growths) req.topics.push_back({g.topic, g.count, g.assignments});
  req.timeout_ms = 5000;
  req.validate_only = validate_only;
  auto reply = c.call<kafka::CreatePartitionsResponse>(ApiKey::kCreatePartitions, 1, req);
  REQUIRE(reply->results.size() == growths.size());
  std::vector<ErrorCode> out;
  for (std::size_t i = 0; i < growths.size(); ++i) {
    CHECK(reply->results[i].name == growths[i].topic);
    CHECK(reply->results[i].error_message.has_value() ==
          (reply->results[i].error_code != ErrorCode::kNone));
    out.push_back(reply->results[i].error_code);
  }
  return out;
}

TEST_CASE(
    "gateway: CreatePartitions grows topics and refuses what Kafka refuses; the new "
    "partitions take records at once",
    "[kafka][gateway]") {
  GatewayBroker broker;
  broker.create_topic("grow", 2);
  broker.create_topic("other", 3);
  broker.create_topic("third", 1);
  KafkaClient c(broker);
  const auto partitions = [&](const std::string& t) {
    return broker.describe_topic(t)->partitions.size();
  };
  // What Metadata tells Kafka clients.
  const auto metadata_partitions = [&](std::string_view t) {
    kafka::MetadataRequest req;
    req.topics = std::vector<std::string_view>{t};
    auto reply = c.call<kafka::MetadataResponse>(ApiKey::kMetadata, 8, req);
    REQUIRE(reply->topics.size() == 1);
    return reply->topics[0].partitions.size();
  };
  REQUIRE(metadata_partitions("grow") == 2);  // the gateway knows it at 2

  SECTION("validate_only checks and changes nothing") {
    CHECK(create_partitions(c, {{"grow", 4, std::nullopt}}, true) ==
          std::vector<ErrorCode>{ErrorCode::kNone});
    CHECK(partitions("grow") == 2);
    CHECK(create_partitions(c, {{"grow", 2, std::nullopt}}, true) ==
          std::vector<ErrorCode>{ErrorCode::kInvalidPartitions});
  }
  SECTION("growing, then producing to and fetching from a new partition") {
    CHECK(create_partitions(c, {{"grow", 4, std::nullopt},
                                {"other", 4, std::vector<std::vector<std::int32_t>>{{0}}}}) ==
          std::vector<ErrorCode>{ErrorCode::kNone, ErrorCode::kNone});
    CHECK(partitions("grow") == 4);
    CHECK(partitions("other") == 4);
    CHECK(metadata_partitions("grow") == 4);
    REQUIRE(produce(c, "grow", 3, encode_batch({{"k", "v", {}, -1, -1}}, 1000)).error_code ==
            ErrorCode::kNone);
    FetchedPartition f = fetch(c, "grow", 3, 0);
    CHECK(f.error == ErrorCode::kNone);
    REQUIRE(f.records.size() == 1);
    CHECK(f.records[0].value == "v");
  }
  SECTION("what is refused changes nothing") {
    CHECK(create_partitions(c, {{"grow", 2, std::nullopt},
                                {"other", 1, std::nullopt},
                                {"never-was", 5, std::nullopt},
                                {"grow", 3, std::vector<std::vector<std::int32_t>>{{7}}},
                                {"third", 3, std::vector<std::vector<std::int32_t>>{{0}}}}) ==
          std::vector<ErrorCode>{ErrorCode::kInvalidPartitions, ErrorCode::kInvalidPartitions,
                                 ErrorCode::kUnknownTopicOrPartition,
                                 ErrorCode::kInvalidRequest,  // "grow" twice
                                 ErrorCode::kInvalidReplicaAssignment});
    CHECK(partitions("grow") == 2);
    CHECK(partitions("other") == 3);
    CHECK(partitions("third") == 1);
    // 100000 partitions of the default segments: more than the data directory holds.
    CHECK(create_partitions(c, {{"grow", 100000, std::nullopt}}) ==
          std::vector<ErrorCode>{ErrorCode::kKafkaStorageError});
    CHECK(create_partitions(c, {{"grow", 100000, std::nullopt}}, true) ==
          std::vector<ErrorCode>{ErrorCode::kKafkaStorageError});
    CHECK(partitions("grow") == 2);
    CHECK(metadata_partitions("grow") == 2);
  }
}

TEST_CASE("gateway: DescribeLogDirs gives the data directory and each partition's bytes",
          "[kafka][gateway]") {
  GatewayBroker broker;
  broker.create_topic("a", 2);
  broker.create_topic("b", 1);
  KafkaClient c(broker);
  const auto bytes = [&](const std::string& t, std::size_t p) {
    return static_cast<std::int64_t>(broker.describe_topic(t)->partitions.at(p).bytes);
  };
  using Sizes = std::map<std::string, std::map<std::int32_t, std::int64_t>>;
  const auto describe = [&](std::int16_t version, const kafka::DescribeLogDirsRequest& req) {
    auto reply = c.call<kafka::DescribeLogDirsResponse>(ApiKey::kDescribeLogDirs, version, req);
    REQUIRE(reply->results.size() == 1);
    const auto& dir = reply->results[0];
    CHECK(dir.error_code == ErrorCode::kNone);
    CHECK(dir.log_dir == broker.data_dir());
    Sizes out;
    for (const auto& t : dir.topics) {
      for (const auto& p : t.partitions) {
        CHECK(p.offset_lag == 0);
        CHECK_FALSE(p.is_future_key);
        CHECK(out[std::string(t.name)].count(p.partition_index) == 0);
        out[std::string(t.name)][p.partition_index] = p.partition_size;
      }
    }
    return out;
  };
  REQUIRE(bytes("a", 0) > 0);
  const Sizes everything{{"a", {{0, bytes("a", 0)}, {1, bytes("a", 1)}}},
                         {"b", {{0, bytes("b", 0)}}}};
  for (std::int16_t version : {std::int16_t{0}, std::int16_t{1}}) {
    INFO("v" << version);
    CHECK(describe(version, {}) == everything);  // topics null: every partition
    // Only what is asked for; partitions and topics the broker does not have are left out.
    kafka::DescribeLogDirsRequest some{
        std::vector<kafka::DescribeLogDirsRequest::Topic>{{"a", {1, 7}}, {"missing", {0}}}};
    CHECK(describe(version, some) == Sizes{{"a", {{1, bytes("a", 1)}}}});
    kafka::DescribeLogDirsRequest none{std::vector<kafka::DescribeLogDirsRequest::Topic>{}};
    CHECK(describe(version, none).empty());
  }
}

TEST_CASE("gateway: DescribeConfigs describes topics and the broker", "[kafka][gateway]") {
  GatewayBroker broker([](BrokerConfig& bc) { bc.kafka_max_request_bytes = 2 * 1024 * 1024; });
  TopicConfig tc;
  tc.retention_ms = 86'400'000;
  tc.retention_bytes = 1 << 30;
  broker.create_topic("described", 1, tc);
  KafkaClient c(broker);
  auto topic = describe_configs(c, kafka::kConfigResourceTopic, "described");
  CHECK(topic["retention.ms"] == "86400000");
  CHECK(topic["retention.bytes"] == std::to_string(1 << 30));
  CHECK(topic["cleanup.policy"] == "delete");
  CHECK(topic.count("segment.bytes") == 1);
  CHECK(topic.count("max.message.bytes") == 1);

  auto b = describe_configs(c, kafka::kConfigResourceBroker, "0");
  CHECK(b["auto.create.topics.enable"] == "false");
  CHECK(b["socket.request.max.bytes"] == std::to_string(2 * 1024 * 1024));
  CHECK(b["broker.id"] == "0");
  CHECK(b["fetch.max.bytes"] == std::to_string(BrokerConfig{}.kafka_fetch_max_bytes));

  auto missing = describe_configs(c, kafka::kConfigResourceTopic, "missing",
                                  ErrorCode::kUnknownTopicOrPartition);
  CHECK(missing.empty());

  // Only the keys asked for.
  kafka::DescribeConfigsRequest req;
  req.resources.push_back(
      {kafka::kConfigResourceTopic, "described", std::vector<std::string_view>{"retention.ms"}});
  auto reply = c.call<kafka::DescribeConfigsResponse>(ApiKey::kDescribeConfigs, 1, req);
  REQUIRE(reply->results.size() == 1);
  REQUIRE(reply->results[0].configs.size() == 1);
  CHECK(reply->results[0].configs[0].name == "retention.ms");
}

TEST_CASE("gateway: Metadata and Produce do not create topics unless the broker allows it",
          "[kafka][gateway]") {
  SECTION("off (the default)") {
    GatewayBroker broker;
    KafkaClient c(broker);
    for (std::int16_t v : {std::int16_t{0}, std::int16_t{3}, std::int16_t{4}, std::int16_t{8}}) {
      INFO("Metadata v" << v);
      CHECK(metadata_topic_error(c, "auto-off", v) == ErrorCode::kUnknownTopicOrPartition);
    }
    CHECK(produce(c, "auto-off", 0, encode_batch({{"k", "v", {}, -1, -1}}, 1000)).error_code ==
          ErrorCode::kUnknownTopicOrPartition);
    CHECK_FALSE(broker.describe_topic("auto-off").has_value());
  }
  SECTION("on") {
    GatewayBroker broker([](BrokerConfig& bc) {
      bc.auto_create_topics = true;
      bc.default_topic.partitions = 3;
    });
    KafkaClient c(broker);
    CHECK(metadata_topic_error(c, "auto-meta", 8) == ErrorCode::kNone);
    auto d = broker.describe_topic("auto-meta");
    REQUIRE(d.has_value());
    CHECK(d->config.partitions == 3);
    // v4+ with allow_auto_topic_creation false: not created.
    kafka::MetadataRequest req;
    req.topics = std::vector<std::string_view>{"auto-not-allowed"};
    req.allow_auto_topic_creation = false;
    auto reply = c.call<kafka::MetadataResponse>(ApiKey::kMetadata, 8, req);
    REQUIRE(reply->topics.size() == 1);
    CHECK(reply->topics[0].error_code == ErrorCode::kUnknownTopicOrPartition);
    CHECK_FALSE(broker.describe_topic("auto-not-allowed").has_value());
    // Produce creates too.
    auto p = produce(c, "auto-produce", 2, encode_batch({{"k", "v", {}, -1, -1}}, 1000));
    CHECK(p.error_code == ErrorCode::kNone);
    CHECK(p.base_offset == 0);
    CHECK(broker.end_offset("auto-produce", 2) == 1);
    // An invalid name is never created.
    CHECK(metadata_topic_error(c, "bad/name", 8) == ErrorCode::kInvalidTopicException);
  }
}

}  // namespace
}  // namespace sluice::gateway_test
