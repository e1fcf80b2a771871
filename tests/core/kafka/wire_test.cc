// Kafka wire primitives (core/src/kafka/wire.h): round trips, zig-zag varints against the
// protocol guide's examples, and every malformed input failing cleanly.
#include "kafka/wire.h"

#include <catch2/catch.hpp>
#include <limits>

using sluice::kafka::ByteReader;
using sluice::kafka::ByteWriter;

TEST_CASE("wire: fixed-width integers round-trip big-endian", "[kafka][wire]") {
  ByteWriter w;
  w.i8(-2);
  w.i16(0x1234);
  w.i32(-5);
  w.i64(std::numeric_limits<std::int64_t>::min());
  w.u32(0xdeadbeef);
  REQUIRE(w.size() == 1 + 2 + 4 + 8 + 4);
  CHECK(static_cast<unsigned char>(w.buffer()[1]) == 0x12);  // big-endian
  ByteReader r(w.buffer());
  CHECK(r.i8() == -2);
  CHECK(r.i16() == 0x1234);
  CHECK(r.i32() == -5);
  CHECK(r.i64() == std::numeric_limits<std::int64_t>::min());
  CHECK(r.u32() == 0xdeadbeef);
  CHECK(r.ok());
  CHECK(r.remaining() == 0);
}

TEST_CASE("wire: zig-zag varints match the protocol guide", "[kafka][wire]") {
  // 0 -> 00, -1 -> 01, 1 -> 02, -64 -> 7f, 64 -> 80 01, 300 -> d8 04.
  auto enc = [](std::int32_t v) {
    ByteWriter w;
    w.varint(v);
    return w.take();
  };
  CHECK(enc(0) == std::string("\x00", 1));
  CHECK(enc(-1) == "\x01");
  CHECK(enc(1) == "\x02");
  CHECK(enc(-64) == "\x7f");
  CHECK(enc(64) == "\x80\x01");
  CHECK(enc(300) == "\xd8\x04");
  for (std::int64_t v :
       {std::int64_t{0}, std::int64_t{-1}, std::int64_t{1} << 40,
        std::numeric_limits<std::int64_t>::min(), std::numeric_limits<std::int64_t>::max()}) {
    ByteWriter w;
    w.varlong(v);
    ByteReader r(w.buffer());
    CHECK(r.varlong() == v);
    CHECK(r.ok());
  }
  for (std::int32_t v : {0, -1, 63, -65, std::numeric_limits<std::int32_t>::min(),
                         std::numeric_limits<std::int32_t>::max()}) {
    ByteWriter w;
    w.varint(v);
    ByteReader r(w.buffer());
    CHECK(r.varint() == v);
  }
}

TEST_CASE("wire: varints of every length read back in sequence and at the buffer's end",
          "[kafka][wire]") {
  // The reader takes one- and two-byte varints without its loop: the lengths around those
  // boundaries, back to back and last in the buffer, and a truncated one.
  constexpr std::int32_t kMax = std::numeric_limits<std::int32_t>::max();
  constexpr std::int32_t kMin = std::numeric_limits<std::int32_t>::min();
  const std::int32_t values[] = {0,     -1,   63,    -64,     64,         -65,  8191,
                                 -8192, 8192, -8193, 1 << 20, -(1 << 20), kMax, kMin};
  ByteWriter w;
  for (std::int32_t v : values) w.varint(v);
  ByteReader r(w.buffer());
  for (std::int32_t v : values) CHECK(r.varint() == v);
  CHECK(r.ok());
  CHECK(r.remaining() == 0);
  for (std::int32_t v : values) {
    ByteWriter one;
    one.varint(v);
    ByteReader last(one.buffer());
    CHECK(last.varint() == v);
    CHECK(last.ok());
  }
  ByteReader non_canonical(std::string_view("\x80\x00\x81\x00", 4));  // 0, then -1
  CHECK(non_canonical.varint() == 0);
  CHECK(non_canonical.varint() == -1);
  CHECK(non_canonical.ok());
  ByteReader truncated(std::string_view("\x02\x80", 2));  // 1, then a varint cut short
  CHECK(truncated.varint() == 1);
  (void)truncated.varint();
  CHECK_FALSE(truncated.ok());
}

TEST_CASE("wire: strings, bytes and arrays, null and not", "[kafka][wire]") {
  ByteWriter w;
  w.string("topic");
  w.nullable_string(std::nullopt);
  w.nullable_bytes(std::string_view("ab"));
  w.nullable_bytes(std::nullopt);
  w.varint_bytes(std::nullopt);
  w.varint_bytes(std::string_view("xyz"));
  w.array_length(2);
  w.i32(7);
  w.i32(8);
  ByteReader r(w.buffer());
  CHECK(r.string() == "topic");
  CHECK_FALSE(r.nullable_string().has_value());
  CHECK(r.nullable_bytes() == std::optional<std::string_view>("ab"));
  CHECK_FALSE(r.nullable_bytes().has_value());
  CHECK_FALSE(r.varint_bytes().has_value());
  CHECK(r.varint_bytes() == std::optional<std::string_view>("xyz"));
  CHECK(r.array_length(4) == 2);
  CHECK(r.i32() == 7);
  CHECK(r.i32() == 8);
  CHECK(r.ok());
}

TEST_CASE("wire: malformed input fails once, with a reason, and reads nothing more",
          "[kafka][wire]") {
  SECTION("truncated integer") {
    ByteReader r(std::string_view("\x00\x01", 2));
    CHECK(r.i32() == 0);
    CHECK_FALSE(r.ok());
    CHECK(std::string(r.error()) == "truncated int32");
  }
  SECTION("string longer than the buffer") {
    ByteReader r(
        std::string_view("\x00\x09"
                         "abc",
                         5));
    CHECK(r.string().empty());
    CHECK_FALSE(r.ok());
  }
  SECTION("negative lengths") {
    ByteReader r(std::string_view("\xff\xfe", 2));
    (void)r.nullable_string();
    CHECK_FALSE(r.ok());
    ByteReader b(std::string_view("\xff\xff\xff\xf0", 4));
    (void)b.nullable_bytes();
    CHECK_FALSE(b.ok());
  }
  SECTION("a hostile array count") {
    ByteReader r(std::string_view("\x7f\xff\xff\xff\x00\x00", 6));
    CHECK(r.array_length(4) == 0);
    CHECK_FALSE(r.ok());
  }
  SECTION("an unterminated varint") {
    ByteReader r(std::string_view("\xff\xff\xff\xff\xff\xff", 6));
    (void)r.varint();
    CHECK_FALSE(r.ok());
    CHECK(r.i32() == 0);  // later reads yield zero
  }
}
