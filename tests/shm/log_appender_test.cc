#include "shm/log_appender.h"

#include <catch2/catch.hpp>
#include <cstring>
#include <map>
#include <random>
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

TEST_CASE("appender: keys, null keys, empty and null values and headers round-trip", "[appender]") {
  TempDir tmp;
  auto log = unwrap(
      PartitionLog::create(tmp.partition(), test::small_segments(), test::patient_options()));
  auto appender = unwrap(LogAppender::open(log));

  const std::string binary("a\0b\xff\x00z", 6);
  std::vector<HeaderView> headers = {{"trace-id", std::string_view("abc123")},
                                     {"null-header", std::nullopt},
                                     {"empty-header", std::string_view("")},
                                     {"", std::string_view("nameless")},
                                     {"bin", std::string_view(binary)}};
  std::vector<HeaderView> one_null_header = {{"only", std::nullopt}};

  struct Case {
    std::optional<std::string> key;
    std::optional<std::string> value;
    std::vector<HeaderView> headers;
  };
  std::vector<Case> cases = {
      {std::string("key-1"), std::string("value-1"), {}},
      {std::nullopt, std::string("no key"), {}},
      {std::string(""), std::string("empty key"), {}},
      {std::string("k"), std::string(""), {}},  // empty value
      {std::string("k"), std::nullopt, {}},     // tombstone
      {std::nullopt, std::nullopt, {}},         // tombstone without a key
      {std::nullopt, std::string(""), {}},      // nothing at all, but not null
      {std::string("with headers"), std::string("v"), headers},
      {std::nullopt, std::string(binary), one_null_header},
      {std::string(binary), std::nullopt, headers},
      {std::string(300, 'k'), std::string(5000, 'v'), headers},
  };

  std::vector<std::int64_t> offsets;
  for (const Case& c : cases) {
    RecordMeta meta;
    if (c.key) meta.key = std::string_view(*c.key);
    meta.headers = c.headers;
    meta.null_value = !c.value.has_value();
    offsets.push_back(append_ok(appender, c.value ? std::string_view(*c.value) : "", meta));
  }
  for (std::size_t i = 0; i < offsets.size(); ++i)
    REQUIRE(offsets[i] == static_cast<std::int64_t>(i));

  auto reader = unwrap(LogReader::open(log, {.verify_crc = true}));
  ReadOutcome outcome;
  std::vector<Rec> got = read_records(reader, cases.size(), &outcome);
  REQUIRE(outcome == ReadOutcome::kOk);
  REQUIRE(got.size() == cases.size());
  for (std::size_t i = 0; i < cases.size(); ++i) {
    INFO("record " << i);
    const Case& c = cases[i];
    const Rec& r = got[i];
    CHECK(r.offset == static_cast<std::int64_t>(i));
    CHECK(r.key == c.key);
    CHECK(r.value == c.value);
    CHECK_FALSE(r.headers_malformed);
    REQUIRE(r.headers.size() == c.headers.size());
    for (std::size_t h = 0; h < c.headers.size(); ++h) {
      CHECK(r.headers[h].first == c.headers[h].name);
      std::optional<std::string> expected;
      if (c.headers[h].value) expected = std::string(*c.headers[h].value);
      CHECK(r.headers[h].second == expected);
    }
  }
  CHECK(test::partition_damage(tmp.partition()) == "");
}

TEST_CASE("appender: explicit timestamps are stored and others are taken at append", "[appender]") {
  TempDir tmp;
  auto log = unwrap(
      PartitionLog::create(tmp.partition(), test::small_segments(), test::patient_options()));
  auto appender = unwrap(LogAppender::open(log));
  std::int64_t before = wall_clock_ns();
  append_ok(appender, "now");
  std::int64_t after = wall_clock_ns();
  append_ok(appender, "given", test::at_time(12345));
  append_ok(appender, "zero", test::at_time(0));

  auto reader = unwrap(LogReader::open(log));
  auto got = read_records(reader, 3);
  REQUIRE(got.size() == 3);
  CHECK(got[0].timestamp_ns >= before);
  CHECK(got[0].timestamp_ns <= after);
  CHECK(got[1].timestamp_ns == 12345);
  CHECK(got[2].timestamp_ns == 0);
}

