// `sluice perf`'s producer worker: appends to its partitions, open loop at its share of the
// rate (each record carrying its scheduled send time) or as fast as flow control allows, and
// the warm-up that runs each new partition through its pool of files first.
//
// Thread-safety: one Producer per worker (process or thread).
#include <sys/prctl.h>
#include <x86intrin.h>

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "shm/clock.h"
#include "tools/perf_shared.h"

namespace sluice::tools::perf {
namespace {

class FlowControl {
 public:
  FlowControl(const PerfConfig& cfg, PerfShared& sh)
      : sh_(sh),
        readers_(cfg.topology.partition_readers),
        window_(cfg.window()),
        limit_(static_cast<std::size_t>(cfg.partitions), cfg.window()) {}

  // Returns once `offset` of `partition` is within the window ahead of the slowest reader of
  // that partition (one per group); false if the run is stopping.
  bool admit(int partition, std::int64_t offset, ProducerSlot& slot) {
    auto p = static_cast<std::size_t>(partition);
    if (offset < limit_[p]) [[likely]]
      return true;
    bool counted = false;
    for (std::uint32_t spins = 0;; ++spins) {
      std::int64_t slowest = std::numeric_limits<std::int64_t>::max();
      // Acquire: paired with the consumer's release store of its position.
      for (int c : readers_[p])
        slowest = std::min(
            slowest, sh_.consumers[c].positions[p].next_offset.load(std::memory_order_acquire));
      limit_[p] = slowest + window_;
      if (offset < limit_[p]) return true;
      if (sh_.stop.load(std::memory_order_relaxed) != 0) return false;
      if (!counted) {
        slot.flow_waits.fetch_add(1, std::memory_order_relaxed);
        counted = true;
      }
      if (spins < 128) {
        _mm_pause();
      } else {
        sched_yield();
      }
    }
  }

 private:
  PerfShared& sh_;
  const std::vector<std::vector<int>>& readers_;
  std::int64_t window_;
  std::vector<std::int64_t> limit_;  // per partition
};

class Producer {
 public:
  Producer(const PerfConfig& cfg, PerfShared& sh, int id, std::vector<LogAppender> apps)
      : cfg_(cfg),
        sh_(sh),
        slot_(sh.producers[id]),
        id_(id),
        apps_(std::move(apps)),
        flow_(cfg, sh),
        payload_(std::max<std::uint32_t>(cfg.size, 8), std::byte{0x5a}),
        sent_to_(apps_.size(), 0),
        partition_(id % cfg.partitions) {
    std::int64_t share = cfg.count / cfg.producers;
    quota_ = cfg.count == 0 ? std::numeric_limits<std::int64_t>::max()
                            : share + (id < cfg.count % cfg.producers ? 1 : 0);
  }

  void run() {
    while (sh_.go.load(std::memory_order_acquire) == 0) {
      if (stopping()) return finish();
      std::this_thread::sleep_for(std::chrono::microseconds(100));
    }
    start_ = sh_.start_ns.load(std::memory_order_relaxed);
    end_ = cfg_.count == 0 ? start_ + static_cast<std::int64_t>(std::llround(cfg_.duration_s * 1e9))
                           : std::numeric_limits<std::int64_t>::max();
    wait_until(start_, sh_.stop);
    if (cfg_.rate > 0) {
      open_loop();
    } else {
      closed_loop();
    }
    finish();
  }

 private:
  bool stopping() const { return sh_.stop.load(std::memory_order_relaxed) != 0; }

  void finish() {
    for (std::size_t p = 0; p < sent_to_.size(); ++p)
      slot_.sent_to[p].store(sent_to_[p], std::memory_order_relaxed);
    slot_.sent.store(sent_, std::memory_order_relaxed);
    slot_.bytes.store(sent_ * cfg_.size, std::memory_order_relaxed);
    slot_.end_ns.store(wall_clock_ns(), std::memory_order_relaxed);
    slot_.done.store(1, std::memory_order_release);
  }

  void publish_progress() {
    slot_.sent.store(sent_, std::memory_order_relaxed);
    slot_.bytes.store(sent_ * cfg_.size, std::memory_order_relaxed);
  }

