// The topic store's names in the data directory: any legal topic name is a topic (a leading
// dot included), temporary names never are, and what a process that died while creating,
// growing or deleting a topic, or rolling a partition, left behind is removed when the
// broker starts (partitions beyond a topic's count included).
#include "topic_store.h"

#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "broker_test_support.h"
#include "data_dir.h"
#include "shm/log_appender.h"
#include "shm/partition_log.h"
#include "sluice/admin.h"
#include "sluice/broker.h"
#include "sluice/producer.h"

namespace sluice::broker_test {
namespace {

namespace fs = std::filesystem;

// The pid of a process that has exited and been reaped.
std::string dead_pid() {
  pid_t pid = spawn([] { return 0; });
  REQUIRE(reap(pid) == 0);
  return std::to_string(pid);
}

void touch(const std::string& path) {
  std::ofstream out(path);
  out << "x";
  REQUIRE(out);
}

TopicConfig small_topic(std::int32_t partitions) {
  TopicConfig tc;
  tc.partitions = partitions;
  tc.segment_bytes = 1 << 16;
  return tc;
}

TEST_CASE("topic store: a topic whose name starts with a dot is listed like any other",
          "[broker][topic-store]") {
  DataDirFixture dir;
  TopicStore store{DataDir{dir.path()}};
  BT_REQUIRE_OK(store.create(".hidden", small_topic(1)));
  BT_REQUIRE_OK(store.create("shown", small_topic(1)));
  CHECK(must(store.list()) == std::vector<std::string>{".hidden", "shown"});
  BT_REQUIRE_OK(store.remove(".hidden"));
  CHECK(must(store.list()) == std::vector<std::string>{"shown"});
  CHECK(std::distance(fs::directory_iterator(dir.path() + "/topics"), fs::directory_iterator()) ==
        1);
}

TEST_CASE("the broker removes at start what processes that died left in the data directory",
          "[process][topic-store]") {
  DataDirFixture dir;
  const DataDir d{dir.path()};
  TopicStore store{d};
  BT_REQUIRE_OK(store.create("t", small_topic(2)));
  const std::string dead = dead_pid();
  const std::string self = std::to_string(::getpid());
  // A topic being created, one being deleted, a topic.json being rewritten, a partition being
  // added (alter), and a partition's spare, roll and recycled file: each of a dead process.
  const std::vector<std::string> orphans = {
      d.topics() + "/u~tmp-" + dead + "-1",
      d.topics() + "/v~deleted-" + dead + "-2",
      d.topic("t") + "/topic.json.tmp-" + dead + "-3",
      d.topic("t") + "/2.tmp-" + dead + "-4-5",
      d.partition("t", 0) + "/new-" + dead + "-6-7.tmp",
      d.partition("t", 1) + "/rolling-" + dead + "-8-9.tmp",
      d.partition("t", 1) + "/recycle-" + dead + "-10-11.tmp"};
  fs::create_directories(orphans[0] + "/0");
  touch(orphans[0] + "/0/partition.ctl");
  fs::create_directories(orphans[1] + "/0");
  touch(orphans[1] + "/topic.json");
  touch(orphans[2]);
  fs::create_directories(orphans[3]);
  touch(orphans[3] + "/partition.ctl");
  for (std::size_t i = 4; i < orphans.size(); ++i) touch(orphans[i]);
  // A live process's files stay (this one's, and pid 1's).
  const std::vector<std::string> kept = {d.topics() + "/w~tmp-" + self + "-12",
                                         d.partition("t", 0) + "/new-1-13-14.tmp"};
  touch(kept[0]);
  touch(kept[1]);
  // A partition an alter created before it died, with a record no client was told of.
  shm::LogConfig lc;
  lc.segment_bytes = 1 << 16;
  {
    auto surplus = must(shm::PartitionLog::create(d.partition("t", 2), lc));
    auto appender = must(shm::LogAppender::open(surplus));
    REQUIRE(appender.append("never announced").outcome == shm::AppendOutcome::kOk);
  }

  BrokerConfig bc;
  bc.data_dir = dir.path();
  bc.initial_rebalance_delay_ms = 0;
  auto broker = must(Broker::start(bc));
  for (const auto& o : orphans) CHECK_FALSE(fs::exists(o));
  for (const auto& k : kept) CHECK(fs::exists(k));
  CHECK_FALSE(fs::exists(d.partition("t", 2)));
  CHECK(must(store.list()) == std::vector<std::string>{"t"});
  // The next alter makes partition 2 anew, empty.
  auto admin = must(Admin::connect(dir.path()));
  TopicConfig grown = small_topic(3);
  BT_REQUIRE_OK(admin.alter_topic("t", grown, {"partitions"}));
  auto described = must(admin.describe_topic("t"));
  REQUIRE(described.partitions.size() == 3);
  CHECK(described.partitions[2].end_offset == 0);

  ProducerConfig pc;
  pc.data_dir = dir.path();
  auto producer = must(Producer::open(pc));
  RecordId id = must(producer.send("t", std::nullopt, "after the sweep", {}, 1));
  CHECK(id.offset == 0);
}

TEST_CASE("a running broker removes a partition's file a dead process left, at its next sweep",
          "[process][topic-store]") {
  DataDirFixture dir;
  const DataDir d{dir.path()};
  BrokerConfig bc;
  bc.data_dir = dir.path();
  bc.initial_rebalance_delay_ms = 0;
  bc.retention_check_ms = 20;
  bc.orphan_sweep_ms = 50;
  auto broker = must(Broker::start(bc));
  BT_REQUIRE_OK(must(Admin::connect(dir.path())).create_topic("t", small_topic(1)));
  // A producer killed in the middle of a roll leaves the file it was rolling into place.
  const std::string orphan = d.partition("t", 0) + "/rolling-" + dead_pid() + "-0-1.tmp";
  touch(orphan);
  CHECK(eventually([&] { return !fs::exists(orphan); }));
}

}  // namespace
}  // namespace sluice::broker_test
