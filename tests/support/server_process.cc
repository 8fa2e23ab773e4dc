#include "support/server_process.h"

#include <fcntl.h>
#include <grp.h>
#include <poll.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <thread>

namespace dobj::test {

ServerProcess::ServerProcess(ServerCommand command, std::string data_dir,
                             std::vector<std::string> extra_args)
    : command_(std::move(command)),
      data_dir_(std::move(data_dir)),
      extra_args_(std::move(extra_args)) {}

ServerProcess::~ServerProcess() {
  if (pid_ > 0) stop(SIGKILL);
  stop_reader();
  if (out_fd_ >= 0) ::close(out_fd_);
}

bool ServerProcess::start(std::chrono::milliseconds timeout) {
  stop_reader();
  if (out_fd_ >= 0) ::close(out_fd_);
  out_fd_ = -1;
  int fds[2];
  if (pipe2(fds, O_CLOEXEC) != 0) return false;
  std::vector<std::string> args = {command_.binary};
  args.insert(args.end(), command_.leading_args.begin(), command_.leading_args.end());
  for (const char* a : {"--listen", "127.0.0.1:0", "--data"}) args.emplace_back(a);
  args.push_back(data_dir_);
  args.insert(args.end(), extra_args_.begin(), extra_args_.end());
  pid_ = fork();
  if (pid_ == 0) {
    dup2(fds[1], 1);
    dup2(fds[1], 2);
    for (auto& [name, value] : env_) setenv(name.c_str(), value.c_str(), 1);
    if (uid_ >= 0 && (setgroups(0, nullptr) != 0 || setgid(static_cast<gid_t>(uid_)) != 0 ||
                      setuid(static_cast<uid_t>(uid_)) != 0)) {
      _exit(126);
    }
    std::vector<char*> argv;
    for (auto& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    execv(argv[0], argv.data());
    _exit(127);
  }
  ::close(fds[1]);
  out_fd_ = fds[0];
  fcntl(out_fd_, F_SETFL, O_NONBLOCK);
  reader_stop_ = false;
  reader_ = std::thread([this] { read_output(); });
  port_ = 0;
  auto deadline = std::chrono::steady_clock::now() + timeout;
  size_t scanned = 0;
  while (std::chrono::steady_clock::now() < deadline) {
    std::string out = output();
    auto pos = out.find("listening on ", scanned);
    if (pos != std::string::npos) {
      auto eol = out.find('\n', pos);
      if (eol != std::string::npos) {
        std::string addr = out.substr(pos + 13, eol - pos - 13);
        addr = addr.substr(0, addr.find(' '));
        port_ = std::stoi(addr.substr(addr.rfind(':') + 1));
        return true;
      }
    }
    int status;
    if (waitpid(pid_, &status, WNOHANG) == pid_) {
      pid_ = -1;
      stop_reader();
      return false;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  return false;
}

void ServerProcess::read_output() {
  char buf[4096];
  while (!reader_stop_) {
    pollfd p{out_fd_, POLLIN, 0};
    if (::poll(&p, 1, 50) <= 0) continue;
    ssize_t n = ::read(out_fd_, buf, sizeof buf);
    if (n == 0) return;  // every writer closed: the process is gone
    if (n < 0) {
      if (errno == EINTR || errno == EAGAIN) continue;
      return;
    }
    std::lock_guard lock(mu_);
    output_.append(buf, static_cast<size_t>(n));
  }
}

void ServerProcess::stop_reader() {
  if (!reader_.joinable()) return;
  reader_stop_ = true;
  reader_.join();
  // What is left in the pipe.
  if (out_fd_ >= 0) {
    char buf[4096];
    ssize_t n;
    while ((n = ::read(out_fd_, buf, sizeof buf)) > 0) {
      std::lock_guard lock(mu_);
      output_.append(buf, static_cast<size_t>(n));
    }
  }
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
      stop_reader();
      if (WIFEXITED(status)) return WEXITSTATUS(status);
      if (WIFSIGNALED(status)) return 128 + WTERMSIG(status);
      return -1;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  ::kill(pid_, SIGKILL);
  int status;
  waitpid(pid_, &status, 0);
  pid_ = -1;
  stop_reader();
  return -1;
}

bool ServerProcess::exited(int* status) {
  if (pid_ <= 0) return false;
  int st = 0;
  if (waitpid(pid_, &st, WNOHANG) != pid_) return false;
  pid_ = -1;
  stop_reader();
  if (status) *status = st;
  return true;
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
  std::lock_guard lock(mu_);
  return output_;
}

}  // namespace dobj::test