  // A failed roll (a full disk, or a race in the log) is counted and retried: the next
  // reservation waits for the roll and recovers it after the abandon timeout.
  bool retry(AppendOutcome o) {
    if (o == AppendOutcome::kRollFailed && !stopping()) {
      slot_.roll_failures.fetch_add(1, std::memory_order_relaxed);
      return true;
    }
    fail(slot_, fmt::format("producer {}: append failed: {}", id_, describe(o)));
    sh_.stop.store(1, std::memory_order_relaxed);
    return false;
  }

  // Sticky partitioning: after kStickyRecords records (or one batch) on a partition, the next.
  void next_partition() {
    on_partition_ = 0;
    if (++partition_ == static_cast<int>(apps_.size())) partition_ = 0;
  }

  // Appends one record (timestamp < 0: the appender's clock). False when stopping.
  bool append_one(std::int64_t timestamp_ns) {
    if (cfg_.size >= 8) {
      std::uint64_t seq = static_cast<std::uint64_t>(sent_);
      std::memcpy(payload_.data(), &seq, 8);
    }
    RecordMeta meta;
    meta.timestamp_ns = timestamp_ns;
    std::string_view value(reinterpret_cast<const char*>(payload_.data()), cfg_.size);
    const int p = partition_;
    for (;;) {
      AppendResult r = apps_[static_cast<std::size_t>(p)].append(value, meta);
      if (r.outcome == AppendOutcome::kOk) {
        ++sent_;
        ++sent_to_[static_cast<std::size_t>(p)];
        if (++on_partition_ == kStickyRecords) next_partition();
        return flow_.admit(p, r.offset, slot_);
      }
      if (!retry(r.outcome)) return false;
    }
  }

  // Appends n records with one claim_batch; scheduled[i] (if given) goes into value i's first
  // 8 bytes. False when stopping.
  bool append_batch(std::uint32_t n, const std::int64_t* scheduled) {
    const int p = partition_;
    LogAppender& app = apps_[static_cast<std::size_t>(p)];
    BatchClaim b;
    for (;;) {
      AppendOutcome o = app.claim_batch(n, cfg_.size, b);
      if (o == AppendOutcome::kOk) break;
      if (!retry(o)) return false;
    }
    for (std::uint32_t i = 0; i < n; ++i) {
      std::byte* v = b.value(i).data();
      std::memcpy(v, payload_.data(), cfg_.size);
      if (scheduled != nullptr) std::memcpy(v, &scheduled[i], 8);
    }
    app.commit(b);
    sent_ += n;
    sent_to_[static_cast<std::size_t>(p)] += n;
    next_partition();
    return flow_.admit(p, b.first_offset() + n - 1, slot_);
  }

  void closed_loop() {
    while (!stopping() && sent_ < quota_) {
      if (cfg_.batch > 0) {
        auto n = static_cast<std::uint32_t>(std::min<std::int64_t>(cfg_.batch, quota_ - sent_));
        if (!append_batch(n, nullptr)) return;
      } else {
        std::int64_t chunk = std::min(kCopyChunk, quota_ - sent_);
        for (std::int64_t k = 0; k < chunk; ++k)
          if (!append_one(-1)) return;
      }
      publish_progress();
      if (cfg_.count == 0 && wall_clock_ns() >= end_) return;
    }
  }

  // Record i of this producer is due at start + (i + id / producers) / per-producer rate.
  std::int64_t scheduled(std::int64_t i) const {
    double per_producer = cfg_.rate / cfg_.producers;
    double t =
        (static_cast<double>(i) + static_cast<double>(id_) / cfg_.producers) / per_producer * 1e9;
    return start_ + static_cast<std::int64_t>(t);
  }

  void open_loop() {
    std::vector<std::int64_t> stamps(std::max<std::uint32_t>(cfg_.batch, 1));
    std::int64_t max_late = 0;
    while (!stopping() && sent_ < quota_) {
      std::int64_t due_at = scheduled(sent_);
      if (due_at >= end_) break;
      std::int64_t now = wall_clock_ns();
      if (now < due_at) {
        wait_until(due_at, sh_.stop);
        continue;
      }
      max_late = std::max(max_late, now - due_at);
      // Send what is due now: up to one batch, or a chunk of single appends.
      if (cfg_.batch == 0) {
        for (std::int64_t k = 0; k < kCopyChunk && sent_ < quota_; ++k) {
          std::int64_t t = scheduled(sent_);
          if (t > now || t >= end_) break;
          if (!append_one(t)) return;
        }
      } else {
        std::uint32_t n = 0;
        while (n < cfg_.batch && sent_ + n < quota_) {
          std::int64_t t = scheduled(sent_ + n);
          if (t > now || t >= end_) break;
          stamps[n++] = t;
        }
        if (n > 0 && !append_batch(n, cfg_.value_stamped() ? stamps.data() : nullptr)) return;
      }
      publish_progress();
    }
    slot_.max_late_ns.store(max_late, std::memory_order_relaxed);
  }

