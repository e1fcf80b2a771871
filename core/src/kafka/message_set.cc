// Kafka magic 0/1 message sets, up-converted to one v2-style DecodedBatch on produce, as
// Kafka 3+ does. Layout: the "Message set v0/v1" diagram in record_batch.h.
//
// A message set is decoded in two passes: the first validates every top-level message and
// decompresses each compressed wrapper's value into batch.storage (which may reallocate as it
// grows); the second, once storage is final, parses the inner message sets out of it, so every
// view into storage is taken after the last reallocation.
#include <zlib.h>

#include <algorithm>
#include <climits>
#include <cstring>

#include "kafka/record_batch.h"
#include "kafka/record_batch_internal.h"

namespace sluice::kafka::detail {
namespace {

constexpr std::size_t kMessageLogOverhead = 12;  // offset (8) + messageSize (4)
constexpr std::int8_t kAttrCodecMask0 = 0x07;
constexpr std::int8_t kAttrLogAppendTime0 = 0x08;

struct Message {
  std::int8_t magic = 0;
  std::int8_t attributes = 0;
  std::int64_t timestamp = -1;  // magic 1 only
  std::optional<std::string_view> key;
  std::optional<std::string_view> value;
};

std::uint32_t crc32_zlib(const char* p, std::size_t n) {
  uLong crc = crc32(0L, Z_NULL, 0);
  while (n > 0) {
    auto chunk = static_cast<uInt>(std::min<std::size_t>(n, UINT_MAX));
    crc = crc32(crc, reinterpret_cast<const Bytef*>(p), chunk);
    p += chunk;
    n -= chunk;
  }
  return static_cast<std::uint32_t>(crc);
}

// Parses the message at the front of `in`; `consumed` is its size (offset field included).
std::optional<DecodeError> parse_message(std::string_view in, const std::string& where, Message& m,
                                         std::size_t& consumed) {
  if (in.size() < kMessageLogOverhead)
    return error(kErrCorruptMessage, where + ": truncated message header (" +
                                         std::to_string(in.size()) + " bytes left)");
  ByteReader h(in);
  (void)h.i64();  // offset: up-conversion numbers records by position
  std::int32_t size = h.i32();
  // crc, magic, attributes, key length, value length: 14 bytes even for magic 0.
  if (size < 14)
    return error(kErrCorruptMessage,
                 where + ": messageSize " + std::to_string(size) + " below the 14-byte minimum");
  if (static_cast<std::size_t>(size) > in.size() - kMessageLogOverhead)
    return error(kErrCorruptMessage, where + ": messageSize " + std::to_string(size) +
                                         " runs past the end of the message set (" +
                                         std::to_string(in.size() - kMessageLogOverhead) +
                                         " bytes follow it)");
  consumed = kMessageLogOverhead + static_cast<std::size_t>(size);
  ByteReader r(in.substr(kMessageLogOverhead, static_cast<std::size_t>(size)));
  std::uint32_t stored = r.u32();
  std::uint32_t computed =
      crc32_zlib(in.data() + kMessageLogOverhead + 4, static_cast<std::size_t>(size) - 4);
  if (stored != computed)
    return error(kErrCorruptMessage, where + ": CRC mismatch: stored " + hex32(stored) +
                                         ", computed " + hex32(computed));
  m.magic = r.i8();
  m.attributes = r.i8();
  if (m.magic != 0 && m.magic != 1)
    return error(kErrCorruptMessage,
                 where + ": magic " + std::to_string(m.magic) + " in a magic 0/1 message set");
  if (m.magic == 1) m.timestamp = r.i64();
  m.key = r.nullable_bytes();
  m.value = r.nullable_bytes();
  if (!r.ok()) return error(kErrCorruptMessage, where + ": " + r.error());
  if (r.remaining() != 0)
    return error(kErrCorruptMessage,
                 where + ": " + std::to_string(r.remaining()) + " bytes after the value");
  return std::nullopt;
}

// A top-level message: a record as it is, or a wrapper whose inner set is in storage.
struct Entry {
  Message message;
  bool wrapper = false;
  std::size_t inner_begin = 0;
  std::size_t inner_size = 0;
  std::size_t at = 0;  // byte position in the records field
};

void add_record(DecodedBatch& batch, const Message& m, std::int64_t timestamp) {
  RecordView rec;
  rec.offset_delta = static_cast<std::int64_t>(batch.records.size());
  rec.timestamp_ms = timestamp;
  rec.key = m.key;
  rec.value = m.value;
  batch.records.push_back(rec);
}

}  // namespace

std::optional<DecodeError> decode_message_set(std::string_view records, DecodeBudget& budget,
                                              DecodedBatch& batch) {
  std::vector<Entry> entries;
  bool first = true;
  for (std::size_t at = 0; at < records.size();) {
    const std::string where = "message at byte " + std::to_string(at);
    Entry e;
    e.at = at;
    std::size_t consumed = 0;
    if (auto err = parse_message(records.substr(at), where, e.message, consumed)) return err;
    at += consumed;
    auto codec_id = e.message.attributes & kAttrCodecMask0;
    if (first) {
      batch.magic = e.message.magic;
      first = false;
    }
    if (codec_id != 0) {
      if (codec_id > static_cast<int>(Codec::kLz4))
        return error(kErrUnsupportedCompressionType,
                     where + ": compression codec " + std::to_string(codec_id) + " (" +
                         codec_name(static_cast<Codec>(codec_id)) + ") in a magic " +
                         std::to_string(e.message.magic) +
                         " message; magic 0/1 allow gzip, snappy and lz4 only");
      if (!e.message.value)
        return error(kErrCorruptMessage, where + ": compressed message with a null value");
      auto codec = static_cast<Codec>(codec_id);
      if (batch.codec == Codec::kNone) batch.codec = codec;
      e.wrapper = true;
      e.inner_begin = batch.storage.size();
      if (auto err = decompress_into(codec, *e.message.value, e.message.magic, batch.storage,
                                     budget, where))
        return err;
      e.inner_size = batch.storage.size() - e.inner_begin;
    }
    entries.push_back(e);
  }

  for (const Entry& e : entries) {
    const Message& m = e.message;
    if (!e.wrapper) {
      add_record(batch, m, m.magic == 1 ? m.timestamp : -1);
      continue;
    }
    const bool wrapper_log_append = m.magic == 1 && (m.attributes & kAttrLogAppendTime0) != 0;
    std::string_view inner(batch.storage.data() + e.inner_begin, e.inner_size);
    std::size_t before = batch.records.size();
    for (std::size_t at = 0; at < inner.size();) {
      const std::string where = "inner message at byte " + std::to_string(at) +
                                " of the compressed message at byte " + std::to_string(e.at);
      Message im;
      std::size_t consumed = 0;
      if (auto err = parse_message(inner.substr(at), where, im, consumed)) return err;
      at += consumed;
      if ((im.attributes & kAttrCodecMask0) != 0)
        return error(kErrCorruptMessage, where + ": nested compression");
      if (im.magic != m.magic)
        return error(kErrCorruptMessage, where + ": magic " + std::to_string(im.magic) +
                                             " inside a magic " + std::to_string(m.magic) +
                                             " wrapper");
      std::int64_t ts = m.magic == 0 ? -1 : wrapper_log_append ? m.timestamp : im.timestamp;
      add_record(batch, im, ts);
    }
    if (batch.records.size() == before)
      return error(kErrInvalidRecord,
                   "compressed message at byte " + std::to_string(e.at) + " holds no messages");
  }

  if (batch.records.empty()) return error(kErrInvalidRecord, "message set holds no messages");
  if (batch.records.size() > static_cast<std::size_t>(INT32_MAX))
    return error(kErrInvalidRecord, "message set holds more than 2^31 messages");
  batch.base_offset = 0;
  batch.partition_leader_epoch = -1;
  batch.last_offset_delta = static_cast<std::int32_t>(batch.records.size() - 1);
  batch.base_timestamp = batch.records.front().timestamp_ms;
  batch.max_timestamp = -1;
  for (const RecordView& r : batch.records)
    batch.max_timestamp = std::max(batch.max_timestamp, r.timestamp_ms);
  return std::nullopt;
}

}  // namespace sluice::kafka::detail
