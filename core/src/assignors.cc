#include "assignors.h"

#include <algorithm>
#include <array>
#include <set>
#include <utility>

namespace sluice {

namespace {

// The members sorted by id, each with its topics sorted and deduplicated.
std::vector<MemberSubscription> normalized(const std::vector<MemberSubscription>& members) {
  std::vector<MemberSubscription> out = members;
  for (MemberSubscription& m : out) {
    std::sort(m.topics.begin(), m.topics.end());
    m.topics.erase(std::unique(m.topics.begin(), m.topics.end()), m.topics.end());
  }
  std::sort(out.begin(), out.end(), [](const MemberSubscription& a, const MemberSubscription& b) {
    return a.member_id < b.member_id;
  });
  return out;
}

bool subscribes(const MemberSubscription& m, const std::string& topic) {
  return std::binary_search(m.topics.begin(), m.topics.end(), topic);
}

// Topic -> its subscribers' ids, sorted; only topics with a known, positive partition count.
std::map<std::string, std::vector<std::string>> subscribers(
    const std::vector<MemberSubscription>& sorted_members, const PartitionCounts& partitions) {
  std::map<std::string, std::vector<std::string>> out;
  for (const MemberSubscription& m : sorted_members)
    for (const std::string& t : m.topics) {
      auto it = partitions.find(t);
      if (it != partitions.end() && it->second > 0) out[t].push_back(m.member_id);
    }
  return out;
}

MemberAssignments empty_assignment(const std::vector<MemberSubscription>& members) {
  MemberAssignments a;
  for (const MemberSubscription& m : members) a[m.member_id];
  return a;
}

void sort_lists(MemberAssignments& a) {
  for (auto& [member, tps] : a) std::sort(tps.begin(), tps.end());
}

}  // namespace

MemberAssignments assign_range(const std::vector<MemberSubscription>& members,
                               const PartitionCounts& partitions) {
  const auto sorted = normalized(members);
  MemberAssignments out = empty_assignment(sorted);
  for (const auto& [topic, consumers] : subscribers(sorted, partitions)) {
    const std::int32_t n = partitions.find(topic)->second;
    const auto c = static_cast<std::int32_t>(consumers.size());
    const std::int32_t per_consumer = n / c;
    const std::int32_t with_extra = n % c;
    for (std::int32_t i = 0; i < c; ++i) {
      const std::int32_t start = per_consumer * i + std::min(i, with_extra);
      const std::int32_t length = per_consumer + (i < with_extra ? 1 : 0);
      auto& list = out[consumers[static_cast<std::size_t>(i)]];
      for (std::int32_t p = start; p < start + length; ++p) list.push_back({topic, p});
    }
  }
  sort_lists(out);
  return out;
}

MemberAssignments assign_round_robin(const std::vector<MemberSubscription>& members,
                                     const PartitionCounts& partitions) {
  const auto sorted = normalized(members);
  MemberAssignments out = empty_assignment(sorted);
  if (sorted.empty()) return out;
  std::size_t next = 0;  // the circular iterator over the sorted members
  for (const auto& [topic, consumers] : subscribers(sorted, partitions)) {
    const std::int32_t n = partitions.find(topic)->second;
    for (std::int32_t p = 0; p < n; ++p) {
      // Some member subscribes to `topic` (subscribers() lists only such topics), so this ends.
      while (!subscribes(sorted[next], topic)) next = (next + 1) % sorted.size();
      out[sorted[next].member_id].push_back({topic, p});
      next = (next + 1) % sorted.size();
    }
  }
  return out;  // already in (topic, partition) order
}

MemberAssignments assign_sticky(const std::vector<MemberSubscription>& members,
                                const PartitionCounts& partitions) {
  const auto sorted = normalized(members);
  const auto subs = subscribers(sorted, partitions);

  std::map<TopicPartition, std::string> owner;
  std::map<std::string, std::set<TopicPartition>> owned;
  for (const MemberSubscription& m : sorted) owned[m.member_id];
  auto give = [&](const TopicPartition& tp, const std::string& member) {
    owner[tp] = member;
    owned[member].insert(tp);
  };
  auto count = [&](const std::string& member) { return owned[member].size(); };
  // The least loaded subscriber of `topic` other than `except` (ties: the lowest id).
  auto lightest = [&](const std::string& topic, const std::string& except) -> const std::string* {
    const std::string* best = nullptr;
    for (const std::string& id : subs.at(topic))
      if (id != except && (best == nullptr || count(id) < count(*best))) best = &id;
    return best;
  };

  // 1. Previous owners keep what they may still have (first owner by id wins a conflict).
  for (const MemberSubscription& m : sorted)
    for (const TopicPartition& tp : m.owned) {
      auto it = partitions.find(tp.topic);
      if (it == partitions.end() || tp.partition < 0 || tp.partition >= it->second) continue;
      if (!subscribes(m, tp.topic) || owner.count(tp) != 0) continue;
      give(tp, m.member_id);
    }

  // 2. The rest, the partitions with the fewest possible owners first, to the lightest.
  std::vector<TopicPartition> unassigned;
  for (const auto& [topic, consumers] : subs)
    for (std::int32_t p = 0; p < partitions.find(topic)->second; ++p)
      if (owner.count({topic, p}) == 0) unassigned.push_back({topic, p});
  std::stable_sort(unassigned.begin(), unassigned.end(),
                   [&](const TopicPartition& a, const TopicPartition& b) {
                     return subs.at(a.topic).size() < subs.at(b.topic).size();
                   });
  for (const TopicPartition& tp : unassigned) give(tp, *lightest(tp.topic, {}));

  // 3. Balance: move a partition from a member to a subscriber with at least two fewer, until
  // there is no such move. Each move lowers the sum of squared counts, so this ends; kept
  // partitions move only when the balance needs it.
  for (bool moved = true; moved;) {
    moved = false;
    std::vector<std::string> order;
    for (const auto& [id, tps] : owned) order.push_back(id);
    std::stable_sort(order.begin(), order.end(), [&](const std::string& a, const std::string& b) {
      return count(a) > count(b);
    });
    for (const std::string& from : order) {
      for (auto it = owned[from].rbegin(); it != owned[from].rend() && !moved; ++it) {
        const std::string* to = lightest(it->topic, from);
        if (to == nullptr || count(*to) + 1 >= count(from)) continue;
        TopicPartition tp = *it;
        owned[from].erase(tp);
        give(tp, *to);
        moved = true;
      }
      if (moved) break;
    }
  }

  MemberAssignments out;
  for (const auto& [id, tps] : owned) out[id].assign(tps.begin(), tps.end());
  return out;
}

namespace {
constexpr std::array<AssignorInfo, 3> kAssignors{{
    {"range", &assign_range},
    {"roundrobin", &assign_round_robin},
    {"sticky", &assign_sticky},
}};
}  // namespace

std::span<const AssignorInfo> assignors() {
  return kAssignors;
}

const AssignorInfo* find_assignor(std::string_view name) {
  for (const AssignorInfo& a : kAssignors)
    if (a.name == name) return &a;
  return nullptr;
}

}  // namespace sluice
