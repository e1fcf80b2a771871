// Peer benchmark: two anonymous pipes (one per direction). See peer_common.h.
#include <unistd.h>

#include "peer_common.h"

namespace {

class PipeTransport : public peers::Transport {
 public:
  void prepare() override {
    for (auto& p : fds_) {
      if (::pipe(p) != 0) peers::die("pipe failed");
    }
  }
  std::unique_ptr<peers::Link> open(int dir, bool sending) override {
    int* p = fds_[dir];
    return sending ? std::make_unique<peers::StreamLink>(-1, p[1])
                   : std::make_unique<peers::StreamLink>(p[0], -1);
  }
  void cleanup() override {
    for (auto& p : fds_) {
      ::close(p[0]);
      ::close(p[1]);
    }
  }

 private:
  int fds_[2][2] = {{-1, -1}, {-1, -1}};
};

}  // namespace

int main(int argc, char** argv) {
  PipeTransport t;
  return peers::run(argc, argv, "pipe", t);
}
