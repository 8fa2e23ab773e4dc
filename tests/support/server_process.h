// ServerProcess: runs a real server binary for an integration test.
//
// Starts the binary with --listen 127.0.0.1:0 and a data folder, waits (with a
// bound) for its "listening on HOST:PORT" line and reads the port from it.
// The destructor kills the process if it still runs.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <string>
#include <utility>
#include <vector>

#include "testing/temp_dir.h"

namespace dobj::test {

class ServerProcess {
 public:
  ServerProcess(std::string binary, std::string data_dir, std::vector<std::string> extra_args = {});
  ~ServerProcess();

  // Environment variables added to the server's, for the next start().
  void set_environment(std::vector<std::pair<std::string, std::string>> env) {
    env_ = std::move(env);
  }
  // Starts and waits for "listening"; false (with output()) if it did not come.
  bool start(std::chrono::milliseconds timeout = std::chrono::seconds(20));
  int port() const { return port_; }
  pid_t pid() const { return pid_; }
  // Sends a signal and waits for the exit; returns the exit code, 128+signal
  // if killed by a signal, or -1 on timeout.
  int stop(int signal, std::chrono::milliseconds timeout = std::chrono::seconds(30));
  // The process's resident memory (VmRSS), in KiB; -1 if unknown.
  long rss_kib() const;
  // Everything the process wrote to stdout and stderr so far.
  std::string output();

 private:
  void drain(int timeout_ms);
  std::string binary_;
  std::string data_dir_;
  std::vector<std::string> extra_args_;
  std::vector<std::pair<std::string, std::string>> env_;
  pid_t pid_ = -1;
  int out_fd_ = -1;
  int port_ = 0;
  std::string output_;
};

}  // namespace dobj::test
