// Kafka compression codecs over zlib, snappy, liblz4 (LZ4F frame API) and libzstd; see
// compression.h for the framings accepted and the output limit.
#include "kafka/compression.h"

#include <lz4frame.h>
#include <snappy.h>
#include <zlib.h>
#include <zstd.h>

#include <algorithm>
#include <climits>
#include <cstring>
#include <memory>

#include "kafka/wire.h"

namespace sluice::kafka {
namespace {

// Output grows in steps of at most this much, so a stream that turns out corrupt or over the
// limit has not made the output allocate max_out up front.
constexpr std::size_t kOutStep = std::size_t{256} << 10;

CodecError corrupt(std::string message) {
  return CodecError{CodecError::Kind::kCorrupt, std::move(message)};
}
CodecError too_large(const char* codec, std::size_t max_out) {
  return CodecError{CodecError::Kind::kTooLarge, std::string(codec) +
                                                     ": decompressed size exceeds the " +
                                                     std::to_string(max_out) + "-byte limit"};
}

// A first output window for `in` compressed bytes: 4x the input, from 4 KiB to kOutStep (the
// window is zero-filled, so a small batch must not pay for a large one).
std::size_t first_step(std::string_view in) {
  return std::clamp(in.size() * 4, std::size_t{4096}, kOutStep);
}

// Grows `out` by `first` bytes the first time, then doubling what was produced, but never to
// more than one byte past the limit (that one byte is how an over-limit stream is detected).
void grow(std::vector<char>& out, std::size_t base, std::size_t max_out, std::size_t first) {
  std::size_t produced = out.size() - base;
  std::size_t room = max_out + 1 - produced;  // produced <= max_out here
  std::size_t step = std::min(room, std::max(first, std::min(produced, kOutStep * 16)));
  out.resize(out.size() + step);
}

// --- gzip -------------------------------------------------------------------------------------

std::optional<CodecError> gunzip(std::string_view in, std::vector<char>& out, std::size_t max_out) {
  if (in.size() > UINT_MAX) return corrupt("gzip: input larger than 4 GiB");
  z_stream zs{};
  // 15 + 32: the largest window, and detect a gzip or a zlib header.
  if (inflateInit2(&zs, 15 + 32) != Z_OK) return corrupt("gzip: inflateInit2 failed");
  struct End {
    z_stream* s;
    ~End() { inflateEnd(s); }
  } end{&zs};
  const std::size_t base = out.size();
  std::size_t used = base;  // bytes of `out` holding output
  zs.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(in.data()));
  zs.avail_in = static_cast<uInt>(in.size());
  for (;;) {
    if (used == out.size()) {
      if (used - base > max_out) {
        out.resize(used);
        return too_large("gzip", max_out);
      }
      grow(out, base, max_out, first_step(in));
    }
    std::size_t window = std::min<std::size_t>(out.size() - used, UINT_MAX);
    zs.next_out = reinterpret_cast<Bytef*>(out.data() + used);
    zs.avail_out = static_cast<uInt>(window);
    int rc = inflate(&zs, Z_NO_FLUSH);
    used += window - zs.avail_out;
    if (rc == Z_STREAM_END) {
      if (zs.avail_in == 0) break;
      // Another gzip member may follow (concatenated streams are one gzip file).
      if (zs.avail_in >= 2 && zs.next_in[0] == 0x1f && zs.next_in[1] == 0x8b) {
        inflateReset(&zs);
        continue;
      }
      out.resize(used);
      return corrupt("gzip: " + std::to_string(zs.avail_in) + " trailing bytes after the stream");
    }
    if (rc == Z_OK) continue;
    if (rc == Z_BUF_ERROR && zs.avail_out != 0) {
      out.resize(used);
      return corrupt("gzip: stream truncated");
    }
    if (rc == Z_BUF_ERROR) continue;  // no room in the output window: grow it
    out.resize(used);
    return corrupt(std::string("gzip: ") + (zs.msg != nullptr ? zs.msg : "inflate failed"));
  }
  if (used - base > max_out) {
    out.resize(used);
    return too_large("gzip", max_out);
  }
  out.resize(used);
  return std::nullopt;
}

std::optional<CodecError> gzip(std::string_view in, std::string& out) {
  if (in.size() > UINT_MAX) return corrupt("gzip: input larger than 4 GiB");
  z_stream zs{};
  // 15 + 16: the largest window, with a gzip header and trailer.
  if (deflateInit2(&zs, Z_DEFAULT_COMPRESSION, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY) != Z_OK)
    return corrupt("gzip: deflateInit2 failed");
  uLong bound = deflateBound(&zs, static_cast<uLong>(in.size()));
  std::size_t base = out.size();
  out.resize(base + bound);
  zs.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(in.data()));
  zs.avail_in = static_cast<uInt>(in.size());
  zs.next_out = reinterpret_cast<Bytef*>(out.data() + base);
  zs.avail_out = static_cast<uInt>(bound);
  int rc = deflate(&zs, Z_FINISH);
  out.resize(base + zs.total_out);
  deflateEnd(&zs);
  if (rc != Z_STREAM_END) return corrupt("gzip: deflate did not finish");
  return std::nullopt;
}

