// kafka_rdkafka_test: librdkafka (C API) against a Kafka endpoint, issue 5's group test.
//
//   kafka_rdkafka_test BOOTSTRAP TOPIC
//
// 1. Makes TOPIC with 4 partitions (CreateTopics; an endpoint without it must auto-create it
//    with 4, as the mock cluster does) and checks it has 4.
// 2. Produces 100,000 records (key and value "v<i>") with acks=all and enable.idempotence=true;
//    every delivery report must succeed.
// 3. Consumes them in a 2-member group (two consumer handles on two threads, eager rebalancing,
//    manual commits every 500 records and on every revocation). Member A closes cleanly once
//    the group has consumed about half (after both members had partitions); member B takes
//    over A's partitions and reads on until every value has been seen.
// 4. Asserts: no record lost (every produced value seen); the log holds each value once
//    (idempotence); no committed record read twice: a (partition, offset) read again is at or
//    above the group's committed offset of that partition at the time of the re-read; the
//    rebalance happened (B gained partitions after A left); the final committed offsets are the
//    partitions' ends.
//
// Exit 0 with "PASS", 1 with "FAIL: <what>" (2: bad arguments). Works against any endpoint:
// sluiced's gateway (ctest via tests/kafka/with_sluiced.sh), the mock cluster, a real Kafka.
//
// Thread-safety: each thread owns its consumer handle; they share the event log (a mutex) and
// atomics. Rebalance callbacks run on the owning thread inside rd_kafka_consumer_poll.
#include <librdkafka/rdkafka.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <vector>

