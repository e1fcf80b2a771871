// Helpers shared by the shm/ tests: scratch directories under /dev/shm, child processes,
// record payloads that say who wrote them, and readers that collect what they see.
#pragma once

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <catch2/catch.hpp>
#include <cerrno>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <functional>
#include <iostream>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <utility>
#include <vector>

#include "process_support.h"
#include "shm/clock.h"
#include "shm/log_appender.h"
#include "shm/log_reader.h"
#include "shm/log_verifier.h"
#include "shm/partition_log.h"
#include "shm/segment.h"
#include "shm/status.h"

namespace sluice::shm::test {

// ---- results ---------------------------------------------------------------------------------

#define REQUIRE_OK(expr)                         \
  do {                                           \
    ::sluice::Status require_ok_status = (expr); \
    INFO(require_ok_status.message());           \
    REQUIRE(require_ok_status.is_ok());          \
  } while (false)

template <class T>
T unwrap(Result<T> r) {
  INFO(r.status().message());
  REQUIRE(r.is_ok());
  return std::move(r).value();
}

// ---- sizes ---------------------------------------------------------------------------------

// 1 normally; 20 with SLUICE_STRESS=1. [stress] tests multiply their sizes by it.
inline int stress_scale() {
  const char* v = std::getenv("SLUICE_STRESS");
  return v != nullptr && std::string_view(v) == "1" ? 20 : 1;
}

// A partition with the smallest segments, so that modest tests roll many times.
inline LogConfig small_segments(std::uint64_t bytes = kMinSegmentCapacity) {
  LogConfig c;
  c.segment_bytes = bytes;
  c.index_interval = 512;
  return c;
}

// Options for tests where nobody dies: an abandon timeout far above any pause a sanitized,
// preempted producer may take, so that no live claim is ever padded.
inline LogOptions patient_options() {
  LogOptions o;
  o.abandon_timeout_ns = 60'000'000'000;
  o.populate = false;
  return o;
}

// patient_options() with retention that keeps `retain` segments and recycles older files.
inline LogOptions recycling_options(std::uint32_t retain) {
  LogOptions o = patient_options();
  o.retain_segments = retain;
  o.recycle_segments = true;
  return o;
}

// A partition of small segments with two handles, as sluice perf and bench/peers arrange
// theirs: `owner` (the reader's) applies retention with prepare_next() and has made the
// first spare; `producer`, a handle of its own with the same retention, rolls through the
// pool and recycles the oldest segment in place when it finds no spare.
struct RecyclingHandles {
  std::shared_ptr<PartitionLog> owner;
  std::shared_ptr<PartitionLog> producer;
};
inline RecyclingHandles recycling_handles(const std::string& dir, std::uint32_t retain) {
  const LogOptions options = recycling_options(retain);
  RecyclingHandles h;
  h.owner = unwrap(PartitionLog::create(dir, small_segments(), options));
  REQUIRE_OK(h.owner->prepare_next());
  h.producer = unwrap(PartitionLog::open(dir, options));
  return h;
}

// Options for tests that abandon claims on purpose.
inline LogOptions impatient_options() {
  LogOptions o;
  o.abandon_timeout_ns = 50'000'000;
  o.populate = false;
  return o;
}

// ---- scratch directories -------------------------------------------------------------------

// /dev/shm/sluice-test-<pid>-<n>-<test name>: one per test, removed at the end.
class TempDir {
 public:
  TempDir() {
    static std::atomic<int> counter{0};
    static const bool swept = (remove_dead_runs(), true);
    (void)swept;
    std::string name = Catch::getResultCapture().getCurrentTestName();
    std::string clean;
    for (char c : name) {
      bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
      clean += ok ? c : '_';
      if (clean.size() >= 60) break;
    }
    path_ = "/dev/shm/sluice-test-" + std::to_string(::getpid()) + "-" +
            std::to_string(counter.fetch_add(1)) + "-" + clean;
    std::filesystem::remove_all(path_);
    std::filesystem::create_directories(path_);
  }
  ~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;

