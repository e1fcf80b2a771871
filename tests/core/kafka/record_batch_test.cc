// Kafka record batches (core/src/kafka/record_batch.h): BatchEncoder against hand-computed
// golden bytes, encode/decode round trips, every codec inside a batch, magic 0/1 message sets
// up-converted, and every kind of corrupt input giving a DecodeError that names its cause.
#include "kafka/record_batch.h"

#include <zlib.h>

#include <catch2/catch.hpp>
#include <cstring>
#include <iterator>
#include <limits>
#include <random>
#include <string>
#include <vector>

#include "kafka/compression.h"
#include "shm/crc32c.h"

using namespace sluice::kafka;

namespace {

constexpr std::size_t kLimit = 64 << 20;

const std::vector<DecodedBatch>& batches_of(const DecodeResult& r) {
  if (const auto* e = std::get_if<DecodeError>(&r)) FAIL("decode failed: " << e->message);
  return std::get<std::vector<DecodedBatch>>(r);
}

DecodeError error_of(const DecodeResult& r) {
  REQUIRE(std::holds_alternative<DecodeError>(r));
  return std::get<DecodeError>(r);
}

void put_be(std::string& s, std::size_t at, std::uint64_t v, int bytes) {
  for (int i = bytes - 1; i >= 0; --i) {
    s[at + static_cast<std::size_t>(i)] = static_cast<char>(v & 0xff);
    v >>= 8;
  }
}

void fix_crc(std::string& batch) {
  std::uint32_t crc = sluice::shm::crc32c(batch.data() + kBatchAttributesOffset,
                                          batch.size() - kBatchAttributesOffset);
  put_be(batch, kBatchCrcOffset, crc, 4);
}

struct Rec {
  std::int64_t offset;
  std::int64_t ts;
  std::optional<std::string> key, value;
  std::vector<std::pair<std::string, std::optional<std::string>>> headers;
};

std::string encode(const std::vector<Rec>& recs, std::int64_t base_offset, std::int64_t base_ts,
                   const BatchOptions& options = {}) {
  ByteWriter w;
  BatchEncoder enc;
  enc.begin(w, base_offset, base_ts, options);
  for (const Rec& r : recs) {
    std::vector<RecordHeaderView> hs;
    for (const auto& [k, v] : r.headers)
      hs.push_back({k, v ? std::optional<std::string_view>(*v) : std::nullopt});
    RecordOut out;
    out.offset = r.offset;
    out.timestamp_ms = r.ts;
    if (r.key) out.key = *r.key;
    if (r.value) out.value = *r.value;
    out.headers = hs;
    REQUIRE(enc.add(out));
  }
  enc.finish();
  return w.take();
}

std::vector<Rec> sample_records(int n, std::size_t value_size = 20) {
  std::vector<Rec> recs;
  for (int i = 0; i < n; ++i) {
    Rec r{i,
          1000 + i * 3,
          "key" + std::to_string(i),
          std::string(value_size, static_cast<char>('a' + i % 26)),
          {}};
    if (i % 3 == 0) r.key.reset();
    if (i % 4 == 1) r.headers = {{"h1", "v1"}, {"h2", std::nullopt}};
    recs.push_back(r);
  }
  return recs;
}

// The uncompressed batch `plain` with its records compressed by `codec`.
std::string compress_batch(const std::string& plain, Codec codec,
                           SnappyFraming framing = SnappyFraming::kRaw) {
  std::string out = plain.substr(0, kBatchHeaderSize);
  REQUIRE_FALSE(compress(codec, std::string_view(plain).substr(kBatchHeaderSize), out, framing));
  put_be(out, kBatchLengthOffset, out.size() - kBatchLogOverhead, 4);
  out[kBatchAttributesOffset + 1] = static_cast<char>(
      (out[kBatchAttributesOffset + 1] & ~kAttrCodecMask) | static_cast<int>(codec));
  fix_crc(out);
  return out;
}

void check_matches(const DecodedBatch& b, const std::vector<Rec>& recs) {
  REQUIRE(b.records.size() == recs.size());
  for (std::size_t i = 0; i < recs.size(); ++i) {
    const RecordView& v = b.records[i];
    const Rec& r = recs[i];
    INFO("record " << i);
    CHECK(v.offset_delta == r.offset - recs[0].offset);
    CHECK(v.timestamp_ms == r.ts);
    CHECK(v.key.has_value() == r.key.has_value());
    if (r.key && v.key) CHECK(*v.key == *r.key);
    CHECK(v.value.has_value() == r.value.has_value());
    if (r.value && v.value) CHECK(*v.value == *r.value);
    REQUIRE(v.headers.size() == r.headers.size());
    for (std::size_t h = 0; h < r.headers.size(); ++h) {
      CHECK(v.headers[h].key == r.headers[h].first);
      CHECK(v.headers[h].value.has_value() == r.headers[h].second.has_value());
      if (r.headers[h].second && v.headers[h].value)
        CHECK(*v.headers[h].value == *r.headers[h].second);
    }
  }
}

// A magic 0/1 message: offset, size, crc (CRC-32 of magic..end), magic, attributes,
// [timestamp], key, value.
std::string message(int magic, int attributes, std::int64_t offset, std::int64_t ts,
                    std::optional<std::string_view> key, std::optional<std::string_view> value) {
  ByteWriter body;
  body.i8(static_cast<std::int8_t>(magic));
  body.i8(static_cast<std::int8_t>(attributes));
  if (magic == 1) body.i64(ts);
  body.nullable_bytes(key);
  body.nullable_bytes(value);
  const std::string& b = body.buffer();
  auto crc = static_cast<std::uint32_t>(
      crc32(0, reinterpret_cast<const Bytef*>(b.data()), static_cast<uInt>(b.size())));
  ByteWriter w;
  w.i64(offset);
  w.i32(static_cast<std::int32_t>(b.size() + 4));
  w.u32(crc);
  w.raw(b);
  return w.take();
}

std::string wrapper(int magic, Codec codec, std::int64_t offset, std::int64_t ts,
                    const std::string& inner, int extra_attributes = 0) {
  std::string packed;
  REQUIRE_FALSE(compress(codec, inner, packed));
  return message(magic, static_cast<int>(codec) | extra_attributes, offset, ts, std::nullopt,
                 packed);
}

}  // namespace

