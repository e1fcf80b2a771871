// `sluice status`: the broker of a data directory: pid, uptime, topics, partitions, bytes and
// the append rate.
#include <cstdio>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>

#include "sluice/admin.h"
#include "tools/cli_common.h"
#include "tools/commands.h"

namespace sluice::tools {
namespace {

int run_status(const std::string& data_dir, bool as_json) {
  auto admin = Admin::connect(data_dir);
  if (!admin) return report(admin.status());
  auto s = admin->status();
  if (!s) return report(s.status());
  if (as_json) {
    nlohmann::ordered_json j = {{"pid", s->pid},
                                {"data_dir", s->data_dir},
                                {"uptime_ms", s->uptime_ms},
                                {"topics", s->topics},
                                {"partitions", s->partitions},
                                {"bytes", s->bytes},
                                {"records_per_second", s->records_per_second}};
    std::printf("%s\n", j.dump().c_str());
    return kExitOk;
  }
  std::printf("broker      pid %d, up %s\n", s->pid, format_duration_ms(s->uptime_ms).c_str());
  std::printf("data dir    %s\n", s->data_dir.c_str());
  std::printf("topics      %d\n", s->topics);
  std::printf("partitions  %d\n", s->partitions);
  std::printf("bytes       %s\n", format_bytes(s->bytes).c_str());
  std::printf("records/s   %.1f\n", s->records_per_second);
  return kExitOk;
}

}  // namespace

void add_status_command(CLI::App& app, int& exit_code) {
  struct Args {
    std::string data_dir;
    bool json = false;
  };
  auto a = std::make_shared<Args>();
  CLI::App* cmd = app.add_subcommand(
      "status", "The broker's pid and uptime, topics, partitions, bytes and records/s appended");
  cmd->add_flag("--json", a->json, "Print a JSON object");
  add_data_dir_option(cmd, a->data_dir);
  cmd->callback([a, &exit_code] { exit_code = run_status(a->data_dir, a->json); });
}

}  // namespace sluice::tools
