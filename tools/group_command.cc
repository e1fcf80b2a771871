// `sluice group list|describe|reset-offsets|delete`: consumer groups, through the broker
// (sluice::Admin).
#include <time.h>

#include <cstdio>
#include <limits>
#include <map>
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

using ojson = nlohmann::ordered_json;

std::string group_hint(const Status& s) {
  if (s.code() == ErrorCode::kNotFound) return "see `sluice group list`";
  if (s.code() == ErrorCode::kUnknownTopic) return "see `sluice topic list`";
  return {};
}

std::string tp_name(const TopicPartition& tp) {
  return tp.topic + "/" + std::to_string(tp.partition);
}

int run_group_list(const std::string& data_dir, bool as_json) {
  auto admin = Admin::connect(data_dir);
  if (!admin) return report(admin.status());
  auto groups = admin->list_groups();
  if (!groups) return report(groups.status());
  if (as_json) {
    std::printf("%s\n", ojson(*groups).dump().c_str());
  } else {
    for (const auto& g : *groups) std::printf("%s\n", g.c_str());
  }
  return kExitOk;
}

void print_group(const GroupInfo& g) {
  std::map<TopicPartition, std::string> owner;
  for (const auto& m : g.members)
    for (const auto& tp : m.partitions) owner[tp] = m.member_id;
  std::printf("group %s: state %s, generation %d, protocol %s, %zu member%s\n", g.group.c_str(),
              g.state.c_str(), g.generation, g.protocol.empty() ? "-" : g.protocol.c_str(),
              g.members.size(), g.members.size() == 1 ? "" : "s");
  if (!g.members.empty()) {
    std::printf("\n%-40s %-16s %8s  %s\n", "MEMBER", "CLIENT", "PID", "ASSIGNMENT");
    for (const auto& m : g.members) {
      std::string parts;
      for (const auto& tp : m.partitions) parts += (parts.empty() ? "" : ",") + tp_name(tp);
      std::printf("%-40s %-16s %8d  %s\n", m.member_id.c_str(), m.client_id.c_str(), m.pid,
                  parts.empty() ? "-" : parts.c_str());
    }
  }
  std::printf("\n%-24s %9s %14s %14s %14s  %s\n", "TOPIC", "PARTITION", "COMMITTED", "END", "LAG",
              "MEMBER");
  for (const auto& o : g.offsets) {
    auto it = owner.find(o.partition);
    std::string committed = o.committed < 0 ? "-" : std::to_string(o.committed);
    std::printf("%-24s %9d %14s %14lld %14lld  %s\n", o.partition.topic.c_str(),
                o.partition.partition, committed.c_str(), static_cast<long long>(o.end_offset),
                static_cast<long long>(o.lag), it == owner.end() ? "-" : it->second.c_str());
  }
}

ojson group_json(const GroupInfo& g) {
  std::map<TopicPartition, std::string> owner;
  ojson members = ojson::array();
  for (const auto& m : g.members) {
    ojson parts = ojson::array();
    for (const auto& tp : m.partitions) {
      parts.push_back({{"topic", tp.topic}, {"partition", tp.partition}});
      owner[tp] = m.member_id;
    }
    members.push_back({{"member_id", m.member_id},
                       {"client_id", m.client_id},
                       {"pid", m.pid},
                       {"assignment", parts}});
  }
  ojson offsets = ojson::array();
  for (const auto& o : g.offsets) {
    auto it = owner.find(o.partition);
    offsets.push_back({{"topic", o.partition.topic},
                       {"partition", o.partition.partition},
                       {"committed", o.committed < 0 ? ojson(nullptr) : ojson(o.committed)},
                       {"end_offset", o.end_offset},
                       {"lag", o.lag},
                       {"member", it == owner.end() ? ojson(nullptr) : ojson(it->second)}});
  }
  return {{"group", g.group},       {"state", g.state},   {"generation", g.generation},
          {"protocol", g.protocol}, {"members", members}, {"offsets", offsets}};
}

