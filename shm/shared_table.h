// SharedTable: fixed-size keyed records in a memory-mapped file: one writer process, any
// number of reader processes, a seqlock per slot. It knows nothing of what the records mean
// (core/src/offsets_table.h gives them the meaning of committed offsets). docs/format.md,
// "Shared table", is the contract; the structs below are drawn there and pinned here.
//
// Thread-safety: a SharedTable handle is used by one thread at a time (like MappedFile). Any
// number of handles, in any threads and processes, may read one file while exactly one
// writes it; the writer holds an flock(2) on the file, so a second writer is refused. The
// shared words are atomics ordered as stated at each use in shared_table.cc.
#pragma once

#include <sys/types.h>

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "shm/log_format.h"
#include "shm/mapped_file.h"
#include "shm/status.h"

namespace sluice::shm {

// ---------------------------------------------------------------------------------------------
// Table file: a 4096-byte header, then slot_count slots of slot_bytes each.
//
//   0        8        12       16       20       24       28       32
//  +--------+--------+--------+--------+--------+--------+--------+
//  | magic  |version |hdr_size| schema |slot_sz |key_cap |val_cap |
//  +--------+--------+--------+--------+--------+--------+--------+
//   32: slot_count (u64)  40: created_ns (i64)  48: hash_fn (u32)  52: flags (u32)  56: rsvd
//   64  (line 1): retired (u32): 1 once a rebuild replaced this file; readers reopen the path
//   128 .. 4096 reserved (zero)
//   4096: Slot[slot_count]
//
// Every field but `retired` is written once, before the file gets its name, and never changes.
inline constexpr std::uint64_t kTableMagic = 0x4c425443'49554c53ULL;  // "SLUICTBL" LE
inline constexpr std::uint32_t kTableFormatVersion = 1;
inline constexpr std::uint32_t kTableHeaderBytes = 4096;
inline constexpr std::uint32_t kTableHashFnv1aFmix = 1;  // the only hash_fn so far

struct alignas(kCacheLine) TableRetireLine {
  std::atomic<std::uint32_t> retired;  // release by the rebuilder, acquire by readers
};
static_assert(sizeof(TableRetireLine) == kCacheLine);

struct TableHeader {
  std::uint64_t magic;
  std::uint32_t version;
  std::uint32_t header_bytes;
  std::uint32_t schema;  // the user's record format (a four-character code)
  std::uint32_t slot_bytes;
  std::uint32_t key_capacity;    // bytes of key a slot holds at most
  std::uint32_t value_capacity;  // bytes of value each of a slot's two copies holds at most
  std::uint64_t slot_count;      // a power of two
  std::int64_t created_ns;
  std::uint32_t hash_fn;
  std::uint32_t flags;
  std::uint64_t reserved;
  TableRetireLine retire;
};
static_assert(offsetof(TableHeader, version) == 8);
static_assert(offsetof(TableHeader, schema) == 16);
static_assert(offsetof(TableHeader, slot_bytes) == 20);
static_assert(offsetof(TableHeader, key_capacity) == 24);
static_assert(offsetof(TableHeader, value_capacity) == 28);
static_assert(offsetof(TableHeader, slot_count) == 32);
static_assert(offsetof(TableHeader, created_ns) == 40);
static_assert(offsetof(TableHeader, hash_fn) == 48);
static_assert(offsetof(TableHeader, retire) == 64);
static_assert(sizeof(TableHeader) == 128);
static_assert(sizeof(TableHeader) <= kTableHeaderBytes);

// ---------------------------------------------------------------------------------------------
// Slot: a 32-byte header, the key, and two copies of the value. slot_bytes is a multiple of
// 64, so every slot (and its contended seq/state words) starts a cache line of its own.
//
//   0        4        8                 16       20       24       28       32
//  +--------+--------+-----------------+--------+--------+--------+--------+
//  |  seq   | state  |   hash (u64)    |key_len |current | vlen 0 | vlen 1 |
//  +--------+--------+-----------------+--------+--------+--------+--------+
//   32:             key bytes, key_capacity rounded up to 8, zero-padded
//   32 + K:         value copy 0, value_capacity rounded up to 8
//   32 + K + V:     value copy 1
//   .. slot_bytes   padding
//
// - state: 0 empty, 1 used, 2 tombstone (a deleted entry: probing walks past it, an insert
//   may reuse it). An insert stores `used` last, with release: until then the entry does not
//   exist for anyone, so an insert cut short by the writer's death is simply not there.
// - seq: the seqlock. Even = stable, odd = the writer is changing this slot. Readers read a
//   slot between two loads of seq and keep what they read only if nothing changed.
// - current: which value copy is committed. An update writes the other copy, then flips
//   current (release): the flip is the update's commit point. A writer that dies mid-update
//   leaves seq odd and the committed copy intact; readers go on reading that copy (see
//   SharedTable::get), and the next writer to open the file evens the seq out.
// - hash: the key's hash (kTableHashFnv1aFmix), a filter for probing; the key decides.
//
// Every word written after creation is accessed atomically (std::atomic here, atomic_ref on
// the 8-byte words of key and values), so that readers racing the writer are defined
// behaviour and ThreadSanitizer can check the protocol.
enum SlotState : std::uint32_t {
  kSlotEmpty = 0,
  kSlotUsed = 1,
  kSlotTombstone = 2,
};

struct SlotHeader {
  std::atomic<std::uint32_t> seq;
  std::atomic<std::uint32_t> state;
  std::atomic<std::uint64_t> hash;
  std::atomic<std::uint32_t> key_bytes;
  std::atomic<std::uint32_t> current;
  std::atomic<std::uint32_t> value_bytes[2];
};
static_assert(offsetof(SlotHeader, state) == 4);
static_assert(offsetof(SlotHeader, hash) == 8);
static_assert(offsetof(SlotHeader, key_bytes) == 16);
static_assert(offsetof(SlotHeader, current) == 20);
static_assert(offsetof(SlotHeader, value_bytes) == 24);
static_assert(sizeof(SlotHeader) == 32);
static_assert(std::atomic<std::uint32_t>::is_always_lock_free);
static_assert(std::atomic<std::uint64_t>::is_always_lock_free);

inline constexpr std::uint32_t kSlotHeaderBytes = sizeof(SlotHeader);
inline constexpr std::uint32_t kTableMaxKeyCapacity = 4096;
inline constexpr std::uint32_t kTableMaxValueCapacity = 16384;
inline constexpr std::uint64_t kTableMinSlots = 64;

constexpr std::uint64_t round_up(std::uint64_t n, std::uint64_t to) {
  return (n + to - 1) / to * to;
}
constexpr std::uint32_t table_slot_bytes(std::uint32_t key_capacity, std::uint32_t value_capacity) {
  return static_cast<std::uint32_t>(round_up(
      kSlotHeaderBytes + round_up(key_capacity, 8) + 2 * round_up(value_capacity, 8), kCacheLine));
}

// The hash that places a key: 64-bit FNV-1a, then MurmurHash3's fmix64 finalizer (FNV-1a's
// low bits alone cluster). Persisted: changing it is a format change.
std::uint64_t table_hash(std::string_view key) noexcept;

// What the records look like; fixed when the file is created and checked on every open.
struct TableLayout {
  std::uint32_t schema = 0;  // a four-character code naming the user's record format
  std::uint32_t key_capacity = 0;
  std::uint32_t value_capacity = 0;
};

// The writer's choices.
struct TableOptions {
  std::uint64_t slots = 16384;  // at creation; rounded up to a power of two, at least 64
  // At 3/4 of the slots used (live entries plus tombstones), the writer rebuilds the table
  // into a new file (twice the live entries' slots at least) and renames it over the old one.
  // Without growth an insert that would pass 3/4 fails with kOutOfRange ("table full").
  bool grow = true;
  std::uint64_t max_slots = std::uint64_t{1} << 22;
  mode_t mode = 0660;                    // of the file; its directory gets 2770-style modes
  gid_t group = static_cast<gid_t>(-1);  // owning group of files it creates; -1: the creator's
};

// What opening for writing found and repaired (docs/format.md, "Recovery").
struct TableRecovery {
  std::uint64_t odd_seqs_evened = 0;  // slots a dead writer left mid-change
  bool unretired = false;             // a rebuild died after retiring this file, before rename
  std::uint32_t temp_files_removed = 0;
};

struct TableEntry {
  std::string key;
  std::string value;
};

class SharedTable {
 public:
  SharedTable() = default;
  SharedTable(SharedTable&& other) noexcept;
  SharedTable& operator=(SharedTable&& other) noexcept;
  SharedTable(const SharedTable&) = delete;
  SharedTable& operator=(const SharedTable&) = delete;
  ~SharedTable();

