// RequestHandler: Metadata, FindCoordinator, CreateTopics, DeleteTopics, CreatePartitions,
// DescribeLogDirs, DescribeConfigs and InitProducerId.
#include <spdlog/spdlog.h>

#include <deque>
#include <map>
#include <set>

#include "broker_core.h"
#include "record_path.h"
#include "request_handler.h"
#include "topic_configs.h"

namespace sluice::gateway {

using kafka::ByteReader;
using kafka::ErrorCode;

void RequestHandler::metadata(ConnectionState&, const Header& h, ByteReader& r, Respond respond) {
  auto req = std::make_shared<kafka::MetadataRequest>();
  if (!kafka::decode(r, h.api_version, *req)) return respond(malformed_request("Metadata", r));
  bool may_create =
      config_.auto_create_topics && (h.api_version < 4 || req->allow_auto_topic_creation);
  std::vector<std::string> missing;
  if (may_create && req->topics) {
    for (std::string_view t : *req->topics) {
      std::string name(t);
      if (validate_topic_name(name) && !directory_.topic(name)) missing.push_back(name);
    }
  }
  if (missing.empty()) return metadata_now(h, *req, respond);
  for (const auto& n : missing) directory_.forget(n);
  auto hdr = std::make_shared<Header>(h);
  auto_create(std::move(missing), [this, hdr, req, respond] { metadata_now(*hdr, *req, respond); });
}

void RequestHandler::metadata_now(const Header& h, const kafka::MetadataRequest& req,
                                  const Respond& respond) {
  std::deque<std::string> names;  // owns the strings the response views
  std::vector<std::string> wanted;
  if (req.topics && !(h.api_version == 0 && req.topics->empty())) {
    for (std::string_view t : *req.topics) wanted.emplace_back(t);
  } else {
    wanted = directory_.names();
  }
  kafka::MetadataResponse resp;
  resp.brokers.push_back({config_.kafka_node_id, advertised_host_, advertised_port_, std::nullopt});
  resp.cluster_id = cluster_id_;
  resp.controller_id = config_.kafka_node_id;
  for (const std::string& name : wanted) {
    names.push_back(name);
    kafka::MetadataResponse::Topic t;
    t.name = names.back();
    if (!validate_topic_name(name)) {
      t.error_code = ErrorCode::kInvalidTopicException;
      resp.topics.push_back(std::move(t));
      continue;
    }
    auto topic = directory_.topic(name);
    if (!topic) {
      t.error_code = kafka_error_for(topic.status());
      resp.topics.push_back(std::move(t));
      continue;
    }
    for (std::int32_t p = 0; p < (*topic)->config.partitions; ++p) {
      kafka::MetadataResponse::Partition part;
      part.partition_index = p;
      part.leader_id = config_.kafka_node_id;
      part.leader_epoch = 0;
      part.replica_nodes = {config_.kafka_node_id};
      part.isr_nodes = {config_.kafka_node_id};
      t.partitions.push_back(std::move(part));
    }
    resp.topics.push_back(std::move(t));
  }
  respond({response_frame(h, resp), false, {}});
}

void RequestHandler::find_coordinator(ConnectionState&, const Header& h, ByteReader& r,
                                      Respond respond) {
  kafka::FindCoordinatorRequest req;
  if (!kafka::decode(r, h.api_version, req))
    return respond(malformed_request("FindCoordinator", r));
  kafka::FindCoordinatorResponse resp;
  if (req.key_type != 0) {
    // Transactions are not offered: no transaction coordinator.
    resp.error_code = ErrorCode::kCoordinatorNotAvailable;
    resp.error_message = "the Sluice gateway has no transaction coordinator";
    resp.node_id = -1;
    resp.host = "";
    resp.port = -1;
  } else {
    resp.node_id = config_.kafka_node_id;
    resp.host = advertised_host_;
    resp.port = advertised_port_;
  }
  respond({response_frame(h, resp), false, {}});
}

void RequestHandler::create_topics(ConnectionState&, const Header& h, ByteReader& r,
                                   Respond respond) {
  auto req = std::make_shared<kafka::CreateTopicsRequest>();
  if (!kafka::decode(r, h.api_version, *req)) return respond(malformed_request("CreateTopics", r));
  struct Item : ItemError {
    std::string name;
    TopicConfig config;
  };
  auto items = std::make_shared<std::vector<Item>>();
  for (const auto& t : req->topics) {
    Item it;
    it.name = std::string(t.name);
    it.config = config_.default_topic;
    if (Status s = validate_topic_name(it.name); !s)
      it.fail(ErrorCode::kInvalidTopicException, s.message());
    if (t.num_partitions > 0) {
      it.config.partitions = t.num_partitions;
    } else if (t.num_partitions != -1) {
      it.fail(ErrorCode::kInvalidPartitions,
              "num_partitions must be positive (or -1 for the default)");
    }
    if (t.replication_factor != 1 && t.replication_factor != -1)
      it.fail(ErrorCode::kInvalidReplicationFactor,
              "replication factor " + std::to_string(t.replication_factor) +
                  ": a Sluice host is one broker (use 1 or -1)");
    if (!t.assignments.empty())
      it.fail(ErrorCode::kInvalidReplicaAssignment, "manual replica assignments are not supported");
    for (const auto& c : t.configs)
      if (Status s = apply_topic_config(c.name, c.value, it.config); !s)
        it.fail(ErrorCode::kInvalidConfig, s.message());
    if (Status s = validate_topic_config(it.config); !s)
      it.fail(ErrorCode::kInvalidConfig, s.message());
    items->push_back(std::move(it));
  }
  auto hdr = std::make_shared<Header>(h);
  bool validate_only = req->validate_only;
  broker_.post([this, items, hdr, validate_only, respond](broker::BrokerCore& core) {
    for (Item& it : *items) {
      if (it.error != ErrorCode::kNone) continue;
      if (core.has_topic(it.name)) {
        it.fail(ErrorCode::kTopicAlreadyExists, "topic " + it.name + " already exists");
        continue;
      }
      if (validate_only) {
        if (Status s = core.check_topic_room(it.name, it.config); !s)
          it.fail(ErrorCode::kKafkaStorageError, s.message());
        continue;
      }
      if (Status s = core.create_topic(it.name, it.config); !s) {
        // kIo: no room for the partitions' files (or memory, on tmpfs), or a failing disk.
        it.fail(s.code() == sluice::ErrorCode::kAlreadyExists ? ErrorCode::kTopicAlreadyExists
                : s.code() == sluice::ErrorCode::kIo          ? ErrorCode::kKafkaStorageError
                                                              : ErrorCode::kInvalidRequest,
                s.message());
      } else {
        spdlog::info("kafka gateway: created topic {}", it.name);
      }
    }
    boost::asio::post(io_, [this, items, hdr, respond] {
      kafka::CreateTopicsResponse resp;
      for (const Item& it : *items) {
        kafka::CreateTopicsResponse::Topic t;
        t.name = it.name;
        t.error_code = it.error;
        if (it.error != ErrorCode::kNone) t.error_message = it.message;
        directory_.forget(it.name);
        resp.topics.push_back(t);
      }
      respond({response_frame(*hdr, resp), false, {}});
    });
  });
}

void RequestHandler::create_partitions(ConnectionState&, const Header& h, ByteReader& r,
                                       Respond respond) {
  kafka::CreatePartitionsRequest req;
  if (!kafka::decode(r, h.api_version, req))
    return respond(malformed_request("CreatePartitions", r));
  struct Item : ItemError {
    std::string name;
    std::int32_t count = 0;
    std::optional<std::vector<std::vector<std::int32_t>>> assignments;
  };
  auto items = std::make_shared<std::vector<Item>>();
  std::set<std::string_view> seen;
  for (const auto& t : req.topics) {
    Item it;
    it.name = std::string(t.name);
    it.count = t.count;
    it.assignments = t.assignments;
    if (!seen.insert(t.name).second)
      it.fail(ErrorCode::kInvalidRequest,
              "topic " + it.name + " appears more than once in the request");
    items->push_back(std::move(it));
  }
  const std::int32_t node = config_.kafka_node_id;
  broker_.post([this, items, h, node, validate_only = req.validate_only,
                respond](broker::BrokerCore& core) {
    for (Item& it : *items) {
      if (it.error != ErrorCode::kNone) continue;
      std::optional<TopicConfig> config = core.topic_config(it.name);
      if (!config) {
        it.fail(ErrorCode::kUnknownTopicOrPartition, "unknown topic " + it.name);
        continue;
      }
      const std::int32_t now = config->partitions;
      if (it.count <= now) {
        it.fail(ErrorCode::kInvalidPartitions,
                "topic " + it.name + " has " + std::to_string(now) + " partitions: " +
                    (it.count == now ? std::string("it already has that many")
                                     : "partitions can grow but never shrink"));
        continue;
      }
      if (it.assignments) {
        // One broker: each new partition's only replica is this node.
        bool ok = static_cast<std::int32_t>(it.assignments->size()) == it.count - now;
        for (const auto& replicas : *it.assignments)
          ok = ok && replicas == std::vector<std::int32_t>{node};
        if (!ok) {
          it.fail(ErrorCode::kInvalidReplicaAssignment,
                  "a Sluice host is one broker: give each new partition the replicas [" +
                      std::to_string(node) + "], or no assignment");
          continue;
        }
      }
      config->partitions = it.count;
      if (Status s = core.change_topic(it.name, *config, validate_only); !s)
        it.fail(s.code() == sluice::ErrorCode::kUnknownTopic ? ErrorCode::kUnknownTopicOrPartition
                : s.code() == sluice::ErrorCode::kInvalidArgument ? ErrorCode::kInvalidPartitions
                // no room for the new partitions' files (or memory, on tmpfs)
                : s.code() == sluice::ErrorCode::kIo ? ErrorCode::kKafkaStorageError
                                                     : ErrorCode::kUnknownServerError,
                s.message());
    }
    boost::asio::post(io_, [this, items, h, respond] {
      kafka::CreatePartitionsResponse resp;
      for (const Item& it : *items) {
        directory_.forget(it.name);
        resp.results.push_back({it.name, it.error,
                                it.error == ErrorCode::kNone ? kafka::NullableString()
                                                             : kafka::NullableString(it.message)});
      }
      respond({response_frame(h, resp), false, {}});
    });
  });
}

void RequestHandler::describe_log_dirs(ConnectionState&, const Header& h, ByteReader& r,
                                       Respond respond) {
  kafka::DescribeLogDirsRequest req;
  if (!kafka::decode(r, h.api_version, req))
    return respond(malformed_request("DescribeLogDirs", r));
  // One log directory, the data directory. As Kafka does, a partition the broker does not
  // have is left out rather than named with an error; null asks for every partition.
  using Wanted = std::map<std::string, std::set<std::int32_t>>;
  std::optional<Wanted> asked;
  if (req.topics) {
    asked.emplace();
    for (const auto& t : *req.topics)
      (*asked)[std::string(t.name)].insert(t.partitions.begin(), t.partitions.end());
  }
  struct Found {
    std::string name;
    std::vector<kafka::DescribeLogDirsResponse::Partition> partitions;
  };
  auto found = std::make_shared<std::vector<Found>>();
  auto log_dir = std::make_shared<std::string>();
  broker_.post(
      [this, asked = std::move(asked), found, log_dir, h, respond](broker::BrokerCore& core) {
        *log_dir = core.data_dir();
        Wanted all;
        if (!asked)
          for (const std::string& name : core.topic_names()) all[name];
        for (const auto& [name, partitions] : asked ? *asked : all) {
          auto d = core.describe_topic(name);
          if (!d) continue;
          Found f{name, {}};
          for (const auto& p : d->partitions) {
            if (asked && partitions.count(p.partition) == 0) continue;
            f.partitions.push_back({p.partition, static_cast<std::int64_t>(p.bytes), 0, false});
          }
          if (!f.partitions.empty()) found->push_back(std::move(f));
        }
        boost::asio::post(io_, [found, log_dir, h, respond] {
          kafka::DescribeLogDirsResponse resp;
          kafka::DescribeLogDirsResponse::Result result;
          result.log_dir = *log_dir;
          for (const Found& f : *found) result.topics.push_back({f.name, f.partitions});
          resp.results.push_back(std::move(result));
          respond({response_frame(h, resp), false, {}});
        });
      });
}

void RequestHandler::delete_topics(ConnectionState&, const Header& h, ByteReader& r,
                                   Respond respond) {
  auto req = std::make_shared<kafka::DeleteTopicsRequest>();
  if (!kafka::decode(r, h.api_version, *req)) return respond(malformed_request("DeleteTopics", r));
  auto names = std::make_shared<std::vector<std::pair<std::string, Status>>>();
  for (std::string_view n : req->topic_names) names->push_back({std::string(n), Status::ok()});
  auto hdr = std::make_shared<Header>(h);
  broker_.post([this, names, hdr, respond](broker::BrokerCore& core) {
    for (auto& [name, status] : *names) {
      status = core.has_topic(name) ? core.delete_topic(name)
                                    : Status(sluice::ErrorCode::kUnknownTopic, "unknown topic");
      if (status) spdlog::info("kafka gateway: deleted topic {}", name);
    }
    boost::asio::post(io_, [this, names, hdr, respond] {
      kafka::DeleteTopicsResponse resp;
      for (const auto& [name, status] : *names) {
        directory_.forget(name);
        resp.responses.push_back(
            {name, status ? ErrorCode::kNone : ErrorCode::kUnknownTopicOrPartition});
      }
      respond({response_frame(*hdr, resp), false, {}});
    });
  });
}

void RequestHandler::describe_configs(ConnectionState&, const Header& h, ByteReader& r,
                                      Respond respond) {
  kafka::DescribeConfigsRequest req;
  if (!kafka::decode(r, h.api_version, req))
    return respond(malformed_request("DescribeConfigs", r));
  std::deque<std::string> strings;
  kafka::DescribeConfigsResponse resp;
  // A topic's config equal to the broker's default for new topics is reported as that default
  // (DEFAULT_CONFIG, is_default), as Kafka reports a topic without an override; any other
  // value as the topic's own (DYNAMIC_TOPIC_CONFIG), which is what kafka-configs.sh lists.
  const auto topic_defaults = describe_topic_config(config_.default_topic);
  const auto is_topic_default = [&](const std::string& name, const std::string& value) {
    for (const auto& [n, v] : topic_defaults)
      if (n == name) return v == value;
    return false;
  };
  for (const auto& res : req.resources) {
    kafka::DescribeConfigsResponse::Result out;
    out.resource_type = res.resource_type;
    out.resource_name = res.resource_name;
    std::vector<std::pair<std::string, std::string>> configs;
    if (res.resource_type == kafka::kConfigResourceTopic) {
      auto t = directory_.topic(std::string(res.resource_name));
      if (!t) {
        out.error_code = ErrorCode::kUnknownTopicOrPartition;
        strings.push_back(t.status().message());
        out.error_message = strings.back();
      } else {
        configs = describe_topic_config((*t)->config);
      }
    } else if (res.resource_type == kafka::kConfigResourceBroker) {
      configs = {{"auto.create.topics.enable", config_.auto_create_topics ? "true" : "false"},
                 {"broker.id", std::to_string(config_.kafka_node_id)},
                 {"num.partitions", std::to_string(config_.default_topic.partitions)},
                 {"socket.request.max.bytes", std::to_string(config_.kafka_max_request_bytes)},
                 {"fetch.max.bytes", std::to_string(config_.kafka_fetch_max_bytes)},
                 {"connections.max.idle.ms", std::to_string(config_.kafka_idle_timeout_ms)}};
    } else {
      out.error_code = ErrorCode::kInvalidRequest;
      out.error_message = "only topic (2) and broker (4) resources have configs here";
    }
    for (auto& [name, value] : configs) {
      if (res.configuration_keys) {
        bool asked = false;
        for (std::string_view k : *res.configuration_keys) asked |= k == name;
        if (!asked) continue;
      }
      strings.push_back(name);
      std::string_view n = strings.back();
      strings.push_back(value);
      kafka::DescribeConfigsResponse::Config c;
      c.name = n;
      c.value = strings.back();
      const bool topic = res.resource_type == kafka::kConfigResourceTopic;
      c.read_only = !topic;
      c.is_default = topic && is_topic_default(name, value);
      // 1 DYNAMIC_TOPIC_CONFIG, 4 STATIC_BROKER_CONFIG, 5 DEFAULT_CONFIG
      c.config_source = !topic ? 4 : c.is_default ? 5 : 1;
      out.configs.push_back(std::move(c));
    }
    resp.results.push_back(std::move(out));
  }
  respond({response_frame(h, resp), false, {}});
}

void RequestHandler::init_producer_id(ConnectionState&, const Header& h, ByteReader& r,
                                      Respond respond) {
  kafka::InitProducerIdRequest req;
  if (!kafka::decode(r, h.api_version, req)) return respond(malformed_request("InitProducerId", r));
  kafka::InitProducerIdResponse resp;
  if (req.transactional_id && !req.transactional_id->empty()) {
    resp.error_code = ErrorCode::kTransactionalIdAuthorizationFailed;
  } else {
    resp.producer_id = next_producer_id_.fetch_add(1);
    resp.producer_epoch = 0;
  }
  respond({response_frame(h, resp), false, {}});
}

}  // namespace sluice::gateway
