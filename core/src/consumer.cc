#include "sluice/consumer.h"

#include <unistd.h>

#include <algorithm>
#include <thread>

#include "control_client.h"
#include "data_dir.h"
#include "shm/clock.h"
#include "shm/log_reader.h"
#include "shm/record.h"
#include "shm/segment_premapper.h"
#include "topic_store.h"

namespace sluice {

using control::json;

namespace {

std::int64_t now_ms() {
  return shm::monotonic_ns() / 1'000'000;
}

shm::WaitStrategy strategy(WaitMode m) {
  switch (m) {
    case WaitMode::kSpin:
      return shm::WaitStrategy::kSpin;
    case WaitMode::kYield:
      return shm::WaitStrategy::kYield;
    case WaitMode::kBlock:
      return shm::WaitStrategy::kBlock;
    case WaitMode::kAdaptive:
      return shm::WaitStrategy::kAdaptive;
  }
  return shm::WaitStrategy::kAdaptive;
}

json tp_json(const TopicPartition& tp) {
  return {{"topic", tp.topic}, {"partition", tp.partition}};
}

}  // namespace

std::vector<Header> Record::headers() const {
  std::vector<Header> out;
  shm::HeaderIterator it(headers_block_, headers_block_bytes_);
  shm::HeaderView h;
  while (it.next(h)) out.push_back(Header{h.name, h.value});
  return out;
}

struct Consumer::Impl {
  ConsumerConfig config;
  DataDir dir;
  TopicStore store{DataDir{}};

  struct Assigned {
    TopicPartition tp;
    std::shared_ptr<shm::PartitionLog> log;
    std::optional<shm::LogReader> reader;
  };
  std::vector<Assigned> parts;
  std::size_t next_part = 0;
  std::vector<shm::LogReader*> wait_set;  // poll's scratch: the readers it parks on
  // Maps each assigned partition's next segment before the reader rolls onto it (a thread,
  // started by the first assignment): a roll then costs no mmap inside poll().
  shm::SegmentPremapper premapper;

  // Group membership.
  std::unique_ptr<ControlClient> control;
  std::vector<std::string> subscription;
  std::string member_id;
  std::int32_t generation = -1;
  bool rejoin_needed = false;
  std::int64_t last_heartbeat_ms = 0;
  std::int64_t last_reconnect_ms = 0;
  std::int64_t last_auto_commit_ms = 0;
  Status async_error;

  ~Impl() = default;

  Assigned* find(const TopicPartition& tp) {
    for (auto& a : parts)
      if (a.tp == tp) return &a;
    return nullptr;
  }

  Status ensure_control() {
    if (control && control->connected()) return Status::ok();
    auto c = ControlClient::connect(dir, config.client_id);
    if (!c) return c.status();
    // A new connection is a new lease: a group member rejoins on it, whichever call (poll,
    // commit, committed) happened to reconnect.
    if (control && !subscription.empty()) rejoin_needed = true;
    control = std::move(c).value();
    return Status::ok();
  }

  // The committed offset of the group for tp, if any (asks the broker).
  Result<std::optional<std::int64_t>> committed(const TopicPartition& tp) {
    if (config.group_id.empty()) return std::optional<std::int64_t>{};
    if (Status s = ensure_control(); !s) return s;
    auto r = control->request(
        "group.fetch", {{"group", config.group_id}, {"partitions", json::array({tp_json(tp)})}});
    if (!r) return r.status();
    for (const auto& o : r->value("offsets", json::array()))
      if (o.value("topic", "") == tp.topic && o.value("partition", -1) == tp.partition &&
          o.value("offset", std::int64_t{-1}) >= 0)
        return std::optional<std::int64_t>(o["offset"].get<std::int64_t>());
    return std::optional<std::int64_t>{};
  }

