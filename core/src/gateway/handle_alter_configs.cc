// RequestHandler: AlterConfigs and IncrementalAlterConfigs, how Kafka's admin clients and
// kafka-configs.sh change a topic's configs (topic_configs.h names them). AlterConfigs gives
// the topic exactly the configs listed, the others back to the broker's defaults;
// IncrementalAlterConfigs sets (SET) or resets (DELETE) single configs. Both run on the
// broker's thread through BrokerCore::change_topic, as `sluice topic alter` does.
// Broker configs come from sluiced's command line and are not altered.
#include <spdlog/spdlog.h>

#include <set>
#include <string>
#include <vector>

#include "broker_core.h"
#include "request_handler.h"
#include "topic_configs.h"

namespace sluice::gateway {

using kafka::ByteReader;
using kafka::ErrorCode;

namespace {

// One config change of a request, owned.
struct Change {
  std::string name;
  std::int8_t op = kafka::kConfigOpSet;
  std::optional<std::string> value;
};

// One resource of a request and, once handled, its answer.
struct Resource : ItemError {
  std::int8_t type = 0;
  std::string name;
  std::vector<Change> changes;
};

// What can be refused before the broker is asked: the resource type, a resource named twice.
void check_request(std::vector<Resource>& resources) {
  std::set<std::pair<std::int8_t, std::string>> seen;
  for (Resource& r : resources) {
    if (!seen.insert({r.type, r.name}).second)
      r.fail(ErrorCode::kInvalidRequest, "resource " + r.name + " appears more than once");
    if (r.type == kafka::kConfigResourceBroker)
      r.fail(ErrorCode::kInvalidRequest,
             "broker configs come from sluiced's command line and are not altered here");
    else if (r.type != kafka::kConfigResourceTopic)
      r.fail(ErrorCode::kInvalidRequest, "only topic (2) configs can be altered");
  }
}

// The topic's new config, from `base` and the changes; or the error of the first bad one.
Status apply_changes(const std::vector<Change>& changes, const TopicConfig& defaults,
                     TopicConfig& config) {
  for (const Change& c : changes) {
    Status s;
    switch (c.op) {
      case kafka::kConfigOpSet:
        if (!c.value)
          return Status(sluice::ErrorCode::kInvalidArgument,
                        "config " + c.name + ": SET without a value");
        s = apply_topic_config(c.name, *c.value, config);
        break;
      case kafka::kConfigOpDelete:
        s = reset_topic_config(c.name, defaults, config);
        break;
      default:
        // APPEND and SUBTRACT are for list configs; a topic's configs here are single values.
        return Status(sluice::ErrorCode::kInvalidArgument,
                      "config " + c.name + ": operation " + std::to_string(c.op) +
                          " (only SET and DELETE: no config here is a list)");
    }
    if (!s) return s;
  }
  return Status::ok();
}

}  // namespace

void RequestHandler::alter_configs(ConnectionState&, const Header& h, ByteReader& r,
                                   Respond respond) {
  const bool incremental = h.api_key == kafka::to_int(kafka::ApiKey::kIncrementalAlterConfigs);
  auto resources = std::make_shared<std::vector<Resource>>();
  bool validate_only = false;
  // Both requests' resources as Resources. In AlterConfigs every config is a SET, and a null
  // value the default, as if the config were not listed.
  auto collect = [&](const auto& req) {
    validate_only = req.validate_only;
    for (const auto& res : req.resources) {
      Resource out;
      out.type = res.resource_type;
      out.name = std::string(res.resource_name);
      for (const auto& c : res.configs) {
        std::int8_t op = kafka::kConfigOpSet;
        if constexpr (requires { c.config_operation; }) {
          op = c.config_operation;
        } else if (!c.value) {
          continue;
        }
        out.changes.push_back(
            {std::string(c.name), op,
             c.value ? std::optional<std::string>(std::string(*c.value)) : std::nullopt});
      }
      resources->push_back(std::move(out));
    }
  };
  if (incremental) {
    kafka::IncrementalAlterConfigsRequest req;
    if (!kafka::decode(r, h.api_version, req))
      return respond(malformed_request("IncrementalAlterConfigs", r));
    collect(req);
  } else {
    kafka::AlterConfigsRequest req;
    if (!kafka::decode(r, h.api_version, req)) return respond(malformed_request("AlterConfigs", r));
    collect(req);
  }
  check_request(*resources);
  const TopicConfig defaults = config_.default_topic;
  broker_.post([this, resources, h, incremental, validate_only, defaults,
                respond](broker::BrokerCore& core) {
    for (Resource& res : *resources) {
      if (res.error != ErrorCode::kNone) continue;
      std::optional<TopicConfig> current = core.topic_config(res.name);
      if (!current) {
        res.fail(ErrorCode::kUnknownTopicOrPartition, "unknown topic " + res.name);
        continue;
      }
      // AlterConfigs: what is not listed goes back to the default.
      TopicConfig config = incremental ? *current : defaults;
      config.partitions = current->partitions;
      if (Status s = apply_changes(res.changes, defaults, config); !s) {
        res.fail(ErrorCode::kInvalidConfig, s.message());
        continue;
      }
      if (Status s = core.change_topic(res.name, config, validate_only); !s) {
        res.fail(s.code() == sluice::ErrorCode::kInvalidArgument ? ErrorCode::kInvalidConfig
                 : s.code() == sluice::ErrorCode::kIo            ? ErrorCode::kKafkaStorageError
                                                                 : ErrorCode::kUnknownServerError,
                 s.message());
        continue;
      }
      if (!validate_only) spdlog::info("kafka gateway: altered the configs of topic {}", res.name);
    }
    boost::asio::post(io_, [this, resources, h, respond] {
      kafka::AlterConfigsResponse resp;
      for (const Resource& res : *resources) {
        if (res.type == kafka::kConfigResourceTopic) directory_.forget(res.name);
        resp.responses.push_back({res.error,
                                  res.error == ErrorCode::kNone
                                      ? kafka::NullableString()
                                      : kafka::NullableString(res.message),
                                  res.type, res.name});
      }
      respond({response_frame(h, resp), false, {}});
    });
  });
}

}  // namespace sluice::gateway
