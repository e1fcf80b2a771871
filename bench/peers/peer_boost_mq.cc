// Peer benchmark: boost::interprocess::message_queue (one queue per direction, 1024 messages of
// the value size). See peer_common.h.
#include <unistd.h>

#include <boost/interprocess/ipc/message_queue.hpp>
#include <string>

#include "peer_common.h"

namespace {

namespace bip = boost::interprocess;

class MqLink : public peers::Link {
 public:
  explicit MqLink(const std::string& name) : q_(bip::open_only, name.c_str()) {}
  void send(const char* data, std::size_t size) override { q_.send(data, size, 0); }
  std::size_t recv(char* buf, std::size_t size, std::size_t) override {
    bip::message_queue::size_type got = 0;
    unsigned prio = 0;
    q_.receive(buf, size, got, prio);
    if (got != size) peers::die("short message");
    return 1;
  }

 private:
  bip::message_queue q_;
};

class MqTransport : public peers::Transport {
 public:
  explicit MqTransport(std::size_t size) : size_(size) {}
  void prepare() override {
    for (int d = 0; d < 2; ++d) {
      names_[d] = "sluice-peer-mq-" + std::to_string(::getpid()) + "-" + std::to_string(d);
      bip::message_queue::remove(names_[d].c_str());
      bip::message_queue q(bip::create_only, names_[d].c_str(), 1024, size_);
    }
  }
  std::unique_ptr<peers::Link> open(int dir, bool) override {
    return std::make_unique<MqLink>(names_[dir]);
  }
  void cleanup() override {
    for (auto& n : names_) bip::message_queue::remove(n.c_str());
  }

 private:
  std::size_t size_;
  std::string names_[2];
};

}  // namespace

int main(int argc, char** argv) {
  peers::Options o = peers::parse(argc, argv, "boost-mq");
  MqTransport t(o.size);
  return peers::run(argc, argv, "boost-mq", t);
}
