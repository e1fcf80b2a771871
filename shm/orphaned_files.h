#pragma once
// Files left behind by processes that died.
//
// A process that builds a file or directory under a private name and then renames it into
// place (or deletes it) puts its pid in that name: a partition's `new-<pid>-*.tmp`, a
// topic's `<name>~tmp-<pid>-*`. If it dies between the two steps the entry stays, and on
// tmpfs it holds memory (a whole segment) until someone removes it. These find such entries
// and remove those whose process is gone.
//
// Pids are compared within one pid namespace: every process of a data directory must see
// the others' pids (the roll lock and the offsets table assume the same).
#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include "shm/status.h"

namespace sluice::shm {

// True only when no process has this pid (kill(2) fails with ESRCH). A pid that another
// process took over, or one this process may not signal, counts as alive: its file stays
// rather than being removed under a live owner.
bool process_gone(std::int64_t pid);

// The pid written in `name` right after `marker` (its last occurrence), when digits follow
// it and then a '-' ("<...><marker><pid>-<...>"); 0 otherwise.
std::int64_t pid_after(std::string_view name, std::string_view marker);

// An entry a dead process left: its name in the directory searched, and the pid in it.
struct Orphan {
  std::string name;
  std::int64_t pid = 0;
};

// The entries of `dir` for which `pid_in_name` returns the pid of a process that is gone.
// Entries of this process and those for which it returns 0 are not orphans. Only reads:
// `sluice verify` reports them with it.
Result<std::vector<Orphan>> find_orphans(
    const std::string& dir, const std::function<std::int64_t(std::string_view)>& pid_in_name);

// Removes each of `found` (names relative to `dir`; a file, or a directory with everything in
// it). Returns the names removed; an entry that another process removed first is not an error.
Result<std::vector<std::string>> remove_orphans(const std::string& dir,
                                                const std::vector<Orphan>& found);

// Removes each entry find_orphans finds.
Result<std::vector<std::string>> remove_orphans(
    const std::string& dir, const std::function<std::int64_t(std::string_view)>& pid_in_name);

}  // namespace sluice::shm
