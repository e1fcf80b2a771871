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
// kAdaptive, after ReaderOptions::shrink_after_parks waits in a row that outlasted spin_ns:
// spin kShortSpinNs (enough for a record already on its way), with a look at the clock every
// kShortSpinClockEvery pauses (a few hundred ns) to keep it short.
constexpr std::int64_t kShortSpinNs = 2'000;
constexpr std::uint32_t kShortSpinClockEvery = 16;
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

ReadOutcome LogReader::leave_segment(std::int64_t next_base) {
  // Records below the log start (Kafka's DeleteRecords) are not served. A reader positioned
  // below a start moved after it got there finds out here, at its segment's end, instead of
  // with a shared load on every poll. Relaxed: the start only rises, and a stale value serves
  // at most one more segment of deleted records. Only poll checks: the seeks land at or above
  // the start by themselves, and their walks may cross a segment wholly below it (a search by
  // time that starts there, or a segment list read before the start moved).
  std::int64_t start = log_->control()->log_start.offset.load(std::memory_order_relaxed);
  if (next_base < start) {
    error_ = Status(ErrorCode::kOutOfRange,
                    segment_->path() + ": records below offset " + std::to_string(start) +
                        " were deleted (the partition's log start) while reading at offset " +
                        std::to_string(next_base));
    return ReadOutcome::kOutOfRange;
  }
  return follow_end(next_base);
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
  std::int64_t spin_until = deadline;
  std::uint32_t clock_every = kPollsPerStallCheck;
  if (strategy == WaitStrategy::kAdaptive) {
    // After several waits in a row that outlasted the spin (records come further apart than
    // spin_ns), spinning the full spin_ns only burns the CPU: spin briefly instead, looking at
    // the clock more often, until a wait ends sooner again.
    const bool spin_pays =
        options_.shrink_after_parks == 0 || parked_streak_ < options_.shrink_after_parks;
    spin_until = std::min(deadline, start + (spin_pays ? options_.spin_ns : kShortSpinNs));
    if (!spin_pays) clock_every = kShortSpinClockEvery;
  }
  for (std::uint32_t i = 1;; ++i) {
    if (ready()) {
      parked_streak_ = 0;
      return true;
    }
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
    }
    if (i % clock_every == 0 && monotonic_ns() >= spin_until) break;
  }
  if (strategy != WaitStrategy::kAdaptive) return ready();
  bool got = block_until_ready(deadline);
  // A wait that ended within spin_ns (the park was short) means the full spin would have
  // caught it: spin fully again. Otherwise count it.
  if (got && monotonic_ns() - start <= options_.spin_ns) {
    parked_streak_ = 0;
  } else if (parked_streak_ < options_.shrink_after_parks) {
    ++parked_streak_;
  }
  return got;
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
    if (ready_after_park()) return true;
    if (monotonic_ns() >= deadline_ns) return false;
  }
}

bool LogReader::ready_after_park() {
  if (ready()) return true;
  check_stall();
  if (!segment_->still_current()) {
    empty_polls_ = kPollsPerStallCheck - 1;  // so that the next poll reports kOutOfRange
    return true;
  }
  return false;
}

bool LogReader::wait_any(std::span<LogReader* const> readers, std::int64_t timeout_ns) {
  if (readers.empty()) return false;
  if (readers.size() == 1) return readers[0]->wait(WaitStrategy::kBlock, timeout_ns);
  for (LogReader* r : readers)
    if (r->ready()) return true;
  std::int64_t deadline =
      timeout_ns < 0 ? std::numeric_limits<std::int64_t>::max() : monotonic_ns() + timeout_ns;
  // The first kMaxWaitAnyWords readers park; any beyond are looked at after each short park.
  const std::size_t n = std::min(readers.size(), kMaxWaitAnyWords);
  std::atomic<std::uint32_t>* words[kMaxWaitAnyWords];
  std::uint32_t keys[kMaxWaitAnyWords];
  bool announced[kMaxWaitAnyWords];
  for (;;) {
    // The protocol of block_until_ready, on every partition at once: read each futex word,
    // announce ourselves in every `waiters` we may write, one heavy barrier for them all,
    // then re-check every reader before sleeping.
    bool any_announced = false;
    bool all_announced = n == readers.size();
    for (std::size_t i = 0; i < n; ++i) {
      PartitionControl* c = readers[i]->log_->control();
      words[i] = &c->wake_seq.value;
      // Acquire: pairs with the producer's release increment in LogAppender::wake_readers.
      keys[i] = words[i]->load(std::memory_order_acquire);
      announced[i] = readers[i]->log_->writable();
      if (announced[i]) {
        c->waiters.value.fetch_add(1, std::memory_order_seq_cst);  // see block_until_ready
        any_announced = true;
      } else {
        all_announced = false;  // read-only: no producer will wake us for this one
      }
    }
    const bool barrier = any_announced && heavy_barrier();
    bool got = false;
    for (LogReader* r : readers) got = got || r->ready();
    if (!got) {
      std::int64_t park = std::min(deadline - monotonic_ns(), kMaxParkNs);
      if (!barrier || !all_announced) park = std::min<std::int64_t>(park, 1'000'000);
      if (park > 0 && !futex_wait_any({words, n}, {keys, n}, park)) {
        futex_wait(words[0], keys[0], std::min<std::int64_t>(park, 1'000'000));  // no waitv
      }
    }
    for (std::size_t i = 0; i < n; ++i)
      if (announced[i])
        readers[i]->log_->control()->waiters.value.fetch_sub(1, std::memory_order_relaxed);
    if (got) return true;
    for (LogReader* r : readers) got = r->ready_after_park() || got;
    if (got) return true;
    if (monotonic_ns() >= deadline) return false;
  }
}

