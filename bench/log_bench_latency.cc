// log_bench's Latency benchmarks: two processes ping-pong over two partitions.
#include "bench/log_bench_util.h"

namespace log_bench {

namespace {

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
  // Round trips before the timing: at least six segments of each partition, so that the
  // pool (retain segments and a spare) is full and recycling is in its steady state. A
  // shorter warm-up (20,000 round trips, until 2026-11-28) timed the first writes to the
  // pool's fresh files: on this VM the first write to each page traps to the hypervisor, at
  // 32 B one round trip in 64, and it set the p99 at 4.4-7.5 µs instead of 0.15-0.45.
  std::int64_t warm_up_round_trips() const {
    auto per_segment = static_cast<std::int64_t>((segment_bytes - kFrameHeaderBytes) /
                                                 align_frame(kFrameHeaderBytes + value_size));
    return std::max<std::int64_t>(20'000, 6 * per_segment);
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
  for (std::int64_t i = 0; i < cfg.warm_up_round_trips(); ++i) {
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

}  // namespace

void register_latency_benchmarks() {
  using benchmark::RegisterBenchmark;
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

}  // namespace log_bench
