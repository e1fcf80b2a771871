// Test support for the CLI tests: run the built `sluice` and `sluiced` as child processes
// (fork/exec with pipes for stdin, stdout and stderr, a timeout), a data directory of one's
// own under /dev/shm, and a broker started for it.
//
// Thread-safety: one test thread.
#pragma once

#include <fcntl.h>
#include <grp.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <functional>
#include <map>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#ifndef SLUICE_CLI
#error "SLUICE_CLI (the path of the built sluice) must be defined"
#endif
#ifndef SLUICED
#error "SLUICED (the path of the built sluiced) must be defined"
#endif

namespace sluice::cli_test {

inline constexpr uid_t kNobody = 65534;

inline std::int64_t now_ms() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return std::int64_t{ts.tv_sec} * 1000 + ts.tv_nsec / 1'000'000;
}

inline std::int64_t wall_ms() {
  timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return std::int64_t{ts.tv_sec} * 1000 + ts.tv_nsec / 1'000'000;
}

struct RunOptions {
  std::string stdin_data;
  bool as_nobody = false;  // setgid/setuid 65534 in the child before exec (needs root)
  std::map<std::string, std::string> env;  // set in the child ("" unsets)
  std::string output_file;                 // stdout and stderr to this file instead of pipes
};

struct RunResult {
  int exit_code = -1;  // -1 when killed by a signal
  int term_signal = 0;
  bool timed_out = false;
  std::string out;
  std::string err;

  // The number of lines of stdout.
  std::size_t lines() const {
    std::size_t n = 0;
    for (char c : out) n += c == '\n';
    return n;
  }
};

