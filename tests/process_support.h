// Child processes for tests that fork (shm, offsets table, broker): one copy for every test
// binary. Call from the test's main thread only (they REQUIRE and FAIL through Catch2).
#pragma once

#include <signal.h>
#include <sys/mman.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <functional>
#include <iostream>
#include <new>
#include <thread>

namespace sluice::test_process {

// Runs fn in a child process, which exits with fn's result (99 on an exception) through
// _exit: no destructors, no Catch reporting in the child.
inline pid_t spawn(const std::function<int()>& fn) {
  std::cout.flush();
  std::cerr.flush();
  std::fflush(nullptr);
  pid_t pid = ::fork();
  REQUIRE(pid >= 0);
  if (pid == 0) {
    int code = 1;
    try {
      code = fn();
    } catch (...) {
      code = 99;
    }
    ::_exit(code);
  }
  return pid;
}

// Waits for a child; returns its exit code, or 128 + signal. Kills it (and fails) after
// `timeout_ns`.
inline int wait_child(pid_t pid, std::int64_t timeout_ns = 120'000'000'000) {
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::nanoseconds(timeout_ns);
  for (;;) {
    int status = 0;
    pid_t r = ::waitpid(pid, &status, WNOHANG);
    REQUIRE(r >= 0);
    if (r == pid) {
      if (WIFEXITED(status)) return WEXITSTATUS(status);
      if (WIFSIGNALED(status)) return 128 + WTERMSIG(status);
      return -1;
    }
    if (std::chrono::steady_clock::now() > deadline) {
      ::kill(pid, SIGKILL);
      ::waitpid(pid, &status, 0);
      FAIL("child " << pid << " did not finish in time");
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
}

// A T in memory shared with the children forked after it (MAP_SHARED | MAP_ANONYMOUS), for
// what they report back to the test; unmapped when it goes out of scope.
template <class T>
class SharedWithChildren {
 public:
  SharedWithChildren() {
    void* p = ::mmap(nullptr, sizeof(T), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    REQUIRE(p != MAP_FAILED);
    value_ = new (p) T;
  }
  ~SharedWithChildren() {
    value_->~T();
    ::munmap(value_, sizeof(T));
  }
  SharedWithChildren(const SharedWithChildren&) = delete;
  SharedWithChildren& operator=(const SharedWithChildren&) = delete;

  T& operator*() const { return *value_; }
  T* operator->() const { return value_; }

 private:
  T* value_ = nullptr;
};

}  // namespace sluice::test_process
