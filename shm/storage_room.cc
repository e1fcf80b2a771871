#include "shm/storage_room.h"

#include <linux/magic.h>
#include <sys/statfs.h>
#include <sys/sysinfo.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <fstream>
#include <sstream>

namespace sluice::shm {

namespace {

constexpr std::uint64_t kMiB = 1 << 20;

std::string mib(std::uint64_t bytes) {
  return std::to_string((bytes + kMiB - 1) / kMiB) + " MiB";
}

// /proc/meminfo's MemAvailable and SwapFree, in bytes (0 when absent).
void read_meminfo(std::uint64_t& available, std::uint64_t& swap_free) {
  available = swap_free = 0;
  std::ifstream in("/proc/meminfo");
  std::string line;
  while (std::getline(in, line)) {
    std::istringstream fields(line);
    std::string name;
    std::uint64_t kb = 0;
    if (!(fields >> name >> kb)) continue;
    if (name == "MemAvailable:") available = kb * 1024;
    if (name == "SwapFree:") swap_free = kb * 1024;
  }
}

}  // namespace

Result<std::uint64_t> memory_reserve_bytes() {
  const char* env = std::getenv("SLUICE_MIN_FREE_MEMORY");
  if (env != nullptr && *env != '\0') {
    char* end = nullptr;
    errno = 0;
    unsigned long long n = std::strtoull(env, &end, 10);
    std::uint64_t scale = 1;
    switch (end != env ? *end : '\0') {
      case 'K':
      case 'k':
        scale = 1024;
        break;
      case 'M':
      case 'm':
        scale = kMiB;
        break;
      case 'G':
      case 'g':
        scale = kMiB * 1024;
        break;
      default:
        break;
    }
    if (scale != 1) ++end;
    if (errno != 0 || end == env || *end != '\0' || *env == '-' || n > UINT64_MAX / scale)
      return Status(ErrorCode::kInvalidArgument,
                    std::string("SLUICE_MIN_FREE_MEMORY='") + env +
                        "' is not a size (bytes, or a number with K, M or G)");
    return n * scale;
  }
  struct sysinfo si {};
  if (::sysinfo(&si) != 0) return std::uint64_t{256} * kMiB;
  std::uint64_t ram = static_cast<std::uint64_t>(si.totalram) * si.mem_unit;
  return std::clamp<std::uint64_t>(ram / 16, 64 * kMiB, 1024 * kMiB);
}

Result<StorageRoom> storage_room(const std::string& path) {
  struct statfs fs {};
  if (::statfs(path.c_str(), &fs) != 0) return errno_status("statfs " + path, errno);
  StorageRoom room;
  room.free_bytes =
      static_cast<std::uint64_t>(fs.f_bavail) * static_cast<std::uint64_t>(fs.f_bsize);
  if (fs.f_type == TMPFS_MAGIC) room.file_system = "tmpfs";
  if (fs.f_type == RAMFS_MAGIC) room.file_system = "ramfs";
  room.ram_backed = *room.file_system != '\0';
  if (!room.ram_backed) return room;
  // ramfs has no size: statfs says 0 free. Its limit is the memory alone.
  if (fs.f_type == RAMFS_MAGIC) room.free_bytes = UINT64_MAX;
  std::uint64_t swap_free = 0;
  read_meminfo(room.memory_available, swap_free);
  if (fs.f_type == TMPFS_MAGIC) room.memory_available += swap_free;  // tmpfs pages can swap
  auto reserve = memory_reserve_bytes();
  if (!reserve) return reserve.status();
  room.memory_reserve = *reserve;
  return room;
}

Status check_storage_room(const std::string& path, std::uint64_t bytes, const std::string& what) {
  auto room = storage_room(path);
  if (!room) return room.status().with_context(what);
  if (bytes > room->free_bytes)
    return Status(ErrorCode::kIo, what + ": no space left on the device: " + mib(bytes) +
                                      " needed, " + mib(room->free_bytes) + " free");
  if (room->ram_backed && room->memory_reserve > 0 &&
      (room->memory_available < room->memory_reserve ||
       bytes > room->memory_available - room->memory_reserve))
    return Status(ErrorCode::kIo,
                  what + ": not enough memory: the data directory is on " + room->file_system +
                      ", whose files are memory; " + mib(bytes) + " needed, " +
                      mib(room->memory_available) + " available, of which " +
                      mib(room->memory_reserve) +
                      " is kept free (SLUICE_MIN_FREE_MEMORY; 0 turns the check off)");
  return Status::ok();
}

}  // namespace sluice::shm