  Status reset_position(Assigned& a) {
    switch (config.auto_offset_reset) {
      case AutoOffsetReset::kEarliest:
        return a.reader->seek_to_beginning();
      case AutoOffsetReset::kLatest:
        return a.reader->seek_to_end();
      case AutoOffsetReset::kNone:
        return Status(ErrorCode::kOutOfRange,
                      "topic " + a.tp.topic + " partition " + std::to_string(a.tp.partition) +
                          ": no valid position and auto.offset.reset is none");
    }
    return Status::ok();
  }

  Status open_partition(const TopicPartition& tp, std::optional<std::int64_t> start) {
    auto config_t = store.read(tp.topic);
    if (!config_t) return config_t.status();
    if (tp.partition < 0 || tp.partition >= config_t->partitions)
      return Status(ErrorCode::kInvalidArgument,
                    "topic " + tp.topic + " has no partition " + std::to_string(tp.partition));
    shm::LogOptions o;
    o.populate = true;
    auto log = shm::PartitionLog::open(dir.partition(tp.topic, tp.partition), o);
    if (!log && log.status().code() == ErrorCode::kPermissionDenied) {
      o.access = shm::Access::kReadOnly;  // consume-only permission: read-only mapping
      log = shm::PartitionLog::open(dir.partition(tp.topic, tp.partition), o);
    }
    if (!log) return topic_status(tp.topic, log.status());
    shm::ReaderOptions ro;
    ro.verify_crc = config.verify_crc;
    auto reader = shm::LogReader::open(*log, ro);
    if (!reader) return topic_status(tp.topic, reader.status());
    premapper.add(*log);
    Assigned a{tp, *log, std::move(reader).value()};
    Status s;
    if (start) {
      s = a.reader->seek(*start);
      if (!s && s.code() == ErrorCode::kOutOfRange) s = reset_position(a);
    } else {
      s = reset_position(a);
    }
    if (!s) return s;
    parts.push_back(std::move(a));
    return Status::ok();
  }

  Status set_assignment(const std::vector<TopicPartition>& tps) {
    parts.clear();
    next_part = 0;
    for (const auto& tp : tps) {
      auto c = committed(tp);
      std::optional<std::int64_t> start;
      if (c)
        start = *c;
      else if (!config.group_id.empty() && c.status().code() != ErrorCode::kNoBroker)
        return c.status();
      if (Status s = open_partition(tp, start); !s) return s;
    }
    return Status::ok();
  }

  json positions_json() const {
    json offsets = json::array();
    for (const auto& a : parts)
      offsets.push_back(
          {{"topic", a.tp.topic}, {"partition", a.tp.partition}, {"offset", a.reader->position()}});
    return offsets;
  }

  Status commit(const json& offsets) {
    if (config.group_id.empty())
      return Status(ErrorCode::kInvalidArgument,
                    "commit needs a group id (ConsumerConfig::group_id)");
    if (offsets.empty()) return Status::ok();
    if (Status s = ensure_control(); !s) return s;
    auto r = control->request("group.commit", {{"group", config.group_id},
                                               {"member_id", member_id},
                                               {"generation", generation},
                                               {"offsets", offsets}});
    return r.status();
  }

  // Joins (or rejoins) the group and takes the assignment the broker computes.
  Status join() {
    if (Status s = ensure_control(); !s) return s;
    json owned = json::array();
    for (const auto& a : parts) owned.push_back(tp_json(a.tp));
    auto r = control->request("group.join",
                              {{"group", config.group_id},
                               {"member_id", member_id},
                               {"generation", generation},
                               {"client_id", config.client_id},
                               {"pid", static_cast<int>(::getpid())},
                               {"topics", subscription},
                               {"assignors", config.assignors},
                               {"session_timeout_ms", config.session_timeout_ms},
                               {"rebalance_timeout_ms", config.rebalance_timeout_ms},
                               {"owned", owned}},
                              config.rebalance_timeout_ms * 3 + 5000);
    if (!r && r.status().code() == ErrorCode::kTimedOut) {
      // The broker may have made us a member whose id we never learned: nobody would consume
      // its partitions until its session timed out. Closing the connection ends every
      // member joined on it (the liveness lease); the next poll reconnects and joins afresh.
      control.reset();
      member_id.clear();
      rejoin_needed = true;
    }
    if (!r) return r.status();
    member_id = r->value("member_id", member_id);
    generation = r->value("generation", -1);
    std::vector<TopicPartition> tps;
    for (const auto& p : r->value("assignment", json::array()))
      tps.push_back({p.at("topic").get<std::string>(), p.at("partition").get<std::int32_t>()});
    rejoin_needed = false;
    last_heartbeat_ms = now_ms();
    return set_assignment(tps);
  }

