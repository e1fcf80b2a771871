#include "sluice/broker.h"

#include <fcntl.h>
#include <grp.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <spdlog/spdlog.h>
#include <algorithm>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <chrono>
#include <condition_variable>
#include <limits>
#include <mutex>
#include <thread>
#include <utility>

#include "broker_core.h"
#include "control_server.h"
#include "data_dir.h"
#include "gateway/broker_link.h"
#include "gateway/gateway.h"
#include "shm/clock.h"
#include "shm/mapped_file.h"
#include "shm/storage_room.h"

namespace sluice {

namespace asio = boost::asio;
using control::json;

namespace {
constexpr std::int64_t kWatchBusyMs = 10;  // the watch tick while records come
// The watch tick while some partition rolls fast (broker::kFastRollMs), and for as long
// after its last fast roll: a producer that fills a segment that fast finds the spare its last
// roll took replaced within a couple of ms, rather than up to a busy tick later, when it may
// already need the next one.
constexpr std::int64_t kWatchRollingMs = 2;
}  // namespace

struct Broker::Impl {
  BrokerConfig config;
  DataDir dir;
  int lock_fd = -1;
  asio::io_context io;
  std::unique_ptr<broker::ControlServer> server;
  std::unique_ptr<broker::BrokerCore> core;
  std::unique_ptr<gateway::BrokerLink> link;
  std::unique_ptr<gateway::Gateway> gateway;  // the Kafka listener, when configured
  asio::steady_timer housekeeping_timer{io};
  // When (monotonic ms) the watch last saw a partition roll fast.
  std::int64_t last_fast_roll_ms = std::numeric_limits<std::int64_t>::min() / 2;
  asio::steady_timer retention_timer{io};
  asio::steady_timer watch_timer{io};
  std::thread thread;
  std::mutex mutex;
  std::condition_variable stopped_cv;
  bool stopped = false;

  ~Impl() {
    if (gateway) gateway->stop();
    if (lock_fd >= 0) ::close(lock_fd);
  }

  Status take_lock() {
    std::string path = dir.lock_file();
    lock_fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, config.file_mode);
    if (lock_fd < 0) return errno_status("open " + path, errno);
    if (::flock(lock_fd, LOCK_EX | LOCK_NB) != 0) {
      char buf[32] = {};
      ssize_t n = ::pread(lock_fd, buf, sizeof buf - 1, 0);
      std::string pid = n > 0 ? std::string(buf, static_cast<std::size_t>(n)) : "unknown";
      while (!pid.empty() && (pid.back() == '\n' || pid.back() == ' ')) pid.pop_back();
      ::close(lock_fd);
      lock_fd = -1;
      return Status(ErrorCode::kBusy, "a broker is already running for " + dir.root + " (pid " +
                                          pid + "); stop it first or use another --data-dir");
    }
    std::string pid = std::to_string(::getpid()) + "\n";
    if (::ftruncate(lock_fd, 0) != 0 ||
        ::pwrite(lock_fd, pid.data(), pid.size(), 0) != static_cast<ssize_t>(pid.size()))
      return errno_status("write " + path, errno);
    return Status::ok();
  }

  void schedule_housekeeping() {
    housekeeping_timer.expires_after(std::chrono::milliseconds(config.housekeeping_ms));
    housekeeping_timer.async_wait([this](const boost::system::error_code& ec) {
      if (ec) return;
      core->housekeeping();
      schedule_housekeeping();
    });
  }

  // The abandoned-claim watchers and the spares of partitions that rolled: every 10 ms while
  // records come, so that each tick's walk is short (a long one held a CPU the gateway's
  // connection threads wanted: at 850k records/s from librdkafka, a 100 ms tick put p90 ack
  // latency at 1.8-3.3 ms, a 10 ms one at 0.9-1.4 ms); every 2 ms while some partition rolls
  // again within 30 ms of its last roll (broker::kFastRollMs; docs/benchmarks.md, "Spares for
  // fast producers"); the interval doubles, up to housekeeping_ms, while nothing comes.
  void schedule_watch(std::int64_t after_ms) {
    watch_timer.expires_after(std::chrono::milliseconds(after_ms));
    watch_timer.async_wait([this, after_ms](const boost::system::error_code& ec) {
      if (ec) return;
      std::int64_t busy_ms = std::min<std::int64_t>(kWatchBusyMs, config.housekeeping_ms);
      broker::BrokerCore::WatchOutcome w = core->watch();
      std::int64_t now = shm::monotonic_ns() / 1'000'000;
      if (w.rolling_fast > 0) last_fast_roll_ms = now;
      if (now - last_fast_roll_ms < broker::kFastRollMs)
        schedule_watch(std::min(kWatchRollingMs, busy_ms));
      else if (w.stepped > 0)
        schedule_watch(busy_ms);
      else
        schedule_watch(std::min(after_ms * 2, std::max(busy_ms, config.housekeeping_ms)));
    });
  }

