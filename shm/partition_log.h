// PartitionLog: this process's handle on one partition directory: its control file and its
// segments. Appenders (log_appender.h) and readers (log_reader.h) borrow it.
//
//   <dir>/partition.ctl                  control file (log_format.h: PartitionControl)
//   <dir>/<base offset, 20 digits>.seg   segments, in offset order
//   <dir>/spare.seg                      a segment prepared ahead, taken by the next roll
//
// Thread-safety: every method may be called from any thread. The segment cache is guarded by a
// mutex (cold path only); the shared words are atomics ordered as documented at each use.
#pragma once

#include <sys/stat.h>
#include <sys/types.h>

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "shm/log_format.h"
#include "shm/mapped_file.h"
#include "shm/segment.h"
#include "shm/status.h"

namespace sluice::shm {

class PartitionLog;

// Fixed when the partition is created; stored in partition.ctl.
struct LogConfig {
  std::uint64_t segment_bytes = std::uint64_t{64} << 20;  // data region per segment
  std::uint32_t index_interval = 4096;                    // bytes per sparse index slot
  mode_t file_mode = 0660;
};

// Per process.
struct LogOptions {
  Access access = Access::kReadWrite;
  // A frame claimed but not committed for this long is taken for abandoned (its producer
  // died) and turned into padding, so that readers go on.
  std::int64_t abandon_timeout_ns = 1'000'000'000;
  // Pre-fault segment pages when mapping them (MAP_POPULATE).
  bool populate = true;
  // Retention done by prepare_next(): keep at most this many segments (0 = keep all). The
  // broker owns retention; this is for embedded use and benchmarks.
  std::uint32_t retain_segments = 0;
  // Asked before a roll opens another segment; false holds producers back (kBackPressured).
  // The broker's backpressure policy sets it: "may the log grow by one more segment?".
  std::function<bool(PartitionLog&)> roll_gate;
  // When retention drops a segment, reuse its file as the next spare instead of deleting it:
  // no page allocation or fault on roll; the recycler zeroes its data region. Readers still on
  // the old segment see its seq change and get kOutOfRange.
  bool recycle_segments = false;
  // With recycle_segments: drop_segment() leaves a file it retires for reuse under its
  // private name, and zero_step() clears its data region a step at a time and then moves it
  // to spare.seg (prepare_next() finishes what is left first). For a retention owner that
  // reads too, as `sluice perf`'s consumer is: it clears between polls instead of stopping
  // for a whole segment's memset (about 1 ms for 16 MiB on the machine of
  // docs/benchmarks.md). Off (the default), drop_segment() clears the file at once.
  bool zero_in_steps = false;
};

enum class UnblockOutcome { kUnblocked, kAlreadyCommitted, kNotYet, kRolled };

class PartitionLog {
 public:
  static Result<std::shared_ptr<PartitionLog>> create(const std::string& dir,
                                                      const LogConfig& config,
                                                      const LogOptions& options = {});
  static Result<std::shared_ptr<PartitionLog>> open(const std::string& dir,
                                                    const LogOptions& options = {});
  static Result<std::shared_ptr<PartitionLog>> open_or_create(const std::string& dir,
                                                              const LogConfig& config,
                                                              const LogOptions& options = {});
  ~PartitionLog();

  const std::string& dir() const { return dir_; }
  PartitionControl* control() const { return control_; }
  const LogOptions& options() const { return options_; }
  // Capacity of the segments created from now on. Relaxed: the broker may change it (topic
  // alter) while producers roll; each segment records its own capacity in its header.
  std::uint64_t segment_capacity() const {
    return std::atomic_ref<std::uint64_t>(control_->segment_capacity)
        .load(std::memory_order_relaxed);
  }
  bool writable() const { return options_.access == Access::kReadWrite; }

