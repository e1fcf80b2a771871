#include "shm/log_verifier.h"

#include <catch2/catch.hpp>
#include <cstring>
#include <string>
#include <vector>

#include "shm/test_support.h"

namespace sluice::shm {
namespace {

using test::append_ok;
using test::read_records;
using test::Rec;
using test::TempDir;
using test::unwrap;

constexpr std::int64_t kVerifiedRecords = 1500;

// A partition of several 64 KiB segments holding records 0..kVerifiedRecords-1 made by make_value.
struct Fixture {
  TempDir tmp;
  std::shared_ptr<PartitionLog> log;
  std::vector<std::int64_t> bases;

  Fixture() {
    log = unwrap(
        PartitionLog::create(tmp.partition(), test::small_segments(), test::patient_options()));
    auto appender = unwrap(LogAppender::open(log));
    for (std::int64_t i = 0; i < kVerifiedRecords; ++i)
      append_ok(appender, test::make_value(0, static_cast<std::uint64_t>(i)));
    bases = unwrap(log->segment_bases());
    REQUIRE(bases.size() >= 3);
  }
  std::string segment(std::size_t i) const { return test::segment_path(tmp.partition(), bases[i]); }
};

// Reads the whole partition, skipping corrupt frames; returns the offsets delivered and the
// errors met.
struct ReadAll {
  std::vector<std::int64_t> offsets;
  std::vector<std::string> errors;
};
ReadAll read_skipping(std::shared_ptr<PartitionLog> log, bool verify_crc) {
  ReadAll out;
  auto reader = unwrap(LogReader::open(std::move(log), {.verify_crc = verify_crc}));
  for (int guard = 0; guard < 100000; ++guard) {
    PollResult r = reader.poll([&](const RecordView& v) {
      out.offsets.push_back(v.offset);
      // A delivered record is intact, or it is the one the test damaged on purpose.
      (void)v.value;
    });
    if (r.outcome == ReadOutcome::kCorrupt) {
      out.errors.push_back(reader.error().message());
      Status s = reader.skip_corrupt();
      if (!s) {
        out.errors.push_back("skip: " + s.message());
        break;
      }
      continue;
    }
    REQUIRE(r.outcome == ReadOutcome::kOk);
    if (r.records == 0) break;
  }
  return out;
}

TEST_CASE("verifier: a clean partition has no damage and counts every record", "[verifier]") {
  Fixture f;
  auto report = unwrap(verify_partition(f.tmp.partition()));
  CHECK(report.damage.empty());
  REQUIRE(report.segments.size() == f.bases.size());
  std::uint64_t records = 0;
  for (std::size_t i = 0; i < report.segments.size(); ++i) {
    const SegmentReport& s = report.segments[i];
    INFO(s.path);
    CHECK(s.base_offset == f.bases[i]);
    CHECK(s.first_offset == f.bases[i]);
    if (i + 1 < report.segments.size()) {
      CHECK(s.next_base == f.bases[i + 1]);
      CHECK(s.last_offset == f.bases[i + 1] - 1);
    } else {
      CHECK(s.next_base == -1);
      CHECK(s.last_offset == kVerifiedRecords - 1);
      CHECK_FALSE(s.in_progress_at_end);
    }
    records += s.records;
  }
  CHECK(records == static_cast<std::uint64_t>(kVerifiedRecords));
}

TEST_CASE("verifier: a flipped value byte is a CRC-32C mismatch naming file and position",
          "[verifier][reader]") {
  Fixture f;
  const std::string seg = f.segment(0);
  const std::int64_t victim = f.bases[1] / 2;
  const std::uint64_t pos = test::frame_positions(seg).at(victim);
  const std::uint64_t byte = test::data_start(seg) + pos + kFrameHeaderBytes + 5;
  unsigned char b;
  test::read_bytes(seg, byte, &b, 1);
  b ^= 0x20;
  test::write_bytes(seg, byte, &b, 1);

  SECTION("a verifying reader stops there with kCorrupt, then skips the frame") {
    auto reader = unwrap(LogReader::open(f.log, {.verify_crc = true}));
    ReadOutcome outcome;
    auto got = read_records(reader, kVerifiedRecords, &outcome);
    CHECK(outcome == ReadOutcome::kCorrupt);
    REQUIRE(got.size() == static_cast<std::size_t>(victim));
    CHECK(got.back().offset == victim - 1);
    const std::string& msg = reader.error().message();
    CHECK(reader.error().code() == ErrorCode::kCorrupt);
    CHECK_THAT(msg, Catch::Contains(seg));
    CHECK_THAT(msg, Catch::Contains("byte " + std::to_string(pos)));
    CHECK_THAT(msg, Catch::Contains("CRC-32C mismatch"));
    // Polling again reports it again; it does not skip by itself.
    CHECK(reader.poll([](const RecordView&) {}).outcome == ReadOutcome::kCorrupt);
    REQUIRE_OK(reader.skip_corrupt());
    got = read_records(reader, static_cast<std::size_t>(kVerifiedRecords - victim - 1), &outcome);
    CHECK(outcome == ReadOutcome::kOk);
    REQUIRE(got.size() == static_cast<std::size_t>(kVerifiedRecords - victim - 1));
    CHECK(got.front().offset == victim + 1);
    CHECK(got.back().offset == kVerifiedRecords - 1);
  }
  SECTION("a reader that does not verify delivers it, altered, without harm") {
    auto all = read_skipping(f.log, false);
    CHECK(all.errors.empty());
    CHECK(all.offsets.size() == static_cast<std::size_t>(kVerifiedRecords));
  }
  SECTION("verify_partition reports it with file, position and cause") {
    auto report = unwrap(verify_partition(f.tmp.partition()));
    REQUIRE(report.damage.size() == 1);
    const Damage& d = report.damage[0];
    CHECK(d.file == seg);
    CHECK(d.position == pos);
    CHECK(d.after_offset == victim - 1);
    CHECK_THAT(d.cause, Catch::Contains("CRC-32C mismatch"));
    CHECK_THAT(d.to_string(), Catch::Contains(seg + ": byte " + std::to_string(pos)));
    // The walk goes on past a bad CRC (the length is sound): every record is counted.
    std::uint64_t records = 0;
    for (const auto& s : report.segments) records += s.records;
    CHECK(records == static_cast<std::uint64_t>(kVerifiedRecords));
  }
}

TEST_CASE("verifier: a corrupted length word is reported and the reader skips its segment",
          "[verifier][reader]") {
  Fixture f;
  const std::string seg = f.segment(0);
  const std::int64_t victim = f.bases[1] / 2;
  const std::uint64_t pos = test::frame_positions(seg).at(victim);
  std::int32_t bad_length = GENERATE(8, 31, 0x40000000);
  test::write_bytes(seg, test::data_start(seg) + pos, &bad_length, 4);  // seq stays

  auto report = unwrap(verify_partition(f.tmp.partition()));
  REQUIRE(report.damage.size() == 1);
  CHECK(report.damage[0].file == seg);
  CHECK(report.damage[0].position == pos);
  CHECK_THAT(report.damage[0].cause, Catch::Contains("length"));

  auto reader = unwrap(LogReader::open(f.log, {.verify_crc = GENERATE(false, true)}));
  ReadOutcome outcome;
  auto got = read_records(reader, kVerifiedRecords, &outcome);
  CHECK(outcome == ReadOutcome::kCorrupt);
  CHECK(got.size() == static_cast<std::size_t>(victim));
  CHECK_THAT(reader.error().message(), Catch::Contains(seg));
  CHECK_THAT(reader.error().message(), Catch::Contains("byte " + std::to_string(pos)));
  CHECK_THAT(reader.error().message(), Catch::Contains("frame length out of bounds"));
  // Nothing after a bad length lines up: the reader goes on at the next segment.
  REQUIRE_OK(reader.skip_corrupt());
  CHECK(reader.position() == f.bases[1]);
  got = read_records(reader, static_cast<std::size_t>(kVerifiedRecords - f.bases[1]), &outcome);
  CHECK(outcome == ReadOutcome::kOk);
  REQUIRE_FALSE(got.empty());
  CHECK(got.front().offset == f.bases[1]);
  CHECK(got.back().offset == kVerifiedRecords - 1);
}

TEST_CASE("verifier: a bad length in the open segment cannot be skipped, and says so",
          "[verifier][reader]") {
  Fixture f;
  const std::string seg = f.segment(f.bases.size() - 1);
  const std::int64_t victim = kVerifiedRecords - 3;
  const std::uint64_t pos = test::frame_positions(seg).at(victim);
  std::int32_t bad_length = 0x7fffff00;
  test::write_bytes(seg, test::data_start(seg) + pos, &bad_length, 4);

  auto reader = unwrap(LogReader::open(f.log));
  REQUIRE_OK(reader.seek(victim - 1));
  ReadOutcome outcome;
  auto got = read_records(reader, 10, &outcome);
  CHECK(got.size() == 1);
  REQUIRE(outcome == ReadOutcome::kCorrupt);
  Status s = reader.skip_corrupt();
  CHECK(s.code() == ErrorCode::kCorrupt);
  CHECK_THAT(s.message(), Catch::Contains("not sealed"));
  CHECK_THAT(s.message(), Catch::Contains(seg));
}

TEST_CASE("verifier: a bad frame type or key length is reported and the reader skips it",
          "[verifier][reader]") {
  Fixture f;
  const std::string seg = f.segment(1);
  const std::int64_t victim = f.bases[1] + 3;
  const std::uint64_t pos = test::frame_positions(seg).at(victim);
  const std::uint64_t frame = test::data_start(seg) + pos;
  std::string expected_cause;
  SECTION("unknown type") {
    std::uint8_t type = 9;
    test::write_bytes(seg, frame + offsetof(FrameHeader, type), &type, 1);
    expected_cause = "unknown frame type";
  }
  SECTION("a key length that overruns the frame") {
    std::uint8_t flags = kFlagKey;
    test::write_bytes(seg, frame + offsetof(FrameHeader, flags), &flags, 1);
    std::uint32_t key_len = 100000;
    test::write_bytes(seg, frame + kFrameHeaderBytes, &key_len, 4);
    expected_cause = "key/headers lengths overrun the frame";
  }
  auto report = unwrap(verify_partition(f.tmp.partition()));
  REQUIRE_FALSE(report.damage.empty());
  CHECK(report.damage[0].file == seg);
  CHECK(report.damage[0].position == pos);
  CHECK_THAT(report.damage[0].cause, Catch::Contains(expected_cause));

  auto all = read_skipping(f.log, false);
  REQUIRE(all.errors.size() >= 1);
  CHECK_THAT(all.errors[0], Catch::Contains(seg));
  CHECK_THAT(all.errors[0], Catch::Contains(expected_cause));
  // Every record but the damaged one (an unknown type loses the rest of its segment: a
  // frame of unknown type cannot be trusted to have a sound length).
  CHECK(std::find(all.offsets.begin(), all.offsets.end(), victim) == all.offsets.end());
  CHECK(std::find(all.offsets.begin(), all.offsets.end(), victim - 1) != all.offsets.end());
  CHECK(all.offsets.back() == kVerifiedRecords - 1);
  for (std::size_t i = 1; i < all.offsets.size(); ++i) REQUIRE(all.offsets[i] > all.offsets[i - 1]);
}

}  // namespace
}  // namespace sluice::shm
