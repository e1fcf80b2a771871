// Shared pieces of the `sluice` subcommands: the --data-dir option, one-line errors with the
// CLI's exit codes, command-line parsing that maps CLI11's errors to exit code 2, and small
// text helpers (escaping, durations, sizes).
//
// Exit codes of every subcommand: 0 ok, 1 runtime error (or damage found by verify/dump),
// 2 bad arguments.
//
// Thread-safety: plain functions; the error printers write to stderr.
#pragma once

#include <CLI/CLI.hpp>
#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include "sluice/status.h"

namespace sluice::tools {

inline constexpr int kExitOk = 0;
inline constexpr int kExitError = 1;
inline constexpr int kExitUsage = 2;

// Adds --data-dir DIR to a subcommand; `dir` starts as default_data_dir() (SLUICE_DATA_DIR,
// else /dev/shm/sluice).
void add_data_dir_option(CLI::App* cmd, std::string& dir);

// `<parent> list [--json] [--data-dir DIR]` for things called `noun`s ("topic", "group"):
// names one a line, or a JSON array. run(data_dir, json) returns the exit code.
void add_list_subcommand(CLI::App* parent, const std::string& noun,
                         std::function<int(const std::string&, bool)> run, int& exit_code);
// `<parent> describe [NAMES...] [--json] [--data-dir DIR]`: run(data_dir, names, json), where
// no names means every one.
void add_describe_subcommand(
    CLI::App* parent, const std::string& noun, const std::string& help,
    std::function<int(const std::string&, const std::vector<std::string>&, bool)> run,
    int& exit_code);

// Prints "sluice: <message>[: <hint>]" as one line on stderr. Returns the exit code for the
// status: 2 for kInvalidArgument (a bad argument the broker or the library caught), else 1.
int report(const Status& status, std::string_view hint = {});
// Prints "sluice: <message>" and returns 2.
int usage_error(std::string_view message);
// Prints "sluice: warning: <message>" (the command goes on).
void warn(std::string_view message);

// Parses the command line. Returns -1 when the chosen subcommand ran (its exit code is in the
// variable it was given), else the process exit code: 0 after --help, 2 after a parse error,
// which is printed as one line naming the subcommand and pointing at its --help.
int parse_command_line(CLI::App& app, int argc, char** argv);

// Text for a terminal, quotable: printable ASCII as is but \\ and \", the rest as \n, \t, \r,
// \xNN.
std::string escape_bytes(std::string_view bytes);

// "1h02m03s", "4m05s", "6.2s".
std::string format_duration_ms(std::int64_t ms);
// "805306368 (768.0 MiB)".
std::string format_bytes(std::uint64_t bytes);
// ISO 8601 UTC with milliseconds: "2024-05-01T12:00:00.123Z".
std::string format_time_ms(std::int64_t ms_since_epoch);

// Parses a decimal integer, optionally negative (all of `text`); false if it is not one.
bool parse_int64(std::string_view text, std::int64_t& out);

}  // namespace sluice::tools
