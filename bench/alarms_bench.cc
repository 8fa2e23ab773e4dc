// dobj-alarms-bench: 100,000 alarms across 10,000 objects due within one
// second, on an in-process runtime with real storage (fsync). Reports how long
// after the last due time all had fired, the lateness of the alarms, and the
// worst latency of requests to another object while the burst ran; then the
// lateness of alarms outside a burst (2,000 objects, due over 5 s).
//
//   build/release/bench/dobj-alarms-bench
#include <algorithm>
#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <future>
#include <mutex>
#include <random>
#include <thread>

#include "runtime/runtime.h"

namespace dobj::internal {
namespace {

// OBJECTS=N and ALARMS=N (per object) change the size of the burst;
// PAGE_SIZE=N the databases' page size (--page-size).
int env_int(const char* name, int fallback) {
  const char* v = std::getenv(name);
  return v && *v ? std::atoi(v) : fallback;
}
const int kObjects = env_int("OBJECTS", 10'000);
const int kAlarmsPerObject = env_int("ALARMS", 10);
std::atomic<int> g_fired{0};

int64_t epoch_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

// Its alarm re-arms itself at once until it fired kAlarmsPerObject times.
class Burst : public DurableObject {
 public:
  using DurableObject::DurableObject;
  Task<Response> fetch(Request req) override {
    if (auto at = req.query("at")) storage().set_alarm(std::stoll(*at));
    co_return Response::text("ok");
  }
  Task<void> alarm(AlarmInfo) override {
    int64_t n = storage().get<int64_t>("n").value_or(0) + 1;
    storage().put("n", n);
    ++g_fired;
    if (n < kAlarmsPerObject) storage().set_alarm(epoch_ms());
    co_return;
  }
};

// Outside a burst: one alarm each, at its own time; alarm() notes how late
// it ran against the time it asked for.
std::mutex g_steady_mu;
std::vector<int64_t> g_steady_lateness;
class Steady : public DurableObject {
 public:
  using DurableObject::DurableObject;
  Task<Response> fetch(Request req) override {
    int64_t at = std::stoll(*req.query("at"));
    storage().put("at", at);
    storage().set_alarm(at);
    co_return Response::text("ok");
  }
  Task<void> alarm(AlarmInfo) override {
    int64_t late = epoch_ms() - storage().get<int64_t>("at").value_or(0);
    std::lock_guard lock(g_steady_mu);
    g_steady_lateness.push_back(late);
    co_return;
  }
};

Response call(Runtime& rt, const NamespaceImpl* ns, const std::string& name, const std::string& target) {
  Request req;
  req.target = target;
  return rt.send_to_object(ns, ns->ids().from_name(name), std::move(req)).get();
}

int run() {
  auto dir = std::filesystem::temp_directory_path() / ("dobj-alarms-" + std::to_string(getpid()));
  ServerOptions o;
  o.data_dir = dir.string();
  // Every object of the burst stays open: reopening a database per alarm
  // would measure file opens, not alarms.
  o.max_open_databases = kObjects;
  o.page_size = env_int("PAGE_SIZE", o.page_size);
  Secret secret{};
  internal::Bindings bindings;
  bindings["BURST"] = [](State& s, Env& e) { return std::make_unique<Burst>(s, e); };
  bindings["STEADY"] = [](State& s, Env& e) { return std::make_unique<Steady>(s, e); };
  Runtime rt(o, bindings, nullptr, secret);
  rt.start();
  const NamespaceImpl* ns = rt.find_namespace("BURST");

  int64_t first_due = epoch_ms() + 10'000;
  auto t0 = std::chrono::steady_clock::now();
  {
    // All set at once, 64 requests in flight at a time.
    std::vector<std::thread> setters;
    for (int t = 0; t < 64; ++t) {
      setters.emplace_back([&, t] {
        for (int i = t; i < kObjects; i += 64) {
          call(rt, ns, "o" + std::to_string(i), "/?at=" + std::to_string(first_due + i % 1000));
        }
      });
    }
    for (auto& t : setters) t.join();
  }
  std::printf(
      "set %d alarms in %.0f ms, due over one second from %lld\n", kObjects,
      std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count(),
      static_cast<long long>(first_due));
  int64_t last_due = first_due + std::min(kObjects, 1000) - 1;

  // A probe: one request every 2 ms to an unrelated object, timed.
  std::atomic<bool> stop{false};
  std::vector<double> probe_ms;
  std::thread probe([&] {
    while (!stop) {
      auto t0 = std::chrono::steady_clock::now();
      call(rt, ns, "probe", "/");
      probe_ms.push_back(
          std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count());
      std::this_thread::sleep_for(std::chrono::milliseconds(2));
    }
  });
  const int total = kObjects * kAlarmsPerObject;
  while (g_fired < total && epoch_ms() < last_due + 120'000) {
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  int64_t done = epoch_ms();
  stop = true;
  probe.join();
  auto lateness = rt.alarm_lateness();
  std::sort(probe_ms.begin(), probe_ms.end());
  auto pct = [&](double q) {
    return probe_ms.empty() ? 0 : probe_ms[static_cast<size_t>(q * (probe_ms.size() - 1))];
  };
  std::printf("fired %d of %d alarms; all fired %lld ms after the last first-due time\n",
              g_fired.load(), total, static_cast<long long>(done - last_due));
  std::printf(
      "alarm lateness (per shard, worst shard): p50 %lld ms, p99 %lld ms, max %lld ms over %zu "
      "alarms\n",
      static_cast<long long>(lateness.p50_ms), static_cast<long long>(lateness.p99_ms),
      static_cast<long long>(lateness.max_ms), lateness.count);
  std::printf("requests during the burst: %zu, p50 %.2f ms, p99 %.2f ms, max %.2f ms\n",
              probe_ms.size(), pct(0.5), pct(0.99), pct(1.0));

  // Then alarms outside a burst: 2,000 objects, each set for a random time
  // 1 to 5 s after it was set, with the probe's kind of traffic (requests to
  // other objects) meanwhile.
  const NamespaceImpl* steady = rt.find_namespace("STEADY");
  const int kSteady = env_int("STEADY", 2000);
  std::mt19937 random(7);
  for (int i = 0; i < kSteady; ++i) {
    int64_t at = epoch_ms() + 1000 + static_cast<int64_t>(random() % 4000);
    call(rt, steady, "s" + std::to_string(i), "/?at=" + std::to_string(at));
  }
  int64_t set_done = epoch_ms();
  while (epoch_ms() < set_done + 5000 + 10'000) {
    {
      std::lock_guard lock(g_steady_mu);
      if (g_steady_lateness.size() >= static_cast<size_t>(kSteady)) break;
    }
    call(rt, ns, "probe", "/");
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  }
  {
    std::lock_guard lock(g_steady_mu);
    std::sort(g_steady_lateness.begin(), g_steady_lateness.end());
    auto q = [&](double f) {
      return g_steady_lateness.empty()
                 ? 0
                 : g_steady_lateness[static_cast<size_t>(f * (g_steady_lateness.size() - 1))];
    };
    std::printf(
        "outside a burst: %zu of %d alarms fired, lateness p50 %lld ms, p99 %lld ms, max %lld "
        "ms\n",
        g_steady_lateness.size(), kSteady, static_cast<long long>(q(0.5)),
        static_cast<long long>(q(0.99)), static_cast<long long>(q(1.0)));
  }
  rt.stop(std::chrono::seconds(30));
  std::filesystem::remove_all(dir);
  return g_fired == total ? 0 : 1;
}

}  // namespace
}  // namespace dobj::internal

int main() { return dobj::internal::run(); }
