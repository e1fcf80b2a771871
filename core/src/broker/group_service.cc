#include "group_service.h"

#include <spdlog/spdlog.h>
#include <algorithm>
#include <cerrno>
#include <limits>
#include <vector>

#include "broker_core.h"
#include "kafka/consumer_protocol.h"
#include "kafka_group_service.h"
#include "shm/clock.h"
#include "shm/log_reader.h"
#include "shm/orphaned_files.h"

namespace sluice::broker {

using control::json;

namespace {

json tps_json(const std::vector<TopicPartition>& tps) {
  json a = json::array();
  for (const auto& tp : tps) a.push_back({{"topic", tp.topic}, {"partition", tp.partition}});
  return a;
}

}  // namespace

GroupService::GroupService(BrokerCore& core) : core_(core) {}

std::int64_t GroupService::now_ns() const {
  return shm::monotonic_ns();
}

Result<std::vector<GroupRecord>> GroupService::start() {
  CoordinatorConfig cc;
  cc.session_timeout_ns = core_.config_.session_timeout_ms * 1'000'000;
  cc.rebalance_timeout_ns = core_.config_.rebalance_timeout_ms * 1'000'000;
  cc.initial_rebalance_delay_ns = core_.config_.initial_rebalance_delay_ms * 1'000'000;
  cc.instance = std::to_string(shm::wall_clock_ns() / 1'000'000);
  coordinator_ = std::make_unique<GroupCoordinator>(
      cc, [this](const std::string& topic) -> std::optional<std::int32_t> {
        const TopicState* t = core_.topics_.find(topic);
        if (t == nullptr) return std::nullopt;
        return static_cast<std::int32_t>(t->partitions.size());
      });
  shm::TableOptions options;
  options.mode = core_.ownership_.file_mode;
  options.group = core_.ownership_.group;
  auto table = OffsetsTable::open_or_create(core_.dir_.offsets_table(), options);
  if (!table) return table.status();
  table_ = std::move(table).value();
  // Generations continue upward across broker restarts.
  auto groups = table_.list_groups();
  if (!groups) return groups.status();
  std::vector<GroupRecord> restored;
  for (const auto& g : *groups) {
    auto rec = table_.group(g);
    if (rec && *rec && (*rec)->generation > 0) {
      (void)coordinator_->restore_group(g, (*rec)->generation, (*rec)->protocol);
      restored_generation_[g] = (*rec)->generation;
      restored.push_back(std::move(**rec));
    }
  }
  return restored;
}

void GroupService::shutdown() {}

void GroupService::reply(const std::shared_ptr<Session>& s, const json& req, json body) {
  if (control::no_reply(req)) return;
  body["id"] = control::request_id(req);
  body["ok"] = true;
  s->send(body);
}

Status GroupService::check_owner(const std::shared_ptr<Session>& s, const std::string& member,
                                 const char* verb) const {
  if (member.empty()) return Status::ok();
  auto link = members_.find(member);
  if (link == members_.end()) return Status::ok();
  auto owner = link->second.session.lock();
  if (!owner || owner == s) return Status::ok();
  return Status(ErrorCode::kFenced, "member " + member +
                                        " belongs to another connection: only the connection "
                                        "that joined it may " +
                                        verb + " for it");
}

void GroupService::fail(const std::shared_ptr<Session>& s, const json& req, const Status& st) {
  if (control::no_reply(req)) return;
  s->send({{"id", control::request_id(req)}, {"ok", false}, {"error", control::error_body(st)}});
}

void GroupService::handle(const std::shared_ptr<Session>& s, const std::string& op,
                          const json& req) {
  if (op == "group.join") return op_join(s, req);
  if (op == "group.heartbeat") return op_heartbeat(s, req);
  if (op == "group.leave") return op_leave(s, req);
  if (op == "group.commit") return op_commit(s, req);
  if (op == "group.fetch") return op_fetch(s, req);
  if (op == "group.list") return op_list(s, req);
  if (op == "group.describe") return op_describe(s, req);
  if (op == "group.reset") return op_reset(s, req);
  if (op == "group.delete") return op_delete(s, req);
  fail(s, req, Status(ErrorCode::kProtocol, "unknown control op '" + op + "'"));
}

void GroupService::dispatch(std::vector<CoordinatorEvent> events) {
  for (auto& ev : events) {
    if (auto* a = std::get_if<AssignmentReady>(&ev)) {
      spdlog::debug("group {}: generation {} assigns {} partition(s) to {}", a->group,
                    a->generation, a->partitions.size(), a->member_id);
      auto it = members_.find(a->member_id);
      if (it == members_.end()) continue;
      auto session = it->second.session.lock();
      if (!session) continue;
      if (it->second.pending_join) {
        session->send({{"id", *it->second.pending_join},
                       {"ok", true},
                       {"member_id", a->member_id},
                       {"generation", a->generation},
                       {"protocol", a->protocol},
                       {"assignment", tps_json(a->partitions)}});
        it->second.pending_join.reset();
      } else {
        session->send({{"event", "rebalance"}, {"group", a->group}, {"generation", a->generation}});
      }
    } else if (auto* r = std::get_if<RejoinRequested>(&ev)) {
      spdlog::debug("group {}: {} must rejoin for generation {} ({})", r->group, r->member_id,
                    r->generation, r->reason);
      auto it = members_.find(r->member_id);
      if (it == members_.end()) continue;
      if (auto session = it->second.session.lock())
        session->send({{"event", "rebalance"},
                       {"group", r->group},
                       {"generation", r->generation},
                       {"reason", r->reason}});
    } else if (auto* m = std::get_if<MemberRemoved>(&ev)) {
      spdlog::info("group {}: member {} removed ({}): {}", m->group, m->member_id,
                   removal_reason_name(m->reason), m->message);
      auto it = members_.find(m->member_id);
      if (it == members_.end()) continue;
      if (auto session = it->second.session.lock()) {
        if (it->second.pending_join) {
          session->send({{"id", *it->second.pending_join},
                         {"ok", false},
                         {"error", control::error_body(Status(ErrorCode::kFenced, m->message))}});
        } else {
          session->send({{"event", "rebalance"}, {"group", m->group}, {"removed", true}});
        }
        session_members_[session->id()].erase(m->member_id);
      }
      members_.erase(it);
    } else if (auto* g = std::get_if<GenerationStarted>(&ev)) {
      restored_generation_.erase(g->group);
      if (Status s =
              table_.set_group(g->group, g->generation, g->protocol, kLocalGroupProtocolType);
          !s)
        spdlog::warn("group {}: could not store generation {}: {}", g->group, g->generation,
                     s.message());
    }
  }
}

void GroupService::op_join(const std::shared_ptr<Session>& s, const json& req) {
  JoinRequest jr;
  jr.group = req.at("group").get<std::string>();
  jr.member_id = req.value("member_id", std::string());
  jr.client_id = req.value("client_id", s->client_id);
  jr.pid = req.value("pid", std::int64_t{s->pid});
  jr.topics = req.value("topics", std::vector<std::string>{});
  jr.assignors = req.value("assignors", std::vector<std::string>{"range"});
  jr.session_timeout_ns = req.value("session_timeout_ms", std::int64_t{0}) * 1'000'000;
  jr.rebalance_timeout_ns = req.value("rebalance_timeout_ms", std::int64_t{0}) * 1'000'000;
  if (jr.group.empty())
    return fail(s, req, Status(ErrorCode::kInvalidArgument, "group id is empty"));
  if (core_.kafka_groups_ && core_.kafka_groups_->has_members(jr.group))
    return fail(s, req,
                Status(ErrorCode::kBusy, "group " + jr.group +
                                             " has Kafka members (through the gateway); use "
                                             "another group id"));
  for (const auto& t : jr.topics)
    if (core_.topics_.find(t) == nullptr)
      return fail(
          s, req,
          Status(ErrorCode::kUnknownTopic, "unknown topic " + t + " in " + core_.dir_.root));
  // Rejoining under another connection's member id would take its assignment over.
  if (Status st = check_owner(s, jr.member_id, "join"); !st) return fail(s, req, st);
  auto result = coordinator_->join(jr, now_ns());
  if (!result && result.status().code() == ErrorCode::kNotFound && !jr.member_id.empty()) {
    // A member id from before a broker restart, or one that was expelled: join afresh.
    jr.member_id.clear();
    result = coordinator_->join(jr, now_ns());
  }
  if (!result) return fail(s, req, result.status());
  MemberLink& link = members_[result->member_id];
  link.session = s;
  link.group = jr.group;
  link.pending_join = control::request_id(req);
  session_members_[s->id()].insert(result->member_id);
  dispatch(std::move(result->events));
}

void GroupService::op_heartbeat(const std::shared_ptr<Session>& s, const json& req) {
  std::string member = req.value("member_id", std::string());
  // A heartbeat from elsewhere would keep a member alive whose owner stopped.
  if (Status st = check_owner(s, member, "heartbeat"); !st) return fail(s, req, st);
  Status st = coordinator_->heartbeat(req.at("group").get<std::string>(), member,
                                      req.value("generation", -1), now_ns());
  if (!st) return fail(s, req, st);
  reply(s, req, json::object());
}

void GroupService::op_leave(const std::shared_ptr<Session>& s, const json& req) {
  std::string group = req.at("group").get<std::string>();
  std::string member = req.value("member_id", std::string());
  // Another client must not end someone else's membership (and force a rebalance) by naming
  // its id.
  if (Status st = check_owner(s, member, "leave"); !st) return fail(s, req, st);
  auto events = coordinator_->leave(group, member, now_ns());
  if (!events) return fail(s, req, events.status());
  members_.erase(member);
  session_members_[s->id()].erase(member);
  dispatch(std::move(events).value());
  reply(s, req, json::object());
}

namespace {

// One entry of a group.commit, checked before anything is stored.
struct CommitEntry {
  TopicPartition tp;
  std::int64_t offset = 0;
  std::string metadata;
};

// The entry's fields, or a kProtocol status saying what is wrong with it.
Result<CommitEntry> parse_commit_entry(const json& o) {
  if (!o.is_object()) return Status(ErrorCode::kProtocol, "not an object");
  auto topic = o.find("topic");
  if (topic == o.end() || !topic->is_string())
    return Status(ErrorCode::kProtocol, "\"topic\" must be a string");
  auto partition = o.find("partition");
  if (partition == o.end() || !partition->is_number_integer() ||
      partition->get<std::int64_t>() < 0 ||
      partition->get<std::int64_t>() > std::numeric_limits<std::int32_t>::max())
    return Status(ErrorCode::kProtocol, "\"partition\" must be an integer from 0 to 2^31-1");
  auto offset = o.find("offset");
  if (offset == o.end() || !offset->is_number_integer() ||
      (offset->is_number_unsigned() &&
       offset->get<std::uint64_t>() >
           static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max())))
    return Status(ErrorCode::kProtocol, "\"offset\" must be a 64-bit integer");
  auto metadata = o.find("metadata");
  if (metadata != o.end() && !metadata->is_string())
    return Status(ErrorCode::kProtocol, "\"metadata\" must be a string");
  CommitEntry e;
  e.tp = {topic->get<std::string>(), partition->get<std::int32_t>()};
  e.offset = offset->get<std::int64_t>();
  if (metadata != o.end()) e.metadata = metadata->get<std::string>();
  return e;
}

}  // namespace

