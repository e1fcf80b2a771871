// LogReader: reads a partition log in offset order, zero-copy: the handler gets RecordViews
// that point into the mapping. Padding frames (aborted or abandoned claims) are skipped and
// END frames followed into the next segment.
//
//   poll(handler, limit) -> PollResult { records, outcome }
//   wait(strategy, timeout): spin, yield, block on the partition's futex, or adaptive
//   seek(offset) | seek_to_timestamp(ns) | seek_to_beginning() | seek_to_end()
//
// A reader that finds a frame claimed but not committed for longer than the log's abandon
// timeout turns it into padding (if it may write to the log), so a producer killed mid-claim
// stalls nobody for ever.
//
// Seeking is lazy, as a Kafka consumer's is: seek(offset) accepts any offset up to the log end
// offset (the next offset reserved), even when a claim below it is not yet committed. The
// reader then waits at that claim and skips the records below the target once they commit.
//
// Thread-safety: one LogReader per thread.
#pragma once

#include <cstdint>
#include <limits>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>

#include "shm/frame_check.h"
#include "shm/partition_log.h"
#include "shm/record.h"

namespace sluice::shm {

enum class ReadOutcome : std::uint8_t {
  kOk,          // records were delivered, or none is committed yet
  kOutOfRange,  // the reader's segment is gone (retention), or the next one starts below the
                // log start (records deleted since it got there); seek somewhere valid
  kCorrupt,     // a frame failed validation; error() names the file and position
};

struct PollResult {
  std::uint32_t records = 0;
  ReadOutcome outcome = ReadOutcome::kOk;
};

enum class WaitStrategy : std::uint8_t {
  kSpin,      // busy-spin with a pause instruction: lowest latency, burns a core
  kYield,     // sched_yield between checks
  kBlock,     // park on the partition's futex until a producer wakes us
  kAdaptive,  // spin for ReaderOptions::spin_ns, then park (a short spin once waits outlast it)
};
// "spin", "yield", "block", "adaptive": the names tools and benchmarks print and parse.
const char* wait_strategy_name(WaitStrategy strategy) noexcept;
std::optional<WaitStrategy> parse_wait_strategy(std::string_view name) noexcept;

struct ReaderOptions {
  bool verify_crc = false;        // check every frame's CRC-32C on the read path
  std::int64_t spin_ns = 50'000;  // kAdaptive: how long to spin before parking
  // kAdaptive: after this many waits in a row that outlasted spin_ns (records come further
  // apart than the spin bridges), spin only about 2 µs before parking, until a wait ends
  // within spin_ns again. 0: always spin the full spin_ns.
  std::uint32_t shrink_after_parks = 4;
};

class LogReader {
 public:
  // A reader positioned at the earliest record.
  static Result<LogReader> open(std::shared_ptr<PartitionLog> log,
                                const ReaderOptions& options = {});

  // Delivers up to `limit` committed records to handler(const RecordView&).
  template <class Handler>
  PollResult poll(Handler&& handler,
                  std::uint32_t limit = std::numeric_limits<std::uint32_t>::max()) {
    return poll_frames<false>(handler, limit, 0);
  }

  // poll() for a reader that follows frames written a while ago (no longer in any cache
  // near it), such as the broker's abandoned-claim watcher: it also asks for the line
  // `ahead` bytes past each frame, so that the next frames' misses overlap. Not for a reader
  // that keeps up with its producers: it would pull lines they are still writing.
  template <class Handler>
  PollResult poll_prefetching(Handler&& handler, std::uint32_t limit, std::uint32_t ahead) {
    return poll_frames<true>(handler, limit, ahead);
  }

 private:
  template <bool kPrefetch, class Handler>
  PollResult poll_frames(Handler& handler, std::uint32_t limit, std::uint32_t ahead) {
    PollResult result;
    while (result.records < limit) {
      // Past the mapping's end a prefetch is dropped, not a fault.
      if constexpr (kPrefetch) __builtin_prefetch(data_ + pos_ + ahead);
      const FrameHeader* frame = reinterpret_cast<const FrameHeader*>(data_ + pos_);
      // Acquire: pairs with the producer's release of the commit word (LogAppender::publish).
      std::uint64_t word = frame->commit.load(std::memory_order_acquire);
      std::int32_t length = commit_length(word);
      if (commit_seq(word) != seq_ || length <= 0) {
        if (result.records == 0) result.outcome = on_not_ready();
        return result;
      }
      auto len = static_cast<std::uint32_t>(length);
      std::uint64_t next = pos_ + align_frame(len);
      if (len < kFrameHeaderBytes || next > capacity_) [[unlikely]] {
        result.outcome = on_corrupt(FrameProblem::kBadLength);
        return result;
      }
      std::uint8_t type = frame->type;
      if (type == kFrameData) [[likely]] {
        if (frame->offset < skip_below_) [[unlikely]] {
          pos_ = next;  // below a lazy seek's target: committed after the seek, not wanted
          continue;
        }
        if (options_.verify_crc && frame_crc(frame, len) != frame->crc32c) [[unlikely]] {
          result.outcome = on_corrupt(FrameProblem::kBadCrc);
          return result;
        }
        if (!RecordView::decode(frame, len, view_)) [[unlikely]] {
          result.outcome = on_corrupt(FrameProblem::kBadBody);
          return result;
        }
        pos_ = next;
        next_offset_ = view_.offset + 1;
        ++result.records;
        handler(static_cast<const RecordView&>(view_));
      } else if (type == kFramePad) {
        pos_ = next;
      } else if (type == kFrameEnd) {
        if (ReadOutcome o = leave_segment(frame->offset); o != ReadOutcome::kOk) {
          if (result.records == 0) result.outcome = o;
          return result;
        }
      } else {
        result.outcome = on_corrupt(FrameProblem::kBadType);
        return result;
      }
    }
    return result;
  }

