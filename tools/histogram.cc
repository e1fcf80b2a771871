#include "tools/histogram.h"

#include <cmath>

namespace sluice::tools {

void LatencyHistogram::merge(const LatencyHistogram& other) {
  for (std::size_t i = 0; i < kBuckets; ++i) counts_[i] += other.counts_[i];
  total_ += other.total_;
  sum_ += other.sum_;
  if (other.total_ != 0) {
    if (other.min_ < min_) min_ = other.min_;
    if (other.max_ > max_) max_ = other.max_;
  }
}

void LatencyHistogram::reset() {
  *this = LatencyHistogram();
}

std::uint64_t LatencyHistogram::percentile(double q) const {
  if (total_ == 0) return 0;
  if (q >= 1) return max_;
  if (q < 0) q = 0;
  auto rank = static_cast<std::uint64_t>(std::ceil(q * static_cast<double>(total_)));
  if (rank == 0) rank = 1;
  std::uint64_t seen = 0;
  for (std::size_t i = 0; i < kBuckets; ++i) {
    seen += counts_[i];
    if (seen >= rank) {
      std::uint64_t v = highest_equivalent(i);
      return v < max_ ? v : max_;
    }
  }
  return max_;
}

}  // namespace sluice::tools
