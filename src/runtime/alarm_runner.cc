#include "runtime/alarm_runner.h"

#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>

#include <optional>

#include "base/log.h"
#include "runtime/object_host.h"
#include "runtime/runtime.h"
#include "runtime/time_source.h"

namespace dobj::internal {

// The runtime's time source, and a steady_timer for the scheduler's next
// alarm; with a fake time, the timer is the fake time's moves instead.
class AlarmRunner::Clock : public AlarmClock {
 public:
  // on_due: the next batch is already due (in a burst); the shard fires it
  // when the alarms it has taken so far have run.
  Clock(boost::asio::io_context& io, TimeSource& time, std::function<void()> on_timer,
        std::function<void()> on_due)
      : timer_(io), time_(time), on_timer_(std::move(on_timer)), on_due_(std::move(on_due)) {
    if (time_.is_fake()) {
      // Called on the thread that moved the time: hop onto the shard, where
      // armed_at_ lives.
      subscription_ = time_.subscribe([this, &io] {
        boost::asio::post(io, [this] {
          if (cancelled_ || !armed_at_ || *armed_at_ > now_ms()) return;
          armed_at_.reset();
          on_timer_();
        });
      });
    }
  }
  ~Clock() override {
    if (time_.is_fake()) time_.unsubscribe(subscription_);
  }
  int64_t now_ms() override { return time_.now_ms(); }
  void arm(int64_t at_ms) override {
    int64_t delay = at_ms - now_ms();
    if (delay <= 0) {
      // Already due (the next batch of a burst): no timer, which would cost
      // a timerfd_settime per batch. A wait still armed for later then fires
      // once for nothing.
      if (!cancelled_) on_due_();
      return;
    }
    if (time_.is_fake()) {
      armed_at_ = at_ms;
      return;
    }
    // A far alarm wakes the scheduler once an hour, which arms again: a
    // delay of centuries would overflow the timer's nanoseconds.
    timer_.expires_after(std::chrono::milliseconds(std::min<int64_t>(delay, kMaxTimerMs)));
    timer_.async_wait([this](boost::system::error_code ec) {
      if (!ec && !cancelled_) on_timer_();
    });
  }
  void cancel() {
    cancelled_ = true;
    timer_.cancel();
  }
  bool cancelled() const { return cancelled_; }

