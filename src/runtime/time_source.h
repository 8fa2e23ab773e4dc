// TimeSource: where the runtime reads the wall clock (alarms, State::now)
// and the clock of objects' activity (idle eviction).
//
// The node uses the system clock. Tests and the test kit use FakeTime: time
// stands still until the test moves it, and moving it fires the alarms that
// became due and evicts the objects idle for long enough, at once and
// without sleeping, so these tests are deterministic. CPU limits, timings,
// block_concurrency_while's timeout and network timeouts keep the real
// steady clock.
//
// Threads: now_ms() from any thread. FakeTime::set/advance from any thread
// (the test's); each subscriber is called on that thread and must only post
// to its shard.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <mutex>

#include "base/clock.h"

namespace dobj::internal {

class TimeSource {
 public:
  virtual ~TimeSource() = default;
  virtual int64_t now_ms() const = 0;  // milliseconds since the Unix epoch
  // The activity clock: steady (never goes back).
  virtual std::chrono::steady_clock::time_point steady_now() const = 0;
  // Calls on_change after every change of a fake time (never for the system
  // clock, which needs real timers instead); returns a handle for unsubscribe.
  virtual uint64_t subscribe(std::function<void()> on_change) = 0;
  virtual void unsubscribe(uint64_t handle) = 0;
  // Whether timers must wait for subscribe's calls instead of real time.
  virtual bool is_fake() const = 0;
};

class SystemTime : public TimeSource {
 public:
  int64_t now_ms() const override { return system_now_ms() + offset_ms_; }
  // Tests (--clock-skew-ms): this node's wall clock reads this far ahead.
  void set_offset_ms(int64_t ms) { offset_ms_ = ms; }
  std::chrono::steady_clock::time_point steady_now() const override {
    return std::chrono::steady_clock::now();
  }
  uint64_t subscribe(std::function<void()>) override { return 0; }
  void unsubscribe(uint64_t) override {}
  bool is_fake() const override { return false; }

 private:
  int64_t offset_ms_ = 0;  // set before any thread reads it
};

class FakeTime : public TimeSource {
 public:
  explicit FakeTime(int64_t start_ms) : now_(start_ms), start_ms_(start_ms) {}
  int64_t now_ms() const override { return now_.load(std::memory_order_acquire); }
  // Moves with the wall time, from the moment the FakeTime was made.
  std::chrono::steady_clock::time_point steady_now() const override {
    return steady_start_ + std::chrono::milliseconds(now_ms() - start_ms_);
  }
  // Moves time to at_ms (never backwards) and tells the subscribers.
  void set(int64_t at_ms) {
    int64_t now = now_.load(std::memory_order_acquire);
    while (at_ms > now && !now_.compare_exchange_weak(now, at_ms)) {
    }
    std::lock_guard lock(mu_);
    for (auto& [handle, fn] : subscribers_) fn();
  }
  void advance(std::chrono::milliseconds by) { set(now_ms() + by.count()); }
  uint64_t subscribe(std::function<void()> on_change) override {
    std::lock_guard lock(mu_);
    subscribers_[++next_] = std::move(on_change);
    return next_;
  }
  void unsubscribe(uint64_t handle) override {
    std::lock_guard lock(mu_);
    subscribers_.erase(handle);
  }
  bool is_fake() const override { return true; }

 private:
  std::atomic<int64_t> now_;
  const int64_t start_ms_;
  const std::chrono::steady_clock::time_point steady_start_ = std::chrono::steady_clock::now();
  std::mutex mu_;
  std::map<uint64_t, std::function<void()>> subscribers_;  // guarded by mu_
  uint64_t next_ = 0;                                      // guarded by mu_
};

}  // namespace dobj::internal
