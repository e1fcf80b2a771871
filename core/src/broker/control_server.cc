#include "control_server.h"

#include <sys/stat.h>
#include <unistd.h>

#include <spdlog/spdlog.h>
#include <boost/asio/buffers_iterator.hpp>
#include <boost/asio/read_until.hpp>
#include <boost/asio/write.hpp>

namespace sluice::broker {

namespace asio = boost::asio;
using control::json;

void Session::send(const json& message) {
  if (!open_ || closing_) return;
  // Replace, not throw: strings that come from clients (ids, names) may hold invalid UTF-8,
  // and dump() would throw on them out of the io_context.
  outbox_.push_back(message.dump(-1, ' ', false, json::error_handler_t::replace) + "\n");
  outbox_bytes_ += outbox_.back().size();
  if (outbox_.size() > kMaxOutboxMessages || outbox_bytes_ > kMaxOutboxBytes) {
    spdlog::warn(
        "control connection {} (client '{}', pid {}) is not reading its replies: {} messages, "
        "{} bytes queued (limits {} messages, {} bytes); closing it",
        id_, client_id, pid, outbox_.size(), outbox_bytes_, kMaxOutboxMessages, kMaxOutboxBytes);
    closing_ = true;
    // Deferred: send() runs inside request handlers and event dispatch, and close() reports
    // the session's members dead, which must not happen under their feet.
    asio::post(socket_.get_executor(), [self = shared_from_this()] { self->close(); });
    return;
  }
  if (!writing_) write_next();
}

void Session::write_next() {
  if (outbox_.empty() || !open_) {
    writing_ = false;
    return;
  }
  writing_ = true;
  asio::async_write(socket_, asio::buffer(outbox_.front()),
                    [self = shared_from_this()](const boost::system::error_code& ec, std::size_t) {
                      if (ec) {
                        self->close();
                        return;
                      }
                      self->outbox_bytes_ -= self->outbox_.front().size();
                      self->outbox_.pop_front();
                      self->write_next();
                    });
}

void Session::close() {
  if (!open_) return;
  open_ = false;
  boost::system::error_code ignored;
  socket_.shutdown(Socket::shutdown_both, ignored);
  socket_.close(ignored);
  if (on_close_) on_close_(shared_from_this());
}

void Session::read_next() {
  asio::async_read_until(
      socket_, buffer_, '\n',
      [self = shared_from_this()](const boost::system::error_code& ec, std::size_t n) {
        if (ec) {
          if (ec == asio::error::not_found) {
            // The line outgrew the buffer's limit.
            self->send({{"ok", false},
                        {"error", control::error_body(Status(
                                      ErrorCode::kProtocol,
                                      "control line longer than " +
                                          std::to_string(control::kMaxLineBytes) + " bytes"))}});
          }
          self->close();
          return;
        }
        std::string line(
            asio::buffers_begin(self->buffer_.data()),
            asio::buffers_begin(self->buffer_.data()) + static_cast<std::ptrdiff_t>(n - 1));
        self->buffer_.consume(n);
        json msg = json::parse(line, nullptr, false);
        if (msg.is_discarded() || !msg.is_object() || !msg.contains("op") ||
            !msg["op"].is_string()) {
          self->send({{"ok", false},
                      {"error", control::error_body(
                                    Status(ErrorCode::kProtocol,
                                           "malformed control message: expected a JSON object with "
                                           "an \"op\" string"))}});
          self->close();
          return;
        }
        if (self->on_message_) {
          try {
            self->on_message_(self, msg);
          } catch (const std::exception& e) {
            // A request the handlers did not expect: drop this connection, keep the broker.
            self->send({{"ok", false},
                        {"error",
                         control::error_body(Status(ErrorCode::kProtocol,
                                                    std::string("request failed: ") + e.what()))}});
            self->close();
            return;
          }
        }
        if (self->open_ && !self->closing_) self->read_next();
      });
}

Status ControlServer::listen(const std::string& path, mode_t mode) {
  path_ = path;
  ::unlink(path.c_str());
  try {
    acceptor_ = std::make_unique<asio::local::stream_protocol::acceptor>(
        io_, asio::local::stream_protocol::endpoint(path));
  } catch (const boost::system::system_error& e) {
    return Status(ErrorCode::kIo, "listen on " + path + ": " + e.code().message());
  }
  ::chmod(path.c_str(), mode);
  accept_next();
  return Status::ok();
}

void ControlServer::accept_next() {
  acceptor_->async_accept(
      [this](const boost::system::error_code& ec, asio::local::stream_protocol::socket socket) {
        if (ec) {
          if (ec == asio::error::operation_aborted) return;
          accept_next();
          return;
        }
        auto session = std::make_shared<Session>(std::move(socket), next_session_++);
        session->on_message_ = on_message_;
        session->on_close_ = on_close_;
        session->read_next();
        accept_next();
      });
}

void ControlServer::stop() {
  if (acceptor_) {
    boost::system::error_code ignored;
    acceptor_->close(ignored);
  }
  if (!path_.empty()) ::unlink(path_.c_str());
}

}  // namespace sluice::broker
