#include "gateway.h"

#include <spdlog/spdlog.h>
#include <boost/asio/dispatch.hpp>

#include <algorithm>

#include "request_handler.h"

namespace sluice::gateway {

namespace asio = boost::asio;
using asio::ip::tcp;

Result<std::pair<std::string, std::uint16_t>> parse_host_port(const std::string& text) {
  auto colon = text.rfind(':');
  if (colon == std::string::npos || colon == 0 || colon + 1 == text.size())
    return Status(ErrorCode::kInvalidArgument, "'" + text + "' is not HOST:PORT");
  std::string host = text.substr(0, colon);
  if (host.size() > 2 && host.front() == '[' && host.back() == ']')
    host = host.substr(1, host.size() - 2);
  const std::string port_text = text.substr(colon + 1);
  if (!std::all_of(port_text.begin(), port_text.end(),
                   [](char c) { return c >= '0' && c <= '9'; }) ||
      port_text.size() > 5 || std::stoi(port_text) > 65535)
    return Status(ErrorCode::kInvalidArgument, "'" + text + "': the port must be 0..65535");
  return std::pair<std::string, std::uint16_t>{host,
                                               static_cast<std::uint16_t>(std::stoi(port_text))};
}

Gateway::Gateway(const BrokerConfig& config, DataDir dir, BrokerLink& broker)
    : config_(config), acceptor_(io_) {
  handler_ = std::make_unique<RequestHandler>(config_, std::move(dir), broker, io_);
}

Gateway::~Gateway() {
  stop();
}

Status Gateway::start() {
  auto hp = parse_host_port(config_.kafka_listen);
  if (!hp) return Status(hp.status().code(), "--listen: " + hp.status().message());
  boost::system::error_code ec;
  tcp::resolver resolver(io_);
  auto results = resolver.resolve(hp->first, std::to_string(hp->second), ec);
  if (ec || results.empty())
    return Status(ErrorCode::kInvalidArgument,
                  "kafka gateway: cannot resolve " + config_.kafka_listen + ": " + ec.message());
  tcp::endpoint ep = results.begin()->endpoint();
  acceptor_.open(ep.protocol(), ec);
  if (!ec) acceptor_.set_option(tcp::acceptor::reuse_address(true), ec);
  if (!ec) acceptor_.bind(ep, ec);
  if (!ec) acceptor_.listen(asio::socket_base::max_listen_connections, ec);
  if (ec)
    return Status(ErrorCode::kIo,
                  "kafka gateway: cannot listen on " + config_.kafka_listen + ": " + ec.message() +
                      " (choose another with --listen HOST:PORT, or --listen none)");
  auto local = acceptor_.local_endpoint(ec);
  std::string host = local.address().to_string();
  if (local.address().is_v6()) host = "[" + host + "]";
  bound_ = host + ":" + std::to_string(local.port());
  if (Status s = handler_->start(bound_); !s) return s;

  unsigned n = config_.kafka_threads > 0 ? static_cast<unsigned>(config_.kafka_threads)
                                         : std::clamp(std::thread::hardware_concurrency(), 1u, 8u);
  for (unsigned i = 0; i < n; ++i) {
    auto lane = std::make_unique<Lane>();
    lane->work.emplace(lane->io.get_executor());
    lanes_.push_back(std::move(lane));
  }
  work_.emplace(io_.get_executor());
  accept_next();
  threads_.emplace_back([this] { io_.run(); });
  for (auto& lane : lanes_) threads_.emplace_back([io = &lane->io] { io->run(); });
  spdlog::info(
      "kafka gateway listening on {} (advertised as {}), {} connection threads and 1 other", bound_,
      handler_->advertised(), n);
  return Status::ok();
}

void Gateway::accept_next() {
  // Connections are dealt to the lanes in turn; each lives on its lane's thread.
  asio::io_context& lane = lanes_[next_lane_++ % lanes_.size()]->io;
  acceptor_.async_accept(
      lane.get_executor(), [this](const boost::system::error_code& ec, tcp::socket socket) {
        if (ec == asio::error::operation_aborted || !acceptor_.is_open()) return;
        if (!ec) {
          boost::system::error_code rec;
          std::string host = socket.remote_endpoint(rec).address().to_string();
          std::lock_guard<std::mutex> lock(mutex_);
          if (per_host_[host] >= config_.kafka_max_connections_per_host) {
            spdlog::warn("kafka gateway: refusing a connection from {}: it has {} already (limit)",
                         host, per_host_[host]);
            socket.close(rec);
          } else {
            ++per_host_[host];
            auto conn = std::make_shared<Connection>(
                std::move(socket), *handler_,
                ConnectionLimits{config_.kafka_max_request_bytes, config_.kafka_idle_timeout_ms},
                [this, host](Connection& c) {
                  std::lock_guard<std::mutex> l(mutex_);
                  if (--per_host_[host] <= 0) per_host_.erase(host);
                  connections_.erase(&c);
                });
            connections_[conn.get()] = conn;
            asio::dispatch(conn->executor(), [conn] { conn->start(); });
          }
        } else {
          spdlog::warn("kafka gateway: accept failed: {}", ec.message());
        }
        accept_next();
      });
}

void Gateway::stop() {
  if (threads_.empty()) return;
  asio::post(io_, [this] {
    boost::system::error_code ec;
    acceptor_.close(ec);
  });
  {
    std::lock_guard<std::mutex> lock(mutex_);
    for (auto& [raw, weak] : connections_) {
      if (auto c = weak.lock()) {
        // Close on the connection's own thread.
        asio::post(c->executor(), [c] { c->close(); });
      }
    }
  }
  handler_->stop();
  work_.reset();
  io_.stop();
  for (auto& lane : lanes_) {
    lane->work.reset();
    lane->io.stop();
  }
  for (auto& t : threads_) t.join();
  threads_.clear();
}

}  // namespace sluice::gateway
