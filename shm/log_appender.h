// LogAppender: appends records to a partition log, lock-free, from any number of threads in
// any number of processes (each thread uses its own LogAppender).
//
// An append is one fetch_add on the segment's tail word, which reserves the record's offset
// and its bytes at once (log_format.h, "Tail word"); the producer then writes the frame in
// place and publishes it with a release store of its commit word. No lock, no system call,
// unless a reader is parked on the futex.
//
//   claim(n) -> Claim (writable value span, offset) -> commit(claim) | abort(claim)
//   append(key, value, headers) -> offset
//   claim_batch(count, n) -> BatchClaim (count frames, one fetch_add) -> commit(batch)
//   append_batch(records) -> first offset (records of any shape, one fetch_add, consecutive)
//
// Thread-safety: one LogAppender per thread. Claims must be committed or aborted by the
// thread that made them, before its next claim.
#pragma once

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <memory>
#include <optional>
#include <span>
#include <string_view>

#include "shm/clock.h"
#include "shm/frame_check.h"
#include "shm/futex.h"
#include "shm/partition_log.h"
#include "shm/record.h"
#include "shm/tsc_clock.h"

namespace sluice::shm {

// Outcome of a hot-path append: a value, never an exception.
enum class AppendOutcome : std::uint8_t {
  kOk,
  kRecordTooLarge,  // the frame would not fit in an empty segment
  kRollFailed,      // the next segment could not be created (disk full, permission...)
  kReadOnly,        // the log was opened read-only
  kBackPressured,   // the log may not grow until a slow consumer group catches up
  kClosed,          // the partition was closed (PartitionLog::close: its topic was deleted)
};
const char* describe(AppendOutcome outcome) noexcept;

// How record timestamps are taken when the producer gives none.
enum class TimestampMode : std::uint8_t {
  kWallClock,  // CLOCK_REALTIME per record, from the TSC where it can be (shm/tsc_clock.h)
  kCoarse,     // CLOCK_REALTIME_COARSE: the kernel tick (1-4 ms resolution), cheaper
  kPerBatch,   // one clock read per claim_batch, shared by its records
};

struct AppenderOptions {
  TimestampMode timestamp_mode = TimestampMode::kWallClock;
};

// A reserved frame. Fill value() then commit, or abort.
class Claim {
 public:
  std::span<std::byte> value() const { return {value_, value_size_}; }
  std::int64_t offset() const { return offset_; }
  bool valid() const { return frame_ != nullptr; }

 private:
  friend class LogAppender;
  FrameHeader* frame_ = nullptr;
  std::byte* value_ = nullptr;
  std::uint32_t value_size_ = 0;
  std::uint32_t length_ = 0;
  std::uint32_t seq_ = 0;
  std::int64_t offset_ = -1;
};

// `count` frames of `value_size` bytes each, reserved with one fetch_add, with consecutive
// offsets first_offset() ... first_offset() + count - 1.
class BatchClaim {
 public:
  std::span<std::byte> value(std::uint32_t i) const {
    return {reinterpret_cast<std::byte*>(first_) + std::size_t{i} * stride_ + kFrameHeaderBytes,
            value_size_};
  }
  std::uint32_t count() const { return count_; }
  std::int64_t first_offset() const { return first_offset_; }

