// The harness shared by the peer benchmarks (bench/peers/*.cc), run by bench/compare.
//
// Every executable measures the same two shapes for one value size (--size, default 32):
//   throughput  one producer process (CPU 0) -> one consumer process (CPU 1); the consumer
//               times the records it receives after a warm-up: records/s and MB/s (value
//               bytes, 1 MB = 1e6 B)
//   latency     ping-pong between two processes (A on CPU 0, B on CPU 1): A sends one value,
//               B echoes it back; one-way = half the round trip, sampled per round trip with
//               rdtscp (calibrated against steady_clock), p50/p99/p99.9/mean
// and prints one JSON line:
//   {"system":..,"size":..,"records":..,"rounds":..,"records_per_s":..,"mb_per_s":..,
//    "p50_ns":..,"p99_ns":..,"p999_ns":..,"mean_ns":..}
// Options: --size BYTES, --records N (throughput, after a warm-up of N/10), --rounds N (latency
// samples, after a warm-up of N/10), --only tput|lat.
//
// Two more shapes, for how a consumer waits (bench/compare's "wait strategies" section); each
// replaces the two above:
//   --stream RATE --messages N   a paced producer (CPU 0) sends N values at RATE per second,
//               open loop (it sleeps until each send time when the gap is >= 200 µs, spins
//               otherwise), each carrying its send time (CLOCK_MONOTONIC); the consumer (CPU 1)
//               subtracts it from its receive time: one-way latency, not halved, after a
//               warm-up of N/10 values. Also the consumer's CPU use over the run.
//   --idle SECONDS              nothing is sent for SECONDS, then one value; the consumer's CPU
//               time (CLOCK_PROCESS_CPUTIME_ID: user + system) over the wall time it waited,
//               and its voluntary context switches (getrusage), i.e. how often it woke.
// They print one JSON line:
//   {"system":..,"shape":"stream","size":..,"rate":..,"messages":..,"p50_ns":..,"p99_ns":..,
//    "p999_ns":..,"mean_ns":..,"seconds":..,"cpu_pct":..,"wakeups_per_s":..}
//   {"system":..,"shape":"idle","size":..,"seconds":..,"cpu_pct":..,"wakeups_per_s":..}
// cpu_pct is CPU time over wall time in % of one core; wakeups_per_s counts voluntary context
// switches (each a sleep that ended) per second of wall time.
//
// A transport implements Transport: prepare() runs in the parent before the forks; open(dir,
// sending) runs in the child that uses that end, dir 0 = A -> B (producer -> consumer), 1 = B -> A;
// cleanup() runs in the parent after both children exited. The ping-pong side A opens its
// receiving end first, B its receiving end first too.
#pragma once

#include <pthread.h>
#include <sched.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <x86intrin.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <memory>
#include <new>
#include <string>
#include <vector>

