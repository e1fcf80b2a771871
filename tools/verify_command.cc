// `sluice verify [DIR]`: CRC and structure check of a whole data directory: every partition of
// every topic (partition.ctl, each segment's frames, CRCs, offset order, END frames naming the
// next segment) and the consumer groups' offsets table. DIR may also be one topic's or one
// partition's directory. Maps every file read-only: safe while the broker runs. Exits 1 when
// anything is damaged, naming the file, the byte position and the cause. Files that processes
// which died left half-made get a `note` line each (not damage; the broker's sweep removes
// them).
#include <sys/stat.h>

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <memory>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <utility>
#include <vector>

#include "offsets_table.h"
#include "shm/log_verifier.h"
#include "shm/mapped_file.h"
#include "shm/orphaned_files.h"
#include "shm/partition_log.h"
#include "shm/shared_table.h"
#include "tools/cli_common.h"
#include "tools/commands.h"
#include "topic_store.h"

namespace sluice::tools {
namespace {

bool exists(const std::string& path) {
  struct stat st {};
  return ::stat(path.c_str(), &st) == 0;
}

bool is_dir(const std::string& path) {
  struct stat st {};
  return ::stat(path.c_str(), &st) == 0 && S_ISDIR(st.st_mode);
}

struct Totals {
  std::uint64_t topics = 0;
  std::uint64_t partitions = 0;
  std::uint64_t segments = 0;
  std::uint64_t records = 0;
  std::uint64_t problems = 0;
  std::uint64_t leftovers = 0;
};

void problem(Totals& t, const std::string& what) {
  ++t.problems;
  std::printf("DAMAGE %s\n", what.c_str());
}

// Entries that processes which died while building them left behind (shm/orphaned_files.h):
// not damage, nothing refers to them, and the broker's sweep removes them; named so that an
// operator knows what the files are. `dir` is the directory the names are relative to.
void note_leftovers(Totals& t, const std::string& dir, std::vector<shm::Orphan> found) {
  std::sort(found.begin(), found.end(),
            [](const shm::Orphan& a, const shm::Orphan& b) { return a.name < b.name; });
  for (const shm::Orphan& o : found) {
    ++t.leftovers;
    std::string why = o.pid > 0 ? "left by process " + std::to_string(o.pid) +
                                      ", which died half-way through making or removing it"
                                : "a partition beyond the topic's count, left by a change "
                                  "that did not finish";
    std::printf("note %s/%s: %s; the broker removes it at its next sweep\n", dir.c_str(),
                o.name.c_str(), why.c_str());
  }
}

void verify_one_partition(const std::string& dir, const std::string& label, Totals& t) {
  ++t.partitions;
  auto report = shm::verify_partition(dir);
  if (!report) {
    problem(t, dir + ": " + report.status().message());
    return;
  }
  std::uint64_t bad = 0;
  for (const auto& d : report->damage) {
    // A segment that retention deleted between the listing and the walk is not damage.
    if (d.position == 0 && !exists(d.file)) continue;
    problem(t, d.to_string());
    ++bad;
  }
  std::uint64_t records = 0;
  std::int64_t first = -1, last = -1;
  for (const auto& s : report->segments) {
    records += s.records;
    if (s.first_offset >= 0 && first < 0) first = s.first_offset;
    if (s.last_offset >= 0) last = s.last_offset;
  }
  t.segments += report->segments.size();
  t.records += records;
  std::string range =
      records > 0 ? ", offsets " + std::to_string(first) + ".." + std::to_string(last) : "";
  std::printf("%-4s %s: %zu segment%s, %llu record%s%s\n", bad == 0 ? "ok" : "BAD", label.c_str(),
              report->segments.size(), report->segments.size() == 1 ? "" : "s",
              static_cast<unsigned long long>(records), records == 1 ? "" : "s", range.c_str());
  if (auto found = shm::find_orphans(dir, shm::PartitionLog::transient_file_pid))
    note_leftovers(t, dir, std::move(found).value());
}

void verify_topic(const std::string& dir, const std::string& name, Totals& t) {
  ++t.topics;
  std::string config_path = dir + "/topic.json";
  std::ifstream in(config_path);
  if (!in) {
    problem(t, config_path + ": " + errno_status("open", errno).message());
    return;
  }
  std::stringstream text;
  text << in.rdbuf();
  auto j = nlohmann::json::parse(text.str(), nullptr, false);
  if (j.is_discarded() || !j.is_object() || !j.contains("partitions") ||
      !j["partitions"].is_number_integer() || j["partitions"].get<std::int64_t>() < 1) {
    problem(t, config_path + ": not a valid topic configuration (JSON with \"partitions\")");
    return;
  }
  auto partitions = j["partitions"].get<std::int64_t>();
  for (std::int64_t p = 0; p < partitions; ++p) {
    std::string pdir = dir + "/" + std::to_string(p);
    if (!is_dir(pdir)) {
      problem(t,
              pdir + ": missing (topic.json names " + std::to_string(partitions) + " partitions)");
      continue;
    }
    verify_one_partition(pdir, name + "/" + std::to_string(p), t);
  }
}

// Structure of the offsets table's slots: state, lengths within the layout, the stored hash
// matching the key. Reads each slot between two loads of its seqlock word.
std::vector<std::string> check_table_slots(const std::string& path) {
  std::vector<std::string> out;
  auto file = shm::MappedFile::open(path, shm::Access::kReadOnly);
  if (!file) {
    out.push_back(file.status().message());
    return out;
  }
  const auto* h = reinterpret_cast<const shm::TableHeader*>(file->data());
  const std::uint64_t slot_bytes = h->slot_bytes;
  for (std::uint64_t i = 0; i < h->slot_count; ++i) {
    std::uint64_t at = shm::kTableHeaderBytes + i * slot_bytes;
    auto* s = reinterpret_cast<const shm::SlotHeader*>(file->data() + at);
    std::string where = path + ": slot " + std::to_string(i) + " (byte " + std::to_string(at) + ")";
    std::string found;
    for (int attempt = 0; attempt < 100; ++attempt) {
      std::uint32_t seq = s->seq.load(std::memory_order_acquire);
      std::uint32_t state = s->state.load(std::memory_order_acquire);
      std::uint32_t key_bytes = s->key_bytes.load(std::memory_order_relaxed);
      std::uint32_t current = s->current.load(std::memory_order_relaxed);
      std::uint64_t hash = s->hash.load(std::memory_order_relaxed);
      found.clear();
      if (state > shm::kSlotTombstone) {
        found = "state " + std::to_string(state) + " is not empty, used or deleted";
      } else if (state == shm::kSlotUsed) {
        if (key_bytes == 0 || key_bytes > h->key_capacity) {
          found = "key of " + std::to_string(key_bytes) + " bytes (at most " +
                  std::to_string(h->key_capacity) + ")";
        } else if (current > 1) {
          found = "current value copy " + std::to_string(current) + " (0 or 1)";
        } else if (std::uint32_t v = s->value_bytes[current].load(std::memory_order_relaxed);
                   v > h->value_capacity) {
          found = "value of " + std::to_string(v) + " bytes (at most " +
                  std::to_string(h->value_capacity) + ")";
        } else {
          std::string key(key_bytes, '\0');
          std::memcpy(key.data(), reinterpret_cast<const char*>(s) + shm::kSlotHeaderBytes,
                      key_bytes);
          if (shm::table_hash(key) != hash) found = "stored hash does not match the key";
        }
      }
      std::atomic_thread_fence(std::memory_order_acquire);
      // A stable read (even seq, unchanged) decides; a slot the writer keeps changing (or a
      // dead writer left odd) is judged on the last look.
      if ((seq & 1) == 0 && s->seq.load(std::memory_order_relaxed) == seq) break;
    }
    if (!found.empty()) out.push_back(where + ": " + found);
  }
  return out;
}

void verify_offsets_table(const std::string& path, Totals& t) {
  auto table = OffsetsTable::open_read_only(path);
  if (!table) {
    problem(t, table.status().message());
    return;
  }
  std::uint64_t bad = 0;
  for (const auto& p : check_table_slots(path)) {
    problem(t, p);
    ++bad;
  }
  std::uint64_t offsets = 0;
  auto groups = table->list_groups();
  if (!groups) {
    problem(t, path + ": " + groups.status().message());
    return;
  }
  for (const auto& g : *groups) {
    auto o = table->list_offsets(g);
    if (!o) {
      problem(t, path + ": group " + g + ": " + o.status().message());
      ++bad;
      continue;
    }
    offsets += o->size();
  }
  std::printf("%-4s groups/offsets.tbl: %zu group%s, %llu committed offset%s, %llu slots\n",
              bad == 0 ? "ok" : "BAD", groups->size(), groups->size() == 1 ? "" : "s",
              static_cast<unsigned long long>(offsets), offsets == 1 ? "" : "s",
              static_cast<unsigned long long>(table->slot_count()));
}

std::string base_name(std::string path) {
  while (path.size() > 1 && path.back() == '/') path.pop_back();
  auto slash = path.rfind('/');
  return slash == std::string::npos ? path : path.substr(slash + 1);
}

int run_verify(const std::string& given_dir, const std::string& data_dir) {
  std::string dir = given_dir.empty() ? data_dir : given_dir;
  while (dir.size() > 1 && dir.back() == '/') dir.pop_back();
  if (!exists(dir)) return report(errno_status("verify " + dir, errno));
  if (!is_dir(dir))
    return usage_error("verify: " + dir +
                       " is not a directory: give a data, topic or partition directory (`sluice "
                       "dump` shows one segment file)");
  Totals t;
  std::string what;
  if (exists(dir + "/partition.ctl")) {
    verify_one_partition(dir, dir, t);
    what = "partition " + dir;
  } else if (exists(dir + "/topic.json")) {
    verify_topic(dir, base_name(dir), t);
    what = "topic " + dir;
  } else {
    std::string topics = dir + "/topics";
    std::string table = dir + "/groups/offsets.tbl";
    if (!is_dir(topics) && !exists(table))
      return report(
          Status(ErrorCode::kNotFound, dir + " is not a Sluice data directory (no topics/ nor "
                                             "groups/offsets.tbl)"),
          "give the directory `sluiced --data-dir` serves");
    if (is_dir(topics)) {
      auto names = shm::list_directory(topics);
      if (!names) return report(names.status());
      std::vector<std::string> sorted = *names;
      std::sort(sorted.begin(), sorted.end());
      for (const auto& n : sorted) {
        // Names that no topic may have are topics being created or deleted (docs/format.md).
        if (!validate_topic_name(n) || !is_dir(topics + "/" + n)) continue;
        verify_topic(topics + "/" + n, n, t);
      }
    }
    if (is_dir(topics)) {
      auto found = TopicStore(DataDir{dir}).find_orphans();
      if (!found) return report(found.status());
      note_leftovers(t, topics, std::move(found).value());
    }
    if (exists(table)) verify_offsets_table(table, t);
    what = "data directory " + dir;
  }
  std::fflush(stdout);
  if (t.problems > 0) {
    std::fprintf(stderr, "sluice: verify found %llu problem%s in %s (lines starting DAMAGE)\n",
                 static_cast<unsigned long long>(t.problems), t.problems == 1 ? "" : "s",
                 what.c_str());
    return kExitError;
  }
  std::string leftovers = t.leftovers == 0
                              ? ""
                              : " (" + std::to_string(t.leftovers) + " file" +
                                    (t.leftovers == 1 ? "" : "s") +
                                    " left by processes that died: lines starting note)";
  std::printf(
      "verified %s: %llu topic%s, %llu partition%s, %llu segment%s, %llu record%s: no "
      "damage%s\n",
      what.c_str(), static_cast<unsigned long long>(t.topics), t.topics == 1 ? "" : "s",
      static_cast<unsigned long long>(t.partitions), t.partitions == 1 ? "" : "s",
      static_cast<unsigned long long>(t.segments), t.segments == 1 ? "" : "s",
      static_cast<unsigned long long>(t.records), t.records == 1 ? "" : "s", leftovers.c_str());
  return kExitOk;
}

}  // namespace

void add_verify_command(CLI::App& app, int& exit_code) {
  struct Args {
    std::string dir;
    std::string data_dir;
  };
  auto a = std::make_shared<Args>();
  CLI::App* cmd = app.add_subcommand(
      "verify",
      "Check CRCs and structure of a whole data directory: every partition of every topic and\n"
      "the consumer groups' offsets table. Read-only: safe while the broker runs. Exits 1 on\n"
      "damage, printing a DAMAGE line per problem (file, byte position, cause).");
  cmd->add_option("dir", a->dir,
                  "Data directory (default: --data-dir), or one topic's or partition's "
                  "directory");
  add_data_dir_option(cmd, a->data_dir);
  cmd->callback([a, &exit_code] { exit_code = run_verify(a->dir, a->data_dir); });
}

}  // namespace sluice::tools
