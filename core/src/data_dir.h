// Paths inside a data directory (docs/format.md, "Data directory").
//
//   <data>/broker.lock  broker.pid  broker.sock
//   <data>/topics/<topic>/topic.json
//   <data>/topics/<topic>/<partition>/     a partition log (shm/partition_log.h)
//   <data>/groups/offsets.tbl               committed offsets (offsets_table.h)
//
// Thread-safety: pure functions.
#pragma once

#include <cstdint>
#include <string>

namespace sluice {

struct DataDir {
  std::string root;

  std::string topics() const { return root + "/topics"; }
  std::string topic(const std::string& name) const { return topics() + "/" + name; }
  std::string topic_config(const std::string& name) const { return topic(name) + "/topic.json"; }
  std::string partition(const std::string& name, std::int32_t p) const {
    return topic(name) + "/" + std::to_string(p);
  }
  std::string lock_file() const { return root + "/broker.lock"; }
  std::string pid_file() const { return root + "/broker.pid"; }
  std::string socket() const { return root + "/broker.sock"; }
  std::string groups() const { return root + "/groups"; }
  std::string offsets_table() const { return groups() + "/offsets.tbl"; }
};

}  // namespace sluice
