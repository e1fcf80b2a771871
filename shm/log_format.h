// The on-disk / in-memory layout of a partition log. docs/format.md is the contract; every
// struct here is drawn there and pinned below with static_asserts. Change one, change both,
// and bump the version.
//
// Thread-safety: these are plain shared data structs. They are mapped MAP_SHARED by many
// processes at once; every field that is written after creation is a std::atomic with its
// ordering stated at the point of use (log_appender.h, log_reader.h, partition_log.cc).
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>

namespace sluice::shm {

inline constexpr std::size_t kCacheLine = 64;

// Frames are 8-byte aligned so that every commit word is naturally aligned.
inline constexpr std::uint32_t kFrameAlignment = 8;
constexpr std::uint64_t align_frame(std::uint64_t n) {
  return (n + (kFrameAlignment - 1)) & ~std::uint64_t{kFrameAlignment - 1};
}

inline constexpr std::uint32_t kLogFormatVersion = 1;
inline constexpr std::uint64_t kSegmentMagic = 0x47455343'49554c53ULL;  // "SLUICSEG" LE
inline constexpr std::uint64_t kControlMagic = 0x4c544343'49554c53ULL;  // "SLUICCTL" LE

// ---------------------------------------------------------------------------------------------
// Tail word: one 64-bit counter per segment that producers advance with a single fetch_add.
//
//   63                      38 37                                            0
//  +--------------------------+-----------------------------------------------+
//  | records reserved (26 bit) | bytes reserved in the data region (38 bit)    |
//  +--------------------------+-----------------------------------------------+
//
// Adding (1 << 38 | frame_bytes) reserves the next record index (offset = base + index) and
// the next frame_bytes of the data region at once. Segment capacity is at most 1 GiB and the
// smallest frame is 32 bytes, so the count field never overflows (2^25 frames at most, plus
// one overflowing reservation per producer), nor does the byte field (the overflowing
// reservations add at most one max-size record each).
inline constexpr unsigned kTailCountShift = 38;
inline constexpr std::uint64_t kTailPositionMask = (std::uint64_t{1} << kTailCountShift) - 1;
inline constexpr std::uint64_t kTailCountOne = std::uint64_t{1} << kTailCountShift;
inline constexpr std::uint64_t kMaxSegmentCapacity = std::uint64_t{1} << 30;
inline constexpr std::uint64_t kMinSegmentCapacity = std::uint64_t{64} << 10;

constexpr std::uint64_t tail_position(std::uint64_t tail) {
  return tail & kTailPositionMask;
}
constexpr std::uint64_t tail_count(std::uint64_t tail) {
  return tail >> kTailCountShift;
}

// ---------------------------------------------------------------------------------------------
// Frame: one record (or padding, or the end-of-segment marker) in a segment's data region.
//
//   0               4               8                              16
//  +---------------+---------------+------------------------------+
//  | length (i32)  |  seq (u32)    |        offset (i64)          |   commit word = bytes 0..8
//  +---------------+---------------+------------------------------+
//  16                              24              28   29   30   32
//  +-------------------------------+---------------+----+----+----+
//  |      timestamp ns (i64)       |  crc32c (u32) |type|flag|rsvd|
//  +-------------------------------+---------------+----+----+----+
//  32: body = [u32 key_len, key]      if flags & kFlagKey
//             [u32 headers_len, headers] if flags & kFlagHeaders
//             value                   (the rest, up to length; absent if kFlagNullValue)
//
// The commit word (length, seq) is one 64-bit atomic. The writer stores (-frame_bytes, seq)
// when it reserves, fills the frame, then stores (+length, seq) with release; readers load it
// with acquire and accept the frame only when seq equals the segment's seq and length > 0.
// Past what producers have written, a segment's data region is zero (a new file's pages are;
// recycling zeroes a reused file's: old payload may hold any word, this seq included). A word
// of another seq is read as "not yet written" too. crc32c covers bytes 8..24 followed by
// bytes 28..length.
struct FrameHeader {
  std::atomic<std::uint64_t> commit;  // (u32 seq << 32) | u32 length
  std::int64_t offset;                // record offset; END: the next segment's base offset
  std::int64_t timestamp_ns;          // nanoseconds since the Unix epoch
  std::uint32_t crc32c;
  std::uint8_t type;
  std::uint8_t flags;
  std::uint16_t reserved;
};
static_assert(sizeof(FrameHeader) == 32);
static_assert(offsetof(FrameHeader, offset) == 8);
static_assert(offsetof(FrameHeader, timestamp_ns) == 16);
static_assert(offsetof(FrameHeader, crc32c) == 24);
static_assert(offsetof(FrameHeader, type) == 28);
static_assert(offsetof(FrameHeader, flags) == 29);
static_assert(std::atomic<std::uint64_t>::is_always_lock_free);

inline constexpr std::uint32_t kFrameHeaderBytes = sizeof(FrameHeader);

enum FrameType : std::uint8_t {
  kFrameData = 1,  // a record
  kFramePad = 2,   // skipped bytes: an aborted or abandoned claim; its offset stays unused
  kFrameEnd = 3,   // end of this segment; offset = base offset of the next segment
};

enum FrameFlags : std::uint8_t {
  kFlagKey = 0x01,        // body starts with u32 key length + key bytes (else the key is null)
  kFlagHeaders = 0x02,    // then u32 headers length + encoded headers
  kFlagNullValue = 0x04,  // the value is null (a tombstone), not empty
};

constexpr std::uint64_t make_commit_word(std::int32_t length, std::uint32_t seq) {
  return (std::uint64_t{seq} << 32) | static_cast<std::uint32_t>(length);
}
constexpr std::int32_t commit_length(std::uint64_t word) {
  return static_cast<std::int32_t>(static_cast<std::uint32_t>(word));
}
constexpr std::uint32_t commit_seq(std::uint64_t word) {
  return static_cast<std::uint32_t>(word >> 32);
}

// ---------------------------------------------------------------------------------------------
// Segment file "<base offset, 20 digits>.seg": a header, a sparse index, then the data region.
//
//   0        8        12       16                24               32       36       40       44
//  +--------+--------+--------+----------------+----------------+--------+--------+--------+
//  | magic  |version |hdr_size| base_offset    | capacity       |idx_intv|idx_slot| rsvd   |
//  +--------+--------+--------+----------------+----------------+--------+--------+--------+
//  48: created_ns (i64)  56: reserved
//  64  (line 1, contended): tail (u64, producers' fetch_add) | seq (u32) | pad to 128
//  128 (line 2): seal: end_position (u64), next_base (i64) — written once by the roller;
//                pins (u32, 144): handles open on this file in processes that may write
//  192 ... 4096 reserved
//  4096: IndexSlot[index_slots]
//  header_bytes (a multiple of 4096): data region of `capacity` bytes
//
// base_offset and seq are written before the file gets its final name (rename) and never
// change while it has it. The file's size is header_bytes + capacity.
struct alignas(kCacheLine) SegmentTailLine {
  std::atomic<std::uint64_t> tail;  // see "Tail word"
  std::atomic<std::uint32_t> seq;   // frame commit words carry this; never 0 in a live segment
  std::uint32_t reserved;
};
static_assert(sizeof(SegmentTailLine) == kCacheLine);

struct alignas(kCacheLine) SegmentSealLine {
  std::atomic<std::uint64_t> end_position;  // where the END frame is; 0 while open
  std::atomic<std::int64_t> next_base;      // base offset of the next segment; -1 while open
  // Segment handles open on this file (readers' and appenders', in processes that map it
  // writable). Recycling reuses a file in place only when it is 0, so that a handle never sees
  // its bytes rewritten: see Segment::attach and PartitionLog::retire_for_reuse. Touched once
  // per handle, not per record; a process that dies leaves its pins, which only means that
  // file is deleted rather than reused. Never written by format.
  std::atomic<std::uint32_t> pins;
};
static_assert(offsetof(SegmentSealLine, pins) == 16);
static_assert(sizeof(SegmentSealLine) == kCacheLine);

struct SegmentHeader {
  std::uint64_t magic;
  std::uint32_t version;
  std::uint32_t header_bytes;
  std::int64_t base_offset;
  std::uint64_t capacity;
  std::uint32_t index_interval;
  std::uint32_t index_slots;
  std::uint32_t reserved0;
  std::uint32_t reserved1;
  std::int64_t created_ns;
  std::uint64_t reserved2;
  SegmentTailLine tail_line;
  SegmentSealLine seal_line;
};
static_assert(offsetof(SegmentHeader, base_offset) == 16);
static_assert(offsetof(SegmentHeader, capacity) == 24);
static_assert(offsetof(SegmentHeader, index_interval) == 32);
static_assert(offsetof(SegmentHeader, created_ns) == 48);
static_assert(offsetof(SegmentHeader, tail_line) == 64);
static_assert(offsetof(SegmentHeader, seal_line) == 128);
static_assert(sizeof(SegmentHeader) == 192);

inline constexpr std::uint32_t kSegmentIndexOffset = 4096;

// Sparse index: slot k names the first frame that starts at or after data position
// k * index_interval. The writer whose frame crosses that boundary fills the slot, since it
// knows where the next frame starts and which record index it has.
//
//   0            4            8                           16
//  +------------+------------+---------------------------+
//  | index + 1  |  position  |  timestamp of the writer  |
//  +------------+------------+---------------------------+
//
// index_plus1 == 0 means "not filled". It is stored last, with release; readers load it with
// acquire, and treat the slot as a hint they confirm against the frame itself.
struct IndexSlot {
  std::atomic<std::uint32_t> index_plus1;
  std::uint32_t position;
  std::int64_t timestamp_ns;
};
static_assert(sizeof(IndexSlot) == 16);

// ---------------------------------------------------------------------------------------------
// Partition control file "partition.ctl" (4096 bytes).
//
//   0        8        12       16               24       28       32
//  +--------+--------+--------+----------------+--------+--------+------------------+
//  | magic  |version |  size  | segment cap.   |idx_intv| flags  | boot_id (16 B)   |
//  +--------+--------+--------+----------------+--------+--------+------------------+
//  flags: bit 0 = closed (kControlClosed): the partition was deleted; no roll opens another
//  segment, and appends fail. Set once, never cleared (atomic_ref, seq_cst: see
//  PartitionLog::close).
//  48: created_ns  56: reserved
//  64  (line 1): active_base (i64), next_seq (u32)   — the roller publishes a new segment here
//  128 (line 2): roll_owner (u32 pid holding the roll lock, 0 = free)
//  192 (line 3): waiters (u32): readers parked on the futex
//  256 (line 4): wake_seq (u32): the futex word producers bump to wake them
//  320 (line 5): log_start (i64): no offset below it is served (Kafka's DeleteRecords moves
//                it up, never down); 0, as in files made before it, means none deleted
struct alignas(kCacheLine) ControlActiveLine {
  std::atomic<std::int64_t> active_base;  // release by the roller, acquire by appenders/readers
  std::atomic<std::uint32_t> next_seq;    // seq handed to the next segment
};
struct alignas(kCacheLine) ControlWordLine {
  std::atomic<std::uint32_t> value;
};
struct alignas(kCacheLine) ControlLogStartLine {
  std::atomic<std::int64_t> offset;
};
static_assert(sizeof(ControlActiveLine) == kCacheLine);
static_assert(sizeof(ControlWordLine) == kCacheLine);
static_assert(sizeof(ControlLogStartLine) == kCacheLine);
static_assert(std::atomic<std::uint32_t>::is_always_lock_free);

struct PartitionControl {
  std::uint64_t magic;
  std::uint32_t version;
  std::uint32_t file_bytes;
  std::uint64_t segment_capacity;
  std::uint32_t index_interval;
  std::uint32_t flags;
  std::uint8_t boot_id[16];
  std::int64_t created_ns;
  std::uint64_t reserved;
  ControlActiveLine active;
  ControlWordLine roll_owner;
  ControlWordLine waiters;
  ControlWordLine wake_seq;
  ControlLogStartLine log_start;
};
static_assert(offsetof(PartitionControl, segment_capacity) == 16);
static_assert(offsetof(PartitionControl, boot_id) == 32);
static_assert(offsetof(PartitionControl, created_ns) == 48);
static_assert(offsetof(PartitionControl, active) == 64);
static_assert(offsetof(PartitionControl, roll_owner) == 128);
static_assert(offsetof(PartitionControl, waiters) == 192);
static_assert(offsetof(PartitionControl, wake_seq) == 256);
static_assert(offsetof(PartitionControl, log_start) == 320);
static_assert(sizeof(PartitionControl) <= 4096);

inline constexpr std::uint32_t kControlFileBytes = 4096;
inline constexpr std::uint32_t kControlClosed = 1;  // PartitionControl::flags

}  // namespace sluice::shm
