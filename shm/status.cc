#include "shm/status.h"

#include <cerrno>
#include <cstring>

namespace sluice {

Status errno_status(const std::string& what, int err) {
  ErrorCode code = ErrorCode::kIo;
  if (err == ENOENT) code = ErrorCode::kNotFound;
  if (err == EEXIST) code = ErrorCode::kAlreadyExists;
  if (err == EACCES || err == EPERM || err == EROFS) code = ErrorCode::kPermissionDenied;
  return {code, what + ": " + std::strerror(err)};
}

}  // namespace sluice
