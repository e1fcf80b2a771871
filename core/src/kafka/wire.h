// Kafka wire primitives: big-endian integers, zig-zag varints, strings, bytes and arrays, as
// the non-flexible protocol versions encode them (Kafka's protocol guide, "Protocol Primitive
// Types").
//
// ByteReader never throws and never reads out of bounds: the first malformed field (a short
// buffer, a negative length where none is allowed, an array longer than the bytes left could
// hold) marks the reader failed with a reason, and every later read yields zero/empty. The
// caller checks ok() once, after decoding a whole request: outcomes as values, one branch.
//
// ByteWriter appends to a growable buffer; sizes that precede their contents are reserved
// first and patched afterwards (reserve_i32 / patch_i32).
//
// Thread-safety: none; one thread uses a reader or writer at a time.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <optional>
#include <string>
#include <string_view>

namespace sluice::kafka {

// The big-endian uint32 at p (unaligned), for fields read in place rather than through a
// ByteReader (record batch headers, xerial snappy chunk lengths).
inline std::uint32_t load_be32(const char* p) {
  std::uint32_t v;
  std::memcpy(&v, p, 4);
  return __builtin_bswap32(v);
}

class ByteReader {
 public:
  ByteReader() = default;
  explicit ByteReader(std::string_view bytes)
      : p_(bytes.data()), end_(bytes.data() + bytes.size()) {}

  bool ok() const { return error_ == nullptr; }
  // Why decoding failed ("truncated int32", "negative string length" ...); nullptr when ok.
  const char* error() const { return error_; }
  void fail(const char* why) {
    if (error_ == nullptr) error_ = why;
    p_ = end_;
  }
  std::size_t remaining() const { return static_cast<std::size_t>(end_ - p_); }
  const char* position() const { return p_; }

  std::int8_t i8() { return static_cast<std::int8_t>(fixed<std::uint8_t>("truncated int8")); }
  std::int16_t i16() { return static_cast<std::int16_t>(fixed<std::uint16_t>("truncated int16")); }
  std::int32_t i32() { return static_cast<std::int32_t>(fixed<std::uint32_t>("truncated int32")); }
  std::int64_t i64() { return static_cast<std::int64_t>(fixed<std::uint64_t>("truncated int64")); }
  std::uint32_t u32() { return fixed<std::uint32_t>("truncated uint32"); }
  bool boolean() { return i8() != 0; }

  // Zig-zag varints (record fields): at most 5 bytes for 32 bits, 10 for 64.
  std::int32_t varint() {
    std::uint64_t v = uvarint(5, "malformed varint");
    std::uint32_t u = static_cast<std::uint32_t>(v);
    return static_cast<std::int32_t>((u >> 1) ^ (~(u & 1) + 1));
  }
  std::int64_t varlong() {
    std::uint64_t u = uvarint(10, "malformed varlong");
    return static_cast<std::int64_t>((u >> 1) ^ (~(u & 1) + 1));
  }

  // STRING: int16 length, then UTF-8 bytes; a null (-1) is an error here.
  std::string_view string() {
    std::int16_t n = i16();
    if (n < 0) {
      fail("null or negative string length");
      return {};
    }
    return raw(static_cast<std::size_t>(n));
  }
  // NULLABLE_STRING: -1 is null.
  std::optional<std::string_view> nullable_string() {
    std::int16_t n = i16();
    if (n == -1) return std::nullopt;
    if (n < 0) {
      fail("negative string length");
      return std::string_view{};
    }
    return raw(static_cast<std::size_t>(n));
  }
  // BYTES / NULLABLE_BYTES: int32 length, -1 is null.
  std::optional<std::string_view> nullable_bytes() {
    std::int32_t n = i32();
    if (n == -1) return std::nullopt;
    if (n < 0) {
      fail("negative bytes length");
      return std::string_view{};
    }
    return raw(static_cast<std::size_t>(n));
  }
  std::string_view bytes() {
    std::optional<std::string_view> b = nullable_bytes();
    if (!b) {
      fail("null bytes where a value is required");
      return {};
    }
    return *b;
  }
  // Varint-length bytes inside records: -1 is null.
  std::optional<std::string_view> varint_bytes() {
    std::int32_t n = varint();
    if (n == -1) return std::nullopt;
    if (n < 0) {
      fail("negative record field length");
      return std::string_view{};
    }
    return raw(static_cast<std::size_t>(n));
  }

  // ARRAY: int32 count; -1 (null) reads as 0 elements. A count that the remaining bytes cannot
  // hold at `min_element_bytes` each fails, so a hostile count never drives a huge allocation.
  std::int32_t array_length(std::size_t min_element_bytes = 1) {
    std::int32_t n = i32();
    if (n == -1) return 0;
    if (n < 0) {
      fail("negative array length");
      return 0;
    }
    if (static_cast<std::size_t>(n) > remaining() / (min_element_bytes ? min_element_bytes : 1)) {
      fail("array length exceeds the request");
      return 0;
    }
    return n;
  }

  std::string_view raw(std::size_t n) {
    if (n > remaining()) {
      fail("field runs past the end of the request");
      return {};
    }
    std::string_view v(p_, n);
    p_ += n;
    return v;
  }
  std::string_view rest() { return raw(remaining()); }
  void skip(std::size_t n) { (void)raw(n); }

