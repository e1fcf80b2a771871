// sluice: the command-line tool. One file per subcommand (see commands.h).
#include <CLI/CLI.hpp>

#include "tools/cli_common.h"
#include "tools/commands.h"

int main(int argc, char** argv) {
  CLI::App app{"sluice: a shared-memory message bus with Kafka semantics"};
  app.require_subcommand(1);
  int exit_code = 0;
  sluice::tools::add_topic_command(app, exit_code);
  sluice::tools::add_produce_command(app, exit_code);
  sluice::tools::add_consume_command(app, exit_code);
  sluice::tools::add_group_command(app, exit_code);
  sluice::tools::add_dump_command(app, exit_code);
  sluice::tools::add_verify_command(app, exit_code);
  sluice::tools::add_status_command(app, exit_code);
  sluice::tools::add_perf_command(app, exit_code);
  // Parse errors: one line and exit code 2 (tools/cli_common.h).
  if (int rc = sluice::tools::parse_command_line(app, argc, argv); rc >= 0) return rc;
  return exit_code;
}
