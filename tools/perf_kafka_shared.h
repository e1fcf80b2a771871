// What the parts of `sluice perf --kafka` share (tools/perf_kafka.cc runs them): the run's
// settings and state, the producer and consumer workers (perf_kafka_producer.cc,
// perf_kafka_consumer.cc), and the librdkafka and CPU-accounting helpers (perf_kafka_shared.cc).
//
// Thread-safety: each worker owns its state's plain fields until it sets `done`; the main
// thread reads them after joining. RunState's atomics are shared by all.
#pragma once

#include <librdkafka/rdkafka.h>

#include <atomic>
#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "tools/histogram.h"
#include "tools/perf_kafka.h"

namespace sluice::tools::perf_kafka {

constexpr int kMaxWorkers = 16;
constexpr int kConsumeBatch = 1024;
constexpr std::int64_t kStallTimeoutNs = 15'000'000'000;  // consumers: no progress for this long
constexpr int kFlushTimeoutMs = 60'000;
// Pacing (--rate). Records further apart than kSpinPacedBelowNs: the producer sleeps until
// kWakeEarlyNs before each send time and spins the rest (a wake-up is ~50 us late here), so
// each leaves on time at little CPU. Closer together: it sleeps until the next send time and
// then sends every record that is due (as Kafka's ProducerPerformance does): spinning
// between them would take a core from the client and the server it measures.
constexpr std::int64_t kSpinPacedBelowNs = 200'000;
constexpr std::int64_t kWakeEarlyNs = 100'000;

struct Settings {
  std::uint32_t size;
  std::int64_t count;
  double duration_s;
  double rate;
  int producers;
  int consumers;
  bool json;
  bool no_progress;
};

// Set by SIGINT/SIGTERM (the handler is perf_kafka.cc's).
extern std::atomic<int> g_stop;

struct alignas(64) ProducerState {
  std::atomic<std::int64_t> produced{0};   // produce() calls accepted
  std::atomic<std::int64_t> delivered{0};  // successful delivery reports
  std::atomic<std::int64_t> failed{0};     // failed delivery reports
  std::atomic<std::int64_t> last_dr_ns{0};
  std::atomic<int> done{0};
  std::int64_t queue_full_waits = 0;
  std::int64_t max_late_ns = 0;
  std::string error;           // the producer thread's; read after join
  std::string delivery_error;  // the delivery-report thread's; read after join
  LatencyHistogram ack;        // delivery-report latency, on the delivery-report thread
};

struct alignas(64) ConsumerState {
  std::atomic<std::int64_t> received{0};
  std::atomic<std::int64_t> last_ns{0};
  std::atomic<int> ready{0};
  std::atomic<int> done{0};
  std::string error;
  LatencyHistogram latency;
};

struct RunState {
  std::atomic<int> go{0};
  std::atomic<std::int64_t> start_ns{0};
  std::atomic<std::int64_t> target{-1};  // records each consumer must see; -1: not known yet
  std::atomic<int> stop{0};
  std::vector<std::unique_ptr<ProducerState>> producers;
  std::vector<std::unique_ptr<ConsumerState>> consumers;
  std::vector<std::int64_t> start_offsets;  // per partition: the high watermark before the run
};

inline bool stopping(const RunState& rs) {
  return rs.stop.load(std::memory_order_relaxed) != 0 ||
         g_stop.load(std::memory_order_relaxed) != 0;
}

// ---- CPU accounting

struct CpuSample {
  double self_s = 0;
  double server_s = -1;  // -1: no --server-pid, or unreadable
};

// This process's CPU time (all threads) and, with server_pid > 0, the server's.
CpuSample sample_cpu(int server_pid);

// ---- librdkafka helpers

struct RkDeleter {
  void operator()(rd_kafka_t* rk) const { rd_kafka_destroy(rk); }
};
using RkHandle = std::unique_ptr<rd_kafka_t, RkDeleter>;

// A librdkafka property: name, value.
using ConfEntry = std::pair<std::string, std::string>;
// A handle's configuration: the settings every handle gets, then `defaults` in order, then the
// user's -X name=value pairs, which win over both. nullptr with *error naming the property
// refused.
rd_kafka_conf_t* make_conf(const KafkaPerfOptions& k, const std::vector<ConfEntry>& defaults,
                           std::string* error);
// rd_kafka_new, which takes `conf` (destroyed here on failure).
RkHandle new_handle(rd_kafka_type_t type, rd_kafka_conf_t* conf, std::string* error);
// Number of partitions of `topic` (0: not there yet, -1: error), from a Metadata request. A
// request for one topic lets a broker with auto-creation create it.
int partition_count(rd_kafka_t* rk, const std::string& topic, std::string* error);
// Whether `topic` exists, from a Metadata request for all topics (which creates nothing).
bool topic_exists(rd_kafka_t* rk, const std::string& topic);
// CreateTopics; TOPIC_ALREADY_EXISTS is fine. False with *error on other errors (the caller
// then relies on auto-creation).
bool create_topic(rd_kafka_t* rk, const std::string& topic, int partitions, std::string* error);
// DeleteTopics, best effort (the mock has none).
void delete_topic(rd_kafka_t* rk, const std::string& topic);

// ---- the workers, each on a thread of its own

// Producer `id`: produces its share of the records (or until the run's end), open loop at its
// share of s.rate, then waits for every delivery report.
void run_producer(const Settings& s, const KafkaPerfOptions& k, const std::string& topic,
                  RunState& rs, int id);
// Consumer `id`: reads every partition from rs.start_offsets until it has rs.target records
// per pass, `passes` times; one-way latency from the values' first 8 bytes if record_latency.
void run_consumer(const KafkaPerfOptions& k, const std::string& topic, RunState& rs, int id,
                  bool record_latency, int passes);

}  // namespace sluice::tools::perf_kafka
