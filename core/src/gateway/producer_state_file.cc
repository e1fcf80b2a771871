#include "producer_state_file.h"

#include <cstring>
#include <limits>

namespace sluice::gateway {

namespace {

constexpr std::uint32_t kSchema = 0x31445250u;  // "PRD1" little-endian
constexpr std::uint32_t kKeyBytes = 8;
constexpr std::size_t kBatchesAt = 16;
constexpr std::uint32_t kValueBytes =
    kBatchesAt + ProducerState::kRememberedBatches * (4 + 4 + 8);  // 96

template <class T>
void put_at(std::string& out, std::size_t at, T v) {
  std::memcpy(out.data() + at, &v, sizeof v);  // x86-64: little-endian, as format.md says
}

template <class T>
T get_at(std::string_view in, std::size_t at) {
  T v;
  std::memcpy(&v, in.data() + at, sizeof v);
  return v;
}

std::string key_of(std::int64_t producer_id) {
  std::string k(kKeyBytes, '\0');
  put_at(k, 0, producer_id);
  return k;
}

}  // namespace

const shm::TableLayout ProducerStateFile::kLayout{kSchema, kKeyBytes, kValueBytes};

Result<ProducerStateFile> ProducerStateFile::open(const std::string& partition_dir, mode_t mode) {
  shm::TableOptions options;
  options.slots = 2 * kMaxProducers;  // grows if ever needed; entries stay below 3/4 of it
  options.mode = mode;
  auto table =
      shm::SharedTable::open_writer(partition_dir + "/" + kProducerStateName, kLayout, options);
  if (!table) return table.status();
  return ProducerStateFile(std::move(table).value());
}

Result<std::size_t> ProducerStateFile::load_into(ProducerSequences& sequences) {
  auto entries = table_.scan();
  if (!entries) return entries.status();
  std::size_t loaded = 0;
  for (const shm::TableEntry& e : *entries) {
    if (e.key.size() != kKeyBytes || e.value.size() != kValueBytes)
      return Status(sluice::ErrorCode::kCorrupt, table_.path() + ": an entry of " +
                                                     std::to_string(e.key.size()) + "+" +
                                                     std::to_string(e.value.size()) + " bytes");
    ProducerState state;
    state.epoch = get_at<std::int16_t>(e.value, 8);
    state.count = get_at<std::uint8_t>(e.value, 10);
    state.next = get_at<std::uint8_t>(e.value, 11);
    if (state.count > ProducerState::kRememberedBatches ||
        state.next >= ProducerState::kRememberedBatches)
      return Status(sluice::ErrorCode::kCorrupt,
                    table_.path() + ": a producer entry's batch count " +
                        std::to_string(state.count) + " or next " + std::to_string(state.next) +
                        " is out of range");
    for (std::size_t b = 0; b < ProducerState::kRememberedBatches; ++b) {
      std::size_t at = kBatchesAt + b * 16;
      state.recent[b] = {get_at<std::int32_t>(e.value, at), get_at<std::int32_t>(e.value, at + 4),
                         get_at<std::int64_t>(e.value, at + 8)};
    }
    sequences.restore(get_at<std::int64_t>(e.key, 0), state);
    ++loaded;
  }
  return loaded;
}

Status ProducerStateFile::save(std::int64_t producer_id, const ProducerState& state,
                               std::int64_t now_ms) {
  const std::string key = key_of(producer_id);
  if (table_.size() >= kMaxProducers) {
    auto known = table_.get(key);
    if (!known) return known.status();
    if (!*known) {
      // Full, and a new producer: forget the least recently written one.
      auto entries = table_.scan();
      if (!entries) return entries.status();
      const shm::TableEntry* oldest = nullptr;
      std::int64_t oldest_ms = std::numeric_limits<std::int64_t>::max();
      for (const shm::TableEntry& e : *entries) {
        if (e.value.size() != kValueBytes) continue;
        std::int64_t ms = get_at<std::int64_t>(e.value, 0);
        if (ms < oldest_ms) {
          oldest_ms = ms;
          oldest = &e;
        }
      }
      if (oldest != nullptr) {
        if (auto erased = table_.erase(oldest->key); !erased) return erased.status();
      }
    }
  }
  std::string value(kValueBytes, '\0');
  put_at(value, 0, now_ms);
  put_at(value, 8, state.epoch);
  put_at(value, 10, static_cast<std::uint8_t>(state.count));
  put_at(value, 11, static_cast<std::uint8_t>(state.next));
  for (std::size_t b = 0; b < ProducerState::kRememberedBatches; ++b) {
    std::size_t at = kBatchesAt + b * 16;
    put_at(value, at, state.recent[b].first_seq);
    put_at(value, at + 4, state.recent[b].last_seq);
    put_at(value, at + 8, state.recent[b].first_offset);
  }
  return table_.put(key, value);
}

}  // namespace sluice::gateway
