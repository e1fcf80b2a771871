// Kafka request/response codec: plain structs for every API the gateway serves and their
// non-flexible wire layouts, version by version (Kafka's
// clients/src/main/resources/common/message/*.json schemas; the versions are protocol.h's
// kSupportedApis, i.e. ../shared/KAFKA-PROTOCOL.md).
//
// For every API Xxx:
//   bool decode(ByteReader&, std::int16_t version, XxxRequest&);    // gateway side
//   void encode(ByteWriter&, std::int16_t version, const XxxResponse&);
//   void encode(ByteWriter&, std::int16_t version, const XxxRequest&);   // client side (tests,
//   bool decode(ByteReader&, std::int16_t version, XxxResponse&);        //  raw clients)
// decode() reads the body that follows the header up to the end of the reader; it returns false
// when the body is malformed or followed by trailing bytes, and the reader's error() says why.
// Each struct holds the union of the fields of all its versions; encode() writes exactly those
// the version has, decode() fills those and leaves the others at their defaults.
//
// Lifetimes: decoded string_views (names, records, metadata bytes) point into the bytes the
// reader was built on; keep those alive while using the request. Nullable strings and bytes are
// std::optional<std::string_view> (nullopt is Kafka's null), so are Produce/Fetch `records`,
// which this codec treats as opaque bytes (record_batch.h parses them).
//
// Error codes are ErrorCode (protocol.h) everywhere; any int16 value round-trips.
//
// Thread-safety: pure functions on caller-owned data.
#pragma once

#include <cstddef>
#include <cstdint>
#include <limits>
#include <optional>
#include <string_view>
#include <vector>

#include "kafka/protocol.h"
#include "kafka/wire.h"

