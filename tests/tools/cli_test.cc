// The `sluice` CLI end to end: each test makes a data directory of its own under /dev/shm,
// starts `sluiced --data-dir` as a child process, and runs `sluice` subcommands as child
// processes, checking their stdout, stderr and exit codes (0 ok, 1 runtime error, 2 bad
// arguments).
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "tools/cli_support.h"

namespace {

using namespace sluice::cli_test;
using nlohmann::json;

// Writing to a child that exited must not kill the test process.
const bool kIgnoreSigpipe = [] {
  ::signal(SIGPIPE, SIG_IGN);
  return true;
}();

// `sluice ARGS --data-dir DIR`.
RunResult cli(const TestDir& dir, std::vector<std::string> args, const RunOptions& o = {}) {
  return run(sluice_args(std::move(args), dir.path()), o);
}

RunResult produce(const TestDir& dir, const std::string& topic, const std::string& input,
                  std::vector<std::string> extra = {}) {
  std::vector<std::string> args = {"produce", topic};
  args.insert(args.end(), extra.begin(), extra.end());
  RunOptions o;
  o.stdin_data = input;
  return cli(dir, args, o);
}

bool one_line(const std::string& s) {
  return !s.empty() && s.back() == '\n' && s.find('\n') == s.size() - 1;
}

std::vector<std::string> split_lines(const std::string& s) {
  std::vector<std::string> lines;
  std::istringstream in(s);
  for (std::string line; std::getline(in, line);) lines.push_back(line);
  return lines;
}

void create_topic(const TestDir& dir, const std::string& topic, int partitions) {
  auto r = cli(dir, {"topic", "create", topic, "--partitions", std::to_string(partitions),
                     "--segment-bytes", "65536"});
  INFO(r.err);
  REQUIRE(r.exit_code == 0);
}

// The committed offset, end offset and lag of one partition in `group describe --json`.
json group_row(const TestDir& dir, const std::string& group, const std::string& topic, int p) {
  auto r = cli(dir, {"group", "describe", group, "--json"});
  INFO(r.err);
  REQUIRE(r.exit_code == 0);
  json g = json::parse(r.out);
  for (const auto& o : g["offsets"])
    if (o["topic"] == topic && o["partition"] == p) return o;
  FAIL("no row for " << topic << "/" << p << " in " << r.out);
  return {};
}

// The path of a partition's first segment.
std::string first_segment(const TestDir& dir, const std::string& topic, int p) {
  return dir.path() + "/topics/" + topic + "/" + std::to_string(p) + "/00000000000000000000.seg";
}

}  // namespace

TEST_CASE("cli: every subcommand has --help and bad arguments get one line and exit code 2",
          "[cli][process]") {
  const std::vector<std::vector<std::string>> commands = {{"topic", "create"},
                                                          {"topic", "list"},
                                                          {"topic", "describe"},
                                                          {"topic", "alter"},
                                                          {"topic", "delete"},
                                                          {"topic", "delete-records"},
                                                          {"produce"},
                                                          {"consume"},
                                                          {"group", "list"},
                                                          {"group", "describe"},
                                                          {"group", "reset-offsets"},
                                                          {"group", "delete"},
                                                          {"dump"},
                                                          {"verify"},
                                                          {"status"},
                                                          {"perf"}};
  for (auto args : commands) {
    args.emplace_back("--help");
    auto r = run(sluice_args(args, ""));
    INFO(args[0] << " " << args.size());
    CHECK(r.exit_code == 0);
    CHECK(r.out.find("--data-dir") != std::string::npos);
  }
  auto sluiced_help = run({SLUICED, "--help"});
  CHECK(sluiced_help.exit_code == 0);
  CHECK(sluiced_help.out.find("--data-dir") != std::string::npos);

  struct Bad {
    std::vector<std::string> args;
    std::string says;
  };
  const std::vector<Bad> bad = {
      {{}, "a subcommand is required"},
      {{"bogus"}, "unknown subcommand 'bogus'"},
      {{"topic"}, "sluice topic: a subcommand is required: create,"},
      {{"topic", "create"}, "topic is required"},
      {{"topic", "create", "t", "--partitions", "abc"}, "--partitions"},
      {{"topic", "create", "t", "--slow-reader-policy", "sometimes"}, "--slow-reader-policy"},
      {{"topic", "alter", "t"}, "nothing to change"},
      {{"produce", "t", "--header", "novalue"}, "--header takes name=value"},
      {{"consume", "t", "--from", "nowhere"}, "--from takes beginning, end"},
      {{"consume", "t", "--format", "%x"}, "unknown directive %x"},
      {{"consume", "t", "--format", "%s", "--json"}, "excludes"},
      {{"consume", "t", "--count", "0"}, "--count"},
      {{"consume", "t", "--group", "g", "--from", "5"}, "with --group"},
      {{"group", "reset-offsets", "g"}, "give exactly one of"},
      {{"group", "reset-offsets", "g", "--to-datetime", "yesterday"}, "--to-datetime takes"},
      {{"consume", "t", "--unknown-option"}, "--unknown-option"},
      {{"perf", "--consumers", "2", "--groups", "3"}, "--groups must be 1..2"},
      {{"perf", "--partitions", "65"}, "--partitions must be 1..64 for a local run"},
      {{"perf", "--kafka", "localhost:9", "--groups", "1"}, "--groups applies to local runs"},
      {{"perf", "--kafka", "localhost:9", "--hiccups", "1"}, "--hiccups applies to local runs"},
      {{"perf", "--hiccups", "-1"}, "--hiccups"},
  };
  for (const auto& b : bad) {
    auto r = run(sluice_args(b.args, ""));  // all refused before any data directory is used
    INFO("sluice " << (b.args.empty() ? "" : b.args[0]) << ": " << r.err);
    CHECK(r.exit_code == 2);
    CHECK(one_line(r.err));
    CHECK(r.err.find(b.says) != std::string::npos);
    CHECK(r.out.empty());
  }
}

