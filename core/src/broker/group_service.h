// GroupService: the broker's consumer-group agent. It drives the GroupCoordinator state machine
// from control requests, member connections and timers, answers joins with assignments,
// sends rebalance notices, and keeps committed offsets in the shared OffsetsTable.
//
// A member's control connection is its liveness lease: when it closes (the process died or
// left), the member is removed at once; heartbeats (session timeout) and pid checks are the
// backstop for a process that hangs with its connection open.
//
// Thread-safety: the broker's io_context thread only.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "control_server.h"
#include "group_coordinator.h"
#include "kafka/kafka_groups.h"
#include "offsets_table.h"

namespace sluice::broker {

class BrokerCore;

class GroupService {
 public:
  explicit GroupService(BrokerCore& core);
  // Opens the offsets table and restores the groups it records with a generation; returns
  // those groups' records, which the Kafka groups' coordinator restores too.
  Result<std::vector<GroupRecord>> start();
  void shutdown();

  void handle(const std::shared_ptr<Session>& session, const std::string& op,
              const control::json& req);
  void session_closed(const std::shared_ptr<Session>& session);
  void tick();
  void topic_changed(const std::string& topic);

  OffsetsTable& table() { return table_; }
  // True while Sluice consumers are members of the group (a Kafka member may not join it).
  bool has_members(const std::string& group) const;

  // True if the broker has the topic and the partition: offsets are committed only for those.
  bool partition_exists(const TopicPartition& tp) const;

  // The topic was deleted: every group's committed offsets for it go too (Kafka does the
  // same), so a topic re-created under the name does not start from the old positions. After
  // topic_changed(), so that members have been told to give its partitions up.
  void forget_topic_offsets(const std::string& topic);

  // The lowest offset committed by any group for a partition (backpressure retention).
  std::optional<std::int64_t> slowest_committed(const TopicPartition& tp);

  // Every group of the broker as Kafka's admin APIs (ListGroups, DescribeGroups) show them,
  // one name space: groups of local consumers, groups of Kafka clients, and groups known only
  // from their committed offsets (group_kafka_view.cc).
  //   list_for_kafka: sorted by name. Local groups have protocol type "consumer"; a group
  //     that only has committed offsets has "" and is Empty, as in Kafka.
  //   describe_for_kafka: a Kafka clients' group as its coordinator knows it; a local group
  //     with its members (client host "local pid N"), each member's topics and partitions
  //     encoded in the consumer protocol as a Kafka consumer's would be, so that Kafka tools
  //     show them; Empty for a group with only offsets; Dead for an unknown one.
  std::vector<kafka::KafkaGroupListing> list_for_kafka();
  kafka::KafkaGroupDescription describe_for_kafka(const std::string& group);
  // Deletes an empty group (local or Kafka) and its committed offsets. kBusy while it has
  // members, kNotFound for a group the broker does not know.
  Status delete_group(const std::string& group);
  // Kafka's OffsetDelete: forgets the group's committed offsets of `partitions`, one status
  // each: kUnknownTopic for a partition the broker does not have, kBusy while a member of the
  // group subscribes to its topic. kNotFound (for all) if the broker does not know the group
  // (group_kafka_view.cc).
  std::vector<Status> delete_offsets(const std::string& group,
                                     const std::vector<TopicPartition>& partitions);

 private:
  void dispatch(std::vector<CoordinatorEvent> events);
  void op_join(const std::shared_ptr<Session>& s, const control::json& req);
  void op_heartbeat(const std::shared_ptr<Session>& s, const control::json& req);
  void op_leave(const std::shared_ptr<Session>& s, const control::json& req);
  void op_commit(const std::shared_ptr<Session>& s, const control::json& req);
  void op_fetch(const std::shared_ptr<Session>& s, const control::json& req);
  void op_list(const std::shared_ptr<Session>& s, const control::json& req);
  void op_describe(const std::shared_ptr<Session>& s, const control::json& req);
  void op_reset(const std::shared_ptr<Session>& s, const control::json& req);
  void op_delete(const std::shared_ptr<Session>& s, const control::json& req);

  // True if the offsets table has the group (a record or a committed offset).
  bool stored(const std::string& group);
  // kFenced when `member` was joined by another connection that is still open: a member's
  // joins, heartbeats, commits and leave come only from the connection that joined it.
  Status check_owner(const std::shared_ptr<Session>& s, const std::string& member,
                     const char* verb) const;
  void reply(const std::shared_ptr<Session>& s, const control::json& req, control::json body);
  void fail(const std::shared_ptr<Session>& s, const control::json& req, const Status& st);
  std::int64_t now_ns() const;

  BrokerCore& core_;
  std::unique_ptr<GroupCoordinator> coordinator_;
  OffsetsTable table_;
  // Generations restored from the table at start: commits of that generation from members
  // that have not rejoined the restarted broker yet are accepted (their assignment was lost
  // with the old broker; within a generation partitions were disjoint).
  std::map<std::string, std::int32_t> restored_generation_;

  struct MemberLink {
    std::weak_ptr<Session> session;
    std::string group;
    // A join waiting for its assignment: the request id to answer.
    std::optional<std::int64_t> pending_join;
  };
  std::map<std::string, MemberLink> members_;                       // by member id
  std::map<std::uint64_t, std::set<std::string>> session_members_;  // session id -> member ids
  std::int64_t last_pid_check_ns_ = 0;
};

}  // namespace sluice::broker
