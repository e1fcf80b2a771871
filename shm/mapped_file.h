// A file mapped MAP_SHARED into this process, plus the file operations the log needs
// (create with storage, rename, link, list).
//
// The mapping is made with mmap(2) from the descriptor that was opened, not by path as
// Boost.Interprocess's file_mapping does: segment files are renamed and recycled while other
// processes work, and mapping by path could map a different file than the one checked.
//
// Thread-safety: a MappedFile is owned by one thread at a time; the memory it maps is shared
// and its users synchronise through atomics (see log_format.h).
#pragma once

#include <sys/types.h>

#include <cstddef>
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "shm/status.h"

namespace sluice::shm {

enum class Access { kReadOnly, kReadWrite };

class MappedFile {
 public:
  MappedFile() = default;
  MappedFile(MappedFile&& other) noexcept { *this = std::move(other); }
  MappedFile& operator=(MappedFile&& other) noexcept;
  MappedFile(const MappedFile&) = delete;
  MappedFile& operator=(const MappedFile&) = delete;
  ~MappedFile();

  // Maps the whole of an existing file. `populate` pre-faults every page (MAP_POPULATE), so
  // the first touch on a hot path does not fault.
  static Result<MappedFile> open(const std::string& path, Access access, bool populate = false);
  // Maps the whole file behind an open descriptor (which the caller keeps and closes).
  static Result<MappedFile> map_descriptor(int fd, const std::string& path, Access access,
                                           bool populate);

  std::byte* data() const { return data_; }
  std::uint64_t size() const { return size_; }
  const std::string& path() const { return path_; }
  bool writable() const { return access_ == Access::kReadWrite; }
  explicit operator bool() const { return data_ != nullptr; }
  // The file's identity, to share one mapping among handles of the same file.
  dev_t device() const { return device_; }
  ino_t inode() const { return inode_; }

  // msync of the whole mapping: makes what was written durable on a disk-backed file.
  Status sync() const;

  // Writes to every page of a writable mapping once, an atomic add of 0 to its first word
  // (the data stays as it is, whoever writes it meanwhile), so that later writes through
  // this mapping do not pay for their page's first write. On a VM that shadows page tables
  // that first write traps to the hypervisor, whatever MAP_POPULATE did: about 5 us a page
  // on the machine of docs/benchmarks.md, 20-26 ms for a 16 MiB segment. Aeron's
  // pre-touch of mapped memory does the same. On a disk-backed file it dirties every page.
  // kPermissionDenied on a read-only mapping.
  Status pretouch_for_writing() const;

 private:
  std::string path_;
  Access access_ = Access::kReadOnly;
  std::byte* data_ = nullptr;
  std::uint64_t size_ = 0;
  dev_t device_ = 0;
  ino_t inode_ = 0;
};

// Creates `path` exclusively with `size` bytes of allocated storage (so a full disk fails here
// with ENOSPC rather than later with SIGBUS), mode `mode` exactly (not reduced by the umask).
// In a RAM-backed file system it first checks that the file leaves the memory reserve
// available (storage_room.h), and fails like a full disk when it would not.
Status create_file(const std::string& path, std::uint64_t size, mode_t mode);

// rename(2) / link(2) / unlink(2) with errors that name both paths.
Status rename_file(const std::string& from, const std::string& to);
Status link_file(const std::string& from, const std::string& to);
Status remove_file(const std::string& path);
// Gives `from` the name `to` unless `to` exists (kAlreadyExists then, and `from` stays): one
// renameat2(RENAME_NOREPLACE), or link(2) and unlink(2) where the file system lacks it.
Status move_file_noreplace(const std::string& from, const std::string& to);
Status make_directories(const std::string& path, mode_t mode);
bool file_exists(const std::string& path);

// The names of the entries of a directory (without "." and "..").
Result<std::vector<std::string>> list_directory(const std::string& path);

}  // namespace sluice::shm
