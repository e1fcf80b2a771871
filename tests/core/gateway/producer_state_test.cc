// The idempotent producers' state outlives a broker restart: ProducerStateFile (the
// partition's producers.tbl) on its own, and through the gateway.
#include <sys/stat.h>

#include <fstream>
#include <string>

#include "gateway/producer_state_file.h"
#include "gateway_test_support.h"

namespace sluice::gateway_test {
namespace {

using gateway::ProducerSequences;
using gateway::ProducerState;
using gateway::ProducerStateFile;
using gateway::SequenceVerdict;

// A partition-like directory inside a scratch data directory.
struct StateDir {
  GatewayDataDir data;
  std::string path = data.path() + "/p";
  StateDir() { REQUIRE(::mkdir(path.c_str(), 0770) == 0); }
  std::string file() const { return path + "/" + gateway::kProducerStateName; }
};

std::vector<TestRecord> numbered_records(int n) {
  std::vector<TestRecord> out(static_cast<std::size_t>(n));
  for (int i = 0; i < n; ++i) {
    out[static_cast<std::size_t>(i)].key = "k" + std::to_string(i);
    out[static_cast<std::size_t>(i)].value = "v" + std::to_string(i);
  }
  return out;
}

ProducerStateFile must_open(const std::string& dir) {
  auto f = ProducerStateFile::open(dir, 0660);
  INFO(f.status().message());
  REQUIRE(f);
  return std::move(f).value();
}

TEST_CASE("producer state file: sequences saved by one gateway are restored by the next",
          "[kafka][gateway]") {
  StateDir dir;
  {
    ProducerStateFile file = must_open(dir.path);
    ProducerSequences seqs;
    // Producer 7: three batches in epoch 2; producer 9: one batch in epoch 0.
    for (auto [seq, count, offset] : {std::tuple{0, 5, 100}, {5, 3, 105}, {8, 2, 110}}) {
      seqs.appended(7, 2, seq, count, offset);
      GT_REQUIRE_OK(file.save(7, *seqs.find(7), 1000 + offset));
    }
    seqs.appended(9, 0, 0, 1, 200);
    GT_REQUIRE_OK(file.save(9, *seqs.find(9), 2000));
  }
  ProducerStateFile file = must_open(dir.path);
  ProducerSequences restored;
  CHECK(must(file.load_into(restored)) == 2);
  // A resent batch is a duplicate at its first offset; the next one is expected; others not.
  auto dup = restored.check(7, 2, 5, 3);
  CHECK(dup.verdict == SequenceVerdict::kDuplicate);
  CHECK(dup.duplicate_of == 105);
  CHECK(restored.check(7, 2, 10, 4).verdict == SequenceVerdict::kAppend);
  CHECK(restored.check(7, 2, 12, 1).verdict == SequenceVerdict::kOutOfOrder);
  CHECK(restored.check(7, 1, 10, 1).verdict == SequenceVerdict::kFencedEpoch);
  CHECK(restored.check(9, 0, 0, 1).duplicate_of == 200);
}

TEST_CASE(
    "producer sequences: a flood of new producer ids is bounded and the least recently used "
    "are forgotten first",
    "[kafka][gateway]") {
  ProducerSequences seqs;
  const auto limit = static_cast<std::int64_t>(ProducerSequences::kMaxProducers);
  for (std::int64_t pid = 1; pid <= limit; ++pid) seqs.appended(pid, 0, 0, 1, pid);
  CHECK(seqs.producers() == ProducerSequences::kMaxProducers);
  seqs.appended(1, 0, 1, 1, 5000);  // producer 1 appends again: 2 is now the least recent
  // Ten times the limit of producers that each append once (InitProducerId in a loop).
  for (std::int64_t pid = limit + 1; pid <= 11 * limit; ++pid) {
    seqs.appended(pid, 0, 0, 1, pid);
    REQUIRE(seqs.producers() <= ProducerSequences::kMaxProducers);
  }
  CHECK(seqs.find(11 * limit) != nullptr);  // the newest are remembered
  CHECK(seqs.find(11 * limit - 100) != nullptr);
  CHECK(seqs.find(2) == nullptr);  // the oldest are forgotten
  // A forgotten producer is accepted at whatever sequence it sends, as a new one is.
  CHECK(seqs.check(2, 0, 7, 1).verdict == SequenceVerdict::kAppend);
  // A remembered one is still checked.
  CHECK(seqs.check(11 * limit, 0, 0, 1).verdict == SequenceVerdict::kDuplicate);
  CHECK(seqs.check(11 * limit, 0, 5, 1).verdict == SequenceVerdict::kOutOfOrder);
}

TEST_CASE("producer sequences: the producer used most recently survives a forgetting",
          "[kafka][gateway]") {
  ProducerSequences seqs;
  const auto limit = static_cast<std::int64_t>(ProducerSequences::kMaxProducers);
  for (std::int64_t pid = 1; pid <= limit; ++pid) seqs.appended(pid, 0, 0, 1, pid);
  seqs.appended(1, 0, 1, 1, 5000);       // the oldest producer appends again
  seqs.appended(limit + 1, 0, 0, 1, 0);  // full: a quarter is forgotten
  CHECK(seqs.producers() ==
        ProducerSequences::kMaxProducers - ProducerSequences::kMaxProducers / 4 + 1);
  CHECK(seqs.find(1) != nullptr);
  CHECK(seqs.find(2) == nullptr);
  CHECK(seqs.find(limit / 4 + 1) == nullptr);
  CHECK(seqs.find(limit / 4 + 2) != nullptr);
  CHECK(seqs.check(1, 0, 2, 1).verdict == SequenceVerdict::kAppend);
}

TEST_CASE("producer state file: beyond its limit a new producer replaces the least recent",
          "[kafka][gateway]") {
  StateDir dir;
  ProducerState state;
  state.recent[0] = {0, 0, 42};
  state.next = 1;
  state.count = 1;
  const auto limit = static_cast<std::int64_t>(ProducerStateFile::kMaxProducers);
  {
    ProducerStateFile file = must_open(dir.path);
    for (std::int64_t pid = 1; pid <= limit; ++pid) GT_REQUIRE_OK(file.save(pid, state, 100 + pid));
    GT_REQUIRE_OK(file.save(1, state, 1000));  // producer 1 writes again: 2 is now the oldest
    GT_REQUIRE_OK(file.save(limit + 1, state, 1001));
  }
  ProducerStateFile file = must_open(dir.path);
  ProducerSequences restored;
  CHECK(must(file.load_into(restored)) == ProducerStateFile::kMaxProducers);
  CHECK(restored.find(1) != nullptr);
  CHECK(restored.find(2) == nullptr);
  CHECK(restored.find(3) != nullptr);
  CHECK(restored.find(limit + 1) != nullptr);
}

TEST_CASE("producer state file: a file that is not one is refused, naming it", "[kafka][gateway]") {
  StateDir dir;
  {
    std::ofstream f(dir.file(), std::ios::binary);
    f << std::string(8192, 'x');
  }
  auto f = ProducerStateFile::open(dir.path, 0660);
  REQUIRE_FALSE(f);
  CHECK_THAT(f.status().message(), Catch::Contains(dir.file()));
  CHECK_THAT(f.status().message(), Catch::Contains("not a Sluice table"));
}

TEST_CASE(
    "gateway: an idempotent producer's batch resent after a broker restart is acknowledged at "
    "its offset and not written twice",
    "[kafka][gateway]") {
  GatewayBroker broker;
  broker.create_topic("idem-restart", 1);
  std::int64_t pid = 0;
  std::int16_t epoch = 0;
  auto batch = [&](std::int32_t seq, int n) {
    kafka::BatchOptions o;
    o.producer_id = pid;
    o.producer_epoch = epoch;
    o.base_sequence = seq;
    return encode_batch(numbered_records(n), 0, o);
  };
  std::string b0, b1;
  {
    KafkaClient c(broker);
    auto init = c.call<kafka::InitProducerIdResponse>(ApiKey::kInitProducerId, 1,
                                                      kafka::InitProducerIdRequest{});
    REQUIRE(init->error_code == ErrorCode::kNone);
    pid = init->producer_id;
    epoch = init->producer_epoch;
    b0 = batch(0, 4);
    b1 = batch(4, 3);
    REQUIRE(produce(c, "idem-restart", 0, b0).base_offset == 0);
    REQUIRE(produce(c, "idem-restart", 0, b1).base_offset == 4);
  }
  broker.restart();
  KafkaClient c(broker);
  // The client did not see the acknowledgement of b1 and resends it, then b0 for good measure.
  auto again = produce(c, "idem-restart", 0, b1);
  CHECK(again.error_code == ErrorCode::kNone);
  CHECK(again.base_offset == 4);
  auto first = produce(c, "idem-restart", 0, b0);
  CHECK(first.error_code == ErrorCode::kNone);
  CHECK(first.base_offset == 0);
  CHECK(broker.end_offset("idem-restart") == 7);
  // The sequence goes on where it was; a gap is still refused.
  CHECK(produce(c, "idem-restart", 0, batch(9, 1)).error_code ==
        ErrorCode::kOutOfOrderSequenceNumber);
  auto next = produce(c, "idem-restart", 0, batch(7, 2));
  CHECK(next.error_code == ErrorCode::kNone);
  CHECK(next.base_offset == 7);
  CHECK(fetch_all(c, "idem-restart", 0).size() == 9);
}

}  // namespace
}  // namespace sluice::gateway_test
