#include "tools/cli_common.h"

#include <time.h>

#include <cctype>
#include <charconv>
#include <cstdio>
#include <memory>
#include <string>

#include "sluice/types.h"

namespace sluice::tools {

void add_data_dir_option(CLI::App* cmd, std::string& dir) {
  dir = default_data_dir();
  cmd->add_option("--data-dir", dir, "Data directory (env SLUICE_DATA_DIR)")->capture_default_str();
}

namespace {

std::string one_line(std::string_view text) {
  std::string s(text);
  for (char& c : s)
    if (c == '\n' || c == '\r') c = ' ';
  while (!s.empty() && s.back() == ' ') s.pop_back();
  return s;
}

}  // namespace

int report(const Status& status, std::string_view hint) {
  std::string line = "sluice: " + one_line(status.message());
  if (!hint.empty()) {
    line += ": " + std::string(hint);
  } else if (status.code() == ErrorCode::kPermissionDenied) {
    line += ": run as a user of the group that owns the data directory's files (sluiced --group)";
  }
  std::fprintf(stderr, "%s\n", line.c_str());
  return status.code() == ErrorCode::kInvalidArgument ? kExitUsage : kExitError;
}

int usage_error(std::string_view message) {
  std::fprintf(stderr, "sluice: %s\n", one_line(message).c_str());
  return kExitUsage;
}

void warn(std::string_view message) {
  std::fprintf(stderr, "sluice: warning: %s\n", one_line(message).c_str());
}

int parse_command_line(CLI::App& app, int argc, char** argv) {
  try {
    app.parse(argc, argv);
  } catch (const CLI::Success& e) {  // --help
    return app.exit(e);
  } catch (const CLI::ParseError& e) {
    // Name the (sub)command being parsed: "sluice topic create".
    std::string name = "sluice";
    CLI::App* cur = &app;
    while (!cur->get_subcommands().empty()) {
      cur = cur->get_subcommands().front();
      name += " " + cur->get_name();
    }
    std::string what = one_line(e.what());
    if (dynamic_cast<const CLI::RequiredError*>(&e) != nullptr &&
        what.find("subcommand") != std::string::npos) {
      // "sluice bogus" or "sluice topic": name the word that is not a subcommand, and the
      // subcommands there are.
      std::string choices;
      for (CLI::App* sub : cur->get_subcommands([](CLI::App*) { return true; }))
        choices += (choices.empty() ? "" : ", ") + sub->get_name();
      std::vector<std::string> rest = cur->remaining();
      what = rest.empty() ? "a subcommand is required: " + choices
                          : "unknown subcommand '" + rest.front() + "': choose " + choices;
    }
    std::fprintf(stderr, "%s: %s (see `%s --help`)\n", name.c_str(), what.c_str(), name.c_str());
    return kExitUsage;
  }
  return -1;
}

std::string escape_bytes(std::string_view bytes) {
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out;
  out.reserve(bytes.size());
  for (char ch : bytes) {
    auto c = static_cast<unsigned char>(ch);
    if (c == '\n') {
      out += "\\n";
    } else if (c == '\t') {
      out += "\\t";
    } else if (c == '\r') {
      out += "\\r";
    } else if (c == '\\') {
      out += "\\\\";
    } else if (c == '"') {
      out += "\\\"";
    } else if (c < 0x20 || c >= 0x7f) {
      out += "\\x";
      out += kHex[c >> 4];
      out += kHex[c & 0xf];
    } else {
      out += ch;
    }
  }
  return out;
}

std::string format_duration_ms(std::int64_t ms) {
  char buf[64];
  if (ms < 60'000) {
    std::snprintf(buf, sizeof buf, "%.1fs", static_cast<double>(ms) / 1000.0);
  } else if (ms < 3'600'000) {
    std::snprintf(buf, sizeof buf, "%lldm%02llds", static_cast<long long>(ms / 60'000),
                  static_cast<long long>(ms / 1000 % 60));
  } else {
    std::snprintf(buf, sizeof buf, "%lldh%02lldm%02llds", static_cast<long long>(ms / 3'600'000),
                  static_cast<long long>(ms / 60'000 % 60), static_cast<long long>(ms / 1000 % 60));
  }
  return buf;
}

std::string format_bytes(std::uint64_t bytes) {
  static constexpr const char* kUnits[] = {"B", "KiB", "MiB", "GiB", "TiB"};
  auto v = static_cast<double>(bytes);
  std::size_t u = 0;
  while (v >= 1024.0 && u + 1 < std::size(kUnits)) {
    v /= 1024.0;
    ++u;
  }
  char buf[64];
  if (u == 0) {
    std::snprintf(buf, sizeof buf, "%llu", static_cast<unsigned long long>(bytes));
  } else {
    std::snprintf(buf, sizeof buf, "%llu (%.1f %s)", static_cast<unsigned long long>(bytes), v,
                  kUnits[u]);
  }
  return buf;
}

std::string format_time_ms(std::int64_t ms_since_epoch) {
  time_t secs = static_cast<time_t>(ms_since_epoch / 1000);
  std::int64_t millis = ms_since_epoch % 1000;
  if (millis < 0) {
    millis += 1000;
    --secs;
  }
  tm t{};
  if (::gmtime_r(&secs, &t) == nullptr) return std::to_string(ms_since_epoch);
  char buf[64];
  std::size_t n = std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%S", &t);
  std::snprintf(buf + n, sizeof buf - n, ".%03lldZ", static_cast<long long>(millis));
  return buf;
}

bool parse_int64(std::string_view text, std::int64_t& out) {
  if (text.empty()) return false;
  const char* end = text.data() + text.size();
  auto [p, ec] = std::from_chars(text.data(), end, out);
  return ec == std::errc() && p == end;
}

void add_list_subcommand(CLI::App* parent, const std::string& noun,
                         std::function<int(const std::string&, bool)> run, int& exit_code) {
  struct Args {
    std::string data_dir;
    bool json = false;
  };
  auto a = std::make_shared<Args>();
  CLI::App* cmd = parent->add_subcommand("list", "List " + noun + "s, one a line");
  cmd->add_flag("--json", a->json, "Print a JSON array");
  add_data_dir_option(cmd, a->data_dir);
  cmd->callback([a, run = std::move(run), &exit_code] { exit_code = run(a->data_dir, a->json); });
}

void add_describe_subcommand(
    CLI::App* parent, const std::string& noun, const std::string& help,
    std::function<int(const std::string&, const std::vector<std::string>&, bool)> run,
    int& exit_code) {
  struct Args {
    std::string data_dir;
    std::vector<std::string> names;
    bool json = false;
  };
  auto a = std::make_shared<Args>();
  CLI::App* cmd = parent->add_subcommand("describe", help);
  std::string names_help = noun + " names (default: every " + noun + ")";
  names_help[0] = static_cast<char>(std::toupper(static_cast<unsigned char>(names_help[0])));
  cmd->add_option(noun + "s", a->names, names_help);
  cmd->add_flag("--json", a->json, "Print JSON (an object for one " + noun + ", else an array)");
  add_data_dir_option(cmd, a->data_dir);
  cmd->callback(
      [a, run = std::move(run), &exit_code] { exit_code = run(a->data_dir, a->names, a->json); });
}

}  // namespace sluice::tools
