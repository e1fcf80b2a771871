// The broker's control plane: one broker per data directory, a control socket that survives
// garbage, fencing of commits from old generations, members owned by their connection,
// all-or-nothing commits, a bounded outbox per connection, and topic administration.
#include <cstdlib>
#include <filesystem>
#include <map>
#include <random>
#include <set>
#include <string>

#include "broker_test_support.h"
#include "control_client.h"
#include "data_dir.h"
#include "sluice/broker.h"
#include "sluice/consumer.h"
#include "sluice/producer.h"

namespace sluice::broker_test {
namespace {

using control::json;

// ---- one broker per data directory ---------------------------------------------------------

TEST_CASE("a second broker on the same data dir is refused, naming the first one's pid",
          "[process]") {
  DataDirFixture dir;
  SluicedProcess first(dir.path());
  first.start();
  const std::string pid = "pid " + std::to_string(first.pid());

  SECTION("a second sluiced exits with an error naming the pid") {
    SluicedProcess second(dir.path());
    auto [code, output] = second.run_to_completion();
    INFO(output);
    CHECK(code == 1);
    CHECK(output.find("a broker is already running for " + dir.path()) != std::string::npos);
    CHECK(output.find(pid) != std::string::npos);
  }
  SECTION("an embedded broker is refused with kBusy naming the pid") {
    BrokerConfig bc;
    bc.data_dir = dir.path();
    auto second = Broker::start(bc);
    REQUIRE(!second.is_ok());
    INFO(second.status().message());
    CHECK(second.status().code() == ErrorCode::kBusy);
    CHECK(second.status().message().find(pid) != std::string::npos);
  }
  // The first one is unharmed: it still answers, on the same socket.
  REQUIRE(broker_answers(dir.path()));
  {
    auto admin = must(Admin::connect(dir.path()));
    CHECK(must(admin.status()).pid == first.pid());
  }
  CHECK(first.stop() == 0);
}

// ---- the control socket survives garbage -------------------------------------------------

// A raw connection to the control socket.
class RawConnection {
 public:
  explicit RawConnection(const std::string& data_dir) {
    std::string path = data_dir + "/broker.sock";
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    REQUIRE(path.size() < sizeof addr.sun_path);
    std::memcpy(addr.sun_path, path.c_str(), path.size() + 1);
    fd_ = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    REQUIRE(fd_ >= 0);
    REQUIRE(::connect(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0);
  }
  ~RawConnection() { ::close(fd_); }
  RawConnection(const RawConnection&) = delete;
  RawConnection& operator=(const RawConnection&) = delete;

  // Writes everything it can; false if the broker closed the connection meanwhile.
  bool write(std::string_view bytes) {
    while (!bytes.empty()) {
      ssize_t n = ::send(fd_, bytes.data(), bytes.size(), MSG_NOSIGNAL);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) return false;
      bytes.remove_prefix(static_cast<std::size_t>(n));
    }
    return true;
  }

  // The next line, or nullopt when the broker closed the connection (or timeout_ms passed:
  // then timed_out() is true).
  std::optional<std::string> read_line(std::int64_t timeout_ms = 5000) {
    timed_out_ = false;
    std::int64_t deadline = now_ms() + timeout_ms;
    for (;;) {
      if (auto nl = buffer_.find('\n'); nl != std::string::npos) {
        std::string line = buffer_.substr(0, nl);
        buffer_.erase(0, nl + 1);
        return line;
      }
      std::int64_t left = deadline - now_ms();
      if (left <= 0) {
        timed_out_ = true;
        return std::nullopt;
      }
      pollfd p{fd_, POLLIN, 0};
      if (::poll(&p, 1, static_cast<int>(left)) <= 0) continue;
      char chunk[4096];
      ssize_t n = ::recv(fd_, chunk, sizeof chunk, 0);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) return std::nullopt;  // closed (or reset)
      buffer_.append(chunk, static_cast<std::size_t>(n));
    }
  }
  bool timed_out() const { return timed_out_; }

  // Reads until the connection closes; true if it did within timeout_ms.
  bool closed_within(std::int64_t timeout_ms) {
    while (read_line(timeout_ms)) {
    }
    return !timed_out_;
  }

