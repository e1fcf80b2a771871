#include "shm/tsc_clock.h"

#include <catch2/catch.hpp>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <random>

namespace sluice::shm {
namespace {

// A simulated machine: a TSC at a true rate and a realtime clock the test can step. Time
// moves only when the test says.
struct World {
  std::uint64_t tsc = 5'000'000'000;
  std::int64_t realtime = 1'800'000'000'000'000'000;
  double ns_per_tick = 1.0 / 3.0;  // a 3 GHz counter
  double fraction = 0;             // realtime's part of a nanosecond not yet counted
  TscCalibration calibration{true, 0};

  void advance(std::uint64_t ticks) {
    tsc += ticks;
    double ns = static_cast<double>(ticks) * ns_per_tick + fraction;
    double whole = std::floor(ns);
    fraction = ns - whole;
    realtime += static_cast<std::int64_t>(whole);
  }
  // The seed scale, off from the truth by `error` (0.001: 0.1% fast).
  void seed(double error) {
    calibration.mult =
        static_cast<std::uint64_t>(ns_per_tick * (1.0 + error) * 4294967296.0);  // << 32
  }
};

struct FakeSource {
  World* world = nullptr;
  std::uint64_t ticks() const noexcept { return world->tsc; }
  std::int64_t realtime_ns() const noexcept { return world->realtime; }
  TscCalibration calibration() const { return world->calibration; }
};

using FakeClock = BasicTscClock<FakeSource>;

// Advances the world in random steps for `total` ticks, reading the clock after each; checks
// that readings never go back and stay within `bound_ns` of realtime once `settle` ticks
// passed. Returns the largest error seen after settling.
std::int64_t run(World& w, FakeClock& clock, std::uint64_t total, std::int64_t bound_ns,
                 std::uint64_t settle = 0, std::uint32_t seed = 1) {
  std::mt19937_64 rng(seed);
  std::int64_t last = clock.now();
  std::int64_t worst = 0;
  for (std::uint64_t done = 0; done < total;) {
    // Mostly short steps, sometimes a pause longer than a whole period.
    std::uint64_t step = rng() % 8 == 0 ? rng() % (std::uint64_t{1} << 26) : rng() % 40'000;
    w.advance(step);
    done += step;
    std::int64_t t = clock.now();
    REQUIRE(t >= last);
    last = t;
    if (done >= settle) {
      std::int64_t error = std::llabs(t - w.realtime);
      if (error > worst) worst = error;
      REQUIRE(error <= bound_ns);
    }
  }
  return worst;
}

TEST_CASE("tsc clock: readings follow realtime and never go back though the seed scale is off",
          "[tsc_clock]") {
  for (double error : {0.0, 0.001, -0.001, 0.005}) {
    World w;
    w.seed(error);
    FakeClock clock(FakeSource{&w});
    REQUIRE(clock.uses_tsc());
    // The first period (2^18 ticks, 87 us) runs on the seed: at most 0.5% of it off.
    std::int64_t worst = run(w, clock, std::uint64_t{30'000'000'000}, 500);
    INFO("seed error " << error << ", worst " << worst << " ns");
    CHECK(worst <= 500);
  }
}

TEST_CASE("tsc clock: a change of the counter's rate (NTP slewing) is tracked", "[tsc_clock]") {
  World w;
  w.seed(0);
  FakeClock clock(FakeSource{&w});
  run(w, clock, std::uint64_t{3'000'000'000}, 100);
  w.ns_per_tick *= 1.0001;  // realtime now runs 100 ppm faster against the TSC
  // At most 100 ppm of a longest period (2^25 ticks, 11 ms) before it is corrected.
  run(w, clock, std::uint64_t{60'000'000'000}, 1'500, 0, 2);
}

TEST_CASE("tsc clock: a step of the system clock is followed within one period", "[tsc_clock]") {
  World w;
  w.seed(0);
  FakeClock clock(FakeSource{&w});
  run(w, clock, std::uint64_t{3'000'000'000}, 100);
  w.realtime -= 1'000'000'000;  // set back 1 s
  w.advance(FakeClock::kMaxPeriodTicks);
  CHECK(std::llabs(clock.now() - w.realtime) <= 100);
  run(w, clock, std::uint64_t{3'000'000'000}, 100, 0, 3);
  w.realtime += 500'000;  // forward 0.5 ms: under kStepNs, so caught up as drift
  w.advance(FakeClock::kMaxPeriodTicks);
  CHECK(std::llabs(clock.now() - w.realtime) <= 100);
  run(w, clock, std::uint64_t{3'000'000'000}, 100, 0, 4);
}

TEST_CASE("tsc clock: a counter that goes backwards resets the clock to realtime", "[tsc_clock]") {
  World w;
  w.seed(0);
  FakeClock clock(FakeSource{&w});
  run(w, clock, std::uint64_t{3'000'000'000}, 100);
  w.tsc -= 4'000'000'000;  // a VM moved to a host whose counter is behind
  w.advance(10);
  CHECK(std::llabs(clock.now() - w.realtime) <= 100);
  run(w, clock, std::uint64_t{3'000'000'000}, 100, 0, 5);
}

TEST_CASE("tsc clock: without a usable TSC every reading is realtime", "[tsc_clock]") {
  World w;
  w.calibration = TscCalibration{false, 0};
  FakeClock clock(FakeSource{&w});
  CHECK_FALSE(clock.uses_tsc());
  for (int i = 0; i < 100; ++i) {
    w.advance(12'345);
    CHECK(clock.now() == w.realtime);
  }
}

TEST_CASE("tsc clock: on this machine readings fall between clock_gettime's before and after",
          "[tsc_clock]") {
  TscWallClock clock;
  INFO("uses the TSC: " << clock.uses_tsc());
  // 5 us of slack: the calibration's error is well under 1 us where measured, and a wrong
  // scale or shift would be off by milliseconds. 50 ms of readings cross many periods.
  constexpr std::int64_t kSlackNs = 5'000;
  std::int64_t last = clock.now();
  std::int64_t end = wall_clock_ns() + 50'000'000;
  for (;;) {
    std::int64_t before = wall_clock_ns();
    std::int64_t t = clock.now();
    std::int64_t after = wall_clock_ns();
    REQUIRE(t >= before - kSlackNs);
    REQUIRE(t <= after + kSlackNs);
    REQUIRE(t >= last);
    last = t;
    if (after > end) break;
  }
}

}  // namespace
}  // namespace sluice::shm
