// Kafka record batches: decoding the records field of a Produce request (RecordBatch v2, and
// the older magic 0/1 message sets up-converted to v2), and encoding the records of a Fetch
// response as uncompressed v2 batches. Formats: Kafka's "Record Batch" and "Message Sets"
// documentation (kafka.apache.org/documentation/#recordbatch); the summary the gateway cites
// is /work/shared/KAFKA-PROTOCOL.md, "Record formats".
//
// RecordBatch v2 (magic 2), all integers big-endian:
//
//   offset  size  field                  notes
//   ------  ----  ---------------------  -------------------------------------------------
//        0     8  baseOffset             the broker overwrites it; producers send 0
//        8     4  batchLength            bytes after this field (= total size - 12)
//       12     4  partitionLeaderEpoch   not covered by the CRC either
//       16     1  magic                  2
//       17     4  crc                    CRC-32C (Castagnoli) of bytes 21 .. end
//       21     2  attributes             bits 0-2 codec, 3 LogAppendTime, 4 transactional,
//                                        5 control, 6 delete horizon (ignored)
//       23     4  lastOffsetDelta        = recordCount - 1 for a producer batch
//       27     8  baseTimestamp          first record's timestamp (ms)
//       35     8  maxTimestamp
//       43     8  producerId             -1 when not idempotent
//       51     2  producerEpoch
//       53     4  baseSequence
//       57     4  recordCount
//       61     .  records                compressed as one stream when codec != none
//
//   Record (zig-zag varints; "varbytes" = varint length, -1 = null, then the bytes):
//     varint length (of what follows) | int8 attributes (unused) | varlong timestampDelta |
//     varint offsetDelta | varbytes key | varbytes value | varint headerCount |
//     headerCount x (varint keyLength + key (never null) | varbytes value)
//
// Message set v0/v1 (magic 0/1): a sequence of
//     int64 offset | int32 messageSize | uint32 crc (CRC-32, zlib's, of magic .. end) |
//     int8 magic | int8 attributes (bits 0-2 codec, bit 3 LogAppendTime in magic 1) |
//     [int64 timestamp, magic 1 only] | bytes key (int32 length, -1 null) | bytes value
//   A compressed "wrapper" message carries a whole inner message set, compressed, as its
//   value; inner offsets are absolute (magic 0) or relative 0..n-1 (magic 1). Up-conversion
//   numbers the records of one message set 0..n-1 in the order they appear.
//
// Errors are values: every decode failure is a DecodeError with the Kafka error code to return
// in the partition's Produce response and a message naming the cause. Nothing here throws on
// malformed input or reads outside the bytes it was given.
//
// Thread-safety: none needed; functions are pure and a BatchEncoder is used by one thread.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "kafka/compression.h"
#include "kafka/wire.h"

namespace sluice::kafka {

// Header layout (see the diagram above).
inline constexpr std::size_t kBatchHeaderSize = 61;
inline constexpr std::size_t kBatchLengthOffset = 8;
inline constexpr std::size_t kBatchLeaderEpochOffset = 12;
inline constexpr std::size_t kBatchMagicOffset = 16;
inline constexpr std::size_t kBatchCrcOffset = 17;
inline constexpr std::size_t kBatchAttributesOffset = 21;  // the CRC covers from here on
inline constexpr std::size_t kBatchLogOverhead = 12;       // baseOffset + batchLength

// Attributes bits of a v2 batch.
inline constexpr std::int16_t kAttrCodecMask = 0x07;
inline constexpr std::int16_t kAttrLogAppendTime = 0x08;
inline constexpr std::int16_t kAttrTransactional = 0x10;
inline constexpr std::int16_t kAttrControl = 0x20;

// Kafka error codes the decoder returns.
inline constexpr std::int16_t kErrCorruptMessage = 2;               // CRC, lengths, structure
inline constexpr std::int16_t kErrMessageTooLarge = 10;             // over max_decompressed_bytes
inline constexpr std::int16_t kErrUnsupportedCompressionType = 76;  // codec 5-7, zstd in magic<2
inline constexpr std::int16_t kErrInvalidRecord = 87;  // offset deltas, control batch, count 0

struct RecordHeaderView {
  std::string_view key;
  std::optional<std::string_view> value;
};

// One record, up-converted to v2 semantics. Views point into the bytes given to the decoder or
// into the owning DecodedBatch's storage.
struct RecordView {
  std::int64_t offset_delta = 0;
  // baseTimestamp + timestampDelta; the batch's maxTimestamp for a LogAppendTime batch; the
  // message's own timestamp for magic 1 (its wrapper's, if the wrapper is LogAppendTime);
  // -1 for magic 0, which has none (the broker's time applies).
  std::int64_t timestamp_ms = -1;
  std::optional<std::string_view> key;
  std::optional<std::string_view> value;
  std::span<const RecordHeaderView> headers;  // into DecodedBatch::header_storage
};

// One producer batch, up-converted to v2 semantics. Move-only: moving keeps every view valid
// (storage and header_storage are vectors, whose heap buffers move with them); a copy would
// point into the original, so copying is deleted.
struct DecodedBatch {
  std::int64_t base_offset = 0;
  std::int32_t partition_leader_epoch = -1;
  std::int8_t magic = 2;  // as received: 0, 1 or 2
  Codec codec = Codec::kNone;
  bool timestamp_log_append = false;
  bool transactional = false;
  bool control = false;
  std::int32_t last_offset_delta = -1;
  std::int64_t base_timestamp = -1;
  std::int64_t max_timestamp = -1;
  std::int64_t producer_id = -1;
  std::int16_t producer_epoch = -1;
  std::int32_t base_sequence = -1;
  std::vector<RecordView> records;
  // For magic 2: the whole batch as received (baseOffset .. end), e.g. to store it as it came;
  // a view into the decoder's input. Empty for an up-converted magic 0/1 message set.
  std::string_view wire;
  std::vector<char> storage;                     // decompressed record bytes, if compressed
  std::vector<RecordHeaderView> header_storage;  // every record's headers, in record order

