// Kafka consumer groups through the gateway with a raw client: two members join (JoinGroup v5
// with MEMBER_ID_REQUIRED), the leader's assignment reaches the follower through SyncGroup,
// heartbeats, commits fenced by generation, OffsetFetch, LeaveGroup triggering a rebalance;
// and a group with local Sluice members refusing Kafka members.
#include <set>
#include <string>
#include <vector>

#include "gateway_test_support.h"

namespace sluice::gateway_test {
namespace {

kafka::SyncGroupRequest sync_request(
    const std::string& group, std::int32_t generation, const std::string& member,
    const std::vector<std::pair<std::string, std::string>>& assignments) {
  kafka::SyncGroupRequest req;
  req.group_id = group;
  req.generation_id = generation;
  req.member_id = member;
  for (const auto& [m, a] : assignments) req.assignments.push_back({m, a});
  return req;
}

// Until `member`'s heartbeat answers `want` (the coordinator handles other connections'
// requests asynchronously).
bool heartbeat_becomes(KafkaClient& c, const std::string& group, const std::string& member,
                       std::int32_t generation, ErrorCode want) {
  return eventually([&] { return heartbeat(c, group, member, generation) == want; }, 5000);
}

TEST_CASE(
    "gateway: two Kafka members form a group, share an assignment, commit, and "
    "rebalance when one leaves",
    "[kafka][gateway]") {
  GatewayBroker broker;
  broker.create_topic("orders", 2);
  KafkaClient a(broker, "member-a");
  KafkaClient b(broker, "member-b");
  const std::string group = "billing";
  JoinParams pa;
  pa.group = group;
  pa.metadata = subscription({"orders"});
  JoinParams pb = pa;

  // A alone: MEMBER_ID_REQUIRED, then generation g1 with A as the leader.
  Joined first = join_group(a, pa, 5);
  REQUIRE(first.error == ErrorCode::kMemberIdRequired);
  REQUIRE(!first.member_id.empty());
  pa.member_id = first.member_id;
  Joined a1 = join_group(a, pa, 5);
  REQUIRE(a1.error == ErrorCode::kNone);
  CHECK(a1.member_id == pa.member_id);
  CHECK(a1.leader == pa.member_id);
  CHECK(a1.members.size() == 1);
  const std::int32_t g1 = a1.generation;
  auto s1 = a.call<kafka::SyncGroupResponse>(
      ApiKey::kSyncGroup, 3,
      sync_request(group, g1, pa.member_id, {{pa.member_id, assignment("orders", {0, 1})}}));
  REQUIRE(s1->error_code == ErrorCode::kNone);
  CHECK(s1->assignment == assignment("orders", {0, 1}));
  CHECK(heartbeat(a, group, pa.member_id, g1) == ErrorCode::kNone);

  // B joins: MEMBER_ID_REQUIRED, then its join waits for A to rejoin.
  Joined b_first = join_group(b, pb, 5);
  REQUIRE(b_first.error == ErrorCode::kMemberIdRequired);
  REQUIRE(!b_first.member_id.empty());
  CHECK(b_first.member_id != pa.member_id);
  pb.member_id = b_first.member_id;
  std::int32_t b_join = b.send(ApiKey::kJoinGroup, 5, join_request(pb));
  CHECK(heartbeat_becomes(a, group, pa.member_id, g1, ErrorCode::kRebalanceInProgress));
  Joined a2 = join_group(a, pa, 5);
  Joined b2 = joined(b.receive<kafka::JoinGroupResponse>(5, b_join).body);
  REQUIRE(a2.error == ErrorCode::kNone);
  REQUIRE(b2.error == ErrorCode::kNone);
  const std::int32_t g2 = a2.generation;
  CHECK(g2 > g1);
  CHECK(b2.generation == g2);
  CHECK(a2.leader == b2.leader);
  CHECK(a2.protocol == "range");
  CHECK(b2.protocol == "range");
  // Only the leader's answer lists the members.
  const bool a_leads = a2.leader == pa.member_id;
  REQUIRE((a_leads || b2.leader == pb.member_id));
  const Joined& leader = a_leads ? a2 : b2;
  const Joined& follower = a_leads ? b2 : a2;
  KafkaClient& leader_conn = a_leads ? a : b;
  KafkaClient& follower_conn = a_leads ? b : a;
  REQUIRE(leader.members.size() == 2);
  CHECK(follower.members.empty());
  std::set<std::string> ids;
  for (const auto& [id, meta] : leader.members) {
    ids.insert(id);
    CHECK(meta == pa.metadata);
  }
  CHECK(ids == std::set<std::string>{pa.member_id, pb.member_id});

  // The follower's SyncGroup waits for the leader's, which hands out the assignments.
  const std::string leader_part = assignment("orders", {0});
  const std::string follower_part = assignment("orders", {1});
  std::int32_t follower_sync =
      follower_conn.send(ApiKey::kSyncGroup, 3, sync_request(group, g2, follower.member_id, {}));
  auto ls = leader_conn.call<kafka::SyncGroupResponse>(
      ApiKey::kSyncGroup, 3,
      sync_request(group, g2, leader.member_id,
                   {{leader.member_id, leader_part}, {follower.member_id, follower_part}}));
  CHECK(ls->error_code == ErrorCode::kNone);
  CHECK(ls->assignment == leader_part);
  auto fs = follower_conn.receive<kafka::SyncGroupResponse>(3, follower_sync);
  CHECK(fs->error_code == ErrorCode::kNone);
  CHECK(fs->assignment == follower_part);

  CHECK(heartbeat(a, group, pa.member_id, g2) == ErrorCode::kNone);
  CHECK(heartbeat(b, group, pb.member_id, g2) == ErrorCode::kNone);
  CHECK(heartbeat(b, group, pb.member_id, g1) == ErrorCode::kIllegalGeneration);
  CHECK(heartbeat(b, group, "stranger", g2) == ErrorCode::kUnknownMemberId);

  // Commits at the generation; partition 1 was never committed.
  CHECK(commit_offset(leader_conn, group, leader.member_id, g2, "orders", 0, 42) ==
        ErrorCode::kNone);
  CHECK(fetch_offsets(follower_conn, group, "orders", {0, 1}) == std::vector<std::int64_t>{42, -1});
  // From a stale generation: fenced.
  CHECK(commit_offset(follower_conn, group, follower.member_id, g1, "orders", 1, 7) ==
        ErrorCode::kIllegalGeneration);
  CHECK(fetch_offsets(a, group, "orders", {1}) == std::vector<std::int64_t>{-1});

  // B leaves: A is told to rejoin.
  kafka::LeaveGroupRequest leave;
  leave.group_id = group;
  leave.member_id = pb.member_id;
  CHECK(b.call<kafka::LeaveGroupResponse>(ApiKey::kLeaveGroup, 1, leave)->error_code ==
        ErrorCode::kNone);
  CHECK(heartbeat(a, group, pa.member_id, g2) == ErrorCode::kRebalanceInProgress);
  Joined a3 = join_group(a, pa, 5);
  CHECK(a3.error == ErrorCode::kNone);
  CHECK(a3.generation > g2);
  CHECK(a3.leader == pa.member_id);
  CHECK(a3.members.size() == 1);
  // The committed offset survived the rebalance.
  CHECK(fetch_offsets(a, group, "orders", {0}) == std::vector<std::int64_t>{42});
}

TEST_CASE("gateway: JoinGroup v4+ with an empty member id gets MEMBER_ID_REQUIRED; v3 does not",
          "[kafka][gateway]") {
  GatewayBroker broker;
  broker.create_topic("t", 1);
  KafkaClient c(broker);
  JoinParams p;
  p.metadata = subscription({"t"});
  for (std::int16_t v = 0; v <= 5; ++v) {
    INFO("JoinGroup v" << v);
    p.group = "mir-v" + std::to_string(v);
    Joined j = join_group(c, p, v);
    if (v >= 4) {
      CHECK(j.error == ErrorCode::kMemberIdRequired);
      CHECK(!j.member_id.empty());
      CHECK(j.generation == -1);
    } else {
      CHECK(j.error == ErrorCode::kNone);
      CHECK(!j.member_id.empty());
      CHECK(j.generation >= 1);
    }
  }
}

TEST_CASE(
    "gateway: JoinGroup with a session timeout outside 6 s .. 30 min gets "
    "INVALID_SESSION_TIMEOUT",
    "[kafka][gateway]") {
  GatewayBroker broker;
  broker.create_topic("t", 1);
  KafkaClient c(broker);
  JoinParams p;
  p.group = "sessions";
  p.metadata = subscription({"t"});
  p.session_timeout_ms = 1000;
  CHECK(join_group(c, p, 3).error == ErrorCode::kInvalidSessionTimeout);
  p.session_timeout_ms = 2'000'000;
  CHECK(join_group(c, p, 3).error == ErrorCode::kInvalidSessionTimeout);
  p.session_timeout_ms = 6000;
  CHECK(join_group(c, p, 3).error == ErrorCode::kNone);
}

TEST_CASE("gateway: SyncGroup at a stale generation or from a stranger is refused",
          "[kafka][gateway]") {
  GatewayBroker broker;
  broker.create_topic("t", 1);
  KafkaClient c(broker);
  JoinParams p;
  p.group = "syncs";
  p.metadata = subscription({"t"});
  Joined j = join_new_member(c, p, 5);
  REQUIRE(j.error == ErrorCode::kNone);
  auto stale = c.call<kafka::SyncGroupResponse>(
      ApiKey::kSyncGroup, 3,
      sync_request("syncs", j.generation + 5, j.member_id, {{j.member_id, assignment("t", {0})}}));
  CHECK(stale->error_code == ErrorCode::kIllegalGeneration);
  auto stranger = c.call<kafka::SyncGroupResponse>(
      ApiKey::kSyncGroup, 3, sync_request("syncs", j.generation, "stranger", {}));
  CHECK(stranger->error_code == ErrorCode::kUnknownMemberId);
  auto ok = c.call<kafka::SyncGroupResponse>(
      ApiKey::kSyncGroup, 3,
      sync_request("syncs", j.generation, j.member_id, {{j.member_id, assignment("t", {0})}}));
  CHECK(ok->error_code == ErrorCode::kNone);
  CHECK(ok->assignment == assignment("t", {0}));
}

TEST_CASE("gateway: members that support no common protocol get INCONSISTENT_GROUP_PROTOCOL",
          "[kafka][gateway]") {
  GatewayBroker broker;
  broker.create_topic("t", 1);
  KafkaClient a(broker);
  KafkaClient b(broker);
  JoinParams pa;
  pa.group = "protocols";
  pa.metadata = subscription({"t"});
  pa.protocol = "range";
  Joined ja = join_new_member(a, pa, 5);
  REQUIRE(ja.error == ErrorCode::kNone);
  JoinParams pb = pa;
  pb.protocol = "RoundRobinAssigner";
  Joined jb = join_group(b, pb, 3);  // v3: no MEMBER_ID_REQUIRED round
  CHECK(jb.error == ErrorCode::kInconsistentGroupProtocol);
}

TEST_CASE(
    "gateway: a group with local Sluice members refuses a Kafka JoinGroup with "
    "INCONSISTENT_GROUP_PROTOCOL",
    "[kafka][gateway]") {
  GatewayBroker broker;
  broker.create_topic("shared", 2);
  Consumer local = join_local_group(broker, "mixed", "shared");
  KafkaClient c(broker);
  JoinParams p;
  p.group = "mixed";
  p.metadata = subscription({"shared"});
  Joined j = join_group(c, p, 5);
  if (j.error == ErrorCode::kMemberIdRequired) {
    p.member_id = j.member_id;
    j = join_group(c, p, 5);
  }
  CHECK(j.error == ErrorCode::kInconsistentGroupProtocol);
  // Also at an old version.
  p.member_id.clear();
  CHECK(join_group(c, p, 1).error == ErrorCode::kInconsistentGroupProtocol);
  GT_REQUIRE_OK(local.close());
}

TEST_CASE(
    "gateway: OffsetCommit with generation -1 to a memberless group is a simple commit; "
    "OffsetFetch of unknown groups answers -1",
    "[kafka][gateway]") {
  GatewayBroker broker;
  broker.create_topic("t", 3);
  KafkaClient c(broker);
  CHECK(commit_offset(c, "simple", "", -1, "t", 2, 17) == ErrorCode::kNone);
  CHECK(fetch_offsets(c, "simple", "t", {0, 1, 2}) == std::vector<std::int64_t>{-1, -1, 17});
  CHECK(fetch_offsets(c, "never-seen", "t", {0}) == std::vector<std::int64_t>{-1});
  // v2+ with null topics: every committed partition of the group.
  kafka::OffsetFetchRequest all;
  all.group_id = "simple";
  auto reply = c.call<kafka::OffsetFetchResponse>(ApiKey::kOffsetFetch, 5, all);
  CHECK(reply->error_code == ErrorCode::kNone);
  REQUIRE(reply->topics.size() == 1);
  CHECK(reply->topics[0].name == "t");
  REQUIRE(reply->topics[0].partitions.size() == 1);
  CHECK(reply->topics[0].partitions[0].partition_index == 2);
  CHECK(reply->topics[0].partitions[0].committed_offset == 17);
  // Visible to the local side too: the same offsets table.
  auto admin = must(Admin::connect(broker.data_dir()));
  GroupInfo info = must(admin.describe_group("simple"));
  bool found = false;
  for (const auto& o : info.offsets)
    if (o.partition.topic == "t" && o.partition.partition == 2) {
      found = true;
      CHECK(o.committed == 17);
    }
  CHECK(found);
}

TEST_CASE(
    "gateway: OffsetCommit for a topic or partition the broker does not have is "
    "UNKNOWN_TOPIC_OR_PARTITION; a deleted topic's offsets are gone",
    "[kafka][gateway]") {
  GatewayBroker broker;
  broker.create_topic("t", 2);
  KafkaClient c(broker);
  CHECK(commit_offset(c, "simple", "", -1, "nope", 0, 3) == ErrorCode::kUnknownTopicOrPartition);
  CHECK(commit_offset(c, "simple", "", -1, "t", 2, 3) == ErrorCode::kUnknownTopicOrPartition);
  CHECK(commit_offset(c, "simple", "", -1, "t", 1, 4) == ErrorCode::kNone);
  CHECK(fetch_offsets(c, "simple", "t", {1}) == std::vector<std::int64_t>{4});
  auto admin = must(Admin::connect(broker.data_dir()));
  GT_REQUIRE_OK(admin.delete_topic("t"));
  broker.create_topic("t", 2);
  CHECK(fetch_offsets(c, "simple", "t", {0, 1}) == std::vector<std::int64_t>{-1, -1});
}

}  // namespace
}  // namespace sluice::gateway_test
