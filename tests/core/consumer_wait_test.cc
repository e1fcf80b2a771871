// The client library's Consumer while it waits: an idle consumer over several partitions
// sleeps until a record comes to any of them, and wakes for it.
#include <sys/resource.h>

#include <atomic>
#include <catch2/catch.hpp>
#include <string>
#include <thread>
#include <vector>

#include "broker_test_support.h"
#include "shm/futex.h"
#include "sluice/broker.h"
#include "sluice/consumer.h"
#include "sluice/producer.h"

namespace sluice::broker_test {
namespace {

long voluntary_switches_of_this_thread() {
  rusage usage{};
  getrusage(RUSAGE_THREAD, &usage);
  return usage.ru_nvcsw;
}

TEST_CASE("an idle consumer of several partitions sleeps until a record comes to any of them",
          "[broker]") {
  DataDirFixture dir;
  BrokerConfig bc;
  bc.data_dir = dir.path();
  auto broker = must(Broker::start(bc));
  TopicConfig tc;
  tc.partitions = 4;
  create_topic(dir.path(), "t", tc);
  for (WaitMode mode : {WaitMode::kAdaptive, WaitMode::kBlock}) {
    INFO("wait mode " << static_cast<int>(mode));
    ConsumerConfig cc;
    cc.data_dir = dir.path();
    cc.wait = mode;
    auto consumer = must(Consumer::open(cc));
    BT_REQUIRE_OK(consumer.assign({{"t", 0}, {"t", 1}, {"t", 2}, {"t", 3}}));

    // Nothing comes: poll sleeps. It used to park on one partition at a time for 1 ms, about
    // 300 wake-ups in 300 ms; now a few 100 ms parks on all four at once.
    long before = voluntary_switches_of_this_thread();
    auto none = consumer.poll([](const Record&) {}, 100, 300);
    long switches = voluntary_switches_of_this_thread() - before;
    REQUIRE(none.is_ok());
    CHECK(*none == 0);
    if (shm::futex_wait_any_supported()) {
      INFO(switches << " voluntary context switches in a 300 ms poll");
      CHECK(switches <= 30);
    }

    // A record to the last partition, sent while poll sleeps, wakes it.
    std::atomic<bool> sent{false};
    std::thread producer_thread([&] {
      ProducerConfig pc;
      pc.data_dir = dir.path();
      auto producer = Producer::open(pc);
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
      sent = producer && producer->send("t", {}, "wake", {}, 3).is_ok();
    });
    std::vector<std::string> got;
    std::int64_t deadline = now_ms() + 30000;
    while (got.empty() && now_ms() < deadline) {
      auto n = consumer.poll([&](const Record& r) { got.emplace_back(r.value.value_or("")); }, 100,
                             30000);
      REQUIRE(n.is_ok());
    }
    producer_thread.join();
    REQUIRE(sent);
    REQUIRE(got.size() == 1);
    CHECK(got[0] == "wake");
  }
}

}  // namespace
}  // namespace sluice::broker_test
