// Kafka codec (core/src/kafka/messages.h, protocol.h): request headers (v1, and v2 for
// ApiVersions v3+), response frames, golden bytes computed by hand from the protocol guide for
// the layouts clients are most sensitive to, and malformed requests failing cleanly.
#include <catch2/catch.hpp>
#include <string>

#include "kafka/messages.h"
#include "kafka/protocol.h"

using namespace sluice::kafka;

namespace {

// "00 01 ff" -> bytes.
std::string hex(std::string_view s) {
  std::string out;
  int nibbles = 0;
  unsigned v = 0;
  for (char c : s) {
    if (c == ' ') continue;
    v = v * 16 + static_cast<unsigned>(c <= '9' ? c - '0' : c - 'a' + 10);
    if (++nibbles == 2) {
      out.push_back(static_cast<char>(v));
      nibbles = 0;
      v = 0;
    }
  }
  return out;
}

template <typename M>
bool decode_all(std::string_view bytes, std::int16_t version, M& m, std::string* why = nullptr) {
  ByteReader r(bytes);
  bool ok = decode(r, version, m);
  if (why != nullptr) *why = r.error() ? r.error() : "";
  return ok;
}

}  // namespace

TEST_CASE("protocol: the advertised ranges are KAFKA-PROTOCOL.md's and the group admin APIs",
          "[kafka][messages]") {
  auto range = [](ApiKey k) {
    auto r = supported_range(to_int(k));
    REQUIRE(r);
    return std::pair{r->min_version, r->max_version};
  };
  using P = std::pair<std::int16_t, std::int16_t>;
  CHECK(range(ApiKey::kApiVersions) == P{0, 2});
  CHECK(range(ApiKey::kMetadata) == P{0, 8});
  CHECK(range(ApiKey::kProduce) == P{3, 8});
  CHECK(range(ApiKey::kFetch) == P{4, 11});
  CHECK(range(ApiKey::kListOffsets) == P{0, 5});
  CHECK(range(ApiKey::kFindCoordinator) == P{0, 2});
  CHECK(range(ApiKey::kJoinGroup) == P{0, 5});
  CHECK(range(ApiKey::kSyncGroup) == P{0, 3});
  CHECK(range(ApiKey::kHeartbeat) == P{0, 3});
  CHECK(range(ApiKey::kLeaveGroup) == P{0, 1});
  CHECK(range(ApiKey::kOffsetCommit) == P{0, 7});
  CHECK(range(ApiKey::kOffsetFetch) == P{0, 5});
  CHECK(range(ApiKey::kCreateTopics) == P{0, 4});
  CHECK(range(ApiKey::kDeleteTopics) == P{0, 3});
  CHECK(range(ApiKey::kInitProducerId) == P{0, 1});
  CHECK(range(ApiKey::kDescribeConfigs) == P{0, 3});
  // Kafka's group admin APIs (kafka-consumer-groups.sh, admin clients), non-flexible versions.
  CHECK(range(ApiKey::kDescribeGroups) == P{0, 4});
  CHECK(range(ApiKey::kListGroups) == P{0, 2});
  CHECK(range(ApiKey::kDeleteGroups) == P{0, 1});
  CHECK(range(ApiKey::kCreatePartitions) == P{0, 1});
  CHECK(range(ApiKey::kDescribeLogDirs) == P{0, 1});
  CHECK(range(ApiKey::kDeleteRecords) == P{0, 1});
  CHECK(range(ApiKey::kAlterConfigs) == P{0, 1});
  CHECK(range(ApiKey::kIncrementalAlterConfigs) == P{0, 0});
  CHECK(range(ApiKey::kOffsetDelete) == P{0, 0});
  CHECK(api_name(16) == "ListGroups");
  CHECK_FALSE(supported_range(4));  // LeaderAndIsr: not served
  CHECK(is_supported(0, 3));
  CHECK_FALSE(is_supported(0, 2));
  CHECK_FALSE(is_supported(18, 3));
  CHECK(api_name(1) == "Fetch");
  CHECK(api_name(99) == "Unknown");
  CHECK(error_name(ErrorCode::kUnknownTopicOrPartition) == "UNKNOWN_TOPIC_OR_PARTITION");
  CHECK(error_name(static_cast<ErrorCode>(1000)) == "UNKNOWN_ERROR_CODE");
  CHECK(to_int(ErrorCode::kMemberIdRequired) == 79);
  CHECK(to_int(ErrorCode::kThrottlingQuotaExceeded) == 89);
}

