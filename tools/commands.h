// The `sluice` subcommands. Each adds itself to the CLI11 app; when it is chosen, its callback
// runs the command and stores the process exit code in `exit_code`.
#pragma once

#include <CLI/CLI.hpp>

namespace sluice::tools {

// `sluice perf`: multi-process (or multi-thread) produce/consume run; tools/perf_command.cc.
void add_perf_command(CLI::App& app, int& exit_code);

// The client subcommands (tools/<name>_command.cc; helpers in tools/cli_common.h).
// `sluice topic create|list|describe|alter|delete`, through the broker.
void add_topic_command(CLI::App& app, int& exit_code);
// `sluice produce TOPIC`: records from stdin (a line each) or a file.
void add_produce_command(CLI::App& app, int& exit_code);
// `sluice consume TOPIC`: prints records (kcat -C habits), alone or in a group.
void add_consume_command(CLI::App& app, int& exit_code);
// `sluice group list|describe|reset-offsets|delete`, through the broker.
void add_group_command(CLI::App& app, int& exit_code);
// `sluice dump SEGMENT`: every frame of one segment file, read-only.
void add_dump_command(CLI::App& app, int& exit_code);
// `sluice verify [DIR]`: CRC and structure check of a data directory, read-only.
void add_verify_command(CLI::App& app, int& exit_code);
// `sluice status`: the broker's pid, uptime, topics, partitions, bytes, records/s.
void add_status_command(CLI::App& app, int& exit_code);

}  // namespace sluice::tools
