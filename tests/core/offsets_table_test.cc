// core/src/offsets_table: consumer groups' committed offsets in <data>/groups/offsets.tbl.
#include "offsets_table.h"

#include <atomic>
#include <catch2/catch.hpp>
#include <string>
#include <thread>
#include <vector>

#include "core/table_test_support.h"
#include "data_dir.h"

namespace sluice {
namespace {

using test::ok;
using test::ScratchDir;

std::string table_path(const ScratchDir& dir) {
  return DataDir{dir.path()}.offsets_table();
}

TEST_CASE("offsets table: a commit is fetched back with its generation, time and metadata",
          "[core][offsets]") {
  ScratchDir dir;
  auto t = ok(OffsetsTable::open_or_create(table_path(dir), 256));
  CHECK(t.path() == dir.path() + "/groups/offsets.tbl");
  CORE_REQUIRE_OK(t.commit("g", "orders", 3, 1234, 7, "client meta", 42'000'000'000));
  auto c = ok(t.fetch("g", "orders", 3));
  REQUIRE(c);
  CHECK(c->topic == "orders");
  CHECK(c->partition == 3);
  CHECK(c->offset == 1234);
  CHECK(c->generation == 7);
  CHECK(c->commit_time_ns == 42'000'000'000);
  CHECK(c->metadata == "client meta");
  CHECK_FALSE(c->metadata_truncated);

  // Never committed: nothing (Kafka's -1 is the caller's to say).
  CHECK(ok(t.fetch("g", "orders", 4)) == std::nullopt);
  CHECK(ok(t.fetch("h", "orders", 3)) == std::nullopt);

  // A later commit replaces it; the time defaults to now.
  const std::int64_t before = shm::wall_clock_ns();
  CORE_REQUIRE_OK(t.commit("g", "orders", 3, 2000, -1));
  c = ok(t.fetch("g", "orders", 3));
  REQUIRE(c);
  CHECK(c->offset == 2000);
  CHECK(c->generation == -1);
  CHECK(c->metadata.empty());
  CHECK(c->commit_time_ns >= before);
}

TEST_CASE(
    "offsets table: committed offsets survive a broker restart (child writes, parent "
    "reads)",
    "[core][offsets][process]") {
  ScratchDir dir;
  const std::string path = table_path(dir);
  pid_t broker = test::spawn([&] {
    auto t = OffsetsTable::open_or_create(path, 1024);
    if (!t) return 2;
    for (int p = 0; p < 100; ++p)
      if (!t->commit("group-a", "t", p, 1000 + p, 3, "m" + std::to_string(p))) return 3;
    if (!t->set_group("group-a", 3, "range", "consumer")) return 4;
    return 0;
  });
  REQUIRE(test::wait_child(broker) == 0);

  // A client while the broker is down: read-only.
  auto client = ok(OffsetsTable::open_read_only(path));
  for (int p = 0; p < 100; ++p) {
    auto c = ok(client.fetch("group-a", "t", p));
    REQUIRE(c);
    CHECK(c->offset == 1000 + p);
    CHECK(c->metadata == "m" + std::to_string(p));
  }
  CHECK(ok(client.group("group-a"))->generation == 3);

  // The next broker goes on from there, and the client sees what it writes.
  auto next = ok(OffsetsTable::open_or_create(path));
  CHECK(next.size() == 101);
  CHECK(next.recovery().odd_seqs_evened == 0);
  CORE_REQUIRE_OK(next.commit("group-a", "t", 0, 5000, 4));
  CHECK(ok(client.fetch("group-a", "t", 0))->offset == 5000);
}

TEST_CASE(
    "offsets table: a group's generation and protocol and protocol type persist and "
    "generations go on upward",
    "[core][offsets]") {
  ScratchDir dir;
  const std::string path = table_path(dir);
  {
    auto t = ok(OffsetsTable::open_or_create(path, 256));
    CHECK_FALSE(ok(t.group("g")).has_value());
    CORE_REQUIRE_OK(t.set_group("g", 5, "roundrobin", "consumer"));
    CORE_REQUIRE_OK(t.set_generation("g", 6));  // keeps the protocol and its type
    CORE_REQUIRE_OK(t.set_group("workers", 2, "sessioned", "connect"));
    CORE_REQUIRE_OK(t.set_group("custom", 1, "p", "my-type"));  // a type whose name is not kept
  }
  auto t = ok(OffsetsTable::open_or_create(path, 256));
  auto g = ok(t.group("g"));
  REQUIRE(g);
  CHECK(g->group == "g");
  CHECK(g->generation == 6);
  CHECK(g->protocol == "roundrobin");
  CHECK(g->protocol_type == "consumer");
  CHECK(g->updated_ns > 0);
  CHECK(ok(t.group("workers"))->protocol_type == "connect");
  CHECK(ok(t.group("custom"))->protocol_type.empty());
  CHECK(ok(t.group("custom"))->protocol == "p");
  CHECK(t.set_group("g", -1, "x", "consumer").code() == ErrorCode::kInvalidArgument);
  CHECK(t.set_group("g", 1, std::string(OffsetsTable::kMaxProtocolBytes + 1, 'p'), "consumer")
            .code() == ErrorCode::kInvalidArgument);
}

TEST_CASE(
    "offsets table: a group record written before protocol types were kept reads with "
    "none and keeps its bytes",
    "[core][offsets]") {
  // The group record's value as builds before 2026-11-27 wrote it (docs/format.md, "Offsets
  // table"): flags zero.
  ScratchDir dir;
  const std::string path = table_path(dir);
  CORE_REQUIRE_OK(
      ok(OffsetsTable::open_or_create(path, 256)).set_group("g", 3, "range", "consumer"));
  {
    auto raw = ok(shm::SharedTable::open_writer(path, OffsetsTable::kLayout));
    auto value = ok(raw.get(offsets_group_key("g")));
    REQUIRE(value);
    REQUIRE(value->size() == 16 + 5);
    CHECK(static_cast<std::uint8_t>((*value)[6]) == 1);  // flags: type code 1, "consumer"
    CHECK((*value)[7] == 0);
    std::string old = *value;
    old[6] = 0;
    CORE_REQUIRE_OK(raw.put(offsets_group_key("g"), old));
  }
  auto t = ok(OffsetsTable::open_or_create(path, 256));
  auto g = ok(t.group("g"));
  REQUIRE(g);
  CHECK(g->generation == 3);
  CHECK(g->protocol == "range");
  CHECK(g->protocol_type.empty());
}

TEST_CASE("offsets table: groups and a group's offsets are listed, sorted", "[core][offsets]") {
  ScratchDir dir;
  auto t = ok(OffsetsTable::open_or_create(table_path(dir), 256));
  CORE_REQUIRE_OK(t.commit("b", "t2", 1, 11, 1));
  CORE_REQUIRE_OK(t.commit("b", "t1", 10, 12, 1));
  CORE_REQUIRE_OK(t.commit("b", "t1", 2, 13, 1));
  CORE_REQUIRE_OK(t.commit("a", "t1", 0, 14, 1));
  CORE_REQUIRE_OK(t.set_group("c", 2, "range", "consumer"));  // a record without offsets
  CORE_REQUIRE_OK(t.commit("bb", "t1", 0, 15, 1));            // "b" is a prefix of "bb": kept apart
  CHECK(ok(t.list_groups()) == std::vector<std::string>{"a", "b", "bb", "c"});
  auto offsets = ok(t.list_offsets("b"));
  REQUIRE(offsets.size() == 3);
  CHECK((offsets[0].topic == "t1" && offsets[0].partition == 2 && offsets[0].offset == 13));
  CHECK((offsets[1].topic == "t1" && offsets[1].partition == 10 && offsets[1].offset == 12));
  CHECK((offsets[2].topic == "t2" && offsets[2].partition == 1 && offsets[2].offset == 11));
  CHECK(ok(t.list_offsets("c")).empty());
  CHECK(ok(t.list_offsets("nobody")).empty());
}

TEST_CASE("offsets table: deleting a group removes its offsets and record, nothing else",
          "[core][offsets]") {
  ScratchDir dir;
  auto t = ok(OffsetsTable::open_or_create(table_path(dir), 256));
  for (int p = 0; p < 10; ++p) {
    CORE_REQUIRE_OK(t.commit("doomed", "t", p, p, 1));
    CORE_REQUIRE_OK(t.commit("kept", "t", p, p, 1));
  }
  CORE_REQUIRE_OK(t.set_group("doomed", 4, "range", "consumer"));
  CORE_REQUIRE_OK(t.set_group("kept", 9, "range", "consumer"));
  CORE_REQUIRE_OK(t.delete_group("doomed"));
  CHECK(ok(t.list_groups()) == std::vector<std::string>{"kept"});
  CHECK(ok(t.list_offsets("doomed")).empty());
  CHECK_FALSE(ok(t.group("doomed")).has_value());
  CHECK(ok(t.list_offsets("kept")).size() == 10);
  CHECK(ok(t.group("kept"))->generation == 9);
  CORE_REQUIRE_OK(t.delete_group("never-there"));

  CHECK(ok(t.delete_offset("kept", "t", 0)));
  CHECK_FALSE(ok(t.delete_offset("kept", "t", 0)));
  CHECK(ok(t.list_offsets("kept")).size() == 9);
}

TEST_CASE(
    "offsets table: metadata longer than 216 bytes is cut on a character boundary and "
    "flagged",
    "[core][offsets]") {
  ScratchDir dir;
  auto t = ok(OffsetsTable::open_or_create(table_path(dir), 256));
  const std::string exact(OffsetsTable::kMaxMetadataBytes, 'm');
  CORE_REQUIRE_OK(t.commit("g", "t", 0, 1, 1, exact));
  auto c = ok(t.fetch("g", "t", 0));
  CHECK(c->metadata == exact);
  CHECK_FALSE(c->metadata_truncated);

  // 215 ASCII bytes, then "é" (2 bytes) would end at byte 217: the cut drops all of it.
  const std::string long_one = std::string(215, 'a') + "\xc3\xa9" + std::string(100, 'z');
  CORE_REQUIRE_OK(t.commit("g", "t", 1, 1, 1, long_one));
  c = ok(t.fetch("g", "t", 1));
  CHECK(c->metadata == std::string(215, 'a'));
  CHECK(c->metadata_truncated);
}

TEST_CASE("offsets table: malformed names and values are refused with the reason",
          "[core][offsets]") {
  ScratchDir dir;
  auto t = ok(OffsetsTable::open_or_create(table_path(dir), 256));
  auto refused = [&](Status s, const std::string& words) {
    CHECK(s.code() == ErrorCode::kInvalidArgument);
    CHECK_THAT(s.message(), Catch::Contains(words));
  };
  refused(t.commit("", "t", 0, 1, 1), "group id is empty");
  refused(t.commit(std::string(256, 'g'), "t", 0, 1, 1), "256 bytes");
  refused(t.commit("g", "", 0, 1, 1), "topic name is empty");
  refused(t.commit("g", std::string(250, 't'), 0, 1, 1), "250 bytes");
  refused(t.commit("g", "t", -1, 1, 1), "partition -1");
  refused(t.commit("g", "t", 0, -5, 1), "offset -5");
  refused(t.commit("g", "t", 0, 1, -2), "generation -2");
  // The longest names fit.
  CORE_REQUIRE_OK(t.commit(std::string(255, 'g'), std::string(249, 't'), 1 << 30, 1, 1));
  CHECK(ok(t.fetch(std::string(255, 'g'), std::string(249, 't'), 1 << 30))->offset == 1);
}

TEST_CASE("offsets table: a read-only handle refuses writes; a missing table says so",
          "[core][offsets]") {
  ScratchDir dir;
  const std::string path = table_path(dir);
  auto missing = OffsetsTable::open_read_only(path);
  REQUIRE_FALSE(missing.is_ok());
  CHECK(missing.status().code() == ErrorCode::kNotFound);
  CHECK_THAT(missing.status().message(), Catch::Contains(path));

  auto w = ok(OffsetsTable::open_or_create(path, 256));
  auto r = ok(OffsetsTable::open_read_only(path));
  CHECK(r.commit("g", "t", 0, 1, 1).code() == ErrorCode::kPermissionDenied);
  CHECK(r.set_generation("g", 1).code() == ErrorCode::kPermissionDenied);
  CHECK(r.delete_group("g").code() == ErrorCode::kPermissionDenied);
  CHECK_FALSE(r.writable());

  auto second = OffsetsTable::open_or_create(path, 256);
  REQUIRE_FALSE(second.is_ok());
  CHECK(second.status().code() == ErrorCode::kBusy);
  CHECK_THAT(second.status().message(),
             Catch::Contains(path) && Catch::Contains("is a broker already running"));
}

TEST_CASE("offsets table: a wrong magic or version is refused, naming the file",
          "[core][offsets]") {
  ScratchDir dir;
  const std::string path = table_path(dir);
  { auto w = ok(OffsetsTable::open_or_create(path, 256)); }
  std::string expected;
  SECTION("magic") {
    test::poke(path, 0, "NOTATABL", 8);
    expected = "bad magic";
  }
  SECTION("version") {
    std::uint32_t v = 9;
    test::poke(path, 8, &v, 4);
    expected = "table format version 9, this build reads version 1";
  }
  SECTION("record format") {
    test::poke(path, 16, "OFS2", 4);
    expected = "holds records of format 'OFS2', this build expects 'OFS1'";
  }
  auto r = OffsetsTable::open_read_only(path);
  REQUIRE_FALSE(r.is_ok());
  CHECK(r.status().code() == ErrorCode::kBadFormat);
  CHECK_THAT(r.status().message(), Catch::Contains(path) && Catch::Contains(expected));
  auto w = OffsetsTable::open_or_create(path);
  REQUIRE_FALSE(w.is_ok());
  CHECK_THAT(w.status().message(), Catch::Contains(path) && Catch::Contains(expected));
}

TEST_CASE("offsets table: a full table that may not grow says so; a growing one grows",
          "[core][offsets]") {
  ScratchDir dir;
  SECTION("fixed") {
    auto t = ok(OffsetsTable::open_or_create(table_path(dir), 64, false));
    for (int p = 0; p < 48; ++p) CORE_REQUIRE_OK(t.commit("g", "t", p, p, 1));
    Status s = t.commit("g", "t", 48, 48, 1);
    CHECK(s.code() == ErrorCode::kOutOfRange);
    CHECK_THAT(s.message(), Catch::Contains("table full") && Catch::Contains(table_path(dir)));
  }
  SECTION("growing") {
    auto t = ok(OffsetsTable::open_or_create(table_path(dir), 64));
    auto r = ok(OffsetsTable::open_read_only(table_path(dir)));
    for (int p = 0; p < 500; ++p) CORE_REQUIRE_OK(t.commit("g", "t", p, p, 1));
    CHECK(t.slot_count() >= 1024);
    CHECK(ok(r.list_offsets("g")).size() == 500);
    CHECK(ok(r.fetch("g", "t", 499))->offset == 499);
  }
}

TEST_CASE("offsets table: concurrent fetches never see a torn commit",
          "[core][offsets][concurrency]") {
  ScratchDir dir;
  auto t = ok(OffsetsTable::open_or_create(table_path(dir), 256));
  CORE_REQUIRE_OK(t.commit("g", "t", 0, 0, 0, "0", 0));
  std::atomic<bool> done{false};
  std::atomic<std::uint64_t> reads{0};
  std::atomic<bool> done_reading{false};
  std::string problem;  // written by the reader only, read after join()
  std::thread reader([&, r = t.reader()]() mutable {
    std::int64_t last = 0;
    while (!done.load(std::memory_order_acquire) && problem.empty()) {
      auto c = r.fetch("g", "t", 0);
      if (!c || !*c) {
        problem = "fetch failed";
        break;
      }
      reads.fetch_add(1, std::memory_order_relaxed);
      // Each commit's fields agree: generation = offset % 1000, metadata = the offset.
      const CommittedOffset& v = **c;
      if (v.generation != v.offset % 1000 || v.metadata != std::to_string(v.offset) ||
          v.commit_time_ns != v.offset)
        problem = "torn commit at offset " + std::to_string(v.offset);
      if (v.offset < last) problem = "offset went back";
      last = v.offset;
    }
    done_reading.store(true);
  });
  std::string write_problem;
  const std::int64_t deadline = shm::monotonic_ns() + 5'000'000'000;
  for (std::int64_t o = 1; write_problem.empty(); ++o) {
    if (o > 20000 && (reads.load(std::memory_order_relaxed) > 100000 ||
                      shm::monotonic_ns() > deadline || done_reading.load()))
      break;
    Status s = t.commit("g", "t", 0, o, static_cast<std::int32_t>(o % 1000), std::to_string(o), o);
    if (!s) write_problem = s.message();
  }
  done.store(true, std::memory_order_release);
  reader.join();
  INFO(problem << write_problem);
  CHECK(problem.empty());
  CHECK(write_problem.empty());
  CHECK(reads.load() > 0);
}

}  // namespace
}  // namespace sluice
