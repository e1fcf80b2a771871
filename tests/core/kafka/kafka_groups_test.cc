// core/src/kafka/kafka_groups: the Kafka-protocol group coordinator, driven directly with time
// (milliseconds): JoinGroup / SyncGroup / Heartbeat / LeaveGroup / OffsetCommit validation as
// Kafka's classic coordinator answers them, including the answers that wait.
#include "kafka/kafka_groups.h"

#include <catch2/catch.hpp>
#include <string>
#include <vector>

namespace sluice::kafka {
namespace {

namespace ge = group_errors;

constexpr std::int32_t kSession = 10'000;
constexpr std::int32_t kRebalance = 30'000;
constexpr std::int64_t kDelay = 300;
// stable_group(n, 0) completes its rebalance here: members arriving during the first initial
// delay extend it once.
constexpr std::int64_t kFormed = 2 * kDelay;

using Protocols = std::vector<GroupProtocol>;

Protocols range() {
  return {{"range", "meta-range"}};
}

struct Collected {
  std::vector<JoinResponseReady> joins;
  std::vector<SyncResponseReady> syncs;
  std::vector<MemberRemoved> removed;
  std::vector<GenerationStarted> generations;

  const JoinResponseReady* join(const std::string& member) const {
    for (const auto& j : joins)
      if (j.member_id == member) return &j;
    return nullptr;
  }
  const SyncResponseReady* sync(const std::string& member) const {
    for (const auto& s : syncs)
      if (s.member_id == member) return &s;
    return nullptr;
  }
  bool empty() const {
    return joins.empty() && syncs.empty() && removed.empty() && generations.empty();
  }
};

Collected collect(const std::vector<KafkaGroupEvent>& events) {
  Collected c;
  for (const KafkaGroupEvent& e : events) {
    if (auto* j = std::get_if<JoinResponseReady>(&e)) c.joins.push_back(*j);
    if (auto* s = std::get_if<SyncResponseReady>(&e)) c.syncs.push_back(*s);
    if (auto* m = std::get_if<MemberRemoved>(&e)) c.removed.push_back(*m);
    if (auto* g = std::get_if<GenerationStarted>(&e)) c.generations.push_back(*g);
  }
  return c;
}

struct Fixture {
  KafkaGroupsConfig config;
  KafkaGroupCoordinator coordinator;

  static KafkaGroupsConfig make_config(std::int64_t delay) {
    KafkaGroupsConfig c;
    c.initial_rebalance_delay_ms = delay;
    c.instance = "i";
    return c;
  }
  explicit Fixture(std::int64_t delay = kDelay) : config(make_config(delay)), coordinator(config) {}

  KafkaGroupCoordinator* operator->() { return &coordinator; }

  JoinOutcome join(const std::string& member, std::int64_t now, Protocols protocols = range(),
                   std::int16_t version = 1, const std::string& client = "c",
                   const std::string& group = "g") {
    JoinGroupParams p;
    p.group_id = group;
    p.member_id = member;
    p.client_id = client;
    p.client_host = "/127.0.0.1";
    p.session_timeout_ms = kSession;
    p.rebalance_timeout_ms = kRebalance;
    p.protocol_type = "consumer";
    p.protocols = std::move(protocols);
    p.api_version = version;
    return coordinator.join(p, now);
  }
  SyncOutcome sync(const std::string& member, std::int32_t generation, std::int64_t now,
                   std::vector<SyncGroupAssignment> assignments = {}) {
    SyncGroupParams p;
    p.group_id = "g";
    p.member_id = member;
    p.generation_id = generation;
    p.assignments = std::move(assignments);
    return coordinator.sync(p, now);
  }
  std::int16_t heartbeat(const std::string& member, std::int32_t generation, std::int64_t now) {
    return coordinator.heartbeat("g", member, generation, std::nullopt, now);
  }
  std::int16_t commit(const std::string& member, std::int32_t generation, std::int64_t now) {
    return coordinator.validate_commit("g", member, generation, std::nullopt, now);
  }
  KafkaGroupState state() const { return coordinator.describe("g").state; }
  std::int32_t generation() const { return coordinator.describe("g").generation_id; }

