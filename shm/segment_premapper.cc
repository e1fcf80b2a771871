#include "shm/segment_premapper.h"

#include <unistd.h>

#include <algorithm>

namespace sluice::shm {

SegmentPremapper::SegmentPremapper(std::chrono::milliseconds period)
    : state_(std::make_unique<State>()) {
  state_->period = period;
}

SegmentPremapper::~SegmentPremapper() {
  State& s = *state_;
  // Read without the lock: only add() on this process's threads writes it, before the thread
  // exists, and a forked child has no other thread that could.
  if (s.thread.joinable() && ::getpid() != s.owner_pid) {
    // A forked child: the thread stayed in the parent. Its mutex may be locked for ever and
    // its condition variable waited on; joining or destroying them would hang.
    (void)state_.release();
    return;
  }
  {
    std::lock_guard<std::mutex> lock(s.mutex);
    s.stop = true;
  }
  s.wake.notify_all();
  if (s.thread.joinable()) s.thread.join();
}

void SegmentPremapper::add(const std::shared_ptr<PartitionLog>& log) {
  State& s = *state_;
  std::lock_guard<std::mutex> lock(s.mutex);
  for (const Watched& w : s.logs)
    if (w.log.lock() == log) return;
  s.logs.push_back(Watched{log, -1});
  s.added = true;  // map the current spare now, not a period from now
  if (!s.thread.joinable()) {
    s.owner_pid = ::getpid();
    s.thread = std::thread([&s] { run(s); });
  }
  s.wake.notify_all();
}

std::uint64_t SegmentPremapper::mapped() const {
  std::lock_guard<std::mutex> lock(state_->mutex);
  return state_->mapped;
}

std::uint64_t SegmentPremapper::failures() const {
  std::lock_guard<std::mutex> lock(state_->mutex);
  return state_->failures;
}

void SegmentPremapper::run(State& s) {
  std::unique_lock<std::mutex> lock(s.mutex);
  // Passes in a row in which every log's spare was mapped already and none had rolled (at
  // most 4: enough doublings to reach kIdlePeriod from the default period): the wait doubles
  // with each, up to kIdlePeriod, and the first pass that finds work resets it.
  int quiet = 0;
  while (!s.stop) {
    s.added = false;
    // Visit a copy, unlocked: a premap can take milliseconds and add() must not wait for it.
    // s.logs only grows meanwhile (entries are erased below, under the lock), so its first
    // batch.size() entries are still these.
    std::vector<Watched> batch = s.logs;
    lock.unlock();
    std::uint64_t mapped = 0, failed = 0;
    bool busy = false;
    for (Watched& w : batch) {
      auto log = w.log.lock();
      if (!log) continue;
      // Relaxed: a hint only. A stale base costs one stat more or one period later.
      std::int64_t base = log->control()->active.active_base.load(std::memory_order_relaxed);
      if (base == w.mapped_for_base) continue;  // no roll since the spare was mapped
      busy = true;
      auto r = log->premap_spare();
      if (!r) {
        ++failed;
        continue;
      }
      if (*r == PartitionLog::PremapOutcome::kMapped) ++mapped;
      if (*r != PartitionLog::PremapOutcome::kNoSpare) w.mapped_for_base = base;
    }
    lock.lock();
    for (std::size_t i = 0; i < batch.size(); ++i)
      s.logs[i].mapped_for_base = batch[i].mapped_for_base;
    std::erase_if(s.logs, [](const Watched& w) { return w.log.expired(); });
    s.mapped += mapped;
    s.failures += failed;
    quiet = busy ? 0 : std::min(quiet + 1, 4);
    auto wait = std::min<std::chrono::milliseconds>(s.period * (1 << quiet),
                                                    std::max(s.period, kIdlePeriod));
    s.wake.wait_for(lock, wait, [&s] { return s.stop || s.added; });
  }
}

}  // namespace sluice::shm
