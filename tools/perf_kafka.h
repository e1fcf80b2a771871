// `sluice perf --kafka HOST:PORT`: the perf run of tools/perf_command.cc against a Kafka
// endpoint through librdkafka. What perf_command.cc calls; the run itself is in
// tools/perf_kafka.cc (see its header), its workers in perf_kafka_producer.cc and
// perf_kafka_consumer.cc, what they share in perf_kafka_shared.h.
#pragma once

#include <CLI/CLI.hpp>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace sluice::tools {

// The Kafka options of `sluice perf`, added by add_perf_kafka_options (hook in perf_command.cc).
struct KafkaPerfOptions {
  std::string bootstrap;  // --kafka; empty: local perf
  std::string topic;      // empty: sluice-perf-PID-MS, created and deleted
  int partitions = 1;     // --partitions (an option of perf_command.cc), for a new topic
  std::string acks = "1";
  std::string compression = "none";
  double linger_ms = 5;
  int batch_bytes = 1'000'000;
  bool sequential = false;
  int fetch_passes = 1;  // --sequential: consumers read the produced range this many times
  int server_pid = 0;
  std::vector<std::string> config;  // -X name=value, both producer and consumer handles
};

// Adds --kafka and the options that go with it to `perf`.
std::shared_ptr<KafkaPerfOptions> add_perf_kafka_options(CLI::App* perf);
// Whether --kafka was given.
bool perf_kafka_selected(const KafkaPerfOptions& k);
// Runs against the endpoint; the exit status (0, 1 on errors, 2 on bad settings, 130 when
// interrupted).
int run_perf_kafka(const KafkaPerfOptions& k, int partitions, std::uint32_t size,
                   std::int64_t count, double duration_s, double rate, int producers, int consumers,
                   bool json, bool no_progress);

}  // namespace sluice::tools