 private:
  int fd_ = -1;
  std::string buffer_;
  bool timed_out_ = false;
};

// The broker still serves: an Admin that connected before the garbage and a fresh one.
void require_broker_serves(SluicedProcess& broker, Admin& bystander, const std::string& dir) {
  INFO(broker.log());
  REQUIRE(::kill(broker.pid(), 0) == 0);
  auto s = bystander.status();
  INFO(s.status().message());
  REQUIRE(s.is_ok());
  CHECK(s->pid == broker.pid());
  auto fresh = must(Admin::connect(dir));
  auto topics = must(fresh.list_topics());
  CHECK(topics == std::vector<std::string>{"t"});
}

// Either an error answer (then the connection may stay open or close) or a closed
// connection; never silence, never a success.
void require_error_or_close(RawConnection& c, const std::string& what) {
  INFO("request: " << what);
  auto line = c.read_line();
  if (!line) {
    CHECK(!c.timed_out());  // closed, not ignored
    return;
  }
  json j = json::parse(*line, nullptr, false);
  INFO("answer: " << *line);
  REQUIRE(!j.is_discarded());
  REQUIRE(j.is_object());
  CHECK(j.value("ok", true) == false);
  REQUIRE(j.contains("error"));
  CHECK(j["error"].is_object());
}

TEST_CASE("the control socket survives garbage and keeps serving others", "[process]") {
  DataDirFixture dir;
  SluicedProcess broker(dir.path());
  broker.start();
  create_topic(dir.path(), "t", TopicConfig{});
  auto bystander = must(Admin::connect(dir.path()));

  SECTION("random bytes") {
    std::mt19937 rng(12345);
    for (int round = 0; round < 20; ++round) {
      RawConnection c(dir.path());
      std::string bytes(4096, '\0');
      for (auto& b : bytes) b = static_cast<char>(rng() & 0xff);
      bytes.push_back('\n');
      (void)c.write(bytes);
      // Whatever it answers, it must be errors only, until it closes the connection.
      std::int64_t deadline = now_ms() + 5000;
      while (now_ms() < deadline) {
        auto line = c.read_line(1000);
        if (!line) break;
        json j = json::parse(*line, nullptr, false);
        INFO("answer: " << *line);
        REQUIRE(j.is_object());
        CHECK(j.value("ok", true) == false);
      }
      require_broker_serves(broker, bystander, dir.path());
    }
  }
  SECTION("a line that is not JSON") {
    RawConnection c(dir.path());
    REQUIRE(c.write("this is not json\n"));
    require_error_or_close(c, "not json");
    CHECK(c.closed_within(5000));
    require_broker_serves(broker, bystander, dir.path());
  }
  SECTION("JSON that is not an object, or has no op string") {
    for (std::string line : {"[1,2,3]", "42", "\"op\"", "null", "{\"op\":5}", "{\"id\":1}",
                             "{\"op\":null}", "{\"op\":[\"status\"]}", "{}"}) {
      RawConnection c(dir.path());
      REQUIRE(c.write(line + "\n"));
      require_error_or_close(c, line);
      require_broker_serves(broker, bystander, dir.path());
    }
  }
  SECTION("an over-long line") {
    RawConnection c(dir.path());
    std::string big(std::size_t{5} << 20, 'x');  // past the 4 MiB limit, no newline
    (void)c.write(big);
    require_error_or_close(c, "5 MiB without a newline");
    CHECK(c.closed_within(5000));
    require_broker_serves(broker, bystander, dir.path());
  }
  SECTION("JSON lines with fields of the wrong type") {
    const std::vector<std::string> lines = {
        R"({"op":"topic.create","name":42})",
        R"({"op":"topic.create","name":"u","config":{"partitions":"many"}})",
        R"({"op":"topic.create","name":"u","config":[1]})",
        R"({"op":"topic.describe"})",
        R"({"op":"topic.describe","name":{"a":1}})",
        R"({"op":"topic.alter","name":"t","config":{"partitions":-3}})",
        R"({"op":"topic.delete","name":null})",
        R"({"op":"hello","pid":"abc","client_id":7})",
        R"({"op":"status","id":"seven"})",
        R"({"op":"status","id":{"x":1}})",
        R"({"op":"status","no_reply":"yes"})",
        R"({"op":"topic.list","id":[1]})",
        R"({"op":"no.such.op","id":"x"})",
        R"({"op":"group.join","group":["g"],"topics":"t"})",
        R"({"op":"group.join","group":"g","topics":["t"],"session_timeout_ms":"long"})",
        R"({"op":"group.join","group":"g","topics":[1,2]})",
        R"({"op":"group.join","group":"g","topics":["t"],"assignors":"range"})",
        R"({"op":"group.heartbeat","group":"g","generation":"one"})",
        R"({"op":"group.commit","group":"g","generation":"x","offsets":{}})",
        R"({"op":"group.commit","group":"g","offsets":[{"topic":1,"partition":"a","offset":null}]})",
        R"({"op":"group.commit","group":"g","offsets":[{"topic":"t","partition":0,"offset":"5"}]})",
        R"({"op":"group.commit","group":"g","offsets":7})",
        R"({"op":"group.fetch","group":"g","partitions":[1,2]})",
        R"({"op":"group.fetch","group":"g","partitions":"t"})",
        R"({"op":"group.leave","group":"g","member_id":5})",
        R"({"op":"group.describe","group":1})",
        R"({"op":"group.reset","group":"g","topic":"t","to":"offset","value":"x"})",
        R"({"op":"group.delete"})",
        R"({"op":"group.list","id":"x","no_reply":1})",
    };
    for (const auto& line : lines) {
      INFO("line: " << line);
      RawConnection c(dir.path());
      REQUIRE(c.write(line + "\n"));
      require_error_or_close(c, line);
      require_broker_serves(broker, bystander, dir.path());
      // The connection, if still open, still works.
      if (c.write(R"({"op":"status","id":99})"
                  "\n")) {
        auto answer = c.read_line();
        if (answer) {
          json j = json::parse(*answer, nullptr, false);
          INFO(line << " -> " << *answer);
          CHECK(j.is_object());
        }
      }
    }
  }
  SECTION("a client id that is cut inside a UTF-8 character") {
    // Member ids embed the first 64 bytes of the client id: 'é' is two bytes, so 33 of them
    // put a character across the cut.
    std::string client;
    for (int i = 0; i < 33; ++i) client += "\xc3\xa9";
    client = "x" + client;
    RawConnection c(dir.path());
    json join = {{"op", "group.join"},           {"id", 1},         {"group", "g"},
                 {"client_id", client},          {"topics", {"t"}}, {"session_timeout_ms", 30000},
                 {"rebalance_timeout_ms", 30000}};
    REQUIRE(c.write(join.dump() + "\n"));
    auto answer = c.read_line(10000);
    INFO(broker.log());
    REQUIRE(answer.has_value());
    json j = json::parse(*answer, nullptr, false);
    INFO(*answer);
    REQUIRE(j.is_object());
    CHECK(j.value("ok", false) == true);
    require_broker_serves(broker, bystander, dir.path());
    auto group = must(bystander.describe_group("g"));
    CHECK(group.members.size() == 1);
  }
  CHECK(broker.stop() == 0);
}

// ---- fencing -------------------------------------------------------------------------------

struct EmbeddedBroker {
  explicit EmbeddedBroker(const std::string& dir, std::int64_t rebalance_delay_ms = 0) {
    BrokerConfig bc;
    bc.data_dir = dir;
    bc.initial_rebalance_delay_ms = rebalance_delay_ms;
    bc.housekeeping_ms = 20;
    broker = must(Broker::start(bc));
  }
  std::unique_ptr<Broker> broker;
};

Result<json> join(ControlClient& c, const std::string& member, const std::string& topic) {
  return c.request("group.join", {{"group", "g"},
                                  {"member_id", member},
                                  {"client_id", "raw"},
                                  {"pid", static_cast<int>(::getpid())},
                                  {"topics", {topic}},
                                  {"assignors", {"range"}},
                                  {"session_timeout_ms", 30000},
                                  {"rebalance_timeout_ms", 30000}});
}

Status commit(ControlClient& c, const std::string& member, std::int32_t generation,
              std::int32_t partition, std::int64_t offset) {
  return c
      .request("group.commit",
               {{"group", "g"},
                {"member_id", member},
                {"generation", generation},
                {"offsets", {{{"topic", "t"}, {"partition", partition}, {"offset", offset}}}}})
      .status();
}

TEST_CASE("commits by a fenced member (an old generation) are refused with kFenced", "[broker]") {
  DataDirFixture dir;
  EmbeddedBroker b(dir.path());
  TopicConfig tc;
  tc.partitions = 2;
  create_topic(dir.path(), "t", tc);

  SECTION("control protocol: a member commits with the generation before the last rebalance") {
    auto x = must(ControlClient::connect(DataDir{dir.path()}, "x"));
    auto y = must(ControlClient::connect(DataDir{dir.path()}, "y"));
    json jx = must(join(*x, "", "t"));
    std::string mx = jx["member_id"].get<std::string>();
    std::int32_t g1 = jx["generation"].get<std::int32_t>();
    REQUIRE(jx["assignment"].size() == 2);
    BT_REQUIRE_OK(commit(*x, mx, g1, 0, 5));

    // y joins: a rebalance; x rejoins, and the group moves to generation g1 + 1.
    Result<json> jy = Status(ErrorCode::kTimedOut, "not yet");
    std::thread ty([&] { jy = join(*y, "", "t"); });
    REQUIRE(eventually([&] {
      json ev;
      return x->pop_event(ev) && ev.value("event", "") == "rebalance";
    }));
    json jx2 = must(join(*x, mx, "t"));
    ty.join();
    REQUIRE(jy.is_ok());
    std::int32_t g2 = jx2["generation"].get<std::int32_t>();
    CHECK(g2 == g1 + 1);
    CHECK(jy.value()["generation"].get<std::int32_t>() == g2);
    std::int32_t px = jx2["assignment"][0]["partition"].get<std::int32_t>();

    // The old generation is fenced, even for a partition x still owns.
    Status old = commit(*x, mx, g1, px, 7);
    INFO(old.message());
    CHECK(old.code() == ErrorCode::kFenced);
    // A partition x does not own, in the current generation: fenced too.
    Status not_owned = commit(*x, mx, g2, 1 - px, 7);
    CHECK(not_owned.code() == ErrorCode::kFenced);
    // A member id nobody knows.
    CHECK(commit(*x, "nobody", g2, px, 7).code() == ErrorCode::kFenced);
    // A consumer outside the group (generation -1) while the group has members.
    CHECK(commit(*x, "", -1, px, 7).code() == ErrorCode::kFenced);
    // The current generation is accepted, and nothing fenced was stored.
    BT_REQUIRE_OK(commit(*x, mx, g2, px, 9));
    auto admin = must(Admin::connect(dir.path()));
    auto info = must(admin.describe_group("g"));
    std::map<std::int32_t, std::int64_t> committed;
    for (const auto& o : info.offsets) committed[o.partition.partition] = o.committed;
    CHECK(committed[px] == 9);
    CHECK(committed[1 - px] == (px == 0 ? -1 : 5));
  }

  SECTION("Consumer: a member expelled by a rebalance it slept through gets kFenced") {
    ConsumerConfig cc;
    cc.data_dir = dir.path();
    cc.group_id = "g";
    cc.auto_offset_reset = AutoOffsetReset::kEarliest;
    cc.rebalance_timeout_ms = 500;
    auto a = must(Consumer::open(cc));
    BT_REQUIRE_OK(a.subscribe({"t"}));
    GroupAssignment ga = a.group_assignment();
    REQUIRE(ga.partitions.size() == 2);
    BT_REQUIRE_OK(a.commit_sync());

    // b joins while a does not poll: after the rebalance timeout a is out, b has all.
    auto b_consumer = must(Consumer::open(cc));
    BT_REQUIRE_OK(b_consumer.subscribe({"t"}));
    CHECK(b_consumer.group_assignment().partitions.size() == 2);
    CHECK(b_consumer.group_assignment().generation > ga.generation);

    Status s = a.commit_sync();
    INFO(s.message());
    CHECK(s.code() == ErrorCode::kFenced);
    // a rejoins on its next poll and gets its share again (b polls on its own thread: a
    // join waits for every member to rejoin).
    std::atomic<bool> stop{false};
    std::atomic<std::size_t> b_partitions{0};
    std::thread tb([&] {
      while (!stop.load()) {
        (void)b_consumer.poll([](const Record&) {}, 10, 10);
        b_partitions.store(b_consumer.assignment().size());
      }
    });
    bool shared = eventually([&] {
      (void)a.poll([](const Record&) {}, 10, 10);
      return a.assignment().size() == 1 && b_partitions.load() == 1;
    });
    stop.store(true);
    tb.join();
    REQUIRE(shared);
    BT_REQUIRE_OK(a.commit_sync());
  }
}

// ---- ownership of members, all-or-nothing commits ---------------------------------------

Result<json> leave(ControlClient& c, const std::string& member) {
  return c.request("group.leave", {{"group", "g"}, {"member_id", member}});
}

std::map<std::int32_t, std::int64_t> committed_offsets(const std::string& dir) {
  auto admin = must(Admin::connect(dir));
  auto info = must(admin.describe_group("g"));
  std::map<std::int32_t, std::int64_t> committed{{0, -1}, {1, -1}};
  for (const auto& o : info.offsets) committed[o.partition.partition] = o.committed;
  return committed;
}

// A broker with topic "t" (2 partitions) and two raw control connections: x has joined group
// "g" as member mx in generation g1; y has not joined.
struct JoinedMemberFixture {
  DataDirFixture dir;
  EmbeddedBroker b{dir.path()};
  std::unique_ptr<ControlClient> x, y;
  json jx;  // x's join reply
  std::string mx;
  std::int32_t g1 = -1;