TEST_CASE("record batch: the encoder writes the bytes computed by hand from the spec",
          "[kafka][record_batch]") {
  // One record (key "k", value "v", header h=x) at offset 0, timestamp 1700000000000;
  // CRC-32C computed independently (bitwise, in Python) over bytes 21..73.
  const std::string golden(
      "\x00\x00\x00\x00\x00\x00\x00\x00"  // baseOffset 0
      "\x00\x00\x00\x3e"                  // batchLength 62
      "\xff\xff\xff\xff"                  // partitionLeaderEpoch -1
      "\x02"                              // magic
      "\x5e\x93\x53\x8d"                  // crc
      "\x00\x00"                          // attributes
      "\x00\x00\x00\x00"                  // lastOffsetDelta
      "\x00\x00\x01\x8b\xcf\xe5\x68\x00"  // baseTimestamp
      "\x00\x00\x01\x8b\xcf\xe5\x68\x00"  // maxTimestamp
      "\xff\xff\xff\xff\xff\xff\xff\xff"  // producerId
      "\xff\xff"                          // producerEpoch
      "\xff\xff\xff\xff"                  // baseSequence
      "\x00\x00\x00\x01"                  // recordCount
      "\x18"                              // record length 12
      "\x00\x00\x00"                      // attributes, timestampDelta, offsetDelta
      "\x02k\x02v"                        // key, value
      "\x02\x02h\x02x",                   // 1 header
      74);
  std::string got = encode({{0, 1700000000000, "k", "v", {{"h", "x"}}}}, 0, 1700000000000);
  CHECK(got == golden);

  auto result = decode_produce_records(golden, kLimit);
  const auto& bs = batches_of(result);
  REQUIRE(bs.size() == 1);
  const DecodedBatch& b = bs[0];
  CHECK(b.magic == 2);
  CHECK(b.codec == Codec::kNone);
  CHECK(b.partition_leader_epoch == -1);
  CHECK(b.base_timestamp == 1700000000000);
  CHECK(b.max_timestamp == 1700000000000);
  CHECK(b.producer_id == -1);
  CHECK(b.last_offset_delta == 0);
  CHECK(b.wire == golden);
  check_matches(b, {{0, 1700000000000, "k", "v", {{"h", "x"}}}});
}

TEST_CASE("record batch: encode then decode keeps keys, values, nulls, headers, timestamps",
          "[kafka][record_batch]") {
  auto recs = sample_records(50);
  recs[7].value.reset();
  recs[8].ts = 500;  // earlier than the base: a negative delta
  BatchOptions opt;
  opt.producer_id = 42;
  opt.producer_epoch = 3;
  opt.base_sequence = 100;
  opt.partition_leader_epoch = 9;
  std::string bytes = encode(recs, 0, 1000, opt);
  auto result = decode_produce_records(bytes, kLimit);
  const auto& bs = batches_of(result);
  REQUIRE(bs.size() == 1);
  const DecodedBatch& b = bs[0];
  CHECK(b.producer_id == 42);
  CHECK(b.producer_epoch == 3);
  CHECK(b.base_sequence == 100);
  CHECK(b.partition_leader_epoch == 9);
  CHECK(b.last_offset_delta == 49);
  CHECK(b.max_timestamp == 1000 + 49 * 3);
  CHECK_FALSE(b.transactional);
  CHECK_FALSE(b.control);
  check_matches(b, recs);

  // Moving the result keeps every view valid.
  DecodeResult moved = std::move(result);
  check_matches(batches_of(moved)[0], recs);
}