void GroupService::op_commit(const std::shared_ptr<Session>& s, const json& req) {
  std::string group = req.at("group").get<std::string>();
  std::string member = req.value("member_id", std::string());
  std::int32_t generation = req.value("generation", -1);
  const json& offsets = req.at("offsets");
  if (Status st = check_owner(s, member, "commit"); !st) return fail(s, req, st);
  if (!offsets.is_array())
    return fail(s, req, Status(ErrorCode::kProtocol, "group.commit: \"offsets\" must be an array"));
  // All or nothing: every entry is checked (its fields, then fencing) before any is stored,
  // so that one bad entry never leaves the group with part of a commit.
  std::vector<CommitEntry> entries;
  entries.reserve(offsets.size());
  for (std::size_t i = 0; i < offsets.size(); ++i) {
    const std::string where = "group.commit offsets[" + std::to_string(i) + "]";
    auto entry = parse_commit_entry(offsets[i]);
    if (!entry)
      return fail(s, req,
                  Status(entry.status().code(),
                         where + ": " + entry.status().message() + "; nothing was committed"));
    if (!partition_exists(entry->tp))
      return fail(s, req,
                  Status(ErrorCode::kUnknownTopic,
                         where + ": unknown topic-partition " + entry->tp.topic + "-" +
                             std::to_string(entry->tp.partition) + "; nothing was committed"));
    Status ok = coordinator_->can_commit(group, member, generation, entry->tp);
    if (!ok) {
      auto restored = restored_generation_.find(group);
      bool carried_over = restored != restored_generation_.end() &&
                          restored->second == generation && !member.empty() &&
                          members_.count(member) == 0 &&
                          coordinator_->describe(group).generation == generation;
      if (!carried_over)
        return fail(s, req,
                    Status(ok.code(), where + " (" + entry->tp.topic + "-" +
                                          std::to_string(entry->tp.partition) +
                                          "): " + ok.message() + "; nothing was committed"));
    }
    entries.push_back(std::move(entry).value());
  }
  for (const auto& e : entries) {
    Status st = table_.commit(group, e.tp.topic, e.tp.partition, e.offset, generation, e.metadata);
    if (!st) return fail(s, req, st);
  }
  if (!member.empty()) coordinator_->touch(member, now_ns());
  reply(s, req, json::object());
}

