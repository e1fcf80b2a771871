// Kafka compression codecs: the bytes after a record batch's recordCount (magic 2), or the value
// of a magic 0/1 wrapper message, as the Java client and librdkafka write them.
//
//   gzip    a gzip stream (RFC 1952), possibly several concatenated members; a zlib stream
//           (RFC 1950) is accepted too (inflate detects the header).
//   snappy  raw snappy (librdkafka, sarama, the Java client) or the xerial framing
//           (kafka-python, old Java clients):
//             +--------------------------+---------+---------+---------------------------+
//             | 82 'S' 'N' 'A' 'P' 'P' 'Y' 00 | version | compat  | (int32 n, n raw bytes)*  |
//             |           8 bytes               | int32 BE| int32 BE| each a raw snappy chunk  |
//             +--------------------------+---------+---------+---------------------------+
//           decompress() recognises the magic and accepts either.
//   lz4     the LZ4 frame format (LZ4F), not raw LZ4 blocks. Kafka before 0.10 (magic 0)
//           computed the frame-descriptor checksum over the magic number too ("broken
//           checksum", KIP-57); decompress_lz4_magic0 repairs that byte before decoding.
//           Magic 1 and 2 use the correct checksum.
//   zstd    one or more zstd frames; frames need not carry their content size.
//
// Every decompressor refuses to produce more than `max_out` bytes: a decompression bomb is a
// kTooLarge error found while decompressing, having grown the output by at most max_out + 1
// bytes (in steps that start at 4x the input, at most 256 KiB, and double, so a bomb never
// makes it allocate the limit up front). It
// never reads past `in` and never throws: failures are values.
//
// Thread-safety: callable from any number of threads at once; the lz4 and zstd decoders keep
// one decompression context per thread (thread_local), reset at the start of every call.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace sluice::kafka {

// Attributes bits 0-2 of a record batch (and of a magic 0/1 message). 5, 6 and 7 are unknown.
enum class Codec : std::int8_t { kNone = 0, kGzip = 1, kSnappy = 2, kLz4 = 3, kZstd = 4 };

// "none", "gzip", "snappy", "lz4", "zstd", or "unknown".
const char* codec_name(Codec codec);

struct CodecError {
  enum class Kind : std::uint8_t {
    kCorrupt,      // the input is not a valid stream of this codec (or is truncated)
    kTooLarge,     // decompressing would exceed max_out
    kUnsupported,  // a codec this build or call does not handle (kNone, unknown ids)
  };
  Kind kind;
  std::string message;  // names the codec and the cause: "zstd: Unknown frame descriptor"
};

// Appends the decompressed form of `in` to `out` (whatever `out` held stays in front). At most
// `max_out` bytes are appended; more is kTooLarge. `out` may have been grown (and hold partial
// output) after an error. Returns nullopt on success.
std::optional<CodecError> decompress(Codec codec, std::string_view in, std::vector<char>& out,
                                     std::size_t max_out);

// decompress(Codec::kLz4, ...) for a magic 0 message: accepts the pre-KIP-57 frame-descriptor
// checksum (over magic + descriptor) as well as the correct one.
std::optional<CodecError> decompress_lz4_magic0(std::string_view in, std::vector<char>& out,
                                                std::size_t max_out);

// Snappy's two framings; decompress() detects which one it was given.
enum class SnappyFraming : std::uint8_t { kRaw, kXerial };

// Appends the compressed form of `in` to `out`: gzip with a gzip header, snappy raw or
// xerial-framed (xerial chunks of 32 KiB, as snappy-java writes them), an LZ4 frame with the
// correct descriptor checksum, a zstd frame. For tests and, if ever needed, compressed fetch
// batches. Codec::kNone appends `in` unchanged.
std::optional<CodecError> compress(Codec codec, std::string_view in, std::string& out,
                                   SnappyFraming snappy_framing = SnappyFraming::kRaw);

}  // namespace sluice::kafka
