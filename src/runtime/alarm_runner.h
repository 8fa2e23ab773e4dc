// AlarmRunner: the whole lifecycle of the alarms of one shard's objects.
//
// - When: an AlarmScheduler armed by the runtime's time source (a real timer,
//   or the moves of a FakeTime).
// - Delivery: due alarms go to their objects one per task, each posted when
//   the one before was delivered, so a request that arrives in a burst waits
//   behind one alarm, not a batch.
// - The run: alarm() runs as an event of its object (ObjectHost runs it as a
//   turn and calls run()); the object's own stored alarm decides whether
//   anything is due, and the outcome (done, retried with backoff, dropped
//   after kMaxRetries retries, aborted without retry) is applied by finished()
//   once the run's writes are durable.
// - Bookkeeping: the scheduler and the node's AlarmIndex follow each commit
//   (committed()) and each operator's action (cancel, schedule).
//
// Thread affinity: the shard's thread (construction and destruction too).
#pragma once

#include <cstdint>
#include <deque>
#include <memory>
#include <random>

#include "dobj/task.h"
#include "runtime/alarm_scheduler.h"
#include "runtime/shard.h"

namespace boost::asio {
class io_context;
}

namespace dobj::internal {

class ObjectHost;
class TimeSource;

class AlarmRunner {
 public:
  // Retries after the first attempt before an alarm is dropped.
  static constexpr int kMaxRetries = 6;

  AlarmRunner(Shard* shard, boost::asio::io_context& io, TimeSource& time);
  ~AlarmRunner();

  int64_t now_ms();  // the alarm clock: milliseconds since the Unix epoch
  AlarmScheduler& scheduler() { return *scheduler_; }
  // The shard is stopping: no timer fires from now on.
  void stop();
  // No alarm due by the clock is waiting to be delivered.
  bool settled();

  // What one run of alarm() came to.
  struct Run {
    enum class Outcome { kNothingDue, kLater, kDone, kRetry, kDropped, kAbortedNoRetry };
    Outcome outcome = Outcome::kNothingDue;
    int retry = 0;
    int64_t at = 0;  // the stored alarm time it ran for
    bool failed() const { return outcome == Outcome::kRetry || outcome == Outcome::kDropped; }
  };
  // Runs the object's alarm() if its stored alarm is due (inside the host's
  // event; the host must have an instance).
  Task<Run> run(ObjectHost& host, Delivery::Alarm alarm);
  // Applies a run's outcome once its writes are durable (st ok) or failed.
  void finished(ObjectHost& host, Run run, const Status& st);
  // After a commit of the object: schedules or cancels per what it did to
  // the alarm.
  void committed(ObjectHost& host);
  // The operator's actions and resets: forget the object's alarm (scheduled
  // and indexed), or schedule the one its new storage holds.
  void cancel(ObjectHost& host);
  void schedule(const ObjectKey& key, int64_t at_ms, int retry);
  // The alarm ran out of retries: delete it (stored and indexed), logged.
  void give_up(ObjectHost& host);
  // Deletes the alarm now, outside any instance (a commit of the runtime's).
  void drop_now(ObjectHost& host);

 private:
  class Clock;
  struct Due {
    const NamespaceImpl* ns;
    ObjectId id;
    Delivery delivery;
  };
  // Schedules retry number retry + 1 after the backoff (with jitter) that
  // follows `retry` failed attempts, or gives up past kMaxRetries.
  void retry(const ObjectKey& key, int retry);
  void forget_indexed(ObjectHost& host);
  void fire(const ObjectKey& key, int retry, int64_t scheduled_ms);
  void pump_soon();
  void pump();

  Shard* shard_;
  std::unique_ptr<Clock> clock_;
  std::unique_ptr<AlarmScheduler> scheduler_;
  std::deque<Due> due_;
  bool more_due_ = false;  // the scheduler has more due than it handed over
  bool pump_posted_ = false;
  std::minstd_rand jitter_rng_{std::random_device{}()};
};

}  // namespace dobj::internal
