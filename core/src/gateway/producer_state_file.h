// ProducerStateFile: a partition's idempotent-producer state (ProducerSequences) in the file
// "producers.state" of the partition directory, so that it outlives a broker restart: a batch
// an idempotent producer resends after the restart is still acknowledged at its first offset
// instead of being written twice. (Kafka rebuilds this state from its log; Sluice's frames do
// not carry producer ids, so the gateway keeps it beside the log.)
//
//   0      8        12       16       20                                              64
//  +------+--------+--------+--------+------------------------------------------------+
//  |magic |version | slots  |slot_sz | reserved (0)                                   |
//  +------+--------+--------+--------+------------------------------------------------+
//  64: ProducerSlot[slots], 128 bytes each (below)
//
// The gateway writes a producer's slot after each batch it appends for that producer, under
// the partition writer's mutex, with plain stores: nobody reads the file while the broker
// runs, and the next broker reads it when it starts. Each slot carries a CRC-32C, so a slot
// torn by a crash in the middle of a write reads as free (that producer's state is lost, as
// it was before this file existed). One gateway writes a data directory.
//
// Thread-safety: none; the owner (PartitionWriter) serialises every call.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <unordered_map>

#include "producer_sequences.h"
#include "shm/mapped_file.h"
#include "sluice/status.h"

namespace sluice::gateway {

inline constexpr std::uint64_t kProducerStateMagic = 0x4452504349554c53ULL;  // "SLUICPRD"
inline constexpr std::uint32_t kProducerStateVersion = 1;
inline constexpr std::uint32_t kProducerStateSlots = 128;
inline constexpr char kProducerStateName[] = "producers.state";

struct ProducerStateHeader {
  std::uint64_t magic;
  std::uint32_t version;
  std::uint32_t slots;
  std::uint32_t slot_bytes;
  std::uint32_t reserved[11];
};
static_assert(sizeof(ProducerStateHeader) == 64);

//   0             8              16      18    19    20       24
//  +-------------+--------------+-------+-----+-----+--------+
//  | producer_id | written_ms   | epoch |count|next | rsvd   |
//  +-------------+--------------+-------+-----+-----+--------+
//  24: batches[5] { first_seq i32, last_seq i32, first_offset i64 }   (ring, newest at next-1)
//  104: reserved (0)   124: crc32c of bytes 0..124
struct ProducerSlot {
  struct Batch {
    std::int32_t first_seq;
    std::int32_t last_seq;
    std::int64_t first_offset;
  };
  std::int64_t producer_id;
  std::int64_t written_ms;  // wall clock of the last write: the least recent slot is reused
  std::int16_t epoch;
  std::uint8_t count;
  std::uint8_t next;
  std::uint32_t reserved0;
  Batch batches[ProducerState::kRememberedBatches];
  std::uint8_t reserved1[20];
  std::uint32_t crc32c;
};
static_assert(sizeof(ProducerSlot) == 128);
static_assert(offsetof(ProducerSlot, batches) == 24);
static_assert(offsetof(ProducerSlot, crc32c) == 124);

inline constexpr std::uint64_t kProducerStateFileBytes =
    sizeof(ProducerStateHeader) + std::uint64_t{kProducerStateSlots} * sizeof(ProducerSlot);

class ProducerStateFile {
 public:
  // Opens "producers.state" in `partition_dir`, creating it (mode `mode`) if it is missing.
  // A file of another magic, version or size is an error that names it.
  static Result<ProducerStateFile> open(const std::string& partition_dir, mode_t mode);

  // Every producer a valid slot holds, restored into `sequences`. Returns how many.
  std::size_t load_into(ProducerSequences& sequences);
  // Writes a producer's state into its slot; a producer without one takes a free slot, or the
  // least recently written (whose producer the next broker will then not know).
  void save(std::int64_t producer_id, const ProducerState& state, std::int64_t now_ms);

 private:
  ProducerSlot* slots() const;

  shm::MappedFile file_;
  std::unordered_map<std::int64_t, std::uint32_t> slot_of_;  // producer id -> slot
};

}  // namespace sluice::gateway
