// Private to record_batch.cc and message_set.cc: the pieces the v2 batch decoder and the
// magic 0/1 message-set decoder share. Not for the gateway; it uses record_batch.h.
//
// Thread-safety: pure functions.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "kafka/compression.h"
#include "kafka/record_batch.h"

namespace sluice::kafka::detail {

// Decompressed bytes the rest of one records field may still produce.
struct DecodeBudget {
  std::size_t left;
};

DecodeError error(std::int16_t code, std::string message);
std::string hex32(std::uint32_t v);
// a + b in two's complement without signed-overflow UB (hostile timestamp deltas).
std::int64_t add_wrapping(std::int64_t a, std::int64_t b);

// Appends the decompressed `in` to `storage`, charging `budget`; a codec failure becomes a
// DecodeError (MESSAGE_TOO_LARGE, UNSUPPORTED_COMPRESSION_TYPE or CORRUPT_MESSAGE) prefixed by
// `where`. `magic` selects the pre-KIP-57 lz4 framing for magic 0.
std::optional<DecodeError> decompress_into(Codec codec, std::string_view in, int magic,
                                           std::vector<char>& storage, DecodeBudget& budget,
                                           const std::string& where);

// A whole magic 0/1 message set (message_set.cc), up-converted into one batch with offset
// deltas 0..n-1.
std::optional<DecodeError> decode_message_set(std::string_view records, DecodeBudget& budget,
                                              DecodedBatch& batch);

}  // namespace sluice::kafka::detail