TEST_CASE("record batch: several batches in one records field decode in order",
          "[kafka][record_batch]") {
  auto a = sample_records(3);
  auto b = sample_records(5, 100);
  std::string bytes = encode(a, 0, 1000) + compress_batch(encode(b, 0, 1000), Codec::kZstd);
  auto result = decode_produce_records(bytes, kLimit);
  const auto& bs = batches_of(result);
  REQUIRE(bs.size() == 2);
  check_matches(bs[0], a);
  check_matches(bs[1], b);
  CHECK(bs[1].codec == Codec::kZstd);
  CHECK(bs[0].wire.size() + bs[1].wire.size() == bytes.size());
}

TEST_CASE("record batch: offset gaps are encoded as deltas; producers may not send them",
          "[kafka][record_batch]") {
  std::vector<Rec> recs = {{10, 5, "a", "1", {}}, {12, 6, "b", "2", {}}, {15, 7, "c", "3", {}}};
  std::string bytes = encode(recs, 10, 5);
  auto stored = decode_stored_batches(bytes, kLimit);
  const auto& bs = batches_of(stored);
  REQUIRE(bs.size() == 1);
  CHECK(bs[0].base_offset == 10);
  CHECK(bs[0].last_offset_delta == 5);
  check_matches(bs[0], recs);
  auto produced = decode_produce_records(bytes, kLimit);
  DecodeError e = error_of(produced);
  CHECK(e.kafka_error == kErrInvalidRecord);
  CHECK_THAT(e.message, Catch::Contains("lastOffsetDelta 5"));
}

TEST_CASE("record batch: encoder refuses out-of-order offsets and writes no empty batch",
          "[kafka][record_batch]") {
  ByteWriter w;
  w.raw("prefix");
  BatchEncoder enc;
  enc.begin(w, 100, 0);
  CHECK(enc.finish() == 0);
  CHECK(w.buffer() == "prefix");
  enc.begin(w, 100, 0);
  CHECK_FALSE(enc.add(RecordOut{99, 0, std::nullopt, "x", {}}));  // below base
  CHECK(enc.add(RecordOut{100, 0, std::nullopt, "x", {}}));
  CHECK_FALSE(enc.add(RecordOut{100, 0, std::nullopt, "y", {}}));  // not increasing
  CHECK_FALSE(enc.add(RecordOut{100 + (std::int64_t{1} << 32), 0, std::nullopt, "y", {}}));
  CHECK(enc.record_count() == 1);
  std::size_t n = enc.finish();
  CHECK(n == w.size() - 6);
  auto r = decode_produce_records(std::string_view(w.buffer()).substr(6), kLimit);
  CHECK(batches_of(r)[0].records.size() == 1);
}

