// `sluice perf --kafka HOST:PORT`: the perf run of tools/perf_command.cc against a Kafka
// endpoint (Sluice's gateway, the librdkafka mock cluster, a real Kafka), driven through
// librdkafka's C API. Same settings and report as the local tool: value size, --count or
// --duration, --rate (open loop; 0 = as fast as possible), records/s, MB/s and one-way latency
// percentiles in the same histogram (tools/histogram.h), --json.
//
// Shape: producers and consumers are threads of this process (each with an rd_kafka_t handle
// of its own; librdkafka adds its own threads). Every consumer reads every record: it assigns
// itself all partitions of the topic at the high watermarks read before the run (no group, no
// commits), so an existing topic works too. The topic is created with CreateTopics
// (--partitions) and deleted afterwards when the run made it; an endpoint without CreateTopics
// (the mock cluster) auto-creates it on the first Metadata request instead.
//
// Latency, one-way: each value's first 8 bytes carry the send time in CLOCK_REALTIME
// nanoseconds (the scheduled time with --rate, so a producer that falls behind shows as
// latency: no coordinated omission; the time of the produce() call otherwise), and the consumer
// takes its clock once per batch of up to 1024 delivered records, after handling them.
// Kafka's CreateTime is in milliseconds, too coarse. Values under 8 bytes carry no time.
//
// Produce (ack) latency: from each record's send time (the scheduled one with --rate, as for
// the one-way latency; the produce() call otherwise) to its delivery report (acks=1/all: the
// broker's response; acks=0: when the request was written), per record.
//
// Pacing (--rate) never spins a core away from what it measures: records 200 us or more
// apart are each sent on time (a sleep, then a short spin); closer ones go out in bursts of
// whatever is due after each sleep, their lateness counted in both latencies.
//
// --sequential produces everything first and then consumes it from the start offsets: separate
// produce and fetch throughput (what bench/kafka-compare measures); no one-way latency then.
// Its consumers long-poll for 1 ms (fetch.wait.max.ms), not 100: every record is there before
// they start, so a fetch waits only at the end of a pass, when every partition is read, and a
// 100 ms wait there was most of the fetch phase (two servers measured: 100 B fetch rate 1.6 M/s
// with 100 ms, 3.1-3.7 M/s with 1 ms). -X fetch.wait.max.ms=N overrides it.
//
// CPU per MB: getrusage(RUSAGE_SELF) of this process (all its threads, librdkafka's included)
// and, with --server-pid, the CPU-time clock of the endpoint's process, over the
// run (per phase with --sequential), per MB of values (1 MB = 1e6 B).
//
// Thread-safety: each producer and consumer thread owns its rd_kafka_t handle and histograms;
// they share only atomics in RunState. Delivery reports run on one thread per producer (inside
// rd_kafka_poll / rd_kafka_flush): the producer's own at full speed, a report thread of its
// own with --rate. The main thread merges the histograms after joining.
#include <fmt/format.h>
#include <librdkafka/rdkafka.h>
#include <signal.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>
#include <x86intrin.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <limits>
#include <memory>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "shm/clock.h"
#include "tools/histogram.h"
#include "tools/perf_format.h"

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

