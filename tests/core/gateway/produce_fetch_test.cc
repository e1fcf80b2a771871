// The gateway's data path end to end: Produce then Fetch with keys, nulls, headers and
// timestamps; the same records seen by local sluice::Consumer / sent by sluice::Producer
// ("one truth"); compressed batches, bad CRCs, magic 0/1 message sets; idempotent producers;
// acks; the Fetch long poll and offset errors; ListOffsets.
#include <sys/resource.h>
#include <zlib.h>

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <future>
#include <string>
#include <vector>

#include "gateway_test_support.h"
#include "process_support.h"
#include "shm/segment.h"

namespace sluice::gateway_test {
namespace {

constexpr std::int64_t kBaseTs = 1'700'000'000'000;  // ms

// Records with keys, a null key, a tombstone, headers with a null value, distinct timestamps.
std::vector<TestRecord> mixed_records(int n) {
  std::vector<TestRecord> out;
  for (int i = 0; i < n; ++i) {
    TestRecord r;
    r.key = "key-" + std::to_string(i);
    r.value = "value-" + std::to_string(i) + std::string(static_cast<std::size_t>(i * 7), 'x');
    r.timestamp_ms = kBaseTs + i * 10;
    if (i % 4 == 1) r.key.reset();
    if (i % 5 == 2) r.value.reset();  // tombstone
    if (i % 3 == 0) r.headers = {{"trace", "t" + std::to_string(i)}, {"nullable", std::nullopt}};
    out.push_back(std::move(r));
  }
  return out;
}

// `n` records of 1000-byte values ('a', 'b', ... in turn), key "k", timestamps kBaseTs + i.
std::vector<TestRecord> kilobyte_records(int n) {
  std::vector<TestRecord> out;
  for (int i = 0; i < n; ++i)
    out.push_back({"k", std::string(1000, static_cast<char>('a' + i % 26)), {}, kBaseTs + i, -1});
  return out;
}

std::vector<TestRecord> with_offsets(std::vector<TestRecord> recs, std::int64_t base) {
  for (std::size_t i = 0; i < recs.size(); ++i)
    recs[i].offset = base + static_cast<std::int64_t>(i);
  return recs;
}

// A local consumer's view of one partition from `offset`: `count` records.
std::vector<TestRecord> consume_locally(const std::string& data_dir, const std::string& topic,
                                        std::int32_t partition, std::int64_t offset,
                                        std::size_t count,
                                        std::vector<std::int64_t>* ts_ns = nullptr) {
  ConsumerConfig cc;
  cc.data_dir = data_dir;
  cc.verify_crc = true;
  auto consumer = must(Consumer::open(cc));
  TopicPartition tp{topic, partition};
  GT_REQUIRE_OK(consumer.assign({tp}));
  GT_REQUIRE_OK(consumer.seek(tp, offset));
  std::vector<TestRecord> out;
  std::int64_t deadline = now_ms() + 5000;
  while (out.size() < count && now_ms() < deadline) {
    auto n = consumer.poll(
        [&](const Record& r) {
          TestRecord t;
          t.offset = r.offset;
          t.timestamp_ms = r.timestamp_ns / 1'000'000;
          if (ts_ns) ts_ns->push_back(r.timestamp_ns);
          if (r.key) t.key = std::string(*r.key);
          if (r.value) t.value = std::string(*r.value);
          for (const Header& h : r.headers())
            t.headers.push_back(
                {std::string(h.name),
                 h.value ? std::optional<std::string>(std::string(*h.value)) : std::nullopt});
          out.push_back(std::move(t));
        },
        count - out.size(), 100);
    INFO(n.status().message());
    REQUIRE(n.is_ok());
  }
  return out;
}

// ---- round trips
// ----------------------------------------------------------------------------------

TEST_CASE(
    "gateway: Produce then Fetch returns the same keys, nulls, headers and timestamps at "
    "base offset + i",
    "[kafka][gateway]") {
  GatewayBroker broker;
  broker.create_topic("rt", 2);
  KafkaClient c(broker);
  auto first = mixed_records(12);
  auto second = mixed_records(5);
  auto p1 = produce(c, "rt", 1, encode_batch(first, 0));
  REQUIRE(p1.error_code == ErrorCode::kNone);
  CHECK(p1.base_offset == 0);
  auto p2 = produce(c, "rt", 1, encode_batch(second, 0));
  REQUIRE(p2.error_code == ErrorCode::kNone);
  CHECK(p2.base_offset == 12);

  auto expected = with_offsets(first, 0);
  for (auto& r : with_offsets(second, 12)) expected.push_back(r);
  CHECK(fetch_all(c, "rt", 1) == expected);
  // From the middle.
  auto tail = fetch_all(c, "rt", 1, 7);
  CHECK(tail == std::vector<TestRecord>(expected.begin() + 7, expected.end()));
  // The other partition got nothing.
  FetchedPartition other = fetch(c, "rt", 0, 0);
  CHECK(other.error == ErrorCode::kNone);
  CHECK(other.high_watermark == 0);
  CHECK(other.records.empty());
}

TEST_CASE(
    "gateway: records produced through Kafka are consumed locally at the same offsets, "
    "timestamps in ns",
    "[kafka][gateway]") {
  GatewayBroker broker;
  broker.create_topic("k2l", 1);
  KafkaClient c(broker);
  // Something local first, so that the Kafka batch does not start at 0.
  {
    ProducerConfig pc;
    pc.data_dir = broker.data_dir();
    auto producer = must(Producer::open(pc));
    for (int i = 0; i < 3; ++i) must(producer.send("k2l", "local", "l" + std::to_string(i), {}, 0));
  }
  auto recs = mixed_records(9);
  auto p = produce(c, "k2l", 0, encode_batch(recs, 0));
  REQUIRE(p.error_code == ErrorCode::kNone);
  REQUIRE(p.base_offset == 3);
  std::vector<std::int64_t> ts_ns;
  auto local = consume_locally(broker.data_dir(), "k2l", 0, 3, recs.size(), &ts_ns);
  CHECK(local == with_offsets(recs, 3));
  REQUIRE(ts_ns.size() == recs.size());
  for (std::size_t i = 0; i < recs.size(); ++i) CHECK(ts_ns[i] == recs[i].timestamp_ms * 1'000'000);
}

TEST_CASE(
    "gateway: records sent by a local Producer are fetched through Kafka at the same "
    "offsets, timestamps ns / 10^6",
    "[kafka][gateway]") {
  GatewayBroker broker;
  broker.create_topic("l2k", 2);
  std::vector<TestRecord> expected;
  {
    ProducerConfig pc;
    pc.data_dir = broker.data_dir();
    auto producer = must(Producer::open(pc));
    auto recs = mixed_records(10);
    for (std::size_t i = 0; i < recs.size(); ++i) {
      const TestRecord& r = recs[i];
      std::vector<Header> hs;
      for (const auto& [k, v] : r.headers)
        hs.push_back({k, v ? std::optional<std::string_view>(*v) : std::nullopt});
      std::int64_t ts_ns = r.timestamp_ms * 1'000'000 + 123'456;  // sub-ms part dropped on fetch
      std::optional<std::string_view> key, value;
      if (r.key) key = *r.key;
      if (r.value) value = *r.value;
      RecordId id = must(producer.send("l2k", key, value, hs, 1, ts_ns));
      CHECK(id.partition == 1);
      CHECK(id.offset == static_cast<std::int64_t>(i));
      TestRecord want = r;
      want.offset = id.offset;
      expected.push_back(want);
    }
  }
  KafkaClient c(broker);
  CHECK(fetch_all(c, "l2k", 1) == expected);
  // Each Fetch version decodes the same.
  for (std::int16_t v = 4; v <= 11; ++v) {
    INFO("Fetch v" << v);
    FetchedPartition f = fetch(c, "l2k", 1, 4, v);
    CHECK(f.error == ErrorCode::kNone);
    CHECK(f.high_watermark == 10);
    REQUIRE(!f.records.empty());
    CHECK(f.records.front() == expected[4]);
  }
}

TEST_CASE("gateway: empty keys and values stay empty (not null), timestamp 0 stays 0",
          "[kafka][gateway]") {
  GatewayBroker broker;
  broker.create_topic("edges", 1);
  KafkaClient c(broker);
  std::vector<TestRecord> recs = {{"", "", {}, 0, -1},
                                  {std::nullopt, std::nullopt, {}, 5, -1},
                                  {"", std::nullopt, {{"", ""}}, kBaseTs, -1},
                                  {std::nullopt, "", {{"h", std::nullopt}}, kBaseTs, -1}};
  auto p = produce(c, "edges", 0, encode_batch(recs, 0));
  REQUIRE(p.error_code == ErrorCode::kNone);
  CHECK(fetch_all(c, "edges", 0) == with_offsets(recs, 0));
  CHECK(consume_locally(broker.data_dir(), "edges", 0, 0, recs.size()) == with_offsets(recs, 0));
}

TEST_CASE("gateway: several batches in one records field get consecutive offsets",
          "[kafka][gateway]") {
  GatewayBroker broker;
  broker.create_topic("multi", 1);
  KafkaClient c(broker);
  auto a = mixed_records(3);
  auto b = mixed_records(4);
  auto p = produce(c, "multi", 0,
                   encode_batch(a, 0) + compress_batch(encode_batch(b, 0), kafka::Codec::kLz4));
  REQUIRE(p.error_code == ErrorCode::kNone);
  CHECK(p.base_offset == 0);
  auto want = with_offsets(a, 0);
  for (auto& r : with_offsets(b, 3)) want.push_back(r);
  CHECK(fetch_all(c, "multi", 0) == want);
}

// A partition's records field is appended whole or not at all, as Kafka does: every batch is
// checked (record size, idempotent sequence) before the first is written, so a client that
// retries after the error does not write the good batches twice. (Found by this test: the
// gateway used to append batch by batch.)
TEST_CASE(
    "gateway: a partition's records are appended all or nothing: a bad second batch "
    "writes neither",
    "[kafka][gateway]") {
  GatewayBroker broker;
  TopicConfig tc;
  tc.max_record_bytes = 4096;
  broker.create_topic("atomic", 1, tc);
  KafkaClient c(broker);
  std::string good = encode_batch(mixed_records(3), 0);
  SECTION("a record above max.message.bytes in the second batch") {
    std::string big = encode_batch({{"k", std::string(8000, 'x'), {}, kBaseTs, -1}}, 0);
    auto p = produce(c, "atomic", 0, good + big);
    CHECK(p.error_code == ErrorCode::kMessageTooLarge);
    CHECK(broker.end_offset("atomic") == 0);
  }
  SECTION("an idempotent second batch out of sequence") {
    kafka::BatchOptions o;
    o.producer_id = 77;
    o.producer_epoch = 0;
    o.base_sequence = 0;
    std::string first = encode_batch(mixed_records(2), 0, o);
    o.base_sequence = 10;  // 2 expected
    std::string second = encode_batch(mixed_records(2), 0, o);
    auto p = produce(c, "atomic", 0, first + second);
    CHECK(p.error_code == ErrorCode::kOutOfOrderSequenceNumber);
    CHECK(broker.end_offset("atomic") == 0);
  }
}

TEST_CASE(
    "gateway: several batches of a known idempotent producer in one request are checked "
    "against what it sent before",
    "[kafka][gateway]") {
  GatewayBroker broker;
  broker.create_topic("idem", 1);
  KafkaClient c(broker);
  kafka::BatchOptions o;
  o.producer_id = 91;
  o.producer_epoch = 0;
  auto batch = [&](std::int32_t seq) {
    o.base_sequence = seq;
    return encode_batch(mixed_records(2), 0, o);
  };
  REQUIRE(produce(c, "idem", 0, batch(0)).error_code == ErrorCode::kNone);
  REQUIRE(produce(c, "idem", 0, batch(2)).error_code == ErrorCode::kNone);
  // A retry of the last batch, then the next: the retry is not written again.
  auto p = produce(c, "idem", 0, batch(2) + batch(4));
  CHECK(p.error_code == ErrorCode::kNone);
  CHECK(p.base_offset == 2);
  CHECK(broker.end_offset("idem") == 6);
  // The next batch, then one that skips ahead: neither is written.
  p = produce(c, "idem", 0, batch(6) + batch(10));
  CHECK(p.error_code == ErrorCode::kOutOfOrderSequenceNumber);
  CHECK(broker.end_offset("idem") == 6);
  // Two in order: both written, and the sequence goes on after them.
  p = produce(c, "idem", 0, batch(6) + batch(8));
  CHECK(p.error_code == ErrorCode::kNone);
  CHECK(p.base_offset == 6);
  CHECK(broker.end_offset("idem") == 10);
  CHECK(produce(c, "idem", 0, batch(12)).error_code == ErrorCode::kOutOfOrderSequenceNumber);
  CHECK(produce(c, "idem", 0, batch(10)).error_code == ErrorCode::kNone);
  CHECK(broker.end_offset("idem") == 12);
}

TEST_CASE(
    "gateway: Produce to a partition that does not exist, or with null records, fails "
    "for that partition",
    "[kafka][gateway]") {
  GatewayBroker broker;
  broker.create_topic("parts", 2);
  KafkaClient c(broker);
  std::string b = encode_batch(mixed_records(1), 0);
  CHECK(produce(c, "parts", 2, b).error_code == ErrorCode::kUnknownTopicOrPartition);
  CHECK(produce(c, "parts", -1, b).error_code == ErrorCode::kUnknownTopicOrPartition);
  kafka::ProduceRequest req = produce_request("parts", 0, b);
  req.topics[0].partitions[0].records.reset();
  auto reply = c.call<kafka::ProduceResponse>(ApiKey::kProduce, 8, req);
  CHECK(reply->responses.at(0).partitions.at(0).error_code != ErrorCode::kNone);
  CHECK(broker.end_offset("parts", 0) == 0);
  CHECK(broker.end_offset("parts", 1) == 0);
}

TEST_CASE(
    "gateway: Fetch returns at least one record above partition_max_bytes, and stops "
    "near the limit",
    "[kafka][gateway]") {
  GatewayBroker broker;
  broker.create_topic("sizes", 1);
  KafkaClient c(broker);
  std::vector<TestRecord> recs = kilobyte_records(50);
  REQUIRE(produce(c, "sizes", 0, encode_batch(recs, 0)).error_code == ErrorCode::kNone);
  kafka::FetchRequest req = fetch_request("sizes", 0, 0);
  req.topics[0].partitions[0].partition_max_bytes = 10;
  auto tiny = c.call<kafka::FetchResponse>(ApiKey::kFetch, 11, req);
  FetchedPartition f = fetched_partition(tiny.body, "sizes", 0);
  CHECK(f.error == ErrorCode::kNone);
  REQUIRE(f.records.size() >= 1);
  CHECK(f.records.size() < 5);
  CHECK(f.records[0] == with_offsets(recs, 0)[0]);
  req.topics[0].partitions[0].partition_max_bytes = 10'000;
  auto some = c.call<kafka::FetchResponse>(ApiKey::kFetch, 11, req);
  FetchedPartition g = fetched_partition(some.body, "sizes", 0);
  CHECK(g.records.size() >= 5);
  CHECK(g.records.size() <= 15);
  // The request-wide max_bytes limits too (at least one record still).
  req.topics[0].partitions[0].partition_max_bytes = 1 << 20;
  req.max_bytes = 3000;
  auto capped = c.call<kafka::FetchResponse>(ApiKey::kFetch, 11, req);
  FetchedPartition h = fetched_partition(capped.body, "sizes", 0);
  CHECK(h.records.size() >= 1);
  CHECK(h.records.size() <= 6);
}

TEST_CASE(
    "gateway: a Fetch response carries at most kafka_fetch_max_bytes of records whatever the "
    "client asks, and still at least one record above it",
    "[kafka][gateway]") {
  GatewayBroker broker([](BrokerConfig& bc) { bc.kafka_fetch_max_bytes = 4096; });
  broker.create_topic("capped", 1);
  KafkaClient c(broker);
  std::vector<TestRecord> recs = kilobyte_records(50);
  recs.push_back({"k", std::string(10'000, 'B'), {}, kBaseTs + 50, -1});
  REQUIRE(produce(c, "capped", 0, encode_batch(recs, 0)).error_code == ErrorCode::kNone);
  // fetch_request asks for 64 MiB, 16 MiB of the partition.
  FetchedPartition f = fetch(c, "capped", 0, 0);
  CHECK(f.error == ErrorCode::kNone);
  CHECK(f.high_watermark == 51);
  REQUIRE(f.records.size() >= 3);
  CHECK(f.records.size() <= 5);
  CHECK(f.records[0] == with_offsets(recs, 0)[0]);
  // The record larger than the cap comes alone.
  FetchedPartition big = fetch(c, "capped", 0, 50);
  REQUIRE(big.records.size() == 1);
  CHECK(big.records[0] == with_offsets(recs, 0)[50]);
  // Fetched request after request, the capped responses add up to the whole partition.
  CHECK(fetch_all(c, "capped", 0) == with_offsets(recs, 0));
}

TEST_CASE(
    "gateway: after a capped Fetch, the next one starts at the first partition that had no "
    "room, so that no partition starves",
    "[kafka][gateway]") {
  GatewayBroker broker([](BrokerConfig& bc) { bc.kafka_fetch_max_bytes = 4096; });
  broker.create_topic("fair", 3);
  KafkaClient c(broker);
  std::vector<TestRecord> recs = kilobyte_records(20);
  for (std::int32_t p = 0; p < 3; ++p)
    REQUIRE(produce(c, "fair", p, encode_batch(recs, 0)).error_code == ErrorCode::kNone);
  // The same request every time, as a client that does not rotate its list sends it: every
  // partition from offset 0. Each response has room for one partition's records only.
  kafka::FetchRequest req = fetch_request("fair", 0, 0);
  for (std::int32_t p = 1; p < 3; ++p) {
    req.topics[0].partitions.push_back(req.topics[0].partitions[0]);
    req.topics[0].partitions.back().partition = p;
  }
  for (int round = 0; round < 6; ++round) {
    INFO("round " << round);
    auto reply = c.call<kafka::FetchResponse>(ApiKey::kFetch, 11, req);
    REQUIRE(reply->responses.size() == 1);
    const auto& parts = reply->responses[0].partitions;
    REQUIRE(parts.size() == 3);
    for (std::size_t p = 0; p < 3; ++p) {
      INFO("partition " << p);
      // The response keeps the request's order, and every partition's marks.
      CHECK(parts[p].partition_index == static_cast<std::int32_t>(p));
      CHECK(parts[p].error_code == ErrorCode::kNone);
      CHECK(parts[p].high_watermark == 20);
      std::vector<TestRecord> got = records_of(parts[p].records);
      if (p == static_cast<std::size_t>(round % 3)) {
        CHECK(got.size() >= 3);
        if (!got.empty()) CHECK(got[0] == with_offsets(recs, 0)[0]);
      } else {
        CHECK(got.empty());
      }
    }
  }
}

// A Fetch response is written with the larger records fields sent from the connection's own
// buffers (a gathering write) and the smaller ones copied into the frame; a client must see
// one ordinary response either way, request after request on the same connection.
TEST_CASE(
    "gateway: one Fetch of several partitions, large, small and empty, returns each "
    "partition's records, again and again on one connection",
    "[kafka][gateway]") {
  GatewayBroker broker;
  broker.create_topic("multi", 4);
  KafkaClient c(broker);
  std::vector<TestRecord> big = mixed_records(60);
  for (TestRecord& r : big)
    if (r.value) *r.value += std::string(900, 'v');
  std::vector<TestRecord> small = mixed_records(2);
  std::vector<TestRecord> large = {{"k", std::string(70'000, 'L'), {{"h", "x"}}, kBaseTs, -1}};
  REQUIRE(produce(c, "multi", 0, encode_batch(big, 0)).error_code == ErrorCode::kNone);
  REQUIRE(produce(c, "multi", 1, encode_batch(small, 0)).error_code == ErrorCode::kNone);
  REQUIRE(produce(c, "multi", 3, encode_batch(large, 0)).error_code == ErrorCode::kNone);
  const std::vector<std::vector<TestRecord>> expected = {
      with_offsets(big, 0), with_offsets(small, 0), {}, with_offsets(large, 0)};

  for (int v : {4, 7, 11}) {
    const auto version = static_cast<std::int16_t>(v);
    for (int round = 0; round < 3; ++round) {
      INFO("version " << version << ", round " << round);
      kafka::FetchRequest req = fetch_request("multi", 0, 0);
      for (std::int32_t p = 1; p < 4; ++p) {
        req.topics[0].partitions.push_back(req.topics[0].partitions[0]);
        req.topics[0].partitions.back().partition = p;
      }
      auto reply = c.call<kafka::FetchResponse>(ApiKey::kFetch, version, req);
      REQUIRE(reply->responses.size() == 1);
      const auto& parts = reply->responses[0].partitions;
      REQUIRE(parts.size() == 4);
      for (std::size_t p = 0; p < 4; ++p) {
        INFO("partition " << p);
        CHECK(parts[p].partition_index == static_cast<std::int32_t>(p));
        CHECK(parts[p].error_code == ErrorCode::kNone);
        CHECK(parts[p].high_watermark == static_cast<std::int64_t>(expected[p].size()));
        CHECK(records_of(parts[p].records) == expected[p]);
      }
    }
  }
}

// ---- compression, CRC, old formats
// ----------------------------------------------------------------

TEST_CASE(
    "gateway: compressed batches (gzip, snappy raw and xerial, lz4, zstd) are stored "
    "decompressed and fetched the same",
    "[kafka][gateway]") {
  GatewayBroker broker;
  broker.create_topic("z", 1);
  KafkaClient c(broker);
  struct Case {
    const char* name;
    kafka::Codec codec;
    kafka::SnappyFraming framing;
  };
  const Case cases[] = {{"gzip", kafka::Codec::kGzip, kafka::SnappyFraming::kRaw},
                        {"snappy raw", kafka::Codec::kSnappy, kafka::SnappyFraming::kRaw},
                        {"snappy xerial", kafka::Codec::kSnappy, kafka::SnappyFraming::kXerial},
                        {"lz4", kafka::Codec::kLz4, kafka::SnappyFraming::kRaw},
                        {"zstd", kafka::Codec::kZstd, kafka::SnappyFraming::kRaw}};
  std::int64_t offset = 0;
  std::vector<TestRecord> all;
  for (const Case& k : cases) {
    INFO(k.name);
    auto recs = mixed_records(20);
    std::string packed = compress_batch(encode_batch(recs, 0), k.codec, k.framing);
    auto p = produce(c, "z", 0, packed);
    REQUIRE(p.error_code == ErrorCode::kNone);
    CHECK(p.base_offset == offset);
    auto fetched = fetch_all(c, "z", 0, offset);
    CHECK(fetched == with_offsets(recs, offset));
    for (auto& r : with_offsets(recs, offset)) all.push_back(r);
    offset += static_cast<std::int64_t>(recs.size());
  }
  // Local consumers see them decompressed too.
  CHECK(consume_locally(broker.data_dir(), "z", 0, 0, all.size()) == all);
}

TEST_CASE("gateway: a batch with a bad CRC gets CORRUPT_MESSAGE and writes nothing",
          "[kafka][gateway]") {
  GatewayBroker broker;
  broker.create_topic("crc", 2);
  KafkaClient c(broker);
  REQUIRE(produce(c, "crc", 0, encode_batch(mixed_records(3), 0)).error_code == ErrorCode::kNone);
  std::string bad = encode_batch(mixed_records(4), 0);
  bad[bad.size() - 1] = static_cast<char>(bad[bad.size() - 1] ^ 0x40);  // a record byte
  SECTION("alone") {
    auto p = produce(c, "crc", 0, bad);
    CHECK(p.error_code == ErrorCode::kCorruptMessage);
  }
  SECTION("after a good batch in the same records field (nothing of it is written either)") {
    auto p = produce(c, "crc", 0, encode_batch(mixed_records(2), 0) + bad);
    CHECK(p.error_code == ErrorCode::kCorruptMessage);
  }
  SECTION("beside a good partition in the same request: only the bad one fails") {
    std::string good = encode_batch(mixed_records(2), 0);
    kafka::ProduceRequest req;
    req.acks = 1;
    req.timeout_ms = 5000;
    req.topics.push_back({"crc", {{0, std::string_view(bad)}, {1, std::string_view(good)}}});
    auto reply = c.call<kafka::ProduceResponse>(ApiKey::kProduce, 8, req);
    REQUIRE(reply->responses.size() == 1);
    REQUIRE(reply->responses[0].partitions.size() == 2);
    CHECK(reply->responses[0].partitions[0].error_code == ErrorCode::kCorruptMessage);
    CHECK(reply->responses[0].partitions[1].error_code == ErrorCode::kNone);
    CHECK(broker.end_offset("crc", 1) == 2);
  }
  CHECK(broker.end_offset("crc", 0) == 3);
  CHECK(fetch_all(c, "crc", 0) == with_offsets(mixed_records(3), 0));
}

// A magic 0/1 message (offset, size, CRC-32 of magic..end, magic, attributes, [timestamp],
// key, value).
std::string legacy_message(int magic, int attributes, std::int64_t offset, std::int64_t ts,
                           std::optional<std::string_view> key,
                           std::optional<std::string_view> value) {
  kafka::ByteWriter body;
  body.i8(static_cast<std::int8_t>(magic));
  body.i8(static_cast<std::int8_t>(attributes));
  if (magic == 1) body.i64(ts);
  body.nullable_bytes(key);
  body.nullable_bytes(value);
  const std::string& b = body.buffer();
  auto crc = static_cast<std::uint32_t>(
      crc32(0, reinterpret_cast<const Bytef*>(b.data()), static_cast<uInt>(b.size())));
  kafka::ByteWriter w;
  w.i64(offset);
  w.i32(static_cast<std::int32_t>(b.size() + 4));
  w.u32(crc);
  w.raw(b);
  return w.take();
}

TEST_CASE("gateway: magic 0 and 1 message sets are up-converted and fetched as v2 batches",
          "[kafka][gateway]") {
  GatewayBroker broker;
  broker.create_topic("old", 1);
  KafkaClient c(broker);
  // Produce v3 carries whatever records field; clients that fall back to magic 0/1 use it.
  std::string magic1 = legacy_message(1, 0, 0, kBaseTs + 1, "k1", "v1") +
                       legacy_message(1, 0, 1, kBaseTs + 2, std::nullopt, "v2") +
                       legacy_message(1, 0, 2, kBaseTs + 3, "k3", std::nullopt);
  auto p = produce(c, "old", 0, magic1, 3);
  REQUIRE(p.error_code == ErrorCode::kNone);
  CHECK(p.base_offset == 0);
  std::string inner = legacy_message(1, 0, 0, kBaseTs + 4, "k4", "v4") +
                      legacy_message(1, 0, 1, kBaseTs + 5, "k5", "v5");
  std::string packed;
  REQUIRE_FALSE(kafka::compress(kafka::Codec::kGzip, inner, packed).has_value());
  auto pz = produce(c, "old", 0,
                    legacy_message(1, static_cast<int>(kafka::Codec::kGzip), 1, kBaseTs + 5,
                                   std::nullopt, packed),
                    3);
  REQUIRE(pz.error_code == ErrorCode::kNone);
  CHECK(pz.base_offset == 3);
  std::int64_t before = wall_ms();
  auto p0 = produce(c, "old", 0, legacy_message(0, 0, 0, 0, "k6", "v6"), 3);
  std::int64_t after = wall_ms();
  REQUIRE(p0.error_code == ErrorCode::kNone);
  CHECK(p0.base_offset == 5);

  // Fetched back as magic-2 batches (records_of decodes with decode_stored_batches, v2 only).
  auto reply = c.call<kafka::FetchResponse>(ApiKey::kFetch, 11, fetch_request("old", 0, 0));
  const auto& part = reply->responses.at(0).partitions.at(0);
  REQUIRE(part.records.has_value());
  REQUIRE(part.records->size() > kafka::kBatchMagicOffset);
  CHECK((*part.records)[kafka::kBatchMagicOffset] == 2);
  auto got = fetch_all(c, "old", 0);
  REQUIRE(got.size() == 6);
  std::vector<TestRecord> want = {{"k1", "v1", {}, kBaseTs + 1, 0},
                                  {std::nullopt, "v2", {}, kBaseTs + 2, 1},
                                  {"k3", std::nullopt, {}, kBaseTs + 3, 2},
                                  {"k4", "v4", {}, kBaseTs + 4, 3},
                                  {"k5", "v5", {}, kBaseTs + 5, 4}};
  CHECK(std::vector<TestRecord>(got.begin(), got.begin() + 5) == want);
  // Magic 0 has no timestamp: the broker's time.
  CHECK(got[5].key == std::optional<std::string>("k6"));
  CHECK(got[5].value == std::optional<std::string>("v6"));
  CHECK(got[5].offset == 5);
  CHECK(got[5].timestamp_ms >= before - 1000);
  CHECK(got[5].timestamp_ms <= after + 1000);
}

// ---- idempotence
// ----------------------------------------------------------------------------------

TEST_CASE(
    "gateway: an idempotent producer's resent batch is acknowledged at the same offset "
    "and written once; gaps and old epochs are refused",
    "[kafka][gateway]") {
  GatewayBroker broker;
  broker.create_topic("idem", 1);
  KafkaClient c(broker);
  auto init = c.call<kafka::InitProducerIdResponse>(ApiKey::kInitProducerId, 1,
                                                    kafka::InitProducerIdRequest{});
  REQUIRE(init->error_code == ErrorCode::kNone);
  const std::int64_t pid = init->producer_id;
  const std::int16_t epoch = init->producer_epoch;
  auto batch = [&](std::int32_t seq, int n, std::int16_t ep) {
    kafka::BatchOptions o;
    o.producer_id = pid;
    o.producer_epoch = ep;
    o.base_sequence = seq;
    return encode_batch(mixed_records(n), 0, o);
  };
  // Something else first, so that offsets and sequences differ.
  REQUIRE(produce(c, "idem", 0, encode_batch(mixed_records(2), 0)).error_code == ErrorCode::kNone);

  std::string b0 = batch(0, 5, epoch);
  auto first = produce(c, "idem", 0, b0);
  REQUIRE(first.error_code == ErrorCode::kNone);
  CHECK(first.base_offset == 2);
  CHECK(broker.end_offset("idem") == 7);

  auto again = produce(c, "idem", 0, b0);
  CHECK(again.error_code == ErrorCode::kNone);
  CHECK(again.base_offset == 2);
  CHECK(broker.end_offset("idem") == 7);  // not written twice

  auto next = produce(c, "idem", 0, batch(5, 3, epoch));
  CHECK(next.error_code == ErrorCode::kNone);
  CHECK(next.base_offset == 7);
  CHECK(broker.end_offset("idem") == 10);

  // Skipping ahead (8 is next).
  auto gap = produce(c, "idem", 0, batch(10, 2, epoch));
  CHECK(gap.error_code == ErrorCode::kOutOfOrderSequenceNumber);
  CHECK(broker.end_offset("idem") == 10);

  // A newer epoch starts again at 0; then the older epoch is fenced.
  auto bumped = produce(c, "idem", 0, batch(0, 1, static_cast<std::int16_t>(epoch + 1)));
  CHECK(bumped.error_code == ErrorCode::kNone);
  CHECK(bumped.base_offset == 10);
  // An older batch of the new epoch, resent: acknowledged at its offset again.
  auto newer = produce(c, "idem", 0, batch(1, 2, static_cast<std::int16_t>(epoch + 1)));
  CHECK(newer.error_code == ErrorCode::kNone);
  CHECK(newer.base_offset == 11);
  auto resent = produce(c, "idem", 0, batch(0, 1, static_cast<std::int16_t>(epoch + 1)));
  CHECK(resent.error_code == ErrorCode::kNone);
  CHECK(resent.base_offset == 10);
  CHECK(broker.end_offset("idem") == 13);
  auto stale = produce(c, "idem", 0, batch(8, 1, epoch));
  CHECK(stale.error_code == ErrorCode::kInvalidProducerEpoch);
  CHECK(broker.end_offset("idem") == 13);
  CHECK(fetch_all(c, "idem", 0).size() == 13);
}

// ---- acks
// ------------------------------------------------------------------------------------------

TEST_CASE("gateway: acks=0 gets no response; acks=2 gets INVALID_REQUIRED_ACKS",
          "[kafka][gateway]") {
  GatewayBroker broker;
  broker.create_topic("acks", 1);
  KafkaClient c(broker);
  SECTION("acks=0: the next response is the next request's") {
    std::string b = encode_batch(mixed_records(3), 0);
    std::int32_t silent = c.send(ApiKey::kProduce, 7, produce_request("acks", 0, b, 0));
    auto reply =
        c.call<kafka::ApiVersionsResponse>(ApiKey::kApiVersions, 2, kafka::ApiVersionsRequest{});
    CHECK(reply.correlation_id != silent);
    CHECK(reply->error_code == ErrorCode::kNone);
    // The acks=0 records were written nonetheless.
    CHECK(eventually([&] { return broker.end_offset("acks") == 3; }));
  }
  SECTION("acks=0 with an error: the connection is closed, as Kafka does") {
    std::string b = encode_batch(mixed_records(3), 0);
    (void)c.send(ApiKey::kProduce, 7, produce_request("no-such-topic", 0, b, 0));
    CHECK(c.read_frame(5000).status == ReadStatus::kClosed);
    CHECK(broker.end_offset("acks") == 0);
  }
  SECTION("acks=2") {
    for (std::int16_t v : {std::int16_t{3}, std::int16_t{8}}) {
      INFO("Produce v" << v);
      auto reply = c.call<kafka::ProduceResponse>(
          ApiKey::kProduce, v, produce_request("acks", 0, encode_batch(mixed_records(1), 0), 2));
      REQUIRE(reply->responses.size() == 1);
      REQUIRE(reply->responses[0].partitions.size() == 1);
      CHECK(reply->responses[0].partitions[0].error_code == ErrorCode::kInvalidRequiredAcks);
    }
    CHECK(broker.end_offset("acks") == 0);
  }
}

// ---- Fetch long poll and offsets ----------------------------------------------------------------

TEST_CASE("gateway: a fetch at the end waits max_wait_ms and returns empty", "[kafka][gateway]") {
  GatewayBroker broker;
  broker.create_topic("lp", 1);
  KafkaClient c(broker);
  REQUIRE(produce(c, "lp", 0, encode_batch(mixed_records(2), 0)).error_code == ErrorCode::kNone);
  std::int64_t start = now_ms();
  auto reply = c.call<kafka::FetchResponse>(ApiKey::kFetch, 11, fetch_request("lp", 0, 2, 500, 1));
  std::int64_t took = now_ms() - start;
  FetchedPartition f = fetched_partition(reply.body, "lp", 0);
  CHECK(f.error == ErrorCode::kNone);
  CHECK(f.records.empty());
  CHECK(f.high_watermark == 2);
  CHECK(took >= 400);
  CHECK(took < 5000);
}

TEST_CASE("gateway: a waiting fetch returns early when another connection produces",
          "[kafka][gateway]") {
  GatewayBroker broker;
  broker.create_topic("wake", 1);
  KafkaClient consumer(broker);
  KafkaClient producer(broker);
  std::int64_t start = now_ms();
  std::int32_t id = consumer.send(ApiKey::kFetch, 11, fetch_request("wake", 0, 0, 5000, 1));
  sleep_ms(200);  // the fetch is waiting by now (or not yet: either way it must see the record)
  REQUIRE(produce(producer, "wake", 0, encode_batch({{"k", "wake-up", {}, kBaseTs, -1}}, 0))
              .error_code == ErrorCode::kNone);
  auto reply = consumer.receive<kafka::FetchResponse>(11, id, 10000);
  std::int64_t took = now_ms() - start;
  FetchedPartition f = fetched_partition(reply.body, "wake", 0);
  CHECK(f.error == ErrorCode::kNone);
  REQUIRE(f.records.size() == 1);
  CHECK(f.records[0].value == std::optional<std::string>("wake-up"));
  CHECK(took < 3000);  // well before the 5000 ms max wait
}

TEST_CASE("gateway: a waiting fetch returns early when a local producer appends",
          "[kafka][gateway]") {
  GatewayBroker broker;
  broker.create_topic("wakel", 1);
  KafkaClient consumer(broker);
  std::int64_t start = now_ms();
  std::int32_t id = consumer.send(ApiKey::kFetch, 11, fetch_request("wakel", 0, 0, 5000, 1));
  sleep_ms(200);
  {
    ProducerConfig pc;
    pc.data_dir = broker.data_dir();
    auto p = must(Producer::open(pc));
    must(p.send("wakel", "k", "local", {}, 0));
  }
  auto reply = consumer.receive<kafka::FetchResponse>(11, id, 10000);
  std::int64_t took = now_ms() - start;
  FetchedPartition f = fetched_partition(reply.body, "wakel", 0);
  REQUIRE(f.records.size() == 1);
  CHECK(f.records[0].value == std::optional<std::string>("local"));
  CHECK(took < 3000);
}

TEST_CASE(
    "gateway: a fetch at an offset behind a local claim not yet committed is empty, not out "
    "of range, and delivers that offset once the claim commits",
    "[kafka][gateway]") {
  GatewayBroker broker;
  broker.create_topic("hole", 1);
  ProducerConfig pc;
  pc.data_dir = broker.data_dir();
  auto slow = must(Producer::open(pc));
  auto fast = must(Producer::open(pc));
  // Offset 0 is claimed and not committed; offset 1 is committed after it.
  Reservation r = must(slow.claim("hole", std::nullopt, 5, {}, 0));
  REQUIRE(r.id().offset == 0);
  std::memcpy(r.value().data(), "first", 5);
  RecordId second = must(fast.send("hole", "k", "second", {}, 0));
  REQUIRE(second.offset == 1);

  KafkaClient c(broker);
  // A Kafka client resuming at offset 1 (say, from a commit) must not be told it is out of
  // range: it would reset its position.
  FetchedPartition f = fetch(c, "hole", 0, 1);
  CHECK(f.error == ErrorCode::kNone);
  CHECK(f.records.empty());
  slow.commit(r);
  f = fetch(c, "hole", 0, 1);
  CHECK(f.error == ErrorCode::kNone);
  REQUIRE(f.records.size() == 1);
  CHECK(f.records[0].offset == 1);
  CHECK(f.records[0].value == std::optional<std::string>("second"));
  f = fetch(c, "hole", 0, 0);
  REQUIRE(f.records.size() == 2);
  CHECK(f.records[0].value == std::optional<std::string>("first"));
}

TEST_CASE(
    "gateway: a fetch with min_bytes above what is there waits, then returns what "
    "there is",
    "[kafka][gateway]") {
  GatewayBroker broker;
  broker.create_topic("minb", 1);
  KafkaClient c(broker);
  REQUIRE(produce(c, "minb", 0, encode_batch(mixed_records(2), 0)).error_code == ErrorCode::kNone);
  std::int64_t start = now_ms();
  auto reply =
      c.call<kafka::FetchResponse>(ApiKey::kFetch, 11, fetch_request("minb", 0, 0, 400, 1 << 20));
  std::int64_t took = now_ms() - start;
  FetchedPartition f = fetched_partition(reply.body, "minb", 0);
  CHECK(f.records.size() == 2);
  CHECK(took >= 300);
  CHECK(took < 5000);
}

TEST_CASE("gateway: stopping the broker answers a waiting fetch promptly", "[kafka][gateway]") {
  auto broker = std::make_unique<GatewayBroker>();
  broker->create_topic("stop", 1);
  KafkaClient c(*broker);
  std::int32_t id = c.send(ApiKey::kFetch, 11, fetch_request("stop", 0, 0, 30000, 1));
  sleep_ms(100);
  std::int64_t start = now_ms();
  broker.reset();
  CHECK(now_ms() - start < 5000);
  // The fetch got its (empty) answer or the connection closed; either way no 30 s wait.
  FrameRead f = c.read_frame(1000);
  CHECK(f.status != ReadStatus::kTimeout);
  if (f.status == ReadStatus::kFrame) {
    kafka::ByteReader r(f.body);
    std::int32_t got = 0;
    CHECK(kafka::decode_response_header(r, got));
    CHECK(got == id);
  }
}

TEST_CASE(
    "gateway: a fetch past the end gets OFFSET_OUT_OF_RANGE; at the end, empty without "
    "error",
    "[kafka][gateway]") {
  GatewayBroker broker;
  broker.create_topic("oor", 1);
  KafkaClient c(broker);
  REQUIRE(produce(c, "oor", 0, encode_batch(mixed_records(4), 0)).error_code == ErrorCode::kNone);
  FetchedPartition past = fetch(c, "oor", 0, 5);
  CHECK(past.error == ErrorCode::kOffsetOutOfRange);
  CHECK(past.records.empty());
  FetchedPartition far = fetch(c, "oor", 0, 1'000'000);
  CHECK(far.error == ErrorCode::kOffsetOutOfRange);
  FetchedPartition negative = fetch(c, "oor", 0, -5);
  CHECK(negative.error == ErrorCode::kOffsetOutOfRange);
  FetchedPartition at_end = fetch(c, "oor", 0, 4);
  CHECK(at_end.error == ErrorCode::kNone);
  CHECK(at_end.records.empty());
  CHECK(at_end.high_watermark == 4);
  // The cursor is still good afterwards.
  CHECK(fetch_all(c, "oor", 0, 2).size() == 2);
  // Unknown topic and partition.
  CHECK(fetch(c, "no-such-topic", 0, 0).error == ErrorCode::kUnknownTopicOrPartition);
  CHECK(fetch(c, "oor", 7, 0).error == ErrorCode::kUnknownTopicOrPartition);
}

TEST_CASE("gateway: ListOffsets answers latest, earliest and by timestamp", "[kafka][gateway]") {
  GatewayBroker broker;
  broker.create_topic("times", 1);
  KafkaClient c(broker);
  // Timestamps kBaseTs, kBaseTs + 10, ..., kBaseTs + 90 (mixed_records spaces them 10 ms apart).
  auto recs = mixed_records(10);
  REQUIRE(produce(c, "times", 0, encode_batch(recs, 0)).error_code == ErrorCode::kNone);
  auto latest = list_offset(c, "times", 0, -1);
  CHECK(latest.error_code == ErrorCode::kNone);
  CHECK(latest.offset == 10);
  auto earliest = list_offset(c, "times", 0, -2);
  CHECK(earliest.error_code == ErrorCode::kNone);
  CHECK(earliest.offset == 0);
  auto exact = list_offset(c, "times", 0, kBaseTs + 30);
  CHECK(exact.error_code == ErrorCode::kNone);
  CHECK(exact.offset == 3);
  CHECK(exact.timestamp == kBaseTs + 30);
  auto between = list_offset(c, "times", 0, kBaseTs + 31);
  CHECK(between.offset == 4);
  CHECK(between.timestamp == kBaseTs + 40);
  auto before_all = list_offset(c, "times", 0, kBaseTs - 100000);
  CHECK(before_all.offset == 0);
  auto after_all = list_offset(c, "times", 0, kBaseTs + 91);
  CHECK(after_all.error_code == ErrorCode::kNone);
  CHECK(after_all.offset == -1);
  // An empty partition.
  broker.create_topic("empty", 1);
  CHECK(list_offset(c, "empty", 0, -1).offset == 0);
  CHECK(list_offset(c, "empty", 0, -2).offset == 0);
  CHECK(list_offset(c, "empty", 0, kBaseTs).offset == -1);
  auto unknown = list_offset(c, "nope", 0, -1);
  CHECK(unknown.error_code == ErrorCode::kUnknownTopicOrPartition);
}

// DeleteRecords v`version` of one partition; its (low watermark, error).
std::pair<std::int64_t, ErrorCode> delete_records(KafkaClient& c, std::string_view topic,
                                                  std::int32_t partition, std::int64_t offset,
                                                  std::int16_t version = 1) {
  kafka::DeleteRecordsRequest req{{{topic, {{partition, offset}}}}, 5000};
  auto reply = c.call<kafka::DeleteRecordsResponse>(ApiKey::kDeleteRecords, version, req);
  REQUIRE(reply->topics.size() == 1);
  CHECK(reply->topics[0].name == topic);
  REQUIRE(reply->topics[0].partitions.size() == 1);
  CHECK(reply->topics[0].partitions[0].partition_index == partition);
  return {reply->topics[0].partitions[0].low_watermark, reply->topics[0].partitions[0].error_code};
}

TEST_CASE(
    "gateway: DeleteRecords moves the log start: fetches below it are out of range and "
    "retention drops the segments wholly below it",
    "[kafka][gateway]") {
  GatewayBroker broker([](BrokerConfig& bc) { bc.retention_check_ms = 20; });
  TopicConfig tc;
  tc.segment_bytes = 64 << 10;  // about 60 records of 1 KiB a segment
  broker.create_topic("del", 2, tc);
  KafkaClient c(broker);
  std::vector<TestRecord> sent;
  for (int i = 0; i < 20; ++i) {
    auto batch = kilobyte_records(10);
    REQUIRE(produce(c, "del", 0, encode_batch(batch, 0)).error_code == ErrorCode::kNone);
    for (auto& r : with_offsets(batch, i * 10)) sent.push_back(r);
  }
  REQUIRE(produce(c, "del", 1, encode_batch(kilobyte_records(10), 0)).error_code ==
          ErrorCode::kNone);
  REQUIRE(broker.describe_topic("del")->partitions[0].segments >= 3);
  // A connection reading below the cut before it is made.
  KafkaClient early(broker);
  kafka::FetchRequest small = fetch_request("del", 0, 0);
  small.topics[0].partitions[0].partition_max_bytes = 1;  // one record, at least
  FetchedPartition first =
      fetched_partition(early.call<kafka::FetchResponse>(ApiKey::kFetch, 11, small).body, "del", 0);
  REQUIRE_FALSE(first.records.empty());
  const std::int64_t early_next = first.records.back().offset + 1;
  REQUIRE(early_next < 150);

  using Result = std::pair<std::int64_t, ErrorCode>;
  CHECK(delete_records(c, "del", 0, 150) == Result{150, ErrorCode::kNone});
  CHECK(delete_records(c, "del", 1, -1, 0) == Result{10, ErrorCode::kNone});  // to the end
  // Never back down; nothing past the end; no such partition or topic.
  CHECK(delete_records(c, "del", 0, 100) == Result{150, ErrorCode::kNone});
  CHECK(delete_records(c, "del", 0, 201) == Result{-1, ErrorCode::kOffsetOutOfRange});
  CHECK(delete_records(c, "del", 0, -2) == Result{-1, ErrorCode::kOffsetOutOfRange});
  CHECK(delete_records(c, "del", 7, 0) == Result{-1, ErrorCode::kUnknownTopicOrPartition});
  CHECK(delete_records(c, "nope", 0, 0) == Result{-1, ErrorCode::kUnknownTopicOrPartition});

  CHECK(list_offset(c, "del", 0, -2).offset == 150);
  CHECK(list_offset(c, "del", 0, -1).offset == 200);
  CHECK(list_offset(c, "del", 1, -2).offset == 10);
  CHECK(list_offset(c, "del", 0, kBaseTs - 100000).offset == 150);  // by time: the first served
  CHECK(broker.describe_topic("del")->partitions[0].start_offset == 150);

  FetchedPartition at_start = fetch(c, "del", 0, 150);
  CHECK(at_start.error == ErrorCode::kNone);
  CHECK(at_start.log_start_offset == 150);
  REQUIRE_FALSE(at_start.records.empty());
  CHECK(at_start.records.front().offset == 150);
  CHECK(fetch_all(c, "del", 0, 150) == std::vector<TestRecord>(sent.begin() + 150, sent.end()));
  CHECK(fetch(c, "del", 0, 149).error == ErrorCode::kOffsetOutOfRange);
  CHECK(fetch(c, "del", 0, 0).error == ErrorCode::kOffsetOutOfRange);
  FetchedPartition empty = fetch(c, "del", 1, 10);
  CHECK(empty.error == ErrorCode::kNone);
  CHECK(empty.records.empty());

  // The connection that was reading below the cut, where it stopped: out of range too.
  CHECK(fetch(early, "del", 0, early_next).error == ErrorCode::kOffsetOutOfRange);

  // Retention drops the segments below 150; the one holding 150 stays.
  CHECK(eventually([&] {
    auto d = broker.describe_topic("del");
    std::vector<std::int64_t> bases;
    for (const auto& e : std::filesystem::directory_iterator(broker.data_dir() + "/topics/del/0"))
      if (std::int64_t b = shm::parse_segment_file_name(e.path().filename()); b >= 0)
        bases.push_back(b);
    std::sort(bases.begin(), bases.end());
    return !bases.empty() && bases.front() > 0 && bases.front() <= 150 &&
           (bases.size() < 2 || bases[1] > 150);
  }));
  CHECK(fetch_all(c, "del", 0, 150) == std::vector<TestRecord>(sent.begin() + 150, sent.end()));
}

TEST_CASE(
    "gateway: records deleted through the local Admin are out of range for Kafka clients at "
    "once",
    "[kafka][gateway]") {
  GatewayBroker broker;
  broker.create_topic("cut", 1);
  KafkaClient c(broker);
  REQUIRE(produce(c, "cut", 0, encode_batch(kilobyte_records(20), 0)).error_code ==
          ErrorCode::kNone);
  // The gateway has read the partition's start (0) just now, and keeps it for a while.
  REQUIRE(fetch(c, "cut", 0, 0).log_start_offset == 0);
  REQUIRE(list_offset(c, "cut", 0, -2).offset == 0);

  // `sluice topic delete-records` goes this way: the broker's Admin, not the gateway.
  auto admin = must(Admin::connect(broker.data_dir()));
  CHECK(must(admin.delete_records("cut", 0, 10)) == 10);

  CHECK(list_offset(c, "cut", 0, -2).offset == 10);
  FetchedPartition below = fetch(c, "cut", 0, 5);
  CHECK(below.error == ErrorCode::kOffsetOutOfRange);
  CHECK(below.log_start_offset == 10);
  FetchedPartition at = fetch(c, "cut", 0, 10);
  CHECK(at.error == ErrorCode::kNone);
  CHECK(at.log_start_offset == 10);
  REQUIRE_FALSE(at.records.empty());
  CHECK(at.records.front().offset == 10);
}

// ---- a full disk
// ----------------------------------------------------------------------------------

// What a gateway whose disk filled up told its Kafka client (in memory shared with the test,
// which forked the process running both).
struct FullDiskProduce {
  std::int64_t acknowledged = 0;  // records whose Produce succeeded
  std::int64_t fetched = 0;       // records fetched back afterwards, values as produced
  std::int16_t error_code = 0;    // of the first Produce that failed
  char error_message[512] = {};
};

// A broker and a Kafka client in this process, files limited below a segment's size
// (RLIMIT_FSIZE: the next segment's file is refused, as on a full disk); produces batches of
// 1000-byte records until a Produce fails, then fetches what was acknowledged.
int produce_until_full(FullDiskProduce& out) {
  GatewayBroker broker;
  TopicConfig tc;
  tc.segment_bytes = 64 << 10;
  broker.create_topic("full", 1, tc);
  KafkaClient c(broker);
  ::signal(SIGXFSZ, SIG_IGN);  // a file growing past the limit fails with EFBIG instead
  rlimit limit{32 << 10, 32 << 10};
  if (::setrlimit(RLIMIT_FSIZE, &limit) != 0) return 2;
  std::vector<TestRecord> sent;
  for (int round = 0; round < 1000; ++round) {
    std::vector<TestRecord> batch = kilobyte_records(10);
    auto reply = c.call<kafka::ProduceResponse>(ApiKey::kProduce, 8,
                                                produce_request("full", 0, encode_batch(batch, 0)));
    const auto& p = reply->responses.at(0).partitions.at(0);
    if (p.error_code != ErrorCode::kNone) {
      out.error_code = static_cast<std::int16_t>(p.error_code);
      std::snprintf(out.error_message, sizeof out.error_message, "%s",
                    std::string(p.error_message.value_or("")).c_str());
      break;
    }
    if (p.base_offset != out.acknowledged) return 3;
    for (auto& r : with_offsets(batch, out.acknowledged)) sent.push_back(r);
    out.acknowledged += 10;
  }
  if (out.error_code == 0) return 4;
  std::vector<TestRecord> got = fetch_all(c, "full", 0);
  if (got != sent) return 5;
  out.fetched = static_cast<std::int64_t>(got.size());
  return 0;
}

TEST_CASE(
    "gateway: on a full disk Produce gets KAFKA_STORAGE_ERROR naming the file and the cause, "
    "and every acknowledged record is fetched",
    "[kafka][process]") {
  test_process::SharedWithChildren<FullDiskProduce> out;
  pid_t child = test_process::spawn([&out] { return produce_until_full(*out); });
  CHECK(test_process::wait_child(child) == 0);
  INFO("error " << out->error_code << ": " << out->error_message);
  CHECK(out->error_code == static_cast<std::int16_t>(ErrorCode::kKafkaStorageError));
  CHECK_THAT(out->error_message, Catch::Contains("full") && Catch::Contains(".seg") &&
                                     Catch::Contains("File too large"));
  CHECK(out->acknowledged > 0);
  CHECK(out->fetched == out->acknowledged);
}

}  // namespace
}  // namespace sluice::gateway_test
