// Runtime: the node's shards, namespaces, worker and options.
//
// Built once, started, stopped. Namespaces are immutable after start and read
// from every shard thread without locks.
#pragma once

#include <atomic>
#include <functional>
#include <future>
#include <map>
#include <memory>
#include <string>
#include <type_traits>
#include <typeinfo>
#include <vector>

#include "dobj/object.h"
#include "dobj/server.h"
#include "ids/id_factory.h"
#include "runtime/alarm_scheduler.h"
#include "runtime/metrics.h"
#include "runtime/placement.h"
#include "runtime/shard.h"
#include "runtime/time_source.h"
#include "storage/alarm_index.h"
#include "storage/catalog.h"
#include "storage/group_commit.h"

namespace boost::asio {
class thread_pool;
}

namespace dobj::internal {

class Runtime;

// One binding as the runtime takes it, in one piece: how to build its
// objects, and what it must know of their class. A bare factory converts
// (an alarm handler assumed, no class recorded).
struct Binding {
  Binding() = default;
  template <typename F>
    requires std::is_constructible_v<ObjectFactory, F>
  Binding(F&& f) : factory(std::forward<F>(f)) {}  // NOLINT: implicit on purpose
  Binding(ObjectFactory f, bool has_alarm, const std::type_info* type)
      : factory(std::move(f)), has_alarm_handler(has_alarm), class_type(type) {}
  ObjectFactory factory;
  // false: the class does not override alarm(), so its objects may not set one.
  bool has_alarm_handler = true;
  // The C++ class (Server::bind<T>), for Env::ns<T>'s check; null: unknown.
  const std::type_info* class_type = nullptr;
};
using Bindings = std::map<std::string, Binding>;

// The node's client connections (HTTP and WebSocket), for the cap and the
// metrics. Any thread.
struct ConnectionCounts {
  std::atomic<size_t> open{0};
  std::atomic<uint64_t> refused{0};  // over ServerOptions::max_connections
  // Moved to the shard of the objects their requests went to (connection
  // affinity, net/http_server.cc).
  std::atomic<uint64_t> moved{0};
};

// Test hook (the test kit): makes turns of objects fail as if they had used
// more CPU than ServerOptions::cpu_limit allows.
struct TurnFaults {
  // The next this many turns of instances in memory (constructors excluded)
  // end over the limit: the object is reset, the turn's writes discarded.
  std::atomic<int> exceed_cpu_limit{0};
};

// The exit status of a node that stopped because a flush failed (EX_IOERR).
inline constexpr int kExitFlushFailed = 74;

class NamespaceImpl {
 public:
  NamespaceImpl(Runtime* runtime, size_t index, std::string name, Binding binding,
                const Secret& secret);
  const std::string& name() const { return name_; }
  size_t index() const { return index_; }  // in Runtime::namespaces()
  const IdFactory& ids() const { return ids_; }
  Runtime& runtime() const { return *runtime_; }
  std::unique_ptr<DurableObject> construct(State& state, Env& env) const {
    return factory_(state, env);
  }
  // Folder of this namespace's databases.
  const std::string& dir() const { return dir_; }
  // Where the database of the object with this hex ID lives: a folder per
  // first two hex digits (docs/storage.md), and the file's name in it.
  std::string object_dir(const std::string& hex) const { return dir_ + "/" + hex.substr(0, 2); }
  static std::string object_file(const std::string& hex) { return hex + ".sqlite"; }
  bool has_alarm_handler() const { return has_alarm_handler_; }
  // IDs minted by new_unique_id (any thread).
  void count_unique_id() const { unique_ids_.fetch_add(1, std::memory_order_relaxed); }
  uint64_t unique_ids() const { return unique_ids_.load(std::memory_order_relaxed); }
  // The C++ class bound here (Server::bind<T>); null for a bare factory.
  const std::type_info* class_type() const { return class_type_; }

 private:
  Runtime* runtime_;
  size_t index_;
  std::string name_;
  ObjectFactory factory_;
  IdFactory ids_;
  std::string dir_;
  const bool has_alarm_handler_;
  const std::type_info* const class_type_;
  mutable std::atomic<uint64_t> unique_ids_{0};  // a counter, not the namespace's state
};

class Runtime {
 public:
  // time: the wall clock of alarms and State::now (tests pass a FakeTime);
  // null: the system clock. It must outlive the runtime.
  Runtime(ServerOptions options, Bindings bindings, Worker worker,
          const Secret& secret, TimeSource* time = nullptr);
  ~Runtime();

