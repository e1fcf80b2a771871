// TscWallClock: CLOCK_REALTIME in nanoseconds, read from the CPU's time-stamp counter, for
// the record timestamps that appends take (TimestampMode::kWallClock and kPerBatch).
//
// Why: a record's timestamp is read between its reservation and its commit, so the read is
// on the one-way latency path. clock_gettime(CLOCK_REALTIME) through the vDSO costs 23.5 ns on
// the AMD EPYC host of docs/benchmarks.md (an ordered TSC read, a sequence-counted read of
// the kernel's clock data, a scaling); a plain RDTSC and one multiply cost about 10.
//
// How: each clock keeps a base pair (TSC, realtime ns) and a scale (ns per tick, fixed point
// 32.32). A read is base_ns + ((tsc - base_tsc) * mult >> 32). When a read finds the base
// older than the current period, it takes a fresh pair from clock_gettime (the
// recalibration, about 50 ns) and starts a new period from it:
//
//   period    2^18 ticks at first, doubling at each recalibration up to 2^25 (about 10 ms
//             at 3 GHz), so that the scale, estimated from an ever longer baseline, is good
//             enough for the period it is used over.
//   scale     (realtime - anchor_ns) / (tsc - anchor_tsc) from the clock's anchor pair (its
//             first, moved up every 2^34 ticks so that it follows NTP's frequency changes),
//             seeded by two agreeing 100 us measurements made once per process.
//   steps     If the extrapolation ran ahead of realtime, the new period starts from where
//             it stands and runs slower, to meet realtime at the period's end: readings of
//             one clock never go backwards. If it ran behind, it jumps forward. A step of
//             the system clock (more than 1 ms either way) or a TSC that went backwards
//             (a migrated VM) resets the clock to the fresh pair, as CLOCK_REALTIME steps.
//
// Error: within about the pair's read jitter plus the scale's error over one period; on the
// hosts measured, within 1 us of clock_gettime (tests/shm/tsc_clock_test.cc brackets it).
//
// When: only where the kernel itself keeps time by the TSC (current clocksource "tsc") and
// the CPU says its TSC is constant (constant_tsc); then the counters of all CPUs agree.
// Elsewhere, or with SLUICE_TSC_CLOCK=0 in the environment, every read is clock_gettime.
//
// Thread-safety: one clock per thread (each LogAppender owns one). tsc_calibration() is safe
// from any thread.
#pragma once

#include <x86intrin.h>

#include <algorithm>
#include <cstdint>

#include "shm/clock.h"

namespace sluice::shm {

// For the products and quotients of the cold path (GCC's and Clang's 128-bit integer).
__extension__ typedef unsigned __int128 Uint128;

// The process's one-off measurement: whether the TSC may be used, and its ns per tick.
struct TscCalibration {
  bool usable = false;
  std::uint64_t mult = 0;  // ns per tick, << 32
};
const TscCalibration& tsc_calibration();

// The hardware: RDTSC (no fence: a timestamp a few ns early is as good) and clock_gettime.
struct HardwareTscSource {
  std::uint64_t ticks() const noexcept { return __rdtsc(); }
  std::int64_t realtime_ns() const noexcept { return wall_clock_ns(); }
  TscCalibration calibration() const { return tsc_calibration(); }
};

// A realtime reading with the TSC read on either side, and the TSC at its middle.
struct TscPair {
  std::uint64_t tsc;
  std::int64_t ns;
};

// The narrowest of up to `tries` pairs (an interrupt or a preemption between the reads widens
// one), stopping early at one narrower than `good_gap` ticks (0: always all the tries). Used
// by the process's calibration and by each clock's recalibrations.
template <class Source>
TscPair read_tsc_pair(const Source& source, int tries, std::uint64_t good_gap) noexcept {
  TscPair best{};
  std::uint64_t best_gap = ~std::uint64_t{0};
  for (int i = 0; i < tries; ++i) {
    std::uint64_t t0 = source.ticks();
    std::int64_t ns = source.realtime_ns();
    std::uint64_t t1 = source.ticks();
    std::uint64_t gap = t1 - t0;
    if (gap < best_gap) {
      best_gap = gap;
      best = {t0 + gap / 2, ns};
    }
    if (gap < good_gap) break;
  }
  return best;
}

template <class Source>
class BasicTscClock {
 public:
  static constexpr unsigned kShift = 32;
  static constexpr std::uint64_t kMinPeriodTicks = std::uint64_t{1} << 18;
  static constexpr std::uint64_t kMaxPeriodTicks = std::uint64_t{1} << 25;
  static constexpr std::uint64_t kAnchorTicks = std::uint64_t{1} << 34;
  // A disagreement larger than this between the extrapolation and realtime is a step of the
  // system clock (or of the TSC), not drift: follow it.
  static constexpr std::int64_t kStepNs = 1'000'000;
  // How far a pair's middle may be from the instant realtime was read (read_pair takes a
  // pair whose two TSC reads are at most 512 ticks apart, when it can), with room.
  static constexpr std::uint64_t kJitterTicks = 1024;

