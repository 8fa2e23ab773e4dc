// Shard: one event-loop thread and everything that lives on it.
//
// Each shard owns a Boost.Asio io_context run by one thread, the objects whose
// IDs hash to it (ObjectHost), their SQLite connections (DbCache), its group
// commit state, and the worker invocations of connections it accepted. Nothing
// here is touched from another thread: other threads reach a shard with post().
#pragma once

#include <atomic>
#include <chrono>
#include <coroutine>
#include <deque>
#include <functional>
#include <future>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <type_traits>
#include <unordered_map>

#include <boost/intrusive/list.hpp>

#include "dobj/http.h"
#include "dobj/id.h"
#include "dobj/task.h"
#include "runtime/driver.h"
#include "runtime/metrics.h"
#include "runtime/object_key.h"
#include "runtime/socket_hub.h"
#include "runtime/time_source.h"
#include "storage/group_commit.h"
#include "storage/object_store.h"

namespace boost::asio {
class io_context;
}
namespace dobj {
class Env;
}

namespace dobj::internal {

class Runtime;
class NamespaceImpl;
class ObjectHost;
class AlarmRunner;

// Where a suspended coroutine continues: in an object's turn (ns set, and the
// instance's generation), in a worker's run (ns null, generation = the run's
// id on its shard), or plainly on the shard (both 0). A continuation whose
// instance or worker run is gone is dropped: its frame was destroyed.
struct ResumeTarget {
  class Shard* shard = nullptr;
  const NamespaceImpl* ns = nullptr;
  ObjectId id;
  uint64_t generation = 0;
};

// What answers an event: the response, and beside it what the runtime tells
// the one who asked. Typed, never headers: an object's headers (a proxied
// backend's, say) are passed on as they are and can steer nothing.
struct Answer {
  Answer(Response r) : response(std::move(r)) {}  // NOLINT: most answers are only that
  Answer(Response r, uint64_t epoch) : response(std::move(r)), instance_epoch(epoch) {}
  Response response;
  // Via a stub: the instance that answered (its reset epoch + 1), so that the
  // stub binds to it; 0 otherwise.
  uint64_t instance_epoch = 0;
  // From a worker run: the shard whose objects it called when they were all
  // on one shard of this node; -1 when it called none, or several shards' or
  // another node's. The HTTP server moves a connection whose requests keep
  // going to one other shard over to it (net/http_server.cc).
  int object_shard = -1;
};

// Reads the parts of a Response that object code cannot reach.
struct ResponseAccess {
  struct Upgrade {
    size_t shard;
    uint64_t socket_id;  // relay: the WsRelays id on that shard
    bool relay = false;  // a WebSocket relayed to the node that serves the object
  };
  static std::optional<Upgrade> upgrade(const Response& r) {
    if (!r.upgrade_) return std::nullopt;
    return Upgrade{r.upgrade_->shard, r.upgrade_->socket_id, r.upgrade_->relay};
  }
  // Carries an upgrade over to another response: a JavaScript Worker passing
  // a stub's 101 on (src/js), a relay's 101 (Cluster::forward). Only ever
  // set from a real upgrade.
  static void set_upgrade(Response& r, Upgrade u) {
    r.upgrade_ = Response::Upgrade{u.shard, u.socket_id, u.relay};
  }
  static const std::optional<std::string>& body_file(const Response& r) { return r.body_file_; }
  static void set_body_file(Response& r, std::string path) { r.body_file_ = std::move(path); }
  static bool failed(const Response& r) { return r.failed_; }
  static void set_failed(Response& r) { r.failed_ = true; }
};

using Reply = std::function<void(Answer&&)>;

// An object's place in its shard's list of objects by last activity (see
// Shard::evict_idle). Leaves the list by itself when destroyed.
struct ActivityLink : boost::intrusive::list_base_hook<
                          boost::intrusive::link_mode<boost::intrusive::auto_unlink>> {
  ObjectHost* host = nullptr;
  // When it joined the back of the list: its last activity, or when it was
  // last found idle for long enough but not evictable.
  std::chrono::steady_clock::time_point since;
};

// Which instance a stub is bound to: 0 until its first answer, then the
// object's reset epoch + 1 as that answer reported it. Shared by the copies of
// a stub, touched only on the stub's thread: the epoch travels in messages.
using StubBinding = std::shared_ptr<uint64_t>;

// One event on its way to an object.
struct Delivery {
  Request request;
  Reply reply;
  // Set for a typed call: the body holds the JSON array of arguments and the
  // reply's body the JSON result.
  std::optional<std::string> call_method;
  bool via_stub = false;     // the binding rule applies
  uint64_t bound_epoch = 0;  // the stub's binding when it was sent; 0: unbound
  struct Alarm {
    int retry = 0;
    int64_t scheduled_ms = 0;
  };
  std::optional<Alarm> alarm;  // set: run the object's alarm(), not fetch
  // Set: a WebSocket event for the object's handlers; reply() only says the
  // event finished.
  std::optional<SocketEvent> socket_event;
  // Set: an operator's action (inspect, query, export, delete, import). It
  // runs in the object's queue, between its events, without constructing the
  // object, and answers through the reply it is given.
  std::function<void(ObjectHost&, Reply)> admin;
  // Nodes that forwarded it so far (a cluster): one that reaches a node
  // whose partition moved meanwhile goes on once more, never round a loop.
  int hops = 0;
  // The partition's epoch as the node that forwarded it knew it: one newer
  // than this node's means this node's view is behind (it waits for it).
  int64_t epoch = 0;
};

class WsRelays;

// A worker's stub call to an object of its own shard runs the object's event
// at once, nested in the call, instead of posting it through the loop
// (FetchAwaitable in api.cc; ~7% of a read's instructions). While a
// NoInlineDelivery is alive on the thread, such calls are posted as before:
// the JavaScript engine holds one while native code called from a Worker's
// JavaScript runs, since an object's JavaScript must not start inside a
// Worker's (its microtasks would run in the middle of the Worker's code).
class NoInlineDelivery {
 public:
  NoInlineDelivery() { ++depth_; }
  ~NoInlineDelivery() { --depth_; }
  NoInlineDelivery(const NoInlineDelivery&) = delete;
  NoInlineDelivery& operator=(const NoInlineDelivery&) = delete;
  static bool active() { return depth_ > 0; }