TEST_CASE(
    "record batch: a batch larger than the encoder's growth steps decodes to the records added, "
    "and the writer holds exactly the batch after finish",
    "[kafka][record_batch]") {
  // Field sizes on varint boundaries (1/2/3-byte lengths, 10-byte timestamp deltas), empty and
  // null fields, headers, and values larger than the encoder's 16 KiB growth step.
  const std::size_t sizes[] = {0, 1, 63, 64, 127, 128, 8191, 8192, 16383, 16384, 40000};
  const std::int64_t base_ts = 1000;
  const std::int64_t timestamps[] = {base_ts,
                                     base_ts - 1,
                                     base_ts + 63,
                                     base_ts - 65,
                                     std::numeric_limits<std::int64_t>::min() + 5,
                                     std::numeric_limits<std::int64_t>::max()};
  std::vector<Rec> recs;
  std::int64_t offset = 7;
  for (int round = 0; round < 3; ++round) {
    for (std::size_t i = 0; i < std::size(sizes); ++i) {
      Rec r{offset,
            timestamps[(i + static_cast<std::size_t>(round)) % std::size(timestamps)],
            std::string(sizes[(i + 3) % std::size(sizes)] % 300, 'k'),
            std::string(sizes[i], static_cast<char>('a' + i)),
            {}};
      if (i % 4 == 0) r.key.reset();
      if (i % 5 == 1) r.value.reset();
      if (i % 3 == 2)
        r.headers = {{"", ""}, {"trace", std::string(sizes[i] % 200, 't')}, {"none", std::nullopt}};
      recs.push_back(std::move(r));
      offset += 1 + static_cast<std::int64_t>(i % 2);  // gaps too
    }
  }

  ByteWriter w;
  w.raw("prefix");
  BatchEncoder enc;
  enc.begin(w, 7, base_ts);
  CHECK(enc.size() == kBatchHeaderSize);
  std::size_t last = enc.size();
  for (const Rec& r : recs) {
    std::vector<RecordHeaderView> hs;
    for (const auto& [k, v] : r.headers)
      hs.push_back({k, v ? std::optional<std::string_view>(*v) : std::nullopt});
    RecordOut out{r.offset, r.ts, std::nullopt, std::nullopt, hs};
    if (r.key) out.key = *r.key;
    if (r.value) out.value = *r.value;
    REQUIRE(enc.add(out));
    CHECK(enc.size() > last);
    last = enc.size();
  }
  std::size_t n = enc.finish();
  CHECK(n == last);
  REQUIRE(w.size() == 6 + n);
  CHECK(w.buffer().substr(0, 6) == "prefix");
  auto result = decode_stored_batches(std::string_view(w.buffer()).substr(6), kLimit);
  const auto& bs = batches_of(result);
  REQUIRE(bs.size() == 1);
  CHECK(bs[0].base_offset == 7);
  CHECK(bs[0].max_timestamp == std::numeric_limits<std::int64_t>::max());
  CHECK(bs[0].last_offset_delta == recs.back().offset - 7);
  check_matches(bs[0], recs);

  // The same writer takes a second batch after the first.
  enc.begin(w, 100, 0);
  REQUIRE(enc.add(RecordOut{100, 0, "k", "v", {}}));
  std::size_t m = enc.finish();
  REQUIRE(w.size() == 6 + n + m);
  auto both = decode_stored_batches(std::string_view(w.buffer()).substr(6), kLimit);
  REQUIRE(batches_of(both).size() == 2);
  check_matches(batches_of(both)[1], {{100, 0, "k", "v", {}}});
}

TEST_CASE("record batch: patch_base_offset leaves the CRC valid", "[kafka][record_batch]") {
  std::string bytes = encode(sample_records(4), 0, 0);
  patch_base_offset(bytes.data(), 123456789);
  auto r = decode_stored_batches(bytes, kLimit);
  CHECK(batches_of(r)[0].base_offset == 123456789);
}

TEST_CASE("record batch: every codec inside a batch decodes to the same records",
          "[kafka][record_batch]") {
  auto recs = sample_records(100, 200);
  std::string plain = encode(recs, 0, 1000);
  struct Case {
    Codec codec;
    SnappyFraming framing;
  };
  for (Case c : {Case{Codec::kGzip, SnappyFraming::kRaw}, Case{Codec::kSnappy, SnappyFraming::kRaw},
                 Case{Codec::kSnappy, SnappyFraming::kXerial},
                 Case{Codec::kLz4, SnappyFraming::kRaw}, Case{Codec::kZstd, SnappyFraming::kRaw}}) {
    INFO(codec_name(c.codec) << " framing " << static_cast<int>(c.framing));
    std::string packed = compress_batch(plain, c.codec, c.framing);
    CHECK(packed.size() < plain.size());
    auto result = decode_produce_records(packed, kLimit);
    const auto& bs = batches_of(result);
    REQUIRE(bs.size() == 1);
    CHECK(bs[0].codec == c.codec);
    CHECK(bs[0].storage.size() == plain.size() - kBatchHeaderSize);
    check_matches(bs[0], recs);
    DecodeResult moved = std::move(result);
    check_matches(batches_of(moved)[0], recs);
  }
}

TEST_CASE("record batch: LogAppendTime batches give every record the max timestamp",
          "[kafka][record_batch]") {
  BatchOptions opt;
  opt.log_append_time = true;
  std::string bytes = encode(sample_records(3), 0, 1000, opt);
  auto r = decode_stored_batches(bytes, kLimit);
  const DecodedBatch& b = batches_of(r)[0];
  CHECK(b.timestamp_log_append);
  for (const RecordView& v : b.records) CHECK(v.timestamp_ms == b.max_timestamp);
}

