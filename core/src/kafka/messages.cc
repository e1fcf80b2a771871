// Kafka codec: request/response headers, frames, and ApiVersions (18) v0-2 plus the flexible
// v3+ request that gets the v0-format UNSUPPORTED_VERSION reply (messages.h).
#include "kafka/messages.h"

#include "kafka/messages_codec.h"

namespace sluice::kafka {

using codec::Is;

bool decode_request_header(ByteReader& r, RequestHeader& h) {
  h.api_key = r.i16();
  h.api_version = r.i16();
  h.correlation_id = r.i32();
  h.client_id = r.nullable_string();  // never a compact string, even in header v2
  if (r.ok() && uses_flexible_header(h.api_key, h.api_version)) {
    codec::Reader io(r);
    io.tagged_fields();
  }
  return r.ok();
}

void encode_request_header(ByteWriter& w, const RequestHeader& h) {
  w.i16(h.api_key);
  w.i16(h.api_version);
  w.i32(h.correlation_id);
  w.nullable_string(h.client_id);
  if (uses_flexible_header(h.api_key, h.api_version)) w.uvarint(0);
}

std::size_t begin_response(ByteWriter& w, std::int32_t correlation_id) {
  std::size_t at = w.reserve_i32();
  w.i32(correlation_id);
  return at;
}

void end_response(ByteWriter& w, std::size_t at, std::size_t gathered_bytes) {
  w.patch_i32(at, static_cast<std::int32_t>(w.size() + gathered_bytes - at - 4));
}

std::size_t begin_request(ByteWriter& w, const RequestHeader& h) {
  std::size_t at = w.reserve_i32();
  encode_request_header(w, h);
  return at;
}

void end_request(ByteWriter& w, std::size_t at) {
  end_response(w, at);
}

bool decode_response_header(ByteReader& r, std::int32_t& correlation_id) {
  correlation_id = r.i32();
  return r.ok();
}

// ---------------------------------------------------------------------------------------------
// ApiVersions

ApiVersionsResponse api_versions_response(ErrorCode error) {
  ApiVersionsResponse resp;
  resp.error_code = error;
  resp.api_keys.reserve(kSupportedApis.size());
  for (const ApiVersionRange& r : kSupportedApis) {
    resp.api_keys.push_back({to_int(r.api_key), r.min_version, r.max_version});
  }
  return resp;
}

namespace {

template <typename IO, Is<ApiVersionsRequest> M>
void fields(IO& io, std::int16_t v, M& m) {
  if (v < kFirstFlexibleApiVersions) return;  // v0-2: empty body
  io.compact_string(m.client_software_name);
  io.compact_string(m.client_software_version);
  io.tagged_fields();
}

// v3+ is the v0 layout: the only v3+ reply the gateway sends is the UNSUPPORTED_VERSION one.
template <typename IO, Is<ApiVersionsResponse> M>
void fields(IO& io, std::int16_t v, M& m) {
  io.error(m.error_code);
  io.array(m.api_keys, 6, [&](auto& k) {
    io.i16(k.api_key);
    io.i16(k.min_version);
    io.i16(k.max_version);
  });
  if (v >= 1 && v < kFirstFlexibleApiVersions) io.i32(m.throttle_time_ms);
}

}  // namespace

SLUICE_KAFKA_CODEC(ApiVersionsRequest)
SLUICE_KAFKA_CODEC(ApiVersionsResponse)

}  // namespace sluice::kafka