void GroupService::op_fetch(const std::shared_ptr<Session>& s, const json& req) {
  std::string group = req.at("group").get<std::string>();
  json out = json::array();
  for (const auto& p : req.value("partitions", json::array())) {
    std::string topic = p.at("topic").get<std::string>();
    std::int32_t partition = p.at("partition").get<std::int32_t>();
    auto c = table_.fetch(group, topic, partition);
    if (!c) return fail(s, req, c.status());
    out.push_back({{"topic", topic},
                   {"partition", partition},
                   {"offset", *c ? (*c)->offset : std::int64_t{-1}},
                   {"metadata", *c ? (*c)->metadata : std::string()}});
  }
  reply(s, req, {{"offsets", out}});
}

bool GroupService::has_members(const std::string& group) const {
  return !coordinator_->describe(group).members.empty();
}

void GroupService::op_list(const std::shared_ptr<Session>& s, const json& req) {
  std::vector<std::string> names;
  for (const auto& g : list_for_kafka()) names.push_back(g.group_id);  // every kind, sorted
  reply(s, req, {{"groups", names}});
}

void GroupService::op_describe(const std::shared_ptr<Session>& s, const json& req) {
  std::string group = req.at("group").get<std::string>();
  GroupDescription d = coordinator_->describe(group);
  auto offsets = table_.list_offsets(group);
  if (!offsets) return fail(s, req, offsets.status());
  json members = json::array();
  std::set<TopicPartition> seen;
  for (const auto& m : d.members) {
    members.push_back({{"member_id", m.member_id},
                       {"client_id", m.client_id},
                       {"pid", m.pid},
                       {"partitions", tps_json(m.partitions)}});
    seen.insert(m.partitions.begin(), m.partitions.end());
  }
  // A group of Kafka clients (through the gateway): its members, and what the leader
  // assigned them (decoded from the consumer protocol's bytes).
  std::string state = d.state == GroupState::kDead ? "Empty" : group_state_name(d.state);
  std::int32_t generation = d.generation;
  std::string protocol = d.protocol;
  bool kafka_group = false;
  if (d.members.empty() && core_.kafka_groups_) {
    kafka::KafkaGroupDescription kd = core_.kafka_groups_->describe(group);
    if (kd.state != kafka::KafkaGroupState::kDead) {
      kafka_group = true;
      state = kafka::kafka_group_state_name(kd.state);
      generation = kd.generation_id;
      protocol = kd.protocol;
      for (const auto& m : kd.members) {
        std::vector<TopicPartition> parts;
        if (auto a = kafka::decode_consumer_assignment(m.assignment))
          for (const auto& tp : a->assigned_partitions)
            for (std::int32_t p : tp.partitions) parts.push_back({tp.topic, p});
        members.push_back({{"member_id", m.member_id},
                           {"client_id", m.client_id},
                           {"host", m.client_host},
                           {"pid", 0},
                           {"partitions", tps_json(parts)}});
        seen.insert(parts.begin(), parts.end());
      }
    }
  }
  if (d.state == GroupState::kDead && offsets->empty() && !kafka_group)
    return fail(s, req, Status(ErrorCode::kNotFound, "unknown group " + group));
  std::map<TopicPartition, std::int64_t> committed;
  for (const auto& o : *offsets) {
    committed[{o.topic, o.partition}] = o.offset;
    seen.insert({o.topic, o.partition});
  }
  json rows = json::array();
  for (const auto& tp : seen) {
    std::int64_t end = 0;
    if (const TopicState* t = core_.topics_.find(tp.topic);
        t != nullptr && tp.partition < static_cast<std::int32_t>(t->partitions.size()))
      end = t->partitions[static_cast<std::size_t>(tp.partition)].log->end_offset();
    auto c = committed.find(tp);
    std::int64_t off = c == committed.end() ? -1 : c->second;
    rows.push_back({{"topic", tp.topic},
                    {"partition", tp.partition},
                    {"committed", off},
                    {"end_offset", end},
                    {"lag", off < 0 ? end : std::max<std::int64_t>(0, end - off)}});
  }
  reply(s, req,
        {{"state", state},
         {"generation", generation},
         {"protocol", protocol},
         {"kafka", kafka_group},
         {"members", members},
         {"offsets", rows}});
}