int run_group_describe(const std::string& data_dir, const std::vector<std::string>& names,
                       bool as_json) {
  auto admin = Admin::connect(data_dir);
  if (!admin) return report(admin.status());
  std::vector<std::string> groups = names;
  if (groups.empty()) {
    auto all = admin->list_groups();
    if (!all) return report(all.status());
    groups = *all;
  }
  ojson out = ojson::array();
  for (std::size_t i = 0; i < groups.size(); ++i) {
    auto g = admin->describe_group(groups[i]);
    if (!g) return report(g.status(), group_hint(g.status()));
    if (as_json) {
      out.push_back(group_json(*g));
    } else {
      if (i > 0) std::printf("\n");
      print_group(*g);
    }
  }
  if (as_json) std::printf("%s\n", (names.size() == 1 ? out[0] : out).dump().c_str());
  return kExitOk;
}

// "2024-05-01T12:00:00", with optional ".sss" and a zone ("Z", "+02:00", "-0500"); without a
// zone it is local time (as Kafka's --to-datetime). Returns ms since the epoch.
std::optional<std::int64_t> parse_datetime(const std::string& s) {
  tm t{};
  const char* p = ::strptime(s.c_str(), "%Y-%m-%dT%H:%M:%S", &t);
  if (p == nullptr) p = ::strptime(s.c_str(), "%Y-%m-%d %H:%M:%S", &t);
  if (p == nullptr) return std::nullopt;
  std::int64_t millis = 0;
  if (*p == '.') {
    ++p;
    int digits = 0;
    std::int64_t frac = 0;
    while (*p >= '0' && *p <= '9') {
      if (digits < 3) {
        frac = frac * 10 + (*p - '0');
        ++digits;
      }
      ++p;
    }
    if (digits == 0) return std::nullopt;
    while (digits++ < 3) frac *= 10;
    millis = frac;
  }
  time_t secs = 0;
  if (*p == '\0') {
    t.tm_isdst = -1;
    secs = ::mktime(&t);
  } else if (*p == 'Z' && p[1] == '\0') {
    secs = ::timegm(&t);
  } else if (*p == '+' || *p == '-') {
    int sign = *p == '-' ? -1 : 1;
    int hh = 0, mm = 0;
    ++p;
    auto two = [&](int& v) {
      if (p[0] < '0' || p[0] > '9' || p[1] < '0' || p[1] > '9') return false;
      v = (p[0] - '0') * 10 + (p[1] - '0');
      p += 2;
      return true;
    };
    if (!two(hh)) return std::nullopt;
    if (*p == ':') ++p;
    if (*p != '\0' && !two(mm)) return std::nullopt;
    if (*p != '\0') return std::nullopt;
    secs = ::timegm(&t) - sign * (hh * 3600 + mm * 60);
  } else {
    return std::nullopt;
  }
  if (secs == static_cast<time_t>(-1)) return std::nullopt;
  return static_cast<std::int64_t>(secs) * 1000 + millis;
}

struct ResetArgs {
  std::string data_dir;
  std::string group;
  std::string topic;
  bool earliest = false;
  bool latest = false;
  std::optional<std::int64_t> offset;
  std::string datetime;
  std::optional<std::int64_t> timestamp_ms;
};

