// Record contents as the log stores them (docs/format.md, "Frame body"): an optional key, an
// optional list of headers (name, nullable bytes), and a nullable value. The log copies
// bytes; it gives them no meaning.
//
// Thread-safety: plain values and views. A RecordView points into a mapping and is valid
// until the reader that produced it moves on (its next poll).
#pragma once

#include <cstdint>
#include <cstring>
#include <optional>
#include <span>
#include <string_view>

#include "shm/log_format.h"

namespace sluice::shm {

struct HeaderView {
  std::string_view name;
  std::optional<std::string_view> value;  // nullopt: a null header value
};

// What a producer gives besides the value.
struct RecordMeta {
  std::optional<std::string_view> key;  // nullopt: no key (null)
  std::span<const HeaderView> headers;  // may be empty
  std::int64_t timestamp_ns = -1;       // < 0: taken at append
  bool null_value = false;              // a tombstone: the value is null, not empty

  std::uint8_t flags() const {
    std::uint8_t f = 0;
    if (key) f |= kFlagKey;
    if (!headers.empty()) f |= kFlagHeaders;
    if (null_value) f |= kFlagNullValue;
    return f;
  }

  std::uint64_t headers_bytes() const {
    std::uint64_t n = 4;  // count
    for (const HeaderView& h : headers)
      n += 4 + h.name.size() + 4 + (h.value ? h.value->size() : 0);
    return n;
  }

  // Bytes of the body before the value: [u32 key_len, key] [u32 headers_len, headers].
  std::uint64_t encoded_prefix_bytes() const {
    std::uint64_t n = 0;
    if (key) n += 4 + key->size();
    if (!headers.empty()) n += 4 + headers_bytes();
    return n;
  }

  // Calls emit(data, size) for each piece of the encoded prefix in order: the one definition
  // of its layout, shared by encode_prefix and the appender's checksum of copied records.
  // Lengths are u32 in host order (little-endian, docs/format.md).
  template <class Emit>
  void for_each_prefix_piece(Emit&& emit) const {
    auto u32 = [&emit](std::uint32_t v) { emit(&v, std::size_t{4}); };
    auto bytes = [&emit](std::string_view b) { emit(b.data(), b.size()); };
    if (key) {
      u32(static_cast<std::uint32_t>(key->size()));
      bytes(*key);
    }
    if (!headers.empty()) {
      u32(static_cast<std::uint32_t>(headers_bytes()));
      u32(static_cast<std::uint32_t>(headers.size()));
      for (const HeaderView& h : headers) {
        u32(static_cast<std::uint32_t>(h.name.size()));
        bytes(h.name);
        u32(h.value ? static_cast<std::uint32_t>(h.value->size()) : 0xffffffffu);
        if (h.value) bytes(*h.value);
      }
    }
  }

  void encode_prefix(std::byte* out) const {
    for_each_prefix_piece([&out](const void* data, std::size_t size) {
      if (size != 0) std::memcpy(out, data, size);
      out += size;
    });
  }
};

// Iterates an encoded headers block. The reader has checked that the block fits the frame;
// each header is checked against the block's end as it is read.
class HeaderIterator {
 public:
  HeaderIterator() = default;
  HeaderIterator(const char* block, std::uint32_t block_bytes) {
    if (block_bytes < 4) return;
    std::memcpy(&remaining_, block, 4);
    p_ = block + 4;
    end_ = block + block_bytes;
  }
  // Fills `out` with the next header; false at the end or on a malformed block.
  bool next(HeaderView& out) {
    if (remaining_ == 0 || p_ == nullptr) return false;
    std::uint32_t name_len, value_len;
    if (end_ - p_ < 4) return fail();
    std::memcpy(&name_len, p_, 4);
    p_ += 4;
    if (static_cast<std::uint64_t>(end_ - p_) < std::uint64_t{name_len} + 4) return fail();
    out.name = {p_, name_len};
    p_ += name_len;
    std::memcpy(&value_len, p_, 4);
    p_ += 4;
    if (value_len == 0xffffffffu) {
      out.value.reset();
    } else {
      if (static_cast<std::uint64_t>(end_ - p_) < value_len) return fail();
      out.value = std::string_view{p_, value_len};
      p_ += value_len;
    }
    --remaining_;
    return true;
  }
  bool malformed() const { return malformed_; }

 private:
  bool fail() {
    malformed_ = true;
    remaining_ = 0;
    return false;
  }
  const char* p_ = nullptr;
  const char* end_ = nullptr;
  std::uint32_t remaining_ = 0;
  bool malformed_ = false;
};

// A record as a reader sees it: views into the mapping.
struct RecordView {
  std::int64_t offset = -1;
  std::int64_t timestamp_ns = 0;
  std::optional<std::string_view> key;
  std::optional<std::string_view> value;  // nullopt: a tombstone
  const char* headers_block = nullptr;    // encoded headers; see headers()
  std::uint32_t headers_block_bytes = 0;
  std::uint32_t frame_bytes = 0;

  bool has_headers() const { return headers_block != nullptr; }
  HeaderIterator headers() const { return {headers_block, headers_block_bytes}; }

  // Decodes a committed data frame of `length` bytes; false if its key or headers lengths
  // overrun the frame (a corrupt frame).
  static bool decode(const FrameHeader* frame, std::uint32_t length, RecordView& r) {
    r.offset = frame->offset;
    r.timestamp_ns = frame->timestamp_ns;
    r.frame_bytes = length;
    const char* base = reinterpret_cast<const char*>(frame);
    const char* p = base + kFrameHeaderBytes;
    const char* end = base + length;
    std::uint8_t flags = frame->flags;
    if (flags & (kFlagKey | kFlagHeaders)) [[unlikely]] {
      std::uint32_t n;
      if (flags & kFlagKey) {
        if (end - p < 4) return false;
        std::memcpy(&n, p, 4);
        if (static_cast<std::uint64_t>(end - p - 4) < n) return false;
        r.key = std::string_view{p + 4, n};
        p += 4 + std::size_t{n};
      } else {
        r.key.reset();
      }
      if (flags & kFlagHeaders) {
        if (end - p < 4) return false;
        std::memcpy(&n, p, 4);
        if (static_cast<std::uint64_t>(end - p - 4) < n) return false;
        r.headers_block = p + 4;
        r.headers_block_bytes = n;
        p += 4 + std::size_t{n};
      } else {
        r.headers_block = nullptr;
        r.headers_block_bytes = 0;
      }
    } else {
      r.key.reset();
      r.headers_block = nullptr;
      r.headers_block_bytes = 0;
    }
    if (flags & kFlagNullValue) {
      r.value.reset();
    } else {
      r.value = std::string_view{p, static_cast<std::size_t>(end - p)};
    }
    return true;
  }
};

}  // namespace sluice::shm
