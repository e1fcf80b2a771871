// Helpers shared by the tests of tests/core/ (broker_test_support.h, gateway/
// gateway_test_support.h): Result unwrapping, clocks and polling, and scratch data
// directories under /dev/shm, one per test, removed at the end (and those of test processes
// that died, at the first use).
#pragma once

#include <signal.h>
#include <unistd.h>

#include <atomic>
#include <catch2/catch.hpp>
#include <cerrno>
#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <functional>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "shm/clock.h"
#include "sluice/status.h"

namespace sluice::core_test {

template <class T>
T must(Result<T> r) {
  INFO(r.status().message());
  REQUIRE(r.is_ok());
  return std::move(r).value();
}

inline std::int64_t now_ns() {
  return shm::monotonic_ns();
}
inline std::int64_t now_ms() {
  return shm::monotonic_ns() / 1'000'000;
}
inline void sleep_ms(std::int64_t ms) {
  std::this_thread::sleep_for(std::chrono::milliseconds(ms));
}

// Polls `done` every few ms until it holds or `timeout_ms` passes; returns the last answer.
inline bool poll_until(const std::function<bool()>& done, std::int64_t timeout_ms) {
  std::int64_t deadline = now_ms() + timeout_ms;
  for (;;) {
    if (done()) return true;
    if (now_ms() > deadline) return false;
    sleep_ms(5);
  }
}

// /dev/shm/<prefix><pid>-<n>-<test name>: one data directory per test. The name stays short
// enough for a Unix socket path (108 bytes) below it.
class ScratchDataDir {
 public:
  explicit ScratchDataDir(std::string prefix) : prefix_(std::move(prefix)) {
    static std::atomic<int> counter{0};
    remove_dead_runs(prefix_);
    std::string clean;
    for (char c : Catch::getResultCapture().getCurrentTestName()) {
      bool keep = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
      clean += keep ? c : '_';
      if (clean.size() >= 40) break;
    }
    path_ = "/dev/shm/" + prefix_ + std::to_string(::getpid()) + "-" +
            std::to_string(counter.fetch_add(1)) + "-" + clean;
    std::filesystem::remove_all(path_);
    std::filesystem::create_directories(path_);
  }
  ~ScratchDataDir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  ScratchDataDir(const ScratchDataDir&) = delete;
  ScratchDataDir& operator=(const ScratchDataDir&) = delete;

  const std::string& path() const { return path_; }

 private:
  // Data directories (and logs) left by test processes that crashed: once per prefix and
  // process.
  static void remove_dead_runs(const std::string& prefix) {
    static std::vector<std::string> swept;
    for (const auto& p : swept)
      if (p == prefix) return;
    swept.push_back(prefix);
    std::vector<std::filesystem::path> dead;
    std::error_code ec;
    for (const auto& e : std::filesystem::directory_iterator("/dev/shm", ec)) {
      std::string name = e.path().filename().string();
      if (name.compare(0, prefix.size(), prefix) != 0) continue;
      long pid = std::strtol(name.c_str() + prefix.size(), nullptr, 10);
      if (pid <= 0 || (::kill(static_cast<pid_t>(pid), 0) != 0 && errno == ESRCH))
        dead.push_back(e.path());
    }
    for (const auto& path : dead) std::filesystem::remove_all(path, ec);
  }

  std::string prefix_;
  std::string path_;
};

}  // namespace sluice::core_test