TEST_CASE("cli: without a broker the broker commands say how to start one", "[cli][process]") {
  TestDir dir("nobroker");
  const std::string expected = "sluice: no broker is running for " + dir.path() +
                               ": start it with `sluiced --data-dir " + dir.path() + "`\n";
  for (std::vector<std::string> args : {std::vector<std::string>{"topic", "list"},
                                        {"topic", "create", "t"},
                                        {"group", "list"},
                                        {"status"}}) {
    auto r = cli(dir, args);
    INFO(args[0]);
    CHECK(r.exit_code == 1);
    CHECK(r.err == expected);
  }
  // SLUICE_DATA_DIR stands in for --data-dir.
  RunOptions o;
  o.env["SLUICE_DATA_DIR"] = dir.path();
  auto r = run(sluice_args({"status"}, ""), o);
  CHECK(r.exit_code == 1);
  CHECK(r.err == expected);
  // Produce and consume need no broker, but a data directory.
  auto p = produce(dir, "t", "x\n");
  CHECK(p.exit_code == 1);
  CHECK(one_line(p.err));
  CHECK(p.err.find("does not exist") != std::string::npos);
}

TEST_CASE("cli: topic create list describe alter and delete", "[cli][process]") {
  TestDir dir("topic");
  BrokerProcess broker(dir.path());

  auto c = cli(dir, {"topic", "create", "orders", "--partitions", "3", "--segment-bytes", "131072",
                     "--retention-bytes", "1048576", "--retention-ms", "60000",
                     "--max-record-bytes", "4096", "--slow-reader-policy", "backpressure"});
  INFO(c.err);
  REQUIRE(c.exit_code == 0);
  CHECK(c.out == "created topic orders (3 partitions)\n");
  create_topic(dir, "audit", 1);

  auto again = cli(dir, {"topic", "create", "orders"});
  CHECK(again.exit_code == 1);
  CHECK(one_line(again.err));
  CHECK(again.err.find("topic orders already exists") != std::string::npos);

  auto bad_name = cli(dir, {"topic", "create", "no/slash"});
  CHECK(bad_name.exit_code == 2);
  CHECK(bad_name.err.find("topic name 'no/slash'") != std::string::npos);

  auto list = cli(dir, {"topic", "list"});
  CHECK(list.exit_code == 0);
  CHECK(list.out == "audit\norders\n");
  auto list_json = cli(dir, {"topic", "list", "--json"});
  CHECK(json::parse(list_json.out) == json({"audit", "orders"}));

  REQUIRE(produce(dir, "orders", "a\nb\n", {"--partition", "1"}).exit_code == 0);
  auto d = cli(dir, {"topic", "describe", "orders"});
  CHECK(d.exit_code == 0);
  CHECK(d.out.find("topic orders: partitions 3, segment-bytes 131072, retention-bytes 1048576, "
                   "retention-ms 60000, max-record-bytes 4096, slow-reader-policy backpressure") !=
        std::string::npos);
  auto dj = json::parse(cli(dir, {"topic", "describe", "orders", "--json"}).out);
  CHECK(dj["name"] == "orders");
  CHECK(dj["config"]["segment_bytes"] == 131072);
  CHECK(dj["config"]["slow_reader_policy"] == "backpressure");
  REQUIRE(dj["partitions"].size() == 3);
  CHECK(dj["partitions"][1]["start_offset"] == 0);
  CHECK(dj["partitions"][1]["end_offset"] == 2);
  CHECK(dj["partitions"][1]["segments"] == 1);
  CHECK(dj["partitions"][1]["bytes"].get<std::uint64_t>() > 131072);
  CHECK(dj["partitions"][0]["end_offset"] == 0);

  // alter: only what is given changes.
  auto a = cli(dir, {"topic", "alter", "orders", "--partitions", "5", "--retention-ms=-1"});
  INFO(a.err);
  CHECK(a.exit_code == 0);
  CHECK(a.out == "altered topic orders: partitions=5, retention_ms=-1\n");
  dj = json::parse(cli(dir, {"topic", "describe", "orders", "--json"}).out);
  CHECK(dj["config"]["partitions"] == 5);
  CHECK(dj["config"]["retention_ms"] == -1);
  CHECK(dj["config"]["retention_bytes"] == 1048576);
  CHECK(dj["config"]["max_record_bytes"] == 4096);
  CHECK(dj["partitions"].size() == 5);
  auto shrink = cli(dir, {"topic", "alter", "orders", "--partitions", "2"});
  CHECK(shrink.exit_code == 2);
  CHECK(shrink.err.find("never shrink") != std::string::npos);

  // delete-records: partition 1 (records a, b) starts at 1; the others at their ends.
  auto dr = cli(dir, {"topic", "delete-records", "orders", "-p", "1", "--before", "1"});
  INFO(dr.err);
  CHECK(dr.exit_code == 0);
  CHECK(dr.out == "topic orders partition 1: starts at offset 1\n");
  auto consumed = cli(dir, {"consume", "orders", "-p", "1", "-e", "--format", "%o %s\\n"});
  CHECK(consumed.out == "1 b\n");
  CHECK(cli(dir, {"topic", "delete-records", "orders", "-p", "1", "--before", "0"}).out ==
        "topic orders partition 1: starts at offset 1\n");  // never back down
  auto past = cli(dir, {"topic", "delete-records", "orders", "-p", "1", "--before", "3"});
  CHECK(past.exit_code == 1);
  CHECK(one_line(past.err));
  CHECK(past.err.find("end offset is 2") != std::string::npos);
  auto all = cli(dir, {"topic", "delete-records", "orders", "--before=-1"});
  CHECK(all.exit_code == 0);
  CHECK(all.out.find("topic orders partition 1: starts at offset 2\n") != std::string::npos);
  dj = json::parse(cli(dir, {"topic", "describe", "orders", "--json"}).out);
  CHECK(dj["partitions"][1]["start_offset"] == 2);
  CHECK(dj["partitions"][1]["end_offset"] == 2);
  auto no_partition = cli(dir, {"topic", "delete-records", "orders", "-p", "9", "--before", "0"});
  CHECK(no_partition.exit_code == 2);
  CHECK(no_partition.err.find("has no partition 9") != std::string::npos);

  auto del = cli(dir, {"topic", "delete", "audit"});
  CHECK(del.exit_code == 0);
  CHECK(del.out == "deleted topic audit\n");
  CHECK(cli(dir, {"topic", "list"}).out == "orders\n");

  for (std::vector<std::string> args : {std::vector<std::string>{"topic", "describe", "audit"},
                                        {"topic", "delete", "audit"},
                                        {"topic", "delete-records", "audit", "--before", "0"},
                                        {"topic", "alter", "audit", "--partitions", "4"}}) {
    auto r = cli(dir, args);
    INFO(args[1]);
    CHECK(r.exit_code == 1);
    CHECK(one_line(r.err));
    CHECK(r.err.find("unknown topic audit in " + dir.path()) != std::string::npos);
  }
  CHECK(broker.stop() == 0);
}

