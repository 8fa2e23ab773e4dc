#include "dobj/server.h"

#include <fcntl.h>
#include <pthread.h>
#include <sys/file.h>
#include <unistd.h>

#include <openssl/rand.h>

#include <CLI/CLI.hpp>
#include <csignal>
#include <cstdio>
#include <map>
#include <set>

#include "base/fs.h"
#include "base/hex.h"
#include "base/log.h"
#include "cluster/cluster.h"
#include "ids/id_factory.h"
#include "net/http_server.h"
#include "runtime/runtime.h"

namespace dobj {

struct Server::Impl {
  internal::Bindings bindings;
  Worker worker;
  std::function<void(const ServerOptions&)> on_options;
  std::function<void()> on_stopped;
  std::function<void()> on_shard_start;
  ServerOptions options;
  int lock_fd = -1;  // flock on <data>/LOCK: one server per data folder
  // A cluster node's membership and placement (null: a single node). Declared
  // before the runtime, which uses it until its loops end.
  std::unique_ptr<internal::Cluster> cluster;
  // Destroyed in reverse: the HTTP server before the runtime whose loops it uses.
  std::unique_ptr<internal::Runtime> runtime;
  std::unique_ptr<internal::HttpServer> http;
  bool stop_timed_out = false;  // the last stop dropped busy objects
};

Server::Server() : impl_(std::make_unique<Impl>()) {}
Server::~Server() { stop(); }

void Server::bind_factory(std::string binding, ObjectFactory factory, bool has_alarm_handler,
                          const std::type_info* class_type) {
  impl_->bindings[std::move(binding)] =
      internal::Binding(std::move(factory), has_alarm_handler, class_type);
}

void Server::worker(Worker worker) { impl_->worker = std::move(worker); }
void Server::on_options(std::function<void(const ServerOptions&)> fn) {
  impl_->on_options = std::move(fn);
}
void Server::on_stopped(std::function<void()> fn) { impl_->on_stopped = std::move(fn); }
void Server::on_shard_start(std::function<void()> fn) { impl_->on_shard_start = std::move(fn); }

Status Server::start(const ServerOptions& options) {
  if (impl_->runtime) return Status(Code::kInternal, "server already started");
  impl_->options = options;
  if (Status st = internal::make_dirs(options.data_dir, /*durable=*/true); !st) return st;
  // The databases are opened without SQLite's file locks, so no second
  // server may share the folder.
  std::string lock_path = options.data_dir + "/LOCK";
  impl_->lock_fd = ::open(lock_path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
  if (impl_->lock_fd < 0 || flock(impl_->lock_fd, LOCK_EX | LOCK_NB) != 0) {
    if (impl_->lock_fd >= 0) ::close(impl_->lock_fd);
    impl_->lock_fd = -1;
    return Status(Code::kUnavailable,
                  "data folder " + options.data_dir + " is in use by another dobj server");
  }
  for (const auto& [ns, days] : options.history_days_by_namespace) {
    if (!impl_->bindings.count(ns)) {
      return Status(Code::kInvalidArgument, "--history-days-for " + ns + ": no such namespace");
    }
  }
  Result<internal::Secret> secret = Status(Code::kInternal, "no secret");
  if (options.cluster.etcd.empty()) {
    secret = internal::load_or_create_secret(options.data_dir);
  } else {
    // A cluster's nodes share one ID secret, kept in etcd: the same name is
    // the same ID on every node.
    impl_->cluster = std::make_unique<internal::Cluster>(options.cluster);
    secret = impl_->cluster->join_secret(options.data_dir, std::chrono::seconds(30));
  }
  if (!secret) {
    stop();
    return secret.status();
  }
  try {
    impl_->runtime =
        std::make_unique<internal::Runtime>(options, impl_->bindings, impl_->worker, *secret);
    if (impl_->cluster) impl_->runtime->set_placement(impl_->cluster.get());
    impl_->runtime->start();
    if (impl_->on_shard_start) {
      // Before any request: the embedding's per-thread set-up on every shard.
      for (size_t i = 0; i < impl_->runtime->shard_count(); ++i) {
        std::exception_ptr error;
        impl_->runtime->shard(i).run_and_wait([&] {
          try {
            impl_->on_shard_start();
          } catch (...) {
            error = std::current_exception();
          }
        });
        if (error) std::rethrow_exception(error);
      }
    }
  } catch (const Error& e) {
    impl_->runtime.reset();
    stop();
    return e.status();
  }
  impl_->http = std::make_unique<internal::HttpServer>(*impl_->runtime, options);
  if (internal::Cluster* cluster = impl_->cluster.get()) {
    impl_->http->set_peer(options.cluster.peer_listen,
                          [cluster](internal::Shard& shard, Request r, std::function<void(Response)> done) {
                            cluster->handle_peer(shard, std::move(r), std::move(done));
                          });
  }
  if (Status st = impl_->http->start(); !st) {
    stop();
    return st;
  }
  if (internal::Cluster* cluster = impl_->cluster.get()) {
    std::string advertise = options.cluster.peer_advertise;
    if (advertise.empty()) {
      std::string host = options.cluster.peer_listen.substr(0, options.cluster.peer_listen.rfind(':'));
      if (host == "0.0.0.0" || host == "::" || host == "[::]") {
        stop();
        return Status(Code::kInvalidArgument,
                      "--peer-listen on a wildcard address needs --peer-advertise HOST:PORT");
      }
      advertise = host + ":" + std::to_string(impl_->http->peer_port());
    }
    cluster->start(impl_->runtime.get(), advertise);
  }
  return Status::ok();
}

int Server::port() const { return impl_->http ? impl_->http->port() : 0; }
int Server::admin_port() const { return impl_->http ? impl_->http->admin_port() : 0; }

void Server::stop() {
  if (impl_->runtime) {
    if (impl_->http) impl_->http->stop(impl_->options.stop_timeout);
    impl_->stop_timed_out = !impl_->runtime->stop(impl_->options.stop_timeout);
    impl_->http.reset();
    if (impl_->on_stopped) impl_->on_stopped();
    // The node leaves the cluster (its lease revoked) once nothing it ran
    // can answer any more.
    if (impl_->cluster) impl_->cluster->stop();
    impl_->runtime.reset();
  }
  impl_->cluster.reset();
  if (impl_->lock_fd >= 0) {
    ::close(impl_->lock_fd);
    impl_->lock_fd = -1;
  }
}

ServerOptions& Server::defaults() { return impl_->options; }

int Server::run(int argc, char** argv) {
  ServerOptions o = impl_->options;
  CLI::App app{"dobj: a Durable Objects runtime"};
  app.add_option("--listen", o.listen, "HOST:PORT to serve HTTP on (port 0: any free port)")
      ->capture_default_str();
  app.add_option("--data", o.data_dir, "data folder (created if missing)")->capture_default_str();
  app.add_option("--shards", o.shards, "event-loop threads (0: one per core)")
      ->capture_default_str();
  std::string durability = "fsync";
  app.add_option("--durability", durability,
                 "fsync: acknowledge after fdatasync (survives power loss); "
                 "os: after the OS has the write (survives a process crash)")
      ->check(CLI::IsMember({"fsync", "os"}))
      ->capture_default_str();
  int64_t idle_ms = o.idle_timeout.count();
  app.add_option("--idle-timeout-ms", idle_ms, "evict an object idle this long")
      ->check(CLI::PositiveNumber)
      ->capture_default_str();
  int64_t cpu_limit_ms = o.cpu_limit.count();
  app.add_option("--cpu-limit-ms", cpu_limit_ms,
                 "reset an object whose turn uses more CPU than this (0: no limit)")
      ->capture_default_str();
  int64_t clock_skew_ms = 0;
  app.add_option("--clock-skew-ms", clock_skew_ms,
                 "tests: this node's wall clock (alarm times) reads this many ms ahead of the system's "
                 "(negative: behind), as on a host whose clock is off");
  app.add_option("--alarm-backoff-scale", o.alarm_backoff_scale,
                 "multiply the backoff between alarm retries (2 s, 4 s, ...) by this")
      ->check(CLI::PositiveNumber)
      ->capture_default_str();
  app.add_option("--max-queue", o.max_queue, "queued events per object before 503 overloaded")
      ->check(CLI::PositiveNumber)
      ->capture_default_str();
  app.add_option("--max-open-databases", o.max_open_databases,
                 "open SQLite files per shard (least recently used are closed)")
      ->check(CLI::PositiveNumber)
      ->capture_default_str();
  app.add_option("--max-object-bytes", o.max_object_bytes,
                 "storage one object may use (0: no cap); past it writes fail as on a full disk")
      ->capture_default_str();
  app.add_option("--page-size", o.page_size,
                 "SQLite page size of new object databases (512-65536, a power of two); "
                 "larger reads big values faster, smaller makes small writes cheaper")
      ->check(CLI::IsMember({512, 1024, 2048, 4096, 8192, 16384, 32768, 65536}))
      ->capture_default_str();
  app.add_flag("!--no-coalesce-commits", o.coalesce_commits,
               "commit each turn on its own instead of letting the turns that end during a "
               "flush share one commit before the next (as durable either way)");
  app.add_flag("--history", o.history,
               "keep every commit of every object, to list its bookmarks and restore it to one "
               "(dobj history, dobj restore)");
  app.add_option("--history-days", o.history_days,
                 "with --history: days a commit stays restorable (0: for ever)")
      ->check(CLI::NonNegativeNumber)
      ->capture_default_str();
  std::vector<std::string> history_days_for;
  app.add_option("--history-days-for", history_days_for,
                 "NS=DAYS: --history-days for one namespace (repeat for more)")
      ->check([](const std::string& v) -> std::string {
        size_t eq = v.find('=');
        if (eq == 0 || eq == std::string::npos || v.find_first_not_of("0123456789", eq + 1) != std::string::npos ||
            eq + 1 == v.size() || v.size() - eq > 7) {
          return "give NAMESPACE=DAYS, e.g. LEDGER=365";
        }
        return "";
      });
  int64_t history_max_mb = 0;
  app.add_option("--history-max-mb", history_max_mb,
                 "with --history: an object's history past this many MiB drops its oldest commits "
                 "(0: no cap)")
      ->check(CLI::NonNegativeNumber)
      ->capture_default_str();
  app.add_option("--max-header-bytes", o.max_header_bytes, "larger request headers get 431")
      ->capture_default_str();
  app.add_option("--max-body-bytes", o.max_body_bytes, "larger request bodies get 413")
      ->capture_default_str();
  int64_t conn_idle_ms = o.connection_idle_timeout.count();
  app.add_option("--connection-idle-timeout-ms", conn_idle_ms,
                 "close a connection idle this long (408)")
      ->check(CLI::PositiveNumber)
      ->capture_default_str();
  app.add_option("--admin-listen", o.admin_listen,
                 "HOST:PORT for the admin plane on a thread of its own (then not on --listen); "
                 "default: served on --listen");
  app.add_option("--admin-token", o.admin_token,
                 "bearer token of the admin plane (/_dobj/, /metrics); default: "
                 "$DOBJ_ADMIN_TOKEN, else a random one printed at start");
  std::string metrics = "on";
  app.add_option("--timings", metrics,
                 "on: time every turn, event and output-gate wait for the metrics; off: "
                 "counters only")
      ->check(CLI::IsMember({"on", "off"}))
      ->capture_default_str();
  int64_t ws_idle_ms = o.websocket_idle_timeout.count();
  app.add_option("--websocket-idle-timeout-ms", ws_idle_ms,
                 "close a WebSocket whose client sent nothing this long (1001); pinged at half")
      ->check(CLI::PositiveNumber)
      ->capture_default_str();
  app.add_option("--max-connections", o.max_connections,
                 "client connections (HTTP and WebSocket) held at most; past it 503")
      ->check(CLI::PositiveNumber)
      ->capture_default_str();
  app.add_option("--affinity-max-load", o.affinity_max_load,
                 "a keep-alive connection moves to its objects' shard while that shard is under this "
                 "many thousandths of a CPU busy (0: connections never move)")
      ->check(CLI::Range(0, 1000))
      ->capture_default_str();
  app.add_option("--websocket-send-queue-bytes", o.websocket_send_queue_bytes,
                 "bytes that may wait on one WebSocket before its client is closed (1008)")
      ->capture_default_str();
  app.add_flag("--expose-errors", o.expose_exception_messages,
               "development: a handler's unexpected exception's message goes to the client "
               "too (always logged; by default clients get \"internal error\" and an incident "
               "number)");
  app.add_flag("--evict-after-every-event", o.evict_after_every_event,
               "development: drop each object from memory after every event, so that state "
               "kept only in members shows up at once (docs/testing.md)");
  auto* cluster = app.add_option_group("cluster", "a node of a cluster (docs/cluster.md)");
  cluster->add_option("--cluster", o.cluster.etcd,
                      "etcd endpoints, comma-separated host:port; makes this server a cluster node");
  cluster->add_option("--node-id", o.cluster.node_id, "this node's stable name in the cluster");
  cluster->add_option("--peer-listen", o.cluster.peer_listen,
                      "HOST:PORT for requests forwarded by other nodes (keep it private)")
      ->capture_default_str();
  cluster->add_option("--peer-advertise", o.cluster.peer_advertise,
                      "HOST:PORT other nodes dial (default: --peer-listen's host and port)");
  cluster->add_option("--partitions", o.cluster.partitions,
                      "partitions of the ID space, fixed when the cluster is made")
      ->capture_default_str();
  cluster->add_option("--replicas", o.cluster.replicas, "copies of each partition (1-5)")
      ->capture_default_str();
  cluster->add_option("--min-copies", o.cluster.min_copies,
                      "answers leave only while a partition has this many in-sync copies (1..replicas)")
      ->capture_default_str();
  cluster->add_option("--trace-activations", o.cluster.activation_trace,
                      "tests: append each released answer's object, node, epoch and times to FILE");
  int64_t lease_ms = o.cluster.lease.count();
  cluster->add_option("--lease-ms", lease_ms,
                      "the node's etcd lease; it stops serving when it cannot renew it in time")
      ->capture_default_str();
  cluster->add_option("--etcd-prefix", o.cluster.etcd_prefix, "where in etcd the cluster keeps its keys")
      ->capture_default_str();
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  }
  o.durability = durability == "os" ? Durability::kOs : Durability::kFsync;
  o.cluster.lease = std::chrono::milliseconds(lease_ms);
  o.timings = metrics == "on";
  o.idle_timeout = std::chrono::milliseconds(idle_ms);
  for (const std::string& v : history_days_for) {
    size_t eq = v.find('=');
    o.history_days_by_namespace[v.substr(0, eq)] = std::stoi(v.substr(eq + 1));
  }
  o.history_max_bytes = history_max_mb << 20;
  o.cpu_limit = std::chrono::milliseconds(cpu_limit_ms);
  o.clock_skew = std::chrono::milliseconds(clock_skew_ms);
  o.connection_idle_timeout = std::chrono::milliseconds(conn_idle_ms);
  o.websocket_idle_timeout = std::chrono::milliseconds(ws_idle_ms);
  bool generated_token = false;
  if (o.admin_token.empty()) {
    if (const char* env = std::getenv("DOBJ_ADMIN_TOKEN"); env && *env) {
      o.admin_token = env;
    } else {
      uint8_t bytes[16];
      if (RAND_bytes(bytes, sizeof bytes) != 1) {
        std::fprintf(stderr, "dobj: cannot make an admin token\n");
        return 1;
      }
      o.admin_token = internal::to_hex(bytes, sizeof bytes);
      generated_token = true;
    }
  }

  // Block the stop signals in every thread; this one waits for them.
  sigset_t stop_signals;
  sigemptyset(&stop_signals);
  sigaddset(&stop_signals, SIGTERM);
  sigaddset(&stop_signals, SIGINT);
  pthread_sigmask(SIG_BLOCK, &stop_signals, nullptr);
  std::signal(SIGPIPE, SIG_IGN);

  if (impl_->on_options) impl_->on_options(o);
  if (Status st = start(o); !st) {
    std::fprintf(stderr, "dobj: cannot start: %s\n", st.message().c_str());
    return 1;
  }
  auto colon = o.listen.rfind(':');
  std::printf("dobj listening on %s:%d (data %s, %zu shards, durability %s)\n",
              o.listen.substr(0, colon).c_str(), port(), o.data_dir.c_str(),
              impl_->runtime->shard_count(), durability.c_str());
  if (!o.admin_listen.empty()) {
    auto c = o.admin_listen.rfind(':');
    std::printf("admin plane on %s:%d\n", o.admin_listen.substr(0, c).c_str(), admin_port());
  }
  if (impl_->cluster) {
    std::printf("cluster node %s (etcd %s), peer listener on port %d\n", o.cluster.node_id.c_str(),
                o.cluster.etcd.c_str(), impl_->http->peer_port());
  }
  if (generated_token) {
    std::printf("admin token (for /_dobj/ and /metrics; set --admin-token to choose): %s\n",
                o.admin_token.c_str());
  }
  std::fflush(stdout);
  int sig = 0;
  sigwait(&stop_signals, &sig);
  internal::log_info(std::string("stopping on ") + (sig == SIGINT ? "SIGINT" : "SIGTERM"));
  stop();
  internal::log_info(impl_->stop_timed_out
                         ? "stopped after the stop timeout: objects still busy were dropped "
                           "without answering; every acknowledged write is flushed"
                         : "stopped; every request answered and every acknowledged write "
                           "flushed");
  return 0;
}

}  // namespace dobj
