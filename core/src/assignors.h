// Partition assignors of consumer groups: who consumes which partitions in one generation.
// Pure functions of the members' subscriptions and the topics' partition counts.
//
//   range       Kafka's RangeAssignor: per topic, the topic's subscribers sorted by member id
//               each take a contiguous range; the first (partitions % members) take one more.
//   roundrobin  Kafka's RoundRobinAssignor: every subscribed topic-partition, sorted by topic
//               and partition, dealt in turn to the members sorted by member id, skipping
//               members not subscribed to the partition's topic.
//   sticky      Balanced and sticky (eager): a partition stays with its previous owner when
//               that owner is still subscribed and the assignment stays balanced (no member
//               could take a partition of a member that has two more); the rest go to the least
//               loaded subscribers. Partitions move only from fuller members to emptier ones.
//
// Every assignor gives each partition of a topic that has at least one subscriber to exactly
// one subscriber of that topic, and nothing else; topics missing from the partition counts
// (unknown topics) are skipped.
//
// Thread-safety: pure functions.
#pragma once

#include <cstdint>
#include <map>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "sluice/types.h"

namespace sluice {

struct MemberSubscription {
  std::string member_id;
  std::vector<std::string> topics;
  std::vector<TopicPartition> owned;  // its assignment in the previous generation (sticky)
};

using PartitionCounts = std::map<std::string, std::int32_t, std::less<>>;
// member id -> its partitions, sorted by topic and partition. Every member has an entry.
using MemberAssignments = std::map<std::string, std::vector<TopicPartition>>;

MemberAssignments assign_range(const std::vector<MemberSubscription>& members,
                               const PartitionCounts& partitions);
MemberAssignments assign_round_robin(const std::vector<MemberSubscription>& members,
                                     const PartitionCounts& partitions);
MemberAssignments assign_sticky(const std::vector<MemberSubscription>& members,
                                const PartitionCounts& partitions);

struct AssignorInfo {
  std::string_view name;
  MemberAssignments (*assign)(const std::vector<MemberSubscription>&, const PartitionCounts&);
};

// The assignors this build implements, in the order Sluice prefers them.
std::span<const AssignorInfo> assignors();
// nullptr if there is no assignor of that name.
const AssignorInfo* find_assignor(std::string_view name);

}  // namespace sluice
