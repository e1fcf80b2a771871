// Producers and readers in separate processes (fork), and producers that die: [process]
// tests run under ASan + UBSan, not TSan.
#include <signal.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <cstdio>
#include <cstring>
#include <iostream>
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

// ---- children ----------------------------------------------------------------------------------

int producer_child(const std::string& dir, std::uint32_t id, std::uint64_t count) {
  auto log = PartitionLog::open(dir, test::patient_options());
  if (!log) return 2;
  auto appender = LogAppender::open(*log);
  if (!appender) return 3;
  for (std::uint64_t s = 0; s < count; ++s) {
    std::string v = test::make_value(id, s);
    AppendOutcome o = s % 3 == 0 ? appender->append(v).outcome : AppendOutcome::kOk;
    if (s % 3 != 0) {
      // Claim and commit through the span as well.
      Claim c;
      o = appender->claim(static_cast<std::uint32_t>(v.size()), c);
      if (o == AppendOutcome::kOk) {
        std::memcpy(c.value().data(), v.data(), v.size());
        appender->commit(c);
      }
    }
    if (o != AppendOutcome::kOk) {
      std::cerr << "producer " << id << ": " << describe(o) << "\n";
      return 4;
    }
  }
  return 0;
}

int reader_child(const std::string& dir, std::uint32_t producers, std::uint64_t per_producer,
                 WaitStrategy strategy) {
  auto log = PartitionLog::open(dir, test::patient_options());
  if (!log) return 2;
  auto reader = LogReader::open(*log, {.verify_crc = true, .spin_ns = 20'000});
  if (!reader) return 3;
  test::Tally tally(producers, per_producer);
  ReadOutcome o = test::read_into(*reader, tally, 60'000'000'000, strategy);
  if (o != ReadOutcome::kOk || !tally.complete()) {
    std::cerr << "reader child: " << tally.summary() << "; " << reader->error().message() << "\n";
    return 4;
  }
  return 0;
}

int preparer_child(const std::string& dir, test::Pipe& stop) {
  auto log = PartitionLog::open(dir, test::patient_options());
  if (!log) return 2;
  for (;;) {
    if (Status s = (*log)->prepare_next(); !s) {
      std::cerr << "preparer: " << s.message() << "\n";
      return 3;
    }
    if (stop.receive(1'000'000)) return 0;
  }
}

// Claims a frame, says so on `ready`, and waits to be killed.
[[noreturn]] void claim_and_hang(const std::string& dir, test::Pipe& ready) {
  auto log = PartitionLog::open(dir, test::impatient_options());
  if (!log) ::_exit(2);
  auto appender = LogAppender::open(*log);
  if (!appender) ::_exit(3);
  Claim claim;
  if (appender->claim(200, claim, test::with_key(std::string_view("doomed"))) != AppendOutcome::kOk)
    ::_exit(4);
  std::memset(claim.value().data(), 'd', 100);  // half written
  char offset = static_cast<char>(claim.offset());
  ready.send(offset);
  for (;;) ::pause();
}

// Reserves past the end of the active segment (the first reservation to cross it, as the
// producer that must roll), optionally after taking the roll lock, and waits to be killed.
[[noreturn]] void reserve_past_end_and_hang(const std::string& dir, bool hold_roll_lock,
                                            test::Pipe& ready) {
  auto log = PartitionLog::open(dir, test::impatient_options());
  if (!log) ::_exit(2);
  if (hold_roll_lock) {
    std::uint32_t free = 0;
    if (!(*log)->control()->roll_owner.value.compare_exchange_strong(
            free, static_cast<std::uint32_t>(::getpid())))
      ::_exit(3);
  }
  auto seg = (*log)->active_segment();
  if (!seg) ::_exit(4);
  std::uint64_t old = (*seg)->header()->tail_line.tail.fetch_add(kTailCountOne + (*seg)->capacity(),
                                                                 std::memory_order_acq_rel);
  if (tail_position(old) > (*seg)->usable()) ::_exit(5);  // not the first to cross
  ready.send();
  for (;;) ::pause();
}

// Appends a batch of 10 records whose seventh value runs into a page it may not read: the
// copy faults half-way through the batch, after six records are published, and the process
// dies there (exit 77 from the SIGSEGV handler).
[[noreturn]] void die_in_append_batch(const std::string& dir) {
  auto log = PartitionLog::open(dir, test::impatient_options());
  if (!log) ::_exit(2);
  auto appender = LogAppender::open(*log);
  if (!appender) ::_exit(3);
  const long page = ::sysconf(_SC_PAGESIZE);
  void* map = ::mmap(nullptr, 2 * static_cast<std::size_t>(page), PROT_READ | PROT_WRITE,
                     MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (map == MAP_FAILED) ::_exit(4);
  char* first = static_cast<char*>(map);
  std::memset(first, 'v', static_cast<std::size_t>(page));
  if (::mprotect(first + page, static_cast<std::size_t>(page), PROT_NONE) != 0) ::_exit(5);
  std::vector<BatchRecord> records(10);
  for (std::size_t i = 0; i < records.size(); ++i) records[i].value = std::string_view(first, 100);
  records[6].value = std::string_view(first + page - 50, 100);  // its last 50 bytes fault
  ::signal(SIGSEGV, [](int) { ::_exit(77); });
  (void)appender->append_batch(records);
  ::_exit(6);  // the copy did not fault
}

// What a producer that ran out of room for the next segment saw (in memory shared with the
// test, which forked it).
struct FullDiskReport {
  std::int64_t acknowledged = 0;  // records appended before the roll failed
  std::int32_t failures = 0;      // kRollFailed outcomes (the first, and a retry)
  std::int32_t other = 0;         // any other failing outcome
  char first_error[512] = {};
  char retry_error[512] = {};
};

// How a producer is made to run out of room for the next segment's file.
enum class NoRoom {
  kFileSizeLimit,  // RLIMIT_FSIZE below a segment: the file is refused as on a full disk
  kMemoryReserve,  // a memory reserve above what the machine has (the test's dir is on tmpfs)
};

// Appends make_value(0, i) records with no room for another segment until a roll fails, then
// tries once more.
int append_until_roll_fails(const std::string& dir, NoRoom no_room, FullDiskReport& report) {
  auto log = PartitionLog::open(dir, test::impatient_options());
  if (!log) return 2;
  auto appender = LogAppender::open(*log);
  if (!appender) return 3;
  if (no_room == NoRoom::kFileSizeLimit) {
    ::signal(SIGXFSZ, SIG_IGN);  // a write past the limit fails with EFBIG instead of killing
    rlimit limit{kMinSegmentCapacity / 2, kMinSegmentCapacity / 2};
    if (::setrlimit(RLIMIT_FSIZE, &limit) != 0) return 4;
  } else if (::setenv("SLUICE_MIN_FREE_MEMORY", "1048576G", 1) != 0) {  // 1 PiB
    return 4;
  }
  auto copy = [](char* to, const std::string& from) {
    std::snprintf(to, sizeof FullDiskReport::first_error, "%s", from.c_str());
  };
  for (std::int64_t i = 0; i < 100'000 && report.failures < 2; ++i) {
    AppendResult r =
        appender->append(test::make_value(0, static_cast<std::uint64_t>(report.acknowledged)));
    if (r.outcome == AppendOutcome::kOk) {
      if (r.offset != report.acknowledged) return 5;
      ++report.acknowledged;
    } else if (r.outcome == AppendOutcome::kRollFailed) {
      copy(report.failures == 0 ? report.first_error : report.retry_error,
           appender->last_error().message());
      ++report.failures;
    } else {
      ++report.other;
      return 6;
    }
  }
  return 0;
}

void kill_and_reap(pid_t child) {
  REQUIRE(::kill(child, SIGKILL) == 0);
  CHECK(test::wait_child(child) == 128 + SIGKILL);
}

// ---- many producers, many readers ------------------------------------------------------------

void producers_then_read(std::uint32_t producers, std::uint64_t per_producer) {
  TempDir tmp;
  const std::string dir = tmp.partition();
  auto log = unwrap(PartitionLog::create(dir, test::small_segments(), test::patient_options()));
  std::vector<pid_t> children;
  for (std::uint32_t p = 0; p < producers; ++p)
    children.push_back(test::spawn([&, p] { return producer_child(dir, p, per_producer); }));
  for (pid_t c : children) CHECK(test::wait_child(c) == 0);

  auto reader = unwrap(LogReader::open(log, {.verify_crc = true}));
  test::Tally tally(producers, per_producer);
  CHECK(test::read_into(reader, tally, 1'000'000'000) == ReadOutcome::kOk);
  INFO(tally.summary());
  CHECK(tally.complete());
  CHECK(reader.poll([](const RecordView&) {}).records == 0);  // and nothing more
  CHECK(unwrap(log->segment_bases()).size() > 20);
  CHECK(test::partition_damage(dir) == "");
}

TEST_CASE("log: producer processes append every record exactly once across many rolls",
          "[process]") {
  producers_then_read(4, 20000);
}

TEST_CASE("log: reader processes read every record while producer processes append", "[process]") {
  TempDir tmp;
  const std::string dir = tmp.partition();
  auto log = unwrap(PartitionLog::create(dir, test::small_segments(), test::patient_options()));
  constexpr std::uint32_t kProducers = 3;
  constexpr std::uint64_t kPerProducer = 20000;
  test::Pipe stop_preparer;
  bool with_preparer = GENERATE(false, true);
  std::vector<pid_t> readers, producers;
  for (WaitStrategy s : {WaitStrategy::kBlock, WaitStrategy::kAdaptive, WaitStrategy::kYield})
    readers.push_back(
        test::spawn([&, s] { return reader_child(dir, kProducers, kPerProducer, s); }));
  pid_t preparer =
      with_preparer ? test::spawn([&] { return preparer_child(dir, stop_preparer); }) : -1;
  for (std::uint32_t p = 0; p < kProducers; ++p)
    producers.push_back(test::spawn([&, p] { return producer_child(dir, p, kPerProducer); }));

  // This process reads too.
  auto reader = unwrap(LogReader::open(log, {.verify_crc = true}));
  test::Tally tally(kProducers, kPerProducer);
  CHECK(test::read_into(reader, tally) == ReadOutcome::kOk);
  INFO(tally.summary());
  CHECK(tally.complete());

  for (pid_t c : producers) CHECK(test::wait_child(c) == 0);
  for (pid_t c : readers) CHECK(test::wait_child(c) == 0);
  if (preparer > 0) {
    stop_preparer.send();
    CHECK(test::wait_child(preparer) == 0);
  }
  CHECK(test::partition_damage(dir) == "");
}

TEST_CASE("log: many producer processes over many rolls", "[process][stress]") {
  producers_then_read(6, 20000 * static_cast<std::uint64_t>(test::stress_scale()));
}

// ---- producers that die --------------------------------------------------------------------

TEST_CASE("log: a producer killed mid-claim is skipped after the timeout", "[process]") {
  TempDir tmp;
  const std::string dir = tmp.partition();
  auto log = unwrap(PartitionLog::create(dir, test::small_segments(), test::impatient_options()));
  auto producer = unwrap(LogAppender::open(log));
  for (int i = 0; i < 5; ++i) append_ok(producer, "before");

  test::Pipe ready;
  pid_t doomed = test::spawn([&]() -> int { claim_and_hang(dir, ready); });
  char claimed = 0;
  REQUIRE(ready.receive(30'000'000'000, &claimed));
  CHECK(claimed == 5);
  for (int i = 0; i < 5; ++i) append_ok(producer, "after");
  kill_and_reap(doomed);

  // A read-only reader cannot pad the dead claim: it waits at it.
  LogOptions ro = test::impatient_options();
  ro.access = Access::kReadOnly;
  auto read_only_log = unwrap(PartitionLog::open(dir, ro));
  auto read_only = unwrap(LogReader::open(read_only_log));
  auto got = read_records(read_only, 10, nullptr, 300'000'000);
  CHECK(offsets_of(got) == std::vector<std::int64_t>{0, 1, 2, 3, 4});

  // A reader in another process with write access pads it, and reads on.
  pid_t other = test::spawn([&] {
    auto l = PartitionLog::open(dir, test::impatient_options());
    if (!l) return 2;
    auto r = LogReader::open(*l, {.verify_crc = true});
    if (!r) return 3;
    auto records = read_records(*r, 10, nullptr, 10'000'000'000);
    std::vector<std::int64_t> expected = {0, 1, 2, 3, 4, 6, 7, 8, 9, 10};
    return offsets_of(records) == expected ? 0 : 4;
  });
  CHECK(test::wait_child(other) == 0);

  got = read_records(read_only, 5, nullptr, 10'000'000'000);
  CHECK(offsets_of(got) == std::vector<std::int64_t>{6, 7, 8, 9, 10});
  CHECK(append_ok(producer, "later") == 11);
  auto reader = unwrap(LogReader::open(log, {.verify_crc = true}));
  got = read_records(reader, 11);
  CHECK(offsets_of(got) == std::vector<std::int64_t>{0, 1, 2, 3, 4, 6, 7, 8, 9, 10, 11});
  for (const Rec& r : got) CHECK_FALSE(r.key);  // nothing of the doomed claim
  CHECK(test::partition_damage(dir) == "");
}

TEST_CASE("log: a producer dying in the middle of append_batch leaves what it published",
          "[process]") {
  TempDir tmp;
  const std::string dir = tmp.partition();
  auto log = unwrap(PartitionLog::create(dir, test::small_segments(), test::impatient_options()));
  auto producer = unwrap(LogAppender::open(log));
  for (int i = 0; i < 5; ++i) append_ok(producer, "before");  // offsets 0..4

  // The batch gets offsets 5..14; the child publishes 5..10 and dies copying 11.
  pid_t doomed = test::spawn([&]() -> int { die_in_append_batch(dir); });
  REQUIRE(test::wait_child(doomed) == 77);
  for (int i = 0; i < 5; ++i) CHECK(append_ok(producer, "after") == 15 + i);

  // A reader with write access pads the rest of the dead batch after the timeout (one claim
  // over it: the frames after the one being copied were never written) and reads on.
  auto reader = unwrap(LogReader::open(log, {.verify_crc = true}));
  auto got = read_records(reader, 16, nullptr, 10'000'000'000);
  CHECK(offsets_of(got) ==
        std::vector<std::int64_t>{0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 15, 16, 17, 18, 19});
  for (std::size_t i = 5; i < 11 && i < got.size(); ++i)
    CHECK(got[i].value == std::string(100, 'v'));
  CHECK(test::partition_damage(dir) == "");
}

// A producer runs out of room (`no_room`) for the next segment: the roll's error names the file
// and `cause`, no acknowledged record is lost, and the roll succeeds once there is room.
void check_refused_roll(NoRoom no_room, const char* cause) {
  TempDir tmp;
  const std::string dir = tmp.partition();
  auto log = unwrap(PartitionLog::create(dir, test::small_segments(), test::impatient_options()));
  test_process::SharedWithChildren<FullDiskReport> report;

  pid_t producer = test::spawn([&] { return append_until_roll_fails(dir, no_room, *report); });
  REQUIRE(test::wait_child(producer) == 0);
  INFO("first error: " << report->first_error << "; retry: " << report->retry_error);
  CHECK(report->other == 0);
  REQUIRE(report->failures == 2);
  REQUIRE(report->acknowledged > 0);
  // The error names the segment file it could not make, and why.
  for (const char* error : {report->first_error, report->retry_error}) {
    CHECK_THAT(error, Catch::Contains(dir) && Catch::Contains(".seg") && Catch::Contains(cause));
  }

  // Every acknowledged record is there, intact, and nothing else.
  const auto acknowledged = static_cast<std::size_t>(report->acknowledged);
  {
    auto reader = unwrap(LogReader::open(log, {.verify_crc = true}));
    auto got = read_records(reader, acknowledged);
    REQUIRE(got.size() == acknowledged);
    for (std::size_t i = 0; i < got.size(); ++i) {
      INFO("record " << i);
      CHECK(got[i].offset == static_cast<std::int64_t>(i));
      CHECK(got[i].value == test::make_value(0, i));
    }
    CHECK(reader.poll([](const RecordView&) {}).records == 0);
  }
  // With room again (this process has no limit), the refused roll is made, and offsets go on
  // where the acknowledged ones stopped.
  auto appender = unwrap(LogAppender::open(log));
  CHECK(append_ok(appender, "after") == report->acknowledged);
  CHECK(append_ok(appender, "after") == report->acknowledged + 1);
  auto reader = unwrap(LogReader::open(log, {.verify_crc = true}));
  auto all = read_records(reader, acknowledged + 2);
  REQUIRE(all.size() == acknowledged + 2);
  CHECK(all.back().value == std::string("after"));
  CHECK(test::partition_damage(dir) == "");
}

TEST_CASE(
    "log: a roll refused for lack of room names the file and the cause, loses no acknowledged "
    "record, and succeeds once there is room",
    "[process]") {
  check_refused_roll(NoRoom::kFileSizeLimit, "File too large");
}

TEST_CASE(
    "log: on tmpfs a roll that would eat into the memory reserve is refused as on a full disk "
    "and loses no acknowledged record",
    "[process]") {
  check_refused_roll(NoRoom::kMemoryReserve, "not enough memory");
}

TEST_CASE("log: recycling never reuses a segment a reader in another process is on", "[process]") {
  TempDir tmp;
  const std::string dir = tmp.partition();
  const LogOptions options = test::recycling_options(3);
  LogOptions reader_options = options;
  // A reader that may write pins the file with the header's pins word; a read-only one, which
  // cannot write it, with a shared flock.
  SECTION("a reader with write access") {}
  SECTION("a read-only reader") {
    reader_options.access = Access::kReadOnly;
  }
  auto log = unwrap(PartitionLog::create(dir, test::small_segments(), options));
  auto producer = unwrap(LogAppender::open(log));
  std::uint64_t seq = 0;
  while (log->control()->active.active_base.load() == 0)
    append_ok(producer, test::make_value(0, seq++));
  const auto in_segment_zero = static_cast<std::int64_t>(seq - 1);  // offsets 0 .. seq - 2
  REQUIRE(in_segment_zero > 100);
  struct stat zero {};
  REQUIRE(::stat(test::segment_path(dir, 0).c_str(), &zero) == 0);

  test::Pipe ready, go;
  pid_t reader = test::spawn([&] {
    auto l = PartitionLog::open(dir, reader_options);
    if (!l) return 2;
    auto r = LogReader::open(*l, {.verify_crc = true});
    if (!r) return 3;
    // Into segment 0, then wait while the parent rolls and recycles far past it.
    if (read_records(*r, 1, nullptr, 10'000'000'000).size() != 1) return 4;
    if (!ready.send() || !go.receive()) return 5;
    // The rest of segment 0 is intact (each value names its own offset), then out-of-range.
    std::int64_t expected = 1;
    PollResult p;
    do {
      p = r->poll([&](const RecordView& v) {
        auto stamp = v.value ? test::parse_value(*v.value) : std::nullopt;
        if (v.offset == expected && stamp && static_cast<std::int64_t>(stamp->seq) == v.offset)
          ++expected;
        else
          expected = -1'000'000;  // a record that is not segment 0's
      });
      if (p.records == 0 && p.outcome == ReadOutcome::kOk)
        (void)r->wait(WaitStrategy::kBlock, 100'000'000);
    } while (p.outcome == ReadOutcome::kOk && expected > 0);
    if (p.outcome != ReadOutcome::kOutOfRange) return 6;
    return expected == in_segment_zero ? 0 : 7;
  });
  REQUIRE(ready.receive());
  int reused = 0;
  for (int rolls = 0; rolls < 12;) {
    std::int64_t active = log->control()->active.active_base.load();
    append_ok(producer, test::make_value(0, seq++));
    if (log->control()->active.active_base.load() == active) continue;
    ++rolls;
    REQUIRE_OK(log->prepare_next());
    for (std::int64_t b : unwrap(log->segment_bases())) {
      struct stat st {};
      if (b > 0 && ::stat(test::segment_path(dir, b).c_str(), &st) == 0 && st.st_ino == zero.st_ino)
        ++reused;
    }
  }
  REQUIRE(unwrap(log->segment_bases()).front() > 0);  // retention took segment 0
  CHECK(reused == 0);
  REQUIRE(go.send());
  CHECK(test::wait_child(reader) == 0);
  CHECK(test::partition_damage(dir) == "");
}

TEST_CASE("log: a producer killed after reserving past the segment end has its roll finished",
          "[process]") {
  TempDir tmp;
  const std::string dir = tmp.partition();
  auto log = unwrap(PartitionLog::create(dir, test::small_segments(), test::impatient_options()));
  auto producer = unwrap(LogAppender::open(log));
  std::vector<std::int64_t> expected;
  for (int i = 0; i < 5; ++i) expected.push_back(append_ok(producer, "before"));

  bool hold_lock = false;
  bool dead_claim_first = false;
  SECTION("before it took the roll lock") {}
  SECTION("while it held the roll lock") {
    hold_lock = true;
  }
  SECTION("after another producer died mid-claim") {
    dead_claim_first = true;
  }

  if (dead_claim_first) {
    test::Pipe ready;
    pid_t doomed = test::spawn([&]() -> int { claim_and_hang(dir, ready); });
    REQUIRE(ready.receive());
    kill_and_reap(doomed);
    for (int i = 0; i < 5; ++i) expected.push_back(append_ok(producer, "between"));
  }
  test::Pipe ready;
  pid_t roller = test::spawn([&]() -> int { reserve_past_end_and_hang(dir, hold_lock, ready); });
  REQUIRE(ready.receive());
  kill_and_reap(roller);

  // The next append waits out the timeout, finishes the roll and lands in the new segment.
  const std::int64_t next = append_ok(producer, "after");
  CHECK(next == expected.back() + 1);
  expected.push_back(next);
  CHECK(log->control()->roll_owner.value.load() == 0);
  CHECK(unwrap(log->segment_bases()).size() == 2);

  auto reader = unwrap(LogReader::open(log, {.verify_crc = true}));
  auto got = read_records(reader, expected.size(), nullptr, 2'000'000'000);
  CHECK(offsets_of(got) == expected);
  CHECK(test::partition_damage(dir) == "");
}

TEST_CASE("partition: processes racing to open_or_create all open the same partition",
          "[process]") {
  TempDir tmp;
  const std::string dir = tmp.path() + "/topic/0";  // parents do not exist yet either
  constexpr std::uint32_t kProcesses = 6;
  test::Pipe go;
  std::vector<pid_t> children;
  for (std::uint32_t p = 0; p < kProcesses; ++p) {
    children.push_back(test::spawn([&, p] {
      if (!go.receive()) return 2;
      auto log = PartitionLog::open_or_create(dir, test::small_segments(), test::patient_options());
      if (!log) {
        std::cerr << "open_or_create: " << log.status().message() << "\n";
        return 3;
      }
      auto appender = LogAppender::open(*log);
      if (!appender) return 4;
      return appender->append(test::make_value(p, 0)).outcome == AppendOutcome::kOk ? 0 : 5;
    }));
  }
  for (std::uint32_t p = 0; p < kProcesses; ++p) go.send();
  for (pid_t c : children) CHECK(test::wait_child(c) == 0);

  auto log = unwrap(PartitionLog::open(dir, test::patient_options()));
  auto reader = unwrap(LogReader::open(log, {.verify_crc = true}));
  test::Tally tally(kProcesses, 1);
  CHECK(test::read_into(reader, tally, 1'000'000'000) == ReadOutcome::kOk);
  INFO(tally.summary());
  CHECK(tally.complete());
  for (const auto& e : std::filesystem::directory_iterator(tmp.path() + "/topic"))
    CHECK(e.path().filename() == "0");  // no half-built partition left behind
}

}  // namespace
}  // namespace sluice::shm