 private:
  friend class LogAppender;
  FrameHeader* first_ = nullptr;
  std::uint32_t count_ = 0;
  std::uint32_t value_size_ = 0;
  std::uint32_t stride_ = 0;
  std::uint32_t seq_ = 0;
  std::int64_t first_offset_ = -1;
};

struct AppendResult {
  AppendOutcome outcome;
  std::int64_t offset;  // valid when outcome == kOk
};

// One record of an append_batch: its key, headers and timestamp, and its value.
struct BatchRecord {
  RecordMeta meta;
  std::string_view value;
};

// How far ahead of its copy append_batch asks for the batch's lines (prefetch for writing).
// A broker's many partitions write segments whose lines are long out of the caches; without
// this each frame waited for its lines in turn. `log_bench` ProducerOnly/append_batch100,
// 100 B values, segments of 64 MiB x 4 (2026-11-26, medians of 3 repetitions): 28-31 M
// records/s without, 42-43 M/s 1 KiB ahead, 46 M/s 2 KiB ahead, 41 M/s 4 KiB ahead.
inline constexpr std::uint64_t kBatchPrefetchBytes = 2048;
// ... only when the batch's frames average at most this. With 1 KiB values and a consumer on
// the other CPU reading right behind the producer (Throughput/append_batch100, segments in
// the caches), the prefetch cost the pair 7% at 512 B ahead, 22% at 1 KiB and 50% at 2 KiB
// (from 6.2 GB/s without), where with 100 B values it gained 40% at any of those distances
// (2.6 -> 3.6 GB/s). Long frames are long sequential copies, which the hardware's own
// prefetcher follows.
inline constexpr std::uint64_t kBatchPrefetchMaxFrame = 512;
// append() of a value of this many bytes or more (up to kSourcePrefetchMaxBytes) asks for all
// of the value's lines before its checksum reads them. The checksum comes from the source
// (write_copied), and where the source is a record another CPU has just written (a consumer
// forwarding what it read, as the ping-pong's echo does) the checksum's loads otherwise meet
// those lines' misses a few at a time. `peer_sluice --size N --rounds 50000 --only lat`
// (AMD EPYC, 2026-11-26, alternated with the build before): 1 KiB p50 310-320 ns against
// 330-335 with the vCPUs near, 806 against 851 far; 512 B 185-195 against 200 near. append()
// throughput at 1 KiB did not move beyond the noise. docs/benchmarks.md, "The latency floor
// of a log", has the runs and the two orders tried that cut more latency but cost throughput.
inline constexpr std::size_t kSourcePrefetchMinBytes = 512;
// ... and no more: past the L1 cache the lines would push each other out before use.
inline constexpr std::size_t kSourcePrefetchMaxBytes = 4096;
// The page size prefetch_if_next_page assumes (x86-64's smallest).
inline constexpr std::uint64_t kPageBytes = 4096;

class LogAppender {
 public:
  static Result<LogAppender> open(std::shared_ptr<PartitionLog> log,
                                  const AppenderOptions& options = {});

  // Reserves a frame for a value of value_size bytes (plus the key and headers given, which
  // are copied in now). timestamp_ns < 0: taken per the timestamp mode.
  AppendOutcome claim(std::uint32_t value_size, Claim& out, const RecordMeta& meta = {}) {
    std::uint64_t body = meta.encoded_prefix_bytes();
    std::uint64_t length = kFrameHeaderBytes + body + value_size;
    if (length > max_frame_) return AppendOutcome::kRecordTooLarge;
    std::uint64_t frame_bytes = align_frame(length);
    std::uint64_t position;
    std::int64_t offset;
    if (AppendOutcome o = reserve(frame_bytes, 1, position, offset); o != AppendOutcome::kOk)
      return o;
    auto* frame = segment_->frame_at(position);
    std::int64_t ts = meta.timestamp_ns >= 0 ? meta.timestamp_ns : now();
    write_header(frame, offset, ts, meta.flags());
    note_index(position, frame_bytes, offset, 1, ts);
    auto* body_ptr = reinterpret_cast<std::byte*>(frame) + kFrameHeaderBytes;
    meta.encode_prefix(body_ptr);
    out.frame_ = frame;
    out.value_ = body_ptr + body;
    out.value_size_ = value_size;
    out.length_ = static_cast<std::uint32_t>(length);
    out.seq_ = seq_;
    out.offset_ = offset;
    return AppendOutcome::kOk;
  }

  // Publishes a claimed frame: checksum, then the commit word with release.
  void commit(Claim& claim) {
    publish(claim.frame_, claim.length_, claim.seq_);
    claim.frame_ = nullptr;
    wake_readers_if_waiting();
  }

