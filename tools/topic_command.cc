// `sluice topic create|list|describe|alter|delete|delete-records`: topic administration through
// the broker (sluice::Admin). Every subcommand needs a running `sluiced` for the data directory.
#include <cstdio>
#include <limits>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "sluice/admin.h"
#include "tools/cli_common.h"
#include "tools/commands.h"

namespace sluice::tools {
namespace {

using json = nlohmann::ordered_json;

const char* policy_name(SlowReaderPolicy p) {
  return p == SlowReaderPolicy::kBackpressure ? "backpressure" : "retain";
}

json config_json(const TopicConfig& c) {
  return {{"partitions", c.partitions},
          {"segment_bytes", c.segment_bytes},
          {"retention_bytes", c.retention_bytes},
          {"retention_ms", c.retention_ms},
          {"max_record_bytes", c.max_record_bytes},
          {"slow_reader_policy", policy_name(c.slow_reader_policy)}};
}

// The settings create and alter share; `given` says which were on the command line.
struct TopicSettings {
  std::string data_dir;
  std::string name;
  TopicConfig config;
  std::string policy = "retain";
  std::vector<std::pair<CLI::Option*, const char*>> options;  // option, field name

  void add_to(CLI::App* cmd) {
    auto add = [&](CLI::Option* o, const char* field) { options.emplace_back(o, field); };
    add(cmd->add_option("--partitions", config.partitions, "Number of partitions")
            ->check(CLI::Range(1, 100000)),
        "partitions");
    add(cmd->add_option("--segment-bytes", config.segment_bytes,
                        "Segment size in bytes (a multiple of 4096, 65536 .. 1073741824)"),
        "segment_bytes");
    add(cmd->add_option("--retention-bytes", config.retention_bytes,
                        "Bytes kept per partition before old segments are deleted (-1: no limit)"),
        "retention_bytes");
    add(cmd->add_option("--retention-ms", config.retention_ms,
                        "Age after which a segment is deleted, in ms (-1: no limit)"),
        "retention_ms");
    add(cmd->add_option("--max-record-bytes", config.max_record_bytes,
                        "Largest record (key, headers and value) in bytes"),
        "max_record_bytes");
    add(cmd->add_option("--slow-reader-policy", policy,
                        "retain: retention deletes what slow readers have not read (Kafka's); "
                        "backpressure: producers wait for consumer groups instead")
            ->check(CLI::IsMember({"retain", "backpressure"})),
        "slow_reader_policy");
  }

  std::vector<std::string> given() const {
    std::vector<std::string> fields;
    for (const auto& [o, f] : options)
      if (o->count() > 0) fields.emplace_back(f);
    return fields;
  }

