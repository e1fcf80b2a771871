#include "kafka_group_service.h"

#include <spdlog/spdlog.h>

#include "group_service.h"
#include "shm/clock.h"

namespace sluice::broker {

namespace errors = kafka::group_errors;

namespace {
constexpr std::int16_t kUnknownTopicOrPartition = 3;
constexpr std::int16_t kOffsetMetadataTooLarge = 12;
constexpr std::int16_t kUnknownServerError = -1;
}  // namespace

KafkaGroupService::KafkaGroupService(const BrokerConfig& config, OffsetsTable& table,
                                     GroupService& local)
    : table_(table), local_(local), coordinator_([&] {
        kafka::KafkaGroupsConfig c;
        c.initial_rebalance_delay_ms = config.initial_rebalance_delay_ms;
        c.instance = std::to_string(shm::wall_clock_ns() / 1'000'000);
        return c;
      }()) {}

std::int64_t KafkaGroupService::now_ms() {
  return shm::monotonic_ns() / 1'000'000;
}

void KafkaGroupService::restore(const std::string& group, std::int32_t generation,
                                const std::string& protocol_type) {
  coordinator_.restore_generation(group, generation, protocol_type);
}

std::optional<std::string> KafkaGroupService::join(const kafka::JoinGroupParams& params,
                                                   JoinReply reply) {
  if (local_.has_members(params.group_id)) {
    kafka::JoinGroupResponseData r;
    r.error_code = errors::kInconsistentGroupProtocol;
    r.member_id = params.member_id;
    spdlog::warn("kafka gateway: group {} has Sluice members; a Kafka member cannot join it",
                 params.group_id);
    reply(r);
    return std::nullopt;
  }
  kafka::JoinOutcome out = coordinator_.join(params, now_ms());
  const bool waits = !out.response.has_value();
  if (waits) {
    join_waiting_[out.member_id] = std::move(reply);
  } else {
    reply(*out.response);
  }
  dispatch(std::move(out.events));
  // Still waiting after the events (they may have answered it already)?
  if (waits && join_waiting_.count(out.member_id) != 0) return out.member_id;
  return std::nullopt;
}

void KafkaGroupService::sync(const kafka::SyncGroupParams& params, SyncReply reply) {
  kafka::SyncOutcome out = coordinator_.sync(params, now_ms());
  if (out.response) {
    reply(*out.response);
  } else {
    sync_waiting_[params.member_id] = std::move(reply);
  }
  dispatch(std::move(out.events));
}

std::int16_t KafkaGroupService::heartbeat(const std::string& group, const std::string& member,
                                          std::int32_t generation,
                                          const std::optional<std::string>& instance) {
  return coordinator_.heartbeat(group, member, generation, instance, now_ms());
}

std::int16_t KafkaGroupService::leave(const std::string& group, const std::string& member) {
  kafka::LeaveOutcome out = coordinator_.leave(group, member, now_ms());
  dispatch(std::move(out.events));
  return out.error_code;
}

std::vector<std::int16_t> KafkaGroupService::commit(const std::string& group,
                                                    const std::string& member,
                                                    std::int32_t generation,
                                                    const std::optional<std::string>& instance,
                                                    const std::vector<KafkaCommit>& entries) {
  std::int16_t verdict;
  if (local_.has_members(group)) {
    verdict = errors::kUnknownMemberId;  // the group is Sluice's: Kafka members are unknown
  } else {
    verdict = coordinator_.validate_commit(group, member, generation, instance, now_ms());
  }
  std::vector<std::int16_t> result(entries.size(), verdict);
  if (verdict != errors::kNone) return result;
  for (std::size_t i = 0; i < entries.size(); ++i) {
    const KafkaCommit& e = entries[i];
    // As Kafka: offsets only for partitions that exist (a deleted topic's offsets are gone
    // with it, and a late commit must not bring them back).
    if (e.topic.empty() || e.topic.size() > OffsetsTable::kMaxTopicBytes || e.partition < 0 ||
        !local_.partition_exists({e.topic, e.partition})) {
      result[i] = kUnknownTopicOrPartition;
      continue;
    }
    if (e.metadata && e.metadata->size() > OffsetsTable::kMaxMetadataBytes) {
      result[i] = kOffsetMetadataTooLarge;
      continue;
    }
    Status s = table_.commit(group, e.topic, e.partition, e.offset, generation,
                             e.metadata.value_or(std::string()));
    if (!s) {
      spdlog::warn("kafka gateway: commit {} {}-{}: {}", group, e.topic, e.partition, s.message());
      result[i] = kUnknownServerError;
    }
  }
  return result;
}

std::vector<KafkaCommitted> KafkaGroupService::fetch(
    const std::string& group, const std::vector<std::pair<std::string, std::int32_t>>& wanted,
    bool all) {
  std::vector<KafkaCommitted> out;
  if (all) {
    auto offsets = table_.list_offsets(group);
    if (offsets)
      for (const auto& o : *offsets) out.push_back({o.topic, o.partition, o.offset, o.metadata, 0});
    return out;
  }
  for (const auto& [topic, partition] : wanted) {
    KafkaCommitted c{topic, partition, -1, std::nullopt, 0};
    auto f = table_.fetch(group, topic, partition);
    if (!f) {
      c.error = kUnknownServerError;
    } else if (*f) {
      c.offset = (*f)->offset;
      c.metadata = (*f)->metadata;
    }
    out.push_back(std::move(c));
  }
  return out;
}

void KafkaGroupService::cancel_pending(const std::string& member) {
  join_waiting_.erase(member);
  sync_waiting_.erase(member);
  coordinator_.cancel_pending(member, now_ms());
}

void KafkaGroupService::tick() {
  dispatch(coordinator_.tick(now_ms()));
}

void KafkaGroupService::dispatch(std::vector<kafka::KafkaGroupEvent> events) {
  for (auto& e : events) {
    if (auto* j = std::get_if<kafka::JoinResponseReady>(&e)) {
      auto it = join_waiting_.find(j->member_id);
      if (it == join_waiting_.end()) continue;
      JoinReply reply = std::move(it->second);
      join_waiting_.erase(it);
      reply(j->response);
    } else if (auto* s = std::get_if<kafka::SyncResponseReady>(&e)) {
      auto it = sync_waiting_.find(s->member_id);
      if (it == sync_waiting_.end()) continue;
      SyncReply reply = std::move(it->second);
      sync_waiting_.erase(it);
      reply(s->response);
    } else if (auto* r = std::get_if<kafka::MemberRemoved>(&e)) {
      spdlog::info("kafka group {}: member {} removed ({})", r->group_id, r->member_id,
                   kafka::kafka_removal_reason_name(r->reason));
    } else if (auto* g = std::get_if<kafka::GenerationStarted>(&e)) {
      if (Status st =
              table_.set_group(g->group_id, g->generation_id, g->protocol, g->protocol_type);
          !st)
        spdlog::warn("kafka group {}: storing generation {}: {}", g->group_id, g->generation_id,
                     st.message());
      spdlog::info("kafka group {}: generation {} ({} members, protocol {})", g->group_id,
                   g->generation_id, g->members, g->protocol.empty() ? "-" : g->protocol);
    }
  }
}

kafka::KafkaGroupDescription KafkaGroupService::describe(const std::string& group) const {
  return coordinator_.describe(group);
}

std::vector<kafka::KafkaGroupListing> KafkaGroupService::list() const {
  return coordinator_.list_groups();
}

bool KafkaGroupService::has_members(const std::string& group) const {
  return !coordinator_.describe(group).members.empty();
}

std::int16_t KafkaGroupService::delete_group(const std::string& group) {
  return coordinator_.delete_group(group);
}

}  // namespace sluice::broker
