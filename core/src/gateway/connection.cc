#include "connection.h"

#include <spdlog/spdlog.h>
#include <boost/asio/dispatch.hpp>
#include <boost/asio/write.hpp>

#include <algorithm>
#include <cstring>

#include "request_handler.h"

namespace sluice::gateway {

namespace asio = boost::asio;

Connection::Connection(Socket socket, RequestHandler& handler, ConnectionLimits limits,
                       std::function<void(Connection&)> on_close)
    : socket_(std::move(socket)),
      idle_(socket_.get_executor()),
      handler_(handler),
      limits_(limits),
      on_close_(std::move(on_close)) {
  boost::system::error_code ec;
  auto ep = socket_.remote_endpoint(ec);
  if (!ec) {
    peer_host_ = ep.address().to_string();
    state_.peer = peer_host_ + ":" + std::to_string(ep.port());
  }
  socket_.set_option(asio::ip::tcp::no_delay(true), ec);
}

Connection::~Connection() = default;

void Connection::start() {
  arm_idle_timer();
  next_request();
}

void Connection::arm_idle_timer() {
  idle_.expires_after(std::chrono::milliseconds(limits_.idle_timeout_ms));
  idle_.async_wait([self = shared_from_this()](const boost::system::error_code& ec) {
    if (ec) return;  // re-armed or closed
    spdlog::info("kafka gateway: closing {}: idle for {} ms", self->state_.peer,
                 self->limits_.idle_timeout_ms);
    self->close();
  });
}

void Connection::close() {
  if (closed_) return;
  closed_ = true;
  boost::system::error_code ec;
  idle_.cancel();
  socket_.shutdown(asio::ip::tcp::socket::shutdown_both, ec);
  socket_.close(ec);
  handler_.connection_closed(state_);
  if (on_close_) on_close_(*this);
}

namespace {
constexpr std::size_t kReadChunk = 64 * 1024;
// Answers held back for one write (see next_request): at most this many, or bytes.
constexpr std::size_t kMaxPendingResponses = 64;
constexpr std::size_t kMaxPendingBytes = 256 * 1024;
}  // namespace

void Connection::next_request() {
  if (closed_) return;
  in_begin_ += in_frame_;  // the frame just answered
  in_frame_ = 0;
  std::size_t have = in_end_ - in_begin_;
  if (have == 0 && in_.size() > 16 * kReadChunk) {
    // A large request came and went: give its memory back.
    in_ = std::vector<char>();
    in_begin_ = in_end_ = 0;
  }
  std::int32_t size = -1;  // of the next frame, when its size prefix is buffered
  if (have >= 4) {
    std::uint32_t be;
    std::memcpy(&be, in_.data() + in_begin_, 4);
    size = static_cast<std::int32_t>(__builtin_bswap32(be));
  }
  bool valid = size > 0 && size <= limits_.max_request_bytes;
  bool whole = valid && have >= 4 + static_cast<std::size_t>(size);
  if (!pending_.empty()) {
    // Answered requests wait only while the next one is already here whole, is a Produce
    // (answered at once: a Fetch may wait for records, a JoinGroup for the other members),
    // and the answers borrow no buffer that it may reuse: they go out together, in order, in
    // one write. Anything else (more to read, another request, a bad frame, enough
    // gathered) sends them first.
    if (whole && size >= 2 && next_is_produce() && !pending_borrows_ &&
        pending_.size() < kMaxPendingResponses && pending_bytes_ < kMaxPendingBytes)
      return dispatch(static_cast<std::size_t>(size));
    return write_pending();
  }
  if (have < 4) return read_more(4);
  if (!valid) {
    spdlog::warn("kafka gateway: closing {}: request size {} outside 1..{} bytes", state_.peer,
                 size, limits_.max_request_bytes);
    return close();
  }
  if (!whole) return read_more(4 + static_cast<std::size_t>(size));
  dispatch(static_cast<std::size_t>(size));
}

bool Connection::next_is_produce() const {
  // The request header starts with the int16 API key, big-endian; Produce is 0.
  return in_[in_begin_ + 4] == 0 && in_[in_begin_ + 5] == 0;
}

void Connection::read_more(std::size_t need) {
  // Make room for `need` bytes from in_begin_: move what is left to the front, grow if the
  // frame is larger than the buffer (bounded by max_request_bytes + 4, checked above).
  if (in_begin_ > 0) {
    std::memmove(in_.data(), in_.data() + in_begin_, in_end_ - in_begin_);
    in_end_ -= in_begin_;
    in_begin_ = 0;
  }
  std::size_t want = std::max(need, kReadChunk);
  if (in_.size() < want) in_.resize(want);
  socket_.async_read_some(
      asio::buffer(in_.data() + in_end_, in_.size() - in_end_),
      [self = shared_from_this()](const boost::system::error_code& ec, std::size_t n) {
        if (ec) return self->close();
        self->in_end_ += n;
        self->next_request();
      });
}

void Connection::dispatch(std::size_t size) {
  arm_idle_timer();
  in_frame_ = 4 + size;
  std::string_view frame(in_.data() + in_begin_ + 4, size);
  auto self = shared_from_this();
  auto executor = socket_.get_executor();
  handler_.handle(state_, frame, [self, executor](Outcome outcome) {
    asio::dispatch(executor, [self, outcome = std::move(outcome)]() mutable {
      self->finish(std::move(outcome));
    });
  });
}

void Connection::finish(Outcome outcome) {
  if (closed_) return;
  if (outcome.close) {
    spdlog::warn("kafka gateway: closing {}: {}", state_.peer, outcome.reason);
    return close();
  }
  if (!outcome.frame.empty()) {
    pending_bytes_ += outcome.frame.size();
    for (const kafka::GatheredBytes& g : outcome.gathered) pending_bytes_ += g.bytes.size();
    pending_borrows_ = pending_borrows_ || !outcome.gathered.empty();
    pending_.push_back(std::move(outcome));
  }
  next_request();
}

void Connection::write_pending() {
  writing_.swap(pending_);
  pending_.clear();
  pending_bytes_ = 0;
  pending_borrows_ = false;
  // One gathering write: each response's frame interleaved with the bytes it sends from
  // elsewhere.
  out_buffers_.clear();
  for (const Outcome& o : writing_) {
    std::size_t from = 0;
    for (const kafka::GatheredBytes& g : o.gathered) {
      out_buffers_.push_back(asio::buffer(o.frame.data() + from, g.at - from));
      out_buffers_.push_back(asio::buffer(g.bytes.data(), g.bytes.size()));
      from = g.at;
    }
    out_buffers_.push_back(asio::buffer(o.frame.data() + from, o.frame.size() - from));
  }
  asio::async_write(socket_, out_buffers_,
                    [self = shared_from_this()](const boost::system::error_code& ec, std::size_t) {
                      if (ec) return self->close();
                      // The last frame's memory is reused by the next response.
                      std::string& last = self->writing_.back().frame;
                      last.clear();
                      self->state_.spare_frame.swap(last);
                      self->writing_.clear();
                      self->next_request();
                    });
}

}  // namespace sluice::gateway
