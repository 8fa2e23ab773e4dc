// ObjectHost: the runtime side of one object on its shard.
//
// Holds the object's event queue, its instance (absent while evicted), its
// ObjectStore, and the bookkeeping of turns and gates:
// - A turn is one resumption of the object's code. run_turn() marks the host
//   current, runs it, then commits the turn's writes (end_turn) and releases
//   the outputs produced in the turn once those writes are durable (output
//   gate). A failed commit resets the object and fails the held outputs.
// - Events start one at a time; a new event starts when no turn is running and
//   no block_concurrency_while callback is pending. Storage never yields, so no
//   event starts during a storage operation (input gate).
// - Reset drops the instance and every coroutine frame of it, answers their
//   callers with a "reset" error, and lets queued events build a new instance.
//
// Its code: object_host.cc (queue, turns, the instance's life, the events'
// drivers, block_concurrency_while), object_gates.cc (output gate, sync
// waits, checkpoints), failures.cc (exceptions into answers). The alarm()
// run and its outcome are AlarmRunner's (alarm_runner.h).
//
// Thread affinity: the shard thread. Lifetime: owned by the Shard; kept while
// anything is queued, running or held, evicted when idle.
#pragma once

#include <chrono>
#include <deque>
#include <functional>
#include <list>
#include <memory>
#include <utility>
#include <optional>
#include <vector>

#include "dobj/object.h"
#include "runtime/driver.h"
#include "runtime/shard.h"
#include "storage/object_store.h"

namespace dobj::internal {

class NamespaceImpl;

// Turns an error Status into the JSON response a caller sees, with the
// markers a client can act on ("overloaded", "reset", "retryable"). Failures
// (reset, overloaded, storage full, unavailable, internal) are marked as such
// (ResponseAccess::failed); the other codes are answers.
Response error_response(const Status& status);
// The response for an exception that escaped a handler: dobj::Error with its
// mapped status and message; anything else is logged with `where`, its type
// and message, and answered 500 {"error": "internal error", "incident": N}
// (with the message too when `expose`, ServerOptions::expose_exception_messages),
// marked failed.
Response response_for(std::exception_ptr e, std::string_view where, bool expose);
// An unexpected exception (not a dobj::Error): logged with `where`, its type
// and message, under a new incident number.
struct Incident {
  uint64_t number;
  std::string message;
};
Incident record_incident(std::exception_ptr e, std::string_view where);
// The status of a failure caused by an exception, for the callers it fails:
// "<what>: <message>" for a dobj::Error; for anything else (a bug) the
// incident is logged and the status says "<what> (incident N)", or
// "<what>: <message>" when `expose` (ServerOptions::expose_exception_messages).
Status failure_status(std::exception_ptr e, Code code, std::string_view what, std::string_view where,
                      bool expose);
// "NS <hex id> ("name")": an object, for log lines.
std::string describe(const NamespaceImpl& ns, const ObjectId& id);
// Where a coroutine suspending now on this thread must continue.
ResumeTarget current_resume_target();
// Sends an outgoing message (a call to an object, an HTTP request, a
// WebSocket send) under the output gate: at once outside objects, and inside
// one whose writes so far are all durable; otherwise once every write it made
// before is durable, and never if that write fails (the caller is reset then).
// `send` must not run object code synchronously (it may run inside a turn).
template <typename F>
void send_through_output_gate(F send);

class ObjectHost final : private StoreOwner {
 public:
  ObjectHost(Shard* shard, const NamespaceImpl* ns, ObjectId id);
  ~ObjectHost();

  const ObjectId& id() const { return id_; }
  const NamespaceImpl* ns() const { return ns_; }
  uint64_t generation() const { return generation_; }
  // A cluster node: the placement's serving_since() when this host last
  // started from the object's files (Shard::deliver).
  int64_t served_since() const { return served_since_; }
  void set_served_since(int64_t v) { served_since_ = v; }
  Shard* shard() const { return shard_; }
  // Whether an output made now may leave at once: the turn wrote nothing and
  // every earlier commit is durable.
  bool output_gate_open() const;
  // In a cluster, whether an output may leave now (Placement::may_release).
  Status may_release() const;
  ObjectStore& store() { return *store_; }

  // The host whose turn is running on this thread, or null.
  static ObjectHost* current();

