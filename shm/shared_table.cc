#include "shm/shared_table.h"

#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <bit>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <thread>
#include <utility>

#include "shm/clock.h"
#include "shm/orphaned_files.h"

namespace sluice::shm {

namespace {

// ---- word access ------------------------------------------------------------------------------
// Keys and values are read and written as 8-byte words through atomic_ref, so that readers
// racing the writer are defined behaviour (and visible to ThreadSanitizer). The slot's words
// are 8-byte aligned: the mapping is page-aligned, slots are multiples of 64 bytes, and the
// key and value areas start at multiples of 8 within them.

std::atomic_ref<std::uint64_t> word_at(const std::byte* p) {
  // A reader's mapping may be read-only: atomic_ref only loads through it then.
  return std::atomic_ref<std::uint64_t>(
      *reinterpret_cast<std::uint64_t*>(const_cast<std::byte*>(p)));
}

// Release stores: each word stored after the slot's seq went odd carries that odd seq with
// it, so a reader whose acquire load sees the word also sees the seq changed (the seqlock
// reader then discards what it read). On x86 a release store is a plain mov.
void store_bytes(std::byte* dst, std::string_view src, std::uint32_t words) {
  for (std::uint32_t w = 0; w < words; ++w) {
    std::uint64_t v = 0;
    std::size_t at = std::size_t{w} * 8;
    if (at < src.size())
      std::memcpy(&v, src.data() + at, std::min<std::size_t>(8, src.size() - at));
    word_at(dst + at).store(v, std::memory_order_release);
  }
}

// Acquire loads: pair with store_bytes' release stores (see there). `n` bytes are copied out.
void load_bytes(const std::byte* src, std::uint32_t n, std::string& out) {
  out.resize(n);
  for (std::uint32_t at = 0; at < n; at += 8) {
    std::uint64_t v = word_at(src + at).load(std::memory_order_acquire);
    std::memcpy(out.data() + at, &v, std::min<std::uint32_t>(8, n - at));
  }
}

std::uint64_t next_power_of_two(std::uint64_t n) {
  return std::bit_ceil(std::max<std::uint64_t>(n, 1));
}

// Live entries plus tombstones a table of `slots` slots may hold: 3/4 of them.
std::uint64_t max_load(std::uint64_t slots) {
  return slots - slots / 4;
}

std::string hex(std::uint64_t v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "0x%016llx", static_cast<unsigned long long>(v));
  return buf;
}

std::string fourcc(std::uint32_t code) {
  std::string s;
  for (int i = 0; i < 4; ++i) {
    char c = static_cast<char>((code >> (8 * i)) & 0xffu);
    s += (c >= 0x20 && c < 0x7f) ? c : '?';
  }
  return s;
}

std::string temp_prefix(const std::string& path) {
  return std::filesystem::path(path).filename().string() + ".tmp-";
}

std::string temp_name(const std::string& path) {
  static std::atomic<std::uint32_t> counter{0};
  return path + ".tmp-" + std::to_string(::getpid()) + "-" +
         std::to_string(counter.fetch_add(1, std::memory_order_relaxed));
}

bool starts_with(std::string_view s, std::string_view prefix) {
  return s.size() >= prefix.size() && s.compare(0, prefix.size(), prefix) == 0;
}

}  // namespace

std::uint64_t table_hash(std::string_view key) noexcept {
  std::uint64_t h = 14695981039346656037ULL;  // FNV-1a 64 offset basis
  for (char c : key) {
    h ^= static_cast<unsigned char>(c);
    h *= 1099511628211ULL;  // FNV-1a 64 prime
  }
  // MurmurHash3 fmix64.
  h ^= h >> 33;
  h *= 0xff51afd7ed558ccdULL;
  h ^= h >> 33;
  h *= 0xc4ceb9fe1a85ec53ULL;
  h ^= h >> 33;
  return h;
}

// ---- handles ------------------------------------------------------------------------------------

SharedTable::SharedTable(SharedTable&& other) noexcept {
  *this = std::move(other);
}

