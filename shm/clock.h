// Wall-clock time for record timestamps. Both functions read the vDSO, no system call.
//
// Thread-safety: pure functions.
#pragma once

#include <time.h>

#include <cstdint>

namespace sluice::shm {

// Nanoseconds since the Unix epoch (CLOCK_REALTIME): comparable across processes.
inline std::int64_t wall_clock_ns() noexcept {
  timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return std::int64_t{ts.tv_sec} * 1'000'000'000 + ts.tv_nsec;
}

// The same clock at the kernel tick's resolution (1-4 ms), several times cheaper.
inline std::int64_t coarse_wall_clock_ns() noexcept {
  timespec ts;
  clock_gettime(CLOCK_REALTIME_COARSE, &ts);
  return std::int64_t{ts.tv_sec} * 1'000'000'000 + ts.tv_nsec;
}

// Monotonic nanoseconds, for timeouts.
inline std::int64_t monotonic_ns() noexcept {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return std::int64_t{ts.tv_sec} * 1'000'000'000 + ts.tv_nsec;
}

}  // namespace sluice::shm
