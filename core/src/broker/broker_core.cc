#include "broker_core.h"

#include <unistd.h>

#include <spdlog/spdlog.h>

#include "group_service.h"
#include "kafka_group_service.h"
#include "shm/clock.h"

namespace sluice::broker {

using control::json;

namespace {
std::int64_t now_ms() {
  return shm::monotonic_ns() / 1'000'000;
}
std::int64_t wall_ms() {
  return shm::wall_clock_ns() / 1'000'000;
}
void warn(const std::string& m) {
  spdlog::warn("{}", m);
}
void info(const std::string& m) {
  spdlog::info("{}", m);
}
}  // namespace

BrokerCore::BrokerCore(BrokerConfig config, DataDir dir, FileOwnership ownership)
    : config_(std::move(config)),
      dir_(dir),
      ownership_(ownership),
      topics_(TopicStore(dir, ownership), config_.abandon_timeout_ms) {}

BrokerCore::~BrokerCore() = default;

Status BrokerCore::start() {
  started_ms_ = now_ms();
  if (Status s = topics_.load(warn); !s) return s;
  (void)topics_.remove_orphans(warn, info);
  orphans_swept_ms_ = started_ms_;
  groups_ = std::make_unique<GroupService>(*this);
  auto restored = groups_->start();
  if (!restored) return restored.status();
  kafka_groups_ = std::make_unique<KafkaGroupService>(config_, groups_->table(), *groups_);
  // Generations continue upward for Kafka groups too, and groups keep their protocol type.
  for (const GroupRecord& g : *restored)
    kafka_groups_->restore(g.group, g.generation, g.protocol_type);
  return Status::ok();
}

Status BrokerCore::create_topic(const std::string& name, const TopicConfig& config) {
  if (Status st = topics_.create(name, config); !st) return st;
  if (groups_) groups_->topic_changed(name);
  info("created topic " + name);
  return Status::ok();
}

Status BrokerCore::delete_topic(const std::string& name) {
  if (Status st = topics_.remove(name); !st) return st;
  if (groups_) {
    groups_->topic_changed(name);
    groups_->forget_topic_offsets(name);
  }
  info("deleted topic " + name);
  return Status::ok();
}

Status BrokerCore::alter_topic(const std::string& name, const TopicConfig& config) {
  if (Status st = topics_.alter(name, config); !st) return st;
  if (groups_) groups_->topic_changed(name);
  info("altered topic " + name);
  return Status::ok();
}

Status BrokerCore::change_topic(const std::string& name, const TopicConfig& config,
                                bool validate_only) {
  const TopicState* current = topics_.find(name);
  if (current == nullptr)
    return Status(ErrorCode::kUnknownTopic, "unknown topic " + name + " in " + dir_.root);
  const std::int32_t now = current->config.partitions;
  if (config.partitions < now)
    return Status(ErrorCode::kInvalidArgument,
                  "topic " + name + " has " + std::to_string(now) +
                      " partitions: partitions can grow but never shrink");
  if (Status st = validate_topic_config(config); !st) return st.with_context("topic " + name);
  if (!validate_only) return alter_topic(name, config);  // alter checks the room itself
  return config.partitions > now ? topics_.store().check_room(name, config.partitions - now, config)
                                 : Status::ok();
}

void BrokerCore::shutdown() {
  if (groups_) groups_->shutdown();
}

void BrokerCore::reply(const std::shared_ptr<Session>& s, const json& req, json body) {
  if (control::no_reply(req)) return;
  body["id"] = control::request_id(req);
  body["ok"] = true;
  s->send(body);
}

void BrokerCore::fail(const std::shared_ptr<Session>& s, const json& req, const Status& status) {
  if (control::no_reply(req)) return;
  s->send(
      {{"id", control::request_id(req)}, {"ok", false}, {"error", control::error_body(status)}});
}

void BrokerCore::handle(const std::shared_ptr<Session>& session, json& msg) {
  static const std::map<std::string, Handler> kHandlers = {
      {"hello", &BrokerCore::op_hello},
      {"status", &BrokerCore::op_status},
      {"topic.create", &BrokerCore::op_topic_create},
      {"topic.list", &BrokerCore::op_topic_list},
      {"topic.describe", &BrokerCore::op_topic_describe},
      {"topic.alter", &BrokerCore::op_topic_alter},
      {"topic.delete", &BrokerCore::op_topic_delete},
      {"topic.delete_records", &BrokerCore::op_topic_delete_records},
  };
  const std::string op = msg["op"].get<std::string>();
  if ((msg.contains("id") && !msg["id"].is_number_integer()) ||
      (msg.contains("no_reply") && !msg["no_reply"].is_boolean())) {
    fail(session, msg,
         Status(ErrorCode::kProtocol, "bad " + op +
                                          " request: \"id\" must be an integer and "
                                          "\"no_reply\" a boolean"));
    return;
  }
  try {
    if (auto it = kHandlers.find(op); it != kHandlers.end()) {
      json body = json::object();
      (this->*(it->second))(session, msg, body);
      if (!body.contains("__deferred") && !body.contains("__failed")) reply(session, msg, body);
      return;
    }
    if (op.rfind("group.", 0) == 0) {
      groups_->handle(session, op, msg);
      return;
    }
    fail(session, msg, Status(ErrorCode::kProtocol, "unknown control op '" + op + "'"));
  } catch (const json::exception& e) {
    // A well-formed line with fields of the wrong type: answer, keep serving.
    fail(session, msg, Status(ErrorCode::kProtocol, "bad " + op + " request: " + e.what()));
  }
}

void BrokerCore::closed(const std::shared_ptr<Session>& session) {
  if (groups_) groups_->session_closed(session);
}

void BrokerCore::housekeeping() {
  topics_.housekeeping(wall_ms(), slowest_committed(), warn, info);
  if (groups_) groups_->tick();
  if (kafka_groups_) kafka_groups_->tick();
}

SlowestCommitted BrokerCore::slowest_committed() {
  return [this](const TopicPartition& tp) { return groups_->slowest_committed(tp); };
}

BrokerCore::WatchOutcome BrokerCore::watch() {
  WatchOutcome out;
  out.rolling_fast = topics_.replace_taken_spares(wall_ms(), slowest_committed(), warn, info);
  out.stepped = topics_.watch();
  return out;
}

void BrokerCore::retention() {
  topics_.apply_retention(wall_ms(), slowest_committed(), info);
  std::int64_t sum = topics_.total_end_offsets();
  std::int64_t t = now_ms();
  // A producer that dies while the broker runs may leave a file too (an interrupted roll):
  // found here, not only at the next start.
  if (t - orphans_swept_ms_ >= config_.orphan_sweep_ms) {
    (void)topics_.remove_orphans(warn, info);
    orphans_swept_ms_ = t;
  }
  if (last_sum_ >= 0 && t > last_sample_ms_)
    rate_ =
        static_cast<double>(sum - last_sum_) * 1000.0 / static_cast<double>(t - last_sample_ms_);
  last_sum_ = sum;
  last_sample_ms_ = t;
}

// ---- ops --------------------------------------------------------------------------------------

void BrokerCore::op_hello(const std::shared_ptr<Session>& s, const json& req, json& out) {
  s->client_id = req.value("client_id", std::string());
  s->pid = req.value("pid", 0);
  out["pid"] = static_cast<int>(::getpid());
  out["version"] = control::kProtocolVersion;
  out["data_dir"] = dir_.root;
}

void BrokerCore::op_status(const std::shared_ptr<Session>&, const json&, json& out) {
  std::int32_t partitions = 0;
  std::uint64_t bytes = 0;
  std::int32_t topics = 0;
  for (const auto& name : topics_.names()) {
    auto d = topics_.describe(name);
    if (!d) continue;
    ++topics;
    for (const auto& p : d->partitions) {
      ++partitions;
      bytes += p.bytes;
    }
  }
  out["pid"] = static_cast<int>(::getpid());
  out["uptime_ms"] = now_ms() - started_ms_;
  out["topics"] = topics;
  out["partitions"] = partitions;
  out["bytes"] = bytes;
  out["records_per_second"] = rate_;
  out["data_dir"] = dir_.root;
}

void BrokerCore::op_topic_create(const std::shared_ptr<Session>& s, const json& req, json& out) {
  std::string name = req.at("name").get<std::string>();
  auto config = control::topic_config_from(req.value("config", json::object()));
  Status st = config ? create_topic(name, *config) : config.status();
  if (!st) {
    fail(s, req, st);
    out["__failed"] = true;
  }
}

void BrokerCore::op_topic_list(const std::shared_ptr<Session>&, const json&, json& out) {
  out["topics"] = topics_.names();
}

void BrokerCore::op_topic_describe(const std::shared_ptr<Session>& s, const json& req, json& out) {
  auto d = topics_.describe(req.at("name").get<std::string>());
  if (!d) {
    fail(s, req, d.status());
    out["__failed"] = true;
    return;
  }
  out["topic"] = control::to_json(*d);
}

void BrokerCore::op_topic_alter(const std::shared_ptr<Session>& s, const json& req, json& out) {
  std::string name = req.at("name").get<std::string>();
  const TopicState* current = topics_.find(name);
  if (current == nullptr) {
    fail(s, req, Status(ErrorCode::kUnknownTopic, "unknown topic " + name + " in " + dir_.root));
    out["__failed"] = true;
    return;
  }
  auto config = control::topic_config_from(req.value("config", json::object()), current->config);
  if (Status st = config ? alter_topic(name, *config) : config.status(); !st) {
    fail(s, req, st);
    out["__failed"] = true;
  }
}

void BrokerCore::op_topic_delete(const std::shared_ptr<Session>& s, const json& req, json& out) {
  std::string name = req.at("name").get<std::string>();
  if (Status st = delete_topic(name); !st) {
    fail(s, req, st);
    out["__failed"] = true;
  }
}

void BrokerCore::op_topic_delete_records(const std::shared_ptr<Session>& s, const json& req,
                                         json& out) {
  std::string name = req.at("name").get<std::string>();
  auto partition = req.at("partition").get<std::int32_t>();
  auto before = req.at("before").get<std::int64_t>();
  const TopicState* t = topics_.find(name);
  Status st;
  if (t == nullptr) {
    st = Status(ErrorCode::kUnknownTopic, "unknown topic " + name + " in " + dir_.root);
  } else if (partition < 0 || partition >= static_cast<std::int32_t>(t->partitions.size())) {
    st = Status(ErrorCode::kInvalidArgument,
                "topic " + name + " has no partition " + std::to_string(partition));
  } else if (before < -1) {
    st = Status(ErrorCode::kInvalidArgument,
                "delete records before " + std::to_string(before) + ": give an offset, or -1");
  } else {
    // Kafka's DeleteRecords: -1 is the end. Retention drops the segments wholly below it.
    shm::PartitionLog& log = *t->partitions[static_cast<std::size_t>(partition)].log;
    auto start = log.delete_records_before(before == -1 ? log.end_offset() : before);
    if (start) {
      out["start"] = *start;
      spdlog::info("deleted the records of {}/{} before offset {}", name, partition, *start);
      return;
    }
    st = start.status();
  }
  fail(s, req, st);
  out["__failed"] = true;
}

}  // namespace sluice::broker
