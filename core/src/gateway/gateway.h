// Gateway: the broker's Kafka wire-protocol listener (docs/kafka-gateway.md). Kafka clients
// on this or other hosts produce to and fetch from the same partition logs as local
// processes, join consumer groups and commit offsets to the same table.
//
//   Kafka client ──TCP──> acceptor ──> Connection (its lane) ──> RequestHandler
//                                                                  │  produce/fetch: the
//                                      connection threads (N) <────┤  partition logs, directly
//                                                                  │  topics, groups, commits:
//                                      broker thread <─────────────┘  posted to BrokerLink
//
// A bounded set of threads (one per core, at most 8, --kafka-threads) runs the connections,
// each connection on one of them (its lane, dealt in turn), plus one thread for the acceptor
// and the handler's timers and slower work. Limits: the largest request, connections per
// client host, and an idle timeout.
//
// Thread-safety: start() and stop() from one thread; everything else runs on those threads.
#pragma once

#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "broker_link.h"
#include "connection.h"
#include "data_dir.h"
#include "sluice/broker.h"
#include "sluice/status.h"

namespace sluice::gateway {

class Gateway {
 public:
  Gateway(const BrokerConfig& config, DataDir dir, BrokerLink& broker);
  ~Gateway();

  // Binds config.kafka_listen and starts the threads. Errors name the address and cause.
  Status start();
  void stop();
  // HOST:PORT actually bound.
  std::string address() const { return bound_; }

 private:
  void accept_next();

  using WorkGuard = boost::asio::executor_work_guard<boost::asio::io_context::executor_type>;
  // A connection thread with its own io_context: every handler of a connection runs on the
  // thread of the lane it was dealt to, so reading a request, handling it and writing its
  // response never hand over between threads (with one io_context shared by all threads,
  // each step could wake another thread: about 3 context switches per request at 20k
  // requests/s, measured).
  struct Lane {
    boost::asio::io_context io{1};  // concurrency hint: one thread runs it
    std::optional<WorkGuard> work;
  };

  BrokerConfig config_;
  // Before io_, so that they outlive it: io_'s pending work (an accept, a long poll's timer)
  // holds sockets and connections that belong to a lane, and destroying io_ destroys it.
  std::vector<std::unique_ptr<Lane>> lanes_;
  std::size_t next_lane_ = 0;  // the acceptor's (one accept at a time)
  // The acceptor, the handler's timers (Fetch long polls, group timers) and its slower work
  // (topic creation and deletion) run here, on a thread of its own.
  boost::asio::io_context io_;
  std::optional<WorkGuard> work_;
  boost::asio::ip::tcp::acceptor acceptor_;
  std::unique_ptr<RequestHandler> handler_;
  std::vector<std::thread> threads_;
  std::string bound_;

  std::mutex mutex_;  // guards the two below
  std::map<std::string, std::int32_t> per_host_;
  std::map<Connection*, std::weak_ptr<Connection>> connections_;
};

// "HOST:PORT" -> (host, port); kInvalidArgument naming the text when it is not one.
Result<std::pair<std::string, std::uint16_t>> parse_host_port(const std::string& text);

}  // namespace sluice::gateway