// --- snappy -----------------------------------------------------------------------------------

constexpr char kXerialMagic[8] = {'\x82', 'S', 'N', 'A', 'P', 'P', 'Y', '\0'};
constexpr std::size_t kXerialHeader = 16;  // magic, int32 version, int32 compatible version
constexpr std::size_t kXerialChunk = 32 << 10;

std::optional<CodecError> unsnappy_raw(std::string_view in, std::vector<char>& out,
                                       std::size_t base, std::size_t max_out, const char* what) {
  std::size_t n = 0;
  if (!snappy::GetUncompressedLength(in.data(), in.size(), &n))
    return corrupt(std::string(what) + ": malformed length preamble");
  if (n > max_out - (out.size() - base)) return too_large("snappy", max_out);
  std::size_t at = out.size();
  out.resize(at + n);
  if (!snappy::RawUncompress(in.data(), in.size(), out.data() + at)) {
    out.resize(at);
    return corrupt(std::string(what) + ": corrupt compressed data");
  }
  return std::nullopt;
}

std::optional<CodecError> unsnappy(std::string_view in, std::vector<char>& out,
                                   std::size_t max_out) {
  const std::size_t base = out.size();
  if (in.size() < sizeof kXerialMagic || std::memcmp(in.data(), kXerialMagic, 8) != 0)
    return unsnappy_raw(in, out, base, max_out, "snappy");
  if (in.size() < kXerialHeader) return corrupt("snappy (xerial): truncated header");
  std::size_t pos = kXerialHeader;
  while (pos < in.size()) {
    if (in.size() - pos < 4) return corrupt("snappy (xerial): truncated chunk length");
    std::uint32_t len = load_be32(in.data() + pos);
    pos += 4;
    if (len > in.size() - pos)
      return corrupt("snappy (xerial): chunk of " + std::to_string(len) + " bytes runs past the " +
                     "end (" + std::to_string(in.size() - pos) + " left)");
    if (auto e = unsnappy_raw(in.substr(pos, len), out, base, max_out, "snappy (xerial) chunk"))
      return e;
    pos += len;
  }
  return std::nullopt;
}

std::optional<CodecError> snappy_compress(std::string_view in, std::string& out,
                                          SnappyFraming framing) {
  auto raw = [&out](std::string_view chunk) {
    std::size_t at = out.size();
    out.resize(at + snappy::MaxCompressedLength(chunk.size()));
    std::size_t n = 0;
    snappy::RawCompress(chunk.data(), chunk.size(), out.data() + at, &n);
    out.resize(at + n);
    return n;
  };
  if (framing == SnappyFraming::kRaw) {
    raw(in);
    return std::nullopt;
  }
  out.append(kXerialMagic, sizeof kXerialMagic);
  const char version[8] = {0, 0, 0, 1, 0, 0, 0, 1};  // version 1, compatible with 1
  out.append(version, sizeof version);
  for (std::size_t pos = 0; pos < in.size(); pos += kXerialChunk) {
    std::size_t len_at = out.size();
    out.append(4, '\0');
    auto n = static_cast<std::uint32_t>(raw(in.substr(pos, kXerialChunk)));
    std::uint32_t be = __builtin_bswap32(n);
    std::memcpy(out.data() + len_at, &be, 4);
  }
  return std::nullopt;
}