  // The segment with this base offset, mapped once per process.
  Result<std::shared_ptr<Segment>> segment(std::int64_t base_offset);
  // The segment producers append to now.
  Result<std::shared_ptr<Segment>> active_segment();
  // The offset the next record will get (Kafka's log end offset). Claims not yet committed
  // count: a reader may find the end a little earlier.
  std::int64_t end_offset();
  // Base offsets of the segments present, ascending.
  Result<std::vector<std::int64_t>> segment_bases() const;
  // The earliest offset served (Kafka's log start offset): the first segment's base, or the
  // start delete_records_before() set, whichever is higher. `bases` as segment_bases() gave.
  std::int64_t start_offset(const std::vector<std::int64_t>& bases) const;
  Result<std::int64_t> start_offset() const;
  // The start delete_records_before() set, by whichever process (0 if none): one load from
  // the control file, where start_offset() also lists the directory.
  std::int64_t deleted_before() const;
  // Kafka's DeleteRecords: offsets below `offset` are no longer served (seeks below it are
  // out of range, a reader opened now starts there), and retention deletes the segments
  // wholly below it. The start moves up only: an offset at or below it changes nothing.
  // Returns the start after the call; kOutOfRange when `offset` is past end_offset().
  Result<std::int64_t> delete_records_before(std::int64_t offset);

  // Seals `full` at end_position and publishes the next segment, whose base offset is
  // full.base_offset() + record_count. Called by the producer whose reservation was the first
  // to cross the end of `full`; if another process already finished the roll, does nothing.
  Status roll(Segment& full, std::uint64_t end_position, std::uint64_t record_count);

  // Retries a roll that roll_gate held back (the seal words say where the segment ends).
  Status retry_pending_roll(Segment& full);

  // True while some process holds the roll lock: a roller at work (which may take longer
  // than abandon_timeout: a large segment zeroed or created), or one that died holding it
  // (recover_roll takes such a lock over). A sealed segment with nobody rolling was held back.
  bool roll_in_progress() const;

  // Finishes a roll that its producer abandoned (died between reserving past the end and
  // publishing the next segment). Called after waiting abandon_timeout for a roll.
  Status recover_roll(Segment& full);

  // Closes the partition for good, before its files are deleted (topic deletion): marks
  // partition.ctl closed, then reserves past the end of the active segment, so that every
  // later reservation overflows and its roll, finding the mark, refuses to open another
  // segment: appends from then on fail with kClosed, in every process, without a check on the
  // append path. Records reserved before stay (and are deleted with the files).
  Status close();
  // True once close() has marked the partition.
  bool closed() const;

  // Makes sure a spare segment exists, so that the next roll does not create a file on a
  // producer's hot path, and applies options().retain_segments. Anyone may call it: the
  // broker does, and so can a helper thread of an embedded application.
  Status prepare_next();
  // prepare_next() once after each roll, for a retention owner that calls this as often as
  // it likes (a consumer at every poll): a roll takes the spare, and the next call makes
  // another at once, before the roll after it needs it (prepare_next() on a schedule of its
  // own, such as once a segment read, lets producers that run ahead roll without a spare
  // and zero a segment each in place). Otherwise one load of the active segment's base. A
  // prepare_next() that failed is retried at the next call. The broker does the same at
  // every watch tick (TopicManager::replace_taken_spares).
  Status prepare_after_roll();
  // True when a spare segment is ready (a stat of spare.seg).
  bool has_spare() const;
  // Removes the private files (`new-*.tmp`, `rolling-*.tmp`, `recycle-*.tmp`) that processes
  // which died left in the partition's directory: a spare being created, a roll, a recycled
  // file being cleared (shm/orphaned_files.h). None of them holds a record: a roll's file
  // holds records only once renamed to its segment name. Returns the names removed. For the
  // broker, at start and now and then.
  Result<std::vector<std::string>> remove_orphaned_files();
  // The pid in the name of one of those private files; 0 for any other name. With
  // find_orphans (shm/orphaned_files.h) it finds them without removing (`sluice verify`).
  static std::int64_t transient_file_pid(std::string_view name);

