// KafkaGroupCoordinator: consumer groups of Kafka clients (the "classic" JoinGroup / SyncGroup
// protocol), as a pure, single-threaded state machine. No sockets, no threads, no clock: the
// gateway calls it with the time (milliseconds, any monotonic origin), answers at once what it
// answers at once, and delivers the events it returns.
//
// Unlike Sluice's own GroupCoordinator (group_coordinator.h), where the broker computes the
// assignments, here the *leader client* runs the assignor: the coordinator only picks a
// protocol every member supports and relays bytes it never interprets (each member's protocol
// metadata to the leader, the leader's assignments to the members). Kafka's eager rebalance,
// one host:
//
//               a new member joins: wait group.initial.rebalance.delay,
//   ┌───────┐   and again while more members arrive    ┌────────────────────┐
//   │ Empty │ ───────────────────────────────────────> │ PreparingRebalance │ <──────────┐
//   └───────┘                                          └────────────────────┘            │
//       ^      every member joined again, or the rebalance       │                       │
//       │      timeout passed (the others are removed):          │                       │
//       │      generation + 1, protocol chosen by vote, every    │                       │
//       │      JoinGroup answered (the member list: leader only) │                       │
//       └──────────────────── (3) ───────────────────────────────┤                       │
//                                                                v                       │
//                                                     ┌─────────────────────┐    (1)     │
//                                                     │ CompletingRebalance │ ───────────┤
//                                                     └─────────────────────┘            │
//                      the leader's SyncGroup: assignments stored,  │                    │
//                      every waiting SyncGroup answered             v                    │
//                                                           ┌──────────┐     (2)         │
//                                                           │  Stable  │ ────────────────┘
//                                                           └──────────┘
//
//   (1) a member joins, leaves, times out or changes protocols: waiting SyncGroups get
//       REBALANCE_IN_PROGRESS, and the rebalance starts over.
//   (2) a member joins (new, the leader, or with other protocols), leaves, times out, or does
//       not SyncGroup within the rebalance timeout after its JoinGroup answer.
//   (3) a rebalance that completes with no member left: Empty, at generation + 1.
//   Dead: a group the coordinator does not know (describe() of an unknown or deleted group).
//
// Answers that wait: JoinGroup during PreparingRebalance, SyncGroup of a follower before the
// leader's. join() and sync() then return no response, and the gateway keeps the request under
// the member id; the answer comes later as a JoinResponseReady / SyncResponseReady event for
// that member (possibly among the events of the very call that made it pending: register the
// request first, then deliver the events). One request of each kind waits per member; a new one
// replaces the old, which the gateway may drop. cancel_pending() forgets a waiting answer (its
// connection closed) without removing the member: Kafka's connections are not leases.
//
// Sessions: a member is expelled when it sends nothing (join, sync, heartbeat, commit) for its
// session timeout, except while a join or sync of its waits for an answer. MEMBER_ID_REQUIRED
// (JoinGroup v4+ with an empty member id) hands out an id that stays reserved for the session
// timeout; while it is reserved, a rebalance waits for it as for any member.
//
// Generations only go up: the gateway persists GenerationStarted (the broker's offsets table)
// and, on start, gives them back with restore_generation().
//
// Thread-safety: none; one thread (the gateway's coordinator strand) owns a coordinator.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <variant>
#include <vector>

