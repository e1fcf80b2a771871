// GroupCoordinator: consumer groups as a pure, single-threaded state machine. No sockets, no
// threads, no clock: the broker calls it from its event loop with the time (monotonic ns),
// and sends the events it returns; tests drive it directly.
//
// Kafka's eager rebalance protocol, adapted to one host where the broker sees each member's
// connection (and pid) and computes assignments itself:
//
//   join (new member) ─┐                       all members rejoined, or the rebalance
//   leave / death ─────┼─> PreparingRebalance ─ timeout passed (stragglers are expelled) ─┐
//   session timeout ───┤   generation + 1 pending;                                        │
//   changed subscription┘  every member not yet rejoined gets RejoinRequested; it stops   │
//                          consuming, commits, and joins again with its id               │
//        Empty <──── no member left ─── completion ───────────────────────────────────────┘
//                                         │ assignor chosen, partitions assigned
//                                         v
//                                       Stable: AssignmentReady for every member
//
// Fencing: commits are accepted only from a member of the current generation for a partition
// it owns in that generation (during a rebalance, its previous assignment still counts: the
// eager protocol commits before rejoining). A consumer that is not a member (assign(),
// generation -1) may commit only while the group has no members.
//
// Generations only go up: the broker persists GenerationStarted events (OffsetsTable::
// set_group) and, on start, gives the stored generations back with restore_group().
//
// Thread-safety: none; one thread (the broker's event loop) owns a coordinator.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <variant>
#include <vector>

#include "assignors.h"
#include "sluice/status.h"
#include "sluice/types.h"

namespace sluice {

struct CoordinatorConfig {
  // A member silent for this long (no join, heartbeat or commit) is expelled. Used when the
  // member does not ask for its own.
  std::int64_t session_timeout_ns = 10'000'000'000;
  // How long a rebalance waits for the members to rejoin (Kafka's max.poll.interval.ms plays
  // this part); the group's is the largest of its members'.
  std::int64_t rebalance_timeout_ns = 60'000'000'000;
  // A rebalance that starts from an empty group waits this long for more members to join
  // before it completes (Kafka's group.initial.rebalance.delay.ms), so that N consumers
  // starting together cause one rebalance, not N. 0: complete as soon as all have joined.
  std::int64_t initial_rebalance_delay_ns = 0;
  // Member ids are "<client id>-<instance>-<n>": the broker passes something that differs
  // between its runs (e.g. its start time), so that an id from a previous run is never
  // handed out again to another member.
  std::string instance;
};

// The broker's knowledge of topics: a topic's partition count, nullopt if it does not exist.
using PartitionCountFn = std::function<std::optional<std::int32_t>(const std::string& topic)>;

struct JoinRequest {
  std::string group;
  std::string member_id;  // empty: a new member
  std::string client_id;
  std::int64_t pid = 0;
  std::vector<std::string> topics;        // subscription
  std::vector<std::string> assignors;     // preference order: "range", "roundrobin", "sticky"
  std::int64_t session_timeout_ns = 0;    // 0: CoordinatorConfig's
  std::int64_t rebalance_timeout_ns = 0;  // 0: CoordinatorConfig's
};

// ---- events: what the broker sends, in order -------------------------------------------------

// Tell the member to stop consuming, commit, and join again with its id.
struct RejoinRequested {
  std::string group;
  std::string member_id;
  std::int32_t generation = 0;  // the generation being formed
  std::string reason;           // for logs: "member c-2 joined"
};

// The member's partitions for a generation: it may consume and commit them.
struct AssignmentReady {
  std::string group;
  std::string member_id;
  std::int32_t generation = 0;
  std::string protocol;
  std::vector<TopicPartition> partitions;  // sorted
};

enum class RemovalReason { kLeft, kDied, kSessionTimeout, kRebalanceTimeout };
const char* removal_reason_name(RemovalReason r);

// The member is out of the group; if its connection is still open, tell it to rejoin afresh.
struct MemberRemoved {
  std::string group;
  std::string member_id;
  RemovalReason reason = RemovalReason::kLeft;
  std::string message;
};

// A new generation began: persist it (OffsetsTable::set_group). Precedes its assignments.
struct GenerationStarted {
  std::string group;
  std::int32_t generation = 0;
  std::string protocol;  // "" when the group became empty
};

using CoordinatorEvent =
    std::variant<RejoinRequested, AssignmentReady, MemberRemoved, GenerationStarted>;

struct JoinResult {
  std::string member_id;
  std::vector<CoordinatorEvent> events;
};

// ---- describing -------------------------------------------------------------------------------

enum class GroupState { kEmpty, kPreparingRebalance, kStable, kDead };
// Kafka's names: "Empty", "PreparingRebalance", "Stable", "Dead".
const char* group_state_name(GroupState s);

struct MemberDescription {
  std::string member_id;
  std::string client_id;
  std::int64_t pid = 0;
  std::vector<std::string> topics;
  std::vector<std::string> assignors;
  std::vector<TopicPartition> partitions;  // of the current generation
  bool rejoined = false;  // during a rebalance: it joined again and awaits its assignment
};

// What Kafka's admin APIs show as a local group's protocol type: its members' subscriptions
// and assignments are described in the consumer protocol (group_kafka_view.cc).
inline constexpr const char* kLocalGroupProtocolType = "consumer";

struct GroupDescription {
  std::string group;
  GroupState state = GroupState::kDead;  // kDead: no such group
  std::int32_t generation = 0;
  std::string protocol_type = kLocalGroupProtocolType;
  std::string protocol;                    // assignor of the current generation
  std::vector<MemberDescription> members;  // sorted by member id
};

struct GroupListing {
  std::string group;
  GroupState state = GroupState::kEmpty;
  std::int32_t generation = 0;
  std::string protocol;
  std::size_t members = 0;
};

class GroupCoordinator {
 public:
  GroupCoordinator(CoordinatorConfig config, PartitionCountFn partition_count);

