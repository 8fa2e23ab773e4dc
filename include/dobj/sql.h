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
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <variant>
#include <vector>

#include "dobj/codec.h"

namespace dobj {

namespace internal {
struct ApiAccess;
class ObjectStore;
}

// One SQL value: NULL, INTEGER, REAL, TEXT or BLOB.
using SqlValue = std::variant<std::nullptr_t, int64_t, double, std::string, Bytes>;

// "NULL", "INTEGER", "REAL", "TEXT" or "BLOB".
const char* sql_type_name(const SqlValue& v);
// The value as JSON: NULL null, numbers as numbers (a non-finite REAL as
// null), TEXT a string, a BLOB an array of its bytes. (A template only so that
// Json need be complete just where this is called: to_json(v) as usual.)
template <typename J = Json>
J to_json(const SqlValue& v);
template <>
Json to_json<Json>(const SqlValue& v);

namespace internal {
[[noreturn]] void throw_sql_column_error(const std::vector<std::string>* columns, size_t i,
                                         const SqlValue& v, std::string_view wanted);
template <typename T>
struct IsOptional : std::false_type {};
template <typename T>
struct IsOptional<std::optional<T>> : std::true_type {};
}  // namespace internal

// One row of a result: its values in column order, read as a vector of
// SqlValue (row[i], size(), range for) or typed, by index or column name:
//
//   int64_t n = row.get<int64_t>(0);
//   std::optional<std::string> note = row.get<std::optional<std::string>>("note");
//
// get<T> takes integer types (from INTEGER, range-checked), double (REAL or
// INTEGER), bool (INTEGER), std::string (TEXT), Bytes (BLOB), SqlValue (any),
// Json (any, as to_json) and std::optional of those (NULL gives nullopt).
// Anything else, and NULL read as a type that is not optional, throws
// dobj::Error(kInvalidArgument) naming the column and the type it holds:
//   column "note" (1) is NULL, not TEXT (read it as std::optional)
class SqlRow {
 public:
  SqlRow() = default;
  SqlRow(std::vector<SqlValue> values, std::shared_ptr<const std::vector<std::string>> columns)
      : values_(std::move(values)), columns_(std::move(columns)) {}

  size_t size() const { return values_.size(); }
  bool empty() const { return values_.empty(); }
  const SqlValue& operator[](size_t i) const { return values_[i]; }
  auto begin() const { return values_.begin(); }
  auto end() const { return values_.end(); }
  const std::vector<SqlValue>& values() const { return values_; }

  // Throws dobj::Error(kInvalidArgument) for an index or name out of range.
  template <typename T>
  T get(size_t i) const {
    if (i >= values_.size()) {
      throw Error(Code::kInvalidArgument, "no column " + std::to_string(i) + " in a row of " +
                                              std::to_string(values_.size()));
    }
    return convert<T>(i);
  }
  template <typename T>
  T get(std::string_view column) const {
    return get<T>(index_of(column));
  }
  size_t index_of(std::string_view column) const;
  // {"column": value, ...}, values as to_json.
  Json to_json() const;

 private:
  template <typename T>
  T convert(size_t i) const {
    const SqlValue& v = values_[i];
    if constexpr (internal::IsOptional<T>::value) {
      if (std::holds_alternative<std::nullptr_t>(v)) return std::nullopt;
      return convert<typename T::value_type>(i);
    } else if constexpr (std::is_same_v<T, SqlValue>) {
      return v;
    } else if constexpr (std::is_same_v<T, Json>) {
      return dobj::to_json<T>(v);
    } else if constexpr (std::is_same_v<T, bool>) {
      if (const int64_t* x = std::get_if<int64_t>(&v)) return *x != 0;
      internal::throw_sql_column_error(columns_.get(), i, v, "INTEGER");
    } else if constexpr (std::is_integral_v<T>) {
      if (const int64_t* x = std::get_if<int64_t>(&v)) {
        if (std::in_range<T>(*x)) return static_cast<T>(*x);
        internal::throw_sql_column_error(columns_.get(), i, v, "an integer that fits");
      }
      internal::throw_sql_column_error(columns_.get(), i, v, "INTEGER");
    } else if constexpr (std::is_floating_point_v<T>) {
      if (const double* x = std::get_if<double>(&v)) return static_cast<T>(*x);
      if (const int64_t* x = std::get_if<int64_t>(&v)) return static_cast<T>(*x);
      internal::throw_sql_column_error(columns_.get(), i, v, "REAL");
    } else if constexpr (std::is_same_v<T, std::string>) {
      if (const std::string* x = std::get_if<std::string>(&v)) return *x;
      internal::throw_sql_column_error(columns_.get(), i, v, "TEXT");
    } else if constexpr (std::is_same_v<T, Bytes>) {
      if (const Bytes* x = std::get_if<Bytes>(&v)) return *x;
      internal::throw_sql_column_error(columns_.get(), i, v, "BLOB");
    } else {
      static_assert(internal::IsOptional<T>::value, "dobj: SqlRow::get<T> takes integers, "
                    "double, bool, std::string, Bytes, SqlValue, Json or std::optional of them");
    }
  }

  std::vector<SqlValue> values_;
  std::shared_ptr<const std::vector<std::string>> columns_;
};

class SqlCursor {
 public:
  const std::vector<std::string>& column_names() const;
  // Rows as arrays of values, in column order.
  const std::vector<SqlRow>& raw() const { return rows_; }
  // Rows as objects: column name → value.
  std::vector<std::map<std::string, SqlValue>> to_array() const;
  // [{"column": value, ...}, ...], values as to_json.
  Json to_json() const;
  // The only row; throws dobj::Error(kInvalidArgument) unless there is exactly one.
  const SqlRow& one() const;
  // The only value of the only row, as row.get<T>(0) reads it:
  //   int64_t n = sql.exec("SELECT count(*) FROM t").one<int64_t>();
  // Throws dobj::Error(kInvalidArgument) unless there is exactly one row and
  // one column.
  template <typename T>
  T one() const {
    const SqlRow& row = one();
    if (row.size() != 1) {
      throw Error(Code::kInvalidArgument,
                  "expected one column, got " + std::to_string(row.size()));
    }
    return row.get<T>(0);
  }
  size_t size() const { return rows_.size(); }
  bool empty() const { return rows_.empty(); }
  auto begin() const { return rows_.begin(); }
  auto end() const { return rows_.end(); }
  // Rows the query visited (rows returned, rows scanned by full-table scans,
  // and rows it changed) and rows it inserted, updated or deleted.
  int64_t rows_read() const { return rows_read_; }
  int64_t rows_written() const { return rows_written_; }

 private:
  friend class internal::ObjectStore;
  std::shared_ptr<std::vector<std::string>> columns_;
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
  template <typename... Args>
  SqlCursor exec(std::string_view query, Args&&... params) {
    return exec_values(query, {internal::to_sql_value(std::forward<Args>(params))...});
  }
  SqlCursor exec_values(std::string_view query, std::vector<SqlValue> params);
  // Bytes the object's database file uses (0 before its first write).
  int64_t database_size();

 private:
  friend class Storage;
  explicit Sql(internal::ObjectStore* store) : store_(store) {}
  internal::ObjectStore* store_;
};

}  // namespace dobj