  // Gives a claimed frame up: it becomes padding and its offset stays unused.
  void abort(Claim& claim) {
    FrameHeader* f = claim.frame_;
    f->type = kFramePad;
    f->offset = -1;
    publish(f, claim.length_, claim.seq_);
    claim.frame_ = nullptr;
    wake_readers_if_waiting();
  }

  // Copies a whole record in. The value may be null (a tombstone) via RecordMeta::null_value.
  // The key, headers and value must not change during the call: the frame's bytes and its
  // CRC are both taken from them (as for append_batch).
  AppendResult append(std::string_view value, const RecordMeta& meta = {}) {
    std::uint64_t length = kFrameHeaderBytes + meta.encoded_prefix_bytes() + value.size();
    if (length > max_frame_) return {AppendOutcome::kRecordTooLarge, -1};
    std::uint64_t frame_bytes = align_frame(length);
    std::uint64_t position;
    std::int64_t offset;
    if (AppendOutcome o = reserve(frame_bytes, 1, position, offset); o != AppendOutcome::kOk)
      return {o, -1};
    std::int64_t ts = meta.timestamp_ns >= 0 ? meta.timestamp_ns : now();
    note_index(position, frame_bytes, offset, 1, ts);
    write_copied(position, length, offset, ts, meta, value);
    prefetch_if_next_page(position + frame_bytes, frame_bytes);
    wake_readers_if_waiting();
    return {AppendOutcome::kOk, offset};
  }

  // The fastest path: one reservation for `count` records of value_size bytes with no key or
  // headers. Records share one timestamp under TimestampMode::kPerBatch.
  AppendOutcome claim_batch(std::uint32_t count, std::uint32_t value_size, BatchClaim& out) {
    std::uint64_t length = kFrameHeaderBytes + std::uint64_t{value_size};
    std::uint64_t stride = align_frame(length);
    if (count == 0 || stride * count > max_frame_) return AppendOutcome::kRecordTooLarge;
    std::uint64_t position;
    std::int64_t offset;
    if (AppendOutcome o = reserve(stride * count, count, position, offset); o != AppendOutcome::kOk)
      return o;
    auto* first = segment_->frame_at(position);
    bool per_batch = options_.timestamp_mode == TimestampMode::kPerBatch;
    std::int64_t ts = now();
    for (std::uint32_t i = 0; i < count; ++i) {
      auto* f = reinterpret_cast<FrameHeader*>(reinterpret_cast<std::byte*>(first) + i * stride);
      if (!per_batch && i != 0) ts = now();
      write_header(f, offset + i, ts, 0);
    }
    note_index(position, stride * count, offset, count, ts);
    out.first_ = first;
    out.count_ = count;
    out.value_size_ = value_size;
    out.stride_ = static_cast<std::uint32_t>(stride);
    out.seq_ = seq_;
    out.first_offset_ = offset;
    return AppendOutcome::kOk;
  }

  // Publishes every frame of the batch. Their checksums run back to back: CrcPath::kBulk.
  void commit(BatchClaim& batch) {
    std::uint32_t length = kFrameHeaderBytes + batch.value_size_;
    for (std::uint32_t i = 0; i < batch.count_; ++i) {
      auto* f = reinterpret_cast<FrameHeader*>(reinterpret_cast<std::byte*>(batch.first_) +
                                               std::size_t{i} * batch.stride_);
      publish(f, length, batch.seq_, frame_crc<CrcPath::kBulk>(f, length));
    }
    batch.first_ = nullptr;
    wake_readers_if_waiting();
  }