 private:
  template <typename T>
  T fixed(const char* why) {
    if (remaining() < sizeof(T)) {
      fail(why);
      return 0;
    }
    T v;
    std::memcpy(&v, p_, sizeof(T));
    p_ += sizeof(T);
    if constexpr (sizeof(T) == 2) v = __builtin_bswap16(v);
    if constexpr (sizeof(T) == 4) v = __builtin_bswap32(v);
    if constexpr (sizeof(T) == 8) v = __builtin_bswap64(v);
    return v;
  }
  std::uint64_t uvarint(int max_bytes, const char* why) {
    // One and two bytes first, without the loop (max_bytes is 5 or 10): a Produce of small
    // records is mostly such varints, seven a record, and the loop was a good part of the
    // decoder's time (bench/kafka_batch_bench Decode/value:100/codec:0).
    if (p_ != end_) [[likely]] {
      auto b0 = static_cast<std::uint8_t>(p_[0]);
      if (b0 < 0x80u) {
        p_ += 1;
        return b0;
      }
      if (end_ - p_ >= 2) {
        auto b1 = static_cast<std::uint8_t>(p_[1]);
        if (b1 < 0x80u) {
          p_ += 2;
          return (b0 & 0x7fu) | (std::uint64_t{b1} << 7);
        }
      }
    }
    std::uint64_t v = 0;
    for (int i = 0; i < max_bytes; ++i) {
      if (p_ == end_) break;
      auto b = static_cast<std::uint8_t>(*p_++);
      v |= std::uint64_t{b & 0x7fu} << (7 * i);
      if ((b & 0x80u) == 0) return v;
    }
    fail(why);
    return 0;
  }

  const char* p_ = nullptr;
  const char* end_ = nullptr;
  const char* error_ = nullptr;
};

class ByteWriter {
 public:
  ByteWriter() = default;
  explicit ByteWriter(std::string buffer) : buf_(std::move(buffer)) {}

  void i8(std::int8_t v) { buf_.push_back(static_cast<char>(v)); }
  void i16(std::int16_t v) { fixed(__builtin_bswap16(static_cast<std::uint16_t>(v))); }
  void i32(std::int32_t v) { fixed(__builtin_bswap32(static_cast<std::uint32_t>(v))); }
  void i64(std::int64_t v) { fixed(__builtin_bswap64(static_cast<std::uint64_t>(v))); }
  void u32(std::uint32_t v) { fixed(__builtin_bswap32(v)); }
  void boolean(bool v) { i8(v ? 1 : 0); }

  void varint(std::int32_t v) {
    auto u = static_cast<std::uint32_t>(v);
    uvarint((u << 1) ^ static_cast<std::uint32_t>(v >> 31));
  }
  void varlong(std::int64_t v) {
    auto u = static_cast<std::uint64_t>(v);
    uvarint((u << 1) ^ static_cast<std::uint64_t>(v >> 63));
  }
  void uvarint(std::uint64_t u) {
    if (u < 0x80) {  // most record fields: one byte
      buf_.push_back(static_cast<char>(u));
      return;
    }
    char tmp[10];
    std::size_t n = 0;
    while (u >= 0x80) {
      tmp[n++] = static_cast<char>((u & 0x7f) | 0x80);
      u >>= 7;
    }
    tmp[n++] = static_cast<char>(u);
    buf_.append(tmp, n);
  }

  void string(std::string_view s) {
    i16(static_cast<std::int16_t>(s.size()));
    buf_.append(s);
  }
  void nullable_string(const std::optional<std::string_view>& s) {
    if (!s) return i16(-1);
    string(*s);
  }
  void bytes(std::string_view b) {
    i32(static_cast<std::int32_t>(b.size()));
    buf_.append(b);
  }
  void nullable_bytes(const std::optional<std::string_view>& b) {
    if (!b) return i32(-1);
    bytes(*b);
  }
  void varint_bytes(const std::optional<std::string_view>& b) {
    if (!b) return varint(-1);
    varint(static_cast<std::int32_t>(b->size()));
    buf_.append(*b);
  }
  void array_length(std::size_t n) { i32(static_cast<std::int32_t>(n)); }
  void raw(std::string_view b) { buf_.append(b); }

  // A placeholder int32 (a size or count known later): returns its position for patch_i32.
  std::size_t reserve_i32() {
    std::size_t at = buf_.size();
    buf_.append(4, '\0');
    return at;
  }
  void patch_i32(std::size_t at, std::int32_t v) {
    auto u = __builtin_bswap32(static_cast<std::uint32_t>(v));
    std::memcpy(buf_.data() + at, &u, 4);
  }
  void patch_u32(std::size_t at, std::uint32_t v) { patch_i32(at, static_cast<std::int32_t>(v)); }

  std::size_t size() const { return buf_.size(); }
  std::string& buffer() { return buf_; }
  const std::string& buffer() const { return buf_; }
  std::string take() { return std::move(buf_); }

 private:
  template <typename T>
  void fixed(T v) {
    char tmp[sizeof(T)];
    std::memcpy(tmp, &v, sizeof(T));
    buf_.append(tmp, sizeof(T));
  }
  std::string buf_;
};

}  // namespace sluice::kafka