  const ServerOptions& options() const { return options_; }
  TimeSource& time() { return *time_; }
  Env& env() { return env_; }
  const Worker& worker() const { return worker_; }
  const NamespaceImpl* find_namespace(std::string_view binding);
  const std::vector<std::unique_ptr<NamespaceImpl>>& namespaces() const { return namespaces_; }
  Shard& shard(size_t i) { return *shards_[i]; }
  size_t shard_count() const { return shards_.size(); }
  Shard& shard_for(const ObjectId& id) { return *shards_[id.hash() % shards_.size()]; }
  // A loop that owns no objects: the admin listener's (--admin-listen).
  Shard& admin_shard() { return *admin_shard_; }
  Flusher* flusher() { return flusher_.get(); }
  ConnectionCounts& connections() { return connections_; }
  // This process's run, a random nonzero number: part of every instance's
  // identity that a stub binds to, so that a stub bound to an instance on a
  // node that since restarted, or on a node its object moved away from (a
  // cluster failover), breaks as after a reset (ObjectHost::check_binding).
  uint32_t incarnation() const { return incarnation_; }
  StoreFaults& store_faults() { return store_faults_; }
  TurnFaults& turn_faults() { return turn_faults_; }
  AlarmIndex& alarm_index() { return alarm_index_; }
  Catalog& catalog() { return catalog_; }
  // In a cluster, which node serves each object (placement.h); null on a
  // single node. Set before start; it must outlive the runtime's loops.
  Placement* placement() const { return placement_; }
  void set_placement(Placement* placement) { placement_ = placement; }
  // From a thread that is not a shard's: delivers a request to an object
  // (outside any stub) and returns its response when it comes.
  std::future<Response> send_to_object(const NamespaceImpl* ns, const ObjectId& id, Request request);
  // Copies every shard's metrics, merges them, and calls done with the result
  // on the shard `reply_on` (any thread may call this; it does not block).
  void collect_metrics(Shard* reply_on, std::function<void(MetricsSnapshot)> done);
  // Runs fn on the object's shard in the object's queue (Delivery::admin);
  // fn answers through the Reply it gets, which reaches `reply` on reply_on
  // (null: on the object's shard, as fn answers; a caller that is not a
  // shard, such as a test waiting on a promise).
  void run_on_object(const NamespaceImpl* ns, const ObjectId& id, Shard* reply_on,
                     std::function<void(ObjectHost&, Reply)> fn, Reply reply);
  // Asks each object's shard whether it is in memory and how many sockets it
  // has; done gets the answers in the order of refs, on the shard reply_on
  // (any thread may call this; it does not block).
  void object_states(Shard* reply_on, std::vector<ObjectKey> refs,
                     std::function<void(std::vector<Shard::Presence>)> done);
  // Lateness of the alarms fired so far, over all shards.
  LatenessSummary alarm_lateness();
  // Runs fn on a small pool of threads for blocking work that must not hold a
  // shard (an import's sync and validation). fn answers by posting to a shard.
  void run_blocking(std::function<void()> fn);
  // From a thread that is not a shard's: waits until no object runs an
  // event, every write is durable and no alarm is due by the time source
  // (Shard::settled on every shard); false if that did not happen within
  // timeout. Tests and the test kit, after moving a FakeTime.
  bool settle(std::chrono::milliseconds timeout);

  // kStepped (unit tests): the shards' loops run only when the test steps
  // them (Shard::step), until start_loops() gives each its thread.
  enum class Loops { kThreads, kStepped };
  void start(Loops loops = Loops::kThreads);
  void start_loops();
  // Waits until no shard has work in flight (or the timeout passes), flushes
  // every commit, stops the loops and joins them.
  // Returns false when objects were still busy at the timeout: they were
  // dropped, their unanswered requests with them (acknowledged writes are
  // flushed either way).
  bool stop(std::chrono::milliseconds timeout);

 private:
  ServerOptions options_;
  SystemTime system_time_;
  TimeSource* time_;
  Env env_;
  Worker worker_;
  std::unique_ptr<Flusher> flusher_;
  std::unique_ptr<boost::asio::thread_pool> blocking_;
  ConnectionCounts connections_;
  uint32_t incarnation_;
  StoreFaults store_faults_;
  TurnFaults turn_faults_;
  AlarmIndex alarm_index_;
  Catalog catalog_;
  std::vector<std::unique_ptr<NamespaceImpl>> namespaces_;
  std::vector<std::unique_ptr<Shard>> shards_;
  std::unique_ptr<Shard> admin_shard_;
  Placement* placement_ = nullptr;
};

// The default worker: /<binding>/<name>/... → id_from_name(name) of binding.
Task<Response> default_route(Request request, Env& env);

}  // namespace dobj::internal
