#include "producer_state_file.h"

#include <unistd.h>

#include <cstring>

#include "shm/crc32c.h"

namespace sluice::gateway {

namespace {

std::uint32_t slot_crc(const ProducerSlot& slot) {
  return shm::crc32c(&slot, offsetof(ProducerSlot, crc32c));
}

bool slot_valid(const ProducerSlot& slot) {
  return slot.crc32c == slot_crc(slot) && slot.count <= ProducerState::kRememberedBatches &&
         slot.next < ProducerState::kRememberedBatches;
}

}  // namespace

Result<ProducerStateFile> ProducerStateFile::open(const std::string& partition_dir, mode_t mode) {
  const std::string path = partition_dir + "/" + kProducerStateName;
  if (!shm::file_exists(path)) {
    // Built under a private name and linked into place, so that the file is never seen
    // without its header (link fails if another process got there first: use that one).
    std::string tmp = partition_dir + "/producers-" + std::to_string(::getpid()) + ".tmp";
    (void)shm::remove_file(tmp);
    if (Status s = shm::create_file(tmp, kProducerStateFileBytes, mode); !s) return s;
    {
      auto f = shm::MappedFile::open(tmp, shm::Access::kReadWrite);
      if (!f) {
        (void)shm::remove_file(tmp);
        return f.status();
      }
      auto* h = reinterpret_cast<ProducerStateHeader*>(f->data());
      h->magic = kProducerStateMagic;
      h->version = kProducerStateVersion;
      h->slots = kProducerStateSlots;
      h->slot_bytes = sizeof(ProducerSlot);
    }
    Status linked = shm::link_file(tmp, path);
    (void)shm::remove_file(tmp);
    if (!linked && linked.code() != ErrorCode::kAlreadyExists) return linked;
  }
  auto f = shm::MappedFile::open(path, shm::Access::kReadWrite);
  if (!f) return f.status();
  if (f->size() != kProducerStateFileBytes)
    return Status(ErrorCode::kCorrupt, path + ": " + std::to_string(f->size()) +
                                           " bytes, a producer state file has " +
                                           std::to_string(kProducerStateFileBytes));
  const auto* h = reinterpret_cast<const ProducerStateHeader*>(f->data());
  if (h->magic != kProducerStateMagic)
    return Status(ErrorCode::kBadFormat, path + ": not a Sluice producer state file (bad magic)");
  if (h->version != kProducerStateVersion)
    return Status(ErrorCode::kBadFormat,
                  path + ": producer state format version " + std::to_string(h->version) +
                      ", this build reads version " + std::to_string(kProducerStateVersion));
  if (h->slots != kProducerStateSlots || h->slot_bytes != sizeof(ProducerSlot))
    return Status(ErrorCode::kCorrupt, path + ": inconsistent slot count or size in the header");
  ProducerStateFile out;
  out.file_ = std::move(f).value();
  return out;
}

ProducerSlot* ProducerStateFile::slots() const {
  return reinterpret_cast<ProducerSlot*>(file_.data() + sizeof(ProducerStateHeader));
}

std::size_t ProducerStateFile::load_into(ProducerSequences& sequences) {
  std::size_t loaded = 0;
  slot_of_.clear();
  for (std::uint32_t i = 0; i < kProducerStateSlots; ++i) {
    const ProducerSlot& slot = slots()[i];
    if (!slot_valid(slot) || slot.count == 0) continue;
    if (auto [it, fresh] = slot_of_.emplace(slot.producer_id, i); !fresh) {
      // Two slots for one producer (cannot happen from save(); a damaged file): keep the
      // most recently written.
      if (slots()[it->second].written_ms >= slot.written_ms) continue;
      it->second = i;
    }
    ProducerState state;
    state.epoch = slot.epoch;
    state.count = slot.count;
    state.next = slot.next;
    for (int b = 0; b < ProducerState::kRememberedBatches; ++b) {
      const ProducerSlot::Batch& from = slot.batches[b];
      state.recent[static_cast<std::size_t>(b)] = {from.first_seq, from.last_seq,
                                                   from.first_offset};
    }
    sequences.restore(slot.producer_id, state);
    ++loaded;
  }
  return loaded;
}

void ProducerStateFile::save(std::int64_t producer_id, const ProducerState& state,
                             std::int64_t now_ms) {
  std::uint32_t index = 0;
  if (auto it = slot_of_.find(producer_id); it != slot_of_.end()) {
    index = it->second;
  } else {
    // A free slot, else the least recently written one.
    std::uint32_t oldest = 0;
    bool found_free = false;
    for (std::uint32_t i = 0; i < kProducerStateSlots; ++i) {
      const ProducerSlot& s = slots()[i];
      if (!slot_valid(s) || s.count == 0) {
        index = i;
        found_free = true;
        break;
      }
      if (s.written_ms < slots()[oldest].written_ms) oldest = i;
    }
    if (!found_free) {
      index = oldest;
      slot_of_.erase(slots()[oldest].producer_id);
    }
    slot_of_[producer_id] = index;
  }
  ProducerSlot slot{};
  slot.producer_id = producer_id;
  slot.written_ms = now_ms;
  slot.epoch = state.epoch;
  slot.count = static_cast<std::uint8_t>(state.count);
  slot.next = static_cast<std::uint8_t>(state.next);
  for (int b = 0; b < ProducerState::kRememberedBatches; ++b) {
    const ProducerState::Batch& from = state.recent[static_cast<std::size_t>(b)];
    slot.batches[b] = {from.first_seq, from.last_seq, from.first_offset};
  }
  slot.crc32c = slot_crc(slot);
  std::memcpy(&slots()[index], &slot, sizeof slot);
}

}  // namespace sluice::gateway
