// Consumer: reads topics by mapping their partition logs directly; records are delivered as
// views into the mapping (zero copy), valid until the next poll.
//
//   auto c = sluice::Consumer::open({.group_id = "billing"});
//   c->subscribe({"orders"});                  // group membership through the broker
//   c->poll([](const sluice::Record& r) { ... }, 500, 100);
//   c->commit_sync();
//
// Without a group (assign()), the consumer needs no broker at all. With one (subscribe()), the
// broker assigns partitions so that no two live members of the group get the same partition;
// when members join, leave or die, partitions move. Delivery is at least once: records after
// a member's last commit are delivered again to the partition's next owner.
//
// Thread-safety: one thread uses a Consumer; rebalance notices arrive on an internal thread
// and take effect in poll().
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "sluice/status.h"
#include "sluice/types.h"

namespace sluice {

enum class WaitMode {
  kSpin,      // busy-spin: lowest latency, one core per consumer
  kYield,     // sched_yield between looks
  kBlock,     // sleep on a futex until a producer wakes us
  kAdaptive,  // spin ~50 µs, then sleep
};

struct ConsumerConfig {
  std::string data_dir = default_data_dir();
  std::string group_id;  // needed by subscribe() and commits
  std::string client_id = "sluice";
  AutoOffsetReset auto_offset_reset = AutoOffsetReset::kLatest;
  bool enable_auto_commit = false;  // commit positions every auto_commit_interval_ms
  std::int64_t auto_commit_interval_ms = 5000;
  std::int64_t session_timeout_ms = 10000;  // heartbeat backstop; death is seen at once
  std::int64_t rebalance_timeout_ms = 10000;
  WaitMode wait = WaitMode::kAdaptive;
  bool verify_crc = false;  // check each record's CRC-32C on read
  std::vector<std::string> assignors = {"range", "roundrobin"};
};

// A record as delivered: views into the mapping, valid until the next poll.
struct Record {
  std::string_view topic;
  std::int32_t partition = 0;
  std::int64_t offset = 0;
  std::int64_t timestamp_ns = 0;
  std::optional<std::string_view> key;
  std::optional<std::string_view> value;  // nullopt: a tombstone
  std::vector<Header> headers() const;    // decodes the headers (allocates)
  bool has_headers() const { return headers_block_ != nullptr; }

  const char* headers_block_ = nullptr;  // encoded headers (docs/format.md)
  std::uint32_t headers_block_bytes_ = 0;
};

struct GroupAssignment {
  std::int32_t generation = -1;
  std::string member_id;
  std::vector<TopicPartition> partitions;
};

class Consumer {
 public:
  static Result<Consumer> open(const ConsumerConfig& config = {});
  Consumer(Consumer&&) noexcept;
  Consumer& operator=(Consumer&&) noexcept;
  ~Consumer();

  // Manual assignment: no group membership. Starts at the committed offset of the group (if a
  // group id is set and it committed), else per auto_offset_reset.
  Status assign(const std::vector<TopicPartition>& partitions);
  // Group membership: the broker assigns partitions of these topics.
  Status subscribe(const std::vector<std::string>& topics);
  Status unsubscribe();

  // Delivers up to max_records records, waiting up to timeout_ms for the first one (0: don't
  // wait, < 0: no limit). Returns how many were delivered, or an error: kOutOfRange (a
  // partition's position was deleted, by retention or DeleteRecords, and auto_offset_reset is
  // none), kNoBroker, kFenced, kUnknownTopic (an assign()ed partition's topic was deleted:
  // once its records are delivered the partition is unassigned and this is reported once).
  template <class Handler>
  Result<std::size_t> poll(Handler&& handler, std::size_t max_records, std::int64_t timeout_ms) {
    return poll_impl(
        [](void* ctx, const Record& r) {
          (*static_cast<std::remove_reference_t<Handler>*>(ctx))(r);
        },
        &handler, max_records, timeout_ms);
  }

  // Commits the position of every assigned partition (or the given offsets: the offset of
  // the next record to read, as in Kafka).
  Status commit_sync();
  Status commit_sync(const std::vector<std::pair<TopicPartition, std::int64_t>>& offsets);
  // Commits without waiting for the broker's answer; errors are reported by the next call.
  void commit_async();

  Status seek(const TopicPartition& tp, std::int64_t offset);
  Status seek_to_timestamp(const TopicPartition& tp, std::int64_t timestamp_ns);
  Status seek_to_beginning(const std::vector<TopicPartition>& tps);
  Status seek_to_end(const std::vector<TopicPartition>& tps);

  Result<std::int64_t> position(const TopicPartition& tp) const;
  Result<std::int64_t> end_offset(const TopicPartition& tp) const;
  Result<std::int64_t> lag(const TopicPartition& tp) const;
  Result<std::optional<std::int64_t>> committed(const TopicPartition& tp) const;
  std::vector<TopicPartition> assignment() const;
  // Group state as of the last rebalance (generation -1 without a group).
  GroupAssignment group_assignment() const;

  // True when every assigned partition has been read to its end (kcat -e).
  bool at_end() const;

  // Commits (when auto-commit is on) and leaves the group. The destructor does it too.
  Status close();

 private:
  struct Impl;
  using RawHandler = void (*)(void*, const Record&);
  Result<std::size_t> poll_impl(RawHandler fn, void* ctx, std::size_t max_records,
                                std::int64_t timeout_ms);
  explicit Consumer(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace sluice
