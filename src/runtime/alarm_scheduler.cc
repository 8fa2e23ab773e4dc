#include "runtime/alarm_scheduler.h"

#include <algorithm>
#include <cmath>

namespace dobj::internal {

void AlarmScheduler::schedule(const ObjectKey& key, int64_t at_ms, int retry) {
  cancel(key);
  auto it = by_time_.emplace(at_ms, Entry{key, retry});
  by_key_[key] = it;
  rearm();
}

void AlarmScheduler::cancel(const ObjectKey& key) {
  auto it = by_key_.find(key);
  if (it == by_key_.end()) return;
  by_time_.erase(it->second);
  by_key_.erase(it);
}

std::optional<int64_t> AlarmScheduler::next() const {
  if (by_time_.empty()) return std::nullopt;
  return by_time_.begin()->first;
}

void AlarmScheduler::rearm() {
  auto n = next();
  if (!n) return;
  if (armed_ && *armed_ <= *n) return;  // an earlier request already stands
  armed_ = n;
  clock_->arm(*n);
}

void AlarmScheduler::on_timer() {
  armed_.reset();
  int64_t now = clock_->now_ms();
  size_t fired = 0;
  while (!by_time_.empty() && by_time_.begin()->first <= now && fired < kFireBatch) {
    auto it = by_time_.begin();
    int64_t at = it->first;
    Entry e = std::move(it->second);
    by_key_.erase(e.key);
    by_time_.erase(it);
    fire_(e.key, e.retry, at);
    ++fired;
  }
  rearm();
}

void AlarmScheduler::record_lateness(int64_t ms) {
  constexpr size_t kKeep = 100'000;
  if (lateness_.size() < kKeep) {
    lateness_.push_back(ms);
  } else {
    lateness_[lateness_next_++ % kKeep] = ms;
  }
}

LatenessSummary AlarmScheduler::lateness() const {
  LatenessSummary s;
  if (lateness_.empty()) return s;
  std::vector<int64_t> v = lateness_;
  std::sort(v.begin(), v.end());
  s.count = v.size();
  s.p50_ms = v[v.size() / 2];
  s.p99_ms = v[std::min(v.size() - 1, v.size() * 99 / 100)];
  s.max_ms = v.back();
  return s;
}

int64_t alarm_backoff_ms(int retry, double scale, double jitter01) {
  double base = 2000.0 * std::pow(2.0, std::max(0, retry - 1));
  return static_cast<int64_t>(base * (1.0 + 0.25 * jitter01) * scale);
}

}  // namespace dobj::internal
