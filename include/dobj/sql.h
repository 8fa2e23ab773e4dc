// Sql: an object's own SQL database (the same SQLite file as its key-value
// storage).
//
//   storage().sql().exec("CREATE TABLE IF NOT EXISTS t(id INTEGER PRIMARY KEY, v TEXT)");
//   storage().sql().exec("INSERT INTO t(v) VALUES (?)", "hello");
//   for (const auto& row : storage().sql().exec("SELECT id, v FROM t")) { ... }
//
// exec runs the whole query before it returns, whether or not the cursor is
// read. A query may hold several statements; parameters and results belong to
// the last one (earlier ones may not use parameters). SQL writes are part of
// the turn's atomic batch and wait behind the output gate like key-value
// writes, and roll back with storage().transaction().
//
// Refused, with a clear dobj::Error(kInvalidArgument): BEGIN, COMMIT,
// ROLLBACK, SAVEPOINT, RELEASE (use storage().transaction()), ATTACH, DETACH,
// temporary tables/views/indexes/triggers, names starting with _dobj_ (the
// runtime's own tables), PRAGMAs outside an allow-list, and functions that
// load code or reveal how the engine was built. Foreign keys are enforced.
//
// Errors: a SQL error (syntax, constraint, type) throws
// dobj::Error(kInvalidArgument) and undoes everything that exec wrote (all
// its statements), nothing else. A storage failure (disk full, I/O error)
// throws dobj::Error(kInternal) and resets the object when the turn ends.
// Triggers and views run under the same rules as the object's own SQL,
// whoever fires them, and the database runs in SQLite's defensive mode with
// trusted_schema off.
//
// Limits (those of Cloudflare's SQLite-backed Durable Objects where it has
// one), refused with dobj::Error(kInvalidArgument): a string or blob of at
// most kMaxSqlValueBytes, a query of at most kMaxSqlQueryBytes, at most
// kMaxSqlColumns columns in a table or result, kMaxSqlParams bound
// parameters, 32 arguments to a function, LIKE/GLOB patterns of 50 bytes, a
// result of at most kMaxSqlResultBytes (page with LIMIT). One exec runs at
// most the CPU limit of a turn (ServerOptions::cpu_limit): past it the query
// is interrupted, the turn's writes are rolled back and the object is reset,
// so an endless query holds its shard no longer than that.
//
// Thread affinity and lifetime: as Storage.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <type_traits>
#include <variant>
#include <vector>

#include "dobj/codec.h"

namespace dobj {

namespace internal {
class ObjectStore;
}

// One SQL value: NULL, INTEGER, REAL, TEXT or BLOB.
using SqlValue = std::variant<std::nullptr_t, int64_t, double, std::string, Bytes>;
using SqlRow = std::vector<SqlValue>;

class SqlCursor {
 public:
  const std::vector<std::string>& column_names() const { return columns_; }
  // Rows as arrays of values, in column order.
  const std::vector<SqlRow>& raw() const { return rows_; }
  // Rows as objects: column name → value.
  std::vector<std::map<std::string, SqlValue>> to_array() const;
  // The only row; throws dobj::Error(kInvalidArgument) unless there is exactly one.
  const SqlRow& one() const;
  size_t size() const { return rows_.size(); }
  auto begin() const { return rows_.begin(); }
  auto end() const { return rows_.end(); }
  // Rows the query visited (rows returned, rows scanned by full-table scans,
  // and rows it changed) and rows it inserted, updated or deleted.
  int64_t rows_read() const { return rows_read_; }
  int64_t rows_written() const { return rows_written_; }

 private:
  friend class internal::ObjectStore;
  std::vector<std::string> columns_;
  std::vector<SqlRow> rows_;
  int64_t rows_read_ = 0;
  int64_t rows_written_ = 0;
};

namespace internal {
inline SqlValue to_sql_value(std::nullptr_t) { return nullptr; }
inline SqlValue to_sql_value(bool v) { return int64_t{v ? 1 : 0}; }
template <typename T>
requires std::is_integral_v<T> SqlValue to_sql_value(T v) { return static_cast<int64_t>(v); }
inline SqlValue to_sql_value(double v) { return v; }
inline SqlValue to_sql_value(std::string_view v) { return std::string(v); }
inline SqlValue to_sql_value(const char* v) { return std::string(v); }
inline SqlValue to_sql_value(std::string v) { return v; }
inline SqlValue to_sql_value(Bytes v) { return v; }
inline SqlValue to_sql_value(SqlValue v) { return v; }
template <typename T>
SqlValue to_sql_value(const std::optional<T>& v) {
  return v ? to_sql_value(*v) : SqlValue(nullptr);
}
}  // namespace internal

inline constexpr int kMaxSqlValueBytes = 2'000'000;
inline constexpr int kMaxSqlQueryBytes = 100'000;
inline constexpr int kMaxSqlColumns = 100;
inline constexpr int kMaxSqlParams = 100;
inline constexpr size_t kMaxSqlResultBytes = 16 << 20;

class Sql {
 public:
  explicit Sql(internal::ObjectStore* store) : store_(store) {}

  template <typename... Args>
  SqlCursor exec(std::string_view query, Args&&... params) {
    return exec_values(query, {internal::to_sql_value(std::forward<Args>(params))...});
  }
  SqlCursor exec_values(std::string_view query, std::vector<SqlValue> params);
  // Bytes the object's database file uses (0 before its first write).
  int64_t database_size();

 private:
  internal::ObjectStore* store_;
};

}  // namespace dobj
