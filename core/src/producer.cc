#include "sluice/producer.h"

#include <sys/stat.h>
#include <unistd.h>

#include <concurrentqueue/blockingconcurrentqueue.h>
#include <array>
#include <atomic>
#include <condition_variable>
#include <map>
#include <mutex>
#include <thread>

#include "backpressure_gate.h"
#include "data_dir.h"
#include "offsets_table.h"
#include "partitioner.h"
#include "shm/clock.h"
#include "shm/log_appender.h"
#include "shm/segment.h"
#include "shm/segment_premapper.h"
#include "topic_store.h"

namespace sluice {

namespace {

constexpr std::int64_t kTopicRecheckNs = 1'000'000'000;

Status outcome_status(shm::AppendOutcome o, const std::string& topic, std::int32_t partition,
                      std::uint64_t size, std::uint64_t max) {
  std::string where = "topic " + topic + " partition " + std::to_string(partition);
  switch (o) {
    case shm::AppendOutcome::kOk:
      return Status::ok();
    case shm::AppendOutcome::kRecordTooLarge:
      return Status(ErrorCode::kRecordTooLarge, "record of " + std::to_string(size) +
                                                    " bytes is larger than " + where + " allows (" +
                                                    std::to_string(max) + ")");
    case shm::AppendOutcome::kBackPressured:
      return Status(ErrorCode::kBackPressured,
                    where + ": held back until its consumer groups catch up (backpressure policy)");
    case shm::AppendOutcome::kReadOnly:
      return Status(ErrorCode::kPermissionDenied, "permission denied on topic " + topic);
    case shm::AppendOutcome::kRollFailed:
      return Status(ErrorCode::kIo, where + ": could not open the next segment (disk full?)");
    case shm::AppendOutcome::kClosed:
      return Status(ErrorCode::kUnknownTopic, "topic " + topic + " was deleted");
  }
  return Status(ErrorCode::kIo, where + ": append failed");
}

// The public headers as the log's HeaderViews, without allocating for up to 16 of them.
class HeaderBuffer {
 public:
  explicit HeaderBuffer(std::span<const Header> headers) {
    if (headers.size() > small_.size()) large_.reserve(headers.size());
    for (std::size_t i = 0; i < headers.size(); ++i) {
      shm::HeaderView h{headers[i].name, headers[i].value};
      if (headers.size() > small_.size()) {
        large_.push_back(h);
      } else {
        small_[i] = h;
      }
    }
    view_ = headers.size() > small_.size()
                ? std::span<const shm::HeaderView>(large_)
                : std::span<const shm::HeaderView>(small_.data(), headers.size());
  }
  std::span<const shm::HeaderView> view() const { return view_; }

 private:
  std::array<shm::HeaderView, 16> small_{};
  std::vector<shm::HeaderView> large_;
  std::span<const shm::HeaderView> view_;
};

}  // namespace

struct Producer::Impl {
  ProducerConfig config;
  DataDir dir;
  TopicStore store{DataDir{}};

  struct Partition {
    std::shared_ptr<shm::PartitionLog> log;
    std::unique_ptr<shm::LogAppender> appender;
  };
  struct Topic {
    TopicConfig config;
    std::vector<Partition> partitions;
    std::int64_t checked_ns = 0;
    std::uint32_t sticky_count = 0;
    ino_t inode = 0;  // of the topic's directory: a topic deleted and re-created is another
  };
  std::map<std::string, Topic, std::less<>> topics;
  StickyPartitioner sticky{static_cast<std::uint64_t>(shm::monotonic_ns()) ^
                           static_cast<std::uint64_t>(::getpid())};

  BackpressureGate gate{DataDir{}};  // set in open()
  // Maps each partition's next segment before the roll that needs it (a thread, started by
  // the first append), so that a roll costs no mmap on the send path. Shared with the
  // asynchronous worker's Impl.
  std::shared_ptr<shm::SegmentPremapper> premapper = std::make_shared<shm::SegmentPremapper>();