 private:
  static inline thread_local int depth_ = 0;
};

class Shard {
 public:
  Shard(Runtime* runtime, int index, Flusher* flusher, size_t max_open_databases);
  ~Shard();

  int index() const { return index_; }
  boost::asio::io_context& io();
  Runtime& runtime() { return *runtime_; }
  GroupCommit& commits() { return commits_; }
  // A cluster node's replication of this shard's commits (null: none). Set
  // before the loop runs.
  void set_replicator(std::unique_ptr<ShardReplicator> r) {
    replicator_ = std::move(r);
    commits_.set_replicator(replicator_.get());
  }
  ReplicationLog* replication_log() { return replicator_.get(); }
  // The alarms of this shard's objects (alarm_runner.h).
  AlarmRunner& alarms() { return *alarms_; }
  int64_t now_ms();  // the alarm clock: milliseconds since the Unix epoch
  // The activity clock of idle eviction (TimeSource::steady_now): `real`, a
  // reading of the steady clock the caller took anyway, unless time is fake.
  std::chrono::steady_clock::time_point activity_now(std::chrono::steady_clock::time_point real) const {
    return fake_time_ ? time_->steady_now() : real;
  }
  std::chrono::steady_clock::time_point activity_now() const {
    return fake_time_ ? time_->steady_now() : std::chrono::steady_clock::now();
  }
  DbCache& open_dbs() { return open_dbs_; }
  SocketHub& sockets() { return *sockets_; }
  WsRelays& relays() { return *relays_; }
  // This shard's counters for a namespace (by NamespaceImpl::index()).
  NamespaceMetrics& metrics(size_t ns_index) { return metrics_[ns_index]; }
  // What the stores of a namespace's objects on this shard work with (one,
  // shared by them all; made on first use).
  const std::shared_ptr<const StoreEnv>& store_env(const NamespaceImpl* ns);
  // A copy of the counters plus gauges (objects in memory, sockets) and the
  // busiest resident objects of this shard.
  MetricsSnapshot metrics_snapshot();

  // Thread-safe: runs fn on this shard's thread.
  void post(std::function<void()> fn);
  // Runs fn on this shard's thread and waits for its result. Only from a
  // thread that is not this shard's (it would wait for itself).
  template <typename F>
  auto run_and_wait(F fn) {
    using R = decltype(fn());
    std::promise<R> p;
    auto f = p.get_future();
    post([&] {
      if constexpr (std::is_void_v<R>) {
        fn();
        p.set_value();
      } else {
        p.set_value(fn());
      }
    });
    return f.get();
  }
  void start();
  // Stepped by hand (Runtime::start(kStepped)): no thread runs the loop; the
  // test runs its handlers on its own thread. step() runs one ready handler
  // (false: none was ready); step_all() runs them until none is.
  bool step();
  size_t step_all();
  bool started() const { return thread_.joinable(); }
  // Asks the loop to exit once all posted work ran; join() waits for it.
  void stop();
  void join();

