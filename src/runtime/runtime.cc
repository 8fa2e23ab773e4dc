#include "runtime/runtime.h"

#include <random>

#include <boost/asio/post.hpp>
#include <boost/asio/thread_pool.hpp>

#include <strings.h>
#include <sys/resource.h>

#include <algorithm>
#include <cstdlib>
#include <atomic>
#include <filesystem>
#include <future>
#include <thread>
#include <mutex>

#include "base/fs.h"
#include "base/hex.h"
#include "base/log.h"
#include "runtime/alarm_runner.h"
#include "runtime/api_access.h"
#include "runtime/object_host.h"

namespace dobj::internal {

NamespaceImpl::NamespaceImpl(Runtime* runtime, size_t index, std::string name, Binding binding,
                             const Secret& secret)
    : runtime_(runtime),
      index_(index),
      name_(std::move(name)),
      factory_(std::move(binding.factory)),
      ids_(secret, name_),
      dir_(runtime->options().data_dir + "/objects/" + name_),
      has_alarm_handler_(binding.has_alarm_handler),
      class_type_(binding.class_type) {}

Runtime::Runtime(ServerOptions options, Bindings bindings,
                 Worker worker, const Secret& secret, TimeSource* time)
    : options_(std::move(options)),
      time_(time ? time : &system_time_),
      env_(ApiAccess::env(this)),
      worker_(std::move(worker)),
      blocking_(std::make_unique<boost::asio::thread_pool>(2)),
      incarnation_(std::random_device{}() | 1) {
  system_time_.set_offset_ms(options_.clock_skew.count());
  if (!worker_) worker_ = default_route;
  int shard_count = options_.shards > 0
                        ? options_.shards
                        : std::max(1, static_cast<int>(std::thread::hardware_concurrency()));
  // Each open database holds two descriptors (its file and its WAL). Take the
  // whole allowance and keep the open-database cap within it, leaving room
  // for sockets: running out fails opens mid-request.
  rlimit rl{};
  if (getrlimit(RLIMIT_NOFILE, &rl) == 0) {
    // Ask for a server-sized limit (allowed to root), else take the hard one.
    constexpr rlim_t kWanted = 1 << 20;
    rlim_t before = rl.rlim_cur;
    if (rl.rlim_max < kWanted) {
      rlimit more{kWanted, kWanted};
      if (setrlimit(RLIMIT_NOFILE, &more) == 0) rl = more;
    }
    if (rl.rlim_cur < rl.rlim_max) {
      rl.rlim_cur = rl.rlim_max;
      setrlimit(RLIMIT_NOFILE, &rl);
      getrlimit(RLIMIT_NOFILE, &rl);
    }
    if (rl.rlim_cur != before) {
      log_info("file descriptor limit raised from " + std::to_string(before) + " to " +
               std::to_string(rl.rlim_cur));
    }
    size_t limit = static_cast<size_t>(rl.rlim_cur);
    size_t budget = limit > 2048 ? (limit - 1024) / (2 * static_cast<size_t>(shard_count)) : 64;
    if (options_.max_open_databases > budget) {
      log_warn("max open databases lowered from " + std::to_string(options_.max_open_databases) +
               " to " + std::to_string(budget) + " per shard: the file descriptor limit is " +
               std::to_string(limit));
      options_.max_open_databases = budget;
    }
    // What the databases may hold, and 1024 for everything else; the rest
    // is for client connections.
    size_t used = 2 * options_.max_open_databases * static_cast<size_t>(shard_count) + 1024;
    size_t room = limit > used + 64 ? limit - used : 64;
    if (options_.max_connections > room) {
      log_warn("max connections lowered from " + std::to_string(options_.max_connections) +
               " to " + std::to_string(room) + ": the file descriptor limit is " +
               std::to_string(limit));
      options_.max_connections = room;
    }
  }
  if (options_.durability == Durability::kFsync) {
    flusher_ = std::make_unique<Flusher>();
    flusher_->set_on_failure([exit = options_.exit_on_flush_failure](const Status& st) {
      log_error(st.message() + ": nothing written since the last good flush will be "
                "acknowledged; restart the node to recover from what is on disk");
      if (exit) {
        log_error("exiting with status 74");
        std::_Exit(kExitFlushFailed);
      }
    });
  }
  for (auto& [name, binding] : bindings) {
    namespaces_.push_back(std::make_unique<NamespaceImpl>(this, namespaces_.size(), name,
                                                          std::move(binding), secret));
  }
  for (int i = 0; i < shard_count; ++i) {
    shards_.push_back(
        std::make_unique<Shard>(this, i, flusher_.get(), options_.max_open_databases));
  }
  admin_shard_ = std::make_unique<Shard>(this, static_cast<int>(shards_.size()), flusher_.get(), 1);
}

Runtime::~Runtime() {
  if (blocking_) blocking_->join();
}

bool Runtime::settle(std::chrono::milliseconds timeout) {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  // Two passes in a row over every shard find nothing: work that one shard
  // posted to another while the first pass looked has been seen by then.
  int quiet_passes = 0;
  while (quiet_passes < 2) {
    bool all = true;
    for (size_t i = 0; i < shards_.size() && all; ++i) {
      Shard& s = *shards_[i];
      all = s.run_and_wait([&s] { return s.settled(); });
    }
    quiet_passes = all ? quiet_passes + 1 : 0;
    if (!all) {
      if (std::chrono::steady_clock::now() > deadline) return false;
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
  }
  return true;
}

void Runtime::run_blocking(std::function<void()> fn) {
  boost::asio::post(*blocking_, std::move(fn));
}

const NamespaceImpl* Runtime::find_namespace(std::string_view binding) {
  for (auto& ns : namespaces_) {
    if (ns->name() == binding) return ns.get();
  }
  return nullptr;
}

void Runtime::start_loops() {
  for (auto& s : shards_) {
    if (!s->started()) s->start();
  }
  if (!admin_shard_->started()) admin_shard_->start();
}

void Runtime::start(Loops loops) {
  for (auto& ns : namespaces_) {
    if (Status st = make_dirs(ns->dir(), /*durable=*/true); !st) throw Error(st);
  }
  if (Status st = alarm_index_.open(options_.data_dir + "/alarms.sqlite"); !st) throw Error(st);
  // Exports and imports that a crash interrupted.
  std::error_code ignored;
  std::filesystem::remove_all(options_.data_dir + "/tmp", ignored);
  std::map<std::string, std::string> dirs;
  for (auto& ns : namespaces_) dirs[ns->name()] = ns->dir();
  if (Status st = catalog_.open(options_.data_dir + "/catalog.sqlite", dirs); !st) throw Error(st);
  catalog_.start();
  if (placement_) {
    for (auto& shard : shards_) shard->set_replicator(placement_->make_replicator(*shard));
  }
  if (flusher_) flusher_->start();
  if (loops == Loops::kThreads) start_loops();
  // Alarms pending before the last stop or crash: each to its object's shard.
  for (auto& r : alarm_index_.all()) {
    const NamespaceImpl* ns = find_namespace(r.ns);
    auto bytes = from_hex_lower(r.id_hex);
    if (!ns || !bytes || bytes->size() != ObjectId::kSize) continue;
    ObjectId::Bytes b;
    std::copy(bytes->begin(), bytes->end(), b.begin());
    ObjectId id(b, r.name);
    Shard& shard = shard_for(id);
    shard.post([&shard, ns, id, at = r.at_ms, retry = r.retry] {
      shard.alarms().schedule(ObjectKey{ns, id}, at, retry);
    });
  }
}

bool Runtime::stop(std::chrono::milliseconds timeout) {
  bool clean = true;
  auto deadline = std::chrono::steady_clock::now() + timeout;
  start_loops();  // a stepped runtime stops as any other
  blocking_->join();  // what it runs answers through the shards, still running
  for (;;) {
    bool all = true;
    for (auto& s : shards_) all = all && s->run_and_wait([&] { return s->quiescent(); });
    if (all) break;
    if (std::chrono::steady_clock::now() > deadline) {
      log_warn("stop: objects still busy after the stop timeout; stopping anyway");
      clean = false;
      break;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  for (auto& s : shards_) {
    std::promise<void> flushed;
    auto f = flushed.get_future();
    s->post([&] { s->flush_all([&] { flushed.set_value(); }); });
    f.get();
  }
  for (auto& s : shards_) {
    s->run_and_wait([&] {
      s->hand_over_to_catalog();
      s->close_all_objects();
    });
  }
  for (auto& s : shards_) s->stop();
  for (auto& s : shards_) s->join();
  alarm_index_.stop();
  admin_shard_->stop();
  admin_shard_->join();
  if (flusher_) flusher_->stop();
  catalog_.stop();
  return clean;
}

std::future<Response> Runtime::send_to_object(const NamespaceImpl* ns, const ObjectId& id,
                                              Request request) {
  auto p = std::make_shared<std::promise<Response>>();
  auto f = p->get_future();
  Shard& shard = shard_for(id);
  shard.post([&shard, ns, id, request = std::move(request), p]() mutable {
    Delivery d;
    d.request = std::move(request);
    d.reply = [p](Answer a) { p->set_value(std::move(a.response)); };
    shard.deliver(ns, id, std::move(d));
  });
  return f;
}

void Runtime::collect_metrics(Shard* reply_on, std::function<void(MetricsSnapshot)> done) {
  struct Gather {
    MetricsSnapshot all;
    size_t left;
    std::function<void(MetricsSnapshot)> done;
    std::mutex mu;
  };
  auto g = std::make_shared<Gather>();
  g->left = shards_.size();
  g->done = std::move(done);
  g->all.at = std::chrono::steady_clock::now();
  for (auto& ns : namespaces_) g->all.namespaces.push_back(ns->name());
  g->all.per_ns.resize(namespaces_.size());
  g->all.connections_open = connections_.open.load(std::memory_order_relaxed);
  g->all.connections_refused = connections_.refused.load(std::memory_order_relaxed);
  g->all.connections_moved = connections_.moved.load(std::memory_order_relaxed);
  for (auto& s : shards_) {
    Shard* shard = s.get();
    shard->post([this, shard, g, reply_on] {
      MetricsSnapshot one = shard->metrics_snapshot();
      std::lock_guard lock(g->mu);
      for (size_t i = 0; i < one.per_ns.size(); ++i) g->all.per_ns[i].merge(one.per_ns[i]);
      auto& e = g->all.top_by_events;
      e.insert(e.end(), one.top_by_events.begin(), one.top_by_events.end());
      auto& t = g->all.top_by_time;
      t.insert(t.end(), one.top_by_time.begin(), one.top_by_time.end());
      if (--g->left > 0) return;
      auto cut = [](std::vector<ObjectStat>& v, auto key) {
        std::sort(v.begin(), v.end(), [&](const ObjectStat& a, const ObjectStat& b) {
          return key(a) > key(b);
        });
        if (v.size() > 10) v.resize(10);
      };
      cut(g->all.top_by_events, [](const ObjectStat& o) { return double(o.events); });
      cut(g->all.top_by_time, [](const ObjectStat& o) { return o.turn_ms; });
      reply_on->post([this, g] {
        auto totals = catalog_.totals();
        for (size_t i = 0; i < namespaces_.size(); ++i) {
          g->all.per_ns[i].unique_ids = namespaces_[i]->unique_ids();
          auto it = totals.find(namespaces_[i]->name());
          if (it == totals.end()) continue;
          g->all.per_ns[i].stored_objects = static_cast<uint64_t>(std::max<int64_t>(0, it->second.objects));
          g->all.per_ns[i].storage_bytes = static_cast<uint64_t>(std::max<int64_t>(0, it->second.bytes));
        }
        g->done(std::move(g->all));
      });
    });
  }
}

void Runtime::run_on_object(const NamespaceImpl* ns, const ObjectId& id, Shard* reply_on,
                            std::function<void(ObjectHost&, Reply)> fn, Reply reply) {
  Shard& shard = shard_for(id);
  shard.post([&shard, ns, id, reply_on, fn = std::move(fn), reply = std::move(reply)]() mutable {
    Delivery d;
    d.admin = std::move(fn);
    if (!reply_on) {
      d.reply = std::move(reply);
    } else {
      d.reply = [reply_on, reply = std::move(reply)](Answer a) mutable {
        reply_on->post([reply = std::move(reply), a = std::move(a)]() mutable { reply(std::move(a)); });
      };
    }
    shard.deliver(ns, id, std::move(d));
  });
}

void Runtime::object_states(Shard* reply_on, std::vector<ObjectKey> refs,
                            std::function<void(std::vector<Shard::Presence>)> done) {
  struct Gather {
    std::vector<ObjectKey> refs;
    std::vector<Shard::Presence> out;
    std::function<void(std::vector<Shard::Presence>)> done;
    std::atomic<size_t> left;
  };
  auto g = std::make_shared<Gather>();
  g->out.resize(refs.size());
  g->refs = std::move(refs);
  g->done = std::move(done);
  g->left = shards_.size();
  // Each shard fills in its own objects' slots; the last one answers.
  for (auto& s : shards_) {
    Shard* shard = s.get();
    shard->post([this, shard, g, reply_on] {
      for (size_t i = 0; i < g->refs.size(); ++i) {
        if (&shard_for(g->refs[i].id) == shard) {
          g->out[i] = shard->presence(g->refs[i].ns, g->refs[i].id);
        }
      }
      if (--g->left > 0) return;
      reply_on->post([g] { g->done(std::move(g->out)); });
    });
  }
}

LatenessSummary Runtime::alarm_lateness() {
  // Merge the shards' summaries by taking the worst of each (a bound, cheap).
  LatenessSummary all;
  for (auto& s : shards_) {
    LatenessSummary one = s->run_and_wait([&] { return s->alarms().scheduler().lateness(); });
    all.count += one.count;
    all.p50_ms = std::max(all.p50_ms, one.p50_ms);
    all.p99_ms = std::max(all.p99_ms, one.p99_ms);
    all.max_ms = std::max(all.max_ms, one.max_ms);
  }
  return all;
}

Task<Response> default_route(Request request, Env& env) {
  std::string_view path = request.path();
  if (path.empty() || path[0] != '/') co_return Response::error(404, "not found");
  path.remove_prefix(1);
  auto slash = path.find('/');
  std::string_view binding = path.substr(0, slash);
  std::string_view rest = slash == std::string_view::npos ? "" : path.substr(slash + 1);
  auto name_end = rest.find('/');
  std::string_view encoded_name = rest.substr(0, name_end);
  if (binding.empty() || encoded_name.empty()) co_return Response::error(404, "not found");
  auto name = url_decode(encoded_name);
  if (!name) co_return Response::error(400, "malformed percent-encoding in the object name");
  // /counter/... reaches binding COUNTER, /rate-limiter/... RATE_LIMITER.
  std::string upper(binding);
  for (char& c : upper) c = c == '-' ? '_' : static_cast<char>(toupper(c));
  std::optional<Namespace> ns;
  for (const std::string& candidate : {std::string(binding), upper}) {
    try {
      ns = env.ns(candidate);
      break;
    } catch (const Error&) {
    }
  }
  if (!ns) co_return Response::error(404, "no binding named " + std::string(binding));
  co_return co_await ns->get(ns->id_from_name(*name)).fetch(std::move(request));
}

}  // namespace dobj::internal
