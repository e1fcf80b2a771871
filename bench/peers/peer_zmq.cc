// Peer benchmark: ZeroMQ PAIR sockets over ipc:// (one socket pair per direction; the receiver
// binds, the sender connects; blocking send/recv; default high-water marks). See
// peer_common.h.
#include <unistd.h>
#include <zmq.h>

#include <memory>
#include <string>

#include "peer_common.h"

namespace {

// One context per process, terminated (which flushes pending messages) when the last socket of
// the process is closed.
struct Context {
  void* ctx = zmq_ctx_new();
  ~Context() { zmq_ctx_term(ctx); }
  Context() = default;
  Context(const Context&) = delete;
  Context& operator=(const Context&) = delete;
};

class ZmqLink : public peers::Link {
 public:
  ZmqLink(std::shared_ptr<Context> ctx, const std::string& endpoint, bool sending)
      : ctx_(std::move(ctx)), sock_(zmq_socket(ctx_->ctx, ZMQ_PAIR)) {
    int rc = sending ? zmq_connect(sock_, endpoint.c_str()) : zmq_bind(sock_, endpoint.c_str());
    if (rc != 0) peers::die(std::string("zmq bind/connect: ") + zmq_strerror(zmq_errno()));
  }
  ~ZmqLink() override { zmq_close(sock_); }
  ZmqLink(const ZmqLink&) = delete;
  ZmqLink& operator=(const ZmqLink&) = delete;
  void send(const char* data, std::size_t size) override {
    if (zmq_send(sock_, data, size, 0) != static_cast<int>(size)) peers::die("zmq_send failed");
  }
  std::size_t recv(char* buf, std::size_t size, std::size_t) override {
    if (zmq_recv(sock_, buf, size, 0) != static_cast<int>(size)) peers::die("zmq_recv failed");
    return 1;
  }

 private:
  std::shared_ptr<Context> ctx_;
  void* sock_;
};

class ZmqTransport : public peers::Transport {
 public:
  void prepare() override {
    ++run_;
    for (int d = 0; d < 2; ++d) {
      paths_[d] = "/tmp/sluice-peer-zmq-" + std::to_string(::getpid()) + "-" +
                  std::to_string(run_) + "-" + std::to_string(d);
      ::unlink(paths_[d].c_str());
    }
  }
  std::unique_ptr<peers::Link> open(int dir, bool sending) override {
    std::shared_ptr<Context> ctx = ctx_.lock();
    if (!ctx) {
      ctx = std::make_shared<Context>();
      ctx_ = ctx;
    }
    return std::make_unique<ZmqLink>(ctx, "ipc://" + paths_[dir], sending);
  }
  void cleanup() override {
    for (auto& p : paths_) ::unlink(p.c_str());
  }

 private:
  int run_ = 0;
  std::string paths_[2];
  std::weak_ptr<Context> ctx_;
};

}  // namespace

int main(int argc, char** argv) {
  ZmqTransport t;
  return peers::run(argc, argv, "zeromq-ipc", t);
}
