// Room for new files in a data directory, checked before they are allocated.
//
// A data directory on a disk fills up and then refuses the next file with ENOSPC, which
// create_file reports. One in a RAM-backed file system (tmpfs, as /dev/shm, the default; or
// ramfs) is different: its files are memory that the kernel cannot reclaim (tmpfs can only
// swap it out), and a tmpfs is often as large as the RAM (Debian's /dev/shm is half of it by
// default, many machines have it at all of it). Filling it ends with the OOM killer, which
// picks the broker or a client, long before ENOSPC. So in such a directory a new file must
// also leave a reserve of memory available: below it the file is refused with an error, as
// on a full disk, and nothing already written is touched.
//
// The memory available is MemAvailable (plus SwapFree on tmpfs), or less where the process's
// cgroup has a memory limit (a container: its tmpfs pages are charged to it, and the cgroup's
// OOM killer comes at its limit, whatever the machine has): the limit less the cgroup's usage
// other than inactive file pages (which the kernel reclaims first), as container runtimes
// count a working set. cgroup v2 and v1 are read.
//
// The reserve is 1/16 of the RAM (or of the cgroup's limit, if lower), at least 64 MiB and at
// most 1 GiB, unless SLUICE_MIN_FREE_MEMORY in the environment gives it: a number of bytes,
// with an optional suffix K, M or G (powers of 1024); 0 turns the check off.
//
// Thread-safety: the functions read the environment, statfs(2) and /proc/meminfo, and keep
// no state.
#pragma once

#include <cstdint>
#include <optional>
#include <string>

#include "shm/status.h"

namespace sluice::shm {

struct StorageRoom {
  std::uint64_t free_bytes = 0;        // the file system's space for unprivileged users
  bool ram_backed = false;             // tmpfs or ramfs: the files are memory
  const char* file_system = "";        // "tmpfs", "ramfs" or "" (another)
  std::uint64_t memory_available = 0;  // if ram_backed: MemAvailable (+ SwapFree on tmpfs)...
  bool cgroup_limited = false;         // ...or what the cgroup's limit leaves, if less
  std::uint64_t memory_reserve = 0;    // if ram_backed: what must stay available
};

// A memory limit of a cgroup, and what it leaves.
struct CgroupMemory {
  std::uint64_t limit = 0;
  std::uint64_t available = 0;  // limit - (usage - inactive file pages), 0 if above it
};

// The memory limit of the cgroup named in `proc_cgroup` (a /proc/<pid>/cgroup file) under the
// cgroup file system at `root` (/sys/fs/cgroup): v1's memory controller if it is mounted, else
// v2's. The cgroup's own directory is read, or `root` itself where that is not there (inside a
// container whose cgroup is mounted at the root). nullopt when no limit is set or found.
std::optional<CgroupMemory> cgroup_memory(const std::string& proc_cgroup = "/proc/self/cgroup",
                                          const std::string& root = "/sys/fs/cgroup");

// What the file system holding `path` (a file or directory that exists) can take now.
Result<StorageRoom> storage_room(const std::string& path);

// ok if `bytes` more can be allocated beside `path`: within the file system's free space and,
// where it is RAM-backed, leaving the memory reserve available. Else kIo, with a message that
// begins with `what` and says which limit and by how much.
Status check_storage_room(const std::string& path, std::uint64_t bytes, const std::string& what);

// The reserve described above (kInvalidArgument if SLUICE_MIN_FREE_MEMORY is not a size).
Result<std::uint64_t> memory_reserve_bytes();

}  // namespace sluice::shm