  void schedule_retention() {
    retention_timer.expires_after(std::chrono::milliseconds(config.retention_check_ms));
    retention_timer.async_wait([this](const boost::system::error_code& ec) {
      if (ec) return;
      core->retention();
      schedule_retention();
    });
  }
};

Broker::Broker(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}

Broker::~Broker() {
  // The gateway first: its threads post to the broker's context.
  if (impl_->gateway) impl_->gateway->stop();
  stop();
  if (impl_->thread.joinable()) impl_->thread.join();
}

const BrokerConfig& Broker::config() const {
  return impl_->config;
}

std::string Broker::kafka_address() const {
  return impl_->gateway ? impl_->gateway->address() : std::string();
}

Result<std::unique_ptr<Broker>> Broker::start(const BrokerConfig& config) {
  auto impl = std::make_unique<Impl>();
  impl->config = config;
  impl->dir = DataDir{config.data_dir};
  FileOwnership own;
  own.file_mode = config.file_mode;
  if (!config.file_group.empty()) {
    struct group* g = ::getgrnam(config.file_group.c_str());
    if (g == nullptr)
      return Status(ErrorCode::kInvalidArgument, "unknown group '" + config.file_group + "'");
    own.group = g->gr_gid;
  }
  if (Status s = shm::make_directories(config.data_dir, 0770); !s) return s;
  // A SLUICE_MIN_FREE_MEMORY that is not a size is refused now, not at the first new file.
  auto room = shm::storage_room(config.data_dir);
  if (!room) return room.status();
  if (own.group != static_cast<gid_t>(-1))
    (void)::chown(config.data_dir.c_str(), static_cast<uid_t>(-1), own.group);
  if (Status s = impl->take_lock(); !s) return s;

  impl->core = std::make_unique<broker::BrokerCore>(config, impl->dir, own);
  if (Status s = impl->core->start(); !s) return s;

  Impl* raw = impl.get();
  impl->server = std::make_unique<broker::ControlServer>(
      impl->io,
      [raw](const std::shared_ptr<broker::Session>& session, json& msg) {
        raw->core->handle(session, msg);
      },
      [raw](const std::shared_ptr<broker::Session>& session) { raw->core->closed(session); });
  if (Status s = impl->server->listen(impl->dir.socket(), config.file_mode); !s) return s;
  if (own.group != static_cast<gid_t>(-1))
    (void)::chown(impl->dir.socket().c_str(), static_cast<uid_t>(-1), own.group);
  if (!config.kafka_listen.empty() && config.kafka_listen != "none") {
    impl->link = std::make_unique<gateway::BrokerLink>(impl->io, *impl->core);
    impl->gateway = std::make_unique<gateway::Gateway>(config, impl->dir, *impl->link);
    if (Status s = impl->gateway->start(); !s) return s;
  }
  impl->schedule_housekeeping();
  impl->schedule_retention();
  impl->schedule_watch(kWatchBusyMs);
  impl->thread = std::thread([raw] {
    raw->io.run();
    std::lock_guard<std::mutex> lock(raw->mutex);
    raw->stopped = true;
    raw->stopped_cv.notify_all();
  });
  spdlog::info("sluiced {} serving {} (pid {})", "0.1", config.data_dir, ::getpid());
  if (room->ram_backed)
    spdlog::info(
        "data directory on {} (its files are memory): {} MiB available{}, {} MiB of it kept "
        "free (SLUICE_MIN_FREE_MEMORY)",
        room->file_system, room->memory_available >> 20,
        room->cgroup_limited ? " under the cgroup's limit" : "", room->memory_reserve >> 20);
  return std::unique_ptr<Broker>(new Broker(std::move(impl)));
}

void Broker::stop() {
  Impl* impl = impl_.get();
  if (impl == nullptr) return;
  asio::post(impl->io, [impl] {
    impl->housekeeping_timer.cancel();
    impl->retention_timer.cancel();
    impl->watch_timer.cancel();
    if (impl->server) impl->server->stop();
    if (impl->core) impl->core->shutdown();
    impl->io.stop();
  });
}

void Broker::wait() {
  std::unique_lock<std::mutex> lock(impl_->mutex);
  impl_->stopped_cv.wait(lock, [this] { return impl_->stopped; });
}

}  // namespace sluice
