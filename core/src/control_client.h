// ControlClient: a client's connection to the broker's control socket (control_protocol.h).
// Requests wait for their response; events (rebalance notices) are queued for the owner to
// take. The connection is also the client's liveness lease: when this process dies, the
// kernel closes it and the broker knows at once.
//
// Thread-safety: request() may be called from any thread; one internal thread reads the
// socket. Events are handed over through a moodycamel ConcurrentQueue.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>

#include "control_protocol.h"
#include "data_dir.h"
#include "sluice/status.h"

namespace moodycamel {
template <typename T, typename Traits>
class ConcurrentQueue;
struct ConcurrentQueueDefaultTraits;
}  // namespace moodycamel

namespace sluice {

class ControlClient {
 public:
  // kNoBroker with "no broker is running for DIR: start it with `sluiced`" when nothing
  // listens on the socket.
  static Result<std::unique_ptr<ControlClient>> connect(const DataDir& dir,
                                                        const std::string& client_id);
  ~ControlClient();

  // Sends {"op": op, ...body} and waits for the response (timeout_ms < 0: no limit).
  Result<control::json> request(const std::string& op, control::json body,
                                std::int64_t timeout_ms = 30000);
  // Sends without waiting; the response is dropped.
  void send(const std::string& op, control::json body);

  bool pop_event(control::json& event);
  bool connected() const { return connected_.load(std::memory_order_acquire); }
  int broker_pid() const { return broker_pid_; }
  const DataDir& dir() const { return dir_; }

 private:
  ControlClient() = default;
  void reader_loop();
  Status write_line(const std::string& line);
  void fail_all(const Status& s);

  DataDir dir_;
  int fd_ = -1;
  int broker_pid_ = 0;
  std::atomic<bool> connected_{false};
  std::atomic<std::int64_t> next_id_{1};
  std::mutex write_mutex_;
  std::mutex mutex_;  // guards pending_
  std::condition_variable cv_;
  struct Pending {
    bool done = false;
    control::json response;
  };
  std::map<std::int64_t, std::shared_ptr<Pending>> pending_;
  std::unique_ptr<
      moodycamel::ConcurrentQueue<control::json, moodycamel::ConcurrentQueueDefaultTraits>>
      events_;
  std::thread reader_;
};

// The error clients get when no broker answers.
Status no_broker_status(const DataDir& dir);

}  // namespace sluice
