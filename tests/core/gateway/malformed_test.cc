// Malformed input and limits: truncated frames, negative and oversized sizes, unknown API keys
// and versions, garbage bodies, and a seeded fuzz loop of random and mutated frames. The
// gateway closes such connections and stays up: afterwards a fresh connection is served and no
// partition holds a record nobody produced. Limits: connections per host, idle connections.
#include <random>
#include <set>
#include <string>
#include <vector>

#include "gateway_test_support.h"

namespace sluice::gateway_test {
namespace {

std::string be32(std::int32_t v) {
  kafka::ByteWriter w;
  w.i32(v);
  return w.take();
}

// A frame whose size prefix is right for `body` (header + body bytes).
std::string framed(std::string_view body) {
  return be32(static_cast<std::int32_t>(body.size())) + std::string(body);
}

std::string header_bytes(std::int16_t key, std::int16_t version, std::int32_t correlation) {
  kafka::ByteWriter w;
  kafka::RequestHeader h;
  h.api_key = key;
  h.api_version = version;
  h.correlation_id = correlation;
  h.client_id = "malformed";
  kafka::encode_request_header(w, h);
  return w.take();
}

// After everything: a fresh connection gets ApiVersions, a produce and fetch round trip works,
// and every record in `topic` is one somebody produced (`known_values`), with good CRCs as a
// local consumer checks them.
void check_broker_healthy(GatewayBroker& broker, const std::string& topic, std::int32_t partitions,
                          std::set<std::string> known_values) {
  check_api_versions(broker);
  KafkaClient c(broker);
  auto p = produce(c, topic, 0, encode_batch({{"after", "healthy", {}, -1, -1}}, 1000));
  REQUIRE(p.error_code == ErrorCode::kNone);
  known_values.insert("healthy");
  std::size_t total = 0;
  for (std::int32_t part = 0; part < partitions; ++part) {
    auto all = fetch_all(c, topic, part);
    for (const auto& r : all) {
      INFO(r);
      REQUIRE(r.value.has_value());
      CHECK(known_values.count(*r.value) == 1);
    }
    total += all.size();
  }
  CHECK(total >= 1);
  // A local consumer verifying CRCs reads the same number of records without damage.
  ConsumerConfig cc;
  cc.data_dir = broker.data_dir();
  cc.verify_crc = true;
  auto consumer = must(Consumer::open(cc));
  std::vector<TopicPartition> tps;
  for (std::int32_t part = 0; part < partitions; ++part) tps.push_back({topic, part});
  GT_REQUIRE_OK(consumer.assign(tps));
  GT_REQUIRE_OK(consumer.seek_to_beginning(tps));
  std::size_t seen = 0;
  std::int64_t deadline = now_ms() + 5000;
  while (seen < total && now_ms() < deadline) {
    auto n = consumer.poll([&](const Record&) { ++seen; }, 1000, 50);
    INFO(n.status().message());
    REQUIRE(n.is_ok());
  }
  CHECK(seen == total);
}

// ---- malformed frames ---------------------------------------------------------------------------

TEST_CASE(
    "gateway: a truncated frame (size 100, 10 bytes, then close) leaves the broker "
    "serving",
    "[kafka][gateway]") {
  GatewayBroker broker;
  broker.create_topic("t", 1);
  for (int i = 0; i < 20; ++i) {
    KafkaClient c(broker);
    REQUIRE(c.send_bytes(be32(100) + std::string(10, '\x01')));
  }
  {
    // Truncated inside a valid header, the connection left open: no answer comes.
    KafkaClient c(broker);
    std::string h = header_bytes(kafka::to_int(ApiKey::kApiVersions), 2, 1);
    REQUIRE(c.send_bytes(be32(static_cast<std::int32_t>(h.size() + 50)) + h));
    CHECK(c.read_frame(300).status == ReadStatus::kTimeout);
  }
  check_broker_healthy(broker, "t", 1, {});
}

TEST_CASE("gateway: a negative or zero frame size closes the connection", "[kafka][gateway]") {
  GatewayBroker broker;
  broker.create_topic("t", 1);
  for (std::int32_t size : {-1, -100, std::numeric_limits<std::int32_t>::min(), 0}) {
    INFO("size " << size);
    KafkaClient c(broker);
    REQUIRE(c.send_bytes(be32(size)));
    CHECK(c.wait_closed());
  }
  check_broker_healthy(broker, "t", 1, {});
}

TEST_CASE(
    "gateway: a frame above kafka_max_request_bytes closes the connection; one below is "
    "served",
    "[kafka][gateway]") {
  GatewayBroker broker([](BrokerConfig& bc) { bc.kafka_max_request_bytes = 1 << 20; });
  broker.create_topic("t", 1);
  {
    KafkaClient c(broker);
    REQUIRE(c.send_bytes(be32((1 << 20) + 1)));
    CHECK(c.wait_closed());
  }
  {
    KafkaClient c(broker);
    REQUIRE(c.send_bytes(be32(std::numeric_limits<std::int32_t>::max())));
    CHECK(c.wait_closed());
  }
  {
    // Just below the limit: a 900 KB produce is served.
    KafkaClient c(broker);
    std::string value(900 * 1000, 'v');
    auto p = produce(c, "t", 0, encode_batch({{"big", value, {}, -1, -1}}, 1000));
    CHECK(p.error_code == ErrorCode::kNone);
    CHECK(p.base_offset == 0);
  }
  check_broker_healthy(broker, "t", 1, {std::string(900 * 1000, 'v')});
}

TEST_CASE(
    "gateway: a compressed batch that inflates past the limit gets MESSAGE_TOO_LARGE "
    "and writes nothing",
    "[kafka][gateway]") {
  // Decompressed batches may reach 4x kafka_max_request_bytes: 4 MiB here.
  GatewayBroker broker([](BrokerConfig& bc) { bc.kafka_max_request_bytes = 1 << 20; });
  broker.create_topic("bomb", 1);
  KafkaClient c(broker);
  std::vector<TestRecord> recs;
  for (int i = 0; i < 60; ++i) recs.push_back({"k", std::string(100'000, '\0'), {}, -1, -1});
  for (kafka::Codec codec : {kafka::Codec::kZstd, kafka::Codec::kGzip, kafka::Codec::kLz4}) {
    INFO(kafka::codec_name(codec));
    std::string bomb = compress_batch(encode_batch(recs, 1000), codec);
    REQUIRE(bomb.size() < (1u << 20));
    auto p = produce(c, "bomb", 0, bomb);
    CHECK(p.error_code == ErrorCode::kMessageTooLarge);
  }
  CHECK(broker.end_offset("bomb") == 0);
  check_broker_healthy(broker, "bomb", 1, {});
}

TEST_CASE("gateway: an unknown API key closes the connection", "[kafka][gateway]") {
  GatewayBroker broker;
  broker.create_topic("t", 1);
  for (std::int16_t key : {std::int16_t{99}, std::int16_t{4}, std::int16_t{17}, std::int16_t{-1},
                           std::int16_t{1000}}) {
    INFO("API key " << key);
    KafkaClient c(broker);
    REQUIRE(c.send_bytes(framed(header_bytes(key, 0, 7))));
    // The connection closes without an answer.
    FrameRead f = c.read_frame(5000);
    CHECK(f.status == ReadStatus::kClosed);
  }
  check_broker_healthy(broker, "t", 1, {});
}

TEST_CASE("gateway: a supported API at an unsupported version closes the connection",
          "[kafka][gateway]") {
  GatewayBroker broker;
  broker.create_topic("t", 1);
  std::string records = encode_batch({{"k", "v", {}, -1, -1}}, 1000);
  struct Case {
    const char* name;
    std::string frame;
  };
  KafkaClient builder(broker);
  auto produce_at = [&](std::int16_t v) {
    return builder.frame(ApiKey::kProduce, v, produce_request("t", 0, records), 5);
  };
  kafka::FetchRequest freq = fetch_request("t", 0, 0);
  std::vector<Case> cases = {
      {"Produce v2", produce_at(2)},
      {"Produce v9", produce_at(9)},
      {"Fetch v12", builder.frame(ApiKey::kFetch, 12, freq, 5)},
      {"Fetch v3", builder.frame(ApiKey::kFetch, 3, freq, 5)},
      {"Metadata v9", framed(header_bytes(kafka::to_int(ApiKey::kMetadata), 9, 5) + be32(-1))},
      {"JoinGroup v6", framed(header_bytes(kafka::to_int(ApiKey::kJoinGroup), 6, 5))},
      {"OffsetFetch v6", framed(header_bytes(kafka::to_int(ApiKey::kOffsetFetch), 6, 5))},
      {"Produce v-1", framed(header_bytes(kafka::to_int(ApiKey::kProduce), -1, 5))},
  };
  for (const Case& k : cases) {
    INFO(k.name);
    KafkaClient c(broker);
    REQUIRE(c.send_bytes(k.frame));
    FrameRead f = c.read_frame(5000);
    CHECK(f.status == ReadStatus::kClosed);
  }
  // Nothing was written by the refused produces.
  CHECK(broker.end_offset("t") == 0);
  check_broker_healthy(broker, "t", 1, {});
}

TEST_CASE("gateway: garbage after a valid header, or a truncated body, closes the connection",
          "[kafka][gateway]") {
  GatewayBroker broker;
  broker.create_topic("t", 1);
  KafkaClient builder(broker);
  kafka::MetadataRequest mreq;
  mreq.topics = std::vector<std::string_view>{"t"};
  std::string metadata = builder.frame(ApiKey::kMetadata, 1, mreq, 3);
  std::string produce_frame =
      builder.frame(ApiKey::kProduce, 7,
                    produce_request("t", 0, encode_batch({{"k", "v", {}, -1, -1}}, 1000)), 3);
  struct Case {
    const char* name;
    std::string frame;
  };
  auto with_tail = [](std::string f, std::string_view tail) {
    f += tail;
    put_be(f, 0, f.size() - 4, 4);
    return f;
  };
  auto truncated = [](std::string f, std::size_t cut) {
    f.resize(f.size() - cut);
    put_be(f, 0, f.size() - 4, 4);
    return f;
  };
  std::vector<Case> cases = {
      {"Metadata + trailing garbage", with_tail(metadata, "\xde\xad\xbe\xef")},
      {"Metadata, body cut", truncated(metadata, 2)},
      {"Produce + trailing garbage", with_tail(produce_frame, "garbage")},
      {"Produce, body cut inside the records", truncated(produce_frame, 10)},
      {"Metadata header, 0xff body",
       framed(header_bytes(kafka::to_int(ApiKey::kMetadata), 1, 3) + std::string(9, '\xff'))},
      {"Fetch header, random-ish body", framed(header_bytes(kafka::to_int(ApiKey::kFetch), 11, 3) +
                                               std::string("\x00\x01\x02\x03\x04", 5))},
      {"ApiVersions v0 + trailing byte",
       framed(header_bytes(kafka::to_int(ApiKey::kApiVersions), 0, 3) + "x")},
      {"header cut inside the client id",
       framed(std::string("\x00\x12\x00\x00\x00\x00\x00\x03\x00\x20short", 15))},
  };
  for (const Case& k : cases) {
    INFO(k.name);
    KafkaClient c(broker);
    REQUIRE(c.send_bytes(k.frame));
    FrameRead f = c.read_frame(5000);
    CHECK(f.status == ReadStatus::kClosed);
  }
  CHECK(broker.end_offset("t") == 0);
  check_broker_healthy(broker, "t", 1, {});
}

TEST_CASE(
    "gateway: thousands of random and mutated frames never crash the broker nor write a "
    "record nobody produced",
    "[kafka][gateway]") {
  GatewayBroker broker([](BrokerConfig& bc) { bc.kafka_max_request_bytes = 1 << 20; });
  broker.create_topic("fuzz", 2);
  std::set<std::string> known;
  // Valid requests to mutate: every API, with records for Produce (whose values we know).
  KafkaClient builder(broker);
  std::vector<std::string> seeds;
  {
    std::vector<TestRecord> recs;
    for (int i = 0; i < 4; ++i) {
      std::string v = "seed-" + std::to_string(i);
      known.insert(v);
      recs.push_back({"k" + std::to_string(i), v, {{"h", "x"}, {"n", std::nullopt}}, -1, -1});
    }
    std::string plain = encode_batch(recs, 1000);
    std::string zstd = compress_batch(plain, kafka::Codec::kZstd);
    std::string gzip = compress_batch(plain, kafka::Codec::kGzip);
    for (std::int16_t v = 3; v <= 8; ++v) {
      seeds.push_back(
          builder.frame(ApiKey::kProduce, v, produce_request("fuzz", v % 2, plain, 1), 0));
      seeds.push_back(builder.frame(ApiKey::kProduce, v, produce_request("fuzz", 0, zstd, -1), 0));
      seeds.push_back(builder.frame(ApiKey::kProduce, v, produce_request("fuzz", 1, gzip, 0), 0));
    }
    kafka::MetadataRequest m;
    m.topics = std::vector<std::string_view>{"fuzz", "other"};
    for (std::int16_t v = 0; v <= 8; ++v)
      seeds.push_back(builder.frame(ApiKey::kMetadata, v, m, 0));
    kafka::ListOffsetsRequest lo;
    lo.topics.push_back({"fuzz", {{0, -1, -1, 1}, {1, -1, -2, 1}}});
    for (std::int16_t v = 0; v <= 5; ++v)
      seeds.push_back(builder.frame(ApiKey::kListOffsets, v, lo, 0));
    kafka::OffsetCommitRequest oc;
    oc.group_id = "fuzz-group";
    oc.topics.push_back({"fuzz", {{0, 1, -1, -1, "meta"}}});
    for (std::int16_t v = 0; v <= 7; ++v)
      seeds.push_back(builder.frame(ApiKey::kOffsetCommit, v, oc, 0));
    kafka::OffsetFetchRequest of;
    of.group_id = "fuzz-group";
    of.topics = std::vector<kafka::OffsetFetchRequest::Topic>{{"fuzz", {0, 1}}};
    for (std::int16_t v = 0; v <= 5; ++v)
      seeds.push_back(builder.frame(ApiKey::kOffsetFetch, v, of, 0));
    kafka::HeartbeatRequest hb;
    hb.group_id = "fuzz-group";
    hb.member_id = "m";
    for (std::int16_t v = 0; v <= 3; ++v)
      seeds.push_back(builder.frame(ApiKey::kHeartbeat, v, hb, 0));
    kafka::SyncGroupRequest sg;
    sg.group_id = "fuzz-group";
    sg.member_id = "m";
    sg.assignments.push_back({"m", "abc"});
    for (std::int16_t v = 0; v <= 3; ++v)
      seeds.push_back(builder.frame(ApiKey::kSyncGroup, v, sg, 0));
    kafka::LeaveGroupRequest lg;
    lg.group_id = "fuzz-group";
    lg.member_id = "m";
    for (std::int16_t v = 0; v <= 1; ++v)
      seeds.push_back(builder.frame(ApiKey::kLeaveGroup, v, lg, 0));
    kafka::FindCoordinatorRequest fc;
    fc.key = "fuzz-group";
    for (std::int16_t v = 0; v <= 2; ++v)
      seeds.push_back(builder.frame(ApiKey::kFindCoordinator, v, fc, 0));
    kafka::DescribeConfigsRequest dc;
    dc.resources.push_back({kafka::kConfigResourceTopic, "fuzz", std::nullopt});
    for (std::int16_t v = 0; v <= 3; ++v)
      seeds.push_back(builder.frame(ApiKey::kDescribeConfigs, v, dc, 0));
    for (std::int16_t v = 0; v <= 1; ++v)
      seeds.push_back(builder.frame(ApiKey::kInitProducerId, v, kafka::InitProducerIdRequest{}, 0));
    kafka::DescribeGroupsRequest dg;
    dg.groups = {"fuzz-group", "other"};
    for (std::int16_t v = 0; v <= 4; ++v)
      seeds.push_back(builder.frame(ApiKey::kDescribeGroups, v, dg, 0));
    for (std::int16_t v = 0; v <= 2; ++v)
      seeds.push_back(builder.frame(ApiKey::kListGroups, v, kafka::ListGroupsRequest{}, 0));
    kafka::DeleteGroupsRequest del;
    del.groups_names = {"fuzz-group"};
    for (std::int16_t v = 0; v <= 1; ++v)
      seeds.push_back(builder.frame(ApiKey::kDeleteGroups, v, del, 0));
    kafka::OffsetDeleteRequest od;
    od.group_id = "fuzz-group";
    od.topics.push_back({"fuzz", {0, 1}});
    seeds.push_back(builder.frame(ApiKey::kOffsetDelete, 0, od, 0));
    for (std::int16_t v = 0; v <= 3; ++v)
      seeds.push_back(builder.frame(ApiKey::kApiVersions, v, kafka::ApiVersionsRequest{}, 0));
    // Fetch with max_wait 0; the fuzzer leaves its max_wait bytes alone (body bytes 4..7),
    // so that a mutant does not park for a random time.
    kafka::FetchRequest fr = fetch_request("fuzz", 0, 0, 0, 1);
    for (std::int16_t v = 4; v <= 11; ++v) seeds.push_back(builder.frame(ApiKey::kFetch, v, fr, 0));
  }
  // Topic administration is left out (mutants would create and delete topics at random), and
  // JoinGroup too (a mutant joins wait for rebalances).

  std::mt19937_64 rng(20240501);
  auto uniform = [&](std::size_t n) { return static_cast<std::size_t>(rng() % n); };
  constexpr std::int32_t kProbe = 0x7ead0000;  // the correlation id of the ApiVersions probe
  const std::string probe =
      builder.frame(ApiKey::kApiVersions, 2, kafka::ApiVersionsRequest{}, kProbe);
  const int iterations = 3000;
  int closed = 0, answered = 0, timeouts = 0;
  for (int i = 0; i < iterations; ++i) {
    std::string frame;
    const std::size_t kind = uniform(10);
    if (kind < 2) {
      // A random header (often a key or version the gateway does not serve) and random bytes.
      std::string body(4 + uniform(120), '\0');
      for (char& ch : body) ch = static_cast<char>(rng());
      frame = framed(body);
    } else if (kind < 4) {
      // A served key and version, a valid header, random bytes after it.
      const auto& api = kafka::kSupportedApis[uniform(kafka::kSupportedApis.size())];
      auto v = static_cast<std::int16_t>(
          api.min_version + static_cast<std::int16_t>(uniform(
                                static_cast<std::size_t>(api.max_version - api.min_version + 1))));
      if (api.api_key == ApiKey::kFetch || api.api_key == ApiKey::kJoinGroup ||
          api.api_key == ApiKey::kCreateTopics || api.api_key == ApiKey::kDeleteTopics)
        continue;
      std::string body(uniform(160), '\0');
      for (char& ch : body) ch = static_cast<char>(rng());
      frame = framed(header_bytes(kafka::to_int(api.api_key), v, i) + body);
    } else {
      // A valid request, mutated: a few bytes changed, cut short, or extended.
      frame = seeds[uniform(seeds.size())];
      std::int16_t key = static_cast<std::int16_t>((static_cast<unsigned char>(frame[4]) << 8) |
                                                   static_cast<unsigned char>(frame[5]));
      const std::size_t header_end = 4 + 10 + std::strlen("gateway-test");
      int how = static_cast<int>(uniform(4));
      if (how <= 1) {
        std::size_t flips = 1 + uniform(4);
        for (std::size_t f = 0; f < flips; ++f) {
          std::size_t at = 4 + uniform(frame.size() - 4);
          if (key == kafka::to_int(ApiKey::kFetch) && at >= header_end + 4 && at < header_end + 8)
            continue;  // max_wait_ms
          frame[at] = static_cast<char>(rng());
        }
      } else if (how == 2) {
        frame.resize(4 + uniform(frame.size() - 4));
      } else {
        std::size_t extra = 1 + uniform(16);
        for (std::size_t e = 0; e < extra; ++e) frame.push_back(static_cast<char>(rng()));
      }
      put_be(frame, 0, frame.size() - 4, 4);
      if (frame.size() == 4) frame += '\0';
      put_be(frame, 0, frame.size() - 4, 4);
    }
    KafkaClient c(broker);
    // The fuzzed frame, then a probe: either the connection closes, or the probe's answer
    // comes (after the fuzzed frame's, if it had one).
    if (!c.send_bytes(frame + probe)) {
      ++closed;
      continue;
    }
    bool done = false;
    while (!done) {
      FrameRead f = c.read_frame(2000);
      if (f.status == ReadStatus::kClosed) {
        ++closed;
        done = true;
      } else if (f.status == ReadStatus::kTimeout) {
        ++timeouts;
        done = true;
      } else {
        kafka::ByteReader r(f.body);
        std::int32_t id = 0;
        REQUIRE(kafka::decode_response_header(r, id));
        if (id == kProbe) {
          ++answered;
          done = true;
        }
      }
    }
  }
  INFO("closed " << closed << ", answered " << answered << ", timed out " << timeouts);
  CHECK(closed + answered + timeouts > iterations / 2);
  CHECK(closed > 100);
  CHECK(answered > 100);
  CHECK(timeouts <= 3);
  check_broker_healthy(broker, "fuzz", 2, known);
}

// ---- limits
// ---------------------------------------------------------------------------------------

TEST_CASE("gateway: kafka_max_connections_per_host closes a connection above the limit",
          "[kafka][gateway]") {
  GatewayBroker broker([](BrokerConfig& bc) { bc.kafka_max_connections_per_host = 2; });
  auto one = std::make_unique<KafkaClient>(broker);
  KafkaClient two(broker);
  // Both are served (and so counted).
  for (KafkaClient* c : {one.get(), &two})
    CHECK(c->call<kafka::ApiVersionsResponse>(ApiKey::kApiVersions, 2, kafka::ApiVersionsRequest{})
              ->error_code == ErrorCode::kNone);
  {
    KafkaClient three(broker);
    CHECK(three.wait_closed(3000));
  }
  // One closes: room again (once the gateway noticed).
  one.reset();
  bool served = eventually(
      [&] {
        KafkaClient again(broker);
        std::int32_t id = again.send(ApiKey::kApiVersions, 2, kafka::ApiVersionsRequest{});
        FrameRead f = again.read_frame(1000);
        if (f.status != ReadStatus::kFrame) return false;
        kafka::ByteReader r(f.body);
        std::int32_t got = 0;
        return kafka::decode_response_header(r, got) && got == id;
      },
      5000);
  CHECK(served);
  // The survivor was never disturbed.
  CHECK(two.call<kafka::ApiVersionsResponse>(ApiKey::kApiVersions, 2, kafka::ApiVersionsRequest{})
            ->error_code == ErrorCode::kNone);
}

TEST_CASE("gateway: kafka_idle_timeout_ms closes idle connections, not busy ones",
          "[kafka][gateway]") {
  GatewayBroker broker([](BrokerConfig& bc) { bc.kafka_idle_timeout_ms = 300; });
  KafkaClient busy(broker);
  KafkaClient idle(broker);
  CHECK(idle.call<kafka::ApiVersionsResponse>(ApiKey::kApiVersions, 2, kafka::ApiVersionsRequest{})
            ->error_code == ErrorCode::kNone);
  // The busy one sends a request every 100 ms for about 1.5 s: never idle for 300 ms, so every
  // call is answered (receive() REQUIREs the answer).
  std::int64_t start = now_ms();
  while (now_ms() - start < 1500) {
    auto reply =
        busy.call<kafka::ApiVersionsResponse>(ApiKey::kApiVersions, 2, kafka::ApiVersionsRequest{});
    CHECK(reply->error_code == ErrorCode::kNone);
    sleep_ms(100);
  }
  // By now the idle one was closed (read returns 0 at once).
  CHECK(idle.wait_closed(100));
  // Then the busy one goes quiet and is closed too, after about the timeout.
  std::int64_t quiet = now_ms();
  CHECK(busy.wait_closed(5000));
  CHECK(now_ms() - quiet >= 100);
}

}  // namespace
}  // namespace sluice::gateway_test