  // The shard whose thread is running, or null.
  static Shard* current();

  // Shard thread only below.
  // Delivers a fetch to the object `id` of `ns`, creating its host if needed.
  void deliver(const NamespaceImpl* ns, const ObjectId& id, Delivery&& delivery);
  // Runs the worker for a request accepted on this shard.
  void run_worker(Request request, Reply reply);
  // Runs a coroutine as the worker runs (outside any object, stubs usable),
  // and replies with what it returns (an exception: the 500 of response_for).
  void run_task(std::function<Task<Response>(Env&)> body, Reply reply);
  // Continues a coroutine suspended on something outside the object.
  void resume(const ResumeTarget& target, std::coroutine_handle<> h);
  // Whether the coroutine frames of target still exist (not reset meanwhile).
  bool alive(const ResumeTarget& target);
  // The share of one CPU this shard's thread used over the last kLoadPeriod,
  // in thousandths. Any thread may read it.
  static constexpr std::chrono::milliseconds kLoadPeriod{50};
  int load_permille() const { return load_permille_.load(std::memory_order_relaxed); }
  // Whether a connection may move to this shard now (connection affinity):
  // its thread was under `below` thousandths busy, and fewer than
  // kMovesPerPeriod connections moved in since the load was last measured, so
  // that connections arriving together cannot all move before the load shows
  // what they cost. Any thread may call it.
  static constexpr int kMovesPerPeriod = 4;
  bool admit_connection(int below) {
    if (load_permille() >= below) return false;
    return moves_in_.fetch_add(1, std::memory_order_relaxed) < kMovesPerPeriod;
  }
  // A worker run of this shard sent a stub call to an object on `shard`
  // (-1: on another node). Answer::object_shard tells the caller.
  void note_worker_call(uint64_t worker, int shard);
  // Runs fn on this shard after a delay (dropped if the shard stops first).
  void run_after(std::chrono::milliseconds delay, std::function<void()> fn);
  // Resets of an object so far; survives the eviction of its host, so a stub
  // bound before a reset stays broken after it.
  uint64_t reset_epoch(const NamespaceImpl* ns, const ObjectId& id) const;
  void bump_reset_epoch(const NamespaceImpl* ns, const ObjectId& id);
  // A fresh, shard-unique instance generation (never 0).
  uint64_t next_generation() { return ++generation_counter_; }
  ObjectHost* find_host(const NamespaceImpl* ns, const ObjectId& id);
  // Evicts objects idle for longer than the idle timeout, kEvictChunk per
  // task (the rest follow in posted tasks). Looks only at the front of the
  // activity list, not at every object: a pass over 5,000 objects held the
  // shard for up to 25 ms. An object found idle long enough but not
  // evictable (busy, or holding kept sockets) goes to the back, to be looked
  // at again a timeout later.
  void evict_idle(std::chrono::steady_clock::time_point now);
  // An object was active at `at` (ObjectHost calls it as it notes activity).
  void note_active(ActivityLink& link, std::chrono::steady_clock::time_point at);
  // Work in flight on this shard: events, pending outputs, unflushed commits.
  bool quiescent() const;
  // Quiescent, every commit durable (or the flusher failed), no alarm due by
  // the alarm clock that has not run yet, and no eviction pass under way
  // (Runtime::settle). When a commit is not durable yet, asks for its flush
  // and answers false.
  bool settled();
  // Evicts the object now if it is in memory and evictable regardless of the
  // idle timeout (idle, no socket accepted without hibernation). Returns
  // whether it is out of memory afterwards.
  bool evict_now(const NamespaceImpl* ns, const ObjectId& id);
  // Flushes every commit and calls done() on this shard when durable.
  void flush_all(std::function<void()> done);
  // A cluster node hands the objects for which `leaving` is true to another
  // node: their sockets close with 1012 (the clients reconnect to the new
  // owner), each in memory is let go once its events are over (after
  // `patience`, reset), and done(ok) runs once every commit made before is
  // durable (on the backups too). done(error) if an object stayed busy for
  // twice the patience. No delivery for them may start meanwhile (the
  // placement no longer serves them).
  void release_objects(std::function<bool(const ObjectId&)> leaving, std::chrono::milliseconds patience,
                       std::function<void(Status)> done);
  void close_all_objects();
  // Whether the object is in memory, and its open sockets (kept or not).
  struct Presence {
    bool resident = false;
    size_t sockets = 0;
  };
  Presence presence(const NamespaceImpl* ns, const ObjectId& id) const;
  // Notes that a host had an event (ObjectHost calls it once per handover).
  void catalog_dirty(ObjectHost* host);
  // Hands the objects active since the last handover to the node's catalog:
  // `most` of them now; with a limit the rest follow in posted tasks.
  void hand_over_to_catalog(size_t most = SIZE_MAX);
  // The periodic sweep's work is done this many objects per task: with
  // thousands of active objects one pass held the shard for up to 10 ms ahead
  // of queued requests. A handover costs 2-13 us an object (256 took 2-3.3 ms
  // of CPU during an alarm burst); an eviction (closing the object's
  // database) tens.
  static constexpr size_t kSweepChunk = 64;
  static constexpr size_t kEvictChunk = 32;