  // A member joins (member_id empty) or rejoins. A new member triggers a rebalance; a rejoin
  // during a rebalance counts the member in; a rejoin of a stable member with the same
  // subscription and assignors gets its assignment again, with changes it triggers a
  // rebalance. Errors: kInvalidArgument (no assignor this coordinator implements, or none in
  // common with the group's other members, or a malformed request), kNotFound (a member id
  // this group does not know: rejoin with an empty one).
  Result<JoinResult> join(const JoinRequest& request, std::int64_t now_ns);

  // The member leaves (LeaveGroup). kNotFound if it is not in the group.
  Result<std::vector<CoordinatorEvent>> leave(const std::string& group,
                                              const std::string& member_id, std::int64_t now_ns);
  // The broker saw the member's connection close or its pid vanish. Unknown ids are ignored.
  std::vector<CoordinatorEvent> member_died(const std::string& member_id, std::int64_t now_ns);

  // Ok; kRebalancing (the group is rebalancing: rejoin, or wait for the assignment if already
  // rejoined); kNotFound (unknown member: rejoin with an empty id); kFenced (the generation
  // has passed). Keeps the member's session alive unless kNotFound.
  Status heartbeat(const std::string& group, const std::string& member_id, std::int32_t generation,
                   std::int64_t now_ns);

  // May this commit be stored? Ok, or kFenced with the reason (an old generation, a partition
  // the member does not own, an unknown member, a non-member commit to a group with
  // members). generation < 0: a consumer that is not a member of the group.
  Status can_commit(const std::string& group, const std::string& member_id, std::int32_t generation,
                    const TopicPartition& partition) const;
  // A successful commit also counts as a sign of life.
  void touch(const std::string& member_id, std::int64_t now_ns);

  // Expels members whose session timed out; completes rebalances whose time has come.
  std::vector<CoordinatorEvent> tick(std::int64_t now_ns);
  // When tick() next has something to do, if ever: the broker's timer.
  std::optional<std::int64_t> next_deadline() const;

  // A topic's partition count changed (or it was created or deleted): groups subscribed to
  // it rebalance.
  std::vector<CoordinatorEvent> partitions_changed(const std::string& topic, std::int64_t now_ns);

  GroupDescription describe(const std::string& group) const;
  std::vector<GroupListing> list_groups() const;  // sorted by name
  // Only an empty group (no members) can be deleted: kBusy otherwise, kNotFound if unknown.
  // The broker deletes its offsets (OffsetsTable::delete_group).
  Status delete_group(const std::string& group);
  // At broker start: a group known from the offsets table, with its last generation, so that
  // generations continue upward. kBusy if the group already has members.
  Status restore_group(const std::string& group, std::int32_t generation,
                       const std::string& protocol);

 private:
  struct Member {
    std::string id;
    std::string client_id;
    std::int64_t pid = 0;
    std::vector<std::string> topics;     // sorted, unique
    std::vector<std::string> assignors;  // preference order, only implemented ones
    std::int64_t session_timeout_ns = 0;
    std::int64_t rebalance_timeout_ns = 0;
    std::int64_t last_seen_ns = 0;
    bool rejoined = false;                   // joined for the pending generation
    std::vector<TopicPartition> partitions;  // of the current generation
  };
  struct Group {
    std::string name;
    GroupState state = GroupState::kEmpty;
    std::int32_t generation = 0;
    std::string protocol;
    std::map<std::string, Member> members;         // by id: sorted, as the assignors want
    std::map<TopicPartition, std::string> owners;  // current generation: partition -> member
    std::int64_t rebalance_deadline_ns = 0;
    std::int64_t earliest_completion_ns = 0;
  };

  Group& group_for(const std::string& name);
  std::string new_member_id(const std::string& client_id);
  void start_rebalance(Group& g, const std::string& reason, std::int64_t now_ns,
                       std::vector<CoordinatorEvent>& events);
  void maybe_complete(Group& g, std::int64_t now_ns, std::vector<CoordinatorEvent>& events);
  void complete(Group& g, std::int64_t now_ns, std::vector<CoordinatorEvent>& events);
  void remove_member(Group& g, const std::string& member_id, RemovalReason reason,
                     const std::string& message, std::int64_t now_ns,
                     std::vector<CoordinatorEvent>& events);
  std::string select_protocol(const Group& g) const;
  // The assignors every member but `except` supports; nullopt when there is no such member.
  std::optional<std::set<std::string>> common_assignors(const Group& g,
                                                        const std::string& except) const;

  CoordinatorConfig config_;
  PartitionCountFn partition_count_;
  std::map<std::string, Group> groups_;
  std::map<std::string, std::string> member_group_;  // member id -> group
  std::uint64_t next_member_ = 1;
};

}  // namespace sluice
