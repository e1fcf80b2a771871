// The broker killed with SIGKILL while producers and consumers run, then restarted: no
// acknowledged record is lost, committed offsets are as they were, and the group resumes.
//
// sluiced is a child process; two producer children and three consumer children (one group)
// report through a pipe; the parent kills and restarts the broker and checks.
#include <map>
#include <set>
#include <string>

#include "broker_test_support.h"
#include "offsets_table.h"
#include "partitioner.h"
#include "sluice/consumer.h"

namespace sluice::broker_test {
namespace {

struct Produced {
  std::int32_t producer = 0;
  std::int64_t seq = 0;
};

// Committed offsets of a group, read from the offsets table directly (the broker may be dead).
std::map<std::int32_t, std::int64_t> table_offsets(const std::string& dir,
                                                   const std::string& group) {
  auto table = must(OffsetsTable::open_read_only(dir + "/groups/offsets.tbl"));
  std::map<std::int32_t, std::int64_t> out;
  for (const auto& o : must(table.list_offsets(group))) out[o.partition] = o.offset;
  return out;
}

TEST_CASE(
    "kill -9 of the broker under load, then restart: nothing acknowledged is lost, "
    "commits are intact, the group resumes",
    "[process]") {
  DataDirFixture dir;
  SluicedProcess broker(dir.path());
  broker.start();
  TopicConfig tc;
  tc.partitions = kPartitions;
  tc.segment_bytes = 1 << 16;  // rolls while the broker is down: producers make segments
  create_topic(dir.path(), "events", tc);

  ReportPipe reports;
  StopSignal stop_consumers;
  StopSignal stop_producers;
  std::vector<pid_t> consumers;
  std::vector<pid_t> producers;
  for (std::int32_t i = 0; i < 3; ++i) {
    ConsumerChild c;
    c.data_dir = dir.path();
    c.group = "g";
    c.topic = "events";
    c.index = i;
    c.reports = &reports;
    c.stop = &stop_consumers;
    consumers.push_back(spawn([c, &stop_producers] {
      stop_producers.child_side();
      return run_consumer_child(c);
    }));
  }
  for (std::int32_t i = 0; i < 2; ++i) {
    ProducerChild p;
    p.data_dir = dir.path();
    p.topic = "events";
    p.index = 10 + i;
    p.reports = &reports;
    p.stop = &stop_producers;
    p.burst = sanitized() ? 4 : 10;
    producers.push_back(spawn([p, &stop_consumers] {
      stop_consumers.child_side();
      return run_producer_child(p);
    }));
  }
  reports.close_write();
  auto kill_all = [&] {
    for (pid_t pid : consumers) ::kill(pid, SIGKILL);
    for (pid_t pid : producers) ::kill(pid, SIGKILL);
  };
  struct Cleanup {
    std::function<void()> fn;
    ~Cleanup() { fn(); }
  } cleanup{[&] {
    kill_all();
    for (pid_t pid : consumers) ::waitpid(pid, nullptr, 0);
    for (pid_t pid : producers) ::waitpid(pid, nullptr, 0);
  }};

  // What the children report.
  std::map<Key, Produced> produced;
  std::map<Key, int> consumed;
  std::map<std::int32_t, std::pair<std::int32_t, std::uint64_t>> assigned;  // child -> (gen, mask)
  std::map<std::int32_t, std::int64_t> acked_commit;        // partition -> highest acknowledged
  std::map<std::int32_t, std::int32_t> highest_generation;  // consumer -> highest seen
  std::vector<Report> producer_errors;
  std::size_t consumed_after_restart = 0;
  bool restarted = false;
  auto apply = [&](const Report& r) {
    switch (r.kind) {
      case Report::kProduced:
        produced[{r.partition, r.offset}] = {r.child, r.extra};
        break;
      case Report::kRecord:
        ++consumed[{r.partition, r.offset}];
        if (restarted) ++consumed_after_restart;
        break;
      case Report::kCommitted: {
        auto& a = acked_commit[r.partition];
        a = std::max(a, r.offset);
        break;
      }
      case Report::kAssigned:
        assigned[r.child] = {r.generation, static_cast<std::uint64_t>(r.offset)};
        highest_generation[r.child] = std::max(highest_generation[r.child], r.generation);
        break;
      case Report::kError:
        if (r.child >= 10) producer_errors.push_back(r);
        break;
      default:
        break;
    }
  };
  auto pump_until = [&](const std::function<bool()>& done, std::int64_t timeout_ms) {
    std::int64_t deadline = now_ms() + timeout_ms;
    while (!done()) {
      if (now_ms() > deadline) return false;
      reports.drain(apply, 5);
    }
    return true;
  };
  auto pump_for = [&](std::int64_t ms) { (void)pump_until([] { return false; }, ms); };
  // The generation the three consumers share with disjoint, complete assignments, or -1.
  auto stable_generation = [&](std::int32_t above) {
    std::uint64_t seen = 0;
    std::int32_t g = -1;
    for (std::int32_t i = 0; i < 3; ++i) {
      auto it = assigned.find(i);
      if (it == assigned.end() || it->second.first <= above) return -1;
      if (g >= 0 && it->second.first != g) return -1;
      g = it->second.first;
      if ((seen & it->second.second) != 0) return -1;
      seen |= it->second.second;
    }
    return seen == kAllPartitions ? g : -1;
  };

  // 1. Running: the group is stable, records flow and are committed.
  std::int32_t g_before = -1;
  REQUIRE(pump_until(
      [&] {
        g_before = stable_generation(-1);
        return g_before > 0 && consumed.size() >= 2000 && acked_commit.size() == kPartitions;
      },
      15000));
  INFO(broker.log());

  // 2. kill -9 of the broker while everything runs; they go on without it for a while.
  broker.kill9();
  std::size_t produced_at_kill = produced.size();
  pump_for(600);
  CHECK(produced.size() > produced_at_kill);  // producers do not need the broker
  reports.drain_all(apply);
  REQUIRE(producer_errors.empty());

  // Committed offsets as the dead broker left them: every acknowledged commit is there.
  auto before_restart = table_offsets(dir.path(), "g");
  REQUIRE(before_restart.size() == static_cast<std::size_t>(kPartitions));
  for (const auto& [p, acked] : acked_commit) {
    INFO("partition " << p);
    CHECK(before_restart[p] >= acked);
  }

  // 3. Restart, with the consumers held still so that nothing commits: the restarted broker
  // reports the committed offsets exactly as they were, and the group's generation.
  for (pid_t pid : consumers) REQUIRE(::kill(pid, SIGSTOP) == 0);
  broker.start();
  {
    auto admin = must(Admin::connect(dir.path()));
    auto group = must(admin.describe_group("g"));
    CHECK(group.generation >= g_before);
    std::map<std::int32_t, std::int64_t> reported;
    for (const auto& o : group.offsets) reported[o.partition.partition] = o.committed;
    CHECK(reported == before_restart);
  }
  CHECK(table_offsets(dir.path(), "g") == before_restart);
  restarted = true;
  for (pid_t pid : consumers) REQUIRE(::kill(pid, SIGCONT) == 0);

  // 4. The group resumes: a new generation, all partitions owned, consumption goes on.
  std::int32_t g_after = -1;
  bool resumed = pump_until(
      [&] {
        g_after = stable_generation(g_before);
        return g_after > 0 && consumed_after_restart >= 1000;
      },
      15000);
  if (!resumed) {
    std::string state;
    for (const auto& [c, a] : assigned)
      state += " c" + std::to_string(c) + ": generation " + std::to_string(a.first) + " mask " +
               std::to_string(a.second) + ";";
    FAIL("the group did not resume:" << state << " " << consumed_after_restart
                                     << " records consumed since the restart; broker log:\n"
                                     << broker.log());
  }
  CHECK(g_after > g_before);
  pump_for(300);

  // 5. Stop the producers; every acknowledged record gets consumed (at least once).
  stop_producers.stop();
  for (pid_t pid : producers) CHECK(reap(pid) == 0);
  producers.clear();
  bool all = pump_until(
      [&] {
        for (const auto& [k, p] : produced)
          if (consumed.count(k) == 0) return false;
        return true;
      },
      15000);
  stop_consumers.stop();
  while (reports.drain(apply, 100)) {
  }
  for (pid_t pid : consumers) CHECK(reap(pid) == 0);
  consumers.clear();
  REQUIRE(producer_errors.empty());
  std::size_t missing = 0;
  for (const auto& [k, p] : produced)
    if (consumed.count(k) == 0) ++missing;
  INFO(missing << " of " << produced.size() << " acknowledged records never consumed");
  REQUIRE(all);
  for (const auto& [k, n] : consumed) REQUIRE(produced.count(k) == 1);  // nothing invented

  // 6. Every acknowledged offset holds its record: same key, same value.
  ConsumerConfig cc;
  cc.data_dir = dir.path();
  cc.auto_offset_reset = AutoOffsetReset::kEarliest;
  auto reader = must(Consumer::open(cc));
  std::vector<TopicPartition> all_parts;
  for (std::int32_t p = 0; p < kPartitions; ++p) all_parts.push_back({"events", p});
  BT_REQUIRE_OK(reader.assign(all_parts));
  std::size_t checked = 0;
  std::size_t in_log = 0;
  std::int64_t deadline = now_ms() + 15000;
  while (!reader.at_end() && now_ms() < deadline) {
    auto n = reader.poll(
        [&](const Record& r) {
          ++in_log;
          auto it = produced.find({r.partition, r.offset});
          if (it == produced.end()) return;
          ++checked;
          std::string key = producer_key(it->second.producer, it->second.seq);
          REQUIRE(r.key.has_value());
          REQUIRE(*r.key == key);
          REQUIRE(r.value.has_value());
          REQUIRE(*r.value == make_value(it->second.producer, it->second.seq));
          REQUIRE(r.partition == partition_for_key(key, kPartitions));
        },
        10000, 100);
    REQUIRE(n.is_ok());
  }
  CHECK(checked == produced.size());
  CHECK(in_log == produced.size());  // and nothing else is there

  // Every acknowledged commit survived, and the group committed everything in the end.
  auto final_offsets = table_offsets(dir.path(), "g");
  for (const auto& [p, acked] : acked_commit) CHECK(final_offsets[p] >= acked);
  {
    auto admin = must(Admin::connect(dir.path()));
    auto group = must(admin.describe_group("g"));
    for (const auto& o : group.offsets) {
      INFO("partition " << o.partition.partition);
      CHECK(o.committed == o.end_offset);
    }
  }
  std::printf(
      "broker kill -9 / restart: %zu records acknowledged, %zu consumed after restart, "
      "generation %d -> %d\n",
      produced.size(), consumed_after_restart, g_before, g_after);
  CHECK(broker.stop() == 0);
}

}  // namespace
}  // namespace sluice::broker_test