TEST_CASE("appender: a record too large for a segment is refused with kRecordTooLarge",
          "[appender]") {
  TempDir tmp;
  auto log = unwrap(
      PartitionLog::create(tmp.partition(), test::small_segments(), test::patient_options()));
  auto appender = unwrap(LogAppender::open(log));
  const std::uint64_t max_value = appender.max_value_bytes();
  REQUIRE(max_value == log->segment_capacity() - 2 * kFrameHeaderBytes);

  std::string too_big(max_value + 1, 'x');
  AppendResult r = appender.append(too_big);
  CHECK(r.outcome == AppendOutcome::kRecordTooLarge);

  // A key counts against the frame too.
  std::string fits(max_value - 10, 'y');
  r = appender.append(fits, test::with_key(std::string_view("0123456789")));
  CHECK(r.outcome == AppendOutcome::kRecordTooLarge);

  Claim claim;
  CHECK(appender.claim(static_cast<std::uint32_t>(max_value + 8), claim) ==
        AppendOutcome::kRecordTooLarge);
  CHECK_FALSE(claim.valid());

  BatchClaim batch;
  CHECK(appender.claim_batch(2, static_cast<std::uint32_t>(max_value / 2 + 64), batch) ==
        AppendOutcome::kRecordTooLarge);
  CHECK(appender.claim_batch(0, 8, batch) == AppendOutcome::kRecordTooLarge);

  // Nothing was reserved by the refusals: the next record gets offset 0.
  CHECK(append_ok(appender, "small") == 0);
  CHECK(test::partition_damage(tmp.partition()) == "");
}

TEST_CASE("appender: a value that exactly fills a segment is appended and read back",
          "[appender]") {
  TempDir tmp;
  auto log = unwrap(
      PartitionLog::create(tmp.partition(), test::small_segments(), test::patient_options()));
  auto appender = unwrap(LogAppender::open(log));
  const auto max_value = static_cast<std::size_t>(appender.max_value_bytes());
  std::string full(max_value, '\0');
  for (std::size_t i = 0; i < full.size(); ++i) full[i] = static_cast<char>(i * 13 + 5);

  // Into an empty segment, then again into a segment that already holds a record (that one
  // rolls first), then a small record after it.
  CHECK(append_ok(appender, full) == 0);
  CHECK(append_ok(appender, "between") == 1);
  CHECK(append_ok(appender, full) == 2);
  CHECK(append_ok(appender, "after") == 3);

  auto bases = unwrap(log->segment_bases());
  CHECK(bases == std::vector<std::int64_t>{0, 1, 2, 3});

  auto reader = unwrap(LogReader::open(log, {.verify_crc = true}));
  auto got = read_records(reader, 4);
  REQUIRE(got.size() == 4);
  CHECK(got[0].value == full);
  CHECK(got[1].value == std::string("between"));
  CHECK(got[2].value == full);
  CHECK(got[3].value == std::string("after"));
  for (std::size_t i = 0; i < got.size(); ++i) CHECK(got[i].offset == static_cast<int>(i));
  CHECK(test::partition_damage(tmp.partition()) == "");
}