  const std::string& path() const { return path_; }
  // Where the test's partition lives (created by PartitionLog::create).
  std::string partition() const { return path_ + "/p"; }

 private:
  // Directories left by test processes that crashed (their pid is gone).
  static void remove_dead_runs() {
    std::error_code ec;
    for (const auto& e : std::filesystem::directory_iterator("/dev/shm", ec)) {
      std::string name = e.path().filename().string();
      const std::string prefix = "sluice-test-";
      if (name.compare(0, prefix.size(), prefix) != 0) continue;
      long pid = std::strtol(name.c_str() + prefix.size(), nullptr, 10);
      if (pid <= 0 || (::kill(static_cast<pid_t>(pid), 0) != 0 && errno == ESRCH))
        std::filesystem::remove_all(e.path(), ec);
    }
  }

  std::string path_;
};

// ---- payloads ------------------------------------------------------------------------------

// A value that names its producer and sequence number, followed by filler bytes derived from
// both, so that a reader can tell a record that arrived intact from one that did not.
inline std::string make_value(std::uint32_t producer, std::uint64_t seq,
                              std::size_t max_filler = 120) {
  std::size_t filler =
      static_cast<std::size_t>((producer * 7919u + seq * 104729u) % (max_filler + 1));
  std::string v(12 + filler, '\0');
  std::memcpy(v.data(), &producer, 4);
  std::memcpy(v.data() + 4, &seq, 8);
  for (std::size_t i = 0; i < filler; ++i)
    v[12 + i] = static_cast<char>((producer * 131u + seq * 31u + i * 7u) & 0xffu);
  return v;
}

struct Stamp {
  std::uint32_t producer = 0;
  std::uint64_t seq = 0;
};

// Parses a value made by make_value; nullopt if it is not one (wrong size or filler).
inline std::optional<Stamp> parse_value(std::string_view v, std::size_t max_filler = 120) {
  if (v.size() < 12) return std::nullopt;
  Stamp s;
  std::memcpy(&s.producer, v.data(), 4);
  std::memcpy(&s.seq, v.data() + 4, 8);
  if (v != make_value(s.producer, s.seq, max_filler)) return std::nullopt;
  return s;
}

// RecordMeta with just a key, or just a timestamp.
inline RecordMeta with_key(std::string_view key) {
  RecordMeta m;
  m.key = key;
  return m;
}
inline RecordMeta at_time(std::int64_t timestamp_ns) {
  RecordMeta m;
  m.timestamp_ns = timestamp_ns;
  return m;
}

// A copy of what a reader delivered.
struct Rec {
  std::int64_t offset = -1;
  std::int64_t timestamp_ns = 0;
  std::optional<std::string> key;
  std::optional<std::string> value;
  std::vector<std::pair<std::string, std::optional<std::string>>> headers;
  bool headers_malformed = false;
};

inline Rec copy_record(const RecordView& v) {
  Rec r;
  r.offset = v.offset;
  r.timestamp_ns = v.timestamp_ns;
  if (v.key) r.key = std::string(*v.key);
  if (v.value) r.value = std::string(*v.value);
  if (v.has_headers()) {
    HeaderIterator it = v.headers();
    HeaderView h;
    while (it.next(h))
      r.headers.emplace_back(
          std::string(h.name),
          h.value ? std::optional<std::string>(std::string(*h.value)) : std::nullopt);
    r.headers_malformed = it.malformed();
  }
  return r;
}

// The offsets of `records`, in their order.
inline std::vector<std::int64_t> offsets_of(const std::vector<Rec>& records) {
  std::vector<std::int64_t> out;
  for (const Rec& r : records) out.push_back(r.offset);
  return out;
}

// Polls until `count` records arrived, or nothing new came for `idle_timeout`, or the outcome
// is not kOk. Returns the records; `outcome` gets the last outcome.
inline std::vector<Rec> read_records(LogReader& reader, std::size_t count,
                                     ReadOutcome* outcome = nullptr,
                                     std::int64_t idle_timeout_ns = 20'000'000'000) {
  std::vector<Rec> out;
  std::int64_t last_progress = monotonic_ns();
  ReadOutcome last = ReadOutcome::kOk;
  while (out.size() < count) {
    PollResult r = reader.poll([&](const RecordView& v) { out.push_back(copy_record(v)); },
                               static_cast<std::uint32_t>(count - out.size()));
    last = r.outcome;
    if (r.outcome != ReadOutcome::kOk) break;
    if (r.records > 0) {
      last_progress = monotonic_ns();
      continue;
    }
    if (monotonic_ns() - last_progress > idle_timeout_ns) break;
    reader.wait(WaitStrategy::kBlock, 100'000'000);
  }
  if (outcome != nullptr) *outcome = last;
  return out;
}

// Appends one record, REQUIREing success; returns its offset.
inline std::int64_t append_ok(LogAppender& a, std::string_view value, const RecordMeta& meta = {}) {
  AppendResult r = a.append(value, meta);
  INFO(describe(r.outcome));
  REQUIRE(r.outcome == AppendOutcome::kOk);
  return r.offset;
}

// Checks a stream of records from `producers` producers of `per_producer` records each:
// offsets strictly increasing without gaps from `first_offset`, every (producer, seq) exactly
// once and in each producer's order, and every value intact. Returns a description of the
// first problem, or "" when all is well.
class Tally {
 public:
  Tally(std::uint32_t producers, std::uint64_t per_producer, std::int64_t first_offset = 0,
        std::size_t max_filler = 120)
      : next_offset_(first_offset),
        next_seq_(producers, 0),
        per_producer_(per_producer),
        max_filler_(max_filler) {}

