// Kafka RecordBatch v2: decoding (produce and stored batches) and BatchEncoder; magic 0/1
// message sets are in message_set.cc. Layout: the diagram in record_batch.h.
#include "kafka/record_batch.h"

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <limits>

#include "kafka/record_batch_internal.h"
#include "shm/crc32c.h"

namespace sluice::kafka {
namespace detail {

DecodeError error(std::int16_t code, std::string message) {
  return DecodeError{code, std::move(message)};
}

std::string hex32(std::uint32_t v) {
  char buf[16];
  std::snprintf(buf, sizeof buf, "0x%08x", v);
  return buf;
}

std::int64_t add_wrapping(std::int64_t a, std::int64_t b) {
  return static_cast<std::int64_t>(static_cast<std::uint64_t>(a) + static_cast<std::uint64_t>(b));
}

std::optional<DecodeError> decompress_into(Codec codec, std::string_view in, int magic,
                                           std::vector<char>& storage, DecodeBudget& budget,
                                           const std::string& where) {
  std::size_t before = storage.size();
  std::optional<CodecError> e = magic == 0 && codec == Codec::kLz4
                                    ? decompress_lz4_magic0(in, storage, budget.left)
                                    : decompress(codec, in, storage, budget.left);
  if (e) {
    std::int16_t code = e->kind == CodecError::Kind::kTooLarge      ? kErrMessageTooLarge
                        : e->kind == CodecError::Kind::kUnsupported ? kErrUnsupportedCompressionType
                                                                    : kErrCorruptMessage;
    std::string msg = where + ": " + e->message;
    if (e->kind == CodecError::Kind::kTooLarge)
      msg += " (the limit is for the decompressed records of the whole partition)";
    return error(code, std::move(msg));
  }
  budget.left -= storage.size() - before;
  return std::nullopt;
}

}  // namespace detail

namespace {

using detail::error;
using detail::hex32;

// The prefix of every error about the batch at byte `at` of the records field; built only when
// an error is returned (decoding a valid batch allocates no strings).
std::string batch_where(std::size_t at) {
  return "record batch at byte " + std::to_string(at);
}

// Parses `count` v2 records from `bytes` into `batch` (records, header_storage). The smallest
// record is 7 bytes: length, attributes, timestampDelta, offsetDelta, key, value, headerCount.
std::optional<DecodeError> parse_records(std::string_view bytes, std::int32_t count,
                                         bool producer_rules, DecodedBatch& batch,
                                         std::size_t batch_at) {
  auto where = [batch_at] { return batch_where(batch_at); };
  constexpr std::size_t kMinRecord = 7;
  if (static_cast<std::size_t>(count) > bytes.size() / kMinRecord)
    return error(kErrCorruptMessage, where() + ": recordCount " + std::to_string(count) +
                                         " cannot fit in " + std::to_string(bytes.size()) +
                                         " bytes of records");
  batch.records.reserve(static_cast<std::size_t>(count));
  const bool log_append = batch.timestamp_log_append;
  ByteReader r(bytes);
  for (std::int32_t i = 0; i < count; ++i) {
    if (r.remaining() == 0)
      return error(kErrCorruptMessage, where() + ": recordCount " + std::to_string(count) +
                                           " but only " + std::to_string(i) + " records present");
    std::int32_t length = r.varint();
    if (!r.ok())
      return error(kErrCorruptMessage,
                   where() + ": record " + std::to_string(i) + ": " + r.error());
    if (length < 0 || static_cast<std::size_t>(length) > r.remaining())
      return error(kErrCorruptMessage, where() + ": record " + std::to_string(i) + " length " +
                                           std::to_string(length) + " outside the " +
                                           std::to_string(r.remaining()) + " bytes left");
    ByteReader f(r.raw(static_cast<std::size_t>(length)));
    (void)f.i8();  // record attributes: unused
    std::int64_t ts_delta = f.varlong();
    std::int32_t offset_delta = f.varint();
    RecordView& rec = batch.records.emplace_back();  // reserved above
    rec.offset_delta = offset_delta;
    rec.timestamp_ms =
        log_append ? batch.max_timestamp : detail::add_wrapping(batch.base_timestamp, ts_delta);
    rec.key = f.varint_bytes();
    rec.value = f.varint_bytes();
    std::int32_t headers = f.varint();
    if (f.ok() && (headers < 0 || static_cast<std::size_t>(headers) > f.remaining() / 2))
      f.fail("header count negative or larger than the record");
    std::size_t first_header = batch.header_storage.size();
    for (std::int32_t h = 0; h < headers && f.ok(); ++h) {
      std::int32_t klen = f.varint();
      if (klen < 0) {
        f.fail("null or negative header key length");
        break;
      }
      RecordHeaderView hv;
      hv.key = f.raw(static_cast<std::size_t>(klen));
      hv.value = f.varint_bytes();
      batch.header_storage.push_back(hv);
    }
    if (!f.ok())
      return error(kErrCorruptMessage,
                   where() + ": record " + std::to_string(i) + ": " + f.error());
    if (f.remaining() != 0)
      return error(kErrCorruptMessage, where() + ": record " + std::to_string(i) + " has " +
                                           std::to_string(f.remaining()) +
                                           " bytes after its last header");
    if (producer_rules && offset_delta != i)
      return error(kErrInvalidRecord, where() + ": record " + std::to_string(i) +
                                          " has offset delta " + std::to_string(offset_delta) +
                                          "; a producer batch numbers its records 0..count-1");
    // The span's pointer is fixed up below, once header_storage stops growing.
    std::size_t n = batch.header_storage.size() - first_header;
    rec.headers = std::span<const RecordHeaderView>(batch.header_storage.data() + first_header, n);
  }
  if (r.remaining() != 0)
    return error(kErrCorruptMessage, where() + ": recordCount " + std::to_string(count) + " but " +
                                         std::to_string(r.remaining()) +
                                         " bytes remain after the last record");
  std::size_t next = 0;
  for (RecordView& rec : batch.records) {
    std::size_t n = rec.headers.size();
    rec.headers = std::span<const RecordHeaderView>(batch.header_storage.data() + next, n);
    next += n;
  }
  return std::nullopt;
}

// Decodes the v2 batch at the front of `in`; returns its size via `consumed`.
std::optional<DecodeError> decode_v2(std::string_view in, std::size_t at, bool producer_rules,
                                     detail::DecodeBudget& budget, DecodedBatch& batch,
                                     std::size_t& consumed) {
  auto where = [at] { return batch_where(at); };
  if (in.size() < kBatchLogOverhead)
    return error(kErrCorruptMessage,
                 where() + ": truncated header (" + std::to_string(in.size()) + " bytes left)");
  const char* p = in.data();
  auto length = static_cast<std::int32_t>(load_be32(p + kBatchLengthOffset));
  constexpr auto kMinLength = static_cast<std::int32_t>(kBatchHeaderSize - kBatchLogOverhead);
  if (length < kMinLength)
    return error(kErrCorruptMessage, where() + ": batchLength " + std::to_string(length) +
                                         " below the " + std::to_string(kMinLength) +
                                         "-byte header");
  std::size_t total = kBatchLogOverhead + static_cast<std::size_t>(length);
  if (total > in.size())
    return error(kErrCorruptMessage, where() + ": batchLength " + std::to_string(length) +
                                         " runs past the end of the records (" +
                                         std::to_string(in.size() - kBatchLogOverhead) +
                                         " bytes follow it)");
  consumed = total;
  ByteReader h(in.substr(0, kBatchHeaderSize));
  batch.base_offset = h.i64();
  (void)h.i32();  // batchLength, read above
  batch.partition_leader_epoch = h.i32();
  batch.magic = h.i8();
  if (batch.magic != 2)
    return error(kErrCorruptMessage,
                 where() + ": magic " + std::to_string(batch.magic) + " among magic 2 batches");
  std::uint32_t stored = h.u32();
  std::uint32_t computed =
      shm::crc32c<shm::CrcPath::kBulk>(p + kBatchAttributesOffset, total - kBatchAttributesOffset);
  if (stored != computed)
    return error(kErrCorruptMessage, where() + ": CRC mismatch: stored " + hex32(stored) +
                                         ", computed " + hex32(computed));
  std::int16_t attributes = h.i16();
  batch.last_offset_delta = h.i32();
  batch.base_timestamp = h.i64();
  batch.max_timestamp = h.i64();
  batch.producer_id = h.i64();
  batch.producer_epoch = h.i16();
  batch.base_sequence = h.i32();
  std::int32_t count = h.i32();
  batch.wire = in.substr(0, total);
  auto codec_id = attributes & kAttrCodecMask;
  batch.codec = static_cast<Codec>(codec_id);
  batch.timestamp_log_append = (attributes & kAttrLogAppendTime) != 0;
  batch.transactional = (attributes & kAttrTransactional) != 0;
  batch.control = (attributes & kAttrControl) != 0;
  if (codec_id > static_cast<int>(Codec::kZstd))
    return error(kErrUnsupportedCompressionType, where() + ": unknown compression codec " +
                                                     std::to_string(codec_id) + " in attributes " +
                                                     hex32(static_cast<std::uint16_t>(attributes)));
  if (count < 0)
    return error(kErrCorruptMessage, where() + ": negative recordCount " + std::to_string(count));
  if (producer_rules) {
    if (batch.control)
      return error(kErrInvalidRecord, where() + ": producers may not write control batches");
    if (count == 0) return error(kErrInvalidRecord, where() + ": a producer batch has no records");
    if (batch.last_offset_delta != count - 1)
      return error(kErrInvalidRecord, where() + ": lastOffsetDelta " +
                                          std::to_string(batch.last_offset_delta) +
                                          " but recordCount " + std::to_string(count));
  }
  std::string_view body = in.substr(kBatchHeaderSize, total - kBatchHeaderSize);
  if (batch.codec != Codec::kNone) {
    if (auto e = detail::decompress_into(batch.codec, body, 2, batch.storage, budget, where()))
      return e;
    body = std::string_view(batch.storage.data(), batch.storage.size());
  }
  return parse_records(body, count, producer_rules, batch, at);
}

DecodeResult decode(std::string_view records, std::size_t max_decompressed_bytes,
                    bool producer_rules) {
  std::vector<DecodedBatch> out;
  if (records.empty()) {
    if (producer_rules) return error(kErrInvalidRecord, "produce records field is empty");
    return out;
  }
  if (records.size() <= kBatchMagicOffset)
    return error(kErrCorruptMessage, "records field of " + std::to_string(records.size()) +
                                         " bytes is shorter than any batch header");
  auto magic = static_cast<std::int8_t>(records[kBatchMagicOffset]);
  detail::DecodeBudget budget{max_decompressed_bytes};
  if (magic == 0 || magic == 1) {
    if (!producer_rules)
      return error(kErrCorruptMessage,
                   "stored batches are magic 2, found magic " + std::to_string(magic));
    DecodedBatch batch;
    if (auto e = detail::decode_message_set(records, budget, batch)) return *e;
    out.push_back(std::move(batch));
    return out;
  }
  if (magic != 2)
    return error(kErrCorruptMessage,
                 "unknown magic " + std::to_string(magic) + " at byte 16 of the records");
  std::size_t at = 0;
  while (at < records.size()) {
    DecodedBatch batch;
    std::size_t consumed = 0;
    if (auto e = decode_v2(records.substr(at), at, producer_rules, budget, batch, consumed))
      return *e;
    out.push_back(std::move(batch));
    at += consumed;
  }
  return out;
}

// Zig-zag encoding of record fields; small magnitudes of either sign get short varints.
std::uint64_t zigzag32(std::int32_t v) {
  auto u = static_cast<std::uint32_t>(v);
  return (u << 1) ^ static_cast<std::uint32_t>(v >> 31);
}
std::uint64_t zigzag64(std::int64_t v) {
  auto u = static_cast<std::uint64_t>(v);
  return (u << 1) ^ static_cast<std::uint64_t>(v >> 63);
}
// Bytes of an unsigned varint, 7 bits a byte: (floor(log2) * 9 + 73) / 64 is ceil(bits / 7)
// without a loop or a division (protobuf's VarintSize); this runs for every field of a Fetch.
std::size_t uvarint_size(std::uint64_t u) {
  auto log2 = static_cast<std::uint32_t>(63 ^ __builtin_clzll(u | 1));
  return (log2 * 9 + 73) / 64;
}
char* put_uvarint(char* p, std::uint64_t u) {
  while (u >= 0x80) {
    *p++ = static_cast<char>((u & 0x7f) | 0x80);
    u >>= 7;
  }
  *p++ = static_cast<char>(u);
  return p;
}
// A varint length (-1: null) and the bytes: keys, values and header values.
std::size_t varbytes_size(const std::optional<std::string_view>& b) {
  if (!b) return 1;
  return uvarint_size(zigzag32(static_cast<std::int32_t>(b->size()))) + b->size();
}
char* put_varbytes(char* p, const std::optional<std::string_view>& b) {
  if (!b) return put_uvarint(p, zigzag32(-1));
  p = put_uvarint(p, zigzag32(static_cast<std::int32_t>(b->size())));
  if (!b->empty()) std::memcpy(p, b->data(), b->size());  // an empty view's data may be null
  return p + b->size();
}

}  // namespace

DecodeResult decode_produce_records(std::string_view records, std::size_t max_decompressed_bytes) {
  return decode(records, max_decompressed_bytes, true);
}

DecodeResult decode_stored_batches(std::string_view records, std::size_t max_decompressed_bytes) {
  return decode(records, max_decompressed_bytes, false);
}

void patch_base_offset(char* batch, std::int64_t base_offset) {
  std::uint64_t be = __builtin_bswap64(static_cast<std::uint64_t>(base_offset));
  std::memcpy(batch, &be, 8);
}

void BatchEncoder::begin(ByteWriter& w, std::int64_t base_offset, std::int64_t base_timestamp_ms,
                         const BatchOptions& options) {
  w_ = &w;
  start_ = w.size();
  end_ = start_ + kBatchHeaderSize;
  base_offset_ = base_offset;
  base_timestamp_ = base_timestamp_ms;
  max_timestamp_ = std::numeric_limits<std::int64_t>::min();
  last_delta_ = -1;
  count_ = 0;
  std::int16_t attributes = 0;
  if (options.log_append_time) attributes |= kAttrLogAppendTime;
  if (options.transactional) attributes |= kAttrTransactional;
  w.i64(base_offset);
  w.i32(0);  // batchLength, patched by finish()
  w.i32(options.partition_leader_epoch);
  w.i8(2);
  w.u32(0);  // crc
  w.i16(attributes);
  w.i32(0);  // lastOffsetDelta
  w.i64(base_timestamp_ms);
  w.i64(0);  // maxTimestamp
  w.i64(options.producer_id);
  w.i16(options.producer_epoch);
  w.i32(options.base_sequence);
  w.i32(0);  // recordCount
}

bool BatchEncoder::add(const RecordOut& record) {
  std::int64_t delta64 = record.offset - base_offset_;
  if (delta64 <= last_delta_ || delta64 > std::numeric_limits<std::int32_t>::max()) return false;
  auto delta = static_cast<std::int32_t>(delta64);
  const std::uint64_t ts_delta =
      zigzag64(detail::add_wrapping(record.timestamp_ms, -base_timestamp_));
  const std::uint64_t header_count = zigzag32(static_cast<std::int32_t>(record.headers.size()));
  std::size_t body = 1 + uvarint_size(ts_delta) + uvarint_size(zigzag32(delta)) +
                     varbytes_size(record.key) + varbytes_size(record.value) +
                     uvarint_size(header_count);
  for (const RecordHeaderView& h : record.headers)
    body += varbytes_size(h.key) + varbytes_size(h.value);
  const std::uint64_t length = zigzag32(static_cast<std::int32_t>(body));
  // The record's size is known, so its fields are plain stores into room made beforehand:
  // appending field by field costs a capacity check and a call per field, and this is the
  // Fetch path's inner loop. The buffer grows (zero-filled: std::string has no uninitialised
  // growth) kGrowBytes at a time, not per record; finish() trims what is left over.
  std::string& out = w_->buffer();
  std::size_t n = uvarint_size(length) + body;
  if (out.size() - end_ < n) out.resize(std::max(end_ + n, out.size() + kGrowBytes));
  char* p = out.data() + end_;
  end_ += n;
  p = put_uvarint(p, length);
  *p++ = 0;  // attributes
  p = put_uvarint(p, ts_delta);
  p = put_uvarint(p, zigzag32(delta));
  p = put_varbytes(p, record.key);
  p = put_varbytes(p, record.value);
  p = put_uvarint(p, header_count);
  for (const RecordHeaderView& h : record.headers) {
    p = put_varbytes(p, h.key);  // never null
    p = put_varbytes(p, h.value);
  }
  last_delta_ = delta64;
  max_timestamp_ = std::max(max_timestamp_, record.timestamp_ms);
  ++count_;
  return true;
}

std::size_t BatchEncoder::finish() {
  ByteWriter& w = *w_;
  w_ = nullptr;
  if (count_ == 0) {
    w.buffer().resize(start_);
    return 0;
  }
  w.buffer().resize(end_);
  std::size_t total = end_ - start_;
  char* p = w.buffer().data() + start_;
  auto put32 = [p](std::size_t at, std::uint32_t v) {
    std::uint32_t be = __builtin_bswap32(v);
    std::memcpy(p + at, &be, 4);
  };
  put32(kBatchLengthOffset, static_cast<std::uint32_t>(total - kBatchLogOverhead));
  put32(23, static_cast<std::uint32_t>(last_delta_));
  std::uint64_t max_be = __builtin_bswap64(static_cast<std::uint64_t>(max_timestamp_));
  std::memcpy(p + 35, &max_be, 8);
  put32(57, static_cast<std::uint32_t>(count_));
  put32(kBatchCrcOffset, shm::crc32c<shm::CrcPath::kBulk>(p + kBatchAttributesOffset,
                                                          total - kBatchAttributesOffset));
  return total;
}

}  // namespace sluice::kafka
