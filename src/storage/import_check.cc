#include "storage/import_check.h"

#include <sqlite3.h>

#include <memory>
#include <set>
#include <string>
#include <vector>

#include "storage/object_store.h"

namespace dobj::internal {

namespace {

// The first n columns of the statement's current row, as text.
std::vector<std::string> text_columns(sqlite3_stmt* s, int n) {
  std::vector<std::string> row;
  for (int i = 0; i < n; ++i) {
    auto t = sqlite3_column_text(s, i);
    row.emplace_back(t ? reinterpret_cast<const char*>(t) : "");
  }
  return row;
}

}  // namespace

Status check_importable_database(const std::string& path) {
  sqlite3* db = nullptr;
  int rc = sqlite3_open_v2(path.c_str(), &db, SQLITE_OPEN_READONLY, "unix-none");
  std::unique_ptr<sqlite3, int (*)(sqlite3*)> owner(db, sqlite3_close);
  if (rc != SQLITE_OK) return Status(Code::kInvalidArgument, "not a SQLite database");
  auto one = [&](const char* sql, std::string* out) -> int {
    sqlite3_stmt* s = nullptr;
    int r = sqlite3_prepare_v2(db, sql, -1, &s, nullptr);
    if (r != SQLITE_OK) return r;
    r = sqlite3_step(s);
    if (r == SQLITE_ROW && out) {
      auto t = sqlite3_column_text(s, 0);
      *out = t ? reinterpret_cast<const char*>(t) : "";
    }
    sqlite3_finalize(s);
    return r == SQLITE_ROW || r == SQLITE_DONE ? SQLITE_OK : r;
  };
  std::string check;
  if (one("PRAGMA quick_check", &check) != SQLITE_OK) {
    return Status(Code::kInvalidArgument,
                  std::string("not a usable SQLite database: ") + sqlite3_errmsg(db));
  }
  if (check != "ok") return Status(Code::kInvalidArgument, "the database is damaged: " + check);
  // The runtime's tables must be exactly as the runtime makes them, and
  // nothing else may touch them: a trigger on _dobj_kv (or one whose body
  // names a _dobj_ table), an index, a view named like them, would run or be
  // read inside the runtime's own statements after the import.
  std::set<std::vector<std::string>> allowed;
  {
    std::vector<std::string> schemas = ObjectStore::earlier_runtime_schemas();
    schemas.push_back(ObjectStore::runtime_schema());
    schemas.push_back(std::string(ObjectStore::runtime_schema()) + ObjectStore::history_schema());
    for (const std::string& h : ObjectStore::earlier_history_schemas()) {
      schemas.push_back(std::string(ObjectStore::runtime_schema()) + h);
    }
    schemas.push_back(ObjectStore::restore_schema());
    for (const std::string& schema : schemas) {
      sqlite3* mem = nullptr;
      sqlite3_open(":memory:", &mem);
      std::unique_ptr<sqlite3, int (*)(sqlite3*)> mem_owner(mem, sqlite3_close);
      if (sqlite3_exec(mem, schema.c_str(), nullptr, nullptr, nullptr) != SQLITE_OK) {
        return Status(Code::kInternal, "cannot make the runtime's schema to compare with");
      }
      sqlite3_stmt* s = nullptr;
      sqlite3_prepare_v2(mem, "SELECT type, name, tbl_name, sql FROM sqlite_schema", -1, &s, nullptr);
      while (s && sqlite3_step(s) == SQLITE_ROW) allowed.insert(text_columns(s, 4));
      sqlite3_finalize(s);
    }
  }
  sqlite3_stmt* s = nullptr;
  if (sqlite3_prepare_v2(db,
                         "SELECT type, name, tbl_name, sql FROM sqlite_schema WHERE "
                         "name LIKE '\\_dobj\\_%' ESCAPE '\\' OR tbl_name LIKE '\\_dobj\\_%' ESCAPE '\\' "
                         "OR (type = 'trigger' AND sql LIKE '%\\_dobj\\_%' ESCAPE '\\')",
                         -1, &s, nullptr) != SQLITE_OK) {
    return Status(Code::kInvalidArgument,
                  std::string("cannot read the database's schema: ") + sqlite3_errmsg(db));
  }
  std::unique_ptr<sqlite3_stmt, int (*)(sqlite3_stmt*)> s_owner(s, sqlite3_finalize);
  while (sqlite3_step(s) == SQLITE_ROW) {
    std::vector<std::string> row = text_columns(s, 4);
    if (!allowed.count(row)) {
      return Status(Code::kInvalidArgument,
                    "the database's " + row[0] + " " + row[1] +
                        " is not the runtime's: _dobj_ tables must be exactly as dobj makes "
                        "them, with no triggers, indexes or views on or naming them");
    }
  }
  return Status::ok();
}

}  // namespace dobj::internal
