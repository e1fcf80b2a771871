// Kafka compression codecs (core/src/kafka/compression.h): round trips through every codec and
// framing, the output limit (decompression bombs), corrupt and truncated input, and the
// pre-KIP-57 lz4 frame checksum of magic 0 messages.
#include "kafka/compression.h"

#include <zstd.h>

#include <catch2/catch.hpp>
#include <random>
#include <string>
#include <vector>

using sluice::kafka::Codec;
using sluice::kafka::CodecError;
using sluice::kafka::compress;
using sluice::kafka::decompress;
using sluice::kafka::decompress_lz4_magic0;
using sluice::kafka::SnappyFraming;

namespace {

// Half random, half repetitive: compresses somewhat, and exercises literal and match paths.
std::string sample(std::size_t n, unsigned seed = 7) {
  std::mt19937 rng(seed);
  std::string s(n, '\0');
  for (std::size_t i = 0; i < n; ++i)
    s[i] = (i / 64) % 2 == 0 ? static_cast<char>(rng() & 0xff) : static_cast<char>('a' + i % 7);
  return s;
}

std::string compressed(Codec codec, std::string_view in,
                       SnappyFraming framing = SnappyFraming::kRaw) {
  std::string out;
  auto e = compress(codec, in, out, framing);
  REQUIRE_FALSE(e.has_value());
  return out;
}

std::string roundtrip(Codec codec, std::string_view packed, std::size_t max_out = 64 << 20) {
  std::vector<char> out;
  auto e = decompress(codec, packed, out, max_out);
  INFO((e ? e->message : std::string("ok")));
  REQUIRE_FALSE(e.has_value());
  return std::string(out.data(), out.size());
}

const Codec kCodecs[] = {Codec::kGzip, Codec::kSnappy, Codec::kLz4, Codec::kZstd};

}  // namespace

TEST_CASE("compression: every codec round-trips empty, small and multi-block inputs",
          "[kafka][compression]") {
  for (Codec codec : kCodecs) {
    for (std::size_t n : {std::size_t{0}, std::size_t{1}, std::size_t{1000}, std::size_t{300000},
                          std::size_t{2} << 20}) {
      INFO(sluice::kafka::codec_name(codec) << " " << n << " bytes");
      std::string in = sample(n);
      CHECK(roundtrip(codec, compressed(codec, in)) == in);
    }
  }
}

TEST_CASE("compression: snappy accepts the xerial framing, one chunk and many",
          "[kafka][compression]") {
  for (std::size_t n :
       {std::size_t{0}, std::size_t{10}, std::size_t{32 << 10}, std::size_t{100000}}) {
    std::string in = sample(n);
    std::string xerial = compressed(Codec::kSnappy, in, SnappyFraming::kXerial);
    REQUIRE(xerial.size() >= 16);
    CHECK(xerial.compare(0, 8, std::string("\x82SNAPPY\0", 8)) == 0);
    CHECK(roundtrip(Codec::kSnappy, xerial) == in);
    CHECK(roundtrip(Codec::kSnappy, compressed(Codec::kSnappy, in)) == in);
  }
}

TEST_CASE("compression: decompress appends after what the output already holds",
          "[kafka][compression]") {
  for (Codec codec : kCodecs) {
    std::vector<char> out = {'x', 'y'};
    std::string packed = compressed(codec, "hello");
    REQUIRE_FALSE(decompress(codec, packed, out, 5).has_value());
    CHECK(std::string(out.data(), out.size()) == "xyhello");
  }
}

TEST_CASE("compression: gzip accepts concatenated members and zlib streams",
          "[kafka][compression]") {
  std::string two = compressed(Codec::kGzip, "first,") + compressed(Codec::kGzip, "second");
  CHECK(roundtrip(Codec::kGzip, two) == "first,second");
  std::string garbage = compressed(Codec::kGzip, "x") + "junk";
  std::vector<char> out;
  auto e = decompress(Codec::kGzip, garbage, out, 100);
  REQUIRE(e.has_value());
  CHECK(e->kind == CodecError::Kind::kCorrupt);
  CHECK_THAT(e->message, Catch::Contains("trailing"));
}

TEST_CASE("compression: zstd frames without a content size, and several frames",
          "[kafka][compression]") {
  std::string in = sample(200000);
  ZSTD_CCtx* cctx = ZSTD_createCCtx();
  ZSTD_CCtx_setParameter(cctx, ZSTD_c_contentSizeFlag, 0);
  std::string packed(ZSTD_compressBound(in.size()) + 64, '\0');
  ZSTD_outBuffer ob{packed.data(), packed.size(), 0};
  ZSTD_inBuffer ib{in.data(), in.size(), 0};
  std::size_t rc = ZSTD_compressStream2(cctx, &ob, &ib, ZSTD_e_end);
  ZSTD_freeCCtx(cctx);
  REQUIRE(rc == 0);
  packed.resize(ob.pos);
  CHECK(ZSTD_getFrameContentSize(packed.data(), packed.size()) == ZSTD_CONTENTSIZE_UNKNOWN);
  CHECK(roundtrip(Codec::kZstd, packed) == in);
  CHECK(roundtrip(Codec::kZstd, packed + compressed(Codec::kZstd, "tail")) == in + "tail");
}

