#include "backpressure_gate.h"

#include "shm/segment.h"

namespace sluice {

bool BackpressureGate::may_grow(const TopicConfig& config, const std::string& topic,
                                std::int32_t partition, shm::PartitionLog& log) {
  if (config.slow_reader_policy != SlowReaderPolicy::kBackpressure || config.retention_bytes < 0)
    return true;
  auto bases = log.segment_bases();
  if (!bases || bases->size() < 2) return true;
  std::uint64_t per_segment =
      shm::Segment::header_bytes_for(log.segment_capacity(), log.control()->index_interval) +
      log.segment_capacity();
  if ((bases->size() + 1) * per_segment <= static_cast<std::uint64_t>(config.retention_bytes))
    return true;
  // The oldest segment holds only deleted records (DeleteRecords): retention drops it anyway.
  if (log.start_offset(*bases) >= (*bases)[1]) return true;
  if (!offsets_) {
    auto table = OffsetsTable::open_read_only(dir_.offsets_table());
    if (!table) return true;  // no group ever committed: nothing to protect
    offsets_ = std::make_unique<OffsetsTable>(std::move(table).value());
  }
  auto groups = offsets_->list_groups();
  if (!groups) return true;
  for (const auto& g : *groups) {
    auto c = offsets_->fetch(g, topic, partition);
    if (c && *c && (*c)->offset < (*bases)[1]) return false;  // this group still needs it
  }
  return true;
}

}  // namespace sluice
