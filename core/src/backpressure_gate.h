// BackpressureGate: the producer side of the `backpressure` slow-reader policy. Asked on a
// partition log's roll path (shm::LogOptions::roll_gate): may the log grow by one more
// segment? Yes while it stays within retention.bytes, or when every group that committed on
// the partition has consumed its oldest segment (so retention may delete it); otherwise the
// append is back-pressured. Used by the Producer and by the Kafka gateway.
//
// Thread-safety: none; the caller serialises calls (a Producer is one thread; the gateway
// holds a mutex).
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "data_dir.h"
#include "offsets_table.h"
#include "shm/partition_log.h"
#include "sluice/types.h"

namespace sluice {

class BackpressureGate {
 public:
  explicit BackpressureGate(DataDir dir) : dir_(std::move(dir)) {}

  bool may_grow(const TopicConfig& config, const std::string& topic, std::int32_t partition,
                shm::PartitionLog& log);

 private:
  DataDir dir_;
  std::unique_ptr<OffsetsTable> offsets_;  // read-only, opened on first need
};

}  // namespace sluice
