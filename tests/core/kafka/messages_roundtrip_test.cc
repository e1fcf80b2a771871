// Kafka codec (core/src/kafka/messages.h): every request and response of every advertised
// version round-trips through encode and decode. Each message is filled with non-default values
// in every field of every version; `expect` resets, by hand from Kafka's message schemas, the
// fields a version does not have. A field written at a version that lacks it, or missing from
// one that has it, fails the comparison; every strict prefix of an encoding fails to decode and
// so does one trailing byte.
#include <catch2/catch.hpp>
#include <limits>
#include <string>
#include <vector>

#include "kafka/messages.h"
#include "kafka/protocol.h"

using namespace sluice::kafka;

namespace {

constexpr std::int32_t kNoAuthorizedOps = std::numeric_limits<std::int32_t>::min();

template <typename M>
void check_round_trip(std::int16_t version, const M& full, const M& expected) {
  INFO("version " << version);
  ByteWriter w;
  encode(w, version, full);
  const std::string bytes = w.take();

  ByteReader r(bytes);
  M got;
  bool ok = decode(r, version, got);
  INFO("decode error: " << (r.error() ? r.error() : "none"));
  REQUIRE(ok);
  CHECK(got == expected);

  // The decoded message encodes to the same bytes (its views point into `bytes`).
  ByteWriter again;
  encode(again, version, got);
  CHECK(again.buffer() == bytes);

  int prefixes_decoded = 0;
  for (std::size_t n = 0; n < bytes.size(); ++n) {
    ByteReader t(std::string_view(bytes).substr(0, n));
    M x;
    if (decode(t, version, x) || t.error() == nullptr) ++prefixes_decoded;
  }
  CHECK(prefixes_decoded == 0);

  std::string longer = bytes + '\x01';
  ByteReader t(longer);
  M x;
  CHECK_FALSE(decode(t, version, x));
  CHECK(std::string_view(t.error()) == "trailing bytes after the message body");
}

// Every version from `from` (default: the lowest advertised) to the highest advertised.
template <typename M, typename Expect>
void round_trip_versions(ApiKey key, const M& full, Expect expect, int from = -1) {
  std::optional<ApiVersionRange> range = supported_range(to_int(key));
  REQUIRE(range);
  auto first = static_cast<std::int16_t>(from >= 0 ? from : range->min_version);
  for (std::int16_t v = first; v <= range->max_version; ++v) {
    M expected = full;
    expect(v, expected);
    check_round_trip(v, full, expected);
  }
}

}  // namespace

TEST_CASE("messages: ApiVersions round-trips v0-2 and the v3+ request", "[kafka][messages]") {
  ApiVersionsRequest req{"librdkafka", "2.0.2"};
  round_trip_versions(ApiKey::kApiVersions, req, [](std::int16_t v, ApiVersionsRequest& m) {
    if (v < 3) m = {};
  });
  check_round_trip(3, req, req);
  check_round_trip(4, req, req);

  ApiVersionsResponse resp = api_versions_response(ErrorCode::kNone);
  resp.throttle_time_ms = 5;
  round_trip_versions(ApiKey::kApiVersions, resp, [](std::int16_t v, ApiVersionsResponse& m) {
    if (v < 1) m.throttle_time_ms = 0;
  });
  ApiVersionsResponse v0_format = resp;
  v0_format.throttle_time_ms = 0;
  check_round_trip(3, resp, v0_format);  // v3+ replies are written in the v0 layout
}

