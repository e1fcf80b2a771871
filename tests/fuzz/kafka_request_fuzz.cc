// libFuzzer target for the Kafka request decoder (core/src/kafka/messages.h): the input is one
// request frame body (request header + request body, without the int32 size). For every
// advertised (api_key, version), and ApiVersions v3+, the body is decoded; a body that decodes
// must re-encode and decode again to an equal message. Crashes, sanitizer reports and that
// property failing are findings.
//
// Seed mode: with SLUICE_FUZZ_SEEDS_DIR=DIR set, the binary writes one valid request per
// advertised API version into DIR and exits (scripts/fuzz.sh builds its corpus this way, so
// no binary corpus is committed).
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>
#include <vector>

#include "kafka/messages.h"
#include "kafka/protocol.h"

using namespace sluice::kafka;

namespace {

// Decodes, re-encodes and decodes again; aborts when the second decode fails or differs.
template <typename M>
void check(ByteReader& r, const RequestHeader& h) {
  std::int16_t version = h.api_version;
  M m;
  if (!decode(r, version, m)) return;
  ByteWriter w;
  encode(w, version, m);
  ByteReader again(w.buffer());
  M m2;
  if (!decode(again, version, m2) || !(m2 == m)) {
    std::fprintf(stderr, "re-encoded request does not decode to itself: %s v%d (%s)\n",
                 std::string(api_name(h.api_key)).c_str(), version,
                 again.error() ? again.error() : "differs");
    std::abort();
  }
}

// Calls f.template operator()<XxxRequest>() for the request type of api_key.
template <typename F>
void with_request_type(std::int16_t api_key, F&& f) {
  switch (static_cast<ApiKey>(api_key)) {
    case ApiKey::kProduce:
      return f.template operator()<ProduceRequest>();
    case ApiKey::kFetch:
      return f.template operator()<FetchRequest>();
    case ApiKey::kListOffsets:
      return f.template operator()<ListOffsetsRequest>();
    case ApiKey::kMetadata:
      return f.template operator()<MetadataRequest>();
    case ApiKey::kOffsetCommit:
      return f.template operator()<OffsetCommitRequest>();
    case ApiKey::kOffsetFetch:
      return f.template operator()<OffsetFetchRequest>();
    case ApiKey::kFindCoordinator:
      return f.template operator()<FindCoordinatorRequest>();
    case ApiKey::kJoinGroup:
      return f.template operator()<JoinGroupRequest>();
    case ApiKey::kHeartbeat:
      return f.template operator()<HeartbeatRequest>();
    case ApiKey::kLeaveGroup:
      return f.template operator()<LeaveGroupRequest>();
    case ApiKey::kSyncGroup:
      return f.template operator()<SyncGroupRequest>();
    case ApiKey::kApiVersions:
      return f.template operator()<ApiVersionsRequest>();
    case ApiKey::kCreateTopics:
      return f.template operator()<CreateTopicsRequest>();
    case ApiKey::kDeleteTopics:
      return f.template operator()<DeleteTopicsRequest>();
    case ApiKey::kInitProducerId:
      return f.template operator()<InitProducerIdRequest>();
    case ApiKey::kDescribeConfigs:
      return f.template operator()<DescribeConfigsRequest>();
    case ApiKey::kDescribeGroups:
      return f.template operator()<DescribeGroupsRequest>();
    case ApiKey::kListGroups:
      return f.template operator()<ListGroupsRequest>();
    case ApiKey::kDeleteGroups:
      return f.template operator()<DeleteGroupsRequest>();
    case ApiKey::kCreatePartitions:
      return f.template operator()<CreatePartitionsRequest>();
    case ApiKey::kDescribeLogDirs:
      return f.template operator()<DescribeLogDirsRequest>();
    case ApiKey::kDeleteRecords:
      return f.template operator()<DeleteRecordsRequest>();
    case ApiKey::kOffsetDelete:
      return f.template operator()<OffsetDeleteRequest>();
    case ApiKey::kAlterConfigs:
      return f.template operator()<AlterConfigsRequest>();
    case ApiKey::kIncrementalAlterConfigs:
      return f.template operator()<IncrementalAlterConfigsRequest>();
  }
}

// ---------------------------------------------------------------------------------------------
// Seeds: one small valid request per API, encoded at every advertised version.

ProduceRequest seed(ProduceRequest m) {
  m.acks = 1;
  m.timeout_ms = 1000;
  m.topics = {{"orders", {{0, "records"}}}};
  return m;
}
FetchRequest seed(FetchRequest m) {
  m.max_wait_ms = 500;
  m.min_bytes = 1;
  m.topics = {{"orders", {{0, 0, 10, 0, 1048576}}}};
  m.forgotten_topics_data = {{"old", {1}}};
  m.rack_id = "r";
  return m;
}
ListOffsetsRequest seed(ListOffsetsRequest m) {
  m.topics = {{"orders", {{0, -1, -2, 1}}}};
  return m;
}
MetadataRequest seed(MetadataRequest m) {
  m.topics = std::vector<std::string_view>{"orders"};
  return m;
}
OffsetCommitRequest seed(OffsetCommitRequest m) {
  m.group_id = "g";
  m.member_id = "m";
  m.topics = {{"orders", {{0, 5, -1, -1, "meta"}}}};
  return m;
}
OffsetFetchRequest seed(OffsetFetchRequest m) {
  m.group_id = "g";
  m.topics = std::vector<OffsetFetchRequest::Topic>{{"orders", {0, 1}}};
  return m;
}
FindCoordinatorRequest seed(FindCoordinatorRequest m) {
  m.key = "g";
  return m;
}
JoinGroupRequest seed(JoinGroupRequest m) {
  m.group_id = "g";
  m.session_timeout_ms = 10000;
  m.protocol_type = "consumer";
  m.protocols = {{"range", "meta"}};
  return m;
}
HeartbeatRequest seed(HeartbeatRequest m) {
  m.group_id = "g";
  m.member_id = "m";
  return m;
}
LeaveGroupRequest seed(LeaveGroupRequest m) {
  m.group_id = "g";
  m.member_id = "m";
  return m;
}
SyncGroupRequest seed(SyncGroupRequest m) {
  m.group_id = "g";
  m.member_id = "m";
  m.assignments = {{"m", "assignment"}};
  return m;
}
ApiVersionsRequest seed(ApiVersionsRequest m) {
  return m;
}
CreateTopicsRequest seed(CreateTopicsRequest m) {
  m.topics = {{"t", 3, 1, {{0, {1}}}, {{"retention.ms", "1000"}}}};
  return m;
}
DeleteTopicsRequest seed(DeleteTopicsRequest m) {
  m.topic_names = {"t"};
  return m;
}
InitProducerIdRequest seed(InitProducerIdRequest m) {
  m.transaction_timeout_ms = 60000;
  return m;
}
DescribeConfigsRequest seed(DescribeConfigsRequest m) {
  m.resources = {{kConfigResourceTopic, "orders", std::nullopt}};
  return m;
}
DescribeGroupsRequest seed(DescribeGroupsRequest m) {
  m.groups = {"g", "h"};
  m.include_authorized_operations = true;
  return m;
}
ListGroupsRequest seed(ListGroupsRequest m) {
  return m;
}
CreatePartitionsRequest seed(CreatePartitionsRequest m) {
  m.topics = {{"t", 4, std::vector<std::vector<std::int32_t>>{{0}}}, {"u", 2, std::nullopt}};
  m.timeout_ms = 1000;
  return m;
}
DeleteRecordsRequest seed(DeleteRecordsRequest m) {
  m.topics = {{"t", {{0, 10}, {1, -1}}}};
  m.timeout_ms = 1000;
  return m;
}
DescribeLogDirsRequest seed(DescribeLogDirsRequest m) {
  m.topics = std::vector<DescribeLogDirsRequest::Topic>{{"t", {0, 1}}, {"u", {}}};
  return m;
}
AlterConfigsRequest seed(AlterConfigsRequest m) {
  m.resources = {{kConfigResourceTopic, "t", {{"retention.ms", "1000"}, {"segment.bytes", {}}}}};
  return m;
}
IncrementalAlterConfigsRequest seed(IncrementalAlterConfigsRequest m) {
  m.resources = {
      {kConfigResourceTopic,
       "t",
       {{"retention.ms", kConfigOpSet, "1000"}, {"segment.bytes", kConfigOpDelete, {}}}}};
  return m;
}
OffsetDeleteRequest seed(OffsetDeleteRequest m) {
  m.group_id = "g";
  m.topics = {{"orders", {0, 1}}};
  return m;
}
DeleteGroupsRequest seed(DeleteGroupsRequest m) {
  m.groups_names = {"g"};
  return m;
}

void write_seeds(const char* dir) {
  int written = 0;
  auto write = [&](std::int16_t key, std::int16_t v, auto message) {
    ByteWriter w;
    encode_request_header(w, {key, v, 1, "fuzz"});
    encode(w, v, message);
    std::string path =
        std::string(dir) + "/" + std::string(api_name(key)) + "-v" + std::to_string(v);
    std::FILE* f = std::fopen(path.c_str(), "wb");
    if (f == nullptr) {
      std::perror(path.c_str());
      std::exit(1);
    }
    std::fwrite(w.buffer().data(), 1, w.size(), f);
    std::fclose(f);
    ++written;
  };
  for (const ApiVersionRange& range : kSupportedApis) {
    std::int16_t key = to_int(range.api_key);
    std::int16_t max = range.api_key == ApiKey::kApiVersions ? 3 : range.max_version;
    for (std::int16_t v = range.min_version; v <= max; ++v) {
      with_request_type(key, [&]<typename M>() { write(key, v, seed(M{})); });
    }
  }
  std::fprintf(stderr, "wrote %d seed requests to %s\n", written, dir);
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int* /*argc*/, char*** /*argv*/) {
  if (const char* dir = std::getenv("SLUICE_FUZZ_SEEDS_DIR")) {
    write_seeds(dir);
    std::exit(0);
  }
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  ByteReader r(std::string_view(reinterpret_cast<const char*>(data), size));
  RequestHeader h;
  if (!decode_request_header(r, h)) return 0;
  bool v0_error_reply =
      h.api_key == to_int(ApiKey::kApiVersions) && h.api_version >= kFirstFlexibleApiVersions;
  if (!is_supported(h.api_key, h.api_version) && !v0_error_reply) return 0;
  with_request_type(h.api_key, [&]<typename M>() { check<M>(r, h); });
  return 0;
}
