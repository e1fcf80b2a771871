#include "offsets_table.h"

#include <algorithm>
#include <cstring>
#include <iterator>
#include <set>
#include <tuple>
#include <utility>

#include "shm/clock.h"

namespace sluice {

namespace {

// The records (docs/format.md, "Offsets table"). Keys:
//   group record:   [u8 1][u8 group length][group]
//   offset record:  [u8 2][u8 group length][group][u8 topic length][topic][i32 partition]
// Values, little-endian:
//   offset record:  0 offset i64 | 8 commit_time_ns i64 | 16 generation i32 |
//                   20 metadata length u16 | 22 flags u16 (1: metadata cut) | 24 metadata
//   group record:   0 generation i32 | 4 protocol length u16 |
//                   6 flags u16 (bits 0..3: the protocol type's code) | 8 updated_ns i64 |
//                   16 protocol
constexpr std::uint8_t kGroupKind = 1;
constexpr std::uint8_t kOffsetKind = 2;
constexpr std::uint32_t kSchema = 0x3153464fu;  // "OFS1" little-endian
constexpr std::uint32_t kKeyCapacity = 512;     // 1 + 1 + 255 + 1 + 249 + 4 = 511
constexpr std::uint32_t kValueCapacity = 240;   // so that a slot is 1024 bytes
constexpr std::size_t kOffsetValueHeader = 24;
constexpr std::size_t kGroupValueHeader = 16;
constexpr std::uint16_t kFlagMetadataCut = 1;
constexpr std::uint16_t kGroupTypeMask = 0xf;

// A group's protocol type as its record's flags keep it: a code for each type Kafka's own
// clients use. Code 0 is what every record written before the types were kept has, and what
// another type gets: its name is not kept (docs/format.md, "Offsets table").
constexpr std::string_view kGroupTypes[] = {"", "consumer", "connect"};

std::uint16_t group_type_code(std::string_view type) {
  for (std::uint16_t code = 1; code < std::size(kGroupTypes); ++code)
    if (kGroupTypes[code] == type) return code;
  return 0;
}

std::string_view group_type_name(std::uint16_t flags) {
  std::uint16_t code = flags & kGroupTypeMask;
  return code < std::size(kGroupTypes) ? kGroupTypes[code] : std::string_view();
}

static_assert(1 + 1 + OffsetsTable::kMaxGroupBytes + 1 + OffsetsTable::kMaxTopicBytes + 4 <=
              kKeyCapacity);
static_assert(kOffsetValueHeader + OffsetsTable::kMaxMetadataBytes == kValueCapacity);
static_assert(kGroupValueHeader + OffsetsTable::kMaxProtocolBytes == kValueCapacity);
static_assert(shm::table_slot_bytes(kKeyCapacity, kValueCapacity) == 1024);

template <class T>
void put_le(std::string& out, T v) {
  char b[sizeof(T)];
  std::memcpy(b, &v, sizeof(T));  // x86-64: already little-endian (docs/format.md)
  out.append(b, sizeof(T));
}

template <class T>
T get_le(std::string_view in, std::size_t at) {
  T v;
  std::memcpy(&v, in.data() + at, sizeof(T));
  return v;
}

std::string group_prefix(std::uint8_t kind, std::string_view group) {
  std::string k;
  k += static_cast<char>(kind);
  k += static_cast<char>(static_cast<std::uint8_t>(group.size()));
  k.append(group);
  return k;
}

Status check_group(std::string_view group) {
  if (group.empty()) return Status(ErrorCode::kInvalidArgument, "the group id is empty");
  if (group.size() > OffsetsTable::kMaxGroupBytes)
    return Status(ErrorCode::kInvalidArgument, "group id '" + std::string(group.substr(0, 40)) +
                                                   "...' is " + std::to_string(group.size()) +
                                                   " bytes; Sluice keeps at most " +
                                                   std::to_string(OffsetsTable::kMaxGroupBytes));
  return Status::ok();
}

Status check_partition(std::string_view topic, std::int32_t partition) {
  if (topic.empty()) return Status(ErrorCode::kInvalidArgument, "the topic name is empty");
  if (topic.size() > OffsetsTable::kMaxTopicBytes)
    return Status(ErrorCode::kInvalidArgument, "topic name is " + std::to_string(topic.size()) +
                                                   " bytes; at most " +
                                                   std::to_string(OffsetsTable::kMaxTopicBytes));
  if (partition < 0)
    return Status(ErrorCode::kInvalidArgument, "partition " + std::to_string(partition) + " of " +
                                                   std::string(topic) + " is negative");
  return Status::ok();
}

// Cuts `s` to at most `max` bytes without splitting a UTF-8 character: the cut lands before a
// byte that is not a continuation byte (10xxxxxx).
std::string_view cut_utf8(std::string_view s, std::size_t max) {
  if (s.size() <= max) return s;
  std::size_t cut = max;
  while (cut > 0 && (static_cast<unsigned char>(s[cut]) & 0xc0u) == 0x80u) --cut;
  return s.substr(0, cut);
}

Status corrupt(const std::string& path, const std::string& what) {
  return Status(ErrorCode::kCorrupt, path + ": " + what);
}

// Parses an offset record's key; false if it is not one.
bool parse_offset_key(std::string_view key, std::string* group, std::string* topic,
                      std::int32_t* partition) {
  if (key.size() < 2 || static_cast<std::uint8_t>(key[0]) != kOffsetKind) return false;
  std::size_t glen = static_cast<std::uint8_t>(key[1]);
  if (key.size() < 2 + glen + 1) return false;
  std::size_t tlen = static_cast<std::uint8_t>(key[2 + glen]);
  if (key.size() != 2 + glen + 1 + tlen + 4) return false;
  if (group != nullptr) group->assign(key.substr(2, glen));
  if (topic != nullptr) topic->assign(key.substr(3 + glen, tlen));
  if (partition != nullptr) *partition = get_le<std::int32_t>(key, 3 + glen + tlen);
  return true;
}

Result<CommittedOffset> decode_offset(const std::string& path, std::string_view key,
                                      std::string_view value) {
  CommittedOffset c;
  if (!parse_offset_key(key, nullptr, &c.topic, &c.partition))
    return corrupt(path, "an offset record with a malformed key");
  if (value.size() < kOffsetValueHeader) return corrupt(path, "an offset record is too short");
  c.offset = get_le<std::int64_t>(value, 0);
  c.commit_time_ns = get_le<std::int64_t>(value, 8);
  c.generation = get_le<std::int32_t>(value, 16);
  auto mlen = get_le<std::uint16_t>(value, 20);
  auto flags = get_le<std::uint16_t>(value, 22);
  if (kOffsetValueHeader + mlen != value.size())
    return corrupt(path, "an offset record's metadata length does not match its size");
  c.metadata.assign(value.substr(kOffsetValueHeader, mlen));
  c.metadata_truncated = (flags & kFlagMetadataCut) != 0;
  return c;
}

Result<GroupRecord> decode_group(const std::string& path, std::string_view group,
                                 std::string_view value) {
  GroupRecord g;
  g.group.assign(group);
  if (value.size() < kGroupValueHeader) return corrupt(path, "a group record is too short");
  g.generation = get_le<std::int32_t>(value, 0);
  auto plen = get_le<std::uint16_t>(value, 4);
  g.protocol_type.assign(group_type_name(get_le<std::uint16_t>(value, 6)));
  g.updated_ns = get_le<std::int64_t>(value, 8);
  if (kGroupValueHeader + plen != value.size())
    return corrupt(path, "a group record's protocol length does not match its size");
  g.protocol.assign(value.substr(kGroupValueHeader, plen));
  return g;
}

}  // namespace

const shm::TableLayout OffsetsTable::kLayout{kSchema, kKeyCapacity, kValueCapacity};

std::string offsets_group_key(std::string_view group) {
  return group_prefix(kGroupKind, group);
}

std::string offsets_offset_key(std::string_view group, std::string_view topic,
                               std::int32_t partition) {
  std::string k = group_prefix(kOffsetKind, group);
  k += static_cast<char>(static_cast<std::uint8_t>(topic.size()));
  k.append(topic);
  put_le<std::int32_t>(k, partition);
  return k;
}

Result<OffsetsTable> OffsetsTable::open_or_create(const std::string& path, std::uint64_t capacity,
                                                  bool grow) {
  shm::TableOptions options;
  options.slots = capacity;
  options.grow = grow;
  return open_or_create(path, options);
}

Result<OffsetsTable> OffsetsTable::open_or_create(const std::string& path,
                                                  const shm::TableOptions& options) {
  auto table = shm::SharedTable::open_writer(path, kLayout, options);
  if (!table) {
    if (table.status().code() == ErrorCode::kBusy)
      return Status(
          ErrorCode::kBusy,
          table.status().message() + " (is a broker already running for this data directory?)");
    return table.status();
  }
  return OffsetsTable(std::move(table).value());
}

Result<OffsetsTable> OffsetsTable::open_read_only(const std::string& path) {
  auto table = shm::SharedTable::open_reader(path, kLayout);
  if (!table) {
    if (table.status().code() == ErrorCode::kNotFound)
      return Status(ErrorCode::kNotFound,
                    table.status().message() + " (no group has committed offsets yet)");
    return table.status();
  }
  return OffsetsTable(std::move(table).value());
}

OffsetsTable OffsetsTable::reader() const {
  return OffsetsTable(table_.reader());
}

Status OffsetsTable::commit(std::string_view group, std::string_view topic, std::int32_t partition,
                            std::int64_t offset, std::int32_t generation, std::string_view metadata,
                            std::int64_t commit_time_ns) {
  if (Status s = check_group(group); !s) return s;
  if (Status s = check_partition(topic, partition); !s) return s;
  if (offset < 0)
    return Status(ErrorCode::kInvalidArgument, "offset " + std::to_string(offset) + " for " +
                                                   std::string(topic) + "-" +
                                                   std::to_string(partition) + " is negative");
  if (generation < -1)
    return Status(ErrorCode::kInvalidArgument,
                  "generation " + std::to_string(generation) + " is below -1");
  std::string_view kept = cut_utf8(metadata, kMaxMetadataBytes);
  std::string value;
  value.reserve(kOffsetValueHeader + kept.size());
  put_le<std::int64_t>(value, offset);
  put_le<std::int64_t>(value, commit_time_ns < 0 ? shm::wall_clock_ns() : commit_time_ns);
  put_le<std::int32_t>(value, generation);
  put_le<std::uint16_t>(value, static_cast<std::uint16_t>(kept.size()));
  put_le<std::uint16_t>(value, kept.size() < metadata.size() ? kFlagMetadataCut : 0);
  value.append(kept);
  return table_.put(offsets_offset_key(group, topic, partition), value);
}

Result<std::optional<CommittedOffset>> OffsetsTable::fetch(std::string_view group,
                                                           std::string_view topic,
                                                           std::int32_t partition) {
  if (Status s = check_group(group); !s) return s;
  if (Status s = check_partition(topic, partition); !s) return s;
  const std::string key = offsets_offset_key(group, topic, partition);
  auto value = table_.get(key);
  if (!value) return value.status();
  if (!*value) return std::optional<CommittedOffset>();
  auto c = decode_offset(path(), key, **value);
  if (!c) return c.status();
  return std::optional<CommittedOffset>(std::move(c).value());
}

Result<std::vector<CommittedOffset>> OffsetsTable::list_offsets(std::string_view group) {
  if (Status s = check_group(group); !s) return s;
  auto entries = table_.scan(group_prefix(kOffsetKind, group));
  if (!entries) return entries.status();
  std::vector<CommittedOffset> out;
  out.reserve(entries->size());
  for (const shm::TableEntry& e : *entries) {
    auto c = decode_offset(path(), e.key, e.value);
    if (!c) return c.status();
    out.push_back(std::move(c).value());
  }
  std::sort(out.begin(), out.end(), [](const CommittedOffset& a, const CommittedOffset& b) {
    return std::tie(a.topic, a.partition) < std::tie(b.topic, b.partition);
  });
  return out;
}

Result<bool> OffsetsTable::delete_offset(std::string_view group, std::string_view topic,
                                         std::int32_t partition) {
  if (Status s = check_group(group); !s) return s;
  if (Status s = check_partition(topic, partition); !s) return s;
  return table_.erase(offsets_offset_key(group, topic, partition));
}

Result<std::size_t> OffsetsTable::delete_topic_offsets(std::string_view topic) {
  auto entries = table_.scan();
  if (!entries) return entries.status();
  std::size_t erased = 0;
  for (const shm::TableEntry& e : *entries) {
    std::string t;
    if (!parse_offset_key(e.key, nullptr, &t, nullptr) || t != topic) continue;
    auto gone = table_.erase(e.key);
    if (!gone) return gone.status();
    if (*gone) ++erased;
  }
  return erased;
}

Result<std::vector<std::string>> OffsetsTable::list_groups() {
  auto entries = table_.scan();
  if (!entries) return entries.status();
  std::set<std::string> groups;
  for (const shm::TableEntry& e : *entries) {
    std::string group;
    if (e.key.size() >= 2 && static_cast<std::uint8_t>(e.key[0]) == kGroupKind &&
        e.key.size() == 2u + static_cast<std::uint8_t>(e.key[1]))
      groups.insert(e.key.substr(2));
    else if (parse_offset_key(e.key, &group, nullptr, nullptr))
      groups.insert(std::move(group));
    else
      return corrupt(path(), "a record with a malformed key");
  }
  return std::vector<std::string>(groups.begin(), groups.end());
}

Status OffsetsTable::delete_group(std::string_view group) {
  if (Status s = check_group(group); !s) return s;
  // The offsets first: a broker dying in between leaves a group record, which a retry removes.
  auto erased = table_.erase_prefix(group_prefix(kOffsetKind, group));
  if (!erased) return erased.status();
  auto record = table_.erase(offsets_group_key(group));
  if (!record) return record.status();
  return Status::ok();
}

Status OffsetsTable::set_group(std::string_view group, std::int32_t generation,
                               std::string_view protocol, std::string_view protocol_type) {
  if (Status s = check_group(group); !s) return s;
  if (generation < 0)
    return Status(ErrorCode::kInvalidArgument, "generation " + std::to_string(generation) +
                                                   " of group " + std::string(group) +
                                                   " is negative");
  if (protocol.size() > kMaxProtocolBytes)
    return Status(ErrorCode::kInvalidArgument,
                  "protocol name is " + std::to_string(protocol.size()) + " bytes; at most " +
                      std::to_string(kMaxProtocolBytes));
  std::string value;
  put_le<std::int32_t>(value, generation);
  put_le<std::uint16_t>(value, static_cast<std::uint16_t>(protocol.size()));
  put_le<std::uint16_t>(value, group_type_code(protocol_type));
  put_le<std::int64_t>(value, shm::wall_clock_ns());
  value.append(protocol);
  return table_.put(offsets_group_key(group), value);
}

Status OffsetsTable::set_generation(std::string_view group, std::int32_t generation) {
  auto current = this->group(group);
  if (!current) return current.status();
  if (!*current) return set_group(group, generation, {}, {});
  return set_group(group, generation, (*current)->protocol, (*current)->protocol_type);
}

Result<std::optional<GroupRecord>> OffsetsTable::group(std::string_view group) {
  if (Status s = check_group(group); !s) return s;
  auto value = table_.get(offsets_group_key(group));
  if (!value) return value.status();
  if (!*value) return std::optional<GroupRecord>();
  auto g = decode_group(path(), group, **value);
  if (!g) return g.status();
  return std::optional<GroupRecord>(std::move(g).value());
}

}  // namespace sluice
