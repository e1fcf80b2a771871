// Private to the messages_*.cc files: the symmetric field walkers the codec is written with.
//
// Each message's layout is written once, as `fields(io, version, m)`, a template over the
// direction: with a Reader it decodes into `m`, with a Writer it encodes `m` (then const).
// Encoder and decoder therefore cannot disagree about which fields a version has, or in which
// order; tests/core/kafka/ pins the layouts themselves with golden bytes and per-version field
// lists.
//
// Thread-safety: none needed; a walker wraps one caller-owned reader or writer.
#pragma once

#include <concepts>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string_view>
#include <type_traits>
#include <vector>

#include "kafka/messages.h"
#include "kafka/protocol.h"
#include "kafka/wire.h"

namespace sluice::kafka::codec {

// M is T or const T: the fields() overload for message T.
template <typename M, typename T>
concept Is = std::same_as<std::remove_const_t<M>, T>;

// Minimum wire sizes, for bounding hostile array counts (ByteReader::array_length).
inline constexpr std::size_t kMinString = 2;
inline constexpr std::size_t kMinBytes = 4;
inline constexpr std::size_t kMinArray = 4;

class Reader {
 public:
  static constexpr bool kReading = true;
  explicit Reader(ByteReader& r) : r_(r) {}

  void i8(std::int8_t& x) { x = r_.i8(); }
  void i16(std::int16_t& x) { x = r_.i16(); }
  void i32(std::int32_t& x) { x = r_.i32(); }
  void i64(std::int64_t& x) { x = r_.i64(); }
  void boolean(bool& x) { x = r_.boolean(); }
  void error(ErrorCode& x) { x = static_cast<ErrorCode>(r_.i16()); }
  void string(std::string_view& x) { x = r_.string(); }
  void nullable_string(NullableString& x) { x = r_.nullable_string(); }
  void bytes(std::string_view& x) { x = r_.bytes(); }
  void nullable_bytes(NullableBytes& x) { x = r_.nullable_bytes(); }

  // ARRAY: a null (-1) reads as empty. `each` decodes one element in place.
  template <typename T, typename F>
  void array(std::vector<T>& v, std::size_t min_element_bytes, F&& each) {
    std::int32_t n = r_.array_length(min_element_bytes);
    v.clear();
    v.reserve(static_cast<std::size_t>(n));
    for (std::int32_t i = 0; i < n && r_.ok(); ++i) each(v.emplace_back());
  }
  // Nullable ARRAY: -1 is nullopt.
  template <typename T, typename F>
  void nullable_array(std::optional<std::vector<T>>& v, std::size_t min_element_bytes, F&& each) {
    std::int32_t n = r_.i32();
    v.reset();
    if (!r_.ok() || n == -1) return;
    if (n < 0) return r_.fail("negative array length");
    if (static_cast<std::size_t>(n) > r_.remaining() / min_element_bytes) {
      return r_.fail("array length exceeds the request");
    }
    v.emplace();
    v->reserve(static_cast<std::size_t>(n));
    for (std::int32_t i = 0; i < n && r_.ok(); ++i) each(v->emplace_back());
  }

  // Flexible-version primitives (ApiVersions v3+ only).
  void compact_string(std::string_view& x) {
    std::uint32_t n = uvarint32();
    if (!r_.ok()) return;
    if (n == 0) return r_.fail("null compact string where a value is required");
    x = r_.raw(n - 1);
  }
  // A tagged-field section: every field is skipped (none is known to the gateway).
  void tagged_fields() {
    std::uint32_t count = uvarint32();
    for (std::uint32_t i = 0; i < count && r_.ok(); ++i) {
      (void)uvarint32();  // tag
      std::uint32_t size = uvarint32();
      r_.skip(size);
    }
  }

  ByteReader& reader() { return r_; }

 private:
  // Unsigned varint of at most 5 bytes (flexible versions' lengths and counts).
  std::uint32_t uvarint32() {
    std::uint32_t v = 0;
    for (int i = 0; i < 5; ++i) {
      if (r_.remaining() == 0) break;
      auto b = static_cast<std::uint8_t>(r_.i8());
      if (i == 4 && b > 0x0f) break;
      v |= static_cast<std::uint32_t>(b & 0x7fu) << (7 * i);
      if ((b & 0x80u) == 0) return v;
    }
    r_.fail("malformed unsigned varint");
    return 0;
  }

  ByteReader& r_;
};

class Writer {
 public:
  static constexpr bool kReading = false;
  explicit Writer(ByteWriter& w) : w_(w) {}

  void i8(std::int8_t x) { w_.i8(x); }
  void i16(std::int16_t x) { w_.i16(x); }
  void i32(std::int32_t x) { w_.i32(x); }
  void i64(std::int64_t x) { w_.i64(x); }
  void boolean(bool x) { w_.boolean(x); }
  void error(ErrorCode x) { w_.i16(to_int(x)); }
  void string(std::string_view x) { w_.string(x); }
  void nullable_string(const NullableString& x) { w_.nullable_string(x); }
  void bytes(std::string_view x) { w_.bytes(x); }
  void nullable_bytes(const NullableBytes& x) { w_.nullable_bytes(x); }

  template <typename T, typename F>
  void array(const std::vector<T>& v, std::size_t /*min_element_bytes*/, F&& each) {
    w_.array_length(v.size());
    for (const T& x : v) each(x);
  }
  template <typename T, typename F>
  void nullable_array(const std::optional<std::vector<T>>& v, std::size_t min_element_bytes,
                      F&& each) {
    if (!v) return w_.i32(-1);
    array(*v, min_element_bytes, each);
  }

  void compact_string(std::string_view x) {
    w_.uvarint(x.size() + 1);
    w_.raw(x);
  }
  void tagged_fields() { w_.uvarint(0); }

  ByteWriter& writer() { return w_; }

 private:
  ByteWriter& w_;
};

// Ends a decode: a body followed by more bytes is malformed.
inline bool finish(ByteReader& r) {
  if (r.ok() && r.remaining() != 0) r.fail("trailing bytes after the message body");
  return r.ok();
}

}  // namespace sluice::kafka::codec

// Defines the public decode/encode pair of a message from its fields() walker, which must be
// declared before the expansion (in namespace sluice::kafka, or one it uses).
#define SLUICE_KAFKA_CODEC(Type)                                    \
  bool decode(ByteReader& r, std::int16_t version, Type& m) {       \
    m = Type{};                                                     \
    codec::Reader io(r);                                            \
    fields(io, version, m);                                         \
    return codec::finish(r);                                        \
  }                                                                 \
  void encode(ByteWriter& w, std::int16_t version, const Type& m) { \
    codec::Writer io(w);                                            \
    fields(io, version, m);                                         \
  }