namespace sluice::kafka {

using NullableString = std::optional<std::string_view>;
using NullableBytes = std::optional<std::string_view>;

// ---------------------------------------------------------------------------------------------
// Headers and frames

// Request header v1 (v2 for ApiVersions v3+, whose tagged fields are skipped). The header
// version is chosen by (api_key, api_version) as Kafka does: only ApiVersions >= 3 uses v2
// among what the gateway parses; any other flexible version is unsupported anyway.
struct RequestHeader {
  std::int16_t api_key = 0;
  std::int16_t api_version = 0;
  std::int32_t correlation_id = 0;
  NullableString client_id;
  friend bool operator==(const RequestHeader&, const RequestHeader&) = default;
};

// True when this request's header is v2 (has a tagged-field section after client_id).
constexpr bool uses_flexible_header(std::int16_t api_key, std::int16_t api_version) {
  return api_key == to_int(ApiKey::kApiVersions) && api_version >= kFirstFlexibleApiVersions;
}

// Reads a request header from the start of a frame body (after the int32 size).
bool decode_request_header(ByteReader& r, RequestHeader& h);
void encode_request_header(ByteWriter& w, const RequestHeader& h);

// Response frame: int32 size, int32 correlation id (response header v0: every response the
// gateway sends, including the v0-format ApiVersions error reply), then the body.
// begin_response writes the size placeholder and the correlation id and returns the size's
// position; end_response patches the size once the body is written.
std::size_t begin_response(ByteWriter& w, std::int32_t correlation_id);
// `gathered_bytes`: body bytes sent from buffers of their own (encode_gathered), counted in
// the size but not in `w`.
void end_response(ByteWriter& w, std::size_t at, std::size_t gathered_bytes = 0);

// Client side: a request frame (size placeholder + header), patched by end_request.
std::size_t begin_request(ByteWriter& w, const RequestHeader& h);
void end_request(ByteWriter& w, std::size_t at);
// Client side: reads the response header (correlation id) from a frame body.
bool decode_response_header(ByteReader& r, std::int32_t& correlation_id);

// ---------------------------------------------------------------------------------------------
// ApiVersions (18): v0-2; v3+ requests are decoded (flexible body) so they can be answered with
// the v0-format UNSUPPORTED_VERSION reply: encode(w, 0, api_versions_response(...)).

struct ApiVersionsRequest {
  // v3+ only (compact strings); empty for v0-2.
  std::string_view client_software_name;
  std::string_view client_software_version;
  friend bool operator==(const ApiVersionsRequest&, const ApiVersionsRequest&) = default;
};

struct ApiVersionsResponse {
  struct ApiVersion {
    std::int16_t api_key = 0;
    std::int16_t min_version = 0;
    std::int16_t max_version = 0;
    friend bool operator==(const ApiVersion&, const ApiVersion&) = default;
  };
  ErrorCode error_code = ErrorCode::kNone;
  std::vector<ApiVersion> api_keys;
  std::int32_t throttle_time_ms = 0;  // v1+
  friend bool operator==(const ApiVersionsResponse&, const ApiVersionsResponse&) = default;
};

// The gateway's reply: kSupportedApis with the given error (kUnsupportedVersion for v3+
// requests; encode that one at version 0).
ApiVersionsResponse api_versions_response(ErrorCode error = ErrorCode::kNone);

bool decode(ByteReader& r, std::int16_t version, ApiVersionsRequest& m);
void encode(ByteWriter& w, std::int16_t version, const ApiVersionsRequest& m);
// Versions >= 3 are written/read in the v0 format (the only v3+ reply the gateway gives).
void encode(ByteWriter& w, std::int16_t version, const ApiVersionsResponse& m);
bool decode(ByteReader& r, std::int16_t version, ApiVersionsResponse& m);

// ---------------------------------------------------------------------------------------------
// Metadata (3): v0-8

struct MetadataRequest {
  // nullopt: all topics. On the wire v0 has no null; its empty array means "all" and decodes to
  // nullopt (and nullopt encodes as an empty array at v0).
  std::optional<std::vector<std::string_view>> topics;
  bool allow_auto_topic_creation = true;               // v4+
  bool include_cluster_authorized_operations = false;  // v8+
  bool include_topic_authorized_operations = false;    // v8+
  friend bool operator==(const MetadataRequest&, const MetadataRequest&) = default;
};

struct MetadataResponse {
  struct Broker {
    std::int32_t node_id = 0;
    std::string_view host;
    std::int32_t port = 0;
    NullableString rack;  // v1+
    friend bool operator==(const Broker&, const Broker&) = default;
  };
  struct Partition {
    ErrorCode error_code = ErrorCode::kNone;
    std::int32_t partition_index = 0;
    std::int32_t leader_id = 0;
    std::int32_t leader_epoch = -1;  // v7+
    std::vector<std::int32_t> replica_nodes;
    std::vector<std::int32_t> isr_nodes;
    std::vector<std::int32_t> offline_replicas;  // v5+
    friend bool operator==(const Partition&, const Partition&) = default;
  };
  struct Topic {
    ErrorCode error_code = ErrorCode::kNone;
    std::string_view name;
    bool is_internal = false;  // v1+
    std::vector<Partition> partitions;
    std::int32_t topic_authorized_operations = std::numeric_limits<std::int32_t>::min();  // v8+
    friend bool operator==(const Topic&, const Topic&) = default;
  };
  std::int32_t throttle_time_ms = 0;  // v3+
  std::vector<Broker> brokers;
  NullableString cluster_id;        // v2+
  std::int32_t controller_id = -1;  // v1+
  std::vector<Topic> topics;
  std::int32_t cluster_authorized_operations = std::numeric_limits<std::int32_t>::min();  // v8+
  friend bool operator==(const MetadataResponse&, const MetadataResponse&) = default;
};

bool decode(ByteReader& r, std::int16_t version, MetadataRequest& m);
void encode(ByteWriter& w, std::int16_t version, const MetadataRequest& m);
void encode(ByteWriter& w, std::int16_t version, const MetadataResponse& m);
bool decode(ByteReader& r, std::int16_t version, MetadataResponse& m);

// ---------------------------------------------------------------------------------------------
// Produce (0): v3-8 (the codec also handles v0-2)

struct ProduceRequest {
  struct Partition {
    std::int32_t index = 0;
    NullableBytes records;  // opaque record batches (record_batch.h)
    friend bool operator==(const Partition&, const Partition&) = default;
  };
  struct Topic {
    std::string_view name;
    std::vector<Partition> partitions;
    friend bool operator==(const Topic&, const Topic&) = default;
  };
  NullableString transactional_id;  // v3+
  std::int16_t acks = 0;
  std::int32_t timeout_ms = 0;
  std::vector<Topic> topics;
  friend bool operator==(const ProduceRequest&, const ProduceRequest&) = default;
};

struct ProduceResponse {
  struct RecordError {
    std::int32_t batch_index = 0;
    NullableString batch_index_error_message;
    friend bool operator==(const RecordError&, const RecordError&) = default;
  };
  struct Partition {
    std::int32_t index = 0;
    ErrorCode error_code = ErrorCode::kNone;
    std::int64_t base_offset = 0;
    std::int64_t log_append_time_ms = -1;    // v2+
    std::int64_t log_start_offset = -1;      // v5+
    std::vector<RecordError> record_errors;  // v8+
    NullableString error_message;            // v8+
    friend bool operator==(const Partition&, const Partition&) = default;
  };
  struct Topic {
    std::string_view name;
    std::vector<Partition> partitions;
    friend bool operator==(const Topic&, const Topic&) = default;
  };
  std::vector<Topic> responses;
  std::int32_t throttle_time_ms = 0;  // v1+ (after the responses)
  friend bool operator==(const ProduceResponse&, const ProduceResponse&) = default;
};

bool decode(ByteReader& r, std::int16_t version, ProduceRequest& m);
void encode(ByteWriter& w, std::int16_t version, const ProduceRequest& m);
void encode(ByteWriter& w, std::int16_t version, const ProduceResponse& m);
bool decode(ByteReader& r, std::int16_t version, ProduceResponse& m);

// ---------------------------------------------------------------------------------------------
// Fetch (1): v4-11 (the codec also handles v0-3)

struct FetchRequest {
  struct Partition {
    std::int32_t partition = 0;
    std::int32_t current_leader_epoch = -1;  // v9+
    std::int64_t fetch_offset = 0;
    std::int64_t log_start_offset = -1;  // v5+
    std::int32_t partition_max_bytes = 0;
    friend bool operator==(const Partition&, const Partition&) = default;
  };
  struct Topic {
    std::string_view topic;
    std::vector<Partition> partitions;
    friend bool operator==(const Topic&, const Topic&) = default;
  };
  struct ForgottenTopic {
    std::string_view topic;
    std::vector<std::int32_t> partitions;
    friend bool operator==(const ForgottenTopic&, const ForgottenTopic&) = default;
  };
  std::int32_t replica_id = -1;
  std::int32_t max_wait_ms = 0;
  std::int32_t min_bytes = 0;
  std::int32_t max_bytes = 0x7fffffff;  // v3+
  std::int8_t isolation_level = 0;      // v4+ (0 read_uncommitted, 1 read_committed)
  std::int32_t session_id = 0;          // v7+
  std::int32_t session_epoch = -1;      // v7+
  std::vector<Topic> topics;
  std::vector<ForgottenTopic> forgotten_topics_data;  // v7+
  std::string_view rack_id;                           // v11+
  friend bool operator==(const FetchRequest&, const FetchRequest&) = default;
};

struct FetchResponse {
  struct AbortedTransaction {
    std::int64_t producer_id = 0;
    std::int64_t first_offset = 0;
    friend bool operator==(const AbortedTransaction&, const AbortedTransaction&) = default;
  };
  struct Partition {
    std::int32_t partition_index = 0;
    ErrorCode error_code = ErrorCode::kNone;
    std::int64_t high_watermark = 0;
    std::int64_t last_stable_offset = -1;  // v4+
    std::int64_t log_start_offset = -1;    // v5+
    // v4+; nullopt is null on the wire (Kafka sends null when there are none).
    std::optional<std::vector<AbortedTransaction>> aborted_transactions;
    std::int32_t preferred_read_replica = -1;  // v11+
    NullableBytes records;                     // opaque record batches
    friend bool operator==(const Partition&, const Partition&) = default;
  };
  struct Topic {
    std::string_view topic;
    std::vector<Partition> partitions;
    friend bool operator==(const Topic&, const Topic&) = default;
  };
  std::int32_t throttle_time_ms = 0;        // v1+
  ErrorCode error_code = ErrorCode::kNone;  // v7+
  std::int32_t session_id = 0;              // v7+
  std::vector<Topic> responses;
  friend bool operator==(const FetchResponse&, const FetchResponse&) = default;
};

bool decode(ByteReader& r, std::int16_t version, FetchRequest& m);
void encode(ByteWriter& w, std::int16_t version, const FetchRequest& m);
void encode(ByteWriter& w, std::int16_t version, const FetchResponse& m);
bool decode(ByteReader& r, std::int16_t version, FetchResponse& m);

// Bytes of a message that go on the wire right after byte `at` of the encoded frame but are
// not copied into it: they are sent from their own buffer by a gathering write.
struct GatheredBytes {
  std::size_t at = 0;
  std::string_view bytes;
};

// The same bytes on the wire as encode(), but every records field of at least
// kMinGatheredBytes is left out of `w` (its size is written) and listed in `gathered`, in
// order: a Fetch response carries megabytes of record batches, already encoded in buffers of
// their own, and copying them into the frame would be a second copy of every byte fetched
// before the kernel's own. Smaller fields are copied (an iovec costs more than that).
inline constexpr std::size_t kMinGatheredBytes = 1024;
void encode_gathered(ByteWriter& w, std::int16_t version, const FetchResponse& m,
                     std::vector<GatheredBytes>& gathered);

// ---------------------------------------------------------------------------------------------
// ListOffsets (2): v0-5

struct ListOffsetsRequest {
  struct Partition {
    std::int32_t partition_index = 0;
    std::int32_t current_leader_epoch = -1;  // v4+
    std::int64_t timestamp = 0;              // -1 latest, -2 earliest, else a time in ms
    std::int32_t max_num_offsets = 1;        // v0 only
    friend bool operator==(const Partition&, const Partition&) = default;
  };
  struct Topic {
    std::string_view name;
    std::vector<Partition> partitions;
    friend bool operator==(const Topic&, const Topic&) = default;
  };
  std::int32_t replica_id = -1;
  std::int8_t isolation_level = 0;  // v2+
  std::vector<Topic> topics;
  friend bool operator==(const ListOffsetsRequest&, const ListOffsetsRequest&) = default;
};

struct ListOffsetsResponse {
  struct Partition {
    std::int32_t partition_index = 0;
    ErrorCode error_code = ErrorCode::kNone;
    std::vector<std::int64_t> old_style_offsets;  // v0 only
    std::int64_t timestamp = -1;                  // v1+
    std::int64_t offset = -1;                     // v1+
    std::int32_t leader_epoch = -1;               // v4+ (int32, not int64)
    friend bool operator==(const Partition&, const Partition&) = default;
  };
  struct Topic {
    std::string_view name;
    std::vector<Partition> partitions;
    friend bool operator==(const Topic&, const Topic&) = default;
  };
  std::int32_t throttle_time_ms = 0;  // v2+
  std::vector<Topic> topics;
  friend bool operator==(const ListOffsetsResponse&, const ListOffsetsResponse&) = default;
};

bool decode(ByteReader& r, std::int16_t version, ListOffsetsRequest& m);
void encode(ByteWriter& w, std::int16_t version, const ListOffsetsRequest& m);
void encode(ByteWriter& w, std::int16_t version, const ListOffsetsResponse& m);
bool decode(ByteReader& r, std::int16_t version, ListOffsetsResponse& m);

// ---------------------------------------------------------------------------------------------
// FindCoordinator (10): v0-2

struct FindCoordinatorRequest {
  std::string_view key;
  std::int8_t key_type = 0;  // v1+ (0 group, 1 transaction)
  friend bool operator==(const FindCoordinatorRequest&, const FindCoordinatorRequest&) = default;
};

struct FindCoordinatorResponse {
  std::int32_t throttle_time_ms = 0;  // v1+
  ErrorCode error_code = ErrorCode::kNone;
  NullableString error_message;  // v1+
  std::int32_t node_id = 0;
  std::string_view host;
  std::int32_t port = 0;
  friend bool operator==(const FindCoordinatorResponse&, const FindCoordinatorResponse&) = default;
};

bool decode(ByteReader& r, std::int16_t version, FindCoordinatorRequest& m);
void encode(ByteWriter& w, std::int16_t version, const FindCoordinatorRequest& m);
void encode(ByteWriter& w, std::int16_t version, const FindCoordinatorResponse& m);
bool decode(ByteReader& r, std::int16_t version, FindCoordinatorResponse& m);

// ---------------------------------------------------------------------------------------------
// JoinGroup (11): v0-5

struct JoinGroupRequest {
  struct Protocol {
    std::string_view name;
    std::string_view metadata;  // bytes
    friend bool operator==(const Protocol&, const Protocol&) = default;
  };
  std::string_view group_id;
  std::int32_t session_timeout_ms = 0;
  std::int32_t rebalance_timeout_ms = -1;  // v1+ (v0: use the session timeout)
  std::string_view member_id;
  NullableString group_instance_id;  // v5+
  std::string_view protocol_type;
  std::vector<Protocol> protocols;
  friend bool operator==(const JoinGroupRequest&, const JoinGroupRequest&) = default;
};

struct JoinGroupResponse {
  struct Member {
    std::string_view member_id;
    NullableString group_instance_id;  // v5+
    std::string_view metadata;         // bytes
    friend bool operator==(const Member&, const Member&) = default;
  };
  std::int32_t throttle_time_ms = 0;  // v2+
  ErrorCode error_code = ErrorCode::kNone;
  std::int32_t generation_id = -1;
  std::string_view protocol_name;
  std::string_view leader;
  std::string_view member_id;
  std::vector<Member> members;
  friend bool operator==(const JoinGroupResponse&, const JoinGroupResponse&) = default;
};

bool decode(ByteReader& r, std::int16_t version, JoinGroupRequest& m);
void encode(ByteWriter& w, std::int16_t version, const JoinGroupRequest& m);
void encode(ByteWriter& w, std::int16_t version, const JoinGroupResponse& m);
bool decode(ByteReader& r, std::int16_t version, JoinGroupResponse& m);

// ---------------------------------------------------------------------------------------------
// SyncGroup (14): v0-3

struct SyncGroupRequest {
  struct Assignment {
    std::string_view member_id;
    std::string_view assignment;  // bytes
    friend bool operator==(const Assignment&, const Assignment&) = default;
  };
  std::string_view group_id;
  std::int32_t generation_id = 0;
  std::string_view member_id;
  NullableString group_instance_id;  // v3+
  std::vector<Assignment> assignments;
  friend bool operator==(const SyncGroupRequest&, const SyncGroupRequest&) = default;
};

struct SyncGroupResponse {
  std::int32_t throttle_time_ms = 0;  // v1+
  ErrorCode error_code = ErrorCode::kNone;
  std::string_view assignment;  // bytes
  friend bool operator==(const SyncGroupResponse&, const SyncGroupResponse&) = default;
};

bool decode(ByteReader& r, std::int16_t version, SyncGroupRequest& m);
void encode(ByteWriter& w, std::int16_t version, const SyncGroupRequest& m);
void encode(ByteWriter& w, std::int16_t version, const SyncGroupResponse& m);
bool decode(ByteReader& r, std::int16_t version, SyncGroupResponse& m);

// ---------------------------------------------------------------------------------------------
// Heartbeat (12): v0-3

struct HeartbeatRequest {
  std::string_view group_id;
  std::int32_t generation_id = 0;
  std::string_view member_id;
  NullableString group_instance_id;  // v3+
  friend bool operator==(const HeartbeatRequest&, const HeartbeatRequest&) = default;
};

struct HeartbeatResponse {
  std::int32_t throttle_time_ms = 0;  // v1+
  ErrorCode error_code = ErrorCode::kNone;
  friend bool operator==(const HeartbeatResponse&, const HeartbeatResponse&) = default;
};

bool decode(ByteReader& r, std::int16_t version, HeartbeatRequest& m);
void encode(ByteWriter& w, std::int16_t version, const HeartbeatRequest& m);
void encode(ByteWriter& w, std::int16_t version, const HeartbeatResponse& m);
bool decode(ByteReader& r, std::int16_t version, HeartbeatResponse& m);

// ---------------------------------------------------------------------------------------------
// LeaveGroup (13): v0-1

struct LeaveGroupRequest {
  std::string_view group_id;
  std::string_view member_id;
  friend bool operator==(const LeaveGroupRequest&, const LeaveGroupRequest&) = default;
};

struct LeaveGroupResponse {
  std::int32_t throttle_time_ms = 0;  // v1+
  ErrorCode error_code = ErrorCode::kNone;
  friend bool operator==(const LeaveGroupResponse&, const LeaveGroupResponse&) = default;
};

bool decode(ByteReader& r, std::int16_t version, LeaveGroupRequest& m);
void encode(ByteWriter& w, std::int16_t version, const LeaveGroupRequest& m);
void encode(ByteWriter& w, std::int16_t version, const LeaveGroupResponse& m);
bool decode(ByteReader& r, std::int16_t version, LeaveGroupResponse& m);

// ---------------------------------------------------------------------------------------------
// DescribeGroups (15): v0-4

struct DescribeGroupsRequest {
  std::vector<std::string_view> groups;
  bool include_authorized_operations = false;  // v3+
  friend bool operator==(const DescribeGroupsRequest&, const DescribeGroupsRequest&) = default;
};

// Kafka's "authorized operations not requested" (INT32_MIN).
inline constexpr std::int32_t kAuthorizedOperationsOmitted =
    std::numeric_limits<std::int32_t>::min();

struct DescribeGroupsResponse {
  struct Member {
    std::string_view member_id;
    NullableString group_instance_id;  // v4+
    std::string_view client_id;
    std::string_view client_host;
    std::string_view member_metadata;    // bytes: for "consumer", a ConsumerProtocolSubscription
    std::string_view member_assignment;  // bytes: for "consumer", a ConsumerProtocolAssignment
    friend bool operator==(const Member&, const Member&) = default;
  };
  struct Group {
    ErrorCode error_code = ErrorCode::kNone;
    std::string_view group_id;
    std::string_view group_state;
    std::string_view protocol_type;
    std::string_view protocol_data;  // the protocol (assignor) chosen
    std::vector<Member> members;
    std::int32_t authorized_operations = kAuthorizedOperationsOmitted;  // v3+
    friend bool operator==(const Group&, const Group&) = default;
  };
  std::int32_t throttle_time_ms = 0;  // v1+
  std::vector<Group> groups;
  friend bool operator==(const DescribeGroupsResponse&, const DescribeGroupsResponse&) = default;
};

bool decode(ByteReader& r, std::int16_t version, DescribeGroupsRequest& m);
void encode(ByteWriter& w, std::int16_t version, const DescribeGroupsRequest& m);
void encode(ByteWriter& w, std::int16_t version, const DescribeGroupsResponse& m);
bool decode(ByteReader& r, std::int16_t version, DescribeGroupsResponse& m);

// ---------------------------------------------------------------------------------------------
// ListGroups (16): v0-2 (the request has no fields before v4's states filter)

struct ListGroupsRequest {
  friend bool operator==(const ListGroupsRequest&, const ListGroupsRequest&) = default;
};

struct ListGroupsResponse {
  struct Group {
    std::string_view group_id;
    std::string_view protocol_type;
    friend bool operator==(const Group&, const Group&) = default;
  };
  std::int32_t throttle_time_ms = 0;  // v1+
  ErrorCode error_code = ErrorCode::kNone;
  std::vector<Group> groups;
  friend bool operator==(const ListGroupsResponse&, const ListGroupsResponse&) = default;
};

bool decode(ByteReader& r, std::int16_t version, ListGroupsRequest& m);
void encode(ByteWriter& w, std::int16_t version, const ListGroupsRequest& m);
void encode(ByteWriter& w, std::int16_t version, const ListGroupsResponse& m);
bool decode(ByteReader& r, std::int16_t version, ListGroupsResponse& m);

// ---------------------------------------------------------------------------------------------
// DeleteGroups (42): v0-1

struct DeleteGroupsRequest {
  std::vector<std::string_view> groups_names;
  friend bool operator==(const DeleteGroupsRequest&, const DeleteGroupsRequest&) = default;
};

struct DeleteGroupsResponse {
  struct Result {
    std::string_view group_id;
    ErrorCode error_code = ErrorCode::kNone;
    friend bool operator==(const Result&, const Result&) = default;
  };
  std::int32_t throttle_time_ms = 0;
  std::vector<Result> results;
  friend bool operator==(const DeleteGroupsResponse&, const DeleteGroupsResponse&) = default;
};

bool decode(ByteReader& r, std::int16_t version, DeleteGroupsRequest& m);
void encode(ByteWriter& w, std::int16_t version, const DeleteGroupsRequest& m);
void encode(ByteWriter& w, std::int16_t version, const DeleteGroupsResponse& m);
bool decode(ByteReader& r, std::int16_t version, DeleteGroupsResponse& m);

// ---------------------------------------------------------------------------------------------
// OffsetCommit (8): v0-7

struct OffsetCommitRequest {
  struct Partition {
    std::int32_t partition_index = 0;
    std::int64_t committed_offset = 0;
    std::int32_t committed_leader_epoch = -1;  // v6+
    std::int64_t commit_timestamp = -1;        // v1 only
    NullableString committed_metadata;
    friend bool operator==(const Partition&, const Partition&) = default;
  };
  struct Topic {
    std::string_view name;
    std::vector<Partition> partitions;
    friend bool operator==(const Topic&, const Topic&) = default;
  };
  std::string_view group_id;
  std::int32_t generation_id = -1;      // v1+ (-1: a "simple" commit outside any generation)
  std::string_view member_id;           // v1+
  NullableString group_instance_id;     // v7+
  std::int64_t retention_time_ms = -1;  // v2-4 (-1: the broker's default)
  std::vector<Topic> topics;
  friend bool operator==(const OffsetCommitRequest&, const OffsetCommitRequest&) = default;
};

struct OffsetCommitResponse {
  struct Partition {
    std::int32_t partition_index = 0;
    ErrorCode error_code = ErrorCode::kNone;
    friend bool operator==(const Partition&, const Partition&) = default;
  };
  struct Topic {
    std::string_view name;
    std::vector<Partition> partitions;
    friend bool operator==(const Topic&, const Topic&) = default;
  };
  std::int32_t throttle_time_ms = 0;  // v3+
  std::vector<Topic> topics;
  friend bool operator==(const OffsetCommitResponse&, const OffsetCommitResponse&) = default;
};

bool decode(ByteReader& r, std::int16_t version, OffsetCommitRequest& m);
void encode(ByteWriter& w, std::int16_t version, const OffsetCommitRequest& m);
void encode(ByteWriter& w, std::int16_t version, const OffsetCommitResponse& m);
bool decode(ByteReader& r, std::int16_t version, OffsetCommitResponse& m);

// ---------------------------------------------------------------------------------------------
// OffsetDelete (47): v0

struct OffsetDeleteRequest {
  struct Topic {
    std::string_view name;
    std::vector<std::int32_t> partitions;
    friend bool operator==(const Topic&, const Topic&) = default;
  };
  std::string_view group_id;
  std::vector<Topic> topics;
  friend bool operator==(const OffsetDeleteRequest&, const OffsetDeleteRequest&) = default;
};

struct OffsetDeleteResponse {
  // As OffsetCommit's: (topic, [(partition, error)]).
  using Partition = OffsetCommitResponse::Partition;
  using Topic = OffsetCommitResponse::Topic;
  ErrorCode error_code = ErrorCode::kNone;  // the group's
  std::int32_t throttle_time_ms = 0;
  std::vector<Topic> topics;
  friend bool operator==(const OffsetDeleteResponse&, const OffsetDeleteResponse&) = default;
};

bool decode(ByteReader& r, std::int16_t version, OffsetDeleteRequest& m);
void encode(ByteWriter& w, std::int16_t version, const OffsetDeleteRequest& m);
void encode(ByteWriter& w, std::int16_t version, const OffsetDeleteResponse& m);
bool decode(ByteReader& r, std::int16_t version, OffsetDeleteResponse& m);

// ---------------------------------------------------------------------------------------------
// OffsetFetch (9): v0-5

struct OffsetFetchRequest {
  struct Topic {
    std::string_view name;
    std::vector<std::int32_t> partition_indexes;
    friend bool operator==(const Topic&, const Topic&) = default;
  };
  std::string_view group_id;
  // nullopt (v2+ only; null on the wire): every topic the group has committed offsets for.
  std::optional<std::vector<Topic>> topics;
  friend bool operator==(const OffsetFetchRequest&, const OffsetFetchRequest&) = default;
};

struct OffsetFetchResponse {
  struct Partition {
    std::int32_t partition_index = 0;
    std::int64_t committed_offset = -1;        // -1: never committed
    std::int32_t committed_leader_epoch = -1;  // v5+
    NullableString metadata;
    ErrorCode error_code = ErrorCode::kNone;
    friend bool operator==(const Partition&, const Partition&) = default;
  };
  struct Topic {
    std::string_view name;
    std::vector<Partition> partitions;
    friend bool operator==(const Topic&, const Topic&) = default;
  };
  std::int32_t throttle_time_ms = 0;  // v3+
  std::vector<Topic> topics;
  ErrorCode error_code = ErrorCode::kNone;  // v2+ (top level)
  friend bool operator==(const OffsetFetchResponse&, const OffsetFetchResponse&) = default;
};

bool decode(ByteReader& r, std::int16_t version, OffsetFetchRequest& m);
void encode(ByteWriter& w, std::int16_t version, const OffsetFetchRequest& m);
void encode(ByteWriter& w, std::int16_t version, const OffsetFetchResponse& m);
bool decode(ByteReader& r, std::int16_t version, OffsetFetchResponse& m);

// ---------------------------------------------------------------------------------------------
// CreateTopics (19): v0-4

struct CreateTopicsRequest {
  struct Assignment {
    std::int32_t partition_index = 0;
    std::vector<std::int32_t> broker_ids;
    friend bool operator==(const Assignment&, const Assignment&) = default;
  };
  struct Config {
    std::string_view name;
    NullableString value;
    friend bool operator==(const Config&, const Config&) = default;
  };
  struct Topic {
    std::string_view name;
    std::int32_t num_partitions = -1;      // -1: the broker's default
    std::int16_t replication_factor = -1;  // -1: the broker's default
    std::vector<Assignment> assignments;
    std::vector<Config> configs;
    friend bool operator==(const Topic&, const Topic&) = default;
  };
  std::vector<Topic> topics;
  std::int32_t timeout_ms = 60000;
  bool validate_only = false;  // v1+
  friend bool operator==(const CreateTopicsRequest&, const CreateTopicsRequest&) = default;
};

struct CreateTopicsResponse {
  struct Topic {
    std::string_view name;
    ErrorCode error_code = ErrorCode::kNone;
    NullableString error_message;  // v1+
    friend bool operator==(const Topic&, const Topic&) = default;
  };
  std::int32_t throttle_time_ms = 0;  // v2+
  std::vector<Topic> topics;
  friend bool operator==(const CreateTopicsResponse&, const CreateTopicsResponse&) = default;
};

bool decode(ByteReader& r, std::int16_t version, CreateTopicsRequest& m);
void encode(ByteWriter& w, std::int16_t version, const CreateTopicsRequest& m);
void encode(ByteWriter& w, std::int16_t version, const CreateTopicsResponse& m);
bool decode(ByteReader& r, std::int16_t version, CreateTopicsResponse& m);

// ---------------------------------------------------------------------------------------------
// DeleteTopics (20): v0-3

struct DeleteTopicsRequest {
  std::vector<std::string_view> topic_names;
  std::int32_t timeout_ms = 0;
  friend bool operator==(const DeleteTopicsRequest&, const DeleteTopicsRequest&) = default;
};

struct DeleteTopicsResponse {
  struct Topic {
    std::string_view name;
    ErrorCode error_code = ErrorCode::kNone;
    friend bool operator==(const Topic&, const Topic&) = default;
  };
  std::int32_t throttle_time_ms = 0;  // v1+
  std::vector<Topic> responses;
  friend bool operator==(const DeleteTopicsResponse&, const DeleteTopicsResponse&) = default;
};

bool decode(ByteReader& r, std::int16_t version, DeleteTopicsRequest& m);
void encode(ByteWriter& w, std::int16_t version, const DeleteTopicsRequest& m);
void encode(ByteWriter& w, std::int16_t version, const DeleteTopicsResponse& m);
bool decode(ByteReader& r, std::int16_t version, DeleteTopicsResponse& m);

// ---------------------------------------------------------------------------------------------
// DeleteRecords (21): v0-1 (the same layout; v2 is flexible)

struct DeleteRecordsRequest {
  struct Partition {
    std::int32_t partition_index = 0;
    std::int64_t offset = 0;  // records before it are deleted; -1: the high watermark
    friend bool operator==(const Partition&, const Partition&) = default;
  };
  struct Topic {
    std::string_view name;
    std::vector<Partition> partitions;
    friend bool operator==(const Topic&, const Topic&) = default;
  };
  std::vector<Topic> topics;
  std::int32_t timeout_ms = 0;
  friend bool operator==(const DeleteRecordsRequest&, const DeleteRecordsRequest&) = default;
};

struct DeleteRecordsResponse {
  struct Partition {
    std::int32_t partition_index = 0;
    std::int64_t low_watermark = -1;  // the log start offset after the deletion
    ErrorCode error_code = ErrorCode::kNone;
    friend bool operator==(const Partition&, const Partition&) = default;
  };
  struct Topic {
    std::string_view name;
    std::vector<Partition> partitions;
    friend bool operator==(const Topic&, const Topic&) = default;
  };
  std::int32_t throttle_time_ms = 0;
  std::vector<Topic> topics;
  friend bool operator==(const DeleteRecordsResponse&, const DeleteRecordsResponse&) = default;
};

bool decode(ByteReader& r, std::int16_t version, DeleteRecordsRequest& m);
void encode(ByteWriter& w, std::int16_t version, const DeleteRecordsRequest& m);
void encode(ByteWriter& w, std::int16_t version, const DeleteRecordsResponse& m);
bool decode(ByteReader& r, std::int16_t version, DeleteRecordsResponse& m);

// ---------------------------------------------------------------------------------------------
// DescribeLogDirs (35): v0-1 (the same layout; v2 is flexible)

struct DescribeLogDirsRequest {
  struct Topic {
    std::string_view name;
    std::vector<std::int32_t> partitions;
    friend bool operator==(const Topic&, const Topic&) = default;
  };
  std::optional<std::vector<Topic>> topics;  // null: every partition
  friend bool operator==(const DescribeLogDirsRequest&, const DescribeLogDirsRequest&) = default;
};

struct DescribeLogDirsResponse {
  struct Partition {
    std::int32_t partition_index = 0;
    std::int64_t partition_size = 0;  // bytes
    std::int64_t offset_lag = 0;      // of a future replica behind the current one
    bool is_future_key = false;       // a replica being moved to this directory
    friend bool operator==(const Partition&, const Partition&) = default;
  };
  struct Topic {
    std::string_view name;
    std::vector<Partition> partitions;
    friend bool operator==(const Topic&, const Topic&) = default;
  };
  struct Result {
    ErrorCode error_code = ErrorCode::kNone;
    std::string_view log_dir;
    std::vector<Topic> topics;
    friend bool operator==(const Result&, const Result&) = default;
  };
  std::int32_t throttle_time_ms = 0;
  std::vector<Result> results;
  friend bool operator==(const DescribeLogDirsResponse&, const DescribeLogDirsResponse&) = default;
};

bool decode(ByteReader& r, std::int16_t version, DescribeLogDirsRequest& m);
void encode(ByteWriter& w, std::int16_t version, const DescribeLogDirsRequest& m);
void encode(ByteWriter& w, std::int16_t version, const DescribeLogDirsResponse& m);
bool decode(ByteReader& r, std::int16_t version, DescribeLogDirsResponse& m);

// ---------------------------------------------------------------------------------------------
// CreatePartitions (37): v0-1 (the same layout; v2 is flexible)

struct CreatePartitionsRequest {
  struct Topic {
    std::string_view name;
    std::int32_t count = 0;  // the partition count the topic is to have
    // One entry per new partition, each its replicas' broker ids; null: the broker chooses.
    std::optional<std::vector<std::vector<std::int32_t>>> assignments;
    friend bool operator==(const Topic&, const Topic&) = default;
  };
  std::vector<Topic> topics;
  std::int32_t timeout_ms = 0;
  bool validate_only = false;
  friend bool operator==(const CreatePartitionsRequest&, const CreatePartitionsRequest&) = default;
};

struct CreatePartitionsResponse {
  struct Result {
    std::string_view name;
    ErrorCode error_code = ErrorCode::kNone;
    NullableString error_message;
    friend bool operator==(const Result&, const Result&) = default;
  };
  std::int32_t throttle_time_ms = 0;
  std::vector<Result> results;
  friend bool operator==(const CreatePartitionsResponse&,
                         const CreatePartitionsResponse&) = default;
};

bool decode(ByteReader& r, std::int16_t version, CreatePartitionsRequest& m);
void encode(ByteWriter& w, std::int16_t version, const CreatePartitionsRequest& m);
void encode(ByteWriter& w, std::int16_t version, const CreatePartitionsResponse& m);
bool decode(ByteReader& r, std::int16_t version, CreatePartitionsResponse& m);

// ---------------------------------------------------------------------------------------------
// DescribeConfigs (32): v0-3

// Resource types of DescribeConfigs (Kafka's ConfigResource.Type).
inline constexpr std::int8_t kConfigResourceTopic = 2;
inline constexpr std::int8_t kConfigResourceBroker = 4;

struct DescribeConfigsRequest {
  struct Resource {
    std::int8_t resource_type = 0;
    std::string_view resource_name;
    std::optional<std::vector<std::string_view>> configuration_keys;  // nullopt: all keys
    friend bool operator==(const Resource&, const Resource&) = default;
  };
  std::vector<Resource> resources;
  bool include_synonyms = false;       // v1+
  bool include_documentation = false;  // v3+
  friend bool operator==(const DescribeConfigsRequest&, const DescribeConfigsRequest&) = default;
};

struct DescribeConfigsResponse {
  struct Synonym {
    std::string_view name;
    NullableString value;
    std::int8_t source = 0;
    friend bool operator==(const Synonym&, const Synonym&) = default;
  };
  struct Config {
    std::string_view name;
    NullableString value;
    bool read_only = false;
    bool is_default = false;         // v0 only
    std::int8_t config_source = -1;  // v1+ (5 DEFAULT_CONFIG, 1 DYNAMIC_TOPIC_CONFIG, ...)
    bool is_sensitive = false;
    std::vector<Synonym> synonyms;  // v1+
    std::int8_t config_type = 0;    // v3+
    NullableString documentation;   // v3+
    friend bool operator==(const Config&, const Config&) = default;
  };
  struct Result {
    ErrorCode error_code = ErrorCode::kNone;
    NullableString error_message;
    std::int8_t resource_type = 0;
    std::string_view resource_name;
    std::vector<Config> configs;
    friend bool operator==(const Result&, const Result&) = default;
  };
  std::int32_t throttle_time_ms = 0;
  std::vector<Result> results;
  friend bool operator==(const DescribeConfigsResponse&, const DescribeConfigsResponse&) = default;
};

bool decode(ByteReader& r, std::int16_t version, DescribeConfigsRequest& m);
void encode(ByteWriter& w, std::int16_t version, const DescribeConfigsRequest& m);
void encode(ByteWriter& w, std::int16_t version, const DescribeConfigsResponse& m);
bool decode(ByteReader& r, std::int16_t version, DescribeConfigsResponse& m);

// ---------------------------------------------------------------------------------------------
// AlterConfigs (33): v0-1 and IncrementalAlterConfigs (44): v0 (their next versions are
// flexible). Both answer with AlterConfigsResponse (the same layout).

// IncrementalAlterConfigs' operations.
inline constexpr std::int8_t kConfigOpSet = 0;
inline constexpr std::int8_t kConfigOpDelete = 1;
inline constexpr std::int8_t kConfigOpAppend = 2;
inline constexpr std::int8_t kConfigOpSubtract = 3;

// AlterConfigs' config entry, and IncrementalAlterConfigs' (with an operation).
struct AlterConfigEntry {
  std::string_view name;
  NullableString value;
  friend bool operator==(const AlterConfigEntry&, const AlterConfigEntry&) = default;
};
struct IncrementalAlterConfigEntry {
  std::string_view name;
  std::int8_t config_operation = kConfigOpSet;
  NullableString value;
  friend bool operator==(const IncrementalAlterConfigEntry&,
                         const IncrementalAlterConfigEntry&) = default;
};

// The two requests differ only in their entries.
template <class Entry>
struct ConfigsAlterationRequest {
  struct Resource {
    std::int8_t resource_type = 0;
    std::string_view resource_name;
    std::vector<Entry> configs;
    friend bool operator==(const Resource&, const Resource&) = default;
  };
  std::vector<Resource> resources;
  bool validate_only = false;
  friend bool operator==(const ConfigsAlterationRequest&,
                         const ConfigsAlterationRequest&) = default;
};
using AlterConfigsRequest = ConfigsAlterationRequest<AlterConfigEntry>;
using IncrementalAlterConfigsRequest = ConfigsAlterationRequest<IncrementalAlterConfigEntry>;

struct AlterConfigsResponse {
  struct Result {
    ErrorCode error_code = ErrorCode::kNone;
    NullableString error_message;
    std::int8_t resource_type = 0;
    std::string_view resource_name;
    friend bool operator==(const Result&, const Result&) = default;
  };
  std::int32_t throttle_time_ms = 0;
  std::vector<Result> responses;
  friend bool operator==(const AlterConfigsResponse&, const AlterConfigsResponse&) = default;
};

bool decode(ByteReader& r, std::int16_t version, AlterConfigsRequest& m);
void encode(ByteWriter& w, std::int16_t version, const AlterConfigsRequest& m);
bool decode(ByteReader& r, std::int16_t version, IncrementalAlterConfigsRequest& m);
void encode(ByteWriter& w, std::int16_t version, const IncrementalAlterConfigsRequest& m);
void encode(ByteWriter& w, std::int16_t version, const AlterConfigsResponse& m);
bool decode(ByteReader& r, std::int16_t version, AlterConfigsResponse& m);

// ---------------------------------------------------------------------------------------------
// InitProducerId (22): v0-1

struct InitProducerIdRequest {
  NullableString transactional_id;
  std::int32_t transaction_timeout_ms = 0;
  friend bool operator==(const InitProducerIdRequest&, const InitProducerIdRequest&) = default;
};

struct InitProducerIdResponse {
  std::int32_t throttle_time_ms = 0;
  ErrorCode error_code = ErrorCode::kNone;
  std::int64_t producer_id = -1;
  std::int16_t producer_epoch = -1;
  friend bool operator==(const InitProducerIdResponse&, const InitProducerIdResponse&) = default;
};

bool decode(ByteReader& r, std::int16_t version, InitProducerIdRequest& m);
void encode(ByteWriter& w, std::int16_t version, const InitProducerIdRequest& m);
void encode(ByteWriter& w, std::int16_t version, const InitProducerIdResponse& m);
bool decode(ByteReader& r, std::int16_t version, InitProducerIdResponse& m);

}  // namespace sluice::kafka
