#include "runtime/shard.h"

#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>

#include <algorithm>
#include <optional>

#include "base/clock.h"
#include "base/log.h"
#include "base/thread_name.h"
#include "runtime/alarm_runner.h"
#include "runtime/object_host.h"
#include "runtime/runtime.h"
#include "runtime/ws_relay.h"
#include "storage/snapshots.h"

namespace dobj::internal {
namespace {
thread_local Shard* t_current_shard = nullptr;
}

struct Shard::Loop {
  boost::asio::io_context io{1};
  boost::asio::executor_work_guard<boost::asio::io_context::executor_type> guard{io.get_executor()};
  boost::asio::steady_timer sweep{io};
  boost::asio::steady_timer load{io};
};

struct Shard::WorkerRun {
  Driver driver;
  // The shard its stub calls went to: kNone before the first, kSeveral once
  // they went to two shards or to another node.
  static constexpr int kNone = -1, kSeveral = -2;
  int object_shard = kNone;
};

Shard::Shard(Runtime* runtime, int index, Flusher* flusher, size_t max_open_databases)
    : runtime_(runtime),
      time_(&runtime->time()),
      fake_time_(time_->is_fake()),
      index_(index),
      loop_(std::make_unique<Loop>()),
      commits_(flusher, [this](std::function<void()> fn) { post(std::move(fn)); }),
      open_dbs_(max_open_databases) {
  metrics_.resize(runtime->namespaces().size());
  commits_.set_coalescing(runtime->options().coalesce_commits);
  sockets_ = std::make_unique<SocketHub>(this, runtime->options().websocket_send_queue_bytes);
  alarms_ = std::make_unique<AlarmRunner>(this, loop_->io, runtime->time());
  relays_ = std::make_unique<WsRelays>(loop_->io, &runtime->connections());
  if (fake_time_) {
    // Idle eviction follows the fake time: a sweep each time it moves.
    time_subscription_ = time_->subscribe([this] { post([this] { evict_idle(activity_now()); }); });
  }
}

int64_t Shard::now_ms() { return alarms_->now_ms(); }

Shard::~Shard() {
  if (fake_time_) time_->unsubscribe(time_subscription_);
  sockets_.reset();
  workers_.clear();
  hosts_.clear();
}

boost::asio::io_context& Shard::io() { return loop_->io; }

Shard* Shard::current() { return t_current_shard; }

void Shard::post(std::function<void()> fn) { boost::asio::post(loop_->io, std::move(fn)); }

void Shard::start() {
  thread_ = std::thread([this] {
    t_current_shard = this;
    name_this_thread("dobj-shard-" + std::to_string(index_));
    schedule_sweep();
    measure_load();
    // The barrier: an exception that escapes a handler (a bug; object code's
    // are caught at the object boundary) is logged and the loop goes on with
    // the next handler, so one bad event does not take the node down.
    for (;;) {
      try {
        loop_->io.run();
        break;
      } catch (const std::exception& e) {
        log_error("shard " + std::to_string(index_) + ": a task threw, skipped: " + e.what());
      } catch (...) {
        log_error("shard " + std::to_string(index_) + ": a task threw a non-exception, skipped");
      }
    }
    t_current_shard = nullptr;
  });
}

bool Shard::step() {
  Shard* outer = std::exchange(t_current_shard, this);
  bool ran = loop_->io.poll_one() > 0;
  t_current_shard = outer;
  return ran;
}

size_t Shard::step_all() {
  size_t n = 0;
  while (step()) ++n;
  return n;
}

void Shard::stop() {
  post([this] {
    loop_->sweep.cancel();
    loop_->load.cancel();
    alarms_->stop();
    loop_->guard.reset();
    loop_->io.stop();
  });
}

void Shard::join() {
  if (thread_.joinable()) thread_.join();
}

const Shard::CpuMark& Shard::cpu_mark(std::chrono::steady_clock::time_point now) {
  if (now - cpu_mark_.wall > kCpuMarkAge) cpu_mark_ = CpuMark{thread_cpu_ns(), now};
  return cpu_mark_;
}

void Shard::measure_load() {
  int64_t cpu_ns = thread_cpu_ns();
  int64_t wall_ns = std::chrono::steady_clock::now().time_since_epoch().count();
  if (load_wall_ns_ != 0 && wall_ns > load_wall_ns_) {
    int64_t permille = (cpu_ns - load_cpu_ns_) * 1000 / (wall_ns - load_wall_ns_);
    load_permille_.store(static_cast<int>(std::clamp<int64_t>(permille, 0, 1000)),
                         std::memory_order_relaxed);
  }
  load_cpu_ns_ = cpu_ns;
  load_wall_ns_ = wall_ns;
  moves_in_.store(0, std::memory_order_relaxed);
  loop_->load.expires_after(kLoadPeriod);
  loop_->load.async_wait([this](boost::system::error_code ec) {
    if (!ec) measure_load();
  });
}

void Shard::schedule_sweep() {
  auto idle = runtime_->options().idle_timeout;
  auto ws_idle = runtime_->options().websocket_idle_timeout;
  if (ws_idle.count() > 0) idle = std::min(idle, ws_idle);
  auto period = std::clamp<std::chrono::milliseconds>(idle / 4, std::chrono::milliseconds(10),
                                                      std::chrono::milliseconds(1000));
  loop_->sweep.expires_after(period);
  loop_->sweep.async_wait([this](boost::system::error_code ec) {
    if (ec) return;
    auto now = std::chrono::steady_clock::now();
    if (now - last_catalog_handover_ >= std::chrono::milliseconds(Catalog::kPeriodMs)) {
      hand_over_to_catalog(kSweepChunk);
    }
    evict_idle(activity_now(now));
    auto ws_idle = runtime_->options().websocket_idle_timeout;
    if (ws_idle.count() > 0 &&
        now - last_socket_check_ >= std::min<std::chrono::milliseconds>(
                                        ws_idle / 4, std::chrono::milliseconds(1000))) {
      last_socket_check_ = now;
      sockets_->close_idle(system_now_ms(), ws_idle.count());  // network time: real
    }
    schedule_sweep();
  });
}

bool Shard::evictable(const ObjectHost& h, std::chrono::steady_clock::time_point now) const {
  // Hibernatable sockets do not keep an object in memory; kept ones do.
  return h.idle() && now - h.last_active() >= runtime_->options().idle_timeout &&
         sockets_->kept_sockets(h.ns(), h.id()) == 0;
}

void Shard::note_active(ActivityLink& link, std::chrono::steady_clock::time_point at) {
  link.unlink();
  link.since = at;
  by_activity_.push_back(link);
}

void Shard::evict_idle(std::chrono::steady_clock::time_point now) {
  const auto timeout = runtime_->options().idle_timeout;
  size_t evicted = 0;
  while (!by_activity_.empty()) {
    ActivityLink& link = by_activity_.front();
    // Stop at the first object active too recently, or sent to the back in
    // this pass (with a zero timeout, every object would qualify again).
    if (link.since >= now || now - link.since < timeout) return;
    ObjectHost& h = *link.host;
    if (!evictable(h, now)) {
      note_active(link, now);
      continue;
    }
    if (evicted == kEvictChunk) {
      eviction_posted_ = true;
      post([this, now] {
        eviction_posted_ = false;
        evict_idle(now);
      });
      return;
    }
    ++metrics_[h.ns()->index()].evictions;
    if (h.events_total() == 1) ++metrics_[h.ns()->index()].single_event_evictions;
    hosts_.erase(ObjectKey{h.ns(), h.id()});  // the host leaves the list as it goes
    ++evicted;
  }
}

Shard::Presence Shard::presence(const NamespaceImpl* ns, const ObjectId& id) const {
  auto it = hosts_.find(ObjectKey{ns, id});
  return Presence{it != hosts_.end() && it->second->has_instance(), sockets_->socket_count(ns, id)};
}

void Shard::catalog_dirty(ObjectHost* host) {
  catalog_dirty_.push_back(ObjectKey{host->ns(), host->id()});
}

void Shard::hand_over_to_catalog(size_t most) {
  last_catalog_handover_ = std::chrono::steady_clock::now();
  if (catalog_dirty_.empty()) return;
  int64_t now = now_ms();
  size_t n = std::min(most, catalog_dirty_.size());
  std::vector<CatalogTouch> batch;
  batch.reserve(n);
  for (size_t i = catalog_dirty_.size() - n; i < catalog_dirty_.size(); ++i) {
    const ObjectKey& k = catalog_dirty_[i];
    if (ObjectHost* h = find_host(k.ns, k.id)) h->clear_catalog_dirty();
    std::string hex = k.id.to_string();
    std::string path = k.ns->object_dir(hex) + "/" + NamespaceImpl::object_file(hex);
    batch.push_back(CatalogTouch{k.ns->name(), std::move(hex), std::move(path), now, k.id.name(),
                                 false});
  }
  catalog_dirty_.resize(catalog_dirty_.size() - n);
  runtime_->catalog().touch(std::move(batch));
  if (!catalog_dirty_.empty()) post([this, most] { hand_over_to_catalog(most); });
}

ObjectHost* Shard::find_host(const NamespaceImpl* ns, const ObjectId& id) {
  auto it = hosts_.find(ObjectKey{ns, id});
  return it == hosts_.end() ? nullptr : it->second.get();
}

void Shard::deliver(const NamespaceImpl* ns, const ObjectId& id, Delivery&& delivery) {
  // In a cluster, nothing runs for an object this node does not serve now,
  // whatever route brought it here (placement.h).
  Placement* placement = runtime_->placement();
  if (placement && !placement->serves_here(id)) {
    return reroute(ns, id, std::move(delivery), std::chrono::steady_clock::now());
  }
  auto& slot = hosts_[ObjectKey{ns, id}];
  int64_t since = placement ? placement->serving_since(id) : 0;
  if (!slot) {
    slot = std::make_unique<ObjectHost>(this, ns, id);
    slot->set_served_since(since);
  } else if (slot->served_since() != since) {
    // A host from an earlier time this node served the object (it stopped:
    // its lease lapsed, or the partition moved away and came back): its
    // instance and connection may know an older database than the files.
    // Start from the files, before anything else runs.
    slot->set_served_since(since);
    Delivery fresh;
    fresh.admin = [](ObjectHost& host, Reply reply) {
      (void)host.let_go_of_storage("the object moved away and back");
      host.reopen_store();
      reply(Response{});
    };
    fresh.reply = [](Answer) {};
    slot->enqueue(std::move(fresh));
  }
  slot->enqueue(std::move(delivery));
}

void Shard::reroute(const NamespaceImpl* ns, const ObjectId& id, Delivery delivery,
                    std::chrono::steady_clock::time_point since) {
  Placement* placement = runtime_->placement();
  Placement::Route route = placement->route(id);
  if (route.kind == Placement::Route::Kind::kLocal) return deliver(ns, id, std::move(delivery));
  // Only a request can travel: an operator's action, an alarm or a socket
  // event belongs to this node's copy. An upgrade is relayed by the node
  // that took it, so it does not go on from here either.
  bool request = !delivery.admin && !delivery.alarm && !delivery.socket_event;
  // A node that forwarded it here knew a newer record of the partition than
  // this node: this node's view is a moment behind (the partition was just
  // handed to it), so it waits for the view rather than send it back.
  bool behind = delivery.hops > 0 && delivery.epoch > route.epoch;
  if (route.kind == Placement::Route::Kind::kRemote && request && delivery.hops < 2 && !behind &&
      !delivery.request.is_websocket_upgrade()) {
    return placement->forward(*this, ns, id, std::move(delivery), route);
  }
  // A hand-off ends within its bound (the old owner gives up and serves
  // again past it): wait for it rather than fail. So does a request that
  // reached a node whose view is behind, or came as far as it may.
  constexpr auto kStep = std::chrono::milliseconds(20);
  auto waited = std::chrono::steady_clock::now() - since;
  bool wait = route.kind == Placement::Route::Kind::kUnavailable
                  ? route.transient && waited < std::chrono::seconds(10)
                  : request && (behind || delivery.hops >= 2) && waited < std::chrono::seconds(3);
  if (wait) {
    auto d = std::make_shared<Delivery>(std::move(delivery));
    return run_after(kStep, [this, ns, id, d, since] { reroute(ns, id, std::move(*d), since); });
  }
  Response r = Response::error(
      503, route.kind == Placement::Route::Kind::kUnavailable
               ? route.reason + "; retry"
               : "this node does not serve the object now (its partition is on node " + route.node +
                     "); retry");
  r.set_header("retry-after", "1");
  delivery.reply(std::move(r));
}

void Shard::release_objects(std::function<bool(const ObjectId&)> leaving, std::chrono::milliseconds patience,
                            std::function<void(Status)> done) {
  static const std::string kWhy = "the object moved to another node of the cluster";
  // Sockets first, hibernated ones included: they would bring events.
  for (const ObjectKey& k : sockets_->objects()) {
    if (leaving(k.id)) sockets_->close_object(k.ns, k.id, ws::kServiceRestart, kWhy);
  }
  auto started = std::chrono::steady_clock::now();
  // One pass now, then one every few milliseconds while an object is busy;
  // each pass that waits holds the next (the pass itself holds no owner of
  // itself, so the last one frees it).
  auto step = std::make_shared<std::function<void()>>();
  *step = [this, leaving = std::move(leaving), patience, done = std::move(done), started,
           self = std::weak_ptr<std::function<void()>>(step)]() mutable {
    bool waiting = false;
    bool late = std::chrono::steady_clock::now() - started > patience;
    std::vector<ObjectKey> gone;
    for (auto& [key, host] : hosts_) {
      if (!leaving(key.id)) continue;
      if (!host->idle()) {
        // Past the patience its events end by a reset, as an operator's
        // delete does; what they committed stays.
        if (late) (void)host->let_go_of_storage(kWhy);
        waiting = true;
        continue;
      }
      // Its alarm leaves this node's schedule. (An export holding the
      // storage: wait for it.)
      if (host->let_go_of_storage(kWhy).is_ok()) {
        gone.push_back(key);
      } else {
        waiting = true;
      }
    }
    for (const auto& k : gone) hosts_.erase(k);
    if (!waiting) {
      return commits_.when_durable(commits_.last_seq(), [done = std::move(done)](Status st) { done(st); });
    }
    if (std::chrono::steady_clock::now() - started > 2 * patience) {
      return done(Status(Code::kUnavailable, "an object stayed busy"));
    }
    run_after(std::chrono::milliseconds(5), [next = self.lock()] { (*next)(); });
  };
  (*step)();
}

bool Shard::alive(const ResumeTarget& target) {
  if (target.generation == 0) return true;
  if (!target.ns) return workers_.count(target.generation) > 0;
  ObjectHost* host = find_host(target.ns, target.id);
  return host && host->generation() == target.generation;
}

void Shard::run_after(std::chrono::milliseconds delay, std::function<void()> fn) {
  // Shared: the handler keeps its timer alive until it ran or was dropped.
  auto timer = std::make_shared<boost::asio::steady_timer>(loop_->io, delay);
  timer->async_wait([timer, fn = std::move(fn)](boost::system::error_code ec) {
    if (!ec) fn();
  });
}

uint64_t Shard::reset_epoch(const NamespaceImpl* ns, const ObjectId& id) const {
  auto it = reset_epochs_.find(ObjectKey{ns, id});
  return it == reset_epochs_.end() ? 0 : it->second;
}

void Shard::bump_reset_epoch(const NamespaceImpl* ns, const ObjectId& id) {
  ++reset_epochs_[ObjectKey{ns, id}];
}

void Shard::resume(const ResumeTarget& target, std::coroutine_handle<> h) {
  if (!target.ns) {
    // A worker run that ended or was dropped (a stop that timed out) took its
    // frames with it.
    if (target.generation != 0 && !workers_.count(target.generation)) return;
    uint64_t outer = std::exchange(current_worker_, target.generation);
    h.resume();
    current_worker_ = outer;
    reap_workers();
    return;
  }
  ObjectHost* host = find_host(target.ns, target.id);
  // A host with another generation means the instance was reset and the frame
  // of h destroyed with it: nothing to continue.
  if (host && host->generation() == target.generation) host->resume(h);
}

namespace {
// Runs body(env) (a callable returning Task<Response>), kept in the frame.
template <typename Body>
Driver drive_worker(Runtime* runtime, Body body, Reply reply, std::vector<uint64_t>* finished,
                    uint64_t id, const int* object_shard) {
  Response response;
  try {
    response = co_await body(runtime->env());
  } catch (...) {
    response = response_for(std::current_exception(), "worker",
                            runtime->options().expose_exception_messages);
  }
  Answer answer(std::move(response));
  answer.object_shard = std::max(*object_shard, -1);
  reply(std::move(answer));
  finished->push_back(id);
}
}  // namespace

template <typename Body>
void Shard::start_worker_run(Body body, Reply reply) {
  uint64_t id = next_worker_id_++;
  auto run = std::make_unique<WorkerRun>();
  run->driver = drive_worker(runtime_, std::move(body), std::move(reply), &finished_workers_, id,
                             &run->object_shard);
  WorkerRun* raw = run.get();
  workers_.emplace(id, std::move(run));
  uint64_t outer = std::exchange(current_worker_, id);
  raw->driver.resume();
  current_worker_ = outer;
  reap_workers();
}

void Shard::run_worker(Request request, Reply reply) {
  // A lambda, not a std::function: the request moves once, into the frame.
  start_worker_run(
      [worker = &runtime_->worker(), request = std::move(request)](Env& env) mutable {
        return (*worker)(std::move(request), env);
      },
      std::move(reply));
}

void Shard::run_task(std::function<Task<Response>(Env&)> body, Reply reply) {
  start_worker_run(std::move(body), std::move(reply));
}

void Shard::note_worker_call(uint64_t worker, int shard) {
  auto it = workers_.find(worker);
  if (it == workers_.end()) return;
  int& seen = it->second->object_shard;
  if (shard < 0 || (seen != WorkerRun::kNone && seen != shard)) {
    seen = WorkerRun::kSeveral;
  } else {
    seen = shard;
  }
}

void Shard::reap_workers() {
  for (uint64_t id : finished_workers_) workers_.erase(id);
  finished_workers_.clear();
}

bool Shard::quiescent() const {
  if (!workers_.empty()) return false;
  for (const auto& [k, h] : hosts_) {
    if (!h->idle()) return false;
  }
  return true;
}

bool Shard::settled() {
  if (!quiescent() || !alarms_->settled() || eviction_posted_) return false;
  if (commits_.syncs() && commits_.failure().is_ok() &&
      commits_.durable_seq() < commits_.last_seq()) {
    // A commit nobody waits for (a socket handler's, a dropped alarm's) is
    // flushed with the next one; ask for that flush now.
    commits_.when_durable(commits_.last_seq(), [](Status) {});
    return false;
  }
  return true;
}

bool Shard::evict_now(const NamespaceImpl* ns, const ObjectId& id) {
  auto it = hosts_.find(ObjectKey{ns, id});
  if (it == hosts_.end()) return true;
  ObjectHost& h = *it->second;
  if (!h.idle() || sockets_->kept_sockets(ns, id) > 0) return false;
  ++metrics_[ns->index()].evictions;
  hosts_.erase(it);
  return true;
}

void Shard::flush_all(std::function<void()> done) {
  commits_.when_durable(commits_.last_seq(), [done = std::move(done)](Status st) {
    if (!st) log_error("final flush failed: " + st.message());
    done();
  });
}

const std::shared_ptr<const StoreEnv>& Shard::store_env(const NamespaceImpl* ns) {
  if (store_envs_.size() <= ns->index()) store_envs_.resize(ns->index() + 1);
  std::shared_ptr<const StoreEnv>& env = store_envs_[ns->index()];
  if (env) return env;
  const ServerOptions& o = runtime().options();
  StoreEnv e{&commits(),
             &open_dbs(),
             &runtime().store_faults(),
             o.max_object_bytes,
             &runtime().alarm_index(),
             ns->has_alarm_handler(),
             &metrics(ns->index()).storage,
             &runtime().catalog(),
             o.page_size,
             o.cpu_limit,
             [this] { return now_ms(); },
             replication_log()};
  e.history = o.history;
  e.snapshot_dir = snapshots::folder(o.data_dir);
  if (Placement* placement = runtime().placement()) e.partitions = static_cast<uint32_t>(placement->partitions());
  if (e.history) {
    e.history_keep_ms = o.history_keep_ms(ns->name());
    e.history_max_bytes = o.history_max_bytes;
  }
  env = std::make_shared<const StoreEnv>(std::move(e));
  return env;
}

MetricsSnapshot Shard::metrics_snapshot() {
  MetricsSnapshot snap;
  snap.per_ns = metrics_;
  // Ranks by numbers first and names only the ten winners, so that a read
  // with many objects in memory costs the shard little.
  using Entry = decltype(hosts_)::value_type;
  std::vector<std::pair<double, const Entry*>> by_events, by_time;
  by_events.reserve(hosts_.size());
  by_time.reserve(hosts_.size());
  for (const Entry& entry : hosts_) {
    const ObjectHost& host = *entry.second;
    if (host.has_instance()) ++snap.per_ns[entry.first.ns->index()].active_objects;
    by_events.emplace_back(static_cast<double>(host.events_total()), &entry);
    by_time.emplace_back(host.turn_ms_total(), &entry);
  }
  auto now = std::chrono::steady_clock::now();
  auto top = [now](std::vector<std::pair<double, const Entry*>>& v, std::vector<ObjectStat>* out) {
    size_t n = std::min<size_t>(10, v.size());
    std::partial_sort(v.begin(), v.begin() + static_cast<ptrdiff_t>(n), v.end(),
                      [](const auto& a, const auto& b) { return a.first > b.first; });
    for (size_t i = 0; i < n; ++i) {
      const ObjectKey& k = v[i].second->first;
      const ObjectHost& h = *v[i].second->second;
      out->push_back(ObjectStat{k.ns->name(), k.id.to_string(), k.id.name().value_or(""),
                                h.events_total(), h.turn_ms_total(),
                                std::chrono::duration<double, std::milli>(now - h.created()).count(),
                                h.queued()});
    }
  };
  top(by_events, &snap.top_by_events);
  top(by_time, &snap.top_by_time);
  sockets_->count(&snap.per_ns, [this](const NamespaceImpl* ns, const ObjectId& id) {
    return find_host(ns, id) != nullptr;
  });
  return snap;
}

void Shard::close_all_objects() {
  sockets_->close_all();
  relays_->close_all();
  workers_.clear();
  hosts_.clear();
}

}  // namespace dobj::internal