namespace sluice::kafka {

// Kafka's error codes that the coordinator returns (Kafka's protocol guide, "Error Codes").
namespace group_errors {
inline constexpr std::int16_t kNone = 0;
inline constexpr std::int16_t kCoordinatorNotAvailable = 15;
inline constexpr std::int16_t kIllegalGeneration = 22;
inline constexpr std::int16_t kInconsistentGroupProtocol = 23;
inline constexpr std::int16_t kInvalidGroupId = 24;
inline constexpr std::int16_t kUnknownMemberId = 25;
inline constexpr std::int16_t kInvalidSessionTimeout = 26;
inline constexpr std::int16_t kRebalanceInProgress = 27;
inline constexpr std::int16_t kNonEmptyGroup = 68;
inline constexpr std::int16_t kGroupIdNotFound = 69;
inline constexpr std::int16_t kMemberIdRequired = 79;
inline constexpr std::int16_t kFencedInstanceId = 82;
}  // namespace group_errors

struct KafkaGroupsConfig {
  // Kafka's group.min.session.timeout.ms / group.max.session.timeout.ms: a JoinGroup asking
  // for a session timeout outside [min, max] gets INVALID_SESSION_TIMEOUT.
  std::int32_t min_session_timeout_ms = 6'000;
  std::int32_t max_session_timeout_ms = 1'800'000;
  // Kafka's group.initial.rebalance.delay.ms (3000 there): a rebalance that starts from an
  // empty group waits this long, and again as long as new members keep arriving (within the
  // rebalance timeout), so that consumers starting together cause one generation, not N.
  std::int64_t initial_rebalance_delay_ms = 300;
  // Member ids are "<client id>-<instance>-<n>": the gateway passes something that differs
  // between runs (e.g. the broker's start time), so that an id is never handed out twice.
  std::string instance;
};

struct GroupProtocol {
  std::string name;      // e.g. "range", "roundrobin", "RoundRobinAssigner"
  std::string metadata;  // opaque (for "consumer": a ConsumerProtocolSubscription)
};

struct JoinGroupParams {
  std::string group_id;
  std::string member_id;                         // empty: a new member
  std::optional<std::string> group_instance_id;  // v5+ static membership
  std::string client_id;
  std::string client_host;
  std::int32_t session_timeout_ms = 0;
  std::int32_t rebalance_timeout_ms = -1;  // v1+; v0 (or <= 0): the session timeout
  std::string protocol_type;               // "consumer"
  std::vector<GroupProtocol> protocols;    // the member's preference order
  std::int16_t api_version = 0;            // JoinGroup version: v4+ gets MEMBER_ID_REQUIRED
};

struct JoinGroupMember {
  std::string member_id;
  std::optional<std::string> group_instance_id;
  std::string metadata;  // for the chosen protocol
};

// JoinGroup's response body (the gateway adds throttle time and encodes per version).
struct JoinGroupResponseData {
  std::int16_t error_code = group_errors::kNone;
  std::int32_t generation_id = -1;
  std::string protocol_name;
  std::string leader;
  std::string member_id;
  std::vector<JoinGroupMember> members;  // only in the leader's response
};

struct SyncGroupAssignment {
  std::string member_id;
  std::string assignment;  // opaque (for "consumer": a ConsumerProtocolAssignment)
};

struct SyncGroupParams {
  std::string group_id;
  std::string member_id;
  std::int32_t generation_id = -1;
  std::optional<std::string> group_instance_id;  // v3+
  std::vector<SyncGroupAssignment> assignments;  // the leader's; empty from followers
};

struct SyncGroupResponseData {
  std::int16_t error_code = group_errors::kNone;
  std::string assignment;
};

// ---- events: what the gateway delivers, in order ---------------------------------------------

// Answer the member's waiting JoinGroup request.
struct JoinResponseReady {
  std::string group_id;
  std::string member_id;
  JoinGroupResponseData response;
};

// Answer the member's waiting SyncGroup request.
struct SyncResponseReady {
  std::string group_id;
  std::string member_id;
  SyncGroupResponseData response;
};

enum class KafkaRemovalReason {
  kLeft,              // LeaveGroup
  kSessionTimeout,    // nothing heard for its session timeout
  kRebalanceTimeout,  // did not rejoin within the rebalance timeout
  kSyncTimeout,       // did not SyncGroup within the rebalance timeout after its JoinGroup
  kFenced,            // its group instance id joined again under a new member id
};
const char* kafka_removal_reason_name(KafkaRemovalReason r);

// For logs and metrics: the member is out of the group.
struct MemberRemoved {
  std::string group_id;
  std::string member_id;
  KafkaRemovalReason reason = KafkaRemovalReason::kLeft;
};

// A new generation began: persist it (generations continue upward after a restart). protocol is
// empty when the group became empty.
struct GenerationStarted {
  std::string group_id;
  std::int32_t generation_id = 0;
  std::string protocol_type;
  std::string protocol;
  std::size_t members = 0;
};

using KafkaGroupEvent =
    std::variant<JoinResponseReady, SyncResponseReady, MemberRemoved, GenerationStarted>;

struct JoinOutcome {
  std::string member_id;  // the member's id (new members: the one given to it)
  // Set: answer now. Unset: the answer waits (a JoinResponseReady for member_id).
  std::optional<JoinGroupResponseData> response;
  std::vector<KafkaGroupEvent> events;
};

struct SyncOutcome {
  // Set: answer now. Unset: the answer waits (a SyncResponseReady for the member).
  std::optional<SyncGroupResponseData> response;
  std::vector<KafkaGroupEvent> events;
};

struct LeaveOutcome {
  std::int16_t error_code = group_errors::kNone;
  std::vector<KafkaGroupEvent> events;
};

// ---- describing -------------------------------------------------------------------------------

enum class KafkaGroupState { kEmpty, kPreparingRebalance, kCompletingRebalance, kStable, kDead };
// Kafka's names: "Empty", "PreparingRebalance", "CompletingRebalance", "Stable", "Dead".
const char* kafka_group_state_name(KafkaGroupState s);

struct KafkaMemberDescription {
  std::string member_id;
  std::optional<std::string> group_instance_id;
  std::string client_id;
  std::string client_host;
  std::int32_t session_timeout_ms = 0;
  std::int32_t rebalance_timeout_ms = 0;
  std::string metadata;    // for the group's protocol (during a rebalance: the member's first)
  std::string assignment;  // of the current generation; empty until the leader's SyncGroup
};

struct KafkaGroupDescription {
  std::string group_id;
  KafkaGroupState state = KafkaGroupState::kDead;  // kDead: no such group
  std::int32_t generation_id = 0;
  std::string protocol_type;
  std::string protocol;  // of the current generation
  std::string leader;
  std::vector<KafkaMemberDescription> members;  // in joining order
};

struct KafkaGroupListing {
  std::string group_id;
  std::string protocol_type;
  KafkaGroupState state = KafkaGroupState::kEmpty;
};

class KafkaGroupCoordinator {
 public:
  explicit KafkaGroupCoordinator(KafkaGroupsConfig config = {});