  // Drops a sealed segment below the active one (retention). With options().recycle_segments,
  // when there is no spare (nor a file being cleared) and nobody pins the file, it is zeroed
  // and becomes the spare: its pages stay allocated and mapped, so the roll that takes it
  // creates, zeroes and maps nothing. Otherwise it is deleted. kNotFound if it is not there
  // (another process dropped it). With options().zero_in_steps the zeroing is zero_step()'s.
  Status drop_segment(std::int64_t base);
  // With options().zero_in_steps: clears up to `max_bytes` (0: all) more of the file
  // drop_segment() retired for reuse, and once all of it is clear moves it to spare.seg (or
  // deletes it, if a spare appeared meanwhile). Returns true while some of it is left to
  // clear. One relaxed load when there is no such file. The file keeps its private name until
  // then; a handle destroyed before deletes it, a process that dies leaves it behind (as it
  // leaves any file it was creating).
  bool zero_step(std::uint64_t max_bytes);

  // Turns the abandoned claim at `position` of `seg` into padding. `tail_when_stalled` is the
  // tail the caller saw when it started waiting; if nothing after `position` has a frame
  // header, the gap is padded up to the tail only when the tail has not moved since.
  UnblockOutcome unblock(Segment& seg, std::uint64_t position, std::uint64_t tail_when_stalled);

  // Torn-tail recovery of the active segment after the machine (not just a process) went
  // down: truncates at the first frame that fails validation. Runs on open when the boot id
  // in partition.ctl is not this boot's.
  Status recover_torn_tail();

  // msync of every segment this process has mapped, for a disk-backed data directory.
  Status sync();

  // Maps the spare segment into this handle's mapping cache (pages pre-faulted when
  // options().populate), unless it is there already, so that the roll that takes it, or a
  // reader that follows that roll, finds the file mapped instead of stalling on mmap: a
  // pre-faulted 16 MiB mapping takes milliseconds. The mmap runs outside the handle's lock.
  // For a helper thread (SegmentPremapper), never a hot path. A spare can vanish at any time
  // (a roll took it): kNoSpare then.
  enum class PremapOutcome { kMapped, kAlreadyMapped, kNoSpare };
  Result<PremapOutcome> premap_spare();
  // The same for the spare and the newest segment files, as many as the cache keeps
  // (kept_mappings()): for a process about to cycle through a pool of recycled segments, so
  // that none of its rolls maps a file. With Pretouch::kForWriting (a writable handle), every
  // file it covers, mapped now or before, is also written once a page
  // (MappedFile::pretouch_for_writing): neither this process's appends nor its retention's
  // zeroing of a recycled file then pay for a page's first write on this handle. Returns how
  // many it mapped.
  enum class Pretouch { kNo, kForWriting };
  Result<std::size_t> premap_segments(Pretouch pretouch = Pretouch::kNo);

 private:
  PartitionLog() = default;
  static Result<std::shared_ptr<PartitionLog>> open_existing(const std::string& dir,
                                                             const LogOptions& options);
  Result<std::shared_ptr<Segment>> take_spare_or_create(std::int64_t base, std::uint32_t seq);
  Status create_spare_file(const std::string& final_path);
  Status publish_roll(Segment& full, std::uint64_t end_position, std::int64_t next_base);
  bool lock_roll();
  void unlock_roll();
  Status closed_status() const;
  Status apply_retention();
  // True when `file` is a segment of the partition's current capacity (a file made before
  // the topic's segment size was altered is not reused).
  bool sized_for_partition(const MappedFile& file) const;
  // Retires a file that retention took out of the log (under a private name, open as `fd`, a
  // description of our own) and says whether it may be reused in place: false while a segment
  // handle somewhere pins it (then the caller deletes it instead). A file it returns true for
  // has its data region zeroed, as a new file's is, unless `clear` is false (then the caller
  // clears it before anyone may take it: zero_step()).
  static bool retire_for_reuse(MappedFile& file, int fd, bool clear = true);
  // Opens a file of the partition with the handle's access (the descriptor is the caller's to
  // close) and maps it through the cache. The fd lets a roll attach and a recycler lock the
  // file it just mapped without opening it again.
  Result<std::shared_ptr<MappedFile>> open_cached(const std::string& path, int& fd);
  // Segment::attach of a file this handle just mapped, kept in segments_ (under mutex_).
  Result<std::shared_ptr<Segment>> attach_segment(std::int64_t base_offset,
                                                  std::shared_ptr<MappedFile> file,
                                                  const std::string& path, int fd);
  std::string path_of(const std::string& name) const { return dir_ + "/" + name; }

