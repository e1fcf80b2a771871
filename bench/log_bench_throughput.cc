// log_bench's Throughput, ProducerOnly and ConsumerOnly benchmarks (log_bench.cc has the
// overview: paths, timestamp modes, segments, flow control).
#include "bench/log_bench_util.h"

namespace log_bench {

namespace {

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
  for (;;) {
    PollResult pr = reader.poll(handler, 4096);
    if (pr.records != 0) {
      consumed += pr.records;
      sh.consumed.v.store(consumed, std::memory_order_relaxed);
      sh.consumer_next.v.store(reader.position(), std::memory_order_release);
      // A spare right after each roll takes one (peer_sluice does the same).
      if (cfg.consumer_prepares()) must(log->prepare_after_roll(), "prepare_after_roll");
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

// The default configuration for values of `size`, with the batch that suits them.
TputConfig sized_config(std::uint32_t size) {
  TputConfig c;
  c.value_size = size;
  c.batch = default_batch(size);
  return c;
}

}  // namespace

void register_throughput_benchmarks() {
  using benchmark::RegisterBenchmark;
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
        TputConfig c = sized_config(size);
        c.producers = producers;
        c.segments = segments;
        c.path = Path::kBatch;
        c.ts = TimestampMode::kPerBatch;
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
    TputConfig c = sized_config(size);
    c.consume = Consume::kCopy;
    add_tput(c);
  }
  // A consumer that backs off when it has caught up instead of spinning on the producer's
  // write position.
  for (std::uint32_t size : {32u, 1024u}) {
    TputConfig c = sized_config(size);
    c.idle_backoff_ns = 2'000;
    add_tput(c);
  }
  // Segment size (the recycled footprint is about (retain + 1) segments), and the other two
  // ways of recycling.
  for (std::uint32_t size : {32u, 1024u}) {
    TputConfig c = sized_config(size);
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
    TputConfig c = sized_config(size);
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
}

}  // namespace log_bench