  // JoinGroup. Errors answered at once: INVALID_GROUP_ID (empty group id),
  // INVALID_SESSION_TIMEOUT, UNKNOWN_MEMBER_ID (a member id the group does not know),
  // INCONSISTENT_GROUP_PROTOCOL (another protocol type, or no protocol in common with every
  // other member), MEMBER_ID_REQUIRED (v4+, empty member id, no group instance id: the response
  // carries the id to join with), FENCED_INSTANCE_ID (the instance id belongs to another
  // member id). Otherwise the answer waits for the rebalance, except for a member whose
  // protocols did not change joining a CompletingRebalance group, or a Stable one as a follower:
  // it gets the current generation back at once.
  JoinOutcome join(const JoinGroupParams& params, std::int64_t now_ms);

  // SyncGroup. UNKNOWN_MEMBER_ID, FENCED_INSTANCE_ID, ILLEGAL_GENERATION, or
  // REBALANCE_IN_PROGRESS (PreparingRebalance) at once. In CompletingRebalance the answer waits
  // for the leader's SyncGroup, which answers every waiting member (a member the leader left
  // out gets empty bytes; ids that are not members are ignored). Stable: the member's
  // assignment at once.
  SyncOutcome sync(const SyncGroupParams& params, std::int64_t now_ms);

  // Heartbeat: UNKNOWN_MEMBER_ID, FENCED_INSTANCE_ID, ILLEGAL_GENERATION; else
  // REBALANCE_IN_PROGRESS during PreparingRebalance (rejoin), NONE otherwise (as Kafka, also
  // during CompletingRebalance). Keeps the session alive unless the member is unknown/fenced.
  std::int16_t heartbeat(const std::string& group_id, const std::string& member_id,
                         std::int32_t generation_id,
                         const std::optional<std::string>& group_instance_id, std::int64_t now_ms);

  // LeaveGroup (v0-v2: one member). UNKNOWN_MEMBER_ID if the group or member is unknown. The
  // remaining members rebalance (the events may complete it); a join or sync of the leaver that
  // waited is answered with UNKNOWN_MEMBER_ID. A reserved MEMBER_ID_REQUIRED id is released.
  LeaveOutcome leave(const std::string& group_id, const std::string& member_id,
                     std::int64_t now_ms);

  // May an OffsetCommit be stored? Kafka's rules: generation < 0 with an empty member id (and
  // no instance id) is a "simple" commit, accepted when the group has no members (an unknown
  // group is created, Empty), else UNKNOWN_MEMBER_ID; a commit with a generation >= 0 to an
  // unknown group gets ILLEGAL_GENERATION. Otherwise the member must exist (UNKNOWN_MEMBER_ID,
  // FENCED_INSTANCE_ID) and the generation be the current one (ILLEGAL_GENERATION); during
  // CompletingRebalance REBALANCE_IN_PROGRESS. During PreparingRebalance the commit is
  // accepted: eager consumers commit before they rejoin. Success counts as a heartbeat.
  std::int16_t validate_commit(const std::string& group_id, const std::string& member_id,
                               std::int32_t generation_id,
                               const std::optional<std::string>& group_instance_id,
                               std::int64_t now_ms);

  // The member's connection closed: forget its waiting join and sync answers (no events will
  // be produced for them). The member stays; its session runs from now on.
  void cancel_pending(const std::string& member_id, std::int64_t now_ms);

