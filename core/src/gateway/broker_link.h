// BrokerLink: how the gateway's threads reach the broker's own thread, which owns topics
// (create, delete), consumer groups and the committed-offsets table. post() queues work on
// the broker's io_context; the work answers by calling back, and the gateway's Respond
// re-posts to the connection's strand.
//
// Thread-safety: post() from any thread; the function runs on the broker's thread.
#pragma once

#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <functional>
#include <utility>

namespace sluice::broker {
class BrokerCore;
}

namespace sluice::gateway {

class BrokerLink {
 public:
  BrokerLink(boost::asio::io_context& broker_io, broker::BrokerCore& core)
      : io_(broker_io), core_(core) {}
  void post(std::function<void(broker::BrokerCore&)> fn) {
    boost::asio::post(io_, [this, fn = std::move(fn)] { fn(core_); });
  }

 private:
  boost::asio::io_context& io_;
  broker::BrokerCore& core_;
};

}  // namespace sluice::gateway