TEST_CASE("cli: produce then consume with keys and headers in --format and --json",
          "[cli][process]") {
  TestDir dir("roundtrip");
  BrokerProcess broker(dir.path());
  create_topic(dir, "t", 1);

  auto p = produce(dir, "t", "k1:hello world\nno key here\nk2:a:b\n\n",
                   {"--key-delimiter", ":", "--header", "trace=abc", "-H", "empty=", "-v"});
  INFO(p.err);
  REQUIRE(p.exit_code == 0);
  CHECK(p.out.empty());
  CHECK(p.err ==
        "t partition 0 offset 0\nt partition 0 offset 1\nt partition 0 offset 2\n"
        "t partition 0 offset 3\n");

  auto plain = cli(dir, {"consume", "t", "-e"});
  CHECK(plain.exit_code == 0);
  CHECK(plain.out == "hello world\nno key here\na:b\n\n");

  auto f =
      cli(dir, {"consume", "t", "-e", "--format", "%t|%p|%o|%k|%s|%h|%K|%S|100%%\\t\\\\end\\n"});
  CHECK(f.exit_code == 0);
  CHECK(f.out ==
        "t|0|0|k1|hello world|trace=abc,empty=|2|11|100%\t\\end\n"
        "t|0|1||no key here|trace=abc,empty=|-1|11|100%\t\\end\n"
        "t|0|2|k2|a:b|trace=abc,empty=|2|3|100%\t\\end\n"
        "t|0|3|||trace=abc,empty=|-1|0|100%\t\\end\n");

  std::int64_t before = wall_ms();
  auto ts = cli(dir, {"consume", "t", "-e", "-f", "%T\\n"});
  for (const auto& line : split_lines(ts.out)) {
    std::int64_t t = std::stoll(line);
    CHECK(t <= before);
    CHECK(t > before - 60'000);  // milliseconds since the epoch, like kcat's %T
  }

  auto j = cli(dir, {"consume", "t", "-e", "--json"});
  CHECK(j.exit_code == 0);
  auto lines = split_lines(j.out);
  REQUIRE(lines.size() == 4);
  json r0 = json::parse(lines[0]);
  CHECK(r0["topic"] == "t");
  CHECK(r0["partition"] == 0);
  CHECK(r0["offset"] == 0);
  CHECK(r0["key"] == "k1");
  CHECK(r0["value"] == "hello world");
  CHECK(r0["timestamp"].get<std::int64_t>() <= before);
  CHECK(r0["headers"] ==
        json::parse(R"([{"name":"trace","value":"abc"},{"name":"empty","value":""}])"));
  json r1 = json::parse(lines[1]);
  CHECK(r1["key"].is_null());
  CHECK(r1["offset"] == 1);

  // A fixed key and an explicit partition.
  create_topic(dir, "multi", 4);
  REQUIRE(produce(dir, "multi", "x\ny\n", {"--key", "K", "--partition", "2"}).exit_code == 0);
  auto m = cli(dir, {"consume", "multi", "-e", "-f", "%p %k %s\\n"});
  CHECK(m.out == "2 K x\n2 K y\n");
  auto bad_partition = produce(dir, "multi", "x\n", {"--partition", "9"});
  CHECK(bad_partition.exit_code == 2);
  CHECK(bad_partition.err.find("--partition") != std::string::npos);
  CHECK(broker.stop() == 0);
}

TEST_CASE("cli: produce --file and -b send the whole input as one record", "[cli][process]") {
  TestDir dir("binary");
  BrokerProcess broker(dir.path());
  create_topic(dir, "blobs", 1);
  std::string blob;
  for (int i = 0; i < 3000; ++i) blob += static_cast<char>(i * 7 % 256);  // NULs, newlines
  std::string path = dir.path() + ".blob";
  {
    std::ofstream out(path, std::ios::binary);
    out << blob;
  }
  auto f = cli(dir, {"produce", "blobs", "--file", path, "--key", "file"});
  std::remove(path.c_str());
  INFO(f.err);
  REQUIRE(f.exit_code == 0);
  RunOptions o;
  o.stdin_data = blob;
  auto b = cli(dir, {"produce", "blobs", "-b"}, o);
  REQUIRE(b.exit_code == 0);

  auto sizes = cli(dir, {"consume", "blobs", "-e", "-f", "%o %k %S\\n"});
  CHECK(sizes.out == "0 file 3000\n1  3000\n");
  auto raw = cli(dir, {"consume", "blobs", "-e", "-f", "%s", "--from", "1"});
  CHECK(raw.out == blob);
  auto missing = cli(dir, {"produce", "blobs", "--file", dir.path() + "/no-such-file"});
  CHECK(missing.exit_code == 1);
  CHECK(one_line(missing.err));
  CHECK(missing.err.find("no-such-file") != std::string::npos);
  CHECK(broker.stop() == 0);
}

TEST_CASE("cli: consume -e with --from OFFSET or -N or @TIMESTAMP or end and --count",
          "[cli][process]") {
  TestDir dir("from");
  BrokerProcess broker(dir.path());
  create_topic(dir, "t", 2);
  REQUIRE(produce(dir, "t", "a\nb\nc\n", {"-p", "0"}).exit_code == 0);
  REQUIRE(produce(dir, "t", "x\n", {"-p", "1"}).exit_code == 0);
  std::this_thread::sleep_for(std::chrono::milliseconds(20));
  std::int64_t boundary = wall_ms();
  std::this_thread::sleep_for(std::chrono::milliseconds(20));
  REQUIRE(produce(dir, "t", "d\ne\n", {"-p", "0"}).exit_code == 0);

  auto all = cli(dir, {"consume", "t", "-e", "-f", "%p:%o:%s\\n"});
  CHECK(all.exit_code == 0);
  auto lines = split_lines(all.out);
  std::sort(lines.begin(), lines.end());
  CHECK(lines == std::vector<std::string>{"0:0:a", "0:1:b", "0:2:c", "0:3:d", "0:4:e", "1:0:x"});

  auto p0 = [&](std::vector<std::string> extra) {
    std::vector<std::string> args = {"consume", "t", "-p", "0", "-e", "-f", "%o\\n"};
    args.insert(args.end(), extra.begin(), extra.end());
    auto r = cli(dir, args);
    INFO(r.err);
    CHECK(r.exit_code == 0);
    return r.out;
  };
  CHECK(p0({}) == "0\n1\n2\n3\n4\n");
  CHECK(p0({"--from", "3"}) == "3\n4\n");
  CHECK(p0({"--from=-2"}) == "3\n4\n");
  CHECK(p0({"--from", "@" + std::to_string(boundary)}) == "3\n4\n");
  CHECK(p0({"--from", "end"}) == "");
  CHECK(p0({"--from", "99"}) == "");               // past the end: clamped to the end
  CHECK(p0({"--from=-99"}) == "0\n1\n2\n3\n4\n");  // before the start: from the start
  CHECK(p0({"--count", "2", "--from", "1"}) == "1\n2\n");

  auto count = cli(dir, {"consume", "t", "-c", "4", "-f", "%s\\n"});  // no -e: count ends it
  CHECK(count.exit_code == 0);
  CHECK(count.lines() == 4);
  CHECK(broker.stop() == 0);
}

TEST_CASE("cli: consume follows until SIGINT or SIGTERM and a group consumer commits and leaves",
          "[cli][process]") {
  TestDir dir("follow");
  BrokerProcess broker(dir.path());
  create_topic(dir, "t", 2);
  REQUIRE(produce(dir, "t", "a\nb\n", {"-p", "0"}).exit_code == 0);

  for (int sig : {SIGINT, SIGTERM}) {
    INFO("signal " << sig);
    std::string group = "followers-" + std::to_string(sig);
    Child c(sluice_args({"consume", "t", "--group", group, "-f", "%p:%o:%s\\n"}, dir.path()));
    REQUIRE(c.wait_for_output(
        [](const std::string& o) { return o.find("0:0:a\n0:1:b\n") != std::string::npos; }, 5000));
    // The member is in the group while it runs.
    auto live = json::parse(cli(dir, {"group", "describe", group, "--json"}).out);
    CHECK(live["state"] == "Stable");
    REQUIRE(live["members"].size() == 1);
    CHECK(live["members"][0]["assignment"].size() == 2);
    // It follows new records.
    REQUIRE(produce(dir, "t", "c" + std::to_string(sig) + "\n", {"-p", "1"}).exit_code == 0);
    const std::string record = ":c" + std::to_string(sig) + "\n";
    REQUIRE(c.wait_for_output(
        [&](const std::string& o) { return o.find(record) != std::string::npos; }, 5000));
    c.signal(sig);
    const RunResult& r = c.wait(5000);
    INFO(r.err);
    CHECK(r.exit_code == 0);
    CHECK(!r.timed_out);
    // It committed what it printed and left.
    auto after = json::parse(cli(dir, {"group", "describe", group, "--json"}).out);
    CHECK(after["members"].empty());
    CHECK(after["state"] == "Empty");
    for (const auto& o : after["offsets"]) {
      CHECK(o["committed"] == o["end_offset"]);
      CHECK(o["lag"] == 0);
    }
  }
  // A follower without a group stops on SIGTERM too.
  Child plain(sluice_args({"consume", "t"}, dir.path()));
  REQUIRE(plain.wait_for_output([](const std::string& o) { return o.size() >= 4; }, 5000));
  plain.signal(SIGTERM);
  CHECK(plain.wait(5000).exit_code == 0);
  CHECK(broker.stop() == 0);
}

TEST_CASE(
    "cli: consume --group continues after the last commit and group describe "
    "reset-offsets delete work",
    "[cli][process]") {
  TestDir dir("group");
  BrokerProcess broker(dir.path());
  create_topic(dir, "t", 2);
  REQUIRE(produce(dir, "t", "a\nb\nc\nd\n", {"-p", "0"}).exit_code == 0);
  REQUIRE(produce(dir, "t", "x\ny\n", {"-p", "1"}).exit_code == 0);

  // First run: 3 records, then exit (and commit).
  auto first = cli(dir, {"consume", "t", "--group", "billing", "-c", "3", "-f", "%p:%o\\n"});
  INFO(first.err);
  REQUIRE(first.exit_code == 0);
  auto first_lines = split_lines(first.out);
  REQUIRE(first_lines.size() == 3);
  // Second run: everything else, no record twice.
  auto second = cli(dir, {"consume", "t", "--group", "billing", "-e", "-f", "%p:%o\\n"});
  REQUIRE(second.exit_code == 0);
  auto all = first_lines;
  for (const auto& l : split_lines(second.out)) all.push_back(l);
  std::sort(all.begin(), all.end());
  CHECK(all == std::vector<std::string>{"0:0", "0:1", "0:2", "0:3", "1:0", "1:1"});

  // describe: committed = end, lag 0; then more records make lag.
  REQUIRE(produce(dir, "t", "e\nf\n", {"-p", "0"}).exit_code == 0);
  auto row = group_row(dir, "billing", "t", 0);
  CHECK(row["committed"] == 4);
  CHECK(row["end_offset"] == 6);
  CHECK(row["lag"] == 2);
  auto text = cli(dir, {"group", "describe", "billing"});
  CHECK(text.exit_code == 0);
  CHECK(text.out.find("group billing: state Empty") != std::string::npos);
  CHECK(text.out.find("COMMITTED") != std::string::npos);
  auto list = cli(dir, {"group", "list"});
  CHECK(list.out == "billing\n");

  // reset-offsets, then consume again.
  auto reset = cli(dir, {"group", "reset-offsets", "billing", "--topic", "t", "--to-offset", "1"});
  INFO(reset.err);
  CHECK(reset.exit_code == 0);
  CHECK(reset.out.find("reset the offsets of group billing") != std::string::npos);
  CHECK(group_row(dir, "billing", "t", 0)["committed"] == 1);
  CHECK(group_row(dir, "billing", "t", 1)["committed"] == 1);
  auto again = cli(dir, {"consume", "t", "--group", "billing", "-e", "-f", "%p:%o\\n"});
  auto again_lines = split_lines(again.out);
  std::sort(again_lines.begin(), again_lines.end());
  CHECK(again_lines == std::vector<std::string>{"0:1", "0:2", "0:3", "0:4", "0:5", "1:1"});
  CHECK(cli(dir, {"group", "reset-offsets", "billing", "--to-earliest"}).exit_code == 0);
  CHECK(group_row(dir, "billing", "t", 0)["committed"] == 0);
  CHECK(cli(dir, {"group", "reset-offsets", "billing", "--to-latest"}).exit_code == 0);
  CHECK(group_row(dir, "billing", "t", 0)["committed"] == 6);
  CHECK(cli(dir, {"group", "reset-offsets", "billing", "--to-timestamp", "0"}).exit_code == 0);
  CHECK(group_row(dir, "billing", "t", 0)["committed"] == 0);
  CHECK(cli(dir, {"group", "reset-offsets", "billing", "--to-datetime", "2999-01-01T00:00:00Z"})
            .exit_code == 0);
  CHECK(group_row(dir, "billing", "t", 0)["committed"] == 6);

  // A live member blocks reset-offsets and delete, with a message saying so.
  {
    Child member(sluice_args({"consume", "t", "--group", "billing"}, dir.path()));
    std::int64_t deadline = now_ms() + 5000;
    json live;
    do {
      member.pump(50);
      live = json::parse(cli(dir, {"group", "describe", "billing", "--json"}).out);
    } while (live["members"].empty() && now_ms() < deadline);
    REQUIRE(live["members"].size() == 1);
    auto busy = cli(dir, {"group", "reset-offsets", "billing", "--to-earliest"});
    CHECK(busy.exit_code == 1);
    CHECK(one_line(busy.err));
    CHECK(busy.err.find("live member") != std::string::npos);
    member.signal(SIGTERM);
    CHECK(member.wait(5000).exit_code == 0);
  }

  auto del = cli(dir, {"group", "delete", "billing"});
  INFO(del.err);
  CHECK(del.exit_code == 0);
  CHECK(del.out == "deleted group billing\n");
  auto gone = cli(dir, {"group", "describe", "billing"});
  CHECK(gone.exit_code == 1);
  CHECK(gone.err == "sluice: unknown group billing: see `sluice group list`\n");
  CHECK(cli(dir, {"group", "list"}).out.empty());
  CHECK(broker.stop() == 0);
}

TEST_CASE("cli: an unknown topic is named with what to do", "[cli][process]") {
  TestDir dir("unknown");
  BrokerProcess broker(dir.path());
  create_topic(dir, "known", 1);
  const std::string unknown = "unknown topic nosuch in " + dir.path();
  auto p = produce(dir, "nosuch", "x\n");
  CHECK(p.exit_code == 1);
  CHECK(p.err == "sluice: " + unknown + ": create it with `sluice topic create nosuch`\n");
  for (std::vector<std::string> args : {std::vector<std::string>{"consume", "nosuch", "-e"},
                                        {"consume", "nosuch", "-G", "g", "-e"},
                                        {"consume", "nosuch", "-p", "0", "-e"}}) {
    auto r = cli(dir, args);
    INFO(args.size());
    CHECK(r.exit_code == 1);
    CHECK(one_line(r.err));
    CHECK(r.err.find(unknown) != std::string::npos);
  }
  auto d = cli(dir, {"topic", "describe", "nosuch"});
  CHECK(d.exit_code == 1);
  CHECK(d.err == "sluice: " + unknown + ": see `sluice topic list`\n");
  auto no_partition = cli(dir, {"consume", "known", "-p", "7", "-e"});
  CHECK(no_partition.exit_code == 2);
  CHECK(no_partition.err == "sluice: topic known has no partition 7\n");
  CHECK(broker.stop() == 0);
}

TEST_CASE("cli: a user outside the group owning a topic gets permission denied on topic X",
          "[cli][process]") {
  if (::geteuid() != 0) {
    WARN("skipped: needs root, to run the CLI as the unprivileged user 65534 (nobody)");
    return;
  }
  TestDir dir("perm");
  BrokerProcess broker(dir.path());
  create_topic(dir, "secret", 1);
  REQUIRE(produce(dir, "secret", "classified\n").exit_code == 0);
  // Directories traversable by anyone, so that the files' own 0660 root:root modes decide.
  std::string t = dir.path() + "/topics/secret";
  for (const auto& d : {dir.path(), dir.path() + "/topics", t, t + "/0"})
    REQUIRE(::chmod(d.c_str(), 02771) == 0);
  struct stat st {};
  REQUIRE(::stat((t + "/topic.json").c_str(), &st) == 0);
  REQUIRE((st.st_mode & 0777) == 0660);
  REQUIRE(::stat(first_segment(dir, "secret", 0).c_str(), &st) == 0);
  REQUIRE((st.st_mode & 0777) == 0660);

  RunOptions nobody;
  nobody.as_nobody = true;
  nobody.stdin_data = "x\n";
  for (std::vector<std::string> args : {std::vector<std::string>{"produce", "secret"},
                                        {"consume", "secret", "-e"},
                                        {"consume", "secret", "-p", "0", "-e"}}) {
    auto r = cli(dir, args, nobody);
    INFO(args[0] << ": " << r.err);
    CHECK(r.exit_code == 1);
    CHECK(one_line(r.err));
    CHECK(r.err.rfind("sluice: permission denied on topic secret", 0) == 0);
  }
  // With the configuration readable, the partition's files still say no.
  REQUIRE(::chmod((t + "/topic.json").c_str(), 0664) == 0);
  auto c = cli(dir, {"consume", "secret", "-p", "0", "-e"}, nobody);
  CHECK(c.exit_code == 1);
  CHECK(c.err.rfind("sluice: permission denied on topic secret", 0) == 0);
  // Only reading: consume and verify work read-only once the files are readable.
  REQUIRE(::chmod((t + "/0").c_str(), 02775) == 0);
  for (const auto& f : std::filesystem::directory_iterator(t + "/0"))
    REQUIRE(::chmod(f.path().c_str(), 0664) == 0);
  auto read = cli(dir, {"consume", "secret", "-p", "0", "-e"}, nobody);
  INFO(read.err);
  CHECK(read.exit_code == 0);
  CHECK(read.out == "classified\n");
  auto verify = cli(dir, {"verify", t}, nobody);
  INFO(verify.err);
  CHECK(verify.exit_code == 0);
  auto denied_write = cli(dir, {"produce", "secret"}, nobody);
  CHECK(denied_write.exit_code == 1);
  CHECK(denied_write.err.rfind("sluice: permission denied on topic secret", 0) == 0);
  CHECK(broker.stop() == 0);
}

TEST_CASE("cli: dump and verify while the broker runs find a flipped byte", "[cli][process]") {
  TestDir dir("verify");
  BrokerProcess broker(dir.path());
  create_topic(dir, "t", 2);
  create_topic(dir, ".dot", 1);  // a legal topic name, not a temporary one
  // Values of 32 bytes without key or headers: frames of 64 bytes, the second at byte 64.
  const std::string value(32, 'v');
  REQUIRE(produce(dir, "t", value + "\n" + value + "\n" + value + "\n", {"-p", "0"}).exit_code ==
          0);
  REQUIRE(produce(dir, "t", "k:v\n", {"-p", "1", "-K", ":", "-H", "h=1"}).exit_code == 0);
  REQUIRE(cli(dir, {"consume", "t", "-G", "g", "-e"}).exit_code == 0);  // the offsets table

  const std::string seg = first_segment(dir, "t", 0);
  auto dump = cli(dir, {"dump", seg});
  INFO(dump.err);
  CHECK(dump.exit_code == 0);
  CHECK(dump.out.find("segment " + seg + ": base offset 0") != std::string::npos);
  auto rows = split_lines(dump.out);
  int data_rows = 0;
  for (const auto& l : rows)
    if (l.find(" DATA ") != std::string::npos) {
      ++data_rows;
      CHECK(l.find(" ok") != std::string::npos);
      CHECK(l.find("      64 ") != std::string::npos);  // length
    }
  CHECK(data_rows == 3);
  CHECK(dump.out.find("3 records (offsets 0..2)") != std::string::npos);
  CHECK(dump.out.find("no damage") != std::string::npos);
  auto values = cli(dir, {"dump", "t/1/00000000000000000000.seg", "--values"});
  CHECK(values.exit_code == 0);
  CHECK(values.out.find("key=\"k\" headers=[h=1] value=\"v\"") != std::string::npos);
  auto dump_dir = cli(dir, {"dump", dir.path()});
  CHECK(dump_dir.exit_code == 2);
  CHECK(dump_dir.err.find("is a directory") != std::string::npos);

  auto ok = cli(dir, {"verify"});
  INFO(ok.out << ok.err);
  CHECK(ok.exit_code == 0);
  CHECK(ok.out.find("ok   t/0: 1 segment, 3 records, offsets 0..2") != std::string::npos);
  CHECK(ok.out.find("ok   t/1: 1 segment, 1 record") != std::string::npos);
  CHECK(ok.out.find("ok   .dot/0: 1 segment") != std::string::npos);
  CHECK(ok.out.find("ok   groups/offsets.tbl: 1 group, 2 committed offsets") != std::string::npos);
  CHECK(ok.out.find("no damage") != std::string::npos);
  CHECK(cli(dir, {"verify", dir.path() + "/topics/t"}).exit_code == 0);

  // Flip one byte of the second record's value.
  std::string header = read_file(seg).substr(0, 16);
  std::uint32_t header_bytes = 0;
  std::memcpy(&header_bytes, header.data() + 12, 4);
  {
    std::fstream f(seg, std::ios::in | std::ios::out | std::ios::binary);
    f.seekg(header_bytes + 64 + 40);
    char c = 0;
    f.get(c);
    f.seekp(header_bytes + 64 + 40);
    f.put(static_cast<char>(c ^ 0x20));
  }
  auto bad = cli(dir, {"verify"});
  CHECK(bad.exit_code == 1);
  CHECK(bad.out.find("DAMAGE " + seg + ": byte 64 (after offset 0): CRC-32C mismatch") !=
        std::string::npos);
  CHECK(bad.out.find("BAD  t/0") != std::string::npos);
  CHECK(one_line(bad.err));
  CHECK(bad.err.find("verify found 1 problem") != std::string::npos);
  auto bad_dump = cli(dir, {"dump", seg});
  CHECK(bad_dump.exit_code == 1);
  CHECK(bad_dump.out.find(" BAD") != std::string::npos);
  CHECK(bad_dump.out.find("DAMAGE " + seg + ": byte 64") != std::string::npos);

  auto nothing = cli(dir, {"verify", dir.path() + "/nowhere"});
  CHECK(nothing.exit_code == 1);
  CHECK(one_line(nothing.err));
  CHECK(broker.stop() == 0);
}

TEST_CASE("cli: verify names the files that processes which died left half-made",
          "[cli][process]") {
  TestDir dir("leftovers");
  {
    BrokerProcess broker(dir.path());  // the broker's sweep would remove them: stopped first
    create_topic(dir, "t", 1);
    REQUIRE(produce(dir, "t", "a\nb\n").exit_code == 0);
    REQUIRE(broker.stop() == 0);
  }
  pid_t dead = ::fork();
  if (dead == 0) ::_exit(0);
  REQUIRE(::waitpid(dead, nullptr, 0) == dead);  // reaped: no process has that pid now
  const std::string topics = dir.path() + "/topics";
  const std::string d = std::to_string(dead);
  std::ofstream(topics + "/t/0/rolling-" + d + "-7.tmp") << "x";
  std::ofstream(topics + "/t/0/new-" + std::to_string(::getpid()) + "-8.tmp") << "alive";
  std::filesystem::create_directories(topics + "/u~tmp-" + d + "-9/0");
  std::filesystem::create_directories(topics + "/t/1");  // beyond topic.json's 1 partition

  auto r = cli(dir, {"verify"});
  INFO(r.out << r.err);
  CHECK(r.exit_code == 0);  // leftovers are not damage
  CHECK(r.out.find("ok   t/0: 1 segment, 2 records") != std::string::npos);
  CHECK(r.out.find("note " + topics + "/t/0/rolling-" + d + "-7.tmp: left by process " + d +
                   ", which died half-way") != std::string::npos);
  CHECK(r.out.find("note " + topics + "/u~tmp-" + d + "-9: left by process " + d) !=
        std::string::npos);
  CHECK(r.out.find("note " + topics + "/t/1: a partition beyond the topic's count") !=
        std::string::npos);
  CHECK(r.out.find("new-" + std::to_string(::getpid())) == std::string::npos);  // its owner lives
  CHECK(r.out.find("no damage (3 files left by processes that died") != std::string::npos);
  // A partition's directory alone: its own leftovers.
  auto one = cli(dir, {"verify", topics + "/t/0"});
  CHECK(one.exit_code == 0);
  CHECK(one.out.find("note " + topics + "/t/0/rolling-" + d) != std::string::npos);
  CHECK(one.out.find("no damage (1 file left by processes that died") != std::string::npos);
}

TEST_CASE("cli: status shows the broker pid uptime topics partitions bytes and records/s",
          "[cli][process]") {
  TestDir dir("status");
  BrokerProcess broker(dir.path());
  create_topic(dir, "a", 2);
  create_topic(dir, "b", 1);
  auto s = cli(dir, {"status"});
  INFO(s.err);
  REQUIRE(s.exit_code == 0);
  CHECK(s.out.find("broker      pid " + std::to_string(broker.pid()) + ", up ") !=
        std::string::npos);
  CHECK(s.out.find("data dir    " + dir.path() + "\n") != std::string::npos);
  CHECK(s.out.find("topics      2\n") != std::string::npos);
  CHECK(s.out.find("partitions  3\n") != std::string::npos);
  CHECK(s.out.find("bytes       ") != std::string::npos);
  CHECK(s.out.find("records/s   ") != std::string::npos);
  auto j = json::parse(cli(dir, {"status", "--json"}).out);
  CHECK(j["pid"] == broker.pid());
  CHECK(j["topics"] == 2);
  CHECK(j["partitions"] == 3);
  CHECK(j["bytes"].get<std::uint64_t>() >= 3 * 65536);
  CHECK(j["uptime_ms"].get<std::int64_t>() >= 0);
  CHECK(j["records_per_second"].get<double>() >= 0);
  CHECK(broker.stop() == 0);
}

TEST_CASE("cli: perf over 4 partitions with 2 groups delivers every record to each group once",
          "[cli][process]") {
  TestDir dir("perf");
  auto r = cli(
      dir, {"perf", "--partitions", "4", "--producers", "2", "--consumers", "4", "--groups", "2",
            "--count", "20000", "--rate", "0", "--segment-mib", "1", "--no-pin", "--json"});
  INFO(r.err);
  REQUIRE(r.exit_code == 0);
  json j = json::parse(r.out);
  INFO(r.out);
  CHECK(j["complete"] == true);
  CHECK(j["errors"].empty());
  CHECK(j["config"]["partitions"] == 4);
  CHECK(j["config"]["groups"] == 2);
  REQUIRE(j["sent"]["records"] == 20000);
  // Sticky partitioning spreads the records over every partition.
  std::int64_t spread = 0;
  for (const auto& n : j["sent"]["records_per_partition"]) {
    CHECK(n.get<std::int64_t>() > 0);
    spread += n.get<std::int64_t>();
  }
  CHECK(spread == 20000);
  CHECK(j["received"]["records_per_group"] == json::array({20000, 20000}));
  const json& groups = j["received"]["groups"];
  REQUIRE(groups.size() == 2);
  for (const auto& g : groups) {
    CHECK(g["records"] == 20000);
    CHECK(g["exactly_once"] == true);
    CHECK(g["out_of_sequence"] == 0);
    // The group's members share the partitions: each partition read by exactly one member.
    REQUIRE(g["members"].size() == 2);
    std::vector<int> owners(4, 0);
    std::int64_t records = 0;
    for (const auto& m : g["members"]) {
      CHECK(!m["partitions"].empty());
      for (const auto& p : m["partitions"]) ++owners.at(p.get<std::size_t>());
      records += m["records"].get<std::int64_t>();
    }
    CHECK(owners == std::vector<int>{1, 1, 1, 1});
    CHECK(records == 20000);
  }

  // Without --groups each consumer is a group of its own and reads every record.
  auto all = cli(dir, {"perf", "--partitions", "2", "--consumers", "2", "--count", "5000", "--rate",
                       "0", "--segment-mib", "1", "--threads", "--json"});
  INFO(all.err);
  REQUIRE(all.exit_code == 0);
  json a = json::parse(all.out);
  CHECK(a["complete"] == true);
  CHECK(a["config"]["groups"] == 2);
  CHECK(a["received"]["records_per_consumer"] == json::array({5000, 5000}));
  CHECK(a["received"]["min_records"] == 5000);
  CHECK(a["config"]["warmup"] == true);
  CHECK(a["received"]["groups"][0]["out_of_sequence"] == 0);  // from the warm-up's end on
  CHECK(a["machine_hiccups"].is_null());  // 3 workers: not pinned on 2 CPUs, not measured

  // Cold: the records start at offset 0 of fresh partitions.
  auto cold = cli(dir, {"perf", "--partitions", "2", "--count", "5000", "--rate", "0",
                        "--segment-mib", "1", "--no-warmup", "--hiccups", "0.2", "--json"});
  INFO(cold.err);
  REQUIRE(cold.exit_code == 0);
  json c = json::parse(cold.out);
  CHECK(c["complete"] == true);
  CHECK(c["config"]["warmup"] == false);
  CHECK(c["received"]["min_records"] == 5000);
  CHECK(c["received"]["groups"][0]["out_of_sequence"] == 0);
  // Pinned (one producer, one consumer): the machine's hiccups on their CPUs were measured
  // first, and the floor they give rises with the percentile.
  if (c["config"]["pinned"] == true) {
    const json& h = c["machine_hiccups"];
    REQUIRE(h.is_object());
    CHECK(h["cpus"] == json::array({0, 1}));
    CHECK(h["seconds"] == 0.2);
    CHECK(h["lost_fraction"].get<double>() >= 0);
    CHECK(h["lost_fraction"].get<double>() <= 1);
    const json& f = h["latency_floor_ns"];
    CHECK(f["p50"].get<std::int64_t>() <= f["p99"].get<std::int64_t>());
    CHECK(f["p99"].get<std::int64_t>() <= f["p99.99"].get<std::int64_t>());
    CHECK(f["p99.99"].get<std::int64_t>() <= f["max"].get<std::int64_t>());
    CHECK(f["max"].get<std::int64_t>() <= 200'000'000);
  }
  // --hiccups 0: not measured.
  auto quick = cli(dir, {"perf", "--count", "1000", "--rate", "0", "--segment-mib", "1",
                         "--hiccups", "0", "--json"});
  REQUIRE(quick.exit_code == 0);
  CHECK(json::parse(quick.out)["machine_hiccups"].is_null());
}
