// core/src/assignors: range, roundrobin and sticky, against Kafka's documented examples and
// a randomized check of the invariants.
#include "assignors.h"

#include <catch2/catch.hpp>
#include <map>
#include <random>
#include <set>
#include <string>
#include <vector>

namespace sluice {
namespace {

using Parts = std::vector<TopicPartition>;

MemberSubscription member(std::string id, std::vector<std::string> topics, Parts owned = {}) {
  return MemberSubscription{std::move(id), std::move(topics), std::move(owned)};
}

TopicPartition topic_partition(const std::string& topic, std::int32_t p) {
  return TopicPartition{topic, p};
}

// Every partition of a subscribed topic exactly once, to a subscriber; every member listed;
// lists sorted. Returns what is wrong, or "".
std::string invalidity(const std::vector<MemberSubscription>& members,
                       const PartitionCounts& counts, const MemberAssignments& a) {
  std::map<TopicPartition, int> seen;
  for (const auto& m : members) {
    auto it = a.find(m.member_id);
    if (it == a.end()) return "member " + m.member_id + " missing from the assignment";
    if (!std::is_sorted(it->second.begin(), it->second.end())) return "unsorted list";
    for (const TopicPartition& x : it->second) {
      if (std::find(m.topics.begin(), m.topics.end(), x.topic) == m.topics.end())
        return m.member_id + " got " + x.topic + " without subscribing to it";
      ++seen[x];
    }
  }
  if (a.size() != members.size()) return "members in the assignment that are not in the group";
  for (const auto& [topic, n] : counts) {
    bool subscribed = std::any_of(members.begin(), members.end(), [&](const auto& m) {
      return std::find(m.topics.begin(), m.topics.end(), topic) != m.topics.end();
    });
    for (std::int32_t p = 0; p < n; ++p) {
      int times = seen.count(topic_partition(topic, p)) != 0 ? seen[topic_partition(topic, p)] : 0;
      if (subscribed && times != 1)
        return topic + "-" + std::to_string(p) + " assigned " + std::to_string(times) + " times";
      if (!subscribed && times != 0) return topic + " assigned without a subscriber";
    }
  }
  for (const auto& [x, times] : seen)
    if (counts.count(x.topic) == 0 || x.partition >= counts.at(x.topic))
      return "an unknown partition was assigned";
  return "";
}

// No member could take a partition from one with two more, among the partition's topic's
// subscribers.
bool balanced(const std::vector<MemberSubscription>& members, const MemberAssignments& a) {
  for (const auto& m : members)
    for (const TopicPartition& x : a.at(m.member_id))
      for (const auto& other : members)
        if (std::find(other.topics.begin(), other.topics.end(), x.topic) != other.topics.end() &&
            a.at(other.member_id).size() + 2 <= a.at(m.member_id).size())
          return false;
  return true;
}

TEST_CASE("range assignor: Kafka's documented example, 2 consumers and 2 topics of 3 partitions",
          "[core][assignors]") {
  const std::vector<MemberSubscription> members{member("C1", {"t0", "t1"}),
                                                member("C0", {"t1", "t0"})};
  const PartitionCounts counts{{"t0", 3}, {"t1", 3}};
  MemberAssignments a = assign_range(members, counts);
  CHECK(a["C0"] == Parts{topic_partition("t0", 0), topic_partition("t0", 1),
                         topic_partition("t1", 0), topic_partition("t1", 1)});
  CHECK(a["C1"] == Parts{topic_partition("t0", 2), topic_partition("t1", 2)});
}

TEST_CASE(
    "roundrobin assignor: Kafka's documented example, 2 consumers and 2 topics of 3 "
    "partitions",
    "[core][assignors]") {
  const std::vector<MemberSubscription> members{member("C0", {"t0", "t1"}),
                                                member("C1", {"t0", "t1"})};
  const PartitionCounts counts{{"t0", 3}, {"t1", 3}};
  MemberAssignments a = assign_round_robin(members, counts);
  CHECK(a["C0"] ==
        Parts{topic_partition("t0", 0), topic_partition("t0", 2), topic_partition("t1", 1)});
  CHECK(a["C1"] ==
        Parts{topic_partition("t0", 1), topic_partition("t1", 0), topic_partition("t1", 2)});
}

TEST_CASE("roundrobin assignor: Kafka's documented example with different subscriptions",
          "[core][assignors]") {
  // RoundRobinAssignor's javadoc: C0 [t0], C1 [t0, t1], C2 [t0, t1, t2]; t0 has 1 partition,
  // t1 2, t2 3.
  const std::vector<MemberSubscription> members{member("C0", {"t0"}), member("C1", {"t0", "t1"}),
                                                member("C2", {"t0", "t1", "t2"})};
  const PartitionCounts counts{{"t0", 1}, {"t1", 2}, {"t2", 3}};
  MemberAssignments a = assign_round_robin(members, counts);
  CHECK(a["C0"] == Parts{topic_partition("t0", 0)});
  CHECK(a["C1"] == Parts{topic_partition("t1", 0)});
  CHECK(a["C2"] == Parts{topic_partition("t1", 1), topic_partition("t2", 0),
                         topic_partition("t2", 1), topic_partition("t2", 2)});
}

TEST_CASE("range assignor: the first members by id take the extra partitions, per topic",
          "[core][assignors]") {
  const std::vector<MemberSubscription> members{member("b", {"x", "y"}), member("a", {"x"}),
                                                member("c", {"x", "y"})};
  const PartitionCounts counts{{"x", 7}, {"y", 3}};
  MemberAssignments a = assign_range(members, counts);
  CHECK(a["a"] == Parts{topic_partition("x", 0), topic_partition("x", 1), topic_partition("x", 2)});
  CHECK(a["b"] == Parts{topic_partition("x", 3), topic_partition("x", 4), topic_partition("y", 0),
                        topic_partition("y", 1)});
  CHECK(a["c"] == Parts{topic_partition("x", 5), topic_partition("x", 6), topic_partition("y", 2)});
}

TEST_CASE("assignors: unknown topics are skipped, members without partitions listed",
          "[core][assignors]") {
  const std::vector<MemberSubscription> members{member("a", {"known", "missing"}),
                                                member("b", {"missing"}), member("c", {})};
  const PartitionCounts counts{{"known", 2}, {"zero", 0}};
  for (const AssignorInfo& info : assignors()) {
    INFO(info.name);
    MemberAssignments a = info.assign(members, counts);
    CHECK(a["a"] == Parts{topic_partition("known", 0), topic_partition("known", 1)});
    CHECK(a["b"].empty());
    CHECK(a["c"].empty());
    CHECK(a.size() == 3);
    CHECK(info.assign({}, counts).empty());
  }
  CHECK(find_assignor("range") != nullptr);
  CHECK(find_assignor("roundrobin") != nullptr);
  CHECK(find_assignor("sticky") != nullptr);
  CHECK(find_assignor("cooperative-sticky") == nullptr);
}

TEST_CASE("sticky assignor: when a member leaves, only its partitions move", "[core][assignors]") {
  const PartitionCounts counts{{"t", 6}};
  std::vector<MemberSubscription> members{
      member("C0", {"t"}, {topic_partition("t", 0), topic_partition("t", 1)}),
      member("C1", {"t"}, {topic_partition("t", 2), topic_partition("t", 3)}),
  };  // C2 owned t-4 and t-5, and left
  MemberAssignments a = assign_sticky(members, counts);
  CHECK(invalidity(members, counts, a).empty());
  CHECK(a["C0"] ==
        Parts{topic_partition("t", 0), topic_partition("t", 1), topic_partition("t", 4)});
  CHECK(a["C1"] ==
        Parts{topic_partition("t", 2), topic_partition("t", 3), topic_partition("t", 5)});
}

TEST_CASE("sticky assignor: a new member takes the fewest partitions needed for balance",
          "[core][assignors]") {
  const PartitionCounts counts{{"t", 6}, {"u", 3}};
  std::vector<MemberSubscription> members{
      member("C0", {"t", "u"},
             {topic_partition("t", 0), topic_partition("t", 1), topic_partition("t", 2),
              topic_partition("u", 0), topic_partition("u", 1)}),
      member("C1", {"t", "u"},
             {topic_partition("t", 3), topic_partition("t", 4), topic_partition("t", 5),
              topic_partition("u", 2)}),
      member("C2", {"t", "u"}),
  };
  MemberAssignments a = assign_sticky(members, counts);
  CHECK(invalidity(members, counts, a).empty());
  CHECK(a["C0"].size() == 3);
  CHECK(a["C1"].size() == 3);
  CHECK(a["C2"].size() == 3);
  int moved = 0;
  for (const auto& m : members)
    for (const TopicPartition& x : a[m.member_id])
      if (std::find(m.owned.begin(), m.owned.end(), x) == m.owned.end()) ++moved;
  CHECK(moved == 3);  // exactly what C2 needs; C0 and C1 keep the rest
}

TEST_CASE("sticky assignor: previous ownership that no longer holds is dropped",
          "[core][assignors]") {
  const PartitionCounts counts{{"t", 2}, {"u", 2}};
  std::vector<MemberSubscription> members{
      // t-5 no longer exists; C0 unsubscribed from u; both claim t-0.
      member("C0", {"t"},
             {topic_partition("t", 0), topic_partition("t", 5), topic_partition("u", 0)}),
      member("C1", {"t", "u"}, {topic_partition("t", 0), topic_partition("u", 1)}),
  };
  MemberAssignments a = assign_sticky(members, counts);
  CHECK(invalidity(members, counts, a).empty());
  CHECK(a["C0"] == Parts{topic_partition("t", 0), topic_partition("t", 1)});
  CHECK(a["C1"] == Parts{topic_partition("u", 0), topic_partition("u", 1)});
}

TEST_CASE("assignors: randomized groups get every subscribed partition exactly once",
          "[core][assignors]") {
  std::mt19937 rng(2024);
  const std::vector<std::string> all_topics{"a", "b", "c", "d", "e"};
  for (int round = 0; round < 400; ++round) {
    PartitionCounts counts;
    for (const std::string& t : all_topics)
      if (rng() % 5 != 0) counts[t] = static_cast<std::int32_t>(rng() % 9);  // 0..8; some missing
    std::vector<MemberSubscription> members;
    const int n = static_cast<int>(rng() % 7);
    const bool same_topics = rng() % 2 == 0;
    std::vector<std::string> shared;
    for (const std::string& t : all_topics)
      if (rng() % 2 == 0) shared.push_back(t);
    for (int i = 0; i < n; ++i) {
      MemberSubscription m;
      m.member_id = "m" + std::to_string(rng() % 1000) + "-" + std::to_string(i);
      if (same_topics) {
        m.topics = shared;
      } else {
        for (const std::string& t : all_topics)
          if (rng() % 2 == 0) m.topics.push_back(t);
      }
      for (int k = static_cast<int>(rng() % 6); k > 0; --k)  // random, even conflicting, history
        m.owned.push_back(topic_partition(all_topics[rng() % all_topics.size()],
                                          static_cast<std::int32_t>(rng() % 10)));
      members.push_back(m);
    }
    for (const AssignorInfo& info : assignors()) {
      INFO(info.name << " round " << round);
      MemberAssignments a = info.assign(members, counts);
      const std::string problem = invalidity(members, counts, a);
      CHECK(problem.empty());
      if (!problem.empty()) break;
      if (info.name == "sticky") CHECK(balanced(members, a));
      if (same_topics && info.name != "range") {  // same subscriptions: within one of each other
        std::size_t lo = SIZE_MAX, hi = 0;
        for (const auto& [id, parts] : a) {
          lo = std::min(lo, parts.size());
          hi = std::max(hi, parts.size());
        }
        if (!a.empty()) CHECK(hi - lo <= 1);
      }
      CHECK(info.assign(members, counts) == a);  // deterministic
    }
  }
}

}  // namespace
}  // namespace sluice