  const PerfConfig& cfg_;
  PerfShared& sh_;
  ProducerSlot& slot_;
  int id_;
  std::vector<LogAppender> apps_;  // one per partition
  FlowControl flow_;
  std::vector<std::byte> payload_;
  std::vector<std::int64_t> sent_to_;  // per partition
  int partition_ = 0;                  // where the next record goes
  std::int64_t on_partition_ = 0;      // records sent there since it became the sticky one
  std::int64_t quota_ = 0;
  std::int64_t sent_ = 0;
  std::int64_t start_ = 0;
  std::int64_t end_ = 0;
};

}  // namespace

void run_producer(const PerfConfig& cfg, const std::vector<std::string>& dirs, PerfShared& sh,
                  int id, int cpu) {
  ProducerSlot& slot = sh.producers[id];
  if (cpu >= 0) pin_to_cpu(cpu);
  ::prctl(PR_SET_TIMERSLACK, 1UL, 0UL, 0UL, 0UL);  // precise pacing sleeps
  AppenderOptions ao;
  ao.timestamp_mode = cfg.batch > 0 ? TimestampMode::kPerBatch : TimestampMode::kWallClock;
  std::vector<LogAppender> apps;
  for (const std::string& dir : dirs) {
    auto log = PartitionLog::open(dir, cfg.retention_options());
    if (!log) {
      fail(slot, "producer: " + log.status().message());
      slot.done.store(1);
      return;
    }
    auto app = LogAppender::open(*log, ao);
    if (!app) {
      fail(slot, "producer: " + app.status().message());
      slot.done.store(1);
      return;
    }
    // The pool the warm-up made, mapped and written once a page now: no roll of the run maps
    // a file, and no append pays for a page's first write through this mapping.
    if (auto mapped = (*log)->premap_segments(PartitionLog::Pretouch::kForWriting); !mapped) {
      fail(slot, "producer: " + mapped.status().message());
      slot.done.store(1);
      return;
    }
    apps.push_back(std::move(app).value());
  }
  slot.ready.store(1, std::memory_order_release);
  Producer p(cfg, sh, id, std::move(apps));
  p.run();
}

// ---- warm-up -------------------------------------------------------------------------------

// Runs a new partition once through its pool of recycled segments (--retain segments and a
// spare, all allocated and formatted), the way the run will: large filler records, and
// prepare_next() after every roll, which recycles the oldest segment into the spare once
// --retain are there. The run then creates no file, and every worker maps the whole pool
// before it starts (PartitionLog::premap_segments), so that none of its rolls maps one: a
// fresh pre-faulted 16 MiB segment costs its first user 3-6 ms here (docs/benchmarks.md,
// "Segment rolls"). Returns the offset the run's records start at.
Result<std::int64_t> warm_up(const std::shared_ptr<PartitionLog>& log, const PerfConfig& cfg) {
  // Appended through a handle of its own, as the producers' are (prepare_after_roll() leaves
  // a spare for the next roll after every roll, so none of the warm-up's rolls recycles in
  // place).
  auto producers_kind = PartitionLog::open(log->dir(), cfg.retention_options());
  if (!producers_kind) return producers_kind.status();
  auto app = LogAppender::open(*producers_kind);
  if (!app) return app.status();
  const std::string filler(static_cast<std::size_t>(cfg.segment_bytes() / 64), 'w');
  std::int64_t base = log->control()->active.active_base.load(std::memory_order_acquire);
  for (std::uint32_t rolls = 0; rolls <= cfg.retain;) {
    AppendResult r = app->append(filler);
    if (r.outcome != AppendOutcome::kOk)
      return Status(ErrorCode::kIo, std::string(describe(r.outcome)));
    if (Status s = log->prepare_after_roll(); !s) return s;
    std::int64_t now = log->control()->active.active_base.load(std::memory_order_acquire);
    if (now != base) {
      base = now;
      ++rolls;
    }
  }
  return log->end_offset();
}

}  // namespace sluice::tools::perf
