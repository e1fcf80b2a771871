#include "tools/perf_topology.h"

#include <fmt/format.h>

#include "assignors.h"

namespace sluice::tools {

PerfTopology PerfTopology::make(int partitions, int consumers, int groups, std::string* error) {
  PerfTopology t;
  t.partitions = 0;
  if (partitions < 1) {
    *error = fmt::format("--partitions must be at least 1 (got {})", partitions);
    return t;
  }
  if (groups == 0) groups = consumers;
  if (groups < 1 || groups > consumers) {
    *error = fmt::format(
        "--groups must be 1..{} (the number of consumers): each group needs a consumer; got {}",
        consumers, groups);
    return t;
  }
  t.partitions = partitions;
  t.group_of.resize(static_cast<std::size_t>(consumers));
  t.consumer_partitions.resize(static_cast<std::size_t>(consumers));
  t.partition_readers.resize(static_cast<std::size_t>(partitions));
  const std::string topic = "perf";
  int next = 0;
  for (int g = 0; g < groups; ++g) {
    Group grp{next, consumers / groups + (g < consumers % groups ? 1 : 0)};
    t.groups.push_back(grp);
    // Member ids that sort in consumer order, so that the range assignor deals the first
    // partitions to the group's first consumer.
    std::vector<MemberSubscription> members;
    for (int i = 0; i < grp.members; ++i)
      members.push_back({fmt::format("consumer-{:04}", grp.first + i), {topic}, {}});
    MemberAssignments a = assign_range(members, PartitionCounts{{topic, partitions}});
    for (int i = 0; i < grp.members; ++i) {
      int c = grp.first + i;
      t.group_of[static_cast<std::size_t>(c)] = g;
      for (const TopicPartition& tp : a[fmt::format("consumer-{:04}", c)]) {
        t.consumer_partitions[static_cast<std::size_t>(c)].push_back(tp.partition);
        t.partition_readers[static_cast<std::size_t>(tp.partition)].push_back(c);
      }
    }
    next += grp.members;
  }
  // Every partition has exactly one reader in every group (the assignor's contract).
  for (const std::vector<int>& readers : t.partition_readers) {
    if (static_cast<int>(readers.size()) != groups) {
      *error = "internal: a partition without exactly one reader per group";
      t.partitions = 0;
      return t;
    }
  }
  return t;
}

std::string PerfTopology::describe_partitions(int c) const {
  const std::vector<int>& ps = consumer_partitions[static_cast<std::size_t>(c)];
  if (ps.empty()) return "-";
  // Range assignments are contiguous: "first-last" (or one number).
  bool contiguous = ps.back() - ps.front() + 1 == static_cast<int>(ps.size());
  if (ps.size() == 1) return std::to_string(ps[0]);
  if (contiguous) return fmt::format("{}-{}", ps.front(), ps.back());
  std::string s;
  for (int p : ps) s += (s.empty() ? "" : ",") + std::to_string(p);
  return s;
}

}  // namespace sluice::tools