TEST_CASE("record batch: magic 0 and 1 message sets are up-converted",
          "[kafka][record_batch][message_set]") {
  SECTION("magic 0, uncompressed: no timestamps") {
    std::string set = message(0, 0, 0, -1, "k0", "v0") + message(0, 0, 1, -1, std::nullopt, "v1");
    auto r = decode_produce_records(set, kLimit);
    const auto& bs = batches_of(r);
    REQUIRE(bs.size() == 1);
    CHECK(bs[0].magic == 0);
    CHECK(bs[0].codec == Codec::kNone);
    CHECK(bs[0].wire.empty());
    CHECK(bs[0].last_offset_delta == 1);
    CHECK(bs[0].base_timestamp == -1);
    check_matches(bs[0], {{0, -1, "k0", "v0", {}}, {1, -1, std::nullopt, "v1", {}}});
  }
  SECTION("magic 1, uncompressed: per-message timestamps") {
    std::string set = message(1, 0, 0, 111, "a", "x") + message(1, 0, 1, 333, "b", std::nullopt) +
                      message(1, 0, 2, 222, "c", "z");
    auto r = decode_produce_records(set, kLimit);
    const DecodedBatch& b = batches_of(r)[0];
    CHECK(b.magic == 1);
    CHECK(b.base_timestamp == 111);
    CHECK(b.max_timestamp == 333);
    check_matches(
        b, {{0, 111, "a", "x", {}}, {1, 333, "b", std::nullopt, {}}, {2, 222, "c", "z", {}}});
  }
  SECTION("magic 1, gzip wrapper with relative inner offsets") {
    std::string inner = message(1, 0, 0, 10, "a", "1") + message(1, 0, 1, 20, "b", "2") +
                        message(1, 0, 2, 30, "c", "3");
    std::string set = wrapper(1, Codec::kGzip, 2, 30, inner);
    auto r = decode_produce_records(set, kLimit);
    const DecodedBatch& b = batches_of(r)[0];
    CHECK(b.codec == Codec::kGzip);
    check_matches(b, {{0, 10, "a", "1", {}}, {1, 20, "b", "2", {}}, {2, 30, "c", "3", {}}});
  }
  SECTION("magic 1 LogAppendTime wrapper: inner records take the wrapper's timestamp") {
    std::string inner = message(1, 0, 0, 10, "a", "1") + message(1, 0, 1, 20, "b", "2");
    std::string set = wrapper(1, Codec::kSnappy, 1, 99, inner, 0x08);
    auto r = decode_produce_records(set, kLimit);
    check_matches(batches_of(r)[0], {{0, 99, "a", "1", {}}, {1, 99, "b", "2", {}}});
  }
  SECTION("magic 0, gzip wrapper with absolute inner offsets, after a plain message") {
    std::string inner = message(0, 0, 57, -1, "a", "1") + message(0, 0, 58, -1, "b", "2");
    std::string set = message(0, 0, 0, -1, "p", "0") + wrapper(0, Codec::kGzip, 58, -1, inner);
    auto r = decode_produce_records(set, kLimit);
    const DecodedBatch& b = batches_of(r)[0];
    CHECK(b.codec == Codec::kGzip);
    check_matches(b, {{0, -1, "p", "0", {}}, {1, -1, "a", "1", {}}, {2, -1, "b", "2", {}}});
  }
  SECTION("two compressed wrappers (storage grows between them)") {
    std::string big(100000, 'q');
    std::string set = wrapper(1, Codec::kLz4, 0, 5, message(1, 0, 0, 5, "a", big)) +
                      wrapper(1, Codec::kGzip, 0, 6, message(1, 0, 0, 6, "b", big));
    auto r = decode_produce_records(set, kLimit);
    check_matches(batches_of(r)[0], {{0, 5, "a", big, {}}, {1, 6, "b", big, {}}});
  }
  SECTION("magic 1 snappy wrapper in the xerial framing (kafka-python)") {
    std::string inner = message(1, 0, 0, 10, "a", "1");
    std::string packed;
    REQUIRE_FALSE(compress(Codec::kSnappy, inner, packed, SnappyFraming::kXerial));
    std::string set = message(1, static_cast<int>(Codec::kSnappy), 0, 10, std::nullopt, packed);
    auto r = decode_produce_records(set, kLimit);
    check_matches(batches_of(r)[0], {{0, 10, "a", "1", {}}});
  }
  SECTION("magic 0 lz4 wrapper with the broken (pre-KIP-57) frame checksum") {
    std::string inner = message(0, 0, 0, -1, "a", "1");
    std::string packed;
    REQUIRE_FALSE(compress(Codec::kLz4, inner, packed));
    REQUIRE(static_cast<unsigned char>(packed[6]) == 0x82);
    packed[6] = '\x1a';  // XXH32 over magic + descriptor, as Kafka 0.8/0.9 wrote it
    std::string set = message(0, static_cast<int>(Codec::kLz4), 0, -1, std::nullopt, packed);
    auto r = decode_produce_records(set, kLimit);
    check_matches(batches_of(r)[0], {{0, -1, "a", "1", {}}});
    // The same frame in a magic 1 wrapper is corrupt: magic 1 has the correct checksum.
    std::string inner1 = message(1, 0, 0, 1, "a", "1");
    std::string packed1;
    REQUIRE_FALSE(compress(Codec::kLz4, inner1, packed1));
    packed1[6] = '\x1a';
    auto r1 = decode_produce_records(
        message(1, static_cast<int>(Codec::kLz4), 0, 1, std::nullopt, packed1), kLimit);
    CHECK(error_of(r1).kafka_error == kErrCorruptMessage);
  }
}

