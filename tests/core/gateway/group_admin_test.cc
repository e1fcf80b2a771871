// Kafka's group admin APIs through the gateway with a raw client: ListGroups, DescribeGroups
// and DeleteGroups see a Kafka clients' group, a local Sluice consumers' group (its members'
// subscriptions and assignments in the consumer protocol) and a group with only committed
// offsets, by one name space; a group with members is not deleted, an unknown one is
// GROUP_ID_NOT_FOUND. OffsetDelete forgets offsets of topics no member subscribes to.
#include <map>
#include <string>
#include <vector>

#include "gateway_test_support.h"
#include "kafka/consumer_protocol.h"

namespace sluice::gateway_test {
namespace {

std::map<std::string, std::string> list_groups(KafkaClient& c, std::int16_t version) {
  auto reply =
      c.call<kafka::ListGroupsResponse>(ApiKey::kListGroups, version, kafka::ListGroupsRequest{});
  REQUIRE(reply->error_code == ErrorCode::kNone);
  std::map<std::string, std::string> out;  // group -> protocol type
  for (const auto& g : reply->groups) out[std::string(g.group_id)] = std::string(g.protocol_type);
  return out;
}

std::map<std::string, ErrorCode> delete_groups(KafkaClient& c,
                                               const std::vector<std::string>& names) {
  kafka::DeleteGroupsRequest req;
  for (const auto& n : names) req.groups_names.push_back(n);
  auto reply = c.call<kafka::DeleteGroupsResponse>(ApiKey::kDeleteGroups, 1, req);
  std::map<std::string, ErrorCode> out;
  for (const auto& r : reply->results) out[std::string(r.group_id)] = r.error_code;
  return out;
}

TEST_CASE(
    "gateway: ListGroups DescribeGroups and DeleteGroups see Kafka groups and local "
    "groups and offset-only groups",
    "[kafka][gateway]") {
  GatewayBroker broker;
  broker.create_topic("orders", 2);
  broker.create_topic("shared", 3);
  KafkaClient c(broker, "admin-tool");

  // A Kafka clients' group with one member, Stable.
  Joined j = form_group_of_one(c, "kafka-group", "orders", {0, 1});

  // A local consumer's group.
  Consumer local = join_local_group(broker, "local-group", "shared", "local-consumer");

  // A group that only committed offsets ("simple" commits).
  REQUIRE(commit_offset(c, "offsets-only", "", -1, "orders", 1, 5) == ErrorCode::kNone);

  for (std::int16_t v = 0; v <= 2; ++v) {
    INFO("ListGroups v" << v);
    auto groups = list_groups(c, v);
    CHECK(groups == std::map<std::string, std::string>{{"kafka-group", "consumer"},
                                                       {"local-group", "consumer"},
                                                       {"offsets-only", ""}});
  }

  for (std::int16_t v = 0; v <= 4; ++v) {
    INFO("DescribeGroups v" << v);
    kafka::DescribeGroupsRequest req;
    req.groups = {"kafka-group", "local-group", "offsets-only", "never-seen"};
    auto reply = c.call<kafka::DescribeGroupsResponse>(ApiKey::kDescribeGroups, v, req);
    REQUIRE(reply->groups.size() == 4);
    const auto& kg = reply->groups[0];
    CHECK(kg.error_code == ErrorCode::kNone);
    CHECK(kg.group_id == "kafka-group");
    CHECK(kg.group_state == "Stable");
    CHECK(kg.protocol_type == "consumer");
    CHECK(kg.protocol_data == "range");
    REQUIRE(kg.members.size() == 1);
    CHECK(kg.members[0].member_id == j.member_id);
    CHECK(kg.members[0].client_id == "admin-tool");
    CHECK(kg.members[0].member_metadata == subscription({"orders"}));
    CHECK(kg.members[0].member_assignment == assignment("orders", {0, 1}));

    const auto& lg = reply->groups[1];
    CHECK(lg.error_code == ErrorCode::kNone);
    CHECK(lg.group_state == "Stable");
    CHECK(lg.protocol_type == "consumer");
    REQUIRE(lg.members.size() == 1);
    CHECK(lg.members[0].client_id == "local-consumer");
    CHECK(lg.members[0].client_host.substr(0, 10) == "local pid ");
    auto sub = kafka::decode_consumer_subscription(lg.members[0].member_metadata);
    REQUIRE(sub);
    CHECK(sub->topics == std::vector<std::string>{"shared"});
    auto assigned = kafka::decode_consumer_assignment(lg.members[0].member_assignment);
    REQUIRE(assigned);
    REQUIRE(assigned->assigned_partitions.size() == 1);
    CHECK(assigned->assigned_partitions[0].topic == "shared");
    CHECK(assigned->assigned_partitions[0].partitions == std::vector<std::int32_t>{0, 1, 2});

    CHECK(reply->groups[2].group_state == "Empty");
    CHECK(reply->groups[2].members.empty());
    CHECK(reply->groups[3].error_code == ErrorCode::kNone);
    CHECK(reply->groups[3].group_state == "Dead");
  }

  // Groups with members stay; the offsets-only group goes, with its offsets.
  auto deleted = delete_groups(c, {"kafka-group", "local-group", "offsets-only", "never-seen"});
  CHECK(deleted == std::map<std::string, ErrorCode>{{"kafka-group", ErrorCode::kNonEmptyGroup},
                                                    {"local-group", ErrorCode::kNonEmptyGroup},
                                                    {"offsets-only", ErrorCode::kNone},
                                                    {"never-seen", ErrorCode::kGroupIdNotFound}});
  CHECK(fetch_offsets(c, "offsets-only", "orders", {1}) == std::vector<std::int64_t>{-1});
  CHECK(list_groups(c, 2).count("offsets-only") == 0);

  // Once their members leave, both can be deleted.
  kafka::LeaveGroupRequest leave;
  leave.group_id = "kafka-group";
  leave.member_id = j.member_id;
  REQUIRE(c.call<kafka::LeaveGroupResponse>(ApiKey::kLeaveGroup, 1, leave)->error_code ==
          ErrorCode::kNone);
  GT_REQUIRE_OK(local.close());
  REQUIRE(eventually([&] {
    return delete_groups(c, {"local-group"})["local-group"] != ErrorCode::kNonEmptyGroup;
  }));
  CHECK(delete_groups(c, {"kafka-group"}) ==
        std::map<std::string, ErrorCode>{{"kafka-group", ErrorCode::kNone}});
  CHECK(list_groups(c, 2).empty());
}

TEST_CASE("gateway: groups keep their protocol type across a broker restart", "[kafka][gateway]") {
  GatewayBroker broker;
  broker.create_topic("orders", 2);
  {
    KafkaClient c(broker, "admin-tool");
    auto leave = [&](const std::string& group, const std::string& member) {
      kafka::LeaveGroupRequest req;
      req.group_id = group;
      req.member_id = member;
      REQUIRE(c.call<kafka::LeaveGroupResponse>(ApiKey::kLeaveGroup, 1, req)->error_code ==
              ErrorCode::kNone);
    };
    leave("kafka-group", form_group_of_one(c, "kafka-group", "orders", {0, 1}).member_id);
    JoinParams p;
    p.group = "connect-group";
    p.protocol_type = "connect";
    p.protocol = "sessioned";
    p.metadata = "worker state";
    Joined connect = join_new_member(c, p, 5);
    REQUIRE(connect.error == ErrorCode::kNone);
    leave("connect-group", connect.member_id);
    Consumer local = join_local_group(broker, "local-group", "orders");
    GT_REQUIRE_OK(local.close());
    REQUIRE(commit_offset(c, "offsets-only", "", -1, "orders", 1, 5) == ErrorCode::kNone);
    const std::map<std::string, std::string> expected{{"connect-group", "connect"},
                                                      {"kafka-group", "consumer"},
                                                      {"local-group", "consumer"},
                                                      {"offsets-only", ""}};
    REQUIRE(eventually([&] { return list_groups(c, 2) == expected; }));
  }
  broker.restart();
  KafkaClient c(broker, "admin-tool");
  // As Kafka loads groups from its offsets topic: Empty, with the type their members had.
  CHECK(list_groups(c, 2) == std::map<std::string, std::string>{{"connect-group", "connect"},
                                                                {"kafka-group", "consumer"},
                                                                {"local-group", "consumer"},
                                                                {"offsets-only", ""}});
  kafka::DescribeGroupsRequest req;
  req.groups = {"kafka-group", "connect-group", "local-group"};
  auto reply = c.call<kafka::DescribeGroupsResponse>(ApiKey::kDescribeGroups, 4, req);
  REQUIRE(reply->groups.size() == 3);
  for (const auto& g : reply->groups) {
    INFO(g.group_id);
    CHECK(g.error_code == ErrorCode::kNone);
    CHECK(g.group_state == "Empty");
    CHECK(g.members.empty());
  }
  CHECK(reply->groups[0].protocol_type == "consumer");
  CHECK(reply->groups[1].protocol_type == "connect");
  CHECK(reply->groups[2].protocol_type == "consumer");
}

// OffsetDelete of `group`: the group's error and each partition's, "topic/partition" -> error.
std::pair<ErrorCode, std::map<std::string, ErrorCode>> delete_offsets(
    KafkaClient& c, const std::string& group,
    const std::vector<std::pair<std::string, std::vector<std::int32_t>>>& topics) {
  kafka::OffsetDeleteRequest req;
  req.group_id = group;
  for (const auto& [t, ps] : topics) req.topics.push_back({t, ps});
  auto reply = c.call<kafka::OffsetDeleteResponse>(ApiKey::kOffsetDelete, 0, req);
  std::map<std::string, ErrorCode> out;
  for (const auto& t : reply->topics)
    for (const auto& p : t.partitions)
      out[std::string(t.name) + "/" + std::to_string(p.partition_index)] = p.error_code;
  return {reply->error_code, out};
}

TEST_CASE(
    "gateway: OffsetDelete forgets a group's offsets of topics its members do not subscribe "
    "to and refuses the others",
    "[kafka][gateway]") {
  GatewayBroker broker;
  broker.create_topic("orders", 2);
  broker.create_topic("shared", 2);
  KafkaClient c(broker);
  Joined j = form_group_of_one(c, "kafka-group", "orders", {0, 1});
  REQUIRE(commit_offset(c, "kafka-group", j.member_id, j.generation, "orders", 0, 3) ==
          ErrorCode::kNone);
  REQUIRE(commit_offset(c, "kafka-group", j.member_id, j.generation, "shared", 1, 4) ==
          ErrorCode::kNone);

  auto [error, partitions] =
      delete_offsets(c, "kafka-group", {{"orders", {0}}, {"shared", {0, 1}}, {"nope", {0}}});
  CHECK(error == ErrorCode::kNone);
  CHECK(partitions == std::map<std::string, ErrorCode>{
                          {"orders/0", ErrorCode::kGroupSubscribedToTopic},
                          {"shared/0", ErrorCode::kNone},  // never committed: nothing to forget
                          {"shared/1", ErrorCode::kNone},
                          {"nope/0", ErrorCode::kUnknownTopicOrPartition}});
  CHECK(fetch_offsets(c, "kafka-group", "orders", {0}) == std::vector<std::int64_t>{3});
  CHECK(fetch_offsets(c, "kafka-group", "shared", {1}) == std::vector<std::int64_t>{-1});

  // A local consumer's group: its subscription counts the same way.
  Consumer local = join_local_group(broker, "local-group", "shared");
  CHECK(delete_offsets(c, "local-group", {{"shared", {0}}}).second ==
        std::map<std::string, ErrorCode>{{"shared/0", ErrorCode::kGroupSubscribedToTopic}});
  GT_REQUIRE_OK(local.close());

  CHECK(delete_offsets(c, "never-seen", {{"orders", {0}}}).first == ErrorCode::kGroupIdNotFound);
  CHECK(delete_offsets(c, "", {{"orders", {0}}}).first == ErrorCode::kInvalidGroupId);
}

}  // namespace
}  // namespace sluice::gateway_test
