#include "request_handler.h"

#include <unistd.h>

#include <spdlog/spdlog.h>

#include "broker_core.h"
#include "gateway.h"
#include "kafka/protocol.h"
#include "kafka_group_service.h"
#include "shm/clock.h"

namespace sluice::gateway {

using kafka::ApiKey;
using kafka::ByteReader;

RequestHandler::RequestHandler(const BrokerConfig& config, DataDir dir, BrokerLink& broker,
                               boost::asio::io_context& io)
    : config_(config), directory_(std::move(dir)), broker_(broker), io_(io) {
  // Producer ids: unique across broker runs (the start time in ms, shifted), then counted.
  next_producer_id_ = (shm::wall_clock_ns() / 1'000'000) << 12;
}

Status RequestHandler::start(const std::string& bound) {
  advertised_ = config_.kafka_advertise.empty() ? bound : config_.kafka_advertise;
  auto hp = parse_host_port(advertised_);
  if (!hp) return Status(hp.status().code(), "--advertise: " + hp.status().message());
  advertised_host_ = hp->first;
  advertised_port_ = hp->second;
  if (advertised_host_ == "0.0.0.0" || advertised_host_ == "::") {
    // Listening on every interface: tell clients a name they can reach.
    char name[256] = {};
    if (::gethostname(name, sizeof name - 1) == 0) advertised_host_ = name;
    advertised_ = advertised_host_ + ":" + std::to_string(advertised_port_);
  }
  // Stable for a data directory: clients compare cluster ids across reconnects.
  cluster_id_ = "sluice-" + std::to_string(std::hash<std::string>{}(directory_.dir().root) %
                                           1'000'000'000'000ULL);
  return Status::ok();
}

void RequestHandler::stop() {
  stopping_ = true;
  wake_fetchers();
}

void RequestHandler::handle(ConnectionState& connection, std::string_view frame, Respond respond) {
  ByteReader r(frame);
  Header h;
  if (!kafka::decode_request_header(r, h)) {
    respond({{}, true, std::string("malformed request header: ") + r.error()});
    return;
  }
  if (h.client_id && connection.client_id.empty()) connection.client_id = std::string(*h.client_id);
  if (h.api_key == kafka::to_int(ApiKey::kApiVersions))
    return api_versions(connection, h, r, respond);

  const kafka::ApiVersionRange* range = nullptr;
  for (const auto& a : kafka::kSupportedApis)
    if (kafka::to_int(a.api_key) == h.api_key) range = &a;
  if (range == nullptr || h.api_version < range->min_version ||
      h.api_version > range->max_version) {
    respond({{},
             true,
             "unsupported " + std::string(kafka::api_name(h.api_key)) + " (key " +
                 std::to_string(h.api_key) + ") version " + std::to_string(h.api_version)});
    return;
  }
  switch (static_cast<ApiKey>(h.api_key)) {
    case ApiKey::kProduce:
      return produce(connection, h, r, std::move(respond));
    case ApiKey::kFetch:
      return fetch(connection, h, r, std::move(respond));
    case ApiKey::kListOffsets:
      return list_offsets(connection, h, r, std::move(respond));
    case ApiKey::kDeleteRecords:
      return delete_records(connection, h, r, std::move(respond));
    case ApiKey::kMetadata:
      return metadata(connection, h, r, std::move(respond));
    case ApiKey::kOffsetCommit:
      return offset_commit(connection, h, r, std::move(respond));
    case ApiKey::kOffsetFetch:
      return offset_fetch(connection, h, r, std::move(respond));
    case ApiKey::kFindCoordinator:
      return find_coordinator(connection, h, r, std::move(respond));
    case ApiKey::kJoinGroup:
      return join_group(connection, h, r, std::move(respond));
    case ApiKey::kHeartbeat:
      return heartbeat(connection, h, r, std::move(respond));
    case ApiKey::kLeaveGroup:
      return leave_group(connection, h, r, std::move(respond));
    case ApiKey::kSyncGroup:
      return sync_group(connection, h, r, std::move(respond));
    case ApiKey::kListGroups:
      return list_groups(connection, h, r, std::move(respond));
    case ApiKey::kDescribeGroups:
      return describe_groups(connection, h, r, std::move(respond));
    case ApiKey::kDeleteGroups:
      return delete_groups(connection, h, r, std::move(respond));
    case ApiKey::kOffsetDelete:
      return offset_delete(connection, h, r, std::move(respond));
    case ApiKey::kCreateTopics:
      return create_topics(connection, h, r, std::move(respond));
    case ApiKey::kDeleteTopics:
      return delete_topics(connection, h, r, std::move(respond));
    case ApiKey::kCreatePartitions:
      return create_partitions(connection, h, r, std::move(respond));
    case ApiKey::kDescribeLogDirs:
      return describe_log_dirs(connection, h, r, std::move(respond));
    case ApiKey::kAlterConfigs:
    case ApiKey::kIncrementalAlterConfigs:
      return alter_configs(connection, h, r, std::move(respond));
    case ApiKey::kInitProducerId:
      return init_producer_id(connection, h, r, std::move(respond));
    case ApiKey::kDescribeConfigs:
      return describe_configs(connection, h, r, std::move(respond));
    case ApiKey::kApiVersions:
      break;
  }
  respond({{}, true, "unhandled API key " + std::to_string(h.api_key)});
}

void RequestHandler::api_versions(ConnectionState&, const Header& h, ByteReader& r,
                                  Respond respond) {
  kafka::ApiVersionsRequest req;
  if (h.api_version > 2) {
    // Newer than we speak: the v0-format reply with UNSUPPORTED_VERSION and our ranges, so
    // that the client retries at a version we have. The body is not needed.
    auto resp = kafka::api_versions_response(kafka::ErrorCode::kUnsupportedVersion);
    kafka::ByteWriter w;
    std::size_t at = kafka::begin_response(w, h.correlation_id);
    kafka::encode(w, 0, resp);
    kafka::end_response(w, at);
    respond({w.take(), false, {}});
    return;
  }
  if (!kafka::decode(r, h.api_version, req)) {
    respond({{}, true, std::string("malformed ApiVersions request: ") + r.error()});
    return;
  }
  respond({response_frame(h, kafka::api_versions_response()), false, {}});
}

void RequestHandler::connection_closed(ConnectionState& connection) {
  connection.closed = true;
  std::string member;
  {
    std::lock_guard<std::mutex> lock(connection.mutex);
    member.swap(connection.waiting_member);
  }
  if (!member.empty())
    broker_.post(
        [member](broker::BrokerCore& core) { core.kafka_groups().cancel_pending(member); });
}

void RequestHandler::auto_create(std::vector<std::string> names, std::function<void()> then) {
  TopicConfig defaults = config_.default_topic;
  broker_.post(
      [this, names = std::move(names), defaults, then = std::move(then)](broker::BrokerCore& core) {
        for (const std::string& n : names) {
          if (core.has_topic(n)) continue;
          if (Status s = core.create_topic(n, defaults); !s)
            spdlog::warn("kafka gateway: auto-creating topic {}: {}", n, s.message());
          else
            spdlog::info("kafka gateway: auto-created topic {}", n);
        }
        boost::asio::post(io_, then);
      });
}

void RequestHandler::wake_fetchers() {
  std::lock_guard<std::mutex> lock(waiting_mutex_);
  for (const auto& t : waiting_) boost::asio::post(t->get_executor(), [t] { t->cancel(); });
}

}  // namespace sluice::gateway