namespace peers {

[[noreturn]] inline void die(const std::string& what) {
  std::fprintf(stderr, "peer bench: %s\n", what.c_str());
  std::fflush(stderr);
  std::_Exit(2);
}

inline void pin_to_cpu(int cpu) {
  long n = ::sysconf(_SC_NPROCESSORS_ONLN);
  int cpus = n > 0 ? static_cast<int>(n) : 1;
  cpu_set_t set;
  CPU_ZERO(&set);
  CPU_SET(static_cast<std::size_t>(cpu % cpus), &set);
  (void)pthread_setaffinity_np(pthread_self(), sizeof set, &set);
}

inline std::uint64_t ticks() {
  unsigned aux;
  return __rdtscp(&aux);
}

inline double ns_per_tick() {
  static double value = [] {
    using Clock = std::chrono::steady_clock;
    auto t0 = Clock::now();
    std::uint64_t c0 = ticks();
    while (Clock::now() - t0 < std::chrono::milliseconds(100)) {
    }
    auto t1 = Clock::now();
    std::uint64_t c1 = ticks();
    return std::chrono::duration<double, std::nano>(t1 - t0).count() / static_cast<double>(c1 - c0);
  }();
  return value;
}

inline std::int64_t now_ns() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

// An object in a MAP_SHARED anonymous mapping: visible to a forked child.
template <class T>
T* shared_object() {
  void* p = ::mmap(nullptr, sizeof(T), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
  if (p == MAP_FAILED) die("mmap of a shared page failed");
  return new (p) T();
}

struct Options {
  std::string system;
  std::uint32_t size = 32;
  std::int64_t records = 2'000'000;
  std::int64_t rounds = 100'000;
  bool tput = true;
  bool lat = true;
  // The wait shapes: "stream" (--stream RATE --messages N) or "idle" (--idle SECONDS).
  std::string shape;
  double rate = 0;
  std::int64_t messages = 10'000;
  double idle_s = 0;
};

inline Options parse(int argc, char** argv, const char* system) {
  Options o;
  o.system = system;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    auto next = [&]() -> std::string {
      if (i + 1 >= argc) die("missing value after " + a);
      return argv[++i];
    };
    if (a == "--size") {
      o.size = static_cast<std::uint32_t>(std::stoul(next()));
    } else if (a == "--records") {
      o.records = std::stoll(next());
    } else if (a == "--rounds") {
      o.rounds = std::stoll(next());
    } else if (a == "--only") {
      std::string w = next();
      o.tput = w == "tput";
      o.lat = w == "lat";
    } else if (a == "--stream") {
      o.shape = "stream";
      o.rate = std::stod(next());
      if (!(o.rate > 0)) die("--stream needs a rate above 0");
    } else if (a == "--messages") {
      o.messages = std::max<std::int64_t>(std::stoll(next()), 1);
    } else if (a == "--idle") {
      o.shape = "idle";
      o.idle_s = std::stod(next());
    } else {
      std::fprintf(stderr,
                   "usage: %s [--size BYTES] [--records N] [--rounds N] [--only tput|lat]\n"
                   "       %s [--size BYTES] --stream RATE [--messages N] | --idle SECONDS\n"
                   "prints one JSON line (see bench/peers/peer_common.h)\n",
                   argv[0], argv[0]);
      std::exit(a == "--help" ? 0 : 2);
    }
  }
  if (o.size < 8) o.size = 8;
  if (!o.shape.empty() && o.size < 16) o.size = 16;  // send time and sequence number
  return o;
}

struct Results {
  double records_per_s = 0;
  double mb_per_s = 0;
  double p50 = 0, p99 = 0, p999 = 0, mean = 0;
};

// Copies the latency figures a ping-pong's timing process left in shared memory into r.
inline void take_latency(const Results& lat, Results& r) {
  r.p50 = lat.p50;
  r.p99 = lat.p99;
  r.p999 = lat.p999;
  r.mean = lat.mean;
}

// Removes `flag` from the arguments (into `rest`, argv[0] kept); returns whether it was there.
inline bool take_flag(int argc, char** argv, const char* flag, std::vector<char*>& rest) {
  bool found = false;
  for (int i = 0; i < argc; ++i) {
    if (i > 0 && std::string(argv[i]) == flag) {
      found = true;
    } else {
      rest.push_back(argv[i]);
    }
  }
  return found;
}

inline void print_json(const Options& o, const Results& r) {
  std::printf(
      "{\"system\":\"%s\",\"size\":%u,\"records\":%lld,\"rounds\":%lld,\"records_per_s\":%.0f,"
      "\"mb_per_s\":%.1f,\"p50_ns\":%.0f,\"p99_ns\":%.0f,\"p999_ns\":%.0f,\"mean_ns\":%.0f}\n",
      o.system.c_str(), o.size, static_cast<long long>(o.tput ? o.records : 0),
      static_cast<long long>(o.lat ? o.rounds : 0), r.records_per_s, r.mb_per_s, r.p50, r.p99,
      r.p999, r.mean);
  std::fflush(stdout);
}

// A child normally ends with _Exit (no static destructors of state inherited from the parent);
// a transport whose per-process runtime must deregister (iceoryx) sets this to end with exit.
inline bool g_child_runs_destructors = false;

// Runs fn in a forked child; returns its pid.
inline pid_t spawn(const std::function<void()>& fn) {
  std::fflush(nullptr);
  pid_t pid = ::fork();
  if (pid < 0) die("fork failed");
  if (pid == 0) {
    fn();
    std::fflush(nullptr);
    if (g_child_runs_destructors) std::exit(0);
    std::_Exit(0);
  }
  return pid;
}

inline void reap(pid_t pid) {
  int status = 0;
  if (::waitpid(pid, &status, 0) < 0 || !WIFEXITED(status) || WEXITSTATUS(status) != 0)
    die("the peer process failed");
}

// Fills p50/p99/p99.9/mean from round-trip samples in ticks (halved: one-way).
inline void percentiles(std::vector<std::uint64_t>& samples, Results& r) {
  if (samples.empty()) return;
  std::sort(samples.begin(), samples.end());
  double scale = ns_per_tick() / 2;
  auto at = [&](double q) {
    auto rank = static_cast<std::size_t>(q * static_cast<double>(samples.size()));
    rank = std::min(rank, samples.size() - 1);
    return static_cast<double>(samples[rank]) * scale;
  };
  double sum = 0;
  for (std::uint64_t s : samples) sum += static_cast<double>(s);
  r.p50 = at(0.50);
  r.p99 = at(0.99);
  r.p999 = at(0.999);
  r.mean = sum / static_cast<double>(samples.size()) * scale;
}

// One direction of a message channel.
class Link {
 public:
  virtual ~Link() = default;
  // Sends one value of `size` bytes.
  virtual void send(const char* data, std::size_t size) = 0;
  // Receives at least one value of `size` bytes into buf (capacity `cap` bytes, a multiple of
  // size); returns how many whole values it received. A message transport returns 1.
  virtual std::size_t recv(char* buf, std::size_t size, std::size_t cap) = 0;
};

class Transport {
 public:
  virtual ~Transport() = default;
  virtual void prepare() {}
  virtual std::unique_ptr<Link> open(int dir, bool sending) = 0;
  virtual void cleanup() {}
};

// A byte stream (pipe, SOCK_STREAM) carrying fixed-size values: one write per value; the reader
// takes whatever has arrived, keeping a partial value for the next call. The transport owns the
// descriptors.
class StreamLink : public Link {
 public:
  StreamLink(int rfd, int wfd) : rfd_(rfd), wfd_(wfd) {}
  void send(const char* data, std::size_t size) override {
    std::size_t done = 0;
    while (done < size) {
      ssize_t n = ::write(wfd_, data + done, size - done);
      if (n <= 0) die("write failed");
      done += static_cast<std::size_t>(n);
    }
  }
  std::size_t recv(char* buf, std::size_t size, std::size_t cap) override {
    for (;;) {
      ssize_t n = ::read(rfd_, buf, cap - partial_);
      if (n <= 0) die("read failed or end of stream");
      partial_ += static_cast<std::size_t>(n);
      std::size_t whole = partial_ / size;
      partial_ %= size;
      if (whole != 0) return whole;
    }
  }