TEST_CASE("record batch: magic 0 and 1 messages computed by hand from the spec decode",
          "[kafka][record_batch][message_set]") {
  // CRC-32 (zlib's) computed independently in Python over magic .. end.
  const std::string v1(
      "\x00\x00\x00\x00\x00\x00\x00\x00"  // offset 0
      "\x00\x00\x00\x18"                  // messageSize 24
      "\x39\x26\x8c\x33"                  // crc
      "\x01\x00"                          // magic 1, attributes 0
      "\x00\x00\x01\x8b\xcf\xe5\x68\x00"  // timestamp 1700000000000
      "\x00\x00\x00\x01k"                 // key "k"
      "\x00\x00\x00\x01v",                // value "v"
      36);
  const std::string v0(
      "\x00\x00\x00\x00\x00\x00\x00\x00"  // offset 0
      "\x00\x00\x00\x10"                  // messageSize 16
      "\xfd\x6e\xbd\xdb"                  // crc
      "\x00\x00"                          // magic 0, attributes 0
      "\xff\xff\xff\xff"                  // key null
      "\x00\x00\x00\x02hi",               // value "hi"
      28);
  CHECK(message(1, 0, 0, 1700000000000, "k", "v") == v1);
  CHECK(message(0, 0, 0, -1, std::nullopt, "hi") == v0);
  auto r1 = decode_produce_records(v1, kLimit);
  check_matches(batches_of(r1)[0], {{0, 1700000000000, "k", "v", {}}});
  auto r0 = decode_produce_records(v0, kLimit);
  check_matches(batches_of(r0)[0], {{0, -1, std::nullopt, "hi", {}}});
}

TEST_CASE("record batch: message set errors", "[kafka][record_batch][message_set]") {
  SECTION("bad CRC-32") {
    std::string set = message(1, 0, 0, 1, "k", "v");
    set.back() ^= 1;
    DecodeError e = error_of(decode_produce_records(set, kLimit));
    CHECK(e.kafka_error == kErrCorruptMessage);
    CHECK_THAT(e.message, Catch::Contains("CRC mismatch"));
  }
  SECTION("truncated message") {
    std::string set = message(1, 0, 0, 1, "k", "v") + message(1, 0, 1, 1, "k", "v");
    set.pop_back();
    DecodeError e = error_of(decode_produce_records(set, kLimit));
    CHECK(e.kafka_error == kErrCorruptMessage);
    CHECK_THAT(e.message, Catch::Contains("runs past"));
  }
  SECTION("zstd is magic 2 only") {
    std::string set = wrapper(1, Codec::kZstd, 0, 1, message(1, 0, 0, 1, "k", "v"));
    DecodeError e = error_of(decode_produce_records(set, kLimit));
    CHECK(e.kafka_error == kErrUnsupportedCompressionType);
  }
  SECTION("nested compression") {
    std::string inner = wrapper(1, Codec::kGzip, 0, 1, message(1, 0, 0, 1, "k", "v"));
    std::string set = wrapper(1, Codec::kGzip, 0, 1, inner);
    DecodeError e = error_of(decode_produce_records(set, kLimit));
    CHECK_THAT(e.message, Catch::Contains("nested"));
  }
  SECTION("empty wrapper") {
    std::string set = wrapper(1, Codec::kGzip, 0, 1, "");
    DecodeError e = error_of(decode_produce_records(set, kLimit));
    CHECK(e.kafka_error == kErrInvalidRecord);
  }
  SECTION("compressed garbage") {
    std::string set = message(1, static_cast<int>(Codec::kGzip), 0, 1, std::nullopt, "garbage");
    DecodeError e = error_of(decode_produce_records(set, kLimit));
    CHECK(e.kafka_error == kErrCorruptMessage);
    CHECK_THAT(e.message, Catch::Contains("gzip"));
  }
  SECTION("a stored batch field must be magic 2") {
    DecodeError e = error_of(decode_stored_batches(message(1, 0, 0, 1, "k", "v"), kLimit));
    CHECK(e.kafka_error == kErrCorruptMessage);
  }
}

