// Typed calls between objects on one node (Google Benchmark): calls per second
// and CPU per call, with caller and callee on the same shard or on two.
//
//   build/release/bench/dobj-calls-bench
#include <benchmark/benchmark.h>
#include <sys/resource.h>

#include <filesystem>
#include <future>

#include "runtime/runtime.h"

namespace dobj::internal {
namespace {

constexpr int kCallsPerBatch = 2000;

class Callee : public DurableObject {
 public:
  Callee(State& s, Env& e) : DurableObject(s, e) { method("add", &Callee::add); }
  Task<int64_t> add(int64_t a, int64_t b) { co_return a + b; }
};

// GET /?target=HEX makes kCallsPerBatch sequential typed calls to that object.
class Caller : public DurableObject {
 public:
  using DurableObject::DurableObject;
  Task<Response> fetch(Request req) override {
    Namespace ns = env().ns("CALLEE");
    Stub stub = ns.get(*ns.id_from_string(*req.query("target")));
    int64_t sum = 0;
    if (req.query("parallel")) {
      // 100 calls in flight at a time.
      for (int round = 0; round < kCallsPerBatch / 100; ++round) {
        std::vector<Task<int64_t>> calls;
        for (int i = 0; i < 100; ++i) calls.push_back(stub.call<int64_t>("add", i, 1));
        for (int64_t v : co_await when_all(std::move(calls))) sum += v;
      }
    } else {
      for (int i = 0; i < kCallsPerBatch; ++i) sum = co_await stub.call<int64_t>("add", sum, 1);
    }
    co_return Response::text(std::to_string(sum));
  }
};

double cpu_seconds() {
  rusage u;
  getrusage(RUSAGE_SELF, &u);
  return u.ru_utime.tv_sec + u.ru_utime.tv_usec / 1e6 + u.ru_stime.tv_sec +
         u.ru_stime.tv_usec / 1e6;
}

void Calls(benchmark::State& state, bool same_shard, bool parallel) {
  auto dir = std::filesystem::temp_directory_path() / ("dobj-calls-" + std::to_string(getpid()));
  ServerOptions o;
  o.data_dir = dir.string();
  o.shards = 2;
  o.durability = Durability::kOs;
  Secret secret{};
  internal::Bindings bindings;
  bindings["CALLEE"] = [](State& s, Env& e) { return std::make_unique<Callee>(s, e); };
  bindings["CALLER"] = [](State& s, Env& e) { return std::make_unique<Caller>(s, e); };
  Runtime rt(o, bindings, nullptr, secret);
  rt.start();
  const NamespaceImpl* caller_ns = rt.find_namespace("CALLER");
  const NamespaceImpl* callee_ns = rt.find_namespace("CALLEE");
  ObjectId caller = caller_ns->ids().from_name("caller");
  size_t caller_shard = caller.hash() % rt.shard_count();
  ObjectId callee;
  for (int i = 0;; ++i) {
    callee = callee_ns->ids().from_name("callee" + std::to_string(i));
    if ((callee.hash() % rt.shard_count() == caller_shard) == same_shard) break;
  }
  double cpu = 0;
  for (auto _ : state) {
    Request req;
    req.target = "/?target=" + callee.to_string() + (parallel ? "&parallel=1" : "");
    double before = cpu_seconds();
    benchmark::DoNotOptimize(rt.send_to_object(caller_ns, caller, std::move(req)).get());
    cpu += cpu_seconds() - before;
  }
  state.SetItemsProcessed(state.iterations() * kCallsPerBatch);
  state.counters["cpu_us_per_call"] = 1e6 * cpu / (state.iterations() * kCallsPerBatch);
  rt.stop(std::chrono::seconds(5));
  std::filesystem::remove_all(dir);
}

void SameShard(benchmark::State& state) { Calls(state, true, false); }
void CrossShard(benchmark::State& state) { Calls(state, false, false); }
void SameShard100InFlight(benchmark::State& state) { Calls(state, true, true); }
void CrossShard100InFlight(benchmark::State& state) { Calls(state, false, true); }
BENCHMARK(SameShard)->UseRealTime()->Unit(benchmark::kMillisecond);
BENCHMARK(CrossShard)->UseRealTime()->Unit(benchmark::kMillisecond);
BENCHMARK(SameShard100InFlight)->UseRealTime()->Unit(benchmark::kMillisecond);
BENCHMARK(CrossShard100InFlight)->UseRealTime()->Unit(benchmark::kMillisecond);

}  // namespace
}  // namespace dobj::internal

BENCHMARK_MAIN();