  // Copies `records` in with one reservation, so that they get consecutive offsets
  // (result.offset ... + records.size() - 1) in their order, whatever other producers do:
  // a Kafka producer batch keeps its base offset + offset delta addressing. The whole batch
  // must fit in one empty segment (kRecordTooLarge otherwise). One pass: before each frame
  // is published, the rest of the batch after it is marked claimed as one range, so that a
  // producer dying half-way leaves the records it published and one claim the unblocker pads.
  AppendResult append_batch(std::span<const BatchRecord> records) {
    if (records.empty()) return {AppendOutcome::kRecordTooLarge, -1};
    std::uint64_t total = 0;
    for (const BatchRecord& r : records)
      total += align_frame(kFrameHeaderBytes + r.meta.encoded_prefix_bytes() + r.value.size());
    if (total > max_frame_) return {AppendOutcome::kRecordTooLarge, -1};
    std::uint64_t position;
    std::int64_t offset;
    if (AppendOutcome o =
            reserve(total, static_cast<std::uint32_t>(records.size()), position, offset);
        o != AppendOutcome::kOk)
      return {o, -1};
    const std::uint64_t end = position + total;
    std::int64_t batch_ts = -1;
    std::uint64_t pos = position;
    std::int64_t next = offset;
    // Asks for the batch's lines ahead of the copy, in write mode, kBatchPrefetchBytes ahead
    // and never past the reservation (lines beyond it are other producers' or a reader's);
    // only for batches of small frames (see kBatchPrefetchMaxFrame).
    std::uint64_t fetched = position & ~std::uint64_t{kCacheLine - 1};
    const std::uint64_t prefetch_end =
        total <= records.size() * kBatchPrefetchMaxFrame ? end : fetched;
    for (const BatchRecord& r : records) {
      std::uint64_t length = kFrameHeaderBytes + r.meta.encoded_prefix_bytes() + r.value.size();
      std::uint64_t frame_bytes = align_frame(length);
      for (std::uint64_t upto = std::min(prefetch_end, pos + kBatchPrefetchBytes); fetched < upto;
           fetched += kCacheLine)
        __builtin_prefetch(segment_->frame_at(fetched), 1);
      std::int64_t ts = r.meta.timestamp_ns;
      if (ts < 0) ts = batch_ts >= 0 ? batch_ts : (batch_ts = now());
      note_index(pos, frame_bytes, next, 1, ts);
      // The rest of the batch is claimed before this frame is published (its release store
      // orders the claim before it), so a producer dying after any frame leaves one claim
      // the unblocker pads whole, like the one reserve() left over the whole batch.
      if (pos + frame_bytes != end) mark_claimed(pos + frame_bytes, end - pos - frame_bytes);
      write_copied<CrcPath::kBulk>(pos, length, next, ts, r.meta, r.value);
      pos += frame_bytes;
      ++next;
    }
    wake_readers_if_waiting();
    return {AppendOutcome::kOk, offset};
  }

  // Largest value (without key or headers) a single record may carry.
  std::uint64_t max_value_bytes() const { return max_frame_ - kFrameHeaderBytes; }
  PartitionLog& log() const { return *log_; }
  // Why the last kRollFailed happened (names the file and the cause).
  const Status& last_error() const { return last_error_; }

 private:
  LogAppender() = default;

  std::int64_t now() {
    return options_.timestamp_mode == TimestampMode::kCoarse ? coarse_wall_clock_ns()
                                                             : clock_.now();
  }

  // One fetch_add reserves `records` offsets and `bytes` bytes. Falls to the cold path when
  // the reservation crosses the segment end (roll), or lands in a segment that was rolled or
  // retired since this appender last looked (its tail is past the end then, too). Our
  // segment handle pins the file, so it is never reused as another segment under us.
  AppendOutcome reserve(std::uint64_t bytes, std::uint32_t records, std::uint64_t& position,
                        std::int64_t& offset) {
    if (held_back_) [[unlikely]] {
      // The last roll was refused: retry it without reserving more of the full segment.
      if (AppendOutcome o = retry_held_roll(); o != AppendOutcome::kOk) return o;
    }
    for (;;) {
      // acq_rel: the acquire half pairs with the roller's release store of the tail when it
      // opens a segment (PartitionLog::take_spare_or_create), so a reservation that lands in
      // a fresh segment sees that segment's seq and base; the RMW itself makes reservations
      // unique.
      std::uint64_t old =
          tail_->fetch_add(records * kTailCountOne + bytes, std::memory_order_acq_rel);
      std::uint64_t pos = tail_position(old);
      if (pos + bytes <= usable_) [[likely]] {
        position = pos;
        offset = base_ + static_cast<std::int64_t>(tail_count(old));
        mark_claimed(pos, bytes);
        return AppendOutcome::kOk;
      }
      if (AppendOutcome o = reserve_slow(old); o != AppendOutcome::kOk) return o;
    }
  }

