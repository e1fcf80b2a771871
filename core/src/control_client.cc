#include "control_client.h"

#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <concurrentqueue/concurrentqueue.h>
#include <cstring>

namespace sluice {

using control::json;

Status no_broker_status(const DataDir& dir) {
  return Status(ErrorCode::kNoBroker, "no broker is running for " + dir.root +
                                          ": start it with `sluiced --data-dir " + dir.root + "`");
}

Result<std::unique_ptr<ControlClient>> ControlClient::connect(const DataDir& dir,
                                                              const std::string& client_id) {
  std::string path = dir.socket();
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  if (path.size() >= sizeof addr.sun_path)
    return Status(ErrorCode::kInvalidArgument,
                  "data directory path too long for a socket: " + path);
  std::memcpy(addr.sun_path, path.c_str(), path.size() + 1);
  int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return errno_status("socket", errno);
  if (::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
    int err = errno;
    ::close(fd);
    if (err == ENOENT || err == ECONNREFUSED) return no_broker_status(dir);
    if (err == EACCES)
      return Status(ErrorCode::kPermissionDenied, "permission denied on the broker socket " + path);
    return errno_status("connect " + path, err);
  }
  std::unique_ptr<ControlClient> c(new ControlClient());
  c->dir_ = dir;
  c->fd_ = fd;
  c->events_ = std::make_unique<
      moodycamel::ConcurrentQueue<json, moodycamel::ConcurrentQueueDefaultTraits>>();
  c->connected_.store(true, std::memory_order_release);
  c->reader_ = std::thread([raw = c.get()] { raw->reader_loop(); });
  auto hello = c->request("hello",
                          {{"client_id", client_id},
                           {"pid", static_cast<int>(::getpid())},
                           {"version", control::kProtocolVersion}},
                          10000);
  if (!hello) return hello.status();
  c->broker_pid_ = hello->value("pid", 0);
  return c;
}

ControlClient::~ControlClient() {
  if (fd_ >= 0) ::shutdown(fd_, SHUT_RDWR);
  if (reader_.joinable()) reader_.join();
  if (fd_ >= 0) ::close(fd_);
}

Status ControlClient::write_line(const std::string& line) {
  std::lock_guard<std::mutex> lock(write_mutex_);
  const char* p = line.data();
  std::size_t left = line.size();
  while (left > 0) {
    ssize_t n = ::send(fd_, p, left, MSG_NOSIGNAL);
    if (n < 0) {
      if (errno == EINTR) continue;
      connected_.store(false, std::memory_order_release);
      return no_broker_status(dir_);
    }
    p += n;
    left -= static_cast<std::size_t>(n);
  }
  return Status::ok();
}

Result<json> ControlClient::request(const std::string& op, json body, std::int64_t timeout_ms) {
  if (!connected()) return no_broker_status(dir_);
  std::int64_t id = next_id_.fetch_add(1, std::memory_order_relaxed);
  body["id"] = id;
  body["op"] = op;
  auto pending = std::make_shared<Pending>();
  {
    std::lock_guard<std::mutex> lock(mutex_);
    pending_[id] = pending;
  }
  if (Status s = write_line(body.dump() + "\n"); !s) {
    std::lock_guard<std::mutex> lock(mutex_);
    pending_.erase(id);
    return s;
  }
  std::unique_lock<std::mutex> lock(mutex_);
  auto done = [&] { return pending->done; };
  if (timeout_ms < 0) {
    cv_.wait(lock, done);
  } else if (!cv_.wait_for(lock, std::chrono::milliseconds(timeout_ms), done)) {
    pending_.erase(id);
    return Status(ErrorCode::kTimedOut, "the broker did not answer " + op + " within " +
                                            std::to_string(timeout_ms) + " ms");
  }
  json response = std::move(pending->response);
  if (Status s = control::status_from(response); !s) return s;
  return response;
}

void ControlClient::send(const std::string& op, json body) {
  body["id"] = next_id_.fetch_add(1, std::memory_order_relaxed);
  body["op"] = op;
  body["no_reply"] = true;
  (void)write_line(body.dump() + "\n");
}

bool ControlClient::pop_event(json& event) {
  return events_->try_dequeue(event);
}

void ControlClient::fail_all(const Status& s) {
  std::lock_guard<std::mutex> lock(mutex_);
  for (auto& [id, p] : pending_) {
    p->response = {{"id", id}, {"ok", false}, {"error", control::error_body(s)}};
    p->done = true;
  }
  pending_.clear();
  cv_.notify_all();
}

void ControlClient::reader_loop() {
  std::string buffer;
  char chunk[65536];
  for (;;) {
    ssize_t n = ::recv(fd_, chunk, sizeof chunk, 0);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    buffer.append(chunk, static_cast<std::size_t>(n));
    std::size_t start = 0;
    for (std::size_t nl; (nl = buffer.find('\n', start)) != std::string::npos; start = nl + 1) {
      json msg = json::parse(buffer.begin() + static_cast<std::ptrdiff_t>(start),
                             buffer.begin() + static_cast<std::ptrdiff_t>(nl), nullptr, false);
      if (msg.is_discarded() || !msg.is_object()) continue;
      if (msg.contains("event")) {
        events_->enqueue(std::move(msg));
        continue;
      }
      std::int64_t id = msg.value("id", std::int64_t{-1});
      std::lock_guard<std::mutex> lock(mutex_);
      auto it = pending_.find(id);
      if (it == pending_.end()) continue;
      it->second->response = std::move(msg);
      it->second->done = true;
      pending_.erase(it);
      cv_.notify_all();
    }
    buffer.erase(0, start);
    if (buffer.size() > control::kMaxLineBytes) break;
  }
  connected_.store(false, std::memory_order_release);
  fail_all(no_broker_status(dir_));
  json gone = {{"event", "disconnected"}};
  events_->enqueue(std::move(gone));
}

}  // namespace sluice
