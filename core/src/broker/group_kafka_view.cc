// GroupService's answers to Kafka's group admin APIs (ListGroups, DescribeGroups,
// OffsetDelete): the local groups, the Kafka clients' groups and the groups known only from
// committed offsets, in Kafka's terms (group_service.h).
#include <map>
#include <set>
#include <string>
#include <vector>

#include "broker_core.h"
#include "group_service.h"
#include "kafka/consumer_protocol.h"
#include "kafka_group_service.h"

namespace sluice::broker {

namespace {

kafka::KafkaGroupState kafka_state(GroupState s) {
  switch (s) {
    case GroupState::kPreparingRebalance:
      return kafka::KafkaGroupState::kPreparingRebalance;
    case GroupState::kStable:
      return kafka::KafkaGroupState::kStable;
    case GroupState::kDead:
      return kafka::KafkaGroupState::kDead;
    case GroupState::kEmpty:
      break;
  }
  return kafka::KafkaGroupState::kEmpty;
}

// A local member as a Kafka consumer would have joined: its subscription and its assignment
// in the consumer protocol (version 0: topics; partitions by topic).
kafka::KafkaMemberDescription kafka_member(const MemberDescription& m) {
  kafka::KafkaMemberDescription out;
  out.member_id = m.member_id;
  out.client_id = m.client_id;
  out.client_host = "local pid " + std::to_string(m.pid);
  kafka::ConsumerSubscription sub;
  sub.topics = m.topics;
  out.metadata = kafka::encode_consumer_subscription(sub);
  std::map<std::string, std::vector<std::int32_t>> by_topic;
  for (const TopicPartition& tp : m.partitions) by_topic[tp.topic].push_back(tp.partition);
  kafka::ConsumerAssignment assignment;
  for (auto& [topic, partitions] : by_topic)
    assignment.assigned_partitions.push_back({topic, std::move(partitions)});
  out.assignment = kafka::encode_consumer_assignment(assignment);
  return out;
}

}  // namespace

std::vector<kafka::KafkaGroupListing> GroupService::list_for_kafka() {
  std::map<std::string, kafka::KafkaGroupListing> groups;
  if (auto stored = table_.list_groups())
    for (const std::string& g : *stored) groups[g] = {g, "", kafka::KafkaGroupState::kEmpty};
  for (const GroupListing& g : coordinator_->list_groups())
    groups[g.group] = {g.group, "consumer", kafka_state(g.state)};
  if (core_.kafka_groups_)
    for (const kafka::KafkaGroupListing& g : core_.kafka_groups_->list()) {
      // A name is Kafka's or Sluice's at a time: local members win (the Kafka side is empty).
      auto it = groups.find(g.group_id);
      if (it != groups.end() && it->second.protocol_type == "consumer" && has_members(g.group_id))
        continue;
      groups[g.group_id] = g;
    }
  std::vector<kafka::KafkaGroupListing> out;
  out.reserve(groups.size());
  for (auto& [name, g] : groups) out.push_back(std::move(g));
  return out;
}

kafka::KafkaGroupDescription GroupService::describe_for_kafka(const std::string& group) {
  GroupDescription local = coordinator_->describe(group);
  if (local.members.empty() && core_.kafka_groups_) {
    kafka::KafkaGroupDescription k = core_.kafka_groups_->describe(group);
    if (k.state != kafka::KafkaGroupState::kDead) return k;
  }
  kafka::KafkaGroupDescription out;
  out.group_id = group;
  if (local.state != GroupState::kDead) {
    out.state = kafka_state(local.state);
    out.generation_id = local.generation;
    out.protocol_type = local.protocol_type;
    out.protocol = local.protocol;
    for (const MemberDescription& m : local.members) out.members.push_back(kafka_member(m));
    if (!out.members.empty()) out.leader = out.members.front().member_id;
    return out;
  }
  // Only committed offsets: Kafka's Empty group of "simple" commits.
  if (stored(group)) out.state = kafka::KafkaGroupState::kEmpty;
  return out;
}

std::vector<Status> GroupService::delete_offsets(const std::string& group,
                                                 const std::vector<TopicPartition>& partitions) {
  kafka::KafkaGroupDescription d = describe_for_kafka(group);
  if (d.state == kafka::KafkaGroupState::kDead)
    return std::vector<Status>(partitions.size(),
                               Status(ErrorCode::kNotFound, "unknown group " + group));
  // What its members subscribe to, from their consumer-protocol metadata (local members' too).
  std::set<std::string> subscribed;
  if (d.protocol_type == "consumer")
    for (const auto& m : d.members)
      if (auto sub = kafka::decode_consumer_subscription(m.metadata))
        subscribed.insert(sub->topics.begin(), sub->topics.end());
  std::vector<Status> out;
  out.reserve(partitions.size());
  for (const TopicPartition& tp : partitions) {
    if (!partition_exists(tp)) {
      out.push_back(Status(ErrorCode::kUnknownTopic,
                           "no partition " + tp.topic + "/" + std::to_string(tp.partition)));
    } else if (subscribed.count(tp.topic) != 0) {
      out.push_back(Status(ErrorCode::kBusy, "group " + group + " subscribes to " + tp.topic));
    } else if (auto erased = table_.delete_offset(group, tp.topic, tp.partition); !erased) {
      out.push_back(erased.status());
    } else {
      out.push_back(Status::ok());
    }
  }
  return out;
}

}  // namespace sluice::broker