 private:
  static constexpr int64_t kMaxTimerMs = 3'600'000;
  boost::asio::steady_timer timer_;
  TimeSource& time_;
  uint64_t subscription_ = 0;
  std::optional<int64_t> armed_at_;  // fake time: when on_timer is due
  bool cancelled_ = false;
  std::function<void()> on_timer_;
  std::function<void()> on_due_;
};


AlarmRunner::AlarmRunner(Shard* shard, boost::asio::io_context& io, TimeSource& time)
    : shard_(shard) {
  clock_ = std::make_unique<Clock>(
      io, time, [this] { scheduler_->on_timer(); },
      [this] {
        more_due_ = true;
        pump_soon();
      });
  scheduler_ = std::make_unique<AlarmScheduler>(
      clock_.get(), [this](const ObjectKey& key, int retry, int64_t scheduled_ms) {
        fire(key, retry, scheduled_ms);
      });
}

AlarmRunner::~AlarmRunner() = default;

int64_t AlarmRunner::now_ms() { return clock_->now_ms(); }

void AlarmRunner::stop() { clock_->cancel(); }

bool AlarmRunner::settled() {
  if (!due_.empty() || more_due_ || pump_posted_) return false;
  std::optional<int64_t> next = scheduler_->next();
  return !next || *next > now_ms();
}

void AlarmRunner::fire(const ObjectKey& key, int retry, int64_t scheduled_ms) {
  Delivery d;
  // The host acts on the outcome itself (finished()); this reply only runs
  // when the alarm could not run to its end (object overloaded, or reset
  // while running): the alarm is still stored, so it is tried again later.
  d.reply = [this, key, retry](Answer) { this->retry(key, retry); };
  d.alarm = Delivery::Alarm{retry, scheduled_ms};
  due_.push_back(Due{(key.ns), key.id, std::move(d)});
  pump_soon();
}

void AlarmRunner::pump_soon() {
  if (pump_posted_) return;
  pump_posted_ = true;
  shard_->post([this] { pump(); });
}

void AlarmRunner::pump() {
  pump_posted_ = false;
  if (!due_.empty()) {
    Due a = std::move(due_.front());
    due_.pop_front();
    if (Placement* placement = shard_->runtime().placement();
        placement && !placement->serves_here(a.id)) {
      // Not served here now. Another live node serves it: that node
      // scheduled the alarm when it took the object (from its copy of the
      // database), so this schedule lets it go. Otherwise (this node's
      // lease lapsed, a hand-off under way) try again in a second without
      // spending a retry; the alarm is still stored.
      if (placement->route(a.id).kind != Placement::Route::Kind::kRemote) {
        scheduler_->schedule(ObjectKey{a.ns, a.id}, now_ms() + 1000, a.delivery.alarm->retry);
      }
    } else {
      shard_->deliver(a.ns, a.id, std::move(a.delivery));
    }
  } else if (more_due_ && !clock_->cancelled()) {
    more_due_ = false;
    scheduler_->on_timer();  // takes the next batch (and may set more_due_ again)
  }
  if (!due_.empty() || more_due_) pump_soon();
}

void AlarmRunner::retry(const ObjectKey& key, int retry) {
  if (retry >= kMaxRetries) {
    // Out of retries (here from an alarm that never ran to its end: its
    // object was reset or overloaded each time): the object drops the alarm.
    Delivery d;
    d.admin = [this](ObjectHost& host, Reply reply) {
      give_up(host);
      reply(Response{});
    };
    d.reply = [](Answer) {};
    shard_->deliver((key.ns), key.id, std::move(d));
    return;
  }
  Runtime& rt = shard_->runtime();
  rt.alarm_index().set_retry(key.ns->name(), key.id.to_string(), retry + 1);
  double jitter = static_cast<double>(jitter_rng_() % 1000) / 1000.0;
  int64_t delay = alarm_backoff_ms(retry + 1, rt.options().alarm_backoff_scale, jitter);
  scheduler_->schedule(key, now_ms() + delay, retry + 1);
}

void AlarmRunner::schedule(const ObjectKey& key, int64_t at_ms, int retry) {
  scheduler_->schedule(key, at_ms, retry);
}

void AlarmRunner::committed(ObjectHost& host) {
  std::optional<int64_t> at;
  if (!host.store().take_alarm_change(&at)) return;
  ObjectKey key{host.ns(), host.id()};
  if (at) {
    scheduler_->schedule(key, *at, 0);
  } else {
    scheduler_->cancel(key);
  }
}

void AlarmRunner::cancel(ObjectHost& host) {
  scheduler_->cancel(ObjectKey{host.ns(), host.id()});
  forget_indexed(host);
}

Task<AlarmRunner::Run> AlarmRunner::run(ObjectHost& host, Delivery::Alarm alarm) {
  using Outcome = Run::Outcome;
  ObjectStore& store = host.store();
  NamespaceMetrics& metrics = *host.metrics_;
  Run result;
  result.retry = alarm.retry;
  std::optional<int64_t> at;
  try {
    at = store.stored_alarm();  // the object's own table decides
    // The count of failed runs is in the database too, where it survives a
    // move to another node; the scheduler's can be ahead (runs that could
    // not start count only there).
    if (at) alarm.retry = std::max(alarm.retry, store.stored_alarm_retry());
    result.retry = alarm.retry;
    int64_t now = now_ms();
    if (!at) {
      result.outcome = Outcome::kNothingDue;
    } else if (*at > now) {
      result.outcome = Outcome::kLater;
    } else {
      if (alarm.retry == 0) {
        scheduler_->record_lateness(now - *at);
        metrics.alarm_lateness.record((now - *at) * 1'000'000);
      }
      store.set_running_alarm(*at);
      // Counted here, where alarm() runs: a delivery that finds the alarm
      // deleted or moved later runs nothing.
      ++metrics.alarms_fired;
      if (alarm.retry > 0) ++metrics.alarm_retries;
      bool ok = true;
      try {
        co_await host.instance_->alarm(AlarmInfo{alarm.retry, alarm.retry > 0});
      } catch (...) {
        ok = false;
        log_warn(describe(*host.ns(), host.id()) + ": alarm() threw " + demangled_exception_type() +
                 ": " + exception_message(std::current_exception()) + " (run " +
                 std::to_string(alarm.retry + 1) + " of at most " + std::to_string(kMaxRetries + 1) +
                 ")");
      }
      bool touched = store.alarm_touched_in_handler();
      bool aborted_no_retry = !ok && host.drop_running_alarm_;
      store.set_running_alarm(std::nullopt);
      auto after = store.stored_alarm();
      if (aborted_no_retry) {
        result.outcome = Outcome::kAbortedNoRetry;  // the turn is discarded: deleted after
      } else if (ok) {
        if (!touched) store.delete_alarm();  // cleared with the handler's writes
        result.outcome = Outcome::kDone;
      } else if (touched && after) {
        result.outcome = Outcome::kDone;  // a new alarm replaces the retry
      } else if (alarm.retry >= kMaxRetries) {
        if (after) store.delete_alarm();
        result.outcome = Outcome::kDropped;
      } else {
        // deleteAlarm inside a failing alarm() does not cancel its retry.
        if (!after) store.set_alarm(*at);
        store.set_alarm_retry(alarm.retry + 1);
        result.outcome = Outcome::kRetry;
      }
    }
  } catch (...) {
    // Storage failed: the turn is broken and the object resets; the alarm is
    // still stored, so try again later.
    result.outcome = Outcome::kRetry;
  }
  result.at = at.value_or(0);
  co_return result;
}

void AlarmRunner::finished(ObjectHost& host, Run run, const Status& st) {
  using Outcome = Run::Outcome;
  ObjectKey key{host.ns(), host.id()};
  if (!st.is_ok() && run.outcome != Outcome::kAbortedNoRetry) {
    run.outcome = Outcome::kRetry;  // its writes failed: still stored
  }
  switch (run.outcome) {
    case Outcome::kNothingDue:
      forget_indexed(host);
      break;
    case Outcome::kLater:
      scheduler_->schedule(key, run.at, 0);
      break;
    case Outcome::kDone:
      // A new alarm set inside was scheduled when its turn committed; without
      // one, the index entry goes.
      try {
        if (!host.store().get_alarm()) forget_indexed(host);
      } catch (const Error& e) {
        // Outside any handler: a storage failure here only leaves a stale
        // index entry, which the next firing removes.
        log_warn("alarm index check failed: " + std::string(e.what()));
      }
      break;
    case Outcome::kRetry:
      retry(key, run.retry);
      break;
    case Outcome::kAbortedNoRetry:
      drop_now(host);
      break;
    case Outcome::kDropped:
      log_warn("alarm of " + describe(*host.ns(), host.id()) + " dropped after " +
               std::to_string(kMaxRetries) + " retries");  // deleted with the run's writes
      forget_indexed(host);
      break;
  }
}

void AlarmRunner::give_up(ObjectHost& host) {
  log_warn("alarm of " + describe(*host.ns(), host.id()) + " dropped after " +
           std::to_string(kMaxRetries) + " retries");
  drop_now(host);
}

void AlarmRunner::forget_indexed(ObjectHost& host) {
  shard_->runtime().alarm_index().remove(host.ns()->name(), host.id().to_string());
}

void AlarmRunner::drop_now(ObjectHost& host) {
  try {
    host.store().delete_alarm();
    if (host.store().end_turn().is_ok()) {
      committed(host);
      host.maybe_checkpoint();
    }
  } catch (const Error& e) {
    log_warn("could not drop the aborted alarm: " + std::string(e.what()));
  }
  forget_indexed(host);
}

}  // namespace dobj::internal