  // The thread's CPU clock as read at most kCpuMarkAge before `now`: a turn's
  // CPU (the limit) is counted from it: reading the clock (a system call)
  // for every turn cost hot-c64 4% and reads 6%. So a turn's count may
  // include up to a millisecond of what ran just before it. On the shard's
  // thread.
  struct CpuMark {
    int64_t cpu_ns = 0;
    std::chrono::steady_clock::time_point wall{};
  };
  static constexpr auto kCpuMarkAge = std::chrono::milliseconds(1);
  const CpuMark& cpu_mark(std::chrono::steady_clock::time_point now);

 private:
  void schedule_sweep();
  void measure_load();
  template <typename Body>
  void start_worker_run(Body body, Reply reply);
  void reap_workers();

  Runtime* runtime_;
  TimeSource* time_;
  bool fake_time_;
  uint64_t time_subscription_ = 0;  // fake time: sweeps when it moves
  int index_;
  struct Loop;
  std::unique_ptr<Loop> loop_;
  std::thread thread_;
  std::unique_ptr<ShardReplicator> replicator_;  // before commits_, which uses it
  GroupCommit commits_;
  DbCache open_dbs_;
  std::unique_ptr<AlarmRunner> alarms_;
  std::unique_ptr<SocketHub> sockets_;
  std::unique_ptr<WsRelays> relays_;  // WebSockets relayed to other nodes (cluster)
  std::vector<NamespaceMetrics> metrics_;
  std::vector<std::shared_ptr<const StoreEnv>> store_envs_;  // by namespace index
  std::unordered_map<ObjectKey, std::unique_ptr<ObjectHost>, ObjectKeyHash> hosts_;
  std::unordered_map<ObjectKey, uint64_t, ObjectKeyHash> reset_epochs_;  // only objects ever reset
  // The hosts, least recently active first.
  boost::intrusive::list<ActivityLink, boost::intrusive::constant_time_size<false>> by_activity_;
  bool evictable(const ObjectHost& h, std::chrono::steady_clock::time_point now) const;
  // A delivery for an object not served here: on to its owner, a wait for
  // a hand-off under way, or 503 (placement.h).
  void reroute(const NamespaceImpl* ns, const ObjectId& id, Delivery delivery,
               std::chrono::steady_clock::time_point since);
  bool eviction_posted_ = false;  // evict_idle continues in a posted task
  std::vector<ObjectKey> catalog_dirty_;  // active since the last handover
  std::chrono::steady_clock::time_point last_catalog_handover_;
  std::chrono::steady_clock::time_point last_socket_check_;
  uint64_t generation_counter_ = 0;
  std::atomic<int> load_permille_{0};
  std::atomic<int> moves_in_{0};  // connections admitted since the last measure_load
  int64_t load_cpu_ns_ = 0, load_wall_ns_ = 0;  // the last measure_load's readings
  CpuMark cpu_mark_;
  struct WorkerRun;
  std::unordered_map<uint64_t, std::unique_ptr<WorkerRun>> workers_;
  std::vector<uint64_t> finished_workers_;
  uint64_t next_worker_id_ = 1;  // 0 is "no worker"
  uint64_t current_worker_ = 0;  // the worker run executing now, or 0
 public:
  // The worker run executing on this shard now, or 0.
  uint64_t current_worker() const { return current_worker_; }
};

}  // namespace dobj::internal