const char* wait_strategy_name(WaitStrategy strategy) noexcept {
  switch (strategy) {
    case WaitStrategy::kSpin:
      return "spin";
    case WaitStrategy::kYield:
      return "yield";
    case WaitStrategy::kBlock:
      return "block";
    case WaitStrategy::kAdaptive:
      return "adaptive";
  }
  return "?";
}

std::optional<WaitStrategy> parse_wait_strategy(std::string_view name) noexcept {
  for (WaitStrategy w :
       {WaitStrategy::kSpin, WaitStrategy::kYield, WaitStrategy::kBlock, WaitStrategy::kAdaptive})
    if (name == wait_strategy_name(w)) return w;
  return std::nullopt;
}

// ---- seeking --------------------------------------------------------------------------------

bool LogReader::slot_confirmed(std::uint32_t k, std::int64_t target) const {
  const IndexSlot& slot = segment_->index()[k];
  // Acquire: pairs with the producer's release of index_plus1 (LogAppender::note_index_slow),
  // so the position it names is the one that producer wrote.
  std::uint32_t idx1 = slot.index_plus1.load(std::memory_order_acquire);
  if (idx1 == 0) return false;
  std::uint64_t position = slot.position;
  if (position % kFrameAlignment != 0 || position >= segment_->usable()) return false;
  // Slots are hints (after a torn-tail recovery, one may be stale until a producer crosses
  // its boundary again): use one only if a committed data frame with its offset is there.
  if (check_frame(data_, capacity_, seq_, position, false).problem != FrameProblem::kNone)
    return false;
  const FrameHeader* f = segment_->frame_at(position);
  return f->type == kFrameData &&
         f->offset == segment_->base_offset() + static_cast<std::int64_t>(idx1 - 1) &&
         f->offset <= target;
}

void LogReader::start_from_index(std::int64_t target) {
  const std::int64_t base = segment_->base_offset();
  const IndexSlot* index = segment_->index();
  const std::uint32_t slots = segment_->index_slots();
  // No slot past the one the reserved tail reaches can be filled: the producer whose
  // reservation crosses boundary k fills slot k. Relaxed: the tail only bounds the search
  // (the slots and frames found are acquired and confirmed). A tail past the usable end
  // means the segment is full: its valid reservations end at the sealed end position
  // (acquire, for symmetry with the roller's release; 0 while not sealed: search it all).
  std::uint64_t reach =
      tail_position(segment_->header()->tail_line.tail.load(std::memory_order_relaxed));
  if (reach > segment_->usable()) {
    reach = segment_->header()->seal_line.end_position.load(std::memory_order_acquire);
    if (reach == 0) reach = capacity_;
  }
  const auto shift = static_cast<unsigned>(__builtin_ctz(segment_->index_interval()));
  const std::uint64_t top = std::min<std::uint64_t>(slots - 1, reach >> shift);
  // Acquire, both: pairs with the producer's release of index_plus1 (note_index_slow).
  auto filled = [&](std::uint64_t k) {
    return index[k].index_plus1.load(std::memory_order_acquire) != 0;
  };
  auto slot_offset = [&](std::uint64_t k) {
    return base + static_cast<std::int64_t>(index[k].index_plus1.load(std::memory_order_acquire)) -
           1;
  };
  // Binary search for the last filled slot naming an offset <= target. Filled slots name
  // increasing offsets; unfilled ones (claims in flight, producers that died, the segment's
  // last bytes) are stepped over downwards, so they cannot hide the filled slots above them.
  std::int64_t best = -1;
  std::uint64_t lo = 0, hi = top + 1;  // candidates in [lo, hi)
  while (lo < hi) {
    std::uint64_t mid = lo + (hi - lo) / 2;
    std::uint64_t j = mid;
    while (j > lo && !filled(j)) --j;
    if (!filled(j)) {
      lo = mid + 1;  // none filled in [lo, mid]
    } else if (slot_offset(j) <= target) {
      best = static_cast<std::int64_t>(j);  // and none filled in (j, mid]
      lo = mid + 1;
    } else {
      hi = j;
    }
  }
  // Confirm it against its frame; an unconfirmed slot (typically one naming the frame after
  // the newest claim, not written yet) gives way to the one before.
  for (; best >= 0; --best) {
    if (slot_confirmed(static_cast<std::uint32_t>(best), target)) {
      pos_ = index[best].position;
      next_offset_ = segment_->frame_at(pos_)->offset;
      return;
    }
  }
  pos_ = 0;
  next_offset_ = base;
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
  if (std::int64_t start = log_->start_offset(*bases); offset < start)
    return Status(ErrorCode::kOutOfRange, "offset " + std::to_string(offset) +
                                              " is before the earliest retained offset " +
                                              std::to_string(start) + " of " + log_->dir());
  // The last segment whose base is <= offset. A directory listing taken while other files
  // are renamed (rolls) may miss an entry: the active segment is known without one.
  auto it = std::upper_bound(bases->begin(), bases->end(), offset);
  std::int64_t base = *std::prev(it);
  std::int64_t active = log_->control()->active.active_base.load(std::memory_order_acquire);
  if (active <= offset && active > base) base = active;
  auto seg = log_->segment(base);
  if (!seg) return seg.status();
  skip_below_ = kNoSkip;
  (void)enter_segment(std::move(seg).value(), 0);
  start_from_index(offset);
  if (Status s = walk_to_offset(offset); !s) return s;
  if (next_offset_ < offset) {
    // The walk stopped at a frame not committed yet (or not written) before the target. The
    // target is valid if it has been reserved: wait here, and skip what commits below it.
    if (!segment_->still_current())
      return Status(ErrorCode::kOutOfRange,
                    segment_->path() + ": segment was removed by retention while seeking");
    auto end = log_->end_offset();
    if (offset > end)
      return Status(ErrorCode::kOutOfRange, "offset " + std::to_string(offset) +
                                                " is after the end offset " + std::to_string(end) +
                                                " of " + log_->dir());
    next_offset_ = offset;
    skip_below_ = offset;
  }
  return Status::ok();
}

