// TopicStore: topics as directories of a data directory: create, read, list, alter, delete.
// The broker's topic manager does the writing; clients read topic.json to find partitions.
//
// A topic appears atomically: it is built under a temporary name and renamed into place.
// Deleting renames it away first, so new opens fail at once while processes that still map
// its files keep them until they let go. Those names (`<topic>~tmp-<pid>-*`,
// `<topic>~deleted-<pid>-*`) hold a '~', which no topic name may: no topic is taken for one.
//
// Thread-safety: stateless; concurrent calls on one topic are serialised by the broker.
#pragma once

#include <sys/types.h>

#include <string>
#include <vector>

#include "data_dir.h"
#include "shm/orphaned_files.h"
#include "sluice/status.h"
#include "sluice/types.h"

namespace sluice {

struct FileOwnership {
  mode_t file_mode = 0660;               // segment, control and config files
  gid_t group = static_cast<gid_t>(-1);  // -1: the creating process's group
};

Status validate_topic_name(const std::string& name);
Status validate_topic_config(const TopicConfig& config);

class TopicStore {
 public:
  explicit TopicStore(DataDir dir, FileOwnership ownership = {})
      : dir_(std::move(dir)), ownership_(ownership) {}

  Status create(const std::string& name, const TopicConfig& config) const;
  Result<TopicConfig> read(const std::string& name) const;
  Result<std::vector<std::string>> list() const;
  // Partitions may grow, never shrink; segment_bytes applies to segments created afterwards.
  Status alter(const std::string& name, const TopicConfig& config) const;
  Status remove(const std::string& name) const;
  // Removes what creating, growing, altering or deleting a topic left behind when its process
  // died half-way: the temporary topic, partition and topic.json names of processes that are
  // gone (shm/orphaned_files.h), and partitions beyond a topic's count (an alter that died
  // before writing it). Returns them, relative to the topics directory. For the broker, the
  // only writer, between its own alters. The partitions' own private files are the partition
  // log's (PartitionLog::remove_orphaned_files).
  Result<std::vector<std::string>> remove_orphans() const;
  // What remove_orphans would remove, without removing it: names relative to the topics
  // directory, with the pid of the process that left each (0 for a partition beyond its
  // topic's count). For `sluice verify`, which only reads.
  Result<std::vector<shm::Orphan>> find_orphans() const;
  Result<TopicDescription> describe(const std::string& name) const;

  const DataDir& dir() const { return dir_; }

  // Whether the data directory can take `count` new partitions of `config`'s topic `name`
  // (create and alter check it; CreateTopics' validate_only asks it alone).
  Status check_room(const std::string& name, std::int32_t count, const TopicConfig& config) const;

 private:
  Status write_config(const std::string& path, const std::string& name,
                      const TopicConfig& config) const;
  Status create_partition(const std::string& topic_dir, std::int32_t p,
                          const TopicConfig& config) const;

  DataDir dir_;
  FileOwnership ownership_;
};

// "permission denied on topic X" etc.: a status about a topic's files, said of the topic.
Status topic_status(const std::string& topic, const Status& s);

}  // namespace sluice
