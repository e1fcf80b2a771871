// tools/hiccup_meter: the latency floor computed from gaps, and a short measurement.
#include "tools/hiccup_meter.h"

#include <catch2/catch.hpp>
#include <chrono>
#include <cstdint>
#include <vector>

namespace {

using sluice::tools::CpuHiccups;
using sluice::tools::Hiccup;
using sluice::tools::HiccupMeasurement;
using sluice::tools::kMinHiccupNs;

constexpr std::int64_t kMs = 1'000'000;

// A gap from `from_ms` to `to_ms` (CLOCK_MONOTONIC milliseconds).
Hiccup gap(std::int64_t from_ms, std::int64_t to_ms) {
  return {to_ms * kMs, (to_ms - from_ms) * kMs};
}

}  // namespace

TEST_CASE("hiccups: one gap gives the waits of the records that fall in it", "[hiccups]") {
  // 1 s measured, one gap of 10 ms: 1% of the records fall in it and wait 0 to 10 ms evenly.
  HiccupMeasurement m;
  m.duration_ns = 1000 * kMs;
  m.cpus.push_back({0, {gap(500, 510)}});
  CHECK(m.gaps() == 1);
  CHECK(m.longest_ns() == 10 * kMs);
  CHECK(m.lost_fraction() == Approx(0.01));
  CHECK(m.floor_percentile(0.5) == 0);
  CHECK(m.floor_percentile(0.99) == 0);  // the 1% that wait, wait from 0 up
  // 0.5% of the records wait longer than 5 ms, 0.1% longer than 9 ms.
  CHECK(m.floor_percentile(0.995) == Approx(5 * kMs).margin(1));
  CHECK(m.floor_percentile(0.999) == Approx(9 * kMs).margin(1));
  CHECK(m.floor_percentile(1.0) == 10 * kMs);
}

TEST_CASE("hiccups: gaps of two CPUs at the same time count once and gaps apart add up",
          "[hiccups]") {
  HiccupMeasurement overlapping;
  overlapping.duration_ns = 1000 * kMs;
  overlapping.cpus.push_back({0, {gap(100, 110)}});
  overlapping.cpus.push_back({1, {gap(105, 115)}});
  // One span of 15 ms in which some CPU was away: 0.1% of the records wait over 14 ms.
  CHECK(overlapping.away_spans() == std::vector<std::int64_t>{15 * kMs});
  CHECK(overlapping.floor_percentile(0.999) == Approx(14 * kMs).margin(1));
  CHECK(overlapping.floor_percentile(1.0) == 15 * kMs);
  CHECK(overlapping.lost_fraction() == Approx(0.01));  // 20 ms of 2 x 1 s

  HiccupMeasurement apart;
  apart.duration_ns = 1000 * kMs;
  apart.cpus.push_back({0, {gap(100, 110)}});
  apart.cpus.push_back({1, {gap(200, 210)}});
  // Two spans of 10 ms: 2 x (10 ms - x) = 1 ms at x = 9.5 ms.
  CHECK(apart.away_spans() == std::vector<std::int64_t>{10 * kMs, 10 * kMs});
  CHECK(apart.floor_percentile(0.999) == Approx(9'500'000.0).margin(1));
  CHECK(apart.floor_percentile(1.0) == 10 * kMs);

  // A chain: each gap overlaps the next, on alternate CPUs, making one 30 ms span.
  HiccupMeasurement chain;
  chain.duration_ns = 1000 * kMs;
  chain.cpus.push_back({0, {gap(100, 112), gap(120, 130)}});
  chain.cpus.push_back({1, {gap(110, 121)}});
  CHECK(chain.floor_percentile(1.0) == 30 * kMs);
  CHECK(chain.away_spans() == std::vector<std::int64_t>{30 * kMs});
}

TEST_CASE("hiccups: nothing measured gives a floor of zero", "[hiccups]") {
  HiccupMeasurement none;
  CHECK(none.floor_percentile(0.99) == 0);
  CHECK(none.lost_fraction() == 0);
  HiccupMeasurement quiet;
  quiet.duration_ns = 1000 * kMs;
  quiet.cpus.push_back({0, {}});
  CHECK(quiet.floor_percentile(1.0) == 0);
  CHECK(quiet.gaps() == 0);
}

TEST_CASE("hiccups: a measurement spins on each CPU given for the time given", "[hiccups]") {
  const int cpus[] = {0};
  const std::int64_t duration = 50 * kMs;
  auto t0 = std::chrono::steady_clock::now();
  HiccupMeasurement m = sluice::tools::measure_hiccups(cpus, duration);
  auto took =
      std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::steady_clock::now() - t0)
          .count();
  CHECK(took >= duration);
  CHECK(m.duration_ns == duration);
  REQUIRE(m.cpus.size() == 1);
  CHECK(m.cpus[0].cpu == 0);
  CHECK(m.lost_fraction() >= 0);
  CHECK(m.lost_fraction() <= 1);
  for (const Hiccup& h : m.cpus[0].gaps) {
    CHECK(h.length_ns >= kMinHiccupNs);
    CHECK(h.end_ns > 0);
  }
}
