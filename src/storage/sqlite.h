// Thin RAII wrappers over the SQLite C API, with errors as Status.
//
// Not thread-safe: a Db and its statements belong to one thread.
#pragma once

#include <sqlite3.h>

#include <memory>
#include <string>
#include <string_view>
#include <unordered_map>

#include "dobj/status.h"

namespace dobj::internal {

class Stmt {
 public:
  Stmt() = default;
  explicit Stmt(sqlite3_stmt* s) : s_(s) {}
  Stmt(Stmt&& o) noexcept : s_(std::exchange(o.s_, nullptr)) {}
  Stmt& operator=(Stmt&& o) noexcept {
    std::swap(s_, o.s_);
    return *this;
  }
  ~Stmt() { sqlite3_finalize(s_); }

  sqlite3_stmt* get() const { return s_; }
  void bind_blob(int i, std::string_view v) {
    sqlite3_bind_blob(s_, i, v.data(), static_cast<int>(v.size()), SQLITE_STATIC);
  }
  void bind_int(int i, int64_t v) { sqlite3_bind_int64(s_, i, v); }
  // SQLITE_ROW, SQLITE_DONE or an error code.
  int step() { return sqlite3_step(s_); }
  void reset() {
    sqlite3_reset(s_);
    sqlite3_clear_bindings(s_);
  }
  std::string_view column_blob(int i) const {
    const void* p = sqlite3_column_blob(s_, i);
    int n = sqlite3_column_bytes(s_, i);
    return p ? std::string_view(static_cast<const char*>(p), static_cast<size_t>(n))
             : std::string_view();
  }
  int64_t column_int(int i) const { return sqlite3_column_int64(s_, i); }

 private:
  sqlite3_stmt* s_ = nullptr;
};

// A cached statement in use. It is reset (and its bindings cleared) when the
// use ends: a statement left on a row keeps a read transaction open, which
// blocks checkpoints. Move-only; does not own the statement.
class StmtUse {
 public:
  explicit StmtUse(Stmt* s) : s_(s) {}
  StmtUse(StmtUse&& o) noexcept : s_(std::exchange(o.s_, nullptr)) {}
  StmtUse& operator=(StmtUse&&) = delete;
  ~StmtUse() {
    if (s_) s_->reset();
  }
  Stmt* operator->() const { return s_; }
  Stmt* get() const { return s_; }

 private:
  Stmt* s_;
};

class Db {
 public:
  Db() = default;
  Db(const Db&) = delete;
  Db& operator=(const Db&) = delete;
  ~Db() { close(); }

  // Opens (and with create, creates) the database file at path. Without
  // shared, through the "dobj" VFS (vfs.h): no locks, for files that have one
  // connection; with shared, SQLite's default locking, so that several
  // connections of this process may use the file at once (WAL mode).
  Status open(const std::string& path, bool create, bool shared = false);
  void close();
  bool is_open() const { return db_ != nullptr; }
  sqlite3* get() const { return db_; }

  // Runs one or more statements that return no rows.
  Status exec(const char* sql);
  // Runs one statement without results through the statement cache: for
  // the runtime's BEGIN, COMMIT and ROLLBACK of every turn, which exec()
  // would parse each time.
  Status run_cached(std::string_view sql);
  // A prepared statement cached by its SQL text, ready to bind and step.
  // Looked up without copying the text (internal statements are literals).
  Result<StmtUse> cached(std::string_view sql);
  // The last error, as a Status with the given code.
  Status error(Code code, std::string_view what) const;

 private:
  sqlite3* db_ = nullptr;
  struct TextHash {
    using is_transparent = void;
    size_t operator()(std::string_view s) const { return std::hash<std::string_view>()(s); }
  };
  std::unordered_map<std::string, Stmt, TextHash, std::equal_to<>> cache_;
};

// Turns SQLite's automatic checkpoints off for db (they would sync on the
// committing thread): after each commit *frames holds the WAL's size, for the
// owner to checkpoint where it chooses.
inline void track_wal_frames(sqlite3* db, int* frames) {
  sqlite3_wal_hook(
      db,
      [](void* out, sqlite3*, const char*, int n) {
        *static_cast<int*>(out) = n;
        return SQLITE_OK;
      },
      frames);
}

}  // namespace dobj::internal
