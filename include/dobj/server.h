// Server: binds object classes to names, serves HTTP, runs until stopped.
//
//   dobj::Server server;
//   server.bind<Counter>("COUNTER");
//   server.worker(route);              // optional; a default router exists
//   return server.run(argc, argv);     // flags: --listen, --data, ... (--help)
//
// The default router sends /<binding>/<name>/... to id_from_name(<name>) of the
// binding (matched without regard to case) and answers 404 otherwise.
//
// Lifetime: bind and worker before start/run. run() returns after SIGTERM or
// SIGINT once in-flight requests finished and every write is flushed.
#pragma once

#include <chrono>
#include <cstddef>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <typeinfo>
#include <type_traits>

#include "dobj/http.h"
#include "dobj/object.h"
#include "dobj/status.h"
#include "dobj/task.h"

namespace dobj {

enum class Durability {
  kFsync,  // a write is acknowledged after fdatasync: survives power loss (default)
  kOs,     // after the write reached the OS: survives a crash of the process
};

// A node of a cluster (docs/cluster.md). With `etcd` empty the server is a
// single node and none of this applies.
struct ClusterOptions {
  // etcd endpoints, comma-separated host:port (etcd's client URLs).
  std::string etcd;
  // This node's name in the cluster: stable across restarts of the same data
  // folder. Only one live process may use it at a time.
  std::string node_id;
  // HOST:PORT the other nodes reach this one on (forwarded requests); port 0
  // picks a free one. Never expose it beyond the cluster's network.
  std::string peer_listen = "127.0.0.1:0";
  // host:port the other nodes dial; empty: peer_listen's host with the port
  // bound (then that host must not be a wildcard such as 0.0.0.0).
  std::string peer_advertise;
  // The ID space is split into this many partitions; fixed when the cluster
  // is first made.
  int partitions = 256;
  // Copies of each partition's data (1-5): the owner and replicas-1 backups,
  // each commit acknowledged once every in-sync copy has it.
  int replicas = 1;
  // An output of an object (a response, a socket message, a call out) leaves
  // only while its partition has at least this many in-sync copies, so that
  // an acknowledged write is on that many disks; below it the partition
  // answers 503 until a copy catches up (Kafka's min.insync.replicas).
  // 1..replicas; 1 keeps serving on the owner alone.
  int min_copies = 1;
  // The node's etcd lease. A node that cannot renew it stops serving before
  // it expires; a restarted node waits for its old lease to expire.
  std::chrono::milliseconds lease{3'000};
  // Where in etcd the cluster keeps its keys; one etcd can hold several.
  std::string etcd_prefix = "/dobj/";
  // Tests: appends one line per released answer to this file (the object,
  // this node, its serving epoch, the event's start and release on the
  // monotonic clock), for a check that no two nodes ever ran one object at
  // once (tests/support/cluster.h). Empty: off.
  std::string activation_trace;
};

struct ServerOptions {
  std::string listen = "127.0.0.1:8787";  // HOST:PORT; port 0 picks a free one
  std::string data_dir = "dobj-data";     // created if missing
  int shards = 0;                         // event-loop threads; 0 = one per core
  Durability durability = Durability::kFsync;
  // While a flush is in flight, an object's next turns share one SQLite
  // commit, made right before the next flush (each turn still its own
  // savepoint, its answer still after the flush). Off: a commit per turn.
  bool coalesce_commits = true;
  // An object with no event for this long is evicted from memory.
  std::chrono::milliseconds idle_timeout{10'000};
  // A turn of an object that uses more CPU than this resets the object and
  // fails its event (checked when the turn ends; 0: no limit).
  std::chrono::milliseconds cpu_limit{30'000};
  // Multiplies the backoff between alarm retries (tests use a small value).
  double alarm_backoff_scale = 1.0;
  // Tests: the node's wall clock (alarm times, State::now) reads this far
  // ahead of the system's (negative: behind), as a host whose clock is off.
  // Leases and timeouts use the monotonic clock and are not moved.
  std::chrono::milliseconds clock_skew{0};
  // A block_concurrency_while callback still running after this resets the object.
  std::chrono::milliseconds block_concurrency_timeout{30'000};
  // Events waiting for one object beyond this get 503 "overloaded".
  size_t max_queue = 1024;
  // Open SQLite databases per shard; the least recently used are closed.
  // Each open one costs ~40 KiB (mostly its WAL index), so the default
  // keeps memory small; raise it when many objects are busy at once.
  size_t max_open_databases = 512;
  // Bytes one object's database may reach; 0: no cap. Past it, writes fail as
  // on a full disk (the object is reset, its committed data kept). The
  // default keeps one object (or one client writing through it) from filling
  // the disk that every other object shares.
  int64_t max_object_bytes = int64_t{1} << 30;
  // SQLite page size of each new object database: a power of two from 512 to
  // 65536. Every commit writes the pages it changed to the WAL, so small pages
  // make the usual small write cheaper (and its flush shorter); large pages
  // read big values and long scans faster. A database keeps the page size it
  // was made with.
  int page_size = Storage::kDefaultPageBytes;
  // Keep each object's history (every commit's pages, in a file beside its
  // database), so that an operator can list its bookmarks and restore it to
  // any of them (docs/history.md). A cluster's backups keep it too: every
  // node of a cluster must be started with the same history flags.
  bool history = false;
  // How long the history keeps a commit: its bookmark restores exactly for
  // this many days (0: for ever). Per namespace in history_days_by_namespace.
  int history_days = 30;
  std::map<std::string, int> history_days_by_namespace{};
  // history_days of namespace ns, in milliseconds (0: for ever).
  int64_t history_keep_ms(const std::string& ns) const {
    auto days = history_days_by_namespace.find(ns);
    return int64_t{86'400'000} * (days != history_days_by_namespace.end() ? days->second : history_days);
  }
  // Past this size an object's history drops its oldest commits, down to 3/4
  // of it (0: no cap).
  int64_t history_max_bytes = 0;
  size_t max_header_bytes = 16 * 1024;      // larger: 431
  size_t max_body_bytes = 8 * 1024 * 1024;  // larger: 413
  // A connection idle this long is closed (408 if a request was half sent).
  std::chrono::milliseconds connection_idle_timeout{60'000};
  // Bytes that may wait to be sent on one WebSocket; a client that falls
  // further behind is closed with code 1008.
  size_t websocket_send_queue_bytes = 4 * 1024 * 1024;
  // A WebSocket whose client sent no frame for this long is closed (1001).
  // The server pings a socket quiet for half of it, and browsers answer
  // pings, so only dead or silent clients are closed. Hibernation is not
  // affected: it is about the object, not the client.
  std::chrono::milliseconds websocket_idle_timeout{120'000};
  // Connection affinity: a keep-alive connection whose requests keep going to
  // objects of another shard moves there between two requests, while that
  // shard's thread is under this many thousandths of a CPU busy (0: no
  // connection moves). Past it, the other shards go on parsing requests and
  // running the Worker for that shard's busy objects, which is worth the two
  // hops when the Worker costs more than a hop (dobj-js: 600).
  int affinity_max_load = 900;
  // Client connections (HTTP and WebSocket) the node holds at most; one more
  // is answered 503 and closed. Lowered at start to fit the descriptor limit.
  size_t max_connections = 10'000;
  // The bearer token of the admin plane (/_dobj/, /metrics). Empty: none is
  // accepted (Server::run generates one and prints it).
  std::string admin_token;
  // HOST:PORT for the admin plane on a thread of its own, so that it answers
  // at once however busy the objects are. Empty: the admin plane is served on
  // `listen` by the shards. When set, `listen` does not serve it.
  std::string admin_listen;
  // false: no timings (turn, event and output-gate histograms) are taken;
  // counters and gauges remain. For measuring what metrics cost.
  bool timings = true;
  // When a flush fails (fsync reports an error), the kernel may have dropped
  // the unflushed pages, so nothing written since the last good flush is
  // trusted to be on disk and none of it is ever acknowledged. true: the
  // process logs the failure and exits at once with status 74 (EX_IOERR), so
  // that its supervisor restarts it and recovery reads what really is on disk
  // (PostgreSQL's rule since 2018). false (tests, embedding): the server stays
  // up, every later write fails with 503, and only a restart recovers.
  bool exit_on_flush_failure = true;
  // An exception other than dobj::Error that escapes a handler (a bug) is
  // logged with the object, its type and message, and answered 500
  // {"error": "internal error", "incident": N}, N also in the log line.
  // true (development): the answer carries the exception's message too.
  bool expose_exception_messages = false;
  // Development and tests: an object is dropped from memory after every event
  // (request, call, alarm, WebSocket message) once it is idle, so the next
  // event runs on a fresh instance built from storage. State an object keeps
  // only in members then shows up as lost at once, not after the first
  // eviction in production. Objects holding sockets accepted without
  // hibernation stay (as they would). Slow: every event constructs.
  bool evict_after_every_event = false;
  // Longest a graceful stop waits for in-flight requests.
  std::chrono::milliseconds stop_timeout{30'000};
  ClusterOptions cluster;
};

using Worker = std::function<Task<Response>(Request, Env&)>;
using ObjectFactory = std::function<std::unique_ptr<DurableObject>(State&, Env&)>;

namespace internal {
// What bind<T> binds (Server, testing::TestRuntime).
template <typename T>
struct ClassBinding {
  static_assert(std::is_base_of_v<DurableObject, T>, "dobj: bind<T> needs a DurableObject");
  // A class that does not override alarm() may not set one.
  static constexpr bool kHasAlarm =
      !std::is_same_v<decltype(&T::alarm), Task<void> (DurableObject::*)(AlarmInfo)>;
  // Builds an instance and registers its methods in T::kMethods.
  static std::unique_ptr<DurableObject> make(State& s, Env& e) {
    auto object = std::make_unique<T>(s, e);
    MethodTable::register_all(*object);
    return object;
  }
};
}  // namespace internal

class Server {
 public:
  Server();
  ~Server();
  Server(const Server&) = delete;
  Server& operator=(const Server&) = delete;

  // Binds class T under `binding`. Its methods in T::kMethods (object.h)
  // are registered for typed calls. Env::ns<T>(binding) gives typed stubs.
  template <typename T>
  void bind(std::string binding) {
    using C = internal::ClassBinding<T>;
    bind_factory(std::move(binding), &C::make, C::kHasAlarm, &typeid(T));
  }
  // A binding made by hand (dynamic use): class_type, when given, lets
  // Env::ns<T> check that the binding is of class T.
  void bind_factory(std::string binding, ObjectFactory factory, bool has_alarm_handler = true,
                    const std::type_info* class_type = nullptr);
  void worker(Worker worker);
  // Called by run() with the options its flags gave, just before the server
  // starts: for an embedding that shares a limit (dobj-js reads cpu_limit).
  void on_options(std::function<void(const ServerOptions&)> fn);
  // Called by stop() once no event runs any more, before the runtime (its
  // objects and sockets) is destroyed: for an embedding that holds runtime
  // handles of its own (dobj::js releases its boxed stubs and sockets).
  void on_stopped(std::function<void()> fn);
  // Run once on every shard thread when the server starts, before it takes
  // requests: per-thread set-up an embedding would otherwise do on the first
  // request (dobj::js makes each shard's V8 isolate and loads the Worker).
  // A dobj::Error thrown here fails the start.
  void on_shard_start(std::function<void()> fn);

  // The options run() starts from, before its flags: an embedding sets its
  // own defaults here (dobj-js lowers affinity_max_load).
  ServerOptions& defaults();
  // Parses flags into options, starts, prints "listening on HOST:PORT", waits
  // for SIGTERM/SIGINT, stops gracefully. Returns the process exit code.
  int run(int argc, char** argv);

  // For embedding and tests: start without flags, then stop().
  Status start(const ServerOptions& options);
  int port() const;        // the bound port, after start
  int admin_port() const;  // the admin listener's port (--admin-listen), else 0
  // Stops accepting, finishes in-flight requests, flushes, joins threads.
  void stop();

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace dobj