// --- lz4 --------------------------------------------------------------------------------------

// XXH32 (xxHash, 32-bit; the LZ4 frame format's checksum), written from the xxHash
// specification; needed only to repair the pre-KIP-57 frame-descriptor checksum.
std::uint32_t xxh32(const unsigned char* p, std::size_t len, std::uint32_t seed) {
  constexpr std::uint32_t P1 = 2654435761u, P2 = 2246822519u, P3 = 3266489917u, P4 = 668265263u,
                          P5 = 374761393u;
  auto rotl = [](std::uint32_t x, int r) { return (x << r) | (x >> (32 - r)); };
  auto rd = [](const unsigned char* q) {
    std::uint32_t v;
    std::memcpy(&v, q, 4);
    return v;  // little-endian host (x86-64, as crc32c.h already assumes)
  };
  auto round = [&](std::uint32_t acc, std::uint32_t in) { return rotl(acc + in * P2, 13) * P1; };
  const unsigned char* end = p + len;
  std::uint32_t h;
  if (len >= 16) {
    std::uint32_t v1 = seed + P1 + P2, v2 = seed + P2, v3 = seed, v4 = seed - P1;
    for (; end - p >= 16; p += 16) {
      v1 = round(v1, rd(p));
      v2 = round(v2, rd(p + 4));
      v3 = round(v3, rd(p + 8));
      v4 = round(v4, rd(p + 12));
    }
    h = rotl(v1, 1) + rotl(v2, 7) + rotl(v3, 12) + rotl(v4, 18);
  } else {
    h = seed + P5;
  }
  h += static_cast<std::uint32_t>(len);
  for (; end - p >= 4; p += 4) h = rotl(h + rd(p) * P3, 17) * P4;
  for (; p < end; ++p) h = rotl(h + *p * P5, 11) * P1;
  h ^= h >> 15;
  h *= P2;
  h ^= h >> 13;
  h *= P3;
  h ^= h >> 16;
  return h;
}

std::optional<CodecError> unlz4(std::string_view in, std::vector<char>& out, std::size_t max_out) {
  // One context per thread, reset before each use: creating one costs more than decoding a
  // small batch.
  thread_local std::unique_ptr<LZ4F_dctx, decltype(&LZ4F_freeDecompressionContext)> cached(
      nullptr, &LZ4F_freeDecompressionContext);
  if (!cached) {
    LZ4F_dctx* created = nullptr;
    if (LZ4F_isError(LZ4F_createDecompressionContext(&created, LZ4F_VERSION)))
      return corrupt("lz4: cannot create a decompression context");
    cached.reset(created);
  }
  LZ4F_dctx* dctx = cached.get();
  LZ4F_resetDecompressionContext(dctx);  // a previous call may have stopped mid-frame
  const std::size_t base = out.size();
  std::size_t used = base;
  std::size_t pos = 0;
  std::size_t hint = 1;  // nonzero: a frame is open (or none has started)
  if (in.empty()) return corrupt("lz4: empty input");
  while (pos < in.size()) {
    if (used == out.size()) {
      if (used - base > max_out) {
        out.resize(used);
        return too_large("lz4", max_out);
      }
      grow(out, base, max_out, first_step(in));
    }
    std::size_t dst = out.size() - used;
    std::size_t src = in.size() - pos;
    hint = LZ4F_decompress(dctx, out.data() + used, &dst, in.data() + pos, &src, nullptr);
    if (LZ4F_isError(hint)) {
      out.resize(used);
      return corrupt(std::string("lz4: ") + LZ4F_getErrorName(hint));
    }
    if (src == 0 && dst == 0) {
      out.resize(used);
      return corrupt("lz4: decoder made no progress");
    }
    pos += src;
    used += dst;
  }
  // Input is exhausted; flush what the context still holds into the output.
  while (hint != 0) {
    if (used == out.size()) {
      if (used - base > max_out) {
        out.resize(used);
        return too_large("lz4", max_out);
      }
      grow(out, base, max_out, first_step(in));
    }
    std::size_t dst = out.size() - used;
    std::size_t src = 0;
    hint = LZ4F_decompress(dctx, out.data() + used, &dst, in.data() + in.size(), &src, nullptr);
    if (LZ4F_isError(hint)) {
      out.resize(used);
      return corrupt(std::string("lz4: ") + LZ4F_getErrorName(hint));
    }
    used += dst;
    if (hint != 0 && dst == 0) {
      out.resize(used);
      return corrupt("lz4: frame truncated");
    }
  }
  out.resize(used);
  if (used - base > max_out) return too_large("lz4", max_out);
  return std::nullopt;
}

