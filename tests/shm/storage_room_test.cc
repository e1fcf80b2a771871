// shm/storage_room: the memory reserve of RAM-backed data directories, and create_file's
// refusal to eat into it.
#include "shm/storage_room.h"

#include <sys/statfs.h>

#include <catch2/catch.hpp>
#include <cstdlib>
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
