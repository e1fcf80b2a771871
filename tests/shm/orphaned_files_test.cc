// Files that processes which died left behind: finding their pid in a private name, and
// removing them from a directory and from a partition, never a live process's file.
#include "shm/orphaned_files.h"

#include <unistd.h>

#include <algorithm>
#include <catch2/catch.hpp>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "process_support.h"
#include "shm/partition_log.h"
#include "shm/test_support.h"

namespace sluice::shm {
namespace {

using test::TempDir;
using test::unwrap;

// The pid of a process that has exited and been reaped.
std::int64_t dead_pid() {
  pid_t pid = test_process::spawn([] { return 0; });
  REQUIRE(test_process::wait_child(pid) == 0);
  REQUIRE(process_gone(pid));
  return pid;
}

void touch(const std::string& path) {
  std::ofstream out(path);
  out << "x";
  REQUIRE(out);
}

std::vector<std::string> sorted(std::vector<std::string> v) {
  std::sort(v.begin(), v.end());
  return v;
}

TEST_CASE("orphaned files: pid_after reads the pid after the marker and nothing else",
          "[unit][orphans]") {
  CHECK(pid_after("new-1234-0-99.tmp", "new-") == 1234);
  CHECK(pid_after("orders~tmp-77-123456", "~tmp-") == 77);
  CHECK(pid_after("topic.json.tmp-5-6", ".tmp-") == 5);
  CHECK(pid_after("a.tmp-1-2.tmp-42-3", ".tmp-") == 42);   // the last marker
  CHECK(pid_after("new-1234.tmp", "new-") == 0);           // no '-' after the digits
  CHECK(pid_after("new--1-2.tmp", "new-") == 0);           // no digits
  CHECK(pid_after("new-12345678901-2.tmp", "new-") == 0);  // too long for a pid
  CHECK(pid_after("spare.seg", "new-") == 0);
  CHECK(pid_after("new-", "new-") == 0);
}

TEST_CASE("orphaned files: process_gone is false for this process and for pid 1, true once reaped",
          "[process][orphans]") {
  CHECK_FALSE(process_gone(::getpid()));
  CHECK_FALSE(process_gone(1));  // alive, or not ours to signal: never counted gone
  CHECK_FALSE(process_gone(0));
  CHECK_FALSE(process_gone(-5));
  CHECK(process_gone(dead_pid()));
}

TEST_CASE("orphaned files: remove_orphans removes entries of dead pids and keeps the rest",
          "[process][orphans]") {
  TempDir dir;
  const std::string dead = std::to_string(dead_pid());
  const std::string self = std::to_string(::getpid());
  touch(dir.path() + "/x.tmp-" + dead + "-1");
  std::filesystem::create_directories(dir.path() + "/d.tmp-" + dead + "-2/inner");
  touch(dir.path() + "/d.tmp-" + dead + "-2/inner/file");
  touch(dir.path() + "/y.tmp-" + self + "-3");  // this process's
  touch(dir.path() + "/z.tmp-1-4");             // a live process's
  touch(dir.path() + "/plain");                 // no pid in its name
  auto pid_in = [](std::string_view n) { return pid_after(n, ".tmp-"); };
  // find_orphans names them, with their pids, and removes nothing.
  auto found = unwrap(find_orphans(dir.path(), pid_in));
  std::vector<std::string> found_names;
  for (const Orphan& o : found) {
    found_names.push_back(o.name);
    CHECK(std::to_string(o.pid) == dead);
  }
  CHECK(sorted(found_names) ==
        std::vector<std::string>{"d.tmp-" + dead + "-2", "x.tmp-" + dead + "-1"});
  CHECK(std::filesystem::exists(dir.path() + "/x.tmp-" + dead + "-1"));
  auto removed = unwrap(remove_orphans(dir.path(), pid_in));
  CHECK(sorted(removed) ==
        std::vector<std::string>{"d.tmp-" + dead + "-2", "x.tmp-" + dead + "-1"});
  CHECK_FALSE(std::filesystem::exists(dir.path() + "/x.tmp-" + dead + "-1"));
  CHECK_FALSE(std::filesystem::exists(dir.path() + "/d.tmp-" + dead + "-2"));
  CHECK(std::filesystem::exists(dir.path() + "/y.tmp-" + self + "-3"));
  CHECK(std::filesystem::exists(dir.path() + "/z.tmp-1-4"));
  CHECK(std::filesystem::exists(dir.path() + "/plain"));
  CHECK_FALSE(remove_orphans(dir.path() + "/missing", [](std::string_view) { return 0; }));
}

TEST_CASE("orphaned files: a partition's private files of dead processes go and its segments stay",
          "[process][orphans]") {
  TempDir dir;
  auto log = unwrap(PartitionLog::create(dir.partition(), test::small_segments()));
  auto appender = unwrap(LogAppender::open(log));
  test::append_ok(appender, "kept");
  REQUIRE_OK(log->prepare_next());
  const std::string p = dir.partition() + "/";
  const std::string dead = std::to_string(dead_pid());
  const std::string self = std::to_string(::getpid());
  const std::vector<std::string> orphans = {"new-" + dead + "-0-11.tmp",
                                            "rolling-" + dead + "-1-12.tmp",
                                            "recycle-" + dead + "-2-13.tmp"};
  for (const auto& n : orphans) touch(p + n);
  const std::vector<std::string> kept = {"new-" + self + "-3-14.tmp", "rolling-1-4-15.tmp",
                                         "notes-" + dead + "-5.tmp", "new-" + dead + "-6-16"};
  for (const auto& n : kept) touch(p + n);

  std::vector<std::string> found;
  for (const Orphan& o : unwrap(find_orphans(dir.partition(), PartitionLog::transient_file_pid)))
    found.push_back(o.name);
  CHECK(sorted(found) == sorted(orphans));
  CHECK(sorted(unwrap(log->remove_orphaned_files())) == sorted(orphans));
  for (const auto& n : orphans) CHECK_FALSE(std::filesystem::exists(p + n));
  for (const auto& n : kept) CHECK(std::filesystem::exists(p + n));
  CHECK(log->has_spare());
  CHECK(unwrap(log->segment_bases()) == std::vector<std::int64_t>{0});
  CHECK(unwrap(log->remove_orphaned_files()).empty());

  LogOptions read_only;
  read_only.access = Access::kReadOnly;
  auto reader = unwrap(PartitionLog::open(dir.partition(), read_only));
  CHECK_FALSE(reader->remove_orphaned_files());
}

}  // namespace
}  // namespace sluice::shm
