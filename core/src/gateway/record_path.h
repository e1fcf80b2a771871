// The gateway's data path, one partition at a time, independent of request versions:
//
//   append_records: a Produce partition's records field -> decoded, up-converted, checked
//     (CRC, idempotent sequence, record size) -> one LogAppender::append_batch per Kafka
//     batch, so that the batch's records get consecutive offsets (base offset + delta);
//   read_records: a fetch cursor at an offset -> committed records re-encoded as one
//     uncompressed RecordBatch v2 (docs/kafka-gateway.md, "Stored form", has the measurement
//     behind storing records as frames rather than batches as they came).
//
// Timestamps: Kafka's are milliseconds, Sluice's nanoseconds: ms * 10^6 in, ns / 10^6 out.
//
// Thread-safety: any thread; append_records takes the partition writer's lock; read_records
// uses the caller's cursor (one connection's, one request at a time).
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

#include "connection_state.h"
#include "kafka/protocol.h"
#include "partition_directory.h"

namespace sluice::gateway {

struct AppendOutcome {
  kafka::ErrorCode error = kafka::ErrorCode::kNone;
  std::int64_t base_offset = -1;
  std::int64_t log_start_offset = -1;
  std::string message;  // why, for the log and Produce v8's error_message
};

// max_decompressed_bytes bounds what compressed batches may expand to.
AppendOutcome append_records(PartitionDirectory& directory,
                             const std::shared_ptr<TopicEntry>& topic, std::int32_t partition,
                             std::string_view records, std::size_t max_decompressed_bytes);

struct ReadOutcome {
  kafka::ErrorCode error = kafka::ErrorCode::kNone;
  std::int64_t high_watermark = -1;
  std::int64_t log_start_offset = -1;
  std::string message;
};

// Appends to `out` one batch of the records from fetch_offset on, stopping once it holds
// max_bytes (at least one record is returned whatever its size, as Kafka does).
ReadOutcome read_records(PartitionDirectory& directory, ConnectionState& connection,
                         const std::shared_ptr<TopicEntry>& topic, std::int32_t partition,
                         std::int64_t fetch_offset, std::int32_t max_bytes, std::string& out);

// The partition's earliest retained offset and its end offset (high watermark), or error.
struct OffsetRange {
  kafka::ErrorCode error = kafka::ErrorCode::kNone;
  std::int64_t start = -1;
  std::int64_t end = -1;
};
OffsetRange offset_range(PartitionDirectory& directory, const std::shared_ptr<TopicEntry>& topic,
                         std::int32_t partition);

// ListOffsets by time: the first offset whose timestamp is >= timestamp_ms, and that record's
// timestamp; offset -1 when there is none.
struct TimestampLookup {
  kafka::ErrorCode error = kafka::ErrorCode::kNone;
  std::int64_t offset = -1;
  std::int64_t timestamp_ms = -1;
};
TimestampLookup offset_for_time(PartitionDirectory& directory,
                                const std::shared_ptr<TopicEntry>& topic, std::int32_t partition,
                                std::int64_t timestamp_ms);

// A Sluice Status about a topic as the closest Kafka error code.
kafka::ErrorCode kafka_error_for(const Status& status);

}  // namespace sluice::gateway