  // n members join at `now` and get through a whole rebalance to Stable at now + kFormed (a
  // leader and n-1 followers, each with assignment "a-<member>"). Returns the ids in joining
  // order.
  std::vector<std::string> stable_group(int n, std::int64_t now) {
    std::vector<std::string> ids;
    for (int i = 0; i < n; ++i) {
      JoinOutcome j = join("", now, range(), 1, "c" + std::to_string(i));
      REQUIRE_FALSE(j.response);
      ids.push_back(j.member_id);
    }
    Collected done = collect(coordinator.tick(now + kFormed));
    REQUIRE(done.joins.size() == static_cast<std::size_t>(n));
    const std::int32_t gen = done.joins[0].response.generation_id;
    std::vector<SyncGroupAssignment> assignments;
    for (const std::string& id : ids) assignments.push_back({id, "a-" + id});
    for (std::size_t i = 1; i < ids.size(); ++i)
      REQUIRE_FALSE(sync(ids[i], gen, now + kFormed).response);
    REQUIRE(sync(ids[0], gen, now + kFormed, assignments).response);
    REQUIRE(state() == KafkaGroupState::kStable);
    return ids;
  }
};

TEST_CASE("kafka groups: a single member joins, syncs and heartbeats", "[kafka][groups]") {
  Fixture f;
  JoinOutcome j = f.join("", 1000, range(), 1, "rdkafka");
  CHECK_FALSE(j.response);  // waits for the initial rebalance delay
  CHECK(j.events.empty());
  CHECK_THAT(j.member_id, Catch::StartsWith("rdkafka-i-"));
  CHECK(f.state() == KafkaGroupState::kPreparingRebalance);
  CHECK(f->next_deadline() == std::optional<std::int64_t>(1000 + kDelay));
  CHECK(collect(f->tick(1000 + kDelay - 1)).empty());

  Collected done = collect(f->tick(1000 + kDelay));
  REQUIRE(done.generations.size() == 1);
  CHECK(done.generations[0].generation_id == 1);
  CHECK(done.generations[0].protocol == "range");
  CHECK(done.generations[0].protocol_type == "consumer");
  REQUIRE(done.joins.size() == 1);
  const JoinGroupResponseData& r = done.joins[0].response;
  CHECK(r.error_code == ge::kNone);
  CHECK(r.generation_id == 1);
  CHECK(r.protocol_name == "range");
  CHECK(r.leader == j.member_id);
  CHECK(r.member_id == j.member_id);
  REQUIRE(r.members.size() == 1);
  CHECK(r.members[0].member_id == j.member_id);
  CHECK(r.members[0].metadata == "meta-range");
  CHECK(f.state() == KafkaGroupState::kCompletingRebalance);
  CHECK(f.heartbeat(j.member_id, 1, 1400) == ge::kNone);  // Kafka: NONE while awaiting sync

  SyncOutcome s = f.sync(j.member_id, 1, 1500, {{j.member_id, "mine"}});
  REQUIRE(s.response);
  CHECK(s.response->error_code == ge::kNone);
  CHECK(s.response->assignment == "mine");
  CHECK(s.events.empty());
  CHECK(f.state() == KafkaGroupState::kStable);

  CHECK(f.heartbeat(j.member_id, 1, 2000) == ge::kNone);
  CHECK(f.heartbeat(j.member_id, 0, 2000) == ge::kIllegalGeneration);
  CHECK(f.heartbeat("nobody", 1, 2000) == ge::kUnknownMemberId);
  CHECK(f->heartbeat("other-group", j.member_id, 1, std::nullopt, 2000) == ge::kUnknownMemberId);
  // A Stable group gives the assignment again on a repeated SyncGroup.
  SyncOutcome again = f.sync(j.member_id, 1, 2100);
  REQUIRE(again.response);
  CHECK(again.response->assignment == "mine");
  CHECK(f.sync(j.member_id, 2, 2100).response->error_code == ge::kIllegalGeneration);

  KafkaGroupDescription d = f->describe("g");
  CHECK(std::string(kafka_group_state_name(d.state)) == "Stable");
  CHECK(d.protocol_type == "consumer");
  CHECK(d.leader == j.member_id);
  REQUIRE(d.members.size() == 1);
  CHECK(d.members[0].client_id == "rdkafka");
  CHECK(d.members[0].client_host == "/127.0.0.1");
  CHECK(d.members[0].metadata == "meta-range");
  CHECK(d.members[0].assignment == "mine");
}

TEST_CASE(
    "kafka groups: members joining in one window form one generation; only the leader "
    "gets the member list; followers' syncs wait for the leader's",
    "[kafka][groups]") {
  Fixture f;
  JoinOutcome a = f.join("", 0, {{"range", "md-a"}}, 1, "a");
  JoinOutcome b = f.join("", 100, {{"range", "md-b"}}, 1, "b");
  CHECK_FALSE(a.response);
  CHECK_FALSE(b.response);
  CHECK(b.events.empty());
  // The delay is extended once because b arrived during it.
  CHECK(collect(f->tick(kDelay)).empty());
  CHECK(f->next_deadline() == std::optional<std::int64_t>(2 * kDelay));
  Collected done = collect(f->tick(2 * kDelay));
  REQUIRE(done.generations.size() == 1);
  REQUIRE(done.joins.size() == 2);
  const JoinGroupResponseData& ra = done.join(a.member_id)->response;
  const JoinGroupResponseData& rb = done.join(b.member_id)->response;
  CHECK(ra.leader == a.member_id);
  CHECK(rb.leader == a.member_id);
  CHECK(ra.generation_id == 1);
  CHECK(rb.generation_id == 1);
  REQUIRE(ra.members.size() == 2);
  CHECK(ra.members[0].member_id == a.member_id);
  CHECK(ra.members[0].metadata == "md-a");
  CHECK(ra.members[1].member_id == b.member_id);
  CHECK(ra.members[1].metadata == "md-b");
  CHECK(rb.members.empty());

  SyncOutcome sb = f.sync(b.member_id, 1, 700);
  CHECK_FALSE(sb.response);  // waits for the leader
  CHECK(sb.events.empty());
  SyncOutcome sa = f.sync(a.member_id, 1, 800, {{a.member_id, "A"}, {b.member_id, "B"}});
  REQUIRE(sa.response);
  CHECK(sa.response->assignment == "A");
  Collected delivered = collect(sa.events);
  REQUIRE(delivered.syncs.size() == 1);
  CHECK(delivered.syncs[0].member_id == b.member_id);
  CHECK(delivered.syncs[0].response.error_code == ge::kNone);
  CHECK(delivered.syncs[0].response.assignment == "B");
  CHECK(f.state() == KafkaGroupState::kStable);
}

TEST_CASE("kafka groups: a member left out of the leader's assignment gets empty bytes",
          "[kafka][groups]") {
  Fixture f;
  JoinOutcome a = f.join("", 0);
  JoinOutcome b = f.join("", 0);
  f->tick(2 * kDelay);
  CHECK_FALSE(f.sync(b.member_id, 1, 700).response);
  SyncOutcome sa = f.sync(a.member_id, 1, 700, {{a.member_id, "A"}, {"stranger", "S"}});
  Collected c = collect(sa.events);
  REQUIRE(c.syncs.size() == 1);
  CHECK(c.syncs[0].response.error_code == ge::kNone);
  CHECK(c.syncs[0].response.assignment.empty());
}

TEST_CASE(
    "kafka groups: a third member makes the others' heartbeats answer 27; their rejoins "
    "complete the next generation",
    "[kafka][groups]") {
  Fixture f;
  auto ids = f.stable_group(2, 0);
  JoinOutcome c = f.join("", 5000);
  CHECK_FALSE(c.response);
  CHECK(f.state() == KafkaGroupState::kPreparingRebalance);
  CHECK(f.heartbeat(ids[0], 1, 5100) == ge::kRebalanceInProgress);
  CHECK(f.heartbeat(ids[1], 1, 5100) == ge::kRebalanceInProgress);
  CHECK(f.sync(ids[1], 1, 5100).response->error_code == ge::kRebalanceInProgress);

  CHECK_FALSE(f.join(ids[0], 5200).response);
  JoinOutcome last = f.join(ids[1], 5300);  // the last one completes the rebalance at once
  CHECK_FALSE(last.response);
  Collected done = collect(last.events);
  REQUIRE(done.generations.size() == 1);
  CHECK(done.generations[0].generation_id == 2);
  CHECK(done.generations[0].members == 3);
  REQUIRE(done.joins.size() == 3);
  CHECK(done.join(ids[0])->response.leader == ids[0]);  // the leader stays
  CHECK(done.join(ids[0])->response.members.size() == 3);
  CHECK(done.join(c.member_id)->response.members.empty());
  CHECK(done.join(c.member_id)->response.generation_id == 2);
  CHECK(f.heartbeat(ids[0], 2, 5400) == ge::kNone);
  CHECK(f.heartbeat(ids[0], 1, 5400) == ge::kIllegalGeneration);
}

TEST_CASE(
    "kafka groups: a follower rejoining a Stable group unchanged gets the current "
    "generation back; changed protocols or the leader rejoining rebalance",
    "[kafka][groups]") {
  Fixture f;
  auto ids = f.stable_group(2, 0);
  JoinOutcome same = f.join(ids[1], 1000);
  REQUIRE(same.response);
  CHECK(same.response->generation_id == 1);
  CHECK(same.response->leader == ids[0]);
  CHECK(f.state() == KafkaGroupState::kStable);

  JoinOutcome changed = f.join(ids[1], 1100, {{"range", "new-subscription"}});
  CHECK_FALSE(changed.response);
  CHECK(f.state() == KafkaGroupState::kPreparingRebalance);
  Collected done = collect(f.join(ids[0], 1200).events);
  REQUIRE(done.joins.size() == 2);
  CHECK(done.join(ids[0])->response.members[1].metadata == "new-subscription");
  // Joined the CompletingRebalance group again unchanged: the same answer at once.
  JoinOutcome repeat = f.join(ids[1], 1300, {{"range", "new-subscription"}});
  REQUIRE(repeat.response);
  CHECK(repeat.response->generation_id == 2);

  Fixture g;
  auto gids = g.stable_group(2, 0);
  CHECK_FALSE(g.join(gids[0], 1000).response);  // the leader rejoining rebalances
  CHECK(g.state() == KafkaGroupState::kPreparingRebalance);
}

TEST_CASE("kafka groups: LeaveGroup rebalances the others; the leader's place passes on",
          "[kafka][groups]") {
  Fixture f;
  auto ids = f.stable_group(3, 0);
  LeaveOutcome l = f->leave("g", ids[0], 1000);
  CHECK(l.error_code == ge::kNone);
  Collected left = collect(l.events);
  REQUIRE(left.removed.size() == 1);
  CHECK(left.removed[0].reason == KafkaRemovalReason::kLeft);
  CHECK(f.state() == KafkaGroupState::kPreparingRebalance);
  CHECK(f.heartbeat(ids[1], 1, 1100) == ge::kRebalanceInProgress);
  CHECK(f.heartbeat(ids[0], 1, 1100) == ge::kUnknownMemberId);
  CHECK_FALSE(f.join(ids[2], 1200).response);
  Collected done = collect(f.join(ids[1], 1300).events);
  REQUIRE(done.joins.size() == 2);
  CHECK(done.join(ids[1])->response.leader == ids[1]);  // the next in joining order
  CHECK(done.join(ids[1])->response.members.size() == 2);
  CHECK(f.generation() == 2);

  CHECK(f->leave("g", "nobody", 1400).error_code == ge::kUnknownMemberId);
  CHECK(f->leave("nogroup", ids[1], 1400).error_code == ge::kUnknownMemberId);
}

TEST_CASE("kafka groups: the last member leaving empties the group at a new generation",
          "[kafka][groups]") {
  Fixture f;
  auto ids = f.stable_group(1, 0);
  Collected c = collect(f->leave("g", ids[0], 1000).events);
  REQUIRE(c.generations.size() == 1);
  CHECK(c.generations[0].generation_id == 2);
  CHECK(c.generations[0].protocol.empty());
  CHECK(f.state() == KafkaGroupState::kEmpty);
  CHECK(f->describe("g").members.empty());
}

TEST_CASE("kafka groups: a waiting join of a member that leaves is answered 25",
          "[kafka][groups]") {
  Fixture f;
  auto ids = f.stable_group(2, 0);
  CHECK_FALSE(f.join(ids[0], 1000).response);  // leader rejoins: PreparingRebalance
  Collected c = collect(f->leave("g", ids[0], 1100).events);
  const JoinResponseReady* j = c.join(ids[0]);
  REQUIRE(j);
  CHECK(j->response.error_code == ge::kUnknownMemberId);
}

TEST_CASE("kafka groups: a silent member is expelled after its session timeout",
          "[kafka][groups]") {
  Fixture f;
  auto ids = f.stable_group(2, 0);
  // Both were last heard at kFormed (their syncs); ids[0] heartbeats once more.
  CHECK(f.heartbeat(ids[0], 1, 6000) == ge::kNone);
  CHECK(f->next_deadline() == std::optional<std::int64_t>(kFormed + kSession));
  CHECK(collect(f->tick(kFormed + kSession - 1)).empty());
  Collected c = collect(f->tick(kFormed + kSession));
  REQUIRE(c.removed.size() == 1);
  CHECK(c.removed[0].member_id == ids[1]);
  CHECK(c.removed[0].reason == KafkaRemovalReason::kSessionTimeout);
  CHECK(f.state() == KafkaGroupState::kPreparingRebalance);
  CHECK(f.heartbeat(ids[1], 1, kFormed + kSession + 1) == ge::kUnknownMemberId);
  Collected done = collect(f.join(ids[0], kFormed + kSession + 2).events);
  REQUIRE(done.joins.size() == 1);
  CHECK(done.joins[0].response.generation_id == 2);
}

TEST_CASE("kafka groups: a member whose join waits is not expired during the rebalance",
          "[kafka][groups]") {
  Fixture f;
  auto ids = f.stable_group(2, 0);
  CHECK_FALSE(f.join(ids[0], 1000).response);
  // ids[1] keeps heartbeating but does not rejoin for a while; ids[0] is silent but waiting.
  for (std::int64_t t = 5000; t <= 25000; t += 5000) {
    CHECK(f.heartbeat(ids[1], 1, t) == ge::kRebalanceInProgress);
    CHECK(collect(f->tick(t)).removed.empty());
  }
  Collected done = collect(f.join(ids[1], 26000).events);
  CHECK(done.joins.size() == 2);
}

TEST_CASE("kafka groups: members that do not rejoin within the rebalance timeout are removed",
          "[kafka][groups]") {
  Fixture f;
  auto ids = f.stable_group(2, 0);
  JoinOutcome c = f.join("", 1000);
  CHECK_FALSE(f.join(ids[0], 1100).response);
  CHECK(f->next_deadline() == std::optional<std::int64_t>(kFormed + kSession));  // ids[1]'s session
  for (std::int64_t t = 5000; t < 1000 + kRebalance; t += 5000)
    CHECK(f.heartbeat(ids[1], 1, t) == ge::kRebalanceInProgress);  // alive, but never rejoins
  CHECK(collect(f->tick(1000 + kRebalance - 1)).empty());
  Collected done = collect(f->tick(1000 + kRebalance));
  REQUIRE(done.removed.size() == 1);
  CHECK(done.removed[0].member_id == ids[1]);
  CHECK(done.removed[0].reason == KafkaRemovalReason::kRebalanceTimeout);
  REQUIRE(done.generations.size() == 1);
  CHECK(done.generations[0].generation_id == 2);
  CHECK(done.generations[0].members == 2);
  CHECK(done.joins.size() == 2);
  CHECK(done.join(c.member_id));
}

TEST_CASE("kafka groups: a member that never syncs is removed after the rebalance timeout",
          "[kafka][groups]") {
  Fixture f;
  JoinOutcome a = f.join("", 0);
  JoinOutcome b = f.join("", 0);
  f->tick(2 * kDelay);
  CHECK(f.sync(a.member_id, 1, 1000, {{a.member_id, "A"}, {b.member_id, "B"}}).response);
  for (std::int64_t t = 5000; t < 2 * kDelay + kRebalance; t += 5000) {
    CHECK(f.heartbeat(b.member_id, 1, t) == ge::kNone);
    CHECK(f.heartbeat(a.member_id, 1, t) == ge::kNone);
  }
  Collected c = collect(f->tick(2 * kDelay + kRebalance));
  REQUIRE(c.removed.size() == 1);
  CHECK(c.removed[0].member_id == b.member_id);
  CHECK(c.removed[0].reason == KafkaRemovalReason::kSyncTimeout);
  CHECK(f.state() == KafkaGroupState::kPreparingRebalance);
}

TEST_CASE("kafka groups: JoinGroup v4+ with an empty member id gets MEMBER_ID_REQUIRED",
          "[kafka][groups]") {
  Fixture f;
  JoinOutcome first = f.join("", 0, range(), 4, "java");
  REQUIRE(first.response);
  CHECK(first.response->error_code == ge::kMemberIdRequired);
  CHECK(first.response->member_id == first.member_id);
  CHECK_THAT(first.member_id, Catch::StartsWith("java-"));
  CHECK(f->describe("g").members.empty());
  CHECK(f.state() == KafkaGroupState::kEmpty);

  JoinOutcome second = f.join(first.member_id, 100, range(), 4, "java");
  CHECK_FALSE(second.response);
  Collected done = collect(f->tick(100 + kDelay));
  REQUIRE(done.joins.size() == 1);
  CHECK(done.joins[0].member_id == first.member_id);

  // Versions below 4 join directly.
  JoinOutcome old = f.join("", 1000, range(), 3);
  CHECK_FALSE(old.response);
  CHECK(f.state() == KafkaGroupState::kPreparingRebalance);
}

TEST_CASE(
    "kafka groups: a reserved member id holds a rebalance back until it joins, and "
    "expires after the session timeout",
    "[kafka][groups]") {
  Fixture f;
  auto ids = f.stable_group(1, 0);
  JoinOutcome r = f.join("", 1000, range(), 4);
  REQUIRE(r.response->error_code == ge::kMemberIdRequired);
  CHECK(f.state() == KafkaGroupState::kStable);  // a reservation alone does not rebalance
  CHECK(f.heartbeat(ids[0], 1, 1000) == ge::kNone);

  JoinOutcome lead = f.join(ids[0], 1100);  // the leader rejoins: waits for the reserved id
  CHECK_FALSE(lead.response);
  CHECK(collect(lead.events).joins.empty());
  Collected done = collect(f.join(r.member_id, 1200, range(), 4).events);
  REQUIRE(done.joins.size() == 2);
  CHECK(done.generations[0].members == 2);

  // A reservation that is never used expires, and the rebalance it held back completes.
  JoinOutcome r2 = f.join("", 2000, range(), 4);
  REQUIRE(r2.response->error_code == ge::kMemberIdRequired);
  f.sync(ids[0], 2, 2000, {});
  f.sync(r.member_id, 2, 2000);
  CHECK_FALSE(f.join(ids[0], 2100).response);
  CHECK_FALSE(f.join(r.member_id, 2100).response);
  CHECK(f.state() == KafkaGroupState::kPreparingRebalance);
  Collected expired = collect(f->tick(2000 + kSession));
  CHECK(expired.joins.size() == 2);
  CHECK(f.generation() == 3);
  CHECK(f.join(r2.member_id, 2000 + kSession + 1, range(), 4).response->error_code ==
        ge::kUnknownMemberId);
}

TEST_CASE("kafka groups: JoinGroup validation errors", "[kafka][groups]") {
  Fixture f;
  JoinGroupParams p;
  p.group_id = "";
  p.client_id = "c";
  p.session_timeout_ms = kSession;
  p.protocol_type = "consumer";
  p.protocols = range();
  CHECK(f->join(p, 0).response->error_code == ge::kInvalidGroupId);
  p.group_id = "g";
  p.session_timeout_ms = 5999;
  CHECK(f->join(p, 0).response->error_code == ge::kInvalidSessionTimeout);
  p.session_timeout_ms = 1'800'001;
  CHECK(f->join(p, 0).response->error_code == ge::kInvalidSessionTimeout);
  p.session_timeout_ms = kSession;
  p.member_id = "made-up";
  CHECK(f->join(p, 0).response->error_code == ge::kUnknownMemberId);
  p.member_id = "";
  p.protocols.clear();
  CHECK(f->join(p, 0).response->error_code == ge::kInconsistentGroupProtocol);
  CHECK(f->list_groups().empty());  // failed joins leave no group behind

  auto ids = f.stable_group(1, 0);
  CHECK(f.join("made-up", 1000).response->error_code == ge::kUnknownMemberId);
  p.protocols = range();
  p.protocol_type = "connect";
  CHECK(f->join(p, 1000).response->error_code == ge::kInconsistentGroupProtocol);
}

TEST_CASE("kafka groups: members with no protocol in common get INCONSISTENT_GROUP_PROTOCOL",
          "[kafka][groups]") {
  Fixture f;
  JoinOutcome js = f.join("", 0, {{"RoundRobinAssigner", "kafkajs"}}, 1, "kafkajs");
  CHECK_FALSE(js.response);
  JoinOutcome rd = f.join("", 10, {{"range", "x"}, {"roundrobin", "y"}}, 1, "rdkafka");
  REQUIRE(rd.response);
  CHECK(rd.response->error_code == ge::kInconsistentGroupProtocol);
  CHECK(f->describe("g").members.size() == 1);
  // A member that also offers the group's protocol is welcome.
  JoinOutcome both = f.join("", 20, {{"range", "x"}, {"RoundRobinAssigner", "z"}});
  CHECK_FALSE(both.response);
  Collected done = collect(f->tick(20 + 2 * kDelay));
  REQUIRE(done.generations.size() == 1);
  CHECK(done.generations[0].protocol == "RoundRobinAssigner");
  CHECK(done.join(js.member_id)->response.members[1].metadata == "z");
}

TEST_CASE("kafka groups: the protocol is chosen by the members' votes", "[kafka][groups]") {
  SECTION("the most first choices among the common protocols win") {
    Fixture f;
    JoinOutcome a = f.join("", 0, {{"range", "ra"}, {"roundrobin", "rra"}, {"sticky", "sa"}});
    f.join("", 0, {{"roundrobin", "rrb"}, {"range", "rb"}});
    f.join("", 0, {{"sticky", "sc"}, {"roundrobin", "rrc"}, {"range", "rc"}});
    Collected done = collect(f->tick(2 * kDelay));
    // sticky is not supported by b, so c votes roundrobin: roundrobin 2, range 1.
    REQUIRE(done.generations.size() == 1);
    CHECK(done.generations[0].protocol == "roundrobin");
    const JoinGroupResponseData& leader = done.join(a.member_id)->response;
    CHECK(leader.protocol_name == "roundrobin");
    REQUIRE(leader.members.size() == 3);
    CHECK(leader.members[0].metadata == "rra");
    CHECK(leader.members[1].metadata == "rrb");
    CHECK(leader.members[2].metadata == "rrc");
  }
  SECTION("a tie goes to the leader's preference") {
    Fixture f;
    f.join("", 0, {{"range", "ra"}, {"roundrobin", "rra"}});
    f.join("", 0, {{"roundrobin", "rrb"}, {"range", "rb"}});
    Collected done = collect(f->tick(2 * kDelay));
    CHECK(done.generations[0].protocol == "range");
  }
}

TEST_CASE("kafka groups: OffsetCommit validation in each state", "[kafka][groups]") {
  Fixture f;
  // Unknown group: a simple commit creates it, a generation is from the past.
  CHECK(f->validate_commit("g", "", 3, std::nullopt, 0) == ge::kIllegalGeneration);
  CHECK(f.commit("", -1, 0) == ge::kNone);
  CHECK(f.state() == KafkaGroupState::kEmpty);
  REQUIRE(f->list_groups().size() == 1);
  // Empty: simple commits only.
  CHECK(f.commit("", -1, 0) == ge::kNone);
  CHECK(f.commit("someone", 0, 0) == ge::kUnknownMemberId);
  CHECK(f->validate_commit("", "", -1, std::nullopt, 0) == ge::kInvalidGroupId);

  // PreparingRebalance: a member of the current generation may commit; others may not.
  JoinOutcome a = f.join("", 100);
  CHECK(f.commit(a.member_id, 0, 100) == ge::kNone);
  CHECK(f.commit("", -1, 100) == ge::kUnknownMemberId);
  CHECK(f.commit(a.member_id, 1, 100) == ge::kIllegalGeneration);

  // CompletingRebalance: REBALANCE_IN_PROGRESS.
  f->tick(100 + kDelay);
  REQUIRE(f.state() == KafkaGroupState::kCompletingRebalance);
  CHECK(f.commit(a.member_id, 1, 500) == ge::kRebalanceInProgress);
  CHECK(f.commit(a.member_id, 0, 500) == ge::kIllegalGeneration);
  CHECK(f.commit("x", 1, 500) == ge::kUnknownMemberId);

  // Stable.
  f.sync(a.member_id, 1, 500, {{a.member_id, "A"}});
  CHECK(f.commit(a.member_id, 1, 600) == ge::kNone);
  CHECK(f.commit(a.member_id, 0, 600) == ge::kIllegalGeneration);
  CHECK(f.commit("x", 1, 600) == ge::kUnknownMemberId);
  CHECK(f.commit("", -1, 600) == ge::kUnknownMemberId);
  CHECK(f.commit(a.member_id, -1, 600) == ge::kIllegalGeneration);

  // PreparingRebalance of a formed group: eager consumers commit before they rejoin.
  f.join("", 700);
  REQUIRE(f.state() == KafkaGroupState::kPreparingRebalance);
  CHECK(f.commit(a.member_id, 1, 700) == ge::kNone);
}

TEST_CASE("kafka groups: a commit keeps the session alive", "[kafka][groups]") {
  Fixture f;
  auto ids = f.stable_group(1, 0);
  CHECK(f.commit(ids[0], 1, 8000) == ge::kNone);
  CHECK(collect(f->tick(kFormed + kSession)).removed.empty());
  CHECK(collect(f->tick(8000 + kSession)).removed.size() == 1);
}

TEST_CASE("kafka groups: a rebalance answers waiting syncs with REBALANCE_IN_PROGRESS",
          "[kafka][groups]") {
  Fixture f;
  JoinOutcome a = f.join("", 0);
  JoinOutcome b = f.join("", 0);
  f->tick(2 * kDelay);
  CHECK_FALSE(f.sync(b.member_id, 1, 700).response);
  Collected c = collect(f.join("", 800).events);  // a third member, before the leader syncs
  REQUIRE(c.syncs.size() == 1);
  CHECK(c.syncs[0].member_id == b.member_id);
  CHECK(c.syncs[0].response.error_code == ge::kRebalanceInProgress);
  CHECK(f.sync(a.member_id, 1, 900, {{a.member_id, "A"}}).response->error_code ==
        ge::kRebalanceInProgress);
}

TEST_CASE("kafka groups: cancel_pending drops waiting answers but keeps the member",
          "[kafka][groups]") {
  Fixture f;
  JoinOutcome a = f.join("", 0);
  JoinOutcome b = f.join("", 0);
  f->cancel_pending(b.member_id, 100);
  Collected done = collect(f->tick(2 * kDelay));
  CHECK(done.joins.size() == 1);  // only a's
  CHECK(done.generations[0].members == 2);
  JoinOutcome again = f.join(b.member_id, 700);  // b reconnects and asks again
  REQUIRE(again.response);
  CHECK(again.response->generation_id == 1);
  CHECK_FALSE(f.sync(b.member_id, 1, 700).response);
  f->cancel_pending(b.member_id, 750);
  SyncOutcome s = f.sync(a.member_id, 1, 800, {{a.member_id, "A"}, {b.member_id, "B"}});
  CHECK(collect(s.events).syncs.empty());
  CHECK(f->describe("g").members.size() == 2);
  f->cancel_pending("unknown", 800);  // ignored
}

TEST_CASE("kafka groups: a static member restarting fences its previous member id",
          "[kafka][groups]") {
  Fixture f;
  JoinGroupParams p;
  p.group_id = "g";
  p.client_id = "c";
  p.group_instance_id = "host-1";
  p.session_timeout_ms = kSession;
  p.rebalance_timeout_ms = kRebalance;
  p.protocol_type = "consumer";
  p.protocols = range();
  p.api_version = 5;
  JoinOutcome first = f->join(p, 0);
  CHECK_FALSE(first.response);  // static members skip MEMBER_ID_REQUIRED
  f->tick(kDelay);
  f->sync({"g", first.member_id, 1, std::string("host-1"), {{first.member_id, "A"}}}, 400);
  JoinOutcome second = f->join(p, 1000);
  CHECK(second.member_id != first.member_id);
  Collected c = collect(second.events);
  REQUIRE(c.removed.size() == 1);
  CHECK(c.removed[0].reason == KafkaRemovalReason::kFenced);
  CHECK(f->heartbeat("g", first.member_id, 1, std::string("host-1"), 1100) ==
        ge::kFencedInstanceId);
  CHECK(f->heartbeat("g", second.member_id, 1, std::string("other"), 1100) == ge::kUnknownMemberId);
  KafkaGroupDescription d = f->describe("g");
  REQUIRE(d.members.size() == 1);
  CHECK(d.members[0].group_instance_id == std::optional<std::string>("host-1"));
}

TEST_CASE(
    "kafka groups: restored generations continue upward and restored groups keep their "
    "protocol type",
    "[kafka][groups]") {
  Fixture f;
  f->restore_generation("g", 41, "consumer");
  f->restore_generation("g", 7, "");  // never lowers, nor forgets the type
  f->restore_generation("unknown-type", 3, "");
  KafkaGroupDescription d = f->describe("g");
  CHECK(d.state == KafkaGroupState::kEmpty);
  CHECK(d.generation_id == 41);
  CHECK(d.protocol_type == "consumer");
  auto listed = f->list_groups();
  REQUIRE(listed.size() == 2);
  CHECK(listed[0].group_id == "g");
  CHECK(listed[0].protocol_type == "consumer");
  CHECK(listed[0].state == KafkaGroupState::kEmpty);
  CHECK(listed[1].group_id == "unknown-type");
  CHECK(listed[1].protocol_type.empty());
  JoinOutcome a = f.join("", 0);
  Collected done = collect(f->tick(kDelay));
  REQUIRE(done.generations.size() == 1);
  CHECK(done.generations[0].generation_id == 42);
  CHECK(done.join(a.member_id)->response.generation_id == 42);
  CHECK(f.commit("", -1, 0) == ge::kUnknownMemberId);
}

TEST_CASE("kafka groups: only empty groups can be deleted", "[kafka][groups]") {
  Fixture f;
  CHECK(f->delete_group("g") == ge::kGroupIdNotFound);
  CHECK(f->delete_group("") == ge::kInvalidGroupId);
  auto ids = f.stable_group(1, 0);
  CHECK(f->delete_group("g") == ge::kNonEmptyGroup);
  f->leave("g", ids[0], 1000);
  CHECK(f->delete_group("g") == ge::kNone);
  CHECK(f->describe("g").state == KafkaGroupState::kDead);
  CHECK(std::string(kafka_group_state_name(KafkaGroupState::kDead)) == "Dead");
  CHECK(f->list_groups().empty());
}

TEST_CASE("kafka groups: list_groups and next_deadline", "[kafka][groups]") {
  Fixture f;
  CHECK_FALSE(f->next_deadline());
  f.join("", 0, range(), 1, "c", "b-group");
  f.join("", 0, range(), 1, "c", "a-group");
  auto list = f->list_groups();
  REQUIRE(list.size() == 2);
  CHECK(list[0].group_id == "a-group");
  CHECK(list[0].protocol_type == "consumer");
  CHECK(list[1].state == KafkaGroupState::kPreparingRebalance);
  CHECK(f->next_deadline() == std::optional<std::int64_t>(kDelay));
}

}  // namespace
}  // namespace sluice::kafka
