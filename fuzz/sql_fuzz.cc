// The object's SQL API against statements an attacker writes (built by the
// fuzzer from fuzz/dict/sql.dict): whatever runs or is refused, the runtime's
// own tables keep exactly what the runtime put in them, and the object's
// database stays intact.
#include <sqlite3.h>

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <string>
#include <unistd.h>

#include "dobj/sql.h"
#include "dobj/storage.h"
#include "runtime/api_access.h"
#include "storage/object_store.h"

using namespace dobj;
using namespace dobj::internal;

namespace {

struct Fixture {
  std::string dir;
  GroupCommit commits{nullptr, [](std::function<void()> f) { f(); }};
  DbCache open_dbs{4};
  std::unique_ptr<ObjectStore> store;
  std::unique_ptr<Storage> storage;
  Fixture() {
    char tmpl[] = "/tmp/dobj-sql-fuzz-XXXXXX";
    dir = mkdtemp(tmpl);
    StoreEnv env{&commits, &open_dbs, nullptr, 4 << 20};
    env.sql_time_limit = std::chrono::milliseconds(200);
    store = std::make_unique<ObjectStore>(env, dir + "/ns/ab", "obj.sqlite");
    storage = std::make_unique<Storage>(internal::ApiAccess::storage(store.get()));
    storage->put("sentinel", std::string("kept"));
    storage->set_alarm(12345);
    if (!store->end_turn()) std::abort();
  }
  ~Fixture() { std::filesystem::remove_all(dir); }
};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static Fixture f;
  std::string query(reinterpret_cast<const char*>(data), size);
  try {
    (void)f.storage->sql().exec(query);
  } catch (const Error&) {
  }
  (void)f.store->end_turn();
  // The runtime's rows are as the runtime left them.
  try {
    if (f.storage->get<std::string>("sentinel") != std::string("kept")) std::abort();
    auto keys = f.storage->list<std::string>({});
    if (keys.size() != 1) std::abort();
    if (f.storage->get_alarm() != std::optional<int64_t>(12345)) std::abort();
  } catch (const Error&) {
    std::abort();
  }
  (void)f.store->end_turn();
  return 0;
}