  // Feeds one record; false (with problem() set) at the first inconsistency.
  bool add(std::int64_t offset, std::optional<std::string_view> value) {
    if (!problem_.empty()) return false;
    if (offset != next_offset_)
      return fail("offset " + std::to_string(offset) + " where " + std::to_string(next_offset_) +
                  " was expected");
    ++next_offset_;
    if (!value) return fail("null value at offset " + std::to_string(offset));
    auto stamp = parse_value(*value, max_filler_);
    if (!stamp) return fail("damaged value at offset " + std::to_string(offset));
    if (stamp->producer >= next_seq_.size())
      return fail("unknown producer " + std::to_string(stamp->producer));
    std::uint64_t& expected = next_seq_[stamp->producer];
    if (stamp->seq != expected)
      return fail("producer " + std::to_string(stamp->producer) + " seq " +
                  std::to_string(stamp->seq) + " where " + std::to_string(expected) +
                  " was expected (duplicate, loss or reordering) at offset " +
                  std::to_string(offset));
    ++expected;
    ++count_;
    return true;
  }

  bool complete() const {
    if (!problem_.empty()) return false;
    for (std::uint64_t s : next_seq_)
      if (s != per_producer_) return false;
    return true;
  }
  std::uint64_t count() const { return count_; }
  const std::string& problem() const { return problem_; }
  std::string summary() const {
    std::string s = "records " + std::to_string(count_) + "; next offset " +
                    std::to_string(next_offset_) + "; per producer:";
    for (std::uint64_t n : next_seq_) s += " " + std::to_string(n);
    if (!problem_.empty()) s += "; problem: " + problem_;
    return s;
  }

