#include "shm/log_appender.h"

#include <thread>

namespace sluice::shm {

const char* describe(AppendOutcome outcome) noexcept {
  switch (outcome) {
    case AppendOutcome::kOk:
      return "ok";
    case AppendOutcome::kRecordTooLarge:
      return "record too large for a segment";
    case AppendOutcome::kRollFailed:
      return "could not open the next segment";
    case AppendOutcome::kReadOnly:
      return "log opened read-only";
    case AppendOutcome::kBackPressured:
      return "held back until a slow consumer group catches up";
    case AppendOutcome::kClosed:
      return "partition closed (its topic was deleted)";
  }
  return "unknown outcome";
}

Result<LogAppender> LogAppender::open(std::shared_ptr<PartitionLog> log,
                                      const AppenderOptions& options) {
  if (!log->writable())
    return Status(ErrorCode::kPermissionDenied,
                  "cannot append to " + log->dir() + ": opened read-only");
  register_for_heavy_barrier();
  LogAppender a;
  a.log_ = std::move(log);
  a.options_ = options;
  a.waiters_ = &a.log_->control()->waiters.value;
  auto seg = a.log_->active_segment();
  if (!seg) return seg.status();
  if (Status s = a.switch_to(*seg); !s) return s;
  return a;
}

Status LogAppender::switch_to(std::shared_ptr<Segment> seg) {
  segment_ = std::move(seg);
  SegmentHeader* h = segment_->header();
  tail_ = &h->tail_line.tail;
  seq_word_ = &h->tail_line.seq;
  base_ = segment_->base_offset();
  seq_ = segment_->seq();
  usable_ = segment_->usable();
  max_frame_ = usable_;
  index_shift_ = static_cast<unsigned>(__builtin_ctz(segment_->index_interval()));
  return Status::ok();
}

AppendOutcome LogAppender::reserve_slow(std::uint64_t old_tail) {
  PartitionLog& log = *log_;
  // Acquire: pairs with the release that gave the file its current seq.
  std::uint32_t current_seq = seq_word_->load(std::memory_order_acquire);
  if (current_seq != seq_) {
    // Retention retired our segment (its seq is 0 now; the file is deleted, never reused while
    // our handle pins it): nothing was reserved. Retry in the active segment.
    auto active = log.active_segment();
    if (!active) return AppendOutcome::kRollFailed;
    (void)switch_to(*active);
    return AppendOutcome::kOk;  // retry
  }

  std::uint64_t pos = tail_position(old_tail);
  if (pos <= usable_) {
    // First reservation past the end: this producer rolls the segment. Offsets stay
    // contiguous: the next segment starts at the index this reservation got.
    if (Status s = log.roll(*segment_, pos, tail_count(old_tail)); !s) {
      if (s.code() == ErrorCode::kBackPressured) {
        held_back_ = true;
        return AppendOutcome::kBackPressured;
      }
      if (log.closed()) return AppendOutcome::kClosed;
      last_error_ = s;
      return AppendOutcome::kRollFailed;
    }
  } else if (log.control()->active.active_base.load(std::memory_order_acquire) == base_ &&
             segment_->header()->seal_line.next_base.load(std::memory_order_acquire) >= 0 &&
             !log.roll_in_progress()) {
    // A roll is pending and nobody is at it (held back, or refused): try it ourselves.
    held_back_ = true;
    return retry_held_roll();
  } else if (log.control()->active.active_base.load(std::memory_order_acquire) == base_) {
    // Another producer is rolling, perhaps past its seal and for longer than the abandon
    // timeout (a large segment zeroed or created). Wait for it as long as it lives; finish
    // the roll if it died.
    std::int64_t deadline = monotonic_ns() + log.options().abandon_timeout_ns;
    std::uint32_t spins = 0;
    while (log.control()->active.active_base.load(std::memory_order_acquire) == base_) {
      // Acquire: pairs with the roller's release of the seal words. Sealed but not rolled,
      // and the roller gone: the roll was held back (backpressure) or refused (closed); take
      // the held-roll path rather than wait for a segment that may never come.
      if (segment_->header()->seal_line.next_base.load(std::memory_order_acquire) >= 0 &&
          !log.roll_in_progress()) {
        held_back_ = true;
        return retry_held_roll();
      }
      if (++spins < 64) continue;
      std::this_thread::yield();
      if (monotonic_ns() > deadline) {
        if (!log.recover_roll(*segment_))
          return log.closed() ? AppendOutcome::kClosed : AppendOutcome::kRollFailed;
        deadline = monotonic_ns() + log.options().abandon_timeout_ns;
      }
    }
  }
  auto active = log.active_segment();
  if (!active) return AppendOutcome::kRollFailed;
  (void)switch_to(*active);
  return AppendOutcome::kOk;  // retry in the new segment
}

AppendOutcome LogAppender::retry_held_roll() {
  PartitionLog& log = *log_;
  if (log.control()->active.active_base.load(std::memory_order_acquire) == base_) {
    Status s = log.retry_pending_roll(*segment_);
    if (!s) {
      if (s.code() == ErrorCode::kBackPressured) return AppendOutcome::kBackPressured;
      if (log.closed()) return AppendOutcome::kClosed;
      // kBusy: no roll pending any more. kTimedOut: another live producer has held the roll
      // lock since we looked; it is rolling, so wait for it as reserve_slow does.
      if (s.code() != ErrorCode::kBusy && s.code() != ErrorCode::kTimedOut) {
        last_error_ = s;
        return AppendOutcome::kRollFailed;
      }
    }
  }
  held_back_ = false;
  auto active = log.active_segment();
  if (!active) return AppendOutcome::kRollFailed;
  (void)switch_to(*active);
  return AppendOutcome::kOk;
}

void LogAppender::note_index_slow(std::uint64_t pos, std::uint64_t bytes, std::int64_t first_offset,
                                  std::uint32_t records, std::int64_t timestamp) {
  std::uint64_t interval = segment_->index_interval();
  std::uint64_t stride = bytes / records;
  std::uint64_t first_slot = pos == 0 ? 0 : (pos >> index_shift_) + 1;
  std::uint64_t last_slot = (pos + bytes) >> index_shift_;
  for (std::uint64_t k = first_slot; k <= last_slot && k < segment_->index_slots(); ++k) {
    std::uint64_t boundary = k * interval;
    // The first frame starting at or after the boundary: one of ours, or the one after.
    std::uint64_t i = boundary <= pos ? 0 : (boundary - pos + stride - 1) / stride;
    std::uint64_t frame_pos = pos + i * stride;
    if (frame_pos >= segment_->usable()) continue;
    IndexSlot& slot = segment_->index()[k];
    slot.position = static_cast<std::uint32_t>(frame_pos);
    slot.timestamp_ns = timestamp;
    auto index = static_cast<std::uint64_t>(first_offset - base_) + i;
    // Release: position and timestamp are visible to a reader that acquires index_plus1.
    slot.index_plus1.store(static_cast<std::uint32_t>(index + 1), std::memory_order_release);
  }
}

void LogAppender::wake_readers() {
  PartitionControl* c = log_->control();
  // Release: a woken reader's acquire of wake_seq sees our commit.
  c->wake_seq.value.fetch_add(1, std::memory_order_release);
  futex_wake_all(&c->wake_seq.value);
}

}  // namespace sluice::shm
