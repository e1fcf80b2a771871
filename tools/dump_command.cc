// `sluice dump SEGMENT`: every frame of one segment file with its position, offset, timestamp,
// sizes and CRC status (--values: keys, headers and values too). Maps the file read-only, so
// it is safe while producers, consumers and the broker run. Exits 1 if it finds damage.
#include <sys/stat.h>

#include <cstdio>
#include <memory>
#include <string>

#include "shm/log_verifier.h"
#include "shm/record.h"
#include "shm/segment.h"
#include "tools/cli_common.h"
#include "tools/commands.h"

namespace sluice::tools {
namespace {

const char* type_name(std::uint8_t type) {
  switch (type) {
    case shm::kFrameData:
      return "DATA";
    case shm::kFramePad:
      return "PAD";
    case shm::kFrameEnd:
      return "END";
  }
  return "?";
}

void print_frame(const shm::FrameInfo& f, bool values) {
  std::string key = "-", headers = "-", value = "-", extra;
  if (f.type == shm::kFrameData) {
    shm::RecordView r;
    if (!shm::RecordView::decode(f.frame, f.length, r)) {
      key = headers = value = "?";
      extra = "  (body malformed)";
    } else {
      key = r.key ? std::to_string(r.key->size()) : "null";
      value = r.value ? std::to_string(r.value->size()) : "null";
      std::uint32_t count = 0;
      std::string hs;
      shm::HeaderIterator it = r.headers();
      shm::HeaderView h;
      while (it.next(h)) {
        ++count;
        hs += (hs.empty() ? "" : ",") + escape_bytes(h.name);
        if (h.value) hs += "=" + escape_bytes(*h.value);
      }
      headers = std::to_string(count);
      if (values) {
        extra = "  key=" + (r.key ? "\"" + escape_bytes(*r.key) + "\"" : std::string("null"));
        if (count > 0) extra += " headers=[" + hs + "]";
        extra += " value=" + (r.value ? "\"" + escape_bytes(*r.value) + "\"" : std::string("null"));
      }
    }
  }
  std::printf("%12llu %14lld %14lld %-4s %8u %8s %5s %10s %-3s%s\n",
              static_cast<unsigned long long>(f.position), static_cast<long long>(f.offset),
              static_cast<long long>(f.timestamp_ns / 1'000'000), type_name(f.type), f.length,
              key.c_str(), headers.c_str(), value.c_str(), f.crc_ok ? "ok" : "BAD", extra.c_str());
}

int run_dump(std::string path, const std::string& data_dir, bool values) {
  struct stat st {};
  // A relative path that is not there may name a segment under the data directory's topics:
  // "orders/0/00000000000000000000.seg".
  if (::stat(path.c_str(), &st) != 0 && !path.empty() && path[0] != '/' &&
      ::stat((data_dir + "/topics/" + path).c_str(), &st) == 0)
    path = data_dir + "/topics/" + path;
  if (::stat(path.c_str(), &st) != 0) return report(errno_status("dump " + path, errno));
  if (S_ISDIR(st.st_mode))
    return usage_error("dump: " + path + " is a directory: give a segment file (e.g. " + path +
                       "/00000000000000000000.seg), or check a whole directory with `sluice "
                       "verify`");
  auto seg = shm::Segment::open(path, shm::Access::kReadOnly, false);
  if (!seg) return report(seg.status());
  std::printf("segment %s: base offset %lld, seq %u, capacity %llu bytes\n", path.c_str(),
              static_cast<long long>((*seg)->base_offset()), (*seg)->seq(),
              static_cast<unsigned long long>((*seg)->capacity()));
  std::printf("%12s %14s %14s %-4s %8s %8s %5s %10s %s\n", "POSITION", "OFFSET", "TIMESTAMP_MS",
              "TYPE", "LENGTH", "KEY", "HDRS", "VALUE", "CRC");
  auto r = shm::verify_segment(path, [values](const shm::FrameInfo& f) { print_frame(f, values); });
  if (!r) return report(r.status());
  std::string range = r->records > 0 ? " (offsets " + std::to_string(r->first_offset) + ".." +
                                           std::to_string(r->last_offset) + ")"
                                     : "";
  std::printf("%llu record%s%s, %llu padding frame%s; ",
              static_cast<unsigned long long>(r->records), r->records == 1 ? "" : "s",
              range.c_str(), static_cast<unsigned long long>(r->padding_frames),
              r->padding_frames == 1 ? "" : "s");
  if (r->next_base >= 0) {
    std::printf("sealed: END at byte %llu names next base offset %lld\n",
                static_cast<unsigned long long>(r->end_position),
                static_cast<long long>(r->next_base));
  } else {
    std::printf("open: the walk stopped at byte %llu%s\n",
                static_cast<unsigned long long>(r->end_position),
                r->in_progress_at_end ? " (a record being written)" : "");
  }
  if (r->damage.empty()) {
    std::printf("no damage\n");
    return kExitOk;
  }
  for (const auto& d : r->damage) std::printf("DAMAGE %s\n", d.to_string().c_str());
  std::fflush(stdout);
  std::fprintf(stderr, "sluice: %zu problem%s in %s\n", r->damage.size(),
               r->damage.size() == 1 ? "" : "s", path.c_str());
  return kExitError;
}

}  // namespace

void add_dump_command(CLI::App& app, int& exit_code) {
  struct Args {
    std::string path;
    std::string data_dir;
    bool values = false;
  };
  auto a = std::make_shared<Args>();
  CLI::App* cmd = app.add_subcommand(
      "dump",
      "Print every frame of a segment file: position, offset, timestamp (ms), type, length,\n"
      "key/headers/value sizes and CRC status. Read-only: safe while the broker runs.\n"
      "Exits 1 if the segment is damaged.");
  cmd->add_option("segment", a->path,
                  "Segment file, e.g. /dev/shm/sluice/topics/T/0/00000000000000000000.seg, or "
                  "relative to the data directory's topics/: T/0/00000000000000000000.seg")
      ->required();
  cmd->add_flag("--values", a->values, "Also print keys, headers and values (escaped)");
  add_data_dir_option(cmd, a->data_dir);
  cmd->callback([a, &exit_code] { exit_code = run_dump(a->path, a->data_dir, a->values); });
}

}  // namespace sluice::tools
