// PartitionLog::close: a deleted topic's partitions refuse appends in every process that still
// has them mapped, while every record acknowledged before stays readable.
#include <atomic>
#include <catch2/catch.hpp>
#include <chrono>
#include <thread>
#include <vector>

#include "shm/log_appender.h"
#include "shm/log_reader.h"
#include "shm/test_support.h"

namespace sluice::shm {
namespace {

using test::append_ok;
using test::read_records;
using test::TempDir;
using test::unwrap;

TEST_CASE("close: later appends, claims and batches fail with kClosed; earlier records stay",
          "[close]") {
  TempDir tmp;
  auto log = unwrap(
      PartitionLog::create(tmp.partition(), test::small_segments(), test::patient_options()));
  auto before = unwrap(LogAppender::open(log));
  // Another handle, as another process would have: the mark and the seal are in the files.
  auto other_log = unwrap(PartitionLog::open(tmp.partition(), test::patient_options()));
  auto other = unwrap(LogAppender::open(other_log));
  for (std::uint64_t s = 0; s < 10; ++s) append_ok(before, test::make_value(0, s));
  CHECK_FALSE(log->closed());

  REQUIRE_OK(log->close());
  CHECK(log->closed());
  CHECK(other_log->closed());

  AppendResult r = before.append(test::make_value(0, 10));
  CHECK(r.outcome == AppendOutcome::kClosed);
  CHECK(std::string(describe(r.outcome)).find("deleted") != std::string::npos);
  CHECK(other.append(test::make_value(1, 0)).outcome == AppendOutcome::kClosed);
  Claim c;
  CHECK(other.claim(16, c) == AppendOutcome::kClosed);
  BatchClaim b;
  CHECK(before.claim_batch(4, 16, b) == AppendOutcome::kClosed);
  // Still closed on a second try (the seal holds, no segment opens after it).
  CHECK(before.append(test::make_value(0, 11)).outcome == AppendOutcome::kClosed);
  // An appender opened after the close fails too.
  auto late = unwrap(LogAppender::open(other_log));
  CHECK(late.append(test::make_value(2, 0)).outcome == AppendOutcome::kClosed);

  CHECK(log->end_offset() == 10);  // the sealed end, not the segment's base
  auto reader = unwrap(LogReader::open(log));
  ReadOutcome outcome;
  auto got = read_records(reader, 11, &outcome, 200'000'000);
  REQUIRE(got.size() == 10);
  for (std::size_t i = 0; i < got.size(); ++i) {
    CHECK(got[i].offset == static_cast<std::int64_t>(i));
    CHECK(got[i].value == test::make_value(0, i));
  }
  CHECK(test::partition_damage(tmp.partition()) == "");
}

TEST_CASE("close: after rolls, the active segment is the one closed", "[close]") {
  TempDir tmp;
  auto log = unwrap(
      PartitionLog::create(tmp.partition(), test::small_segments(), test::patient_options()));
  auto a = unwrap(LogAppender::open(log));
  // Fill the first segment exactly to its roll; the next append rolls.
  std::uint64_t s = 0;
  while (log->segment_bases().value().size() < 2) append_ok(a, test::make_value(0, s++));
  REQUIRE_OK(log->close());
  CHECK(a.append(test::make_value(0, s)).outcome == AppendOutcome::kClosed);
  auto reader = unwrap(LogReader::open(log));
  ReadOutcome outcome;
  auto got = read_records(reader, s + 1, &outcome, 200'000'000);
  CHECK(got.size() == s);
}

TEST_CASE("close while producer threads append: each ack is readable, and none after close",
          "[close][concurrency]") {
  TempDir tmp;
  auto log = unwrap(
      PartitionLog::create(tmp.partition(), test::small_segments(), test::patient_options()));
  constexpr std::uint32_t kProducers = 3;
  std::vector<std::uint64_t> acked(kProducers, 0);
  std::vector<int> late_outcome(kProducers, -1);
  std::atomic<bool> closed_done{false};
  std::atomic<std::uint64_t> total{0};
  std::vector<std::thread> threads;
  for (std::uint32_t p = 0; p < kProducers; ++p) {
    threads.emplace_back([&, p] {
      auto appender = LogAppender::open(log);
      if (!appender) return;
      for (std::uint64_t s = 0;; ++s) {
        bool after = closed_done.load(std::memory_order_acquire);
        AppendResult r = appender->append(test::make_value(p, s));
        if (r.outcome != AppendOutcome::kOk) {
          late_outcome[p] = static_cast<int>(r.outcome);
          break;
        }
        if (after) {  // acknowledged although close() had returned before the append began
          late_outcome[p] = 100;
          break;
        }
        acked[p] = s + 1;
        total.fetch_add(1, std::memory_order_relaxed);
      }
    });
  }
  // Let them roll a few segments first.
  while (total.load(std::memory_order_relaxed) < 20000) std::this_thread::yield();
  Status st = log->close();
  closed_done.store(true, std::memory_order_release);
  for (auto& t : threads) t.join();
  REQUIRE_OK(st);
  for (std::uint32_t p = 0; p < kProducers; ++p) {
    INFO("producer " << p);
    CHECK(late_outcome[p] == static_cast<int>(AppendOutcome::kClosed));
  }
  // Every acknowledged record is readable, intact, once; nothing else is.
  std::uint64_t expected = 0;
  for (auto n : acked) expected += n;
  auto reader = unwrap(LogReader::open(log));
  std::vector<std::uint64_t> next(kProducers, 0);
  std::uint64_t seen = 0;
  std::string problem;
  auto got = read_records(reader, expected + 1, nullptr, 300'000'000);
  for (const auto& rec : got) {
    auto stamp = rec.value ? test::parse_value(*rec.value) : std::nullopt;
    if (!stamp || stamp->producer >= kProducers || stamp->seq != next[stamp->producer]) {
      problem = "unexpected record at offset " + std::to_string(rec.offset);
      break;
    }
    ++next[stamp->producer];
    ++seen;
  }
  INFO(problem);
  CHECK(problem.empty());
  // An append that returned kOk is in acked; one that returned kClosed wrote nothing.
  CHECK(seen == expected);
  CHECK(next == acked);
  CHECK(test::partition_damage(tmp.partition()) == "");
}

// A producer that finds another producer's roll under way waits for it; if that roll is then
// held back (backpressure) or refused (closed), it must stop waiting at once and report it,
// not wait out the abandon timeout for a segment that will not come.
TEST_CASE("a producer waiting on a roll that is then held back returns kBackPressured",
          "[close][concurrency]") {
  TempDir tmp;
  LogOptions options = test::patient_options();
  options.abandon_timeout_ns = 5'000'000'000;
  options.roll_gate = [](PartitionLog&) { return false; };
  auto log = unwrap(PartitionLog::create(tmp.partition(), test::small_segments(), options));
  auto a = unwrap(LogAppender::open(log));
  append_ok(a, test::make_value(0, 0));
  // Reserve past the end as the first roller would, and stop there (no seal yet).
  auto seg = unwrap(log->active_segment());
  std::uint64_t old_tail = seg->header()->tail_line.tail.fetch_add(
      kTailCountOne | (seg->usable() + 1), std::memory_order_relaxed);
  std::atomic<int> outcome{-1};
  std::thread waiter([&] {
    auto b = LogAppender::open(log);
    if (b) outcome = static_cast<int>(b->append(test::make_value(1, 0)).outcome);
  });
  std::this_thread::sleep_for(std::chrono::milliseconds(100));  // let it start waiting
  // The roller goes on: it seals the segment, and the gate holds the roll back.
  Status rolled = log->roll(*seg, tail_position(old_tail), tail_count(old_tail));
  waiter.join();
  CHECK(rolled.code() == ErrorCode::kBackPressured);
  // While held back, the end is the seal: the appended record and the first roller's.
  CHECK(log->end_offset() == static_cast<std::int64_t>(tail_count(old_tail)));
  INFO("outcome " << outcome.load());
  CHECK(outcome.load() == static_cast<int>(AppendOutcome::kBackPressured));
}

}  // namespace
}  // namespace sluice::shm
