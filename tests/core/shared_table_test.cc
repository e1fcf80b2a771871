// shm/shared_table: the generic seqlocked table under the offsets table.
#include "shm/shared_table.h"

#include <sys/stat.h>

#include <atomic>
#include <catch2/catch.hpp>
#include <cstring>
#include <map>
#include <random>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "core/table_test_support.h"

namespace sluice::shm {
namespace {

using test::ok;
using test::ScratchDir;

const TableLayout kTest{0x31545354u /* "TST1" */, 64, 128};

TableOptions slots(std::uint64_t n, bool grow = true) {
  TableOptions o;
  o.slots = n;
  o.grow = grow;
  return o;
}

std::string key_of(int i) {
  return "key-" + std::to_string(i);
}

// A value that checks itself: `words` copies of (key << 40 | version), so a torn read (two
// versions mixed, or a length from one and bytes from another) shows.
std::string stamped(std::uint64_t key, std::uint64_t version) {
  const std::uint64_t word = key << 40 | version;
  const std::size_t words = 1 + version % 16;
  std::string v(words * 8, '\0');
  for (std::size_t w = 0; w < words; ++w) std::memcpy(v.data() + w * 8, &word, 8);
  return v;
}

// The version in a stamped value, or -1 if it is torn or belongs to another key.
std::int64_t check_stamped(std::uint64_t key, const std::string& v) {
  if (v.empty() || v.size() % 8 != 0) return -1;
  std::uint64_t first;
  std::memcpy(&first, v.data(), 8);
  if (first >> 40 != key) return -1;
  const std::uint64_t version = first & ((std::uint64_t{1} << 40) - 1);
  if (v.size() != (1 + version % 16) * 8) return -1;
  for (std::size_t at = 8; at < v.size(); at += 8) {
    std::uint64_t w;
    std::memcpy(&w, v.data() + at, 8);
    if (w != first) return -1;
  }
  return static_cast<std::int64_t>(version);
}

std::uint64_t slot_offset(const SharedTable& t, std::uint64_t i) {
  return kTableHeaderBytes +
         i * table_slot_bytes(t.layout().key_capacity, t.layout().value_capacity);
}

// Keys that all hash to the same home slot of a `slots`-slot table.
std::vector<std::string> colliding_keys(std::uint64_t slots, std::size_t n) {
  std::map<std::uint64_t, std::vector<std::string>> by_home;
  for (int i = 0;; ++i) {
    std::string k = "c" + std::to_string(i);
    auto& v = by_home[table_hash(k) & (slots - 1)];
    v.push_back(k);
    if (v.size() == n) return v;
  }
}

TEST_CASE("shared table: a put is read back by the writer and by readers", "[core][table]") {
  ScratchDir dir;
  const std::string path = dir.path() + "/t.tbl";
  auto writer = ok(SharedTable::open_writer(path, kTest, slots(64)));
  CHECK(writer.slot_count() == 64);
  CORE_REQUIRE_OK(writer.put("alpha", "one"));
  CORE_REQUIRE_OK(writer.put("beta", ""));
  CORE_REQUIRE_OK(writer.put("alpha", "uno"));  // replaces
  CHECK(writer.size() == 2);

  auto reader = ok(SharedTable::open_reader(path, kTest));
  auto borrowed = writer.reader();
  for (SharedTable* t : {&writer, &reader, &borrowed}) {
    CHECK(ok(t->get("alpha")) == std::optional<std::string>("uno"));
    CHECK(ok(t->get("beta")) == std::optional<std::string>(""));
    CHECK(ok(t->get("gamma")) == std::nullopt);
  }
  auto all = ok(reader.scan());
  REQUIRE(all.size() == 2);
  auto alphas = ok(reader.scan("alp"));
  REQUIRE(alphas.size() == 1);
  CHECK(alphas[0].key == "alpha");
  CHECK(alphas[0].value == "uno");

  // Readers cannot write.
  Status s = reader.put("x", "y");
  CHECK(s.code() == ErrorCode::kPermissionDenied);
  CHECK(borrowed.put("x", "y").code() == ErrorCode::kPermissionDenied);
  // Keys and values are bounded by the layout.
  CHECK(writer.put(std::string(65, 'k'), "v").code() == ErrorCode::kInvalidArgument);
  CHECK(writer.put("", "v").code() == ErrorCode::kInvalidArgument);
  CHECK(writer.put("k", std::string(129, 'v')).code() == ErrorCode::kInvalidArgument);
  CORE_REQUIRE_OK(writer.put(std::string(64, 'k'), std::string(128, 'v')));
  CHECK(ok(reader.get(std::string(64, 'k'))) == std::optional<std::string>(std::string(128, 'v')));
}

TEST_CASE("shared table: entries survive closing and reopening the writer", "[core][table]") {
  ScratchDir dir;
  const std::string path = dir.path() + "/sub/t.tbl";  // the directory is created
  {
    auto w = ok(SharedTable::open_writer(path, kTest, slots(128)));
    for (int i = 0; i < 50; ++i) CORE_REQUIRE_OK(w.put(key_of(i), stamped(std::uint64_t(i), 7)));
    CHECK(ok(w.erase(key_of(3))));
  }
  auto w = ok(SharedTable::open_writer(path, kTest, slots(4096)));  // slots only at creation
  CHECK(w.slot_count() == 128);
  CHECK(w.size() == 49);
  CHECK(w.recovery().odd_seqs_evened == 0);
  CHECK_FALSE(w.recovery().unretired);
  for (int i = 0; i < 50; ++i) {
    auto v = ok(w.get(key_of(i)));
    if (i == 3) {
      CHECK_FALSE(v);
    } else {
      REQUIRE(v);
      CHECK(check_stamped(std::uint64_t(i), *v) == 7);
    }
  }
}

TEST_CASE("shared table: a child process writes, the parent reads after it exits",
          "[core][table][process]") {
  ScratchDir dir;
  const std::string path = dir.path() + "/t.tbl";
  pid_t child = test::spawn([&] {
    auto w = SharedTable::open_writer(path, kTest, slots(256));
    if (!w) return 2;
    for (int i = 0; i < 150; ++i)
      if (!w->put(key_of(i), stamped(std::uint64_t(i), std::uint64_t(i) + 1))) return 3;
    return 0;
  });
  REQUIRE(test::wait_child(child) == 0);
  auto r = ok(SharedTable::open_reader(path, kTest));
  for (int i = 0; i < 150; ++i) {
    auto v = ok(r.get(key_of(i)));
    REQUIRE(v);
    CHECK(check_stamped(std::uint64_t(i), *v) == i + 1);
  }
  // The child's lock died with it: the parent can write.
  auto w = ok(SharedTable::open_writer(path, kTest));
  CHECK(w.size() == 150);
}

TEST_CASE("shared table: a second writer is refused while the first holds the table",
          "[core][table]") {
  ScratchDir dir;
  const std::string path = dir.path() + "/t.tbl";
  auto first = ok(SharedTable::open_writer(path, kTest, slots(64)));
  auto second = SharedTable::open_writer(path, kTest, slots(64));
  REQUIRE_FALSE(second.is_ok());
  CHECK(second.status().code() == ErrorCode::kBusy);
  CHECK_THAT(second.status().message(), Catch::Contains(path));
  first = SharedTable();  // closed: the lock goes
  CHECK(SharedTable::open_writer(path, kTest, slots(64)).is_ok());
}

TEST_CASE("shared table: erase leaves a tombstone that probes walk past and inserts reuse",
          "[core][table]") {
  ScratchDir dir;
  auto w = ok(SharedTable::open_writer(dir.path() + "/t.tbl", kTest, slots(64)));
  auto keys = colliding_keys(64, 3);
  for (const auto& k : keys) CORE_REQUIRE_OK(w.put(k, k));
  auto r = ok(SharedTable::open_reader(w.path(), kTest));

  CHECK(ok(w.erase(keys[1])));
  CHECK_FALSE(ok(w.erase(keys[1])));
  CHECK(w.tombstones() == 1);
  CHECK(ok(r.get(keys[2])) == std::optional<std::string>(keys[2]));  // past the tombstone
  CHECK(ok(r.get(keys[1])) == std::nullopt);

  CORE_REQUIRE_OK(w.put(keys[1], "again"));  // takes the tombstone back
  CHECK(w.tombstones() == 0);
  CHECK(ok(r.get(keys[1])) == std::optional<std::string>("again"));

  // Erasing the end of a run leaves empty slots, not tombstones: nothing probes past them.
  CHECK(ok(w.erase(keys[1])));
  CHECK(w.tombstones() == 1);
  CHECK(ok(w.erase(keys[2])));
  CHECK(w.tombstones() == 0);
  CHECK(w.size() == 1);
  CHECK(ok(r.get(keys[0])) == std::optional<std::string>(keys[0]));

  // erase_prefix
  for (int i = 0; i < 20; ++i) CORE_REQUIRE_OK(w.put("p/" + std::to_string(i), "x"));
  CORE_REQUIRE_OK(w.put("q/1", "y"));
  CHECK(ok(w.erase_prefix("p/")) == 20);
  CHECK(ok(r.scan("p/")).empty());
  CHECK(ok(r.scan()).size() == 2);
}

TEST_CASE("shared table: a table that may not grow reports itself full", "[core][table]") {
  ScratchDir dir;
  auto w = ok(SharedTable::open_writer(dir.path() + "/t.tbl", kTest, slots(64, false)));
  for (int i = 0; i < 48; ++i) CORE_REQUIRE_OK(w.put(key_of(i), "v"));  // 3/4 of 64
  Status full = w.put(key_of(48), "v");
  CHECK(full.code() == ErrorCode::kOutOfRange);
  CHECK_THAT(full.message(), Catch::Contains("table full") && Catch::Contains("48 entries") &&
                                 Catch::Contains(w.path()));
  CORE_REQUIRE_OK(w.put(key_of(10), "replacing is fine"));
  CHECK(ok(w.erase(key_of(0))));
  CORE_REQUIRE_OK(w.put(key_of(48), "room again"));
  CHECK(w.slot_count() == 64);
  CHECK(w.put(key_of(49), "v").code() == ErrorCode::kOutOfRange);
}

TEST_CASE("shared table: a growing table rebuilds into a larger file and readers follow it",
          "[core][table]") {
  ScratchDir dir;
  const std::string path = dir.path() + "/t.tbl";
  auto w = ok(SharedTable::open_writer(path, kTest, slots(64)));
  CORE_REQUIRE_OK(w.put(key_of(0), stamped(0, 0)));
  auto r = ok(SharedTable::open_reader(path, kTest));
  auto borrowed = w.reader();
  struct stat before {};
  REQUIRE(::stat(path.c_str(), &before) == 0);

  for (int i = 0; i < 1000; ++i) CORE_REQUIRE_OK(w.put(key_of(i), stamped(std::uint64_t(i), 1)));
  CHECK(w.slot_count() >= 2048);
  CHECK(w.size() == 1000);
  struct stat after {};
  REQUIRE(::stat(path.c_str(), &after) == 0);
  CHECK(after.st_ino != before.st_ino);
  CHECK(after.st_size ==
        static_cast<off_t>(kTableHeaderBytes + w.slot_count() * table_slot_bytes(64, 128)));

  for (SharedTable* t : {&r, &borrowed}) {
    for (int i = 0; i < 1000; ++i) {
      auto v = ok(t->get(key_of(i)));
      REQUIRE(v);
      CHECK(check_stamped(std::uint64_t(i), *v) == 1);
    }
    CHECK(t->slot_count() == w.slot_count());
  }
  // No temporary file is left behind.
  for (const auto& e : std::filesystem::directory_iterator(dir.path()))
    CHECK(e.path().filename() == "t.tbl");

  // Many erasures, then inserts: the tombstones are dropped by a rebuild, not kept for ever.
  for (int i = 0; i < 1000; ++i) CHECK(ok(w.erase(key_of(i))));
  for (int i = 1000; i < 3000; ++i) CORE_REQUIRE_OK(w.put(key_of(i), "x"));
  CHECK(w.size() == 2000);
  CHECK(w.size() + w.tombstones() <= w.slot_count() * 3 / 4);
  CHECK(ok(r.get(key_of(2999))) == std::optional<std::string>("x"));
}

TEST_CASE("shared table: wrong magic, version, schema or layout is refused, naming the file",
          "[core][table]") {
  ScratchDir dir;
  const std::string path = dir.path() + "/t.tbl";
  { auto w = ok(SharedTable::open_writer(path, kTest, slots(64))); }
  std::string expected;
  ErrorCode code = ErrorCode::kBadFormat;
  TableLayout layout = kTest;
  SECTION("magic") {
    std::uint64_t magic = 0x0123456789abcdefULL;
    test::poke(path, offsetof(TableHeader, magic), &magic, 8);
    expected = "bad magic";
  }
  SECTION("version") {
    std::uint32_t version = kTableFormatVersion + 1;
    test::poke(path, offsetof(TableHeader, version), &version, 4);
    expected = "table format version 2, this build reads version 1";
  }
  SECTION("schema") {
    layout.schema = 0x32545354u;  // "TST2"
    expected = "holds records of format 'TST1', this build expects 'TST2'";
  }
  SECTION("layout") {
    layout.value_capacity = 100;
    expected = "128-byte values";
  }
  SECTION("slot count") {
    std::uint64_t slots_field = 100;
    test::poke(path, offsetof(TableHeader, slot_count), &slots_field, 8);
    expected = "inconsistent table header";
    code = ErrorCode::kCorrupt;
  }
  auto r = SharedTable::open_reader(path, layout);
  REQUIRE_FALSE(r.is_ok());
  CHECK(r.status().code() == code);
  CHECK_THAT(r.status().message(), Catch::Contains(path) && Catch::Contains(expected));
  auto w = SharedTable::open_writer(path, layout, slots(64));
  REQUIRE_FALSE(w.is_ok());
  CHECK_THAT(w.status().message(), Catch::Contains(path) && Catch::Contains(expected));
}

TEST_CASE("shared table: a missing or empty file is refused, naming it", "[core][table]") {
  ScratchDir dir;
  auto missing = SharedTable::open_reader(dir.path() + "/none.tbl", kTest);
  REQUIRE_FALSE(missing.is_ok());
  CHECK(missing.status().code() == ErrorCode::kNotFound);
  CHECK_THAT(missing.status().message(), Catch::Contains(dir.path() + "/none.tbl"));
  CORE_REQUIRE_OK(create_file(dir.path() + "/empty.tbl", 0, 0600));
  auto empty = SharedTable::open_reader(dir.path() + "/empty.tbl", kTest);
  REQUIRE_FALSE(empty.is_ok());
  CHECK_THAT(empty.status().message(), Catch::Contains(dir.path() + "/empty.tbl"));
}

// ---- a writer that died mid-change -----------------------------------------------------------

TEST_CASE(
    "shared table: an update cut short by a dead writer leaves the old value readable, "
    "and the next writer evens the seq",
    "[core][table]") {
  ScratchDir dir;
  const std::string path = dir.path() + "/t.tbl";
  std::uint64_t at = 0;
  {
    auto w = ok(SharedTable::open_writer(path, kTest, slots(64)));
    CORE_REQUIRE_OK(w.put("k", stamped(1, 5)));
    at = slot_offset(w, table_hash("k") & 63);
  }
  // What a writer killed inside write_update leaves: seq odd, the other copy half written,
  // `current` not flipped.
  std::uint32_t seq = 0;
  test::peek(path, at + offsetof(SlotHeader, seq), &seq, 4);
  REQUIRE(seq == 2);
  std::uint32_t odd = seq + 1;
  test::poke(path, at + offsetof(SlotHeader, seq), &odd, 4);
  const std::string garbage(100, '\xee');
  const std::uint64_t copy1 = at + kSlotHeaderBytes + 64 + 128;
  test::poke(path, copy1, garbage.data(), garbage.size());
  std::uint32_t half = 100;
  test::poke(path, at + offsetof(SlotHeader, value_bytes) + 4, &half, 4);

  // Readers are not blocked: they read the committed copy.
  auto r = ok(SharedTable::open_reader(path, kTest));
  auto v = ok(r.get("k"));
  REQUIRE(v);
  CHECK(check_stamped(1, *v) == 5);
  CHECK(ok(r.scan()).size() == 1);

  auto w = ok(SharedTable::open_writer(path, kTest));
  CHECK(w.recovery().odd_seqs_evened == 1);
  test::peek(path, at + offsetof(SlotHeader, seq), &seq, 4);
  CHECK(seq == 4);
  CHECK(check_stamped(1, *ok(w.get("k"))) == 5);
  CORE_REQUIRE_OK(w.put("k", stamped(1, 6)));  // and updates go on
  CHECK(check_stamped(1, *ok(r.get("k"))) == 6);
}

TEST_CASE("shared table: an insert cut short by a dead writer never becomes an entry",
          "[core][table]") {
  ScratchDir dir;
  const std::string path = dir.path() + "/t.tbl";
  std::uint64_t at = 0;
  {
    auto w = ok(SharedTable::open_writer(path, kTest, slots(64)));
    at = slot_offset(w, table_hash("ghost") & 63);
  }
  // What a writer killed inside write_insert leaves: seq odd, hash and key written, state
  // still empty.
  std::uint32_t odd = 1;
  test::poke(path, at + offsetof(SlotHeader, seq), &odd, 4);
  std::uint64_t hash = table_hash("ghost");
  test::poke(path, at + offsetof(SlotHeader, hash), &hash, 8);
  std::uint32_t klen = 5;
  test::poke(path, at + offsetof(SlotHeader, key_bytes), &klen, 4);
  test::poke(path, at + kSlotHeaderBytes, "ghost", 5);

  auto r = ok(SharedTable::open_reader(path, kTest));
  CHECK(ok(r.get("ghost")) == std::nullopt);
  CHECK(ok(r.scan()).empty());
  auto w = ok(SharedTable::open_writer(path, kTest));
  CHECK(w.recovery().odd_seqs_evened == 1);
  CHECK(w.size() == 0);
  CORE_REQUIRE_OK(w.put("ghost", "real"));
  CHECK(ok(r.get("ghost")) == std::optional<std::string>("real"));
}

TEST_CASE("shared table: a rebuild that died after retiring the file leaves it usable",
          "[core][table]") {
  ScratchDir dir;
  const std::string path = dir.path() + "/t.tbl";
  {
    auto w = ok(SharedTable::open_writer(path, kTest, slots(64)));
    CORE_REQUIRE_OK(w.put("k", "v"));
  }
  // The rebuilder retired the file and died before renaming the new one into place; it left
  // its temporary file too (named after its pid, now dead).
  std::uint32_t retired = 1;
  test::poke(path, offsetof(TableHeader, retire), &retired, 4);
  pid_t dead = test::spawn([] { return 0; });
  REQUIRE(test::wait_child(dead) == 0);
  const std::string stale = path + ".tmp-" + std::to_string(dead) + "-0";
  CORE_REQUIRE_OK(create_file(stale, 8192, 0600));

  auto r = ok(SharedTable::open_reader(path, kTest));
  CHECK(ok(r.get("k")) == std::optional<std::string>("v"));  // the same file is still current
  auto w = ok(SharedTable::open_writer(path, kTest));
  CHECK(w.recovery().unretired);
  CHECK(w.recovery().temp_files_removed == 1);
  CHECK_FALSE(std::filesystem::exists(stale));
  test::peek(path, offsetof(TableHeader, retire), &retired, 4);
  CHECK(retired == 0);
  CORE_REQUIRE_OK(w.put("k", "v2"));
  CHECK(ok(r.get("k")) == std::optional<std::string>("v2"));
}

TEST_CASE("shared table: a read that overlaps two updates is retried, never torn",
          "[core][table]") {
  ScratchDir dir;
  auto w = ok(SharedTable::open_writer(dir.path() + "/t.tbl", kTest, slots(64)));
  CORE_REQUIRE_OK(w.put("k", stamped(1, 1)));  // 2 words, in copy 0
  auto r = w.reader();
  int calls = 0;
  r.set_read_hook([&] {
    // Between the reader's load of the length (2 words) and of the bytes: two updates, so
    // that copy 0 holds version 3 (4 words) when the reader copies it.
    if (++calls != 1) return;
    CORE_REQUIRE_OK(w.put("k", stamped(1, 2)));
    CORE_REQUIRE_OK(w.put("k", stamped(1, 3)));
  });
  auto v = ok(r.get("k"));
  REQUIRE(v);
  CHECK(check_stamped(1, *v) == 3);
  CHECK(calls == 2);  // the first read was thrown away
}

// ---- concurrency ----------------------------------------------------------------------------

TEST_CASE("shared table: concurrent readers never see a torn entry while a writer updates",
          "[core][table][concurrency]") {
  ScratchDir dir;
  const std::string path = dir.path() + "/t.tbl";
  auto w = ok(SharedTable::open_writer(path, kTest, slots(64)));
  constexpr int kStable = 24;  // always present once inserted
  constexpr int kChurn = 8;    // erased and inserted again and again
  for (int k = 0; k < kStable; ++k) CORE_REQUIRE_OK(w.put(key_of(k), stamped(std::uint64_t(k), 0)));
  const int rounds = 1500 * test::stress_scale();

  std::atomic<bool> done{false};
  std::atomic<bool> failed{false};
  std::atomic<std::uint64_t> reads{0};
  // Each thread writes only its own string; the main thread reads them after join().
  std::vector<std::string> problems(3);
  auto reader_loop = [&](SharedTable table, std::string& problem, unsigned seed) {
    std::vector<std::int64_t> last(kStable + kChurn, -1);
    std::mt19937 rng(seed);
    auto fail = [&](std::string p) {
      problem = std::move(p);
      failed.store(true, std::memory_order_release);
    };
    while (!done.load(std::memory_order_acquire) && problem.empty()) {
      // Half the reads on key 0, which the writer rewrites over and over: a slow read there
      // overlaps two updates, the case the seqlock exists for.
      const int k = rng() % 2 == 0 ? 0 : static_cast<int>(rng() % (kStable + kChurn));
      auto v = table.get(key_of(k));
      if (!v) {
        fail("get failed: " + v.status().message());
        break;
      }
      reads.fetch_add(1, std::memory_order_relaxed);
      if (!*v) {
        if (k < kStable) fail("stable key " + key_of(k) + " missing");
        continue;
      }
      const std::int64_t version = check_stamped(std::uint64_t(k), **v);
      if (version < 0) fail("torn value for " + key_of(k));
      auto& seen = last[static_cast<std::size_t>(k)];
      if (k < kStable && version < seen) fail("value of " + key_of(k) + " went back in time");
      seen = std::max(seen, version);
      if (rng() % 64 == 0) {
        auto all = table.scan("key-");
        if (!all) {
          fail("scan failed: " + all.status().message());
          break;
        }
        std::size_t stable_seen = 0;
        for (const TableEntry& e : *all) {
          const int key = std::stoi(e.key.substr(4));
          if (check_stamped(std::uint64_t(key), e.value) < 0) fail("torn value in a scan");
          if (key < kStable) ++stable_seen;
        }
        if (stable_seen != kStable) fail("a scan missed stable keys");
      }
    }
  };
  // One reader shares the writer's mapping (ThreadSanitizer checks the protocol on the same
  // addresses); one maps the file itself, as another process would.
  std::thread shared_mapping(reader_loop, w.reader(), std::ref(problems[0]), 1u);
  std::thread own_mapping(reader_loop, ok(SharedTable::open_reader(path, kTest)),
                          std::ref(problems[1]), 2u);

  // At least `rounds` rounds, and on until the readers have read a good deal (or 10 s passed).
  const std::uint64_t min_reads = 200000 * static_cast<std::uint64_t>(test::stress_scale());
  const std::int64_t deadline = monotonic_ns() + 10'000'000'000;
  for (int round = 1; !failed.load(std::memory_order_acquire); ++round) {
    if (round > rounds &&
        (reads.load(std::memory_order_relaxed) >= min_reads || monotonic_ns() > deadline))
      break;
    for (int k = 1; k < kStable; ++k) {
      Status s = w.put(key_of(k), stamped(std::uint64_t(k), std::uint64_t(round)));
      if (!s) problems[2] = s.message();
    }
    for (int hot = 0; hot < 64; ++hot) {
      Status s = w.put(key_of(0), stamped(0, std::uint64_t(round) * 64 + std::uint64_t(hot)));
      if (!s) problems[2] = s.message();
    }
    const int c = kStable + round % kChurn;
    if (round % 2 == 0) {
      Status s = w.put(key_of(c), stamped(std::uint64_t(c), std::uint64_t(round)));
      if (!s) problems[2] = s.message();
    } else {
      (void)w.erase(key_of(c));
    }
    if (round % 500 == 0) {
      // Readers follow it. Between 64 and 1024 slots, so that the scans stay quick.
      Status s = w.rebuild(w.slot_count() >= 1024 ? 64 : w.slot_count() * 2);
      if (!s) problems[2] = s.message();
    }
  }
  done.store(true, std::memory_order_release);
  shared_mapping.join();
  own_mapping.join();
  INFO("reads: " << reads.load() << "; problems: " << problems[0] << " | " << problems[1] << " | "
                 << problems[2]);
  CHECK(problems[0].empty());
  CHECK(problems[1].empty());
  CHECK(problems[2].empty());
  CHECK(reads.load() > 0);
}

TEST_CASE("shared table: a writer killed at random moments leaves only whole entries",
          "[core][table][process]") {
  ScratchDir dir;
  const std::string path = dir.path() + "/t.tbl";
  constexpr int kKeys = 40;
  std::mt19937 rng(12345);
  const int kills = 6 * test::stress_scale();
  for (int round = 0; round < kills; ++round) {
    pid_t child = test::spawn([&] {
      auto w = SharedTable::open_writer(path, kTest, slots(64));
      if (!w) return 2;
      for (std::uint64_t v = 1;; ++v)
        for (int k = 0; k < kKeys; ++k)
          if (!w->put(key_of(k), stamped(std::uint64_t(k), v))) return 3;
    });
    std::this_thread::sleep_for(std::chrono::microseconds(2000 + rng() % 20000));
    ::kill(child, SIGKILL);
    const int code = test::wait_child(child);
    REQUIRE(code == 128 + SIGKILL);

    // Before any recovery: readers see only whole values.
    auto r = SharedTable::open_reader(path, kTest);
    if (!r) continue;  // killed before the table existed
    for (const TableEntry& e : ok(r->scan()))
      CHECK(check_stamped(std::uint64_t(std::stoi(e.key.substr(4))), e.value) >= 0);
    // After the next writer's recovery too, and it can write at once.
    auto w = ok(SharedTable::open_writer(path, kTest, slots(64)));
    for (const TableEntry& e : ok(w.scan()))
      CHECK(check_stamped(std::uint64_t(std::stoi(e.key.substr(4))), e.value) >= 0);
    CORE_REQUIRE_OK(w.put(key_of(0), stamped(0, 1)));
  }
}

}  // namespace
}  // namespace sluice::shm
