#include "shm/futex.h"

#include <linux/futex.h>
#include <linux/membarrier.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
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

bool futex_wait_any(std::span<std::atomic<std::uint32_t>* const> words,
                    std::span<const std::uint32_t> expected, std::int64_t timeout_ns) noexcept {
#ifdef SYS_futex_waitv
  // Set once the kernel answers ENOSYS; it will not learn the call later.
  static std::atomic<bool> missing{false};
  if (missing.load(std::memory_order_relaxed)) return false;
  futex_waitv waiters[kMaxWaitAnyWords] = {};
  const std::size_t n = std::min({words.size(), expected.size(), kMaxWaitAnyWords});
  for (std::size_t i = 0; i < n; ++i) {
    waiters[i].val = expected[i];
    waiters[i].uaddr = reinterpret_cast<std::uintptr_t>(words[i]);
    waiters[i].flags = FUTEX_32;  // no FUTEX_PRIVATE_FLAG: the words are in MAP_SHARED files
  }
  // futex_waitv takes an absolute deadline on the clock it is given.
  timespec deadline{};
  timespec* dp = nullptr;
  if (timeout_ns >= 0) {
    clock_gettime(CLOCK_MONOTONIC, &deadline);
    std::int64_t ns = deadline.tv_nsec + timeout_ns % 1'000'000'000;
    deadline.tv_sec += timeout_ns / 1'000'000'000 + ns / 1'000'000'000;
    deadline.tv_nsec = ns % 1'000'000'000;
    dp = &deadline;
  }
  long r = ::syscall(SYS_futex_waitv, waiters, static_cast<unsigned>(n), 0u, dp, CLOCK_MONOTONIC);
  if (r < 0 && errno == ENOSYS) {
    missing.store(true, std::memory_order_relaxed);
    return false;
  }
  return true;  // woken, a word already differed (EAGAIN), timed out, or interrupted
#else
  (void)words;
  (void)expected;
  (void)timeout_ns;
  return false;
#endif
}

bool futex_wait_any_supported() noexcept {
  // A word that already differs from the value given: futex_waitv returns at once (EAGAIN).
  static const bool supported = [] {
    std::atomic<std::uint32_t> word{0};
    std::atomic<std::uint32_t>* words[] = {&word};
    const std::uint32_t expected[] = {1};
    return futex_wait_any(words, expected, 0);
  }();
  return supported;
}

void futex_wake_all(std::atomic<std::uint32_t>* word) noexcept {
  ::syscall(SYS_futex, reinterpret_cast<std::uint32_t*>(word), FUTEX_WAKE, INT_MAX, nullptr,
            nullptr, 0);
}

}  // namespace sluice::shm
