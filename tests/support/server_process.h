// ServerProcess: runs a real server binary for an integration test.
//
// Starts the binary with --listen 127.0.0.1:0 and a data folder, waits (with a
// bound) for its "listening on HOST:PORT" line and reads the port from it.
// The destructor kills the process if it still runs.
#pragma once

#include <sys/types.h>

#include <atomic>
#include <chrono>
#include <mutex>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "testing/temp_dir.h"

namespace dobj::test {

// A server binary and the arguments that come before the common flags
// (dobj-js takes its wrangler.jsonc first).
struct ServerCommand {
  std::string binary;
  std::vector<std::string> leading_args;
};

class ServerProcess {
 public:
  ServerProcess(ServerCommand command, std::string data_dir,
                std::vector<std::string> extra_args = {});
  ServerProcess(std::string binary, std::string data_dir, std::vector<std::string> extra_args = {})
      : ServerProcess(ServerCommand{std::move(binary), {}}, std::move(data_dir),
                      std::move(extra_args)) {}
  ~ServerProcess();

  // Environment variables added to the server's, for the next start().
  void set_environment(std::vector<std::pair<std::string, std::string>> env) {
    env_ = std::move(env);
  }
  // Runs the server as this user and group ID (the test runs as root), for
  // firewall rules that match a process's packets by owner; -1: unchanged.
  void set_user(int uid) { uid_ = uid; }
  // Starts and waits for "listening"; false (with output()) if it did not come.
  bool start(std::chrono::milliseconds timeout = std::chrono::seconds(20));
  int port() const { return port_; }
  pid_t pid() const { return pid_; }
  // Sends a signal and waits for the exit; returns the exit code, 128+signal
  // if killed by a signal, or -1 on timeout.
  int stop(int signal, std::chrono::milliseconds timeout = std::chrono::seconds(30));
  // Whether the process ended by itself (reaped here; *status as waitpid's).
  bool exited(int* status = nullptr);
  // The process's resident memory (VmRSS), in KiB; -1 if unknown.
  long rss_kib() const;
  // Everything the process wrote to stdout and stderr so far.
  std::string output();

 private:
  // A thread reads everything the process writes as it comes: a server that
  // logs a lot must never block on a full pipe while a test runs.
  void read_output();
  void stop_reader();
  ServerCommand command_;
  std::string data_dir_;
  std::vector<std::string> extra_args_;
  std::vector<std::pair<std::string, std::string>> env_;
  int uid_ = -1;
  pid_t pid_ = -1;
  int out_fd_ = -1;
  int port_ = 0;
  std::mutex mu_;
  std::string output_;  // guarded by mu_
  std::thread reader_;
  std::atomic<bool> reader_stop_{false};
};

}  // namespace dobj::test