TEST_CASE("appender: an aborted claim's offset is skipped and later records are read",
          "[appender]") {
  TempDir tmp;
  auto log = unwrap(
      PartitionLog::create(tmp.partition(), test::small_segments(), test::patient_options()));
  auto appender = unwrap(LogAppender::open(log));
  auto reader = unwrap(LogReader::open(log, {.verify_crc = true}));

  CHECK(append_ok(appender, "zero") == 0);
  Claim claim;
  REQUIRE(appender.claim(64, claim, test::with_key(std::string_view("aborted"))) ==
          AppendOutcome::kOk);
  CHECK(claim.offset() == 1);
  std::memset(claim.value().data(), 'a', claim.value().size());
  appender.abort(claim);
  CHECK_FALSE(claim.valid());
  CHECK(append_ok(appender, "two") == 2);

  // A claim committed through the span.
  REQUIRE(appender.claim(5, claim) == AppendOutcome::kOk);
  CHECK(claim.offset() == 3);
  std::memcpy(claim.value().data(), "three", 5);
  appender.commit(claim);

  // An abort as the last frame, then nothing: the reader waits there, then gets the next.
  REQUIRE(appender.claim(16, claim) == AppendOutcome::kOk);
  appender.abort(claim);

  auto got = read_records(reader, 3);
  REQUIRE(got.size() == 3);
  CHECK(got[0].offset == 0);
  CHECK(got[1].offset == 2);
  CHECK(got[1].value == std::string("two"));
  CHECK(got[2].offset == 3);
  CHECK(got[2].value == std::string("three"));
  CHECK(reader.poll([](const RecordView&) {}).records == 0);  // skips the pad, then waits
  CHECK(append_ok(appender, "five") == 5);
  got = read_records(reader, 1);
  REQUIRE(got.size() == 1);
  CHECK(got[0].offset == 5);

  // Seeking to an aborted offset lands on the next record.
  REQUIRE_OK(reader.seek(1));
  got = read_records(reader, 1);
  REQUIRE(got.size() == 1);
  CHECK(got[0].offset == 2);

  auto report = unwrap(verify_partition(tmp.partition()));
  CHECK(report.damage.empty());
  REQUIRE(report.segments.size() == 1);
  CHECK(report.segments[0].records == 4);
  CHECK(report.segments[0].padding_frames == 2);
}

TEST_CASE("appender: claim_batch gives consecutive offsets, readable across rolls", "[appender]") {
  TempDir tmp;
  auto log = unwrap(
      PartitionLog::create(tmp.partition(), test::small_segments(), test::patient_options()));
  auto appender = unwrap(LogAppender::open(log, {.timestamp_mode = TimestampMode::kPerBatch}));
  auto reader = unwrap(LogReader::open(log, {.verify_crc = true}));

  // 200-byte values in batches of 37: a 64 KiB segment holds a little under 8 batches, so
  // every few batches one lands in a new segment whole.
  constexpr std::uint32_t kValue = 200, kCount = 37, kBatches = 60;
  std::int64_t expected = 0;
  append_ok(appender, "single");  // a single record first, so batches do not start aligned
  ++expected;
  for (std::uint32_t b = 0; b < kBatches; ++b) {
    BatchClaim batch;
    REQUIRE(appender.claim_batch(kCount, kValue, batch) == AppendOutcome::kOk);
    REQUIRE(batch.count() == kCount);
    REQUIRE(batch.first_offset() == expected);
    for (std::uint32_t i = 0; i < kCount; ++i) {
      auto v = batch.value(i);
      REQUIRE(v.size() == kValue);
      std::string s = test::make_value(0, static_cast<std::uint64_t>(expected) + i - 1, 0);
      std::memset(v.data(), 0, v.size());
      std::memcpy(v.data(), s.data(), s.size());
    }
    appender.commit(batch);
    expected += kCount;
  }
  CHECK(append_ok(appender, "last") == expected);
  CHECK(unwrap(log->segment_bases()).size() > 5);

  auto got = read_records(reader, static_cast<std::size_t>(expected) + 1);
  REQUIRE(got.size() == static_cast<std::size_t>(expected) + 1);
  CHECK(got.front().value == std::string("single"));
  CHECK(got.back().value == std::string("last"));
  for (std::size_t i = 0; i < got.size(); ++i) {
    INFO("record " << i);
    REQUIRE(got[i].offset == static_cast<std::int64_t>(i));
    if (i == 0 || i + 1 == got.size()) continue;
    REQUIRE(got[i].value);
    REQUIRE(got[i].value->size() == kValue);
    std::string s = test::make_value(0, i - 1, 0);
    CHECK(got[i].value->compare(0, s.size(), s) == 0);
    CHECK_FALSE(got[i].key);
  }
  // kPerBatch: the records of one batch share a timestamp.
  CHECK(got[1].timestamp_ns == got[kCount].timestamp_ns);
  CHECK(test::partition_damage(tmp.partition()) == "");
}

