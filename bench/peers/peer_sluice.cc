// Sluice itself in the peer benchmarks' shapes (see peer_common.h), through the partition log:
//   throughput  a producer process (CPU 0) appends with claim_batch (64 records per claim for
//               values up to 64 B, 8 up to 4 KiB, else 1; TimestampMode::kPerBatch) into one
//               partition; a consumer process (CPU 1) polls it (LogReader::poll, and
//               LogReader::wait with WaitStrategy::kSpin when it has caught up) and reads each
//               value's first 8 bytes. Segments: 4 MiB x 4 retained, recycled: both handles
//               have {retain 4, recycle}; the consumer calls prepare_after_roll() after each
//               poll that read records, which after each roll recycles the oldest segment into
//               the spare the roll took, and a roll that still finds no spare recycles the
//               oldest in place instead of creating a file (log_bench's "recycled-both").
//               prepare_next() once per segment read instead left 20-30% of the rolls without
//               a spare, each zeroing a segment on the producer's path (docs/benchmarks.md,
//               "Spares made after each roll"). With no retention on the producer's handle
//               ("recycled-spare"), such a roll created, zeroed and pre-faulted a new 4 MiB
//               file on the producer's path, and in some runs it became the rule: 31-282
//               files in a run instead of the pool's 5-9, and 2.1-7.0 GB/s instead of 10-13.
//               Flow control as in log_bench: the producer does not run more than 2 segments
//               ahead of the consumer. The warm-up is at least 6 segments, so that recycling
//               is in its steady state.
//   latency     ping-pong over two partitions: A append()s to P1, B waits (kSpin, or --wait)
//               and polls P1 and append()s the value to P2, A waits likewise and polls P2; one-way
//               = half the round trip. A, off the clock, every 4096 round trips: prepare_next() on
//               both. The warm-up is at least 6 segments of each partition, as for throughput.
//   --stream RATE / --idle SECONDS (the wait shapes of peer_common.h): a producer process
//               (CPU 0) append()s to one partition, a consumer process (CPU 1) polls it and,
//               when caught up, LogReader::wait(--wait STRATEGY, 100 ms) in a loop, as
//               sluice::Consumer::poll does for one partition. --wait spin|yield|block|adaptive
//               (default spin; it also picks the ping-pong's wait), --spin-ns N sets
//               ReaderOptions::spin_ns (adaptive's spin phase). The stream's partition has one
//               segment large enough for the run (no roll in it), pre-faulted as usual.
//               System name: sluice-STRATEGY.
// SLUICE_DATA_DIR (default /dev/shm/sluice) holds the temporary partitions, removed after.
#include <unistd.h>
#include <x86intrin.h>

#include <filesystem>
#include <string>
#include <vector>

#include "peer_common.h"
#include "shm/log_appender.h"
#include "shm/log_reader.h"
#include "shm/partition_log.h"

namespace {

using namespace sluice::shm;
using peers::die;

// --wait and --spin-ns.
WaitStrategy g_wait = WaitStrategy::kSpin;
ReaderOptions g_reader_options;

template <class T>
T must(sluice::Result<T> r, const char* what) {
  if (!r) die(std::string(what) + ": " + r.status().message());
  return std::move(r).value();
}

void must(const sluice::Status& s, const char* what) {
  if (!s) die(std::string(what) + ": " + s.message());
}

constexpr std::uint32_t kRetain = 4;
// 4 MiB (log_bench's best); SLUICE_PEER_SEGMENT_MIB overrides it, for experiments.
const std::uint64_t kSegmentBytes = [] {
  const char* env = std::getenv("SLUICE_PEER_SEGMENT_MIB");
  std::uint64_t mib = env != nullptr && *env != '\0' ? std::stoull(env) : 4;
  return mib << 20;
}();

LogOptions recycling() {
  LogOptions o;
  o.retain_segments = kRetain;
  o.recycle_segments = true;
  return o;
}

std::string temp_dir(const char* tag) {
  const char* env = std::getenv("SLUICE_DATA_DIR");
  std::string root = env != nullptr && *env != '\0' ? env : "/dev/shm/sluice";
  std::string dir = root + "/peer-bench-" + std::to_string(::getpid()) + "-" + tag;
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir);
  return dir;
}

struct alignas(64) TputShared {
  std::atomic<std::int64_t> consumer_next{0};
  std::atomic<std::int64_t> t_start{0};
  std::atomic<std::int64_t> t_end{0};
  std::atomic<std::int64_t> received{0};
};

