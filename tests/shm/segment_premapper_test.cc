#include "shm/segment_premapper.h"

#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <catch2/catch.hpp>
#include <chrono>
#include <fstream>
#include <set>
#include <sstream>
#include <string>
#include <thread>

#include "shm/log_appender.h"
#include "shm/log_reader.h"
#include "shm/segment.h"
#include "shm/test_support.h"

namespace sluice::shm {
namespace {

using test::append_ok;
using test::TempDir;
using test::unwrap;

// How many mappings of the file with inode `ino` this process has (/proc/self/maps).
int mappings_of(ino_t ino) {
  std::ifstream maps("/proc/self/maps");
  std::string line;
  int n = 0;
  while (std::getline(maps, line)) {
    std::istringstream fields(line);
    std::string range, perms, offset, device;
    unsigned long long inode = 0;
    if (fields >> range >> perms >> offset >> device >> inode && inode == ino) ++n;
  }
  return n;
}

ino_t inode_of(const std::string& path) {
  struct stat st {};
  REQUIRE(::stat(path.c_str(), &st) == 0);
  return st.st_ino;
}

// Inodes of a partition's segment files and of its spare, when it has one (a pool whose last
// roll recycled the oldest segment in place has none until the next prepare_next()).
std::set<ino_t> pool_inodes(const std::string& dir) {
  std::set<ino_t> inodes;
  auto log = unwrap(PartitionLog::open(dir, test::patient_options()));
  for (std::int64_t b : unwrap(log->segment_bases()))
    inodes.insert(inode_of(dir + "/" + segment_file_name(b)));
  struct stat st {};
  if (::stat((dir + "/spare.seg").c_str(), &st) == 0) inodes.insert(st.st_ino);
  return inodes;
}

// Appends until the active segment changes (the roll takes the spare); returns the new base.
std::int64_t append_until_roll(PartitionLog& log, LogAppender& appender) {
  std::int64_t base = log.control()->active.active_base.load();
  for (std::uint64_t i = 0; i < 100'000; ++i) {
    append_ok(appender, test::make_value(0, i));
    std::int64_t now = log.control()->active.active_base.load();
    if (now != base) return now;
  }
  FAIL("no roll after 100000 appends");
  return -1;
}

bool eventually(const std::function<bool()>& done, int timeout_ms = 10'000) {
  for (int waited = 0; waited < timeout_ms; waited += 2) {
    if (done()) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  }
  return done();
}

TEST_CASE("log: a premapped spare is mapped before its roll, and the roll maps it no more",
          "[log]") {
  TempDir tmp;
  auto log = unwrap(
      PartitionLog::create(tmp.partition(), test::small_segments(), test::patient_options()));
  auto appender = unwrap(LogAppender::open(log));
  const std::string spare = tmp.partition() + "/spare.seg";
  CHECK(unwrap(log->premap_spare()) == PartitionLog::PremapOutcome::kNoSpare);

  REQUIRE_OK(log->prepare_next());
  ino_t ino = inode_of(spare);
  CHECK(mappings_of(ino) == 0);  // its creator mapped it only to format it
  CHECK(unwrap(log->premap_spare()) == PartitionLog::PremapOutcome::kMapped);
  CHECK(mappings_of(ino) == 1);
  CHECK(unwrap(log->premap_spare()) == PartitionLog::PremapOutcome::kAlreadyMapped);
  CHECK(mappings_of(ino) == 1);

  std::int64_t base = append_until_roll(*log, appender);
  CHECK(inode_of(tmp.partition() + "/" + segment_file_name(base)) == ino);  // the spare, rolled
  CHECK(mappings_of(ino) == 1);  // the roll used the premapped mapping
  CHECK(unwrap(log->premap_spare()) == PartitionLog::PremapOutcome::kNoSpare);
  // Records on both sides of the roll read back.
  auto reader = unwrap(LogReader::open(log, {.verify_crc = true}));
  auto got = test::read_records(reader, static_cast<std::size_t>(base + 1));
  REQUIRE(got.size() == static_cast<std::size_t>(base + 1));
  CHECK(got.back().offset == base);
  CHECK(test::partition_damage(tmp.partition()) == "");
}

TEST_CASE("log: premap_segments maps a recycled pool once, and rolls through it map nothing more",
          "[log]") {
  TempDir tmp;
  const LogOptions retention = test::recycling_options(3);
  {
    // Fill the pool as sluice perf's warm-up does: appends through a handle without
    // retention, prepare_next() through one with it after every roll.
    auto owner = unwrap(PartitionLog::create(tmp.partition(), test::small_segments(), retention));
    REQUIRE_OK(owner->prepare_next());
    auto plain = unwrap(PartitionLog::open(tmp.partition(), test::patient_options()));
    auto appender = unwrap(LogAppender::open(plain));
    for (int roll = 0; roll < 5; ++roll) {
      append_until_roll(*plain, appender);
      REQUIRE_OK(owner->prepare_next());
    }
  }  // every mapping of those handles is gone
  const std::set<ino_t> files = pool_inodes(tmp.partition());
  REQUIRE(files.size() == 4);  // 3 segments and the spare

  auto owner = unwrap(PartitionLog::open(tmp.partition(), retention));
  auto plain = unwrap(PartitionLog::open(tmp.partition(), test::patient_options()));
  CHECK(unwrap(owner->premap_segments()) == 4);
  CHECK(unwrap(plain->premap_segments()) == 4);
  CHECK(unwrap(plain->premap_segments()) == 0);  // all mapped already
  for (ino_t ino : files) CHECK(mappings_of(ino) == 2);
  auto appender = unwrap(LogAppender::open(plain));
  for (int roll = 0; roll < 6; ++roll) {
    INFO("roll " << roll);
    append_until_roll(*plain, appender);
    REQUIRE_OK(owner->prepare_next());
    // The same four files, each still mapped once per handle: nothing new was mapped.
    CHECK(pool_inodes(tmp.partition()) == files);
    for (ino_t ino : files) CHECK(mappings_of(ino) == 2);
  }
}

// A pool larger than the mapping cache's default of 8 files (sluice perf --retain 12): handles
// with that retention keep the whole pool mapped. With the cache at 8, premap_segments mapped 8
// of the 13 files and every roll after it mapped one (and dropped another).
// Pretouching writes every page of the pool once through this handle's mappings (an atomic
// add of 0): no byte may change, the active segment's included, and a read-only handle has
// nothing to write with.
TEST_CASE("log: premap_segments pretouching for writing changes no byte of the pool", "[log]") {
  TempDir tmp;
  const LogOptions retention = test::recycling_options(3);
  auto owner = unwrap(PartitionLog::create(tmp.partition(), test::small_segments(), retention));
  REQUIRE_OK(owner->prepare_next());
  auto appender = unwrap(LogAppender::open(owner));
  std::uint64_t appended = 0;
  for (int roll = 0; roll < 2; ++roll) {
    std::int64_t base = owner->control()->active.active_base.load();
    while (owner->control()->active.active_base.load() == base)
      append_ok(appender, test::make_value(0, appended++));
    REQUIRE_OK(owner->prepare_next());
  }
  for (int i = 0; i < 100; ++i) append_ok(appender, test::make_value(0, appended++));
  REQUIRE(unwrap(owner->segment_bases()).size() == 3);

  auto producer = unwrap(PartitionLog::open(tmp.partition(), retention));
  CHECK(unwrap(producer->premap_segments(PartitionLog::Pretouch::kForWriting)) == 4);
  CHECK(unwrap(owner->premap_segments(PartitionLog::Pretouch::kForWriting)) == 1);  // the spare
  CHECK(test::partition_damage(tmp.partition()) == "");
  test::Tally tally(1, appended);
  auto reader = unwrap(LogReader::open(owner, {.verify_crc = true}));
  CHECK(test::drain(reader, tally) == ReadOutcome::kOk);
  INFO(tally.summary());
  CHECK(tally.complete());
  // Appends go on after it.
  append_ok(appender, test::make_value(0, appended));

  LogOptions ro = test::patient_options();
  ro.access = Access::kReadOnly;
  auto watcher = unwrap(PartitionLog::open(tmp.partition(), ro));
  auto refused = watcher->premap_segments(PartitionLog::Pretouch::kForWriting);
  REQUIRE_FALSE(refused);
  CHECK(refused.status().code() == ErrorCode::kPermissionDenied);
  CHECK(unwrap(watcher->premap_segments()) == 4);
}

TEST_CASE("log: handles with retention keep a pool of more than 8 files mapped", "[log]") {
  TempDir tmp;
  constexpr std::uint32_t kRetain = 12;
  const LogOptions retention = test::recycling_options(kRetain);
  {
    auto [owner, producer] = test::recycling_handles(tmp.partition(), kRetain);
    auto appender = unwrap(LogAppender::open(producer));
    for (std::uint32_t roll = 0; roll < kRetain + 2; ++roll) {
      append_until_roll(*producer, appender);
      REQUIRE_OK(owner->prepare_next());
    }
  }  // every mapping of those handles is gone
  const std::set<ino_t> files = pool_inodes(tmp.partition());
  REQUIRE(files.size() >= kRetain);

  auto owner = unwrap(PartitionLog::open(tmp.partition(), retention));
  auto producer = unwrap(PartitionLog::open(tmp.partition(), retention));
  CHECK(unwrap(owner->premap_segments()) == files.size());
  CHECK(unwrap(producer->premap_segments()) == files.size());
  for (ino_t ino : files) CHECK(mappings_of(ino) == 2);
  auto appender = unwrap(LogAppender::open(producer));
  for (std::uint32_t roll = 0; roll < 2 * kRetain; ++roll) {
    INFO("roll " << roll);
    append_until_roll(*producer, appender);
    REQUIRE_OK(owner->prepare_next());
    std::set<ino_t> now = pool_inodes(tmp.partition());
    CHECK(std::includes(files.begin(), files.end(), now.begin(), now.end()));
    for (ino_t ino : files) CHECK(mappings_of(ino) == 2);
  }
}

TEST_CASE("premapper: its thread maps each new spare after every roll", "[log][concurrency]") {
  TempDir tmp;
  auto log = unwrap(
      PartitionLog::create(tmp.partition(), test::small_segments(), test::patient_options()));
  auto appender = unwrap(LogAppender::open(log));
  const std::string spare = tmp.partition() + "/spare.seg";
  SegmentPremapper premapper(std::chrono::milliseconds(1));
  premapper.add(log);
  premapper.add(log);  // twice: harmless
  for (int round = 1; round <= 3; ++round) {
    INFO("round " << round);
    REQUIRE_OK(log->prepare_next());
    ino_t ino = inode_of(spare);
    CHECK(eventually([&] { return premapper.mapped() >= static_cast<std::uint64_t>(round); }));
    CHECK(mappings_of(ino) == 1);
    std::int64_t base = append_until_roll(*log, appender);
    CHECK(inode_of(tmp.partition() + "/" + segment_file_name(base)) == ino);
    CHECK(mappings_of(ino) == 1);
  }
  CHECK(premapper.mapped() == 3);
  CHECK(premapper.failures() == 0);
}

TEST_CASE("premapper: a forked child can drop a premapper whose thread its parent started",
          "[log][process]") {
  TempDir tmp;
  auto log = unwrap(
      PartitionLog::create(tmp.partition(), test::small_segments(), test::patient_options()));
  REQUIRE_OK(log->prepare_next());
  auto* premapper = new SegmentPremapper(std::chrono::milliseconds(1));
  premapper->add(log);
  REQUIRE(eventually([&] { return premapper->mapped() == 1; }));
  pid_t child = ::fork();
  REQUIRE(child >= 0);
  if (child == 0) {
    delete premapper;  // its thread is the parent's: this must not wait for it
    ::_exit(0);
  }
  int status = 0;
  bool exited = eventually([&] { return ::waitpid(child, &status, WNOHANG) == child; });
  if (!exited) {
    ::kill(child, SIGKILL);
    ::waitpid(child, &status, 0);
  }
  CHECK(exited);
  CHECK((WIFEXITED(status) && WEXITSTATUS(status) == 0));
  delete premapper;
}

}  // namespace
}  // namespace sluice::shm
