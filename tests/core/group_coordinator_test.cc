// core/src/group_coordinator: the consumer-group state machine, driven directly with time.
#include "group_coordinator.h"

#include <catch2/catch.hpp>
#include <map>
#include <random>
#include <set>
#include <string>
#include <vector>

#include "core/table_test_support.h"

namespace sluice {
namespace {

using test::ok;
using Parts = std::vector<TopicPartition>;

constexpr std::int64_t kSec = 1'000'000'000;

TopicPartition tp(const std::string& topic, std::int32_t p) {
  return TopicPartition{topic, p};
}

struct Collected {
  std::vector<RejoinRequested> rejoins;
  std::vector<AssignmentReady> assignments;
  std::vector<MemberRemoved> removed;
  std::vector<GenerationStarted> generations;

  const AssignmentReady* assignment(const std::string& member) const {
    for (const auto& a : assignments)
      if (a.member_id == member) return &a;
    return nullptr;
  }
  bool asked_to_rejoin(const std::string& member) const {
    return std::any_of(rejoins.begin(), rejoins.end(),
                       [&](const RejoinRequested& r) { return r.member_id == member; });
  }
};

Collected collect(const std::vector<CoordinatorEvent>& events) {
  Collected c;
  for (const CoordinatorEvent& e : events) {
    if (auto* r = std::get_if<RejoinRequested>(&e)) c.rejoins.push_back(*r);
    if (auto* a = std::get_if<AssignmentReady>(&e)) c.assignments.push_back(*a);
    if (auto* m = std::get_if<MemberRemoved>(&e)) c.removed.push_back(*m);
    if (auto* g = std::get_if<GenerationStarted>(&e)) c.generations.push_back(*g);
  }
  return c;
}

// A coordinator over a mutable topic list.
struct Fixture {
  std::map<std::string, std::int32_t> topics{{"t0", 3}, {"t1", 3}};
  CoordinatorConfig config;
  std::unique_ptr<GroupCoordinator> coordinator;

  explicit Fixture(CoordinatorConfig c = {}) : config(std::move(c)) {
    coordinator = std::make_unique<GroupCoordinator>(
        config, [this](const std::string& t) -> std::optional<std::int32_t> {
          auto it = topics.find(t);
          if (it == topics.end()) return std::nullopt;
          return it->second;
        });
  }
  GroupCoordinator& operator*() { return *coordinator; }
  GroupCoordinator* operator->() { return coordinator.get(); }

