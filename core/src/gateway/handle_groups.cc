// RequestHandler: JoinGroup, SyncGroup, Heartbeat, LeaveGroup, OffsetCommit and OffsetFetch.
// Each runs on the broker's thread (KafkaGroupService owns the coordinator and the offsets
// table) and answers from there; a JoinGroup or a follower's SyncGroup may wait there for the
// rebalance.
#include <deque>

#include "broker_core.h"
#include "kafka_group_service.h"
#include "request_handler.h"

namespace sluice::gateway {

using kafka::ByteReader;
using kafka::ErrorCode;

namespace {

std::optional<std::string> own(const std::optional<std::string_view>& v) {
  return v ? std::optional<std::string>(std::string(*v)) : std::nullopt;
}

void set_waiting(ConnectionState& c, const std::string& member) {
  std::lock_guard<std::mutex> lock(c.mutex);
  c.waiting_member = member;
}

}  // namespace

void RequestHandler::join_group(ConnectionState& connection, const Header& h, ByteReader& r,
                                Respond respond) {
  kafka::JoinGroupRequest req;
  if (!kafka::decode(r, h.api_version, req)) return respond(malformed_request("JoinGroup", r));
  kafka::JoinGroupParams p;
  p.group_id = req.group_id;
  p.member_id = req.member_id;
  p.group_instance_id = own(req.group_instance_id);
  p.client_id = h.client_id ? std::string(*h.client_id) : std::string();
  p.client_host = connection.peer.substr(0, connection.peer.rfind(':'));
  p.session_timeout_ms = req.session_timeout_ms;
  p.rebalance_timeout_ms = req.rebalance_timeout_ms;
  p.protocol_type = req.protocol_type;
  for (const auto& proto : req.protocols)
    p.protocols.push_back({std::string(proto.name), std::string(proto.metadata)});
  p.api_version = h.api_version;
  ConnectionState* conn = &connection;
  broker_.post([p = std::move(p), h, respond, conn](broker::BrokerCore& core) {
    auto pending =
        core.kafka_groups().join(p, [h, respond, conn](const kafka::JoinGroupResponseData& d) {
          kafka::JoinGroupResponse resp;
          resp.error_code = static_cast<ErrorCode>(d.error_code);
          resp.generation_id = d.generation_id;
          resp.protocol_name = d.protocol_name;
          resp.leader = d.leader;
          resp.member_id = d.member_id;
          for (const auto& m : d.members)
            resp.members.push_back({m.member_id,
                                    m.group_instance_id
                                        ? std::optional<std::string_view>(*m.group_instance_id)
                                        : std::nullopt,
                                    m.metadata});
          set_waiting(*conn, {});
          respond({response_frame(h, resp), false, {}});
        });
    // The answer waits for the rebalance: if the connection closes first, the coordinator
    // must forget it (connection_closed() reads this).
    if (pending) set_waiting(*conn, *pending);
  });
}

void RequestHandler::sync_group(ConnectionState& connection, const Header& h, ByteReader& r,
                                Respond respond) {
  kafka::SyncGroupRequest req;
  if (!kafka::decode(r, h.api_version, req)) return respond(malformed_request("SyncGroup", r));
  kafka::SyncGroupParams p;
  p.group_id = req.group_id;
  p.member_id = req.member_id;
  p.generation_id = req.generation_id;
  p.group_instance_id = own(req.group_instance_id);
  for (const auto& a : req.assignments)
    p.assignments.push_back({std::string(a.member_id), std::string(a.assignment)});
  set_waiting(connection, p.member_id);
  ConnectionState* conn = &connection;
  broker_.post([p = std::move(p), h, respond, conn](broker::BrokerCore& core) {
    core.kafka_groups().sync(p, [h, respond, conn](const kafka::SyncGroupResponseData& d) {
      kafka::SyncGroupResponse resp;
      resp.error_code = static_cast<ErrorCode>(d.error_code);
      resp.assignment = d.assignment;
      set_waiting(*conn, {});
      respond({response_frame(h, resp), false, {}});
    });
  });
}

void RequestHandler::heartbeat(ConnectionState&, const Header& h, ByteReader& r, Respond respond) {
  kafka::HeartbeatRequest req;
  if (!kafka::decode(r, h.api_version, req)) return respond(malformed_request("Heartbeat", r));
  broker_.post([group = std::string(req.group_id), member = std::string(req.member_id),
                gen = req.generation_id, inst = own(req.group_instance_id), h,
                respond](broker::BrokerCore& core) {
    kafka::HeartbeatResponse resp;
    resp.error_code =
        static_cast<ErrorCode>(core.kafka_groups().heartbeat(group, member, gen, inst));
    respond({response_frame(h, resp), false, {}});
  });
}

void RequestHandler::leave_group(ConnectionState&, const Header& h, ByteReader& r,
                                 Respond respond) {
  kafka::LeaveGroupRequest req;
  if (!kafka::decode(r, h.api_version, req)) return respond(malformed_request("LeaveGroup", r));
  broker_.post([group = std::string(req.group_id), member = std::string(req.member_id), h,
                respond](broker::BrokerCore& core) {
    kafka::LeaveGroupResponse resp;
    resp.error_code = static_cast<ErrorCode>(core.kafka_groups().leave(group, member));
    respond({response_frame(h, resp), false, {}});
  });
}

void RequestHandler::offset_commit(ConnectionState&, const Header& h, ByteReader& r,
                                   Respond respond) {
  kafka::OffsetCommitRequest req;
  if (!kafka::decode(r, h.api_version, req)) return respond(malformed_request("OffsetCommit", r));
  std::vector<broker::KafkaCommit> entries;
  // The response's shape: (topic, [partition]) in request order.
  auto shape = std::make_shared<std::vector<std::pair<std::string, std::vector<std::int32_t>>>>();
  for (const auto& t : req.topics) {
    shape->push_back({std::string(t.name), {}});
    for (const auto& p : t.partitions) {
      shape->back().second.push_back(p.partition_index);
      entries.push_back(
          {std::string(t.name), p.partition_index, p.committed_offset, own(p.committed_metadata)});
    }
  }
  // v0 has no generation: a "simple" commit.
  std::int32_t generation = h.api_version == 0 ? -1 : req.generation_id;
  broker_.post([group = std::string(req.group_id), member = std::string(req.member_id), generation,
                inst = own(req.group_instance_id), entries = std::move(entries), shape, h,
                respond](broker::BrokerCore& core) {
    std::vector<std::int16_t> errs =
        group.empty()
            ? std::vector<std::int16_t>(entries.size(), kafka::group_errors::kInvalidGroupId)
            : core.kafka_groups().commit(group, member, generation, inst, entries);
    kafka::OffsetCommitResponse resp;
    std::size_t i = 0;
    for (const auto& [topic, parts] : *shape) {
      kafka::OffsetCommitResponse::Topic t;
      t.name = topic;
      for (std::int32_t p : parts) t.partitions.push_back({p, static_cast<ErrorCode>(errs[i++])});
      resp.topics.push_back(std::move(t));
    }
    respond({response_frame(h, resp), false, {}});
  });
}

void RequestHandler::offset_fetch(ConnectionState&, const Header& h, ByteReader& r,
                                  Respond respond) {
  kafka::OffsetFetchRequest req;
  if (!kafka::decode(r, h.api_version, req)) return respond(malformed_request("OffsetFetch", r));
  std::vector<std::pair<std::string, std::int32_t>> wanted;
  bool all = !req.topics.has_value();
  if (req.topics)
    for (const auto& t : *req.topics)
      for (std::int32_t p : t.partition_indexes) wanted.push_back({std::string(t.name), p});
  broker_.post([group = std::string(req.group_id), wanted = std::move(wanted), all, h,
                respond](broker::BrokerCore& core) {
    auto committed = core.kafka_groups().fetch(group, wanted, all);
    std::deque<std::string> strings;
    kafka::OffsetFetchResponse resp;
    for (const auto& c : committed) {
      if (resp.topics.empty() || resp.topics.back().name != c.topic) {
        strings.push_back(c.topic);
        resp.topics.push_back({strings.back(), {}});
      }
      kafka::OffsetFetchResponse::Partition p;
      p.partition_index = c.partition;
      p.committed_offset = c.offset;
      if (c.metadata) {
        strings.push_back(*c.metadata);
        p.metadata = strings.back();
      } else {
        p.metadata = std::string_view();
      }
      p.error_code = static_cast<ErrorCode>(c.error);
      resp.topics.back().partitions.push_back(std::move(p));
    }
    respond({response_frame(h, resp), false, {}});
  });
}

}  // namespace sluice::gateway