TEST_CASE("messages: Metadata round-trips v0-8", "[kafka][messages]") {
  MetadataRequest req{std::vector<std::string_view>{"orders", "audit"}, false, true, true};
  round_trip_versions(ApiKey::kMetadata, req, [](std::int16_t v, MetadataRequest& m) {
    if (v < 4) m.allow_auto_topic_creation = true;
    if (v < 8) m.include_cluster_authorized_operations = false;
    if (v < 8) m.include_topic_authorized_operations = false;
  });

  MetadataResponse resp;
  resp.throttle_time_ms = 7;
  resp.brokers = {{1, "host-1", 9092, "rack-a"}, {2, "host-2", 9093, std::nullopt}};
  resp.cluster_id = "cluster";
  resp.controller_id = 1;
  resp.topics = {
      {ErrorCode::kNone,
       "orders",
       true,
       {{ErrorCode::kNone, 0, 1, 5, {1, 2}, {1}, {2}},
        {ErrorCode::kLeaderNotAvailable, 1, -1, 6, {}, {}, {}}},
       0x0ff},
      {ErrorCode::kUnknownTopicOrPartition, "missing", false, {}, 0},
  };
  resp.cluster_authorized_operations = 0x1f;
  round_trip_versions(ApiKey::kMetadata, resp, [](std::int16_t v, MetadataResponse& m) {
    if (v < 3) m.throttle_time_ms = 0;
    if (v < 1) {
      for (auto& b : m.brokers) b.rack = std::nullopt;
      m.controller_id = -1;
    }
    if (v < 2) m.cluster_id = std::nullopt;
    for (auto& t : m.topics) {
      if (v < 1) t.is_internal = false;
      if (v < 8) t.topic_authorized_operations = kNoAuthorizedOps;
      for (auto& p : t.partitions) {
        if (v < 7) p.leader_epoch = -1;
        if (v < 5) p.offline_replicas.clear();
      }
    }
    if (v < 8) m.cluster_authorized_operations = kNoAuthorizedOps;
  });
}

TEST_CASE("messages: Produce round-trips v3-8 (and v0-2)", "[kafka][messages]") {
  ProduceRequest req;
  req.transactional_id = "txn";
  req.acks = -1;
  req.timeout_ms = 1500;
  req.topics = {{"orders", {{0, "batch-0"}, {3, std::nullopt}}}, {"audit", {}}};
  round_trip_versions(
      ApiKey::kProduce, req,
      [](std::int16_t v, ProduceRequest& m) {
        if (v < 3) m.transactional_id = std::nullopt;
      },
      0);

  ProduceResponse resp;
  resp.responses = {
      {"orders",
       {{0, ErrorCode::kNone, 100, 1700000000000, 50, {{1, "bad"}, {2, std::nullopt}}, "msg"},
        {1, ErrorCode::kNotLeaderOrFollower, -1, -1, -1, {}, std::nullopt}}},
  };
  resp.throttle_time_ms = 9;
  round_trip_versions(
      ApiKey::kProduce, resp,
      [](std::int16_t v, ProduceResponse& m) {
        if (v < 1) m.throttle_time_ms = 0;
        for (auto& t : m.responses) {
          for (auto& p : t.partitions) {
            if (v < 2) p.log_append_time_ms = -1;
            if (v < 5) p.log_start_offset = -1;
            if (v < 8) {
              p.record_errors.clear();
              p.error_message = std::nullopt;
            }
          }
        }
      },
      0);
}

TEST_CASE("messages: Fetch round-trips v4-11 (and v0-3)", "[kafka][messages]") {
  FetchRequest req;
  req.replica_id = -1;
  req.max_wait_ms = 500;
  req.min_bytes = 1;
  req.max_bytes = 52428800;
  req.isolation_level = 1;
  req.session_id = 77;
  req.session_epoch = 3;
  req.topics = {{"orders", {{0, 4, 100, 10, 1048576}, {1, 5, 0, -1, 1024}}}};
  req.forgotten_topics_data = {{"old", {1, 2}}};
  req.rack_id = "rack-a";
  round_trip_versions(
      ApiKey::kFetch, req,
      [](std::int16_t v, FetchRequest& m) {
        if (v < 3) m.max_bytes = 0x7fffffff;
        if (v < 4) m.isolation_level = 0;
        if (v < 7) {
          m.session_id = 0;
          m.session_epoch = -1;
          m.forgotten_topics_data.clear();
        }
        for (auto& t : m.topics) {
          for (auto& p : t.partitions) {
            if (v < 9) p.current_leader_epoch = -1;
            if (v < 5) p.log_start_offset = -1;
          }
        }
        if (v < 11) m.rack_id = {};
      },
      0);

  FetchResponse resp;
  resp.throttle_time_ms = 3;
  resp.error_code = ErrorCode::kFetchSessionIdNotFound;
  resp.session_id = 77;
  resp.responses = {
      {"orders",
       {{0, ErrorCode::kNone, 200, 190, 10,
         std::vector<FetchResponse::AbortedTransaction>{{9, 150}}, 2, "records"},
        {1, ErrorCode::kOffsetOutOfRange, 5, 5, 0, std::nullopt, -1, std::nullopt}}},
  };
  round_trip_versions(
      ApiKey::kFetch, resp,
      [](std::int16_t v, FetchResponse& m) {
        if (v < 1) m.throttle_time_ms = 0;
        if (v < 7) {
          m.error_code = ErrorCode::kNone;
          m.session_id = 0;
        }
        for (auto& t : m.responses) {
          for (auto& p : t.partitions) {
            if (v < 4) {
              p.last_stable_offset = -1;
              p.aborted_transactions = std::nullopt;
            }
            if (v < 5) p.log_start_offset = -1;
            if (v < 11) p.preferred_read_replica = -1;
          }
        }
      },
      0);
}

