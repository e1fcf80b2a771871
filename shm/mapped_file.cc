#include "shm/mapped_file.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstdio>
#include <filesystem>

#include "shm/storage_room.h"

namespace sluice::shm {

MappedFile& MappedFile::operator=(MappedFile&& other) noexcept {
  if (this != &other) {
    if (data_ != nullptr) ::munmap(data_, size_);
    path_ = std::move(other.path_);
    access_ = other.access_;
    data_ = std::exchange(other.data_, nullptr);
    size_ = std::exchange(other.size_, 0);
    device_ = other.device_;
    inode_ = other.inode_;
  }
  return *this;
}

MappedFile::~MappedFile() {
  if (data_ != nullptr) ::munmap(data_, size_);
}

Result<MappedFile> MappedFile::open(const std::string& path, Access access, bool populate) {
  int fd = ::open(path.c_str(), (access == Access::kReadOnly ? O_RDONLY : O_RDWR) | O_CLOEXEC);
  if (fd < 0) return errno_status("open " + path, errno);
  auto mapped = map_descriptor(fd, path, access, populate);
  ::close(fd);
  return mapped;
}

Result<MappedFile> MappedFile::map_descriptor(int fd, const std::string& path, Access access,
                                              bool populate) {
  struct stat st {};
  if (::fstat(fd, &st) != 0) return errno_status("stat " + path, errno);
  if (st.st_size == 0) return Status(ErrorCode::kCorrupt, path + ": file is empty");
  int prot = access == Access::kReadOnly ? PROT_READ : PROT_READ | PROT_WRITE;
  int flags = MAP_SHARED | (populate ? MAP_POPULATE : 0);
  void* p = ::mmap(nullptr, static_cast<std::size_t>(st.st_size), prot, flags, fd, 0);
  if (p == MAP_FAILED) return errno_status("map " + path, errno);
  MappedFile f;
  f.path_ = path;
  f.access_ = access;
  f.data_ = static_cast<std::byte*>(p);
  f.size_ = static_cast<std::uint64_t>(st.st_size);
  f.device_ = st.st_dev;
  f.inode_ = st.st_ino;
  return f;
}

Status MappedFile::sync() const {
  if (::msync(data_, size_, MS_SYNC) != 0) return errno_status("msync " + path_, errno);
  return Status::ok();
}

Status MappedFile::pretouch_for_writing() const {
  if (!writable()) return Status(ErrorCode::kPermissionDenied, path_ + ": mapped read-only");
  const auto page = static_cast<std::uint64_t>(::sysconf(_SC_PAGESIZE));
  for (std::uint64_t at = 0; at + sizeof(std::uint64_t) <= size_; at += page) {
    // Relaxed: nothing is published; the add only has to be one indivisible write of the
    // value already there, so that a concurrent writer's bytes are never lost.
    std::atomic_ref<std::uint64_t>(*reinterpret_cast<std::uint64_t*>(data_ + at))
        .fetch_add(0, std::memory_order_relaxed);
  }
  return Status::ok();
}

Status create_file(const std::string& path, std::uint64_t size, mode_t mode) {
  std::string dir = std::filesystem::path(path).parent_path().string();
  if (Status s = check_storage_room(dir.empty() ? "." : dir, size, "create " + path); !s) return s;
  int fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, mode);
  if (fd < 0) return errno_status("create " + path, errno);
  // The mode exactly, whatever the umask: group members must be able to write what they share.
  (void)::fchmod(fd, mode);
  int rc = ::posix_fallocate(fd, 0, static_cast<off_t>(size));
  if (rc == EINVAL || rc == EOPNOTSUPP) {
    // A file system without fallocate: set the size and accept lazy allocation.
    rc = ::ftruncate(fd, static_cast<off_t>(size)) == 0 ? 0 : errno;
  }
  ::close(fd);
  if (rc != 0) {
    ::unlink(path.c_str());
    if (rc == ENOSPC)
      return Status(ErrorCode::kIo, "create " + path + ": no space left on the device for " +
                                        std::to_string(size) + " bytes");
    return errno_status("allocate " + path, rc);
  }
  return Status::ok();
}

Status rename_file(const std::string& from, const std::string& to) {
  if (::rename(from.c_str(), to.c_str()) != 0)
    return errno_status("rename " + from + " to " + to, errno);
  return Status::ok();
}

Status link_file(const std::string& from, const std::string& to) {
  if (::link(from.c_str(), to.c_str()) != 0)
    return errno_status("link " + from + " to " + to, errno);
  return Status::ok();
}

Status move_file_noreplace(const std::string& from, const std::string& to) {
  if (::renameat2(AT_FDCWD, from.c_str(), AT_FDCWD, to.c_str(), RENAME_NOREPLACE) == 0)
    return Status::ok();
  if (errno != EINVAL && errno != ENOSYS)
    return errno_status("rename " + from + " to " + to, errno);
  if (Status s = link_file(from, to); !s) return s;
  return remove_file(from);
}

Status remove_file(const std::string& path) {
  if (::unlink(path.c_str()) != 0) return errno_status("remove " + path, errno);
  return Status::ok();
}

Status make_directories(const std::string& path, mode_t mode) {
  std::error_code ec;
  std::filesystem::create_directories(path, ec);
  if (ec) return Status(ErrorCode::kIo, "create directory " + path + ": " + ec.message());
  ::chmod(path.c_str(), mode);  // best effort: the directory may belong to someone else
  return Status::ok();
}

bool file_exists(const std::string& path) {
  return ::access(path.c_str(), F_OK) == 0;
}

Result<std::vector<std::string>> list_directory(const std::string& path) {
  DIR* dir = ::opendir(path.c_str());
  if (dir == nullptr) return errno_status("list " + path, errno);
  std::vector<std::string> names;
  while (dirent* e = ::readdir(dir)) {
    std::string name = e->d_name;
    if (name != "." && name != "..") names.push_back(std::move(name));
  }
  ::closedir(dir);
  return names;
}

}  // namespace sluice::shm