 private:
  int rfd_;
  int wfd_;
  std::size_t partial_ = 0;
};

// Both sides run in forked children (the parent only coordinates), so that a transport with
// per-process state (a runtime, a context) starts clean in each of them.
struct alignas(64) Shared {
  std::atomic<std::int64_t> t_start{0};
  std::atomic<std::int64_t> t_end{0};
  std::atomic<std::int64_t> received{0};
  Results lat;
};

inline void run_tput(Transport& t, const Options& o, Results& r) {
  Shared* sh = shared_object<Shared>();
  t.prepare();
  std::int64_t warm = std::max<std::int64_t>(o.records / 10, 1);
  std::int64_t total = warm + o.records;
  std::uint32_t size = o.size;
  pid_t consumer = spawn([&] {
    pin_to_cpu(1);
    auto link = t.open(0, false);
    std::size_t cap = std::max<std::size_t>(size, (std::size_t{64} << 10) / size * size);
    std::vector<char> buf(cap);
    std::int64_t got = 0;
    std::int64_t at_start = 0;
    std::uint64_t sink = 0;
    bool started = false;
    while (got < total) {
      got += static_cast<std::int64_t>(link->recv(buf.data(), size, cap));
      sink += static_cast<unsigned char>(buf[0]);
      if (!started && got >= warm) {
        sh->t_start.store(now_ns());
        at_start = got;
        started = true;
      }
    }
    sh->t_end.store(now_ns());
    sh->received.store(got - at_start);
    if (sink == 1) std::fputs("", stderr);
  });
  pid_t producer = spawn([&] {
    pin_to_cpu(0);
    auto link = t.open(0, true);
    std::vector<char> value(size, 'v');
    for (std::int64_t i = 0; i < total; ++i) {
      std::memcpy(value.data(), &i, 8);
      link->send(value.data(), size);
    }
    // Keep the sending end open until everything has been read.
    while (sh->t_end.load() == 0) ::usleep(1000);
  });
  reap(consumer);
  reap(producer);
  t.cleanup();
  double secs = static_cast<double>(sh->t_end.load() - sh->t_start.load()) / 1e9;
  double n = static_cast<double>(sh->received.load());
  r.records_per_s = n / secs;
  r.mb_per_s = n * size / secs / 1e6;
  ::munmap(sh, sizeof(Shared));
}

inline void run_lat(Transport& t, const Options& o, Results& r) {
  Shared* sh = shared_object<Shared>();
  t.prepare();
  std::uint32_t size = o.size;
  std::int64_t warm = std::max<std::int64_t>(o.rounds / 10, 1);
  std::int64_t total = warm + o.rounds;
  pid_t echo = spawn([&] {
    pin_to_cpu(1);
    auto in = t.open(0, false);
    auto out = t.open(1, true);
    std::vector<char> buf(size);
    for (std::int64_t i = 0; i < total; ++i) {
      in->recv(buf.data(), size, size);
      out->send(buf.data(), size);
    }
    while (sh->t_end.load() == 0) ::usleep(1000);
  });
  pid_t ping = spawn([&] {
    pin_to_cpu(0);
    (void)ns_per_tick();
    auto in = t.open(1, false);
    auto out = t.open(0, true);
    std::vector<char> value(size, 'p');
    std::vector<char> buf(size);
    std::vector<std::uint64_t> samples;
    samples.reserve(static_cast<std::size_t>(o.rounds));
    for (std::int64_t i = 0; i < total; ++i) {
      std::uint64_t c0 = ticks();
      out->send(value.data(), size);
      in->recv(buf.data(), size, size);
      std::uint64_t c1 = ticks();
      if (i >= warm) samples.push_back(c1 - c0);
    }
    percentiles(samples, sh->lat);
    sh->t_end.store(1);
  });
  reap(ping);
  reap(echo);
  t.cleanup();
  take_latency(sh->lat, r);
  ::munmap(sh, sizeof(Shared));
}

// ---- wait shapes: --stream and --idle ------------------------------------------------------

struct WaitResults {
  double p50 = 0, p99 = 0, p999 = 0, mean = 0;  // one-way, ns (stream)
  double seconds = 0;                           // consumer's wall time measured
  double cpu_pct = 0;                           // its CPU time over that, % of one core
  double wakeups_per_s = 0;                     // its voluntary context switches per second
};

// The consumer's clocks at one instant: wall, its CPU time, its voluntary context switches.
struct CpuMark {
  std::int64_t wall_ns = 0;
  std::int64_t cpu_ns = 0;
  long nvcsw = 0;
};

inline CpuMark cpu_mark() {
  CpuMark m;
  timespec ts{};
  ::clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
  m.cpu_ns = static_cast<std::int64_t>(ts.tv_sec) * 1'000'000'000 + ts.tv_nsec;
  rusage ru{};
  ::getrusage(RUSAGE_SELF, &ru);
  m.nvcsw = ru.ru_nvcsw;
  m.wall_ns = now_ns();
  return m;
}

inline void cpu_between(const CpuMark& a, const CpuMark& b, WaitResults& r) {
  double wall = static_cast<double>(b.wall_ns - a.wall_ns);
  r.seconds = wall / 1e9;
  r.cpu_pct = wall > 0 ? 100.0 * static_cast<double>(b.cpu_ns - a.cpu_ns) / wall : 0;
  r.wakeups_per_s = wall > 0 ? static_cast<double>(b.nvcsw - a.nvcsw) / r.seconds : 0;
}

// Fills p50/p99/p99.9/mean from one-way samples in ns (not halved).
inline void percentiles_ns(std::vector<std::int64_t>& samples, WaitResults& r) {
  if (samples.empty()) return;
  std::sort(samples.begin(), samples.end());
  auto at = [&](double q) {
    auto rank = static_cast<std::size_t>(q * static_cast<double>(samples.size()));
    return static_cast<double>(samples[std::min(rank, samples.size() - 1)]);
  };
  double sum = 0;
  for (std::int64_t s : samples) sum += static_cast<double>(s);
  r.p50 = at(0.50);
  r.p99 = at(0.99);
  r.p999 = at(0.999);
  r.mean = sum / static_cast<double>(samples.size());
}

// Calls send(i) for i in [0, n) at `rate` per second, open loop: value i is due at
// start + i / rate whatever happened before. Gaps of 200 µs or more are slept (absolute
// clock_nanosleep, timer slack 1 ns), so that at low rates the producer's CPU is idle between
// sends as in an application; shorter gaps are spun. send() takes the send time itself, after
// the wait: the measured latency starts when the value is handed over.
template <class Send>
void paced(double rate, std::int64_t n, Send&& send) {
  auto period = static_cast<std::int64_t>(std::llround(1e9 / rate));
  bool sleep = period >= 200'000;
  if (sleep) (void)::prctl(PR_SET_TIMERSLACK, 1UL, 0UL, 0UL, 0UL);
  std::int64_t start = now_ns() + 1'000'000;
  for (std::int64_t i = 0; i < n; ++i) {
    std::int64_t due = start + i * period;
    if (sleep) {
      timespec ts{};
      ts.tv_sec = due / 1'000'000'000;
      ts.tv_nsec = due % 1'000'000'000;
      while (::clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, nullptr) != 0) {
      }
    } else {
      while (now_ns() < due) _mm_pause();
    }
    send(i);
  }
}

