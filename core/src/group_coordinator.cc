#include "group_coordinator.h"

#include <algorithm>
#include <cstdio>
#include <iterator>
#include <limits>
#include <utility>

namespace sluice {

namespace {

constexpr std::size_t kMaxGroupIdBytes = 255;  // as the offsets table keeps them
constexpr std::size_t kMaxClientIdInMemberId = 64;

std::string tp_name(const TopicPartition& tp) {
  return tp.topic + "-" + std::to_string(tp.partition);
}

std::string list_names(const std::vector<std::string>& names) {
  std::string s;
  for (const std::string& n : names) s += (s.empty() ? "" : ", ") + n;
  return "[" + s + "]";
}

std::string implemented_names() {
  std::vector<std::string> names;
  for (const AssignorInfo& a : assignors()) names.emplace_back(a.name);
  return list_names(names);
}

std::string millis(std::int64_t ns) {
  return std::to_string(ns / 1'000'000) + " ms";
}

Status fenced_generation(const std::string& group, const std::string& member,
                         std::int32_t generation, std::int32_t current) {
  if (generation < current)
    return Status(ErrorCode::kFenced, "member " + member + " of group " + group +
                                          " is fenced: generation " + std::to_string(generation) +
                                          " has passed (current " + std::to_string(current) + ")");
  return Status(ErrorCode::kFenced, "member " + member + " of group " + group +
                                        " is fenced: generation " + std::to_string(generation) +
                                        " is not the group's (current " + std::to_string(current) +
                                        ")");
}

Status unknown_member(const std::string& group, const std::string& member, ErrorCode code) {
  return Status(code, "member " + member + " is not in group " + group +
                          " (it left, or was removed after a timeout, or never joined): join "
                          "again with an empty member id");
}

}  // namespace

const char* removal_reason_name(RemovalReason r) {
  switch (r) {
    case RemovalReason::kLeft:
      return "left";
    case RemovalReason::kDied:
      return "died";
    case RemovalReason::kSessionTimeout:
      return "session-timeout";
    case RemovalReason::kRebalanceTimeout:
      return "rebalance-timeout";
  }
  return "unknown";
}

const char* group_state_name(GroupState s) {
  switch (s) {
    case GroupState::kEmpty:
      return "Empty";
    case GroupState::kPreparingRebalance:
      return "PreparingRebalance";
    case GroupState::kStable:
      return "Stable";
    case GroupState::kDead:
      return "Dead";
  }
  return "Unknown";
}

GroupCoordinator::GroupCoordinator(CoordinatorConfig config, PartitionCountFn partition_count)
    : config_(std::move(config)), partition_count_(std::move(partition_count)) {}

GroupCoordinator::Group& GroupCoordinator::group_for(const std::string& name) {
  auto [it, inserted] = groups_.try_emplace(name);
  if (inserted) it->second.name = name;
  return it->second;
}

std::string GroupCoordinator::new_member_id(const std::string& client_id) {
  std::string prefix = client_id.empty() ? "member" : client_id.substr(0, kMaxClientIdInMemberId);
  // Cut on a UTF-8 character boundary: drop continuation bytes (10xxxxxx) left dangling and
  // the lead byte whose character the cut split.
  if (prefix.size() < client_id.size()) {
    std::size_t end = prefix.size();
    std::size_t start = end;
    while (start > 0 && (static_cast<unsigned char>(prefix[start - 1]) & 0xC0) == 0x80) --start;
    if (start > 0 && (static_cast<unsigned char>(prefix[start - 1]) & 0x80) != 0) {
      unsigned char lead = static_cast<unsigned char>(prefix[start - 1]);
      std::size_t len = (lead & 0xE0) == 0xC0   ? 2
                        : (lead & 0xF0) == 0xE0 ? 3
                        : (lead & 0xF8) == 0xF0 ? 4
                                                : 1;
      if (end - (start - 1) < len) prefix.resize(start - 1);
    }
  }
  if (!config_.instance.empty()) prefix += "-" + config_.instance;
  char n[24];
  std::snprintf(n, sizeof n, "%06llu", static_cast<unsigned long long>(next_member_++));
  return prefix + "-" + n;
}

std::optional<std::set<std::string>> GroupCoordinator::common_assignors(
    const Group& g, const std::string& except) const {
  std::optional<std::set<std::string>> common;
  for (const auto& [id, m] : g.members) {
    if (id == except) continue;
    std::set<std::string> mine(m.assignors.begin(), m.assignors.end());
    if (!common) {
      common = std::move(mine);
      continue;
    }
    std::set<std::string> both;
    std::set_intersection(common->begin(), common->end(), mine.begin(), mine.end(),
                          std::inserter(both, both.end()));
    common = std::move(both);
  }
  return common;
}

// Kafka's choice: among the assignors every member supports, each member votes for the one
// it prefers most; the most votes win. Ties go to the tied assignor that the member with the
// lowest id prefers.
std::string GroupCoordinator::select_protocol(const Group& g) const {
  auto common = common_assignors(g, {});
  if (!common || common->empty()) {  // cannot happen: join refuses inconsistent members
    return g.members.empty() || g.members.begin()->second.assignors.empty()
               ? std::string(assignors().front().name)
               : g.members.begin()->second.assignors.front();
  }
  std::map<std::string, int> votes;
  for (const auto& [id, m] : g.members)
    for (const std::string& a : m.assignors)
      if (common->count(a) != 0) {
        ++votes[a];
        break;
      }
  int best = 0;
  for (const auto& [a, n] : votes) best = std::max(best, n);
  for (const std::string& a : g.members.begin()->second.assignors)
    if (votes.count(a) != 0 && votes[a] == best) return a;
  return *common->begin();
}

Result<JoinResult> GroupCoordinator::join(const JoinRequest& req, std::int64_t now_ns) {
  if (req.group.empty()) return Status(ErrorCode::kInvalidArgument, "the group id is empty");
  if (req.group.size() > kMaxGroupIdBytes)
    return Status(ErrorCode::kInvalidArgument, "group id is " + std::to_string(req.group.size()) +
                                                   " bytes; at most " +
                                                   std::to_string(kMaxGroupIdBytes));
  std::vector<std::string> topics = req.topics;
  std::sort(topics.begin(), topics.end());
  topics.erase(std::unique(topics.begin(), topics.end()), topics.end());
  if (!topics.empty() && topics.front().empty())
    return Status(ErrorCode::kInvalidArgument, "a subscribed topic name is empty");
  std::vector<std::string> wanted;  // implemented, in the member's order, once each
  for (const std::string& a : req.assignors)
    if (find_assignor(a) != nullptr && std::find(wanted.begin(), wanted.end(), a) == wanted.end())
      wanted.push_back(a);
  if (wanted.empty())
    return Status(ErrorCode::kInvalidArgument,
                  "group " + req.group + ": the member asks for assignors " +
                      list_names(req.assignors) + "; this broker implements " +
                      implemented_names());

  auto existing = groups_.find(req.group);
  if (!req.member_id.empty() &&
      (existing == groups_.end() || existing->second.members.count(req.member_id) == 0))
    return unknown_member(req.group, req.member_id, ErrorCode::kNotFound);
  Group& g = group_for(req.group);

  if (auto common = common_assignors(g, req.member_id)) {
    bool shared = std::any_of(wanted.begin(), wanted.end(),
                              [&](const std::string& a) { return common->count(a) != 0; });
    if (!shared)
      return Status(ErrorCode::kInvalidArgument,
                    "group " + req.group + ": the member's assignors " + list_names(wanted) +
                        " share none with those all other members support " +
                        list_names({common->begin(), common->end()}) +
                        " (Kafka's INCONSISTENT_GROUP_PROTOCOL)");
  }

  JoinResult result;
  auto& events = result.events;
  const std::int64_t session =
      req.session_timeout_ns > 0 ? req.session_timeout_ns : config_.session_timeout_ns;
  const std::int64_t rebalance =
      req.rebalance_timeout_ns > 0 ? req.rebalance_timeout_ns : config_.rebalance_timeout_ns;

  if (req.member_id.empty()) {
    Member m;
    m.id = new_member_id(req.client_id);
    m.client_id = req.client_id;
    m.pid = req.pid;
    m.topics = std::move(topics);
    m.assignors = std::move(wanted);
    m.session_timeout_ns = session;
    m.rebalance_timeout_ns = rebalance;
    m.last_seen_ns = now_ns;
    m.rejoined = true;  // it joined for the coming generation
    result.member_id = m.id;
    member_group_[m.id] = g.name;
    g.members.emplace(m.id, std::move(m));
    start_rebalance(g, "member " + result.member_id + " joined", now_ns, events);
    maybe_complete(g, now_ns, events);
    return result;
  }

  Member& m = g.members.at(req.member_id);
  result.member_id = m.id;
  const bool changed = topics != m.topics || wanted != m.assignors;
  m.client_id = req.client_id;
  m.pid = req.pid;
  m.topics = std::move(topics);
  m.assignors = std::move(wanted);
  m.session_timeout_ns = session;
  m.rebalance_timeout_ns = rebalance;
  m.last_seen_ns = now_ns;
  if (g.state == GroupState::kStable && !changed) {
    // Nothing new: the member lost its assignment (a reconnect, a lost message). Again.
    events.push_back(AssignmentReady{g.name, m.id, g.generation, g.protocol, m.partitions});
    return result;
  }
  m.rejoined = true;
  start_rebalance(g, "member " + m.id + " changed its subscription or assignors", now_ns, events);
  maybe_complete(g, now_ns, events);
  return result;
}

void GroupCoordinator::start_rebalance(Group& g, const std::string& reason, std::int64_t now_ns,
                                       std::vector<CoordinatorEvent>& events) {
  if (g.state == GroupState::kPreparingRebalance) return;  // one is pending: it covers this
  const bool from_empty = g.state == GroupState::kEmpty;
  g.state = GroupState::kPreparingRebalance;
  std::int64_t timeout = 0;
  for (const auto& [id, m] : g.members) timeout = std::max(timeout, m.rebalance_timeout_ns);
  if (timeout == 0) timeout = config_.rebalance_timeout_ns;
  g.rebalance_deadline_ns = now_ns + timeout;
  g.earliest_completion_ns = from_empty ? now_ns + config_.initial_rebalance_delay_ns : now_ns;
  for (const auto& [id, m] : g.members)
    if (!m.rejoined) events.push_back(RejoinRequested{g.name, id, g.generation + 1, reason});
}

void GroupCoordinator::maybe_complete(Group& g, std::int64_t now_ns,
                                      std::vector<CoordinatorEvent>& events) {
  if (g.state != GroupState::kPreparingRebalance) return;
  const bool all_in = std::all_of(g.members.begin(), g.members.end(),
                                  [](const auto& e) { return e.second.rejoined; });
  if ((all_in && now_ns >= g.earliest_completion_ns) || now_ns >= g.rebalance_deadline_ns)
    complete(g, now_ns, events);
}

void GroupCoordinator::complete(Group& g, std::int64_t now_ns,
                                std::vector<CoordinatorEvent>& events) {
  // Members that did not rejoin in time are out: expelled without a second rebalance.
  for (auto it = g.members.begin(); it != g.members.end();) {
    if (it->second.rejoined) {
      ++it;
      continue;
    }
    events.push_back(MemberRemoved{g.name, it->first, RemovalReason::kRebalanceTimeout,
                                   "member " + it->first + " of group " + g.name +
                                       " did not rejoin within the rebalance timeout"});
    member_group_.erase(it->first);
    it = g.members.erase(it);
  }
  g.generation += 1;
  g.owners.clear();
  if (g.members.empty()) {
    g.state = GroupState::kEmpty;
    g.protocol.clear();
    events.push_back(GenerationStarted{g.name, g.generation, ""});
    return;
  }
  g.protocol = select_protocol(g);
  std::vector<MemberSubscription> subscriptions;
  PartitionCounts counts;
  for (const auto& [id, m] : g.members) {
    subscriptions.push_back({id, m.topics, m.partitions});
    for (const std::string& t : m.topics) {
      if (counts.count(t) != 0) continue;
      std::optional<std::int32_t> n = partition_count_ ? partition_count_(t) : std::nullopt;
      if (n && *n > 0) counts[t] = *n;
    }
  }
  MemberAssignments assignment = find_assignor(g.protocol)->assign(subscriptions, counts);
  g.state = GroupState::kStable;
  events.push_back(GenerationStarted{g.name, g.generation, g.protocol});
  for (auto& [id, m] : g.members) {
    m.partitions = std::move(assignment[id]);
    m.rejoined = false;
    m.last_seen_ns = now_ns;  // the session restarts with the assignment
    for (const TopicPartition& tp : m.partitions) g.owners[tp] = id;
    events.push_back(AssignmentReady{g.name, id, g.generation, g.protocol, m.partitions});
  }
}

void GroupCoordinator::remove_member(Group& g, const std::string& member_id, RemovalReason reason,
                                     const std::string& message, std::int64_t now_ns,
                                     std::vector<CoordinatorEvent>& events) {
  auto it = g.members.find(member_id);
  if (it == g.members.end()) return;
  for (const TopicPartition& tp : it->second.partitions) {
    auto o = g.owners.find(tp);
    if (o != g.owners.end() && o->second == member_id) g.owners.erase(o);
  }
  g.members.erase(it);
  member_group_.erase(member_id);
  events.push_back(MemberRemoved{g.name, member_id, reason, message});
  start_rebalance(g, message, now_ns, events);
  maybe_complete(g, now_ns, events);
}

Result<std::vector<CoordinatorEvent>> GroupCoordinator::leave(const std::string& group,
                                                              const std::string& member_id,
                                                              std::int64_t now_ns) {
  auto it = groups_.find(group);
  if (it == groups_.end() || it->second.members.count(member_id) == 0)
    return unknown_member(group, member_id, ErrorCode::kNotFound);
  std::vector<CoordinatorEvent> events;
  remove_member(it->second, member_id, RemovalReason::kLeft,
                "member " + member_id + " left group " + group, now_ns, events);
  return events;
}

std::vector<CoordinatorEvent> GroupCoordinator::member_died(const std::string& member_id,
                                                            std::int64_t now_ns) {
  std::vector<CoordinatorEvent> events;
  auto it = member_group_.find(member_id);
  if (it == member_group_.end()) return events;
  const std::string group = it->second;
  remove_member(groups_.at(group), member_id, RemovalReason::kDied,
                "member " + member_id + " of group " + group + " died (connection closed)", now_ns,
                events);
  return events;
}

Status GroupCoordinator::heartbeat(const std::string& group, const std::string& member_id,
                                   std::int32_t generation, std::int64_t now_ns) {
  auto it = groups_.find(group);
  if (it == groups_.end()) return unknown_member(group, member_id, ErrorCode::kNotFound);
  Group& g = it->second;
  auto m = g.members.find(member_id);
  if (m == g.members.end()) return unknown_member(group, member_id, ErrorCode::kNotFound);
  m->second.last_seen_ns = now_ns;
  if (g.state == GroupState::kPreparingRebalance) {
    const std::string next = std::to_string(g.generation + 1);
    if (m->second.rejoined)
      return Status(ErrorCode::kRebalancing, "group " + group + " is rebalancing to generation " +
                                                 next +
                                                 ": waiting for the other members to rejoin");
    return Status(ErrorCode::kRebalancing, "group " + group + " is rebalancing to generation " +
                                               next + ": commit and rejoin");
  }
  if (generation != g.generation)
    return fenced_generation(group, member_id, generation, g.generation);
  return Status::ok();
}

Status GroupCoordinator::can_commit(const std::string& group, const std::string& member_id,
                                    std::int32_t generation,
                                    const TopicPartition& partition) const {
  auto it = groups_.find(group);
  if (generation < 0) {
    if (it == groups_.end() || it->second.members.empty()) return Status::ok();
    return Status(ErrorCode::kFenced,
                  "group " + group + " has " + std::to_string(it->second.members.size()) +
                      " member(s): a consumer outside the group (generation -1, assign()) may "
                      "commit only while the group has none");
  }
  if (member_id.empty())
    return Status(ErrorCode::kFenced,
                  "group " + group + ": a commit for generation " + std::to_string(generation) +
                      " needs a member id (a consumer outside the group commits with "
                      "generation -1)");
  if (it == groups_.end()) return unknown_member(group, member_id, ErrorCode::kFenced);
  const Group& g = it->second;
  if (g.members.count(member_id) == 0) return unknown_member(group, member_id, ErrorCode::kFenced);
  if (generation != g.generation)
    return fenced_generation(group, member_id, generation, g.generation);
  auto owner = g.owners.find(partition);
  if (owner == g.owners.end() || owner->second != member_id)
    return Status(ErrorCode::kFenced,
                  "member " + member_id + " of group " + group + " does not own " +
                      tp_name(partition) + " in generation " + std::to_string(g.generation) +
                      (owner == g.owners.end() ? std::string(" (nobody does)")
                                               : " (" + owner->second + " does)"));
  return Status::ok();
}

void GroupCoordinator::touch(const std::string& member_id, std::int64_t now_ns) {
  auto it = member_group_.find(member_id);
  if (it == member_group_.end()) return;
  groups_.at(it->second).members.at(member_id).last_seen_ns = now_ns;
}

std::vector<CoordinatorEvent> GroupCoordinator::tick(std::int64_t now_ns) {
  std::vector<CoordinatorEvent> events;
  for (auto& [name, g] : groups_) {
    std::vector<std::pair<std::string, std::int64_t>> expired;
    for (const auto& [id, m] : g.members) {
      // A member that rejoined waits for the others; the rebalance timeout bounds that wait.
      if (g.state == GroupState::kPreparingRebalance && m.rejoined) continue;
      if (now_ns - m.last_seen_ns > m.session_timeout_ns)
        expired.emplace_back(id, m.session_timeout_ns);
    }
    for (const auto& [id, timeout] : expired)
      remove_member(g, id, RemovalReason::kSessionTimeout,
                    "member " + id + " of group " + name +
                        " sent nothing for its session timeout (" + millis(timeout) + ")",
                    now_ns, events);
    maybe_complete(g, now_ns, events);
  }
  return events;
}

std::optional<std::int64_t> GroupCoordinator::next_deadline() const {
  std::optional<std::int64_t> next;
  auto consider = [&](std::int64_t t) {
    if (!next || t < *next) next = t;
  };
  for (const auto& [name, g] : groups_) {
    bool all_in = true;
    for (const auto& [id, m] : g.members) {
      all_in = all_in && m.rejoined;
      if (!(g.state == GroupState::kPreparingRebalance && m.rejoined))
        consider(m.last_seen_ns + m.session_timeout_ns + 1);
    }
    if (g.state == GroupState::kPreparingRebalance) {
      consider(g.rebalance_deadline_ns);
      if (all_in) consider(g.earliest_completion_ns);
    }
  }
  return next;
}

std::vector<CoordinatorEvent> GroupCoordinator::partitions_changed(const std::string& topic,
                                                                   std::int64_t now_ns) {
  std::vector<CoordinatorEvent> events;
  for (auto& [name, g] : groups_) {
    if (g.state != GroupState::kStable) continue;  // a pending rebalance reads counts anew
    bool subscribed = std::any_of(g.members.begin(), g.members.end(), [&](const auto& e) {
      return std::binary_search(e.second.topics.begin(), e.second.topics.end(), topic);
    });
    if (!subscribed) continue;
    start_rebalance(g, "the partitions of topic " + topic + " changed", now_ns, events);
    maybe_complete(g, now_ns, events);
  }
  return events;
}

GroupDescription GroupCoordinator::describe(const std::string& group) const {
  GroupDescription d;
  d.group = group;
  auto it = groups_.find(group);
  if (it == groups_.end()) return d;  // kDead, as Kafka describes an unknown group
  const Group& g = it->second;
  d.state = g.state;
  d.generation = g.generation;
  d.protocol = g.protocol;
  for (const auto& [id, m] : g.members)
    d.members.push_back(
        MemberDescription{id, m.client_id, m.pid, m.topics, m.assignors, m.partitions, m.rejoined});
  return d;
}

std::vector<GroupListing> GroupCoordinator::list_groups() const {
  std::vector<GroupListing> out;
  for (const auto& [name, g] : groups_)
    out.push_back(GroupListing{name, g.state, g.generation, g.protocol, g.members.size()});
  return out;
}

Status GroupCoordinator::delete_group(const std::string& group) {
  auto it = groups_.find(group);
  if (it == groups_.end())
    return Status(ErrorCode::kNotFound, "group " + group + " does not exist");
  if (!it->second.members.empty())
    return Status(ErrorCode::kBusy, "group " + group + " has " +
                                        std::to_string(it->second.members.size()) + " member(s) (" +
                                        group_state_name(it->second.state) +
                                        "): only an empty group can be deleted");
  groups_.erase(it);
  return Status::ok();
}

Status GroupCoordinator::restore_group(const std::string& group, std::int32_t generation,
                                       const std::string& protocol) {
  if (group.empty() || generation < 0)
    return Status(ErrorCode::kInvalidArgument, "restore_group: empty group or negative generation");
  Group& g = group_for(group);
  if (!g.members.empty())
    return Status(ErrorCode::kBusy, "group " + group + " already has members");
  if (generation >= g.generation) {
    g.generation = generation;
    g.protocol = protocol;
  }
  return Status::ok();
}

}  // namespace sluice
