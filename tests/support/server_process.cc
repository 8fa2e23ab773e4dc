#include "support/server_process.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <thread>

namespace dobj::test {

ServerProcess::ServerProcess(std::string binary, std::string data_dir,
                             std::vector<std::string> extra_args)
    : binary_(std::move(binary)),
      data_dir_(std::move(data_dir)),
      extra_args_(std::move(extra_args)) {}

ServerProcess::~ServerProcess() {
  if (pid_ > 0) stop(SIGKILL);
  if (out_fd_ >= 0) ::close(out_fd_);
}

bool ServerProcess::start(std::chrono::milliseconds timeout) {
  int fds[2];
  if (pipe2(fds, O_CLOEXEC) != 0) return false;
  std::vector<std::string> args = {binary_, "--listen", "127.0.0.1:0", "--data", data_dir_};
  args.insert(args.end(), extra_args_.begin(), extra_args_.end());
  pid_ = fork();
  if (pid_ == 0) {
    dup2(fds[1], 1);
    dup2(fds[1], 2);
    for (auto& [name, value] : env_) setenv(name.c_str(), value.c_str(), 1);
    std::vector<char*> argv;
    for (auto& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    execv(argv[0], argv.data());
    _exit(127);
  }
  ::close(fds[1]);
  out_fd_ = fds[0];
  fcntl(out_fd_, F_SETFL, O_NONBLOCK);
  port_ = 0;
  auto deadline = std::chrono::steady_clock::now() + timeout;
  size_t scanned = 0;
  while (std::chrono::steady_clock::now() < deadline) {
    drain(50);
    auto pos = output_.find("listening on ", scanned);
    if (pos != std::string::npos) {
      auto eol = output_.find('\n', pos);
      if (eol == std::string::npos) continue;
      std::string addr = output_.substr(pos + 13, eol - pos - 13);
      addr = addr.substr(0, addr.find(' '));
      port_ = std::stoi(addr.substr(addr.rfind(':') + 1));
      return true;
    }
    int status;
    if (waitpid(pid_, &status, WNOHANG) == pid_) {
      pid_ = -1;
      return false;
    }
  }
  return false;
}

void ServerProcess::drain(int timeout_ms) {
  if (out_fd_ < 0) return;
  pollfd p{out_fd_, POLLIN, 0};
  if (::poll(&p, 1, timeout_ms) <= 0) return;
  char buf[4096];
  ssize_t n;
  while ((n = ::read(out_fd_, buf, sizeof buf)) > 0) output_.append(buf, static_cast<size_t>(n));
}

int ServerProcess::stop(int signal, std::chrono::milliseconds timeout) {
  if (pid_ <= 0) return -1;
  ::kill(pid_, signal);
  auto deadline = std::chrono::steady_clock::now() + timeout;
  while (std::chrono::steady_clock::now() < deadline) {
    int status;
    pid_t r = waitpid(pid_, &status, WNOHANG);
    if (r == pid_) {
      pid_ = -1;
      drain(0);
      if (WIFEXITED(status)) return WEXITSTATUS(status);
      if (WIFSIGNALED(status)) return 128 + WTERMSIG(status);
      return -1;
    }
    drain(10);
  }
  ::kill(pid_, SIGKILL);
  int status;
  waitpid(pid_, &status, 0);
  pid_ = -1;
  return -1;
}

long ServerProcess::rss_kib() const {
  std::ifstream f("/proc/" + std::to_string(pid_) + "/status");
  std::string line;
  while (std::getline(f, line)) {
    if (line.rfind("VmRSS:", 0) == 0) return std::stol(line.substr(6));
  }
  return -1;
}

std::string ServerProcess::output() {
  drain(0);
  return output_;
}

}  // namespace dobj::test
