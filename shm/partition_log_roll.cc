#include "shm/partition_log.h"

#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <thread>

#include "shm/clock.h"
#include "shm/frame_check.h"
#include "shm/orphaned_files.h"
#include "shm/partition_log_files.h"

namespace sluice::shm {

namespace {

using partition_files::kControlName;
using partition_files::kSpareName;
using partition_files::ScopedFd;
using partition_files::unique_suffix;

}  // namespace

// ---- rolling --------------------------------------------------------------------------------

bool PartitionLog::lock_roll() {
  auto self = static_cast<std::uint32_t>(::getpid());
  std::uint32_t owner = 0;
  // acq_rel: acquire pairs with the previous owner's release in unlock_roll, so its writes
  // (the published segment) are visible to us.
  if (control_->roll_owner.value.compare_exchange_strong(owner, self, std::memory_order_acq_rel))
    return true;
  if (owner != 0 && owner != self && process_gone(owner)) {
    // The roller died holding the lock: take it over.
    return control_->roll_owner.value.compare_exchange_strong(owner, self,
                                                              std::memory_order_acq_rel);
  }
  return false;
}

bool PartitionLog::roll_in_progress() const {
  // Relaxed: a hint that picks between waiting and retrying; both re-check under the lock.
  return control_->roll_owner.value.load(std::memory_order_relaxed) != 0;
}

void PartitionLog::unlock_roll() {
  // Release: publishes what we did under the lock to the next owner.
  control_->roll_owner.value.store(0, std::memory_order_release);
}

Status PartitionLog::create_spare_file(const std::string& final_path) {
  std::uint64_t capacity = segment_capacity();
  std::uint32_t interval = control_->index_interval;
  std::string tmp = path_of("new-" + unique_suffix() + ".tmp");
  std::uint64_t size = Segment::header_bytes_for(capacity, interval) + capacity;
  // New segments take the mode the partition was created with (the broker's --mode).
  struct stat ctl {};
  mode_t mode = ::stat(path_of(kControlName).c_str(), &ctl) == 0 ? (ctl.st_mode & 07777) : 0660;
  if (Status s = create_file(tmp, size, mode); !s) return s;
  auto file = MappedFile::open(tmp, Access::kReadWrite);
  if (!file) {
    (void)remove_file(tmp);
    return file.status();
  }
  Segment::format(*file, capacity, interval);
  // Never over an existing final_path, so two preparers never replace each other's spare.
  Status s = move_file_noreplace(tmp, final_path);
  if (!s) (void)remove_file(tmp);
  return s;
}

Result<std::shared_ptr<Segment>> PartitionLog::take_spare_or_create(std::int64_t base,
                                                                    std::uint32_t seq) {
  // The file that becomes the new segment, under a private name until it is ready.
  std::string source = path_of("rolling-" + unique_suffix() + ".tmp");
  ScopedFd fd;
  std::shared_ptr<MappedFile> file;
  // Take the prepared spare by renaming it (atomic: one taker wins).
  std::string spare = path_of(kSpareName);
  bool taken = ::rename(spare.c_str(), source.c_str()) == 0;
  if (!taken && errno != ENOENT) return errno_status("rename " + spare, errno);
  if (!taken && options_.recycle_segments && options_.retain_segments > 0) {
    // No spare, recycling with a full pool: the oldest segment becomes the new one in place.
    // Readers still on it see its seq change and get out-of-range.
    auto bases = segment_bases();
    std::int64_t active = control_->active.active_base.load(std::memory_order_acquire);
    if (bases && bases->size() >= options_.retain_segments && bases->front() < active) {
      // Claim the oldest file by renaming it to our private name first: retention in another
      // process (prepare_next) may be taking the same file; whoever renames it first has it.
      std::string oldest = path_of(segment_file_name(bases->front()));
      if (::rename(oldest.c_str(), source.c_str()) == 0) {
        auto mapped = open_cached(source, *fd.out());
        if (mapped && retire_for_reuse(**mapped, fd.get())) {
          taken = true;
          file = std::move(mapped).value();
        } else {
          // A reader (or an idle producer) still has it open: delete it and make a new file.
          // Unlinking is safe for the process still on it.
          fd.close();
          (void)remove_file(source);
        }
      }
    }
  }
  // Without either, create the file on this cold path.
  if (!taken)
    if (Status s = create_spare_file(source); !s) return s;
  if (!file) {
    auto mapped = open_cached(source, *fd.out());
    if (!mapped) return mapped.status();
    file = std::move(mapped).value();
  }
  std::uint64_t capacity = segment_capacity();
  if (!sized_for_partition(*file)) {
    // A file of another size (the topic's segment size was altered): drop it, use a new one.
    fd.close();
    (void)remove_file(source);
    if (Status s = create_spare_file(source); !s) return s;
    auto mapped = open_cached(source, *fd.out());
    if (!mapped) return mapped.status();
    file = std::move(mapped).value();
  }
  // Format first retires whatever the file held (seq 0, tail closed: see Segment::format).
  Segment::format(*file, capacity, control_->index_interval);
  auto* h = reinterpret_cast<SegmentHeader*>(file->data());
  h->base_offset = base;
  // Release: a process that finds the file under its new name and acquires the seq
  // (Segment::attach) sees the formatted header and base offset above.
  h->tail_line.seq.store(seq, std::memory_order_release);
  // Release: opens the tail. A producer whose fetch_add reads this value (or a later one)
  // acquires it and so sees the base offset and seq above (LogAppender::reserve).
  h->tail_line.tail.store(0, std::memory_order_release);
  std::string final_path = path_of(segment_file_name(base));
  if (Status s = rename_file(source, final_path); !s) return s;
  // Attach through the descriptor we hold (the file is ours until published): no second open.
  return attach_segment(base, std::move(file), final_path, fd.get());
}

Status PartitionLog::publish_roll(Segment& full, std::uint64_t end_position,
                                  std::int64_t next_base) {
  std::uint32_t seq = control_->active.next_seq.fetch_add(1, std::memory_order_relaxed);
  if (seq == 0) seq = control_->active.next_seq.fetch_add(1, std::memory_order_relaxed);
  auto next = take_spare_or_create(next_base, seq);
  if (!next) return next.status().with_context("rolling " + full.path());

  // Seal words first (for recovery and tools), then publish the new segment to producers,
  // then the END frame to readers. Release on each: a reader that acquires the END frame
  // sees the next segment's file and header complete.
  full.header()->seal_line.next_base.store(next_base, std::memory_order_relaxed);
  full.header()->seal_line.end_position.store(end_position, std::memory_order_release);
  control_->active.active_base.store(next_base, std::memory_order_release);

  FrameHeader* end = full.frame_at(end_position);
  end->offset = next_base;
  end->timestamp_ns = wall_clock_ns();
  end->type = kFrameEnd;
  end->flags = 0;
  end->reserved = 0;
  end->crc32c = frame_crc(end, kFrameHeaderBytes);
  end->commit.store(make_commit_word(static_cast<std::int32_t>(kFrameHeaderBytes), full.seq()),
                    std::memory_order_release);
  return Status::ok();
}

Status PartitionLog::roll(Segment& full, std::uint64_t end_position, std::uint64_t record_count) {
  std::int64_t next_base = full.base_offset() + static_cast<std::int64_t>(record_count);
  std::int64_t deadline = monotonic_ns() + options_.abandon_timeout_ns;
  while (!lock_roll()) {
    if (control_->active.active_base.load(std::memory_order_acquire) != full.base_offset())
      return Status::ok();  // someone finished it for us
    if (monotonic_ns() > deadline)
      return Status(ErrorCode::kTimedOut, dir_ + ": roll lock held by pid " +
                                              std::to_string(control_->roll_owner.value.load()));
    std::this_thread::yield();
  }
  Status s = Status::ok();
  if (control_->active.active_base.load(std::memory_order_acquire) == full.base_offset()) {
    SegmentSealLine& seal = full.header()->seal_line;
    // Record where the segment ends first: if the roll is refused (backpressure) or this
    // process dies, whoever rolls later uses the same end and base. Acquire/release: the
    // roll lock orders rollers; the release publishes next_base with end_position.
    if (seal.next_base.load(std::memory_order_acquire) < 0) {
      seal.end_position.store(end_position, std::memory_order_relaxed);
      seal.next_base.store(next_base, std::memory_order_release);
    }
    end_position = seal.end_position.load(std::memory_order_relaxed);
    next_base = seal.next_base.load(std::memory_order_relaxed);
    if (closed()) {
      s = closed_status();
    } else if (options_.roll_gate && !options_.roll_gate(*this)) {
      s = Status(ErrorCode::kBackPressured,
                 dir_ + ": a consumer group has not yet read what retention would delete");
    } else {
      s = publish_roll(full, end_position, next_base);
    }
  }
  unlock_roll();
  return s;
}

bool PartitionLog::closed() const {
  // Acquire: pairs with close()'s store; a roller that sees the mark refuses to roll.
  return (std::atomic_ref<std::uint32_t>(control_->flags).load(std::memory_order_acquire) &
          kControlClosed) != 0;
}

Status PartitionLog::closed_status() const {
  return Status(ErrorCode::kNotFound, dir_ + ": the partition was closed (its topic was deleted)");
}

Status PartitionLog::close() {
  if (!writable()) return Status(ErrorCode::kPermissionDenied, dir_ + ": opened read-only");
  // seq_cst: the mark must be visible to any roller that takes the roll lock after our
  // overflowing reservation below, whichever process it runs in.
  std::atomic_ref<std::uint32_t>(control_->flags)
      .fetch_or(kControlClosed, std::memory_order_seq_cst);
  // Reserve past the end of the active segment like a record too large for what is left: the
  // first such reservation seals the segment (roll() records the end, then refuses to open the
  // next one); every later one finds the seal. If a roll is in flight, it either publishes
  // the next segment before seeing the mark (then close that one too) or refuses.
  for (int attempt = 0; attempt < 1000; ++attempt) {
    auto seg = active_segment();
    if (!seg) return seg.status();
    Segment& s = **seg;
    std::atomic<std::uint64_t>& tail = s.header()->tail_line.tail;
    // Relaxed: the reservation only has to be one of the tail's RMWs; the roll lock orders
    // what follows.
    std::uint64_t old_tail =
        tail.fetch_add(kTailCountOne | (s.usable() + 1), std::memory_order_relaxed);
    std::uint64_t pos = tail_position(old_tail);
    Status st = pos <= s.usable() ? roll(s, pos, tail_count(old_tail)) : retry_pending_roll(s);
    if (control_->active.active_base.load(std::memory_order_acquire) == s.base_offset() &&
        s.header()->seal_line.next_base.load(std::memory_order_acquire) >= 0)
      return Status::ok();  // sealed, and no segment after it
    if (!st && st.code() != ErrorCode::kNotFound && st.code() != ErrorCode::kBusy &&
        st.code() != ErrorCode::kTimedOut)
      return st;
    std::this_thread::yield();
  }
  return Status(ErrorCode::kBusy, dir_ + ": could not seal the active segment to close it");
}

Status PartitionLog::retry_pending_roll(Segment& full) {
  std::int64_t next_base = full.header()->seal_line.next_base.load(std::memory_order_acquire);
  if (next_base < 0) return Status(ErrorCode::kBusy, dir_ + ": no roll pending");
  std::uint64_t end = full.header()->seal_line.end_position.load(std::memory_order_relaxed);
  return roll(full, end, static_cast<std::uint64_t>(next_base - full.base_offset()));
}

Status PartitionLog::recover_roll(Segment& full) {
  if (!lock_roll()) return Status::ok();  // a live roller is at work; wait for it
  Status s = Status::ok();
  if (control_->active.active_base.load(std::memory_order_acquire) == full.base_offset()) {
    // The seal words survive if the roller died after writing them.
    std::int64_t next_base = full.header()->seal_line.next_base.load(std::memory_order_acquire);
    std::uint64_t end = full.header()->seal_line.end_position.load(std::memory_order_acquire);
    if (next_base < 0) {
      // Walk the committed frames: the END goes after the last one, and the next segment
      // starts after the highest offset used. Offsets of claims that never committed are
      // free to be used again: nobody was told about them.
      std::uint64_t pos = 0;
      std::int64_t last_offset = full.base_offset() - 1;
      while (pos <= full.usable()) {
        FrameCheck fc = check_frame(full.data(), full.capacity(), full.seq(), pos, false);
        if (fc.problem == FrameProblem::kInProgress &&
            pos + align_frame(fc.length) <= full.usable()) {
          // A claim as old as the roll is abandoned too: step over it (readers pad it), so
          // that the frames committed after it stay before END and their offsets are not
          // handed out again.
          pos += align_frame(fc.length);
          continue;
        }
        if (fc.problem != FrameProblem::kNone) break;
        const FrameHeader* f = full.frame_at(pos);
        if (f->type == kFrameEnd) break;
        if (f->offset > last_offset) last_offset = f->offset;
        pos += align_frame(fc.length);
      }
      end = pos;
      next_base = last_offset + 1;
    }
    if (closed()) {
      s = closed_status();
    } else if (options_.roll_gate && !options_.roll_gate(*this)) {
      s = Status(ErrorCode::kBackPressured, dir_ + ": roll held back by a slow consumer group");
    } else {
      s = publish_roll(full, end, next_base);
    }
  }
  unlock_roll();
  return s;
}

}  // namespace sluice::shm
