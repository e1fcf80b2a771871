// Status and Result: cold-path errors as values, with a message a person can act on
// ("no broker is running for /dev/shm/sluice: start it with `sluiced`"). Hot paths return
// small outcome enums instead (shm/log_appender.h, shm/log_reader.h).
//
// Thread-safety: plain values.
#pragma once

#include <cerrno>
#include <cstring>
#include <string>
#include <string_view>
#include <utility>
#include <variant>

namespace sluice {

enum class ErrorCode {
  kOk = 0,
  kNotFound,  // a file, topic or partition that does not exist
  kAlreadyExists,
  kPermissionDenied,
  kCorrupt,    // a file whose bytes do not match docs/format.md
  kBadFormat,  // wrong magic or version
  kInvalidArgument,
  kRecordTooLarge,
  kOutOfRange,
  kIo,  // any other operating-system error
  kTimedOut,
  kBusy,  // another owner holds what was asked for
  kUnknownTopic,
  kNoBroker,       // no broker runs for the data directory
  kFenced,         // a consumer-group member acting for a generation that has passed
  kBackPressured,  // a slow consumer holds the producer back (backpressure policy)
  kRebalancing,    // the group is rebalancing; rejoin
  kProtocol,       // a malformed control-protocol message
};

// A short stable name for the code ("unknown-topic"), used on the control protocol.
const char* error_code_name(ErrorCode code);
ErrorCode error_code_from_name(std::string_view name);

class [[nodiscard]] Status {
 public:
  Status() = default;
  Status(ErrorCode code, std::string message) : code_(code), message_(std::move(message)) {}

  static Status ok() { return {}; }
  bool is_ok() const { return code_ == ErrorCode::kOk; }
  explicit operator bool() const { return is_ok(); }
  ErrorCode code() const { return code_; }
  const std::string& message() const { return message_; }

  // Adds context as the error unwinds: "opening partition x: <message>".
  Status with_context(const std::string& context) const {
    if (is_ok()) return *this;
    return {code_, context + ": " + message_};
  }

 private:
  ErrorCode code_ = ErrorCode::kOk;
  std::string message_;
};

template <class T>
class [[nodiscard]] Result {
 public:
  Result(T value) : v_(std::move(value)) {}         // NOLINT(google-explicit-constructor)
  Result(Status status) : v_(std::move(status)) {}  // NOLINT(google-explicit-constructor)

  bool is_ok() const { return v_.index() == 0; }
  explicit operator bool() const { return is_ok(); }
  T& value() & { return std::get<0>(v_); }
  const T& value() const& { return std::get<0>(v_); }
  T&& value() && { return std::get<0>(std::move(v_)); }
  T* operator->() { return &std::get<0>(v_); }
  const T* operator->() const { return &std::get<0>(v_); }
  T& operator*() & { return std::get<0>(v_); }
  const T& operator*() const& { return std::get<0>(v_); }
  Status status() const { return is_ok() ? Status::ok() : std::get<1>(v_); }

 private:
  std::variant<T, Status> v_;
};

// "open /x/y: No such file or directory" from errno.
inline Status errno_status(const std::string& what, int err) {
  ErrorCode code = ErrorCode::kIo;
  if (err == ENOENT) code = ErrorCode::kNotFound;
  if (err == EEXIST) code = ErrorCode::kAlreadyExists;
  if (err == EACCES || err == EPERM || err == EROFS) code = ErrorCode::kPermissionDenied;
  return {code, what + ": " + std::strerror(err)};
}

}  // namespace sluice
