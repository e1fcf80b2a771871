// ProducerStateFile: a partition's idempotent-producer state (ProducerSequences) in the
// partition directory's "producers.tbl", so that it outlives a broker restart: a batch an
// idempotent producer resends after the restart is still acknowledged at its first offset
// instead of being written twice. (Kafka rebuilds this state from its log; Sluice's frames do
// not carry producer ids, so the gateway keeps it beside the log.)
//
// The file is a shm::SharedTable (docs/format.md, "Shared table"; schema "PRD1"): a crash at
// any instruction leaves each entry's old or new value. Key: the producer id (8 bytes, little-
// endian). Value, 96 bytes, little-endian:
//
//   0             8       10    11    12       16
//  +-------------+-------+-----+-----+--------+-------------------------------------------+
//  | written_ms  | epoch |count|next | 0      | batches[5] {first_seq i32, last_seq i32,  |
//  |             |       |     |     |        |             first_offset i64}  (16..96)   |
//  +-------------+-------+-----+-----+--------+-------------------------------------------+
//
// The gateway writes a producer's entry after each batch it appends for that producer (the
// table's one writer: it holds the file's flock) and reads them all back the first time it
// writes to the partition after a start. At most kMaxProducers entries: a new producer beyond
// them replaces the least recently written.
//
// Thread-safety: none; the owner (PartitionWriter) serialises every call.
#pragma once

#include <sys/types.h>

#include <cstddef>
#include <cstdint>
#include <string>

#include "producer_sequences.h"
#include "shm/shared_table.h"
#include "sluice/status.h"

namespace sluice::gateway {

inline constexpr char kProducerStateName[] = "producers.tbl";

class ProducerStateFile {
 public:
  static constexpr std::size_t kMaxProducers = 128;
  static const shm::TableLayout kLayout;

  // Opens (creating it with mode `mode` if missing) the table in `partition_dir`.
  static Result<ProducerStateFile> open(const std::string& partition_dir, mode_t mode);

  // Every producer the table holds, restored into `sequences`. Returns how many.
  Result<std::size_t> load_into(ProducerSequences& sequences);
  // Writes a producer's state; a new producer beyond kMaxProducers replaces the least
  // recently written one.
  Status save(std::int64_t producer_id, const ProducerState& state, std::int64_t now_ms);

 private:
  explicit ProducerStateFile(shm::SharedTable table) : table_(std::move(table)) {}

  shm::SharedTable table_;
};

}  // namespace sluice::gateway
