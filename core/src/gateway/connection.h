// Connection: one Kafka client's TCP connection to the gateway. Splits the byte stream into
// size-prefixed request frames, hands each to the RequestHandler and writes its response.
//
//   buffered bytes ─ a whole frame? ─ no ─> read_some into the buffer (growing it up to
//        │                                  max_request_bytes + 4), then look again
//        │ yes (int32 size <= 0 or > max_request_bytes: log, close)
//        v
//   handler.handle(frame view, respond) ─> respond(outcome) (any thread)
//        ^                                       │
//        └── next frame <── hold the response ───┘ (or none: acks=0;
//            (write the held ones first, unless     or close: bad request)
//             the next frame is buffered whole)
//
// One request at a time, as Kafka's own broker does (it mutes a connection until the
// response is sent): responses go back in request order, and the handler may keep
// per-connection state (fetch readers) without locks. Reads are buffered: a client that
// pipelines requests (librdkafka does) has several taken from one read system call, and a
// request is handed over as a view into the buffer, which stays put until it is answered.
// Their answers go out together: an answer waits while the next request is already buffered
// whole and is a Produce (up to 64 answers or 256 KiB), so that a burst of pipelined Produce
// requests costs one write and one wake-up of the client, not one each. Before any other
// request (a Fetch may wait for records, a JoinGroup for other members) the answers are
// written, and so is a Fetch answer, which sends the connection's record buffers.
// A connection idle for idle_timeout_ms is closed.
//
// Thread-safety: every handler of a connection runs on its strand; respond() may be called
// from any thread (it posts to the strand).
#pragma once

#include <boost/asio/buffer.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/steady_timer.hpp>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "connection_state.h"
#include "kafka/messages.h"

namespace sluice::gateway {

// What a request handler answers: a whole response frame (size prefix included), nothing
// (Produce with acks=0), or "close the connection" (malformed or unsupported request).
struct Outcome {
  std::string frame;  // empty: no response
  bool close = false;
  std::string reason;  // why it closes, for the log
  // Bytes sent inside the frame from buffers of their own, in order: each goes after frame
  // byte `at` (Fetch's record batches, kafka::encode_gathered). The buffers must stay put
  // until the connection's next request is handled: ConnectionState::record_buffers do.
  std::vector<kafka::GatheredBytes> gathered = {};
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
  void next_request();  // dispatches a buffered frame, or reads more
  void read_more(std::size_t need);
  void dispatch(std::size_t size);
  void finish(Outcome outcome);
  void write_pending();
  bool next_is_produce() const;  // the buffered frame at in_begin_ (its size is at least 2)
  void arm_idle_timer();

  Socket socket_;
  boost::asio::steady_timer idle_;
  RequestHandler& handler_;
  ConnectionLimits limits_;
  std::function<void(Connection&)> on_close_;
  ConnectionState state_;
  std::string peer_host_;
  std::vector<char> in_;  // received bytes: [in_begin_, in_end_) not yet consumed
  std::size_t in_begin_ = 0;
  std::size_t in_end_ = 0;
  std::size_t in_frame_ = 0;  // bytes of the frame being handled (consumed once answered)
  // Answers not yet written (see next_request), and those being written.
  std::vector<Outcome> pending_;
  std::size_t pending_bytes_ = 0;
  bool pending_borrows_ = false;  // one of them sends ConnectionState::record_buffers
  std::vector<Outcome> writing_;
  std::vector<boost::asio::const_buffer> out_buffers_;  // writing_'s pieces, in order
  bool closed_ = false;
};

}  // namespace sluice::gateway