TEST_CASE("record batch: corrupt batches give CORRUPT_MESSAGE naming the cause",
          "[kafka][record_batch]") {
  const std::string good = encode(sample_records(5), 0, 1000);
  auto expect = [](const std::string& bytes, std::int16_t code, const char* text) {
    DecodeError e = error_of(decode_produce_records(bytes, kLimit));
    INFO(e.message);
    CHECK(e.kafka_error == code);
    CHECK_THAT(e.message, Catch::Contains(text));
  };
  SECTION("bad CRC") {
    std::string bad = good;
    bad[bad.size() - 3] ^= 0x40;
    expect(bad, kErrCorruptMessage, "CRC mismatch: stored 0x");
  }
  SECTION("truncated batch") {
    expect(good.substr(0, good.size() - 1), kErrCorruptMessage, "runs past the end");
    expect(good.substr(0, 30), kErrCorruptMessage, "runs past the end");
    expect(good.substr(0, 10), kErrCorruptMessage, "shorter than any batch header");
    expect(good + good.substr(0, 11), kErrCorruptMessage, "truncated header");
  }
  SECTION("length field larger than the buffer") {
    std::string bad = good;
    put_be(bad, kBatchLengthOffset, 0x7fffffff, 4);
    expect(bad, kErrCorruptMessage, "batchLength 2147483647 runs past");
    put_be(bad, kBatchLengthOffset, 0xffffffff, 4);
    expect(bad, kErrCorruptMessage, "below the 49-byte header");
  }
  SECTION("record count larger than the records present") {
    std::string bad = good;
    put_be(bad, 57, 6, 4);
    put_be(bad, 23, 5, 4);
    fix_crc(bad);
    expect(bad, kErrCorruptMessage, "only 5 records present");
    put_be(bad, 57, 1000000, 4);
    put_be(bad, 23, 999999, 4);
    fix_crc(bad);
    expect(bad, kErrCorruptMessage, "cannot fit");
  }
  SECTION("record count smaller than the records present") {
    std::string bad = good;
    put_be(bad, 57, 4, 4);
    put_be(bad, 23, 3, 4);
    fix_crc(bad);
    expect(bad, kErrCorruptMessage, "bytes remain after the last record");
  }
  SECTION("negative record count") {
    std::string bad = good;
    put_be(bad, 57, 0xffffffff, 4);
    fix_crc(bad);
    expect(bad, kErrCorruptMessage, "negative recordCount");
  }
  SECTION("negative varint lengths") {
    // Record 0 of sample_records has a null key (varint -1 = 0x01); -2 (0x03) is invalid.
    std::string bad = good;
    std::size_t key_at = kBatchHeaderSize + 4;  // length, attributes, tsDelta, offsetDelta
    REQUIRE(bad[key_at] == '\x01');
    bad[key_at] = '\x03';
    fix_crc(bad);
    expect(bad, kErrCorruptMessage, "record 0: negative record field length");
    std::string bad_len = good;
    bad_len[kBatchHeaderSize] = '\x03';  // record length -2
    fix_crc(bad_len);
    expect(bad_len, kErrCorruptMessage, "record 0 length -2");
  }
  SECTION("unterminated varint") {
    std::string bad = good.substr(0, kBatchHeaderSize) + std::string(40, '\xff');
    put_be(bad, kBatchLengthOffset, bad.size() - kBatchLogOverhead, 4);
    fix_crc(bad);
    expect(bad, kErrCorruptMessage, "malformed varint");
  }
  SECTION("unknown codec 5, 6, 7") {
    for (int codec : {5, 6, 7}) {
      std::string bad = good;
      bad[kBatchAttributesOffset + 1] = static_cast<char>(codec);
      fix_crc(bad);
      expect(bad, kErrUnsupportedCompressionType,
             ("unknown compression codec " + std::to_string(codec)).c_str());
    }
  }
  SECTION("unknown magic") {
    std::string bad = good;
    bad[kBatchMagicOffset] = 3;
    expect(bad, kErrCorruptMessage, "unknown magic 3");
    expect(good + bad, kErrCorruptMessage, "magic 3 among magic 2 batches");
  }
  SECTION("compressed garbage") {
    std::string bad = compress_batch(good, Codec::kLz4);
    bad[kBatchHeaderSize + 8] ^= 0x55;
    fix_crc(bad);
    DecodeError e = error_of(decode_produce_records(bad, kLimit));
    CHECK(e.kafka_error == kErrCorruptMessage);
  }
}

