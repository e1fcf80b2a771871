#include "shm/partition_log.h"

#include <algorithm>

#include "shm/frame_check.h"

namespace sluice::shm {

// ---- abandoned claims -----------------------------------------------------------------------

UnblockOutcome PartitionLog::unblock(Segment& seg, std::uint64_t position,
                                     std::uint64_t tail_when_stalled) {
  FrameHeader* frame = seg.frame_at(position);
  std::uint64_t word = frame->commit.load(std::memory_order_acquire);
  std::int32_t length = commit_length(word);
  bool ours = commit_seq(word) == seg.seq();
  if (ours && length > 0) return UnblockOutcome::kAlreadyCommitted;
  std::uint64_t tail = seg.header()->tail_line.tail.load(std::memory_order_acquire);
  std::uint64_t tail_pos = tail_position(tail);
  if (tail_pos <= position) return UnblockOutcome::kNotYet;

  std::uint64_t gap_end = 0;
  if (ours && length < 0) {
    gap_end = position + align_frame(static_cast<std::uint64_t>(-std::int64_t{length}));
  } else {
    // The producer died before writing its header: the gap runs to the next frame header.
    std::uint64_t limit = std::min(tail_pos, seg.usable());
    std::uint64_t p = position + kFrameAlignment;
    for (; p < limit; p += kFrameAlignment) {
      std::uint64_t w = seg.frame_at(p)->commit.load(std::memory_order_acquire);
      std::int32_t l = commit_length(w);
      if (commit_seq(w) == seg.seq() && l != 0 &&
          p + align_frame(static_cast<std::uint64_t>(l < 0 ? -std::int64_t{l} : l)) <=
              seg.capacity())
        break;
    }
    if (p >= limit) {
      if (tail_pos > seg.usable()) {
        // The gap reaches the segment end: this was the roll's reservation.
        return recover_roll(seg) ? UnblockOutcome::kRolled : UnblockOutcome::kNotYet;
      }
      if (tail != tail_when_stalled) return UnblockOutcome::kNotYet;  // others still claim
      p = limit;
    }
    gap_end = p;
  }
  if (gap_end > seg.usable() + kFrameHeaderBytes || gap_end <= position)
    return UnblockOutcome::kNotYet;

  frame->offset = -1;
  frame->timestamp_ns = 0;
  frame->type = kFramePad;
  frame->flags = 0;
  auto pad_len = static_cast<std::int32_t>(gap_end - position);
  // Over the whole pad, like every frame's CRC (docs/format.md), so that verify accepts it.
  frame->crc32c = frame_crc(frame, static_cast<std::uint32_t>(pad_len));
  // CAS from the word we saw: if the producer committed meanwhile, leave its frame alone.
  // Release: readers acquire the word and then read the type.
  if (!frame->commit.compare_exchange_strong(word, make_commit_word(pad_len, seg.seq()),
                                             std::memory_order_release, std::memory_order_relaxed))
    return UnblockOutcome::kAlreadyCommitted;
  return UnblockOutcome::kUnblocked;
}

// ---- crash recovery -------------------------------------------------------------------------

Status PartitionLog::recover_torn_tail() {
  auto bases = segment_bases();
  if (!bases) return bases.status();
  if (bases->empty()) return Status(ErrorCode::kCorrupt, dir_ + ": partition has no segment files");
  std::int64_t active = control_->active.active_base.load(std::memory_order_acquire);
  if (!std::binary_search(bases->begin(), bases->end(), active)) {
    // The roll that named `active` never got its file in place: go back to the newest.
    active = bases->back();
    control_->active.active_base.store(active, std::memory_order_release);
  }
  auto seg = segment(active);
  if (!seg) return seg.status();
  Segment& s = **seg;
  std::uint64_t pos = 0;
  std::int64_t next_offset = s.base_offset();
  while (pos <= s.usable()) {
    FrameCheck fc = check_frame(s.data(), s.capacity(), s.seq(), pos, true);
    if (fc.problem != FrameProblem::kNone) break;
    const FrameHeader* f = s.frame_at(pos);
    if (f->type == kFrameEnd) {
      // Sealed, but the next segment never appeared: reopen this one at the END frame.
      break;
    }
    if (f->type == kFrameData && f->offset < next_offset) break;  // offsets must increase
    if (f->offset >= next_offset) next_offset = f->offset + 1;
    pos += align_frame(fc.length);
  }
  std::uint64_t old_tail = tail_position(s.header()->tail_line.tail.load());
  // Clear what follows the last good frame so that no stale word with this seq remains.
  std::uint64_t clear_to = std::min<std::uint64_t>(std::max(old_tail, pos), s.capacity());
  if (clear_to > pos) std::memset(s.data() + pos, 0, clear_to - pos);
  std::uint64_t count = static_cast<std::uint64_t>(next_offset - s.base_offset());
  s.header()->seal_line.end_position.store(0, std::memory_order_relaxed);
  s.header()->seal_line.next_base.store(-1, std::memory_order_relaxed);
  s.header()->tail_line.tail.store((count << kTailCountShift) | pos, std::memory_order_release);
  // Records deleted up to an offset the torn tail lost: the start is the end now.
  if (control_->log_start.offset.load(std::memory_order_relaxed) > next_offset)
    control_->log_start.offset.store(next_offset, std::memory_order_relaxed);
  return sync();
}

}  // namespace sluice::shm