TEST_CASE("appender: append_batch gives records of any shape consecutive offsets, across rolls",
          "[appender]") {
  TempDir tmp;
  auto log = unwrap(
      PartitionLog::create(tmp.partition(), test::small_segments(), test::patient_options()));
  auto appender = unwrap(LogAppender::open(log));
  auto reader = unwrap(LogReader::open(log, {.verify_crc = true}));

  std::vector<HeaderView> headers = {{"h1", std::string_view("v1")}, {"h2", std::nullopt}};
  std::mt19937 rng(7);
  std::int64_t expected = 0;
  std::vector<std::string> values;  // every record's value ("" for tombstones)
  std::vector<bool> keyed, tombstone;
  append_ok(appender, "single");
  values.push_back("single");
  keyed.push_back(false);
  tombstone.push_back(false);
  ++expected;
  for (int b = 0; b < 80; ++b) {
    auto n = static_cast<std::uint32_t>(1 + rng() % 40);
    std::vector<std::string> batch_values;
    std::vector<std::string> keys;
    for (std::uint32_t i = 0; i < n; ++i) {
      batch_values.push_back(std::string(rng() % 700, static_cast<char>('a' + i % 26)));
      keys.push_back("key-" + std::to_string(expected + i));
    }
    std::vector<BatchRecord> records(n);
    for (std::uint32_t i = 0; i < n; ++i) {
      records[i].value = batch_values[i];
      if (i % 3 == 0) records[i].meta.key = std::string_view(keys[i]);
      if (i % 5 == 0) records[i].meta.headers = headers;
      if (i % 7 == 6) records[i].meta.null_value = true;
      records[i].meta.timestamp_ns = i % 2 ? 1'000'000 * (expected + i) : -1;
      values.push_back(records[i].meta.null_value ? "" : batch_values[i]);
      keyed.push_back(i % 3 == 0);
      tombstone.push_back(records[i].meta.null_value);
    }
    AppendResult r = appender.append_batch(records);
    REQUIRE(r.outcome == AppendOutcome::kOk);
    REQUIRE(r.offset == expected);
    expected += n;
  }
  CHECK(append_ok(appender, "last") == expected);
  values.push_back("last");
  keyed.push_back(false);
  tombstone.push_back(false);
  CHECK(unwrap(log->segment_bases()).size() > 5);

  auto got = read_records(reader, values.size());
  REQUIRE(got.size() == values.size());
  for (std::size_t i = 0; i < got.size(); ++i) {
    INFO("record " << i);
    REQUIRE(got[i].offset == static_cast<std::int64_t>(i));
    CHECK(got[i].key.has_value() == keyed[i]);
    if (tombstone[i]) {
      CHECK_FALSE(got[i].value.has_value());
    } else {
      REQUIRE(got[i].value);
      CHECK(*got[i].value == values[i]);
    }
  }
  CHECK(test::partition_damage(tmp.partition()) == "");

  // A batch that cannot fit an empty segment is refused whole.
  std::string big(40 * 1024, 'x');
  std::vector<BatchRecord> too_much(2);
  too_much[0].value = big;
  too_much[1].value = big;
  CHECK(appender.append_batch(too_much).outcome == AppendOutcome::kRecordTooLarge);
  CHECK(appender.append_batch({}).outcome == AppendOutcome::kRecordTooLarge);
}

