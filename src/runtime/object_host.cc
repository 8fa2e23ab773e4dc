// ObjectHost: the event queue, turns, the instance's life (construction,
// reset, eviction), the events' drivers and block_concurrency_while. The
// output gate, sync waits and checkpoints are in object_gates.cc.
#include "runtime/object_host.h"

#include <nlohmann/json.hpp>

#include "base/clock.h"
#include "base/log.h"
#include "base/websocket_frame.h"
#include "runtime/alarm_runner.h"
#include "runtime/api_access.h"
#include "runtime/object_actions.h"
#include "runtime/placement.h"
#include "runtime/runtime.h"

namespace dobj::internal {
namespace {

thread_local ObjectHost* t_current_host = nullptr;

// Events started back to back before the loop gets a turn of its own.
constexpr int kMaxEventsPerPump = 32;

}  // namespace

ResumeTarget current_resume_target() {
  ResumeTarget t;
  t.shard = Shard::current();
  if (ObjectHost* h = ObjectHost::current()) {
    t.ns = h->ns();
    t.id = h->id();
    t.generation = h->generation();
  } else if (t.shard) {
    t.generation = t.shard->current_worker();
  }
  return t;
}

struct ObjectHost::BlockState {
  bool done = false;
  std::exception_ptr error;
  std::coroutine_handle<> waiter;
  ResumeTarget target;
};

ObjectHost::ObjectHost(Shard* shard, const NamespaceImpl* ns, ObjectId id)
    : shard_(shard),
      ns_(ns),
      id_(std::move(id)),
      generation_(shard->next_generation()),
      metrics_(&shard->metrics(ns->index())),
      timings_(shard->runtime().options().timings),
      traced_(shard->runtime().placement() && shard->runtime().placement()->tracing()) {
  make_store();
  activity_.host = this;
  note_active(shard_->activity_now());
}

void ObjectHost::make_store() {
  checkpointing_ = false;  // a checkpoint of the store this replaces is dropped with it
  std::string hex = id_.to_string();
  store_ = std::make_unique<ObjectStore>(shard_->store_env(ns_), ns_->object_dir(hex),
                                         NamespaceImpl::object_file(hex));
  store_->set_owner(this);
}

AlarmRecord ObjectHost::identity() const { return AlarmRecord{ns_->name(), id_.to_string(), id_.name(), 0, 0}; }

uint32_t ObjectHost::partition() const {
  Placement* placement = shard_->runtime().placement();
  return placement ? static_cast<uint32_t>(placement->partition_of(id_)) : 0;
}

ObjectHost::~ObjectHost() {
  runs_.clear();
  instance_.reset();
  state_.reset();
}

ObjectHost* ObjectHost::current() { return t_current_host; }

template <typename F>
void ObjectHost::run_turn(F&& fn) {
  ObjectHost* prev = t_current_host;
  t_current_host = this;
  bool outer = !in_turn_;
  in_turn_ = true;
  auto cpu_limit = shard_->runtime().options().cpu_limit;
  bool limited = outer && cpu_limit.count() > 0;
  const StorageCounters before = metrics_->storage;
  auto wall_before = std::chrono::steady_clock::now();
  Shard::CpuMark cpu_before = limited ? shard_->cpu_mark(wall_before) : Shard::CpuMark{};
  const bool had_instance = instance_ != nullptr;
  fn();
  if (!outer) {
    t_current_host = prev;
    return;
  }
  auto wall_after = std::chrono::steady_clock::now();
  int64_t turn_ns = (wall_after - wall_before).count();
  if (timings_) metrics_->turn_time.record(turn_ns);
  {
    const StorageCounters& after = metrics_->storage;
    bool read = after.reads != before.reads;
    bool wrote = after.writes != before.writes || after.deletes != before.deletes;
    if (read && wrote) {
      ++metrics_->turns_rmw;
    } else if (wrote) {
      ++metrics_->turns_blind_write;
    } else if (read) {
      ++metrics_->turns_read;
    }
  }
  turn_ns_total_ += turn_ns;
  // A turn uses no more CPU than the wall time it took, so the CPU clock (a
  // system call) is read again only for turns that ran past the limit.
  if (limited && wall_after - cpu_before.wall > cpu_limit) {
    int64_t used_ms = (thread_cpu_ns() - cpu_before.cpu_ns) / 1'000'000;
    if (used_ms > cpu_limit.count() && !reset_requested_) {
      // C++ cannot be interrupted safely, so the limit is enforced when the
      // turn ends: the object is reset and the event fails.
      reset_requested_ = Status(Code::kReset, "a turn used " + std::to_string(used_ms) +
                                                  " ms of CPU; the limit is " +
                                                  std::to_string(cpu_limit.count()) + " ms");
    }
  }
  if (outer && had_instance && !storage_turn_ && !reset_requested_) {
    std::atomic<int>& injected = shard_->runtime().turn_faults().exceed_cpu_limit;
    if (injected.load(std::memory_order_relaxed) > 0 && injected.fetch_sub(1) > 0) {
      reset_requested_ = Status(Code::kReset, "a turn used more CPU than the limit (injected)");
    }
  }
  in_turn_ = false;
  t_current_host = prev;
  note_active(shard_->activity_now(wall_after));
  if (reset_requested_) {
    // The turn asked for a reset (abort, CPU overrun, a failed set-up): its
    // writes are discarded and its outputs fail with the reset below.
    store_->discard_turn();
  } else if (Status st = store_->end_turn(); !st) {
    reset_requested_ = st;
  } else {
    shard_->alarms().committed(*this);
    release_outputs();
    start_syncs();
    maybe_checkpoint();
  }
  reap_runs();
  if (reset_requested_) {
    Status why = std::move(*reset_requested_);
    reset_requested_.reset();
    reset(why, std::exchange(reset_fails_queue_, false));
  }
  pump();
  drop_instance_if_done();
}

void ObjectHost::enqueue(Delivery&& delivery) {
  if (!delivery.admin) note_active(shard_->activity_now());
  // Socket events are bounded per socket instead (the hub stops reading).
  if (queue_.size() >= shard_->runtime().options().max_queue && !delivery.socket_event) {
    ++metrics_->overloaded;
    delivery.reply(error_response(
        Status(Code::kOverloaded, "object is overloaded: " + std::to_string(queue_.size()) +
                                      " requests are already queued for it")));
    return;
  }
  // An idle object with an instance starts the event at once: no stop in
  // the queue (whose deque would be made and freed again for each event).
  if (queue_.empty() && instance_ && !delivery.admin && !pumping_ && can_start()) {
    pumping_ = true;
    start_event(std::move(delivery));
    pumping_ = false;
    if (!queue_.empty()) pump();
    return;
  }
  queue_.push_back(std::move(delivery));
  pump();
}

void ObjectHost::pump() {
  if (pumping_ || in_turn_) return;
  pumping_ = true;
  int started = 0;
  while (!queue_.empty() && can_start()) {
    if (started == kMaxEventsPerPump) {
      // Let the loop serve other objects and sockets; continue afterwards.
      ResumeTarget t = {shard_, ns_, id_, generation_};
      shard_->post([t] {
        if (ObjectHost* h = t.shard->find_host(t.ns, t.id)) h->pump();
      });
      break;
    }
    if (queue_.front().admin) {
      store_->settle();  // what it reads or replaces is committed
      Event ev = queue_.pop_front();
      ev.admin(*this, std::move(ev.reply));
      continue;
    }
    if (!ensure_instance()) continue;
    if (blocked_ > 0) break;  // the constructor started block_concurrency_while
    Event ev = queue_.pop_front();
    if (start_event(std::move(ev))) ++started;
  }
  pumping_ = false;
}

bool ObjectHost::ensure_instance() {
  if (instance_) return true;
  // A restore the last instance asked for comes before the next is built.
  Status restore_error;
  ResumeTarget t = {shard_, ns_, id_, generation_};
  RestoreStep step = restore_if_asked(*this, &restore_error, [t](Status done) {
    t.shard->post([t, done] {
      ObjectHost* h = t.shard->find_host(t.ns, t.id);
      if (!h) return;
      if (!done.is_ok() && !h->queue_.empty()) {
        Event ev = h->queue_.pop_front();
        ev.reply(error_response(restore_failed(*h, done)));
      }
      h->done_off_shard();
    });
  });
  if (step == RestoreStep::kWaiting) {
    wait_off_shard();
    return false;
  }
  if (step == RestoreStep::kFailed) {
    Event ev = queue_.pop_front();
    ev.reply(error_response(restore_error));
    return false;
  }
  generation_ = shard_->next_generation();
  state_ = ApiAccess::state(this);
  std::exception_ptr error;
  ++metrics_->instances;
  run_turn([&] {
    try {
      instance_ = ns_->construct(*state_, ns_->runtime().env());
    } catch (...) {
      error = std::current_exception();
    }
  });
  if (instance_) return true;
  // The constructor failed. What it started (a block_concurrency_while
  // callback and its timers) belongs to this generation and would run on into
  // the freed object: reset drops it all, as for any instance.
  Status why = failure_status(error, Code::kInternal, "the object's constructor threw",
                              describe(*ns_, id_) + ": constructor",
                              shard_->runtime().options().expose_exception_messages);
  reset(why, /*fail_queued=*/false);
  // Fail the event that would have used it.
  Event ev = queue_.pop_front();
  ev.reply(error_response(why));
  return false;
}

std::optional<uint64_t> ObjectHost::check_binding(const Event& event) {
  if (!event.via_stub) return 0;
  // The instance: this process's run and the object's resets in it.
  uint64_t epoch = (uint64_t{shard_->runtime().incarnation()} << 32) | (shard_->reset_epoch(ns_, id_) + 1);
  if (event.bound_epoch == 0 || event.bound_epoch == epoch) {
    // Its answers tell the stub which instance answered, so that it binds to it.
    return epoch;
  }
  event.reply(error_response(
      Status(Code::kReset,
             "the object this stub reached was reset since; get a new stub to reach the "
             "new instance")));
  return std::nullopt;
}

bool ObjectHost::start_event(Event&& event) {
  std::optional<uint64_t> instance_epoch = check_binding(event);
  if (!instance_epoch) return false;
  runs_.emplace_back();
  Run* run = &runs_.back();
  run->reply = std::move(event.reply);
  run->instance_epoch = *instance_epoch;
  if (timings_ || traced_) run->started = std::chrono::steady_clock::now();
  ++events_total_;
  if (!catalog_dirty_) {
    catalog_dirty_ = true;
    shard_->catalog_dirty(this);
  }
  if (event.alarm) {
    run->is_alarm = true;
    run->driver = drive_alarm(run, *event.alarm);
  } else if (event.socket_event) {
    if (event.socket_event->kind == SocketEvent::kMessage) ++metrics_->socket_messages;
    run->driver = drive_socket(run, std::move(*event.socket_event));
  } else {
    ++metrics_->requests;
    run->driver = drive_fetch(run, std::move(event.request), std::move(event.call_method));
  }
  run_turn([run] { run->driver.resume(); });
  return true;
}

Driver ObjectHost::drive_fetch(Run* run, Request request, std::optional<std::string> call_method) {
  Response response;
  try {
    if (call_method) {
      response =
          co_await instance_->dispatch_call(std::move(*call_method), std::move(request.body));
    } else {
      response = co_await instance_->fetch(std::move(request));
    }
  } catch (...) {
    response = response_for(std::current_exception(), describe(*ns_, id_) + ": fetch",
                            shard_->runtime().options().expose_exception_messages);
  }
  run->finished = true;
  event_ended(*run, response.status >= 500);
  gate_output([this, reply = std::move(run->reply), response = std::move(response),
               started = run->started, epoch = run->instance_epoch](Status st) mutable {
    if (traced_ && st.is_ok()) shard_->runtime().placement()->trace_release(ns_, id_, started);
    reply(Answer(st.is_ok() ? std::move(response) : error_response(st), epoch));
  });
}

Driver ObjectHost::drive_socket(Run* run, SocketEvent ev) {
  try {
    SocketConn& c = *ev.socket.conn();
    if (c.hibernatable) {
      switch (ev.kind) {
        case SocketEvent::kMessage:
          co_await instance_->websocket_message(ev.socket, std::move(ev.message));
          break;
        case SocketEvent::kClose:
          co_await instance_->websocket_close(ev.socket, ev.code, std::move(ev.reason),
                                              ev.was_clean);
          break;
        case SocketEvent::kError:
          co_await instance_->websocket_error(ev.socket, std::move(ev.reason));
          break;
      }
    } else if (auto handlers = c.handlers) {  // null once the instance that kept it reset
      if (ev.kind == SocketEvent::kMessage && handlers->message) {
        co_await handlers->message(ev.socket, std::move(ev.message));
      } else if (ev.kind == SocketEvent::kClose && handlers->close) {
        co_await handlers->close(ev.socket, ev.code, std::move(ev.reason), ev.was_clean);
      } else if (ev.kind == SocketEvent::kError && handlers->error) {
        co_await handlers->error(ev.socket, std::move(ev.reason));
      }
    }
  } catch (...) {
    // As in Durable Objects: a failing socket handler fails that event only.
    log_warn(ns_->name() + " " + id_.to_string() +
             ": a WebSocket handler threw: " + exception_message(std::current_exception()));
    ++metrics_->errors;
  }
  run->finished = true;
  event_ended(*run, false);
  auto reply = std::move(run->reply);
  reply(Response{});
}

void ObjectHost::event_ended(const Run& run, bool failed) {
  if (timings_) {
    metrics_->event_time.record((std::chrono::steady_clock::now() - run.started).count());
  }
  if (failed) ++metrics_->errors;
}

Driver ObjectHost::drive_alarm(Run* run, Delivery::Alarm alarm) {
  AlarmRunner& alarms = shard_->alarms();
  AlarmRunner::Run ran = co_await alarms.run(*this, alarm);
  run->finished = true;
  event_ended(*run, ran.failed());
  gate_output([this, ran](Status st) { shard_->alarms().finished(*this, ran, st); });
}

void ObjectHost::resume(std::coroutine_handle<> h) {
  run_turn([h] { h.resume(); });
}

void ObjectHost::abort(std::string_view reason, bool retry_alarm) {
  if (!retry_alarm) drop_running_alarm_ = true;
  Status st(Code::kReset, "the object aborted: " + std::string(reason));
  if (!reset_requested_) reset_requested_ = st;
  throw Error(st);
}

Task<void> ObjectHost::block_concurrency_while(std::function<Task<void>()> fn) {
  auto st = std::make_shared<BlockState>();
  ++blocked_;
  runs_.emplace_back();
  Run* run = &runs_.back();
  run->driver = drive_block(run, std::move(fn), st);
  auto limit = shard_->runtime().options().block_concurrency_timeout;
  ResumeTarget self{shard_, ns_, id_, generation_};
  shard_->run_after(limit, [self, st, limit] {
    if (st->done || !self.shard->alive(self)) return;
    ObjectHost* host = self.shard->find_host(self.ns, self.id);
    host->reset(Status(Code::kReset, "block_concurrency_while ran past its limit of " +
                                         std::to_string(limit.count()) + " ms"),
                /*fail_queued=*/true);
    host->pump();
  });
  run_turn([run] { run->driver.resume(); });

  struct Awaiter {
    std::shared_ptr<BlockState> st;
    bool await_ready() const { return st->done; }
    void await_suspend(std::coroutine_handle<> h) {
      st->waiter = h;
      st->target = current_resume_target();
    }
    void await_resume() const {
      if (st->error) std::rethrow_exception(st->error);
    }
  };
  return [](std::shared_ptr<BlockState> s) -> Task<void> {
    Awaiter awaiter{std::move(s)};  // named: see FetchAwaitable in api.cc
    co_await awaiter;
  }(st);
}

Driver ObjectHost::drive_block(Run* run, std::function<Task<void>()> fn,
                               std::shared_ptr<BlockState> st) {
  try {
    co_await fn();
  } catch (...) {
    st->error = std::current_exception();
  }
  run->finished = true;
  --blocked_;
  st->done = true;
  if (st->error) {
    reset_requested_ = failure_status(st->error, Code::kReset, "block_concurrency_while callback threw",
                                      describe(*ns_, id_) + ": block_concurrency_while",
                                      shard_->runtime().options().expose_exception_messages);
    reset_fails_queue_ = true;
  }
  if (st->waiter) {
    ResumeTarget t = st->target;
    auto w = st->waiter;
    shard_->post([t, w] { t.shard->resume(t, w); });
  }
}

void ObjectHost::reap_runs() {
  runs_.remove_if([](const Run& r) { return r.finished; });
}

void ObjectHost::reset(const Status& why, bool fail_queued) {
  // A full disk keeps its own code (507): the client learns it was not its
  // request, and that retrying will not help until space is freed.
  bool kept = why.code() == Code::kReset || why.code() == Code::kStorageFull;
  Status reset_status(why.code() == Code::kStorageFull ? Code::kStorageFull : Code::kReset,
                      kept ? why.message() : "object reset: " + why.message());
  generation_ = shard_->next_generation();
  shard_->bump_reset_epoch(ns_, id_);
  ++metrics_->resets;
  auto outs = std::move(turn_outputs_);
  turn_outputs_.clear();
  pending_syncs_.clear();
  std::list<Run> runs = std::move(runs_);
  runs_.clear();
  blocked_ = 0;
  bool drop_alarm = std::exchange(drop_running_alarm_, false);
  bool dropped = false;
  for (auto& r : runs) {
    if (r.finished || !r.reply) continue;
    if (r.is_alarm && drop_alarm) {
      dropped = true;  // not retried: its reply would schedule the retry
      continue;
    }
    r.reply(Answer(error_response(reset_status), r.instance_epoch));
  }
  for (auto& o : outs) o(reset_status);
  runs.clear();  // destroys the coroutine frames before the instance they use
  shard_->sockets().object_reset(ns_, id_);
  instance_.reset();
  state_.reset();
  if (dropped) shard_->alarms().drop_now(*this);
  if (fail_queued) {
    std::deque<Event> queued = queue_.take();
    for (auto& ev : queued) ev.reply(error_response(reset_status));
  }
}

void ObjectHost::drop_instance_if_done() {
  if (!instance_ || !shard_->runtime().options().evict_after_every_event || !idle()) return;
  if (shard_->sockets().kept_sockets(ns_, id_) > 0) return;
  // As an eviction: nothing of the instance runs (idle), so no frame is lost;
  // the next event constructs a new one from storage.
  instance_.reset();
  state_.reset();
  generation_ = shard_->next_generation();
  ++metrics_->evictions;
}

void ObjectHost::with_storage(const std::function<void(Storage&)>& fn,
                              std::function<void(Status, std::exception_ptr)> done) {
  std::exception_ptr error;
  storage_turn_ = true;
  run_turn([&] {
    storage_turn_ = false;
    try {
      Storage storage = ApiAccess::storage(store_.get());
      fn(storage);
    } catch (...) {
      error = std::current_exception();
      store_->discard_turn();
    }
    gate_output([done = std::move(done), error](Status st) { done(std::move(st), error); });
  });
}

void ObjectHost::inject_reset(const std::string& why) {
  reset(Status(Code::kReset, why));
  pump();
}

void ObjectHost::done_off_shard() {
  --off_shard_;
  // On a fresh stack: the caller may be inside this host's own work.
  ResumeTarget t = {shard_, ns_, id_, generation_};
  shard_->post([t] {
    if (ObjectHost* h = t.shard->find_host(t.ns, t.id)) h->pump();
  });
}

bool ObjectHost::idle() const {
  return runs_.empty() && queue_.empty() && held_output_batches_ == 0 && blocked_ == 0 &&
         !in_turn_ && !store_->in_turn_transaction() && admin_holds_ == 0 && !checkpointing_ &&
         off_shard_ == 0;
}

Status ObjectHost::let_go_of_storage(const std::string& why) {
  if (held()) return Status(Code::kConflict, "an export of this object is running; try again");
  if (instance_ || !runs_.empty()) reset(Status(Code::kReset, why));
  shard_->sockets().close_object(ns_, id_, ws::kGoingAway, why);
  shard_->alarms().cancel(*this);
  return Status::ok();
}

}  // namespace dobj::internal