// A child process with its stdin fed from a string and its stdout and stderr collected.
class Child {
 public:
  Child(const std::vector<std::string>& argv, const RunOptions& options = {}) {
    int in[2], out[2], err[2];
    if (::pipe2(in, O_CLOEXEC) != 0 || ::pipe2(out, O_CLOEXEC) != 0 || ::pipe2(err, O_CLOEXEC) != 0)
      throw std::runtime_error("pipe failed");
    std::vector<char*> args;
    for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
    args.push_back(nullptr);
    pid_ = ::fork();
    if (pid_ < 0) throw std::runtime_error("fork failed");
    if (pid_ == 0) {
      ::dup2(in[0], STDIN_FILENO);
      if (!options.output_file.empty()) {
        int fd = ::open(options.output_file.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
        if (fd < 0) ::_exit(126);
        ::dup2(fd, STDOUT_FILENO);
        ::dup2(fd, STDERR_FILENO);
      } else {
        ::dup2(out[1], STDOUT_FILENO);
        ::dup2(err[1], STDERR_FILENO);
      }
      ::signal(SIGPIPE, SIG_DFL);
      sigset_t none;
      sigemptyset(&none);
      ::sigprocmask(SIG_SETMASK, &none, nullptr);
      for (const auto& [k, v] : options.env) {
        if (v.empty()) {
          ::unsetenv(k.c_str());
        } else {
          ::setenv(k.c_str(), v.c_str(), 1);
        }
      }
      if (options.as_nobody) {
        if (::setgroups(0, nullptr) != 0 || ::setgid(kNobody) != 0 || ::setuid(kNobody) != 0)
          ::_exit(125);
      }
      ::execv(args[0], args.data());
      ::_exit(127);
    }
    ::close(in[0]);
    ::close(out[1]);
    ::close(err[1]);
    in_ = in[1];
    out_ = out[0];
    err_ = err[0];
    stdin_data_ = options.stdin_data;
    for (int fd : {in_, out_, err_}) ::fcntl(fd, F_SETFL, ::fcntl(fd, F_GETFL) | O_NONBLOCK);
    if (stdin_data_.empty()) close_stdin();
  }

  Child(const Child&) = delete;
  Child& operator=(const Child&) = delete;

  ~Child() {
    if (pid_ > 0 && !done_) {
      ::kill(pid_, SIGKILL);
      int st = 0;
      ::waitpid(pid_, &st, 0);
    }
    for (int fd : {in_, out_, err_})
      if (fd >= 0) ::close(fd);
  }

  pid_t pid() const { return pid_; }
  void signal(int sig) { ::kill(pid_, sig); }
  const RunResult& result() const { return result_; }

  // Moves data through the pipes for up to `ms` (returns early when the child has exited and
  // its pipes are drained).
  void pump(std::int64_t ms) {
    std::int64_t deadline = now_ms() + ms;
    for (;;) {
      pollfd fds[3];
      int n = 0;
      if (in_ >= 0) fds[n++] = {in_, POLLOUT, 0};
      if (out_ >= 0) fds[n++] = {out_, POLLIN, 0};
      if (err_ >= 0) fds[n++] = {err_, POLLIN, 0};
      if (n == 0) return;
      std::int64_t left = deadline - now_ms();
      if (left < 0) left = 0;
      int r = ::poll(fds, static_cast<nfds_t>(n), static_cast<int>(left));
      if (r < 0 && errno == EINTR) continue;
      if (r <= 0) return;
      for (int i = 0; i < n; ++i) {
        if (fds[i].revents == 0) continue;
        if (fds[i].fd == in_) {
          ssize_t w = ::write(in_, stdin_data_.data() + stdin_written_,
                              stdin_data_.size() - stdin_written_);
          if (w > 0) stdin_written_ += static_cast<std::size_t>(w);
          if (w < 0 && errno != EAGAIN) stdin_written_ = stdin_data_.size();
          if (stdin_written_ == stdin_data_.size()) close_stdin();
        } else {
          int& fd = fds[i].fd == out_ ? out_ : err_;
          std::string& into = fds[i].fd == out_ ? result_.out : result_.err;
          char buf[65536];
          ssize_t got = ::read(fd, buf, sizeof buf);
          if (got > 0) {
            into.append(buf, static_cast<std::size_t>(got));
          } else if (got == 0 || errno != EAGAIN) {
            ::close(fd);
            fd = -1;
          }
        }
      }
      if (now_ms() >= deadline) return;
    }
  }

  // Pumps until `done(stdout)` holds or the timeout passes; returns whether it held.
  bool wait_for_output(const std::function<bool(const std::string&)>& done, std::int64_t ms) {
    std::int64_t deadline = now_ms() + ms;
    while (!done(result_.out)) {
      if (now_ms() >= deadline || exited()) return done(result_.out);
      pump(20);
    }
    return true;
  }

  // Waits for the child to exit (SIGKILL after `ms`), collecting all its output.
  const RunResult& wait(std::int64_t ms = 10000) {
    std::int64_t deadline = now_ms() + ms;
    while (!exited()) {
      if (now_ms() >= deadline) {
        result_.timed_out = true;
        ::kill(pid_, SIGKILL);
        reap(true);
        break;
      }
      pump(20);
    }
    pump(100);  // the rest of the output (pipes close when the child is gone)
    while (out_ >= 0 || err_ >= 0) pump(1000);
    return result_;
  }

 private:
  bool exited() {
    if (done_) return true;
    reap(false);
    return done_;
  }

  void reap(bool block) {
    int st = 0;
    pid_t r = ::waitpid(pid_, &st, block ? 0 : WNOHANG);
    if (r != pid_) return;
    done_ = true;
    if (WIFEXITED(st)) result_.exit_code = WEXITSTATUS(st);
    if (WIFSIGNALED(st)) result_.term_signal = WTERMSIG(st);
  }

  void close_stdin() {
    if (in_ >= 0) ::close(in_);
    in_ = -1;
  }

  pid_t pid_ = -1;
  bool done_ = false;
  int in_ = -1, out_ = -1, err_ = -1;
  std::string stdin_data_;
  std::size_t stdin_written_ = 0;
  RunResult result_;
};

inline RunResult run(const std::vector<std::string>& argv, const RunOptions& options = {},
                     std::int64_t timeout_ms = 10000) {
  Child c(argv, options);
  return c.wait(timeout_ms);
}

// A data directory of the test's own, removed at the end.
class TestDir {
 public:
  explicit TestDir(const std::string& name) {
    static std::atomic<int> counter{0};
    path_ = "/dev/shm/sluice-cli-test-" + std::to_string(::getpid()) + "-" +
            std::to_string(counter.fetch_add(1)) + "-" + name;
    std::filesystem::remove_all(path_);
  }
  ~TestDir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
    std::filesystem::remove(path_ + ".broker.log", ec);
  }
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

inline bool socket_accepts(const std::string& path) {
  int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return false;
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  std::snprintf(addr.sun_path, sizeof addr.sun_path, "%s", path.c_str());
  bool ok = ::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0;
  ::close(fd);
  return ok;
}

inline std::string read_file(const std::string& path) {
  std::string s;
  FILE* f = std::fopen(path.c_str(), "rb");
  if (f == nullptr) return s;
  char buf[4096];
  for (std::size_t n; (n = std::fread(buf, 1, sizeof buf, f)) > 0;) s.append(buf, n);
  std::fclose(f);
  return s;
}

// `sluiced --data-dir DIR` as a child process; the constructor returns once its control socket
// accepts connections. The destructor stops it with SIGTERM (SIGKILL after 5 s).
class BrokerProcess {
 public:
  explicit BrokerProcess(const std::string& data_dir)
      : data_dir_(data_dir), log_(data_dir + ".broker.log") {
    RunOptions o;
    o.output_file = log_;
    child_ = std::make_unique<Child>(
        std::vector<std::string>{SLUICED, "--data-dir", data_dir, "--listen", "none"}, o);
    std::int64_t deadline = now_ms() + 10000;
    while (!socket_accepts(data_dir + "/broker.sock")) {
      if (now_ms() > deadline)
        throw std::runtime_error("sluiced did not start for " + data_dir + ": " + read_file(log_));
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
  }
  ~BrokerProcess() {
    if (child_) (void)stop();
  }

  pid_t pid() const { return child_->pid(); }
  std::string log() const { return read_file(log_); }

  // SIGTERM, then waits; returns the exit status (0 for a clean stop).
  int stop() {
    child_->signal(SIGTERM);
    const RunResult& r = child_->wait(5000);
    int code = r.timed_out ? -2 : r.exit_code;
    child_.reset();
    return code;
  }

 private:
  std::string data_dir_;
  std::string log_;
  std::unique_ptr<Child> child_;
};

// The built `sluice` with `args`, and --data-dir DIR appended when dir is not empty.
inline std::vector<std::string> sluice_args(std::vector<std::string> args, const std::string& dir) {
  args.insert(args.begin(), SLUICE_CLI);
  if (!dir.empty()) {
    args.emplace_back("--data-dir");
    args.push_back(dir);
  }
  return args;
}

}  // namespace sluice::cli_test