SharedTable& SharedTable::operator=(SharedTable&& other) noexcept {
  if (this != &other) {
    if (fd_ >= 0) ::close(fd_);
    path_ = std::move(other.path_);
    file_ = std::move(other.file_);
    fd_ = std::exchange(other.fd_, -1);
    writer_ = std::exchange(other.writer_, false);
    layout_ = other.layout_;
    options_ = other.options_;
    slot_count_ = other.slot_count_;
    slot_bytes_ = other.slot_bytes_;
    key_words_ = other.key_words_;
    value_words_ = other.value_words_;
    used_ = other.used_;
    tombstones_ = other.tombstones_;
    recovery_ = other.recovery_;
    read_hook_ = std::move(other.read_hook_);
  }
  return *this;
}

SharedTable::~SharedTable() {
  if (fd_ >= 0) ::close(fd_);  // lets go of the writer's flock
}

SharedTable SharedTable::reader() const {
  SharedTable t;
  t.path_ = path_;
  t.file_ = file_;
  t.layout_ = layout_;
  t.options_ = options_;
  t.slot_count_ = slot_count_;
  t.slot_bytes_ = slot_bytes_;
  t.key_words_ = key_words_;
  t.value_words_ = value_words_;
  return t;
}

namespace {

Status check_layout(const TableLayout& layout) {
  if (layout.key_capacity == 0 || layout.key_capacity > kTableMaxKeyCapacity ||
      layout.value_capacity > kTableMaxValueCapacity)
    return Status(ErrorCode::kInvalidArgument,
                  "table layout: key capacity must be 1.." + std::to_string(kTableMaxKeyCapacity) +
                      " and value capacity at most " + std::to_string(kTableMaxValueCapacity) +
                      " bytes");
  return Status::ok();
}

}  // namespace

Result<SharedTable> SharedTable::map_checked(int fd, const std::string& path,
                                             const TableLayout& layout, Access access) {
  auto mapped = MappedFile::map_descriptor(fd, path, access, false);
  if (!mapped) return mapped.status();
  if (mapped->size() < kTableHeaderBytes)
    return Status(ErrorCode::kCorrupt, path + ": " + std::to_string(mapped->size()) +
                                           " bytes, shorter than a table header");
  const auto* h = reinterpret_cast<const TableHeader*>(mapped->data());
  if (h->magic != kTableMagic)
    return Status(ErrorCode::kBadFormat,
                  path + ": bad magic " + hex(h->magic) + ", not a Sluice table file");
  if (h->version != kTableFormatVersion)
    return Status(ErrorCode::kBadFormat,
                  path + ": table format version " + std::to_string(h->version) +
                      ", this build reads version " + std::to_string(kTableFormatVersion));
  if (h->schema != layout.schema)
    return Status(ErrorCode::kBadFormat, path + ": holds records of format '" + fourcc(h->schema) +
                                             "', this build expects '" + fourcc(layout.schema) +
                                             "'");
  if (h->key_capacity != layout.key_capacity || h->value_capacity != layout.value_capacity)
    return Status(ErrorCode::kBadFormat, path + ": records of " + std::to_string(h->key_capacity) +
                                             "-byte keys and " + std::to_string(h->value_capacity) +
                                             "-byte values, this build expects " +
                                             std::to_string(layout.key_capacity) + " and " +
                                             std::to_string(layout.value_capacity));
  std::uint32_t slot_bytes = table_slot_bytes(layout.key_capacity, layout.value_capacity);
  if (h->header_bytes != kTableHeaderBytes || h->slot_bytes != slot_bytes ||
      h->hash_fn != kTableHashFnv1aFmix || h->slot_count < kTableMinSlots ||
      (h->slot_count & (h->slot_count - 1)) != 0 ||
      h->slot_count > (mapped->size() - kTableHeaderBytes) / slot_bytes ||
      mapped->size() != kTableHeaderBytes + h->slot_count * slot_bytes)
    return Status(ErrorCode::kCorrupt,
                  path + ": inconsistent table header (header " + std::to_string(h->header_bytes) +
                      " bytes, " + std::to_string(h->slot_count) + " slots of " +
                      std::to_string(h->slot_bytes) + " bytes, hash " + std::to_string(h->hash_fn) +
                      ", file " + std::to_string(mapped->size()) + " bytes)");
  SharedTable t;
  t.path_ = path;
  t.layout_ = layout;
  t.slot_count_ = h->slot_count;
  t.slot_bytes_ = slot_bytes;
  t.key_words_ = static_cast<std::uint32_t>(round_up(layout.key_capacity, 8) / 8);
  t.value_words_ = static_cast<std::uint32_t>(round_up(layout.value_capacity, 8) / 8);
  t.file_ = std::make_shared<MappedFile>(std::move(mapped).value());
  return t;
}