  void enqueue(Delivery&& delivery);
  // Continues a suspended coroutine of this instance as a new turn.
  void resume(std::coroutine_handle<> h);
  // Runs `send` once the writes made so far are durable (or now, if none are
  // pending); `send(error)` if they fail. Used for every outgoing message.
  void gate_output(std::function<void(Status)> send);
  Task<void> block_concurrency_while(std::function<Task<void>()> fn);
  // Storage::sync(): resumes the caller once its turn's writes are durable.
  Task<void> sync() override;
  // State::abort: resets the object when the current turn ends and throws
  // dobj::Error(kReset) to unwind the handler.
  [[noreturn]] void abort(std::string_view reason, bool retry_alarm);

  // Nothing queued, running or held: the shard may evict (destroy) the host.
  bool idle() const;
  // Events started and time spent in turns by this host (for the top lists).
  uint64_t events_total() const { return events_total_; }
  double turn_ms_total() const { return static_cast<double>(turn_ns_total_) / 1e6; }
  std::chrono::steady_clock::time_point last_active() const { return last_active_; }
  std::chrono::steady_clock::time_point created() const { return created_; }
  size_t queued() const { return queue_.size(); }
  // Whether the host had events since the shard last told the catalog; the
  // shard clears it when it does.
  bool catalog_dirty() const { return catalog_dirty_; }
  // Whether the object's instance is in memory.
  bool has_instance() const { return instance_ != nullptr; }

  // The operator's actions (Delivery::admin runs them between events).
  // While held, the host is not evicted (an export in steps).
  void hold() { ++admin_holds_; }
  void release() { --admin_holds_; }
  bool held() const { return admin_holds_ > 0; }
  // Before an operator removes or replaces the object's storage
  // (src/admin/object_actions.cc): refuses while an export runs
  // (kConflict); otherwise resets the instance (its callers get a reset error
  // naming `why`), closes the sockets (1001) and cancels the alarm, scheduled
  // and indexed. The caller then changes the files and calls reopen_store().
  Status let_go_of_storage(const std::string& why);
  // A fresh ObjectStore over the object's files (after they changed).
  void reopen_store() { make_store(); }
  // Work on the object's storage off the shard (a restore's rebuild, a
  // snapshot's fetch): from wait_off_shard() to done_off_shard() no event
  // starts and the host is not evicted; then the queue goes on.
  void wait_off_shard() { ++off_shard_; }
  void done_off_shard();
  // Runs fn over the object's storage as a turn of its own, without
  // constructing the object (the test kit's direct reads and writes): its
  // writes commit like a turn's, and done(status, exception) runs once they
  // are durable (or failed). An exception from fn discards its writes.
  void with_storage(const std::function<void(Storage&)>& fn,
                    std::function<void(Status, std::exception_ptr)> done);
  // Resets the object now, as a failure would: the instance is dropped and
  // stubs bound to it fail from now on (the test kit's injected reset).
  void inject_reset(const std::string& why);
  void clear_catalog_dirty() { catalog_dirty_ = false; }

 private:
  friend class AlarmRunner;  // runs alarm() on the instance, drops an aborted alarm
  // StoreOwner: asked by the store when it needs them (rarely), instead of
  // a copy in each store.
  AlarmRecord identity() const override;
  uint32_t partition() const override;
  using Event = Delivery;
  // The events waiting for their turn. libstdc++'s std::deque allocates a
  // map and a node even while empty (448 bytes for these events), and most
  // resident objects wait for nothing; so the deque exists only while it
  // holds events.
  class EventQueue {
   public:
    bool empty() const { return !events_; }
    size_t size() const { return events_ ? events_->size() : 0; }
    const Event& front() const { return events_->front(); }
    void push_back(Event&& event) {
      if (!events_) events_ = std::make_unique<std::deque<Event>>();
      events_->push_back(std::move(event));
    }
    Event pop_front() {
      Event event = std::move(events_->front());
      events_->pop_front();
      if (events_->empty()) events_.reset();
      return event;
    }
    // Every event, leaving the queue empty.
    std::deque<Event> take() {
      std::deque<Event> all;
      if (events_) all = std::move(*std::exchange(events_, nullptr));
      return all;
    }