  // Expels members whose session expired, frees reserved MEMBER_ID_REQUIRED ids whose time
  // passed, completes rebalances whose delay or timeout came, and rebalances groups whose
  // members did not sync in time.
  std::vector<KafkaGroupEvent> tick(std::int64_t now_ms);
  // When tick() next has something to do, if ever: the gateway's timer.
  std::optional<std::int64_t> next_deadline() const;

  KafkaGroupDescription describe(const std::string& group_id) const;
  std::vector<KafkaGroupListing> list_groups() const;  // sorted by group id
  // DeleteGroups: NONE, NON_EMPTY_GROUP if it has members, GROUP_ID_NOT_FOUND if unknown,
  // INVALID_GROUP_ID if empty. The gateway deletes the group's offsets.
  std::int16_t delete_group(const std::string& group_id);
  // At broker start: a group known from the offsets table with its last generation, so that
  // generations continue upward, and its protocol type ("" if not known), which ListGroups
  // and DescribeGroups show while it is Empty, as Kafka's loaded groups do. Creates the group
  // (Empty) if unknown; never lowers a generation nor changes a group with members.
  void restore_generation(const std::string& group_id, std::int32_t generation_id,
                          const std::string& protocol_type);

 private:
  struct Member {
    std::string id;
    std::optional<std::string> instance_id;
    std::string client_id;
    std::string client_host;
    std::int32_t session_timeout_ms = 0;
    std::int32_t rebalance_timeout_ms = 0;
    std::string protocol_type;
    std::vector<GroupProtocol> protocols;
    std::string assignment;
    std::uint64_t seq = 0;          // joining order
    std::int64_t last_seen_ms = 0;  // session runs from here
    bool joined = false;            // rejoined for the rebalance under way
    bool join_waiting = false;      // a JoinGroup waits for its answer
    bool sync_waiting = false;      // a SyncGroup waits for its answer
    bool needs_sync = false;        // got its JoinGroup answer, has not synced yet
  };
  struct Pending {  // an id handed out with MEMBER_ID_REQUIRED
    std::int64_t expires_ms = 0;
  };
  struct Group {
    std::string id;
    KafkaGroupState state = KafkaGroupState::kEmpty;
    std::int32_t generation = 0;
    std::string protocol_type;
    std::string protocol;
    std::string leader;
    std::map<std::string, Member> members;
    std::map<std::string, Pending> pending;
    std::map<std::string, std::string> instances;  // group instance id -> member id
    // PreparingRebalance started from Empty: Kafka's InitialDelayedJoin.
    bool initial_delay = false;
    bool new_member_added = false;
    std::int64_t delay_until_ms = 0;
    std::int64_t delay_remaining_ms = 0;
    std::int64_t rebalance_deadline_ms = 0;        // PreparingRebalance (not initial)
    std::optional<std::int64_t> sync_deadline_ms;  // members with needs_sync
    bool keep = false;  // restored or committed to: kept while Empty at generation 0
  };
  using Events = std::vector<KafkaGroupEvent>;

  std::string new_member_id(const std::string& client_id);
  bool supports_protocols(const Group& g, const std::string& except, const std::string& type,
                          const std::vector<GroupProtocol>& protocols) const;
  std::int16_t validate_member(const Group& g, const std::string& member_id,
                               const std::optional<std::string>& instance_id) const;
  void add_member(Group& g, const JoinGroupParams& p, const std::string& id, std::int64_t now_ms,
                  Events& events);
  void update_member(Group& g, Member& m, const JoinGroupParams& p, std::int64_t now_ms,
                     Events& events);
  JoinGroupResponseData current_join_response(const Group& g, const Member& m) const;
  void prepare_rebalance(Group& g, std::int64_t now_ms, Events& events);
  void remove_member(Group& g, const std::string& member_id, KafkaRemovalReason reason,
                     std::int64_t now_ms, Events& events);
  // Completes a due rebalance, expires sessions and reserved ids, enforces the sync deadline.
  void advance(Group& g, std::int64_t now_ms, Events& events);
  bool all_joined(const Group& g) const;
  void complete_join(Group& g, std::int64_t now_ms, Events& events);
  std::string select_protocol(const Group& g) const;
  static const std::string* metadata_for(const Member& m, const std::string& protocol);
  std::int32_t group_rebalance_timeout(const Group& g) const;
  void maybe_forget(const std::string& group_id);

  KafkaGroupsConfig config_;
  std::map<std::string, Group> groups_;
  std::map<std::string, std::string> member_group_;  // member or reserved id -> group id
  std::uint64_t next_member_ = 1;
  std::uint64_t next_seq_ = 1;
};

}  // namespace sluice::kafka
