#include "connection.h"

#include <spdlog/spdlog.h>

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
  read_size();
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

void Connection::read_size() {
  asio::async_read(socket_, asio::buffer(size_buf_, 4),
                   [self = shared_from_this()](const boost::system::error_code& ec, std::size_t) {
                     if (ec) return self->close();
                     std::uint32_t be;
                     std::memcpy(&be, self->size_buf_, 4);
                     auto size = static_cast<std::int32_t>(__builtin_bswap32(be));
                     if (size <= 0 || size > self->limits_.max_request_bytes) {
                       spdlog::warn(
                           "kafka gateway: closing {}: request size {} outside 1..{} bytes",
                           self->state_.peer, size, self->limits_.max_request_bytes);
                       return self->close();
                     }
                     self->read_body(static_cast<std::uint32_t>(size));
                   });
}

void Connection::read_body(std::uint32_t size) {
  frame_.resize(size);
  asio::async_read(socket_, asio::buffer(frame_.data(), size),
                   [self = shared_from_this()](const boost::system::error_code& ec, std::size_t) {
                     if (ec) return self->close();
                     self->dispatch();
                   });
}

void Connection::dispatch() {
  arm_idle_timer();
  auto self = shared_from_this();
  auto executor = socket_.get_executor();
  handler_.handle(state_, frame_, [self, executor](Outcome outcome) {
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
  if (outcome.frame.empty()) return read_size();
  out_ = std::move(outcome.frame);
  asio::async_write(socket_, asio::buffer(out_),
                    [self = shared_from_this()](const boost::system::error_code& ec, std::size_t) {
                      if (ec) return self->close();
                      self->out_.clear();
                      self->state_.spare_frame.swap(self->out_);  // reused by the next response
                      self->read_size();
                    });
}

}  // namespace sluice::gateway
