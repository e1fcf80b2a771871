#include "shm/log_verifier.h"

#include <algorithm>

#include "shm/frame_check.h"
#include "shm/mapped_file.h"
#include "shm/segment.h"

namespace sluice::shm {

std::string Damage::to_string() const {
  std::string s = file + ": byte " + std::to_string(position);
  if (after_offset >= 0) s += " (after offset " + std::to_string(after_offset) + ")";
  return s + ": " + cause;
}

Result<SegmentReport> verify_segment(const std::string& path, const FrameVisitor& visitor) {
  auto opened = Segment::open(path, Access::kReadOnly, false);
  if (!opened) return opened.status();
  const Segment& seg = **opened;
  SegmentReport r;
  r.path = path;
  r.base_offset = seg.base_offset();
  r.seq = seg.seq();
  r.capacity = seg.capacity();
  std::int64_t last = seg.base_offset() - 1;
  std::uint64_t pos = 0;
  auto damage = [&](std::string cause) {
    r.damage.push_back({path, pos, r.last_offset, std::move(cause)});
  };
  while (pos + kFrameHeaderBytes <= seg.capacity()) {
    FrameCheck fc = check_frame(seg.data(), seg.capacity(), seg.seq(), pos, false);
    if (fc.problem == FrameProblem::kNotWritten) break;
    if (fc.problem == FrameProblem::kInProgress) {
      // Committed frames after it mean its producer died and nobody padded it yet.
      std::uint64_t after = pos + align_frame(fc.length);
      if (after < seg.capacity() &&
          check_frame(seg.data(), seg.capacity(), seg.seq(), after, false).problem ==
              FrameProblem::kNone) {
        damage("claim of " + std::to_string(fc.length) +
               " bytes never committed (abandoned; readers pad it after the timeout)");
        pos = after;
        continue;
      }
      r.in_progress_at_end = true;
      break;
    }
    if (fc.problem != FrameProblem::kNone) {
      damage(describe(fc.problem));
      break;  // the frame's length cannot be trusted: nothing after it lines up
    }
    const FrameHeader* f = seg.frame_at(pos);
    FrameInfo info;
    info.position = pos;
    info.length = fc.length;
    info.type = f->type;
    info.flags = f->flags;
    info.offset = f->offset;
    info.timestamp_ns = f->timestamp_ns;
    info.crc_ok = frame_crc<CrcPath::kBulk>(f, fc.length) == f->crc32c;
    info.frame = f;
    if (visitor) visitor(info);
    if (!info.crc_ok)
      damage(std::string(describe(FrameProblem::kBadCrc)) + " in frame of offset " +
             std::to_string(f->offset));
    if (f->type == kFrameData) {
      if (f->offset <= last)
        damage("offset " + std::to_string(f->offset) + " does not follow " + std::to_string(last));
      last = f->offset;
      if (r.first_offset < 0) r.first_offset = f->offset;
      r.last_offset = f->offset;
      ++r.records;
    } else if (f->type == kFramePad) {
      ++r.padding_frames;
    } else if (f->type == kFrameEnd) {
      r.next_base = f->offset;
      if (f->offset <= last)
        damage("END names next base " + std::to_string(f->offset) + " at or before offset " +
               std::to_string(last));
      break;
    }
    pos += align_frame(fc.length);
  }
  r.end_position = pos;
  return r;
}

Result<PartitionReport> verify_partition(const std::string& dir) {
  PartitionReport report;
  report.dir = dir;
  std::string ctl_path = dir + "/partition.ctl";
  auto ctl = MappedFile::open(ctl_path, Access::kReadOnly);
  if (!ctl) return ctl.status();
  const auto* c = reinterpret_cast<const PartitionControl*>(ctl->data());
  if (ctl->size() < kControlFileBytes || c->magic != kControlMagic)
    report.damage.push_back({ctl_path, 0, -1, "not a Sluice partition control file (bad magic)"});
  else if (c->version != kLogFormatVersion)
    report.damage.push_back({ctl_path, 8, -1,
                             "format version " + std::to_string(c->version) +
                                 ", this build reads " + std::to_string(kLogFormatVersion)});
  auto names = list_directory(dir);
  if (!names) return names.status();
  std::vector<std::int64_t> bases;
  for (const auto& n : *names)
    if (std::int64_t b = parse_segment_file_name(n); b >= 0) bases.push_back(b);
  std::sort(bases.begin(), bases.end());
  for (std::size_t i = 0; i < bases.size(); ++i) {
    std::string path = dir + "/" + segment_file_name(bases[i]);
    auto r = verify_segment(path);
    if (!r) {
      report.damage.push_back({path, 0, -1, r.status().message()});
      continue;
    }
    if (r->base_offset != bases[i])
      r->damage.push_back(
          {path, 0, -1, "header names base offset " + std::to_string(r->base_offset)});
    if (i + 1 < bases.size() && r->next_base >= 0 && r->next_base != bases[i + 1])
      r->damage.push_back({path, r->end_position, r->last_offset,
                           "END names next base " + std::to_string(r->next_base) +
                               " but the next segment is " + std::to_string(bases[i + 1])});
    for (const Damage& d : r->damage) report.damage.push_back(d);
    report.segments.push_back(std::move(r).value());
  }
  return report;
}

}  // namespace sluice::shm
