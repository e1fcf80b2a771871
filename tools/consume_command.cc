// `sluice consume TOPIC`: prints records (kcat -C habits). Reads the partition logs directly
// (sluice::Consumer); with --group the broker assigns partitions and keeps the committed
// offsets.
//
// Stops after --count records, at the end of every assigned partition (-e), or on SIGINT /
// SIGTERM; on every one of these exits a group consumer commits the offsets of what it has
// printed and leaves the group. The signal handlers only set a flag: the loop polls with a
// short timeout and notices it.
#include <signal.h>

#include <atomic>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <limits>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "sluice/consumer.h"
#include "sluice/producer.h"
#include "tools/cli_common.h"
#include "tools/commands.h"

namespace sluice::tools {
namespace {

constexpr std::int64_t kPollTimeoutMs = 100;  // how soon a signal is noticed
constexpr std::size_t kPollMaxRecords = 1024;

std::atomic<int> g_stop_signal{0};
static_assert(std::atomic<int>::is_always_lock_free);

void on_consume_stop_signal(int sig) {
  g_stop_signal.store(sig, std::memory_order_relaxed);
}

void install_stop_handlers() {
  struct sigaction sa {};
  sa.sa_handler = on_consume_stop_signal;
  sigemptyset(&sa.sa_mask);
  sa.sa_flags = 0;  // no SA_RESTART: a blocking call returns EINTR
  ::sigaction(SIGINT, &sa, nullptr);
  ::sigaction(SIGTERM, &sa, nullptr);
  ::signal(SIGPIPE, SIG_IGN);  // a closed stdout is a write error we handle
}

struct ConsumeArgs {
  std::string data_dir;
  std::string topic;
  std::string group;
  std::vector<std::int32_t> partitions;
  std::string from = "beginning";
  std::int64_t count = 0;
  bool exit_at_end = false;
  std::string format = "%s\\n";
  bool json = false;
  bool verify_crc = false;
};

// ---- --format ---------------------------------------------------------------------------------

struct Piece {
  enum Kind : char {
    kLiteral = 0,
    kTopic = 't',
    kPartition = 'p',
    kOffset = 'o',
    kKey = 'k',
    kValue = 's',
    kTimestamp = 'T',
    kHeaders = 'h',
    kKeyBytes = 'K',
    kValueBytes = 'S',
  } kind = kLiteral;
  std::string literal;
};

// kcat's format: %t %p %o %k %s %T %h %K %S %%, escapes \n \r \t \\ .
Result<std::vector<Piece>> parse_format(const std::string& f) {
  std::vector<Piece> pieces;
  auto literal = [&](char c) {
    if (pieces.empty() || pieces.back().kind != Piece::kLiteral) pieces.push_back({});
    pieces.back().literal += c;
  };
  for (std::size_t i = 0; i < f.size(); ++i) {
    char c = f[i];
    if (c == '\\' && i + 1 < f.size()) {
      char e = f[++i];
      switch (e) {
        case 'n':
          literal('\n');
          break;
        case 't':
          literal('\t');
          break;
        case 'r':
          literal('\r');
          break;
        case '\\':
          literal('\\');
          break;
        default:
          literal('\\');
          literal(e);
      }
    } else if (c == '%') {
      if (i + 1 >= f.size())
        return Status(ErrorCode::kInvalidArgument, "--format ends with a lone '%' (use %% for %)");
      char d = f[++i];
      if (d == '%') {
        literal('%');
        continue;
      }
      if (std::strchr("tpoksThKS", d) == nullptr)
        return Status(ErrorCode::kInvalidArgument,
                      std::string("--format: unknown directive %") + d +
                          " (use %t %p %o %k %s %T %h %K %S, or %% for %)");
      pieces.push_back({static_cast<Piece::Kind>(d), {}});
    } else {
      literal(c);
    }
  }
  return pieces;
}

std::int64_t timestamp_ms(const Record& r) {
  return r.timestamp_ns / 1'000'000;
}

void append_headers(std::string& out, const Record& r) {
  bool first = true;
  for (const Header& h : r.headers()) {
    if (!first) out += ',';
    first = false;
    out += h.name;
    if (h.value) {
      out += '=';
      out += *h.value;
    }
  }
}

void format_record(std::string& out, const std::vector<Piece>& pieces, const Record& r) {
  for (const Piece& p : pieces) {
    switch (p.kind) {
      case Piece::kLiteral:
        out += p.literal;
        break;
      case Piece::kTopic:
        out += r.topic;
        break;
      case Piece::kPartition:
        out += std::to_string(r.partition);
        break;
      case Piece::kOffset:
        out += std::to_string(r.offset);
        break;
      case Piece::kKey:
        if (r.key) out += *r.key;
        break;
      case Piece::kValue:
        if (r.value) out += *r.value;
        break;
      case Piece::kTimestamp:
        out += std::to_string(timestamp_ms(r));
        break;
      case Piece::kHeaders:
        append_headers(out, r);
        break;
      case Piece::kKeyBytes:
        out += std::to_string(r.key ? static_cast<std::int64_t>(r.key->size()) : -1);
        break;
      case Piece::kValueBytes:
        out += std::to_string(r.value ? static_cast<std::int64_t>(r.value->size()) : -1);
        break;
    }
  }
}

void json_record(std::string& out, const Record& r) {
  using ojson = nlohmann::ordered_json;
  auto str = [](std::optional<std::string_view> v) -> ojson {
    return v ? ojson(std::string(*v)) : ojson(nullptr);
  };
  ojson headers = ojson::array();
  for (const Header& h : r.headers())
    headers.push_back({{"name", std::string(h.name)}, {"value", str(h.value)}});
  ojson j = {{"topic", std::string(r.topic)}, {"partition", r.partition}, {"offset", r.offset},
             {"timestamp", timestamp_ms(r)},  {"key", str(r.key)},        {"value", str(r.value)},
             {"headers", std::move(headers)}};
  // Bytes that are not UTF-8 become U+FFFD: JSON strings are text (use --format for bytes).
  out += j.dump(-1, ' ', false, nlohmann::ordered_json::error_handler_t::replace);
  out += '\n';
}

// ---- --from -----------------------------------------------------------------------------------

struct StartAt {
  enum Kind { kBeginning, kEnd, kOffset, kFromEnd, kTimestamp } kind = kBeginning;
  std::int64_t value = 0;
};

Result<StartAt> parse_from(const std::string& s) {
  StartAt at;
  std::int64_t v = 0;
  if (s == "beginning") {
    at.kind = StartAt::kBeginning;
  } else if (s == "end") {
    at.kind = StartAt::kEnd;
  } else if ((s.rfind('@', 0) == 0 && parse_int64(s.substr(1), v)) ||
             (s.rfind("s@", 0) == 0 && parse_int64(s.substr(2), v))) {
    if (v < 0)
      return Status(ErrorCode::kInvalidArgument,
                    "--from @TIMESTAMP takes milliseconds since the epoch, not " + s);
    at.kind = StartAt::kTimestamp;
    at.value = v;
  } else if (parse_int64(s, v)) {
    at.kind = v < 0 ? StartAt::kFromEnd : StartAt::kOffset;
    at.value = v < 0 ? -v : v;
  } else {
    return Status(ErrorCode::kInvalidArgument,
                  "--from takes beginning, end, an offset, -N (N before the end) or "
                  "@TIMESTAMP (ms since the epoch), not '" +
                      s + "'");
  }
  return at;
}

// Positions an assigned partition per --from; offsets outside the partition are clamped.
Status apply_start(Consumer& c, const TopicPartition& tp, const StartAt& at) {
  switch (at.kind) {
    case StartAt::kBeginning:
      return c.seek_to_beginning({tp});
    case StartAt::kEnd:
      return c.seek_to_end({tp});
    case StartAt::kTimestamp: {
      // Nanoseconds; times past 2262 are "after every record".
      constexpr std::int64_t kMaxMs = std::numeric_limits<std::int64_t>::max() / 1'000'000;
      return c.seek_to_timestamp(
          tp, at.value > kMaxMs ? std::numeric_limits<std::int64_t>::max() : at.value * 1'000'000);
    }
    case StartAt::kOffset:
    case StartAt::kFromEnd: {
      auto end = c.end_offset(tp);
      if (!end) return end.status();
      std::int64_t target = at.kind == StartAt::kOffset ? at.value : *end - at.value;
      if (target >= *end) return c.seek_to_end({tp});
      if (Status s = c.seek(tp, std::max<std::int64_t>(target, 0)); !s) {
        if (s.code() != ErrorCode::kOutOfRange) return s;
        return c.seek_to_beginning({tp});  // before the earliest retained record
      }
      return Status::ok();
    }
  }
  return Status::ok();
}

std::string hint_for(const Status& s, const std::string& topic) {
  if (s.code() == ErrorCode::kUnknownTopic)
    return "create it with `sluice topic create " + topic + "`";
  if (s.code() == ErrorCode::kPermissionDenied)
    return "run as a user of the group that owns the topic's files (sluiced --group)";
  return {};
}

// ---- the command ------------------------------------------------------------------------------

int run_consume(const ConsumeArgs& a) {
  std::vector<Piece> pieces;
  if (!a.json) {
    auto p = parse_format(a.format);
    if (!p) return usage_error(p.status().message());
    pieces = std::move(p).value();
  }
  auto from = parse_from(a.from);
  if (!from) return usage_error(from.status().message());
  const bool grouped = !a.group.empty();
  const bool subscribed = grouped && a.partitions.empty();
  if (subscribed && from->kind != StartAt::kBeginning && from->kind != StartAt::kEnd)
    return usage_error(
        "with --group, partitions start at the group's committed offsets; --from takes only "
        "beginning or end there (for partitions without one): move a group with `sluice group "
        "reset-offsets`, or name partitions with --partition");

  install_stop_handlers();
  ConsumerConfig cc;
  cc.data_dir = a.data_dir;
  cc.group_id = a.group;
  cc.client_id = "sluice-consume";
  cc.auto_offset_reset =
      from->kind == StartAt::kEnd ? AutoOffsetReset::kLatest : AutoOffsetReset::kEarliest;
  // With a group, positions (= what was printed) are committed now and then and before a
  // rebalance gives partitions away, so the next owner continues after them.
  cc.enable_auto_commit = subscribed;
  cc.auto_commit_interval_ms = 1000;
  cc.verify_crc = a.verify_crc;
  auto consumer = Consumer::open(cc);
  if (!consumer) return report(consumer.status());

  if (subscribed) {
    if (Status s = consumer->subscribe({a.topic}); !s) return report(s, hint_for(s, a.topic));
  } else {
    std::vector<TopicPartition> tps;
    if (a.partitions.empty()) {
      // Every partition of the topic.
      auto producer = sluice::Producer::open({.data_dir = a.data_dir});
      if (!producer) return report(producer.status());
      auto n = producer->partitions(a.topic);
      if (!n) return report(n.status(), hint_for(n.status(), a.topic));
      for (std::int32_t p = 0; p < *n; ++p) tps.push_back({a.topic, p});
    } else {
      for (std::int32_t p : a.partitions) tps.push_back({a.topic, p});
    }
    if (Status s = consumer->assign(tps); !s) return report(s, hint_for(s, a.topic));
    // Without a group, or for a group's committed offsets overridden by an explicit --from.
    if (!grouped || from->kind == StartAt::kOffset || from->kind == StartAt::kFromEnd ||
        from->kind == StartAt::kTimestamp) {
      for (const auto& tp : tps)
        if (Status s = apply_start(*consumer, tp, *from); !s) return report(s);
    }
  }

  int rc = kExitOk;
  std::map<TopicPartition, std::int64_t> printed;      // next offset after what was printed
  std::map<TopicPartition, std::int64_t> pending;      // this poll's: next offset
  std::map<TopicPartition, std::int64_t> batch_first;  // this poll's: first offset
  std::int64_t total = 0;
  std::string out;
  for (;;) {
    if (g_stop_signal.load(std::memory_order_relaxed) != 0) break;
    std::size_t max = kPollMaxRecords;
    if (a.count > 0) max = static_cast<std::size_t>(std::min<std::int64_t>(a.count - total, 1024));
    out.clear();
    pending.clear();
    batch_first.clear();
    auto n = consumer->poll(
        [&](const Record& r) {
          if (a.json) {
            json_record(out, r);
          } else {
            format_record(out, pieces, r);
          }
          TopicPartition tp{std::string(r.topic), r.partition};
          batch_first.try_emplace(tp, r.offset);
          pending[tp] = r.offset + 1;
        },
        max, kPollTimeoutMs);
    if (!n) {
      rc = report(n.status());
      break;
    }
    if (!out.empty()) {
      if (std::fwrite(out.data(), 1, out.size(), stdout) != out.size() ||
          std::fflush(stdout) != 0) {
        if (errno != EPIPE) rc = report(errno_status("write stdout", errno));
        // Not printed (or not all): back to the batch's start, so that neither our commit nor
        // the group's automatic one counts it as consumed.
        for (const auto& [tp, first] : batch_first) (void)consumer->seek(tp, first);
        break;  // EPIPE: the reader of stdout went away; stop quietly
      }
      for (const auto& [tp, next] : pending) printed[tp] = next;
    }
    total += static_cast<std::int64_t>(*n);
    if (a.count > 0 && total >= a.count) break;
    if (a.exit_at_end && consumer->at_end()) break;
  }

  if (grouped) {
    // Commit what was printed, for the partitions still assigned to us.
    std::vector<std::pair<TopicPartition, std::int64_t>> offsets;
    for (const auto& tp : consumer->assignment())
      if (auto it = printed.find(tp); it != printed.end()) offsets.emplace_back(tp, it->second);
    if (!offsets.empty()) {
      if (Status s = consumer->commit_sync(offsets); !s) {
        report(s.with_context("committing the offsets of group " + a.group));
        if (rc == kExitOk) rc = kExitError;
      }
    }
  }
  if (Status s = consumer->close(); !s) {
    report(s.with_context("leaving group " + a.group));
    if (rc == kExitOk) rc = kExitError;
  }
  return rc;
}

}  // namespace

void add_consume_command(CLI::App& app, int& exit_code) {
  auto a = std::make_shared<ConsumeArgs>();
  CLI::App* cmd = app.add_subcommand(
      "consume",
      "Print records of a topic (like kcat -C). Without --group and --partition: every\n"
      "partition, no broker needed. With --group: the broker assigns partitions and keeps\n"
      "the group's offsets; on exit (--count, -e, SIGINT, SIGTERM) the offsets of what was\n"
      "printed are committed and the group is left cleanly. Follows new records until a\n"
      "signal unless --count or -e.");
  cmd->add_option("topic", a->topic, "Topic")->required();
  cmd->add_option("-G,--group", a->group, "Consume as a member of this group");
  cmd->add_option("-p,--partition", a->partitions,
                  "Read only this partition (repeatable); with --group: assigned by hand, "
                  "committing under the group")
      ->check(CLI::NonNegativeNumber);
  cmd->add_option("-o,--from", a->from,
                  "Where to start: beginning, end, OFFSET, -N (N records before the end), "
                  "@TIMESTAMP (ms since the epoch, the first record at or after it). With "
                  "--group: beginning or end, for partitions without a committed offset")
      ->capture_default_str();
  cmd->add_option("-c,--count", a->count, "Exit after printing N records")
      ->check(CLI::PositiveNumber);
  cmd->add_flag("-e,--exit-at-end", a->exit_at_end,
                "Exit once every assigned partition has been read to its end (kcat -e)");
  auto* format =
      cmd->add_option(
             "-f,--format", a->format,
             "Output format: %t topic, %p partition, %o offset, %k key, %s value, %T timestamp "
             "(ms), "
             "%h headers (n=v,...), %K/%S key/value bytes (-1: null), %% a %; escapes \\n \\t \\r "
             "\\\\")
          ->capture_default_str();
  cmd->add_flag("-J,--json", a->json,
                "One JSON object a line: topic, partition, offset, timestamp (ms), key, value, "
                "headers ([{name, value}]); null key/value as null")
      ->excludes(format);
  cmd->add_flag("--verify-crc", a->verify_crc, "Check each record's CRC-32C as it is read");
  add_data_dir_option(cmd, a->data_dir);
  cmd->callback([a, &exit_code] { exit_code = run_consume(*a); });
}

}  // namespace sluice::tools
