// The broker's control protocol: JSON objects, one per line, over the Unix stream socket
// <data>/broker.sock. docs/control-protocol.md is the contract.
//
//   request   {"id": 7, "op": "topic.create", ...}
//   response  {"id": 7, "ok": true, ...}  |  {"id": 7, "ok": false, "error": {"code", "message"}}
//   event     {"event": "rebalance", "group": "g", "generation": 5}
//
// Thread-safety: pure functions.
#pragma once

#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>

#include "sluice/status.h"
#include "sluice/types.h"

namespace sluice::control {

using nlohmann::json;

inline constexpr int kProtocolVersion = 1;
// A line longer than this is a protocol error: the peer is closed.
inline constexpr std::size_t kMaxLineBytes = 4u << 20;

// A request's id and no_reply flag, whatever the client put there: a field of the wrong type
// reads as absent (id -1, a reply wanted), so that answering a malformed request never throws.
inline std::int64_t request_id(const json& req) {
  auto it = req.find("id");
  return it != req.end() && it->is_number_integer() ? it->get<std::int64_t>() : -1;
}
inline bool no_reply(const json& req) {
  auto it = req.find("no_reply");
  return it != req.end() && it->is_boolean() && it->get<bool>();
}

inline json error_body(const Status& s) {
  return {{"code", error_code_name(s.code())}, {"message", s.message()}};
}

inline Status status_from(const json& response) {
  if (response.value("ok", false)) return Status::ok();
  const json& e = response.contains("error") ? response["error"] : json::object();
  return Status(error_code_from_name(e.value("code", std::string("protocol"))),
                e.value("message", std::string("malformed error from the broker")));
}

json to_json(const TopicConfig& c);
// Fields absent from j keep the values of `base`.
Result<TopicConfig> topic_config_from(const json& j, const TopicConfig& base = {});
json to_json(const TopicDescription& d);
TopicDescription topic_description_from(const json& j);

}  // namespace sluice::control
