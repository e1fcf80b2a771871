// The machine's references in the peer benchmarks' shapes (see peer_common.h), as in
// bench/log_bench.cc's Ref/ benchmarks:
//   throughput  memcpy of one value (--size bytes) from a hot source into a 32 MiB ring,
//               moving on each time (one thread on CPU 0): the copy bandwidth a record costs
//               at best (Ref/Memcpy/.../into:32MiB-ring)
//   latency     two processes (CPU 0 and CPU 1) bouncing one cache line: A writes an odd n, B
//               answers n + 1 on the same line; one-way = half the round trip, sampled with
//               rdtscp (Ref/CacheLinePingPong/processes/one_line/sampled). Independent of the
//               value size.
//
// With --log ("machine-log-ref"), the floor of a log-shaped transport:
//   latency     (docs/benchmarks.md, "The latency floor of a log") each
// direction is a 4 MiB ring of frames as long as Sluice's for that value (a 32-byte header
// plus the value, 8-byte aligned), each starting with a sequence word the writer stores last
// (release) after copying the value in; the reader spins with a pause on the next frame's
// word, then reads the value. So every message lands on lines the other side has not just
// written, as in a log, but with no reservation, clock, checksum or decoding. Like
// LogAppender::append, the writer touches the next page when the next frame starts one.
//   throughput  (values of kLogStreamMinValue bytes or more; "The throughput floor of a log")
// one 16 MiB ring of such frames, written as peer_sluice's producer writes its partition
// (batches of 8 values, then their sequence words) and read as its consumer reads (each
// value's first 8 bytes), with the same flow control; no segment files, so no rolls, and no
// reading of a frame's length to find the next (see run_log_stream). Below that size this
// loop runs slower than Sluice's claim_batch path (at 32 B 47-62 M records/s against 81-98 M
// on the AMD EPYC host, 2026-11-28), so it bounds nothing there and is not run.
//
// With --hiccups SECONDS ("machine-hiccups"), neither shape: a thread pinned to each of the
// two CPUs reads the clock in a loop for SECONDS, both at once, and every gap of 1 µs or more
// between two reads is time the CPU spent elsewhere (tools/hiccup_meter.h, as `sluice perf`
// measures it; linked here although the peers depend on nothing of Sluice's, since this is the
// machine's reference, not a system). A ping-pong round trip that meets a span in which either
// CPU was away takes it whole, so the rate of such spans says which latency percentiles they
// reach. Prints one JSON line: the share of the time lost, gaps per second per CPU, spans per
// second (the two CPUs' gaps merged where they overlap), and the longest gap.
#include <unistd.h>
#include <x86intrin.h>

#include "tools/hiccup_meter.h"

#include "peer_common.h"

