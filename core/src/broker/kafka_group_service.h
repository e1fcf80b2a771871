// KafkaGroupService: the broker's agent for consumer groups of Kafka clients (the gateway's
// JoinGroup, SyncGroup, Heartbeat, LeaveGroup, OffsetCommit and OffsetFetch). It drives the
// KafkaGroupCoordinator state machine with the time, keeps the answers that wait (a JoinGroup
// until the rebalance completes, a follower's SyncGroup until the leader's), and stores
// commits and generations in the same OffsetsTable as Sluice's own groups, so that
// `sluice group describe` shows Kafka groups' members, assignments and lag too.
//
// A group name is either Kafka's or Sluice's at a time: a Kafka member cannot join a group
// with local members (INCONSISTENT_GROUP_PROTOCOL), nor a local consumer one with Kafka
// members.
//
// Thread-safety: the broker's io_context thread only (the gateway posts through BrokerLink).
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "kafka/kafka_groups.h"
#include "offsets_table.h"
#include "sluice/broker.h"

namespace sluice::broker {

class GroupService;

struct KafkaCommit {
  std::string topic;
  std::int32_t partition = 0;
  std::int64_t offset = 0;
  std::optional<std::string> metadata;
};

struct KafkaCommitted {
  std::string topic;
  std::int32_t partition = 0;
  std::int64_t offset = -1;  // -1: never committed
  std::optional<std::string> metadata;
  std::int16_t error = 0;
};

class KafkaGroupService {
 public:
  using JoinReply = std::function<void(const kafka::JoinGroupResponseData&)>;
  using SyncReply = std::function<void(const kafka::SyncGroupResponseData&)>;

  KafkaGroupService(const BrokerConfig& config, OffsetsTable& table, GroupService& local);

  // Generations stored in the table continue upward; the group is listed with its stored
  // protocol type ("" if the table did not keep it).
  void restore(const std::string& group, std::int32_t generation, const std::string& protocol_type);

  // `reply` is called once, now or when the rebalance completes. Returns the member id when
  // the answer waits.
  std::optional<std::string> join(const kafka::JoinGroupParams& params, JoinReply reply);
  void sync(const kafka::SyncGroupParams& params, SyncReply reply);
  std::int16_t heartbeat(const std::string& group, const std::string& member,
                         std::int32_t generation, const std::optional<std::string>& instance);
  std::int16_t leave(const std::string& group, const std::string& member);
  // One error per entry (0 when stored).
  std::vector<std::int16_t> commit(const std::string& group, const std::string& member,
                                   std::int32_t generation,
                                   const std::optional<std::string>& instance,
                                   const std::vector<KafkaCommit>& entries);
  // `wanted` empty with all=true: every partition the group committed.
  std::vector<KafkaCommitted> fetch(const std::string& group,
                                    const std::vector<std::pair<std::string, std::int32_t>>& wanted,
                                    bool all);
  void cancel_pending(const std::string& member);
  void tick();

  kafka::KafkaGroupDescription describe(const std::string& group) const;
  std::vector<kafka::KafkaGroupListing> list() const;
  bool has_members(const std::string& group) const;
  std::int16_t delete_group(const std::string& group);

 private:
  void dispatch(std::vector<kafka::KafkaGroupEvent> events);
  static std::int64_t now_ms();

  OffsetsTable& table_;
  GroupService& local_;
  kafka::KafkaGroupCoordinator coordinator_;
  std::map<std::string, JoinReply> join_waiting_;  // by member id
  std::map<std::string, SyncReply> sync_waiting_;
};

}  // namespace sluice::broker