 public:
  // True when a frame is committed at the read position (poll will make progress; after a
  // lazy seek that progress may be skipping records below the target).
  bool ready() const {
    std::uint64_t word =
        reinterpret_cast<const FrameHeader*>(data_ + pos_)->commit.load(std::memory_order_acquire);
    return commit_seq(word) == seq_ && commit_length(word) > 0;
  }

  // Waits until ready() or the timeout (< 0: none). Returns ready().
  bool wait(WaitStrategy strategy, std::int64_t timeout_ns);
  // Parks until any of `readers` is ready() or the timeout (< 0: none), on all their
  // partitions' futexes at once (futex_waitv), as kBlock does on one. Returns whether one is
  // ready, or its segment was removed (its next poll reports kOutOfRange). Where the kernel
  // has no futex_waitv, or past kMaxWaitAnyWords readers, it sleeps at most 1 ms at a time.
  // No readers: false at once.
  static bool wait_any(std::span<LogReader* const> readers, std::int64_t timeout_ns);

  // Positions at the first record with offset >= `offset`. kOutOfRange if it is before the
  // earliest retained record or after the log end offset (the next offset reserved). An
  // offset reserved by a claim not committed yet, or after one, is not out of range: the
  // reader waits at the first uncommitted claim on the way, position() reports `offset`, and
  // poll() skips what commits below it, so the first record delivered is the first one with
  // offset >= `offset` (later, once the claims before it commit or are padded).
  Status seek(std::int64_t offset);
  // Positions at the first record whose timestamp is >= ns (at the end if none). Exact when
  // timestamps do not decrease along the partition (they are taken at append); otherwise it
  // is the first such record after the sparse index point found for ns.
  Status seek_to_timestamp(std::int64_t ns);
  Status seek_to_beginning();
  // Positions after the last committed record found walking from the last confirmed index
  // slot of the active segment: cheap (a binary search of the index up to the tail, then a
  // walk of the frames after that slot, about one index interval), but claims before that
  // slot may still be uncommitted: records below position() may still commit after it.
  Status seek_to_end();

  // The offset of the next record poll() would deliver, or the seek target.
  std::int64_t position() const { return next_offset_; }
  // What went wrong on the last kCorrupt or kOutOfRange.
  const Status& error() const { return error_; }
  // After kCorrupt: skips the bad frame (or the rest of its segment if its length is bad).
  Status skip_corrupt();

  // Looks now (not after many empty polls) for a claim abandoned at the read position, and
  // pads it once it has been stuck for the log's abandon timeout. For the broker's watcher.
  void check_abandoned() { check_stall(); }
  // False once retention removed or recycled the segment the reader is in.
  bool segment_current() const { return segment_->still_current(); }

  PartitionLog& log() const { return *log_; }

 private:
  LogReader() = default;

  ReadOutcome on_not_ready();
  ReadOutcome on_corrupt(FrameProblem problem);
  // Into the segment at next_base, the END frame's (the seeks' walks use it).
  ReadOutcome follow_end(std::int64_t next_base);
  // poll's way out of a segment at its END frame: follow_end, unless the next segment starts
  // below the log start (kOutOfRange: records were deleted under the reader).
  ReadOutcome leave_segment(std::int64_t next_base);
  void check_stall();
  bool block_until_ready(std::int64_t deadline_ns);
  // After a park: true if ready, or if the segment is gone (the next poll reports it).
  bool ready_after_park();
  Status enter_segment(std::shared_ptr<Segment> seg, std::uint64_t position);
  // Walks frames from pos_ until a data frame whose offset >= target, or the committed end.
  Status walk_to_offset(std::int64_t target);
  // Positions (pos_, next_offset_) at the last confirmed index slot of the current segment
  // that names a record with offset <= target, or at the segment start.
  void start_from_index(std::int64_t target);
  bool slot_confirmed(std::uint32_t k, std::int64_t target) const;

  std::shared_ptr<PartitionLog> log_;
  std::shared_ptr<Segment> segment_;
  ReaderOptions options_;
  const std::byte* data_ = nullptr;
  std::uint64_t pos_ = 0;
  std::uint64_t capacity_ = 0;
  std::uint32_t seq_ = 0;
  std::int64_t next_offset_ = 0;
  // After a lazy seek: data frames with a lower offset are skipped, not delivered. The
  // smallest value (no skip) otherwise; offsets only grow, so it needs no clearing once met.
  std::int64_t skip_below_ = kNoSkip;
  static constexpr std::int64_t kNoSkip = std::numeric_limits<std::int64_t>::min();
  RecordView view_;
  Status error_;

  std::uint32_t empty_polls_ = 0;
  std::uint32_t parked_streak_ = 0;  // kAdaptive: consecutive waits that outlasted spin_ns
  std::int64_t stall_since_ = 0;
  std::uint64_t stall_pos_ = 0;
  std::uint64_t stall_tail_ = 0;
};

}  // namespace sluice::shm