namespace {

struct alignas(64) Lines {
  std::atomic<std::int64_t> ping{0};
  alignas(64) std::atomic<std::int64_t> stop{0};
  alignas(64) peers::Results lat;
};

void run_memcpy(const peers::Options& o, peers::Results& r) {
  peers::pin_to_cpu(0);
  std::size_t size = o.size;
  std::size_t ring = std::size_t{32} << 20;
  std::vector<char> src(size, 0x5a);
  auto* dst = static_cast<char*>(std::aligned_alloc(4096, ring));
  if (dst == nullptr) peers::die("out of memory");
  std::memset(dst, 0, ring);
  std::size_t pos = 0;
  auto copy = [&] {
    std::memcpy(dst + pos, src.data(), size);
    asm volatile("" : : "r"(dst) : "memory");
    pos += size;
    if (pos + size > ring) pos = 0;
  };
  for (std::int64_t i = 0; i < o.records / 10; ++i) copy();
  std::int64_t t0 = peers::now_ns();
  for (std::int64_t i = 0; i < o.records; ++i) copy();
  double secs = static_cast<double>(peers::now_ns() - t0) / 1e9;
  std::free(dst);
  r.records_per_s = static_cast<double>(o.records) / secs;
  r.mb_per_s = r.records_per_s * static_cast<double>(size) / 1e6;
}

void run_pingpong(const peers::Options& o, peers::Results& r) {
  auto* l = peers::shared_object<Lines>();
  std::int64_t warm = std::max<std::int64_t>(o.rounds / 10, 1);
  std::int64_t total = warm + o.rounds;
  pid_t echo = peers::spawn([&] {
    peers::pin_to_cpu(1);
    std::int64_t expect = 1;
    for (;;) {
      std::int64_t v;
      while ((v = l->ping.load(std::memory_order_acquire)) != expect) {
        if (l->stop.load(std::memory_order_relaxed) != 0) return;
      }
      l->ping.store(v + 1, std::memory_order_release);
      expect += 2;
    }
  });
  pid_t ping = peers::spawn([&] {
    peers::pin_to_cpu(0);
    (void)peers::ns_per_tick();
    std::vector<std::uint64_t> samples;
    samples.reserve(static_cast<std::size_t>(o.rounds));
    std::int64_t n = 1;
    for (std::int64_t i = 0; i < total; ++i) {
      std::uint64_t c0 = peers::ticks();
      l->ping.store(n, std::memory_order_release);
      while (l->ping.load(std::memory_order_acquire) != n + 1) {
      }
      n += 2;
      std::uint64_t c1 = peers::ticks();
      if (i >= warm) samples.push_back(c1 - c0);
    }
    l->stop.store(1, std::memory_order_relaxed);
    peers::percentiles(samples, l->lat);
  });
  peers::reap(ping);
  peers::reap(echo);
  peers::take_latency(l->lat, r);
  ::munmap(l, sizeof(Lines));
}

constexpr std::size_t kLogRingBytes = std::size_t{4} << 20;

struct alignas(64) LogRings {
  alignas(64) std::atomic<std::int64_t> stop{0};
  alignas(64) peers::Results lat;
  alignas(4096) char ping[kLogRingBytes];  // A -> B
  alignas(4096) char pong[kLogRingBytes];  // B -> A
};

// Maps every page of a ring into the calling process, writable: a child does not inherit the
// parent's page tables for a shared mapping, and would otherwise take a page fault at every
// 4 KiB of the run, as a Sluice process does not (its segments are mapped populated). An
// atomic OR of 0 writes nothing, so both children may do it at once.
void populate(char* ring, std::size_t bytes) {
  for (std::size_t at = 0; at < bytes; at += 4096)
    __atomic_fetch_or(ring + at, 0, __ATOMIC_RELAXED);
}

// A frame of the log references: a 32-byte header (its first word the sequence number, stored
// last) and the value, 8-byte aligned, as long as Sluice's frame for that value.
std::size_t frame_stride(std::uint32_t value_size) {
  return (32 + std::size_t{value_size} + 7) & ~std::size_t{7};
}
std::atomic<std::int64_t>* sequence_word(const char* frame) {
  return reinterpret_cast<std::atomic<std::int64_t>*>(const_cast<char*>(frame));
}

// One direction of the log ping-pong: message n (from 1) goes in frame n - 1 of the ring.
class LogRing {
 public:
  LogRing(char* ring, std::uint32_t size) : ring_(ring), size_(size), stride_(frame_stride(size)) {}

  void send(std::int64_t n, const char* value) {
    char* f = frame(n);
    std::memcpy(f + 32, value, size_);
    // Release: the value before the sequence word, as a commit word is published.
    sequence_word(f)->store(n, std::memory_order_release);
    // When the next frame starts a page, touch it now, as LogAppender::append does: its TLB
    // miss then falls outside the next round trip.
    const char* next = frame(n + 1);
    if (static_cast<std::size_t>(next - ring_) % 4096 < stride_) __builtin_prefetch(next, 0, 3);
  }
  // Spins until message n is there (or *stop); returns its value.
  const char* receive(std::int64_t n, const std::atomic<std::int64_t>* stop) {
    const char* f = frame(n);
    while (sequence_word(f)->load(std::memory_order_acquire) != n) {
      if (stop != nullptr && stop->load(std::memory_order_relaxed) != 0) return nullptr;
      _mm_pause();
    }
    return f + 32;
  }