int run_group_reset(const ResetArgs& a) {
  int given = int{a.earliest} + int{a.latest} + int{a.offset.has_value()} +
              int{!a.datetime.empty()} + int{a.timestamp_ms.has_value()};
  if (given != 1)
    return usage_error(
        "group reset-offsets: give exactly one of --to-earliest, --to-latest, --to-offset N, "
        "--to-datetime YYYY-MM-DDTHH:MM:SS[.sss][Z|+hh:mm], --to-timestamp MS");
  OffsetReset to;
  if (a.earliest) {
    to.kind = OffsetReset::Kind::kEarliest;
  } else if (a.latest) {
    to.kind = OffsetReset::Kind::kLatest;
  } else if (a.offset) {
    to.kind = OffsetReset::Kind::kOffset;
    to.value = *a.offset;
  } else {
    std::int64_t ms = 0;
    if (a.timestamp_ms) {
      ms = *a.timestamp_ms;
    } else {
      auto parsed = parse_datetime(a.datetime);
      if (!parsed)
        return usage_error(
            "group reset-offsets: --to-datetime takes YYYY-MM-DDTHH:MM:SS with "
            "optional .sss and zone (Z, +hh:mm), not '" +
            a.datetime + "'");
      ms = *parsed;
    }
    to.kind = OffsetReset::Kind::kTimestamp;
    // The broker seeks by nanoseconds; times past 2262 are "after every record".
    to.value = ms > std::numeric_limits<std::int64_t>::max() / 1'000'000
                   ? std::numeric_limits<std::int64_t>::max()
                   : ms * 1'000'000;
  }
  auto admin = Admin::connect(a.data_dir);
  if (!admin) return report(admin.status());
  if (Status s = admin->reset_offsets(a.group, a.topic, to); !s) return report(s, group_hint(s));
  auto g = admin->describe_group(a.group);
  if (!g) return report(g.status());
  std::printf("reset the offsets of group %s%s:\n", a.group.c_str(),
              a.topic.empty() ? "" : (" on topic " + a.topic).c_str());
  std::printf("%-24s %9s %14s %14s %14s\n", "TOPIC", "PARTITION", "COMMITTED", "END", "LAG");
  for (const auto& o : g->offsets) {
    if (!a.topic.empty() && o.partition.topic != a.topic) continue;
    std::string committed = o.committed < 0 ? "-" : std::to_string(o.committed);
    std::printf("%-24s %9d %14s %14lld %14lld\n", o.partition.topic.c_str(), o.partition.partition,
                committed.c_str(), static_cast<long long>(o.end_offset),
                static_cast<long long>(o.lag));
  }
  return kExitOk;
}

int run_group_delete(const std::string& data_dir, const std::string& group) {
  auto admin = Admin::connect(data_dir);
  if (!admin) return report(admin.status());
  if (Status s = admin->delete_group(group); !s) return report(s, group_hint(s));
  std::printf("deleted group %s\n", group.c_str());
  return kExitOk;
}

}  // namespace

void add_group_command(CLI::App& app, int& exit_code) {
  CLI::App* group = app.add_subcommand("group", "List, describe, reset and delete consumer groups");
  group->require_subcommand(1);
  add_list_subcommand(group, "group", run_group_list, exit_code);
  add_describe_subcommand(
      group, "group",
      "Show a group's state, members and their assignment, and per partition the committed "
      "offset, end offset and lag",
      run_group_describe, exit_code);
  {
    auto a = std::make_shared<ResetArgs>();
    CLI::App* cmd = group->add_subcommand(
        "reset-offsets", "Move a group's committed offsets (the group must have no live members)");
    cmd->add_option("group", a->group, "Group")->required();
    cmd->add_option("--topic", a->topic,
                    "Reset every partition of this topic (default: every partition the group "
                    "has committed for)");
    cmd->add_flag("--to-earliest", a->earliest, "To the earliest retained record");
    cmd->add_flag("--to-latest", a->latest, "To the end (skip everything so far)");
    cmd->add_option("--to-offset", a->offset, "To this offset (clamped to each partition)")
        ->check(CLI::NonNegativeNumber);
    cmd->add_option("--to-datetime", a->datetime,
                    "To the first record at or after YYYY-MM-DDTHH:MM:SS[.sss][Z|+hh:mm] "
                    "(local time without a zone)");
    cmd->add_option("--to-timestamp", a->timestamp_ms,
                    "To the first record at or after this time, in ms since the epoch")
        ->check(CLI::NonNegativeNumber);
    add_data_dir_option(cmd, a->data_dir);
    cmd->callback([a, &exit_code] { exit_code = run_group_reset(*a); });
  }
  {
    struct Args {
      std::string data_dir;
      std::string group;
    };
    auto a = std::make_shared<Args>();
    CLI::App* cmd = group->add_subcommand(
        "delete", "Delete a group and its committed offsets (it must have no live members)");
    cmd->add_option("group", a->group, "Group")->required();
    add_data_dir_option(cmd, a->data_dir);
    cmd->callback([a, &exit_code] { exit_code = run_group_delete(a->data_dir, a->group); });
  }
}

}  // namespace sluice::tools
