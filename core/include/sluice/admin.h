// Admin: topic and group administration through the broker's control socket.
//
// Thread-safety: an Admin may be shared between threads.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "sluice/status.h"
#include "sluice/types.h"

namespace sluice {

struct BrokerStatus {
  int pid = 0;
  std::int64_t uptime_ms = 0;
  std::int32_t topics = 0;
  std::int32_t partitions = 0;
  std::uint64_t bytes = 0;
  double records_per_second = 0;  // appended, all topics, over the last few seconds
  std::string data_dir;
};

struct GroupMemberInfo {
  std::string member_id;
  std::string client_id;
  int pid = 0;
  std::vector<TopicPartition> partitions;
};

struct GroupOffsetInfo {
  TopicPartition partition;
  std::int64_t committed = -1;  // -1: none
  std::int64_t end_offset = 0;
  std::int64_t lag = 0;
};

struct GroupInfo {
  std::string group;
  std::string state;  // Empty, PreparingRebalance, Stable, Dead
  std::int32_t generation = 0;
  std::string protocol;
  std::vector<GroupMemberInfo> members;
  std::vector<GroupOffsetInfo> offsets;
};

// Where reset-offsets moves a group: earliest, latest, an offset, or a timestamp.
struct OffsetReset {
  enum class Kind { kEarliest, kLatest, kOffset, kTimestamp } kind = Kind::kEarliest;
  // kOffset: the offset (clamped to the retained range). kTimestamp: nanoseconds since the
  // Unix epoch (the unit of record timestamps); each partition moves to its first record
  // whose timestamp is >= value, or to its end if there is none. Unused otherwise.
  std::int64_t value = 0;
};

class Admin {
 public:
  static Result<Admin> connect(const std::string& data_dir = default_data_dir());
  Admin(Admin&&) noexcept;
  Admin& operator=(Admin&&) noexcept;
  ~Admin();

  Status create_topic(const std::string& name, const TopicConfig& config);
  Result<std::vector<std::string>> list_topics();
  Result<TopicDescription> describe_topic(const std::string& name);
  // Only the fields set in `changes` change (partitions may grow, never shrink).
  Status alter_topic(const std::string& name, const TopicConfig& changes,
                     const std::vector<std::string>& fields);
  Status delete_topic(const std::string& name);
  // Kafka's DeleteRecords: the partition's records before offset `before` (-1: all of them)
  // are no longer served, and retention drops the segments wholly below it. Returns the
  // partition's start offset after the call (it never moves down); kOutOfRange past the end.
  Result<std::int64_t> delete_records(const std::string& name, std::int32_t partition,
                                      std::int64_t before);

  Result<std::vector<std::string>> list_groups();
  Result<GroupInfo> describe_group(const std::string& group);
  // The group must have no live members. topic "" = every topic the group committed for.
  // A kTimestamp reset takes nanoseconds since the Unix epoch (not milliseconds).
  Status reset_offsets(const std::string& group, const std::string& topic, OffsetReset to);
  Status delete_group(const std::string& group);

  Result<BrokerStatus> status();

 private:
  struct Impl;
  explicit Admin(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace sluice
