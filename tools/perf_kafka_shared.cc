#include "tools/perf_kafka_shared.h"

#include <fmt/format.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include <fstream>
#include <iterator>
#include <sstream>

namespace sluice::tools::perf_kafka {

std::atomic<int> g_stop{0};

namespace {

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

}  // namespace

CpuSample sample_cpu(int server_pid) {
  CpuSample s;
  s.self_s = rusage_self_s();
  if (server_pid > 0) s.server_s = process_cpu_s(server_pid);
  return s;
}

// ---- librdkafka helpers ----------------------------------------------------------------------

namespace {

bool conf_set(rd_kafka_conf_t* conf, const std::string& name, const std::string& value,
              std::string* error) {
  char err[512];
  if (rd_kafka_conf_set(conf, name.c_str(), value.c_str(), err, sizeof err) != RD_KAFKA_CONF_OK) {
    *error = fmt::format("{}={}: {}", name, value, err);
    return false;
  }
  return true;
}

bool apply_user_config(rd_kafka_conf_t* conf, const KafkaPerfOptions& k, std::string* error) {
  for (const std::string& kv : k.config) {
    auto eq = kv.find('=');
    if (eq == std::string::npos || eq == 0) {
      *error = fmt::format("-X {}: expected name=value", kv);
      return false;
    }
    if (!conf_set(conf, kv.substr(0, eq), kv.substr(eq + 1), error)) return false;
  }
  return true;
}

}  // namespace

rd_kafka_conf_t* make_conf(const KafkaPerfOptions& k, const std::vector<ConfEntry>& defaults,
                           std::string* error) {
  rd_kafka_conf_t* conf = rd_kafka_conf_new();
  bool ok = conf_set(conf, "bootstrap.servers", k.bootstrap, error) &&
            conf_set(conf, "client.id", "sluice-perf", error) &&
            conf_set(conf, "log_level", "4", error);
  for (std::size_t i = 0; ok && i < defaults.size(); ++i)
    ok = conf_set(conf, defaults[i].first, defaults[i].second, error);
  if (ok) ok = apply_user_config(conf, k, error);
  if (!ok) {
    rd_kafka_conf_destroy(conf);
    return nullptr;
  }
  return conf;
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

}  // namespace sluice::tools::perf_kafka