TEST_CASE("messages: request header v1 round-trips, null client id included", "[kafka][messages]") {
  for (NullableString client : {NullableString{"kcat"}, NullableString{}}) {
    RequestHeader h{3, 8, 12345, client};
    ByteWriter w;
    encode_request_header(w, h);
    CHECK(w.size() == 2 + 2 + 4 + 2 + (client ? client->size() : 0));
    ByteReader r(w.buffer());
    RequestHeader got;
    REQUIRE(decode_request_header(r, got));
    CHECK(got == h);
    CHECK(r.remaining() == 0);
  }
}

TEST_CASE("messages: ApiVersions v3 request header v2 and body are parsed", "[kafka][messages]") {
  // api_key 18, version 3, correlation 9, client_id "rdkafka", header tagged fields: one field
  // (tag 0, 2 bytes), then body: compact "librdkafka", compact "2.0.2", no tagged fields.
  std::string frame = hex("0012 0003 00000009 0007") + "rdkafka" + hex("01 00 02 abcd") +
                      hex("0b") + "librdkafka" + hex("06") + "2.0.2" + hex("00");
  ByteReader r(frame);
  RequestHeader h;
  REQUIRE(decode_request_header(r, h));
  CHECK(h.api_key == 18);
  CHECK(h.api_version == 3);
  CHECK(h.correlation_id == 9);
  CHECK(h.client_id == "rdkafka");
  ApiVersionsRequest req;
  REQUIRE(decode(r, h.api_version, req));
  CHECK(req.client_software_name == "librdkafka");
  CHECK(req.client_software_version == "2.0.2");

  // Our own encoder writes the same header (with an empty tagged section) and body.
  ByteWriter w;
  std::size_t at = begin_request(w, {18, 3, 9, "rdkafka"});
  encode(w, 3, req);
  end_request(w, at);
  CHECK(w.buffer() == hex("00000024 0012 0003 00000009 0007") + "rdkafka" + hex("00 0b") +
                          "librdkafka" + hex("06") + "2.0.2" + hex("00"));

  // A truncated tagged section fails.
  std::string bad = hex("0012 0003 00000009 ffff 01 00 05 ab");
  ByteReader br(bad);
  CHECK_FALSE(decode_request_header(br, h));
  // A v2 header is only used for ApiVersions v3+: v2 requests have no tagged section.
  std::string v2 = hex("0012 0002 00000001 ffff");
  ByteReader r2(v2);
  REQUIRE(decode_request_header(r2, h));
  CHECK(r2.remaining() == 0);
  ApiVersionsRequest empty;
  CHECK(decode(r2, 2, empty));
}

TEST_CASE("messages: DeleteRecords matches hand-computed bytes", "[kafka][messages]") {
  // Kafka's schema, v0 and v1 alike: topics, each a name and (partition, offset) pairs; timeout.
  DeleteRecordsRequest req{{{"t", {{1, 300}}}}, 5000};
  ByteWriter w;
  encode(w, 1, req);
  CHECK(w.buffer() == hex("00000001 0001 74 00000001 00000001 000000000000012c 00001388"));
  // throttle; topics: name, partitions: index, low watermark, error.
  DeleteRecordsResponse resp{
      0, {{"t", {{1, 300, ErrorCode::kNone}, {2, -1, ErrorCode::kOffsetOutOfRange}}}}};
  ByteWriter r;
  encode(r, 0, resp);
  CHECK(r.buffer() == hex("00000000 00000001 0001 74 00000002 00000001 000000000000012c 0000 "
                          "00000002 ffffffffffffffff 0001"));
}

TEST_CASE("messages: DescribeLogDirs matches hand-computed bytes", "[kafka][messages]") {
  // Kafka's schema, v0 and v1 alike: a nullable array of topics, each a name and partitions.
  DescribeLogDirsRequest req{std::vector<DescribeLogDirsRequest::Topic>{{"t", {1}}}};
  ByteWriter w;
  encode(w, 1, req);
  CHECK(w.buffer() == hex("00000001 0001 74 00000001 00000001"));
  ByteWriter all;
  encode(all, 0, DescribeLogDirsRequest{});
  CHECK(all.buffer() == hex("ffffffff"));
  // throttle; results: error, log_dir, topics: name, partitions: index, size, lag, future.
  DescribeLogDirsResponse resp{0, {{ErrorCode::kNone, "/d", {{"t", {{1, 1024, 0, false}}}}}}};
  ByteWriter r;
  encode(r, 1, resp);
  CHECK(r.buffer() == hex("00000000 00000001 0000 0002 2f64 00000001 0001 74 00000001 "
                          "00000001 0000000000000400 0000000000000000 00"));
}

