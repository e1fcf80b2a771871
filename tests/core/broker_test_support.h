// Helpers for the tests of the broker and the client library (group membership, broker
// recovery, retention, partitioning, control socket): scratch data directories under /dev/shm,
// a `sluiced` child process, forked client processes, and a pipe of fixed-size reports from
// children to the parent.
//
// Fork discipline: a [process] test forks its children before it creates any object that
// starts a thread (Admin, Consumer, an embedded Broker), or only from a scope in which those
// were destroyed again; a child builds its own fresh objects and ends with _exit.
#pragma once

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <catch2/catch.hpp>
#include <cerrno>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <iostream>
#include <sstream>
#include <string>
#include <string_view>
#include <thread>
#include <utility>
#include <vector>

#include "core/scratch_support.h"
#include "process_support.h"
#include "shm/clock.h"
#include "sluice/admin.h"
#include "sluice/consumer.h"
#include "sluice/producer.h"
#include "sluice/status.h"
#include "sluice/types.h"

namespace sluice::broker_test {

#define BT_REQUIRE_OK(expr)                      \
  do {                                           \
    ::sluice::Status require_ok_status = (expr); \
    INFO(require_ok_status.message());           \
    REQUIRE(require_ok_status.is_ok());          \
  } while (false)

using core_test::must;
using core_test::now_ms;
using core_test::now_ns;
using core_test::sleep_ms;

// True when the build has ASan (sanitized builds are slower: used for sizes, never for bounds
// the issue states).
inline bool sanitized() {
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
  return true;
#else
  return false;
#endif
}

// Polls `done` every few ms until it holds or `timeout_ms` passes; returns the last answer.
inline bool eventually(const std::function<bool()>& done, std::int64_t timeout_ms = 10000) {
  return core_test::poll_until(done, timeout_ms);
}

// /dev/shm/sluice-bt-<pid>-<n>-<test name>: one data directory per test, removed at the end.
class DataDirFixture : public core_test::ScratchDataDir {
 public:
  DataDirFixture() : ScratchDataDir("sluice-bt-") {}
  std::string socket() const { return path() + "/broker.sock"; }
};

// A connect() to the broker socket, without a client object (and so without a thread).
inline bool broker_answers(const std::string& data_dir) {
  std::string path = data_dir + "/broker.sock";
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  if (path.size() >= sizeof addr.sun_path) return false;
  std::memcpy(addr.sun_path, path.c_str(), path.size() + 1);
  int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return false;
  bool ok = ::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0;
  ::close(fd);
  return ok;
}

// `sluiced` as a child process (SLUICED_PATH), its output in <log_path>.
class SluicedProcess {
 public:
  SluicedProcess(std::string data_dir, std::vector<std::string> extra_args = {})
      : data_dir_(std::move(data_dir)), extra_(std::move(extra_args)) {
    log_path_ = data_dir_ + ".sluiced.log";
  }
  ~SluicedProcess() {
    if (pid_ > 0) {
      ::kill(pid_, SIGKILL);
      int st = 0;
      ::waitpid(pid_, &st, 0);
    }
    std::error_code ec;
    std::filesystem::remove(log_path_, ec);
  }
  SluicedProcess(const SluicedProcess&) = delete;
  SluicedProcess& operator=(const SluicedProcess&) = delete;

  // Starts it and waits until its control socket accepts connections.
  void start() {
    REQUIRE(pid_ <= 0);
    pid_ = spawn_exec();
    bool up = eventually([&] { return broker_answers(data_dir_) || exited(); }, 15000);
    INFO(log());
    REQUIRE(up);
    REQUIRE(!exited());
  }

  // Starts another sluiced on the data dir and returns its exit code and output: for the
  // second-broker refusal.
  std::pair<int, std::string> run_to_completion(std::int64_t timeout_ms = 10000) {
    pid_t pid = spawn_exec();
    std::int64_t deadline = now_ms() + timeout_ms;
    int status = 0;
    for (;;) {
      pid_t r = ::waitpid(pid, &status, WNOHANG);
      if (r == pid) break;
      if (now_ms() > deadline) {
        ::kill(pid, SIGKILL);
        ::waitpid(pid, &status, 0);
        return {-1, log()};
      }
      sleep_ms(5);
    }
    return {WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status), log()};
  }

