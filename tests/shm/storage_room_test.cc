// shm/storage_room: the memory reserve of RAM-backed data directories, and create_file's
// refusal to eat into it.
#include "shm/storage_room.h"

#include <sys/statfs.h>

#include <catch2/catch.hpp>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <optional>
#include <string>

#include "shm/mapped_file.h"
#include "test_support.h"

using namespace sluice;
using namespace sluice::shm;
using test::TempDir;

namespace {

constexpr std::uint64_t kMiB = 1 << 20;

// Sets SLUICE_MIN_FREE_MEMORY for its lifetime, then puts back what was there.
class ReserveSetting {
 public:
  explicit ReserveSetting(const char* value) {
    if (const char* old = std::getenv(kName)) old_ = old;
    ::setenv(kName, value, 1);
  }
  ~ReserveSetting() {
    if (old_)
      ::setenv(kName, old_->c_str(), 1);
    else
      ::unsetenv(kName);
  }
  ReserveSetting(const ReserveSetting&) = delete;
  ReserveSetting& operator=(const ReserveSetting&) = delete;

 private:
  static constexpr const char* kName = "SLUICE_MIN_FREE_MEMORY";
  std::optional<std::string> old_;
};

}  // namespace

TEST_CASE("storage room: the memory reserve is 1/16 of the RAM within 64 MiB..1 GiB by default",
          "[unit]") {
  ReserveSetting unset("");  // empty: the default
  auto reserve = memory_reserve_bytes();
  REQUIRE(reserve);
  CHECK(*reserve >= 64 * kMiB);
  CHECK(*reserve <= 1024 * kMiB);
}

TEST_CASE("storage room: SLUICE_MIN_FREE_MEMORY sets the reserve and is checked", "[unit]") {
  struct Case {
    const char* text;
    std::optional<std::uint64_t> bytes;
  };
  for (const Case& c :
       {Case{"0", 0}, Case{"4096", 4096}, Case{"512M", 512 * kMiB}, Case{"2g", 2048 * kMiB},
        Case{"3K", 3072}, Case{"abc", std::nullopt}, Case{"-1", std::nullopt},
        Case{"12T", std::nullopt}, Case{"1M5", std::nullopt},
        Case{"99999999999999999999", std::nullopt}, Case{"17179869184G", std::nullopt}}) {
    INFO(c.text);
    ReserveSetting set(c.text);
    auto reserve = memory_reserve_bytes();
    if (c.bytes) {
      REQUIRE(reserve);
      CHECK(*reserve == *c.bytes);
    } else {
      REQUIRE_FALSE(reserve);
      CHECK(reserve.status().code() == ErrorCode::kInvalidArgument);
      CHECK_THAT(reserve.status().message(),
                 Catch::Contains("SLUICE_MIN_FREE_MEMORY") && Catch::Contains(c.text));
    }
  }
}

TEST_CASE("storage room: a tmpfs directory is memory and says how much is available", "[unit]") {
  TempDir tmp;  // in /dev/shm
  auto room = storage_room(tmp.path());
  REQUIRE(room);
  CHECK(room->ram_backed);
  CHECK(std::string(room->file_system) == "tmpfs");
  CHECK(room->memory_available > 0);
  CHECK(room->free_bytes > 0);
  CHECK(check_storage_room(tmp.path(), 4096, "x"));

  auto missing = storage_room(tmp.path() + "/no/such/dir");
  REQUIRE_FALSE(missing);
  CHECK_THAT(missing.status().message(), Catch::Contains("no/such/dir"));
}

TEST_CASE("storage room: create_file refuses a file that would eat into the memory reserve",
          "[unit]") {
  TempDir tmp;
  const std::string path = tmp.path() + "/f.seg";
  {
    ReserveSetting huge("1048576G");  // 1 PiB: more than any machine has
    Status s = create_file(path, 1 << 20, 0640);
    REQUIRE_FALSE(s);
    CHECK(s.code() == ErrorCode::kIo);
    CHECK_THAT(s.message(), Catch::Contains(path) && Catch::Contains("not enough memory") &&
                                Catch::Contains("tmpfs") &&
                                Catch::Contains("SLUICE_MIN_FREE_MEMORY"));
    CHECK_FALSE(file_exists(path));
  }
  {
    ReserveSetting off("0");
    CHECK(create_file(path, 1 << 20, 0640));
    CHECK(file_exists(path));
  }
  // A bad setting is an error that names it, not a file made without the check.
  ReserveSetting bad("lots");
  Status s = create_file(path + "2", 4096, 0640);
  REQUIRE_FALSE(s);
  CHECK_THAT(s.message(), Catch::Contains("lots"));
  CHECK_FALSE(file_exists(path + "2"));
}

