#include "tools/hiccup_meter.h"

#include <algorithm>
#include <atomic>
#include <thread>

#include "shm/clock.h"
#include "tools/cpu_pinning.h"

namespace sluice::tools {

using shm::monotonic_ns;

std::vector<std::int64_t> HiccupMeasurement::away_spans() const {
  std::vector<Hiccup> all;
  for (const CpuHiccups& c : cpus) all.insert(all.end(), c.gaps.begin(), c.gaps.end());
  std::sort(all.begin(), all.end(), [](const Hiccup& a, const Hiccup& b) {
    return a.end_ns - a.length_ns < b.end_ns - b.length_ns;
  });
  std::vector<std::int64_t> spans;
  bool open = false;  // a span begun and not yet closed
  std::int64_t begin = 0;
  std::int64_t end = 0;
  for (const Hiccup& h : all) {
    const std::int64_t start = h.end_ns - h.length_ns;
    if (open && start <= end) {
      end = std::max(end, h.end_ns);
      continue;
    }
    if (open) spans.push_back(end - begin);
    open = true;
    begin = start;
    end = h.end_ns;
  }
  if (open) spans.push_back(end - begin);
  return spans;
}

namespace {

// Sum over the spans of max(0, L - x): the record-time that waits longer than x.
double excess_over(const std::vector<std::int64_t>& spans, std::int64_t x) {
  double sum = 0;
  for (std::int64_t l : spans)
    if (l > x) sum += static_cast<double>(l - x);
  return sum;
}

}  // namespace

std::int64_t CpuHiccups::lost_ns() const {
  std::int64_t sum = 0;
  for (const Hiccup& h : gaps) sum += h.length_ns;
  return sum;
}

std::int64_t CpuHiccups::longest_ns() const {
  std::int64_t longest = 0;
  for (const Hiccup& h : gaps) longest = std::max(longest, h.length_ns);
  return longest;
}

std::int64_t HiccupMeasurement::gaps() const {
  std::int64_t n = 0;
  for (const CpuHiccups& c : cpus) n += static_cast<std::int64_t>(c.gaps.size());
  return n;
}

std::int64_t HiccupMeasurement::longest_ns() const {
  std::int64_t longest = 0;
  for (const CpuHiccups& c : cpus) longest = std::max(longest, c.longest_ns());
  return longest;
}

double HiccupMeasurement::lost_fraction() const {
  if (duration_ns <= 0 || cpus.empty()) return 0;
  double lost = 0;
  for (const CpuHiccups& c : cpus) lost += static_cast<double>(c.lost_ns());
  return lost / (static_cast<double>(duration_ns) * static_cast<double>(cpus.size()));
}

std::int64_t HiccupMeasurement::floor_percentile(double q) const {
  if (duration_ns <= 0) return 0;
  const double allowed = (1 - q) * static_cast<double>(duration_ns);
  const std::vector<std::int64_t> spans = away_spans();
  // excess_over falls as x rises and is 0 from the longest span on: the smallest x whose
  // excess is within the allowed share, by bisection over [0, longest span].
  std::int64_t lo = 0;
  std::int64_t hi = spans.empty() ? 0 : *std::max_element(spans.begin(), spans.end());
  if (excess_over(spans, lo) <= allowed) return 0;
  while (hi - lo > 1) {
    std::int64_t mid = lo + (hi - lo) / 2;
    if (excess_over(spans, mid) <= allowed) {
      hi = mid;
    } else {
      lo = mid;
    }
  }
  return hi;
}

HiccupMeasurement measure_hiccups(std::span<const int> cpus, std::int64_t duration_ns) {
  HiccupMeasurement m;
  m.duration_ns = duration_ns;
  m.cpus.resize(cpus.size());
  std::atomic<std::size_t> ready{0};
  std::atomic<std::int64_t> start{0};
  std::vector<std::thread> threads;
  threads.reserve(cpus.size());
  for (std::size_t i = 0; i < cpus.size(); ++i) {
    threads.emplace_back([&, i] {
      CpuHiccups& out = m.cpus[i];
      out.cpu = cpus[i];
      out.gaps.reserve(1 << 14);
      pin_to_cpu(cpus[i]);
      // All threads start together, as the workers run together. Relaxed: the counter and
      // the start time carry no other data (each thread writes only its own CpuHiccups,
      // which join() publishes).
      ready.fetch_add(1, std::memory_order_relaxed);
      std::int64_t begin;
      while ((begin = start.load(std::memory_order_relaxed)) == 0) std::this_thread::yield();
      const std::int64_t end = begin + duration_ns;
      std::int64_t last = monotonic_ns();
      while (last < end) {
        std::int64_t now = monotonic_ns();
        if (now - last >= kMinHiccupNs) out.gaps.push_back({now, now - last});
        last = now;
      }
    });
  }
  while (ready.load(std::memory_order_relaxed) < cpus.size()) std::this_thread::yield();
  start.store(monotonic_ns(), std::memory_order_relaxed);
  for (std::thread& t : threads) t.join();
  return m;
}

}  // namespace sluice::tools