  // Opens the table at `path` for writing, creating it (and its directory) if absent. Takes
  // an exclusive flock: a second writer gets kBusy. Runs recovery (see TableRecovery). An
  // existing file must have `layout`'s schema and capacities; its slot count is kept.
  static Result<SharedTable> open_writer(const std::string& path, const TableLayout& layout,
                                         const TableOptions& options = {});
  // Opens an existing table for reading: a read-only mapping, no lock, no recovery needed.
  static Result<SharedTable> open_reader(const std::string& path, const TableLayout& layout);

  // A read-only handle on this handle's mapping (same addresses), for another thread of this
  // process. It follows rebuilds by reopening the path, like any reader.
  SharedTable reader() const;

  // ---- reading: any handle ---------------------------------------------------------------
  // The value stored under `key`; nullopt if there is none. kBusy only if the writer changed
  // that slot continuously for a whole second.
  Result<std::optional<std::string>> get(std::string_view key);
  // Every entry whose key starts with `prefix`, in slot order.
  Result<std::vector<TableEntry>> scan(std::string_view prefix = {});

  // ---- writing: the writer handle only ----------------------------------------------------
  // Inserts or replaces. kInvalidArgument if key or value is larger than the layout allows;
  // kOutOfRange if the table is full and may not (or cannot) grow.
  Status put(std::string_view key, std::string_view value);
  // True if the key was there.
  Result<bool> erase(std::string_view key);
  // Erases every entry whose key starts with `prefix`; returns how many.
  Result<std::uint64_t> erase_prefix(std::string_view prefix);
  // Rebuilds into a new file of `slots` slots (a power of two ≥ 64 holding the live entries
  // under 3/4), renames it over the path, and retires the old file. Drops tombstones.
  Status rebuild(std::uint64_t slots);