std::optional<CodecError> lz4_compress(std::string_view in, std::string& out) {
  LZ4F_preferences_t prefs;
  std::memset(&prefs, 0, sizeof prefs);
  prefs.frameInfo.blockSizeID = LZ4F_max64KB;  // as Kafka's producers write
  prefs.frameInfo.blockMode = LZ4F_blockIndependent;
  std::size_t bound = LZ4F_compressFrameBound(in.size(), &prefs);
  std::size_t at = out.size();
  out.resize(at + bound);
  std::size_t n = LZ4F_compressFrame(out.data() + at, bound, in.data(), in.size(), &prefs);
  if (LZ4F_isError(n)) {
    out.resize(at);
    return corrupt(std::string("lz4: ") + LZ4F_getErrorName(n));
  }
  out.resize(at + n);
  return std::nullopt;
}

// --- zstd -------------------------------------------------------------------------------------

std::optional<CodecError> unzstd(std::string_view in, std::vector<char>& out, std::size_t max_out) {
  // One context per thread (creating one costs more than decoding a small batch), reset before
  // each use: a previous call may have stopped mid-frame.
  thread_local std::unique_ptr<ZSTD_DCtx, decltype(&ZSTD_freeDCtx)> dctx(nullptr, &ZSTD_freeDCtx);
  if (!dctx) dctx.reset(ZSTD_createDCtx());
  if (!dctx) return corrupt("zstd: cannot create a decompression context");
  ZSTD_DCtx_reset(dctx.get(), ZSTD_reset_session_and_parameters);
  // A frame's declared window is allocated up front: allow what the limit could need, at least
  // 8 MiB (what a streaming compressor declares at high levels), at most zstd's default cap.
  int window_log = 23;
  while (window_log < 27 && (std::size_t{1} << window_log) < max_out) ++window_log;
  ZSTD_DCtx_setParameter(dctx.get(), ZSTD_d_windowLogMax, window_log);
  if (in.empty()) return corrupt("zstd: empty input");
  const std::size_t base = out.size();
  std::size_t used = base;
  ZSTD_inBuffer ib{in.data(), in.size(), 0};
  std::size_t rc = 1;
  for (;;) {
    if (used == out.size()) {
      if (used - base > max_out) {
        out.resize(used);
        return too_large("zstd", max_out);
      }
      grow(out, base, max_out, first_step(in));
    }
    ZSTD_outBuffer ob{out.data() + used, out.size() - used, 0};
    rc = ZSTD_decompressStream(dctx.get(), &ob, &ib);
    used += ob.pos;
    if (ZSTD_isError(rc)) {
      out.resize(used);
      return corrupt(std::string("zstd: ") + ZSTD_getErrorName(rc));
    }
    // Done when all input is read and either the last frame ended (rc == 0; calling again would
    // ask for another frame's header) or the output has room left (nothing more to flush).
    if (ib.pos == ib.size && (rc == 0 || ob.pos < ob.size)) break;
  }
  out.resize(used);
  if (used - base > max_out) return too_large("zstd", max_out);
  if (rc != 0) return corrupt("zstd: frame truncated");
  return std::nullopt;
}

