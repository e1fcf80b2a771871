// The broker's abandoned-claim watcher, against an embedded broker with a fast housekeeping
// tick: a claim whose producer died is padded even when other producers appended after it,
// so that readers of a read-only mapping (which cannot pad) get past it.
#include <string>

#include "broker_test_support.h"
#include "data_dir.h"
#include "shm/log_appender.h"
#include "shm/log_reader.h"
#include "sluice/broker.h"

namespace sluice::broker_test {
namespace {

TEST_CASE("broker: pads a claim abandoned behind records appended after it in one tick",
          "[broker]") {
  DataDirFixture dir;
  BrokerConfig bc;
  bc.data_dir = dir.path();
  bc.housekeeping_ms = 20;
  bc.abandon_timeout_ms = 100;
  auto broker = must(Broker::start(bc));
  TopicConfig tc;
  tc.partitions = 1;
  create_topic(dir.path(), "t", tc);
  const std::string partition = DataDir{dir.path()}.partition("t", 0);

  // The producers' own mapping never pads (a timeout far above the test's length).
  shm::LogOptions patient;
  patient.abandon_timeout_ns = 600'000'000'000;
  patient.populate = false;
  auto log = must(shm::PartitionLog::open(partition, patient));
  auto live = must(shm::LogAppender::open(log));
  constexpr int kRounds = 5;
  constexpr int kAfter = 300;
  std::vector<shm::Claim> abandoned(kRounds);
  for (int round = 0; round < kRounds; ++round) {
    // In a burst far shorter than a tick: a record, a claim whose producer "dies" (it never
    // commits), then records after it. The watcher wakes up after the burst with a committed
    // record in front of it and the open claim behind that.
    auto dying = must(shm::LogAppender::open(log));
    REQUIRE(live.append("before").outcome == shm::AppendOutcome::kOk);
    REQUIRE(dying.claim(8, abandoned[static_cast<std::size_t>(round)]) == shm::AppendOutcome::kOk);
    for (int i = 0; i < kAfter; ++i)
      REQUIRE(live.append("after").outcome == shm::AppendOutcome::kOk);
    sleep_ms(60);
  }

  // A reader that may not pad: it gets every committed record once the broker has padded
  // each abandoned claim (100 ms after the watcher stops at it).
  shm::LogOptions read_only;
  read_only.access = shm::Access::kReadOnly;
  read_only.populate = false;
  auto ro_log = must(shm::PartitionLog::open(partition, read_only));
  auto reader = must(shm::LogReader::open(ro_log));
  std::size_t got = 0;
  const std::int64_t deadline = now_ns() + 10'000'000'000;
  while (got < kRounds * (1 + kAfter) && now_ns() < deadline) {
    shm::PollResult r = reader.poll([&](const shm::RecordView&) { ++got; });
    REQUIRE(r.outcome == shm::ReadOutcome::kOk);
    if (r.records == 0) (void)reader.wait(shm::WaitStrategy::kBlock, 10'000'000);
  }
  CHECK(got == kRounds * (1 + kAfter));
}

}  // namespace
}  // namespace sluice::broker_test