void GroupService::op_reset(const std::shared_ptr<Session>& s, const json& req) {
  std::string group = req.at("group").get<std::string>();
  std::string topic = req.value("topic", std::string());
  std::string to = req.value("to", std::string("earliest"));
  std::int64_t value = req.value("value", std::int64_t{0});
  GroupDescription d = coordinator_->describe(group);
  if (!d.members.empty())
    return fail(
        s, req,
        Status(ErrorCode::kBusy, "group " + group + " has " + std::to_string(d.members.size()) +
                                     " live member(s): stop them before resetting offsets"));
  std::vector<TopicPartition> targets;
  if (!topic.empty()) {
    const TopicState* t = core_.topics_.find(topic);
    if (t == nullptr)
      return fail(
          s, req,
          Status(ErrorCode::kUnknownTopic, "unknown topic " + topic + " in " + core_.dir_.root));
    for (std::size_t p = 0; p < t->partitions.size(); ++p)
      targets.push_back({topic, static_cast<std::int32_t>(p)});
  } else {
    auto offsets = table_.list_offsets(group);
    if (!offsets) return fail(s, req, offsets.status());
    for (const auto& o : *offsets) targets.push_back({o.topic, o.partition});
    if (targets.empty())
      return fail(s, req,
                  Status(ErrorCode::kNotFound,
                         "group " + group + " has no committed offsets: name a topic"));
  }
  json done = json::array();
  for (const auto& tp : targets) {
    const TopicState* t = core_.topics_.find(tp.topic);
    if (t == nullptr || tp.partition >= static_cast<std::int32_t>(t->partitions.size())) continue;
    auto log = t->partitions[static_cast<std::size_t>(tp.partition)].log;
    auto bases = log->segment_bases();
    std::int64_t earliest = bases && !bases->empty() ? log->start_offset(*bases) : 0;
    std::int64_t latest = log->end_offset();
    std::int64_t target = earliest;
    if (to == "latest") {
      target = latest;
    } else if (to == "offset") {
      target = std::clamp(value, earliest, latest);
    } else if (to == "timestamp") {
      auto reader = shm::LogReader::open(log);
      if (!reader) return fail(s, req, reader.status());
      if (Status st = reader->seek_to_timestamp(value); !st) return fail(s, req, st);
      target = reader->position();
    } else if (to != "earliest") {
      return fail(s, req,
                  Status(ErrorCode::kInvalidArgument,
                         "reset to earliest, latest, offset or timestamp, not '" + to + "'"));
    }
    if (Status st = table_.commit(group, tp.topic, tp.partition, target, -1, "reset"); !st)
      return fail(s, req, st);
    done.push_back({{"topic", tp.topic}, {"partition", tp.partition}, {"offset", target}});
  }
  reply(s, req, {{"offsets", done}});
}