Status SharedTable::format(MappedFile& file, const TableLayout& layout, std::uint64_t slots) {
  // The file is fresh from create_file (all zero) and has no public name yet: plain stores,
  // published to other processes by the rename/link that names it.
  auto* h = reinterpret_cast<TableHeader*>(file.data());
  h->version = kTableFormatVersion;
  h->header_bytes = kTableHeaderBytes;
  h->schema = layout.schema;
  h->slot_bytes = table_slot_bytes(layout.key_capacity, layout.value_capacity);
  h->key_capacity = layout.key_capacity;
  h->value_capacity = layout.value_capacity;
  h->slot_count = slots;
  h->created_ns = wall_clock_ns();
  h->hash_fn = kTableHashFnv1aFmix;
  h->flags = 0;
  h->retire.retired.store(0, std::memory_order_relaxed);
  h->magic = kTableMagic;
  return Status::ok();
}

Result<SharedTable> SharedTable::create_file_at(const std::string& path, const TableLayout& layout,
                                                std::uint64_t slots, const TableOptions& options,
                                                bool link_only) {
  const mode_t mode = options.mode;
  const std::string tmp = temp_name(path);
  const std::uint64_t bytes =
      kTableHeaderBytes + slots * table_slot_bytes(layout.key_capacity, layout.value_capacity);
  if (Status s = create_file(tmp, bytes, mode); !s) return s;
  int fd = ::open(tmp.c_str(), O_RDWR | O_CLOEXEC);
  if (fd < 0) {
    Status s = errno_status("open " + tmp, errno);
    ::unlink(tmp.c_str());
    return s;
  }
  // Exactly `mode` whatever the umask, and the configured group; best effort (a process may
  // create files in a directory it does not own).
  if (options.group != static_cast<gid_t>(-1))
    (void)::fchown(fd, static_cast<uid_t>(-1), options.group);
  (void)::fchmod(fd, mode);
  // Nobody else knows this file yet: the lock is immediate. It moves with the file to its
  // public name, so no second writer can take the new file in between.
  if (::flock(fd, LOCK_EX | LOCK_NB) != 0) {
    Status s = errno_status("lock " + tmp, errno);
    ::close(fd);
    ::unlink(tmp.c_str());
    return s;
  }
  {
    auto mapped = MappedFile::map_descriptor(fd, tmp, Access::kReadWrite, false);
    if (!mapped) {
      ::close(fd);
      ::unlink(tmp.c_str());
      return mapped.status();
    }
    (void)format(*mapped, layout, slots);
  }  // unmapped: map_checked maps it again, and checks it as any opener would
  auto table = map_checked(fd, path, layout, Access::kReadWrite);
  if (!table) {
    ::close(fd);
    ::unlink(tmp.c_str());
    return table.status();
  }
  table->fd_ = fd;
  table->writer_ = true;
  if (link_only) {
    // link(2), not rename(2): fails if another process created the table meanwhile.
    if (::link(tmp.c_str(), path.c_str()) != 0) {
      int err = errno;
      ::unlink(tmp.c_str());
      return errno_status("link " + tmp + " to " + path, err);
    }
    ::unlink(tmp.c_str());
  } else {
    table->path_ = tmp;  // rebuild() renames it and sets the real path
  }
  return table;
}