inline void sleep_ns(std::int64_t ns) {
  timespec ts{};
  ts.tv_sec = ns / 1'000'000'000;
  ts.tv_nsec = ns % 1'000'000'000;
  while (::nanosleep(&ts, &ts) != 0) {
  }
}

// The value of message i: its send time (taken now) in bytes 0-7, i in bytes 8-15.
inline void stamp(char* value, std::int64_t i) {
  std::int64_t t = now_ns();
  std::memcpy(value, &t, 8);
  std::memcpy(value + 8, &i, 8);
}

// One-way latency of a received value (now minus its send time).
inline std::int64_t age_ns(const void* value) {
  std::int64_t t = 0;
  std::memcpy(&t, value, 8);
  return now_ns() - t;
}

inline std::int64_t stream_warmup(const Options& o) {
  return std::min<std::int64_t>(o.messages / 10, 1000);
}

struct alignas(64) WaitShared {
  std::atomic<std::int64_t> ready{0};
  std::atomic<std::int64_t> done{0};
  WaitResults res;
};

inline void print_wait_json(const Options& o, const WaitResults& r) {
  if (o.shape == "stream") {
    std::printf(
        "{\"system\":\"%s\",\"shape\":\"stream\",\"size\":%u,\"rate\":%.0f,\"messages\":%lld,"
        "\"p50_ns\":%.0f,\"p99_ns\":%.0f,\"p999_ns\":%.0f,\"mean_ns\":%.0f,\"seconds\":%.3f,"
        "\"cpu_pct\":%.3f,\"wakeups_per_s\":%.1f}\n",
        o.system.c_str(), o.size, o.rate, static_cast<long long>(o.messages), r.p50, r.p99, r.p999,
        r.mean, r.seconds, r.cpu_pct, r.wakeups_per_s);
  } else {
    std::printf(
        "{\"system\":\"%s\",\"shape\":\"idle\",\"size\":%u,\"seconds\":%.3f,\"cpu_pct\":%.4f,"
        "\"wakeups_per_s\":%.1f}\n",
        o.system.c_str(), o.size, r.seconds, r.cpu_pct, r.wakeups_per_s);
  }
  std::fflush(stdout);
}

