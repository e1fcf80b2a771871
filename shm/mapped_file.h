// A file mapped MAP_SHARED into this process (Boost.Interprocess), plus the few file
// operations the log needs that Boost does not offer (create with storage, rename, list).
//
// Thread-safety: a MappedFile is owned by one thread at a time; the memory it maps is shared
// and its users synchronise through atomics (see log_format.h).
#pragma once

#include <sys/types.h>

#include <boost/interprocess/file_mapping.hpp>
#include <boost/interprocess/mapped_region.hpp>
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "shm/status.h"

namespace sluice::shm {

enum class Access { kReadOnly, kReadWrite };

class MappedFile {
 public:
  MappedFile() = default;
  MappedFile(MappedFile&&) noexcept = default;
  MappedFile& operator=(MappedFile&&) noexcept = default;

  // Maps the whole of an existing file. `populate` pre-faults every page (MAP_POPULATE), so
  // the first touch on a hot path does not fault.
  static Result<MappedFile> open(const std::string& path, Access access, bool populate = false);

  std::byte* data() const { return static_cast<std::byte*>(region_.get_address()); }
  std::uint64_t size() const { return region_.get_size(); }
  const std::string& path() const { return path_; }
  bool writable() const { return access_ == Access::kReadWrite; }
  explicit operator bool() const { return region_.get_address() != nullptr; }

  // msync of the whole mapping: makes what was written durable on a disk-backed file.
  Status sync() const;

 private:
  std::string path_;
  Access access_ = Access::kReadOnly;
  boost::interprocess::file_mapping file_;
  boost::interprocess::mapped_region region_;
};

// Creates `path` exclusively with `size` bytes of allocated storage (so a full disk fails here
// with ENOSPC rather than later with SIGBUS), mode `mode` (umask permitting).
Status create_file(const std::string& path, std::uint64_t size, mode_t mode);

// rename(2) / link(2) / unlink(2) with errors that name both paths.
Status rename_file(const std::string& from, const std::string& to);
Status link_file(const std::string& from, const std::string& to);
Status remove_file(const std::string& path);
Status make_directories(const std::string& path, mode_t mode);
bool file_exists(const std::string& path);

// The names of the entries of a directory (without "." and "..").
Result<std::vector<std::string>> list_directory(const std::string& path);

}  // namespace sluice::shm
