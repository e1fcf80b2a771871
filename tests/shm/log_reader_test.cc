#include "shm/log_reader.h"

#include <atomic>
#include <catch2/catch.hpp>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

#include "shm/test_support.h"

namespace sluice::shm {
namespace {

using test::append_ok;
using test::read_records;
using test::Rec;
using test::TempDir;
using test::unwrap;

constexpr std::int64_t kFirstTimestamp = 1'000'000'000;
constexpr std::int64_t kTimestampStep = 10;

std::int64_t timestamp_of(std::int64_t offset) {
  return kFirstTimestamp + offset * kTimestampStep;
}

// `count` records with increasing explicit timestamps over many 64 KiB segments.
void fill(LogAppender& appender, std::int64_t count) {
  for (std::int64_t i = 0; i < count; ++i) {
    std::string v = test::make_value(0, static_cast<std::uint64_t>(i));
    REQUIRE(append_ok(appender, v, test::at_time(timestamp_of(i))) == i);
  }
}

std::int64_t next_offset(LogReader& reader) {
  std::int64_t offset = -1;
  PollResult r = reader.poll([&](const RecordView& v) { offset = v.offset; }, 1);
  REQUIRE(r.outcome == ReadOutcome::kOk);
  return offset;
}

TEST_CASE("reader: seek by offset lands on that record in every segment", "[reader]") {
  TempDir tmp;
  auto log = unwrap(
      PartitionLog::create(tmp.partition(), test::small_segments(), test::patient_options()));
  auto appender = unwrap(LogAppender::open(log));
  constexpr std::int64_t kCount = 3000;
  fill(appender, kCount);
  auto bases = unwrap(log->segment_bases());
  REQUIRE(bases.size() >= 5);

  auto reader = unwrap(LogReader::open(log, {.verify_crc = true}));
  for (std::int64_t o = 0; o < kCount; ++o) {
    INFO("seek to " << o);
    REQUIRE_OK(reader.seek(o));
    REQUIRE(reader.position() == o);
    REQUIRE(next_offset(reader) == o);
  }
  // Backwards, and across every boundary from both sides.
  for (auto it = bases.rbegin(); it != bases.rend(); ++it) {
    for (std::int64_t o : {*it - 1, *it, *it + 1}) {
      if (o < 0) continue;
      INFO("seek to " << o << " near base " << *it);
      REQUIRE_OK(reader.seek(o));
      auto got = read_records(reader, 3);
      REQUIRE(got.size() == 3);
      for (std::size_t k = 0; k < 3; ++k) {
        CHECK(got[k].offset == o + static_cast<std::int64_t>(k));
        auto stamp = test::parse_value(*got[k].value);
        REQUIRE(stamp);
        CHECK(stamp->seq == static_cast<std::uint64_t>(o) + k);
      }
    }
  }

  // The end itself is a valid position: nothing to read until the next append.
  REQUIRE_OK(reader.seek(kCount));
  CHECK(reader.position() == kCount);
  CHECK(reader.poll([](const RecordView&) {}).records == 0);
  append_ok(appender, "next");
  CHECK(next_offset(reader) == kCount);

  // Past the end, and before the beginning.
  Status past = reader.seek(kCount + 2);
  CHECK(past.code() == ErrorCode::kOutOfRange);
  CHECK_THAT(past.message(), Catch::Contains("after the end"));
  Status before = reader.seek(-1);
  CHECK(before.code() == ErrorCode::kOutOfRange);
  CHECK_THAT(before.message(), Catch::Contains("before the earliest"));
}

TEST_CASE("reader: seek to a timestamp finds the first record at or after it", "[reader]") {
  TempDir tmp;
  auto log = unwrap(
      PartitionLog::create(tmp.partition(), test::small_segments(), test::patient_options()));
  auto appender = unwrap(LogAppender::open(log));
  constexpr std::int64_t kCount = 3000;
  fill(appender, kCount);
  auto bases = unwrap(log->segment_bases());
  REQUIRE(bases.size() >= 5);

  auto reader = unwrap(LogReader::open(log));
  std::vector<std::int64_t> targets;
  for (std::int64_t o = 0; o < kCount; o += 7) targets.push_back(o);
  for (std::int64_t b : bases) {
    targets.push_back(b);
    if (b > 0) targets.push_back(b - 1);
  }
  targets.push_back(kCount - 1);
  for (std::int64_t o : targets) {
    INFO("record " << o);
    REQUIRE_OK(reader.seek_to_timestamp(timestamp_of(o)));
    CHECK(reader.position() == o);
    CHECK(next_offset(reader) == o);
    // Between two records: the later one.
    REQUIRE_OK(reader.seek_to_timestamp(timestamp_of(o) - kTimestampStep / 2));
    CHECK(next_offset(reader) == o);
    REQUIRE_OK(reader.seek_to_timestamp(timestamp_of(o) + 1));
    if (o + 1 < kCount) {
      CHECK(next_offset(reader) == o + 1);
    } else {
      CHECK(reader.position() == kCount);
    }
  }
  // Before everything: the first record. After everything: the end.
  REQUIRE_OK(reader.seek_to_timestamp(0));
  CHECK(next_offset(reader) == 0);
  REQUIRE_OK(reader.seek_to_timestamp(timestamp_of(kCount) + 1'000'000));
  CHECK(reader.position() == kCount);
  CHECK(reader.poll([](const RecordView&) {}).records == 0);
}

TEST_CASE("reader: seek_to_beginning and seek_to_end across segments", "[reader]") {
  TempDir tmp;
  auto log = unwrap(
      PartitionLog::create(tmp.partition(), test::small_segments(), test::patient_options()));
  auto appender = unwrap(LogAppender::open(log));
  auto reader = unwrap(LogReader::open(log));
  // An empty log: beginning and end are both offset 0.
  REQUIRE_OK(reader.seek_to_end());
  CHECK(reader.position() == 0);

  fill(appender, 2000);
  REQUIRE_OK(reader.seek_to_end());
  CHECK(reader.position() == 2000);
  CHECK(reader.poll([](const RecordView&) {}).records == 0);
  CHECK(append_ok(appender, "tail") == 2000);
  CHECK(next_offset(reader) == 2000);

  REQUIRE_OK(reader.seek_to_beginning());
  CHECK(reader.position() == 0);
  auto got = read_records(reader, 2001);
  REQUIRE(got.size() == 2001);
  for (std::size_t i = 0; i < got.size(); ++i) REQUIRE(got[i].offset == static_cast<int>(i));

  // Exactly at a roll: the end of a just-rolled log is the new segment's base.
  std::int64_t base = unwrap(log->segment_bases()).back();
  auto active = unwrap(log->active_segment());
  CHECK(active->base_offset() == base);
  REQUIRE_OK(reader.seek_to_end());
  CHECK(reader.position() == 2001);
}

TEST_CASE("reader: seek before the earliest retained offset is out of range", "[reader]") {
  TempDir tmp;
  LogOptions options = test::patient_options();
  options.retain_segments = 2;
  auto log = unwrap(PartitionLog::create(tmp.partition(), test::small_segments(), options));
  auto appender = unwrap(LogAppender::open(log));
  // A reader positioned at offset 0 before retention runs.
  auto early = unwrap(LogReader::open(log));
  fill(appender, 3000);
  REQUIRE_OK(log->prepare_next());
  auto bases = unwrap(log->segment_bases());
  REQUIRE(bases.size() == 2);
  const std::int64_t earliest = bases.front();
  REQUIRE(earliest > 0);

  auto reader = unwrap(LogReader::open(log));
  CHECK(reader.position() == earliest);
  CHECK(next_offset(reader) == earliest);
  Status s = reader.seek(earliest - 1);
  CHECK(s.code() == ErrorCode::kOutOfRange);
  CHECK_THAT(s.message(),
             Catch::Contains("before the earliest retained offset " + std::to_string(earliest)));
  s = reader.seek(0);
  CHECK(s.code() == ErrorCode::kOutOfRange);
  REQUIRE_OK(reader.seek(earliest));
  CHECK(next_offset(reader) == earliest);

  // The early reader still maps its (deleted) first segment and reads it to the end; the
  // segment after it is gone too, so it then gets kOutOfRange, not a crash or a hang.
  ReadOutcome outcome = ReadOutcome::kOk;
  auto got = read_records(early, 3000, &outcome, 1'000'000'000);
  CHECK(outcome == ReadOutcome::kOutOfRange);
  CHECK_THAT(early.error().message(), Catch::Contains(tmp.partition()));
  REQUIRE_FALSE(got.empty());
  for (std::size_t i = 0; i < got.size(); ++i) REQUIRE(got[i].offset == static_cast<int>(i));
  CHECK(got.back().offset < earliest);
  REQUIRE_OK(early.seek_to_beginning());
  CHECK(early.position() == earliest);
  got = read_records(early, static_cast<std::size_t>(3000 - earliest));
  REQUIRE(got.size() == static_cast<std::size_t>(3000 - earliest));
  CHECK(got.front().offset == earliest);
  CHECK(got.back().offset == 2999);
}

TEST_CASE("reader: wait with a timeout returns false when nothing comes", "[reader]") {
  TempDir tmp;
  auto log = unwrap(
      PartitionLog::create(tmp.partition(), test::small_segments(), test::patient_options()));
  auto reader = unwrap(LogReader::open(log, {.spin_ns = 1'000'000}));
  for (WaitStrategy s :
       {WaitStrategy::kSpin, WaitStrategy::kYield, WaitStrategy::kBlock, WaitStrategy::kAdaptive}) {
    INFO("strategy " << static_cast<int>(s));
    CHECK_FALSE(reader.wait(s, 20'000'000));
    CHECK_FALSE(reader.wait(s, 0));
  }
  CHECK(log->control()->waiters.value.load() == 0);

  auto appender = unwrap(LogAppender::open(log));
  append_ok(appender, "x");
  for (WaitStrategy s :
       {WaitStrategy::kSpin, WaitStrategy::kYield, WaitStrategy::kBlock, WaitStrategy::kAdaptive}) {
    CHECK(reader.wait(s, 20'000'000));
    CHECK(reader.wait(s, -1));  // ready: no wait at all
  }
}

TEST_CASE("reader: a reader of a log opened read-only can wait for records", "[reader]") {
  TempDir tmp;
  auto log = unwrap(
      PartitionLog::create(tmp.partition(), test::small_segments(), test::patient_options()));
  LogOptions ro = test::patient_options();
  ro.access = Access::kReadOnly;
  auto read_only = unwrap(PartitionLog::open(tmp.partition(), ro));
  auto reader = unwrap(LogReader::open(read_only, {.spin_ns = 1'000'000}));
  for (WaitStrategy s :
       {WaitStrategy::kSpin, WaitStrategy::kYield, WaitStrategy::kBlock, WaitStrategy::kAdaptive}) {
    INFO("strategy " << static_cast<int>(s));
    CHECK_FALSE(reader.wait(s, 20'000'000));
  }
  auto appender = unwrap(LogAppender::open(log));
  append_ok(appender, "x");
  CHECK(reader.wait(WaitStrategy::kBlock, 10'000'000'000));
  CHECK(next_offset(reader) == 0);
}

// The reader thread announces each wait, the main thread appends after the announcement;
// the reader must wake up (by the futex, or at worst by its periodic re-check) every time.
void ping_pong(WaitStrategy strategy, Access reader_access = Access::kReadWrite) {
  TempDir tmp;
  auto log = unwrap(
      PartitionLog::create(tmp.partition(), test::small_segments(), test::patient_options()));
  auto appender = unwrap(LogAppender::open(log));
  LogOptions reader_options = test::patient_options();
  reader_options.access = reader_access;
  auto reader_log = unwrap(PartitionLog::open(tmp.partition(), reader_options));
  constexpr int kRounds = 30;
  std::atomic<int> waiting{-1};
  std::atomic<int> received{0};
  std::atomic<bool> failed{false};
  std::thread reader_thread([&] {
    auto reader = LogReader::open(reader_log, {.spin_ns = 200'000});
    if (!reader) {
      failed = true;
      return;
    }
    for (int i = 0; i < kRounds; ++i) {
      waiting.store(i);
      if (!reader->wait(strategy, 30'000'000'000)) {
        failed = true;
        return;
      }
      std::int64_t offset = -1;
      reader->poll([&](const RecordView& v) { offset = v.offset; }, 1);
      if (offset != i) {
        failed = true;
        return;
      }
      received.store(i + 1);
    }
  });
  for (int i = 0; i < kRounds && !failed; ++i) {
    while (waiting.load() != i && !failed) std::this_thread::yield();
    // Give the reader time to park on some rounds (no assertion depends on it).
    if (i % 3 == 0) std::this_thread::sleep_for(std::chrono::milliseconds(5));
    append_ok(appender, "ping " + std::to_string(i));
    while (received.load() != i + 1 && !failed) std::this_thread::yield();
  }
  reader_thread.join();
  CHECK_FALSE(failed);
  CHECK(received.load() == kRounds);
  CHECK(log->control()->waiters.value.load() == 0);
}

TEST_CASE("reader: a blocked reader wakes when another thread appends", "[concurrency]") {
  ping_pong(WaitStrategy::kBlock);
}

TEST_CASE("reader: an adaptive reader wakes when another thread appends", "[concurrency]") {
  ping_pong(WaitStrategy::kAdaptive);
}

TEST_CASE("reader: a blocked reader of a read-only log wakes when another thread appends",
          "[concurrency]") {
  ping_pong(WaitStrategy::kBlock, Access::kReadOnly);
}

TEST_CASE("reader: a blocked reader wakes when another process appends", "[process]") {
  TempDir tmp;
  auto log = unwrap(
      PartitionLog::create(tmp.partition(), test::small_segments(), test::patient_options()));
  auto reader = unwrap(LogReader::open(log));
  test::Pipe go;
  constexpr int kRounds = 10;
  pid_t child = test::spawn([&] {
    auto l = PartitionLog::open(tmp.partition(), test::patient_options());
    if (!l) return 2;
    auto a = LogAppender::open(*l);
    if (!a) return 3;
    for (int i = 0; i < kRounds; ++i) {
      if (!go.receive()) return 4;
      if (i % 2 == 0) std::this_thread::sleep_for(std::chrono::milliseconds(5));
      if (a->append("from the child").outcome != AppendOutcome::kOk) return 5;
    }
    return 0;
  });
  for (int i = 0; i < kRounds; ++i) {
    INFO("round " << i);
    REQUIRE(go.send());
    REQUIRE(
        reader.wait(i % 2 == 0 ? WaitStrategy::kBlock : WaitStrategy::kAdaptive, 30'000'000'000));
    REQUIRE(next_offset(reader) == i);
  }
  CHECK(test::wait_child(child) == 0);
}

}  // namespace
}  // namespace sluice::shm