  // Joins (or rejoins) and returns the member id and what came out.
  std::pair<std::string, Collected> join(const std::string& group, const std::string& client,
                                         std::int64_t now, const std::string& member_id = "",
                                         std::vector<std::string> subscription = {"t0", "t1"},
                                         std::vector<std::string> assignors = {"range"}) {
    JoinRequest r;
    r.group = group;
    r.member_id = member_id;
    r.client_id = client;
    r.pid = 1000;
    r.topics = std::move(subscription);
    r.assignors = std::move(assignors);
    auto result = ok(coordinator->join(r, now));
    return {result.member_id, collect(result.events)};
  }
};

TEST_CASE("coordinator: the first member of an empty group gets every partition at once",
          "[core][coordinator]") {
  Fixture f;
  auto [c0, events] = f.join("g", "c0", 0);
  REQUIRE(events.generations.size() == 1);
  CHECK(events.generations[0].generation == 1);
  CHECK(events.generations[0].protocol == "range");
  REQUIRE(events.assignments.size() == 1);
  CHECK(events.assignments[0].member_id == c0);
  CHECK(events.assignments[0].generation == 1);
  CHECK(events.assignments[0].partitions ==
        Parts{tp("t0", 0), tp("t0", 1), tp("t0", 2), tp("t1", 0), tp("t1", 1), tp("t1", 2)});
  CHECK(events.rejoins.empty());
  GroupDescription d = f->describe("g");
  CHECK(d.state == GroupState::kStable);
  CHECK(d.generation == 1);
  CHECK(d.protocol == "range");
  REQUIRE(d.members.size() == 1);
  CHECK(d.members[0].client_id == "c0");
  CHECK(d.members[0].pid == 1000);
  CHECK(d.members[0].partitions.size() == 6);
  CHECK_THAT(c0, Catch::StartsWith("c0-"));
}

TEST_CASE(
    "coordinator: a second member triggers a rebalance; the assignment comes when both "
    "have joined",
    "[core][coordinator]") {
  Fixture f;
  auto [c0, first] = f.join("g", "c0", 0);
  auto [c1, second] = f.join("g", "c1", 1 * kSec);
  // c0 is asked to rejoin for generation 2; nobody has an assignment yet.
  REQUIRE(second.rejoins.size() == 1);
  CHECK(second.rejoins[0].member_id == c0);
  CHECK(second.rejoins[0].generation == 2);
  CHECK_THAT(second.rejoins[0].reason, Catch::Contains(c1));
  CHECK(second.assignments.empty());
  CHECK(f->describe("g").state == GroupState::kPreparingRebalance);
  CHECK(f->heartbeat("g", c0, 1, 1 * kSec).code() == ErrorCode::kRebalancing);
  // Eager protocol: c0 commits what it consumed before rejoining, under generation 1.
  CORE_REQUIRE_OK(f->can_commit("g", c0, 1, tp("t0", 2)));

  auto [same, third] = f.join("g", "c0", 2 * kSec, c0);
  CHECK(same == c0);
  REQUIRE(third.generations.size() == 1);
  CHECK(third.generations[0].generation == 2);
  REQUIRE(third.assignments.size() == 2);
  // Kafka's RangeAssignor example through the coordinator: c0 sorts before c1.
  CHECK(third.assignment(c0)->partitions ==
        Parts{tp("t0", 0), tp("t0", 1), tp("t1", 0), tp("t1", 1)});
  CHECK(third.assignment(c1)->partitions == Parts{tp("t0", 2), tp("t1", 2)});
  CHECK(third.assignment(c1)->generation == 2);
  CHECK(f->describe("g").state == GroupState::kStable);
  CORE_REQUIRE_OK(f->heartbeat("g", c0, 2, 3 * kSec));
  CORE_REQUIRE_OK(f->heartbeat("g", c1, 2, 3 * kSec));
}

TEST_CASE(
    "coordinator: a stable member that joins again with the same subscription gets its "
    "assignment again; a changed subscription rebalances",
    "[core][coordinator]") {
  Fixture f;
  auto [c0, a] = f.join("g", "c0", 0);
  auto [c1, b] = f.join("g", "c1", 0);
  auto [x, c] = f.join("g", "c0", 0, c0);
  REQUIRE(c.assignments.size() == 2);

  auto [y, again] = f.join("g", "c1", kSec, c1);
  CHECK(again.rejoins.empty());
  CHECK(again.generations.empty());
  REQUIRE(again.assignments.size() == 1);
  CHECK(again.assignments[0].member_id == c1);
  CHECK(again.assignments[0].generation == 2);
  CHECK(again.assignments[0].partitions == Parts{tp("t0", 2), tp("t1", 2)});

  auto [z, changed] = f.join("g", "c1", 2 * kSec, c1, {"t1"});
  REQUIRE(changed.rejoins.size() == 1);
  CHECK(changed.rejoins[0].member_id == c0);
  auto [w, done] = f.join("g", "c0", 3 * kSec, c0);
  REQUIRE(done.assignments.size() == 2);
  CHECK(done.assignment(c0)->generation == 3);
  CHECK(done.assignment(c0)->partitions ==
        Parts{tp("t0", 0), tp("t0", 1), tp("t0", 2), tp("t1", 0), tp("t1", 1)});
  CHECK(done.assignment(c1)->partitions == Parts{tp("t1", 2)});
}

TEST_CASE("coordinator: a member that does not rejoin within the rebalance timeout is expelled",
          "[core][coordinator]") {
  CoordinatorConfig config;
  config.rebalance_timeout_ns = 30 * kSec;
  config.session_timeout_ns = 100 * kSec;
  Fixture f(config);
  auto [c0, e0] = f.join("g", "c0", 0);
  auto [c1, e1] = f.join("g", "c1", 0);
  auto [x, e2] = f.join("g", "c0", 0, c0);  // generation 2: c0, c1
  auto [c2, e3] = f.join("g", "c2", 10 * kSec);
  CHECK(e3.asked_to_rejoin(c0));
  CHECK(e3.asked_to_rejoin(c1));
  auto [y, e4] = f.join("g", "c0", 11 * kSec, c0);
  CHECK(e4.assignments.empty());  // c1 is still awaited
  CHECK(f->next_deadline() == std::optional<std::int64_t>(40 * kSec));

  CHECK(collect(f->tick(39 * kSec)).assignments.empty());
  Collected late = collect(f->tick(40 * kSec));
  REQUIRE(late.removed.size() == 1);
  CHECK(late.removed[0].member_id == c1);
  CHECK(late.removed[0].reason == RemovalReason::kRebalanceTimeout);
  REQUIRE(late.assignments.size() == 2);
  CHECK(late.assignment(c0)->generation == 3);
  CHECK(late.assignment(c2) != nullptr);
  // The expelled member is told so on its next heartbeat, and cannot commit.
  Status hb = f->heartbeat("g", c1, 2, 41 * kSec);
  CHECK(hb.code() == ErrorCode::kNotFound);
  CHECK_THAT(hb.message(), Catch::Contains(c1) && Catch::Contains("empty member id"));
  Status commit = f->can_commit("g", c1, 2, tp("t0", 2));
  CHECK(commit.code() == ErrorCode::kFenced);
  CHECK_THAT(commit.message(), Catch::Contains("is not in group g"));
}

TEST_CASE("coordinator: a member dying mid-rebalance is not waited for", "[core][coordinator]") {
  Fixture f;
  auto [c0, e0] = f.join("g", "c0", 0);
  auto [c1, e1] = f.join("g", "c1", 0);
  auto [x, e2] = f.join("g", "c0", 0, c0);
  auto [c2, e3] = f.join("g", "c2", kSec);  // rebalance to generation 3: c0, c1 must rejoin

  SECTION("a member that has not rejoined dies; the others have") {
    auto [y, e4] = f.join("g", "c0", 2 * kSec, c0);
    CHECK(e4.assignments.empty());
    Collected died = collect(f->member_died(c1, 3 * kSec));
    REQUIRE(died.removed.size() == 1);
    CHECK(died.removed[0].reason == RemovalReason::kDied);
    REQUIRE(died.assignments.size() == 2);
    CHECK(died.assignment(c0)->generation == 3);
    CHECK(died.assignment(c2)->partitions == Parts{tp("t0", 2), tp("t1", 2)});
  }
  SECTION("a member that has rejoined dies; the rebalance still waits for the others") {
    auto [y, e4] = f.join("g", "c0", 2 * kSec, c0);
    Collected died = collect(f->member_died(c0, 3 * kSec));
    CHECK(died.assignments.empty());
    auto [z, e5] = f.join("g", "c1", 4 * kSec, c1);
    REQUIRE(e5.assignments.size() == 2);
    CHECK(e5.assignment(c1)->generation == 3);
    CHECK(e5.assignment(c2) != nullptr);
    CHECK(e5.assignment(c0) == nullptr);
  }
  SECTION("everyone dies: the group is empty, one generation on") {
    f->member_died(c0, 2 * kSec);
    Collected alone = collect(f->member_died(c1, 2 * kSec));  // c2 had joined: generation 3
    REQUIRE(alone.assignments.size() == 1);
    CHECK(alone.assignments[0].generation == 3);
    Collected last = collect(f->member_died(c2, 2 * kSec));
    REQUIRE(last.generations.size() == 1);
    CHECK(last.generations[0].generation == 4);
    CHECK(last.generations[0].protocol.empty());
    GroupDescription d = f->describe("g");
    CHECK(d.state == GroupState::kEmpty);
    CHECK(d.members.empty());
  }
  CHECK(f->member_died("nobody", 5 * kSec).empty());
}

TEST_CASE(
    "coordinator: a silent member is expelled after its session timeout and the rest "
    "rebalance",
    "[core][coordinator]") {
  CoordinatorConfig config;
  config.session_timeout_ns = 10 * kSec;
  Fixture f(config);
  auto [c0, e0] = f.join("g", "c0", 0);
  auto [c1, e1] = f.join("g", "c1", 0);
  auto [x, e2] = f.join("g", "c0", 0, c0);
  for (std::int64_t t = 3; t <= 9; t += 3) CORE_REQUIRE_OK(f->heartbeat("g", c0, 2, t * kSec));
  CHECK(f->next_deadline() == std::optional<std::int64_t>(10 * kSec + 1));
  CHECK(collect(f->tick(10 * kSec)).removed.empty());  // exactly the timeout: still in
  Collected out = collect(f->tick(10 * kSec + 1));
  REQUIRE(out.removed.size() == 1);
  CHECK(out.removed[0].member_id == c1);
  CHECK(out.removed[0].reason == RemovalReason::kSessionTimeout);
  CHECK_THAT(out.removed[0].message, Catch::Contains("10000 ms"));
  REQUIRE(out.rejoins.size() == 1);
  CHECK(out.rejoins[0].member_id == c0);
  auto [y, e3] = f.join("g", "c0", 11 * kSec, c0);
  REQUIRE(e3.assignments.size() == 1);
  CHECK(e3.assignments[0].generation == 3);
  CHECK(e3.assignments[0].partitions.size() == 6);

  // A member's own session timeout wins over the default.
  JoinRequest r;
  r.group = "h";
  r.client_id = "slow";
  r.topics = {"t0"};
  r.assignors = {"range"};
  r.session_timeout_ns = 60 * kSec;
  auto slow = ok(f->join(r, 20 * kSec));
  CHECK(collect(f->tick(75 * kSec)).removed.size() == 1);  // c0 of g, silent since 11 s
  CHECK(f->describe("h").members.size() == 1);
  CHECK(collect(f->tick(80 * kSec + 1)).removed.size() == 1);
  CHECK(f->describe("h").members.empty());
}

TEST_CASE("coordinator: heartbeats answer ok, rebalancing, unknown member or fenced",
          "[core][coordinator]") {
  Fixture f;
  auto [c0, e0] = f.join("g", "c0", 0);
  CORE_REQUIRE_OK(f->heartbeat("g", c0, 1, kSec));
  Status old = f->heartbeat("g", c0, 0, kSec);
  CHECK(old.code() == ErrorCode::kFenced);
  CHECK_THAT(old.message(), Catch::Contains("member " + c0 +
                                            " of group g is fenced: generation "
                                            "0 has passed (current 1)"));
  CHECK(f->heartbeat("g", c0, 7, kSec).code() == ErrorCode::kFenced);
  CHECK(f->heartbeat("g", "stranger", 1, kSec).code() == ErrorCode::kNotFound);
  CHECK(f->heartbeat("nope", c0, 1, kSec).code() == ErrorCode::kNotFound);
  auto [c1, e1] = f.join("g", "c1", 2 * kSec);
  Status rebalancing = f->heartbeat("g", c0, 1, 2 * kSec);
  CHECK(rebalancing.code() == ErrorCode::kRebalancing);
  CHECK_THAT(rebalancing.message(), Catch::Contains("rejoin"));
  CHECK(f->heartbeat("g", c1, -1, 2 * kSec).code() == ErrorCode::kRebalancing);
}

TEST_CASE("coordinator: commits from a passed generation are fenced, naming both generations",
          "[core][coordinator]") {
  Fixture f;
  auto [c0, e0] = f.join("g", "c0", 0);
  CORE_REQUIRE_OK(f->can_commit("g", c0, 1, tp("t0", 0)));
  auto [c1, e1] = f.join("g", "c1", 0);
  auto [x, e2] = f.join("g", "c0", 0, c0);  // generation 2
  Status s = f->can_commit("g", c0, 1, tp("t0", 0));
  CHECK(s.code() == ErrorCode::kFenced);
  CHECK(s.message() ==
        "member " + c0 + " of group g is fenced: generation 1 has passed (current 2)");
  CORE_REQUIRE_OK(f->can_commit("g", c0, 2, tp("t0", 0)));
}

TEST_CASE("coordinator: a member cannot commit a partition it lost in a rebalance",
          "[core][coordinator]") {
  Fixture f;
  auto [c0, e0] = f.join("g", "c0", 0);
  CORE_REQUIRE_OK(f->can_commit("g", c0, 1, tp("t0", 2)));
  auto [c1, e1] = f.join("g", "c1", 0);
  CORE_REQUIRE_OK(f->can_commit("g", c0, 1, tp("t0", 2)));  // still generation 1's owner
  auto [x, e2] = f.join("g", "c0", 0, c0);                  // t0-2 goes to c1
  Status s = f->can_commit("g", c0, 2, tp("t0", 2));
  CHECK(s.code() == ErrorCode::kFenced);
  CHECK(s.message() ==
        "member " + c0 + " of group g does not own t0-2 in generation 2 (" + c1 + " does)");
  CORE_REQUIRE_OK(f->can_commit("g", c1, 2, tp("t0", 2)));
  CHECK_THAT(f->can_commit("g", c1, 2, tp("t9", 0)).message(), Catch::Contains("nobody does"));
}

TEST_CASE(
    "coordinator: a consumer outside the group commits only while the group has no "
    "members",
    "[core][coordinator]") {
  Fixture f;
  CORE_REQUIRE_OK(f->can_commit("g", "", -1, tp("t0", 0)));  // unknown group
  auto [c0, e0] = f.join("g", "c0", 0);
  Status s = f->can_commit("g", "", -1, tp("t0", 0));
  CHECK(s.code() == ErrorCode::kFenced);
  CHECK_THAT(s.message(), Catch::Contains("only while the group has none"));
  Status no_id = f->can_commit("g", "", 1, tp("t0", 0));
  CHECK(no_id.code() == ErrorCode::kFenced);
  CHECK_THAT(no_id.message(), Catch::Contains("needs a member id"));
  ok(f->leave("g", c0, kSec));
  CORE_REQUIRE_OK(f->can_commit("g", "", -1, tp("t0", 0)));  // empty again
}

TEST_CASE(
    "coordinator: the assignor is the members' common choice; a member with none in "
    "common is refused",
    "[core][coordinator]") {
  Fixture f;
  SECTION("votes: each member's favourite among the common ones; a tie goes to the first id") {
    auto [a, e0] = f.join("g", "a", 0, "", {"t0"}, {"roundrobin", "range"});
    auto [b, e1] = f.join("g", "b", 0, "", {"t0"}, {"range", "roundrobin"});
    auto [x, e2] = f.join("g", "a", 0, a, {"t0"}, {"roundrobin", "range"});
    REQUIRE(e2.generations.size() == 1);
    CHECK(e2.generations[0].protocol == "roundrobin");
    auto [c, e3] = f.join("g", "c", 0, "", {"t0"}, {"range"});
    f.join("g", "a", 0, a, {"t0"}, {"roundrobin", "range"});
    auto [y, e4] = f.join("g", "b", 0, b, {"t0"}, {"range", "roundrobin"});
    REQUIRE(e4.generations.size() == 1);
    CHECK(e4.generations[0].protocol == "range");  // the only common one
    CHECK(f->describe("g").protocol == "range");
  }
  SECTION("inconsistent") {
    f.join("g", "a", 0, "", {"t0"}, {"range", "roundrobin"});
    JoinRequest r;
    r.group = "g";
    r.client_id = "d";
    r.topics = {"t0"};
    r.assignors = {"sticky"};
    auto refused = f->join(r, 0);
    REQUIRE_FALSE(refused.is_ok());
    CHECK(refused.status().code() == ErrorCode::kInvalidArgument);
    CHECK_THAT(refused.status().message(),
               Catch::Contains("[sticky] share none") && Catch::Contains("[range, roundrobin]"));
    CHECK(f->describe("g").members.size() == 1);
  }
  SECTION("unknown assignors") {
    JoinRequest r;
    r.group = "g";
    r.client_id = "d";
    r.assignors = {"RoundRobinAssigner"};
    auto refused = f->join(r, 0);
    REQUIRE_FALSE(refused.is_ok());
    CHECK_THAT(refused.status().message(),
               Catch::Contains("[RoundRobinAssigner]") &&
                   Catch::Contains("implements [range, roundrobin, sticky]"));
  }
  SECTION("sticky keeps partitions where they were") {
    auto [a, e0] = f.join("g", "a", 0, "", {"t0", "t1"}, {"sticky"});
    auto [b, e1] = f.join("g", "b", 0, "", {"t0", "t1"}, {"sticky"});
    auto [x, e2] = f.join("g", "a", 0, a, {"t0", "t1"}, {"sticky"});
    const Parts a_before = e2.assignment(a)->partitions;
    const Parts b_before = e2.assignment(b)->partitions;
    auto [c, e3] = f.join("g", "c", 0, "", {"t0", "t1"}, {"sticky"});
    f.join("g", "a", 0, a, {"t0", "t1"}, {"sticky"});
    auto [y, e4] = f.join("g", "b", 0, b, {"t0", "t1"}, {"sticky"});
    REQUIRE(e4.assignments.size() == 3);
    for (const auto& [member, before] : {std::pair{a, a_before}, std::pair{b, b_before}}) {
      const Parts& now = e4.assignment(member)->partitions;
      CHECK(now.size() == 2);
      for (const TopicPartition& p : now)
        CHECK(std::find(before.begin(), before.end(), p) != before.end());
    }
  }
}

TEST_CASE("coordinator: leave, describe, list and delete", "[core][coordinator]") {
  Fixture f;
  CHECK(f->describe("g").state == GroupState::kDead);
  CHECK(f->delete_group("g").code() == ErrorCode::kNotFound);
  auto [c0, e0] = f.join("g", "c0", 0);
  auto [d0, e1] = f.join("other", "d0", 0, "", {"t1"});
  auto listing = f->list_groups();
  REQUIRE(listing.size() == 2);
  CHECK(listing[0].group == "g");
  CHECK(listing[0].state == GroupState::kStable);
  CHECK(listing[0].members == 1);
  CHECK(listing[1].group == "other");
  CHECK(std::string(group_state_name(listing[1].state)) == "Stable");

  Status busy = f->delete_group("g");
  CHECK(busy.code() == ErrorCode::kBusy);
  CHECK_THAT(busy.message(), Catch::Contains("only an empty group"));
  CHECK(f->leave("g", "stranger", kSec).status().code() == ErrorCode::kNotFound);
  CHECK(f->leave("other", c0, kSec).status().code() == ErrorCode::kNotFound);
  Collected left = collect(ok(f->leave("g", c0, kSec)));
  REQUIRE(left.removed.size() == 1);
  CHECK(left.removed[0].reason == RemovalReason::kLeft);
  CHECK(left.generations.size() == 1);
  GroupDescription d = f->describe("g");
  CHECK(d.state == GroupState::kEmpty);
  CHECK(d.generation == 2);
  CORE_REQUIRE_OK(f->delete_group("g"));
  CHECK(f->describe("g").state == GroupState::kDead);
  CHECK(f->list_groups().size() == 1);
  CHECK(f->describe("other").members[0].partitions == Parts{tp("t1", 0), tp("t1", 1), tp("t1", 2)});
}

TEST_CASE("coordinator: a restored group goes on from its stored generation",
          "[core][coordinator]") {
  Fixture f;
  CORE_REQUIRE_OK(f->restore_group("g", 41, "range"));
  CHECK(f->describe("g").state == GroupState::kEmpty);
  CHECK(f->describe("g").generation == 41);
  auto [c0, e0] = f.join("g", "c0", 0);
  REQUIRE(e0.generations.size() == 1);
  CHECK(e0.generations[0].generation == 42);
  CHECK(e0.assignments[0].generation == 42);
  CHECK(f->restore_group("g", 50, "range").code() == ErrorCode::kBusy);
  CORE_REQUIRE_OK(f->restore_group("h", 3, ""));
  CORE_REQUIRE_OK(f->restore_group("h", 2, ""));  // never backwards
  CHECK(f->describe("h").generation == 3);
}

TEST_CASE("coordinator: member ids differ between instances and are never reused",
          "[core][coordinator]") {
  CoordinatorConfig config;
  config.instance = "run7";
  Fixture f(config);
  auto [a, e0] = f.join("g", "client", 0);
  auto [b, e1] = f.join("g", "client", 0);
  CHECK(a == "client-run7-000001");
  CHECK(b == "client-run7-000002");
  auto [c, e2] = f.join("h", "", 0);
  CHECK(c == "member-run7-000003");
}

TEST_CASE("coordinator: a long client id is cut on a UTF-8 character boundary",
          "[core][coordinator]") {
  Fixture f(CoordinatorConfig{});
  // 63 ASCII bytes then "é" (2 bytes): a cut at 64 bytes would split the é.
  std::string client(63, 'x');
  client += "\xc3\xa9tail";
  auto [id, e] = f.join("g", client, 0);
  CHECK(id.rfind(std::string(63, 'x') + "-", 0) == 0);
  // Every byte of the id belongs to a whole character.
  for (std::size_t i = 0; i < id.size();) {
    auto c = static_cast<unsigned char>(id[i]);
    std::size_t len = c < 0x80 ? 1 : (c & 0xE0) == 0xC0 ? 2 : (c & 0xF0) == 0xE0 ? 3 : 4;
    REQUIRE(i + len <= id.size());
    for (std::size_t k = 1; k < len; ++k)
      CHECK((static_cast<unsigned char>(id[i + k]) & 0xC0) == 0x80);
    i += len;
  }
  // And the id works: the member can commit under it.
  CORE_REQUIRE_OK(f->can_commit("g", id, 1, TopicPartition{"t0", 0}));
}

TEST_CASE("coordinator: the initial rebalance delay lets a starting group form in one go",
          "[core][coordinator]") {
  CoordinatorConfig config;
  config.initial_rebalance_delay_ns = 3 * kSec;
  Fixture f(config);
  auto [c0, e0] = f.join("g", "c0", 0);
  CHECK(e0.assignments.empty());
  auto [c1, e1] = f.join("g", "c1", kSec);
  CHECK(e1.assignments.empty());
  CHECK(e1.rejoins.empty());  // c0 already joined for this generation
  CHECK(f->next_deadline() == std::optional<std::int64_t>(3 * kSec));
  CHECK(collect(f->tick(3 * kSec - 1)).assignments.empty());
  Collected formed = collect(f->tick(3 * kSec));
  REQUIRE(formed.assignments.size() == 2);
  CHECK(formed.assignments[0].generation == 1);
  // Later rebalances (from a non-empty group) do not wait.
  auto [c2, e2] = f.join("g", "c2", 4 * kSec);
  f.join("g", "c0", 4 * kSec, c0);
  auto [x, e3] = f.join("g", "c1", 4 * kSec, c1);
  CHECK(e3.assignments.size() == 3);
}

TEST_CASE(
    "coordinator: new partitions, or a topic that appears, rebalance the groups "
    "subscribed to it",
    "[core][coordinator]") {
  Fixture f;
  auto [c0, e0] = f.join("g", "c0", 0, "", {"t0", "later"});
  CHECK(e0.assignments[0].partitions == Parts{tp("t0", 0), tp("t0", 1), tp("t0", 2)});
  auto [d0, e1] = f.join("unrelated", "d0", 0, "", {"t1"});

  f.topics["later"] = 2;
  Collected changed = collect(f->partitions_changed("later", kSec));
  REQUIRE(changed.rejoins.size() == 1);
  CHECK(changed.rejoins[0].member_id == c0);
  CHECK_THAT(changed.rejoins[0].reason, Catch::Contains("later"));
  auto [x, e2] = f.join("g", "c0", 2 * kSec, c0, {"t0", "later"});
  CHECK(e2.assignments[0].partitions ==
        Parts{tp("later", 0), tp("later", 1), tp("t0", 0), tp("t0", 1), tp("t0", 2)});
  CHECK(f->describe("unrelated").generation == 1);
}

// ---- the invariant, under random sequences -----------------------------------------------------

// What a client believes: the generation and partitions of the last assignment it received.
// Events reach a client late (an inbox it reads when it gets round to it), as over a socket;
// a zombie (a removed member that has not heard so yet) still believes, and tries to commit.
struct SimClient {
  std::string group;
  std::string id;
  std::vector<std::string> topics;
  std::vector<std::string> assignors;
  std::int32_t generation = -1;
  Parts partitions;
  bool member = true;  // as far as it knows
  bool asked_to_rejoin = false;
  bool stuck = false;  // never gets round to rejoining (a consumer stuck in its poll loop)
  std::vector<CoordinatorEvent> inbox;

