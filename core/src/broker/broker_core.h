// BrokerCore: the broker's request handling and agents, driven by one io_context thread:
// the topic manager (topics, spare segments, abandoned claims, retention), the group
// coordinator and the committed-offsets table. docs/control-protocol.md lists the requests.
//
// Thread-safety: every method runs on the broker's io_context thread.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <set>
#include <string>

#include "control_server.h"
#include "data_dir.h"
#include "sluice/broker.h"
#include "topic_manager.h"
#include "topic_store.h"

namespace sluice::broker {

class GroupService;
class KafkaGroupService;

class BrokerCore {
 public:
  BrokerCore(BrokerConfig config, DataDir dir, FileOwnership ownership);
  ~BrokerCore();

  Status start();  // loads topics, opens the offsets table
  void handle(const std::shared_ptr<Session>& session, control::json& msg);
  void closed(const std::shared_ptr<Session>& session);
  void housekeeping();
  // New spares for partitions that rolled (TopicManager::replace_taken_spares), then the
  // abandoned-claim watchers (TopicManager::watch).
  struct WatchOutcome {
    std::size_t rolling_fast = 0;  // partitions that rolled twice within kFastRollMs
    std::int64_t stepped = 0;      // records the watchers stepped over
  };
  WatchOutcome watch();
  void retention();
  void shutdown();

  // For the Kafka gateway (through BrokerLink, on this thread).
  bool has_topic(const std::string& name) const { return topics_.find(name) != nullptr; }
  Status create_topic(const std::string& name, const TopicConfig& config);
  // What create_topic would say of room in the data directory, creating nothing.
  Status check_topic_room(const std::string& name, const TopicConfig& config) const {
    return topics_.store().check_room(name, config.partitions, config);
  }
  Status delete_topic(const std::string& name);
  // Topic `name`'s config; nullopt if the broker has no such topic.
  std::optional<TopicConfig> topic_config(const std::string& name) const {
    const TopicState* t = topics_.find(name);
    return t == nullptr ? std::nullopt : std::optional<TopicConfig>(t->config);
  }
  // Kafka's CreatePartitions and AlterConfigs: gives topic `name` the config, whose partitions
  // may grow but never shrink. kUnknownTopic; kInvalidArgument for fewer partitions or a config
  // a topic may not have; kIo when the data directory has no room for the new partitions. With
  // validate_only, checks all of that and changes nothing.
  Status change_topic(const std::string& name, const TopicConfig& config, bool validate_only);
  // Kafka's DescribeLogDirs: the topics, each partition's offsets and segment bytes, and the
  // data directory that holds them.
  std::vector<std::string> topic_names() const { return topics_.names(); }
  Result<TopicDescription> describe_topic(const std::string& name) {
    return topics_.describe(name);
  }
  const std::string& data_dir() const { return dir_.root; }
  KafkaGroupService& kafka_groups() { return *kafka_groups_; }
  GroupService& groups() { return *groups_; }
  const BrokerConfig& config() const { return config_; }

 private:
  Status alter_topic(const std::string& name, const TopicConfig& config);
  using Handler = void (BrokerCore::*)(const std::shared_ptr<Session>&, const control::json&,
                                       control::json& reply);
  void reply(const std::shared_ptr<Session>& s, const control::json& req, control::json body);
  void fail(const std::shared_ptr<Session>& s, const control::json& req, const Status& status);
  // For retention under the backpressure policy: the lowest offset any group committed.
  SlowestCommitted slowest_committed();

  void op_hello(const std::shared_ptr<Session>&, const control::json&, control::json&);
  void op_status(const std::shared_ptr<Session>&, const control::json&, control::json&);
  void op_topic_create(const std::shared_ptr<Session>&, const control::json&, control::json&);
  void op_topic_list(const std::shared_ptr<Session>&, const control::json&, control::json&);
  void op_topic_describe(const std::shared_ptr<Session>&, const control::json&, control::json&);
  void op_topic_alter(const std::shared_ptr<Session>&, const control::json&, control::json&);
  void op_topic_delete(const std::shared_ptr<Session>&, const control::json&, control::json&);
  void op_topic_delete_records(const std::shared_ptr<Session>&, const control::json&,
                               control::json&);

  BrokerConfig config_;
  DataDir dir_;
  FileOwnership ownership_;
  TopicManager topics_;
  std::unique_ptr<GroupService> groups_;
  std::unique_ptr<KafkaGroupService> kafka_groups_;
  std::int64_t started_ms_ = 0;
  // When (monotonic ms) retention() last looked for files that dead processes left.
  std::int64_t orphans_swept_ms_ = 0;
  // For a records/s figure: end-offset sums sampled by the retention timer.
  std::int64_t last_sum_ = -1;
  std::int64_t last_sample_ms_ = 0;
  double rate_ = 0;
  friend class GroupService;
  friend class KafkaGroupService;
};

}  // namespace sluice::broker
