// Hiccups: the time a machine takes away from a thread that never stops. A thread pinned to a
// CPU reads the clock in a loop (a read costs 20-30 ns); a gap of kMinHiccupNs or more between
// two reads is time the CPU spent elsewhere: an interrupt, a kernel thread, the hypervisor.
// It is jHiccup's idea, measured the way `sluice perf` runs: its producer and consumer spin on
// pinned CPUs, so the same gaps fall on them, and no transport's latency percentiles can be
// better than what the gaps alone impose. `sluice perf` measures them on the workers' CPUs
// before the run and prints that floor beside the run's latency (docs/benchmarks.md,
// "`sluice perf`").
//
// The floor. Records sent at a steady rate through a transport that costs nothing still wait
// out the gaps: a record due while its producer's CPU is away waits until the producer runs
// again, and one arriving while its consumer's CPU is away waits until the consumer runs; with
// both away at once (a timer tick reaches every CPU at about the same moment), until the later
// of the two returns. So the gaps of all the CPUs are merged into spans of time in which some
// CPU was away, and a record due within a span of length L waits from 0 to L, evenly: the
// share of all records that wait longer than x is the sum over the spans of max(0, L - x),
// divided by the time measured. floor_percentile(q) is the smallest x at which that share is
// at most 1 - q.
//
// Thread-safety: measure_hiccups starts and joins its own threads; a HiccupMeasurement is a
// plain value.
#pragma once

#include <cstdint>
#include <span>
#include <vector>

namespace sluice::tools {

// Gaps shorter than this are not counted: a clock read in a loop takes 20-30 ns, and on the
// machines measured so far gaps between 1 and 5 µs are rare (docs/benchmarks.md).
inline constexpr std::int64_t kMinHiccupNs = 1'000;

struct Hiccup {
  std::int64_t end_ns = 0;  // CLOCK_MONOTONIC when the thread ran again
  std::int64_t length_ns = 0;
};

struct CpuHiccups {
  int cpu = 0;
  std::vector<Hiccup> gaps;  // every gap of at least kMinHiccupNs, in the order seen

  std::int64_t lost_ns() const;
  std::int64_t longest_ns() const;
};

struct HiccupMeasurement {
  std::int64_t duration_ns = 0;  // how long each CPU was measured
  std::vector<CpuHiccups> cpus;

  std::int64_t gaps() const;
  std::int64_t longest_ns() const;
  // Time lost to gaps over the time measured, all CPUs together (0..1).
  double lost_fraction() const;
  // The lengths of the spans in which at least one CPU was away: every CPU's gaps merged
  // where they overlap, in time order.
  std::vector<std::int64_t> away_spans() const;
  // The floor above (0 when nothing was measured): the q-quantile (0..1) of the wait that
  // records sent evenly through a cost-free transport between these CPUs would see; q = 1
  // gives the longest span.
  std::int64_t floor_percentile(double q) const;
};

// Spins a thread pinned to each of `cpus` for `duration_ns`, all at once, and returns the
// gaps each saw. The calling thread only waits.
HiccupMeasurement measure_hiccups(std::span<const int> cpus, std::int64_t duration_ns);

}  // namespace sluice::tools
