// RequestHandler: ListGroups, DescribeGroups, DeleteGroups and OffsetDelete, the group admin
// APIs of Kafka's tools (kafka-consumer-groups.sh, the admin clients). They run on the broker's
// thread and see every group of the broker: Kafka clients' groups, local consumers' groups and
// groups that only have committed offsets (GroupService::list_for_kafka, describe_for_kafka).
#include <spdlog/spdlog.h>

#include <string>
#include <vector>

#include "broker_core.h"
#include "group_service.h"
#include "request_handler.h"

namespace sluice::gateway {

using kafka::ByteReader;
using kafka::ErrorCode;

void RequestHandler::list_groups(ConnectionState&, const Header& h, ByteReader& r,
                                 Respond respond) {
  kafka::ListGroupsRequest req;
  if (!kafka::decode(r, h.api_version, req)) return respond(malformed_request("ListGroups", r));
  broker_.post([h, respond](broker::BrokerCore& core) {
    std::vector<kafka::KafkaGroupListing> groups = core.groups().list_for_kafka();
    kafka::ListGroupsResponse resp;
    for (const auto& g : groups) resp.groups.push_back({g.group_id, g.protocol_type});
    respond({response_frame(h, resp), false, {}});
  });
}

void RequestHandler::describe_groups(ConnectionState&, const Header& h, ByteReader& r,
                                     Respond respond) {
  kafka::DescribeGroupsRequest req;
  if (!kafka::decode(r, h.api_version, req)) return respond(malformed_request("DescribeGroups", r));
  std::vector<std::string> names(req.groups.begin(), req.groups.end());
  broker_.post([names = std::move(names), h, respond](broker::BrokerCore& core) {
    std::vector<kafka::KafkaGroupDescription> described;
    described.reserve(names.size());
    for (const std::string& name : names)
      described.push_back(core.groups().describe_for_kafka(name));
    kafka::DescribeGroupsResponse resp;
    for (const auto& d : described) {
      kafka::DescribeGroupsResponse::Group g;
      g.group_id = d.group_id;
      // Kafka answers an unknown group with NONE and state "Dead" (GROUP_ID_NOT_FOUND only
      // from v6), and an empty group id with INVALID_GROUP_ID.
      g.error_code = d.group_id.empty() ? ErrorCode::kInvalidGroupId : ErrorCode::kNone;
      g.group_state = kafka::kafka_group_state_name(d.state);
      g.protocol_type = d.protocol_type;
      g.protocol_data = d.protocol;
      for (const auto& m : d.members)
        g.members.push_back(
            {m.member_id,
             m.group_instance_id ? kafka::NullableString(*m.group_instance_id) : std::nullopt,
             m.client_id, m.client_host, m.metadata, m.assignment});
      resp.groups.push_back(std::move(g));
    }
    respond({response_frame(h, resp), false, {}});
  });
}

void RequestHandler::delete_groups(ConnectionState&, const Header& h, ByteReader& r,
                                   Respond respond) {
  kafka::DeleteGroupsRequest req;
  if (!kafka::decode(r, h.api_version, req)) return respond(malformed_request("DeleteGroups", r));
  std::vector<std::string> names(req.groups_names.begin(), req.groups_names.end());
  broker_.post([names = std::move(names), h, respond](broker::BrokerCore& core) {
    kafka::DeleteGroupsResponse resp;
    for (const std::string& name : names) {
      ErrorCode e = ErrorCode::kNone;
      if (name.empty()) {
        e = ErrorCode::kInvalidGroupId;
      } else if (Status st = core.groups().delete_group(name); !st) {
        e = st.code() == sluice::ErrorCode::kBusy       ? ErrorCode::kNonEmptyGroup
            : st.code() == sluice::ErrorCode::kNotFound ? ErrorCode::kGroupIdNotFound
                                                        : ErrorCode::kUnknownServerError;
      } else {
        spdlog::info("kafka gateway: deleted group {}", name);
      }
      resp.results.push_back({name, e});
    }
    respond({response_frame(h, resp), false, {}});
  });
}

void RequestHandler::offset_delete(ConnectionState&, const Header& h, ByteReader& r,
                                   Respond respond) {
  kafka::OffsetDeleteRequest req;
  if (!kafka::decode(r, h.api_version, req)) return respond(malformed_request("OffsetDelete", r));
  std::vector<TopicPartition> partitions;
  for (const auto& t : req.topics)
    for (std::int32_t p : t.partitions) partitions.push_back({std::string(t.name), p});
  broker_.post([group = std::string(req.group_id), partitions = std::move(partitions), h,
                respond](broker::BrokerCore& core) {
    kafka::OffsetDeleteResponse resp;
    if (group.empty()) {
      resp.error_code = ErrorCode::kInvalidGroupId;
      return respond({response_frame(h, resp), false, {}});
    }
    std::vector<Status> done = core.groups().delete_offsets(group, partitions);
    if (!done.empty() && done.front().code() == sluice::ErrorCode::kNotFound) {
      resp.error_code = ErrorCode::kGroupIdNotFound;
      return respond({response_frame(h, resp), false, {}});
    }
    for (std::size_t i = 0; i < partitions.size(); ++i) {
      const TopicPartition& tp = partitions[i];
      if (resp.topics.empty() || resp.topics.back().name != tp.topic)
        resp.topics.push_back({tp.topic, {}});
      const sluice::ErrorCode c = done[i].code();
      resp.topics.back().partitions.push_back(
          {tp.partition, c == sluice::ErrorCode::kOk ? ErrorCode::kNone
                         : c == sluice::ErrorCode::kUnknownTopic
                             ? ErrorCode::kUnknownTopicOrPartition
                         : c == sluice::ErrorCode::kBusy ? ErrorCode::kGroupSubscribedToTopic
                                                         : ErrorCode::kUnknownServerError});
    }
    respond({response_frame(h, resp), false, {}});
  });
}

}  // namespace sluice::gateway