Result<SharedTable> SharedTable::open_writer(const std::string& path, const TableLayout& layout,
                                             const TableOptions& options) {
  if (Status s = check_layout(layout); !s) return s.with_context(path);
  std::uint64_t slots = next_power_of_two(std::max(options.slots, kTableMinSlots));
  if (slots > options.max_slots)
    return Status(ErrorCode::kInvalidArgument, path + ": " + std::to_string(slots) +
                                                   " slots asked, more than the maximum " +
                                                   std::to_string(options.max_slots));
  // The directory as the broker makes its others: searchable by whoever may read the file,
  // and set-group-id so that files created in it later inherit its group.
  const std::string dir = std::filesystem::path(path).parent_path().string();
  const mode_t dir_mode =
      static_cast<mode_t>(options.mode | ((options.mode & 0444) >> 2) | S_ISGID);
  if (!dir.empty() && !file_exists(dir)) {
    if (Status s = make_directories(dir, dir_mode); !s) return s;
    if (options.group != static_cast<gid_t>(-1))
      (void)::chown(dir.c_str(), static_cast<uid_t>(-1), options.group);
  }

  for (int attempt = 0; attempt < 100; ++attempt) {
    int fd = ::open(path.c_str(), O_RDWR | O_CLOEXEC);
    if (fd < 0) {
      if (errno != ENOENT) return errno_status("open " + path, errno);
      auto created = create_file_at(path, layout, slots, options, true);
      if (!created && created.status().code() == ErrorCode::kAlreadyExists) continue;
      if (!created) return created.status();
      created->options_ = options;
      if (Status s = created->recover(); !s) return s;  // removes dead creators' temp files
      return created;
    }
    if (::flock(fd, LOCK_EX | LOCK_NB) != 0) {
      int err = errno;
      ::close(fd);
      if (err == EWOULDBLOCK)
        return Status(ErrorCode::kBusy,
                      path +
                          ": another process has the table open for writing (one writer at a "
                          "time)");
      return errno_status("lock " + path, err);
    }
    // The previous writer may have renamed a rebuilt file over the path between our open and
    // our lock: then we locked a retired file. Start again with what the path names now.
    struct stat ours {};
    struct stat named {};
    if (::fstat(fd, &ours) != 0 || ::stat(path.c_str(), &named) != 0 ||
        ours.st_ino != named.st_ino || ours.st_dev != named.st_dev) {
      ::close(fd);
      continue;
    }
    auto table = map_checked(fd, path, layout, Access::kReadWrite);
    if (!table) {
      ::close(fd);
      return table.status();
    }
    table->fd_ = fd;
    table->writer_ = true;
    table->options_ = options;
    if (Status s = table->recover(); !s) return s;
    return table;
  }
  return Status(ErrorCode::kBusy, path + ": the table file kept being replaced while opening it");
}

Result<SharedTable> SharedTable::open_reader(const std::string& path, const TableLayout& layout) {
  if (Status s = check_layout(layout); !s) return s.with_context(path);
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return errno_status("open " + path, errno);
  auto table = map_checked(fd, path, layout, Access::kReadOnly);
  ::close(fd);  // the mapping stays
  return table;
}

// ---- recovery -----------------------------------------------------------------------------------

Status SharedTable::recover() {
  // 1. Temporary files of creators or rebuilders that died (their pid is gone).
  const std::string prefix = temp_prefix(path_);
  auto removed = remove_orphans(std::filesystem::path(path_).parent_path().string(),
                                [&](std::string_view name) {
                                  return starts_with(name, prefix) ? pid_after(name, ".tmp-") : 0;
                                });
  if (removed) recovery_.temp_files_removed += static_cast<std::uint32_t>(removed->size());
  // 2. A rebuild that retired this file and died before renaming its successor into place:
  // this file is still the table. Release: pairs with readers' acquire in follow_rebuild;
  // they stop reopening the path.
  if (header()->retire.retired.load(std::memory_order_acquire) != 0) {
    header()->retire.retired.store(0, std::memory_order_release);
    recovery_.unretired = true;
  }
  // 3. Slots. The previous writer is gone (we hold the flock it held), so nothing else
  // writes: relaxed loads see its last stores (the kernel's lock hand-over orders them).
  used_ = tombstones_ = 0;
  for (std::uint64_t i = 0; i < slot_count_; ++i) {
    SlotHeader* s = slot(i);
    std::uint32_t state = s->state.load(std::memory_order_relaxed);
    std::uint32_t seq = s->seq.load(std::memory_order_relaxed);
    if (state > kSlotTombstone)
      return Status(ErrorCode::kCorrupt,
                    path_ + ": slot " + std::to_string(i) + " has state " + std::to_string(state));
    if (seq % 2 != 0) {
      // A change cut short: an update keeps its committed copy (`current` was not flipped),
      // an insert never stored `used`. Evening the seq makes the slot stable again. Release:
      // pairs with readers' acquire of seq (nothing new to publish; readers that saw the odd
      // value retry and then take the even one).
      s->seq.store(seq + 1, std::memory_order_release);
      ++recovery_.odd_seqs_evened;
    }
    if (state == kSlotTombstone) ++tombstones_;
    if (state != kSlotUsed) continue;
    std::uint32_t key_bytes = s->key_bytes.load(std::memory_order_relaxed);
    std::uint32_t current = s->current.load(std::memory_order_relaxed);
    if (key_bytes == 0 || key_bytes > layout_.key_capacity || current > 1 ||
        s->value_bytes[current].load(std::memory_order_relaxed) > layout_.value_capacity)
      return Status(ErrorCode::kCorrupt, path_ + ": slot " + std::to_string(i) +
                                             " has an impossible key or value length");
    std::string key;
    load_bytes(key_area(s), key_bytes, key);
    if (table_hash(key) != s->hash.load(std::memory_order_relaxed))
      return Status(ErrorCode::kCorrupt, path_ + ": slot " + std::to_string(i) +
                                             " holds a key that does not match its hash");
    ++used_;
  }
  return Status::ok();
}