TEST_CASE("messages: ApiVersions responses match hand-computed bytes", "[kafka][messages]") {
  ApiVersionsResponse resp;
  resp.api_keys = {{18, 0, 2}};
  resp.throttle_time_ms = 0x01020304;

  ByteWriter v0;
  std::size_t at = begin_response(v0, 7);
  encode(v0, 0, resp);
  end_response(v0, at);
  CHECK(v0.buffer() == hex("00000010 00000007 0000 00000001 0012 0000 0002"));

  ByteWriter v1;
  at = begin_response(v1, 7);
  encode(v1, 1, resp);
  end_response(v1, at);
  CHECK(v1.buffer() == hex("00000014 00000007 0000 00000001 0012 0000 0002 01020304"));

  // The reply to a v3+ request: v0 layout, UNSUPPORTED_VERSION (35), every supported API.
  ByteWriter v3;
  encode(v3, 0, api_versions_response(ErrorCode::kUnsupportedVersion));
  CHECK(v3.buffer().substr(0, 6) == hex("0023 00000019"));
  CHECK(v3.size() == 2 + 4 + 25 * 6);
  ApiVersionsResponse got;
  REQUIRE(decode_all(v3.buffer(), 0, got));
  CHECK(got.error_code == ErrorCode::kUnsupportedVersion);
  bool lists_api_versions = false;
  for (const auto& k : got.api_keys) {
    if (k.api_key == 18) lists_api_versions = k.min_version == 0 && k.max_version == 2;
  }
  CHECK(lists_api_versions);

  ByteReader r(v1.buffer());
  CHECK(r.i32() == 0x14);
  std::int32_t correlation = 0;
  REQUIRE(decode_response_header(r, correlation));
  CHECK(correlation == 7);
}

TEST_CASE("messages: Metadata v1 request matches hand-computed bytes", "[kafka][messages]") {
  ByteWriter w;
  std::size_t at = begin_request(w, {3, 1, 1, "c"});
  encode(w, 1, MetadataRequest{std::vector<std::string_view>{"t"}, true, false, false});
  end_request(w, at);
  CHECK(w.buffer() == hex("00000012 0003 0001 00000001 0001 63 00000001 0001 74"));

  // v1+ null array: all topics; v0: an empty array means all topics.
  ByteWriter all;
  encode(all, 1, MetadataRequest{});
  CHECK(all.buffer() == hex("ffffffff"));
  MetadataRequest got;
  REQUIRE(decode_all(hex("00000000"), 1, got));
  REQUIRE(got.topics);
  CHECK(got.topics->empty());
  REQUIRE(decode_all(hex("00000000"), 0, got));
  CHECK_FALSE(got.topics);
  ByteWriter v0;
  encode(v0, 0, MetadataRequest{});
  CHECK(v0.buffer() == hex("00000000"));
}

TEST_CASE("messages: Produce v3 request matches hand-computed bytes", "[kafka][messages]") {
  std::string frame = hex("00000028 0000 0003 00000002 0001 6b") +  // header, client "k"
                      hex("ffff ffff 000003e8") +  // null transactional id, acks -1, 1000 ms
                      hex("00000001 0001 74") +    // one topic "t"
                      hex("00000001 00000000 00000002") + "ab";  // partition 0, 2 record bytes
  ProduceRequest req;
  req.acks = -1;
  req.timeout_ms = 1000;
  req.topics = {{"t", {{0, "ab"}}}};
  ByteWriter w;
  std::size_t at = begin_request(w, {0, 3, 2, "k"});
  encode(w, 3, req);
  end_request(w, at);
  CHECK(w.buffer() == frame);

  ByteReader r(std::string_view(frame).substr(4));
  RequestHeader h;
  REQUIRE(decode_request_header(r, h));
  CHECK(h == RequestHeader{0, 3, 2, "k"});
  ProduceRequest got;
  REQUIRE(decode(r, 3, got));
  CHECK(got == req);
  // The records view points into the frame: no copy.
  CHECK(got.topics[0].partitions[0].records->data() == frame.data() + frame.size() - 2);

  // Null records decode as nullopt.
  ProduceRequest null_records;
  REQUIRE(decode_all(hex("ffff 0001 00000000 00000001 0001 74 00000001 00000000 ffffffff"), 3,
                     null_records));
  CHECK_FALSE(null_records.topics[0].partitions[0].records);
}