  // The one outstanding zero-copy reservation.
  shm::Claim claim;
  shm::LogAppender* claim_appender = nullptr;

  // Asynchronous sends.
  struct Queued {
    ProducerRecord record;
    Callback callback;
  };
  std::unique_ptr<moodycamel::BlockingConcurrentQueue<Queued>> queue;
  std::thread worker;
  std::atomic<bool> stopping{false};
  std::atomic<std::int64_t> enqueued{0};
  std::atomic<std::int64_t> completed{0};
  std::mutex flush_mutex;
  std::condition_variable flush_cv;
  std::unique_ptr<Impl> worker_producer;  // the worker's own appenders (one per thread)

  ~Impl() {
    if (worker.joinable()) {
      stopping.store(true, std::memory_order_release);
      worker.join();
    }
  }

  Result<Topic*> topic(std::string_view name) {
    auto it = topics.find(name);
    std::int64_t now = shm::monotonic_ns();
    if (it != topics.end() && now - it->second.checked_ns < kTopicRecheckNs) return &it->second;
    auto read = store.read(std::string(name));
    struct stat st {};
    bool present = read && ::stat(dir.topic(std::string(name)).c_str(), &st) == 0;
    if (it != topics.end() && claim_appender == nullptr &&
        (!present || st.st_ino != it->second.inode)) {
      // Deleted, or deleted and created again: the appenders map the deleted files, where
      // records would be acknowledged and never read.
      topics.erase(it);
      it = topics.end();
    }
    if (!read) return read.status();
    if (it == topics.end()) {
      it = topics.emplace(std::string(name), Topic{}).first;
      it->second.inode = present ? st.st_ino : 0;
    }
    Topic& t = it->second;
    t.config = *read;
    t.checked_ns = now;
    // Partitions only grow.
    while (static_cast<std::int32_t>(t.partitions.size()) < read->partitions)
      t.partitions.emplace_back();
    return &t;
  }

  Result<shm::LogAppender*> appender(std::string_view name, Topic& t, std::int32_t p) {
    Partition& part = t.partitions[static_cast<std::size_t>(p)];
    if (part.appender) return part.appender.get();
    shm::LogOptions o;
    o.populate = true;
    o.roll_gate = [this, topic = &t, n = std::string(name), p](shm::PartitionLog& log) {
      return gate.may_grow(topic->config, n, p, log);
    };
    auto log = shm::PartitionLog::open(dir.partition(std::string(name), p), o);
    if (!log) return topic_status(std::string(name), log.status());
    shm::AppenderOptions ao;
    ao.timestamp_mode = config.timestamps == TimestampSource::kCoarse
                            ? shm::TimestampMode::kCoarse
                            : shm::TimestampMode::kWallClock;
    auto a = shm::LogAppender::open(*log, ao);
    if (!a) return topic_status(std::string(name), a.status());
    part.log = *log;
    part.appender = std::make_unique<shm::LogAppender>(std::move(a).value());
    premapper->add(part.log);
    return part.appender.get();
  }

  std::int32_t choose(Topic& t, std::optional<std::string_view> key, std::int32_t partition) {
    auto n = static_cast<std::int32_t>(t.partitions.size());
    if (partition >= 0) return partition;
    if (key) return partition_for_key(*key, n);
    std::int32_t p = sticky.partition(n);
    if (++t.sticky_count >= config.batch_records) {
      t.sticky_count = 0;
      sticky.next_batch();
    }
    return p;
  }