// ---- reading
// -------------------------------------------------------------------------------------

Result<SharedTable::ReadResult> SharedTable::read_slot(std::uint64_t i, std::string_view key,
                                                       std::string* key_out,
                                                       std::string* value_out) const {
  SlotHeader* s = slot(i);
  std::string k;
  std::string v;
  const std::int64_t start = monotonic_ns();
  for (std::uint32_t attempt = 1;; ++attempt) {
    // Acquire: pairs with the release of `used` that ends an insert: that insert's stores are
    // visible. A slot no longer used was erased or is being reused: the entry is gone.
    if (s->state.load(std::memory_order_acquire) != kSlotUsed) return ReadResult::kGone;
    // Acquire: pairs with the writer's release of the even seq that ends each change.
    const std::uint32_t seq1 = s->seq.load(std::memory_order_acquire);
    // Acquire: pairs with the flip (release) that commits an update: copy c1 is complete.
    const std::uint32_t c1 = s->current.load(std::memory_order_acquire) & 1u;
    const std::uint32_t key_bytes = s->key_bytes.load(std::memory_order_acquire);
    const std::uint32_t value_bytes = s->value_bytes[c1].load(std::memory_order_acquire);
    if (read_hook_) read_hook_();
    // Lengths may be torn garbage until validated below: clamp what is copied.
    load_bytes(key_area(s), std::min(key_bytes, layout_.key_capacity), k);
    if (value_out != nullptr)
      load_bytes(value_area(s, c1), std::min(value_bytes, layout_.value_capacity), v);
    // The acquire loads above keep these three after them. A word of a later change, seen
    // above, carries that change's odd seq with it (release stores), so seq2 differs.
    const std::uint32_t c2 = s->current.load(std::memory_order_acquire) & 1u;
    const std::uint32_t seq2 = s->seq.load(std::memory_order_acquire);
    const std::uint32_t state2 = s->state.load(std::memory_order_acquire);
    // Consistent when nothing changed (even seq, same before and after), or when the slot is
    // mid-update (odd seq, same before and after) and `current` did not flip: an update writes
    // only the other copy before flipping, so copy c1 did not move. This is what keeps readers
    // going when a writer died mid-update. An insert cannot be in progress: it happens only
    // while the slot is not `used`, and state2 says it still (or again) is with the same seq.
    const bool consistent = seq1 == seq2 && state2 == kSlotUsed && (seq1 % 2 == 0 || c1 == c2) &&
                            key_bytes <= layout_.key_capacity &&
                            value_bytes <= layout_.value_capacity;
    if (consistent) {
      if (key_out == nullptr && k != key) return ReadResult::kOther;
      if (key_out != nullptr) *key_out = std::move(k);
      if (value_out != nullptr) *value_out = std::move(v);
      return ReadResult::kMatch;
    }
    // The writer is changing this slot now: its change takes well under a microsecond, unless
    // it is descheduled. Spin a little, then yield; give up after a second of changes.
    if (attempt % 64 == 0) {
      std::this_thread::yield();
      if (monotonic_ns() - start > 1'000'000'000)
        return Status(ErrorCode::kBusy, path_ + ": slot " + std::to_string(i) +
                                            " kept changing for a second while being read");
    }
  }
}

Status SharedTable::follow_rebuild(bool* moved) {
  *moved = false;
  if (writer_) return Status::ok();  // the writer rebuilds itself
  // Acquire: pairs with the rebuilder's release of `retired` (rebuild), which it stores before
  // renaming the new file over the path and before writing anything to the new file. Seeing
  // 0 after an operation means that operation read the table's latest state.
  if (header()->retire.retired.load(std::memory_order_acquire) == 0) return Status::ok();
  auto next = open_reader(path_, layout_);
  if (!next) return next.status().with_context("following a rebuilt table");
  if (next->file_->device() == file_->device() && next->file_->inode() == file_->inode())
    return Status::ok();  // not renamed yet, or the rebuild died: this file is still current
  auto hook = std::move(read_hook_);
  *this = std::move(next).value();
  read_hook_ = std::move(hook);
  *moved = true;
  return Status::ok();
}

Result<std::optional<std::string>> SharedTable::get(std::string_view key) {
  const std::uint64_t hash = table_hash(key);
  for (int round = 0; round < 100; ++round) {
    std::optional<std::string> found;
    const std::uint64_t mask = slot_count_ - 1;
    for (std::uint64_t n = 0; n < slot_count_; ++n) {
      const std::uint64_t i = (hash + n) & mask;
      SlotHeader* s = slot(i);
      // Acquire: pairs with the release of `used` ending an insert, and with erase's
      // release of `tombstone`.
      const std::uint32_t state = s->state.load(std::memory_order_acquire);
      if (state == kSlotEmpty) break;
      if (state != kSlotUsed) continue;
      // Relaxed: the acquire of `used` made this insert's hash visible; a newer hash means the
      // slot was reused since, and the entry we look for is not in it.
      if (s->hash.load(std::memory_order_relaxed) != hash) continue;
      std::string value;
      auto r = read_slot(i, key, nullptr, &value);
      if (!r) return r.status();
      if (*r == ReadResult::kMatch) {
        found = std::move(value);
        break;
      }
    }
    bool moved = false;
    if (Status s = follow_rebuild(&moved); !s) return s;
    if (!moved) return found;
  }
  return Status(ErrorCode::kBusy, path_ + ": the table was rebuilt 100 times during one read");
}

Result<std::vector<TableEntry>> SharedTable::scan(std::string_view prefix) {
  for (int round = 0; round < 100; ++round) {
    std::vector<TableEntry> out;
    for (std::uint64_t i = 0; i < slot_count_; ++i) {
      // Acquire: as in get.
      if (slot(i)->state.load(std::memory_order_acquire) != kSlotUsed) continue;
      TableEntry e;
      auto r = read_slot(i, {}, &e.key, nullptr);  // the key alone first: cheap filter
      if (!r) return r.status();
      if (*r != ReadResult::kMatch || !starts_with(e.key, prefix)) continue;
      r = read_slot(i, {}, &e.key, &e.value);
      if (!r) return r.status();
      if (*r != ReadResult::kMatch || !starts_with(e.key, prefix)) continue;
      out.push_back(std::move(e));
    }
    bool moved = false;
    if (Status s = follow_rebuild(&moved); !s) return s;
    if (!moved) return out;
  }
  return Status(ErrorCode::kBusy, path_ + ": the table was rebuilt 100 times during one scan");
}

// ---- writing
// ------------------------------------------------------------------------------------- The writer
// is the only process that stores into slots, so its own loads are relaxed: they read its own
// earlier stores.

Status SharedTable::check_writer() const {
  if (!writer_)
    return Status(ErrorCode::kPermissionDenied, path_ + ": this handle only reads the table");
  return Status::ok();
}

Status SharedTable::full_status(const std::string& why) const {
  return Status(ErrorCode::kOutOfRange, path_ + ": table full: " + std::to_string(used_) +
                                            " entries in " + std::to_string(slot_count_) +
                                            " slots (at most 3/4 of the slots hold entries); " +
                                            why);
}

SharedTable::Probe SharedTable::probe(std::string_view key, std::uint64_t hash) const {
  Probe p;
  const std::uint64_t mask = slot_count_ - 1;
  std::string k;
  for (std::uint64_t n = 0; n < slot_count_; ++n) {
    const std::uint64_t i = (hash + n) & mask;
    SlotHeader* s = slot(i);
    const std::uint32_t state = s->state.load(std::memory_order_relaxed);
    if (state == kSlotEmpty) {
      if (!p.first_free) p.first_free = i;
      return p;
    }
    if (state == kSlotTombstone) {
      if (!p.first_free) {
        p.first_free = i;
        p.free_is_tombstone = true;
      }
      continue;
    }
    if (s->hash.load(std::memory_order_relaxed) != hash) continue;
    load_bytes(key_area(s), s->key_bytes.load(std::memory_order_relaxed), k);
    if (k == key) {
      p.found = i;
      return p;
    }
  }
  return p;
}

void SharedTable::write_insert(std::uint64_t i, std::uint64_t hash, std::string_view key,
                               std::string_view value) {
  SlotHeader* s = slot(i);
  const std::uint32_t seq = s->seq.load(std::memory_order_relaxed);
  // Odd: being written. Relaxed is enough: every store below is a release, so no reader can
  // see one of them without also seeing this.
  s->seq.store(seq + 1, std::memory_order_relaxed);
  s->hash.store(hash, std::memory_order_release);
  s->key_bytes.store(static_cast<std::uint32_t>(key.size()), std::memory_order_release);
  store_bytes(key_area(s), key, key_words_);
  store_bytes(value_area(s, 0), value, value_words_);
  s->value_bytes[0].store(static_cast<std::uint32_t>(value.size()), std::memory_order_release);
  s->current.store(0, std::memory_order_release);
  // Even: stable. Release: pairs with readers' acquire of seq; all of the above is visible.
  s->seq.store(seq + 2, std::memory_order_release);
  // The entry exists from here on. Release: pairs with readers' acquire of state. Stored last
  // so that a writer dying anywhere above leaves no entry (recovery only evens the seq).
  s->state.store(kSlotUsed, std::memory_order_release);
}

void SharedTable::write_update(std::uint64_t i, std::string_view value) {
  SlotHeader* s = slot(i);
  const std::uint32_t seq = s->seq.load(std::memory_order_relaxed);
  s->seq.store(seq + 1, std::memory_order_relaxed);  // odd: as in write_insert
  const std::uint32_t next = s->current.load(std::memory_order_relaxed) ^ 1u;
  store_bytes(value_area(s, next), value, value_words_);
  s->value_bytes[next].store(static_cast<std::uint32_t>(value.size()), std::memory_order_release);
  // The commit point. Release: pairs with readers' acquire of current; copy `next` is
  // complete for whoever sees the flip. A writer dying before it leaves the old copy current.
  s->current.store(next, std::memory_order_release);
  s->seq.store(seq + 2, std::memory_order_release);  // even: as in write_insert
}

Status SharedTable::put(std::string_view key, std::string_view value) {
  if (Status s = check_writer(); !s) return s;
  if (key.empty() || key.size() > layout_.key_capacity)
    return Status(ErrorCode::kInvalidArgument, path_ + ": a key must have 1.." +
                                                   std::to_string(layout_.key_capacity) +
                                                   " bytes, not " + std::to_string(key.size()));
  if (value.size() > layout_.value_capacity)
    return Status(ErrorCode::kInvalidArgument, path_ + ": a value may have at most " +
                                                   std::to_string(layout_.value_capacity) +
                                                   " bytes, not " + std::to_string(value.size()));
  const std::uint64_t hash = table_hash(key);
  Probe p = probe(key, hash);
  if (p.found) {
    write_update(*p.found, value);
    return Status::ok();
  }
  if (p.first_free && p.free_is_tombstone) {
    write_insert(*p.first_free, hash, key, value);
    --tombstones_;
    ++used_;
    return Status::ok();
  }
  if (!p.first_free || used_ + tombstones_ + 1 > max_load(slot_count_)) {
    // Rebuild: growing, to twice what the live entries need (so that the table is at most
    // half full again and rebuilds stay rare), up to max_slots; else at the same size, which
    // drops the tombstones.
    std::uint64_t target = slot_count_;
    const std::uint64_t cap = std::bit_floor(std::max(options_.max_slots, kTableMinSlots));
    if (options_.grow)
      target = std::max(slot_count_, std::min(next_power_of_two(2 * (used_ + 1)), cap));
    if (used_ + 1 > max_load(target))
      return full_status(options_.grow ? "the maximum is " + std::to_string(cap) + " slots"
                                       : "this table does not grow");
    if (Status s = rebuild(target); !s) return s;
    p = probe(key, hash);
    if (!p.first_free) return full_status("no free slot after a rebuild");  // cannot happen
  }
  write_insert(*p.first_free, hash, key, value);
  if (p.free_is_tombstone) --tombstones_;
  ++used_;
  return Status::ok();
}

void SharedTable::erase_at(std::uint64_t i) {
  const std::uint64_t mask = slot_count_ - 1;
  --used_;
  if (slot((i + 1) & mask)->state.load(std::memory_order_relaxed) != kSlotEmpty) {
    // Release: pairs with readers' acquire of state. No other word changes: a reader that
    // already took the slot for `used` reads a consistent, pre-erase entry.
    slot(i)->state.store(kSlotTombstone, std::memory_order_release);
    ++tombstones_;
    return;
  }
  // The next slot is empty, so no probe run goes past slot i: it can be empty too, and so can
  // the tombstones right before it. Release: as above.
  slot(i)->state.store(kSlotEmpty, std::memory_order_release);
  for (std::uint64_t j = (i - 1) & mask; j != i; j = (j - 1) & mask) {
    SlotHeader* s = slot(j);
    if (s->state.load(std::memory_order_relaxed) != kSlotTombstone) break;
    s->state.store(kSlotEmpty, std::memory_order_release);
    --tombstones_;
  }
}

Result<bool> SharedTable::erase(std::string_view key) {
  if (Status s = check_writer(); !s) return s;
  const std::uint64_t hash = table_hash(key);
  Probe p = probe(key, hash);
  if (!p.found) return false;
  erase_at(*p.found);
  return true;
}

Result<std::uint64_t> SharedTable::erase_prefix(std::string_view prefix) {
  if (Status s = check_writer(); !s) return s;
  std::uint64_t erased = 0;
  std::string k;
  for (std::uint64_t i = 0; i < slot_count_; ++i) {
    SlotHeader* s = slot(i);
    if (s->state.load(std::memory_order_relaxed) != kSlotUsed) continue;
    load_bytes(key_area(s), s->key_bytes.load(std::memory_order_relaxed), k);
    if (!starts_with(k, prefix)) continue;
    erase_at(i);
    ++erased;
  }
  return erased;
}

Status SharedTable::rebuild(std::uint64_t slots) {
  if (Status s = check_writer(); !s) return s;
  slots = next_power_of_two(std::max(slots, kTableMinSlots));
  if (used_ > max_load(slots))
    return Status(ErrorCode::kInvalidArgument, path_ + ": " + std::to_string(used_) +
                                                   " entries do not fit in " +
                                                   std::to_string(slots) + " slots");
  auto created = create_file_at(path_, layout_, slots, options_, false);
  if (!created) return created.status().with_context("rebuilding " + path_);
  SharedTable next = std::move(created).value();
  const std::string tmp = next.path_;
  auto discard = [&](Status s) {
    ::unlink(tmp.c_str());
    return s.with_context("rebuilding " + path_);
  };
  std::string key;
  std::string value;
  for (std::uint64_t i = 0; i < slot_count_; ++i) {
    SlotHeader* s = slot(i);
    if (s->state.load(std::memory_order_relaxed) != kSlotUsed) continue;
    const std::uint32_t c = s->current.load(std::memory_order_relaxed);
    load_bytes(key_area(s), s->key_bytes.load(std::memory_order_relaxed), key);
    load_bytes(value_area(s, c), s->value_bytes[c].load(std::memory_order_relaxed), value);
    const std::uint64_t hash = s->hash.load(std::memory_order_relaxed);
    Probe p = next.probe(key, hash);
    if (!p.first_free) return discard(Status(ErrorCode::kOutOfRange, "new table too small"));
    next.write_insert(*p.first_free, hash, key, value);
    ++next.used_;
  }
  if (Status s = next.file_->sync(); !s) return discard(s);
  // Retire this file before the rename. Release: pairs with readers' acquire in
  // follow_rebuild. A reader that sees it reopens the path: before the rename it finds this
  // same file and keeps its result (nothing is written to either file until rebuild returns);
  // after the rename it finds the new one and reads again.
  header()->retire.retired.store(1, std::memory_order_release);
  if (::rename(tmp.c_str(), path_.c_str()) != 0) {
    Status s = errno_status("rename " + tmp + " to " + path_, errno);
    header()->retire.retired.store(0, std::memory_order_release);
    return discard(s);
  }
  next.path_ = path_;
  next.options_ = options_;
  next.recovery_ = recovery_;
  next.read_hook_ = std::move(read_hook_);
  *this = std::move(next);  // closes the old descriptor: its lock goes with it
  return Status::ok();
}

}  // namespace sluice::shm