TEST_CASE("storage room: more than the file system's free space is refused up front", "[unit]") {
  TempDir tmp;
  auto room = storage_room(tmp.path());
  REQUIRE(room);
  ReserveSetting off("0");
  Status s = check_storage_room(tmp.path(), room->free_bytes + (1ull << 40), "topic t");
  REQUIRE_FALSE(s);
  CHECK(s.code() == ErrorCode::kIo);
  CHECK_THAT(s.message(), Catch::StartsWith("topic t: no space left on the device"));
}

namespace {

// A fake /proc/self/cgroup and /sys/fs/cgroup under a scratch directory.
struct FakeCgroups {
  TempDir tmp;
  std::string proc = tmp.path() + "/cgroup";
  std::string root = tmp.path() + "/sys";
  void write(const std::string& path, const std::string& text) const {
    std::filesystem::create_directories(std::filesystem::path(path).parent_path());
    std::ofstream(path) << text;
  }
};

}  // namespace

TEST_CASE("storage room: a cgroup v2 limit of the process or of an ancestor bounds the memory",
          "[unit]") {
  FakeCgroups f;
  f.write(f.proc, "0::/kubepods/pod1/c1\n");
  const std::string pod = f.root + "/kubepods/pod1";
  f.write(pod + "/c1/memory.max", "max\n");  // the container: no limit of its own
  f.write(pod + "/c1/memory.current", std::to_string(100 * kMiB) + "\n");
  f.write(pod + "/memory.max", std::to_string(2048 * kMiB) + "\n");  // the pod: 2 GiB
  f.write(pod + "/memory.current", std::to_string(1536 * kMiB) + "\n");
  f.write(pod + "/memory.stat", "anon 1\ninactive_file " + std::to_string(500 * kMiB) + "\n");
  f.write(f.root + "/kubepods/memory.max", "max\n");
  f.write(f.root + "/kubepods/memory.current", "1\n");
  auto m = cgroup_memory(f.proc, f.root);
  REQUIRE(m);
  CHECK(m->limit == 2048 * kMiB);
  CHECK(m->available == (2048 - (1536 - 500)) * kMiB);  // inactive file pages do not count

  // A tighter limit further down wins.
  f.write(pod + "/c1/memory.max", std::to_string(512 * kMiB) + "\n");
  m = cgroup_memory(f.proc, f.root);
  REQUIRE(m);
  CHECK(m->limit == 512 * kMiB);
  CHECK(m->available == 412 * kMiB);

  // Usage above the limit leaves nothing.
  f.write(pod + "/c1/memory.current", std::to_string(600 * kMiB) + "\n");
  m = cgroup_memory(f.proc, f.root);
  REQUIRE(m);
  CHECK(m->available == 0);
}

TEST_CASE("storage room: a cgroup v1 memory limit is read and an unlimited one is none", "[unit]") {
  FakeCgroups f;
  // The cgroup's own path is not mounted (a container sees its cgroup at the root).
  f.write(f.proc, "5:cpu,cpuacct:/docker/abc\n4:memory:/docker/abc\n0::/\n");
  const std::string mem = f.root + "/memory";
  f.write(mem + "/memory.limit_in_bytes", std::to_string(1024 * kMiB) + "\n");
  f.write(mem + "/memory.usage_in_bytes", std::to_string(900 * kMiB) + "\n");
  f.write(mem + "/memory.stat",
          "cache 5\ntotal_inactive_file " + std::to_string(100 * kMiB) + "\n");
  auto m = cgroup_memory(f.proc, f.root);
  REQUIRE(m);
  CHECK(m->limit == 1024 * kMiB);
  CHECK(m->available == 224 * kMiB);

  f.write(mem + "/memory.limit_in_bytes", "9223372036854771712\n");  // v1's "no limit"
  CHECK_FALSE(cgroup_memory(f.proc, f.root));
  CHECK_FALSE(cgroup_memory(f.proc + ".missing", f.root));
  f.write(f.proc, "0::/\n");  // v2, nothing mounted
  CHECK_FALSE(cgroup_memory(f.proc, f.root));
}