 private:
  char* frame(std::int64_t n) const {
    std::size_t frames = kLogRingBytes / stride_;
    return ring_ + static_cast<std::size_t>(n - 1) % frames * stride_;
  }
  char* ring_;
  std::uint32_t size_;
  std::size_t stride_;
};

void run_log_pingpong(const peers::Options& o, peers::Results& r) {
  auto* l = peers::shared_object<LogRings>();
  std::int64_t warm = std::max<std::int64_t>(o.rounds / 10, 1);
  std::int64_t total = warm + o.rounds;
  std::vector<char> value(o.size, 'p');
  pid_t echo = peers::spawn([&] {
    peers::pin_to_cpu(1);
    populate(l->ping, kLogRingBytes);
    populate(l->pong, kLogRingBytes);
    LogRing in(l->ping, o.size), out(l->pong, o.size);
    for (std::int64_t n = 1; n <= total; ++n) {
      const char* v = in.receive(n, &l->stop);
      if (v == nullptr) return;
      out.send(n, v);  // echoes the value, as peer_sluice's B appends what it read
    }
  });
  pid_t ping = peers::spawn([&] {
    peers::pin_to_cpu(0);
    (void)peers::ns_per_tick();
    populate(l->ping, kLogRingBytes);
    populate(l->pong, kLogRingBytes);
    LogRing out(l->ping, o.size), in(l->pong, o.size);
    std::vector<std::uint64_t> samples;
    samples.reserve(static_cast<std::size_t>(o.rounds));
    char sink = 0;
    for (std::int64_t n = 1; n <= total; ++n) {
      std::uint64_t c0 = peers::ticks();
      out.send(n, value.data());
      sink ^= in.receive(n, nullptr)[o.size - 1];
      std::uint64_t c1 = peers::ticks();
      if (n > warm) samples.push_back(c1 - c0);
    }
    l->stop.store(1, std::memory_order_relaxed);
    peers::percentiles(samples, l->lat);
    if (sink == 1) std::fputs("", stderr);
  });
  peers::reap(ping);
  peers::reap(echo);
  peers::take_latency(l->lat, r);
  ::munmap(l, sizeof(LogRings));
}

// The log floor's throughput shape: one ring of frames as peer_sluice's partition holds them
// (a 32-byte header plus the value, 8-byte aligned), 16 MiB as its 4 segments of 4 MiB, with
// the same batch sizes and flow control (the producer stays within 8 MiB of the consumer).
constexpr std::size_t kStreamRingBytes = std::size_t{16} << 20;
constexpr std::uint32_t kLogStreamMinValue = 256;

struct alignas(64) LogStream {
  std::atomic<std::int64_t> consumer_next{1};  // the next message the consumer will read
  alignas(64) std::atomic<std::int64_t> t_start{0};
  std::atomic<std::int64_t> t_end{0};
  std::atomic<std::int64_t> received{0};
  alignas(4096) char ring[kStreamRingBytes];
};

// The producer copies a batch's values into their frames, then stores their sequence words
// (release, in order), as claim_batch + commit publish a batch; the consumer spins on the next
// frame's word and reads the value's first 8 bytes, as peer_sluice's does. Neither clears
// frames for reuse: a sequence word that is not the expected one is a frame not yet written.
// The consumer knows where the next frame starts without reading this one (fixed stride), so
// its loads of successive frames overlap; a log of records of any length learns it from each
// frame's length, one line after the other: the same loop doing so moved 6.0-6.5 GB/s of 1 KiB
// values instead of 13-14 with the two CPUs far apart ("The throughput floor of a log").
void run_log_stream(const peers::Options& o, peers::Results& r) {
  auto* l = peers::shared_object<LogStream>();
  const std::size_t stride = frame_stride(o.size);
  const auto frames = static_cast<std::int64_t>(kStreamRingBytes / stride);
  const std::int64_t batch = o.size <= 64 ? 64 : o.size <= 4096 ? 8 : 1;
  const std::int64_t window = frames / 2 - batch;
  std::int64_t warm = std::max<std::int64_t>(o.records / 10, 3 * frames / 2);
  std::int64_t total = warm + o.records;
  total += (batch - total % batch) % batch;
  // Frame n (from 1) is frame (n - 1) % frames of the ring; a cursor steps through them in
  // order without a division per frame.
  struct Cursor {
    char* at;
    char* begin;
    char* end;
    std::size_t stride;
    void next() {
      at += stride;
      if (at == end) at = begin;
    }
  };
  const Cursor start{l->ring, l->ring, l->ring + static_cast<std::size_t>(frames) * stride, stride};
  pid_t consumer = peers::spawn([&] {
    peers::pin_to_cpu(1);
    populate(l->ring, kStreamRingBytes);
    std::uint64_t sink = 0;
    Cursor c = start;
    for (std::int64_t n = 1; n <= total; ++n, c.next()) {
      while (sequence_word(c.at)->load(std::memory_order_acquire) != n) _mm_pause();
      std::uint64_t x;
      std::memcpy(&x, c.at + 32, 8);
      sink += x;
      // Release: the frames read before it, so the producer overwrites none still being read.
      // Once every 4096 frames, as peer_sluice's consumer publishes after each poll of 4096.
      if (n % 4096 == 0) l->consumer_next.store(n + 1, std::memory_order_release);
      if (n == warm) l->t_start.store(peers::now_ns());
    }
    l->t_end.store(peers::now_ns());
    l->received.store(total - warm);
    if (sink == 1) std::fputs("", stderr);
  });
  pid_t producer = peers::spawn([&] {
    peers::pin_to_cpu(0);
    populate(l->ring, kStreamRingBytes);
    std::vector<char> value(o.size, 'v');
    std::int64_t limit = window;
    Cursor c = start;
    for (std::int64_t first = 1; first <= total; first += batch) {
      std::int64_t last = first + batch - 1;
      while (last >= limit) {  // flow control
        limit = l->consumer_next.load(std::memory_order_acquire) + window;
        _mm_pause();
      }
      Cursor batch_start = c;
      for (std::int64_t n = first; n <= last; ++n, c.next()) {
        std::memcpy(c.at + 32, value.data(), o.size);
        std::memcpy(c.at + 32, &n, 8);
      }
      // Release: each frame's value before its sequence word, as a commit word is published.
      for (std::int64_t n = first; n <= last; ++n, batch_start.next())
        sequence_word(batch_start.at)->store(n, std::memory_order_release);
    }
  });
  peers::reap(producer);
  peers::reap(consumer);
  double secs = static_cast<double>(l->t_end.load() - l->t_start.load()) / 1e9;
  double n = static_cast<double>(l->received.load());
  r.records_per_s = n / secs;
  r.mb_per_s = n * o.size / secs / 1e6;
  ::munmap(l, sizeof(LogStream));
}

void run_hiccups(double seconds) {
  const int cpus[] = {0, 1};
  const auto duration = static_cast<std::int64_t>(seconds * 1e9);
  sluice::tools::HiccupMeasurement m = sluice::tools::measure_hiccups(cpus, duration);
  std::printf(
      "{\"system\":\"machine-hiccups\",\"seconds\":%g,\"cpus\":2,\"min_gap_ns\":%lld,"
      "\"lost_fraction\":%.5f,\"gaps_per_s_per_cpu\":%.0f,\"spans_per_s\":%.0f,"
      "\"longest_ns\":%lld}\n",
      seconds, static_cast<long long>(sluice::tools::kMinHiccupNs), m.lost_fraction(),
      static_cast<double>(m.gaps()) / 2.0 / seconds,
      static_cast<double>(m.away_spans().size()) / seconds, static_cast<long long>(m.longest_ns()));
}

}  // namespace

int main(int argc, char** argv) {
  if (argc == 3 && std::string(argv[1]) == "--hiccups") {
    double seconds = std::atof(argv[2]);
    if (!(seconds > 0) || seconds > 60) peers::die("--hiccups takes 0 to 60 seconds");
    run_hiccups(seconds);
    return 0;
  }
  std::vector<char*> args;
  bool log = peers::take_flag(argc, argv, "--log", args);
  peers::Options o = peers::parse(static_cast<int>(args.size()), args.data(),
                                  log ? "machine-log-ref" : "machine-ref");
  peers::Results r;
  if (log) {
    if (o.size < kLogStreamMinValue) o.tput = false;  // latency only (see the top)
    if (o.tput) run_log_stream(o, r);
    if (o.lat) run_log_pingpong(o, r);
  } else {
    if (o.tput) run_memcpy(o, r);
    if (o.lat) run_pingpong(o, r);
  }
  peers::print_json(o, r);
  return 0;
}
