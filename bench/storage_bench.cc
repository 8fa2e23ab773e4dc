// Storage microbenchmarks on the object's thread (Google Benchmark): what one
// SQL query or key-value call costs, without HTTP or the event loop.
//
//   build/release/bench/dobj-storage-bench
#include <benchmark/benchmark.h>

#include <filesystem>

#include "runtime/api_access.h"
#include "storage/object_store.h"

namespace dobj::internal {
namespace {

struct Fixture {
  Fixture() {
    dir = std::filesystem::temp_directory_path() / ("dobj-bench-" + std::to_string(getpid()));
    std::filesystem::create_directories(dir);
    store = std::make_unique<ObjectStore>(StoreEnv{&commits, &open_dbs}, dir.string(), "o.sqlite");
    storage = std::make_unique<Storage>(internal::ApiAccess::storage(store.get()));
    storage->sql().exec("CREATE TABLE t(id INTEGER PRIMARY KEY, name TEXT, score REAL)");
    for (int i = 0; i < 10000; ++i) {
      storage->sql().exec("INSERT INTO t(name, score) VALUES (?, ?)", "name" + std::to_string(i),
                          i * 0.5);
      storage->put("key" + std::to_string(i), int64_t{i});
    }
    (void)store->end_turn();
  }
  ~Fixture() {
    storage.reset();
    store.reset();
    std::filesystem::remove_all(dir);
  }
  std::filesystem::path dir;
  GroupCommit commits{nullptr, [](std::function<void()> f) { f(); }};
  DbCache open_dbs{16};
  std::unique_ptr<ObjectStore> store;
  std::unique_ptr<Storage> storage;
};

Fixture& fixture() {
  static Fixture f;
  return f;
}

void SqlSelectOneRowByKey(benchmark::State& state) {
  auto& f = fixture();
  int64_t i = 0;
  for (auto _ : state) {
    auto c = f.storage->sql().exec("SELECT name, score FROM t WHERE id = ?", 1 + (i++ % 10000));
    benchmark::DoNotOptimize(c);
  }
}
BENCHMARK(SqlSelectOneRowByKey);

void SqlSelectTenRows(benchmark::State& state) {
  auto& f = fixture();
  int64_t i = 0;
  for (auto _ : state) {
    int64_t lo = 1 + (i++ % 9000);
    auto c =
        f.storage->sql().exec("SELECT id, name, score FROM t WHERE id BETWEEN ? AND ?", lo, lo + 9);
    benchmark::DoNotOptimize(c);
  }
}
BENCHMARK(SqlSelectTenRows);

void KvGet(benchmark::State& state) {
  auto& f = fixture();
  int64_t i = 0;
  for (auto _ : state) {
    benchmark::DoNotOptimize(f.storage->get<int64_t>("key" + std::to_string(i++ % 10000)));
  }
}
BENCHMARK(KvGet);

// One SQL insert and its commit to the WAL (no fsync: that is the flusher's,
// shared by every waiting commit).
void SqlInsertAndCommit(benchmark::State& state) {
  auto& f = fixture();
  for (auto _ : state) {
    f.storage->sql().exec("INSERT INTO t(name, score) VALUES (?, ?)", "x", 1.0);
    benchmark::DoNotOptimize(f.store->end_turn());
  }
}
BENCHMARK(SqlInsertAndCommit);

void KvPutAndCommit(benchmark::State& state) {
  auto& f = fixture();
  int64_t i = 0;
  for (auto _ : state) {
    f.storage->put("count", i++);
    benchmark::DoNotOptimize(f.store->end_turn());
  }
}
BENCHMARK(KvPutAndCommit);

// The largest value a key may hold (128 KiB), written and read back: the cost
// of values that span many database pages.
void KvPutLargeValueAndCommit(benchmark::State& state) {
  auto& f = fixture();
  std::string big(Storage::kMaxValueBytes - 16, 'v');
  int64_t i = 0;
  for (auto _ : state) {
    big[0] = static_cast<char>('a' + i++ % 26);
    f.storage->put("big", big);
    benchmark::DoNotOptimize(f.store->end_turn());
  }
}
BENCHMARK(KvPutLargeValueAndCommit);

void KvGetLargeValue(benchmark::State& state) {
  auto& f = fixture();
  f.storage->put("big-read", std::string(Storage::kMaxValueBytes - 16, 'r'));
  (void)f.store->end_turn();
  for (auto _ : state) {
    benchmark::DoNotOptimize(f.storage->get<std::string>("big-read"));
  }
}
BENCHMARK(KvGetLargeValue);

// Reading one key of an object whose database was closed: 256 small objects
// visited in turn with room for 16 open, so every visit reopens a file (as
// when more objects are active than --max-open-databases allows).
struct ReopenFixture {
  ReopenFixture() {
    dir = std::filesystem::temp_directory_path() / ("dobj-reopen-" + std::to_string(getpid()));
    std::filesystem::create_directories(dir);
    for (int i = 0; i < 256; ++i) {
      stores.push_back(std::make_unique<ObjectStore>(StoreEnv{&commits, &open_dbs}, dir.string(),
                                                     "o" + std::to_string(i) + ".sqlite"));
      stores.back()->put("count", std::to_string(i));
      (void)stores.back()->end_turn();
    }
  }
  ~ReopenFixture() {
    stores.clear();
    std::filesystem::remove_all(dir);
  }
  std::filesystem::path dir;
  GroupCommit commits{nullptr, [](std::function<void()> f) { f(); }};
  DbCache open_dbs{16};
  std::vector<std::unique_ptr<ObjectStore>> stores;
};

void KvGetAfterReopen(benchmark::State& state) {
  static ReopenFixture f;
  size_t i = 0;
  for (auto _ : state) {
    benchmark::DoNotOptimize(f.stores[i++ % f.stores.size()]->get("count"));
  }
}
BENCHMARK(KvGetAfterReopen);

// Creating an object's database: its first write and commit into a new file,
// then closing it (what an object that is new costs the shard's thread; the
// flush is the flusher's, not measured here). Reports the files' bytes.
void CreateObject(benchmark::State& state) {
  auto dir = std::filesystem::temp_directory_path() / ("dobj-create-" + std::to_string(getpid()));
  std::filesystem::create_directories(dir);
  GroupCommit commits{nullptr, [](std::function<void()> f) { f(); }};
  DbCache open_dbs{16};
  int64_t n = 0;
  for (auto _ : state) {
    ObjectStore store(StoreEnv{&commits, &open_dbs}, dir.string(), "o" + std::to_string(n++) + ".sqlite");
    store.put("count", "1");
    benchmark::DoNotOptimize(store.end_turn());
  }
  state.SetItemsProcessed(n);
  std::filesystem::remove_all(dir);
}
BENCHMARK(CreateObject)->Iterations(5000);

}  // namespace
}  // namespace dobj::internal

BENCHMARK_MAIN();
