// Kafka codec for consumer groups: FindCoordinator (10), JoinGroup (11), SyncGroup (14),
// Heartbeat (12), LeaveGroup (13), OffsetCommit (8), OffsetFetch (9), DescribeGroups (15),
// ListGroups (16), DeleteGroups (42) and OffsetDelete (47), non-flexible versions
// (messages.h). Layouts follow Kafka's message schemas of the same names.
#include "kafka/messages.h"
#include "kafka/messages_codec.h"

namespace sluice::kafka {

using codec::Is;
using codec::kMinArray;
using codec::kMinBytes;
using codec::kMinString;

namespace {

// ---------------------------------------------------------------------------------------------
// FindCoordinator

template <typename IO, Is<FindCoordinatorRequest> M>
void fields(IO& io, std::int16_t v, M& m) {
  io.string(m.key);
  if (v >= 1) io.i8(m.key_type);
}

template <typename IO, Is<FindCoordinatorResponse> M>
void fields(IO& io, std::int16_t v, M& m) {
  if (v >= 1) io.i32(m.throttle_time_ms);
  io.error(m.error_code);
  if (v >= 1) io.nullable_string(m.error_message);
  io.i32(m.node_id);
  io.string(m.host);
  io.i32(m.port);
}

// ---------------------------------------------------------------------------------------------
// JoinGroup

template <typename IO, Is<JoinGroupRequest> M>
void fields(IO& io, std::int16_t v, M& m) {
  io.string(m.group_id);
  io.i32(m.session_timeout_ms);
  if (v >= 1) io.i32(m.rebalance_timeout_ms);
  io.string(m.member_id);
  if (v >= 5) io.nullable_string(m.group_instance_id);
  io.string(m.protocol_type);
  io.array(m.protocols, kMinString + kMinBytes, [&](auto& p) {
    io.string(p.name);
    io.bytes(p.metadata);
  });
}

template <typename IO, Is<JoinGroupResponse> M>
void fields(IO& io, std::int16_t v, M& m) {
  if (v >= 2) io.i32(m.throttle_time_ms);
  io.error(m.error_code);
  io.i32(m.generation_id);
  io.string(m.protocol_name);
  io.string(m.leader);
  io.string(m.member_id);
  io.array(m.members, kMinString + kMinBytes, [&](auto& mem) {
    io.string(mem.member_id);
    if (v >= 5) io.nullable_string(mem.group_instance_id);
    io.bytes(mem.metadata);
  });
}

// ---------------------------------------------------------------------------------------------
// SyncGroup

template <typename IO, Is<SyncGroupRequest> M>
void fields(IO& io, std::int16_t v, M& m) {
  io.string(m.group_id);
  io.i32(m.generation_id);
  io.string(m.member_id);
  if (v >= 3) io.nullable_string(m.group_instance_id);
  io.array(m.assignments, kMinString + kMinBytes, [&](auto& a) {
    io.string(a.member_id);
    io.bytes(a.assignment);
  });
}

template <typename IO, Is<SyncGroupResponse> M>
void fields(IO& io, std::int16_t v, M& m) {
  if (v >= 1) io.i32(m.throttle_time_ms);
  io.error(m.error_code);
  io.bytes(m.assignment);
}

// ---------------------------------------------------------------------------------------------
// Heartbeat

template <typename IO, Is<HeartbeatRequest> M>
void fields(IO& io, std::int16_t v, M& m) {
  io.string(m.group_id);
  io.i32(m.generation_id);
  io.string(m.member_id);
  if (v >= 3) io.nullable_string(m.group_instance_id);
}

template <typename IO, Is<HeartbeatResponse> M>
void fields(IO& io, std::int16_t v, M& m) {
  if (v >= 1) io.i32(m.throttle_time_ms);
  io.error(m.error_code);
}

// ---------------------------------------------------------------------------------------------
// LeaveGroup (v0-2 layout: one member id; v3 batches members and is not served)

template <typename IO, Is<LeaveGroupRequest> M>
void fields(IO& io, std::int16_t /*v*/, M& m) {
  io.string(m.group_id);
  io.string(m.member_id);
}

template <typename IO, Is<LeaveGroupResponse> M>
void fields(IO& io, std::int16_t v, M& m) {
  if (v >= 1) io.i32(m.throttle_time_ms);
  io.error(m.error_code);
}

// ---------------------------------------------------------------------------------------------
// DescribeGroups

template <typename IO, Is<DescribeGroupsRequest> M>
void fields(IO& io, std::int16_t v, M& m) {
  io.array(m.groups, kMinString, [&](auto& g) { io.string(g); });
  if (v >= 3) io.boolean(m.include_authorized_operations);
}

template <typename IO, Is<DescribeGroupsResponse> M>
void fields(IO& io, std::int16_t v, M& m) {
  if (v >= 1) io.i32(m.throttle_time_ms);
  constexpr std::size_t kMinMember = 3 * kMinString + 2 * kMinBytes;
  io.array(m.groups, 2 + 4 * kMinString + kMinArray, [&](auto& g) {
    io.error(g.error_code);
    io.string(g.group_id);
    io.string(g.group_state);
    io.string(g.protocol_type);
    io.string(g.protocol_data);
    io.array(g.members, kMinMember, [&](auto& mem) {
      io.string(mem.member_id);
      if (v >= 4) io.nullable_string(mem.group_instance_id);
      io.string(mem.client_id);
      io.string(mem.client_host);
      io.bytes(mem.member_metadata);
      io.bytes(mem.member_assignment);
    });
    if (v >= 3) io.i32(g.authorized_operations);
  });
}

// ---------------------------------------------------------------------------------------------
// ListGroups

template <typename IO, Is<ListGroupsRequest> M>
void fields(IO& /*io*/, std::int16_t /*v*/, M& /*m*/) {}

template <typename IO, Is<ListGroupsResponse> M>
void fields(IO& io, std::int16_t v, M& m) {
  if (v >= 1) io.i32(m.throttle_time_ms);
  io.error(m.error_code);
  io.array(m.groups, 2 * kMinString, [&](auto& g) {
    io.string(g.group_id);
    io.string(g.protocol_type);
  });
}

// ---------------------------------------------------------------------------------------------
// DeleteGroups

template <typename IO, Is<DeleteGroupsRequest> M>
void fields(IO& io, std::int16_t /*v*/, M& m) {
  io.array(m.groups_names, kMinString, [&](auto& g) { io.string(g); });
}

template <typename IO, Is<DeleteGroupsResponse> M>
void fields(IO& io, std::int16_t /*v*/, M& m) {
  io.i32(m.throttle_time_ms);
  io.array(m.results, kMinString + 2, [&](auto& r) {
    io.string(r.group_id);
    io.error(r.error_code);
  });
}

// ---------------------------------------------------------------------------------------------
// OffsetDelete

template <typename IO, Is<OffsetDeleteRequest> M>
void fields(IO& io, std::int16_t /*v*/, M& m) {
  io.string(m.group_id);
  io.array(m.topics, kMinString + kMinArray, [&](auto& t) {
    io.string(t.name);
    io.array(t.partitions, 4, [&](auto& p) { io.i32(p); });
  });
}

template <typename IO, Is<OffsetDeleteResponse> M>
void fields(IO& io, std::int16_t /*v*/, M& m) {
  io.error(m.error_code);
  io.i32(m.throttle_time_ms);
  io.array(m.topics, kMinString + kMinArray, [&](auto& t) {
    io.string(t.name);
    io.array(t.partitions, 4 + 2, [&](auto& p) {
      io.i32(p.partition_index);
      io.error(p.error_code);
    });
  });
}

template <typename IO, Is<OffsetCommitRequest> M>
void fields(IO& io, std::int16_t v, M& m) {
  io.string(m.group_id);
  if (v >= 1) {
    io.i32(m.generation_id);
    io.string(m.member_id);
  }
  if (v >= 7) io.nullable_string(m.group_instance_id);
  if (v >= 2 && v <= 4) io.i64(m.retention_time_ms);
  io.array(m.topics, kMinString + kMinArray, [&](auto& t) {
    io.string(t.name);
    io.array(t.partitions, 4 + 8 + kMinString, [&](auto& p) {
      io.i32(p.partition_index);
      io.i64(p.committed_offset);
      if (v >= 6) io.i32(p.committed_leader_epoch);
      if (v == 1) io.i64(p.commit_timestamp);
      io.nullable_string(p.committed_metadata);
    });
  });
}

template <typename IO, Is<OffsetCommitResponse> M>
void fields(IO& io, std::int16_t v, M& m) {
  if (v >= 3) io.i32(m.throttle_time_ms);
  io.array(m.topics, kMinString + kMinArray, [&](auto& t) {
    io.string(t.name);
    io.array(t.partitions, 4 + 2, [&](auto& p) {
      io.i32(p.partition_index);
      io.error(p.error_code);
    });
  });
}

// ---------------------------------------------------------------------------------------------
// OffsetFetch

template <typename IO, Is<OffsetFetchRequest> M>
void fields(IO& io, std::int16_t v, M& m) {
  io.string(m.group_id);
  auto topic = [&](auto& t) {
    io.string(t.name);
    io.array(t.partition_indexes, 4, [&](auto& p) { io.i32(p); });
  };
  if (v >= 2) {
    io.nullable_array(m.topics, kMinString + kMinArray, topic);
  } else if constexpr (IO::kReading) {
    // v0-1 have no null: the array is always there.
    io.array(m.topics.emplace(), kMinString + kMinArray, topic);
  } else {
    static const std::vector<OffsetFetchRequest::Topic> kNone;
    io.array(m.topics ? *m.topics : kNone, kMinString + kMinArray, topic);
  }
}

template <typename IO, Is<OffsetFetchResponse> M>
void fields(IO& io, std::int16_t v, M& m) {
  if (v >= 3) io.i32(m.throttle_time_ms);
  io.array(m.topics, kMinString + kMinArray, [&](auto& t) {
    io.string(t.name);
    io.array(t.partitions, 4 + 8 + kMinString + 2, [&](auto& p) {
      io.i32(p.partition_index);
      io.i64(p.committed_offset);
      if (v >= 5) io.i32(p.committed_leader_epoch);
      io.nullable_string(p.metadata);
      io.error(p.error_code);
    });
  });
  if (v >= 2) io.error(m.error_code);
}

}  // namespace

SLUICE_KAFKA_CODEC(FindCoordinatorRequest)
SLUICE_KAFKA_CODEC(FindCoordinatorResponse)
SLUICE_KAFKA_CODEC(JoinGroupRequest)
SLUICE_KAFKA_CODEC(JoinGroupResponse)
SLUICE_KAFKA_CODEC(SyncGroupRequest)
SLUICE_KAFKA_CODEC(SyncGroupResponse)
SLUICE_KAFKA_CODEC(HeartbeatRequest)
SLUICE_KAFKA_CODEC(HeartbeatResponse)
SLUICE_KAFKA_CODEC(LeaveGroupRequest)
SLUICE_KAFKA_CODEC(LeaveGroupResponse)
SLUICE_KAFKA_CODEC(OffsetCommitRequest)
SLUICE_KAFKA_CODEC(OffsetCommitResponse)
SLUICE_KAFKA_CODEC(OffsetFetchRequest)
SLUICE_KAFKA_CODEC(OffsetFetchResponse)
SLUICE_KAFKA_CODEC(DescribeGroupsRequest)
SLUICE_KAFKA_CODEC(DescribeGroupsResponse)
SLUICE_KAFKA_CODEC(ListGroupsRequest)
SLUICE_KAFKA_CODEC(ListGroupsResponse)
SLUICE_KAFKA_CODEC(DeleteGroupsRequest)
SLUICE_KAFKA_CODEC(DeleteGroupsResponse)
SLUICE_KAFKA_CODEC(OffsetDeleteRequest)
SLUICE_KAFKA_CODEC(OffsetDeleteResponse)

}  // namespace sluice::kafka