TEST_CASE(
    "messages: a gathered Fetch response, its pieces spliced in, is the bytes encode() writes",
    "[kafka][messages]") {
  const std::string big_a(kMinGatheredBytes, 'a');
  const std::string big_b(100'000, 'b');
  const std::string small(kMinGatheredBytes - 1, 's');
  FetchResponse resp;
  resp.throttle_time_ms = 3;
  resp.session_id = 0;
  resp.responses = {
      {"orders",
       {{0, ErrorCode::kNone, 200, 190, 10, std::nullopt, -1, big_a},
        {1, ErrorCode::kOffsetOutOfRange, 5, 5, 0, std::nullopt, -1, std::nullopt},
        {2, ErrorCode::kNone, 9, 9, 0, std::nullopt, -1, small}}},
      {"payments", {{0, ErrorCode::kNone, 7, 7, 0, std::nullopt, -1, big_b}}},
      {"empty", {{3, ErrorCode::kNone, 0, 0, 0, std::nullopt, -1, std::string_view()}}},
  };
  for (std::int16_t v = 0; v <= 11; ++v) {
    INFO("version " << v);
    ByteWriter plain;
    std::size_t at = begin_response(plain, 42);
    encode(plain, v, resp);
    end_response(plain, at);

    ByteWriter frame;
    std::vector<GatheredBytes> gathered;
    at = begin_response(frame, 42);
    encode_gathered(frame, v, resp, gathered);
    std::size_t gathered_bytes = 0;
    for (const GatheredBytes& g : gathered) gathered_bytes += g.bytes.size();
    end_response(frame, at, gathered_bytes);

    // Only the fields of at least kMinGatheredBytes are left out, in order.
    REQUIRE(gathered.size() == 2);
    CHECK(gathered[0].bytes.data() == big_a.data());
    CHECK(gathered[1].bytes.data() == big_b.data());
    CHECK(frame.size() + gathered_bytes == plain.size());
    std::string spliced;
    std::size_t from = 0;
    for (const GatheredBytes& g : gathered) {
      spliced.append(frame.buffer(), from, g.at - from);
      spliced.append(g.bytes);
      from = g.at;
    }
    spliced.append(frame.buffer(), from);
    CHECK(spliced == plain.buffer());
  }
}

TEST_CASE("messages: ListOffsets round-trips v0-5", "[kafka][messages]") {
  ListOffsetsRequest req;
  req.replica_id = -1;
  req.isolation_level = 1;
  req.topics = {{"orders", {{0, 3, -1, 5}, {1, 4, 1700000000000, 2}}}};
  round_trip_versions(ApiKey::kListOffsets, req, [](std::int16_t v, ListOffsetsRequest& m) {
    if (v < 2) m.isolation_level = 0;
    for (auto& t : m.topics) {
      for (auto& p : t.partitions) {
        if (v < 4) p.current_leader_epoch = -1;
        if (v != 0) p.max_num_offsets = 1;
      }
    }
  });

  ListOffsetsResponse resp;
  resp.throttle_time_ms = 4;
  resp.topics = {{"orders",
                  {{0, ErrorCode::kNone, {10, 0}, 1700000000000, 42, 3},
                   {1, ErrorCode::kUnknownTopicOrPartition, {}, -1, -1, -1}}}};
  round_trip_versions(ApiKey::kListOffsets, resp, [](std::int16_t v, ListOffsetsResponse& m) {
    if (v < 2) m.throttle_time_ms = 0;
    for (auto& t : m.topics) {
      for (auto& p : t.partitions) {
        if (v != 0) p.old_style_offsets.clear();
        if (v == 0) p.timestamp = p.offset = -1;
        if (v < 4) p.leader_epoch = -1;
      }
    }
  });
}

TEST_CASE("messages: FindCoordinator round-trips v0-2", "[kafka][messages]") {
  FindCoordinatorRequest req{"group-1", 1};
  round_trip_versions(ApiKey::kFindCoordinator, req, [](std::int16_t v, FindCoordinatorRequest& m) {
    if (v < 1) m.key_type = 0;
  });
  FindCoordinatorResponse resp{2,   ErrorCode::kCoordinatorNotAvailable, "later", 1, "localhost",
                               9092};
  round_trip_versions(ApiKey::kFindCoordinator, resp,
                      [](std::int16_t v, FindCoordinatorResponse& m) {
                        if (v < 1) {
                          m.throttle_time_ms = 0;
                          m.error_message = std::nullopt;
                        }
                      });
}

TEST_CASE("messages: JoinGroup round-trips v0-5", "[kafka][messages]") {
  JoinGroupRequest req{"group",
                       10000,
                       30000,
                       "member-1",
                       "instance-1",
                       "consumer",
                       {{"range", "meta-1"}, {"roundrobin", ""}}};
  round_trip_versions(ApiKey::kJoinGroup, req, [](std::int16_t v, JoinGroupRequest& m) {
    if (v < 1) m.rebalance_timeout_ms = -1;
    if (v < 5) m.group_instance_id = std::nullopt;
  });
  JoinGroupResponse resp{1,
                         ErrorCode::kMemberIdRequired,
                         5,
                         "range",
                         "member-1",
                         "member-2",
                         {{"member-1", "instance-1", "meta"}, {"member-2", std::nullopt, ""}}};
  round_trip_versions(ApiKey::kJoinGroup, resp, [](std::int16_t v, JoinGroupResponse& m) {
    if (v < 2) m.throttle_time_ms = 0;
    if (v < 5) {
      for (auto& mem : m.members) mem.group_instance_id = std::nullopt;
    }
  });
}

TEST_CASE("messages: SyncGroup, Heartbeat and LeaveGroup round-trip", "[kafka][messages]") {
  SyncGroupRequest sync{"group", 5, "member-1", "instance-1", {{"member-1", "a1"}, {"m2", "a2"}}};
  round_trip_versions(ApiKey::kSyncGroup, sync, [](std::int16_t v, SyncGroupRequest& m) {
    if (v < 3) m.group_instance_id = std::nullopt;
  });
  SyncGroupResponse sync_resp{1, ErrorCode::kRebalanceInProgress, "assignment"};
  round_trip_versions(ApiKey::kSyncGroup, sync_resp, [](std::int16_t v, SyncGroupResponse& m) {
    if (v < 1) m.throttle_time_ms = 0;
  });

  HeartbeatRequest hb{"group", 5, "member-1", "instance-1"};
  round_trip_versions(ApiKey::kHeartbeat, hb, [](std::int16_t v, HeartbeatRequest& m) {
    if (v < 3) m.group_instance_id = std::nullopt;
  });
  HeartbeatResponse hb_resp{1, ErrorCode::kRebalanceInProgress};
  round_trip_versions(ApiKey::kHeartbeat, hb_resp, [](std::int16_t v, HeartbeatResponse& m) {
    if (v < 1) m.throttle_time_ms = 0;
  });

  LeaveGroupRequest leave{"group", "member-1"};
  round_trip_versions(ApiKey::kLeaveGroup, leave, [](std::int16_t, LeaveGroupRequest&) {});
  LeaveGroupResponse leave_resp{1, ErrorCode::kUnknownMemberId};
  round_trip_versions(ApiKey::kLeaveGroup, leave_resp, [](std::int16_t v, LeaveGroupResponse& m) {
    if (v < 1) m.throttle_time_ms = 0;
  });
}

TEST_CASE("messages: ListGroups DescribeGroups DeleteGroups and OffsetDelete round-trip",
          "[kafka][messages]") {
  round_trip_versions(ApiKey::kListGroups, ListGroupsRequest{},
                      [](std::int16_t, ListGroupsRequest&) {});
  ListGroupsResponse list{1, ErrorCode::kCoordinatorNotAvailable, {{"g1", "consumer"}, {"g2", ""}}};
  round_trip_versions(ApiKey::kListGroups, list, [](std::int16_t v, ListGroupsResponse& m) {
    if (v < 1) m.throttle_time_ms = 0;
  });

  DescribeGroupsRequest describe{{"g1", "g2"}, true};
  round_trip_versions(ApiKey::kDescribeGroups, describe,
                      [](std::int16_t v, DescribeGroupsRequest& m) {
                        if (v < 3) m.include_authorized_operations = false;
                      });
  DescribeGroupsResponse::Member member{
      "member-1",  "instance-1", "client", "/127.0.0.1", std::string_view("\0\1meta", 6),
      "assignment"};
  DescribeGroupsResponse described{
      1,
      {{ErrorCode::kNone, "g1", "Stable", "consumer", "range", {member, member}, 8},
       {ErrorCode::kInvalidGroupId, "", "Dead", "", "", {}, 8}}};
  round_trip_versions(ApiKey::kDescribeGroups, described,
                      [](std::int16_t v, DescribeGroupsResponse& m) {
                        if (v < 1) m.throttle_time_ms = 0;
                        for (auto& g : m.groups) {
                          if (v < 3) g.authorized_operations = kNoAuthorizedOps;
                          for (auto& mem : g.members)
                            if (v < 4) mem.group_instance_id = std::nullopt;
                        }
                      });

  OffsetDeleteRequest offsets{"g1", {{"t", {0, 2}}, {"u", {}}}};
  round_trip_versions(ApiKey::kOffsetDelete, offsets, [](std::int16_t, OffsetDeleteRequest&) {});
  OffsetDeleteResponse offsets_deleted{
      ErrorCode::kNone,
      1,
      {{"t", {{0, ErrorCode::kNone}, {2, ErrorCode::kGroupSubscribedToTopic}}}, {"u", {}}}};
  round_trip_versions(ApiKey::kOffsetDelete, offsets_deleted,
                      [](std::int16_t, OffsetDeleteResponse&) {});

  DeleteGroupsRequest del{{"g1", "g2"}};
  round_trip_versions(ApiKey::kDeleteGroups, del, [](std::int16_t, DeleteGroupsRequest&) {});
  DeleteGroupsResponse deleted{1, {{"g1", ErrorCode::kNone}, {"g2", ErrorCode::kNonEmptyGroup}}};
  round_trip_versions(ApiKey::kDeleteGroups, deleted, [](std::int16_t, DeleteGroupsResponse&) {});
}

TEST_CASE("messages: OffsetCommit round-trips v0-7", "[kafka][messages]") {
  OffsetCommitRequest req;
  req.group_id = "group";
  req.generation_id = 5;
  req.member_id = "member-1";
  req.group_instance_id = "instance-1";
  req.retention_time_ms = 86400000;
  req.topics = {{"orders", {{0, 100, 3, 1700000000000, "meta"}, {1, 5, -1, -1, std::nullopt}}}};
  round_trip_versions(ApiKey::kOffsetCommit, req, [](std::int16_t v, OffsetCommitRequest& m) {
    if (v < 1) {
      m.generation_id = -1;
      m.member_id = {};
    }
    if (v < 7) m.group_instance_id = std::nullopt;
    if (v < 2 || v > 4) m.retention_time_ms = -1;
    for (auto& t : m.topics) {
      for (auto& p : t.partitions) {
        if (v < 6) p.committed_leader_epoch = -1;
        if (v != 1) p.commit_timestamp = -1;
      }
    }
  });

  OffsetCommitResponse resp{
      2, {{"orders", {{0, ErrorCode::kNone}, {1, ErrorCode::kUnknownTopicOrPartition}}}}};
  round_trip_versions(ApiKey::kOffsetCommit, resp, [](std::int16_t v, OffsetCommitResponse& m) {
    if (v < 3) m.throttle_time_ms = 0;
  });
}

TEST_CASE("messages: OffsetFetch round-trips v0-5", "[kafka][messages]") {
  OffsetFetchRequest req{"group",
                         std::vector<OffsetFetchRequest::Topic>{{"orders", {0, 1}}, {"audit", {}}}};
  round_trip_versions(ApiKey::kOffsetFetch, req, [](std::int16_t, OffsetFetchRequest&) {});
  OffsetFetchRequest all{"group", std::nullopt};
  for (std::int16_t v = 2; v <= 5; ++v) check_round_trip(v, all, all);

  OffsetFetchResponse resp{
      3,
      {{"orders",
        {{0, 100, 3, "meta", ErrorCode::kNone}, {1, -1, -1, std::nullopt, ErrorCode::kNone}}}},
      ErrorCode::kGroupAuthorizationFailed};
  round_trip_versions(ApiKey::kOffsetFetch, resp, [](std::int16_t v, OffsetFetchResponse& m) {
    if (v < 3) m.throttle_time_ms = 0;
    if (v < 2) m.error_code = ErrorCode::kNone;
    for (auto& t : m.topics) {
      for (auto& p : t.partitions) {
        if (v < 5) p.committed_leader_epoch = -1;
      }
    }
  });
}

TEST_CASE("messages: CreateTopics and DeleteTopics round-trip", "[kafka][messages]") {
  CreateTopicsRequest create;
  create.topics = {
      {"t1", 3, 1, {}, {{"retention.ms", "1000"}, {"cleanup.policy", std::nullopt}}},
      {"t2", -1, -1, {{0, {1}}, {1, {1, 2}}}, {}},
  };
  create.timeout_ms = 5000;
  create.validate_only = true;
  round_trip_versions(ApiKey::kCreateTopics, create, [](std::int16_t v, CreateTopicsRequest& m) {
    if (v < 1) m.validate_only = false;
  });
  CreateTopicsResponse create_resp{
      1,
      {{"t1", ErrorCode::kNone, std::nullopt}, {"t2", ErrorCode::kTopicAlreadyExists, "exists"}}};
  round_trip_versions(ApiKey::kCreateTopics, create_resp,
                      [](std::int16_t v, CreateTopicsResponse& m) {
                        if (v < 2) m.throttle_time_ms = 0;
                        if (v < 1) {
                          for (auto& t : m.topics) t.error_message = std::nullopt;
                        }
                      });

  DeleteTopicsRequest del{{"a", "b"}, 3000};
  round_trip_versions(ApiKey::kDeleteTopics, del, [](std::int16_t, DeleteTopicsRequest&) {});
  DeleteTopicsResponse del_resp{
      1, {{"a", ErrorCode::kNone}, {"b", ErrorCode::kUnknownTopicOrPartition}}};
  round_trip_versions(ApiKey::kDeleteTopics, del_resp, [](std::int16_t v, DeleteTopicsResponse& m) {
    if (v < 1) m.throttle_time_ms = 0;
  });
}

TEST_CASE("messages: CreatePartitions round-trips v0-1", "[kafka][messages]") {
  CreatePartitionsRequest req{
      {{"t", 4, std::vector<std::vector<std::int32_t>>{{0}, {1, 2}}}, {"u", 2, std::nullopt}},
      1000,
      true};
  round_trip_versions(ApiKey::kCreatePartitions, req,
                      [](std::int16_t, CreatePartitionsRequest&) {});
  CreatePartitionsResponse resp{
      1, {{"t", ErrorCode::kNone, std::nullopt}, {"u", ErrorCode::kInvalidPartitions, "why"}}};
  round_trip_versions(ApiKey::kCreatePartitions, resp,
                      [](std::int16_t, CreatePartitionsResponse&) {});
}

TEST_CASE("messages: DeleteRecords round-trips v0-1", "[kafka][messages]") {
  DeleteRecordsRequest req{{{"t", {{0, 5}, {3, -1}}}, {"u", {}}}, 1000};
  round_trip_versions(ApiKey::kDeleteRecords, req, [](std::int16_t, DeleteRecordsRequest&) {});
  DeleteRecordsResponse resp{
      2, {{"t", {{0, 5, ErrorCode::kNone}, {3, -1, ErrorCode::kOffsetOutOfRange}}}, {"u", {}}}};
  round_trip_versions(ApiKey::kDeleteRecords, resp, [](std::int16_t, DeleteRecordsResponse&) {});
}

TEST_CASE("messages: DescribeLogDirs round-trips v0-1", "[kafka][messages]") {
  DescribeLogDirsRequest all;  // null: every partition
  round_trip_versions(ApiKey::kDescribeLogDirs, all, [](std::int16_t, DescribeLogDirsRequest&) {});
  DescribeLogDirsRequest some{std::vector<DescribeLogDirsRequest::Topic>{{"t", {0, 3}}, {"u", {}}}};
  round_trip_versions(ApiKey::kDescribeLogDirs, some, [](std::int16_t, DescribeLogDirsRequest&) {});
  DescribeLogDirsResponse resp{
      7,
      {{ErrorCode::kNone,
        "/dev/shm/sluice",
        {{"t", {{0, 1 << 20, 0, false}, {3, std::int64_t{5} << 32, 2, true}}}, {"u", {}}}},
       {ErrorCode::kKafkaStorageError, "/elsewhere", {}}}};
  round_trip_versions(ApiKey::kDescribeLogDirs, resp,
                      [](std::int16_t, DescribeLogDirsResponse&) {});
}

TEST_CASE("messages: AlterConfigs and IncrementalAlterConfigs round-trip", "[kafka][messages]") {
  AlterConfigsRequest alter{
      {{kConfigResourceTopic, "t", {{"retention.ms", "1000"}, {"segment.bytes", std::nullopt}}},
       {kConfigResourceBroker, "0", {}}},
      true};
  round_trip_versions(ApiKey::kAlterConfigs, alter, [](std::int16_t, AlterConfigsRequest&) {});
  IncrementalAlterConfigsRequest incremental{{{kConfigResourceTopic,
                                               "t",
                                               {{"retention.ms", kConfigOpSet, "1000"},
                                                {"segment.bytes", kConfigOpDelete, std::nullopt}}}},
                                             true};
  round_trip_versions(ApiKey::kIncrementalAlterConfigs, incremental,
                      [](std::int16_t, IncrementalAlterConfigsRequest&) {});
  AlterConfigsResponse resp{1,
                            {{ErrorCode::kNone, std::nullopt, kConfigResourceTopic, "t"},
                             {ErrorCode::kInvalidConfig, "why", kConfigResourceTopic, "u"}}};
  round_trip_versions(ApiKey::kAlterConfigs, resp, [](std::int16_t, AlterConfigsResponse&) {});
  round_trip_versions(ApiKey::kIncrementalAlterConfigs, resp,
                      [](std::int16_t, AlterConfigsResponse&) {});
}

TEST_CASE("messages: DescribeConfigs round-trips v0-3", "[kafka][messages]") {
  DescribeConfigsRequest req{
      {{kConfigResourceTopic, "orders", std::vector<std::string_view>{"retention.ms"}},
       {kConfigResourceBroker, "1", std::nullopt}},
      true,
      true};
  round_trip_versions(ApiKey::kDescribeConfigs, req, [](std::int16_t v, DescribeConfigsRequest& m) {
    if (v < 1) m.include_synonyms = false;
    if (v < 3) m.include_documentation = false;
  });

  DescribeConfigsResponse resp;
  resp.throttle_time_ms = 1;
  resp.results = {
      {ErrorCode::kNone,
       std::nullopt,
       kConfigResourceTopic,
       "orders",
       {{"retention.ms",
         "1000",
         false,
         true,
         5,
         false,
         {{"log.retention.ms", "1000", 4}},
         3,
         "doc"},
        {"secret", std::nullopt, true, false, 1, true, {}, 0, std::nullopt}}},
      {ErrorCode::kUnknownTopicOrPartition, "no such topic", kConfigResourceTopic, "x", {}},
  };
  round_trip_versions(ApiKey::kDescribeConfigs, resp,
                      [](std::int16_t v, DescribeConfigsResponse& m) {
                        for (auto& r : m.results) {
                          for (auto& c : r.configs) {
                            if (v != 0) c.is_default = false;
                            if (v < 1) {
                              c.config_source = -1;
                              c.synonyms.clear();
                            }
                            if (v < 3) {
                              c.config_type = 0;
                              c.documentation = std::nullopt;
                            }
                          }
                        }
                      });
}

TEST_CASE("messages: InitProducerId round-trips v0-1", "[kafka][messages]") {
  InitProducerIdRequest req{"txn", 60000};
  round_trip_versions(ApiKey::kInitProducerId, req, [](std::int16_t, InitProducerIdRequest&) {});
  InitProducerIdRequest idempotent{std::nullopt, 60000};
  check_round_trip(0, idempotent, idempotent);
  InitProducerIdResponse resp{1, ErrorCode::kNone, 1000, 2};
  round_trip_versions(ApiKey::kInitProducerId, resp, [](std::int16_t, InitProducerIdResponse&) {});
}
