#include "shm/segment.h"

#include <catch2/catch.hpp>
#include <cstdint>
#include <string>

#include "shm/test_support.h"

namespace sluice::shm {
namespace {

using test::TempDir;
using test::unwrap;

TEST_CASE("segment: file names carry the base offset in 20 digits", "[segment]") {
  CHECK(segment_file_name(0) == "00000000000000000000.seg");
  CHECK(segment_file_name(1234) == "00000000000000001234.seg");
  CHECK(parse_segment_file_name("00000000000000001234.seg") == 1234);
  CHECK(parse_segment_file_name(segment_file_name(9'000'000'000'000'000'000)) ==
        9'000'000'000'000'000'000);
  CHECK(parse_segment_file_name("spare.seg") == -1);
  CHECK(parse_segment_file_name("0000000000000000123x.seg") == -1);
  CHECK(parse_segment_file_name("00000000000000001234.tmp") == -1);
  CHECK(parse_segment_file_name("partition.ctl") == -1);
}

TEST_CASE("files: move_file_noreplace moves a file but never over an existing one", "[segment]") {
  TempDir tmp;
  const std::string a = tmp.path() + "/a", b = tmp.path() + "/b", c = tmp.path() + "/c";
  std::uint8_t one = 1, two = 2;
  REQUIRE(create_file(a, 1, 0600));
  REQUIRE(create_file(b, 1, 0600));
  test::write_bytes(a, 0, &one, 1);
  test::write_bytes(b, 0, &two, 1);
  Status s = move_file_noreplace(a, b);
  CHECK(s.code() == ErrorCode::kAlreadyExists);
  CHECK(s.message().find(b) != std::string::npos);
  CHECK(file_exists(a));  // left in place
  std::uint8_t got = 0;
  test::read_bytes(b, 0, &got, 1);
  CHECK(got == 2);  // not replaced

  REQUIRE(move_file_noreplace(a, c));
  CHECK_FALSE(file_exists(a));
  test::read_bytes(c, 0, &got, 1);
  CHECK(got == 1);
  CHECK(move_file_noreplace(a, tmp.path() + "/d").code() == ErrorCode::kNotFound);
}

TEST_CASE("segment: a file with the wrong magic or version is refused, naming the file",
          "[segment]") {
  TempDir tmp;
  auto log = unwrap(
      PartitionLog::create(tmp.partition(), test::small_segments(), test::patient_options()));
  const std::string path = test::segment_path(tmp.partition(), 0);
  REQUIRE(unwrap(Segment::open(path, Access::kReadOnly, false))->base_offset() == 0);

  std::string expected;
  SECTION("magic") {
    std::uint64_t magic = 0x0123456789abcdefULL;
    test::write_bytes(path, offsetof(SegmentHeader, magic), &magic, 8);
    expected = "bad magic";
  }
  SECTION("a zeroed header (seq 0 too: damaged, not a file being reused)") {
    std::vector<char> zeros(sizeof(SegmentHeader), 0);
    test::write_bytes(path, 0, zeros.data(), zeros.size());
    expected = "bad magic";
  }
  SECTION("version") {
    std::uint32_t version = kLogFormatVersion + 1;
    test::write_bytes(path, offsetof(SegmentHeader, version), &version, 4);
    expected = "version " + std::to_string(kLogFormatVersion + 1);
  }
  SECTION("capacity") {
    std::uint64_t capacity = 12345;
    test::write_bytes(path, offsetof(SegmentHeader, capacity), &capacity, 8);
    expected = "inconsistent segment header";
  }

  auto seg = Segment::open(path, Access::kReadOnly, false);
  REQUIRE_FALSE(seg.is_ok());
  CHECK_THAT(seg.status().message(), Catch::Contains(path));
  CHECK_THAT(seg.status().message(), Catch::Contains(expected));

  // Through the partition: a reader that opens the segment, and the verifier.
  log.reset();
  auto reopened = unwrap(PartitionLog::open(tmp.partition(), test::patient_options()));
  auto reader = LogReader::open(reopened);
  REQUIRE_FALSE(reader.is_ok());
  CHECK_THAT(reader.status().message(), Catch::Contains(path));
  CHECK_THAT(reader.status().message(), Catch::Contains(expected));
  auto report = unwrap(verify_partition(tmp.partition()));
  REQUIRE(report.damage.size() == 1);
  CHECK(report.damage[0].file == path);
  CHECK_THAT(report.damage[0].cause, Catch::Contains(expected));
}

TEST_CASE("segment: an empty, short or missing file is refused, naming the file", "[segment]") {
  TempDir tmp;
  const std::string path = tmp.path() + "/00000000000000000000.seg";
  auto missing = Segment::open(path, Access::kReadOnly, false);
  REQUIRE_FALSE(missing.is_ok());
  CHECK(missing.status().code() == ErrorCode::kNotFound);
  CHECK_THAT(missing.status().message(), Catch::Contains(path));

  REQUIRE_OK(create_file(path, 0, 0600));
  auto empty = Segment::open(path, Access::kReadOnly, false);
  REQUIRE_FALSE(empty.is_ok());
  CHECK_THAT(empty.status().message(), Catch::Contains(path));

  std::string junk(100, 'j');
  test::write_bytes(path, 0, junk.data(), junk.size());
  auto short_file = Segment::open(path, Access::kReadOnly, false);
  REQUIRE_FALSE(short_file.is_ok());
  CHECK(short_file.status().code() == ErrorCode::kCorrupt);
  CHECK_THAT(short_file.status().message(), Catch::Contains(path));
}

TEST_CASE("partition: a control file with the wrong magic or version is refused, naming it",
          "[partition]") {
  TempDir tmp;
  unwrap(PartitionLog::create(tmp.partition(), test::small_segments(), test::patient_options()));
  const std::string ctl = tmp.partition() + "/partition.ctl";
  std::string expected;
  ErrorCode code = ErrorCode::kBadFormat;
  SECTION("magic") {
    std::uint64_t magic = kSegmentMagic;  // a segment's magic is not a control file's
    test::write_bytes(ctl, offsetof(PartitionControl, magic), &magic, 8);
    expected = "not a Sluice partition control file";
  }
  SECTION("version") {
    std::uint32_t version = 77;
    test::write_bytes(ctl, offsetof(PartitionControl, version), &version, 4);
    expected = "version 77";
  }
  SECTION("segment size") {
    std::uint64_t capacity = 1000;
    test::write_bytes(ctl, offsetof(PartitionControl, segment_capacity), &capacity, 8);
    expected = "segment bytes";
    code = ErrorCode::kInvalidArgument;
  }
  auto opened = PartitionLog::open(tmp.partition(), test::patient_options());
  REQUIRE_FALSE(opened.is_ok());
  CHECK(opened.status().code() == code);
  CHECK_THAT(opened.status().message(), Catch::Contains(ctl));
  CHECK_THAT(opened.status().message(), Catch::Contains(expected));
  // open_or_create must not paper over it by creating a new partition.
  auto again = PartitionLog::open_or_create(tmp.partition(), test::small_segments(),
                                            test::patient_options());
  CHECK_FALSE(again.is_ok());

  auto report = unwrap(verify_partition(tmp.partition()));
  if (code == ErrorCode::kBadFormat) {
    REQUIRE_FALSE(report.damage.empty());
    CHECK(report.damage[0].file == ctl);
  }
}

TEST_CASE("partition: create validates its config and refuses an existing partition",
          "[partition]") {
  TempDir tmp;
  LogConfig bad = test::small_segments();
  bad.segment_bytes = kMinSegmentCapacity + 100;
  auto r = PartitionLog::create(tmp.partition(), bad);
  REQUIRE_FALSE(r.is_ok());
  CHECK(r.status().code() == ErrorCode::kInvalidArgument);
  bad = test::small_segments();
  bad.index_interval = 1000;
  CHECK(PartitionLog::create(tmp.partition(), bad).status().code() == ErrorCode::kInvalidArgument);

  auto missing = PartitionLog::open(tmp.partition());
  REQUIRE_FALSE(missing.is_ok());
  CHECK(missing.status().code() == ErrorCode::kNotFound);

  unwrap(PartitionLog::create(tmp.partition(), test::small_segments(), test::patient_options()));
  auto twice = PartitionLog::create(tmp.partition(), test::small_segments());
  CHECK(twice.status().code() == ErrorCode::kAlreadyExists);
  // open_or_create opens what is there.
  auto both = unwrap(PartitionLog::open_or_create(tmp.partition(), test::small_segments(),
                                                  test::patient_options()));
  CHECK(both->segment_capacity() == kMinSegmentCapacity);
  // No temporary directories left behind.
  for (const auto& e : std::filesystem::directory_iterator(tmp.path()))
    CHECK(e.path().filename() == "p");
}

}  // namespace
}  // namespace sluice::shm
