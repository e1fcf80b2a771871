// sluiced: the broker daemon of one data directory (core/include/sluice/broker.h).
//
//   sluiced [--data-dir DIR] [--daemon --pid-file FILE] [--group NAME] [--mode 0660] ...
//
// Foreground by default; SIGTERM or SIGINT shut it down cleanly. A second broker on the same
// data directory is refused with the pid of the first.
#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <cstdio>
#include <cstdlib>
#include <limits>
#include <string>
#include <thread>

#include "sluice/broker.h"

namespace {

int daemonize(const std::string& pid_file) {
  pid_t pid = ::fork();
  if (pid < 0) return -1;
  if (pid > 0) ::_exit(0);  // the parent returns to the shell
  ::setsid();
  pid = ::fork();
  if (pid < 0) return -1;
  if (pid > 0) ::_exit(0);
  int null = ::open("/dev/null", O_RDWR);
  if (null >= 0) {
    ::dup2(null, STDIN_FILENO);
    ::dup2(null, STDOUT_FILENO);
    ::dup2(null, STDERR_FILENO);
    if (null > STDERR_FILENO) ::close(null);
  }
  if (!pid_file.empty()) {
    FILE* f = std::fopen(pid_file.c_str(), "w");
    if (f == nullptr) return -1;
    std::fprintf(f, "%d\n", ::getpid());
    std::fclose(f);
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"sluiced: the Sluice broker (topics, retention, consumer groups, recovery)"};
  sluice::BrokerConfig config;
  bool daemon = false;
  std::string pid_file;
  std::string mode = "0660";
  app.add_option("--data-dir", config.data_dir, "data directory (env SLUICE_DATA_DIR)")
      ->capture_default_str();
  app.add_flag("--daemon", daemon, "run in the background");
  app.add_option("--pid-file", pid_file, "with --daemon: write the pid here");
  app.add_option("--group", config.file_group, "group owning every file the broker creates");
  app.add_option("--mode", mode, "mode of every file the broker creates")->capture_default_str();
  app.add_option("--session-timeout-ms", config.session_timeout_ms,
                 "expel group members silent this long")
      ->capture_default_str();
  app.add_option("--rebalance-timeout-ms", config.rebalance_timeout_ms,
                 "how long a rebalance waits for members to rejoin")
      ->capture_default_str();
  app.add_option("--abandon-timeout-ms", config.abandon_timeout_ms,
                 "pad a claim left uncommitted this long (its producer died)")
      ->capture_default_str();
  app.add_option("--retention-check-ms", config.retention_check_ms, "retention interval")
      ->capture_default_str();
  app.add_option("--orphan-sweep-ms", config.orphan_sweep_ms,
                 "how often to remove files that processes which died left half-made")
      ->capture_default_str()
      ->check(CLI::PositiveNumber);
  app.add_flag("--auto-create-topics", config.auto_create_topics,
               "create unknown topics on first use (Kafka gateway)");
  config.kafka_listen = "127.0.0.1:9092";
  app.add_option("--listen", config.kafka_listen,
                 "Kafka gateway address HOST:PORT (port 0: any free one; none: no gateway)")
      ->capture_default_str();
  app.add_option("--advertise", config.kafka_advertise,
                 "HOST:PORT Kafka clients are told to connect to (default: --listen)");
  app.add_option("--kafka-threads", config.kafka_threads,
                 "Kafka gateway connection threads (0: one per core, at most 8)")
      ->capture_default_str();
  app.add_option("--max-request-bytes", config.kafka_max_request_bytes,
                 "largest Kafka request accepted; larger ones close the connection")
      ->capture_default_str();
  app.add_option("--fetch-max-bytes", config.kafka_fetch_max_bytes,
                 "most record bytes in one Kafka Fetch response (Kafka's fetch.max.bytes)")
      ->check(CLI::Range(1024, std::numeric_limits<std::int32_t>::max()))
      ->capture_default_str();
  app.add_option("--max-connections-per-host", config.kafka_max_connections_per_host,
                 "Kafka connections accepted from one client host")
      ->capture_default_str();
  app.add_option("--idle-timeout-ms", config.kafka_idle_timeout_ms,
                 "close Kafka connections idle this long")
      ->capture_default_str();
  app.add_option("--partitions", config.default_topic.partitions,
                 "partitions of auto-created topics")
      ->capture_default_str();
  app.footer(
      "Environment: SLUICE_DATA_DIR (the default --data-dir); SLUICE_MIN_FREE_MEMORY="
      "BYTES[K|M|G], on tmpfs the memory a new segment file must leave available (default "
      "1/16 of the RAM or of the cgroup's limit, 64 MiB to 1 GiB; 0: no check).");
  CLI11_PARSE(app, argc, argv);

  char* end = nullptr;
  long m = std::strtol(mode.c_str(), &end, 8);
  if (end == mode.c_str() || *end != '\0' || m < 0 || m > 0777) {
    std::fprintf(stderr, "sluiced: --mode must be an octal file mode like 0660, not '%s'\n",
                 mode.c_str());
    return 2;
  }
  config.file_mode = static_cast<mode_t>(m);

  if (daemon && daemonize(pid_file) != 0) {
    std::perror("sluiced: daemonize");
    return 1;
  }

  // Signals are taken synchronously by a thread of ours, which stops the broker.
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGTERM);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGHUP);
  pthread_sigmask(SIG_BLOCK, &set, nullptr);
  ::signal(SIGPIPE, SIG_IGN);

  auto broker = sluice::Broker::start(config);
  if (!broker) {
    std::fprintf(stderr, "sluiced: %s\n", broker.status().message().c_str());
    return 1;
  }
  std::thread signals([&] {
    int sig = 0;
    sigwait(&set, &sig);
    (*broker)->stop();
  });
  (*broker)->wait();
  broker->reset();
  if (!pid_file.empty()) ::unlink(pid_file.c_str());
  // The signal thread may still wait if the broker stopped on its own; let the process end.
  signals.detach();
  return 0;
}