  // Marks a reserved range claimed (negative length) so that a reader or the broker can pad
  // it exactly if this producer dies before committing. Relaxed: only the unblocker reads
  // it, after its timeout; the commit's release store replaces it.
  void mark_claimed(std::uint64_t pos, std::uint64_t bytes) {
    segment_->frame_at(pos)->commit.store(make_commit_word(-static_cast<std::int32_t>(bytes), seq_),
                                          std::memory_order_relaxed);
  }

  // The reservation `old_tail` did not fit the segment: rolls, waits for a roll, or moves
  // on from a retired segment. kOk means "reserve again".
  AppendOutcome reserve_slow(std::uint64_t old_tail);
  AppendOutcome retry_held_roll();

  static void write_header(FrameHeader* f, std::int64_t offset, std::int64_t timestamp,
                           std::uint8_t flags) {
    f->offset = offset;
    f->timestamp_ns = timestamp;
    f->type = kFrameData;
    f->flags = flags;
    f->reserved = 0;
  }

  static void publish(FrameHeader* f, std::uint32_t length, std::uint32_t seq) {
    publish(f, length, seq, frame_crc(f, length));
  }
  static void publish(FrameHeader* f, std::uint32_t length, std::uint32_t seq, std::uint32_t crc) {
    f->crc32c = crc;
    // Release: publishes the frame's bytes; paired with the reader's acquire of the commit
    // word (check_frame, LogReader::poll).
    f->commit.store(make_commit_word(static_cast<std::int32_t>(length), seq),
                    std::memory_order_release);
  }

  // Writes and publishes a DATA frame of `length` bytes at `pos` (reserved and claimed) with
  // the given record. Its checksum comes from the sources, not from the mapping: the frame's
  // lines may still be on their way from memory (a recycled segment's are long out of the
  // caches), and a load from them waits for that where the stores need not.
  // The checksum is computed before the first store into the frame: the stores then run back
  // to back up to the commit, which keeps short the time in which a reader spinning on the
  // frame's line can take it away between them. (Computed after them, it had to wait for
  // them, as the sources might alias the mapping: `log_bench` Latency/processes/append/
  // value:32B/wait:spin p99 was 320-345 ns, against 220-250 ns with the CRC read back from
  // the frame; computed first, 250-275 ns.)
  template <CrcPath kPath = CrcPath::kLatency>
  void write_copied(std::uint64_t pos, std::uint64_t length, std::int64_t offset, std::int64_t ts,
                    const RecordMeta& meta, std::string_view value) {
    const std::uint8_t flags = meta.flags();
    if constexpr (kPath == CrcPath::kLatency) {
      if (value.size() >= kSourcePrefetchMinBytes && value.size() <= kSourcePrefetchMaxBytes)
        for (std::size_t i = 0; i < value.size(); i += kCacheLine)
          __builtin_prefetch(value.data() + i, 0, 3);
    }
    const std::uint32_t crc = copied_frame_crc<kPath>(offset, ts, flags, meta, value);
    FrameHeader* frame = segment_->frame_at(pos);
    write_header(frame, offset, ts, flags);
    auto* body = reinterpret_cast<std::byte*>(frame) + kFrameHeaderBytes;
    meta.encode_prefix(body);
    if (!value.empty())
      std::memcpy(body + (length - kFrameHeaderBytes - value.size()), value.data(), value.size());
    publish(frame, static_cast<std::uint32_t>(length), seq_, crc);
  }

