#include "sluice/status.h"

#include <array>
#include <utility>

namespace sluice {

namespace {
constexpr std::array<std::pair<ErrorCode, const char*>, 18> kNames{{
    {ErrorCode::kOk, "ok"},
    {ErrorCode::kNotFound, "not-found"},
    {ErrorCode::kAlreadyExists, "already-exists"},
    {ErrorCode::kPermissionDenied, "permission-denied"},
    {ErrorCode::kCorrupt, "corrupt"},
    {ErrorCode::kBadFormat, "bad-format"},
    {ErrorCode::kInvalidArgument, "invalid-argument"},
    {ErrorCode::kRecordTooLarge, "record-too-large"},
    {ErrorCode::kOutOfRange, "out-of-range"},
    {ErrorCode::kIo, "io"},
    {ErrorCode::kTimedOut, "timed-out"},
    {ErrorCode::kBusy, "busy"},
    {ErrorCode::kUnknownTopic, "unknown-topic"},
    {ErrorCode::kNoBroker, "no-broker"},
    {ErrorCode::kFenced, "fenced"},
    {ErrorCode::kBackPressured, "back-pressured"},
    {ErrorCode::kRebalancing, "rebalancing"},
    {ErrorCode::kProtocol, "protocol"},
}};
}  // namespace

const char* error_code_name(ErrorCode code) {
  for (const auto& [c, n] : kNames)
    if (c == code) return n;
  return "unknown";
}

ErrorCode error_code_from_name(std::string_view name) {
  for (const auto& [c, n] : kNames)
    if (name == n) return c;
  return ErrorCode::kProtocol;
}

}  // namespace sluice
