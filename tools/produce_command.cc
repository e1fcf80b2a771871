// `sluice produce TOPIC`: records from stdin, one a line (kcat -P), or one record holding a
// whole file (--file) or all of stdin (-b). Appends directly to the partition logs
// (sluice::Producer): no broker needed.
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <iostream>
#include <iterator>
#include <memory>
#include <optional>
#include <sstream>
#include <string>
#include <vector>

#include "sluice/producer.h"
#include "tools/cli_common.h"
#include "tools/commands.h"

namespace sluice::tools {
namespace {

struct ProduceArgs {
  std::string data_dir;
  std::string topic;
  std::string key_delimiter;
  std::optional<std::string> key;
  std::vector<std::string> headers;  // name=value
  std::int32_t partition = -1;
  std::string file;
  bool binary = false;
  bool verbose = false;
};

std::string hint_for(const Status& s, const std::string& topic) {
  if (s.code() == ErrorCode::kUnknownTopic)
    return "create it with `sluice topic create " + topic + "`";
  if (s.code() == ErrorCode::kPermissionDenied)
    return "run as a user of the group that owns the topic's files (sluiced --group)";
  return {};
}

int run_produce(const ProduceArgs& a) {
  if (!a.key_delimiter.empty() && a.key)
    return usage_error("produce: --key and --key-delimiter exclude each other");
  if (!a.file.empty() && a.binary)
    return usage_error("produce: --file reads the value from a file, -b from stdin: give one");
  if ((!a.file.empty() || a.binary) && !a.key_delimiter.empty())
    return usage_error("produce: --key-delimiter splits lines; with --file or -b use --key");
  std::vector<std::pair<std::string, std::string>> header_storage;
  for (const auto& h : a.headers) {
    auto eq = h.find('=');
    if (eq == std::string::npos || eq == 0)
      return usage_error("produce: --header takes name=value, not '" + h + "'");
    header_storage.emplace_back(h.substr(0, eq), h.substr(eq + 1));
  }
  std::vector<Header> headers;
  for (const auto& [n, v] : header_storage) headers.push_back(Header{n, std::string_view(v)});

  auto producer = Producer::open({.data_dir = a.data_dir});
  if (!producer) return report(producer.status());
  // Fail early (before reading stdin) on an unknown topic, a bad partition, no permission.
  auto partitions = producer->partitions(a.topic);
  if (!partitions) return report(partitions.status(), hint_for(partitions.status(), a.topic));
  if (a.partition >= *partitions)
    return usage_error("produce: topic " + a.topic + " has " + std::to_string(*partitions) +
                       " partition(s): --partition must be below that");

  std::uint64_t sent = 0;
  auto send = [&](std::optional<std::string_view> key, std::string_view value) -> int {
    auto r = producer->send(a.topic, key, value, headers, a.partition);
    if (!r) {
      int rc = report(r.status(), hint_for(r.status(), a.topic));
      if (sent > 0) warn(std::to_string(sent) + " record(s) were produced before the error");
      return rc;
    }
    ++sent;
    if (a.verbose)
      std::fprintf(stderr, "%s partition %d offset %lld\n", a.topic.c_str(), r->partition,
                   static_cast<long long>(r->offset));
    return kExitOk;
  };
  std::optional<std::string_view> fixed_key;
  if (a.key) fixed_key = *a.key;

  if (!a.file.empty() || a.binary) {
    std::string value;
    if (a.binary) {
      std::ostringstream ss;
      ss << std::cin.rdbuf();
      value = std::move(ss).str();
    } else {
      std::ifstream in(a.file, std::ios::binary);
      if (!in) return report(errno_status("open " + a.file, errno));
      value.assign(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
      if (in.bad()) return report(errno_status("read " + a.file, errno));
    }
    return send(fixed_key, value);
  }

  std::ios::sync_with_stdio(false);
  std::string line;
  while (std::getline(std::cin, line)) {
    std::optional<std::string_view> key = fixed_key;
    std::string_view value = line;
    if (!a.key_delimiter.empty()) {
      auto at = line.find(a.key_delimiter);
      if (at != std::string::npos) {
        key = std::string_view(line).substr(0, at);
        value = std::string_view(line).substr(at + a.key_delimiter.size());
      }
    }
    if (int rc = send(key, value); rc != kExitOk) return rc;
  }
  if (std::cin.bad()) return report(errno_status("read stdin", errno));
  return kExitOk;
}

}  // namespace

void add_produce_command(CLI::App& app, int& exit_code) {
  auto a = std::make_shared<ProduceArgs>();
  CLI::App* cmd = app.add_subcommand(
      "produce",
      "Produce records to a topic: one per line of stdin (like kcat -P), or one record\n"
      "holding a whole file (--file) or all of stdin (-b). Needs no broker.");
  cmd->add_option("topic", a->topic, "Topic")->required();
  cmd->add_option("-K,--key-delimiter", a->key_delimiter,
                  "Split each line at the first DELIM into key and value (a line without it "
                  "has no key)");
  cmd->add_option("-k,--key", a->key, "Key of every record");
  cmd->add_option("-H,--header", a->headers, "Header name=value on every record (repeatable)");
  cmd->add_option("-p,--partition", a->partition,
                  "Partition (default: by key, Kafka's murmur2; keyless records stick to one "
                  "partition for a while)")
      ->check(CLI::NonNegativeNumber);
  cmd->add_option("--file", a->file, "Produce the whole file as one record's value");
  cmd->add_flag("-b,--binary", a->binary, "Produce all of stdin as one record's value");
  cmd->add_flag("-v,--verbose", a->verbose, "Print each record's partition and offset on stderr");
  add_data_dir_option(cmd, a->data_dir);
  cmd->callback([a, &exit_code] { exit_code = run_produce(*a); });
}

}  // namespace sluice::tools
