// What the partition log's source files share, and nothing else uses: the names of a
// partition's fixed files, the maker of private names, and a descriptor that closes itself.
// The log is one class, PartitionLog (shm/partition_log.h), written in four files by purpose:
//
//   partition_log.cc            create and open, the segment mappings, offsets, sync
//   partition_log_roll.cc       rolling to the next segment, closing a partition
//   partition_log_retention.cc  spares, retention and recycling, premapping, orphaned files
//   partition_log_recovery.cc   abandoned claims and torn tails
#pragma once

#include <unistd.h>

#include <string>

namespace sluice::shm::partition_files {

inline constexpr const char* kControlName = "partition.ctl";
inline constexpr const char* kSpareName = "spare.seg";

// "<pid>-<n>-<monotonic ns>", n counting up in this process: unique on the host, for a file or
// directory made under a private name and then renamed into place. The pid lets the broker
// remove what a process that died left behind (shm/orphaned_files.h).
std::string unique_suffix();

// A descriptor closed when it goes out of scope (or by close()).
class ScopedFd {
 public:
  explicit ScopedFd(int fd = -1) : fd_(fd) {}
  ~ScopedFd() { close(); }
  ScopedFd(const ScopedFd&) = delete;
  ScopedFd& operator=(const ScopedFd&) = delete;
  int get() const { return fd_; }
  int* out() {
    close();
    return &fd_;
  }
  void close() {
    if (fd_ >= 0) ::close(fd_);
    fd_ = -1;
  }

 private:
  int fd_;
};

}  // namespace sluice::shm::partition_files