namespace {

constexpr int kRecords = 100'000;
constexpr int kPartitions = 4;
constexpr int kCommitEvery = 500;
constexpr int kTimeoutS = 180;

std::string g_bootstrap;
std::string g_topic;
std::string g_group;

[[noreturn]] void fail(const std::string& what) {
  std::fprintf(stderr, "kafka_rdkafka_test: FAIL: %s\n", what.c_str());
  std::fflush(stderr);
  std::_Exit(1);
}

rd_kafka_conf_t* conf_with(std::initializer_list<std::pair<const char*, std::string>> kvs) {
  rd_kafka_conf_t* conf = rd_kafka_conf_new();
  char err[512];
  auto set = [&](const char* k, const std::string& v) {
    if (rd_kafka_conf_set(conf, k, v.c_str(), err, sizeof err) != RD_KAFKA_CONF_OK)
      fail(std::string("config ") + k + "=" + v + ": " + err);
  };
  set("bootstrap.servers", g_bootstrap);
  set("log_level", "4");
  for (const auto& [k, v] : kvs) set(k, v);
  return conf;
}

rd_kafka_t* new_handle(rd_kafka_type_t type, rd_kafka_conf_t* conf) {
  char err[512];
  rd_kafka_t* rk = rd_kafka_new(type, conf, err, sizeof err);
  if (rk == nullptr) fail(std::string("rd_kafka_new: ") + err);
  return rk;
}

int partition_count(rd_kafka_t* rk) {
  rd_kafka_topic_t* rkt = rd_kafka_topic_new(rk, g_topic.c_str(), nullptr);
  const rd_kafka_metadata_t* md = nullptr;
  rd_kafka_resp_err_t e = rd_kafka_metadata(rk, 0, rkt, &md, 5000);
  rd_kafka_topic_destroy(rkt);
  if (e != RD_KAFKA_RESP_ERR_NO_ERROR) return -1;
  int n = 0;
  for (int i = 0; i < md->topic_cnt; ++i) {
    if (g_topic != md->topics[i].topic || md->topics[i].err != RD_KAFKA_RESP_ERR_NO_ERROR) continue;
    n = md->topics[i].partition_cnt;
    for (int p = 0; p < n; ++p)
      if (md->topics[i].partitions[p].leader < 0) n = 0;
  }
  rd_kafka_metadata_destroy(md);
  return n;
}

void make_topic(rd_kafka_t* rk) {
  char err[512];
  rd_kafka_NewTopic_t* nt = rd_kafka_NewTopic_new(g_topic.c_str(), kPartitions, 1, err, sizeof err);
  if (nt == nullptr) fail(std::string("NewTopic: ") + err);
  rd_kafka_queue_t* q = rd_kafka_queue_new(rk);
  rd_kafka_AdminOptions_t* opts = rd_kafka_AdminOptions_new(rk, RD_KAFKA_ADMIN_OP_CREATETOPICS);
  rd_kafka_AdminOptions_set_request_timeout(opts, 5000, err, sizeof err);
  rd_kafka_CreateTopics(rk, &nt, 1, opts, q);
  rd_kafka_event_t* ev = rd_kafka_queue_poll(q, 12000);
  std::string note = "no response";
  if (ev != nullptr) {
    note = rd_kafka_event_error(ev) ? rd_kafka_event_error_string(ev) : "ok";
    size_t n = 0;
    const rd_kafka_CreateTopics_result_t* res = rd_kafka_event_CreateTopics_result(ev);
    const rd_kafka_topic_result_t** tr =
        res != nullptr ? rd_kafka_CreateTopics_result_topics(res, &n) : nullptr;
    for (size_t i = 0; i < n; ++i)
      if (rd_kafka_topic_result_error(tr[i]) != RD_KAFKA_RESP_ERR_NO_ERROR)
        note = rd_kafka_err2str(rd_kafka_topic_result_error(tr[i]));
    rd_kafka_event_destroy(ev);
  }
  rd_kafka_AdminOptions_destroy(opts);
  rd_kafka_queue_destroy(q);
  rd_kafka_NewTopic_destroy(nt);
  std::printf("CreateTopics %s (4 partitions): %s\n", g_topic.c_str(), note.c_str());
  // A Metadata request for the topic (auto-creates it where CreateTopics is missing).
  int n = -1;
  for (int i = 0; i < 100 && (n = partition_count(rk)) <= 0; ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  if (n != kPartitions)
    fail("topic " + g_topic + " has " + std::to_string(n) +
         " partitions, want 4 (CreateTopics: " + note + ")");
}

// ---- produce ---------------------------------------------------------------------------------

std::atomic<int> g_delivered{0};
std::atomic<int> g_delivery_failed{0};
std::string g_delivery_error;

extern "C" void on_delivery(rd_kafka_t*, const rd_kafka_message_t* m, void*) {
  if (m->err != RD_KAFKA_RESP_ERR_NO_ERROR) {
    if (g_delivery_failed.fetch_add(1) == 0) g_delivery_error = rd_kafka_err2str(m->err);
  } else {
    g_delivered.fetch_add(1);
  }
}

void produce_all(rd_kafka_t* admin) {
  (void)admin;
  rd_kafka_conf_t* conf = conf_with({{"acks", "all"},
                                     {"enable.idempotence", "true"},
                                     {"linger.ms", "5"},
                                     {"client.id", "kafka_rdkafka_test-producer"}});
  rd_kafka_conf_set_dr_msg_cb(conf, on_delivery);
  rd_kafka_t* rk = new_handle(RD_KAFKA_PRODUCER, conf);
  rd_kafka_topic_t* rkt = rd_kafka_topic_new(rk, g_topic.c_str(), nullptr);
  for (int i = 0; i < kRecords; ++i) {
    std::string v = "v" + std::to_string(i);
    for (;;) {
      if (rd_kafka_produce(rkt, RD_KAFKA_PARTITION_UA, RD_KAFKA_MSG_F_COPY, v.data(), v.size(),
                           v.data(), v.size(), nullptr) == 0)
        break;
      if (rd_kafka_last_error() != RD_KAFKA_RESP_ERR__QUEUE_FULL)
        fail(std::string("produce: ") + rd_kafka_err2str(rd_kafka_last_error()));
      rd_kafka_poll(rk, 10);
    }
    if (i % 1000 == 0) rd_kafka_poll(rk, 0);
  }
  if (rd_kafka_flush(rk, 60000) != RD_KAFKA_RESP_ERR_NO_ERROR)
    fail("flush: records unacknowledged after 60 s: " + std::to_string(rd_kafka_outq_len(rk)));
  rd_kafka_topic_destroy(rkt);
  rd_kafka_destroy(rk);
  if (g_delivery_failed.load() != 0)
    fail(std::to_string(g_delivery_failed.load()) + " deliveries failed: " + g_delivery_error);
  if (g_delivered.load() != kRecords)
    fail("delivered " + std::to_string(g_delivered.load()) + " of " + std::to_string(kRecords));
  std::printf("produced %d records (acks=all, idempotent)\n", kRecords);
}

// ---- consume ---------------------------------------------------------------------------------

struct Read {
  int member;
  int partition;
  std::int64_t offset;
  std::int64_t seq;
  int value;
};
struct Commit {
  int member;
  int partition;
  std::int64_t offset;  // the next offset to read
  std::int64_t seq;
};

std::mutex g_mu;
std::vector<Read> g_reads;
std::vector<Commit> g_commits;
std::atomic<std::int64_t> g_seq{0};
std::atomic<int> g_total_read{0};
std::set<int> g_values_seen;  // under g_mu
std::atomic<int> g_assigned[2];
std::atomic<int> g_a_left{0};
std::atomic<int> g_b_gained_after_leave{0};
std::int64_t g_ends[kPartitions];                    // high watermarks after producing
std::atomic<std::int64_t> g_committed[kPartitions];  // latest acknowledged commit
std::atomic<int> g_failed_commits{0};

struct Member {
  int id;
  rd_kafka_t* rk = nullptr;
  std::map<int, std::int64_t> processed;  // partition -> next offset to commit
  int since_commit = 0;

  // Commits the processed offsets of the partitions in `owned` (all when null), synchronously,
  // and logs each commit that succeeded.
  void commit(const rd_kafka_topic_partition_list_t* owned) {
    rd_kafka_topic_partition_list_t* l = rd_kafka_topic_partition_list_new(4);
    for (const auto& [p, off] : processed) {
      bool mine = owned == nullptr;
      for (int i = 0; owned != nullptr && i < owned->cnt; ++i)
        if (owned->elems[i].partition == p) mine = true;
      if (mine) rd_kafka_topic_partition_list_add(l, g_topic.c_str(), p)->offset = off;
    }
    if (l->cnt > 0) {
      rd_kafka_resp_err_t e = rd_kafka_commit(rk, l, 0);
      // Counted as committed from its acknowledgement on: a read after this is bound by it.
      std::int64_t seq = g_seq.fetch_add(1);
      if (e != RD_KAFKA_RESP_ERR_NO_ERROR) {
        // A commit that failed (REBALANCE_IN_PROGRESS during a rebalance is normal) is not
        // counted as committed; its records may be read again.
        if (g_failed_commits.fetch_add(1) == 0)
          std::fprintf(stderr, "member %c: commit failed: %s (counted, not repeated here)\n",
                       'A' + id, rd_kafka_err2str(e));
      } else {
        std::lock_guard<std::mutex> lock(g_mu);
        for (int i = 0; i < l->cnt; ++i) {
          if (l->elems[i].err != RD_KAFKA_RESP_ERR_NO_ERROR) continue;
          g_commits.push_back({id, l->elems[i].partition, l->elems[i].offset, seq});
          g_committed[l->elems[i].partition].store(l->elems[i].offset);
        }
      }
    }
    rd_kafka_topic_partition_list_destroy(l);
    since_commit = 0;
  }
};

extern "C" void on_rebalance(rd_kafka_t* rk, rd_kafka_resp_err_t err,
                             rd_kafka_topic_partition_list_t* parts, void* opaque) {
  auto* m = static_cast<Member*>(opaque);
  if (err == RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS) {
    std::printf("member %c assigned %d partitions\n", 'A' + m->id, parts->cnt);
    std::fflush(stdout);
    if (m->id == 1 && g_a_left.load() != 0 && parts->cnt > g_assigned[1].load())
      g_b_gained_after_leave.store(1);
    g_assigned[m->id].store(parts->cnt);
    rd_kafka_assign(rk, parts);
  } else {
    // Revoked: commit what was processed of these partitions, then give them up.
    m->commit(parts);
    for (int i = 0; i < parts->cnt; ++i) m->processed.erase(parts->elems[i].partition);
    g_assigned[m->id].store(0);
    rd_kafka_assign(rk, nullptr);
  }
}

void run_member(int id) {
  Member m;
  m.id = id;
  rd_kafka_conf_t* conf =
      conf_with({{"group.id", g_group},
                 {"client.id", std::string("kafka_rdkafka_test-") + char('A' + id)},
                 {"enable.auto.commit", "false"},
                 {"auto.offset.reset", "earliest"},
                 {"session.timeout.ms", "10000"},
                 {"heartbeat.interval.ms", "500"},
                 {"partition.assignment.strategy", "range"}});
  rd_kafka_conf_set_rebalance_cb(conf, on_rebalance);
  rd_kafka_conf_set_opaque(conf, &m);
  m.rk = new_handle(RD_KAFKA_CONSUMER, conf);
  rd_kafka_poll_set_consumer(m.rk);
  rd_kafka_topic_partition_list_t* sub = rd_kafka_topic_partition_list_new(1);
  rd_kafka_topic_partition_list_add(sub, g_topic.c_str(), RD_KAFKA_PARTITION_UA);
  if (rd_kafka_resp_err_t e = rd_kafka_subscribe(m.rk, sub); e != RD_KAFKA_RESP_ERR_NO_ERROR)
    fail(std::string("subscribe: ") + rd_kafka_err2str(e));
  rd_kafka_topic_partition_list_destroy(sub);

  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(kTimeoutS);
  for (;;) {
    if (std::chrono::steady_clock::now() > deadline) {
      std::lock_guard<std::mutex> lock(g_mu);
      fail(std::string("member ") + char('A' + id) + ": timed out after " +
           std::to_string(kTimeoutS) + " s with " + std::to_string(g_values_seen.size()) +
           " distinct values seen of " + std::to_string(kRecords));
    }
    // Member A leaves once the group has read about half, and both members had partitions.
    if (id == 0 && g_total_read.load() >= kRecords / 2 && g_assigned[1].load() > 0) break;
    // Member B stops once every value was seen and the group's commits reached every end
    // (commits refused during a rebalance are retried while polling).
    if (id == 1) {
      bool all_seen = false;
      {
        std::lock_guard<std::mutex> lock(g_mu);
        all_seen = static_cast<int>(g_values_seen.size()) == kRecords;
      }
      bool at_ends = true;
      for (int p = 0; p < kPartitions; ++p) at_ends = at_ends && g_committed[p].load() == g_ends[p];
      if (all_seen && at_ends) break;
    }
    rd_kafka_message_t* msg = rd_kafka_consumer_poll(m.rk, 100);
    if (msg == nullptr) {
      if (!m.processed.empty()) m.commit(nullptr);  // idle: commit (again) what was processed
      continue;
    }
    if (msg->err != RD_KAFKA_RESP_ERR_NO_ERROR) {
      if (msg->err != RD_KAFKA_RESP_ERR__PARTITION_EOF)
        std::fprintf(stderr, "member %c: %s\n", 'A' + id, rd_kafka_message_errstr(msg));
      rd_kafka_message_destroy(msg);
      continue;
    }
    std::string v(static_cast<const char*>(msg->payload), msg->len);
    if (v.size() < 2 || v[0] != 'v') fail("unexpected value '" + v + "'");
    int value = std::atoi(v.c_str() + 1);
    {
      std::lock_guard<std::mutex> lock(g_mu);
      g_reads.push_back({id, msg->partition, msg->offset, g_seq.fetch_add(1), value});
      g_values_seen.insert(value);
    }
    g_total_read.fetch_add(1);
    m.processed[msg->partition] = msg->offset + 1;
    rd_kafka_message_destroy(msg);
    if (++m.since_commit >= kCommitEvery) m.commit(nullptr);
  }
  // Leave cleanly: commit what was processed (the revocation in close commits again), close.
  m.commit(nullptr);
  if (id == 0) g_a_left.store(1);
  std::printf("member %c leaves after the group read %d records\n", 'A' + id, g_total_read.load());
  std::fflush(stdout);
  if (rd_kafka_resp_err_t e = rd_kafka_consumer_close(m.rk); e != RD_KAFKA_RESP_ERR_NO_ERROR)
    fail(std::string("consumer_close: ") + rd_kafka_err2str(e));
  rd_kafka_destroy(m.rk);
}

// ---- checks ----------------------------------------------------------------------------------

void check(rd_kafka_t* admin) {
  std::lock_guard<std::mutex> lock(g_mu);
  if (static_cast<int>(g_values_seen.size()) != kRecords)
    fail("lost records: " + std::to_string(kRecords - static_cast<int>(g_values_seen.size())) +
         " values never consumed");
  // Each value at exactly one (partition, offset): no duplicate in the log.
  std::map<std::pair<int, std::int64_t>, int> value_at;
  std::map<int, std::pair<int, std::int64_t>> where;
  std::map<std::pair<int, std::int64_t>, int> read_count;
  int duplicates = 0;
  for (const Read& r : g_reads) {
    auto key = std::make_pair(r.partition, r.offset);
    auto [it, fresh] = value_at.emplace(key, r.value);
    if (!fresh && it->second != r.value)
      fail("partition " + std::to_string(r.partition) + " offset " + std::to_string(r.offset) +
           " read as v" + std::to_string(it->second) + " and v" + std::to_string(r.value));
    auto [w, wfresh] = where.emplace(r.value, key);
    if (!wfresh && w->second != key)
      fail("value v" + std::to_string(r.value) + " is in the log twice (idempotence broken)");
    if (++read_count[key] > 1) {
      ++duplicates;
      // The group's committed offset of this partition when it was read again.
      std::int64_t committed = -1;
      for (const Commit& c : g_commits)
        if (c.partition == r.partition && c.seq < r.seq) committed = std::max(committed, c.offset);
      if (r.offset < committed)
        fail("committed record read twice: partition " + std::to_string(r.partition) + " offset " +
             std::to_string(r.offset) + " re-read by member " + char('A' + r.member) +
             " below the committed offset " + std::to_string(committed));
    }
  }
  if (g_a_left.load() == 0 || g_b_gained_after_leave.load() == 0)
    fail("no rebalance: member B never took over member A's partitions");
  int a_reads = 0;
  for (const Read& r : g_reads) a_reads += r.member == 0 ? 1 : 0;
  if (a_reads == 0) fail("member A consumed nothing before it left");
  // Final committed offsets = ends of the partitions.
  rd_kafka_conf_t* conf = conf_with({{"group.id", g_group}});
  rd_kafka_t* rk = new_handle(RD_KAFKA_CONSUMER, conf);
  rd_kafka_topic_partition_list_t* l = rd_kafka_topic_partition_list_new(kPartitions);
  for (int p = 0; p < kPartitions; ++p) rd_kafka_topic_partition_list_add(l, g_topic.c_str(), p);
  if (rd_kafka_resp_err_t e = rd_kafka_committed(rk, l, 10000); e != RD_KAFKA_RESP_ERR_NO_ERROR)
    fail(std::string("committed(): ") + rd_kafka_err2str(e));
  for (int p = 0; p < kPartitions; ++p) {
    std::int64_t lo = 0, hi = 0;
    if (rd_kafka_query_watermark_offsets(admin, g_topic.c_str(), p, &lo, &hi, 10000) !=
        RD_KAFKA_RESP_ERR_NO_ERROR)
      fail("watermarks of partition " + std::to_string(p));
    if (l->elems[p].offset != hi)
      fail("partition " + std::to_string(p) + ": committed offset " +
           std::to_string(l->elems[p].offset) + ", end " + std::to_string(hi));
  }
  rd_kafka_topic_partition_list_destroy(l);
  rd_kafka_consumer_close(rk);
  rd_kafka_destroy(rk);
  std::printf(
      "consumed: %zu reads, %d re-reads (all at or above the committed offsets), member A "
      "%d, %zu commits acknowledged, %d refused\n",
      g_reads.size(), duplicates, a_reads, g_commits.size(), g_failed_commits.load());
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 3) {
    std::fprintf(stderr, "usage: %s BOOTSTRAP TOPIC\n", argv[0]);
    return 2;
  }
  g_bootstrap = argv[1];
  g_topic = argv[2];
  g_group = g_topic + "-group-" + std::to_string(::time(nullptr));
  rd_kafka_t* admin =
      new_handle(RD_KAFKA_PRODUCER, conf_with({{"client.id", "kafka_rdkafka_test"}}));
  make_topic(admin);
  produce_all(admin);
  for (int p = 0; p < kPartitions; ++p) {
    std::int64_t lo = 0;
    if (rd_kafka_query_watermark_offsets(admin, g_topic.c_str(), p, &lo, &g_ends[p], 10000) !=
        RD_KAFKA_RESP_ERR_NO_ERROR)
      fail("watermarks of partition " + std::to_string(p));
    g_committed[p].store(-1);
  }
  std::thread a(run_member, 0);
  std::thread b(run_member, 1);
  a.join();
  b.join();
  check(admin);
  rd_kafka_destroy(admin);
  std::printf("kafka_rdkafka_test: PASS\n");
  return 0;
}