// The two processes of a wait shape. `consumer(start)` runs pinned to CPU 1: it opens what it
// reads, calls start() (which tells the producer to begin and starts the CPU clock), consumes,
// and returns its one-way latency samples (none for --idle). `producer(wait_ready)` runs
// pinned to CPU 0: it opens what it writes, calls wait_ready(), then sends. The result is the
// consumer's CPU figures and the samples' percentiles.
template <class Consumer, class Producer>
inline void run_wait_processes(WaitResults& r, Consumer&& consumer, Producer&& producer) {
  auto* sh = shared_object<WaitShared>();
  pid_t c = spawn([&] {
    pin_to_cpu(1);
    CpuMark a{};
    std::vector<std::int64_t> samples = consumer([&] {
      sh->ready.store(1, std::memory_order_release);
      a = cpu_mark();
    });
    CpuMark b = cpu_mark();
    cpu_between(a, b, sh->res);
    percentiles_ns(samples, sh->res);
    sh->done.store(1, std::memory_order_release);
  });
  pid_t p = spawn([&] {
    pin_to_cpu(0);
    producer([&] {
      while (sh->ready.load(std::memory_order_acquire) == 0) ::usleep(100);
    });
    while (sh->done.load(std::memory_order_acquire) == 0) ::usleep(1000);
  });
  reap(c);
  reap(p);
  r = sh->res;
  ::munmap(sh, sizeof(WaitShared));
}

