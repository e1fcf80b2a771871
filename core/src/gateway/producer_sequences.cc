#include "producer_sequences.h"

#include <algorithm>
#include <limits>
#include <utility>
#include <vector>

namespace sluice::gateway {

std::int32_t ProducerSequences::last_of(std::int32_t base, std::int32_t count) {
  std::int64_t last = std::int64_t{base} + count - 1;
  constexpr std::int64_t kWrap = std::int64_t{std::numeric_limits<std::int32_t>::max()} + 1;
  return static_cast<std::int32_t>(last % kWrap);
}

SequenceCheck ProducerSequences::check(std::int64_t producer_id, std::int16_t epoch,
                                       std::int32_t base_sequence,
                                       std::int32_t record_count) const {
  auto it = state_.find(producer_id);
  if (it == state_.end()) return {};
  const ProducerState& s = it->second.state;
  if (epoch < s.epoch) return {SequenceVerdict::kFencedEpoch, -1};
  if (epoch > s.epoch) {
    // A bumped epoch starts its sequences again at 0.
    return base_sequence == 0 ? SequenceCheck{} : SequenceCheck{SequenceVerdict::kOutOfOrder, -1};
  }
  std::int32_t last = last_of(base_sequence, record_count);
  for (int i = 0; i < s.count; ++i) {
    const ProducerState::Batch& b = s.recent[static_cast<std::size_t>(i)];
    if (b.first_seq == base_sequence && b.last_seq == last)
      return {SequenceVerdict::kDuplicate, b.first_offset};
  }
  std::int32_t expected =
      s.last().last_seq == std::numeric_limits<std::int32_t>::max() ? 0 : s.last().last_seq + 1;
  if (base_sequence != expected) return {SequenceVerdict::kOutOfOrder, -1};
  return {};
}

const ProducerState& ProducerSequences::appended(std::int64_t producer_id, std::int16_t epoch,
                                                 std::int32_t base_sequence,
                                                 std::int32_t record_count,
                                                 std::int64_t first_offset) {
  ProducerState& s = entry(producer_id).state;
  if (epoch != s.epoch || s.count == 0) {
    s = ProducerState{};
    s.epoch = epoch;
  }
  s.recent[static_cast<std::size_t>(s.next)] =
      ProducerState::Batch{base_sequence, last_of(base_sequence, record_count), first_offset};
  s.next = (s.next + 1) % kRememberedBatches;
  if (s.count < kRememberedBatches) ++s.count;
  return s;
}

const ProducerState* ProducerSequences::find(std::int64_t producer_id) const {
  auto it = state_.find(producer_id);
  return it == state_.end() ? nullptr : &it->second.state;
}

void ProducerSequences::restore(std::int64_t producer_id, const ProducerState& state) {
  entry(producer_id).state = state;
}

ProducerSequences::Entry& ProducerSequences::entry(std::int64_t producer_id) {
  auto it = state_.find(producer_id);
  if (it == state_.end()) {
    if (state_.size() >= kMaxProducers) {
      // Forget the least recently used quarter: the oldest `used` stamps.
      std::vector<std::pair<std::uint64_t, std::int64_t>> by_use;
      by_use.reserve(state_.size());
      for (const auto& [id, e] : state_) by_use.emplace_back(e.used, id);
      auto cut = by_use.begin() + static_cast<std::ptrdiff_t>(kMaxProducers / 4);
      std::nth_element(by_use.begin(), cut, by_use.end());
      for (auto i = by_use.begin(); i != cut; ++i) state_.erase(i->second);
    }
    it = state_.emplace(producer_id, Entry{}).first;
  }
  it->second.used = ++clock_;
  return it->second;
}

}  // namespace sluice::gateway