  Result<RecordId> send(std::string_view name, std::optional<std::string_view> key,
                        std::optional<std::string_view> value, std::span<const Header> headers,
                        std::int32_t partition, std::int64_t timestamp_ns,
                        bool after_close = false) {
    auto t = topic(name);
    if (!t) return t.status();
    Topic& topic_state = **t;
    if (partition >= static_cast<std::int32_t>(topic_state.partitions.size()))
      return Status(
          ErrorCode::kInvalidArgument,
          "topic " + std::string(name) + " has no partition " + std::to_string(partition));
    std::int32_t p = choose(topic_state, key, partition);
    auto a = appender(name, topic_state, p);
    if (!a) return a.status();
    shm::RecordMeta meta;
    meta.key = key;
    HeaderBuffer hb(headers);
    meta.headers = hb.view();
    meta.timestamp_ns = timestamp_ns;
    meta.null_value = !value.has_value();
    std::string_view v = value.value_or(std::string_view{});
    std::uint64_t size = v.size() + meta.encoded_prefix_bytes();
    if (size > topic_state.config.max_record_bytes)
      return outcome_status(shm::AppendOutcome::kRecordTooLarge, std::string(name), p, size,
                            topic_state.config.max_record_bytes);
    std::int64_t deadline = -1;
    for (;;) {
      shm::AppendResult r = (*a)->append(v, meta);
      if (r.outcome == shm::AppendOutcome::kOk) return RecordId{p, r.offset};
      if (r.outcome == shm::AppendOutcome::kBackPressured && config.backpressure_timeout_ms > 0) {
        std::int64_t now = shm::monotonic_ns();
        if (deadline < 0) deadline = now + config.backpressure_timeout_ms * 1'000'000;
        if (now < deadline) {
          std::this_thread::sleep_for(std::chrono::microseconds(200));
          continue;
        }
      }
      if (r.outcome == shm::AppendOutcome::kClosed && !after_close) {
        // The topic was deleted under our cached appenders (maybe created again since):
        // forget them and look it up afresh, once.
        topics.erase(topics.find(name));
        return send(name, key, value, headers, partition, timestamp_ns, true);
      }
      if (r.outcome == shm::AppendOutcome::kRollFailed && !(*a)->last_error().is_ok())
        return topic_status(std::string(name), (*a)->last_error());
      return outcome_status(r.outcome, std::string(name), p, size,
                            topic_state.config.max_record_bytes);
    }
  }
};

Producer::Producer(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Producer::Producer(Producer&&) noexcept = default;
Producer& Producer::operator=(Producer&&) noexcept = default;
Producer::~Producer() = default;

Result<Producer> Producer::open(const ProducerConfig& config) {
  auto impl = std::make_unique<Impl>();
  impl->config = config;
  impl->dir = DataDir{config.data_dir};
  impl->store = TopicStore(impl->dir);
  impl->gate = BackpressureGate(impl->dir);
  if (!shm::file_exists(config.data_dir))
    return Status(ErrorCode::kNotFound, "data directory " + config.data_dir +
                                            " does not exist: start `sluiced` or create a topic");
  return Producer(std::move(impl));
}

Result<RecordId> Producer::send(std::string_view topic, std::optional<std::string_view> key,
                                std::optional<std::string_view> value,
                                std::span<const Header> headers, std::int32_t partition,
                                std::int64_t timestamp_ns) {
  if (impl_->claim_appender != nullptr)
    return Status(ErrorCode::kBusy, "commit or abort the open reservation first");
  return impl_->send(topic, key, value, headers, partition, timestamp_ns);
}

Result<Reservation> Producer::claim(std::string_view topic, std::optional<std::string_view> key,
                                    std::uint32_t value_size, std::span<const Header> headers,
                                    std::int32_t partition) {
  Impl& im = *impl_;
  if (im.claim_appender != nullptr)
    return Status(ErrorCode::kBusy, "commit or abort the open reservation first");
  auto t = im.topic(topic);
  if (!t) return t.status();
  if (partition >= static_cast<std::int32_t>((*t)->partitions.size()))
    return Status(ErrorCode::kInvalidArgument,
                  "topic " + std::string(topic) + " has no partition " + std::to_string(partition));
  std::int32_t p = im.choose(**t, key, partition);
  auto a = im.appender(topic, **t, p);
  if (!a) return a.status();
  shm::RecordMeta meta;
  meta.key = key;
  HeaderBuffer hb(headers);
  meta.headers = hb.view();
  std::uint64_t size = value_size + meta.encoded_prefix_bytes();
  if (size > (*t)->config.max_record_bytes)
    return outcome_status(shm::AppendOutcome::kRecordTooLarge, std::string(topic), p, size,
                          (*t)->config.max_record_bytes);
  shm::AppendOutcome o = (*a)->claim(value_size, im.claim, meta);
  if (o != shm::AppendOutcome::kOk)
    return outcome_status(o, std::string(topic), p, size, (*t)->config.max_record_bytes);
  im.claim_appender = *a;
  Reservation r;
  r.value_ = im.claim.value();
  r.id_ = RecordId{p, im.claim.offset()};
  return r;
}

void Producer::commit(Reservation& reservation) {
  if (impl_->claim_appender == nullptr) return;
  impl_->claim_appender->commit(impl_->claim);
  impl_->claim_appender = nullptr;
  reservation.value_ = {};
}

void Producer::abort(Reservation& reservation) {
  if (impl_->claim_appender == nullptr) return;
  impl_->claim_appender->abort(impl_->claim);
  impl_->claim_appender = nullptr;
  reservation.value_ = {};
}

Result<std::int32_t> Producer::partitions(std::string_view topic) {
  auto t = impl_->topic(topic);
  if (!t) return t.status();
  return static_cast<std::int32_t>((*t)->partitions.size());
}

void Producer::send_async(ProducerRecord record, Callback callback) {
  Impl& im = *impl_;
  if (!im.queue) {
    im.queue = std::make_unique<moodycamel::BlockingConcurrentQueue<Impl::Queued>>();
    im.worker_producer = std::make_unique<Impl>();
    im.worker_producer->config = im.config;
    im.worker_producer->dir = im.dir;
    im.worker_producer->gate = BackpressureGate(im.dir);
    im.worker_producer->store = im.store;
    im.worker_producer->premapper = im.premapper;
    im.worker = std::thread([&im] {
      Impl& w = *im.worker_producer;
      Impl::Queued item;
      for (;;) {
        if (!im.queue->wait_dequeue_timed(item, std::chrono::milliseconds(50))) {
          if (im.stopping.load(std::memory_order_acquire)) return;
          continue;
        }
        std::vector<Header> headers;
        for (const auto& [n, v] : item.record.headers)
          headers.push_back(Header{n, v ? std::optional<std::string_view>(*v) : std::nullopt});
        auto opt = [](const std::optional<std::string>& s) {
          return s ? std::optional<std::string_view>(*s) : std::nullopt;
        };
        auto r = w.send(item.record.topic, opt(item.record.key), opt(item.record.value), headers,
                        item.record.partition, item.record.timestamp_ns);
        if (item.callback) item.callback(r);
        {
          std::lock_guard<std::mutex> lock(im.flush_mutex);
          im.completed.fetch_add(1, std::memory_order_release);
        }
        im.flush_cv.notify_all();
      }
    });
  }
  im.enqueued.fetch_add(1, std::memory_order_relaxed);
  im.queue->enqueue(Impl::Queued{std::move(record), std::move(callback)});
}

Status Producer::flush(std::int64_t timeout_ms) {
  Impl& im = *impl_;
  std::int64_t target = im.enqueued.load(std::memory_order_relaxed);
  std::unique_lock<std::mutex> lock(im.flush_mutex);
  auto done = [&] { return im.completed.load(std::memory_order_acquire) >= target; };
  if (timeout_ms < 0) {
    im.flush_cv.wait(lock, done);
  } else if (!im.flush_cv.wait_for(lock, std::chrono::milliseconds(timeout_ms), done)) {
    return Status(ErrorCode::kTimedOut,
                  "flush: records still queued after " + std::to_string(timeout_ms) + " ms");
  }
  return Status::ok();
}

}  // namespace sluice