// --stream over a Link: the consumer blocks in recv().
inline void run_stream(Transport& t, const Options& o, WaitResults& r) {
  t.prepare();
  std::uint32_t size = o.size;
  std::int64_t warm = stream_warmup(o);
  std::int64_t total = warm + o.messages;
  run_wait_processes(
      r,
      [&](const auto& start) {
        auto link = t.open(0, false);
        std::vector<char> buf(size);
        std::vector<std::int64_t> samples;
        samples.reserve(static_cast<std::size_t>(o.messages));
        start();
        for (std::int64_t i = 0; i < total; ++i) {
          link->recv(buf.data(), size, size);
          std::int64_t age = age_ns(buf.data());
          if (i >= warm) samples.push_back(age);
        }
        return samples;
      },
      [&](const auto& wait_ready) {
        auto link = t.open(0, true);
        std::vector<char> value(size, 'v');
        wait_ready();
        paced(o.rate, total, [&](std::int64_t i) {
          stamp(value.data(), i);
          link->send(value.data(), size);
        });
      });
  t.cleanup();
}

// --idle over a Link: the consumer blocks in recv() until the one value sent after SECONDS.
inline void run_idle(Transport& t, const Options& o, WaitResults& r) {
  t.prepare();
  std::uint32_t size = o.size;
  run_wait_processes(
      r,
      [&](const auto& start) {
        auto link = t.open(0, false);
        std::vector<char> buf(size);
        start();
        link->recv(buf.data(), size, size);
        return std::vector<std::int64_t>{};
      },
      [&](const auto& wait_ready) {
        auto link = t.open(0, true);
        std::vector<char> value(size, 'v');
        wait_ready();
        sleep_ns(static_cast<std::int64_t>(o.idle_s * 1e9));
        stamp(value.data(), 0);
        link->send(value.data(), size);
      });
  t.cleanup();
}

inline int run(int argc, char** argv, const char* system, Transport& t) {
  Options o = parse(argc, argv, system);
  if (!o.shape.empty()) {
    WaitResults w;
    if (o.shape == "stream") {
      run_stream(t, o, w);
    } else {
      run_idle(t, o, w);
    }
    print_wait_json(o, w);
    return 0;
  }
  Results r;
  if (o.tput) run_tput(t, o, r);
  if (o.lat) run_lat(t, o, r);
  print_json(o, r);
  return 0;
}

}  // namespace peers