TEST_CASE("compression: output is limited to max_out (decompression bombs)",
          "[kafka][compression]") {
  std::string zeros(4 << 20, '\0');
  for (Codec codec : kCodecs) {
    for (SnappyFraming framing : {SnappyFraming::kRaw, SnappyFraming::kXerial}) {
      if (codec != Codec::kSnappy && framing == SnappyFraming::kXerial) continue;
      INFO(sluice::kafka::codec_name(codec) << " framing " << static_cast<int>(framing));
      std::string bomb = compressed(codec, zeros, framing);
      CHECK(bomb.size() < zeros.size() / 20);
      std::vector<char> out;
      auto e = decompress(codec, bomb, out, zeros.size() - 1);
      REQUIRE(e.has_value());
      CHECK(e->kind == CodecError::Kind::kTooLarge);
      CHECK_THAT(e->message, Catch::Contains("limit"));
      CHECK(out.size() <= zeros.size());
      // Exactly at the limit is fine.
      out.clear();
      CHECK_FALSE(decompress(codec, bomb, out, zeros.size()).has_value());
      CHECK(out.size() == zeros.size());
      // A tiny limit does not allocate the whole output first.
      out.clear();
      out.shrink_to_fit();
      e = decompress(codec, bomb, out, 1000);
      REQUIRE(e.has_value());
      CHECK(e->kind == CodecError::Kind::kTooLarge);
      CHECK(out.capacity() <= (std::size_t{256} << 10) + 1001);
    }
  }
}

TEST_CASE("compression: corrupt or truncated input is kCorrupt, never a crash",
          "[kafka][compression]") {
  std::string in = sample(100000);
  for (Codec codec : kCodecs) {
    INFO(sluice::kafka::codec_name(codec));
    std::string packed = compressed(codec, in);
    std::vector<char> out;
    // Not a stream of this codec at all.
    auto e = decompress(codec, "this is not compressed data at all", out, 1 << 20);
    REQUIRE(e.has_value());
    CHECK(e->kind == CodecError::Kind::kCorrupt);
    CHECK_THAT(e->message, Catch::Contains(sluice::kafka::codec_name(codec)));
    // Empty input.
    out.clear();
    CHECK(decompress(codec, "", out, 1 << 20).has_value());
    // Truncated at several points: an error every time (snappy's length preamble, gzip's
    // trailer, lz4's end mark and zstd's last block all notice).
    for (std::size_t cut :
         {std::size_t{1}, packed.size() / 3, packed.size() / 2, packed.size() - 1}) {
      out.clear();
      INFO("cut at " << cut);
      e = decompress(codec, std::string_view(packed).substr(0, cut), out, 1 << 20);
      REQUIRE(e.has_value());
      CHECK(e->kind != CodecError::Kind::kUnsupported);
    }
    // Flipped bytes: an error or some output, within the limit, never a crash.
    std::mt19937 rng(1);
    for (int i = 0; i < 200; ++i) {
      std::string bad = packed;
      bad[rng() % bad.size()] ^= static_cast<char>(1 + rng() % 255);
      out.clear();
      (void)decompress(codec, bad, out, in.size() + 10);
      CHECK(out.size() <= in.size() + 11);
    }
  }
}

TEST_CASE("compression: xerial framing errors name the chunk", "[kafka][compression]") {
  std::string x = compressed(Codec::kSnappy, sample(1000), SnappyFraming::kXerial);
  std::string header_only = x.substr(0, 12);
  std::vector<char> out;
  auto e = decompress(Codec::kSnappy, header_only, out, 1 << 20);
  REQUIRE(e.has_value());
  CHECK_THAT(e->message, Catch::Contains("xerial"));
  std::string long_chunk = x;
  long_chunk[16] = '\x7f';  // chunk length far beyond the input
  out.clear();
  e = decompress(Codec::kSnappy, long_chunk, out, 1 << 20);
  REQUIRE(e.has_value());
  CHECK_THAT(e->message, Catch::Contains("runs past"));
}

TEST_CASE("compression: none and unknown codecs are kUnsupported", "[kafka][compression]") {
  std::vector<char> out;
  for (int id : {0, 5, 6, 7}) {
    auto e = decompress(static_cast<Codec>(id), "abc", out, 100);
    REQUIRE(e.has_value());
    CHECK(e->kind == CodecError::Kind::kUnsupported);
    CHECK_THAT(e->message, Catch::Contains(std::to_string(id)));
  }
  std::string s;
  CHECK(compress(static_cast<Codec>(6), "abc", s).has_value());
  CHECK_FALSE(compress(Codec::kNone, "abc", s).has_value());
  CHECK(s == "abc");
}

TEST_CASE("compression: lz4 of magic 0 accepts the broken (pre-KIP-57) header checksum",
          "[kafka][compression]") {
  std::string in = sample(5000);
  std::string frame = compressed(Codec::kLz4, in);
  // Our frames: magic 04 22 4d 18, FLG 0x60 (version 1, independent blocks), BD 0x40 (64 KiB),
  // HC 0x82 = second byte of XXH32(60 40). The broken HC hashes the magic too: 0x1a.
  REQUIRE(frame.compare(0, 7, std::string("\x04\x22\x4d\x18\x60\x40\x82", 7)) == 0);
  std::string broken = frame;
  broken[6] = '\x1a';
  std::vector<char> out;
  auto e = decompress(Codec::kLz4, broken, out, 1 << 20);
  REQUIRE(e.has_value());  // magic 1/2 lz4 must carry the correct checksum
  CHECK(e->kind == CodecError::Kind::kCorrupt);
  out.clear();
  REQUIRE_FALSE(decompress_lz4_magic0(broken, out, 1 << 20).has_value());
  CHECK(std::string(out.data(), out.size()) == in);
  out.clear();
  REQUIRE_FALSE(decompress_lz4_magic0(frame, out, 1 << 20).has_value());
  CHECK(std::string(out.data(), out.size()) == in);
  std::string wrong = frame;
  wrong[6] = '\x55';  // neither checksum
  out.clear();
  CHECK(decompress_lz4_magic0(wrong, out, 1 << 20).has_value());
}
