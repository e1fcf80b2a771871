#include "shm/partition_log.h"

#include <sys/stat.h>

#include <catch2/catch.hpp>
#include <cstring>
#include <filesystem>
#include <set>
#include <string>
#include <vector>

#include "shm/test_support.h"

namespace sluice::shm {
namespace {

using test::append_ok;
using test::offsets_of;
using test::read_records;
using test::Rec;
using test::TempDir;
using test::unwrap;

// Appends records 0..count-1 of producer 0 and calls on_roll(n) after the n-th roll of `log`;
// returns the number of rolls.
template <typename OnRoll>
int append_with_rolls(LogAppender& producer, PartitionLog& log, std::uint64_t count,
                      OnRoll on_roll) {
  int rolls = 0;
  std::int64_t active = log.control()->active.active_base.load();
  for (std::uint64_t seq = 0; seq < count; ++seq) {
    append_ok(producer, test::make_value(0, seq));
    std::int64_t now_active = log.control()->active.active_base.load();
    if (now_active == active) continue;
    active = now_active;
    on_roll(++rolls);
  }
  return rolls;
}

std::vector<std::int64_t> range(std::int64_t from, std::int64_t to) {
  std::vector<std::int64_t> out;
  for (std::int64_t i = from; i < to; ++i) out.push_back(i);
  return out;
}

std::vector<std::int64_t> concat(std::vector<std::int64_t> a, const std::vector<std::int64_t>& b) {
  a.insert(a.end(), b.begin(), b.end());
  return a;
}

// Reserves past the end of the active segment the way a producer does (one fetch_add), and
// then does nothing: a producer that died before it could roll.
void reserve_past_end_and_die(PartitionLog& log) {
  auto seg = unwrap(log.active_segment());
  seg->header()->tail_line.tail.fetch_add(kTailCountOne + seg->capacity(),
                                          std::memory_order_acq_rel);
}

// ---- abandoned claims ------------------------------------------------------------------------

TEST_CASE("log: a claim never committed is padded after the abandon timeout", "[log]") {
  TempDir tmp;
  auto log = unwrap(
      PartitionLog::create(tmp.partition(), test::small_segments(), test::impatient_options()));
  auto producer = unwrap(LogAppender::open(log));
  auto stuck = unwrap(LogAppender::open(log));
  auto reader = unwrap(LogReader::open(log, {.verify_crc = true}));

  for (int i = 0; i < 5; ++i) append_ok(producer, "before");
  Claim claim;
  REQUIRE(stuck.claim(100, claim, test::with_key(std::string_view("never"))) == AppendOutcome::kOk);
  REQUIRE(claim.offset() == 5);
  std::memset(claim.value().data(), 'n', 50);  // half written, never committed
  for (int i = 0; i < 5; ++i) append_ok(producer, "after");

  auto got = read_records(reader, 10);
  CHECK(offsets_of(got) == concat(range(0, 5), range(6, 11)));
  for (const Rec& r : got) CHECK(r.value != std::optional<std::string>(std::string(50, 'n')));

  // The stuck claim is now padding: the partition verifies clean.
  CHECK(test::partition_damage(tmp.partition()) == "");
  auto report = unwrap(verify_partition(tmp.partition()));
  REQUIRE(report.segments.size() == 1);
  CHECK(report.segments[0].padding_frames == 1);
  CHECK(report.segments[0].records == 10);
}

TEST_CASE("log: a claim abandoned at the tail is padded and later records are read", "[log]") {
  TempDir tmp;
  auto log = unwrap(
      PartitionLog::create(tmp.partition(), test::small_segments(), test::impatient_options()));
  auto producer = unwrap(LogAppender::open(log));
  auto reader = unwrap(LogReader::open(log));
  append_ok(producer, "zero");
  SECTION("the claim was marked") {
    auto stuck = unwrap(LogAppender::open(log));
    Claim claim;
    REQUIRE(stuck.claim(333, claim) == AppendOutcome::kOk);
    REQUIRE(claim.offset() == 1);
    // Nothing comes after it for a while: the reader pads it once the timeout has passed.
    auto got = read_records(reader, 2, nullptr, 500'000'000);
    CHECK(offsets_of(got) == std::vector<std::int64_t>{0});
  }
  SECTION("the producer died between its reservation and marking the claim") {
    auto seg = unwrap(log->active_segment());
    seg->header()->tail_line.tail.fetch_add(kTailCountOne + 200, std::memory_order_acq_rel);
    auto got = read_records(reader, 2, nullptr, 500'000'000);
    CHECK(offsets_of(got) == std::vector<std::int64_t>{0});
  }
  CHECK(append_ok(producer, "two") == 2);
  auto got = read_records(reader, 1);
  CHECK(offsets_of(got) == std::vector<std::int64_t>{2});
  CHECK(test::partition_damage(tmp.partition()) == "");
}

TEST_CASE("log: a gap left by a producer that died before marking its claim is skipped", "[log]") {
  TempDir tmp;
  auto log = unwrap(
      PartitionLog::create(tmp.partition(), test::small_segments(), test::impatient_options()));
  auto producer = unwrap(LogAppender::open(log));
  auto reader = unwrap(LogReader::open(log));
  for (int i = 0; i < 3; ++i) append_ok(producer, "before");
  auto seg = unwrap(log->active_segment());
  seg->header()->tail_line.tail.fetch_add(kTailCountOne + 96, std::memory_order_acq_rel);
  for (int i = 0; i < 3; ++i) append_ok(producer, "after");
  auto got = read_records(reader, 6);
  CHECK(offsets_of(got) == std::vector<std::int64_t>{0, 1, 2, 4, 5, 6});
  CHECK(test::partition_damage(tmp.partition()) == "");
}

TEST_CASE("log: a batch claim never committed is padded whole", "[log]") {
  TempDir tmp;
  auto log = unwrap(
      PartitionLog::create(tmp.partition(), test::small_segments(), test::impatient_options()));
  auto producer = unwrap(LogAppender::open(log));
  auto stuck = unwrap(LogAppender::open(log));
  auto reader = unwrap(LogReader::open(log, {.verify_crc = true}));
  for (int i = 0; i < 3; ++i) append_ok(producer, "before");
  BatchClaim batch;
  REQUIRE(stuck.claim_batch(10, 40, batch) == AppendOutcome::kOk);
  REQUIRE(batch.first_offset() == 3);
  for (int i = 0; i < 3; ++i) append_ok(producer, "after");
  auto got = read_records(reader, 6);
  CHECK(offsets_of(got) == std::vector<std::int64_t>{0, 1, 2, 13, 14, 15});
  auto report = unwrap(verify_partition(tmp.partition()));
  CHECK(report.damage.empty());
  REQUIRE(report.segments.size() == 1);
  CHECK(report.segments[0].padding_frames == 1);
}

TEST_CASE("log: end_offset is the offset the next append gets", "[log]") {
  TempDir tmp;
  auto log = unwrap(
      PartitionLog::create(tmp.partition(), test::small_segments(), test::patient_options()));
  CHECK(log->end_offset() == 0);
  auto producer = unwrap(LogAppender::open(log));
  for (std::int64_t i = 0; i < 2000; ++i) {
    REQUIRE(log->end_offset() == i);
    REQUIRE(append_ok(producer, test::make_value(0, static_cast<std::uint64_t>(i))) == i);
  }
  REQUIRE(unwrap(log->segment_bases()).size() > 3);
  Claim claim;
  REQUIRE(producer.claim(10, claim) == AppendOutcome::kOk);
  CHECK(log->end_offset() == 2001);  // reserved counts, committed or not
  producer.abort(claim);
  CHECK(log->end_offset() == 2001);
}

// ---- abandoned rolls -------------------------------------------------------------------------

TEST_CASE("log: a roll abandoned after its reservation is finished after the timeout", "[log]") {
  TempDir tmp;
  auto log = unwrap(
      PartitionLog::create(tmp.partition(), test::small_segments(), test::impatient_options()));
  auto producer = unwrap(LogAppender::open(log));
  auto reader = unwrap(LogReader::open(log, {.verify_crc = true}));
  for (int i = 0; i < 10; ++i) append_ok(producer, "before the roll");
  reserve_past_end_and_die(*log);

  SECTION("by the next producer") {
    CHECK(append_ok(producer, "after the roll") == 10);
    auto got = read_records(reader, 11);
    CHECK(offsets_of(got) == range(0, 11));
  }
  SECTION("by a reader waiting at the end of the segment") {
    auto got = read_records(reader, 11, nullptr, 500'000'000);
    CHECK(offsets_of(got) == range(0, 10));
    CHECK(unwrap(log->segment_bases()) == std::vector<std::int64_t>{0, 10});
    CHECK(append_ok(producer, "after the roll") == 10);
    got = read_records(reader, 1);
    CHECK(offsets_of(got) == std::vector<std::int64_t>{10});
  }
  SECTION("by recover_roll called directly") {
    auto seg = unwrap(log->segment(0));
    REQUIRE_OK(log->recover_roll(*seg));
    CHECK(log->control()->active.active_base.load() == 10);
    CHECK(append_ok(producer, "after the roll") == 10);
    auto got = read_records(reader, 11);
    CHECK(offsets_of(got) == range(0, 11));
  }
  CHECK(test::partition_damage(tmp.partition()) == "");
}

TEST_CASE("log: recovering an abandoned roll keeps records committed after an abandoned claim",
          "[log]") {
  TempDir tmp;
  auto log = unwrap(
      PartitionLog::create(tmp.partition(), test::small_segments(), test::impatient_options()));
  auto producer = unwrap(LogAppender::open(log));
  auto stuck = unwrap(LogAppender::open(log));
  for (int i = 0; i < 5; ++i) append_ok(producer, "before the dead claim");
  Claim claim;
  REQUIRE(stuck.claim(64, claim) == AppendOutcome::kOk);
  REQUIRE(claim.offset() == 5);
  for (int i = 0; i < 5; ++i) append_ok(producer, "after the dead claim");
  reserve_past_end_and_die(*log);

  // The producer finishes the roll before any reader has padded the dead claim.
  const std::int64_t next = append_ok(producer, "after the roll");
  CHECK(next == 11);

  auto reader = unwrap(LogReader::open(log, {.verify_crc = true}));
  auto got = read_records(reader, 11, nullptr, 1'000'000'000);
  CHECK(offsets_of(got) == concat(concat(range(0, 5), range(6, 11)), {next}));
  CHECK(test::partition_damage(tmp.partition()) == "");
}

// ---- retention -------------------------------------------------------------------------------

// Reads what `reader` can deliver now into `tally`, requiring a clean read of intact records.
void drain_intact(LogReader& reader, test::Tally& tally) {
  ReadOutcome o = test::drain(reader, tally);
  INFO(reader.error().message());
  REQUIRE(o == ReadOutcome::kOk);
  INFO(tally.summary());
  REQUIRE(tally.problem().empty());
}

TEST_CASE("log: retention recycles segments and readers left on one get kOutOfRange", "[log]") {
  TempDir tmp;
  const LogOptions options = test::recycling_options(3);
  auto log = unwrap(PartitionLog::create(tmp.partition(), test::small_segments(), options));
  REQUIRE_OK(log->prepare_next());
  auto producer = unwrap(LogAppender::open(log));
  auto follower = unwrap(LogReader::open(log, {.verify_crc = true}));
  auto laggard = unwrap(LogReader::open(log, {.verify_crc = true}));

  std::set<ino_t> inodes;
  auto note_inodes = [&] {
    for (std::int64_t b : unwrap(log->segment_bases())) {
      struct stat st {};
      if (::stat(test::segment_path(tmp.partition(), b).c_str(), &st) == 0)
        inodes.insert(st.st_ino);
    }
  };

  append_ok(producer, test::make_value(0, 0));
  auto first = read_records(laggard, 1);  // the laggard stops inside segment 0
  REQUIRE(first.size() == 1);

  const std::uint64_t kRecords = 20000 * static_cast<std::uint64_t>(test::stress_scale());
  test::Tally tally(1, kRecords);
  int rolls = 0;
  std::int64_t active = 0;
  for (std::uint64_t seq = 1; seq < kRecords; ++seq) {
    append_ok(producer, test::make_value(0, seq));
    std::int64_t now_active = log->control()->active.active_base.load();
    if (now_active != active) {
      active = now_active;
      ++rolls;
      // The follower keeps up, so that retention never takes its segment.
      drain_intact(follower, tally);
      REQUIRE_OK(log->prepare_next());
      REQUIRE(unwrap(log->segment_bases()).size() <= 3);
      note_inodes();
    }
  }
  ReadOutcome o = test::drain(follower, tally);
  CHECK(o == ReadOutcome::kOk);
  INFO(tally.summary());
  CHECK(tally.complete());
  // Many rolls, few files: the same inodes came back.
  auto bases = unwrap(log->segment_bases());
  CHECK(rolls >= 20);
  CHECK(inodes.size() <= 5);
  CHECK(test::partition_damage(tmp.partition()) == "");

  // Retention took the laggard's segment 0 long ago, but the laggard's handle pins the file,
  // so it was deleted instead of reused: the laggard reads the rest of segment 0 intact, then
  // finds the next segment gone.
  std::vector<Rec> stale;
  ReadOutcome laggard_outcome = ReadOutcome::kOk;
  for (int i = 0; i < 20 && laggard_outcome == ReadOutcome::kOk; ++i) {
    PollResult r =
        laggard.poll([&](const RecordView& v) { stale.push_back(test::copy_record(v)); });
    laggard_outcome = r.outcome;
    // wait() returns true once the segment is gone: the next poll says so.
    if (r.records == 0 && r.outcome == ReadOutcome::kOk)
      CHECK(laggard.wait(WaitStrategy::kBlock, 10'000'000'000));
  }
  INFO("laggard delivered " << stale.size() << " records and is at " << laggard.position());
  CHECK(laggard_outcome == ReadOutcome::kOutOfRange);
  CHECK_THAT(laggard.error().message(), Catch::Contains("retention"));
  REQUIRE(stale.size() > 100);  // the rest of segment 0, in order
  for (std::size_t i = 0; i < stale.size(); ++i)
    REQUIRE(stale[i].offset == static_cast<std::int64_t>(i) + 1);
  for (const Rec& r : stale) {
    INFO("laggard got offset " << r.offset);
    REQUIRE(r.value);
    auto stamp = test::parse_value(*r.value);
    REQUIRE(stamp);
    CHECK(static_cast<std::int64_t>(stamp->seq) == r.offset);
  }
  // It recovers by seeking to what is retained.
  REQUIRE_OK(laggard.seek_to_beginning());
  CHECK(laggard.position() == bases.front());
  auto again = read_records(
      laggard, static_cast<std::size_t>(static_cast<std::int64_t>(kRecords) - bases.front()));
  REQUIRE_FALSE(again.empty());
  CHECK(again.front().offset == bases.front());
  CHECK(again.back().offset == static_cast<std::int64_t>(kRecords) - 1);
}

// The arrangement `sluice perf` and bench/peers use: the reader's handle applies retention
// with prepare_next(), and the producer's handle has the same retention, so that a roll that
// finds no spare (prepare_next() came late) recycles the oldest segment in place. Here
// prepare_next() runs after every other roll only: without retention on the producer's
// handle, each of the other rolls created a new file.
TEST_CASE("log: rolls that find no spare recycle in place on a producer handle with retention",
          "[log]") {
  TempDir tmp;
  constexpr std::uint32_t kRetain = 3;
  auto [reader_log, producer_log] = test::recycling_handles(tmp.partition(), kRetain);
  auto producer = unwrap(LogAppender::open(producer_log));
  auto reader = unwrap(LogReader::open(reader_log, {.verify_crc = true}));

  std::set<ino_t> inodes;
  auto note_inodes = [&] {
    std::vector<std::string> paths = {tmp.partition() + "/spare.seg"};
    for (std::int64_t b : unwrap(reader_log->segment_bases()))
      paths.push_back(test::segment_path(tmp.partition(), b));
    for (const std::string& p : paths) {
      struct stat st {};
      if (::stat(p.c_str(), &st) == 0) inodes.insert(st.st_ino);
    }
  };

  const std::uint64_t kRecords = 20000;
  test::Tally tally(1, kRecords);
  const int rolls = append_with_rolls(producer, *producer_log, kRecords, [&](int roll) {
    // The reader keeps up, so that retention never takes a segment it has still to read.
    drain_intact(reader, tally);
    if (roll % 2 == 0) REQUIRE_OK(reader_log->prepare_next());
    REQUIRE(unwrap(reader_log->segment_bases()).size() <= kRetain + 1);
    note_inodes();
  });
  CHECK(test::drain(reader, tally) == ReadOutcome::kOk);
  INFO(tally.summary());
  CHECK(tally.complete());
  CHECK(rolls >= 20);
  // The pool (kRetain segments and a spare) and the file the partition started with: no
  // roll created another.
  CHECK(inodes.size() <= kRetain + 2);
  CHECK(test::partition_damage(tmp.partition()) == "");
}

// A roll that recycles in place leaves the pool a file short: kRetain segments and no spare.
// prepare_next() must make the spare again, or every later roll recycles in place too, and
// zeroes a whole segment (retire_for_reuse) on its producer's hot path: `sluice perf`'s
// producer fell 30 ms behind at every roll that way.
TEST_CASE("log: after rolls that recycled in place prepare_next makes the spare again", "[log]") {
  TempDir tmp;
  constexpr std::uint32_t kRetain = 3;
  auto [owner, producer_log] = test::recycling_handles(tmp.partition(), kRetain);
  auto producer = unwrap(LogAppender::open(producer_log));
  auto reader = unwrap(LogReader::open(owner, {.verify_crc = true}));

  const std::uint64_t kRecords = 20000;
  test::Tally tally(1, kRecords);
  int late_rolls = 0, rolls_after_spare = 0;
  append_with_rolls(producer, *producer_log, kRecords, [&](int roll) {
    drain_intact(reader, tally);
    if (roll <= 8) {
      // The owner is late for the first rolls: once the pool is full, they recycle in place.
      if (roll > static_cast<int>(kRetain) + 1) ++late_rolls;
      return;
    }
    REQUIRE_OK(owner->prepare_next());
    INFO("roll " << roll << ", segments " << unwrap(owner->segment_bases()).size());
    REQUIRE(owner->has_spare());
    ++rolls_after_spare;
  });
  CHECK(test::drain(reader, tally) == ReadOutcome::kOk);
  INFO(tally.summary());
  CHECK(tally.complete());
  CHECK(late_rolls >= 3);
  CHECK(rolls_after_spare >= 10);
  CHECK(unwrap(owner->segment_bases()).size() <= kRetain + 1);
  CHECK(test::partition_damage(tmp.partition()) == "");
}

// prepare_after_roll() is what a retention owner calls at every poll: after each roll it
// makes the spare that roll took (so the next roll finds one, and no roll recycles in place
// or creates a file), and between rolls it does nothing, not even look at the files.
TEST_CASE("log: prepare_after_roll makes a spare after each roll and does nothing between rolls",
          "[log]") {
  TempDir tmp;
  constexpr std::uint32_t kRetain = 3;
  auto [owner, producer_log] = test::recycling_handles(tmp.partition(), kRetain);
  auto producer = unwrap(LogAppender::open(producer_log));
  auto reader = unwrap(LogReader::open(owner, {.verify_crc = true}));
  const std::string spare = tmp.partition() + "/spare.seg";

  std::set<ino_t> inodes;
  const std::uint64_t kRecords = 20000;
  test::Tally tally(1, kRecords);
  int rolls_checked = 0;
  const int rolls = append_with_rolls(producer, *producer_log, kRecords, [&](int roll) {
    drain_intact(reader, tally);
    REQUIRE_OK(owner->prepare_after_roll());
    INFO("roll " << roll << ", segments " << unwrap(owner->segment_bases()).size());
    REQUIRE(owner->has_spare());
    struct stat st {};
    REQUIRE(::stat(spare.c_str(), &st) == 0);
    inodes.insert(st.st_ino);
    if (roll % 4 == 0) {
      // No roll since: the spare removed behind its back stays missing (it looked at nothing),
      // until prepare_next() is asked for one.
      REQUIRE(::unlink(spare.c_str()) == 0);
      REQUIRE_OK(owner->prepare_after_roll());
      CHECK_FALSE(owner->has_spare());
      REQUIRE_OK(owner->prepare_next());
      REQUIRE(owner->has_spare());
      REQUIRE(::stat(spare.c_str(), &st) == 0);
      inodes.insert(st.st_ino);
    }
    ++rolls_checked;
  });
  CHECK(test::drain(reader, tally) == ReadOutcome::kOk);
  INFO(tally.summary());
  CHECK(tally.complete());
  CHECK(rolls >= 20);
  CHECK(rolls_checked == rolls);
  // Every roll took a spare the owner had made: the pool, the first file, and one new file for
  // each spare removed above; none created by a roll, none recycled in place.
  CHECK(inodes.size() <= kRetain + 2 + static_cast<std::size_t>(rolls / 4));
  CHECK(unwrap(owner->segment_bases()).size() <= kRetain + 1);
  CHECK(test::partition_damage(tmp.partition()) == "");
}

// With zero_in_steps the file retention retires stays private until zero_step() has cleared
// all of its data region; only then is it the spare. prepare_next() finishes a clearing left
// unfinished, and a handle destroyed in the middle deletes the file.
TEST_CASE("log: with zero_in_steps a recycled file becomes the spare once all of it is clear",
          "[log]") {
  TempDir tmp;
  constexpr std::uint32_t kRetain = 3;
  LogOptions stepped = test::recycling_options(kRetain);
  stepped.zero_in_steps = true;
  auto owner = unwrap(PartitionLog::create(tmp.partition(), test::small_segments(), stepped));
  REQUIRE_OK(owner->prepare_next());
  auto producer_log = unwrap(PartitionLog::open(tmp.partition(), test::recycling_options(kRetain)));
  auto producer = unwrap(LogAppender::open(producer_log));
  auto reader = unwrap(LogReader::open(owner, {.verify_crc = true}));
  auto temporary_files = [&] {
    int n = 0;
    for (const auto& e : std::filesystem::directory_iterator(tmp.partition()))
      if (e.path().extension() == ".tmp") ++n;
    return n;
  };
  auto spare_is_clear = [&] {
    auto spare = unwrap(MappedFile::open(tmp.partition() + "/spare.seg", Access::kReadOnly));
    const auto* h = reinterpret_cast<const SegmentHeader*>(spare.data());
    for (std::uint64_t at = h->header_bytes; at < std::uint64_t{h->header_bytes} + h->capacity;
         ++at)
      if (spare.data()[at] != std::byte{0}) return false;
    return true;
  };

  const std::uint64_t kRecords = 20000;
  test::Tally tally(1, kRecords);
  int stepped_rolls = 0, finished_by_prepare = 0;
  append_with_rolls(producer, *producer_log, kRecords, [&](int roll) {
    drain_intact(reader, tally);
    REQUIRE_OK(owner->prepare_next());
    INFO("roll " << roll);
    if (owner->has_spare()) {  // the pool was still filling: a new file
      CHECK(roll <= static_cast<int>(kRetain) - 1);
      return;
    }
    // Retention retired the oldest segment: private, not yet the spare.
    REQUIRE(temporary_files() == 1);
    if (roll % 3 == 0) {
      REQUIRE_OK(owner->prepare_next());  // finishes it at once
      ++finished_by_prepare;
    } else {
      int steps = 0;
      while (owner->zero_step(1024)) {
        ++steps;
        REQUIRE_FALSE(owner->has_spare());
      }
      CHECK(steps > 1);
      ++stepped_rolls;
    }
    REQUIRE(owner->has_spare());
    CHECK(temporary_files() == 0);
    CHECK(spare_is_clear());
  });
  CHECK(test::drain(reader, tally) == ReadOutcome::kOk);
  INFO(tally.summary());
  CHECK(tally.complete());
  CHECK(stepped_rolls >= 5);
  CHECK(finished_by_prepare >= 3);
  CHECK(test::partition_damage(tmp.partition()) == "");

  // A clearing left unfinished by a handle that goes away: its file goes with it.
  append_with_rolls(producer, *producer_log, 5000, [&](int) {});
  REQUIRE_OK(owner->prepare_next());
  CHECK(owner->zero_step(1024));
  CHECK(temporary_files() == 1);
  reader = unwrap(LogReader::open(producer_log));  // lets go of the owner's handle
  owner.reset();
  CHECK(temporary_files() == 0);
}

// A file's old frames carry an older seq and read as "not yet written", but its old payload can
// hold any word at all, the new segment's seq included: a small integer in a record is enough.
// A reader that has caught up with the producers looks at the bytes past the tail, so recycling
// must clear them. Here segment 0 holds nothing but words that read as a committed 40-byte
// frame of seq 3, the seq its file gets when it is reused, by either recycling path.
TEST_CASE("log: a recycled file's old payload never reads as a committed frame",
          "[log][recycling]") {
  TempDir tmp;
  LogOptions options = test::patient_options();
  options.recycle_segments = true;
  const bool in_place = GENERATE(true, false);
  // In place: the second roll finds no spare and reuses the oldest of its 2 segments. Through
  // the spare: no retention of its own; drop_segment(0) makes the spare the roll takes.
  options.retain_segments = in_place ? 2 : 0;
  auto log = unwrap(PartitionLog::create(tmp.partition(), test::small_segments(), options));
  auto producer = unwrap(LogAppender::open(log));
  constexpr std::uint32_t kReusedSeq = 3;

  const std::uint64_t look_alike = make_commit_word(40, kReusedSeq);
  std::string payload(1000, '\0');
  for (std::size_t at = 0; at + 8 <= payload.size(); at += 8)
    std::memcpy(payload.data() + at, &look_alike, 8);
  struct stat first {};
  REQUIRE(::stat(test::segment_path(tmp.partition(), 0).c_str(), &first) == 0);
  auto roll_with = [&](const std::string& value) {
    std::int64_t active = log->control()->active.active_base.load();
    while (log->control()->active.active_base.load() == active) append_ok(producer, value);
  };
  roll_with(payload);
  if (!in_place) {
    REQUIRE_OK(log->drop_segment(0));
    REQUIRE(unwrap(log->segment_bases()).front() > 0);
  }
  roll_with("filler");
  // The test means something only if segment 0's file came back with that seq.
  auto reused = unwrap(log->active_segment());
  struct stat now {};
  REQUIRE(::stat(reused->path().c_str(), &now) == 0);
  REQUIRE(now.st_ino == first.st_ino);
  REQUIRE(reused->seq() == kReusedSeq);
  const std::int64_t base = reused->base_offset();

  // The roll that opened it appended one record at byte 0. Another, of 33 bytes, leaves the
  // tail at byte 40 + 40, inside what was segment 0's first payload.
  auto reader = unwrap(LogReader::open(log, {.verify_crc = true}));
  REQUIRE_OK(reader.seek(base));
  append_ok(producer, "x");
  auto got = read_records(reader, 2);
  REQUIRE(got.size() == 2);
  CHECK(got[1].value == "x");
  PollResult r = reader.poll([](const RecordView&) {});
  INFO(reader.error().message());
  CHECK(r.outcome == ReadOutcome::kOk);
  CHECK(r.records == 0);
  CHECK_FALSE(reader.ready());
  // And the next record is read where it was written.
  append_ok(producer, "y");
  got = read_records(reader, 1);
  REQUIRE(got.size() == 1);
  CHECK(got[0].offset == base + 2);
  CHECK(got[0].value == "y");
  CHECK(test::partition_damage(tmp.partition()) == "");
}

TEST_CASE("log: an appender idle since retention took its segment appends in the right place",
          "[log]") {
  TempDir tmp;
  const LogOptions options = test::recycling_options(2);
  auto log = unwrap(PartitionLog::create(tmp.partition(), test::small_segments(), options));
  auto busy = unwrap(LogAppender::open(log));
  auto idle = unwrap(LogAppender::open(log));
  auto reader = unwrap(LogReader::open(log, {.verify_crc = true}));
  std::uint64_t idle_seq = 0;
  REQUIRE(append_ok(idle, test::make_value(1, idle_seq++)) == 0);

  // Roll until retention has taken segment 0, and then maybe once more. The idle appender's
  // handle pins segment 0's file: recycling must delete it rather than reuse it under the
  // appender, so its inode never comes back as a segment.
  const int rolls_after_removal = GENERATE(0, 1);
  struct stat first {};
  REQUIRE(::stat(test::segment_path(tmp.partition(), 0).c_str(), &first) == 0);
  auto segment_zero_file_in_use = [&] {
    for (std::int64_t b : unwrap(log->segment_bases())) {
      struct stat st {};
      if (::stat(test::segment_path(tmp.partition(), b).c_str(), &st) == 0 &&
          st.st_ino == first.st_ino)
        return true;
    }
    return false;
  };
  std::uint64_t busy_seq = 0;
  std::vector<std::string> expected_values = {test::make_value(1, 0)};
  int reuses = 0;
  auto busy_append = [&] {
    std::string v = test::make_value(0, busy_seq++);
    append_ok(busy, v);
    expected_values.push_back(v);
    REQUIRE_OK(log->prepare_next());
  };
  auto roll = [&] {
    std::int64_t active = log->control()->active.active_base.load();
    while (log->control()->active.active_base.load() == active) busy_append();
    if (unwrap(log->segment_bases()).front() > 0 && segment_zero_file_in_use()) ++reuses;
  };
  while (unwrap(log->segment_bases()).front() == 0) roll();
  for (int r = 0; r < rolls_after_removal + 3; ++r) roll();
  CHECK(reuses == 0);

  // The idle appender's reservation lands in whatever its file is now; it must end up as the
  // next record of the log, not in a hole nor at a stale offset.
  const std::int64_t expected_offset = log->end_offset();
  std::string v = test::make_value(1, idle_seq++);
  CHECK(append_ok(idle, v) == expected_offset);
  expected_values.push_back(v);
  std::string w = test::make_value(0, busy_seq++);
  CHECK(append_ok(busy, w) == expected_offset + 1);
  expected_values.push_back(w);

  REQUIRE_OK(reader.seek_to_beginning());
  const std::int64_t earliest = reader.position();
  auto got = read_records(reader, static_cast<std::size_t>(expected_offset + 2 - earliest), nullptr,
                          1'000'000'000);
  REQUIRE(got.size() == static_cast<std::size_t>(expected_offset + 2 - earliest));
  for (std::size_t i = 0; i < got.size(); ++i) {
    INFO("offset " << got[i].offset);
    REQUIRE(got[i].offset == earliest + static_cast<std::int64_t>(i));
    REQUIRE(got[i].value == expected_values[static_cast<std::size_t>(got[i].offset)]);
  }
  CHECK(test::partition_damage(tmp.partition()) == "");
}

// The time append_until_segments gives record `offset`.
std::int64_t append_time_of(std::int64_t offset) {
  return 1'000'000'000 + 1000 * offset;
}

// Appends numbered records until the log has `segments` segments (the last one begun), record
// i at time append_time_of(i); returns how many it appended.
std::uint64_t append_until_segments(PartitionLog& log, LogAppender& producer,
                                    std::size_t segments) {
  std::uint64_t seq = 0;
  while (unwrap(log.segment_bases()).size() < segments) {
    RecordMeta meta;
    meta.timestamp_ns = append_time_of(static_cast<std::int64_t>(seq));
    append_ok(producer, test::make_value(0, seq++), meta);
  }
  return seq;
}

TEST_CASE("log: records deleted before an offset are served no more and the start only rises",
          "[log]") {
  TempDir tmp;
  auto log = unwrap(
      PartitionLog::create(tmp.partition(), test::small_segments(), test::patient_options()));
  auto producer = unwrap(LogAppender::open(log));
  std::uint64_t seq = append_until_segments(*log, producer, 3);  // three segments and some
  const auto bases = unwrap(log->segment_bases());
  const std::int64_t end = log->end_offset();
  CHECK(unwrap(log->start_offset()) == 0);

  // Into the second segment.
  const std::int64_t cut = bases[1] + 5;
  CHECK(unwrap(log->delete_records_before(cut)) == cut);
  CHECK(unwrap(log->start_offset()) == cut);
  CHECK(unwrap(log->delete_records_before(3)) == cut);  // never back down
  auto past = log->delete_records_before(end + 1);
  CHECK(past.status().code() == ErrorCode::kOutOfRange);
  CHECK(unwrap(log->start_offset()) == cut);

  // A reader opened now starts at the cut; one seeking below it is out of range.
  auto reader = unwrap(LogReader::open(log, {.verify_crc = true}));
  CHECK(reader.position() == cut);
  auto got = read_records(reader, static_cast<std::size_t>(end - cut));
  CHECK(offsets_of(got) == range(cut, end));
  CHECK(reader.seek(cut - 1).code() == ErrorCode::kOutOfRange);
  CHECK(reader.seek(0).code() == ErrorCode::kOutOfRange);
  REQUIRE_OK(reader.seek(cut));
  CHECK(reader.position() == cut);
  REQUIRE_OK(reader.seek_to_beginning());
  CHECK(reader.position() == cut);
  // By time: the first record of the log is older than any, but the answer is the first served.
  REQUIRE_OK(reader.seek_to_timestamp(0));
  got = read_records(reader, 1);
  REQUIRE(got.size() == 1);
  CHECK(got[0].offset == cut);
  // Another process's handle sees the same start (it lives in partition.ctl).
  auto other = unwrap(PartitionLog::open(tmp.partition(), test::patient_options()));
  CHECK(unwrap(other->start_offset()) == cut);

  // Up to the end: nothing is served until the next record.
  CHECK(unwrap(log->delete_records_before(end)) == end);
  auto at_end = unwrap(LogReader::open(log));
  CHECK(at_end.position() == end);
  append_ok(producer, test::make_value(0, seq++));
  got = read_records(at_end, 1);
  REQUIRE(got.size() == 1);
  CHECK(got[0].offset == end);
}

TEST_CASE(
    "log: a reader below a log start moved after it got there reads to its segment's end and "
    "is then out of range",
    "[log]") {
  TempDir tmp;
  auto log = unwrap(
      PartitionLog::create(tmp.partition(), test::small_segments(), test::patient_options()));
  auto producer = unwrap(LogAppender::open(log));
  (void)append_until_segments(*log, producer, 4);
  const auto bases = unwrap(log->segment_bases());
  const std::int64_t end = log->end_offset();
  auto reader = unwrap(LogReader::open(log, {.verify_crc = true}));
  REQUIRE(offsets_of(read_records(reader, 3)) == range(0, 3));

  // A start at the next segment's base: everything from there on is still served.
  REQUIRE(unwrap(log->delete_records_before(bases[1])) == bases[1]);
  auto got = read_records(reader, static_cast<std::size_t>(bases[1] + 2 - 3));
  CHECK(offsets_of(got) == range(3, bases[1] + 2));

  // A start past the next segment's base: the rest of this segment, then out of range.
  const std::int64_t cut = bases[2] + 5;
  REQUIRE(unwrap(log->delete_records_before(cut)) == cut);
  ReadOutcome outcome = ReadOutcome::kOk;
  got = read_records(reader, static_cast<std::size_t>(end), &outcome, 2'000'000'000);
  CHECK(offsets_of(got) == range(bases[1] + 2, bases[2]));
  CHECK(outcome == ReadOutcome::kOutOfRange);
  CHECK(reader.error().code() == ErrorCode::kOutOfRange);
  CHECK_THAT(reader.error().message(),
             Catch::Contains("records below offset " + std::to_string(cut) + " were deleted"));
  // As a consumer resets: from the beginning, which is the start.
  REQUIRE_OK(reader.seek_to_beginning());
  got = read_records(reader, static_cast<std::size_t>(end - cut));
  CHECK(offsets_of(got) == range(cut, end));

  // The seeks still cross segments wholly below the start: by time, from one whose records
  // are all older than the time asked for (the search starts in the second segment and walks
  // on), and by offset.
  for (std::int64_t before : {bases[2] - 1, bases[1] + 3}) {
    INFO("a time just after record " << before);
    REQUIRE_OK(reader.seek_to_timestamp(append_time_of(before) + 1));
    got = read_records(reader, 1);
    REQUIRE(got.size() == 1);
    CHECK(got[0].offset == cut);
  }
  REQUIRE_OK(reader.seek(cut + 1));
  CHECK(offsets_of(read_records(reader, 1)) == range(cut + 1, cut + 2));
}

TEST_CASE("log: retention without recycling deletes the oldest segments", "[log]") {
  TempDir tmp;
  LogOptions options = test::patient_options();
  options.retain_segments = 2;
  auto log = unwrap(PartitionLog::create(tmp.partition(), test::small_segments(), options));
  auto producer = unwrap(LogAppender::open(log));
  for (int i = 0; i < 3000; ++i)
    append_ok(producer, test::make_value(0, static_cast<std::uint64_t>(i)));
  REQUIRE(unwrap(log->segment_bases()).size() > 3);
  REQUIRE_OK(log->prepare_next());
  auto bases = unwrap(log->segment_bases());
  CHECK(bases.size() == 2);
  CHECK(bases.back() == log->control()->active.active_base.load());
  auto reader = unwrap(LogReader::open(log, {.verify_crc = true}));
  auto got = read_records(reader, static_cast<std::size_t>(3000 - bases.front()));
  REQUIRE_FALSE(got.empty());
  CHECK(got.front().offset == bases.front());
  CHECK(got.back().offset == 2999);
  CHECK(test::partition_damage(tmp.partition()) == "");
  // The spare is taken by the next roll.
  CHECK(file_exists(tmp.partition() + "/spare.seg"));
}

// The inode number of the file at `path`; 0 when there is none.
ino_t inode_or_zero(const std::string& path) {
  struct stat st {};
  return ::stat(path.c_str(), &st) == 0 ? st.st_ino : 0;
}

// drop_segment, as the broker's retention uses it: the dropped file becomes the spare when
// there is none and nobody pins it; otherwise it is deleted.
TEST_CASE("log: drop_segment recycles into the spare only an unpinned file, and only one",
          "[log]") {
  TempDir tmp;
  const std::string dir = tmp.partition();
  LogOptions options = test::patient_options();
  options.recycle_segments = true;  // no retain_segments: retention is the caller's
  auto log = unwrap(PartitionLog::create(dir, test::small_segments(), options));
  auto producer = unwrap(LogAppender::open(log));
  for (int i = 0; i < 3000; ++i)
    append_ok(producer, test::make_value(0, static_cast<std::uint64_t>(i)));
  (void)::unlink((dir + "/spare.seg").c_str());  // a roll may have left one
  auto bases = unwrap(log->segment_bases());
  REQUIRE(bases.size() >= 5);

  // Nobody on segment 0: it becomes the spare, the same file.
  const ino_t zero = inode_or_zero(test::segment_path(dir, bases[0]));
  REQUIRE_OK(log->drop_segment(bases[0]));
  CHECK(inode_or_zero(dir + "/spare.seg") == zero);
  CHECK(inode_or_zero(test::segment_path(dir, bases[0])) == 0);
  // A spare is there now: the next one dropped is deleted.
  REQUIRE_OK(log->drop_segment(bases[1]));
  CHECK(inode_or_zero(test::segment_path(dir, bases[1])) == 0);
  CHECK(inode_or_zero(dir + "/spare.seg") == zero);

  // Pinned, by a handle that may write or by a read-only one: deleted, not reused.
  for (Access access : {Access::kReadWrite, Access::kReadOnly}) {
    INFO("a reader with access " << static_cast<int>(access));
    (void)::unlink((dir + "/spare.seg").c_str());
    bases = unwrap(log->segment_bases());
    LogOptions reader_options = test::patient_options();
    reader_options.access = access;
    auto reader_log = unwrap(PartitionLog::open(dir, reader_options));
    auto reader = unwrap(LogReader::open(reader_log));  // on the oldest segment
    REQUIRE(reader.position() == bases[0]);
    REQUIRE_OK(log->drop_segment(bases[0]));
    CHECK(inode_or_zero(test::segment_path(dir, bases[0])) == 0);
    CHECK(inode_or_zero(dir + "/spare.seg") == 0);
    // The reader still reads its segment to the end, intact.
    CHECK(read_records(reader, 3).size() == 3);
  }
  CHECK(log->drop_segment(bases[0]).code() == ErrorCode::kNotFound);  // gone already

  // A reader that has moved on pins nothing behind it, whatever its access: the segment it
  // left becomes the spare. (A read-only handle's flock must not outlive it in a mapping made
  // from the locked file description.)
  for (int i = 3000; i < 6000; ++i)
    append_ok(producer, test::make_value(0, static_cast<std::uint64_t>(i)));
  for (Access access : {Access::kReadWrite, Access::kReadOnly}) {
    INFO("a reader with access " << static_cast<int>(access) << " that read to the end");
    (void)::unlink((dir + "/spare.seg").c_str());
    bases = unwrap(log->segment_bases());
    REQUIRE(bases.size() >= 2);
    LogOptions reader_options = test::patient_options();
    reader_options.access = access;
    auto reader_log = unwrap(PartitionLog::open(dir, reader_options));
    auto reader = unwrap(LogReader::open(reader_log));
    (void)read_records(reader, static_cast<std::size_t>(6000 - bases[0]));
    REQUIRE(reader.position() == 6000);
    const ino_t oldest = inode_or_zero(test::segment_path(dir, bases[0]));
    REQUIRE_OK(log->drop_segment(bases[0]));
    CHECK(inode_or_zero(dir + "/spare.seg") == oldest);
  }
}

// ---- torn tails ------------------------------------------------------------------------------

void forget_boot(const std::string& dir) {
  std::uint8_t other[16];
  std::memset(other, 0xab, sizeof other);
  test::write_bytes(dir + "/partition.ctl", offsetof(PartitionControl, boot_id), other, 16);
}

TEST_CASE("log: after a reboot the torn tail is truncated and appends continue", "[log]") {
  TempDir tmp;
  const std::string dir = tmp.partition();
  constexpr std::int64_t kCount = 1000;
  std::int64_t expected_next = kCount;
  std::int64_t active_base = 0;
  bool deleted_all = false;
  {
    auto log = unwrap(PartitionLog::create(dir, test::small_segments(), test::patient_options()));
    auto producer = unwrap(LogAppender::open(log));
    for (std::int64_t i = 0; i < kCount; ++i)
      append_ok(producer, test::make_value(0, static_cast<std::uint64_t>(i)));
    auto seg = unwrap(log->active_segment());
    active_base = seg->base_offset();
    REQUIRE(active_base > 0);
    const std::string path = seg->path();
    const std::uint64_t start = test::data_start(path);
    const std::uint64_t tail = tail_position(seg->header()->tail_line.tail.load());
    auto positions = test::frame_positions(path);
    // Its CRC no longer matches: recovery truncates the log before it.
    auto flip_a_bit_of_the_last_frame = [&] {
      const std::uint64_t at = start + positions.at(kCount - 1) + kFrameHeaderBytes + 3;
      unsigned char b = 0;
      test::read_bytes(path, at, &b, 1);
      b ^= 1;
      test::write_bytes(path, at, &b, 1);
    };

    SECTION("garbage after the last frame") {
      // A reservation whose frame was half written: a committed-looking word and junk.
      seg->header()->tail_line.tail.fetch_add(kTailCountOne + 96);
      std::vector<unsigned char> junk(96);
      for (std::size_t i = 0; i < junk.size(); ++i) junk[i] = static_cast<unsigned char>(i * 37);
      std::uint64_t word = make_commit_word(96, seg->seq());
      std::memcpy(junk.data(), &word, 8);
      test::write_bytes(path, start + tail, junk.data(), junk.size());
    }
    SECTION("the last frame has a bad CRC") {
      flip_a_bit_of_the_last_frame();
      expected_next = kCount - 1;
    }
    SECTION("a frame that repeats an earlier offset") {
      const std::uint64_t pos = positions.at(kCount - 2);
      const std::uint64_t len = positions.at(kCount - 1) - pos;
      std::vector<unsigned char> copy(len);
      test::read_bytes(path, start + pos, copy.data(), copy.size());
      seg->header()->tail_line.tail.fetch_add(kTailCountOne + len);
      test::write_bytes(path, start + tail, copy.data(), copy.size());
    }
    SECTION("records deleted up to the end, then the last frame torn") {
      // The start may not stay past the end the recovery leaves.
      REQUIRE(unwrap(log->delete_records_before(kCount)) == kCount);
      flip_a_bit_of_the_last_frame();
      expected_next = kCount - 1;
      deleted_all = true;
    }
    SECTION("a claim in progress") {
      Claim claim;
      REQUIRE(producer.claim(40, claim) == AppendOutcome::kOk);
      REQUIRE(claim.offset() == kCount);
    }
    SECTION("a sealed segment whose successor never reached the disk") {
      // Roll, then lose the new segment (and the one record in it).
      std::int64_t i = kCount;
      while (unwrap(log->segment_bases()).back() == active_base)
        append_ok(producer, test::make_value(0, static_cast<std::uint64_t>(i++)));
      const std::int64_t lost_base = unwrap(log->segment_bases()).back();
      REQUIRE(i == lost_base + 1);
      REQUIRE(::unlink(test::segment_path(dir, lost_base).c_str()) == 0);
      expected_next = lost_base;
    }
  }
  forget_boot(dir);

  // Opening read-only does not repair (and does not write the boot id).
  {
    LogOptions ro = test::patient_options();
    ro.access = Access::kReadOnly;
    auto log = unwrap(PartitionLog::open(dir, ro));
    CHECK(log->control()->boot_id[0] == 0xab);
  }

  auto log = unwrap(PartitionLog::open(dir, test::patient_options()));
  std::uint8_t boot[16];
  current_boot_id(boot);
  CHECK(std::memcmp(log->control()->boot_id, boot, 16) == 0);
  CHECK(test::partition_damage(dir) == "");
  auto producer = unwrap(LogAppender::open(log));
  CHECK(append_ok(producer, test::make_value(0, static_cast<std::uint64_t>(expected_next))) ==
        expected_next);
  CHECK(append_ok(producer, test::make_value(0, static_cast<std::uint64_t>(expected_next + 1))) ==
        expected_next + 1);

  auto reader = unwrap(LogReader::open(log, {.verify_crc = true}));
  if (deleted_all) {
    CHECK(unwrap(log->start_offset()) == expected_next);
    CHECK(offsets_of(read_records(reader, 2)) == range(expected_next, expected_next + 2));
  } else {
    test::Tally tally(1, static_cast<std::uint64_t>(expected_next + 2));
    REQUIRE(test::read_into(reader, tally, 1'000'000'000) == ReadOutcome::kOk);
    INFO(tally.summary());
    CHECK(tally.complete());
  }
  CHECK(test::partition_damage(dir) == "");
}

TEST_CASE("log: segments made later keep the partition's file mode whatever the umask", "[log]") {
  TempDir tmp;
  LogConfig config = test::small_segments();
  config.file_mode = 0660;
  mode_t old_umask = ::umask(022);  // would turn 0660 into 0640 if it applied
  auto log = unwrap(PartitionLog::create(tmp.partition(), config));
  Status prepared = log->prepare_next();
  ::umask(old_umask);
  REQUIRE(prepared.is_ok());
  struct stat spare {};
  REQUIRE(::stat((tmp.partition() + "/spare.seg").c_str(), &spare) == 0);
  CHECK((spare.st_mode & 0777) == 0660);
  struct stat first {};
  REQUIRE(::stat((tmp.partition() + "/00000000000000000000.seg").c_str(), &first) == 0);
  CHECK((first.st_mode & 0777) == 0660);
}

}  // namespace
}  // namespace sluice::shm
