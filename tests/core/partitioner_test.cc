// Key partitioning: Kafka's murmur2 on the vectors of Kafka's own tests
// (clients/src/test/java/org/apache/kafka/common/utils/UtilsTest.java, testMurmur2, and
// DefaultPartitionerTest / BuiltInPartitionerTest), and Producer::send with a key lands on
// the partition that murmur2 names.
#include <map>
#include <string>

#include "broker_test_support.h"
#include "partitioner.h"
#include "sluice/broker.h"
#include "sluice/consumer.h"
#include "sluice/producer.h"

namespace sluice::broker_test {
namespace {

TEST_CASE("murmur2 matches Kafka's test vectors", "[partitioner]") {
  CHECK(murmur2("21") == -973932308);
  CHECK(murmur2("foobar") == -790332482);
  CHECK(murmur2("a-little-bit-long-string") == -985981536);
  CHECK(murmur2("a-little-bit-longer-string") == -1486304829);
  CHECK(murmur2("lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8") == -58897971);
  CHECK(murmur2("abc") == 479470107);
}

TEST_CASE("partition_for_key is Kafka's toPositive(murmur2) mod partitions", "[partitioner]") {
  CHECK(partition_for_key("foobar", 50) == 16);
  // toPositive, not abs: murmur2("21") is negative.
  CHECK(partition_for_key("21", 1000) == (-973932308 & 0x7fffffff) % 1000);
  for (std::int32_t n : {1, 2, 3, 7, 64}) {
    std::int32_t p = partition_for_key("a-little-bit-longer-string", n);
    CHECK(p >= 0);
    CHECK(p < n);
  }
  // Bytes, not characters: a key with a NUL and bytes >= 0x80 hashes as Java's byte[].
  std::string odd("\x00\xff\x80x", 4);
  CHECK(partition_for_key(odd, 10) == (murmur2(odd) & 0x7fffffff) % 10);
}

TEST_CASE("Producer::send with a key lands on murmur2's partition", "[partitioner]") {
  DataDirFixture dir;
  BrokerConfig bc;
  bc.data_dir = dir.path();
  auto broker = must(Broker::start(bc));
  {
    auto admin = must(Admin::connect(dir.path()));
    TopicConfig tc;
    tc.partitions = 50;
    tc.segment_bytes = 1 << 16;
    BT_REQUIRE_OK(admin.create_topic("keyed", tc));
  }
  ProducerConfig pc;
  pc.data_dir = dir.path();
  auto producer = must(Producer::open(pc));
  REQUIRE(must(producer.partitions("keyed")) == 50);

  // The Kafka vectors, plus many keys; each must land where partition_for_key says.
  std::vector<std::string> keys = {"21",
                                   "foobar",
                                   "a-little-bit-long-string",
                                   "a-little-bit-longer-string",
                                   "lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8",
                                   "abc",
                                   ""};
  for (int i = 0; i < 500; ++i) keys.push_back("key-" + std::to_string(i * 7919));
  std::map<std::int32_t, std::int64_t> next_offset;
  std::map<std::pair<std::int32_t, std::int64_t>, std::string> sent;  // (p, offset) -> key
  for (const auto& key : keys) {
    auto id = must(producer.send("keyed", key, "value of " + key));
    INFO("key '" << key << "'");
    CHECK(id.partition == partition_for_key(key, 50));
    CHECK(id.offset == next_offset[id.partition]++);
    sent[{id.partition, id.offset}] = key;
  }
  auto foobar = must(producer.send("keyed", "foobar", "again"));
  CHECK(foobar.partition == 16);
  sent[{foobar.partition, foobar.offset}] = "foobar";

  // An explicit partition overrides the key.
  auto explicit_p = must(producer.send("keyed", "foobar", "explicit", {}, 3));
  CHECK(explicit_p.partition == 3);
  sent[{explicit_p.partition, explicit_p.offset}] = "foobar";

  // And the records are where the ids say, with their keys.
  ConsumerConfig cc;
  cc.data_dir = dir.path();
  cc.auto_offset_reset = AutoOffsetReset::kEarliest;
  auto consumer = must(Consumer::open(cc));
  std::vector<TopicPartition> all;
  for (std::int32_t p = 0; p < 50; ++p) all.push_back({"keyed", p});
  BT_REQUIRE_OK(consumer.assign(all));
  std::size_t seen = 0;
  std::int64_t deadline = now_ms() + 10000;
  while (seen < sent.size() && now_ms() < deadline) {
    auto n = consumer.poll(
        [&](const Record& r) {
          auto it = sent.find({r.partition, r.offset});
          REQUIRE(it != sent.end());
          REQUIRE(r.key.has_value());
          CHECK(*r.key == it->second);
          ++seen;
        },
        1000, 100);
    REQUIRE(n.is_ok());
  }
  CHECK(seen == sent.size());
}

}  // namespace
}  // namespace sluice::broker_test
