// What the parts of bench/log_bench share (log_bench.cc has the overview): fatal errors that
// clean up, TSC timing and one-way latency counters, temporary directories, objects shared
// with a forked peer, and the pieces of benchmark names.
#pragma once

#include <benchmark/benchmark.h>
#include <sched.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>
#include <x86intrin.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <functional>
#include <memory>
#include <new>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "shm/clock.h"
#include "shm/crc32c.h"
#include "shm/log_appender.h"
#include "shm/log_reader.h"
#include "shm/mapped_file.h"
#include "shm/partition_log.h"
#include "shm/tsc_clock.h"
#include "tools/cpu_pinning.h"

namespace log_bench {

using sluice::Result;
using sluice::Status;
using namespace sluice::shm;
using sluice::tools::cpu_count;
using sluice::tools::pin_to_cpu;
using Clock = std::chrono::steady_clock;

// The temporary directory of the benchmark running now, removed by fatal().
inline std::string g_current_dir;

[[noreturn]] inline void fatal(const std::string& what) {
  std::fprintf(stderr, "log_bench: %s\n", what.c_str());
  std::fflush(stderr);
  if (!g_current_dir.empty()) {
    std::error_code ec;
    std::filesystem::remove_all(g_current_dir, ec);
  }
  std::_Exit(2);
}

template <class T>
T must(Result<T> r, const std::string& what) {
  if (!r) fatal(what + ": " + r.status().message());
  return std::move(r).value();
}

inline void must(const Status& s, const std::string& what) {
  if (!s) fatal(what + ": " + s.message());
}

inline double seconds_between(Clock::time_point a, Clock::time_point b) {
  return std::chrono::duration<double>(b - a).count();
}

// Nanoseconds per TSC tick, measured once at start-up.
inline double g_ns_per_tick = 0;

inline void calibrate_tsc() {
  unsigned aux;
  auto t0 = Clock::now();
  std::uint64_t c0 = __rdtscp(&aux);
  std::this_thread::sleep_for(std::chrono::milliseconds(200));
  auto t1 = Clock::now();
  std::uint64_t c1 = __rdtscp(&aux);
  g_ns_per_tick = seconds_between(t0, t1) * 1e9 / static_cast<double>(c1 - c0);
}

inline std::uint64_t ticks() {
  unsigned aux;
  return __rdtscp(&aux);
}

// Sets p50/p90/p99/p99.9/max/mean counters (ns) from round-trip samples in TSC ticks, halved:
// one-way latency.
inline void report_one_way(benchmark::State& state, std::vector<std::uint64_t>& samples) {
  if (samples.empty()) return;
  std::sort(samples.begin(), samples.end());
  double scale = g_ns_per_tick / 2;
  auto at = [&](double q) {
    auto rank = static_cast<std::size_t>(q * static_cast<double>(samples.size()));
    if (rank >= samples.size()) rank = samples.size() - 1;
    return static_cast<double>(samples[rank]) * scale;
  };
  double sum = 0;
  for (std::uint64_t s : samples) sum += static_cast<double>(s);
  state.counters["p50_ns"] = at(0.50);
  state.counters["p90_ns"] = at(0.90);
  state.counters["p99_ns"] = at(0.99);
  state.counters["p99.9_ns"] = at(0.999);
  state.counters["max_ns"] = static_cast<double>(samples.back()) * scale;
  state.counters["mean_ns"] = sum / static_cast<double>(samples.size()) * scale;
}

inline std::string data_root() {
  const char* env = std::getenv("SLUICE_DATA_DIR");
  return env != nullptr && *env != '\0' ? env : "/dev/shm/sluice";
}

// A private directory under the data root, removed with everything in it.
class TempDir {
 public:
  explicit TempDir(const std::string& tag) {
    static int counter = 0;
    path_ = data_root() + "/bench-" + std::to_string(::getpid()) + "-" + tag + "-" +
            std::to_string(counter++);
    std::filesystem::remove_all(path_);
    std::filesystem::create_directories(path_);
    g_current_dir = path_;
  }
  ~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
    g_current_dir.clear();
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

// An object in a MAP_SHARED anonymous mapping: visible to a forked child.
template <class T>
class SharedObject {
 public:
  SharedObject() {
    void* p = ::mmap(nullptr, sizeof(T), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) fatal("mmap of a shared page failed");
    obj_ = new (p) T();
  }
  ~SharedObject() {
    obj_->~T();
    ::munmap(obj_, sizeof(T));
  }
  SharedObject(const SharedObject&) = delete;
  SharedObject& operator=(const SharedObject&) = delete;
  T* operator->() const { return obj_; }
  T& operator*() const { return *obj_; }

 private:
  T* obj_ = nullptr;
};

// Runs fn in a forked child (which exits with _exit, never returning into the benchmark
// library) or in a thread.
class Peer {
 public:
  Peer(bool as_process, std::function<void()> fn) {
    if (as_process) {
      std::fflush(nullptr);
      pid_ = ::fork();
      if (pid_ < 0) fatal("fork failed");
      if (pid_ == 0) {
        fn();
        std::_Exit(0);
      }
    } else {
      thread_ = std::thread(std::move(fn));
    }
  }
  ~Peer() { join(); }
  Peer(const Peer&) = delete;
  Peer& operator=(const Peer&) = delete;
  void join() {
    if (thread_.joinable()) thread_.join();
    if (pid_ > 0) {
      int status = 0;
      ::waitpid(pid_, &status, 0);
      pid_ = -1;
      if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) fatal("peer process failed");
    }
  }

 private:
  pid_t pid_ = -1;
  std::thread thread_;
};

struct alignas(kCacheLine) PaddedAtomic {
  std::atomic<std::int64_t> v{0};
};

// ---- pieces of benchmark names

inline std::string size_name(std::uint32_t bytes) {
  if (bytes >= (1u << 10) && bytes % (1u << 10) == 0) return std::to_string(bytes >> 10) + "KiB";
  return std::to_string(bytes) + "B";
}

inline const char* ts_name(TimestampMode m, bool given) {
  if (given) return "given";
  switch (m) {
    case TimestampMode::kWallClock:
      return "wall";
    case TimestampMode::kCoarse:
      return "coarse";
    case TimestampMode::kPerBatch:
      return "per_batch";
  }
  return "?";
}

// Each part registers its benchmarks, in this order (log_bench.cc's main).
void register_reference_benchmarks();   // log_bench_refs.cc
void register_throughput_benchmarks();  // log_bench_throughput.cc
void register_latency_benchmarks();     // log_bench_latency.cc

}  // namespace log_bench
