#include "shm/log_reader.h"

#include <sys/resource.h>

#include <atomic>
#include <catch2/catch.hpp>
#include <cstring>
#include <functional>
#include <string>
#include <thread>
#include <vector>

#include "shm/futex.h"
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

// Two producers: the first holds a claim while the second appends after it. Each frame is
// 48 bytes, the index interval 512: the claim (offset 0) sits before the first index slot the
// second producer fills.
TEST_CASE("reader: a seek past a claim not yet committed waits there for its target", "[reader]") {
  TempDir tmp;
  auto log = unwrap(
      PartitionLog::create(tmp.partition(), test::small_segments(), test::patient_options()));
  auto first = unwrap(LogAppender::open(log));
  auto second = unwrap(LogAppender::open(log));
  Claim held;
  REQUIRE(first.claim(15, held) == AppendOutcome::kOk);
  REQUIRE(held.offset() == 0);
  std::memcpy(held.value().data(), "held held held.", 15);
  for (std::int64_t i = 1; i <= 60; ++i) REQUIRE(append_ok(second, "after the claim") == i);

  auto reader = unwrap(LogReader::open(log));
  // seek_to_end walks from the last index slot: its end lies past the open claim.
  REQUIRE_OK(reader.seek_to_end());
  CHECK(reader.position() == 61);
  // The second producer's first record: the seek succeeds (lazily) and waits at the claim.
  REQUIRE_OK(reader.seek(1));
  CHECK(reader.position() == 1);
  CHECK(reader.poll([](const RecordView&) {}).records == 0);
  CHECK_FALSE(reader.ready());
  CHECK(reader.position() == 1);

  SECTION("the target is delivered first once the claim commits") {
    first.commit(held);
    auto got = read_records(reader, 3);
    REQUIRE(got.size() == 3);
    CHECK(got[0].offset == 1);  // not the record just committed at offset 0
    CHECK(got[0].value == "after the claim");
    CHECK(got[1].offset == 2);
    CHECK(got[2].offset == 3);
    CHECK(reader.position() == 4);
  }
  SECTION("the target is delivered first once the claim is aborted") {
    first.abort(held);
    CHECK(next_offset(reader) == 1);
    CHECK(reader.position() == 2);
  }
  SECTION("the claim's own offset and the end are valid targets; past the end is not") {
    REQUIRE_OK(reader.seek(0));
    CHECK(reader.position() == 0);
    REQUIRE_OK(reader.seek(61));
    CHECK(reader.position() == 61);
    Status past = reader.seek(62);
    CHECK(past.code() == ErrorCode::kOutOfRange);
    CHECK_THAT(past.message(), Catch::Contains("after the end offset 61"));
    REQUIRE_OK(reader.seek(0));
    first.commit(held);
    CHECK(next_offset(reader) == 0);
  }
  SECTION("a record after an index slot past the claim is read at once") {
    REQUIRE_OK(reader.seek(30));
    CHECK(next_offset(reader) == 30);
  }
  SECTION("a later seek forgets the skip") {
    REQUIRE_OK(reader.seek(0));
    first.commit(held);
    CHECK(next_offset(reader) == 0);
  }
  SECTION("seek_to_beginning forgets the skip") {
    REQUIRE_OK(reader.seek_to_beginning());
    CHECK(reader.position() == 0);
    first.commit(held);
    CHECK(next_offset(reader) == 0);
  }
  SECTION("seek_to_timestamp forgets the skip") {
    REQUIRE_OK(reader.seek_to_timestamp(0));
    first.commit(held);
    CHECK(next_offset(reader) == 0);
  }
}

