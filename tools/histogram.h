// LatencyHistogram: a log-linear histogram of non-negative integers (nanoseconds), laid out as
// HdrHistogram is: values below 2048 have a bucket each; above, every power-of-two range is
// split into 1024 equal buckets, so a bucket is at most 1/1024 of its values wide (better than
// 3 significant digits) all the way up to 2^42 ns (73 minutes; larger values are clamped).
// Debian packages no C/C++ HdrHistogram (only the Java and Go ones), hence this one.
//
// A fixed-size, trivially copyable object (about 270 KiB) with no pointers, so it can live in
// a MAP_SHARED mapping that forked processes fill and the parent merges.
//
// Thread-safety: none; one writer at a time, merge after the writer is done.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <limits>

namespace sluice::tools {

class LatencyHistogram {
 public:
  static constexpr unsigned kSubBucketBits = 11;  // 2048 exact values, then 1024 per octave
  static constexpr std::uint64_t kSubBuckets = std::uint64_t{1} << kSubBucketBits;
  static constexpr std::uint64_t kHalf = kSubBuckets / 2;
  static constexpr unsigned kMaxBits = 42;  // values up to 2^42 - 1
  static constexpr std::uint64_t kMaxValue = (std::uint64_t{1} << kMaxBits) - 1;
  static constexpr std::size_t kBuckets = kSubBuckets + (kMaxBits - kSubBucketBits) * kHalf;

  void record(std::uint64_t value) { record(value, 1); }
  void record(std::uint64_t value, std::uint64_t count) {
    if (value > kMaxValue) value = kMaxValue;
    counts_[index_of(value)] += count;
    total_ += count;
    sum_ += static_cast<double>(value) * static_cast<double>(count);
    if (value < min_) min_ = value;
    if (value > max_) max_ = value;
  }

  void merge(const LatencyHistogram& other);
  void reset();

  std::uint64_t count() const { return total_; }
  std::uint64_t min() const { return total_ == 0 ? 0 : min_; }
  std::uint64_t max() const { return max_; }
  double mean() const { return total_ == 0 ? 0 : sum_ / static_cast<double>(total_); }

  // The value at quantile q (0..1): the highest value of the bucket that holds the
  // ceil(q * count)-th smallest value, capped at max(). 0 when empty.
  std::uint64_t percentile(double q) const;

  // Bucket mapping, exposed for tests.
  static std::size_t index_of(std::uint64_t value) {
    if (value < kSubBuckets) return static_cast<std::size_t>(value);
    unsigned msb = 63u - static_cast<unsigned>(__builtin_clzll(value));  // >= kSubBucketBits
    unsigned shift = msb - (kSubBucketBits - 1);                         // >= 1
    std::uint64_t sub = value >> shift;                                  // [kHalf, kSubBuckets)
    return static_cast<std::size_t>(kSubBuckets + (shift - 1) * kHalf + (sub - kHalf));
  }
  static std::uint64_t lowest_equivalent(std::size_t index) {
    if (index < kSubBuckets) return index;
    std::uint64_t k = index - kSubBuckets;
    unsigned shift = static_cast<unsigned>(k / kHalf) + 1;
    return (k % kHalf + kHalf) << shift;
  }
  static std::uint64_t highest_equivalent(std::size_t index) {
    if (index < kSubBuckets) return index;
    unsigned shift = static_cast<unsigned>((index - kSubBuckets) / kHalf) + 1;
    return lowest_equivalent(index) + (std::uint64_t{1} << shift) - 1;
  }

 private:
  std::array<std::uint64_t, kBuckets> counts_{};
  std::uint64_t total_ = 0;
  std::uint64_t min_ = std::numeric_limits<std::uint64_t>::max();
  std::uint64_t max_ = 0;
  double sum_ = 0;
};

}  // namespace sluice::tools