  std::string dir_;
  LogOptions options_;
  MappedFile control_file_;
  PartitionControl* control_ = nullptr;
  // Mappings by file identity (device, inode), so that a recycled file is mapped once, and a
  // roll costs no mmap/munmap (and no TLB shootdown) in steady state. Unused mappings beyond
  // kept_mappings() are dropped, least recently used first.
  struct Mapping {
    std::shared_ptr<MappedFile> file;
    std::uint64_t last_use = 0;
  };
  static constexpr std::size_t kKeptMappings = 8;
  // kKeptMappings, or the whole pool of a handle with retention (its retained segments, the
  // spare and one being recycled): a pool larger than the cache had every roll map its file
  // (`sluice perf --retain 12 --segment-mib 4 --size 1024 --rate 0 --batch 8`: 4776 mmaps in
  // 2 s and 4.7 GB/s, against 143 and 11.3 GB/s with --retain 4; 2026-11-26).
  std::size_t kept_mappings() const {
    return std::max<std::size_t>(kKeptMappings, std::size_t{options_.retain_segments} + 2);
  }
  std::shared_ptr<MappedFile> mapping_for(int fd, const std::string& path, Status& error);
  // The cached mapping of the file `st` describes, if it has that file's size (under mutex_).
  Mapping* cached_mapping(const struct stat& st);
  // Adds a new mapping to mappings_ and drops the least recently used unused ones (under
  // mutex_). Returns the one kept for `key`: `file`, or one that another thread added first.
  std::shared_ptr<MappedFile> remember_mapping(std::pair<dev_t, ino_t> key,
                                               std::shared_ptr<MappedFile> file);
  Result<PremapOutcome> premap(const std::string& path);  // kNoSpare: no such file
  Result<std::shared_ptr<MappedFile>> map_cached(const std::string& path);

  // A file drop_segment() retired for reuse, under its private name until zero_step() has
  // cleared [next, end) of it (under clearing_mutex_): a step at a time with zero_in_steps,
  // at once in drop_segment() without.
  struct Clearing {
    std::shared_ptr<MappedFile> file;
    std::string path;
    std::uint64_t next = 0;
    std::uint64_t end = 0;
  };
  std::mutex clearing_mutex_;
  std::optional<Clearing> clearing_;
  // Whether clearing_ holds a file: read relaxed by zero_step() as a hint before the lock.
  std::atomic<bool> clearing_pending_{false};
  // The active segment's base when prepare_after_roll() last prepared (-1: never).
  std::atomic<std::int64_t> prepared_for_base_{-1};

  std::mutex mutex_;  // guards segments_, mappings_, use_clock_
  std::map<std::int64_t, std::weak_ptr<Segment>> segments_;
  std::map<std::pair<dev_t, ino_t>, Mapping> mappings_;
  std::uint64_t use_clock_ = 0;
};

// The current boot id (16 bytes of /proc/sys/kernel/random/boot_id).
void current_boot_id(std::uint8_t out[16]);

}  // namespace sluice::shm