  void read_inbox() {
    for (const CoordinatorEvent& e : inbox) {
      if (auto* a = std::get_if<AssignmentReady>(&e)) {
        generation = a->generation;
        partitions = a->partitions;
        asked_to_rejoin = false;
      }
      if (std::holds_alternative<RejoinRequested>(e)) asked_to_rejoin = true;
      if (std::holds_alternative<MemberRemoved>(e)) member = false;
    }
    inbox.clear();
  }
};

TEST_CASE(
    "coordinator: random joins, leaves, deaths and timeouts never assign a partition "
    "twice",
    "[core][coordinator]") {
  const int seeds = 40 * test::stress_scale();
  const std::vector<std::string> names{"range", "roundrobin", "sticky"};
  const std::vector<std::string> all_topics{"a", "b", "c", "d"};
  std::map<std::string, int> seen;  // how much of the state space the runs covered
  for (int seed = 1; seed <= seeds; ++seed) {
    std::mt19937 rng(static_cast<unsigned>(seed));
    CoordinatorConfig config;
    config.session_timeout_ns = 10 * kSec;
    config.rebalance_timeout_ns = 20 * kSec;
    config.initial_rebalance_delay_ns = seed % 3 == 0 ? kSec : 0;
    Fixture f(config);
    f.topics.clear();
    for (const std::string& t : all_topics) f.topics[t] = 1 + static_cast<std::int32_t>(rng() % 5);
    std::vector<SimClient> clients;
    std::map<std::string, std::int32_t> last_generation;
    std::int64_t now = 0;
    std::string failure;

    // Checks what the coordinator says as it says it, then posts it to the clients' inboxes.
    auto apply = [&](const std::vector<CoordinatorEvent>& events) {
      std::map<std::pair<std::string, std::int32_t>, std::set<TopicPartition>> handed_out;
      for (const CoordinatorEvent& e : events) {
        std::string to;
        if (auto* g = std::get_if<GenerationStarted>(&e)) {
          if (g->generation <= last_generation[g->group])
            failure = "generation of " + g->group + " did not go up";
          last_generation[g->group] = g->generation;
          ++seen["generation"];
        }
        if (auto* a = std::get_if<AssignmentReady>(&e)) {
          to = a->member_id;
          auto& given = handed_out[{a->group, a->generation}];
          for (const TopicPartition& x : a->partitions)
            if (!given.insert(x).second)
              failure = x.topic + "-" + std::to_string(x.partition) +
                        " handed out twice in generation " + std::to_string(a->generation);
        }
        if (auto* r = std::get_if<RejoinRequested>(&e)) to = r->member_id;
        if (auto* m = std::get_if<MemberRemoved>(&e)) {
          to = m->member_id;
          ++seen[removal_reason_name(m->reason)];
        }
        for (SimClient& c : clients)
          if (!to.empty() && c.id == to) c.inbox.push_back(e);
      }
    };
    auto random_member = [&]() -> SimClient* {
      std::vector<SimClient*> live;
      for (SimClient& c : clients)
        if (c.member) live.push_back(&c);
      return live.empty() ? nullptr : live[rng() % live.size()];
    };
    auto join = [&](SimClient& c, bool changed) {
      if (changed) {
        c.topics.clear();
        for (const std::string& t : all_topics)
          if (rng() % 2 == 0) c.topics.push_back(t);
      }
      JoinRequest r;
      r.group = c.group;
      r.member_id = c.id;
      r.client_id = "client";
      r.topics = c.topics;
      r.assignors = c.assignors;
      auto result = f->join(r, now);
      if (!result) {
        // An inconsistent protocol, or a member removed before it heard so.
        const ErrorCode code = result.status().code();
        if (code == ErrorCode::kNotFound && !c.id.empty()) {
          c.member = false;
          ++seen["rejoin of a removed member"];
        } else if (code != ErrorCode::kInvalidArgument) {
          failure = "join refused: " + result.status().message();
        }
        return;
      }
      c.id = result->member_id;
      c.member = true;
      apply(result->events);
    };

    for (int step = 0; step < 300 && failure.empty(); ++step) {
      const auto op = rng() % 100;
      if (op < 15) {  // a new member
        SimClient c;
        c.group = rng() % 3 == 0 ? "g2" : "g1";
        std::vector<std::string> prefs = names;
        std::shuffle(prefs.begin(), prefs.end(), rng);
        prefs.resize(rng() % 4 == 0 ? 1 : 3);
        c.assignors = prefs;
        c.stuck = rng() % 4 == 0;
        for (const std::string& t : all_topics)
          if (rng() % 2 == 0) c.topics.push_back(t);
        clients.push_back(c);
        join(clients.back(), false);
        if (clients.back().id.empty()) clients.pop_back();
      } else if (op < 45) {  // members told to rejoin do (most of the time)
        for (SimClient& c : clients)
          if (c.member && c.asked_to_rejoin && !c.stuck && rng() % 3 != 0) join(c, rng() % 10 == 0);
      } else if (op < 52) {
        if (SimClient* c = random_member()) {
          auto left = f->leave(c->group, c->id, now);
          if (left) apply(*left);
          c->member = false;
        }
      } else if (op < 58) {
        if (SimClient* c = random_member()) {
          apply(f->member_died(c->id, now));
          c->member = false;
        }
      } else if (op < 75) {  // heartbeats from most members
        for (SimClient& c : clients)
          if (c.member && rng() % 5 != 0 &&
              f->heartbeat(c.group, c.id, c.generation, now).code() == ErrorCode::kNotFound)
            c.member = false;
      } else if (op < 90) {  // time passes
        now += static_cast<std::int64_t>(rng() % 8) * kSec;
        apply(f->tick(now));
      } else if (op < 94) {  // a topic grows
        const std::string& t = all_topics[rng() % all_topics.size()];
        f.topics[t] += 1;
        apply(f->partitions_changed(t, now));
      } else if (op < 96) {  // a member rejoins with a new subscription
        if (SimClient* c = random_member()) join(*c, true);
      } else {
        apply(f->tick(now));
      }
      for (SimClient& c : clients)  // some clients catch up with their messages
        if (rng() % 2 == 0) c.read_inbox();

      // 1. Each group's current assignment: disjoint, complete, only subscribed topics.
      for (const std::string& group : {std::string("g1"), std::string("g2")}) {
        GroupDescription d = f->describe(group);
        ++seen[group_state_name(d.state)];
        std::map<TopicPartition, int> owners;
        std::set<std::string> subscribed;
        for (const MemberDescription& m : d.members) {
          for (const std::string& t : m.topics) subscribed.insert(t);
          for (const TopicPartition& x : m.partitions) {
            ++owners[x];
            if (d.state == GroupState::kStable &&
                std::find(m.topics.begin(), m.topics.end(), x.topic) == m.topics.end())
              failure = m.member_id + " owns " + x.topic + " without subscribing";
          }
        }
        for (const auto& [x, n] : owners)
          if (n > 1) failure = group + ": a partition has two owners in one generation";
        if (d.state == GroupState::kStable)
          for (const std::string& t : subscribed)
            for (std::int32_t p = 0; p < f.topics[t]; ++p)
              if (owners[tp(t, p)] != 1) failure = group + ": " + t + " not fully assigned";
      }
      // 2. Fencing: whatever the clients believe (members, zombies, late readers), at most
      // one of them can commit a given partition.
      for (const std::string& group : {std::string("g1"), std::string("g2")})
        for (const std::string& t : all_topics)
          for (std::int32_t p = 0; p < f.topics[t]; ++p) {
            int can = 0;
            int believe = 0;
            for (const SimClient& c : clients)
              if (c.group == group && std::find(c.partitions.begin(), c.partitions.end(),
                                                tp(t, p)) != c.partitions.end()) {
                ++believe;
                if (f->can_commit(group, c.id, c.generation, tp(t, p)).is_ok()) ++can;
              }
            if (believe > 1) ++seen["partition believed owned by two clients"];
            if (can > 1) failure = group + ": two clients may commit " + t;
          }
    }
    INFO("seed " << seed << ": " << failure);
    REQUIRE(failure.empty());
  }
  // The runs went through what they are meant to test.
  std::string coverage;
  for (const auto& [what, n] : seen) coverage += what + ": " + std::to_string(n) + "; ";
  INFO(coverage);
  CHECK(seen["PreparingRebalance"] > 100);
  CHECK(seen["Stable"] > 100);
  CHECK(seen["session-timeout"] > 10);
  CHECK(seen["rebalance-timeout"] > 10);
  CHECK(seen["died"] > 10);
  CHECK(seen["partition believed owned by two clients"] > 100);
}

}  // namespace
}  // namespace sluice