namespace {

using sluice::shm::wall_clock_ns;

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

std::atomic<int> g_stop{0};
extern "C" void on_kafka_perf_signal(int) {
  g_stop.store(1, std::memory_order_relaxed);
}

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

bool stopping(const RunState& rs) {
  return rs.stop.load(std::memory_order_relaxed) != 0 ||
         g_stop.load(std::memory_order_relaxed) != 0;
}

// ---- CPU accounting ------------------------------------------------------------------------

struct CpuSample {
  double self_s = 0;
  double server_s = -1;  // -1: no --server-pid, or unreadable
};

double rusage_self_s() {
  rusage ru{};
  ::getrusage(RUSAGE_SELF, &ru);
  auto tv = [](const timeval& t) {
    return static_cast<double>(t.tv_sec) + static_cast<double>(t.tv_usec) / 1e6;
  };
  return tv(ru.ru_utime) + tv(ru.ru_stime);
}

// The CPU time of another process, all its threads (exited ones too), in ns: its CPU-time
// clock (clock_getcpuclockid). /proc/PID/stat counts in clock ticks (10 ms), too coarse for a
// produce phase of 0.2 s; it is the fallback when that clock cannot be read.
double process_cpu_s(int pid) {
  clockid_t clock{};
  timespec ts{};
  if (::clock_getcpuclockid(pid, &clock) == 0 && ::clock_gettime(clock, &ts) == 0)
    return static_cast<double>(ts.tv_sec) + static_cast<double>(ts.tv_nsec) / 1e9;
  // utime + stime: fields 14 and 15, after the parenthesised command name.
  std::ifstream f(fmt::format("/proc/{}/stat", pid));
  std::string text((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
  auto close = text.rfind(')');
  if (close == std::string::npos) return -1;
  std::istringstream in(text.substr(close + 2));
  std::string field;
  unsigned long long utime = 0;
  unsigned long long stime = 0;
  for (int i = 3; i <= 15 && in >> field; ++i) {
    if (i == 14) utime = std::stoull(field);
    if (i == 15) stime = std::stoull(field);
  }
  long ticks = ::sysconf(_SC_CLK_TCK);
  if (ticks <= 0) return -1;
  return static_cast<double>(utime + stime) / static_cast<double>(ticks);
}

CpuSample sample_cpu(int server_pid) {
  CpuSample s;
  s.self_s = rusage_self_s();
  if (server_pid > 0) s.server_s = process_cpu_s(server_pid);
  return s;
}

// ---- librdkafka helpers ----------------------------------------------------------------------

struct RkDeleter {
  void operator()(rd_kafka_t* rk) const { rd_kafka_destroy(rk); }
};
using RkHandle = std::unique_ptr<rd_kafka_t, RkDeleter>;

bool set(rd_kafka_conf_t* conf, const std::string& name, const std::string& value,
         std::string* error) {
  char err[512];
  if (rd_kafka_conf_set(conf, name.c_str(), value.c_str(), err, sizeof err) != RD_KAFKA_CONF_OK) {
    *error = fmt::format("{}={}: {}", name, value, err);
    return false;
  }
  return true;
}

// A configuration with the settings every handle gets.
rd_kafka_conf_t* base_conf(const KafkaPerfOptions& k, std::string* error) {
  rd_kafka_conf_t* conf = rd_kafka_conf_new();
  if (!set(conf, "bootstrap.servers", k.bootstrap, error) ||
      !set(conf, "client.id", "sluice-perf", error) || !set(conf, "log_level", "4", error)) {
    rd_kafka_conf_destroy(conf);
    return nullptr;
  }
  return conf;
}

// The user's -X name=value pairs, applied last so that they win over every default here.
bool apply_user_config(rd_kafka_conf_t* conf, const KafkaPerfOptions& k, std::string* error) {
  for (const std::string& kv : k.config) {
    auto eq = kv.find('=');
    if (eq == std::string::npos || eq == 0) {
      *error = fmt::format("-X {}: expected name=value", kv);
      return false;
    }
    if (!set(conf, kv.substr(0, eq), kv.substr(eq + 1), error)) return false;
  }
  return true;
}

RkHandle new_handle(rd_kafka_type_t type, rd_kafka_conf_t* conf, std::string* error) {
  char err[512];
  rd_kafka_t* rk = rd_kafka_new(type, conf, err, sizeof err);  // takes conf on success
  if (rk == nullptr) {
    rd_kafka_conf_destroy(conf);
    *error = fmt::format("rd_kafka_new: {}", err);
  }
  return RkHandle(rk);
}

// Number of partitions of `topic` (0: not there yet, -1: error), from a Metadata request. A
// request for one topic lets a broker with auto-creation create it.
int partition_count(rd_kafka_t* rk, const std::string& topic, std::string* error) {
  rd_kafka_topic_t* rkt = rd_kafka_topic_new(rk, topic.c_str(), nullptr);
  const rd_kafka_metadata_t* md = nullptr;
  rd_kafka_resp_err_t e = rd_kafka_metadata(rk, 0, rkt, &md, 5000);
  rd_kafka_topic_destroy(rkt);
  if (e != RD_KAFKA_RESP_ERR_NO_ERROR) {
    *error = fmt::format("metadata: {}", rd_kafka_err2str(e));
    return -1;
  }
  int n = 0;
  for (int i = 0; i < md->topic_cnt; ++i) {
    const rd_kafka_metadata_topic_t& t = md->topics[i];
    if (topic != t.topic) continue;
    if (t.err != RD_KAFKA_RESP_ERR_NO_ERROR) {
      *error = fmt::format("metadata of {}: {}", topic, rd_kafka_err2str(t.err));
      break;
    }
    n = t.partition_cnt;
    for (int p = 0; p < t.partition_cnt; ++p)
      if (t.partitions[p].leader < 0) n = 0;  // leaderless: not ready
  }
  rd_kafka_metadata_destroy(md);
  return n;
}

// Whether `topic` exists, from a Metadata request for all topics (which creates nothing).
bool topic_exists(rd_kafka_t* rk, const std::string& topic) {
  const rd_kafka_metadata_t* md = nullptr;
  if (rd_kafka_metadata(rk, 1, nullptr, &md, 5000) != RD_KAFKA_RESP_ERR_NO_ERROR) return false;
  bool found = false;
  for (int i = 0; i < md->topic_cnt; ++i)
    if (topic == md->topics[i].topic && md->topics[i].err == RD_KAFKA_RESP_ERR_NO_ERROR)
      found = true;
  rd_kafka_metadata_destroy(md);
  return found;
}

// CreateTopics; TOPIC_ALREADY_EXISTS is fine. False with *error on other errors (the caller
// then relies on auto-creation).
bool create_topic(rd_kafka_t* rk, const std::string& topic, int partitions, std::string* error) {
  char err[512];
  rd_kafka_NewTopic_t* nt = rd_kafka_NewTopic_new(topic.c_str(), partitions, 1, err, sizeof err);
  if (nt == nullptr) {
    *error = err;
    return false;
  }
  rd_kafka_queue_t* q = rd_kafka_queue_new(rk);
  rd_kafka_AdminOptions_t* opts = rd_kafka_AdminOptions_new(rk, RD_KAFKA_ADMIN_OP_CREATETOPICS);
  rd_kafka_AdminOptions_set_operation_timeout(opts, 10000, err, sizeof err);
  rd_kafka_AdminOptions_set_request_timeout(opts, 5000, err, sizeof err);
  rd_kafka_CreateTopics(rk, &nt, 1, opts, q);
  rd_kafka_event_t* ev = rd_kafka_queue_poll(q, 12000);
  bool ok = false;
  if (ev == nullptr) {
    *error = "CreateTopics: no response in 12 s";
  } else if (rd_kafka_event_error(ev) != RD_KAFKA_RESP_ERR_NO_ERROR) {
    *error = fmt::format("CreateTopics: {}", rd_kafka_event_error_string(ev));
  } else {
    size_t n = 0;
    const rd_kafka_topic_result_t** res =
        rd_kafka_CreateTopics_result_topics(rd_kafka_event_CreateTopics_result(ev), &n);
    ok = true;
    for (size_t i = 0; i < n; ++i) {
      rd_kafka_resp_err_t e = rd_kafka_topic_result_error(res[i]);
      if (e != RD_KAFKA_RESP_ERR_NO_ERROR && e != RD_KAFKA_RESP_ERR_TOPIC_ALREADY_EXISTS) {
        const char* s = rd_kafka_topic_result_error_string(res[i]);
        *error = fmt::format("CreateTopics: {}", s != nullptr ? s : rd_kafka_err2str(e));
        ok = false;
      }
    }
  }
  if (ev != nullptr) rd_kafka_event_destroy(ev);
  rd_kafka_AdminOptions_destroy(opts);
  rd_kafka_queue_destroy(q);
  rd_kafka_NewTopic_destroy(nt);
  return ok;
}

void delete_topic(rd_kafka_t* rk, const std::string& topic) {
  rd_kafka_DeleteTopic_t* dt = rd_kafka_DeleteTopic_new(topic.c_str());
  rd_kafka_queue_t* q = rd_kafka_queue_new(rk);
  rd_kafka_DeleteTopics(rk, &dt, 1, nullptr, q);
  rd_kafka_event_t* ev = rd_kafka_queue_poll(q, 10000);
  if (ev != nullptr) rd_kafka_event_destroy(ev);  // best effort (the mock has no DeleteTopics)
  rd_kafka_queue_destroy(q);
  rd_kafka_DeleteTopic_destroy(dt);
}

void sleep_until_realtime(std::int64_t ns) {
  timespec ts;
  ts.tv_sec = static_cast<time_t>(ns / 1'000'000'000);
  ts.tv_nsec = static_cast<long>(ns % 1'000'000'000);
  while (::clock_nanosleep(CLOCK_REALTIME, TIMER_ABSTIME, &ts, nullptr) == EINTR) {
    if (g_stop.load(std::memory_order_relaxed) != 0) return;
  }
}

// ---- producer --------------------------------------------------------------------------------

// Delivery report, on the thread that serves them (the producer's own at full speed; with
// --rate a thread of its own, see run_producer). The message's opaque is its send time: the
// scheduled one with --rate, else the produce() call's.
extern "C" void on_delivery(rd_kafka_t*, const rd_kafka_message_t* m, void* opaque) {
  auto* ps = static_cast<ProducerState*>(opaque);
  std::int64_t now = wall_clock_ns();
  if (m->err != RD_KAFKA_RESP_ERR_NO_ERROR) {
    if (ps->failed.fetch_add(1, std::memory_order_relaxed) == 0)
      ps->delivery_error = fmt::format("delivery failed: {}", rd_kafka_err2str(m->err));
    return;
  }
  auto sent = static_cast<std::int64_t>(reinterpret_cast<std::intptr_t>(m->_private));
  ps->ack.record(static_cast<std::uint64_t>(std::max<std::int64_t>(0, now - sent)));
  ps->delivered.fetch_add(1, std::memory_order_relaxed);
  ps->last_dr_ns.store(now, std::memory_order_relaxed);
}

void run_producer(const Settings& s, const KafkaPerfOptions& k, const std::string& topic,
                  RunState& rs, int id) {
  ProducerState& ps = *rs.producers[static_cast<std::size_t>(id)];
  auto finish = [&ps] { ps.done.store(1, std::memory_order_release); };
  std::string error;
  rd_kafka_conf_t* conf = base_conf(k, &error);
  bool ok = conf != nullptr;
  if (ok) {
    // Throughput-minded defaults (-X overrides them).
    ok = set(conf, "acks", k.acks, &error) &&
         set(conf, "compression.type", k.compression, &error) &&
         set(conf, "linger.ms", fmt::format("{}", k.linger_ms), &error) &&
         set(conf, "batch.size", std::to_string(k.batch_bytes), &error) &&
         // Keyless records spread evenly over the partitions (each partition still batches
         // on its own), not all on one for a while (librdkafka's sticky default).
         set(conf, "sticky.partitioning.linger.ms", "0", &error) &&
         set(conf, "queue.buffering.max.messages", "1000000", &error) &&
         set(conf, "queue.buffering.max.kbytes", "1048576", &error) &&
         set(conf, "message.max.bytes", std::to_string(std::max(1'000'000, k.batch_bytes + 65536)),
             &error) &&
         apply_user_config(conf, k, &error);
    if (!ok) rd_kafka_conf_destroy(conf);
  }
  if (!ok) {
    ps.error = error;
    rs.stop.store(1);
    return finish();
  }
  rd_kafka_conf_set_dr_msg_cb(conf, on_delivery);
  rd_kafka_conf_set_opaque(conf, &ps);
  RkHandle rk = new_handle(RD_KAFKA_PRODUCER, conf, &error);
  if (!rk) {
    ps.error = error;
    rs.stop.store(1);
    return finish();
  }
  rd_kafka_topic_t* rkt = rd_kafka_topic_new(rk.get(), topic.c_str(), nullptr);

  std::int64_t quota = std::numeric_limits<std::int64_t>::max();
  if (s.count > 0) quota = s.count / s.producers + (id < s.count % s.producers ? 1 : 0);
  std::vector<char> value(std::max<std::uint32_t>(s.size, 8), 'Z');

  while (rs.go.load(std::memory_order_acquire) == 0) {
    if (stopping(rs)) break;
    std::this_thread::sleep_for(std::chrono::microseconds(100));
  }
  std::int64_t start = rs.start_ns.load(std::memory_order_relaxed);
  std::int64_t end = s.count == 0
                         ? start + static_cast<std::int64_t>(std::llround(s.duration_s * 1e9))
                         : std::numeric_limits<std::int64_t>::max();
  double interval_ns = s.rate > 0 ? 1e9 * s.producers / s.rate : 0;  // this producer's share
  bool paced = s.rate > 0;
  bool spin_paced = paced && interval_ns >= static_cast<double>(kSpinPacedBelowNs);
  // Paced, delivery reports are served by a thread of their own, blocked in rd_kafka_poll
  // until one arrives: the producer thread sleeps between its sends and would see a report
  // only when it wakes, adding its sleep to the measured latency. That thread also flushes
  // at the end, so that reports run on one thread only (on_delivery is not thread-safe).
  std::atomic<int> producing{1};
  std::string flush_error;
  auto serve_reports = [&] {
    while (producing.load(std::memory_order_acquire) != 0) rd_kafka_poll(rk.get(), 10);
    rd_kafka_resp_err_t fe = rd_kafka_flush(rk.get(), kFlushTimeoutMs);
    if (fe != RD_KAFKA_RESP_ERR_NO_ERROR)
      flush_error =
          fmt::format("flush: {} ({} records unacknowledged after {} s)", rd_kafka_err2str(fe),
                      rd_kafka_outq_len(rk.get()), kFlushTimeoutMs / 1000);
  };
  std::thread reports;
  if (paced) reports = std::thread(serve_reports);
  std::int64_t sent = 0;
  if (rs.go.load() != 0) sleep_until_realtime(start);
  while (!stopping(rs) && sent < quota) {
    std::int64_t stamp = 0;
    if (paced) {
      stamp =
          start + static_cast<std::int64_t>(std::llround(static_cast<double>(sent) * interval_ns));
      if (stamp >= end) break;
      std::int64_t now = wall_clock_ns();
      if (spin_paced) {
        while (now < stamp && !stopping(rs)) {
          if (stamp - now > kWakeEarlyNs)
            sleep_until_realtime(stamp - kWakeEarlyNs);
          else
            _mm_pause();
          now = wall_clock_ns();
        }
      } else if (now < stamp) {
        sleep_until_realtime(stamp);  // then every record now due goes out at once
        now = wall_clock_ns();
      }
      ps.max_late_ns = std::max(ps.max_late_ns, now - stamp);
    } else {
      stamp = wall_clock_ns();
      if (stamp >= end) break;
    }
    if (s.size >= 8) std::memcpy(value.data(), &stamp, 8);
    for (;;) {
      std::int64_t sent_at = paced ? stamp : wall_clock_ns();
      int r = rd_kafka_produce(rkt, RD_KAFKA_PARTITION_UA, RD_KAFKA_MSG_F_COPY, value.data(),
                               s.size, nullptr, 0,
                               reinterpret_cast<void*>(static_cast<std::intptr_t>(sent_at)));
      if (r == 0) break;
      rd_kafka_resp_err_t e = rd_kafka_last_error();
      if (e != RD_KAFKA_RESP_ERR__QUEUE_FULL) {
        ps.error = fmt::format("produce: {}", rd_kafka_err2str(e));
        rs.stop.store(1);
        break;
      }
      ++ps.queue_full_waits;  // the local queue is full: wait for acknowledgements
      if (paced)
        std::this_thread::sleep_for(std::chrono::milliseconds(1));
      else
        rd_kafka_poll(rk.get(), 1);
      if (stopping(rs)) break;
    }
    if (stopping(rs)) break;
    ++sent;
    if (paced || (sent & 63) == 0) {
      if (!paced) rd_kafka_poll(rk.get(), 0);  // serve delivery reports every 64 sends
      ps.produced.store(sent, std::memory_order_relaxed);
    }
  }
  ps.produced.store(sent, std::memory_order_relaxed);
  // Wait for every delivery report (also after an interruption: what was produced is counted).
  producing.store(0, std::memory_order_release);
  if (paced)
    reports.join();
  else
    serve_reports();  // flushes, on this thread
  if (!flush_error.empty() && ps.error.empty()) ps.error = flush_error;
  rd_kafka_topic_destroy(rkt);
  finish();
}

// ---- consumer --------------------------------------------------------------------------------

void run_consumer(const KafkaPerfOptions& k, const std::string& topic, RunState& rs, int id,
                  bool record_latency, int passes) {
  ConsumerState& cs = *rs.consumers[static_cast<std::size_t>(id)];
  auto finish = [&cs] {
    cs.ready.store(1, std::memory_order_release);
    cs.done.store(1, std::memory_order_release);
  };
  std::string error;
  rd_kafka_conf_t* conf = base_conf(k, &error);
  bool ok = conf != nullptr;
  if (ok) {
    // librdkafka's assign() wants a group.id; assign() never joins the group, and nothing is
    // committed.
    ok = set(conf, "group.id", fmt::format("sluice-perf-{}", ::getpid()), &error) &&
         set(conf, "enable.auto.commit", "false", &error) &&
         set(conf, "enable.partition.eof", "false", &error) &&
         // A start offset the endpoint no longer has (retention) is an error, not a silent
         // jump to the end.
         set(conf, "auto.offset.reset", "error", &error) &&
         set(conf, "fetch.wait.max.ms", k.sequential ? "1" : "100", &error) &&
         set(conf, "fetch.max.bytes", "52428800", &error) &&
         set(conf, "max.partition.fetch.bytes", "4194304", &error) &&
         set(conf, "queued.max.messages.kbytes", "262144", &error) &&
         apply_user_config(conf, k, &error);
    if (!ok) rd_kafka_conf_destroy(conf);
  }
  if (!ok) {
    cs.error = error;
    rs.stop.store(1);
    return finish();
  }
  RkHandle rk = new_handle(RD_KAFKA_CONSUMER, conf, &error);
  if (!rk) {
    cs.error = error;
    rs.stop.store(1);
    return finish();
  }
  // Every partition at its start offset (again for each further pass).
  auto assign_all = [&]() -> bool {
    rd_kafka_topic_partition_list_t* parts =
        rd_kafka_topic_partition_list_new(static_cast<int>(rs.start_offsets.size()));
    for (std::size_t p = 0; p < rs.start_offsets.size(); ++p)
      rd_kafka_topic_partition_list_add(parts, topic.c_str(), static_cast<std::int32_t>(p))
          ->offset = rs.start_offsets[p];
    rd_kafka_resp_err_t ae = rd_kafka_assign(rk.get(), parts);
    rd_kafka_topic_partition_list_destroy(parts);
    if (ae != RD_KAFKA_RESP_ERR_NO_ERROR) {
      cs.error = fmt::format("assign: {}", rd_kafka_err2str(ae));
      rs.stop.store(1);
      return false;
    }
    return true;
  };
  if (!assign_all()) return finish();
  rd_kafka_queue_t* q = rd_kafka_queue_get_consumer(rk.get());
  if (q == nullptr) q = rd_kafka_queue_get_main(rk.get());
  cs.ready.store(1, std::memory_order_release);

  std::vector<rd_kafka_message_t*> batch(kConsumeBatch);
  std::int64_t received = 0;
  std::int64_t last_progress = wall_clock_ns();
  int pass = 1;
  for (;;) {
    std::int64_t target = rs.target.load(std::memory_order_acquire);
    if (target >= 0 && received >= target * pass) {
      if (pass >= passes) break;
      ++pass;  // read the range again: drop what is prefetched, re-assign at the start
      rd_kafka_assign(rk.get(), nullptr);
      if (!assign_all()) break;
      continue;
    }
    if (stopping(rs)) break;
    // Wait for the first record only (consume_batch_queue with a timeout waits for a whole
    // batch or the timeout: up to 100 ms of added latency at low rates), then take what else
    // is queued without waiting.
    ssize_t n = 0;
    if (rd_kafka_message_t* first = rd_kafka_consume_queue(q, 100)) {
      batch[0] = first;
      n = 1;
      ssize_t more = rd_kafka_consume_batch_queue(q, 0, batch.data() + 1, batch.size() - 1);
      n = more < 0 ? more : 1 + more;
    }
    if (n < 0) {
      cs.error = fmt::format("consume: {}", rd_kafka_err2str(rd_kafka_last_error()));
      rs.stop.store(1);
      break;
    }
    std::int64_t got = 0;
    std::int64_t stamps[kConsumeBatch];
    int stamped = 0;
    for (ssize_t i = 0; i < n; ++i) {
      rd_kafka_message_t* m = batch[static_cast<std::size_t>(i)];
      if (m->err != RD_KAFKA_RESP_ERR_NO_ERROR) {
        if (m->err != RD_KAFKA_RESP_ERR__PARTITION_EOF && cs.error.empty()) {
          cs.error = fmt::format("consumer {}: {}", id, rd_kafka_message_errstr(m));
          rs.stop.store(1);
        }
      } else {
        ++got;
        if (record_latency && m->len >= 8) std::memcpy(&stamps[stamped++], m->payload, 8);
      }
      rd_kafka_message_destroy(m);
    }
    std::int64_t now = wall_clock_ns();
    for (int i = 0; i < stamped; ++i)
      cs.latency.record(static_cast<std::uint64_t>(std::max<std::int64_t>(0, now - stamps[i])));
    if (got > 0) {
      received += got;
      last_progress = now;
      cs.received.store(received, std::memory_order_relaxed);
      cs.last_ns.store(now, std::memory_order_relaxed);
    } else if (target >= 0 && now - last_progress > kStallTimeoutNs) {
      cs.error = fmt::format("consumer {}: no record for {} s, {} of {} received", id,
                             kStallTimeoutNs / 1'000'000'000, received, target * passes);
      break;
    }
  }
  rd_kafka_queue_destroy(q);
  rd_kafka_consumer_close(rk.get());
  finish();
}

// ---- the run -------------------------------------------------------------------------------

struct Phase {
  std::int64_t records = 0;
  double seconds = 0;
  CpuSample cpu0, cpu1;
};

nlohmann::json histogram_json(const LatencyHistogram& h) {
  nlohmann::json j = {
      {"samples", h.count()}, {"min", h.min()}, {"mean", h.mean()}, {"max", h.max()}};
  const std::pair<const char*, double> pcts[] = {
      {"p50", 0.5}, {"p90", 0.9}, {"p99", 0.99}, {"p99.9", 0.999}, {"p99.99", 0.9999}};
  for (const auto& [name, q] : pcts) j[name] = h.percentile(q);
  return j;
}

std::string histogram_line(const LatencyHistogram& h) {
  const std::pair<const char*, double> pcts[] = {
      {"p50", 0.5}, {"p90", 0.9}, {"p99", 0.99}, {"p99.9", 0.999}, {"p99.99", 0.9999}};
  std::string line;
  for (const auto& [name, q] : pcts)
    line += fmt::format("{} {}  ", name, format_ns(static_cast<double>(h.percentile(q))));
  return line + "max " + format_ns(static_cast<double>(h.max()));
}

// CPU seconds per MB of values in a phase; -1 when not measured.
double ms_per_mb(double cpu0, double cpu1, std::int64_t bytes) {
  if (cpu0 < 0 || cpu1 < 0 || bytes <= 0) return -1;
  return (cpu1 - cpu0) * 1e3 / (static_cast<double>(bytes) / 1e6);
}

int run(const KafkaPerfOptions& k, const Settings& s) {
  if (s.producers < 1 || s.producers > kMaxWorkers || s.consumers < 1 ||
      s.consumers > kMaxWorkers) {
    fmt::print(stderr, "sluice perf: --producers and --consumers must be 1..16\n");
    return 2;
  }
  if (k.acks != "0" && k.acks != "1" && k.acks != "all" && k.acks != "-1") {
    fmt::print(stderr, "sluice perf: --acks must be 0, 1 or all\n");
    return 2;
  }
  if (s.size == 0) {
    fmt::print(stderr, "sluice perf: --size must be at least 1\n");
    return 2;
  }
  g_stop.store(0);
  struct sigaction sa {};
  sa.sa_handler = on_kafka_perf_signal;
  sigemptyset(&sa.sa_mask);
  ::sigaction(SIGINT, &sa, nullptr);
  ::sigaction(SIGTERM, &sa, nullptr);

  // ---- the topic: created (or auto-created) and its partitions' start offsets
  bool own_topic = k.topic.empty();
  std::string topic =
      own_topic ? fmt::format("sluice-perf-{}-{}", ::getpid(), wall_clock_ns() / 1'000'000)
                : k.topic;
  std::string error;
  rd_kafka_conf_t* aconf = base_conf(k, &error);
  if (aconf != nullptr && !apply_user_config(aconf, k, &error)) {
    rd_kafka_conf_destroy(aconf);
    aconf = nullptr;
  }
  if (aconf == nullptr) {
    fmt::print(stderr, "sluice perf: {}\n", error);
    return 2;
  }
  RkHandle admin = new_handle(RD_KAFKA_PRODUCER, aconf, &error);
  if (!admin) {
    fmt::print(stderr, "sluice perf: {}\n", error);
    return 1;
  }
  std::string create_note;
  if (!topic_exists(admin.get(), topic) && !create_topic(admin.get(), topic, k.partitions, &error))
    create_note = error + "; relying on auto-creation";
  int partitions = 0;
  std::int64_t deadline = wall_clock_ns() + 15'000'000'000;
  while ((partitions = partition_count(admin.get(), topic, &error)) <= 0) {
    if (wall_clock_ns() > deadline || g_stop.load() != 0) {
      fmt::print(stderr, "sluice perf: topic {} did not become available at {}: {}{}\n", topic,
                 k.bootstrap, error.empty() ? "no leader for every partition" : error,
                 create_note.empty() ? "" : " (" + create_note + ")");
      return 1;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  RunState rs;
  for (int p = 0; p < partitions; ++p) {
    std::int64_t lo = 0;
    std::int64_t hi = 0;
    rd_kafka_resp_err_t e =
        rd_kafka_query_watermark_offsets(admin.get(), topic.c_str(), p, &lo, &hi, 10000);
    if (e != RD_KAFKA_RESP_ERR_NO_ERROR) {
      fmt::print(stderr, "sluice perf: watermarks of {}/{}: {}\n", topic, p, rd_kafka_err2str(e));
      return 1;
    }
    rs.start_offsets.push_back(hi);
  }
  for (int i = 0; i < s.producers; ++i) rs.producers.push_back(std::make_unique<ProducerState>());
  bool record_latency = !k.sequential && s.size >= 8;
  int passes = k.sequential ? k.fetch_passes : 1;  // 0: produce only
  if (passes > 0)
    for (int i = 0; i < s.consumers; ++i) rs.consumers.push_back(std::make_unique<ConsumerState>());
  std::vector<std::thread> consumers;
  auto start_consumers = [&] {
    for (std::size_t i = 0; i < rs.consumers.size(); ++i)
      consumers.emplace_back(
          [&, i] { run_consumer(k, topic, rs, static_cast<int>(i), record_latency, passes); });
    for (auto& c : rs.consumers)
      while (c->ready.load(std::memory_order_acquire) == 0)
        std::this_thread::sleep_for(std::chrono::milliseconds(1));
  };
  if (!k.sequential) start_consumers();
  std::vector<std::thread> producers;
  for (int i = 0; i < s.producers; ++i)
    producers.emplace_back([&, i] { run_producer(s, k, topic, rs, i); });

  // ---- go, and monitor
  Phase produce_phase;
  Phase consume_phase;
  std::int64_t start = wall_clock_ns() + 100'000'000;  // producers connected by then
  produce_phase.cpu0 = sample_cpu(k.server_pid);
  consume_phase.cpu0 = produce_phase.cpu0;
  rs.start_ns.store(start, std::memory_order_relaxed);
  rs.go.store(1, std::memory_order_release);
  std::int64_t consume_start = start;

  bool tty = ::isatty(STDERR_FILENO) != 0;
  bool progress = !s.no_progress && !s.json;
  std::int64_t next_report = start + 1'000'000'000;
  std::int64_t last_sent = 0;
  std::int64_t last_recv = 0;
  std::int64_t last_ns = start;
  bool printed = false;
  auto delivered_total = [&] {
    std::int64_t d = 0;
    for (auto& p : rs.producers) d += p->delivered.load(std::memory_order_relaxed);
    return d;
  };
  auto min_received = [&] {
    std::int64_t m = std::numeric_limits<std::int64_t>::max();
    for (auto& c : rs.consumers) m = std::min(m, c->received.load(std::memory_order_relaxed));
    return rs.consumers.empty() ? 0 : m;
  };
  bool producers_done = false;
  for (;;) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
    if (!producers_done) {
      producers_done = true;
      for (auto& p : rs.producers)
        if (p->done.load(std::memory_order_acquire) == 0) producers_done = false;
      if (producers_done) {
        for (std::thread& t : producers) t.join();
        produce_phase.cpu1 = sample_cpu(k.server_pid);
        rs.target.store(delivered_total(), std::memory_order_release);
        if (k.sequential && passes > 0 && !stopping(rs)) {
          consume_phase.cpu0 = sample_cpu(k.server_pid);
          consume_start = wall_clock_ns();
          start_consumers();
          last_ns = consume_start;
          last_recv = 0;
        }
      }
    }
    bool consumers_done = producers_done;
    for (auto& c : rs.consumers)
      if (c->done.load(std::memory_order_acquire) == 0) consumers_done = false;
    if (producers_done && (consumers_done || (consumers.empty() && stopping(rs)))) break;
    if (g_stop.load() != 0) rs.stop.store(1);
    std::int64_t now = wall_clock_ns();
    if (progress && now >= next_report) {
      std::int64_t sent = delivered_total();
      std::int64_t recv = min_received();
      double dt = static_cast<double>(now - last_ns) / 1e9;
      std::string line = fmt::format(
          "[{:5.1f}s] acknowledged {} records/s  received {} records/s  {:.1f} MB/s  lag {} "
          "records",
          static_cast<double>(now - start) / 1e9,
          format_rate(static_cast<double>(sent - last_sent) / dt),
          format_rate(static_cast<double>(recv - last_recv) / dt),
          static_cast<double>((recv - last_recv) * s.size) / dt / 1e6, group_digits(sent - recv));
      if (tty) {
        fmt::print(stderr, "\r\033[2K{}", line);
      } else {
        fmt::print(stderr, "{}\n", line);
      }
      std::fflush(stderr);
      printed = true;
      last_sent = sent;
      last_recv = recv;
      last_ns = now;
      next_report += 1'000'000'000;
    }
  }
  if (printed && tty) fmt::print(stderr, "\n");
  for (std::thread& t : consumers) t.join();
  consume_phase.cpu1 = sample_cpu(k.server_pid);
  if (own_topic) delete_topic(admin.get(), topic);
  admin.reset();
  bool interrupted = g_stop.load() != 0;

  // ---- results
  LatencyHistogram* ack = new LatencyHistogram();
  std::unique_ptr<LatencyHistogram> ack_owner(ack);
  auto lat_owner = std::make_unique<LatencyHistogram>();
  std::vector<std::string> errors;
  std::int64_t produced = 0, delivered = 0, failed = 0, queue_full = 0, max_late = 0;
  std::int64_t send_end = start;
  for (auto& p : rs.producers) {
    ack->merge(p->ack);
    produced += p->produced.load();
    delivered += p->delivered.load();
    failed += p->failed.load();
    queue_full += p->queue_full_waits;
    max_late = std::max(max_late, p->max_late_ns);
    send_end = std::max(send_end, p->last_dr_ns.load());
    if (!p->error.empty()) errors.push_back(p->error);
    if (!p->delivery_error.empty()) errors.push_back(p->delivery_error);
  }
  std::int64_t recv_end = consume_start;
  std::vector<std::int64_t> per_consumer;
  for (auto& c : rs.consumers) {
    lat_owner->merge(c->latency);
    per_consumer.push_back(c->received.load());
    recv_end = std::max(recv_end, c->last_ns.load());
    if (!c->error.empty()) errors.push_back(c->error);
  }
  std::int64_t min_recv =
      per_consumer.empty() ? 0 : *std::min_element(per_consumer.begin(), per_consumer.end());
  if (failed > 0)
    errors.push_back(fmt::format("{} records were not acknowledged", group_digits(failed)));
  if (!interrupted && min_recv < delivered * passes)
    errors.push_back(fmt::format("consumers received {} of {} acknowledged records{}",
                                 group_digits(min_recv), group_digits(delivered * passes),
                                 passes > 1 ? fmt::format(" ({} passes)", passes) : ""));
  double send_s = std::max(1e-9, static_cast<double>(send_end - start) / 1e9);
  double recv_s = std::max(1e-9, static_cast<double>(recv_end - consume_start) / 1e9);
  double sent_rate = static_cast<double>(delivered) / send_s;
  double sent_mb = static_cast<double>(delivered) * s.size / send_s / 1e6;
  double recv_rate = static_cast<double>(min_recv) / recv_s;
  double recv_mb = static_cast<double>(min_recv) * s.size / recv_s / 1e6;
  std::int64_t sent_bytes = delivered * s.size;
  std::int64_t recv_bytes = min_recv * s.size;
  // CPU per MB: with --sequential per phase; otherwise the whole run per MB sent.
  CpuSample c0 = produce_phase.cpu0;
  CpuSample pc1 = k.sequential ? produce_phase.cpu1 : consume_phase.cpu1;
  double client_produce = ms_per_mb(c0.self_s, pc1.self_s, sent_bytes);
  double server_produce = ms_per_mb(c0.server_s, pc1.server_s, sent_bytes);
  double client_consume =
      k.sequential ? ms_per_mb(consume_phase.cpu0.self_s, consume_phase.cpu1.self_s, recv_bytes)
                   : -1;
  double server_consume =
      k.sequential ? ms_per_mb(consume_phase.cpu0.server_s, consume_phase.cpu1.server_s, recv_bytes)
                   : -1;
  bool complete = errors.empty() && !interrupted && min_recv >= delivered * passes;
  const char* latency_from = s.rate > 0 ? "scheduled send time" : "produce() call time";
  std::string acks = k.acks == "-1" ? "all" : k.acks;

  if (s.json) {
    nlohmann::json j;
    j["config"] = {{"size", s.size},
                   {"count", s.count},
                   {"duration_s", s.count == 0 ? s.duration_s : 0.0},
                   {"rate", s.rate},
                   {"producers", s.producers},
                   {"consumers", s.consumers},
                   {"mode", "threads"},
                   {"kafka", k.bootstrap},
                   {"topic", topic},
                   {"partitions", partitions},
                   {"acks", acks},
                   {"compression", k.compression},
                   {"linger_ms", k.linger_ms},
                   {"batch_bytes", k.batch_bytes},
                   {"sequential", k.sequential},
                   {"fetch_passes", passes},
                   {"kafka_config", k.config},
                   {"server_pid", k.server_pid}};
    j["sent"] = {{"records", delivered}, {"produced", produced},       {"value_bytes", sent_bytes},
                 {"seconds", send_s},    {"records_per_s", sent_rate}, {"mb_per_s", sent_mb}};
    j["received"] = {{"records_per_consumer", per_consumer},
                     {"min_records", min_recv},
                     {"seconds", recv_s},
                     {"records_per_s", recv_rate},
                     {"mb_per_s", recv_mb}};
    if (record_latency) {
      j["latency_ns"] = histogram_json(*lat_owner);
      j["latency_from"] = latency_from;
    } else {
      j["latency_ns"] = nullptr;
    }
    j["produce_latency_ns"] = histogram_json(*ack);
    auto num_or_null = [](double v) { return v < 0 ? nlohmann::json(nullptr) : nlohmann::json(v); };
    j["cpu_ms_per_mb"] = {{"client_produce", num_or_null(client_produce)},
                          {"server_produce", num_or_null(server_produce)},
                          {"client_consume", num_or_null(client_consume)},
                          {"server_consume", num_or_null(server_consume)}};
    j["queue_full_waits"] = queue_full;
    j["max_behind_schedule_ns"] = max_late;
    j["topic_creation"] = create_note.empty() ? "CreateTopics" : create_note;
    j["complete"] = complete;
    j["interrupted"] = interrupted && errors.empty();
    j["errors"] = errors;
    fmt::print("{}\n", j.dump(2));
  } else {
    fmt::print(
        "sluice perf --kafka {}: topic {} ({} partition{}), {} producer -> {} consumer threads, "
        "{}-byte values, {}, acks={}, compression {}, linger {} ms, batch {} B{}\n",
        k.bootstrap, topic, partitions, partitions == 1 ? "" : "s", s.producers,
        rs.consumers.size(), s.size,
        s.rate > 0 ? fmt::format("open loop at {} records/s",
                                 group_digits(static_cast<std::int64_t>(s.rate)))
                   : "as fast as possible",
        acks, k.compression, k.linger_ms, k.batch_bytes,
        passes == 0    ? std::string(", produce only")
        : k.sequential ? fmt::format(", sequential (produce all, then consume{})",
                                     passes > 1 ? fmt::format(" {} times", passes) : "")
                       : std::string());
    if (!create_note.empty()) fmt::print("  note      {}\n", create_note);
    fmt::print("  sent      {:>14} records in {:.3f} s: {} records/s, {:.1f} MB/s (acknowledged)\n",
               group_digits(delivered), send_s, format_rate(sent_rate), sent_mb);
    if (passes > 0)
      fmt::print("  received  {:>14} records in {:.3f} s: {} records/s, {:.1f} MB/s{}\n",
                 group_digits(min_recv), recv_s, format_rate(recv_rate), recv_mb,
                 s.consumers > 1 ? " (each consumer)" : "");
    if (record_latency) {
      fmt::print("  latency   {}\n", histogram_line(*lat_owner));
      fmt::print("            one-way, from each record's {} to its receipt; {} samples, mean {}\n",
                 latency_from, group_digits(static_cast<std::int64_t>(lat_owner->count())),
                 format_ns(lat_owner->mean()));
    }
    fmt::print("  produce   {}\n", histogram_line(*ack));
    fmt::print(
        "            acks={}: from each record's {} to its delivery report; {} samples, "
        "mean {}\n",
        acks, latency_from, group_digits(static_cast<std::int64_t>(ack->count())),
        format_ns(ack->mean()));
    auto cpu = [](double v) { return v < 0 ? std::string("-") : fmt::format("{:.2f} ms/MB", v); };
    if (k.sequential) {
      fmt::print("  cpu       produce: client {}, server {}; consume: client {}, server {}\n",
                 cpu(client_produce), cpu(server_produce), cpu(client_consume),
                 cpu(server_consume));
    } else {
      fmt::print("  cpu       client {}, server {} (whole run, per MB sent)\n", cpu(client_produce),
                 cpu(server_produce));
    }
    if (s.rate > 0 && max_late > 1'000'000)
      fmt::print("  note      producers fell up to {} behind schedule (counted in the latency)\n",
                 format_ns(static_cast<double>(max_late)));
    if (queue_full > 0)
      fmt::print("  note      producers waited {} times for a full local queue\n",
                 group_digits(queue_full));
    if (interrupted && errors.empty()) fmt::print("  interrupted: partial results\n");
    for (const std::string& e : errors) fmt::print("  error     {}\n", e);
  }
  if (!errors.empty()) return 1;
  return interrupted ? 130 : 0;
}

}  // namespace

std::shared_ptr<KafkaPerfOptions> add_perf_kafka_options(CLI::App* perf) {
  auto k = std::make_shared<KafkaPerfOptions>();
  perf->add_option("--kafka", k->bootstrap,
                   "Drive a Kafka endpoint (bootstrap HOST:PORT[,...]) through librdkafka instead "
                   "of local partitions; producers and consumers are threads; --wait, --batch, "
                   "--groups, --threads, --segment-mib, --retain, --no-pin and --data-dir do "
                   "not apply");
  perf->add_option("--topic", k->topic,
                   "With --kafka: topic to use (default: a new one, created and deleted)");
  perf->add_option("--acks", k->acks, "With --kafka: 0, 1 or all")->capture_default_str();
  perf->add_option("--compression", k->compression, "With --kafka: compression.type")
      ->capture_default_str()
      ->check(CLI::IsMember({"none", "gzip", "snappy", "lz4", "zstd"}));
  perf->add_option("--linger-ms", k->linger_ms, "With --kafka: producer linger.ms")
      ->capture_default_str()
      ->check(CLI::NonNegativeNumber);
  perf->add_option("--batch-bytes", k->batch_bytes, "With --kafka: producer batch.size")
      ->capture_default_str()
      ->check(CLI::Range(1, 100'000'000));
  perf->add_flag("--sequential", k->sequential,
                 "With --kafka: produce everything, then consume it (separate produce and fetch "
                 "throughput; no one-way latency)");
  perf->add_option("--fetch-passes", k->fetch_passes,
                   "With --kafka --sequential: consumers read the produced records this many "
                   "times (longer fetch runs over a bounded log, e.g. the mock's 5 MiB a "
                   "partition); 0 = produce only")
      ->capture_default_str()
      ->check(CLI::Range(0, 1000));
  perf->add_option("--server-pid", k->server_pid,
                   "With --kafka: pid of the endpoint's process, for its CPU time per MB")
      ->check(CLI::PositiveNumber);
  perf->add_option("-X,--kafka-config", k->config,
                   "With --kafka: librdkafka property name=value for every handle (repeatable)");
  return k;
}

bool perf_kafka_selected(const KafkaPerfOptions& k) {
  return !k.bootstrap.empty();
}

int run_perf_kafka(const KafkaPerfOptions& k, int partitions, std::uint32_t size,
                   std::int64_t count, double duration_s, double rate, int producers, int consumers,
                   bool json, bool no_progress) {
  KafkaPerfOptions with_partitions = k;
  with_partitions.partitions = partitions;
  return run(with_partitions,
             Settings{size, count, duration_s, rate, producers, consumers, json, no_progress});
}

}  // namespace sluice::tools
