#include "storage/sqlite.h"

#include <malloc.h>

#include <cstdlib>

#include "storage/vfs.h"

// jemalloc (linked into the server binaries) serves blocks up to 128 KiB
// from the thread's own cache. At its default, 32 KiB, SQLite's in-memory
// sub-journal chunk (64 KiB + 8, from SQLITE_CONFIG_STMTJRNL_SPILL's default)
// went through the arena's large-block path: it is taken when a turn's
// savepoint first writes a page and given back when the savepoint ends, so
// once for every turn that writes; ~4,000 of a durable increment's 37,600
// instructions. glibc's allocator never reads this; a binary's own
// definition replaces it (weak), and MALLOC_CONF in the environment
// overrides it.
extern "C" {
extern const char* malloc_conf;
__attribute__((weak)) const char* malloc_conf = "tcache_max:131072";
}

namespace dobj::internal {

namespace {

// SQLite's own allocator puts an 8-byte size in front of every block, which
// moves a power-of-two request into the next size class: the WAL index of a
// connection (32 KiB, zeroed whole) took a 40 KiB block. The allocator knows
// each block's size itself.
void* sqlite_malloc(int n) { return std::malloc(static_cast<size_t>(n)); }
void sqlite_free(void* p) { std::free(p); }
void* sqlite_realloc(void* p, int n) { return std::realloc(p, static_cast<size_t>(n)); }
int sqlite_size(void* p) { return p ? static_cast<int>(malloc_usable_size(p)) : 0; }
int sqlite_roundup(int n) { return (n + 7) & ~7; }
int sqlite_init(void*) { return SQLITE_OK; }
void sqlite_shutdown(void*) {}
const sqlite3_mem_methods kSqliteMemory = {sqlite_malloc, sqlite_free,  sqlite_realloc, sqlite_size,
                                           sqlite_roundup, sqlite_init, sqlite_shutdown, nullptr};

// SQLite's defaults suit one big database, not thousands of small ones: each
// connection would take a ~120 KB lookaside buffer and preallocate 20 cache
// pages. Must run before SQLite initializes; once per process.
void configure_sqlite_once() {
  static const bool done = [] {
    sqlite3_config(SQLITE_CONFIG_MALLOC, &kSqliteMemory);
    sqlite3_config(SQLITE_CONFIG_LOOKASIDE, 256, 16);        // 4 KiB per connection
    sqlite3_config(SQLITE_CONFIG_PAGECACHE, nullptr, 0, 0);  // no preallocated pages
    // Memory statistics take a global mutex around every allocation; unused.
    sqlite3_config(SQLITE_CONFIG_MEMSTATUS, 0);
    register_dobj_vfs();
    return true;
  }();
  (void)done;
}
}  // namespace

Status Db::open(const std::string& path, bool create, bool shared) {
  configure_sqlite_once();
  close();
  int flags = SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX | (create ? SQLITE_OPEN_CREATE : 0);
  int rc = sqlite3_open_v2(path.c_str(), &db_, flags, shared ? nullptr : kDobjVfs);
  if (rc != SQLITE_OK) {
    Status st(rc == SQLITE_CANTOPEN ? Code::kNotFound : Code::kInternal,
              "cannot open " + path + ": " + (db_ ? sqlite3_errmsg(db_) : sqlite3_errstr(rc)));
    close();
    return st;
  }
  sqlite3_extended_result_codes(db_, 1);
  return Status::ok();
}

void Db::close() {
  cache_.clear();
  if (db_) sqlite3_close_v2(db_);
  db_ = nullptr;
}

Status Db::exec(const char* sql) {
  char* err = nullptr;
  int rc = sqlite3_exec(db_, sql, nullptr, nullptr, &err);
  if (rc != SQLITE_OK) {
    std::string msg = err ? err : sqlite3_errstr(rc);
    sqlite3_free(err);
    return Status(Code::kInternal, msg);
  }
  return Status::ok();
}

Status Db::run_cached(std::string_view sql) {
  auto s = cached(sql);
  if (!s) return s.status();
  int rc = (*s)->step();
  if (rc == SQLITE_DONE || rc == SQLITE_ROW) return Status::ok();
  return Status(Code::kInternal, sqlite3_errmsg(db_));
}

Result<StmtUse> Db::cached(std::string_view sql) {
  auto it = cache_.find(sql);
  if (it != cache_.end()) return StmtUse(&it->second);  // reset when its last use ended
  sqlite3_stmt* s = nullptr;
  int rc = sqlite3_prepare_v3(db_, sql.data(), static_cast<int>(sql.size()),
                              SQLITE_PREPARE_PERSISTENT, &s, nullptr);
  if (rc != SQLITE_OK) return error(Code::kInternal, "prepare");
  auto [pos, inserted] = cache_.emplace(sql, Stmt(s));
  return StmtUse(&pos->second);
}

Status Db::error(Code code, std::string_view what) const {
  return Status(code, std::string(what) + ": " + (db_ ? sqlite3_errmsg(db_) : "no database"));
}

}  // namespace dobj::internal