TEST_CASE("reader: a lazy seek into a full segment whose roll is held back", "[reader]") {
  TempDir tmp;
  LogOptions options = test::patient_options();
  options.roll_gate = [](PartitionLog&) { return false; };  // the segment stays sealed, active
  auto log = unwrap(PartitionLog::create(tmp.partition(), test::small_segments(), options));
  auto first = unwrap(LogAppender::open(log));
  auto second = unwrap(LogAppender::open(log));
  Claim held;
  REQUIRE(first.claim(15, held) == AppendOutcome::kOk);
  std::memcpy(held.value().data(), "held held held.", 15);
  std::int64_t last = 0;
  for (;;) {
    AppendResult r = second.append("after the claim");
    if (r.outcome == AppendOutcome::kBackPressured) break;
    REQUIRE(r.outcome == AppendOutcome::kOk);
    last = r.offset;
  }
  REQUIRE(last > 100);
  auto reader = unwrap(LogReader::open(log));
  REQUIRE_OK(reader.seek_to_end());
  CHECK(reader.position() == last + 1);
  // The end is the sealed end of the segment, not its base (nothing is reserved after it).
  REQUIRE_OK(reader.seek(last + 1));
  Status past = reader.seek(last + 2);
  CHECK(past.code() == ErrorCode::kOutOfRange);
  CHECK_THAT(past.message(), Catch::Contains("after the end offset " + std::to_string(last + 1)));
  REQUIRE_OK(reader.seek(5));
  CHECK(reader.poll([](const RecordView&) {}).records == 0);
  first.commit(held);
  CHECK(next_offset(reader) == 5);
}

TEST_CASE("reader: seek_to_end finds the end after every append, over pads and large frames",
          "[reader]") {
  TempDir tmp;
  auto log = unwrap(
      PartitionLog::create(tmp.partition(), test::small_segments(), test::patient_options()));
  auto appender = unwrap(LogAppender::open(log));
  auto reader = unwrap(LogReader::open(log));
  std::int64_t last_record = -1;
  std::int64_t next = 0;
  for (int i = 0; i < 3000; ++i) {
    INFO("append " << i << ", next offset " << next);
    bool pad = i % 97 == 5;
    if (pad) {
      // An aborted claim: padding, and an offset never delivered.
      Claim c;
      REQUIRE(appender.claim(static_cast<std::uint32_t>(i % 700), c) == AppendOutcome::kOk);
      appender.abort(c);
      ++next;
    } else {
      // Values up to 2 KiB: some frames span several 512-byte index slots.
      std::string v(static_cast<std::size_t>(i % 13 == 0 ? 2000 : i % 40), 'x');
      last_record = append_ok(appender, v);
      next = last_record + 1;
    }
    // The reader left at the previous end reads exactly what was appended since.
    std::int64_t got = -1;
    reader.poll([&](const RecordView& v) { got = v.offset; });
    CHECK(got == (pad ? -1 : last_record));
    // After padding, the walk cannot tell which offsets the pad held: the end it finds
    // may be before them.
    REQUIRE_OK(reader.seek_to_end());
    REQUIRE(reader.position() <= next);
    REQUIRE(reader.position() >= last_record + 1);
    if (!pad) REQUIRE(reader.position() == next);
    CHECK_FALSE(reader.ready());
  }
  CHECK(unwrap(log->segment_bases()).size() > 3);
}