TEST_CASE("appender: append_batch stays contiguous while other threads append",
          "[appender][concurrency]") {
  TempDir tmp;
  auto log = unwrap(
      PartitionLog::create(tmp.partition(), test::small_segments(), test::patient_options()));
  constexpr int kThreads = 3, kBatches = 300;
  std::vector<std::vector<std::pair<std::int64_t, std::uint32_t>>> placed(kThreads);
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    // No Catch2 macro inside the threads (Catch2 is not thread-safe): failures are counted.
    threads.emplace_back([&, t] {
      auto opened = LogAppender::open(log);
      if (!opened) return;  // its batches are missing: the size check below fails
      auto appender = std::move(opened).value();
      std::mt19937 rng(static_cast<unsigned>(t));
      for (int b = 0; b < kBatches; ++b) {
        auto n = static_cast<std::uint32_t>(1 + rng() % 20);
        std::vector<std::string> vals;
        for (std::uint32_t i = 0; i < n; ++i)
          vals.push_back("t" + std::to_string(t) + "-b" + std::to_string(b) + "-" +
                         std::to_string(i) + std::string(rng() % 200, '.'));
        std::vector<BatchRecord> recs(n);
        for (std::uint32_t i = 0; i < n; ++i) recs[i].value = vals[i];
        AppendResult r = appender.append_batch(recs);
        if (r.outcome != AppendOutcome::kOk) return;
        placed[static_cast<std::size_t>(t)].push_back({r.offset, n});
      }
    });
  }
  for (auto& th : threads) th.join();
  std::size_t total = 0;
  for (auto& p : placed) {
    REQUIRE(p.size() == kBatches);
    for (auto& b : p) total += b.second;
  }
  auto reader = unwrap(LogReader::open(log, {.verify_crc = true}));
  auto got = read_records(reader, total);
  REQUIRE(got.size() == total);
  for (int t = 0; t < kThreads; ++t) {
    for (int b = 0; b < kBatches; ++b) {
      auto [first, n] = placed[static_cast<std::size_t>(t)][static_cast<std::size_t>(b)];
      for (std::uint32_t i = 0; i < n; ++i) {
        const auto& rec = got[static_cast<std::size_t>(first) + i];
        REQUIRE(rec.offset == first + i);
        std::string prefix =
            "t" + std::to_string(t) + "-b" + std::to_string(b) + "-" + std::to_string(i);
        REQUIRE(rec.value);
        REQUIRE(rec.value->compare(0, prefix.size(), prefix) == 0);
      }
    }
  }
}

TEST_CASE("appender: a log opened read-only refuses appenders", "[appender]") {
  TempDir tmp;
  auto log = unwrap(
      PartitionLog::create(tmp.partition(), test::small_segments(), test::patient_options()));
  LogOptions ro = test::patient_options();
  ro.access = Access::kReadOnly;
  auto read_only = unwrap(PartitionLog::open(tmp.partition(), ro));
  auto appender = LogAppender::open(read_only);
  REQUIRE_FALSE(appender.is_ok());
  CHECK(appender.status().code() == ErrorCode::kPermissionDenied);
  CHECK_THAT(appender.status().message(), Catch::Contains(tmp.partition()));
}

