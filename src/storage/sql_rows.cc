// The public SQL types (include/dobj/sql.h): rows and cursors read typed or
// as JSON, and Sql's calls into the object's store.
#include <nlohmann/json.hpp>

#include "dobj/sql.h"
#include "storage/object_store.h"

namespace dobj {

const char* sql_type_name(const SqlValue& v) {
  static const char* kNames[] = {"NULL", "INTEGER", "REAL", "TEXT", "BLOB"};
  return kNames[v.index()];
}

template <>
Json to_json<Json>(const SqlValue& v) {
  if (const int64_t* x = std::get_if<int64_t>(&v)) return *x;
  if (const double* x = std::get_if<double>(&v)) return std::isfinite(*x) ? Json(*x) : Json();
  if (const std::string* x = std::get_if<std::string>(&v)) return *x;
  if (const Bytes* x = std::get_if<Bytes>(&v)) return Json(std::vector<int>(x->begin(), x->end()));
  return nullptr;
}

namespace internal {
void throw_sql_column_error(const std::vector<std::string>* columns, size_t i, const SqlValue& v,
                            std::string_view wanted) {
  std::string name = columns && i < columns->size() ? "\"" + (*columns)[i] + "\" " : "";
  std::string message = "column " + name + "(" + std::to_string(i) + ") is " +
                        sql_type_name(v) + ", not " + std::string(wanted);
  if (std::holds_alternative<std::nullptr_t>(v)) message += " (read it as std::optional)";
  throw Error(Code::kInvalidArgument, message);
}
}  // namespace internal

size_t SqlRow::index_of(std::string_view column) const {
  if (columns_) {
    for (size_t i = 0; i < columns_->size(); ++i) {
      if ((*columns_)[i] == column) return i;
    }
  }
  throw Error(Code::kInvalidArgument, "no column \"" + std::string(column) + "\" in the result");
}

Json SqlRow::to_json() const {
  Json out = Json::object();
  for (size_t i = 0; i < values_.size(); ++i) {
    std::string name = columns_ && i < columns_->size() ? (*columns_)[i] : std::to_string(i);
    out[name] = dobj::to_json(values_[i]);
  }
  return out;
}

const std::vector<std::string>& SqlCursor::column_names() const {
  static const std::vector<std::string> kNone;
  return columns_ ? *columns_ : kNone;
}

std::vector<std::map<std::string, SqlValue>> SqlCursor::to_array() const {
  std::vector<std::map<std::string, SqlValue>> out;
  out.reserve(rows_.size());
  const auto& names = column_names();
  for (const auto& row : rows_) {
    std::map<std::string, SqlValue> obj;
    for (size_t i = 0; i < names.size() && i < row.size(); ++i) obj[names[i]] = row[i];
    out.push_back(std::move(obj));
  }
  return out;
}

Json SqlCursor::to_json() const {
  Json out = Json::array();
  for (const auto& row : rows_) out.push_back(row.to_json());
  return out;
}

const SqlRow& SqlCursor::one() const {
  if (rows_.size() != 1) {
    throw Error(Code::kInvalidArgument,
                "expected exactly one row, got " + std::to_string(rows_.size()));
  }
  return rows_[0];
}

SqlCursor Sql::exec_values(std::string_view query, std::vector<SqlValue> params) {
  return store_->exec_sql(query, params);
}

int64_t Sql::database_size() { return store_->database_size(); }

}  // namespace dobj
