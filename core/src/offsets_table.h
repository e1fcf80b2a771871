// OffsetsTable: consumer groups' committed offsets, and each group's generation and protocol,
// in <data>/groups/offsets.tbl (DataDir::offsets_table()): a shm::SharedTable whose records
// mean (group, topic, partition) -> committed offset, and group -> generation. They survive
// restarts of the broker and of clients. docs/format.md, "Offsets table", is the contract.
//
// One writer: the broker (its lock file makes it the only one per data directory; the table's
// own flock refuses a second writer anyway). Any number of readers in other processes:
// clients fetching their committed offsets, `sluice group describe` while the broker is down.
// A reader never sees a torn entry, and a broker killed mid-update never blocks readers: see
// shm/shared_table.h.
//
// Thread-safety: a handle is used by one thread at a time; reader() gives another thread its
// own read-only handle on the same mapping.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "shm/shared_table.h"
#include "sluice/status.h"

namespace sluice {

struct CommittedOffset {
  std::string topic;
  std::int32_t partition = 0;
  std::int64_t offset = 0;          // the next record the group will consume
  std::int32_t generation = -1;     // the generation it was committed under; -1: not a member
  std::int64_t commit_time_ns = 0;  // wall clock, ns since the Unix epoch
  std::string metadata;             // Kafka's commit metadata, cut to kMaxMetadataBytes
  bool metadata_truncated = false;
};

struct GroupRecord {
  std::string group;
  std::int32_t generation = 0;  // the group's latest generation; a restarted broker goes on
  std::string protocol;         // the assignor of that generation ("" for an empty group)
  // The group's protocol type ("consumer" for Sluice's own groups and Kafka consumers), kept
  // for the types Kafka's clients use ("consumer", "connect"); "" for another type and in
  // records written before the type was kept.
  std::string protocol_type;
  std::int64_t updated_ns = 0;  // wall clock when it was stored
};

class OffsetsTable {
 public:
  static constexpr std::uint64_t kDefaultCapacity = 16384;  // slots (1 KiB each)
  static constexpr std::size_t kMaxGroupBytes = 255;
  static constexpr std::size_t kMaxTopicBytes = 249;
  static constexpr std::size_t kMaxMetadataBytes = 216;  // longer metadata is cut (on a UTF-8
                                                         // character boundary) and flagged
  static constexpr std::size_t kMaxProtocolBytes = 224;
  static const shm::TableLayout kLayout;

  OffsetsTable() = default;

  // The broker: opens (creating it and groups/ if needed) for writing, with recovery
  // (shm::TableRecovery). `capacity` is the slot count at creation: the table holds up to 3/4
  // of it in entries, then grows by a rebuild (options.grow) or reports itself full.
  static Result<OffsetsTable> open_or_create(const std::string& path,
                                             std::uint64_t capacity = kDefaultCapacity,
                                             bool grow = true);
  // The same, with every choice (file mode and group, growth limit).
  static Result<OffsetsTable> open_or_create(const std::string& path,
                                             const shm::TableOptions& options);
  // Clients and tools: an existing table, read-only.
  static Result<OffsetsTable> open_read_only(const std::string& path);

  // A read-only handle on this handle's mapping, for another thread.
  OffsetsTable reader() const;

  // ---- offsets ------------------------------------------------------------------------------
  // Stores (or replaces) the group's committed offset for a partition. commit_time_ns < 0:
  // now. Validation of who may commit is the coordinator's (GroupCoordinator::can_commit).
  Status commit(std::string_view group, std::string_view topic, std::int32_t partition,
                std::int64_t offset, std::int32_t generation, std::string_view metadata = {},
                std::int64_t commit_time_ns = -1);
  Result<std::optional<CommittedOffset>> fetch(std::string_view group, std::string_view topic,
                                               std::int32_t partition);
  // The group's committed offsets, sorted by topic and partition.
  Result<std::vector<CommittedOffset>> list_offsets(std::string_view group);
  // True if there was one.
  Result<bool> delete_offset(std::string_view group, std::string_view topic,
                             std::int32_t partition);
  // Removes every group's committed offsets for the topic (the topic was deleted, so that a
  // topic re-created under its name starts without them, as in Kafka). Returns how many.
  Result<std::size_t> delete_topic_offsets(std::string_view topic);

  // ---- groups -------------------------------------------------------------------------------
  // Every group with a record or at least one committed offset, sorted.
  Result<std::vector<std::string>> list_groups();
  // Removes the group's record and all its offsets. Emptiness is the coordinator's check.
  Status delete_group(std::string_view group);
  Status set_group(std::string_view group, std::int32_t generation, std::string_view protocol,
                   std::string_view protocol_type);
  // Keeps the stored protocol and protocol type.
  Status set_generation(std::string_view group, std::int32_t generation);
  Result<std::optional<GroupRecord>> group(std::string_view group);

  const std::string& path() const { return table_.path(); }
  bool writable() const { return table_.writable(); }
  std::uint64_t slot_count() const { return table_.slot_count(); }
  std::uint64_t size() const { return table_.size(); }  // the writer's count of records
  const shm::TableRecovery& recovery() const { return table_.recovery(); }

 private:
  explicit OffsetsTable(shm::SharedTable table) : table_(std::move(table)) {}
  shm::SharedTable table_;
};

// Record keys (docs/format.md, "Offsets table"): exposed for tests and tools.
std::string offsets_group_key(std::string_view group);
std::string offsets_offset_key(std::string_view group, std::string_view topic,
                               std::int32_t partition);

}  // namespace sluice
