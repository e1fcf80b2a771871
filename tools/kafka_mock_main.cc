// sluice-kafka-mock: runs librdkafka's mock Kafka cluster (rd_kafka_mock_cluster_new, a real
// Kafka-protocol server inside librdkafka) until SIGINT or SIGTERM. It is the reference peer of
// bench/kafka-compare and the stand-in endpoint that the Kafka client tests (tests/kafka/) are
// developed against before the gateway exists.
//
//   sluice-kafka-mock [--brokers N] [--topic NAME[:PARTITIONS]]...
//
// Prints the cluster's bootstrap servers ("127.0.0.1:PORT,...") as one line on stdout once the
// listeners are up, then nothing more there (librdkafka's own log goes to stderr). Topics are
// auto-created on first use (4 partitions, the mock's default) unless created with --topic.
//
// The listening ports cannot be chosen: librdkafka 2.0.2 binds every mock broker to
// 127.0.0.1 port 0 (an ephemeral port) and has no setting for it, so callers read the line.
//
// Thread-safety: the main thread only waits for a signal; librdkafka runs the cluster on its
// own threads, which inherit the blocked signal mask set before they start.
#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafka_mock.h>
#include <signal.h>

#include <CLI/CLI.hpp>
#include <cstdio>
#include <string>
#include <vector>

namespace {

struct MockArgs {
  int brokers = 1;
  std::vector<std::string> topics;  // NAME or NAME:PARTITIONS
};

int run(const MockArgs& a) {
  // Block the stop signals in every thread (librdkafka's threads inherit the mask), then wait
  // for one with sigwait below.
  sigset_t stop;
  sigemptyset(&stop);
  sigaddset(&stop, SIGINT);
  sigaddset(&stop, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &stop, nullptr);

  char err[512];
  rd_kafka_conf_t* conf = rd_kafka_conf_new();
  // The handle only hosts the cluster (book keeping); it never connects anywhere.
  if (rd_kafka_conf_set(conf, "log_level", "4", err, sizeof err) != RD_KAFKA_CONF_OK) {
    std::fprintf(stderr, "sluice-kafka-mock: %s\n", err);
    rd_kafka_conf_destroy(conf);
    return 1;
  }
  rd_kafka_t* rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, err, sizeof err);
  if (rk == nullptr) {
    std::fprintf(stderr, "sluice-kafka-mock: rd_kafka_new: %s\n", err);
    return 1;
  }
  rd_kafka_mock_cluster_t* cluster = rd_kafka_mock_cluster_new(rk, a.brokers);
  if (cluster == nullptr) {
    std::fprintf(stderr, "sluice-kafka-mock: rd_kafka_mock_cluster_new(%d brokers) failed\n",
                 a.brokers);
    rd_kafka_destroy(rk);
    return 1;
  }
  int rc = 0;
  for (const std::string& t : a.topics) {
    std::string name = t;
    int partitions = 1;
    if (auto colon = t.rfind(':'); colon != std::string::npos) {
      name = t.substr(0, colon);
      try {
        partitions = std::stoi(t.substr(colon + 1));
      } catch (const std::exception&) {
        partitions = 0;
      }
    }
    if (name.empty() || partitions < 1) {
      std::fprintf(stderr, "sluice-kafka-mock: bad --topic %s (NAME or NAME:PARTITIONS)\n",
                   t.c_str());
      rc = 2;
      break;
    }
    rd_kafka_resp_err_t e = rd_kafka_mock_topic_create(cluster, name.c_str(), partitions,
                                                       a.brokers < 3 ? a.brokers : 3);
    if (e != RD_KAFKA_RESP_ERR_NO_ERROR) {
      std::fprintf(stderr, "sluice-kafka-mock: create topic %s: %s\n", name.c_str(),
                   rd_kafka_err2str(e));
      rc = 1;
      break;
    }
  }
  if (rc == 0) {
    std::printf("%s\n", rd_kafka_mock_cluster_bootstraps(cluster));
    std::fflush(stdout);
    int sig = 0;
    while (sigwait(&stop, &sig) != 0) {
    }
    std::fprintf(stderr, "sluice-kafka-mock: signal %d, stopping\n", sig);
  }
  rd_kafka_mock_cluster_destroy(cluster);
  rd_kafka_destroy(rk);
  return rc;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{
      "sluice-kafka-mock: librdkafka's mock Kafka cluster on 127.0.0.1 (ephemeral ports; the\n"
      "bootstrap servers are printed on one line of stdout), until SIGINT or SIGTERM"};
  MockArgs a;
  app.add_option("--brokers", a.brokers, "Number of brokers")
      ->capture_default_str()
      ->check(CLI::Range(1, 64));
  app.add_option("--topic", a.topics,
                 "Create a topic up front: NAME or NAME:PARTITIONS (default 1); repeatable. "
                 "Others are auto-created with 4 partitions");
  CLI11_PARSE(app, argc, argv);
  return run(a);
}
