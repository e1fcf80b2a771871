#include "shm/orphaned_files.h"

#include <signal.h>
#include <unistd.h>

#include <cerrno>
#include <filesystem>

#include "shm/mapped_file.h"

namespace sluice::shm {

bool process_gone(std::int64_t pid) {
  return pid > 0 && ::kill(static_cast<pid_t>(pid), 0) != 0 && errno == ESRCH;
}

std::int64_t pid_after(std::string_view name, std::string_view marker) {
  std::size_t at = name.rfind(marker);
  if (at == std::string_view::npos) return 0;
  std::size_t i = at + marker.size();
  std::int64_t pid = 0;
  std::size_t digits = 0;
  // Linux pids are at most 2^22; more than 10 digits is not a pid.
  for (; i < name.size() && name[i] >= '0' && name[i] <= '9' && digits < 10; ++i, ++digits)
    pid = pid * 10 + (name[i] - '0');
  if (digits == 0 || i >= name.size() || name[i] != '-') return 0;
  return pid;
}

Result<std::vector<Orphan>> find_orphans(
    const std::string& dir, const std::function<std::int64_t(std::string_view)>& pid_in_name) {
  auto names = list_directory(dir);
  if (!names) return names.status();
  std::vector<Orphan> found;
  const std::int64_t self = ::getpid();
  for (const std::string& name : *names) {
    std::int64_t pid = pid_in_name(name);
    if (pid <= 0 || pid == self || !process_gone(pid)) continue;
    found.push_back({name, pid});
  }
  return found;
}

Result<std::vector<std::string>> remove_orphans(
    const std::string& dir, const std::function<std::int64_t(std::string_view)>& pid_in_name) {
  auto found = find_orphans(dir, pid_in_name);
  if (!found) return found.status();
  return remove_orphans(dir, *found);
}

Result<std::vector<std::string>> remove_orphans(const std::string& dir,
                                                const std::vector<Orphan>& found) {
  std::vector<std::string> removed;
  for (const Orphan& o : found) {
    std::error_code ec;
    std::uintmax_t n = std::filesystem::remove_all(dir + "/" + o.name, ec);
    if (ec) return Status(ErrorCode::kIo, "remove " + dir + "/" + o.name + ": " + ec.message());
    if (n > 0) removed.push_back(o.name);
  }
  return removed;
}

}  // namespace sluice::shm
