// RuntimeHarness: the runtime without HTTP, on a fresh data folder, for unit
// tests of the runtime's parts: requests go straight to objects on their
// shards, and tests reach the shards and hosts themselves.
#pragma once

#include <chrono>
#include <future>
#include <memory>
#include <string>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "runtime/runtime.h"
#include "testing/temp_dir.h"

namespace dobj::test {

class RuntimeHarness {
 public:
  // Two shards unless o says otherwise; the node stays up after a failed
  // flush (tests inject them). time: a FakeTime, or null for the system clock.
  RuntimeHarness(internal::Bindings bindings, ServerOptions o = {},
                 internal::TimeSource* time = nullptr,
                 internal::Runtime::Loops loops = internal::Runtime::Loops::kThreads) {
    o.exit_on_flush_failure = false;
    o.data_dir = dir_.path();
    if (o.shards == 0) o.shards = 2;
    runtime_ = std::make_unique<internal::Runtime>(o, std::move(bindings), nullptr,
                                                   internal::Secret{}, time);
    runtime_->start(loops);
  }
  ~RuntimeHarness() {
    if (!stopped_) runtime_->stop(std::chrono::seconds(5));
  }
  // Stops now; returns Runtime::stop's answer (false: it timed out).
  bool stop(std::chrono::milliseconds timeout) {
    stopped_ = true;
    return runtime_->stop(timeout);
  }
  const internal::NamespaceImpl* ns(const std::string& binding) {
    return runtime_->find_namespace(binding);
  }
  ObjectId id(const std::string& binding, const std::string& name) {
    return ns(binding)->ids().from_name(name);
  }
  std::future<Response> send(const std::string& binding, const std::string& name,
                             const std::string& method, const std::string& target = "/") {
    Request req;
    req.method = method;
    req.target = target;
    return runtime_->send_to_object(ns(binding), id(binding, name), std::move(req));
  }
  nlohmann::json json(const std::string& binding, const std::string& name,
                      const std::string& method, const std::string& target = "/") {
    return nlohmann::json::parse(send(binding, name, method, target).get().body);
  }
  internal::Runtime& runtime() { return *runtime_; }
  // The shard that owns the object.
  internal::Shard& shard_of(const std::string& binding, const std::string& name) {
    return runtime_->shard_for(id(binding, name));
  }
  // After moving a FakeTime: waits until every alarm due ran and nothing runs.
  void settle() { ASSERT_TRUE(runtime_->settle(std::chrono::seconds(10))); }

 private:
  bool stopped_ = false;
  TempDir dir_;
  std::unique_ptr<internal::Runtime> runtime_;
};

}  // namespace dobj::test
