// ProducerSequences: Kafka's idempotent-producer check for one partition. A producer
// (InitProducerId: id + epoch) numbers its batches per partition; the partition remembers, per
// producer, the epoch and the last five batches it appended (Kafka keeps five: a producer has
// at most five requests in flight), so that
//   - a retried batch that was already appended is acknowledged again with its first offset,
//     and not written twice (kDuplicate);
//   - a batch that skips ahead gets OUT_OF_ORDER_SEQUENCE_NUMBER (kOutOfOrder);
//   - an older epoch gets INVALID_PRODUCER_EPOCH (kFencedEpoch); a newer one starts over at 0.
// A producer id this partition has no state for (new, or forgotten: see ProducerStateFile,
// which keeps the state across broker restarts) is accepted at whatever sequence it sends.
//
// Sequences wrap from INT32_MAX to 0, as Kafka's do.
//
// At most kMaxProducers producers are remembered. Beyond that, the quarter least recently
// appended for are forgotten at once (so each new producer costs O(1) amortised): a client
// making up producer ids (InitProducerId in a loop, or ids of its own) cannot grow the
// gateway's memory without bound. Kafka bounds the same state by time instead
// (producer.id.expiration.ms, a day), and has run out of memory to floods of new ids. A
// forgotten producer's next batch is accepted at whatever sequence it sends.
//
// Thread-safety: none; the caller holds the partition's write lock across check() and
// appended(), so that the check and the append are one step.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <unordered_map>

namespace sluice::gateway {

enum class SequenceVerdict : std::uint8_t { kAppend, kDuplicate, kOutOfOrder, kFencedEpoch };

struct SequenceCheck {
  SequenceVerdict verdict = SequenceVerdict::kAppend;
  std::int64_t duplicate_of = -1;  // kDuplicate: the first offset it was appended at
};

// What a partition remembers of one producer: its epoch and its last batches.
struct ProducerState {
  static constexpr int kRememberedBatches = 5;
  struct Batch {
    std::int32_t first_seq = -1;
    std::int32_t last_seq = -1;
    std::int64_t first_offset = -1;
  };
  std::int16_t epoch = 0;
  std::array<Batch, kRememberedBatches> recent{};  // ring, newest at (next - 1)
  int next = 0;
  int count = 0;
  const Batch& last() const {
    return recent[static_cast<std::size_t>((next + kRememberedBatches - 1) % kRememberedBatches)];
  }
};

class ProducerSequences {
 public:
  static constexpr int kRememberedBatches = ProducerState::kRememberedBatches;
  static constexpr std::size_t kMaxProducers = 4096;

  SequenceCheck check(std::int64_t producer_id, std::int16_t epoch, std::int32_t base_sequence,
                      std::int32_t record_count) const;
  // Records a batch appended at first_offset (after check() said kAppend); returns the
  // producer's state as it now is.
  const ProducerState& appended(std::int64_t producer_id, std::int16_t epoch,
                                std::int32_t base_sequence, std::int32_t record_count,
                                std::int64_t first_offset);
  std::size_t producers() const { return state_.size(); }

  // The state kept for a producer (nullptr if none), and its restoration (after a restart).
  const ProducerState* find(std::int64_t producer_id) const;
  void restore(std::int64_t producer_id, const ProducerState& state);

 private:
  struct Entry {
    ProducerState state;
    std::uint64_t used = 0;  // the value of clock_ when it was last appended for or restored
  };
  static std::int32_t last_of(std::int32_t base, std::int32_t count);
  // The entry of a producer, made (after forgetting the least recent if full) if missing.
  Entry& entry(std::int64_t producer_id);
  std::unordered_map<std::int64_t, Entry> state_;
  std::uint64_t clock_ = 0;
};

}  // namespace sluice::gateway
