// Peer benchmark: Eclipse iceoryx 2 (zero-copy shared memory; needs the RouDi daemon
// iox-roudi running; bench/compare starts and stops it). Untyped publisher/subscriber, one
// service per direction; the publisher waits for a slow subscriber (WAIT_FOR_CONSUMER /
// BLOCK_PRODUCER: no loss); the receiver busy-polls take(). The value is written into the
// loaned chunk and read from the received chunk (what a copy-in/copy-out user does with the
// same fixed-size values as the other peers). See peer_common.h.
#include <unistd.h>

#include <string>
#include <thread>

#include "iceoryx_posh/popo/untyped_publisher.hpp"
#include "iceoryx_posh/popo/untyped_subscriber.hpp"
#include "iceoryx_posh/runtime/posh_runtime.hpp"
#include "peer_common.h"

namespace {

void init_runtime() {
  static bool done = false;
  if (done) return;
  std::string name = "sluice-peer-" + std::to_string(::getpid());
  iox::runtime::PoshRuntime::initRuntime(iox::RuntimeName_t(iox::cxx::TruncateToCapacity, name));
  done = true;
}

iox::capro::ServiceDescription service(const std::string& instance, int dir) {
  return {"SluicePeer", iox::capro::IdString_t(iox::cxx::TruncateToCapacity, instance),
          iox::capro::IdString_t(iox::cxx::TruncateToCapacity, "dir" + std::to_string(dir))};
}

class PubLink : public peers::Link {
 public:
  explicit PubLink(const iox::capro::ServiceDescription& s) : pub_(s, options()) {
    while (!pub_.hasSubscribers()) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  void send(const char* data, std::size_t size) override {
    auto sent = pub_.loan(static_cast<std::uint32_t>(size)).and_then([&](void* payload) {
      std::memcpy(payload, data, size);
      pub_.publish(payload);
    });
    if (sent.has_error()) peers::die("iceoryx loan failed");
  }
  std::size_t recv(char*, std::size_t, std::size_t) override { return 0; }

 private:
  static iox::popo::PublisherOptions options() {
    iox::popo::PublisherOptions o;
    o.historyCapacity = 0;
    o.subscriberTooSlowPolicy = iox::popo::ConsumerTooSlowPolicy::WAIT_FOR_CONSUMER;
    return o;
  }
  iox::popo::UntypedPublisher pub_;
};

class SubLink : public peers::Link {
 public:
  explicit SubLink(const iox::capro::ServiceDescription& s) : sub_(s, options()) {}
  void send(const char*, std::size_t) override {}
  std::size_t recv(char* buf, std::size_t size, std::size_t) override {
    for (;;) {
      bool got = false;
      sub_.take().and_then([&](const void* payload) {
        std::memcpy(buf, payload, size);
        sub_.release(payload);
        got = true;
      });
      if (got) return 1;
    }
  }

 private:
  static iox::popo::SubscriberOptions options() {
    iox::popo::SubscriberOptions o;
    o.queueCapacity = 256;
    o.historyRequest = 0;
    o.queueFullPolicy = iox::popo::QueueFullPolicy::BLOCK_PRODUCER;
    return o;
  }
  iox::popo::UntypedSubscriber sub_;
};

class IceoryxTransport : public peers::Transport {
 public:
  void prepare() override {
    ++run_;
    instance_ = std::to_string(::getpid()) + "-" + std::to_string(run_);
  }
  std::unique_ptr<peers::Link> open(int dir, bool sending) override {
    init_runtime();
    if (sending) return std::make_unique<PubLink>(service(instance_, dir));
    return std::make_unique<SubLink>(service(instance_, dir));
  }

 private:
  int run_ = 0;
  std::string instance_;
};

}  // namespace

int main(int argc, char** argv) {
  peers::g_child_runs_destructors = true;  // the runtime deregisters from RouDi
  IceoryxTransport t;
  return peers::run(argc, argv, "iceoryx", t);
}