// A single producer doing random appends, aborts and batches of random shapes; a reader checks
// everything against what the producer was told, with seeks in between.
TEST_CASE("appender: random appends, aborts and batches read back as the producer saw them",
          "[appender][stress]") {
  TempDir tmp;
  auto log = unwrap(
      PartitionLog::create(tmp.partition(), test::small_segments(), test::patient_options()));
  auto appender = unwrap(LogAppender::open(log));
  auto reader = unwrap(LogReader::open(log, {.verify_crc = true}));
  std::mt19937_64 rng(20240601);
  auto pick = [&](std::uint64_t n) { return static_cast<std::size_t>(rng() % n); };
  const auto max_value = static_cast<std::size_t>(appender.max_value_bytes());

  struct Expected {
    std::optional<std::string> key, value;
    std::vector<std::pair<std::string, std::optional<std::string>>> headers;
  };
  std::map<std::int64_t, Expected> model;
  std::int64_t next_offset = 0;  // what the next reservation must get
  std::size_t unread = 0;        // records in the model the reader has not checked yet
  auto seeker = unwrap(LogReader::open(log, {.verify_crc = true}));

  auto random_bytes = [&](std::size_t n) {
    std::string v(n, '\0');
    for (auto& c : v) c = static_cast<char>(rng());
    return v;
  };
  auto check = [&](const Rec& r, std::map<std::int64_t, Expected>::const_iterator expected) {
    INFO("offset " << r.offset);
    REQUIRE(expected != model.end());
    REQUIRE(r.offset == expected->first);
    CHECK(r.key == expected->second.key);
    CHECK(r.value == expected->second.value);
    CHECK(r.headers == expected->second.headers);
  };
  // The sequential reader: everything since its last look, in order.
  std::int64_t read_up_to = 0;
  auto check_reader = [&] {
    auto got = read_records(reader, unread);
    REQUIRE(got.size() == unread);
    auto it = model.lower_bound(read_up_to);
    for (const Rec& r : got) check(r, it++);
    unread = 0;
    read_up_to = next_offset;
  };
  auto add = [&](std::int64_t offset, Expected e) {
    model[offset] = std::move(e);
    ++unread;
  };

  const int ops = 10000 * test::stress_scale();
  for (int op = 0; op < ops; ++op) {
    std::size_t kind = pick(100);
    if (kind < 70) {
      Expected e;
      std::size_t key_kind = pick(4);
      if (key_kind == 1) e.key = std::string();
      if (key_kind >= 2) e.key = random_bytes(1 + pick(40));
      std::vector<std::string> names;
      std::vector<HeaderView> headers;
      if (pick(10) == 0) {
        std::size_t n = 1 + pick(4);
        names.reserve(n);
        for (std::size_t h = 0; h < n; ++h) {
          names.push_back("h" + std::to_string(h));
          std::optional<std::string> hv;
          if (pick(3) != 0) hv = random_bytes(pick(20));
          e.headers.emplace_back(names.back(), hv);
        }
        for (const auto& [name, hv] : e.headers)
          headers.push_back({name, hv ? std::optional<std::string_view>(*hv) : std::nullopt});
      }
      std::size_t size = pick(20) == 0 ? pick(20000) : pick(300);
      if (pick(200) == 0 && !e.key && headers.empty()) size = max_value;
      bool tombstone = pick(20) == 0;
      if (!tombstone) e.value = random_bytes(size);
      RecordMeta meta;
      if (e.key) meta.key = std::string_view(*e.key);
      meta.headers = headers;
      meta.null_value = tombstone;
      std::int64_t offset = append_ok(appender, e.value ? std::string_view(*e.value) : "", meta);
      REQUIRE(offset == next_offset);
      add(offset, std::move(e));
      ++next_offset;
    } else if (kind < 80) {
      Claim claim;
      REQUIRE(appender.claim(static_cast<std::uint32_t>(pick(500)), claim) == AppendOutcome::kOk);
      REQUIRE(claim.offset() == next_offset);
      appender.abort(claim);
      ++next_offset;
    } else if (kind < 90) {
      auto count = static_cast<std::uint32_t>(1 + pick(30));
      auto size = static_cast<std::uint32_t>(pick(200));
      BatchClaim batch;
      REQUIRE(appender.claim_batch(count, size, batch) == AppendOutcome::kOk);
      REQUIRE(batch.first_offset() == next_offset);
      for (std::uint32_t i = 0; i < count; ++i) {
        Expected e;
        e.value = random_bytes(size);
        std::memcpy(batch.value(i).data(), e.value->data(), size);
        add(next_offset + i, std::move(e));
      }
      appender.commit(batch);
      next_offset += count;
    } else if (kind < 97) {
      check_reader();
    } else if (!model.empty()) {
      // Seek to a random offset (perhaps an aborted one): the next records are the first
      // committed ones at or after it.
      auto target = static_cast<std::int64_t>(pick(static_cast<std::uint64_t>(next_offset)));
      REQUIRE_OK(seeker.seek(target));
      auto it = model.lower_bound(target);
      std::size_t n = 0;
      for (auto e = it; e != model.end() && n < 3; ++e) ++n;
      auto got = read_records(seeker, n);
      REQUIRE(got.size() == n);
      for (const Rec& r : got) check(r, it++);
    }
  }
  check_reader();
  CHECK(unwrap(log->segment_bases()).size() > 10);
  CHECK(test::partition_damage(tmp.partition()) == "");
}

}  // namespace
}  // namespace sluice::shm