TEST_CASE("reader: poll_prefetching delivers what poll does, over pads, rolls and limits",
          "[reader]") {
  TempDir tmp;
  auto log = unwrap(
      PartitionLog::create(tmp.partition(), test::small_segments(), test::patient_options()));
  auto appender = unwrap(LogAppender::open(log));
  std::vector<std::int64_t> appended;
  for (int i = 0; i < 3000; ++i) {
    if (i % 97 == 5) {
      Claim c;  // an aborted claim: a pad
      REQUIRE(appender.claim(static_cast<std::uint32_t>(i % 700), c) == AppendOutcome::kOk);
      appender.abort(c);
    } else {
      std::string v(static_cast<std::size_t>(i % 13 == 0 ? 2000 : i % 40), 'x');
      appended.push_back(append_ok(appender, v));
    }
  }
  REQUIRE(unwrap(log->segment_bases()).size() > 3);
  for (std::uint32_t ahead : {0u, 64u, 4096u, 1u << 20}) {
    INFO("ahead " << ahead);
    auto reader = unwrap(LogReader::open(log));
    std::vector<std::int64_t> got;
    for (;;) {
      PollResult r =
          reader.poll_prefetching([&](const RecordView& v) { got.push_back(v.offset); }, 7, ahead);
      REQUIRE(r.records <= 7);
      if (r.records == 0) {
        CHECK(r.outcome == ReadOutcome::kOk);  // at the end, nothing more committed
        break;
      }
    }
    CHECK(got == appended);
  }
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

// A ping-pong between a reader thread and this one. In round i the reader thread announces
// the round, calls wait(i), and must then read the record offset expected(i) with read(i);
// this thread waits for the announcement, gives the reader time to park on some rounds, and
// appends with append(i). The reader must wake up (by the futex, or at worst by its periodic
// re-check) every time. Returns the rounds the reader completed.
int ping_pong_rounds(int rounds, const std::function<bool(int)>& wait,
                     const std::function<std::int64_t(int)>& read,
                     const std::function<std::int64_t(int)>& expected,
                     const std::function<void(int)>& append) {
  std::atomic<int> waiting{-1};
  std::atomic<int> received{0};
  std::atomic<bool> failed{false};
  std::thread reader_thread([&] {
    for (int i = 0; i < rounds; ++i) {
      waiting.store(i);
      if (!wait(i) || read(i) != expected(i)) {
        failed = true;
        return;
      }
      received.store(i + 1);
    }
  });
  for (int i = 0; i < rounds && !failed; ++i) {
    while (waiting.load() != i && !failed) std::this_thread::yield();
    // Give the reader time to park on some rounds (no assertion depends on it).
    if (i % 3 == 0) std::this_thread::sleep_for(std::chrono::milliseconds(5));
    append(i);
    while (received.load() != i + 1 && !failed) std::this_thread::yield();
  }
  reader_thread.join();
  return received.load();
}

// Reads one record; its offset, or -1.
std::int64_t read_one(LogReader& reader) {
  std::int64_t offset = -1;
  reader.poll([&](const RecordView& v) { offset = v.offset; }, 1);
  return offset;
}

void ping_pong(WaitStrategy strategy, Access reader_access = Access::kReadWrite) {
  TempDir tmp;
  auto log = unwrap(
      PartitionLog::create(tmp.partition(), test::small_segments(), test::patient_options()));
  auto appender = unwrap(LogAppender::open(log));
  LogOptions reader_options = test::patient_options();
  reader_options.access = reader_access;
  auto reader_log = unwrap(PartitionLog::open(tmp.partition(), reader_options));
  auto reader = unwrap(LogReader::open(reader_log, {.spin_ns = 200'000}));
  constexpr int kRounds = 30;
  int received = ping_pong_rounds(
      kRounds, [&](int) { return reader.wait(strategy, 30'000'000'000); },
      [&](int) { return read_one(reader); }, [](int i) { return std::int64_t{i}; },
      [&](int i) { append_ok(appender, "ping " + std::to_string(i)); });
  CHECK(received == kRounds);
  CHECK(log->control()->waiters.value.load() == 0);
}

TEST_CASE("reader: a blocked reader wakes when another thread appends", "[concurrency]") {
  ping_pong(WaitStrategy::kBlock);
}

TEST_CASE("reader: an adaptive reader wakes when another thread appends", "[concurrency]") {
  ping_pong(WaitStrategy::kAdaptive);
}

TEST_CASE("reader: an adaptive reader whose spin has shrunk still wakes for every append",
          "[concurrency]") {
  TempDir tmp;
  auto log = unwrap(
      PartitionLog::create(tmp.partition(), test::small_segments(), test::patient_options()));
  ReaderOptions options;
  options.spin_ns = 20'000;
  options.shrink_after_parks = 2;
  auto reader = unwrap(LogReader::open(log, options));
  auto appender = unwrap(LogAppender::open(log));
  // Waits that time out with nothing to read shrink the spin.
  for (int i = 0; i < 4; ++i) CHECK_FALSE(reader.wait(WaitStrategy::kAdaptive, 1'000'000));
  // Then records a few milliseconds apart (each wait parks), and a burst (no wait parks).
  std::thread producer([&] {
    for (int i = 0; i < 6; ++i) {
      std::this_thread::sleep_for(std::chrono::milliseconds(3));
      (void)appender.append("slow " + std::to_string(i));
    }
    for (int i = 0; i < 200; ++i) (void)appender.append("burst " + std::to_string(i));
  });
  std::int64_t expected = 0;
  while (expected < 206) {
    if (!reader.wait(WaitStrategy::kAdaptive, 30'000'000'000)) break;
    reader.poll([&](const RecordView& v) {
      if (v.offset == expected) ++expected;
    });
  }
  producer.join();
  CHECK(expected == 206);
  CHECK(log->control()->waiters.value.load() == 0);
}

TEST_CASE("reader: a blocked reader of a read-only log wakes when another thread appends",
          "[concurrency]") {
  ping_pong(WaitStrategy::kBlock, Access::kReadOnly);
}

// Four partitions, as a consumer assigned several has them: logs, one appender each, and a
// reader each. The last log's reader maps it read-only unless `all_writable`.
struct FourPartitions {
  TempDir tmp;
  std::vector<std::shared_ptr<PartitionLog>> logs;
  std::vector<LogAppender> appenders;
  std::vector<LogReader> readers;
  std::vector<LogReader*> wait_set;

  explicit FourPartitions(bool all_writable) {
    for (int i = 0; i < 4; ++i) {
      std::string dir = tmp.path() + "/p" + std::to_string(i);
      logs.push_back(
          unwrap(PartitionLog::create(dir, test::small_segments(), test::patient_options())));
      appenders.push_back(unwrap(LogAppender::open(logs.back())));
      LogOptions options = test::patient_options();
      if (i == 3 && !all_writable) options.access = Access::kReadOnly;
      readers.push_back(unwrap(LogReader::open(unwrap(PartitionLog::open(dir, options)))));
    }
    for (auto& r : readers) wait_set.push_back(&r);
  }
  std::uint32_t waiters() const {
    std::uint32_t n = 0;
    for (const auto& l : logs) n += l->control()->waiters.value.load();
    return n;
  }
};

long voluntary_switches_of_this_thread() {
  rusage usage{};
  getrusage(RUSAGE_THREAD, &usage);
  return usage.ru_nvcsw;
}

TEST_CASE("reader: wait_any returns when any of its partitions has a record", "[reader]") {
  FourPartitions four(false);
  CHECK_FALSE(LogReader::wait_any(four.wait_set, 20'000'000));
  CHECK_FALSE(LogReader::wait_any(four.wait_set, 0));
  CHECK(four.waiters() == 0);
  for (int p : {2, 3, 0}) {  // 3 is read-only
    INFO("partition " << p);
    append_ok(four.appenders[static_cast<std::size_t>(p)], "x");
    CHECK(LogReader::wait_any(four.wait_set, 20'000'000));
    CHECK(four.readers[static_cast<std::size_t>(p)].ready());
    CHECK(read_records(four.readers[static_cast<std::size_t>(p)], 1).size() == 1);
  }
  CHECK(four.waiters() == 0);
}

// An idle consumer over several partitions used to park on one futex at a time for 1 ms, and
// woke about a thousand times a second. wait_any sleeps on all of them until its timeout.
TEST_CASE("reader: wait_any sleeps on all its partitions at once while nothing comes", "[reader]") {
  if (!futex_wait_any_supported()) {
    WARN("this kernel has no futex_waitv: wait_any parks 1 ms at a time here");
    return;
  }
  FourPartitions four(true);
  long before = voluntary_switches_of_this_thread();
  CHECK_FALSE(LogReader::wait_any(four.wait_set, 300'000'000));
  long switches = voluntary_switches_of_this_thread() - before;
  INFO(switches << " voluntary context switches in 300 ms");
  CHECK(switches <= 30);  // a few 100 ms parks and the heavy barriers; one per 1 ms was ~300
  CHECK(four.waiters() == 0);
}

TEST_CASE("reader: wait_any wakes when another thread appends to any of its partitions",
          "[concurrency]") {
  FourPartitions four(false);
  constexpr int kRounds = 24;  // round i appends to partition i % 4, the 4th read-only
  auto part = [](int i) { return static_cast<std::size_t>(i % 4); };
  int received = ping_pong_rounds(
      kRounds, [&](int) { return LogReader::wait_any(four.wait_set, 30'000'000'000); },
      [&](int i) { return read_one(four.readers[part(i)]); },
      [](int i) { return std::int64_t{i / 4}; },
      [&](int i) { append_ok(four.appenders[part(i)], "ping " + std::to_string(i)); });
  CHECK(received == kRounds);
  CHECK(four.waiters() == 0);
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