  void apply_policy() {
    config.slow_reader_policy =
        policy == "backpressure" ? SlowReaderPolicy::kBackpressure : SlowReaderPolicy::kRetain;
  }
};

Result<Admin> connect(const std::string& data_dir) {
  return Admin::connect(data_dir);
}

std::string unknown_topic_hint(const Status& s) {
  return s.code() == ErrorCode::kUnknownTopic ? "see `sluice topic list`" : "";
}

int run_create(TopicSettings& t) {
  t.apply_policy();
  auto admin = connect(t.data_dir);
  if (!admin) return report(admin.status());
  if (Status s = admin->create_topic(t.name, t.config); !s) {
    return report(s, s.code() == ErrorCode::kAlreadyExists
                         ? "delete it first (`sluice topic delete " + t.name +
                               "`) or alter it (`sluice topic alter`)"
                         : std::string());
  }
  std::printf("created topic %s (%d partition%s)\n", t.name.c_str(), t.config.partitions,
              t.config.partitions == 1 ? "" : "s");
  return kExitOk;
}

int run_alter(TopicSettings& t) {
  std::vector<std::string> fields = t.given();
  if (fields.empty())
    return usage_error(
        "topic alter: nothing to change: give at least one of --partitions, --segment-bytes, "
        "--retention-bytes, --retention-ms, --max-record-bytes, --slow-reader-policy");
  t.apply_policy();
  auto admin = connect(t.data_dir);
  if (!admin) return report(admin.status());
  if (Status s = admin->alter_topic(t.name, t.config, fields); !s)
    return report(s, unknown_topic_hint(s));
  json all = config_json(t.config);
  std::string changes;
  for (const auto& f : fields) {
    if (!changes.empty()) changes += ", ";
    std::string value = all[f].is_string() ? all[f].get<std::string>() : all[f].dump();
    changes += f + "=" + value;
  }
  std::printf("altered topic %s: %s\n", t.name.c_str(), changes.c_str());
  return kExitOk;
}

int run_list(const std::string& data_dir, bool as_json) {
  auto admin = connect(data_dir);
  if (!admin) return report(admin.status());
  auto topics = admin->list_topics();
  if (!topics) return report(topics.status());
  if (as_json) {
    std::printf("%s\n", json(*topics).dump().c_str());
  } else {
    for (const auto& n : *topics) std::printf("%s\n", n.c_str());
  }
  return kExitOk;
}

int run_describe(const std::string& data_dir, const std::vector<std::string>& names, bool as_json) {
  auto admin = connect(data_dir);
  if (!admin) return report(admin.status());
  std::vector<std::string> topics = names;
  if (topics.empty()) {
    auto all = admin->list_topics();
    if (!all) return report(all.status());
    topics = *all;
  }
  json out = json::array();
  bool first = true;
  for (const auto& name : topics) {
    auto d = admin->describe_topic(name);
    if (!d) return report(d.status(), unknown_topic_hint(d.status()));
    if (as_json) {
      json parts = json::array();
      for (const auto& p : d->partitions)
        parts.push_back({{"partition", p.partition},
                         {"start_offset", p.start_offset},
                         {"end_offset", p.end_offset},
                         {"bytes", p.bytes},
                         {"segments", p.segments}});
      out.push_back({{"name", d->name}, {"config", config_json(d->config)}, {"partitions", parts}});
      continue;
    }
    const TopicConfig& c = d->config;
    if (!first) std::printf("\n");
    first = false;
    std::printf(
        "topic %s: partitions %d, segment-bytes %llu, retention-bytes %lld, retention-ms %lld, "
        "max-record-bytes %u, slow-reader-policy %s\n",
        d->name.c_str(), c.partitions, static_cast<unsigned long long>(c.segment_bytes),
        static_cast<long long>(c.retention_bytes), static_cast<long long>(c.retention_ms),
        c.max_record_bytes, policy_name(c.slow_reader_policy));
    std::printf("%9s %14s %14s %14s %14s %8s\n", "partition", "start", "end", "records", "bytes",
                "segments");
    for (const auto& p : d->partitions)
      std::printf("%9d %14lld %14lld %14lld %14llu %8u\n", p.partition,
                  static_cast<long long>(p.start_offset), static_cast<long long>(p.end_offset),
                  static_cast<long long>(p.end_offset - p.start_offset),
                  static_cast<unsigned long long>(p.bytes), p.segments);
  }
  if (as_json) std::printf("%s\n", (names.size() == 1 ? out[0] : out).dump().c_str());
  return kExitOk;
}

int run_delete_records(const std::string& data_dir, const std::string& name,
                       std::optional<std::int32_t> partition, std::int64_t before) {
  auto admin = connect(data_dir);
  if (!admin) return report(admin.status());
  std::vector<std::int32_t> partitions;
  if (partition) {
    partitions.push_back(*partition);
  } else {
    auto d = admin->describe_topic(name);
    if (!d) return report(d.status(), unknown_topic_hint(d.status()));
    for (const auto& p : d->partitions) partitions.push_back(p.partition);
  }
  for (std::int32_t p : partitions) {
    auto start = admin->delete_records(name, p, before);
    if (!start) return report(start.status(), unknown_topic_hint(start.status()));
    std::printf("topic %s partition %d: starts at offset %lld\n", name.c_str(), p,
                static_cast<long long>(*start));
  }
  return kExitOk;
}

int run_delete(const std::string& data_dir, const std::string& name) {
  auto admin = connect(data_dir);
  if (!admin) return report(admin.status());
  if (Status s = admin->delete_topic(name); !s) return report(s, unknown_topic_hint(s));
  std::printf("deleted topic %s\n", name.c_str());
  return kExitOk;
}

}  // namespace

void add_topic_command(CLI::App& app, int& exit_code) {
  CLI::App* topic = app.add_subcommand(
      "topic", "Create, list, describe, alter and delete topics, and delete records");
  topic->require_subcommand(1);

  {
    auto t = std::make_shared<TopicSettings>();
    CLI::App* cmd = topic->add_subcommand("create", "Create a topic");
    cmd->add_option("topic", t->name, "Topic name (letters, digits, '.', '_', '-')")->required();
    t->add_to(cmd);
    add_data_dir_option(cmd, t->data_dir);
    cmd->callback([t, &exit_code] { exit_code = run_create(*t); });
  }
  {
    auto t = std::make_shared<TopicSettings>();
    CLI::App* cmd = topic->add_subcommand(
        "alter", "Change a topic's settings: only those given change (partitions only grow)");
    cmd->add_option("topic", t->name, "Topic name")->required();
    t->add_to(cmd);
    add_data_dir_option(cmd, t->data_dir);
    cmd->callback([t, &exit_code] { exit_code = run_alter(*t); });
  }
  add_list_subcommand(topic, "topic", run_list, exit_code);
  add_describe_subcommand(
      topic, "topic",
      "Show topics' settings and, per partition, start and end offsets, bytes and segments",
      run_describe, exit_code);
  {
    struct Args {
      std::string data_dir;
      std::string name;
    };
    auto a = std::make_shared<Args>();
    CLI::App* cmd = topic->add_subcommand("delete", "Delete a topic and all its records");
    cmd->add_option("topic", a->name, "Topic name")->required();
    add_data_dir_option(cmd, a->data_dir);
    cmd->callback([a, &exit_code] { exit_code = run_delete(a->data_dir, a->name); });
  }
  {
    struct Args {
      std::string data_dir;
      std::string name;
      std::optional<std::int32_t> partition;
      std::int64_t before = 0;
    };
    auto a = std::make_shared<Args>();
    CLI::App* cmd = topic->add_subcommand(
        "delete-records",
        "Delete a partition's records before an offset, as Kafka's kafka-delete-records.sh: "
        "they are no longer served, and retention drops the segments wholly below it");
    cmd->add_option("topic", a->name, "Topic name")->required();
    cmd->add_option("-p,--partition", a->partition, "Partition (default: every partition)")
        ->check(CLI::NonNegativeNumber);
    cmd->add_option("--before", a->before, "Offset the partition is to start at; -1: its end")
        ->required()
        ->check(CLI::Range(std::int64_t{-1}, std::numeric_limits<std::int64_t>::max()));
    add_data_dir_option(cmd, a->data_dir);
    cmd->callback([a, &exit_code] {
      exit_code = run_delete_records(a->data_dir, a->name, a->partition, a->before);
    });
  }
}

}  // namespace sluice::tools
