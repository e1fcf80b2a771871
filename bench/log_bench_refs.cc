// log_bench's references: cache-line ping-pong, memcpy, clocks, CRC-32C, mapping a segment.
#include "bench/log_bench_util.h"

namespace log_bench {

namespace {

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

}  // namespace

void register_reference_benchmarks() {
  using benchmark::RegisterBenchmark;
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
}

}  // namespace log_bench