  explicit BasicTscClock(Source source = {}) : source_(source) {
    TscCalibration c = source_.calibration();
    usable_ = c.usable;
    if (usable_) reset(c.mult);
  }

  std::int64_t now() noexcept {
    if (!usable_) [[unlikely]]
      return source_.realtime_ns();
    // Unsigned: a TSC that went backwards gives a huge difference, which recalibrates.
    std::uint64_t elapsed = source_.ticks() - base_tsc_;
    if (elapsed >= period_ticks_) [[unlikely]]
      return recalibrate();
    // elapsed < 2^25 and mult < 2^34 (a TSC of at least 250 MHz): no overflow.
    return base_ns_ + static_cast<std::int64_t>((elapsed * mult_) >> kShift);
  }

  bool uses_tsc() const noexcept { return usable_; }

 private:
  using Pair = TscPair;

  // Up to 4 tries, stopping at a pair whose TSC reads are under 512 ticks apart.
  Pair read_pair() const noexcept { return read_tsc_pair(source_, 4, 512); }

  void reset(std::uint64_t mult) noexcept {
    Pair p = read_pair();
    anchor_ = p;
    base_tsc_ = p.tsc;
    base_ns_ = p.ns;
    mult_ = mult;
    estimate_ = mult;
    period_ticks_ = kMinPeriodTicks;
    disagreed_ = false;
  }

  static std::int64_t scaled(std::uint64_t ticks, std::uint64_t mult) noexcept {
    return static_cast<std::int64_t>((static_cast<Uint128>(ticks) * mult) >> kShift);
  }

  [[gnu::noinline]] std::int64_t recalibrate() noexcept {
    Pair p = read_pair();
    std::uint64_t since_base = p.tsc - base_tsc_;
    std::uint64_t since_anchor = p.tsc - anchor_.tsc;
    std::int64_t ns_since_anchor = p.ns - anchor_.ns;
    // A TSC that went backwards (the differences wrap past 2^63) or a realtime that did.
    if (static_cast<std::int64_t>(since_base) < 0 || static_cast<std::int64_t>(since_anchor) <= 0 ||
        ns_since_anchor <= 0) {
      reset(estimate_);
      return base_ns_;
    }
    // Where realtime should be by the measured scale: far from it, the system clock was set.
    std::int64_t expected = base_ns_ + scaled(since_base, estimate_);
    if (expected - p.ns > kStepNs || p.ns - expected > kStepNs) {
      reset(estimate_);
      return base_ns_;
    }
    // The latest reading this period may have handed out (now() recalibrates from
    // period_ticks_ on): the next period must not start below it.
    std::int64_t held = base_ns_ + scaled(period_ticks_, mult_);
    std::int64_t ahead = held - p.ns;
    std::uint64_t estimate = static_cast<std::uint64_t>(
        (static_cast<Uint128>(ns_since_anchor) << kShift) / since_anchor);
    // An estimate further from the last one than the pairs' jitter explains (kJitterTicks at
    // either end of the baseline, and at least 1/4096): the baseline holds a small step of the
    // system clock. Keep the old scale and start a new baseline, unless the last baseline
    // disagreed too: then it is the old scale that is wrong.
    std::uint64_t off = estimate > estimate_ ? estimate - estimate_ : estimate_ - estimate;
    std::uint64_t tolerance =
        std::max(estimate_ >> 12, static_cast<std::uint64_t>(static_cast<Uint128>(estimate_) *
                                                             (2 * kJitterTicks) / since_anchor));
    if (off > tolerance && !disagreed_) {
      disagreed_ = true;
      anchor_ = p;
      period_ticks_ = kMinPeriodTicks;
    } else {
      disagreed_ = false;
      estimate_ = estimate;
      if (period_ticks_ < kMaxPeriodTicks) period_ticks_ <<= 1;
      if (since_anchor >= kAnchorTicks) anchor_ = p;
    }
    base_tsc_ = p.tsc;
    mult_ = estimate_;
    if (ahead > 0) {
      // Ran ahead: start from the held reading and run slower over the next period, to meet
      // realtime at its end; mult stays >= estimate / 2, so the clock never stops.
      base_ns_ = held;
      std::uint64_t correction =
          static_cast<std::uint64_t>((static_cast<Uint128>(ahead) << kShift) / period_ticks_);
      mult_ = correction < estimate_ / 2 ? estimate_ - correction : estimate_ / 2;
    } else {
      base_ns_ = p.ns;
    }
    return base_ns_;
  }

  [[no_unique_address]] Source source_;
  bool usable_ = false;
  std::uint64_t base_tsc_ = 0;
  std::int64_t base_ns_ = 0;
  std::uint64_t mult_ = 0;          // the scale of the current period (slowed after running ahead)
  std::uint64_t period_ticks_ = 0;  // recalibrate when base_tsc_ is this old
  std::uint64_t estimate_ = 0;      // the measured scale
  Pair anchor_{};                   // the start of the scale's baseline
  bool disagreed_ = false;          // the last baseline's estimate was refused
};

using TscWallClock = BasicTscClock<HardwareTscSource>;

}  // namespace sluice::shm