  const std::string& path() const { return path_; }
  bool writable() const { return writer_; }
  std::uint64_t slot_count() const { return slot_count_; }
  // Live entries and tombstones: the writer's counts (a reader's are 0).
  std::uint64_t size() const { return used_; }
  std::uint64_t tombstones() const { return tombstones_; }
  const TableLayout& layout() const { return layout_; }
  const TableRecovery& recovery() const { return recovery_; }

  // Test seam: runs inside each slot read of this handle, after the lengths are loaded and
  // before the key and value bytes are, so that a test can change the slot mid-read.
  void set_read_hook(std::function<void()> hook) { read_hook_ = std::move(hook); }

 private:
  enum class ReadResult { kMatch, kOther, kGone };

  static Result<SharedTable> map_checked(int fd, const std::string& path, const TableLayout& layout,
                                         Access access);
  static Result<SharedTable> create_file_at(const std::string& path, const TableLayout& layout,
                                            std::uint64_t slots, const TableOptions& options,
                                            bool link_only);
  static Status format(MappedFile& file, const TableLayout& layout, std::uint64_t slots);
  Status recover();
  Status follow_rebuild(bool* moved);

  TableHeader* header() const { return reinterpret_cast<TableHeader*>(file_->data()); }
  SlotHeader* slot(std::uint64_t i) const {
    return reinterpret_cast<SlotHeader*>(file_->data() + kTableHeaderBytes + i * slot_bytes_);
  }
  std::byte* key_area(SlotHeader* s) const { return reinterpret_cast<std::byte*>(s) + 32; }
  std::byte* value_area(SlotHeader* s, std::uint32_t copy) const {
    return reinterpret_cast<std::byte*>(s) + 32 + key_words_ * 8 + copy * value_words_ * 8;
  }

  // Reads slot i consistently (seqlock). With key_out null: kMatch if its key is `key`, else
  // kOther. With key_out: copies the key (and the value, if value_out) and says kMatch. kGone:
  // the slot no longer holds an entry.
  Result<ReadResult> read_slot(std::uint64_t i, std::string_view key, std::string* key_out,
                               std::string* value_out) const;
  // The writer's probe: the slot holding `key`, or where to insert it.
  struct Probe {
    std::optional<std::uint64_t> found;
    std::optional<std::uint64_t> first_free;  // first tombstone or the empty slot ending the run
    bool free_is_tombstone = false;
  };
  Probe probe(std::string_view key, std::uint64_t hash) const;
  void write_insert(std::uint64_t i, std::uint64_t hash, std::string_view key,
                    std::string_view value);
  void write_update(std::uint64_t i, std::string_view value);
  void erase_at(std::uint64_t i);
  Status check_writer() const;
  Status full_status(const std::string& why) const;

  std::string path_;
  std::shared_ptr<MappedFile> file_;
  int fd_ = -1;  // the writer's locked descriptor; -1 for readers
  bool writer_ = false;
  TableLayout layout_;
  TableOptions options_;
  std::uint64_t slot_count_ = 0;
  std::uint32_t slot_bytes_ = 0;
  std::uint32_t key_words_ = 0;
  std::uint32_t value_words_ = 0;
  std::uint64_t used_ = 0;
  std::uint64_t tombstones_ = 0;
  TableRecovery recovery_;
  std::function<void()> read_hook_;
};

}  // namespace sluice::shm
