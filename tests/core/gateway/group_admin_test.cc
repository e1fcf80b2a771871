// Kafka's group admin APIs through the gateway with a raw client: ListGroups, DescribeGroups
// and DeleteGroups see a Kafka clients' group, a local Sluice consumers' group (its members'
// subscriptions and assignments in the consumer protocol) and a group with only committed
// offsets, by one name space; a group with members is not deleted, an unknown one is
// GROUP_ID_NOT_FOUND.
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
  ConsumerConfig cc;
  cc.data_dir = broker.data_dir();
  cc.group_id = "local-group";
  cc.client_id = "local-consumer";
  cc.session_timeout_ms = 6000;
  auto local = must(Consumer::open(cc));
  GT_REQUIRE_OK(local.subscribe({"shared"}));
  REQUIRE(eventually(
      [&] {
        (void)local.poll([](const Record&) {}, 10, 10);
        return local.group_assignment().generation >= 0;
      },
      5000));

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

}  // namespace
}  // namespace sluice::gateway_test