void GroupService::op_delete(const std::shared_ptr<Session>& s, const json& req) {
  if (Status st = delete_group(req.at("group").get<std::string>()); !st) return fail(s, req, st);
  reply(s, req, json::object());
}

bool GroupService::stored(const std::string& group) {
  auto groups = table_.list_groups();
  return groups && std::find(groups->begin(), groups->end(), group) != groups->end();
}

Status GroupService::delete_group(const std::string& group) {
  // Members first, in either coordinator, so that nothing is deleted from one and kept in the
  // other.
  if (core_.kafka_groups_ && core_.kafka_groups_->has_members(group))
    return Status(ErrorCode::kBusy, "group " + group + " has Kafka members");
  if (has_members(group)) return coordinator_->delete_group(group);  // kBusy, naming them
  bool in_kafka =
      core_.kafka_groups_ && core_.kafka_groups_->delete_group(group) == kafka::group_errors::kNone;
  Status st = coordinator_->delete_group(group);
  if (!st && st.code() != ErrorCode::kNotFound) return st;
  bool in_coordinator = st.is_ok();
  if (!in_kafka && !in_coordinator && !stored(group))
    return Status(ErrorCode::kNotFound, "unknown group " + group);
  if (Status ts = table_.delete_group(group); !ts) return ts;
  restored_generation_.erase(group);
  return Status::ok();
}

