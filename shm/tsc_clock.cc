#include "shm/tsc_clock.h"

#include <cpuid.h>

#include <cstdlib>
#include <cstring>
#include <fstream>
#include <string>

namespace sluice::shm {
namespace {

// The kernel keeps CLOCK_REALTIME by the TSC only when it found the counters of all CPUs
// in step and steady; it switches away (and this file says so) if they stop being.
bool kernel_keeps_time_by_tsc() {
  std::ifstream in("/sys/devices/system/clocksource/clocksource0/current_clocksource");
  std::string name;
  return static_cast<bool>(in >> name) && name == "tsc";
}

// CPUID leaf 0x80000007, EDX bit 8: the TSC runs at a constant rate in every P-, C- and
// T-state (Linux's constant_tsc and nonstop_tsc flags).
bool cpu_has_invariant_tsc() {
  unsigned eax = 0, ebx = 0, ecx = 0, edx = 0;
  if (__get_cpuid_max(0x80000000, nullptr) < 0x80000007) return false;
  __get_cpuid(0x80000007, &eax, &ebx, &ecx, &edx);
  return (edx & (1u << 8)) != 0;
}

bool disabled_by_environment() {
  const char* env = std::getenv("SLUICE_TSC_CLOCK");
  return env != nullptr && std::strcmp(env, "0") == 0;
}

// ns per tick (<< 32) over at least `span_ns` of realtime; 0 if the system clock was set
// meanwhile.
std::uint64_t measure_scale(std::int64_t span_ns) {
  // The narrowest of 8 reads at either end.
  const HardwareTscSource hw;
  TscPair a = read_tsc_pair(hw, 8, 0);
  TscPair b;
  do {
    b = read_tsc_pair(hw, 8, 0);
  } while (b.ns - a.ns < span_ns && b.ns >= a.ns);
  if (b.ns <= a.ns || b.tsc <= a.tsc) return 0;
  return static_cast<std::uint64_t>(
      (static_cast<Uint128>(b.ns - a.ns) << BasicTscClock<HardwareTscSource>::kShift) /
      (b.tsc - a.tsc));
}

// Two back-to-back measurements of 100 us each that agree within 1/1000 (against a read
// jitter of tens of ns, so an interrupt inside one shows as disagreement); a few tries. Each
// clock refines the scale over its own periods.
TscCalibration measure() {
  TscCalibration c;
  if (disabled_by_environment() || !cpu_has_invariant_tsc() || !kernel_keeps_time_by_tsc())
    return c;
  for (int attempt = 0; attempt < 5; ++attempt) {
    std::uint64_t a = measure_scale(100'000);
    std::uint64_t b = measure_scale(100'000);
    if (a == 0 || b == 0) continue;
    std::uint64_t off = a > b ? a - b : b - a;
    if (off > a / 1000) continue;
    std::uint64_t mult = a / 2 + b / 2;
    // 250 MHz to 20 GHz: outside that the counter is not what we take it for (and a slower
    // one would overflow the 64-bit product of now()).
    if (mult > (std::uint64_t{4} << 32) || mult < (std::uint64_t{1} << 32) / 20) return c;
    c.usable = true;
    c.mult = mult;
    return c;
  }
  return c;
}

}  // namespace

const TscCalibration& tsc_calibration() {
  static const TscCalibration calibration = measure();
  return calibration;
}

}  // namespace sluice::shm
