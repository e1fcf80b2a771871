#include "record_path.h"

#include <limits>
#include <optional>
#include <vector>

#include "kafka/record_batch.h"
#include "shm/log_reader.h"

namespace sluice::gateway {

using kafka::ErrorCode;

namespace {

constexpr std::int64_t kNsPerMs = 1'000'000;

// Kafka ms -> Sluice ns, saturating: a hostile timestamp must not overflow.
std::int64_t ms_to_ns(std::int64_t ms) {
  constexpr std::int64_t kMax = std::numeric_limits<std::int64_t>::max() / kNsPerMs;
  if (ms > kMax) return std::numeric_limits<std::int64_t>::max();
  if (ms < -kMax) return std::numeric_limits<std::int64_t>::min();
  return ms * kNsPerMs;
}

ErrorCode from_append(shm::AppendOutcome o) {
  switch (o) {
    case shm::AppendOutcome::kOk:
      return ErrorCode::kNone;
    case shm::AppendOutcome::kRecordTooLarge:
      return ErrorCode::kRecordListTooLarge;
    case shm::AppendOutcome::kRollFailed:
      return ErrorCode::kKafkaStorageError;
    case shm::AppendOutcome::kReadOnly:
      return ErrorCode::kTopicAuthorizationFailed;
    case shm::AppendOutcome::kBackPressured:
      // Retriable for every client: they back off and send again.
      return ErrorCode::kRequestTimedOut;
    case shm::AppendOutcome::kClosed:
      return ErrorCode::kUnknownTopicOrPartition;  // deleted while we held its writer
  }
  return ErrorCode::kUnknownServerError;
}

}  // namespace

ErrorCode kafka_error_for(const Status& status) {
  switch (status.code()) {
    case sluice::ErrorCode::kOk:
      return ErrorCode::kNone;
    case sluice::ErrorCode::kUnknownTopic:
    case sluice::ErrorCode::kNotFound:
      return ErrorCode::kUnknownTopicOrPartition;
    case sluice::ErrorCode::kPermissionDenied:
      return ErrorCode::kTopicAuthorizationFailed;
    case sluice::ErrorCode::kRecordTooLarge:
      return ErrorCode::kMessageTooLarge;
    case sluice::ErrorCode::kOutOfRange:
      return ErrorCode::kOffsetOutOfRange;
    case sluice::ErrorCode::kAlreadyExists:
      return ErrorCode::kTopicAlreadyExists;
    case sluice::ErrorCode::kInvalidArgument:
      return ErrorCode::kInvalidRequest;
    case sluice::ErrorCode::kBackPressured:
      return ErrorCode::kRequestTimedOut;
    case sluice::ErrorCode::kIo:
    case sluice::ErrorCode::kCorrupt:
      return ErrorCode::kKafkaStorageError;
    default:
      return ErrorCode::kUnknownServerError;
  }
}

AppendOutcome append_records(PartitionDirectory& directory,
                             const std::shared_ptr<TopicEntry>& topic, std::int32_t partition,
                             std::string_view records, std::size_t max_decompressed_bytes) {
  AppendOutcome out;
  auto decoded = kafka::decode_produce_records(records, max_decompressed_bytes);
  if (auto* err = std::get_if<kafka::DecodeError>(&decoded)) {
    out.error = static_cast<ErrorCode>(err->kafka_error);
    out.message = err->message;
    return out;
  }
  auto& batches = std::get<std::vector<kafka::DecodedBatch>>(decoded);
  if (batches.empty()) {
    out.error = ErrorCode::kInvalidRecord;
    out.message = "the records field holds no record batch";
    return out;
  }
  auto w = directory.writer(topic, partition);
  if (!w) {
    out.error = kafka_error_for(w.status());
    out.message = w.status().message();
    return out;
  }
  PartitionWriter& writer = **w;
  const std::uint64_t max_record = topic->config.max_record_bytes;

  // Every batch is checked before the first is written: a partition's records field is
  // appended whole or not at all, as Kafka does (a client that retries after an error would
  // otherwise write the good batches twice).
  struct Planned {
    kafka::DecodedBatch* batch;
    std::int64_t duplicate_of = -1;  // >= 0: already appended (an idempotent retry)
    std::vector<shm::HeaderView> headers;
    std::vector<shm::BatchRecord> frames;
  };
  std::vector<Planned> plan;
  plan.reserve(batches.size());
  std::lock_guard<std::mutex> lock(writer.mutex);
  // Sequences as they will be once the batches before this one are appended: those of this
  // request's producers only, copied in as they come (not the whole partition's, up to
  // ProducerSequences::kMaxProducers, for every request of several batches).
  std::optional<ProducerSequences> scratch;
  if (batches.size() > 1) scratch.emplace();
  for (kafka::DecodedBatch& batch : batches) {
    Planned& p = plan.emplace_back(Planned{&batch, -1, {}, {}});
    if (batch.transactional) {
      out.error = ErrorCode::kInvalidTxnState;
      out.message = "transactional batches are not supported by the Sluice gateway";
      return out;
    }
    const bool idempotent = batch.producer_id >= 0 && batch.base_sequence >= 0;
    auto count = static_cast<std::int32_t>(batch.records.size());
    if (idempotent) {
      if (scratch && scratch->find(batch.producer_id) == nullptr)
        if (const ProducerState* known = writer.sequences.find(batch.producer_id))
          scratch->restore(batch.producer_id, *known);
      const ProducerSequences& seqs = scratch ? *scratch : writer.sequences;
      SequenceCheck c =
          seqs.check(batch.producer_id, batch.producer_epoch, batch.base_sequence, count);
      if (c.verdict == SequenceVerdict::kOutOfOrder) {
        out.error = ErrorCode::kOutOfOrderSequenceNumber;
        out.message = "producer " + std::to_string(batch.producer_id) + ": sequence " +
                      std::to_string(batch.base_sequence) + " is not the next one expected";
        return out;
      }
      if (c.verdict == SequenceVerdict::kFencedEpoch) {
        out.error = ErrorCode::kInvalidProducerEpoch;
        out.message = "producer " + std::to_string(batch.producer_id) + ": epoch " +
                      std::to_string(batch.producer_epoch) + " is older than the current one";
        return out;
      }
      if (c.verdict == SequenceVerdict::kDuplicate) {
        p.duplicate_of = c.duplicate_of;
        continue;
      }
      if (scratch)
        scratch->appended(batch.producer_id, batch.producer_epoch, batch.base_sequence, count, 0);
    }
    // Headers of every record first, so that the spans below stay put.
    for (const kafka::RecordView& r : batch.records)
      for (const kafka::RecordHeaderView& h : r.headers) p.headers.push_back({h.key, h.value});
    p.frames.reserve(batch.records.size());
    std::size_t h = 0;
    for (const kafka::RecordView& r : batch.records) {
      shm::BatchRecord& f = p.frames.emplace_back();
      f.meta.key = r.key;
      f.meta.headers = std::span<const shm::HeaderView>(p.headers.data() + h, r.headers.size());
      h += r.headers.size();
      f.meta.null_value = !r.value.has_value();
      f.meta.timestamp_ns =
          r.timestamp_ms >= 0 && !batch.timestamp_log_append ? ms_to_ns(r.timestamp_ms) : -1;
      f.value = r.value.value_or(std::string_view{});
      std::uint64_t size = f.value.size() + f.meta.encoded_prefix_bytes();
      if (size > max_record) {
        out.error = ErrorCode::kMessageTooLarge;
        out.message = "record of " + std::to_string(size) + " bytes is larger than topic " +
                      topic->name + " allows (max.message.bytes " + std::to_string(max_record) +
                      ")";
        return out;
      }
    }
  }

  for (Planned& p : plan) {
    kafka::DecodedBatch& batch = *p.batch;
    if (p.duplicate_of >= 0) {
      if (out.base_offset < 0) out.base_offset = p.duplicate_of;
      continue;
    }
    shm::AppendResult r = writer.appender->append_batch(p.frames);
    if (r.outcome != shm::AppendOutcome::kOk) {
      // Only a failure of the log itself (a full disk, a refused roll) lands here, possibly
      // after earlier batches of this request were written.
      out.error = from_append(r.outcome);
      out.message = "topic " + topic->name + " partition " + std::to_string(partition) + ": " +
                    shm::describe(r.outcome);
      if (r.outcome == shm::AppendOutcome::kRollFailed && !writer.appender->last_error().is_ok())
        out.message += ": " + writer.appender->last_error().message();
      return out;
    }
    if (batch.producer_id >= 0 && batch.base_sequence >= 0)
      writer.appended(batch.producer_id, batch.producer_epoch, batch.base_sequence,
                      static_cast<std::int32_t>(batch.records.size()), r.offset);
    if (out.base_offset < 0) out.base_offset = r.offset;
  }
  out.log_start_offset = directory.log_start(topic, partition);
  return out;
}

namespace {

// Opens (or re-opens, after the topic was re-created) the connection's cursor.
Result<FetchCursor*> cursor_for(PartitionDirectory& directory, ConnectionState& connection,
                                const std::shared_ptr<TopicEntry>& topic, std::int32_t partition) {
  FetchCursor& c = connection.cursors[{topic->name, partition}];
  if (c.reader && c.topic_inode == topic->inode) return &c;
  auto log = directory.log(topic, partition);
  if (!log) return log.status();
  auto reader = shm::LogReader::open(*log);
  if (!reader) return reader.status();
  c.log = *log;
  c.reader.emplace(std::move(reader).value());
  c.topic_inode = topic->inode;
  return &c;
}

}  // namespace

OffsetRange offset_range(PartitionDirectory& directory, const std::shared_ptr<TopicEntry>& topic,
                         std::int32_t partition) {
  OffsetRange out;
  auto log = directory.log(topic, partition);
  if (!log) {
    out.error = kafka_error_for(log.status());
    return out;
  }
  out.end = (*log)->end_offset();
  auto bases = (*log)->segment_bases();
  out.start = bases && !bases->empty() ? (*log)->start_offset(*bases) : out.end;
  // The first segment may begin with padding or have been recycled: ask a reader.
  auto reader = shm::LogReader::open(*log);
  if (reader && reader->seek_to_beginning()) out.start = reader->position();
  if (out.start > out.end) out.start = out.end;
  return out;
}

ReadOutcome read_records(PartitionDirectory& directory, ConnectionState& connection,
                         const std::shared_ptr<TopicEntry>& topic, std::int32_t partition,
                         std::int64_t fetch_offset, std::int32_t max_bytes, std::string& out) {
  ReadOutcome result;
  auto cursor = cursor_for(directory, connection, topic, partition);
  if (!cursor) {
    result.error = kafka_error_for(cursor.status());
    result.message = cursor.status().message();
    return result;
  }
  shm::LogReader& reader = *(*cursor)->reader;
  result.high_watermark = (*cursor)->log->end_offset();
  result.log_start_offset = directory.log_start(topic, partition);
  if (fetch_offset < result.log_start_offset) {
    // Deleted (DeleteRecords), though a cursor already past its seek could still read it.
    result.error = ErrorCode::kOffsetOutOfRange;
    result.message = "offset " + std::to_string(fetch_offset) + " is before the log start offset " +
                     std::to_string(result.log_start_offset);
    return result;
  }
  if (reader.position() != fetch_offset || !reader.segment_current()) {
    if (Status s = reader.seek(fetch_offset); !s) {
      OffsetRange range = offset_range(directory, topic, partition);
      result.log_start_offset = range.start;
      // At the end exactly is not out of range: nothing to return yet.
      if (fetch_offset == range.end) return result;
      result.error = ErrorCode::kOffsetOutOfRange;
      result.message = s.message();
      return result;
    }
  }
  kafka::ByteWriter w(std::move(out));
  kafka::BatchEncoder encoder;
  bool begun = false;
  std::vector<kafka::RecordHeaderView> headers;
  const auto limit = static_cast<std::size_t>(std::max(max_bytes, 1));
  for (;;) {
    shm::PollResult r = reader.poll(
        [&](const shm::RecordView& rec) {
          std::int64_t ts = rec.timestamp_ns / kNsPerMs;
          if (!begun) {
            encoder.begin(w, rec.offset, ts);
            begun = true;
          }
          headers.clear();
          if (rec.has_headers()) {
            auto it = rec.headers();
            shm::HeaderView hv;
            while (it.next(hv)) headers.push_back({hv.name, hv.value});
          }
          encoder.add(kafka::RecordOut{rec.offset, ts, rec.key, rec.value, headers});
        },
        1);
    if (r.outcome == shm::ReadOutcome::kOutOfRange) {
      if (!begun) {
        result.error = ErrorCode::kOffsetOutOfRange;
        result.message = reader.error().message();
      }
      break;
    }
    if (r.outcome == shm::ReadOutcome::kCorrupt) {
      if (!begun) {
        result.error = ErrorCode::kKafkaStorageError;
        result.message = reader.error().message();
      }
      break;
    }
    if (r.records == 0 || encoder.size() >= limit) break;
  }
  if (begun) encoder.finish();
  out = w.take();
  return result;
}

TimestampLookup offset_for_time(PartitionDirectory& directory,
                                const std::shared_ptr<TopicEntry>& topic, std::int32_t partition,
                                std::int64_t timestamp_ms) {
  TimestampLookup out;
  auto log = directory.log(topic, partition);
  if (!log) {
    out.error = kafka_error_for(log.status());
    return out;
  }
  auto reader = shm::LogReader::open(*log);
  if (!reader) {
    out.error = kafka_error_for(reader.status());
    return out;
  }
  if (Status s = reader->seek_to_timestamp(ms_to_ns(timestamp_ms)); !s) {
    out.error = kafka_error_for(s);
    return out;
  }
  reader->poll(
      [&](const shm::RecordView& rec) {
        out.offset = rec.offset;
        out.timestamp_ms = rec.timestamp_ns / kNsPerMs;
      },
      1);
  return out;
}

}  // namespace sluice::gateway