   private:
    std::unique_ptr<std::deque<Event>> events_;  // null when empty
  };
  struct Run {
    Driver driver;
    Reply reply;  // null for block_concurrency_while callbacks
    bool finished = false;
    bool is_alarm = false;
    uint64_t instance_epoch = 0;  // what its answers tell a stub (check_binding)
    std::chrono::steady_clock::time_point started;
  };
  // Records the end of an event in the metrics.
  void event_ended(const Run& run, bool failed);
  struct BlockState;

  template <typename F>
  void run_turn(F&& fn);
  void pump();
  // Whether the next event may start now (no turn, wait or checkpoint holds
  // the object).
  bool can_start() const { return !in_turn_ && blocked_ == 0 && !checkpointing_ && off_shard_ == 0; }
  bool ensure_instance();
  // Starts the event's turn, unless the stub that sent it is bound to an
  // instance reset since (check_binding answered it): false then.
  bool start_event(Event&& event);
  void release_outputs();
  void start_syncs();
  // Starts the store's checkpoint when one is due (ObjectStore::start_checkpoint).
  void maybe_checkpoint();
  // With fail_queued, the events waiting in the queue fail too (they were
  // waiting behind a block_concurrency_while that failed).
  void reset(const Status& why, bool fail_queued = false);
  void reap_runs();
  // ServerOptions::evict_after_every_event: drops the instance once the host
  // is idle, unless sockets accepted without hibernation need it.
  void drop_instance_if_done();
  void make_store();
  Driver drive_fetch(Run* run, Request request, std::optional<std::string> call_method);
  Driver drive_alarm(Run* run, Delivery::Alarm alarm);
  Driver drive_socket(Run* run, SocketEvent event);
  Driver drive_block(Run* run, std::function<Task<void>()> fn, std::shared_ptr<BlockState> st);
  // Applies the stub-binding rule: what the event's answers tell its stub (0
  // if it came through none), or nullopt, the caller answered with the error,
  // if the stub is bound to an instance that was reset since.
  std::optional<uint64_t> check_binding(const Event& event);

  Shard* shard_;
  const NamespaceImpl* ns_;
  ObjectId id_;
  uint64_t generation_;
  int64_t served_since_ = 0;
  std::unique_ptr<ObjectStore> store_;
  std::unique_ptr<State> state_;
  std::unique_ptr<DurableObject> instance_;
  EventQueue queue_;
  std::list<Run> runs_;
  std::vector<std::function<void(Status)>> turn_outputs_;
  struct SyncWaiter {
    std::coroutine_handle<> handle;
    Status* result;
  };
  std::vector<SyncWaiter> pending_syncs_;  // sync() calls awaiting this turn's commit
  size_t held_output_batches_ = 0;
  int blocked_ = 0;
  // A checkpoint waits for its database sync: no event may start (its commit
  // would restart the WAL).
  bool checkpointing_ = false;
  // Work on the object's storage off the shard (wait_off_shard).
  int off_shard_ = 0;
  bool in_turn_ = false;
  bool storage_turn_ = false;  // the turn starting is with_storage's
  bool pumping_ = false;
  std::optional<Status> reset_requested_;
  bool reset_fails_queue_ = false;
  bool drop_running_alarm_ = false;  // abort(..., retry_alarm = false) during alarm()
  std::chrono::steady_clock::time_point last_active_;
  ActivityLink activity_;  // in the shard's list by last activity
  void note_active(std::chrono::steady_clock::time_point at) {
    last_active_ = at;
    shard_->note_active(activity_, at);
  }
  std::chrono::steady_clock::time_point created_ = std::chrono::steady_clock::now();
  NamespaceMetrics* metrics_;  // this namespace's counters on this shard
  bool timings_;               // ServerOptions::timings
  bool traced_;                // a cluster's --trace-activations
  uint64_t events_total_ = 0;
  int64_t turn_ns_total_ = 0;
  bool catalog_dirty_ = false;
  int admin_holds_ = 0;
};

// An output of the object running now (a socket message, a call out):
// send(ok) at once if its output gate is open (or no object runs), else once
// the writes before it are durable. send(error) if it may never leave: the
// object was reset (kReset), or its node may no longer answer for it (a
// cluster node that lost the partition's lease, or has too few copies in
// sync). The output then fails where its sender can tell, instead of
// vanishing.
template <typename F>
void send_through_output_gate(F send) {
  ObjectHost* host = ObjectHost::current();
  if (!host || host->output_gate_open()) {
    send(Status::ok());
    return;
  }
  host->gate_output(std::move(send));
}

}  // namespace dobj::internal
