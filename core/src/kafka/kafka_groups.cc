// The Kafka-protocol group coordinator's state machine; the states and transitions are drawn in
// kafka_groups.h. Behaviour follows Kafka's classic GroupCoordinator (eager protocol): the
// comments name the Kafka rule each branch implements where it is not obvious.
#include "kafka/kafka_groups.h"

#include <algorithm>
#include <utility>

namespace sluice::kafka {

namespace {

namespace ge = group_errors;

constexpr std::size_t kMaxClientIdInMemberId = 64;

// Cuts `s` to at most `max` bytes without splitting a UTF-8 character (member ids go back to
// clients as Kafka STRINGs, which are UTF-8).
std::string utf8_prefix(const std::string& s, std::size_t max) {
  if (s.size() <= max) return s;
  std::size_t end = max;
  // Back up over continuation bytes (10xxxxxx) to the lead byte of the character at `end`.
  while (end > 0 && (static_cast<unsigned char>(s[end]) & 0xC0) == 0x80) --end;
  return s.substr(0, end);
}

JoinGroupResponseData join_error(std::int16_t code, const std::string& member_id) {
  JoinGroupResponseData r;
  r.error_code = code;
  r.member_id = member_id;
  return r;
}

SyncGroupResponseData sync_error(std::int16_t code) {
  SyncGroupResponseData r;
  r.error_code = code;
  return r;
}

bool same_protocols(const std::vector<GroupProtocol>& a, const std::vector<GroupProtocol>& b) {
  return std::equal(a.begin(), a.end(), b.begin(), b.end(),
                    [](const GroupProtocol& x, const GroupProtocol& y) {
                      return x.name == y.name && x.metadata == y.metadata;
                    });
}

bool has_protocol(const std::vector<GroupProtocol>& protocols, const std::string& name) {
  return std::any_of(protocols.begin(), protocols.end(),
                     [&](const GroupProtocol& p) { return p.name == name; });
}

}  // namespace

const char* kafka_removal_reason_name(KafkaRemovalReason r) {
  switch (r) {
    case KafkaRemovalReason::kLeft:
      return "left";
    case KafkaRemovalReason::kSessionTimeout:
      return "session-timeout";
    case KafkaRemovalReason::kRebalanceTimeout:
      return "rebalance-timeout";
    case KafkaRemovalReason::kSyncTimeout:
      return "sync-timeout";
    case KafkaRemovalReason::kFenced:
      return "fenced";
  }
  return "unknown";
}

const char* kafka_group_state_name(KafkaGroupState s) {
  switch (s) {
    case KafkaGroupState::kEmpty:
      return "Empty";
    case KafkaGroupState::kPreparingRebalance:
      return "PreparingRebalance";
    case KafkaGroupState::kCompletingRebalance:
      return "CompletingRebalance";
    case KafkaGroupState::kStable:
      return "Stable";
    case KafkaGroupState::kDead:
      return "Dead";
  }
  return "Unknown";
}

KafkaGroupCoordinator::KafkaGroupCoordinator(KafkaGroupsConfig config)
    : config_(std::move(config)) {}

// ---- helpers ----------------------------------------------------------------------------------

std::string KafkaGroupCoordinator::new_member_id(const std::string& client_id) {
  // Kafka: "<client id>-<UUID>"; here the instance and a counter make it unique across runs.
  std::string id = utf8_prefix(client_id, kMaxClientIdInMemberId);
  if (!config_.instance.empty()) id += "-" + config_.instance;
  id += "-" + std::to_string(next_member_++);
  return id;
}

// Kafka's GroupMetadata.supportsProtocols: a group without (other) members takes any non-empty
// protocol type and list; otherwise the type must be the group's and one of the member's
// protocols must be supported by every other member. The joining member's own previous
// protocols do not count (Kafka counts them; excluding them lets a sole member switch).
bool KafkaGroupCoordinator::supports_protocols(const Group& g, const std::string& except,
                                               const std::string& type,
                                               const std::vector<GroupProtocol>& protocols) const {
  if (type.empty() || protocols.empty()) return false;
  bool others = false;
  for (const auto& [id, m] : g.members)
    if (id != except) others = true;
  if (!others) return true;
  if (type != g.protocol_type) return false;
  for (const GroupProtocol& p : protocols) {
    bool everyone = true;
    for (const auto& [id, m] : g.members)
      if (id != except && !has_protocol(m.protocols, p.name)) {
        everyone = false;
        break;
      }
    if (everyone) return true;
  }
  return false;
}

// Kafka's validateCurrentMember: an instance id that maps to another member id is fenced; an
// unknown instance id or member id is unknown.
std::int16_t KafkaGroupCoordinator::validate_member(
    const Group& g, const std::string& member_id,
    const std::optional<std::string>& instance_id) const {
  if (instance_id) {
    auto it = g.instances.find(*instance_id);
    if (it == g.instances.end()) return ge::kUnknownMemberId;
    if (it->second != member_id) return ge::kFencedInstanceId;
  }
  return g.members.count(member_id) != 0 ? ge::kNone : ge::kUnknownMemberId;
}

const std::string* KafkaGroupCoordinator::metadata_for(const Member& m,
                                                       const std::string& protocol) {
  for (const GroupProtocol& p : m.protocols)
    if (p.name == protocol) return &p.metadata;
  return nullptr;
}

std::int32_t KafkaGroupCoordinator::group_rebalance_timeout(const Group& g) const {
  std::int32_t t = 0;
  for (const auto& [id, m] : g.members) t = std::max(t, m.rebalance_timeout_ms);
  return t;
}

bool KafkaGroupCoordinator::all_joined(const Group& g) const {
  // Kafka's hasAllMembersJoined: reserved (MEMBER_ID_REQUIRED) ids count as not yet joined.
  if (!g.pending.empty()) return false;
  return std::all_of(g.members.begin(), g.members.end(),
                     [](const auto& kv) { return kv.second.joined; });
}

// Kafka's selectProtocol: among the protocols every member supports, each member votes for the
// first of its own list; the most votes win. Kafka breaks ties arbitrarily; here the leader's
// preference order breaks them.
std::string KafkaGroupCoordinator::select_protocol(const Group& g) const {
  auto leader_it = g.members.find(g.leader);
  const Member& ref = leader_it != g.members.end() ? leader_it->second : g.members.begin()->second;
  std::vector<std::string> candidates;
  for (const GroupProtocol& p : ref.protocols) {
    bool everyone = std::all_of(g.members.begin(), g.members.end(), [&](const auto& kv) {
      return has_protocol(kv.second.protocols, p.name);
    });
    if (everyone && std::find(candidates.begin(), candidates.end(), p.name) == candidates.end())
      candidates.push_back(p.name);
  }
  if (candidates.empty())  // join() refuses inconsistent members; kept total anyway
    return ref.protocols.empty() ? std::string() : ref.protocols.front().name;
  std::map<std::string, int> votes;
  for (const auto& [id, m] : g.members)
    for (const GroupProtocol& p : m.protocols)
      if (std::find(candidates.begin(), candidates.end(), p.name) != candidates.end()) {
        ++votes[p.name];
        break;
      }
  std::string best = candidates.front();
  for (const std::string& c : candidates)  // leader's order: the first of the tied wins
    if (votes[c] > votes[best]) best = c;
  return best;
}

JoinGroupResponseData KafkaGroupCoordinator::current_join_response(const Group& g,
                                                                   const Member& m) const {
  JoinGroupResponseData r;
  r.generation_id = g.generation;
  r.protocol_name = g.protocol;
  r.leader = g.leader;
  r.member_id = m.id;
  if (m.id == g.leader) {
    std::vector<const Member*> order;
    for (const auto& [id, other] : g.members) order.push_back(&other);
    std::sort(order.begin(), order.end(),
              [](const Member* a, const Member* b) { return a->seq < b->seq; });
    for (const Member* other : order) {
      const std::string* md = metadata_for(*other, g.protocol);
      r.members.push_back(JoinGroupMember{other->id, other->instance_id, md ? *md : std::string()});
    }
  }
  return r;
}

// ---- transitions ------------------------------------------------------------------------------

void KafkaGroupCoordinator::add_member(Group& g, const JoinGroupParams& p, const std::string& id,
                                       std::int64_t now_ms, Events& events) {
  Member m;
  m.id = id;
  m.instance_id = p.group_instance_id;
  m.client_id = p.client_id;
  m.client_host = p.client_host;
  m.session_timeout_ms = p.session_timeout_ms;
  m.rebalance_timeout_ms =
      p.rebalance_timeout_ms > 0 ? p.rebalance_timeout_ms : p.session_timeout_ms;
  m.protocol_type = p.protocol_type;
  m.protocols = p.protocols;
  m.seq = next_seq_++;
  m.last_seen_ms = now_ms;
  m.joined = true;
  m.join_waiting = true;
  if (g.members.empty()) g.protocol_type = p.protocol_type;
  if (g.leader.empty()) g.leader = id;  // Kafka: the first member leads
  if (m.instance_id) g.instances[*m.instance_id] = id;
  g.members.emplace(id, std::move(m));
  member_group_[id] = g.id;
  if (g.state == KafkaGroupState::kPreparingRebalance) {
    if (g.initial_delay) g.new_member_added = true;
    if (!g.initial_delay && all_joined(g)) complete_join(g, now_ms, events);
  } else {
    prepare_rebalance(g, now_ms, events);
  }
}

void KafkaGroupCoordinator::update_member(Group& g, Member& m, const JoinGroupParams& p,
                                          std::int64_t now_ms, Events& events) {
  m.client_id = p.client_id;
  m.client_host = p.client_host;
  m.session_timeout_ms = p.session_timeout_ms;
  m.rebalance_timeout_ms =
      p.rebalance_timeout_ms > 0 ? p.rebalance_timeout_ms : p.session_timeout_ms;
  m.protocol_type = p.protocol_type;
  m.protocols = p.protocols;
  m.last_seen_ms = now_ms;
  m.joined = true;
  m.join_waiting = true;
  if (g.members.size() == 1) g.protocol_type = p.protocol_type;
  if (g.state == KafkaGroupState::kPreparingRebalance) {
    if (!g.initial_delay && all_joined(g)) complete_join(g, now_ms, events);
  } else {
    prepare_rebalance(g, now_ms, events);
  }
}

// Kafka's prepareRebalance: waiting SyncGroups of a CompletingRebalance group get
// REBALANCE_IN_PROGRESS and the unfinished assignment is dropped; a group that was Empty waits
// the initial delay, any other the group's rebalance timeout (the largest of its members').
void KafkaGroupCoordinator::prepare_rebalance(Group& g, std::int64_t now_ms, Events& events) {
  const bool was_empty = g.state == KafkaGroupState::kEmpty;
  if (g.state == KafkaGroupState::kCompletingRebalance) {
    std::vector<Member*> order;
    for (auto& [id, m] : g.members) order.push_back(&m);
    std::sort(order.begin(), order.end(),
              [](const Member* a, const Member* b) { return a->seq < b->seq; });
    for (Member* m : order) {
      m->assignment.clear();
      if (!m->sync_waiting) continue;
      m->sync_waiting = false;
      events.emplace_back(SyncResponseReady{g.id, m->id, sync_error(ge::kRebalanceInProgress)});
    }
  }
  for (auto& [id, m] : g.members) m.needs_sync = false;
  g.sync_deadline_ms.reset();
  g.state = KafkaGroupState::kPreparingRebalance;
  const std::int64_t timeout = group_rebalance_timeout(g);
  if (was_empty) {
    g.initial_delay = true;
    g.new_member_added = false;
    const std::int64_t delay = std::min<std::int64_t>(config_.initial_rebalance_delay_ms, timeout);
    g.delay_until_ms = now_ms + std::max<std::int64_t>(delay, 0);
    g.delay_remaining_ms = std::max<std::int64_t>(timeout - delay, 0);
  } else {
    g.initial_delay = false;
    g.rebalance_deadline_ms = now_ms + timeout;
    if (all_joined(g)) complete_join(g, now_ms, events);
  }
}

void KafkaGroupCoordinator::remove_member(Group& g, const std::string& member_id,
                                          KafkaRemovalReason reason, std::int64_t now_ms,
                                          Events& events) {
  auto it = g.members.find(member_id);
  if (it == g.members.end()) return;
  Member& m = it->second;
  // Kafka answers a waiting JoinGroup of a removed member with UNKNOWN_MEMBER_ID (a fenced
  // static member: FENCED_INSTANCE_ID); a waiting SyncGroup gets the same here.
  const std::int16_t code =
      reason == KafkaRemovalReason::kFenced ? ge::kFencedInstanceId : ge::kUnknownMemberId;
  if (m.join_waiting) events.emplace_back(JoinResponseReady{g.id, m.id, join_error(code, m.id)});
  if (m.sync_waiting) events.emplace_back(SyncResponseReady{g.id, m.id, sync_error(code)});
  if (m.instance_id) {
    auto inst = g.instances.find(*m.instance_id);
    if (inst != g.instances.end() && inst->second == member_id) g.instances.erase(inst);
  }
  member_group_.erase(member_id);
  g.members.erase(it);
  events.emplace_back(MemberRemoved{g.id, member_id, reason});
  if (g.leader == member_id) {
    g.leader.clear();
    std::uint64_t best = 0;
    for (const auto& [id, other] : g.members)
      if (g.leader.empty() || other.seq < best) {
        g.leader = id;
        best = other.seq;
      }
  }
  switch (g.state) {
    case KafkaGroupState::kStable:
    case KafkaGroupState::kCompletingRebalance:
      prepare_rebalance(g, now_ms, events);
      break;
    case KafkaGroupState::kPreparingRebalance:
      if (!g.initial_delay && all_joined(g)) complete_join(g, now_ms, events);
      break;
    case KafkaGroupState::kEmpty:
    case KafkaGroupState::kDead:
      break;
  }
}

// Kafka's onCompleteJoin: members that did not rejoin are removed, the generation goes up (also
// when no member is left: the group becomes Empty), and every waiting JoinGroup is answered.
void KafkaGroupCoordinator::complete_join(Group& g, std::int64_t now_ms, Events& events) {
  // Removing a straggler must not re-enter completion: leave PreparingRebalance first.
  g.state = KafkaGroupState::kEmpty;
  std::vector<std::string> stragglers;
  for (const auto& [id, m] : g.members)
    if (!m.joined) stragglers.push_back(id);
  for (const std::string& id : stragglers)
    remove_member(g, id, KafkaRemovalReason::kRebalanceTimeout, now_ms, events);
  g.initial_delay = false;
  g.new_member_added = false;
  ++g.generation;
  if (g.members.empty()) {
    g.state = KafkaGroupState::kEmpty;
    g.protocol.clear();
    g.leader.clear();
    events.emplace_back(GenerationStarted{g.id, g.generation, g.protocol_type, "", 0});
    return;
  }
  g.protocol = select_protocol(g);
  g.state = KafkaGroupState::kCompletingRebalance;
  events.emplace_back(
      GenerationStarted{g.id, g.generation, g.protocol_type, g.protocol, g.members.size()});
  std::vector<Member*> order;
  for (auto& [id, m] : g.members) order.push_back(&m);
  std::sort(order.begin(), order.end(),
            [](const Member* a, const Member* b) { return a->seq < b->seq; });
  for (Member* m : order) {
    m->joined = false;
    m->needs_sync = true;
    m->assignment.clear();
    m->last_seen_ms = now_ms;  // Kafka restarts every member's heartbeat timer here
    if (!m->join_waiting) continue;
    m->join_waiting = false;
    events.emplace_back(JoinResponseReady{g.id, m->id, current_join_response(g, *m)});
  }
  g.sync_deadline_ms = now_ms + group_rebalance_timeout(g);
}

void KafkaGroupCoordinator::advance(Group& g, std::int64_t now_ms, Events& events) {
  // Reserved MEMBER_ID_REQUIRED ids whose member never came back.
  bool freed = false;
  for (auto it = g.pending.begin(); it != g.pending.end();) {
    if (it->second.expires_ms <= now_ms) {
      member_group_.erase(it->first);
      it = g.pending.erase(it);
      freed = true;
    } else {
      ++it;
    }
  }
  if (freed && g.state == KafkaGroupState::kPreparingRebalance && !g.initial_delay && all_joined(g))
    complete_join(g, now_ms, events);

  // Sessions: a member whose join or sync answer is waiting is not expired (Kafka's
  // hasSatisfiedHeartbeat); the rebalance and sync deadlines bound those waits.
  std::vector<std::string> expired;
  for (const auto& [id, m] : g.members)
    if (!m.join_waiting && !m.sync_waiting && m.last_seen_ms + m.session_timeout_ms <= now_ms)
      expired.push_back(id);
  for (const std::string& id : expired)
    remove_member(g, id, KafkaRemovalReason::kSessionTimeout, now_ms, events);

  if (g.state == KafkaGroupState::kPreparingRebalance) {
    if (g.initial_delay) {
      // Kafka's InitialDelayedJoin: another delay, counted from the end of the last one, while
      // new members keep arriving (within the rebalance timeout).
      while (g.initial_delay && now_ms >= g.delay_until_ms) {
        if (g.new_member_added && g.delay_remaining_ms > 0) {
          const std::int64_t delay =
              std::min<std::int64_t>(config_.initial_rebalance_delay_ms, g.delay_remaining_ms);
          g.delay_remaining_ms -= delay;
          g.delay_until_ms += delay;
          g.new_member_added = false;
        } else {
          complete_join(g, now_ms, events);
        }
      }
    } else if (now_ms >= g.rebalance_deadline_ms) {
      complete_join(g, now_ms, events);
    }
  }

  // Kafka's pending-sync timeout: members that got their JoinGroup answer but did not SyncGroup
  // within the rebalance timeout are removed, and the others rebalance.
  if ((g.state == KafkaGroupState::kCompletingRebalance || g.state == KafkaGroupState::kStable) &&
      g.sync_deadline_ms && now_ms >= *g.sync_deadline_ms) {
    g.sync_deadline_ms.reset();
    std::vector<std::string> late;
    for (const auto& [id, m] : g.members)
      if (m.needs_sync) late.push_back(id);
    for (const std::string& id : late)
      remove_member(g, id, KafkaRemovalReason::kSyncTimeout, now_ms, events);
  }
}

void KafkaGroupCoordinator::maybe_forget(const std::string& group_id) {
  auto it = groups_.find(group_id);
  if (it == groups_.end()) return;
  const Group& g = it->second;
  if (!g.keep && g.generation == 0 && g.members.empty() && g.pending.empty() &&
      g.state == KafkaGroupState::kEmpty)
    groups_.erase(it);
}

// ---- requests ---------------------------------------------------------------------------------

JoinOutcome KafkaGroupCoordinator::join(const JoinGroupParams& p, std::int64_t now_ms) {
  JoinOutcome out;
  out.member_id = p.member_id;
  auto fail = [&](std::int16_t code) {
    out.response = join_error(code, p.member_id);
    maybe_forget(p.group_id);  // a group this call created and left empty
    return std::move(out);
  };
  if (p.group_id.empty()) return fail(ge::kInvalidGroupId);
  if (p.session_timeout_ms < config_.min_session_timeout_ms ||
      p.session_timeout_ms > config_.max_session_timeout_ms)
    return fail(ge::kInvalidSessionTimeout);
  const bool new_member = p.member_id.empty();
  auto git = groups_.find(p.group_id);
  if (git == groups_.end()) {
    if (!new_member) return fail(ge::kUnknownMemberId);
    git = groups_.try_emplace(p.group_id).first;
    git->second.id = p.group_id;
  }
  Group& g = git->second;
  Events& events = out.events;

  if (new_member) {
    if (!supports_protocols(g, {}, p.protocol_type, p.protocols))
      return fail(ge::kInconsistentGroupProtocol);
    if (p.group_instance_id) {
      // A static member restarting: the member its instance id had is fenced and replaced.
      auto inst = g.instances.find(*p.group_instance_id);
      if (inst != g.instances.end()) {
        const std::string old = inst->second;
        remove_member(g, old, KafkaRemovalReason::kFenced, now_ms, events);
      }
    }
    out.member_id = new_member_id(p.client_id);
    if (p.api_version >= 4 && !p.group_instance_id) {
      // KIP-394: the client must come back with this id; it is reserved for the session.
      g.pending[out.member_id] = Pending{now_ms + p.session_timeout_ms};
      member_group_[out.member_id] = g.id;
      out.response = join_error(ge::kMemberIdRequired, out.member_id);
      return out;
    }
    add_member(g, p, out.member_id, now_ms, events);
    return out;
  }

  if (!supports_protocols(g, p.member_id, p.protocol_type, p.protocols))
    return fail(ge::kInconsistentGroupProtocol);
  if (auto pend = g.pending.find(p.member_id); pend != g.pending.end()) {
    g.pending.erase(pend);
    add_member(g, p, p.member_id, now_ms, events);
    return out;
  }
  if (std::int16_t e = validate_member(g, p.member_id, p.group_instance_id); e != ge::kNone)
    return fail(e);
  Member& m = g.members.at(p.member_id);
  m.last_seen_ms = now_ms;
  const bool unchanged =
      m.protocol_type == p.protocol_type && same_protocols(m.protocols, p.protocols);
  switch (g.state) {
    case KafkaGroupState::kPreparingRebalance:
      update_member(g, m, p, now_ms, events);
      break;
    case KafkaGroupState::kCompletingRebalance:
      // The JoinGroup answer was lost: give the same one again.
      if (unchanged)
        out.response = current_join_response(g, m);
      else
        update_member(g, m, p, now_ms, events);
      break;
    case KafkaGroupState::kStable:
      // The leader rejoining (e.g. its metadata changed) or changed protocols rebalance; a
      // follower with the same protocols gets the current generation back.
      if (m.id == g.leader || !unchanged)
        update_member(g, m, p, now_ms, events);
      else
        out.response = current_join_response(g, m);
      break;
    case KafkaGroupState::kEmpty:
    case KafkaGroupState::kDead:
      return fail(ge::kUnknownMemberId);
  }
  return out;
}

SyncOutcome KafkaGroupCoordinator::sync(const SyncGroupParams& p, std::int64_t now_ms) {
  SyncOutcome out;
  auto git = groups_.find(p.group_id);
  if (git == groups_.end()) {
    out.response = sync_error(ge::kUnknownMemberId);
    return out;
  }
  Group& g = git->second;
  if (std::int16_t e = validate_member(g, p.member_id, p.group_instance_id); e != ge::kNone) {
    out.response = sync_error(e);
    return out;
  }
  if (p.generation_id != g.generation) {
    out.response = sync_error(ge::kIllegalGeneration);
    return out;
  }
  Member& m = g.members.at(p.member_id);
  m.last_seen_ms = now_ms;
  switch (g.state) {
    case KafkaGroupState::kPreparingRebalance:
      out.response = sync_error(ge::kRebalanceInProgress);
      return out;
    case KafkaGroupState::kEmpty:
    case KafkaGroupState::kDead:
      out.response = sync_error(ge::kUnknownMemberId);
      return out;
    case KafkaGroupState::kStable:
      m.needs_sync = false;
      out.response = SyncGroupResponseData{ge::kNone, m.assignment};
      break;
    case KafkaGroupState::kCompletingRebalance: {
      m.needs_sync = false;
      if (m.id != g.leader) {
        m.sync_waiting = true;  // until the leader's assignments arrive
        break;
      }
      std::map<std::string, const std::string*> given;  // a repeated id: the last one counts
      for (const SyncGroupAssignment& a : p.assignments) given[a.member_id] = &a.assignment;
      for (auto& [id, member] : g.members) {
        auto it = given.find(id);
        member.assignment = it != given.end() ? *it->second : std::string();
      }
      g.state = KafkaGroupState::kStable;
      std::vector<Member*> order;
      for (auto& [id, member] : g.members) order.push_back(&member);
      std::sort(order.begin(), order.end(),
                [](const Member* a, const Member* b) { return a->seq < b->seq; });
      for (Member* w : order) {
        if (!w->sync_waiting) continue;
        w->sync_waiting = false;
        w->last_seen_ms = now_ms;
        out.events.emplace_back(
            SyncResponseReady{g.id, w->id, SyncGroupResponseData{ge::kNone, w->assignment}});
      }
      out.response = SyncGroupResponseData{ge::kNone, m.assignment};
      break;
    }
  }
  if (std::none_of(g.members.begin(), g.members.end(),
                   [](const auto& kv) { return kv.second.needs_sync; }))
    g.sync_deadline_ms.reset();
  return out;
}

std::int16_t KafkaGroupCoordinator::heartbeat(const std::string& group_id,
                                              const std::string& member_id,
                                              std::int32_t generation_id,
                                              const std::optional<std::string>& group_instance_id,
                                              std::int64_t now_ms) {
  auto git = groups_.find(group_id);
  if (git == groups_.end()) return ge::kUnknownMemberId;
  Group& g = git->second;
  if (std::int16_t e = validate_member(g, member_id, group_instance_id); e != ge::kNone) return e;
  if (generation_id != g.generation) return ge::kIllegalGeneration;
  g.members.at(member_id).last_seen_ms = now_ms;
  return g.state == KafkaGroupState::kPreparingRebalance ? ge::kRebalanceInProgress : ge::kNone;
}

LeaveOutcome KafkaGroupCoordinator::leave(const std::string& group_id, const std::string& member_id,
                                          std::int64_t now_ms) {
  LeaveOutcome out;
  auto git = groups_.find(group_id);
  if (git == groups_.end()) {
    out.error_code = ge::kUnknownMemberId;
    return out;
  }
  Group& g = git->second;
  if (auto pend = g.pending.find(member_id); pend != g.pending.end()) {
    g.pending.erase(pend);
    member_group_.erase(member_id);
    if (g.state == KafkaGroupState::kPreparingRebalance && !g.initial_delay && all_joined(g))
      complete_join(g, now_ms, out.events);
    return out;
  }
  if (g.members.count(member_id) == 0) {
    out.error_code = ge::kUnknownMemberId;
    return out;
  }
  remove_member(g, member_id, KafkaRemovalReason::kLeft, now_ms, out.events);
  return out;
}

std::int16_t KafkaGroupCoordinator::validate_commit(
    const std::string& group_id, const std::string& member_id, std::int32_t generation_id,
    const std::optional<std::string>& group_instance_id, std::int64_t now_ms) {
  if (group_id.empty()) return ge::kInvalidGroupId;
  auto git = groups_.find(group_id);
  if (git == groups_.end()) {
    // Kafka: a group only used to store offsets is created by its first simple commit; a
    // commit with a generation to a group that does not exist is from a passed generation.
    if (generation_id >= 0) return ge::kIllegalGeneration;
    Group& g = groups_.try_emplace(group_id).first->second;
    g.id = group_id;
    g.keep = true;
    return ge::kNone;
  }
  Group& g = git->second;
  if (generation_id >= 0 || !member_id.empty() || group_instance_id) {
    if (std::int16_t e = validate_member(g, member_id, group_instance_id); e != ge::kNone) return e;
    if (generation_id != g.generation) return ge::kIllegalGeneration;
  } else if (g.state != KafkaGroupState::kEmpty) {
    return ge::kUnknownMemberId;  // only members may commit to a group that has members
  } else {
    g.keep = true;
  }
  if (g.state == KafkaGroupState::kCompletingRebalance) return ge::kRebalanceInProgress;
  if (auto it = g.members.find(member_id); it != g.members.end()) it->second.last_seen_ms = now_ms;
  return ge::kNone;
}

void KafkaGroupCoordinator::cancel_pending(const std::string& member_id, std::int64_t now_ms) {
  auto mg = member_group_.find(member_id);
  if (mg == member_group_.end()) return;
  auto git = groups_.find(mg->second);
  if (git == groups_.end()) return;
  auto it = git->second.members.find(member_id);
  if (it == git->second.members.end()) return;  // a reserved id has nothing waiting
  it->second.join_waiting = false;
  it->second.sync_waiting = false;
  it->second.last_seen_ms = now_ms;
}

std::vector<KafkaGroupEvent> KafkaGroupCoordinator::tick(std::int64_t now_ms) {
  Events events;
  std::vector<std::string> ids;
  ids.reserve(groups_.size());
  for (const auto& [id, g] : groups_) ids.push_back(id);
  for (const std::string& id : ids) {
    auto it = groups_.find(id);
    if (it == groups_.end()) continue;
    advance(it->second, now_ms, events);
    maybe_forget(id);
  }
  return events;
}

std::optional<std::int64_t> KafkaGroupCoordinator::next_deadline() const {
  std::optional<std::int64_t> next;
  auto consider = [&](std::int64_t t) {
    if (!next || t < *next) next = t;
  };
  for (const auto& [gid, g] : groups_) {
    for (const auto& [id, pend] : g.pending) consider(pend.expires_ms);
    for (const auto& [id, m] : g.members)
      if (!m.join_waiting && !m.sync_waiting) consider(m.last_seen_ms + m.session_timeout_ms);
    if (g.state == KafkaGroupState::kPreparingRebalance)
      consider(g.initial_delay ? g.delay_until_ms : g.rebalance_deadline_ms);
    if ((g.state == KafkaGroupState::kCompletingRebalance || g.state == KafkaGroupState::kStable) &&
        g.sync_deadline_ms)
      consider(*g.sync_deadline_ms);
  }
  return next;
}

// ---- administration ---------------------------------------------------------------------------

KafkaGroupDescription KafkaGroupCoordinator::describe(const std::string& group_id) const {
  KafkaGroupDescription d;
  d.group_id = group_id;
  auto git = groups_.find(group_id);
  if (git == groups_.end()) return d;  // Dead
  const Group& g = git->second;
  d.state = g.state;
  d.generation_id = g.generation;
  d.protocol_type = g.protocol_type;
  d.protocol = g.protocol;
  d.leader = g.leader;
  std::vector<const Member*> order;
  for (const auto& [id, m] : g.members) order.push_back(&m);
  std::sort(order.begin(), order.end(),
            [](const Member* a, const Member* b) { return a->seq < b->seq; });
  for (const Member* m : order) {
    KafkaMemberDescription md;
    md.member_id = m->id;
    md.group_instance_id = m->instance_id;
    md.client_id = m->client_id;
    md.client_host = m->client_host;
    md.session_timeout_ms = m->session_timeout_ms;
    md.rebalance_timeout_ms = m->rebalance_timeout_ms;
    const std::string* meta = g.protocol.empty() ? nullptr : metadata_for(*m, g.protocol);
    if (meta == nullptr && !m->protocols.empty()) meta = &m->protocols.front().metadata;
    if (meta != nullptr) md.metadata = *meta;
    md.assignment = m->assignment;
    d.members.push_back(std::move(md));
  }
  return d;
}

std::vector<KafkaGroupListing> KafkaGroupCoordinator::list_groups() const {
  std::vector<KafkaGroupListing> out;
  out.reserve(groups_.size());
  for (const auto& [id, g] : groups_)
    out.push_back(KafkaGroupListing{id, g.protocol_type, g.state});
  return out;
}

std::int16_t KafkaGroupCoordinator::delete_group(const std::string& group_id) {
  if (group_id.empty()) return ge::kInvalidGroupId;
  auto git = groups_.find(group_id);
  if (git == groups_.end()) return ge::kGroupIdNotFound;
  if (!git->second.members.empty()) return ge::kNonEmptyGroup;
  for (const auto& [id, pend] : git->second.pending) member_group_.erase(id);
  groups_.erase(git);
  return ge::kNone;
}

void KafkaGroupCoordinator::restore_generation(const std::string& group_id,
                                               std::int32_t generation_id,
                                               const std::string& protocol_type) {
  auto [it, inserted] = groups_.try_emplace(group_id);
  Group& g = it->second;
  if (inserted) g.id = group_id;
  g.keep = true;
  g.generation = std::max(g.generation, generation_id);
  if (g.members.empty() && g.protocol_type.empty()) g.protocol_type = protocol_type;
}

}  // namespace sluice::kafka
