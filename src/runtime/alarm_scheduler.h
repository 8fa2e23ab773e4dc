// AlarmScheduler: when each object's alarm is due, on one shard.
//
// Holds at most one entry per object (time, retry count) and arms one timer
// for the earliest. Time comes from an AlarmClock given by the owner, so unit
// tests drive it with a fake clock and fire the timer by hand; the shard gives
// it the system clock and an Asio timer.
//
// Firing hands due entries to the fire callback, at most kFireBatch per call
// (then it re-arms at once), so a burst of alarms cannot stall the shard.
//
// Thread affinity: the owning shard's thread.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <unordered_map>
#include <vector>

#include "dobj/id.h"
#include "runtime/object_key.h"

namespace dobj::internal {

class NamespaceImpl;


class AlarmClock {
 public:
  virtual ~AlarmClock() = default;
  virtual int64_t now_ms() = 0;  // milliseconds since the Unix epoch
  // Asks for on_timer() at (or soon after) at_ms; replaces an earlier request.
  virtual void arm(int64_t at_ms) = 0;
};

struct LatenessSummary {
  size_t count = 0;
  int64_t p50_ms = 0, p99_ms = 0, max_ms = 0;
};

class AlarmScheduler {
 public:
  static constexpr size_t kFireBatch = 16;
  using Fire = std::function<void(const ObjectKey& key, int retry, int64_t scheduled_ms)>;

  AlarmScheduler(AlarmClock* clock, Fire fire) : clock_(clock), fire_(std::move(fire)) {}

  // Replaces the object's entry.
  void schedule(const ObjectKey& key, int64_t at_ms, int retry);
  void cancel(const ObjectKey& key);
  // Fires what is due (up to kFireBatch) and re-arms.
  void on_timer();
  size_t size() const { return by_key_.size(); }
  std::optional<int64_t> next() const;

  // How late alarms ran against their scheduled time (last 100,000).
  void record_lateness(int64_t ms);
  LatenessSummary lateness() const;

 private:
  struct Entry {
    ObjectKey key;
    int retry;
  };
  void rearm();

  AlarmClock* clock_;
  Fire fire_;
  std::multimap<int64_t, Entry> by_time_;
  std::unordered_map<ObjectKey, std::multimap<int64_t, Entry>::iterator, ObjectKeyHash> by_key_;
  std::optional<int64_t> armed_;
  std::vector<int64_t> lateness_;  // ring of samples
  size_t lateness_next_ = 0;
};

// The delay before retry number `retry` (1-based) of a failing alarm:
// 2 s · 2^(retry-1), plus up to 25% jitter, times scale (tests shrink it).
int64_t alarm_backoff_ms(int retry, double scale, double jitter01);

}  // namespace dobj::internal