 private:
  bool fail(std::string p) {
    problem_ = std::move(p);
    return false;
  }
  std::int64_t next_offset_;
  std::vector<std::uint64_t> next_seq_;
  std::uint64_t per_producer_;
  std::size_t max_filler_;
  std::uint64_t count_ = 0;
  std::string problem_;
};

// Reads until `tally` is complete or nothing arrives for `idle_timeout`.
inline ReadOutcome read_into(LogReader& reader, Tally& tally,
                             std::int64_t idle_timeout_ns = 30'000'000'000,
                             WaitStrategy strategy = WaitStrategy::kBlock) {
  std::int64_t last_progress = monotonic_ns();
  while (!tally.complete() && tally.problem().empty()) {
    PollResult r = reader.poll([&](const RecordView& v) { tally.add(v.offset, v.value); });
    if (r.outcome != ReadOutcome::kOk) return r.outcome;
    if (r.records > 0) {
      last_progress = monotonic_ns();
      continue;
    }
    if (monotonic_ns() - last_progress > idle_timeout_ns) break;
    reader.wait(strategy, 100'000'000);
  }
  return ReadOutcome::kOk;
}

// Feeds `tally` with whatever the reader can deliver now, without waiting.
inline ReadOutcome drain(LogReader& reader, Tally& tally) {
  for (;;) {
    PollResult r = reader.poll([&](const RecordView& v) { tally.add(v.offset, v.value); });
    if (r.outcome != ReadOutcome::kOk || r.records == 0) return r.outcome;
  }
}

// verify_partition, as one string of every damage found ("" when none).
inline std::string partition_damage(const std::string& dir) {
  auto report = verify_partition(dir);
  if (!report) return "verify_partition failed: " + report.status().message();
  std::string s;
  for (const Damage& d : report->damage) s += d.to_string() + "\n";
  return s;
}

// ---- processes -----------------------------------------------------------------------------

using test_process::spawn;
using test_process::wait_child;

// A pipe for one-byte messages between a parent and its children.
class Pipe {
 public:
  Pipe() { REQUIRE(::pipe2(fds_, O_CLOEXEC) == 0); }
  ~Pipe() {
    ::close(fds_[0]);
    ::close(fds_[1]);
  }
  Pipe(const Pipe&) = delete;
  Pipe& operator=(const Pipe&) = delete;

  bool send(char c = 'x') { return ::write(fds_[1], &c, 1) == 1; }
  // Receives one byte; false on timeout or error.
  bool receive(std::int64_t timeout_ns = 30'000'000'000, char* out = nullptr) {
    pollfd p{fds_[0], POLLIN, 0};
    int ms = static_cast<int>(timeout_ns / 1'000'000);
    if (::poll(&p, 1, ms) != 1) return false;
    char c;
    if (::read(fds_[0], &c, 1) != 1) return false;
    if (out != nullptr) *out = c;
    return true;
  }

 private:
  int fds_[2];
};

// ---- files ---------------------------------------------------------------------------------

inline std::string segment_path(const std::string& dir, std::int64_t base) {
  return dir + "/" + segment_file_name(base);
}

// pwrite/pread at a byte position of a file, REQUIREing success.
inline void write_bytes(const std::string& path, std::uint64_t position, const void* data,
                        std::size_t size) {
  int fd = ::open(path.c_str(), O_RDWR | O_CLOEXEC);
  REQUIRE(fd >= 0);
  ssize_t n = ::pwrite(fd, data, size, static_cast<off_t>(position));
  ::close(fd);
  REQUIRE(n == static_cast<ssize_t>(size));
}

inline void read_bytes(const std::string& path, std::uint64_t position, void* data,
                       std::size_t size) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  REQUIRE(fd >= 0);
  ssize_t n = ::pread(fd, data, size, static_cast<off_t>(position));
  ::close(fd);
  REQUIRE(n == static_cast<ssize_t>(size));
}

// Where each data frame of a segment file is: offset -> position in the data region.
inline std::map<std::int64_t, std::uint64_t> frame_positions(const std::string& segment_file) {
  std::map<std::int64_t, std::uint64_t> out;
  auto report = verify_segment(segment_file, [&](const FrameInfo& f) {
    if (f.type == kFrameData) out[f.offset] = f.position;
  });
  INFO(report.status().message());
  REQUIRE(report.is_ok());
  return out;
}

// Header bytes of a segment file (the data region starts there).
inline std::uint64_t data_start(const std::string& segment_file) {
  std::uint32_t header_bytes = 0;
  read_bytes(segment_file, offsetof(SegmentHeader, header_bytes), &header_bytes, 4);
  return header_bytes;
}

}  // namespace sluice::shm::test