TEST_CASE("messages: the pitfall layouts are exact", "[kafka][messages]") {
  // ListOffsets v4 response: leader_epoch is an int32 after offset (not int64).
  ListOffsetsResponse lo{0, {{"t", {{0, ErrorCode::kNone, {}, -1, 5, 3}}}}};
  ByteWriter w;
  encode(w, 4, lo);
  CHECK(w.buffer() == hex("00000000 00000001 0001 74 00000001 00000000 0000 "
                          "ffffffffffffffff 0000000000000005 00000003"));
  // ListOffsets v0: max_num_offsets in the request, an offsets array in the response.
  ListOffsetsRequest lo_req{-1, 0, {{"t", {{0, -1, -2, 1}}}}};
  ByteWriter w0;
  encode(w0, 0, lo_req);
  CHECK(w0.buffer() == hex("ffffffff 00000001 0001 74 00000001 00000000 fffffffffffffffe "
                           "00000001"));

  // Produce response: log_start_offset from v5, not v6; throttle time last.
  ProduceResponse pr{{{"t", {{0, ErrorCode::kNone, 7, -1, 0, {}, std::nullopt}}}}, 0};
  ByteWriter v4, v5, v8;
  encode(v4, 4, pr);
  encode(v5, 5, pr);
  encode(v8, 8, pr);
  CHECK(v5.size() == v4.size() + 8);
  CHECK(v5.buffer() == hex("00000001 0001 74 00000001 00000000 0000 0000000000000007 "
                           "ffffffffffffffff 0000000000000000 00000000"));
  CHECK(v8.size() == v5.size() + 4 + 2);  // empty record_errors, null error_message

  // Fetch v11 response partition: preferred_read_replica before the records.
  FetchResponse fr{
      0, ErrorCode::kNone, 0, {{"t", {{0, ErrorCode::kNone, 9, 9, 0, std::nullopt, -1, "R"}}}}};
  ByteWriter f;
  encode(f, 11, fr);
  CHECK(f.buffer() == hex("00000000 0000 00000000 00000001 0001 74 00000001 00000000 0000 "
                          "0000000000000009 0000000000000009 0000000000000000 ffffffff "
                          "ffffffff 00000001 52"));
}

TEST_CASE("messages: malformed requests fail with a reason", "[kafka][messages]") {
  std::string why;
  HeartbeatRequest hb;
  // Negative string length for the group id.
  CHECK_FALSE(decode_all(hex("fffe"), 0, hb, &why));
  CHECK(why == "null or negative string length");
  // Null where a string is required.
  CHECK_FALSE(decode_all(hex("ffff 00000001 0001 6d"), 0, hb, &why));
  CHECK(why == "null or negative string length");
  // Trailing bytes after a complete body.
  CHECK_FALSE(decode_all(hex("0001 67 00000001 0001 6d 00"), 0, hb, &why));
  CHECK(why == "trailing bytes after the message body");
  CHECK(decode_all(hex("0001 67 00000001 0001 6d"), 0, hb));

  // A hostile array count never allocates: it fails against the bytes left.
  FetchRequest fetch;
  CHECK_FALSE(decode_all(hex("ffffffff 00000000 00000001 7fffffff 00 7fffffff"), 4, fetch, &why));
  CHECK(why == "array length exceeds the request");
  DeleteTopicsRequest del;
  CHECK_FALSE(decode_all(hex("80000000 00000000"), 0, del, &why));
  CHECK(why == "negative array length");

  // Negative record bytes length.
  ProduceRequest produce;
  CHECK_FALSE(decode_all(hex("ffff 0001 00000000 00000001 0001 74 00000001 00000000 fffffffe"), 3,
                         produce, &why));
  CHECK(why == "negative bytes length");

  // A truncated header.
  std::string short_header = hex("0003 0001 0000");
  ByteReader r(short_header);
  RequestHeader h;
  CHECK_FALSE(decode_request_header(r, h));

  // A null compact string (length 0) in the ApiVersions v3 body.
  ApiVersionsRequest av;
  CHECK_FALSE(decode_all(hex("00 00 00"), 3, av, &why));
  CHECK(why == "null compact string where a value is required");
  // An overlong unsigned varint.
  CHECK_FALSE(decode_all(hex("ffffffffff7f"), 3, av, &why));
  CHECK(why == "malformed unsigned varint");
}
