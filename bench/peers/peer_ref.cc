// The machine's references in the peer benchmarks' shapes (see peer_common.h), as in
// bench/log_bench.cc's Ref/ benchmarks:
//   throughput  memcpy of one value (--size bytes) from a hot source into a 32 MiB ring,
//               moving on each time (one thread on CPU 0): the copy bandwidth a record costs
//               at best (Ref/Memcpy/.../into:32MiB-ring)
//   latency     two processes (CPU 0 and CPU 1) bouncing one cache line: A writes an odd n, B
//               answers n + 1 on the same line; one-way = half the round trip, sampled with
//               rdtscp (Ref/CacheLinePingPong/processes/one_line/sampled). Independent of the
//               value size.
#include <unistd.h>

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
  r.p50 = l->lat.p50;
  r.p99 = l->lat.p99;
  r.p999 = l->lat.p999;
  r.mean = l->lat.mean;
  ::munmap(l, sizeof(Lines));
}

}  // namespace

int main(int argc, char** argv) {
  peers::Options o = peers::parse(argc, argv, "machine-ref");
  peers::Results r;
  if (o.tput) run_memcpy(o, r);
  if (o.lat) run_pingpong(o, r);
  peers::print_json(o, r);
  return 0;
}
