#include "tools/perf_shared.h"

#include <time.h>
#include <unistd.h>
#include <x86intrin.h>

#include <cerrno>

#include "shm/clock.h"

namespace sluice::tools::perf {

PerfShared* g_shared = nullptr;

namespace {

void sleep_until_realtime(std::int64_t ns) {
  timespec ts;
  ts.tv_sec = static_cast<time_t>(ns / 1'000'000'000);
  ts.tv_nsec = static_cast<long>(ns % 1'000'000'000);
  while (::clock_nanosleep(CLOCK_REALTIME, TIMER_ABSTIME, &ts, nullptr) == EINTR) {
    if (g_shared != nullptr && g_shared->stop.load(std::memory_order_relaxed) != 0) return;
  }
}

}  // namespace

void wait_until(std::int64_t ns, const std::atomic<int>& stop) {
  for (;;) {
    std::int64_t now = wall_clock_ns();
    if (now >= ns || stop.load(std::memory_order_relaxed) != 0) return;
    if (ns - now > kSleepAboveNs) {
      sleep_until_realtime(ns - kWakeEarlyNs);
    } else {
      _mm_pause();
    }
  }
}

}  // namespace sluice::tools::perf
