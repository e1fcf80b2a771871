#include "shm/log_reader.h"

#include <immintrin.h>
#include <sched.h>

#include <algorithm>

#include "shm/clock.h"
#include "shm/futex.h"

namespace sluice::shm {

namespace {
// How many empty polls pass between two looks at the tail for an abandoned claim.
constexpr std::uint32_t kPollsPerStallCheck = 1024;
// The longest a parked reader sleeps before it looks for abandoned claims itself.
constexpr std::int64_t kMaxParkNs = 100'000'000;
}  // namespace

Result<LogReader> LogReader::open(std::shared_ptr<PartitionLog> log, const ReaderOptions& options) {
  LogReader r;
  r.log_ = std::move(log);
  r.options_ = options;
  if (Status s = r.seek_to_beginning(); !s) return s;
  return r;
}

Status LogReader::enter_segment(std::shared_ptr<Segment> seg, std::uint64_t position) {
  segment_ = std::move(seg);
  data_ = segment_->data();
  capacity_ = segment_->capacity();
  seq_ = segment_->seq();
  pos_ = position;
  stall_since_ = 0;
  return Status::ok();
}

// ---- the cold side of poll ------------------------------------------------------------------

ReadOutcome LogReader::on_not_ready() {
  // Both checks read the segment's tail cache line, which producers write on every append:
  // do it rarely, so that a spinning reader does not steal that line from them.
  if (++empty_polls_ % kPollsPerStallCheck != 0) return ReadOutcome::kOk;
  check_stall();
  if (!segment_->still_current()) {
    error_ =
        Status(ErrorCode::kOutOfRange,
               segment_->path() + ": segment was removed by retention while reading at offset " +
                   std::to_string(next_offset_));
    return ReadOutcome::kOutOfRange;
  }
  return ReadOutcome::kOk;
}

ReadOutcome LogReader::on_corrupt(FrameProblem problem) {
  error_ = Status(ErrorCode::kCorrupt,
                  segment_->path() + ": frame at byte " + std::to_string(pos_) + " (after offset " +
                      std::to_string(next_offset_ - 1) + "): " + describe(problem));
  return ReadOutcome::kCorrupt;
}

Status LogReader::skip_corrupt() {
  FrameCheck fc = check_frame(data_, capacity_, seq_, pos_, false);
  if (fc.problem == FrameProblem::kNone || fc.problem == FrameProblem::kBadCrc ||
      fc.problem == FrameProblem::kBadBody) {
    pos_ += align_frame(fc.length);
    return Status::ok();
  }
  // The length itself is bad: nothing in this segment after it can be trusted to line up.
  std::int64_t next = segment_->header()->seal_line.next_base.load(std::memory_order_acquire);
  if (next < 0) return Status(ErrorCode::kCorrupt, error_.message() + "; segment not sealed");
  return seek(next);
}

ReadOutcome LogReader::follow_end(std::int64_t next_base) {
  auto seg = log_->segment(next_base);
  if (!seg) {
    error_ = seg.status().with_context("following " + segment_->path());
    return seg.status().code() == ErrorCode::kNotFound ? ReadOutcome::kOutOfRange
                                                       : ReadOutcome::kCorrupt;
  }
  (void)enter_segment(std::move(seg).value(), 0);
  if (next_offset_ < next_base) next_offset_ = next_base;
  return ReadOutcome::kOk;
}

void LogReader::check_stall() {
  if (ready()) {
    stall_since_ = 0;
    return;
  }
  // Relaxed: only compared with our position; the frame itself is read with acquire.
  std::uint64_t tail = segment_->header()->tail_line.tail.load(std::memory_order_relaxed);
  if (tail_position(tail) <= pos_) {
    stall_since_ = 0;  // simply caught up
    return;
  }
  std::int64_t now = monotonic_ns();
  if (stall_since_ == 0 || stall_pos_ != pos_) {
    stall_since_ = now;
    stall_pos_ = pos_;
    stall_tail_ = tail;
    return;
  }
  if (now - stall_since_ < log_->options().abandon_timeout_ns || !log_->writable()) return;
  UnblockOutcome o = log_->unblock(*segment_, pos_, stall_tail_);
  if (o == UnblockOutcome::kNotYet) {
    // Producers behind us still claim; look again after another timeout.
    stall_since_ = now;
    stall_tail_ = tail;
  } else {
    stall_since_ = 0;
  }
}

// ---- waiting --------------------------------------------------------------------------------

bool LogReader::wait(WaitStrategy strategy, std::int64_t timeout_ns) {
  if (ready()) return true;
  std::int64_t start = monotonic_ns();
  std::int64_t deadline =
      timeout_ns < 0 ? std::numeric_limits<std::int64_t>::max() : start + timeout_ns;
  if (strategy == WaitStrategy::kBlock) return block_until_ready(deadline);
  std::int64_t spin_until =
      strategy == WaitStrategy::kAdaptive ? std::min(deadline, start + options_.spin_ns) : deadline;
  for (std::uint32_t i = 1;; ++i) {
    if (ready()) return true;
    if (strategy == WaitStrategy::kYield) {
      sched_yield();
    } else {
      _mm_pause();
    }
    if (i % kPollsPerStallCheck == 0) {
      check_stall();
      if (!segment_->still_current()) {
        empty_polls_ = kPollsPerStallCheck - 1;  // so that the next poll reports kOutOfRange
        return true;
      }
      if (monotonic_ns() >= spin_until) break;
    }
  }
  if (strategy == WaitStrategy::kAdaptive) return block_until_ready(deadline);
  return ready();
}

bool LogReader::block_until_ready(std::int64_t deadline_ns) {
  PartitionControl* c = log_->control();
  // A log opened read-only has partition.ctl mapped read-only: such a reader cannot announce
  // itself in `waiters` (the store would fault), so no producer wakes it; it parks for short
  // spells instead, as when there is no heavy barrier.
  const bool announce = log_->writable();
  for (;;) {
    // Acquire: pairs with the producer's release increment in LogAppender::wake_readers.
    std::uint32_t key = c->wake_seq.value.load(std::memory_order_acquire);
    bool barrier = false;
    if (announce) {
      // seq_cst RMW: announce ourselves before re-checking (the Dekker pattern of futex.h).
      c->waiters.value.fetch_add(1, std::memory_order_seq_cst);
      barrier = heavy_barrier();
    }
    if (ready()) {
      if (announce) c->waiters.value.fetch_sub(1, std::memory_order_relaxed);
      return true;
    }
    std::int64_t now = monotonic_ns();
    std::int64_t park = std::min(deadline_ns - now, kMaxParkNs);
    if (!barrier) park = std::min<std::int64_t>(park, 1'000'000);  // no barrier: bounded wait
    if (park > 0) futex_wait(&c->wake_seq.value, key, park);
    if (announce) c->waiters.value.fetch_sub(1, std::memory_order_relaxed);
    if (ready()) return true;
    check_stall();
    if (!segment_->still_current()) {
      empty_polls_ = kPollsPerStallCheck - 1;  // so that the next poll reports kOutOfRange
      return true;
    }
    if (monotonic_ns() >= deadline_ns) return false;
  }
}

// ---- seeking --------------------------------------------------------------------------------

std::uint64_t LogReader::index_position_for_offset(std::int64_t target) const {
  // The last filled slot that names a frame at or before the target. Slots are hints: filled
  // out of order by concurrent producers, possibly never by one that died.
  std::uint64_t best = 0;
  std::int64_t base = segment_->base_offset();
  for (std::uint32_t k = 0; k < segment_->index_slots(); ++k) {
    const IndexSlot& slot = segment_->index()[k];
    std::uint32_t idx1 = slot.index_plus1.load(std::memory_order_acquire);
    if (idx1 == 0) continue;
    if (base + static_cast<std::int64_t>(idx1 - 1) > target) break;
    best = slot.position;
  }
  return best;
}

Status LogReader::walk_to_offset(std::int64_t target) {
  for (;;) {
    FrameCheck fc = check_frame(data_, capacity_, seq_, pos_, false);
    if (fc.problem == FrameProblem::kNotWritten || fc.problem == FrameProblem::kInProgress) {
      // A roller publishes the next segment before it writes this one's END frame: if the
      // seal words say the segment ends here, go on into the next one.
      const SegmentSealLine& seal = segment_->header()->seal_line;
      std::int64_t sealed_next = seal.next_base.load(std::memory_order_acquire);
      if (sealed_next >= 0 && seal.end_position.load(std::memory_order_relaxed) == pos_ &&
          log_->control()->active.active_base.load(std::memory_order_acquire) !=
              segment_->base_offset()) {
        if (follow_end(sealed_next) != ReadOutcome::kOk) return error_;
        continue;
      }
      return Status::ok();  // the committed end of the log
    }
    if (fc.problem != FrameProblem::kNone)
      return Status(ErrorCode::kCorrupt, segment_->path() + ": frame at byte " +
                                             std::to_string(pos_) + ": " + describe(fc.problem));
    const FrameHeader* f = segment_->frame_at(pos_);
    if (f->type == kFrameEnd) {
      if (follow_end(f->offset) != ReadOutcome::kOk) return error_;
      continue;
    }
    if (f->type == kFrameData) {
      if (f->offset >= target) {
        next_offset_ = f->offset;
        return Status::ok();
      }
      next_offset_ = f->offset + 1;
    }
    pos_ += align_frame(fc.length);
  }
}

Status LogReader::seek(std::int64_t offset) {
  auto bases = log_->segment_bases();
  if (!bases) return bases.status();
  if (bases->empty()) return Status(ErrorCode::kCorrupt, log_->dir() + ": no segments");
  if (offset < bases->front())
    return Status(ErrorCode::kOutOfRange,
                  "offset " + std::to_string(offset) + " is before the earliest retained offset " +
                      std::to_string(bases->front()) + " of " + log_->dir());
  // The last segment whose base is <= offset. A directory listing taken while other files
  // are renamed (rolls) may miss an entry: the active segment is known without one.
  auto it = std::upper_bound(bases->begin(), bases->end(), offset);
  std::int64_t base = *std::prev(it);
  std::int64_t active = log_->control()->active.active_base.load(std::memory_order_acquire);
  if (active <= offset && active > base) base = active;
  auto seg = log_->segment(base);
  if (!seg) return seg.status();
  (void)enter_segment(std::move(seg).value(), 0);
  next_offset_ = base;
  pos_ = index_position_for_offset(offset);
  if (check_frame(data_, capacity_, seq_, pos_, false).problem != FrameProblem::kNone) pos_ = 0;
  if (Status s = walk_to_offset(offset); !s) return s;
  if (next_offset_ < offset) {
    // The target lies beyond the committed end.
    std::int64_t end = next_offset_;
    if (offset > end)
      return Status(ErrorCode::kOutOfRange, "offset " + std::to_string(offset) +
                                                " is after the end offset " + std::to_string(end) +
                                                " of " + log_->dir());
  }
  return Status::ok();
}

Status LogReader::seek_to_beginning() {
  for (int attempt = 0; attempt < 10; ++attempt) {
    auto bases = log_->segment_bases();
    if (!bases) return bases.status();
    if (bases->empty()) return Status(ErrorCode::kCorrupt, log_->dir() + ": no segments");
    auto seg = log_->segment(bases->front());
    if (!seg) {
      if (seg.status().code() == ErrorCode::kNotFound) continue;  // retention raced us
      return seg.status();
    }
    next_offset_ = bases->front();
    return enter_segment(std::move(seg).value(), 0);
  }
  return Status(ErrorCode::kBusy, log_->dir() + ": segments keep disappearing");
}

Status LogReader::seek_to_end() {
  auto seg = log_->active_segment();
  if (!seg) return seg.status();
  (void)enter_segment(std::move(seg).value(), 0);
  next_offset_ = segment_->base_offset();
  pos_ = index_position_for_offset(std::numeric_limits<std::int64_t>::max());
  if (check_frame(data_, capacity_, seq_, pos_, false).problem != FrameProblem::kNone) pos_ = 0;
  return walk_to_offset(std::numeric_limits<std::int64_t>::max());
}

Status LogReader::seek_to_timestamp(std::int64_t ns) {
  auto bases = log_->segment_bases();
  if (!bases) return bases.status();
  if (bases->empty()) return Status(ErrorCode::kCorrupt, log_->dir() + ": no segments");
  // Binary search for the last segment whose first record is older than ns: the answer is in
  // it or at the start of the one after.
  std::size_t lo = 0, hi = bases->size();
  while (hi - lo > 1) {
    std::size_t mid = (lo + hi) / 2;
    auto seg = log_->segment((*bases)[mid]);
    if (!seg) return seg.status();
    const Segment& s = **seg;
    // The first data frame's timestamp: the first index slot, confirmed by the frame.
    std::int64_t first_ts = std::numeric_limits<std::int64_t>::max();
    FrameCheck fc = check_frame(s.data(), s.capacity(), s.seq(), 0, false);
    if (fc.problem == FrameProblem::kNone && s.frame_at(0)->type == kFrameData)
      first_ts = s.frame_at(0)->timestamp_ns;
    if (first_ts < ns)
      lo = mid;
    else
      hi = mid;
  }
  auto seg = log_->segment((*bases)[lo]);
  if (!seg) return seg.status();
  (void)enter_segment(std::move(seg).value(), 0);
  next_offset_ = segment_->base_offset();
  // The last index slot written by a record older than ns.
  for (std::uint32_t k = 0; k < segment_->index_slots(); ++k) {
    const IndexSlot& slot = segment_->index()[k];
    if (slot.index_plus1.load(std::memory_order_acquire) == 0) continue;
    if (slot.timestamp_ns >= ns) break;
    if (check_frame(data_, capacity_, seq_, slot.position, false).problem == FrameProblem::kNone)
      pos_ = slot.position;
  }
  for (;;) {
    FrameCheck fc = check_frame(data_, capacity_, seq_, pos_, false);
    if (fc.problem == FrameProblem::kNotWritten || fc.problem == FrameProblem::kInProgress)
      return Status::ok();  // none at or after ns yet: at the end
    if (fc.problem != FrameProblem::kNone)
      return Status(ErrorCode::kCorrupt, segment_->path() + ": frame at byte " +
                                             std::to_string(pos_) + ": " + describe(fc.problem));
    const FrameHeader* f = segment_->frame_at(pos_);
    if (f->type == kFrameEnd) {
      if (follow_end(f->offset) != ReadOutcome::kOk) return error_;
      continue;
    }
    if (f->type == kFrameData) {
      if (f->timestamp_ns >= ns) {
        next_offset_ = f->offset;
        return Status::ok();
      }
      next_offset_ = f->offset + 1;
    }
    pos_ += align_frame(fc.length);
  }
}

}  // namespace sluice::shm
