#include "tools/perf_format.h"

#include <fmt/format.h>

namespace sluice::tools {

std::string group_digits(std::int64_t v) {
  const std::string digits = std::to_string(v < 0 ? -v : v);
  std::string out = v < 0 ? "-" : "";
  for (std::size_t i = 0; i < digits.size(); ++i) {
    if (i > 0 && (digits.size() - i) % 3 == 0) out += ',';
    out += digits[i];
  }
  return out;
}

std::string format_ns(double ns) {
  const char* unit = "ns";
  double v = ns;
  if (ns >= 1e9) {
    v = ns / 1e9;
    unit = "s";
  } else if (ns >= 1e6) {
    v = ns / 1e6;
    unit = "ms";
  } else if (ns >= 1e3) {
    v = ns / 1e3;
    unit = "µs";
  }
  if (unit[0] == 'n' || v >= 100) return fmt::format("{:.0f} {}", v, unit);
  if (v >= 10) return fmt::format("{:.1f} {}", v, unit);
  return fmt::format("{:.2f} {}", v, unit);
}

std::string format_rate(double per_s) {
  // Thresholds just under 1000 so that 999.999 k prints as 1.00 M, not 1000.00 k.
  if (per_s >= 999.995e6) return fmt::format("{:.2f} G", per_s / 1e9);
  if (per_s >= 999.995e3) return fmt::format("{:.2f} M", per_s / 1e6);
  if (per_s >= 999.5) return fmt::format("{:.2f} k", per_s / 1e3);
  return fmt::format("{:.0f}", per_s);
}

}  // namespace sluice::tools
