// Micro-benchmarks of the partition log, and the physical references they are judged by, in
// one run:
//
//   Ref/CacheLinePingPong/...  two CPUs bouncing one cache line: the floor for one-way latency
//   Ref/Memcpy/...             memcpy bandwidth into a cache-sized ring and into a large buffer
//   Ref/Clock/...              clock costs (what a per-record timestamp costs)
//   Ref/Crc32c/...             CRC-32C of one buffer: the inline path, our streams, ISA-L
//   Ref/MapSegment/...         mapping a new segment, pre-faulted or not, and first writes
//   Throughput/...             producer thread(s) on CPU 0, one consumer thread on CPU 1 that
//                              reads every record concurrently; items/s and bytes/s
//   ProducerOnly/... ConsumerOnly/...   each half alone on one thread, for attribution
//   Latency/...                two processes (fork) ping-pong over two partitions: A appends to
//                              P1, B spins on P1 and appends to P2, A reads P2; one-way = half
//                              the round trip; p50/p99/p99.9/max as counters. "append" sends
//                              with append(), "claim" with claim() + copy + commit()
//
// Names spell out what varies: path (batchN = claim_batch of N records, append_batchN =
// append_batch of N copied records, append = append(),
// claim = claim/commit of one record), ts (the appender's TimestampMode: per_batch, wall,
// coarse; given = the caller passes RecordMeta::timestamp_ns), value size, producers,
// segments, and consume (touch = the consumer reads each value's first 8 bytes; copy = it
// copies the value out). Segments (S MiB x R retained):
//   recycled-spare    the consumer's handle has LogOptions{retain_segments = R,
//                     recycle_segments = true} and calls prepare_next() once per segment read,
//                     which recycles the oldest segment into spare.seg; the producers' handles
//                     have no retention, so a roll always takes the spare.
//   recycled-inplace  every handle has {R, recycle}; nobody calls prepare_next(): each roll
//                     recycles the oldest segment in place.
//   recycled-both     every handle has {R, recycle} and the consumer calls prepare_next(): the
//                     two recycling paths race (see roll_failed).
//   fresh             the consumer's handle has {R, recycle_segments = false}: prepare_next()
//                     deletes old segments and creates each spare anew (fresh pages).
//
// Flow control: the benchmark adds the one an application with bounded retention needs (the
// log's own roll_gate works per segment and is not used here): a producer does not run more
// than (retain - 2) segments ahead of the consumer's published position (it spins, then
// yields). Without it retention would take segments a slow consumer has not read (the
// consumer's pin keeps such a file from being reused, so rolls would create new files).
// "idle:backoffN" variants: a consumer that has caught up pauses N µs instead of spinning on the
// next frame.
//
// Latency: "sampled" times each round trip (p50/p90/p99/p99.9/max/mean counters); "loop" has
// no per-sample timer and reports only the loop's mean (one_way_ns), like the "loop"
// ping-pong reference. wait:poll-spin spins on poll() instead of LogReader::wait().
//
// Pinning: producers on CPU 0, the consumer (or the echo process) on CPU 1. With 2 producers
// the two share CPU 0 (the machine has 2 CPUs).
//
// Timing: Throughput uses manual time, from the first record of the timed part until the
// consumer has read the last one (the drain is in the last iteration), so items_per_second is
// what the consumer received. Latency counters come from per-round-trip samples taken with
// rdtscp (calibrated against steady_clock at start-up); the sampled ping-pong reference is
// measured the same way, so the two compare directly.
//
// Usage: build/bench/log_bench [--benchmark_filter=REGEX]. SLUICE_DATA_DIR (default
// /dev/shm/sluice) holds the temporary partitions; each benchmark removes its own.
#include <benchmark/benchmark.h>
#include <sched.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>
#include <x86intrin.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <functional>
#include <memory>
#include <new>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "shm/clock.h"
#include "shm/crc32c.h"
#include "shm/log_appender.h"
#include "shm/log_reader.h"
#include "shm/mapped_file.h"
#include "shm/partition_log.h"
#include "shm/tsc_clock.h"
#include "tools/cpu_pinning.h"

namespace {

using sluice::Result;
using sluice::Status;
using namespace sluice::shm;
using sluice::tools::cpu_count;
using sluice::tools::pin_to_cpu;
using Clock = std::chrono::steady_clock;

// ---- small utilities -------------------------------------------------------------------------

// The temporary directory of the benchmark running now, removed by fatal().
std::string g_current_dir;

[[noreturn]] void fatal(const std::string& what) {
  std::fprintf(stderr, "log_bench: %s\n", what.c_str());
  std::fflush(stderr);
  if (!g_current_dir.empty()) {
    std::error_code ec;
    std::filesystem::remove_all(g_current_dir, ec);
  }
  std::_Exit(2);
}

template <class T>
T must(Result<T> r, const std::string& what) {
  if (!r) fatal(what + ": " + r.status().message());
  return std::move(r).value();
}

void must(const Status& s, const std::string& what) {
  if (!s) fatal(what + ": " + s.message());
}

double seconds_between(Clock::time_point a, Clock::time_point b) {
  return std::chrono::duration<double>(b - a).count();
}

// Nanoseconds per TSC tick, measured once at start-up.
double g_ns_per_tick = 0;

void calibrate_tsc() {
  unsigned aux;
  auto t0 = Clock::now();
  std::uint64_t c0 = __rdtscp(&aux);
  std::this_thread::sleep_for(std::chrono::milliseconds(200));
  auto t1 = Clock::now();
  std::uint64_t c1 = __rdtscp(&aux);
  g_ns_per_tick = seconds_between(t0, t1) * 1e9 / static_cast<double>(c1 - c0);
}

inline std::uint64_t ticks() {
  unsigned aux;
  return __rdtscp(&aux);
}

// Sets p50/p90/p99/p99.9/max/mean counters (ns) from round-trip samples in TSC ticks, halved:
// one-way latency.
void report_one_way(benchmark::State& state, std::vector<std::uint64_t>& samples) {
  if (samples.empty()) return;
  std::sort(samples.begin(), samples.end());
  double scale = g_ns_per_tick / 2;
  auto at = [&](double q) {
    auto rank = static_cast<std::size_t>(q * static_cast<double>(samples.size()));
    if (rank >= samples.size()) rank = samples.size() - 1;
    return static_cast<double>(samples[rank]) * scale;
  };
  double sum = 0;
  for (std::uint64_t s : samples) sum += static_cast<double>(s);
  state.counters["p50_ns"] = at(0.50);
  state.counters["p90_ns"] = at(0.90);
  state.counters["p99_ns"] = at(0.99);
  state.counters["p99.9_ns"] = at(0.999);
  state.counters["max_ns"] = static_cast<double>(samples.back()) * scale;
  state.counters["mean_ns"] = sum / static_cast<double>(samples.size()) * scale;
}

std::string data_root() {
  const char* env = std::getenv("SLUICE_DATA_DIR");
  return env != nullptr && *env != '\0' ? env : "/dev/shm/sluice";
}

// A private directory under the data root, removed with everything in it.
class TempDir {
 public:
  explicit TempDir(const std::string& tag) {
    static int counter = 0;
    path_ = data_root() + "/bench-" + std::to_string(::getpid()) + "-" + tag + "-" +
            std::to_string(counter++);
    std::filesystem::remove_all(path_);
    std::filesystem::create_directories(path_);
    g_current_dir = path_;
  }
  ~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
    g_current_dir.clear();
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

// An object in a MAP_SHARED anonymous mapping: visible to a forked child.
template <class T>
class SharedObject {
 public:
  SharedObject() {
    void* p = ::mmap(nullptr, sizeof(T), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) fatal("mmap of a shared page failed");
    obj_ = new (p) T();
  }
  ~SharedObject() {
    obj_->~T();
    ::munmap(obj_, sizeof(T));
  }
  SharedObject(const SharedObject&) = delete;
  SharedObject& operator=(const SharedObject&) = delete;
  T* operator->() const { return obj_; }
  T& operator*() const { return *obj_; }