  // Eager rebalance: commit what was consumed, give every partition up, rejoin.
  Status rebalance() {
    if (config.enable_auto_commit) (void)commit(positions_json());
    parts.clear();
    return join();
  }

  Status service_group() {
    if (subscription.empty()) return Status::ok();
    json event;
    while (control && control->pop_event(event)) {
      std::string kind = event.value("event", "");
      if (kind != "rebalance") continue;
      if (event.value("removed", false)) {
        member_id.clear();  // expelled: join afresh
        rejoin_needed = true;
      } else if (event.value("generation", generation + 1) > generation) {
        // A notice for a generation we already have (sent while our join was in flight) is
        // stale.
        rejoin_needed = true;
      }
    }
    std::int64_t now = now_ms();
    if (!control || !control->connected()) {
      // The broker is away: keep consuming what we own; reconnect now and then and rejoin.
      if (now - last_reconnect_ms < 200) return Status::ok();
      last_reconnect_ms = now;
      if (!ensure_control()) return Status::ok();
      if (config.enable_auto_commit) (void)commit(positions_json());
      rejoin_needed = true;
    }
    if (rejoin_needed) return rebalance();
    if (now - last_heartbeat_ms >= config.session_timeout_ms / 3) {
      last_heartbeat_ms = now;
      control->send(
          "group.heartbeat",
          {{"group", config.group_id}, {"member_id", member_id}, {"generation", generation}});
    }
    if (config.enable_auto_commit && now - last_auto_commit_ms >= config.auto_commit_interval_ms) {
      last_auto_commit_ms = now;
      if (Status s = commit(positions_json()); !s && s.code() == ErrorCode::kFenced)
        rejoin_needed = true;
    }
    return Status::ok();
  }
};

Consumer::Consumer(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Consumer::Consumer(Consumer&&) noexcept = default;
Consumer& Consumer::operator=(Consumer&&) noexcept = default;
Consumer::~Consumer() {
  if (impl_) (void)close();
}

Result<Consumer> Consumer::open(const ConsumerConfig& config) {
  auto impl = std::make_unique<Impl>();
  impl->config = config;
  impl->dir = DataDir{config.data_dir};
  impl->store = TopicStore(impl->dir);
  return Consumer(std::move(impl));
}

Status Consumer::assign(const std::vector<TopicPartition>& partitions) {
  if (!impl_->subscription.empty())
    return Status(ErrorCode::kInvalidArgument, "assign() after subscribe(): unsubscribe first");
  return impl_->set_assignment(partitions);
}

Status Consumer::subscribe(const std::vector<std::string>& topics) {
  Impl& im = *impl_;
  if (im.config.group_id.empty())
    return Status(ErrorCode::kInvalidArgument,
                  "subscribe() needs a group id (ConsumerConfig::group_id)");
  if (topics.empty()) return Status(ErrorCode::kInvalidArgument, "subscribe() to no topics");
  for (const auto& t : topics)
    if (auto c = im.store.read(t); !c) return c.status();
  im.subscription = topics;
  im.parts.clear();
  return im.join();
}

Status Consumer::unsubscribe() {
  Impl& im = *impl_;
  if (im.subscription.empty()) return Status::ok();
  if (im.config.enable_auto_commit) (void)im.commit(im.positions_json());
  if (im.control && im.control->connected())
    (void)im.control->request("group.leave",
                              {{"group", im.config.group_id}, {"member_id", im.member_id}});
  im.subscription.clear();
  im.parts.clear();
  im.member_id.clear();
  im.generation = -1;
  return Status::ok();
}

Result<std::size_t> Consumer::poll_impl(RawHandler fn, void* ctx, std::size_t max_records,
                                        std::int64_t timeout_ms) {
  Impl& im = *impl_;
  if (Status s = im.service_group(); !s) return s;
  if (!im.async_error.is_ok()) return std::exchange(im.async_error, Status::ok());
  std::int64_t start = shm::monotonic_ns();
  std::int64_t deadline =
      timeout_ms < 0 ? std::numeric_limits<std::int64_t>::max() : start + timeout_ms * 1'000'000;
  std::size_t delivered = 0;
  Record rec;
  for (;;) {
    std::size_t n = im.parts.size();
    for (std::size_t i = 0; i < n && delivered < max_records; ++i) {
      Impl::Assigned& a = im.parts[(im.next_part + i) % n];
      rec.topic = a.tp.topic;
      rec.partition = a.tp.partition;
      auto limit =
          static_cast<std::uint32_t>(std::min<std::size_t>(max_records - delivered, 1u << 30));
      shm::PollResult r = a.reader->poll(
          [&](const shm::RecordView& v) {
            rec.offset = v.offset;
            rec.timestamp_ns = v.timestamp_ns;
            rec.key = v.key;
            rec.value = v.value;
            rec.headers_block_ = v.headers_block;
            rec.headers_block_bytes_ = v.headers_block_bytes;
            fn(ctx, rec);
          },
          limit);
      delivered += r.records;
      if (r.records == 0 && r.outcome == shm::ReadOutcome::kOk && im.subscription.empty() &&
          a.log->closed() && a.reader->position() >= a.log->end_offset()) {
        // Its topic was deleted and everything it held has been delivered: unassign it and
        // say so (now, or on the next poll if this one delivered records). A group member
        // is moved off it by the rebalance instead.
        Status gone(ErrorCode::kUnknownTopic, "topic " + a.tp.topic + " was deleted: partition " +
                                                  std::to_string(a.tp.partition) +
                                                  " is no longer assigned");
        im.parts.erase(im.parts.begin() + static_cast<std::ptrdiff_t>((im.next_part + i) % n));
        im.next_part = 0;
        if (delivered > 0) {
          im.async_error = gone;
          return delivered;
        }
        return gone;
      }
      if (r.outcome == shm::ReadOutcome::kOutOfRange) {
        if (Status s = im.reset_position(a); !s) return s.with_context(a.reader->error().message());
      } else if (r.outcome == shm::ReadOutcome::kCorrupt) {
        return a.reader->error();
      }
    }
    if (n > 0) im.next_part = (im.next_part + 1) % n;
    if (delivered > 0 || timeout_ms == 0) return delivered;
    std::int64_t now = shm::monotonic_ns();
    if (now >= deadline) return delivered;
    if (n == 0) {
      std::this_thread::sleep_for(
          std::chrono::milliseconds(std::min<std::int64_t>(10, (deadline - now) / 1'000'000 + 1)));
    } else if (n == 1) {
      im.parts[0].reader->wait(strategy(im.config.wait),
                               std::min<std::int64_t>(deadline - now, 100'000'000));
    } else {
      // Several partitions: spin over all of them briefly, then park on all their futexes at
      // once, for at most 100 ms between looks at the group.
      if (im.config.wait == WaitMode::kBlock || now - start > 50'000) {
        im.wait_set.clear();
        for (auto& a : im.parts) im.wait_set.push_back(&*a.reader);
        shm::LogReader::wait_any(im.wait_set, std::min<std::int64_t>(deadline - now, 100'000'000));
      } else if (im.config.wait == WaitMode::kYield) {
        std::this_thread::yield();
      }
    }
    if (Status s = im.service_group(); !s) return s;
  }
}

Status Consumer::commit_sync() {
  return impl_->commit(impl_->positions_json());
}

Status Consumer::commit_sync(const std::vector<std::pair<TopicPartition, std::int64_t>>& offsets) {
  json j = json::array();
  for (const auto& [tp, off] : offsets)
    j.push_back({{"topic", tp.topic}, {"partition", tp.partition}, {"offset", off}});
  return impl_->commit(j);
}

void Consumer::commit_async() {
  Impl& im = *impl_;
  if (im.config.group_id.empty() || !im.ensure_control()) {
    im.async_error = Status(ErrorCode::kNoBroker, "commit_async: no broker connection");
    return;
  }
  im.control->send("group.commit", {{"group", im.config.group_id},
                                    {"member_id", im.member_id},
                                    {"generation", im.generation},
                                    {"offsets", im.positions_json()}});
}

Status Consumer::seek(const TopicPartition& tp, std::int64_t offset) {
  auto* a = impl_->find(tp);
  if (a == nullptr)
    return Status(ErrorCode::kInvalidArgument,
                  tp.topic + "/" + std::to_string(tp.partition) + " is not assigned");
  return a->reader->seek(offset);
}

Status Consumer::seek_to_timestamp(const TopicPartition& tp, std::int64_t timestamp_ns) {
  auto* a = impl_->find(tp);
  if (a == nullptr)
    return Status(ErrorCode::kInvalidArgument,
                  tp.topic + "/" + std::to_string(tp.partition) + " is not assigned");
  return a->reader->seek_to_timestamp(timestamp_ns);
}

Status Consumer::seek_to_beginning(const std::vector<TopicPartition>& tps) {
  for (auto& a : impl_->parts)
    if (tps.empty() || std::find(tps.begin(), tps.end(), a.tp) != tps.end())
      if (Status s = a.reader->seek_to_beginning(); !s) return s;
  return Status::ok();
}

Status Consumer::seek_to_end(const std::vector<TopicPartition>& tps) {
  for (auto& a : impl_->parts)
    if (tps.empty() || std::find(tps.begin(), tps.end(), a.tp) != tps.end())
      if (Status s = a.reader->seek_to_end(); !s) return s;
  return Status::ok();
}

Result<std::int64_t> Consumer::position(const TopicPartition& tp) const {
  auto* a = impl_->find(tp);
  if (a == nullptr)
    return Status(ErrorCode::kInvalidArgument,
                  tp.topic + "/" + std::to_string(tp.partition) + " is not assigned");
  return a->reader->position();
}

Result<std::int64_t> Consumer::end_offset(const TopicPartition& tp) const {
  auto* a = impl_->find(tp);
  if (a == nullptr)
    return Status(ErrorCode::kInvalidArgument,
                  tp.topic + "/" + std::to_string(tp.partition) + " is not assigned");
  return a->log->end_offset();
}

Result<std::int64_t> Consumer::lag(const TopicPartition& tp) const {
  auto end = end_offset(tp);
  if (!end) return end;
  auto pos = position(tp);
  if (!pos) return pos;
  return std::max<std::int64_t>(0, *end - *pos);
}

Result<std::optional<std::int64_t>> Consumer::committed(const TopicPartition& tp) const {
  return impl_->committed(tp);
}

std::vector<TopicPartition> Consumer::assignment() const {
  std::vector<TopicPartition> out;
  for (const auto& a : impl_->parts) out.push_back(a.tp);
  return out;
}

GroupAssignment Consumer::group_assignment() const {
  return {impl_->generation, impl_->member_id, assignment()};
}

bool Consumer::at_end() const {
  // At the end of a partition when nothing committed waits at the read position.
  for (const auto& a : impl_->parts)
    if (a.reader->ready()) return false;
  return true;
}

Status Consumer::close() {
  Impl& im = *impl_;
  Status result = Status::ok();
  if (!im.subscription.empty()) result = unsubscribe();
  im.parts.clear();
  im.control.reset();
  return result;
}

}  // namespace sluice
