// Connection: one Kafka client's TCP connection to the gateway. Splits the byte stream into
// size-prefixed request frames, hands each to the RequestHandler and writes its response.
//
//   read int32 size ─> size <= 0 or > max_request_bytes: log, close
//        │
//   read `size` bytes ─> handler.handle(frame, respond) ─> respond(outcome) (any thread)
//        │                                                      │
//        └──────────── next frame <── write the response <──────┘ (or none: acks=0;
//                                                                  or close: bad request)
//
// One request at a time, as Kafka's own broker does (it mutes a connection until the
// response is sent): responses go back in request order, and the handler may keep
// per-connection state (fetch readers) without locks. A connection idle for
// idle_timeout_ms is closed.
//
// Thread-safety: every handler of a connection runs on its strand; respond() may be called
// from any thread (it posts to the strand).
#pragma once

#include <utility>  // before Boost 1.74 Asio, whose awaitable.hpp uses std::exchange

#include <boost/asio.hpp>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>

#include "connection_state.h"

namespace sluice::gateway {

// What a request handler answers: a whole response frame (size prefix included), nothing
// (Produce with acks=0), or "close the connection" (malformed or unsupported request).
struct Outcome {
  std::string frame;  // empty: no response
  bool close = false;
  std::string reason;  // why it closes, for the log
};

using Respond = std::function<void(Outcome)>;

class RequestHandler;

struct ConnectionLimits {
  std::int32_t max_request_bytes = 100 * 1024 * 1024;
  std::int64_t idle_timeout_ms = 600'000;
};

class Connection : public std::enable_shared_from_this<Connection> {
 public:
  using Socket = boost::asio::ip::tcp::socket;
  Connection(Socket socket, RequestHandler& handler, ConnectionLimits limits,
             std::function<void(Connection&)> on_close);
  ~Connection();

  void start();
  void close();  // from the connection's strand
  const std::string& peer() const { return state_.peer; }
  const std::string& peer_host() const { return peer_host_; }
  Socket::executor_type executor() { return socket_.get_executor(); }

 private:
  void read_size();
  void read_body(std::uint32_t size);
  void dispatch();
  void finish(Outcome outcome);
  void arm_idle_timer();

  Socket socket_;
  boost::asio::steady_timer idle_;
  RequestHandler& handler_;
  ConnectionLimits limits_;
  std::function<void(Connection&)> on_close_;
  ConnectionState state_;
  std::string peer_host_;
  char size_buf_[4] = {};
  std::string frame_;
  std::string out_;
  bool closed_ = false;
};

}  // namespace sluice::gateway