Status LogReader::seek_to_beginning() {
  for (int attempt = 0; attempt < 10; ++attempt) {
    auto bases = log_->segment_bases();
    if (!bases) return bases.status();
    if (bases->empty()) return Status(ErrorCode::kCorrupt, log_->dir() + ": no segments");
    // Records deleted below the start (PartitionLog::delete_records_before) are skipped.
    if (std::int64_t start = log_->start_offset(*bases); start > bases->front()) {
      Status s = seek(start);
      if (s.code() == ErrorCode::kOutOfRange) continue;  // retention raced us
      return s;
    }
    auto seg = log_->segment(bases->front());
    if (!seg) {
      if (seg.status().code() == ErrorCode::kNotFound) continue;  // retention raced us
      return seg.status();
    }
    next_offset_ = bases->front();
    skip_below_ = kNoSkip;
    return enter_segment(std::move(seg).value(), 0);
  }
  return Status(ErrorCode::kBusy, log_->dir() + ": segments keep disappearing");
}

Status LogReader::seek_to_end() {
  auto seg = log_->active_segment();
  if (!seg) return seg.status();
  skip_below_ = kNoSkip;
  (void)enter_segment(std::move(seg).value(), 0);
  start_from_index(std::numeric_limits<std::int64_t>::max());
  return walk_to_offset(std::numeric_limits<std::int64_t>::max());
}

Status LogReader::seek_to_timestamp(std::int64_t ns) {
  auto bases = log_->segment_bases();
  if (!bases) return bases.status();
  if (bases->empty()) return Status(ErrorCode::kCorrupt, log_->dir() + ": no segments");
  // Found below the start (records deleted, PartitionLog::delete_records_before): the first
  // record served is the answer then.
  const std::int64_t start = log_->start_offset(*bases);
  auto found = [&] { return next_offset_ < start ? seek(start) : Status::ok(); };
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
  skip_below_ = kNoSkip;
  (void)enter_segment(std::move(seg).value(), 0);
  next_offset_ = segment_->base_offset();
  // The last index slot written by a record older than ns, confirmed against its frame (or
  // the one before it, as in start_from_index).
  std::int64_t last = -1;
  for (std::uint32_t k = 0; k < segment_->index_slots(); ++k) {
    const IndexSlot& slot = segment_->index()[k];
    // Acquire: pairs with the producer's release of index_plus1; the timestamp is then its.
    if (slot.index_plus1.load(std::memory_order_acquire) == 0) continue;
    if (slot.timestamp_ns >= ns) break;
    last = k;
  }
  for (; last >= 0; --last) {
    if (slot_confirmed(static_cast<std::uint32_t>(last),
                       std::numeric_limits<std::int64_t>::max())) {
      pos_ = segment_->index()[last].position;
      next_offset_ = segment_->frame_at(pos_)->offset;
      break;
    }
  }
  for (;;) {
    FrameCheck fc = check_frame(data_, capacity_, seq_, pos_, false);
    if (fc.problem == FrameProblem::kNotWritten || fc.problem == FrameProblem::kInProgress)
      return found();  // none at or after ns yet: at the end
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
        return found();
      }
      next_offset_ = f->offset + 1;
    }
    pos_ += align_frame(fc.length);
  }
}

}  // namespace sluice::shm