  JoinedMemberFixture() {
    TopicConfig tc;
    tc.partitions = 2;
    create_topic(dir.path(), "t", tc);
    x = must(ControlClient::connect(DataDir{dir.path()}, "x"));
    y = must(ControlClient::connect(DataDir{dir.path()}, "y"));
    jx = must(join(*x, "", "t"));
    mx = jx["member_id"].get<std::string>();
    g1 = jx["generation"].get<std::int32_t>();
  }
};

TEST_CASE_METHOD(JoinedMemberFixture,
                 "group.leave from a connection that does not own the member is refused with "
                 "kFenced",
                 "[broker][group-ownership]") {
  Result<json> stolen = leave(*y, mx);
  REQUIRE(!stolen.is_ok());
  INFO(stolen.status().message());
  CHECK(stolen.status().code() == ErrorCode::kFenced);
  CHECK(stolen.status().message().find("member " + mx + " belongs to another connection") !=
        std::string::npos);

  // x is still the member, in the same generation, and may still commit.
  auto admin = must(Admin::connect(dir.path()));
  auto info = must(admin.describe_group("g"));
  REQUIRE(info.members.size() == 1);
  CHECK(info.members[0].member_id == mx);
  CHECK(info.generation == g1);
  BT_REQUIRE_OK(commit(*x, mx, g1, 0, 3));

  // The owner itself may leave.
  BT_REQUIRE_OK(leave(*x, mx).status());
  CHECK(must(admin.describe_group("g")).members.empty());
}

TEST_CASE_METHOD(JoinedMemberFixture,
                 "join, heartbeat and commit naming another connection's member are refused",
                 "[broker][group-ownership]") {
  const std::string not_yours = "member " + mx + " belongs to another connection";

  // Rejoining under x's id would hand y x's assignment.
  Result<json> taken = join(*y, mx, "t");
  REQUIRE(!taken.is_ok());
  INFO(taken.status().message());
  CHECK(taken.status().code() == ErrorCode::kFenced);
  CHECK(taken.status().message().find(not_yours) != std::string::npos);

  Result<json> beat =
      y->request("group.heartbeat", {{"group", "g"}, {"member_id", mx}, {"generation", g1}});
  REQUIRE(!beat.is_ok());
  CHECK(beat.status().code() == ErrorCode::kFenced);
  CHECK(beat.status().message().find(not_yours) != std::string::npos);

  Status foreign_commit = commit(*y, mx, g1, 0, 4);
  CHECK(foreign_commit.code() == ErrorCode::kFenced);
  CHECK(foreign_commit.message().find(not_yours) != std::string::npos);
  CHECK(committed_offsets(dir.path())[0] == -1);

  // x keeps its id, generation and both partitions, and may still heartbeat and commit.
  auto admin = must(Admin::connect(dir.path()));
  auto info = must(admin.describe_group("g"));
  REQUIRE(info.members.size() == 1);
  CHECK(info.members[0].member_id == mx);
  CHECK(info.members[0].partitions.size() == 2);
  CHECK(info.generation == g1);
  BT_REQUIRE_OK(
      x->request("group.heartbeat", {{"group", "g"}, {"member_id", mx}, {"generation", g1}})
          .status());
  BT_REQUIRE_OK(commit(*x, mx, g1, 0, 3));
  CHECK(committed_offsets(dir.path())[0] == 3);

  // Once x's connection is gone its member has left, and nothing blocks y any more.
  x.reset();
  REQUIRE(eventually([&] { return must(admin.describe_group("g")).members.empty(); }));
  json jy = must(join(*y, "", "t"));
  CHECK(jy["assignment"].size() == 2);
}

// x joined with a 30 s rebalance timeout and then never rejoins: the rebalance the consumer
// starts waits for x far longer than the consumer waits for its join (3 x 100 ms + 5 s).
TEST_CASE_METHOD(JoinedMemberFixture,
                 "a Consumer whose join times out leaves no member behind, and joins again later",
                 "[broker][group-ownership]") {
  ConsumerConfig cc;
  cc.data_dir = dir.path();
  cc.group_id = "g";
  cc.client_id = "late";
  cc.rebalance_timeout_ms = 100;
  cc.session_timeout_ms = 30000;
  auto c = must(Consumer::open(cc));
  Status s = c.subscribe({"t"});
  INFO(s.message());
  REQUIRE(s.code() == ErrorCode::kTimedOut);

  // The member the broker made for the consumer is gone at once, not after its 30 s session.
  auto admin = must(Admin::connect(dir.path()));
  auto only_x = [&] {
    auto info = must(admin.describe_group("g"));
    return info.members.size() == 1 && info.members[0].member_id == mx;
  };
  CHECK(eventually(only_x));

  // Once x is gone, the consumer's next polls join and take both partitions.
  x.reset();
  CHECK(eventually([&] {
    (void)c.poll([](const Record&) {}, 10, 10);
    return c.assignment().size() == 2;
  }));
}

TEST_CASE_METHOD(JoinedMemberFixture,
                 "group.commit is all or nothing: one bad entry stores nothing and is named",
                 "[broker][group-ownership]") {
  REQUIRE(jx["assignment"].size() == 2);  // x owns both partitions

  auto commit_entries = [&](json offsets) {
    return x
        ->request("group.commit",
                  {{"group", "g"}, {"member_id", mx}, {"generation", g1}, {"offsets", offsets}})
        .status();
  };
  const json good = {{"topic", "t"}, {"partition", 0}, {"offset", 5}};

  SECTION("a malformed entry after a good one") {
    const std::vector<json> bad = {
        {{"topic", "t"}, {"partition", 1}, {"offset", "6"}},
        {{"topic", "t"}, {"partition", 1}},
        {{"partition", 1}, {"offset", 6}},
        {{"topic", "t"}, {"partition", "1"}, {"offset", 6}},
        {{"topic", "t"}, {"partition", 1}, {"offset", 6}, {"metadata", 7}},
        json(42),
    };
    for (const auto& entry : bad) {
      INFO("entry: " << entry.dump());
      Status s = commit_entries(json::array({good, entry}));
      INFO(s.message());
      CHECK(s.code() == ErrorCode::kProtocol);
      CHECK(s.message().find("offsets[1]") != std::string::npos);
      auto committed = committed_offsets(dir.path());
      CHECK(committed[0] == -1);
      CHECK(committed[1] == -1);
    }
  }
  SECTION("a fenced entry (a partition the member does not own) after a good one") {
    create_topic(dir.path(), "u", TopicConfig{});  // exists; x is not subscribed to it
    Status s =
        commit_entries(json::array({good, {{"topic", "u"}, {"partition", 0}, {"offset", 6}}}));
    INFO(s.message());
    CHECK(s.code() == ErrorCode::kFenced);
    CHECK(s.message().find("offsets[1]") != std::string::npos);
    auto committed = committed_offsets(dir.path());
    CHECK(committed[0] == -1);
  }
  SECTION("an entry for a partition the broker does not have after a good one") {
    Status s =
        commit_entries(json::array({good, {{"topic", "t"}, {"partition", 7}, {"offset", 6}}}));
    INFO(s.message());
    CHECK(s.code() == ErrorCode::kUnknownTopic);
    CHECK(s.message().find("offsets[1]") != std::string::npos);
    CHECK(committed_offsets(dir.path())[0] == -1);
  }
  SECTION("offsets that are not an array") {
    Status s = commit_entries(json::object({{"topic", "t"}}));
    INFO(s.message());
    CHECK(s.code() == ErrorCode::kProtocol);
    CHECK(committed_offsets(dir.path())[0] == -1);
  }
  // A whole good commit still stores every entry.
  BT_REQUIRE_OK(commit_entries(
      json::array({good, {{"topic", "t"}, {"partition", 1}, {"offset", 6}, {"metadata", "m"}}})));
  auto committed = committed_offsets(dir.path());
  CHECK(committed[0] == 5);
  CHECK(committed[1] == 6);
}

// ---- a client that never reads its replies -------------------------------------------------

TEST_CASE("deleting a topic removes every group's offsets for it; commits need the partition",
          "[broker][deleted-topic]") {
  DataDirFixture dir;
  EmbeddedBroker b(dir.path());
  TopicConfig tc;
  tc.partitions = 2;
  create_topic(dir.path(), "t", tc);
  create_topic(dir.path(), "u", tc);
  auto c = must(ControlClient::connect(DataDir{dir.path()}, "c"));
  auto commit_to = [&](const std::string& group, const std::string& topic, std::int32_t p,
                       std::int64_t offset) {
    return c
        ->request("group.commit",
                  {{"group", group},
                   {"member_id", ""},
                   {"generation", -1},
                   {"offsets", {{{"topic", topic}, {"partition", p}, {"offset", offset}}}}})
        .status();
  };
  BT_REQUIRE_OK(commit_to("g", "t", 0, 5));
  BT_REQUIRE_OK(commit_to("g", "t", 1, 6));
  BT_REQUIRE_OK(commit_to("g", "u", 0, 7));
  BT_REQUIRE_OK(commit_to("h", "t", 1, 8));

  // Nothing is committed for a topic or partition the broker does not have.
  Status unknown = commit_to("g", "nope", 0, 1);
  INFO(unknown.message());
  CHECK(unknown.code() == ErrorCode::kUnknownTopic);
  CHECK(unknown.message().find("unknown topic-partition nope-0") != std::string::npos);
  CHECK(commit_to("g", "t", 2, 1).code() == ErrorCode::kUnknownTopic);

  auto admin = must(Admin::connect(dir.path()));
  BT_REQUIRE_OK(admin.delete_topic("t"));
  auto offsets_of = [&](const std::string& group) {
    std::map<std::string, std::int64_t> got;
    for (const auto& o : must(admin.describe_group(group)).offsets)
      got[o.partition.topic + "-" + std::to_string(o.partition.partition)] = o.committed;
    return got;
  };
  // t's offsets are gone in both groups; u's stay.
  CHECK(offsets_of("g") == std::map<std::string, std::int64_t>{{"u-0", 7}});
  // h committed only for t: nothing of it is left.
  auto h = admin.describe_group("h");
  CHECK((h.is_ok() ? h.value().offsets.empty() : h.status().code() == ErrorCode::kNotFound));
  // A late commit for the deleted topic is refused rather than bringing them back.
  CHECK(commit_to("g", "t", 0, 9).code() == ErrorCode::kUnknownTopic);

  // Re-created under the same name, t starts with no committed offsets.
  create_topic(dir.path(), "t", tc);
  auto fetched = must(c->request(
      "group.fetch",
      {{"group", "g"},
       {"partitions", {{{"topic", "t"}, {"partition", 0}}, {{"topic", "t"}, {"partition", 1}}}}}));
  for (const auto& o : fetched["offsets"]) CHECK(o["offset"].get<std::int64_t>() == -1);
}

TEST_CASE("a client that never reads its replies is disconnected; the broker serves others",
          "[process][outbox]") {
  DataDirFixture dir;
  SluicedProcess broker(dir.path());
  broker.start();
  create_topic(dir.path(), "t", TopicConfig{});
  auto bystander = must(Admin::connect(dir.path()));

  // The flooding connection is also a group member: its lease ends with it.
  RawConnection c(dir.path());
  json join_request = {{"op", "group.join"},
                       {"id", 1},
                       {"group", "g"},
                       {"client_id", "flood"},
                       {"pid", static_cast<int>(::getpid())},
                       {"topics", {"t"}},
                       {"session_timeout_ms", 60000},
                       {"rebalance_timeout_ms", 60000}};
  REQUIRE(c.write(join_request.dump() + "\n"));
  auto joined = c.read_line(10000);
  REQUIRE(joined.has_value());
  INFO(*joined);
  REQUIRE(json::parse(*joined).value("ok", false));
  REQUIRE(must(bystander.describe_group("g")).members.size() == 1);

  // Requests in batches of 1000, never reading an answer. Far more than the outbox bound.
  std::string batch;
  for (int i = 0; i < 1000; ++i) batch += R"({"op":"status","id":)" + std::to_string(i) + "}\n";
  bool disconnected = false;
  std::int64_t sent = 0;
  for (int round = 0; round < 200 && !disconnected; ++round) {
    if (c.write(batch))
      sent += 1000;
    else
      disconnected = true;
  }
  INFO("requests sent before the broker hung up: " << sent);
  INFO(broker.log());
  REQUIRE(disconnected);

  // The broker warned, ended the member's lease, and serves everyone else.
  CHECK(eventually([&] { return broker.log().find("not reading") != std::string::npos; }));
  CHECK(eventually([&] { return must(bystander.describe_group("g")).members.empty(); }));
  require_broker_serves(broker, bystander, dir.path());
  CHECK(broker.stop() == 0);
}

// ---- topic administration -----------------------------------------------------------------

TEST_CASE(
    "topics: a topic or growth larger than the data directory can hold is refused up front "
    "naming the need and leaves nothing",
    "[broker]") {
  DataDirFixture dir;
  EmbeddedBroker b(dir.path());
  auto admin = must(Admin::connect(dir.path()));

  TopicConfig huge;
  huge.partitions = 100000;
  huge.segment_bytes = 1 << 30;  // with a spare each: 200 TiB
  Status s = admin.create_topic("huge", huge);
  INFO(s.message());
  CHECK(s.code() == ErrorCode::kIo);
  CHECK_THAT(s.message(), Catch::Contains("topic huge: 100000 new partitions") &&
                              Catch::Contains("1024 MiB segment") &&
                              Catch::Contains("no space left on the device"));
  CHECK(must(admin.list_topics()).empty());
  std::error_code ec;
  CHECK(std::filesystem::is_empty(dir.path() + "/topics", ec));

  // Growing a topic is checked the same way, for the new partitions only.
  TopicConfig small;
  small.partitions = 2;
  small.segment_bytes = 1 << 16;
  BT_REQUIRE_OK(admin.create_topic("small", small));
  TopicConfig grow;
  grow.partitions = 100000;
  grow.segment_bytes = 1 << 30;
  s = admin.alter_topic("small", grow, {"partitions", "segment_bytes"});
  INFO(s.message());
  CHECK(s.code() == ErrorCode::kIo);
  CHECK_THAT(s.message(), Catch::Contains("topic small: 99998 new partitions"));
  CHECK(must(admin.describe_topic("small")).partitions.size() == 2);
}

TEST_CASE("a broker does not start with a SLUICE_MIN_FREE_MEMORY that is not a size", "[broker]") {
  DataDirFixture dir;
  BrokerConfig bc;
  bc.data_dir = dir.path();
  bc.kafka_listen = "none";
  {
    // A first run makes the data directory's files: the second needs no new file, so only
    // the check at start can refuse the setting.
    auto first = must(Broker::start(bc));
    first->stop();
    first->wait();
  }
  ::setenv("SLUICE_MIN_FREE_MEMORY", "plenty", 1);
  auto broker = Broker::start(bc);
  ::unsetenv("SLUICE_MIN_FREE_MEMORY");
  REQUIRE_FALSE(broker);
  CHECK(broker.status().code() == ErrorCode::kInvalidArgument);
  CHECK_THAT(broker.status().message(),
             Catch::Contains("SLUICE_MIN_FREE_MEMORY") && Catch::Contains("plenty"));
}

TEST_CASE("topics: create, describe, alter (grow, never shrink), delete through Admin",
          "[broker]") {
  DataDirFixture dir;
  EmbeddedBroker b(dir.path());
  auto admin = must(Admin::connect(dir.path()));

  TopicConfig tc;
  tc.partitions = 3;
  tc.segment_bytes = 1 << 16;
  tc.retention_bytes = 1 << 20;
  tc.retention_ms = 60000;
  tc.max_record_bytes = 1000;
  tc.slow_reader_policy = SlowReaderPolicy::kBackpressure;
  BT_REQUIRE_OK(admin.create_topic("orders", tc));
  CHECK(admin.create_topic("orders", tc).code() == ErrorCode::kAlreadyExists);
  CHECK(admin.create_topic("bad/name", tc).code() == ErrorCode::kInvalidArgument);
  TopicConfig zero = tc;
  zero.partitions = 0;
  CHECK(admin.create_topic("zero", zero).code() == ErrorCode::kInvalidArgument);
  CHECK(must(admin.list_topics()) == std::vector<std::string>{"orders"});

  auto d = must(admin.describe_topic("orders"));
  CHECK(d.name == "orders");
  CHECK(d.config.partitions == 3);
  CHECK(d.config.segment_bytes == tc.segment_bytes);
  CHECK(d.config.retention_bytes == tc.retention_bytes);
  CHECK(d.config.retention_ms == tc.retention_ms);
  CHECK(d.config.max_record_bytes == tc.max_record_bytes);
  CHECK(d.config.slow_reader_policy == SlowReaderPolicy::kBackpressure);
  REQUIRE(d.partitions.size() == 3);
  for (std::int32_t p = 0; p < 3; ++p) {
    CHECK(d.partitions[static_cast<std::size_t>(p)].partition == p);
    CHECK(d.partitions[static_cast<std::size_t>(p)].start_offset == 0);
    CHECK(d.partitions[static_cast<std::size_t>(p)].end_offset == 0);
    CHECK(d.partitions[static_cast<std::size_t>(p)].segments >= 1);
  }
  CHECK(admin.describe_topic("nope").status().code() == ErrorCode::kUnknownTopic);

  // Records show in the description.
  ProducerConfig pc;
  pc.data_dir = dir.path();
  auto producer = must(Producer::open(pc));
  for (int i = 0; i < 10; ++i) (void)must(producer.send("orders", std::nullopt, "v", {}, 1));
  d = must(admin.describe_topic("orders"));
  CHECK(d.partitions[1].end_offset == 10);
  CHECK(d.partitions[0].end_offset == 0);
  CHECK(d.partitions[1].bytes > 0);

  // A subscribed member sees the topic grow.
  ConsumerConfig cc;
  cc.data_dir = dir.path();
  cc.group_id = "g";
  auto consumer = must(Consumer::open(cc));
  BT_REQUIRE_OK(consumer.subscribe({"orders"}));
  CHECK(consumer.assignment().size() == 3);

  // Alter: grow partitions, change retention; fields not named stay.
  TopicConfig change;
  change.partitions = 5;
  change.retention_ms = 1000;
  change.retention_bytes = 12345;  // not named: must not change
  BT_REQUIRE_OK(admin.alter_topic("orders", change, {"partitions", "retention_ms"}));
  d = must(admin.describe_topic("orders"));
  CHECK(d.config.partitions == 5);
  CHECK(d.partitions.size() == 5);
  CHECK(d.config.retention_ms == 1000);
  CHECK(d.config.retention_bytes == tc.retention_bytes);
  CHECK(d.partitions[1].end_offset == 10);  // existing data kept
  CHECK(d.partitions[4].end_offset == 0);
  CHECK(admin.alter_topic("orders", change, {"no_such_field"}).code() ==
        ErrorCode::kInvalidArgument);
  CHECK(admin.alter_topic("nope", change, {"partitions"}).code() == ErrorCode::kUnknownTopic);

  // Never shrink.
  TopicConfig shrink;
  shrink.partitions = 2;
  Status s = admin.alter_topic("orders", shrink, {"partitions"});
  INFO(s.message());
  CHECK(s.code() == ErrorCode::kInvalidArgument);
  CHECK(must(admin.describe_topic("orders")).partitions.size() == 5);

  // The producer sees the new partitions (it re-reads the topic within a second).
  REQUIRE(eventually([&] { return must(producer.partitions("orders")) == 5; }, 5000));
  auto id = must(producer.send("orders", std::nullopt, "new", {}, 4));
  CHECK(id.partition == 4);
  CHECK(id.offset == 0);
  // The group rebalances onto them.
  REQUIRE(eventually([&] {
    (void)consumer.poll([](const Record&) {}, 100, 10);
    return consumer.assignment().size() == 5;
  }));

  // Delete, while a consumer has partition 1 assigned (no group).
  BT_REQUIRE_OK(consumer.close());
  ConsumerConfig ac;
  ac.data_dir = dir.path();
  ac.auto_offset_reset = AutoOffsetReset::kEarliest;
  auto assigned = must(Consumer::open(ac));
  BT_REQUIRE_OK(assigned.assign({{"orders", 1}}));
  const std::int64_t held = must(admin.describe_topic("orders")).partitions[1].end_offset;
  BT_REQUIRE_OK(admin.delete_topic("orders"));
  // It gets what the partition held, then a clear error, and the partition is unassigned.
  std::int64_t read = 0;
  Status deleted = Status::ok();
  for (int i = 0; i < 100 && deleted.is_ok(); ++i) {
    auto n = assigned.poll([&](const Record&) { ++read; }, 100, 10);
    if (!n) deleted = n.status();
  }
  CHECK(read == held);
  INFO(deleted.message());
  CHECK(deleted.code() == ErrorCode::kUnknownTopic);
  CHECK(deleted.message().find("topic orders was deleted") != std::string::npos);
  CHECK(assigned.assignment().empty());
  CHECK(must(admin.list_topics()).empty());
  CHECK(admin.describe_topic("orders").status().code() == ErrorCode::kUnknownTopic);
  CHECK(admin.delete_topic("orders").code() == ErrorCode::kUnknownTopic);
  CHECK(!std::filesystem::exists(dir.path() + "/topics/orders"));
  // A producer that had its partitions mapped gets unknown-topic at once: the broker closed
  // them before deleting the files, so nothing is acknowledged into a deleted topic.
  for (std::int32_t p : {4, 1}) {
    auto gone = producer.send("orders", std::nullopt, "gone", {}, p);
    INFO(gone.status().message());
    CHECK(gone.status().code() == ErrorCode::kUnknownTopic);
  }
  // And the name can be used again, afresh.
  TopicConfig again;
  again.partitions = 2;
  BT_REQUIRE_OK(admin.create_topic("orders", again));
  d = must(admin.describe_topic("orders"));
  CHECK(d.partitions.size() == 2);
  CHECK(d.partitions[1].end_offset == 0);
  // The producer that wrote to the old topic's partition 1 appends to the new one's at once,
  // not to the deleted files.
  BT_REQUIRE_OK(producer.send("orders", "k", "reborn", {}, 1).status());
  CHECK(must(admin.describe_topic("orders")).partitions[1].end_offset == 1);
  ConsumerConfig rc;
  rc.data_dir = dir.path();
  rc.auto_offset_reset = AutoOffsetReset::kEarliest;
  auto reader = must(Consumer::open(rc));
  BT_REQUIRE_OK(reader.assign({{"orders", 1}}));
  std::string got;
  auto n = reader.poll([&](const Record& r) { got = std::string(r.value.value_or("")); }, 10, 2000);
  REQUIRE(n.is_ok());
  CHECK(*n == 1);
  CHECK(got == "reborn");
}

}  // namespace
}  // namespace sluice::broker_test
