#include "shm/futex.h"

#include <linux/futex.h>
#include <linux/membarrier.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include <climits>
#include <mutex>

namespace sluice::shm {

namespace detail {
bool g_heavy_barrier_available = false;
}

namespace {

long membarrier(int cmd) {
  return ::syscall(__NR_membarrier, cmd, 0, 0);
}

std::once_flag g_register_once;

}  // namespace

bool register_for_heavy_barrier() noexcept {
  std::call_once(g_register_once, [] {
    long supported = membarrier(MEMBARRIER_CMD_QUERY);
    if (supported < 0 || (supported & MEMBARRIER_CMD_GLOBAL_EXPEDITED) == 0) return;
    if (membarrier(MEMBARRIER_CMD_REGISTER_GLOBAL_EXPEDITED) != 0) return;
    detail::g_heavy_barrier_available = true;
  });
  return detail::g_heavy_barrier_available;
}

bool heavy_barrier() noexcept {
  // A waiter in a process that never produced may not have registered yet; the query is
  // cheap and cached by call_once.
  static const bool supported = [] {
    long s = membarrier(MEMBARRIER_CMD_QUERY);
    return s >= 0 && (s & MEMBARRIER_CMD_GLOBAL_EXPEDITED) != 0;
  }();
  full_fence();
  if (!supported) return false;
  return membarrier(MEMBARRIER_CMD_GLOBAL_EXPEDITED) == 0;
}

void futex_wait(std::atomic<std::uint32_t>* word, std::uint32_t expected,
                std::int64_t timeout_ns) noexcept {
  timespec ts{};
  timespec* tsp = nullptr;
  if (timeout_ns >= 0) {
    ts.tv_sec = timeout_ns / 1'000'000'000;
    ts.tv_nsec = timeout_ns % 1'000'000'000;
    tsp = &ts;
  }
  // FUTEX_WAIT (not _PRIVATE): the word lives in a MAP_SHARED file mapping.
  ::syscall(SYS_futex, reinterpret_cast<std::uint32_t*>(word), FUTEX_WAIT, expected, tsp, nullptr,
            0);
}

void futex_wake_all(std::atomic<std::uint32_t>* word) noexcept {
  ::syscall(SYS_futex, reinterpret_cast<std::uint32_t*>(word), FUTEX_WAKE, INT_MAX, nullptr,
            nullptr, 0);
}

}  // namespace sluice::shm
