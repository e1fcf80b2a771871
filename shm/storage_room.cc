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

// The first line of `path` as a number; nullopt if missing or not one ("max" is not).
std::optional<std::uint64_t> read_number(const std::string& path) {
  std::ifstream in(path);
  std::uint64_t n = 0;
  if (!(in >> n)) return std::nullopt;
  return n;
}

// The value of `key` in a memory.stat file (0 if absent).
std::uint64_t read_stat(const std::string& path, const std::string& key) {
  std::ifstream in(path);
  std::string name;
  std::uint64_t value = 0;
  while (in >> name >> value)
    if (name == key) return value;
  return 0;
}

// The limit set in one cgroup directory (v1 or v2 file names), and what it leaves.
std::optional<CgroupMemory> limit_in(const std::string& dir, bool v1) {
  std::optional<std::uint64_t> limit =
      read_number(dir + (v1 ? "/memory.limit_in_bytes" : "/memory.max"));  // v2 "max": none
  std::optional<std::uint64_t> usage =
      read_number(dir + (v1 ? "/memory.usage_in_bytes" : "/memory.current"));
  // v1 says "no limit" with a number near 2^63.
  if (!limit || !usage || *limit >= (std::uint64_t{1} << 62)) return std::nullopt;
  std::uint64_t inactive_file =
      read_stat(dir + "/memory.stat", v1 ? "total_inactive_file" : "inactive_file");
  std::uint64_t working_set = *usage > inactive_file ? *usage - inactive_file : 0;
  return CgroupMemory{*limit, *limit > working_set ? *limit - working_set : 0};
}

}  // namespace

std::optional<CgroupMemory> cgroup_memory(const std::string& proc_cgroup, const std::string& root) {
  std::ifstream in(proc_cgroup);
  std::string line, v1_path, v2_path;
  bool v1 = false, v2 = false;
  while (std::getline(in, line)) {
    // hierarchy-id:controllers:path
    std::size_t a = line.find(':'), b = a == std::string::npos ? a : line.find(':', a + 1);
    if (b == std::string::npos) continue;
    std::string controllers = "," + line.substr(a + 1, b - a - 1) + ",";
    std::string path = line.substr(b + 1);
    if (controllers.find(",memory,") != std::string::npos) {
      v1 = true;
      v1_path = path;
    } else if (line.compare(0, a, "0") == 0 && controllers == ",,") {
      v2 = true;
      v2_path = path;
    }
  }
  if (!v1 && !v2) return std::nullopt;
  const std::string base = v1 ? root + "/memory" : root;
  std::string relative = v1 ? v1_path : v2_path;
  // The cgroup's own directory, or the mount's root where that is not there (a container
  // whose cgroup is mounted at the root); then each ancestor up to the root, whose limits
  // hold too. The tightest wins.
  std::string dir = base + (relative == "/" ? "" : relative);
  if (!std::ifstream(dir + (v1 ? "/memory.limit_in_bytes" : "/memory.max"))) dir = base;
  std::optional<CgroupMemory> tightest;
  for (;;) {
    if (auto here = limit_in(dir, v1); here && (!tightest || here->available < tightest->available))
      tightest = here;
    if (dir.size() <= base.size()) break;
    dir = dir.substr(0, dir.rfind('/'));
  }
  return tightest;
}

namespace {

// The reserve, where `cgroup` is this process's cgroup limit (cgroup_memory()).
Result<std::uint64_t> reserve_within(const std::optional<CgroupMemory>& cgroup) {
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
  if (cgroup) ram = std::min(ram, cgroup->limit);
  return std::clamp<std::uint64_t>(ram / 16, 64 * kMiB, 1024 * kMiB);
}

}  // namespace

Result<std::uint64_t> memory_reserve_bytes() {
  return reserve_within(cgroup_memory());
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
  std::optional<CgroupMemory> cgroup = cgroup_memory();
  if (cgroup && cgroup->available < room.memory_available) {
    room.memory_available = cgroup->available;
    room.cgroup_limited = true;
  }
  auto reserve = reserve_within(cgroup);
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
    return Status(
        ErrorCode::kIo,
        what + ": not enough memory: the data directory is on " + room->file_system +
            ", whose files are memory; " + mib(bytes) + " needed, " + mib(room->memory_available) +
            (room->cgroup_limited ? " available under this process's cgroup limit" : " available") +
            ", of which " + mib(room->memory_reserve) +
            " is kept free (SLUICE_MIN_FREE_MEMORY; 0 turns the check off)");
  return Status::ok();
}

}  // namespace sluice::shm
