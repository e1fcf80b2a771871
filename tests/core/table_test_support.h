// Helpers for the tests of the shared table, the offsets table and the group coordinator:
// results, scratch directories under /dev/shm, child processes, raw file pokes.
#pragma once

#include <fcntl.h>
#include <signal.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <catch2/catch.hpp>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <functional>
#include <iostream>
#include <string>
#include <string_view>
#include <thread>
#include <utility>

#include "process_support.h"
#include "shm/clock.h"
#include "sluice/status.h"

namespace sluice::test {

#define CORE_REQUIRE_OK(expr)                    \
  do {                                           \
    ::sluice::Status require_ok_status = (expr); \
    INFO(require_ok_status.message());           \
    REQUIRE(require_ok_status.is_ok());          \
  } while (false)

template <class T>
T ok(Result<T> r) {
  INFO(r.status().message());
  REQUIRE(r.is_ok());
  return std::move(r).value();
}

// 1 normally; 20 with SLUICE_STRESS=1.
inline int stress_scale() {
  const char* v = std::getenv("SLUICE_STRESS");
  return v != nullptr && std::string_view(v) == "1" ? 20 : 1;
}

// /dev/shm/sluice-core-test-<pid>-<n>-<test name>: one per test, removed at the end.
class ScratchDir {
 public:
  ScratchDir() {
    static std::atomic<int> counter{0};
    std::string clean;
    for (char c : Catch::getResultCapture().getCurrentTestName()) {
      bool keep = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
      clean += keep ? c : '_';
      if (clean.size() >= 50) break;
    }
    path_ = "/dev/shm/sluice-core-test-" + std::to_string(::getpid()) + "-" +
            std::to_string(counter.fetch_add(1)) + "-" + clean;
    std::filesystem::remove_all(path_);
    std::filesystem::create_directories(path_);
  }
  ~ScratchDir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  ScratchDir(const ScratchDir&) = delete;
  ScratchDir& operator=(const ScratchDir&) = delete;
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

using test_process::spawn;
using test_process::wait_child;

// pwrite/pread at a byte position of a file, REQUIREing success.
inline void poke(const std::string& path, std::uint64_t position, const void* data,
                 std::size_t size) {
  int fd = ::open(path.c_str(), O_RDWR | O_CLOEXEC);
  REQUIRE(fd >= 0);
  ssize_t n = ::pwrite(fd, data, size, static_cast<off_t>(position));
  ::close(fd);
  REQUIRE(n == static_cast<ssize_t>(size));
}

inline void peek(const std::string& path, std::uint64_t position, void* data, std::size_t size) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  REQUIRE(fd >= 0);
  ssize_t n = ::pread(fd, data, size, static_cast<off_t>(position));
  ::close(fd);
  REQUIRE(n == static_cast<ssize_t>(size));
}

}  // namespace sluice::test