  void kill9() {
    REQUIRE(pid_ > 0);
    ::kill(pid_, SIGKILL);
    int st = 0;
    ::waitpid(pid_, &st, 0);
    pid_ = -1;
  }

  // SIGTERM; returns the exit code.
  int stop() {
    REQUIRE(pid_ > 0);
    ::kill(pid_, SIGTERM);
    int st = 0;
    ::waitpid(pid_, &st, 0);
    pid_ = -1;
    return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
  }

  pid_t pid() const { return pid_; }
  std::string log() const {
    std::ifstream in(log_path_);
    std::stringstream s;
    s << in.rdbuf();
    return s.str();
  }

 private:
  bool exited() {
    int st = 0;
    if (pid_ > 0 && ::waitpid(pid_, &st, WNOHANG) == pid_) {
      pid_ = -1;
      return true;
    }
    return pid_ <= 0;
  }

  pid_t spawn_exec() {
    // Everything the child needs is built before fork: after it, only exec.
    // No Kafka listener: tests run in parallel and would all want port 9092.
    std::vector<std::string> args = {SLUICED_PATH, "--data-dir", data_dir_, "--listen", "none"};
    args.insert(args.end(), extra_.begin(), extra_.end());
    std::vector<char*> argv;
    for (auto& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    int log_fd = ::open(log_path_.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    REQUIRE(log_fd >= 0);
    std::fflush(nullptr);
    pid_t pid = ::fork();
    REQUIRE(pid >= 0);
    if (pid == 0) {
      ::dup2(log_fd, STDOUT_FILENO);
      ::dup2(log_fd, STDERR_FILENO);
      ::execv(argv[0], argv.data());
      ::_exit(127);
    }
    ::close(log_fd);
    return pid;
  }

  std::string data_dir_;
  std::vector<std::string> extra_;
  std::string log_path_;
  pid_t pid_ = -1;
};

using test_process::spawn;

// Exit code of a child (128 + signal), killing it after timeout_ms; -1 on timeout.
inline int reap(pid_t pid, std::int64_t timeout_ms = 15000) {
  std::int64_t deadline = now_ms() + timeout_ms;
  int status = 0;
  for (;;) {
    pid_t r = ::waitpid(pid, &status, WNOHANG);
    if (r == pid) break;
    if (r < 0) return -2;
    if (now_ms() > deadline) {
      ::kill(pid, SIGKILL);
      ::waitpid(pid, &status, 0);
      return -1;
    }
    sleep_ms(2);
  }
  return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

// ---- reports from children ---------------------------------------------------------------

// What a child tells the parent. 32 bytes: one write() of it is atomic on a pipe.
struct Report {
  enum Kind : std::int32_t {
    kRecord = 1,  // a consumer received (partition, offset)
    kCommitted,   // a consumer's commit of (partition, offset) was acknowledged
    kAssigned,    // a consumer's assignment: generation, partitions as a bit mask (offset)
    kProduced,    // a producer's send returned (partition, offset); extra = its sequence
    kError,       // something failed; extra = the ErrorCode
  };
  std::int32_t kind = 0;
  std::int32_t child = 0;
  std::int32_t partition = 0;
  std::int32_t generation = 0;
  std::int64_t offset = 0;
  std::int64_t extra = 0;
};
static_assert(sizeof(Report) == 32);

// Many writers (children), one reader (the parent).
class ReportPipe {
 public:
  ReportPipe() { REQUIRE(::pipe2(fds_, O_CLOEXEC) == 0); }
  ~ReportPipe() {
    close_read();
    close_write();
  }
  ReportPipe(const ReportPipe&) = delete;
  ReportPipe& operator=(const ReportPipe&) = delete;

  // In a child.
  void send(const Report& r) const {
    const char* p = reinterpret_cast<const char*>(&r);
    std::size_t left = sizeof r;
    while (left > 0) {
      ssize_t n = ::write(fds_[1], p, left);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) return;
      p += n;
      left -= static_cast<std::size_t>(n);
    }
  }
  void close_read() {
    if (fds_[0] >= 0) ::close(fds_[0]);
    fds_[0] = -1;
  }
  // In the parent once every child is forked: then read() reports the end when all exited.
  void close_write() {
    if (fds_[1] >= 0) ::close(fds_[1]);
    fds_[1] = -1;
  }

  // In the parent: hands the reports that arrive within timeout_ms (0: those already there)
  // to fn. Returns false once every writer closed its end and everything was read.
  bool drain(const std::function<void(const Report&)>& fn, std::int64_t timeout_ms = 0) {
    pollfd p{fds_[0], POLLIN, 0};
    if (::poll(&p, 1, static_cast<int>(timeout_ms)) <= 0) return true;
    char* dst = reinterpret_cast<char*>(buffer_) + have_;
    ssize_t n = ::read(fds_[0], dst, sizeof buffer_ - have_);
    if (n < 0) return errno == EINTR || errno == EAGAIN;
    if (n == 0) return false;
    have_ += static_cast<std::size_t>(n);
    std::size_t whole = have_ / sizeof(Report);
    for (std::size_t i = 0; i < whole; ++i) fn(buffer_[i]);
    std::size_t rest = have_ % sizeof(Report);
    std::memmove(buffer_, reinterpret_cast<char*>(buffer_) + whole * sizeof(Report), rest);
    have_ = rest;
    return true;
  }
  // Everything already in the pipe. Returns false at the end (every writer gone).
  bool drain_all(const std::function<void(const Report&)>& fn) {
    for (;;) {
      pollfd p{fds_[0], POLLIN, 0};
      if (::poll(&p, 1, 0) <= 0) return true;
      if (!drain(fn, 0)) return false;
    }
  }

 private:
  int fds_[2] = {-1, -1};
  Report buffer_[512];
  std::size_t have_ = 0;
};

// A pipe whose read end children watch: closing the write end (or the parent dying) tells
// them to stop.
class StopSignal {
 public:
  StopSignal() { REQUIRE(::pipe2(fds_, O_CLOEXEC) == 0); }
  ~StopSignal() {
    if (fds_[0] >= 0) ::close(fds_[0]);
    stop();
  }
  StopSignal(const StopSignal&) = delete;
  StopSignal& operator=(const StopSignal&) = delete;

  // In a child, first thing: let go of the write end so that only the parent holds it.
  void child_side() {
    if (fds_[1] >= 0) ::close(fds_[1]);
    fds_[1] = -1;
  }
  bool stop_requested() const {
    pollfd p{fds_[0], POLLIN, 0};
    return ::poll(&p, 1, 0) > 0;
  }
  void stop() {
    if (fds_[1] >= 0) ::close(fds_[1]);
    fds_[1] = -1;
  }

 private:
  int fds_[2] = {-1, -1};
};

// The topic of the group tests (group membership, recovery): its partition count, the mask
// of all its partitions, and a record's identity in it.
constexpr std::int32_t kPartitions = 6;
constexpr std::uint64_t kAllPartitions = (std::uint64_t{1} << kPartitions) - 1;
using Key = std::pair<std::int32_t, std::int64_t>;  // (partition, offset)

// Creates a topic through a short-lived Admin (its thread ends before the call returns, so
// the caller may fork afterwards).
inline void create_topic(const std::string& data_dir, const std::string& name,
                         const TopicConfig& config) {
  auto admin = must(Admin::connect(data_dir));
  BT_REQUIRE_OK(admin.create_topic(name, config));
}

// A value that names its producer and sequence number, with some filler derived from both.
inline std::string make_value(std::int32_t producer, std::int64_t seq) {
  std::string v = "p" + std::to_string(producer) + "-s" + std::to_string(seq) + "-";
  auto filler = static_cast<std::size_t>((seq * 7 + producer * 13) % 61);
  for (std::size_t i = 0; i < filler; ++i)
    v.push_back(static_cast<char>('a' + (seq + static_cast<std::int64_t>(i)) % 26));
  return v;
}

// ---- client children ---------------------------------------------------------------------

// A group member in a child process: subscribes, reports every record it receives, commits
// after every poll that delivered something (so that a rebalance hands over exactly what it
// consumed), reports acknowledged commits and every change of its assignment, and leaves the
// group when told to stop.
struct ConsumerChild {
  std::string data_dir;
  std::string group;
  std::string topic;
  std::int32_t index = 0;
  const ReportPipe* reports = nullptr;
  StopSignal* stop = nullptr;
  std::size_t max_records = 64;
  std::int64_t session_timeout_ms = 10000;
  // Once it received this many records it stops committing (a member that commits rarely);
  // < 0: it commits after every poll.
  std::int64_t commit_until_received = -1;
};

inline int run_consumer_child(const ConsumerChild& o) {
  o.stop->child_side();
  auto report = [&](Report::Kind kind, std::int32_t partition, std::int32_t generation,
                    std::int64_t offset, std::int64_t extra) {
    Report r;
    r.kind = kind;
    r.child = o.index;
    r.partition = partition;
    r.generation = generation;
    r.offset = offset;
    r.extra = extra;
    o.reports->send(r);
  };
  ConsumerConfig cc;
  cc.data_dir = o.data_dir;
  cc.group_id = o.group;
  cc.client_id = "c" + std::to_string(o.index);
  cc.auto_offset_reset = AutoOffsetReset::kEarliest;
  cc.session_timeout_ms = o.session_timeout_ms;
  auto consumer = Consumer::open(cc);
  if (!consumer) return 2;
  Consumer& c = *consumer;
  if (Status s = c.subscribe({o.topic}); !s) {
    report(Report::kError, -1, -1, 0, static_cast<std::int64_t>(s.code()));
    return 3;
  }
  std::int32_t reported_generation = -2;
  std::uint64_t reported_mask = ~std::uint64_t{0};
  std::vector<std::int64_t> reported_commit(64, -1);
  std::int64_t received = 0;
  while (!o.stop->stop_requested()) {
    auto n = c.poll(
        [&](const Record& r) {
          report(Report::kRecord, r.partition, 0, r.offset, 0);
          ++received;
        },
        o.max_records, 20);
    GroupAssignment ga = c.group_assignment();
    std::uint64_t mask = 0;
    for (const auto& tp : ga.partitions) mask |= std::uint64_t{1} << tp.partition;
    if (ga.generation != reported_generation || mask != reported_mask) {
      report(Report::kAssigned, -1, ga.generation, static_cast<std::int64_t>(mask), 0);
      reported_generation = ga.generation;
      reported_mask = mask;
    }
    if (!n) {
      report(Report::kError, -1, ga.generation, 0, static_cast<std::int64_t>(n.status().code()));
      sleep_ms(10);
      continue;
    }
    if (*n == 0) continue;
    if (o.commit_until_received >= 0 && received >= o.commit_until_received) continue;
    if (Status s = c.commit_sync(); !s) {
      report(Report::kError, -1, ga.generation, 1, static_cast<std::int64_t>(s.code()));
      continue;
    }
    for (const auto& tp : ga.partitions) {
      auto pos = c.position(tp);
      if (!pos || tp.partition >= 64) continue;
      auto p = static_cast<std::size_t>(tp.partition);
      if (*pos != reported_commit[p]) {
        report(Report::kCommitted, tp.partition, ga.generation, *pos, 0);
        reported_commit[p] = *pos;
      }
    }
  }
  return c.close().is_ok() ? 0 : 4;
}

// A producer in a child process: sends keyed records ("k<index>-<seq>", make_value) in bursts
// of `burst` with a 1 ms pause, reports every acknowledged one, until told to stop or
// `count` were sent (count < 0: no limit).
struct ProducerChild {
  std::string data_dir;
  std::string topic;
  std::int32_t index = 0;
  const ReportPipe* reports = nullptr;
  StopSignal* stop = nullptr;
  std::int64_t count = -1;
  int burst = 10;
};

inline std::string producer_key(std::int32_t producer, std::int64_t seq) {
  return "k" + std::to_string(producer) + "-" + std::to_string(seq);
}

inline int run_producer_child(const ProducerChild& o) {
  o.stop->child_side();
  ProducerConfig pc;
  pc.data_dir = o.data_dir;
  auto producer = Producer::open(pc);
  if (!producer) return 2;
  std::int64_t seq = 0;
  while (!o.stop->stop_requested() && (o.count < 0 || seq < o.count)) {
    for (int i = 0; i < o.burst && (o.count < 0 || seq < o.count); ++i, ++seq) {
      std::string key = producer_key(o.index, seq);
      std::string value = make_value(o.index, seq);
      auto id = producer->send(o.topic, key, value);
      Report r;
      r.child = o.index;
      if (!id) {
        r.kind = Report::kError;
        r.extra = static_cast<std::int64_t>(id.status().code());
        o.reports->send(r);
        return 3;
      }
      r.kind = Report::kProduced;
      r.partition = id->partition;
      r.offset = id->offset;
      r.extra = seq;
      o.reports->send(r);
    }
    sleep_ms(1);
  }
  return 0;
}

}  // namespace sluice::broker_test