  DecodedBatch() = default;
  DecodedBatch(DecodedBatch&&) noexcept = default;
  DecodedBatch& operator=(DecodedBatch&&) noexcept = default;
  DecodedBatch(const DecodedBatch&) = delete;
  DecodedBatch& operator=(const DecodedBatch&) = delete;
};

struct DecodeError {
  std::int16_t kafka_error = kErrCorruptMessage;
  // "record batch 0 at byte 0: CRC mismatch: stored 0x1234abcd, computed 0x5678ef01"
  std::string message;
};

using DecodeResult = std::variant<std::vector<DecodedBatch>, DecodeError>;

// The records field of one Produce partition: one or more magic-2 batches, or a magic 0/1
// message set (compressed wrappers included), each up-converted. A magic 0/1 message set
// becomes ONE DecodedBatch whose records have offset deltas 0..n-1 (its codec is the first
// wrapper's). Checks: CRCs (CRC-32C for v2, CRC-32 for v0/v1), every length against the bytes
// present, recordCount against the records present, each record's length against its fields,
// and the producer rules: offset deltas exactly 0..count-1 and lastOffsetDelta = count - 1,
// count > 0, no control batches, a non-empty field (INVALID_RECORD). `max_decompressed_bytes`
// bounds the total decompressed size of the whole field (MESSAGE_TOO_LARGE above it). Views in the
// result point into `records`, which must outlive it.
DecodeResult decode_produce_records(std::string_view records, std::size_t max_decompressed_bytes);

// The same decoder without the producer rules: for reading back batches stored as they came
// (any offset deltas, empty and control batches allowed; an empty field is no batches). Magic 2
// only (stored batches are v2).
DecodeResult decode_stored_batches(std::string_view records, std::size_t max_decompressed_bytes);

// Overwrites baseOffset of the v2 batch starting at `batch` (which the CRC does not cover), as
// the broker does when it appends a batch as it came.
void patch_base_offset(char* batch, std::int64_t base_offset);

// A record for the Fetch side: an absolute offset and timestamp.
struct RecordOut {
  std::int64_t offset = 0;
  std::int64_t timestamp_ms = -1;
  std::optional<std::string_view> key;
  std::optional<std::string_view> value;
  std::span<const RecordHeaderView> headers;
};

// Optional header fields of a batch to encode.
struct BatchOptions {
  std::int32_t partition_leader_epoch = -1;
  std::int64_t producer_id = -1;
  std::int16_t producer_epoch = -1;
  std::int32_t base_sequence = -1;
  bool log_append_time = false;
  bool transactional = false;
};

// Appends one uncompressed magic-2 batch to a ByteWriter: begin(), add() per record in
// increasing offset order (gaps allowed: the deltas say where each record is), finish(), which
// patches batchLength, lastOffsetDelta, maxTimestamp, recordCount and the CRC-32C. Until
// finish(), the writer may hold spare bytes after the batch (add() makes room in steps of
// kGrowBytes): write nothing else to it meanwhile, and ask size() for the batch's size.
//
//   BatchEncoder enc;
//   enc.begin(w, first_offset, first_timestamp);
//   for (...) enc.add(RecordOut{...});
//   enc.finish();
class BatchEncoder {
 public:
  void begin(ByteWriter& w, std::int64_t base_offset, std::int64_t base_timestamp_ms,
             const BatchOptions& options = {});
  void begin(ByteWriter& w, std::int64_t base_offset, std::int64_t base_timestamp_ms,
             std::int64_t producer_id, std::int16_t producer_epoch = -1,
             std::int32_t base_sequence = -1) {
    begin(w, base_offset, base_timestamp_ms,
          BatchOptions{.producer_id = producer_id,
                       .producer_epoch = producer_epoch,
                       .base_sequence = base_sequence});
  }
  // False (and nothing written) when the offset is not above the previous record's or its
  // delta from base_offset does not fit an int32.
  bool add(const RecordOut& record);
  // Completes the batch; returns its size in bytes. With no records added, the header is
  // removed again and 0 is returned (no empty batch is written).
  std::size_t finish();

  std::int32_t record_count() const { return count_; }
  // Bytes of the batch so far (header included); 0 outside begin/finish.
  std::size_t size() const { return w_ != nullptr ? end_ - start_ : 0; }

 private:
  static constexpr std::size_t kGrowBytes = 16 * 1024;  // well inside L1: filled, then written

  ByteWriter* w_ = nullptr;
  std::size_t start_ = 0;
  std::size_t end_ = 0;  // of the batch so far; the writer's bytes after it are spare
  std::int64_t base_offset_ = 0;
  std::int64_t base_timestamp_ = 0;
  std::int64_t max_timestamp_ = 0;
  std::int64_t last_delta_ = -1;
  std::int32_t count_ = 0;
};

}  // namespace sluice::kafka