 private:
  T* obj_ = nullptr;
};

// Runs fn in a forked child (which exits with _exit, never returning into the benchmark
// library) or in a thread.
class Peer {
 public:
  Peer(bool as_process, std::function<void()> fn) {
    if (as_process) {
      std::fflush(nullptr);
      pid_ = ::fork();
      if (pid_ < 0) fatal("fork failed");
      if (pid_ == 0) {
        fn();
        std::_Exit(0);
      }
    } else {
      thread_ = std::thread(std::move(fn));
    }
  }
  ~Peer() { join(); }
  Peer(const Peer&) = delete;
  Peer& operator=(const Peer&) = delete;
  void join() {
    if (thread_.joinable()) thread_.join();
    if (pid_ > 0) {
      int status = 0;
      ::waitpid(pid_, &status, 0);
      pid_ = -1;
      if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) fatal("peer process failed");
    }
  }

 private:
  pid_t pid_ = -1;
  std::thread thread_;
};

struct alignas(kCacheLine) PaddedAtomic {
  std::atomic<std::int64_t> v{0};
};

// ---- references ------------------------------------------------------------------------------

struct PingLines {
  PaddedAtomic ping;  // A -> B (and B -> A in one-line mode)
  PaddedAtomic pong;  // B -> A in two-line mode
  PaddedAtomic stop;
};

// B's side: echoes every value A writes. One line: A writes odd n, B answers n + 1 on the same
// line. Two lines: B copies ping to pong.
void ping_pong_echo(PingLines& l, bool one_line) {
  pin_to_cpu(1);
  std::int64_t expect = 1;
  for (;;) {
    std::int64_t v;
    while ((v = l.ping.v.load(std::memory_order_acquire)) != expect) {
      if (l.stop.v.load(std::memory_order_relaxed) != 0) return;
    }
    if (one_line) {
      l.ping.v.store(v + 1, std::memory_order_release);
      expect += 2;
    } else {
      l.pong.v.store(v, std::memory_order_release);
      expect += 1;
    }
  }
}

// Ref/CacheLinePingPong: one-way = round trip / 2. "threads/loop" times the whole loop (no
// per-sample timer: the mean); "processes/sampled" forks B and times each round trip with
// rdtscp exactly as the Latency benchmarks do.
void BM_PingPong(benchmark::State& state, bool processes, bool sampled, bool one_line) {
  pin_to_cpu(0);
  SharedObject<PingLines> lines;
  PingLines& l = *lines;
  Peer echo(processes, [&l, one_line] { ping_pong_echo(l, one_line); });
  std::int64_t n = 1;
  auto round_trip = [&] {
    l.ping.v.store(n, std::memory_order_release);
    if (one_line) {
      while (l.ping.v.load(std::memory_order_acquire) != n + 1) {
      }
      n += 2;
    } else {
      while (l.pong.v.load(std::memory_order_acquire) != n) {
      }
      n += 1;
    }
  };
  for (int i = 0; i < 10'000; ++i) round_trip();  // warm-up
  std::vector<std::uint64_t> samples;
  if (sampled) samples.reserve(static_cast<std::size_t>(state.max_iterations));
  auto t0 = Clock::now();
  for (auto _ : state) {
    if (sampled) {
      std::uint64_t c0 = ticks();
      round_trip();
      samples.push_back(ticks() - c0);
    } else {
      round_trip();
    }
  }
  auto t1 = Clock::now();
  l.stop.v.store(1, std::memory_order_relaxed);
  echo.join();
  state.counters["one_way_ns"] =
      seconds_between(t0, t1) * 1e9 / static_cast<double>(state.iterations()) / 2;
  if (sampled) report_one_way(state, samples);
}

// Ref/Memcpy: copies `size` bytes from a hot source into a ring of `ring` bytes, moving on
// each time (the ring is the destination's footprint: 2 MiB stays in L2, 256 MiB does not).
void BM_Memcpy(benchmark::State& state, std::size_t size, std::size_t ring) {
  pin_to_cpu(0);
  std::vector<std::byte> src(size, std::byte{0x5a});
  auto* dst = static_cast<std::byte*>(std::aligned_alloc(4096, ring));
  std::memset(dst, 0, ring);  // fault the pages in
  std::size_t pos = 0;
  for (auto _ : state) {
    std::memcpy(dst + pos, src.data(), size);
    benchmark::ClobberMemory();
    pos += size;
    if (pos + size > ring) pos = 0;
  }
  std::free(dst);
  state.SetBytesProcessed(state.iterations() * static_cast<std::int64_t>(size));
}

void BM_Clock(benchmark::State& state, int which) {
  std::int64_t sum = 0;
  for (auto _ : state) {
    switch (which) {
      case 0:
        sum += wall_clock_ns();
        break;
      case 1:
        sum += coarse_wall_clock_ns();
        break;
      default:
        sum += static_cast<std::int64_t>(__rdtsc());
        break;
    }
  }
  benchmark::DoNotOptimize(sum);
}

// The record timestamp's clock (shm/tsc_clock.h), with its largest distance from
// clock_gettime, counted outside the timed loop: 100k readings each bracketed by
// clock_gettime; worst_off_ns is the largest distance outside a bracket, mean_from_middle_ns
// the mean signed distance from the brackets' middles (the clock's bias).
void BM_TscWallClock(benchmark::State& state) {
  TscWallClock clock;
  std::int64_t sum = 0;
  for (auto _ : state) sum += clock.now();
  benchmark::DoNotOptimize(sum);
  std::int64_t worst = 0;
  double offset_sum = 0;
  constexpr int kReads = 100'000;
  for (int i = 0; i < kReads; ++i) {
    std::int64_t before = wall_clock_ns();
    std::int64_t t = clock.now();
    std::int64_t after = wall_clock_ns();
    std::int64_t off = t < before ? before - t : (t > after ? t - after : 0);
    worst = std::max(worst, off);
    offset_sum += static_cast<double>(t - before) - static_cast<double>(after - before) / 2;
  }
  state.counters["mean_from_middle_ns"] = offset_sum / kReads;
  state.counters["uses_tsc"] = clock.uses_tsc() ? 1 : 0;
  state.counters["worst_off_ns"] = static_cast<double>(worst);
}

// Ref/Crc32c: the CRC-32C of one buffer, in L1, called back to back (crc32c.h has the three
// paths): "inline" is crc32c() below its 256-byte threshold; "streams" and "isa-l" call the
// two out-of-line paths directly, also below the threshold, to show why it is there.
enum class CrcCode { kInline, kStreams, kIsal };
void BM_Crc32c(benchmark::State& state, std::size_t size, CrcCode code) {
  std::vector<unsigned char> buf(size, 0x42);
  std::uint32_t sum = 0;
  for (auto _ : state) {
    benchmark::DoNotOptimize(buf.data());
    switch (code) {
      case CrcCode::kInline:
        sum += crc32c(buf.data(), size);
        break;
      case CrcCode::kStreams:
        sum += crc32c_extend_streams(0, buf.data(), size);
        break;
      case CrcCode::kIsal:
        sum += crc32c_extend_isal(0, buf.data(), size);
        break;
    }
  }
  benchmark::DoNotOptimize(sum);
  state.SetBytesProcessed(state.iterations() * static_cast<std::int64_t>(size));
}

// Ref/MapSegment: what mapping a new segment costs the process that rolls onto it (the work
// SegmentPremapper takes off the hot path). Each iteration creates a segment-sized file with
// its storage (as a spare is made, outside the timing), then maps it, pre-faulted
// ("populate", LogOptions::populate) or not ("lazy"), and writes one byte to every page (the
// appends that follow). Counters: map_us and touch_us per segment; the time is their sum.
void BM_MapSegment(benchmark::State& state, std::uint64_t bytes, bool populate) {
  TempDir dir("map");
  const std::string path = dir.path() + "/segment";
  double map_s = 0, touch_s = 0;
  for (auto _ : state) {
    if (Status s = create_file(path, bytes, 0600); !s) {
      state.SkipWithError(s.message().c_str());
      return;
    }
    auto t0 = std::chrono::steady_clock::now();
    auto file = MappedFile::open(path, Access::kReadWrite, populate);
    auto t1 = std::chrono::steady_clock::now();
    if (!file) {
      state.SkipWithError(file.status().message().c_str());
      return;
    }
    for (std::uint64_t at = 0; at < bytes; at += 4096) file->data()[at] = std::byte{1};
    auto t2 = std::chrono::steady_clock::now();
    double map = std::chrono::duration<double>(t1 - t0).count();
    double touch = std::chrono::duration<double>(t2 - t1).count();
    state.SetIterationTime(map + touch);
    map_s += map;
    touch_s += touch;
    *file = MappedFile();
    (void)remove_file(path);
  }
  auto n = static_cast<double>(state.iterations());
  state.counters["map_us"] = map_s / n * 1e6;
  state.counters["touch_us"] = touch_s / n * 1e6;
}

// ---- throughput ------------------------------------------------------------------------------

enum class Path { kBatch, kAppend, kClaim, kAppendBatch };
enum class Consume { kTouch, kCopy };
enum class Segments { kRecycledSpare, kRecycledInPlace, kRecycledBoth, kFresh };

const char* segments_name(Segments s) {
  switch (s) {
    case Segments::kRecycledSpare:
      return "recycled-spare";
    case Segments::kRecycledInPlace:
      return "recycled-inplace";
    case Segments::kRecycledBoth:
      return "recycled-both";
    case Segments::kFresh:
      return "fresh";
  }
  return "?";
}

struct TputConfig {
  Path path = Path::kBatch;
  TimestampMode ts = TimestampMode::kPerBatch;
  bool given_ts = false;  // append/claim: pass RecordMeta::timestamp_ns (read once per 1024)
  std::uint32_t value_size = 32;
  std::uint32_t batch = 64;  // records per claim_batch (Path::kBatch)
  int producers = 1;
  Segments segments = Segments::kRecycledSpare;
  Consume consume = Consume::kTouch;
  // When the consumer finds nothing new: 0 = spin on the next frame's commit word
  // (LogReader::wait, kSpin); else pause this long without touching the log before polling
  // again, so that it does not sit on the line the producer is writing.
  std::int64_t idle_backoff_ns = 0;
  std::uint64_t segment_bytes = std::uint64_t{4} << 20;
  std::uint32_t retain = 4;

  std::uint64_t stride() const {
    return align_frame(kFrameHeaderBytes + std::uint64_t{value_size});
  }
  // Records per segment (a roll wastes the tail that does not fit a whole frame).
  std::int64_t records_per_segment() const {
    return static_cast<std::int64_t>((segment_bytes - kFrameHeaderBytes) / stride());
  }
  std::uint32_t claim_records() const {
    return path == Path::kBatch || path == Path::kAppendBatch ? batch : 1;
  }
  // Records per benchmark iteration: about 64 KiB of frames, a whole number of claims.
  std::uint32_t records_per_iteration() const {
    std::uint64_t claim_bytes = stride() * claim_records();
    std::uint64_t claims = std::max<std::uint64_t>(1, (std::uint64_t{64} << 10) / claim_bytes);
    return static_cast<std::uint32_t>(claims * claim_records());
  }
  // How far (in offsets) a producer may run ahead of the consumer.
  std::int64_t window() const {
    return static_cast<std::int64_t>(retain - 2) * records_per_segment() -
           static_cast<std::int64_t>(claim_records());
  }
  bool consumer_prepares() const { return segments != Segments::kRecycledInPlace; }
  // The handle the consumer reads (and calls prepare_next()) with.
  LogOptions consumer_options() const {
    LogOptions o;
    o.retain_segments = retain;
    o.recycle_segments = segments != Segments::kFresh;
    return o;
  }
  // The handle producers append with.
  LogOptions producer_options() const {
    if (segments == Segments::kRecycledInPlace || segments == Segments::kRecycledBoth)
      return consumer_options();
    return LogOptions{};
  }
};

struct TputShared {
  PaddedAtomic consumer_next;  // the consumer's reader.position(), for flow control
  PaddedAtomic consumed;       // records the consumer has read
  PaddedAtomic produced[2];    // per producer, published when it stops
  PaddedAtomic target;         // the consumer stops after this many records (-1: not yet)
  PaddedAtomic stop_extra;     // tells the extra producer to stop
  PaddedAtomic start_extra;    // tells the extra producer to start
  PaddedAtomic failed;
  PaddedAtomic extra_roll_failures;
};

class Producer {
 public:
  Producer(const std::shared_ptr<PartitionLog>& log, const TputConfig& cfg, TputShared& sh)
      : cfg_(cfg), sh_(sh), payload_(cfg.value_size + 8, std::byte{0x42}) {
    AppenderOptions ao;
    ao.timestamp_mode = cfg.ts;
    app_.emplace(must(LogAppender::open(log, ao), "open appender"));
    limit_ = cfg.window();
  }

  // Appends n records (a multiple of the claim size).
  void produce(std::uint32_t n) {
    switch (cfg_.path) {
      case Path::kBatch:
        produce_batch(n);
        break;
      case Path::kAppend:
        produce_append(n);
        break;
      case Path::kClaim:
        produce_claim(n);
        break;
      case Path::kAppendBatch:
        produce_append_batch(n);
        break;
    }
    count_ += n;
  }
  std::int64_t count() const { return count_; }
  std::int64_t roll_failures() const { return roll_failures_; }

 private:
  // A failed roll is a bug (see the report) or a full disk: count it and retry (the next
  // reservation waits for the roll, and recovers it after the abandon timeout).
  void on_failure(AppendOutcome o) {
    if (o != AppendOutcome::kRollFailed || ++roll_failures_ > 100)
      fatal(std::string("append failed: ") + describe(o));
  }

  void stamp(std::byte* value) {
    if (cfg_.value_size >= 8) std::memcpy(value, &seq_, 8);
    ++seq_;
  }

  void produce_batch(std::uint32_t n) {
    BatchClaim b;
    std::uint32_t size = cfg_.value_size;
    for (std::uint32_t done = 0; done < n; done += cfg_.batch) {
      AppendOutcome o;
      while ((o = app_->claim_batch(cfg_.batch, size, b)) != AppendOutcome::kOk) on_failure(o);
      for (std::uint32_t i = 0; i < b.count(); ++i) {
        std::byte* v = b.value(i).data();
        std::memcpy(v, payload_.data(), size);
        stamp(v);
      }
      app_->commit(b);
      flow_control(b.first_offset() + b.count() - 1);
    }
  }

  void produce_append(std::uint32_t n) {
    RecordMeta meta;
    if (cfg_.given_ts) meta.timestamp_ns = wall_clock_ns();
    std::string_view value(reinterpret_cast<const char*>(payload_.data()), cfg_.value_size);
    for (std::uint32_t i = 0; i < n; ++i) {
      stamp(payload_.data());
      AppendResult r;
      while ((r = app_->append(value, meta)).outcome != AppendOutcome::kOk) on_failure(r.outcome);
      flow_control(r.offset);
    }
  }

  // append_batch of `batch` records with their own timestamps, no key: the Kafka gateway's
  // produce path (a decoded client batch copied in with one reservation).
  void produce_append_batch(std::uint32_t n) {
    std::vector<BatchRecord> records(cfg_.batch);
    std::int64_t ts = wall_clock_ns();
    for (BatchRecord& r : records) {
      r.meta.timestamp_ns = ts;
      r.value = std::string_view(reinterpret_cast<const char*>(payload_.data()), cfg_.value_size);
    }
    for (std::uint32_t done = 0; done < n; done += cfg_.batch) {
      stamp(payload_.data());
      AppendResult r;
      while ((r = app_->append_batch(records)).outcome != AppendOutcome::kOk) on_failure(r.outcome);
      flow_control(r.offset + cfg_.batch - 1);
    }
  }

  void produce_claim(std::uint32_t n) {
    RecordMeta meta;
    if (cfg_.given_ts) meta.timestamp_ns = wall_clock_ns();
    Claim c;
    for (std::uint32_t i = 0; i < n; ++i) {
      AppendOutcome o;
      while ((o = app_->claim(cfg_.value_size, c, meta)) != AppendOutcome::kOk) on_failure(o);
      std::byte* v = c.value().data();
      std::memcpy(v, payload_.data(), cfg_.value_size);
      stamp(v);
      std::int64_t offset = c.offset();
      app_->commit(c);
      flow_control(offset);
    }
  }

  // Keeps this producer within the window ahead of the consumer. Reads the consumer's line
  // only when the cached limit is reached.
  void flow_control(std::int64_t offset) {
    if (offset < limit_) [[likely]]
      return;
    for (std::uint32_t spins = 0;; ++spins) {
      limit_ = sh_.consumer_next.v.load(std::memory_order_acquire) + cfg_.window();
      if (offset < limit_ || sh_.failed.v.load(std::memory_order_relaxed) != 0) return;
      if (spins < 256) {
        _mm_pause();
      } else {
        sched_yield();
      }
    }
  }

  TputConfig cfg_;
  TputShared& sh_;
  std::optional<LogAppender> app_;
  std::vector<std::byte> payload_;
  std::uint64_t seq_ = 0;
  std::int64_t limit_ = 0;
  std::int64_t count_ = 0;
  std::int64_t roll_failures_ = 0;
};

template <Consume kMode>
void consume_loop(const std::shared_ptr<PartitionLog>& log, const TputConfig& cfg, TputShared& sh) {
  pin_to_cpu(1);
  LogReader reader = must(LogReader::open(log), "open reader");
  std::vector<std::byte> out(cfg.value_size + 8);
  std::uint64_t sink = 0;
  auto handler = [&](const RecordView& r) {
    std::string_view v = r.value.value_or(std::string_view{});
    if constexpr (kMode == Consume::kCopy) {
      std::memcpy(out.data(), v.data(), v.size());
      sink += static_cast<std::uint64_t>(out[0]);
    } else if (v.size() >= 8) {
      std::uint64_t x;
      std::memcpy(&x, v.data(), 8);
      sink += x;
    } else {
      sink += v.size();
    }
  };
  std::int64_t consumed = 0;
  std::int64_t per_segment = cfg.records_per_segment();
  // Half a segment out of phase with the rolls, so that the spare is ready well before the
  // next roll needs it.
  std::int64_t next_prepare = per_segment / 2;
  for (;;) {
    PollResult pr = reader.poll(handler, 4096);
    if (pr.records != 0) {
      consumed += pr.records;
      sh.consumed.v.store(consumed, std::memory_order_relaxed);
      sh.consumer_next.v.store(reader.position(), std::memory_order_release);
      if (cfg.consumer_prepares() && consumed >= next_prepare) {
        must(log->prepare_next(), "prepare_next");
        next_prepare = consumed + per_segment;
      }
      continue;
    }
    if (pr.outcome != ReadOutcome::kOk) {
      sh.failed.v.store(1, std::memory_order_relaxed);
      fatal("consumer: " + reader.error().message());
    }
    std::int64_t target = sh.target.v.load(std::memory_order_acquire);
    if (target >= 0 && consumed >= target) break;
    if (cfg.idle_backoff_ns > 0) {
      std::uint64_t until = ticks() + static_cast<std::uint64_t>(
                                          static_cast<double>(cfg.idle_backoff_ns) / g_ns_per_tick);
      while (ticks() < until) _mm_pause();
    } else {
      // Spin on the next frame's commit word (LogReader::wait), not on poll(): an empty poll
      // also reads the segment's tail line, which the producers' fetch_add owns.
      (void)reader.wait(WaitStrategy::kSpin, 200'000);
    }
  }
  benchmark::DoNotOptimize(sink);
}

void BM_Throughput(benchmark::State& state, TputConfig cfg) {
  pin_to_cpu(0);
  TempDir dir("tput");
  LogConfig lc;
  lc.segment_bytes = cfg.segment_bytes;
  std::string part = dir.path() + "/p0";
  auto log = must(PartitionLog::create(part, lc, cfg.consumer_options()), "create");
  auto producer_log = must(PartitionLog::open(part, cfg.producer_options()), "open");
  must(log->prepare_next(), "prepare_next");
  SharedObject<TputShared> shared;
  TputShared& sh = *shared;
  sh.target.v.store(-1);

  std::thread consumer([&] {
    if (cfg.consume == Consume::kCopy) {
      consume_loop<Consume::kCopy>(log, cfg, sh);
    } else {
      consume_loop<Consume::kTouch>(log, cfg, sh);
    }
  });
  Producer main_producer(producer_log, cfg, sh);
  std::uint32_t per_iter = cfg.records_per_iteration();

  // Warm-up: enough segments that retention recycles in the steady state.
  std::int64_t warm = (static_cast<std::int64_t>(cfg.retain) + 2) * cfg.records_per_segment();
  while (main_producer.count() < warm) main_producer.produce(per_iter);
  while (sh.consumed.v.load(std::memory_order_relaxed) < main_producer.count()) {
  }
  std::int64_t consumed_before = main_producer.count();

  std::thread extra;
  if (cfg.producers > 1) {
    extra = std::thread([&] {
      pin_to_cpu(0);
      Producer p(producer_log, cfg, sh);
      while (sh.start_extra.v.load(std::memory_order_acquire) == 0) {
      }
      while (sh.stop_extra.v.load(std::memory_order_relaxed) == 0) p.produce(per_iter);
      sh.extra_roll_failures.v.store(p.roll_failures(), std::memory_order_relaxed);
      sh.produced[1].v.store(p.count(), std::memory_order_release);
    });
  }

  sh.start_extra.v.store(1, std::memory_order_release);
  std::int64_t i = 0;
  auto start = Clock::now();
  for (auto _ : state) {
    auto t0 = Clock::now();
    main_producer.produce(per_iter);
    if (++i == state.max_iterations) {
      // Last iteration: stop the other producer and wait until every record has been read.
      sh.stop_extra.v.store(1, std::memory_order_relaxed);
      if (extra.joinable()) extra.join();
      std::int64_t total = main_producer.count() + sh.produced[1].v.load();
      while (sh.consumed.v.load(std::memory_order_relaxed) < total) {
      }
    }
    state.SetIterationTime(seconds_between(t0, Clock::now()));
  }
  auto end = Clock::now();
  if (extra.joinable()) {
    sh.stop_extra.v.store(1, std::memory_order_relaxed);
    extra.join();
  }
  std::int64_t total = main_producer.count() + sh.produced[1].v.load();
  sh.target.v.store(total, std::memory_order_release);
  consumer.join();

  std::int64_t items = total - consumed_before;
  state.SetItemsProcessed(items);
  state.SetBytesProcessed(items * static_cast<std::int64_t>(cfg.value_size));
  // Frame bytes (header + value + alignment) moved per second.
  state.counters["frame_bytes/s"] = benchmark::Counter(
      static_cast<double>(items) * static_cast<double>(cfg.stride()), benchmark::Counter::kIsRate);
  state.counters["wall_s"] = seconds_between(start, end);
  state.counters["roll_failed"] =
      static_cast<double>(main_producer.roll_failures() + sh.extra_roll_failures.v.load());
}

// ProducerOnly: one thread appends, no consumer; it calls prepare_next() once per segment
// itself. What a producer costs, without the cross-core traffic.
void BM_ProducerOnly(benchmark::State& state, TputConfig cfg) {
  pin_to_cpu(0);
  TempDir dir("prod");
  LogConfig lc;
  lc.segment_bytes = cfg.segment_bytes;
  auto log = must(PartitionLog::create(dir.path() + "/p0", lc, cfg.consumer_options()), "create");
  must(log->prepare_next(), "prepare_next");
  SharedObject<TputShared> shared;
  shared->consumer_next.v.store(std::int64_t{1} << 62);  // no flow control
  Producer p(log, cfg, *shared);
  std::uint32_t per_iter = cfg.records_per_iteration();
  std::int64_t per_segment = cfg.records_per_segment();
  std::int64_t next_prepare = per_segment / 2;
  auto prepare = [&] {
    if (p.count() >= next_prepare) {
      must(log->prepare_next(), "prepare_next");
      next_prepare = p.count() + per_segment;
    }
  };
  while (p.count() < (static_cast<std::int64_t>(cfg.retain) + 2) * per_segment) {
    p.produce(per_iter);
    prepare();
  }
  std::int64_t before = p.count();
  for (auto _ : state) {
    p.produce(per_iter);
    prepare();
  }
  state.SetItemsProcessed(p.count() - before);
  state.SetBytesProcessed((p.count() - before) * static_cast<std::int64_t>(cfg.value_size));
}

// ConsumerOnly: reads a filled segment of records again and again (seek_to_beginning each
// time): what a reader costs per record, data in this CPU's cache where it fits.
void BM_ConsumerOnly(benchmark::State& state, TputConfig cfg) {
  pin_to_cpu(0);
  TempDir dir("cons");
  LogConfig lc;
  lc.segment_bytes = cfg.segment_bytes;
  auto log = must(PartitionLog::create(dir.path() + "/p0", lc, {}), "create");
  SharedObject<TputShared> shared;
  shared->consumer_next.v.store(std::int64_t{1} << 62);
  Producer p(log, cfg, *shared);
  std::int64_t n = cfg.records_per_segment() - cfg.claim_records();  // stays in one segment
  n -= n % cfg.claim_records();
  p.produce(static_cast<std::uint32_t>(n));
  LogReader reader = must(LogReader::open(log), "open reader");
  std::uint64_t sink = 0;
  auto handler = [&](const RecordView& r) {
    std::uint64_t x = 0;
    std::string_view v = r.value.value_or(std::string_view{});
    if (v.size() >= 8) std::memcpy(&x, v.data(), 8);
    sink += x;
  };
  std::int64_t items = 0;
  for (auto _ : state) {
    must(reader.seek_to_beginning(), "seek");
    std::int64_t got = 0;
    while (got < n) got += reader.poll(handler, 4096).records;
    items += got;
  }
  benchmark::DoNotOptimize(sink);
  state.SetItemsProcessed(items);
  state.SetBytesProcessed(items * static_cast<std::int64_t>(cfg.value_size));
}

// ---- latency ---------------------------------------------------------------------------------

struct LatConfig {
  WaitStrategy wait = WaitStrategy::kSpin;
  bool poll_spin = false;  // spin on poll() instead of LogReader::wait()
  TimestampMode ts = TimestampMode::kWallClock;
  std::int64_t gap_ns = 0;  // A pauses this long (busy) between round trips
  std::uint32_t value_size = 32;
  std::uint64_t segment_bytes = std::uint64_t{4} << 20;
  std::uint32_t retain = 4;
  bool sampled = true;  // false: no per-round-trip timer, only the loop's mean (one_way_ns)
  bool claim = false;   // both sides claim(), copy the value in and commit(), not append()

  LogOptions log_options() const {
    LogOptions o;
    o.retain_segments = retain;
    o.recycle_segments = true;
    return o;
  }
};

struct LatShared {
  PaddedAtomic ready;
  PaddedAtomic stop;
};

// Waits until `reader` has one record and consumes it (handler gets it).
template <class Handler>
void receive_one(LogReader& reader, const LatConfig& cfg, Handler&& handler,
                 const std::atomic<std::int64_t>* stop) {
  for (;;) {
    if (cfg.poll_spin) {
      if (reader.poll(handler, 1).records != 0) return;
    } else {
      if (reader.wait(cfg.wait, 100'000'000) && reader.poll(handler, 1).records != 0) return;
    }
    if (stop != nullptr && stop->load(std::memory_order_relaxed) != 0) return;
  }
}

// Appends `value` with append(), or with claim() + copy + commit() when cfg.claim.
bool send_one(LogAppender& app, const LatConfig& cfg, std::string_view value) {
  if (!cfg.claim) return app.append(value).outcome == AppendOutcome::kOk;
  Claim c;
  if (app.claim(static_cast<std::uint32_t>(value.size()), c) != AppendOutcome::kOk) return false;
  std::memcpy(c.value().data(), value.data(), value.size());
  app.commit(c);
  return true;
}

// B: reads P1, appends each record's value to P2.
void latency_echo(const std::string& dir, const LatConfig& cfg, LatShared& sh) {
  pin_to_cpu(1);
  auto p1 = must(PartitionLog::open(dir + "/p1", cfg.log_options()), "open p1");
  // No retention on the handle B appends with: A's prepare_next() recycles P2's segments into
  // the spare, and B's rolls take it (a roll that recycles in place would race with A).
  auto p2 = must(PartitionLog::open(dir + "/p2", LogOptions{}), "open p2");
  LogReader reader = must(LogReader::open(p1), "open reader");
  AppenderOptions ao;
  ao.timestamp_mode = cfg.ts;
  LogAppender app = must(LogAppender::open(p2, ao), "open appender");
  auto echo = [&](const RecordView& r) {
    if (!send_one(app, cfg, r.value.value_or(std::string_view{}))) fatal("echo append failed");
  };
  sh.ready.v.store(1, std::memory_order_release);
  while (sh.stop.v.load(std::memory_order_relaxed) == 0) receive_one(reader, cfg, echo, &sh.stop.v);
}

void BM_Latency(benchmark::State& state, LatConfig cfg) {
  pin_to_cpu(0);
  TempDir dir("lat");
  LogConfig lc;
  lc.segment_bytes = cfg.segment_bytes;
  auto p1 = must(PartitionLog::create(dir.path() + "/p1", lc, cfg.log_options()), "create p1");
  auto p2 = must(PartitionLog::create(dir.path() + "/p2", lc, cfg.log_options()), "create p2");
  must(p1->prepare_next(), "prepare_next");
  must(p2->prepare_next(), "prepare_next");
  SharedObject<LatShared> shared;
  LatShared& sh = *shared;
  std::string path = dir.path();
  Peer echo(true, [&] { latency_echo(path, cfg, sh); });

  AppenderOptions ao;
  ao.timestamp_mode = cfg.ts;
  LogAppender app = must(LogAppender::open(p1, ao), "open appender");
  LogReader reader = must(LogReader::open(p2), "open reader");
  std::string value(cfg.value_size, 'p');
  std::uint64_t sink = 0;
  auto on_pong = [&](const RecordView& r) { sink += r.value.value_or(std::string_view{}).size(); };
  auto round_trip = [&] {
    if (!send_one(app, cfg, value)) fatal("append failed");
    receive_one(reader, cfg, on_pong, nullptr);
  };
  while (sh.ready.v.load(std::memory_order_acquire) == 0) {
  }
  auto maintain = [&] {  // off the clock: keep a spare ready, recycle old segments
    must(p1->prepare_next(), "prepare_next");
    must(p2->prepare_next(), "prepare_next");
  };
  for (int i = 0; i < 20'000; ++i) {
    round_trip();
    if (i % 4096 == 0) maintain();
  }
  std::vector<std::uint64_t> samples;
  if (cfg.sampled) samples.reserve(static_cast<std::size_t>(state.max_iterations));
  auto gap_ticks = static_cast<std::uint64_t>(static_cast<double>(cfg.gap_ns) / g_ns_per_tick);
  std::uint64_t n = 0;
  auto t0 = Clock::now();
  for (auto _ : state) {
    if (gap_ticks != 0) {
      std::uint64_t until = ticks() + gap_ticks;
      while (ticks() < until) {
      }
    }
    if (cfg.sampled) {
      std::uint64_t c0 = ticks();
      round_trip();
      samples.push_back(ticks() - c0);
    } else {
      round_trip();
    }
    if (++n % 4096 == 0) maintain();
  }
  auto t1 = Clock::now();
  sh.stop.v.store(1, std::memory_order_relaxed);
  (void)app.append(value);  // wakes B if it is parked
  echo.join();
  benchmark::DoNotOptimize(sink);
  // The loop's mean, maintenance and gaps included (meaningful without gaps).
  state.counters["one_way_ns"] =
      seconds_between(t0, t1) * 1e9 / static_cast<double>(state.iterations()) / 2;
  report_one_way(state, samples);
}

// ---- registration ----------------------------------------------------------------------------

std::string size_name(std::uint32_t bytes) {
  if (bytes >= (1u << 10) && bytes % (1u << 10) == 0) return std::to_string(bytes >> 10) + "KiB";
  return std::to_string(bytes) + "B";
}

const char* ts_name(TimestampMode m, bool given) {
  if (given) return "given";
  switch (m) {
    case TimestampMode::kWallClock:
      return "wall";
    case TimestampMode::kCoarse:
      return "coarse";
    case TimestampMode::kPerBatch:
      return "per_batch";
  }
  return "?";
}

std::string tput_name(const char* group, const TputConfig& c) {
  std::string path = c.path == Path::kBatch         ? "batch" + std::to_string(c.batch)
                     : c.path == Path::kAppendBatch ? "append_batch" + std::to_string(c.batch)
                     : c.path == Path::kAppend      ? "append"
                                                    : "claim";
  std::string name = std::string(group) + "/" + path + "/ts:" + ts_name(c.ts, c.given_ts) +
                     "/value:" + size_name(c.value_size);
  if (std::string(group) == "Throughput") {
    name += "/producers:" + std::to_string(c.producers);
    name += "/consume:" + std::string(c.consume == Consume::kCopy ? "copy" : "touch");
    if (c.idle_backoff_ns > 0)
      name += "/idle:backoff" + std::to_string(c.idle_backoff_ns / 1000) + "us";
  }
  if (std::string(group) != "ConsumerOnly") {
    name += "/segments:" + std::string(segments_name(c.segments)) + "-" +
            size_name(static_cast<std::uint32_t>(c.segment_bytes)) + "x" + std::to_string(c.retain);
  }
  return name;
}

std::uint32_t default_batch(std::uint32_t value_size) {
  if (value_size <= 64) return 64;
  if (value_size <= 4096) return 8;
  return 1;
}

void register_all() {
  using benchmark::RegisterBenchmark;
  // References.
  for (bool processes : {false, true}) {
    for (bool sampled : {false, true}) {
      std::string name = std::string("Ref/CacheLinePingPong/") +
                         (processes ? "processes" : "threads") + "/one_line/" +
                         (sampled ? "sampled" : "loop");
      RegisterBenchmark(name.c_str(), BM_PingPong, processes, sampled, true)
          ->Iterations(1'000'000)
          ->UseRealTime();
    }
  }
  RegisterBenchmark("Ref/CacheLinePingPong/processes/two_lines/sampled", BM_PingPong, true, true,
                    false)
      ->Iterations(1'000'000)
      ->UseRealTime();
  for (std::size_t size : {std::size_t{1} << 10, std::size_t{64} << 10}) {
    for (std::size_t ring : {std::size_t{2} << 20, std::size_t{32} << 20, std::size_t{256} << 20}) {
      std::string name = "Ref/Memcpy/" + size_name(static_cast<std::uint32_t>(size)) +
                         "/into:" + size_name(static_cast<std::uint32_t>(ring)) + "-ring";
      RegisterBenchmark(name.c_str(), BM_Memcpy, size, ring);
    }
  }
  RegisterBenchmark("Ref/Clock/realtime", BM_Clock, 0);
  RegisterBenchmark("Ref/Clock/realtime_coarse", BM_Clock, 1);
  RegisterBenchmark("Ref/Clock/rdtsc", BM_Clock, 2);
  RegisterBenchmark("Ref/Clock/tsc_wall", BM_TscWallClock);
  for (std::size_t size : {64u, 128u, 192u, 255u})
    RegisterBenchmark(("Ref/Crc32c/inline/" + std::to_string(size) + "B").c_str(), BM_Crc32c, size,
                      CrcCode::kInline);
  for (std::size_t size : {64u, 192u, 256u, 1056u, 4096u, 65536u}) {
    RegisterBenchmark(("Ref/Crc32c/streams/" + std::to_string(size) + "B").c_str(), BM_Crc32c, size,
                      CrcCode::kStreams);
    RegisterBenchmark(("Ref/Crc32c/isa-l/" + std::to_string(size) + "B").c_str(), BM_Crc32c, size,
                      CrcCode::kIsal);
  }
  for (std::uint64_t mib : {std::uint64_t{4}, std::uint64_t{16}, std::uint64_t{64}})
    for (bool populate : {true, false})
      RegisterBenchmark(
          ("Ref/MapSegment/" + std::to_string(mib) + "MiB/" + (populate ? "populate" : "lazy"))
              .c_str(),
          BM_MapSegment, mib << 20, populate)
          ->UseManualTime()
          ->Unit(benchmark::kMicrosecond);

  auto add_tput = [](const TputConfig& c) {
    RegisterBenchmark(tput_name("Throughput", c).c_str(), BM_Throughput, c)
        ->UseManualTime()
        ->Unit(benchmark::kMicrosecond);
  };

  // The main matrix: fastest path and plain append, 3 sizes, 1 and 2 producers, recycled and
  // fresh segments.
  for (Segments segments : {Segments::kRecycledSpare, Segments::kFresh}) {
    for (int producers : {1, 2}) {
      for (std::uint32_t size : {32u, 1024u, 65536u}) {
        TputConfig c;
        c.value_size = size;
        c.producers = producers;
        c.segments = segments;
        c.path = Path::kBatch;
        c.ts = TimestampMode::kPerBatch;
        c.batch = default_batch(size);
        add_tput(c);
        c.path = Path::kAppend;
        c.ts = TimestampMode::kWallClock;
        add_tput(c);
      }
    }
  }
  // What the timestamp costs: 32 B, 1 producer, recycled.
  {
    TputConfig c;
    c.path = Path::kBatch;
    for (TimestampMode m : {TimestampMode::kWallClock, TimestampMode::kCoarse}) {
      c.ts = m;
      add_tput(c);
    }
    c.path = Path::kAppend;
    c.ts = TimestampMode::kCoarse;
    add_tput(c);
    c.ts = TimestampMode::kWallClock;
    c.given_ts = true;
    add_tput(c);
    c.path = Path::kClaim;
    c.given_ts = false;
    add_tput(c);
    c.given_ts = true;
    add_tput(c);
  }
  // Batch size, and the consumer copying values out.
  for (std::uint32_t batch : {16u, 256u}) {
    TputConfig c;
    c.batch = batch;
    add_tput(c);
  }
  for (std::uint32_t size : {1024u, 65536u}) {
    TputConfig c;
    c.value_size = size;
    c.batch = default_batch(size);
    c.consume = Consume::kCopy;
    add_tput(c);
  }
  // A consumer that backs off when it has caught up instead of spinning on the producer's
  // write position.
  for (std::uint32_t size : {32u, 1024u}) {
    TputConfig c;
    c.value_size = size;
    c.batch = default_batch(size);
    c.idle_backoff_ns = 2'000;
    add_tput(c);
  }
  // Segment size (the recycled footprint is about (retain + 1) segments), and the other two
  // ways of recycling.
  for (std::uint32_t size : {32u, 1024u}) {
    TputConfig c;
    c.value_size = size;
    c.batch = default_batch(size);
    for (std::uint64_t seg :
         {std::uint64_t{256} << 10, std::uint64_t{1} << 20, std::uint64_t{16} << 20}) {
      c.segment_bytes = seg;
      add_tput(c);
    }
    c.segment_bytes = TputConfig{}.segment_bytes;
    for (Segments segments : {Segments::kRecycledInPlace, Segments::kRecycledBoth}) {
      c.segments = segments;
      for (int producers : {1, 2}) {
        c.producers = producers;
        add_tput(c);
      }
    }
  }

  // The halves alone.
  for (std::uint32_t size : {32u, 1024u}) {
    TputConfig c;
    c.value_size = size;
    c.batch = default_batch(size);
    RegisterBenchmark(tput_name("ProducerOnly", c).c_str(), BM_ProducerOnly, c);
    RegisterBenchmark(tput_name("ConsumerOnly", c).c_str(), BM_ConsumerOnly, c);
    c.path = Path::kAppend;
    c.ts = TimestampMode::kWallClock;
    RegisterBenchmark(tput_name("ProducerOnly", c).c_str(), BM_ProducerOnly, c);
    c.given_ts = true;
    RegisterBenchmark(tput_name("ProducerOnly", c).c_str(), BM_ProducerOnly, c);
  }
  // The Kafka gateway's shape: batches of 100 records with their timestamps given, 100 B and
  // 1 KiB values; the producer alone, and with a consumer on the other CPU.
  for (std::uint32_t size : {100u, 1024u}) {
    TputConfig c;
    c.path = Path::kAppendBatch;
    c.given_ts = true;
    c.value_size = size;
    c.batch = 100;
    add_tput(c);
    RegisterBenchmark(tput_name("ProducerOnly", c).c_str(), BM_ProducerOnly, c);
    // A footprint far beyond the caches, like a broker's many partitions: each append
    // writes lines that have to come from memory.
    c.segment_bytes = std::uint64_t{64} << 20;
    RegisterBenchmark(tput_name("ProducerOnly", c).c_str(), BM_ProducerOnly, c);
  }

  // Latency: two processes, ping-pong over two partitions, 32 B.
  auto add_lat = [](const LatConfig& c, std::int64_t samples) {
    std::string name = std::string("Latency/processes/") + (c.claim ? "claim" : "append") +
                       "/value:" + size_name(c.value_size) +
                       "/wait:" + (c.poll_spin ? "poll-spin" : wait_strategy_name(c.wait)) +
                       "/ts:" + ts_name(c.ts, false);
    if (c.gap_ns != 0) name += "/gap:" + std::to_string(c.gap_ns / 1000) + "us";
    name += c.sampled ? "/sampled" : "/loop";
    name += "/segments:recycled-spare-" + size_name(static_cast<std::uint32_t>(c.segment_bytes)) +
            "x" + std::to_string(c.retain);
    RegisterBenchmark(name.c_str(), BM_Latency, c)->Iterations(samples)->UseRealTime();
  };
  {
    LatConfig c;
    add_lat(c, 500'000);
    c.sampled = false;
    add_lat(c, 500'000);
    c.sampled = true;
    c.ts = TimestampMode::kCoarse;
    add_lat(c, 500'000);
    c.ts = TimestampMode::kWallClock;
    c.poll_spin = true;
    add_lat(c, 500'000);
    c.poll_spin = false;
    c.wait = WaitStrategy::kAdaptive;
    add_lat(c, 500'000);
    c.gap_ns = 200'000;
    add_lat(c, 10'000);
    c.wait = WaitStrategy::kSpin;
    add_lat(c, 10'000);
  }
  {  // The zero-copy writer's path: claim(), write in place, commit().
    LatConfig c;
    c.claim = true;
    add_lat(c, 500'000);
  }
}

}  // namespace

int main(int argc, char** argv) {
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  calibrate_tsc();
  register_all();
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