std::optional<CodecError> zstd_compress(std::string_view in, std::string& out) {
  std::size_t bound = ZSTD_compressBound(in.size());
  std::size_t at = out.size();
  out.resize(at + bound);
  std::size_t n = ZSTD_compress(out.data() + at, bound, in.data(), in.size(), ZSTD_CLEVEL_DEFAULT);
  if (ZSTD_isError(n)) {
    out.resize(at);
    return corrupt(std::string("zstd: ") + ZSTD_getErrorName(n));
  }
  out.resize(at + n);
  return std::nullopt;
}

CodecError unsupported(Codec codec) {
  return CodecError{CodecError::Kind::kUnsupported, std::string("unsupported compression codec ") +
                                                        std::to_string(static_cast<int>(codec)) +
                                                        " (" + codec_name(codec) + ")"};
}

}  // namespace

const char* codec_name(Codec codec) {
  switch (codec) {
    case Codec::kNone:
      return "none";
    case Codec::kGzip:
      return "gzip";
    case Codec::kSnappy:
      return "snappy";
    case Codec::kLz4:
      return "lz4";
    case Codec::kZstd:
      return "zstd";
  }
  return "unknown";
}

std::optional<CodecError> decompress(Codec codec, std::string_view in, std::vector<char>& out,
                                     std::size_t max_out) {
  switch (codec) {
    case Codec::kGzip:
      return gunzip(in, out, max_out);
    case Codec::kSnappy:
      return unsnappy(in, out, max_out);
    case Codec::kLz4:
      return unlz4(in, out, max_out);
    case Codec::kZstd:
      return unzstd(in, out, max_out);
    case Codec::kNone:
      break;
  }
  return unsupported(codec);
}

std::optional<CodecError> decompress_lz4_magic0(std::string_view in, std::vector<char>& out,
                                                std::size_t max_out) {
  // Frame: magic (4) | FLG | BD | [content size (8) if FLG bit 3] | [dict id (4) if FLG bit 0]
  // | HC. HC = second byte of XXH32(FLG .. before HC); the broken form hashed from the magic.
  constexpr std::size_t kMagic = 4;
  if (in.size() < kMagic + 3) return unlz4(in, out, max_out);  // let LZ4F name the error
  auto flg = static_cast<unsigned char>(in[kMagic]);
  std::size_t hc_at = kMagic + 2 + ((flg & 0x08) ? 8 : 0) + ((flg & 0x01) ? 4 : 0);
  if (hc_at >= in.size()) return unlz4(in, out, max_out);
  const auto* bytes = reinterpret_cast<const unsigned char*>(in.data());
  auto good = static_cast<unsigned char>(xxh32(bytes + kMagic, hc_at - kMagic, 0) >> 8);
  auto broken = static_cast<unsigned char>(xxh32(bytes, hc_at, 0) >> 8);
  if (bytes[hc_at] == good || bytes[hc_at] != broken) return unlz4(in, out, max_out);
  std::string fixed(in);
  fixed[hc_at] = static_cast<char>(good);
  return unlz4(fixed, out, max_out);
}

std::optional<CodecError> compress(Codec codec, std::string_view in, std::string& out,
                                   SnappyFraming snappy_framing) {
  switch (codec) {
    case Codec::kNone:
      out.append(in);
      return std::nullopt;
    case Codec::kGzip:
      return gzip(in, out);
    case Codec::kSnappy:
      return snappy_compress(in, out, snappy_framing);
    case Codec::kLz4:
      return lz4_compress(in, out);
    case Codec::kZstd:
      return zstd_compress(in, out);
  }
  return unsupported(codec);
}

}  // namespace sluice::kafka