TEST_CASE("record batch: producer rules give INVALID_RECORD", "[kafka][record_batch]") {
  SECTION("offset deltas not 0..n-1") {
    std::string bytes = encode({{0, 1, "a", "1", {}}, {2, 1, "b", "2", {}}}, 0, 1);
    put_be(bytes, 23, 1, 4);  // lastOffsetDelta = count - 1, so only the record is wrong
    fix_crc(bytes);
    DecodeError e = error_of(decode_produce_records(bytes, kLimit));
    CHECK(e.kafka_error == kErrInvalidRecord);
    CHECK_THAT(e.message, Catch::Contains("record 1 has offset delta 2"));
    CHECK(std::holds_alternative<std::vector<DecodedBatch>>(decode_stored_batches(bytes, kLimit)));
  }
  SECTION("control batch") {
    std::string bytes = encode(sample_records(1), 0, 1);
    bytes[kBatchAttributesOffset + 1] =
        static_cast<char>(bytes[kBatchAttributesOffset + 1] | kAttrControl);
    fix_crc(bytes);
    DecodeError e = error_of(decode_produce_records(bytes, kLimit));
    CHECK(e.kafka_error == kErrInvalidRecord);
    CHECK_THAT(e.message, Catch::Contains("control"));
    auto stored = decode_stored_batches(bytes, kLimit);
    CHECK(batches_of(stored)[0].control);
  }
  SECTION("no records") {
    std::string bytes = encode(sample_records(1), 0, 1).substr(0, kBatchHeaderSize);
    put_be(bytes, kBatchLengthOffset, kBatchHeaderSize - kBatchLogOverhead, 4);
    put_be(bytes, 57, 0, 4);
    put_be(bytes, 23, 0xffffffff, 4);
    fix_crc(bytes);
    CHECK(error_of(decode_produce_records(bytes, kLimit)).kafka_error == kErrInvalidRecord);
    CHECK(batches_of(decode_stored_batches(bytes, kLimit))[0].records.empty());
    CHECK(error_of(decode_produce_records("", kLimit)).kafka_error == kErrInvalidRecord);
    CHECK(batches_of(decode_stored_batches("", kLimit)).empty());
  }
  SECTION("transactional batches are reported, not refused") {
    BatchOptions opt;
    opt.transactional = true;
    opt.producer_id = 5;
    auto r = decode_produce_records(encode(sample_records(2), 0, 1, opt), kLimit);
    CHECK(batches_of(r)[0].transactional);
  }
}

TEST_CASE("record batch: a decompression bomb over the limit is MESSAGE_TOO_LARGE",
          "[kafka][record_batch]") {
  // 2000 records of 10 KiB zeros: 20 MB decompressed, a few KB compressed.
  std::string plain = encode(sample_records(2000, 10 << 10), 0, 0);
  for (Codec codec : {Codec::kGzip, Codec::kSnappy, Codec::kLz4, Codec::kZstd}) {
    INFO(codec_name(codec));
    std::string bomb = compress_batch(plain, codec);
    DecodeError e = error_of(decode_produce_records(bomb, 1 << 20));
    CHECK(e.kafka_error == kErrMessageTooLarge);
    CHECK_THAT(e.message, Catch::Contains("1048576-byte limit"));
    // The limit counts across the batches of one field.
    std::string two = compress_batch(encode(sample_records(10, 1000), 0, 0), codec);
    CHECK(std::holds_alternative<std::vector<DecodedBatch>>(decode_produce_records(two, 15000)));
    CHECK(error_of(decode_produce_records(two + two, 15000)).kafka_error == kErrMessageTooLarge);
  }
}

TEST_CASE("record batch: random corruption with a valid CRC never crashes",
          "[kafka][record_batch]") {
  std::mt19937 rng(42);
  const std::string plain = encode(sample_records(20, 30), 0, 1000);
  std::vector<std::string> inputs = {
      plain, compress_batch(plain, Codec::kGzip), compress_batch(plain, Codec::kSnappy),
      compress_batch(plain, Codec::kLz4), compress_batch(plain, Codec::kZstd)};
  int errors = 0;
  for (const std::string& input : inputs) {
    for (int i = 0; i < 400; ++i) {
      std::string bad = input;
      int flips = 1 + static_cast<int>(rng() % 3);
      for (int f = 0; f < flips; ++f) {
        std::size_t at = kBatchAttributesOffset + rng() % (bad.size() - kBatchAttributesOffset);
        bad[at] = static_cast<char>(rng() & 0xff);
      }
      fix_crc(bad);
      auto r = decode_stored_batches(bad, 1 << 20);
      if (std::holds_alternative<DecodeError>(r)) {
        ++errors;
        CHECK_FALSE(std::get<DecodeError>(r).message.empty());
      }
    }
    // Every truncation.
    for (std::size_t n = 0; n < input.size(); ++n)
      CHECK(std::holds_alternative<DecodeError>(
          decode_produce_records(std::string_view(input).substr(0, n), 1 << 20)));
  }
  CHECK(errors > 0);
}
