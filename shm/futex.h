// Futex waits on words in shared mappings, and the asymmetric barrier that lets a producer
// skip the wake-up system call when nobody waits.
//
// The lost-wake-up problem: a reader sets "I wait" then re-checks for data; a producer
// writes data then checks "anyone waiting?". Both need a store-load fence, or each can miss
// the other. A full fence on every append would cost the producer ~20-40 cycles, so the
// producer uses light_barrier() (a compiler fence) and the rare waiter pays with
// heavy_barrier(), which is membarrier(MEMBARRIER_CMD_GLOBAL_EXPEDITED): it runs a full fence
// on every CPU running a thread of a registered process. Where the kernel refuses that, the
// producer falls back to a real fence.
//
// Thread-safety: all functions are safe from any thread.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <span>

namespace sluice::shm {

namespace detail {
extern bool g_heavy_barrier_available;
}

// Registers this process for heavy_barrier(); returns whether the kernel supports it. Called
// once by anything that publishes into a log (the LogAppender does it).
bool register_for_heavy_barrier() noexcept;

// A full (store-load) fence. GCC refuses std::atomic_thread_fence under -fsanitize=thread
// (TSan does not model fences); there a seq_cst RMW of a thread-private word stands in: a
// full barrier on x86 (lock xadd) that adds no happens-before edge between threads.
inline void full_fence() noexcept {
#if defined(__SANITIZE_THREAD__)
  thread_local std::atomic<std::uint32_t> word{0};
  word.fetch_add(1, std::memory_order_seq_cst);
#else
  std::atomic_thread_fence(std::memory_order_seq_cst);
#endif
}

// The producer's half: after publishing data, before reading the waiters word.
inline void light_barrier() noexcept {
  if (detail::g_heavy_barrier_available) {
    std::atomic_signal_fence(std::memory_order_seq_cst);
  } else {
    full_fence();
  }
}

// The waiter's half: after announcing itself, before re-checking for data. Returns false if
// no cross-process barrier could be run; the caller must then wait with a short timeout.
bool heavy_barrier() noexcept;

// Sleeps while *word == expected, at most timeout_ns (< 0: no limit). Shared futex: works on
// MAP_SHARED memory across processes. Returns on wake-up, timeout, signal or spurious wake.
void futex_wait(std::atomic<std::uint32_t>* word, std::uint32_t expected,
                std::int64_t timeout_ns) noexcept;

// The most words futex_wait_any takes (the kernel's FUTEX_WAITV_MAX).
inline constexpr std::size_t kMaxWaitAnyWords = 128;

// Sleeps while words[i] == expected[i] for every i, at most timeout_ns (< 0: no limit), on
// futex_waitv (Linux 5.16+): a wake on any word ends it. At most kMaxWaitAnyWords words.
// Returns false, without sleeping, where the kernel has no futex_waitv; the caller must then
// wait on one word with a short timeout. Shared futexes, as futex_wait.
bool futex_wait_any(std::span<std::atomic<std::uint32_t>* const> words,
                    std::span<const std::uint32_t> expected, std::int64_t timeout_ns) noexcept;

// Whether this kernel has futex_waitv (futex_wait_any sleeps there, rather than returning
// false).
bool futex_wait_any_supported() noexcept;

// Wakes every thread sleeping on word.
void futex_wake_all(std::atomic<std::uint32_t>* word) noexcept;

}  // namespace sluice::shm