void GroupService::session_closed(const std::shared_ptr<Session>& session) {
  auto it = session_members_.find(session->id());
  if (it == session_members_.end()) return;
  std::set<std::string> ids = std::move(it->second);
  session_members_.erase(it);
  for (const auto& id : ids) {
    members_.erase(id);
    dispatch(coordinator_->member_died(id, now_ns()));
  }
}

void GroupService::tick() {
  std::int64_t now = now_ns();
  dispatch(coordinator_->tick(now));
  if (now - last_pid_check_ns_ < 1'000'000'000) return;
  last_pid_check_ns_ = now;
  std::vector<std::shared_ptr<Session>> dead;
  for (const auto& [id, link] : members_)
    if (auto session = link.session.lock(); session && shm::process_gone(session->pid))
      dead.push_back(session);
  for (auto& session : dead) session->close();  // closing reports the members dead
}

void GroupService::topic_changed(const std::string& topic) {
  dispatch(coordinator_->partitions_changed(topic, now_ns()));
}

bool GroupService::partition_exists(const TopicPartition& tp) const {
  const TopicState* t = core_.topics_.find(tp.topic);
  return t != nullptr && tp.partition >= 0 &&
         static_cast<std::size_t>(tp.partition) < t->partitions.size();
}

void GroupService::forget_topic_offsets(const std::string& topic) {
  auto erased = table_.delete_topic_offsets(topic);
  if (!erased)
    spdlog::warn("topic {} deleted, but its committed offsets could not be removed: {}", topic,
                 erased.status().message());
  else if (*erased > 0)
    spdlog::info("topic {} deleted: removed {} committed offset(s)", topic, *erased);
}

std::optional<std::int64_t> GroupService::slowest_committed(const TopicPartition& tp) {
  auto groups = table_.list_groups();
  if (!groups) return std::nullopt;
  std::optional<std::int64_t> lowest;
  for (const auto& g : *groups) {
    auto c = table_.fetch(g, tp.topic, tp.partition);
    if (c && *c && (!lowest || (*c)->offset < *lowest)) lowest = (*c)->offset;
  }
  return lowest;
}

}  // namespace sluice::broker