  // frame_crc of the DATA frame write_copied writes: bytes 8..24 (offset, timestamp), 28..32
  // (type, flags, reserved), then the body.
  template <CrcPath kPath>
  static std::uint32_t copied_frame_crc(std::int64_t offset, std::int64_t ts, std::uint8_t flags,
                                        const RecordMeta& meta, std::string_view value) {
    const std::int64_t offset_and_ts[2] = {offset, ts};
    std::uint32_t crc = crc32c(offset_and_ts, sizeof offset_and_ts);
    const std::uint8_t type_flags_reserved[4] = {kFrameData, flags, 0, 0};
    crc = crc32c_extend(crc, type_flags_reserved, sizeof type_flags_reserved);
    if (meta.key || !meta.headers.empty())
      meta.for_each_prefix_piece([&crc](const void* data, std::size_t size) {
        crc = crc32c_extend<kPath>(crc, data, size);
      });
    return crc32c_extend<kPath>(crc, value.data(), value.size());
  }

  // When the next frame starts in a page this one did not start in, asks for its first line
  // now. The first frame of each 4 KiB page (the data region starts on a page)
  // was the tail of append()'s latency: in the 32 B ping-pong (`peer_sluice --size 32 --only
  // lat`, 64-byte frames) 478 of the 501 round trips at or above p99 were those of every 64th
  // frame. Asked for here, after our commit, that line and its page's translation are ready
  // when the next append writes there: p99 183-275 ns against 358-361 without, p50 150-159
  // against 151, one binary with the prefetch switched on and off at run time, three runs
  // each (this build: p99 179-185 ns, p99.9 275-278). The same switch showed no throughput
  // change beyond noise (`log_bench` append shapes, 32 B and 1 KiB, alone and with a
  // consumer; 2026-11-26).
  // (An asm statement: GCC 12 drops a __builtin_prefetch under this condition.)
  void prefetch_if_next_page(std::uint64_t next, std::uint64_t frame_bytes) {
    if ((next & (kPageBytes - 1)) < frame_bytes && next < usable_)
      asm volatile("prefetcht0 %0"
                   :
                   : "m"(*reinterpret_cast<const char*>(segment_->frame_at(next))));
  }

  void wake_readers_if_waiting() {
    light_barrier();  // pairs with the waiter's heavy_barrier (futex.h)
    // Relaxed: the barrier pair above orders this load after our commit store.
    if (waiters_->load(std::memory_order_relaxed) != 0) [[unlikely]]
      wake_readers();
  }
  void wake_readers();

  // Fills the sparse index slots whose boundary falls inside this reservation: the frame
  // that follows starts at or after the boundary.
  void note_index(std::uint64_t pos, std::uint64_t bytes, std::int64_t first_offset,
                  std::uint32_t records, std::int64_t timestamp) {
    if ((pos >> index_shift_) == ((pos + bytes) >> index_shift_) && pos != 0) [[likely]]
      return;
    note_index_slow(pos, bytes, first_offset, records, timestamp);
  }
  void note_index_slow(std::uint64_t pos, std::uint64_t bytes, std::int64_t first_offset,
                       std::uint32_t records, std::int64_t timestamp);

  Status switch_to(std::shared_ptr<Segment> seg);

  std::shared_ptr<PartitionLog> log_;
  std::shared_ptr<Segment> segment_;
  AppenderOptions options_;
  TscWallClock clock_;  // CLOCK_REALTIME from the TSC: shm/tsc_clock.h
  std::atomic<std::uint64_t>* tail_ = nullptr;
  std::atomic<std::uint32_t>* seq_word_ = nullptr;
  std::atomic<std::uint32_t>* waiters_ = nullptr;
  std::int64_t base_ = 0;
  std::uint64_t usable_ = 0;
  std::uint64_t max_frame_ = 0;
  std::uint32_t seq_ = 0;
  unsigned index_shift_ = 12;
  bool held_back_ = false;  // a roll was refused by the log's roll gate
  Status last_error_;
};

}  // namespace sluice::shm
