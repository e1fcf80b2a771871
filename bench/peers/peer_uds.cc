// Peer benchmark: a Unix domain socket pair, SOCK_STREAM (one write per value, the reader takes
// what has arrived) or, with --seqpacket, SOCK_SEQPACKET (one message per value). See
// peer_common.h.
#include <sys/socket.h>
#include <unistd.h>

#include <string>
#include <vector>

#include "peer_common.h"

namespace {

class PacketLink : public peers::Link {
 public:
  explicit PacketLink(int fd) : fd_(fd) {}
  void send(const char* data, std::size_t size) override {
    if (::send(fd_, data, size, 0) != static_cast<ssize_t>(size)) peers::die("send failed");
  }
  std::size_t recv(char* buf, std::size_t size, std::size_t) override {
    if (::recv(fd_, buf, size, 0) != static_cast<ssize_t>(size)) peers::die("recv failed");
    return 1;
  }

 private:
  int fd_;
};

class UdsTransport : public peers::Transport {
 public:
  explicit UdsTransport(bool seqpacket) : seqpacket_(seqpacket) {}
  void prepare() override {
    if (::socketpair(AF_UNIX, seqpacket_ ? SOCK_SEQPACKET : SOCK_STREAM, 0, sv_) != 0)
      peers::die("socketpair failed");
  }
  // A uses sv_[0], B uses sv_[1].
  std::unique_ptr<peers::Link> open(int dir, bool sending) override {
    int fd = (dir == 0) == sending ? sv_[0] : sv_[1];
    if (seqpacket_) return std::make_unique<PacketLink>(fd);
    return std::make_unique<peers::StreamLink>(fd, fd);
  }
  void cleanup() override {
    ::close(sv_[0]);
    ::close(sv_[1]);
  }

 private:
  bool seqpacket_;
  int sv_[2] = {-1, -1};
};

}  // namespace

int main(int argc, char** argv) {
  std::vector<char*> args;
  bool seqpacket = peers::take_flag(argc, argv, "--seqpacket", args);
  UdsTransport t(seqpacket);
  return peers::run(static_cast<int>(args.size()), args.data(),
                    seqpacket ? "uds-seqpacket" : "uds-stream", t);
}