void run_tput(const peers::Options& o, peers::Results& res) {
  std::uint32_t size = o.size;
  std::uint32_t batch = size <= 64 ? 64 : size <= 4096 ? 8 : 1;
  std::uint64_t stride = align_frame(kFrameHeaderBytes + std::uint64_t{size});
  auto per_segment = static_cast<std::int64_t>((kSegmentBytes - kFrameHeaderBytes) / stride);
  std::int64_t window = static_cast<std::int64_t>(kRetain - 2) * per_segment - batch;
  std::int64_t warm = std::max<std::int64_t>(o.records / 10, 6 * per_segment);
  std::int64_t total = warm + o.records;
  total += (batch - total % batch) % batch;

  std::string dir = temp_dir("tput");
  std::string part = dir + "/p0";
  {
    LogConfig lc;
    lc.segment_bytes = kSegmentBytes;
    auto log = must(PartitionLog::create(part, lc, recycling()), "create");
    must(log->prepare_next(), "prepare_next");
  }
  auto* sh = peers::shared_object<TputShared>();

  pid_t consumer = peers::spawn([&] {
    peers::pin_to_cpu(1);
    auto log = must(PartitionLog::open(part, recycling()), "open (consumer)");
    LogReader reader = must(LogReader::open(log), "open reader");
    std::uint64_t sink = 0;
    auto handler = [&](const RecordView& r) {
      std::string_view v = r.value.value_or(std::string_view{});
      std::uint64_t x = 0;
      if (v.size() >= 8) std::memcpy(&x, v.data(), 8);
      sink += x;
    };
    std::int64_t got = 0;
    std::int64_t at_start = 0;
    while (got < total) {
      PollResult pr = reader.poll(handler, 4096);
      if (pr.records != 0) {
        got += pr.records;
        sh->consumer_next.store(reader.position(), std::memory_order_release);
        if (at_start == 0 && got >= warm) {
          sh->t_start.store(peers::now_ns());
          at_start = got;
        }
        must(log->prepare_after_roll(), "prepare_after_roll");
        continue;
      }
      if (pr.outcome != ReadOutcome::kOk) die("consumer: " + reader.error().message());
      (void)reader.wait(WaitStrategy::kSpin, 200'000);
    }
    sh->t_end.store(peers::now_ns());
    sh->received.store(got - at_start);
    if (sink == 1) std::fputs("", stderr);
  });

  pid_t producer = peers::spawn([&] {
    peers::pin_to_cpu(0);
    // Retention on this handle too: a roll that finds no spare recycles in place.
    auto log = must(PartitionLog::open(part, recycling()), "open (producer)");
    AppenderOptions ao;
    ao.timestamp_mode = TimestampMode::kPerBatch;
    LogAppender app = must(LogAppender::open(log, ao), "open appender");
    std::vector<std::byte> payload(size, std::byte{0x42});
    std::int64_t limit = window;
    std::uint64_t seq = 0;
    BatchClaim b;
    int roll_failures = 0;
    for (std::int64_t done = 0; done < total; done += batch) {
      AppendOutcome out;
      while ((out = app.claim_batch(batch, size, b)) != AppendOutcome::kOk) {
        if (out != AppendOutcome::kRollFailed || ++roll_failures > 100)
          die(std::string("append failed: ") + describe(out));
      }
      for (std::uint32_t i = 0; i < b.count(); ++i) {
        std::byte* v = b.value(i).data();
        std::memcpy(v, payload.data(), size);
        std::memcpy(v, &seq, 8);
        ++seq;
      }
      app.commit(b);
      std::int64_t last = b.first_offset() + b.count() - 1;
      for (std::uint32_t spins = 0; last >= limit; ++spins) {  // flow control
        limit = sh->consumer_next.load(std::memory_order_acquire) + window;
        if (spins < 256) {
          _mm_pause();
        } else {
          sched_yield();
        }
      }
    }
  });
  peers::reap(producer);
  peers::reap(consumer);
  double secs = static_cast<double>(sh->t_end.load() - sh->t_start.load()) / 1e9;
  double n = static_cast<double>(sh->received.load());
  res.records_per_s = n / secs;
  res.mb_per_s = n * size / secs / 1e6;
  ::munmap(sh, sizeof(TputShared));
  std::filesystem::remove_all(dir);
}

struct alignas(64) LatShared {
  std::atomic<std::int64_t> ready{0};
  std::atomic<std::int64_t> stop{0};
  peers::Results lat;
};

// Waits until `reader` has a record and consumes it.
template <class Handler>
bool receive_one(LogReader& reader, Handler&& handler, const std::atomic<std::int64_t>* stop) {
  for (;;) {
    if (reader.wait(g_wait, 100'000'000) && reader.poll(handler, 1).records != 0) return true;
    if (stop != nullptr && stop->load(std::memory_order_relaxed) != 0) return false;
  }
}

void run_lat(const peers::Options& o, peers::Results& res) {
  std::string dir = temp_dir("lat");
  {
    LogConfig lc;
    lc.segment_bytes = kSegmentBytes;
    for (const char* p : {"/p1", "/p2"}) {
      auto log = must(PartitionLog::create(dir + p, lc, recycling()), "create");
      must(log->prepare_next(), "prepare_next");
    }
  }
  auto* sh = peers::shared_object<LatShared>();
  // Warm up through six segments of each partition, as run_tput does: the pool of recycled
  // segments is complete by then, so no measured round trip waits for a file to be created.
  std::uint64_t stride = align_frame(kFrameHeaderBytes + std::uint64_t{o.size});
  auto per_segment = static_cast<std::int64_t>((kSegmentBytes - kFrameHeaderBytes) / stride);
  std::int64_t warm = std::max<std::int64_t>(o.rounds / 10, 6 * per_segment);
  std::int64_t total = warm + o.rounds;
  std::uint32_t size = o.size;

  pid_t echo = peers::spawn([&] {
    peers::pin_to_cpu(1);
    auto p1 = must(PartitionLog::open(dir + "/p1", recycling()), "open p1");
    // No retention on the handle B appends with: A's prepare_next() recycles P2's segments
    // into the spare and B's rolls take it.
    auto p2 = must(PartitionLog::open(dir + "/p2", LogOptions{}), "open p2");
    LogReader reader = must(LogReader::open(p1, g_reader_options), "open reader");
    LogAppender app = must(LogAppender::open(p2), "open appender");
    auto on_ping = [&](const RecordView& r) {
      if (app.append(r.value.value_or(std::string_view{})).outcome != AppendOutcome::kOk)
        die("echo append failed");
    };
    sh->ready.store(1, std::memory_order_release);
    while (receive_one(reader, on_ping, &sh->stop)) {
    }
  });

  pid_t ping = peers::spawn([&] {
    peers::pin_to_cpu(0);
    (void)peers::ns_per_tick();
    auto p1 = must(PartitionLog::open(dir + "/p1", recycling()), "open p1");
    auto p2 = must(PartitionLog::open(dir + "/p2", recycling()), "open p2");
    LogAppender app = must(LogAppender::open(p1), "open appender");
    LogReader reader = must(LogReader::open(p2, g_reader_options), "open reader");
    std::string value(size, 'p');
    std::uint64_t sink = 0;
    auto on_pong = [&](const RecordView& r) {
      sink += r.value.value_or(std::string_view{}).size();
    };
    while (sh->ready.load(std::memory_order_acquire) == 0) {
    }
    std::vector<std::uint64_t> samples;
    samples.reserve(static_cast<std::size_t>(o.rounds));
    for (std::int64_t i = 0; i < total; ++i) {
      std::uint64_t c0 = peers::ticks();
      if (app.append(value).outcome != AppendOutcome::kOk) die("append failed");
      receive_one(reader, on_pong, nullptr);
      std::uint64_t c1 = peers::ticks();
      if (i >= warm) samples.push_back(c1 - c0);
      if (i % 4096 == 0) {  // off the clock: keep a spare ready, recycle old segments
        must(p1->prepare_next(), "prepare_next");
        must(p2->prepare_next(), "prepare_next");
      }
    }
    sh->stop.store(1, std::memory_order_relaxed);
    (void)app.append(value);  // wakes B if it is parked
    peers::percentiles(samples, sh->lat);
    if (sink == 1) std::fputs("", stderr);
  });
  peers::reap(ping);
  peers::reap(echo);
  peers::take_latency(sh->lat, res);
  ::munmap(sh, sizeof(LatShared));
  std::filesystem::remove_all(dir);
}

// Consumes until `count` records have been handled: poll, and when caught up wait with
// g_wait for at most 100 ms at a time (sluice::Consumer::poll's loop for one partition).
template <class Handler>
void consume(LogReader& reader, std::int64_t count, Handler&& handler) {
  std::int64_t got = 0;
  while (got < count) {
    PollResult pr = reader.poll(handler, 64);
    if (pr.records != 0) {
      got += pr.records;
      continue;
    }
    if (pr.outcome != ReadOutcome::kOk) die("consumer: " + reader.error().message());
    (void)reader.wait(g_wait, 100'000'000);
  }
}

// --stream RATE --messages N (peer_common.h): paced append()s, one-way latency at the consumer.
void run_stream(const peers::Options& o, peers::WaitResults& res) {
  std::string dir = temp_dir("stream");
  std::string part = dir + "/p0";
  std::int64_t warm = peers::stream_warmup(o);
  std::int64_t total = warm + o.messages;
  std::uint32_t size = o.size;
  {
    // One segment for the whole run, rounded up to a power of two: no roll while measuring.
    std::uint64_t need = static_cast<std::uint64_t>(total) *
                             (align_frame(kFrameHeaderBytes + std::uint64_t{size}) + 64) +
                         (std::uint64_t{1} << 20);
    std::uint64_t bytes = std::uint64_t{4} << 20;
    while (bytes < need) bytes *= 2;
    LogConfig lc;
    lc.segment_bytes = bytes;
    auto log = must(PartitionLog::create(part, lc, LogOptions{}), "create");
  }
  peers::run_wait_processes(
      res,
      [&](const auto& start) {
        auto log = must(PartitionLog::open(part, LogOptions{}), "open (consumer)");
        LogReader reader = must(LogReader::open(log, g_reader_options), "open reader");
        std::vector<std::int64_t> samples;
        samples.reserve(static_cast<std::size_t>(o.messages));
        std::int64_t seen = 0;
        auto handler = [&](const RecordView& r) {
          std::string_view v = r.value.value_or(std::string_view{});
          if (v.size() < 16) die("short value");
          std::int64_t age = peers::age_ns(v.data());
          if (seen++ >= warm) samples.push_back(age);
        };
        start();
        consume(reader, total, handler);
        return samples;
      },
      [&](const auto& wait_ready) {
        auto log = must(PartitionLog::open(part, LogOptions{}), "open (producer)");
        LogAppender app = must(LogAppender::open(log), "open appender");
        std::string value(size, 'v');
        wait_ready();
        peers::paced(o.rate, total, [&](std::int64_t i) {
          peers::stamp(value.data(), i);
          if (app.append(value).outcome != AppendOutcome::kOk) die("append failed");
        });
      });
  std::filesystem::remove_all(dir);
}

// --idle SECONDS (peer_common.h): the consumer waits for the one record appended after SECONDS.
void run_idle(const peers::Options& o, peers::WaitResults& res) {
  std::string dir = temp_dir("idle");
  std::string part = dir + "/p0";
  {
    LogConfig lc;
    lc.segment_bytes = std::uint64_t{4} << 20;
    auto log = must(PartitionLog::create(part, lc, LogOptions{}), "create");
  }
  std::uint32_t size = o.size;
  peers::run_wait_processes(
      res,
      [&](const auto& start) {
        auto log = must(PartitionLog::open(part, LogOptions{}), "open (consumer)");
        LogReader reader = must(LogReader::open(log, g_reader_options), "open reader");
        start();
        consume(reader, 1, [](const RecordView&) {});
        return std::vector<std::int64_t>{};
      },
      [&](const auto& wait_ready) {
        auto log = must(PartitionLog::open(part, LogOptions{}), "open (producer)");
        LogAppender app = must(LogAppender::open(log), "open appender");
        std::string value(size, 'v');
        wait_ready();
        peers::sleep_ns(static_cast<std::int64_t>(o.idle_s * 1e9));
        peers::stamp(value.data(), 0);
        if (app.append(value).outcome != AppendOutcome::kOk) die("append failed");
      });
  std::filesystem::remove_all(dir);
}

}  // namespace

int main(int argc, char** argv) {
  // Takes --wait and --spin-ns out; the rest goes to peers::parse.
  std::vector<char*> args;
  for (int i = 0; i < argc; ++i) {
    std::string a = argv[i];
    if ((a == "--wait" || a == "--spin-ns") && i + 1 < argc) {
      std::string v = argv[++i];
      if (a == "--spin-ns") {
        g_reader_options.spin_ns = std::stoll(v);
      } else if (auto w = parse_wait_strategy(v)) {
        g_wait = *w;
      } else {
        die("--wait takes spin, yield, block or adaptive");
      }
    } else {
      args.push_back(argv[i]);
    }
  }
  peers::Options o = peers::parse(static_cast<int>(args.size()), args.data(), "sluice");
  if (!o.shape.empty()) {
    o.system = std::string("sluice-") + wait_strategy_name(g_wait);
    peers::WaitResults w;
    if (o.shape == "stream") {
      run_stream(o, w);
    } else {
      run_idle(o, w);
    }
    peers::print_wait_json(o, w);
    return 0;
  }
  peers::Results r;
  if (o.tput) run_tput(o, r);
  if (o.lat) run_lat(o, r);
  peers::print_json(o, r);
  return 0;
}
