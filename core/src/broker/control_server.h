// ControlServer: the broker's Unix-socket listener (Boost.Asio). Splits each connection into
// JSON lines (control_protocol.h) and hands them to the broker's handler; writes responses
// and events back in order. A line that is not a JSON object, or longer than kMaxLineBytes,
// gets an error response and the connection is closed: client input never crashes the broker.
// Replies wait in a per-connection outbox while the socket is full; a client that never reads
// them is disconnected once the outbox passes kMaxOutboxMessages or kMaxOutboxBytes.
//
// Thread-safety: runs on the broker's io_context; the handler is called on that context.
// Session::send may be called from the context's threads only (post to it otherwise).
#pragma once

#include <boost/asio/io_context.hpp>
#include <boost/asio/local/stream_protocol.hpp>
#include <boost/asio/streambuf.hpp>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <string>
#include <utility>

#include "control_protocol.h"
#include "sluice/status.h"

namespace sluice::broker {

// Bounds of one connection's outbox (responses and events the client has not read yet). A
// well-behaved client has a few in flight (its requests are answered in order, events are
// rare); thousands mean it stopped reading, and the broker must not hold its replies without
// bound. Past either bound the session is closed with a warning: as with any close, the
// connection's group members lose their lease.
inline constexpr std::size_t kMaxOutboxMessages = 4096;
inline constexpr std::size_t kMaxOutboxBytes = std::size_t{16} << 20;  // 16 MiB

class Session : public std::enable_shared_from_this<Session> {
 public:
  using Socket = boost::asio::local::stream_protocol::socket;
  Session(Socket socket, std::uint64_t id) : socket_(std::move(socket)), id_(id) {}

  std::uint64_t id() const { return id_; }
  void send(const control::json& message);
  void close();
  bool open() const { return open_; }

  // Set by the broker after "hello".
  std::string client_id;
  int pid = 0;

 private:
  friend class ControlServer;
  void read_next();
  void write_next();

  Socket socket_;
  std::uint64_t id_;
  boost::asio::streambuf buffer_{control::kMaxLineBytes};
  std::deque<std::string> outbox_;
  std::size_t outbox_bytes_ = 0;  // sum of the outbox_ strings' sizes
  bool writing_ = false;
  bool open_ = true;
  // The outbox overflowed: the session drops what it would send and stops reading; its close
  // is posted (not run inside send, whose callers may be iterating the members it removes).
  bool closing_ = false;
  std::function<void(const std::shared_ptr<Session>&, control::json&)> on_message_;
  std::function<void(const std::shared_ptr<Session>&)> on_close_;
};

class ControlServer {
 public:
  using MessageHandler = std::function<void(const std::shared_ptr<Session>&, control::json&)>;
  using CloseHandler = std::function<void(const std::shared_ptr<Session>&)>;

  ControlServer(boost::asio::io_context& io, MessageHandler on_message, CloseHandler on_close)
      : io_(io), on_message_(std::move(on_message)), on_close_(std::move(on_close)) {}

  // Binds the socket (replacing a stale file: the caller holds the data directory's lock).
  Status listen(const std::string& path, mode_t mode);
  void stop();

 private:
  void accept_next();

  boost::asio::io_context& io_;
  std::unique_ptr<boost::asio::local::stream_protocol::acceptor> acceptor_;
  MessageHandler on_message_;
  CloseHandler on_close_;
  std::uint64_t next_session_ = 1;
  std::string path_;
};

}  // namespace sluice::broker
