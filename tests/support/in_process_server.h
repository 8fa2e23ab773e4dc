// InProcessServer: the runtime and its HTTP front door in the test's own
// process, on a fresh data folder and a free loopback port, for tests that
// bind their own object classes. Requests still travel over real sockets.
#pragma once

#include <chrono>
#include <functional>
#include <map>
#include <memory>
#include <string>

#include <gtest/gtest.h>

#include "dobj/dobj.h"
#include "net/http_server.h"
#include "runtime/runtime.h"
#include "testing/http_client.h"
#include "support/server_process.h"

namespace dobj::test {

class InProcessServer {
 public:
  // Options are completed with the data folder, port 0, two shards and a node
  // that stays up after a failed flush;
  // configure runs on the runtime before it starts. fake_time: the runtime's
  // clock is a FakeTime that advance() moves (alarms, idle eviction).
  InProcessServer(ServerOptions o, internal::Bindings bindings,
                  Worker worker = nullptr,
                  const std::function<void(internal::Runtime&)>& configure = nullptr,
                  bool fake_time = false) {
    if (fake_time) time_ = std::make_unique<internal::FakeTime>(1'000'000'000'000);
    o.data_dir = dir_.path();
    o.exit_on_flush_failure = false;  // tests inject failed flushes
    o.listen = "127.0.0.1:0";
    o.shards = 2;
    runtime_ = std::make_unique<internal::Runtime>(o, std::move(bindings), std::move(worker),
                                                   internal::Secret{}, time_.get());
    if (configure) configure(*runtime_);
    runtime_->start();
    http_ = std::make_unique<internal::HttpServer>(*runtime_, o);
    EXPECT_TRUE(http_->start().is_ok());
  }
  ~InProcessServer() {
    http_->stop(std::chrono::seconds(2));
    runtime_->stop(std::chrono::seconds(5));
  }
  int port() const { return http_->port(); }
  // With fake_time: moves the clock, then waits until what became due ran.
  void advance(std::chrono::milliseconds by) {
    time_->advance(by);
    settle();
  }
  void settle() { ASSERT_TRUE(runtime_->settle(std::chrono::seconds(10))); }
  internal::Runtime& runtime() { return *runtime_; }
  std::string get(const std::string& target) { return http(port(), "GET", target).body; }

 private:
  TempDir dir_;
  std::unique_ptr<internal::FakeTime> time_;
  std::unique_ptr<internal::Runtime> runtime_;
  std::unique_ptr<internal::HttpServer> http_;
};

}  // namespace dobj::test
