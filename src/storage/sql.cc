// An object's SQL session (ObjectStore): statement splitting, parameters,
// the authorizer, limits and errors; and the operator's reads (keys, tables,
// read-only queries). The public row and cursor types are in sql_rows.cc.
#include <strings.h>

#include <array>
#include <cmath>
#include <chrono>
#include <nlohmann/json.hpp>

#include "storage/object_store.h"

namespace dobj {
namespace internal {
namespace {

constexpr std::array<const char*, 13> kAllowedPragmas = {
    "data_version",  // read by FTS5 itself
    "table_info",         "table_xinfo",       "table_list",       "index_list",
    "index_info",         "index_xinfo",       "foreign_key_list", "foreign_keys",
    "defer_foreign_keys", "foreign_key_check", "quick_check",      "integrity_check"};

constexpr std::array<const char*, 7> kAdminPragmas = {
    "table_info", "table_xinfo", "table_list",      "index_list",
    "index_info", "index_xinfo", "foreign_key_list"};

constexpr std::array<const char*, 4> kDeniedFunctions = {
    "load_extension", "sqlite_compileoption_get", "sqlite_compileoption_used", "fts3_tokenizer"};

// A name as a quoted SQL identifier: "name", inner quotes doubled.
std::string quote_identifier(const std::string& name) {
  std::string out = "\"";
  for (char c : name) {
    out += c;
    if (c == '"') out += '"';
  }
  return out + "\"";
}

bool reserved(const char* name) { return name && strncasecmp(name, "_dobj_", 6) == 0; }

// Whitespace, semicolons and comments only: nothing left to execute.
bool only_trivia(const char* p, const char* end) {
  while (p < end) {
    if (isspace(static_cast<unsigned char>(*p)) || *p == ';') {
      ++p;
    } else if (p + 1 < end && p[0] == '-' && p[1] == '-') {
      while (p < end && *p != '\n') ++p;
    } else if (p + 1 < end && p[0] == '/' && p[1] == '*') {
      p += 2;
      while (p + 1 < end && !(p[0] == '*' && p[1] == '/')) ++p;
      p += 2;
    } else {
      return false;
    }
  }
  return true;
}

void bind(sqlite3_stmt* s, int i, const SqlValue& v) {
  std::visit(
      [&](const auto& x) {
        using T = std::decay_t<decltype(x)>;
        if constexpr (std::is_same_v<T, std::nullptr_t>) {
          sqlite3_bind_null(s, i);
        } else if constexpr (std::is_same_v<T, int64_t>) {
          sqlite3_bind_int64(s, i, x);
        } else if constexpr (std::is_same_v<T, double>) {
          sqlite3_bind_double(s, i, x);
        } else if constexpr (std::is_same_v<T, std::string>) {
          sqlite3_bind_text(s, i, x.data(), static_cast<int>(x.size()), SQLITE_TRANSIENT);
        } else {
          sqlite3_bind_blob(s, i, x.data(), static_cast<int>(x.size()), SQLITE_TRANSIENT);
        }
      },
      v);
}

SqlValue column(sqlite3_stmt* s, int i) {
  switch (sqlite3_column_type(s, i)) {
    case SQLITE_INTEGER:
      return static_cast<int64_t>(sqlite3_column_int64(s, i));
    case SQLITE_FLOAT:
      return sqlite3_column_double(s, i);
    case SQLITE_TEXT: {
      auto p = reinterpret_cast<const char*>(sqlite3_column_text(s, i));
      return std::string(p, static_cast<size_t>(sqlite3_column_bytes(s, i)));
    }
    case SQLITE_BLOB: {
      auto p = static_cast<const uint8_t*>(sqlite3_column_blob(s, i));
      return Bytes(p, p + sqlite3_column_bytes(s, i));
    }
    default:
      return nullptr;
  }
}

}  // namespace

namespace {

// Interrupts a statement once its deadline passed (SQLite calls it every
// kProgressSteps virtual-machine steps).
struct Budget {
  static constexpr int kProgressSteps = 1000;
  std::chrono::steady_clock::time_point deadline;
  bool expired = false;
  static int check(void* self) {
    auto* b = static_cast<Budget*>(self);
    if (std::chrono::steady_clock::now() < b->deadline) return 0;
    b->expired = true;
    return 1;
  }
};

class BudgetScope {
 public:
  BudgetScope(sqlite3* db, Budget* b) : db_(db) {
    sqlite3_progress_handler(db, Budget::kProgressSteps, &Budget::check, b);
  }
  ~BudgetScope() { sqlite3_progress_handler(db_, 0, nullptr, nullptr); }

 private:
  sqlite3* db_;
};

}  // namespace

void ObjectStore::limit_connection(sqlite3* db) {
  sqlite3_db_config(db, SQLITE_DBCONFIG_DEFENSIVE, 1, nullptr);
  sqlite3_db_config(db, SQLITE_DBCONFIG_TRUSTED_SCHEMA, 0, nullptr);
  sqlite3_db_config(db, SQLITE_DBCONFIG_ENABLE_TRIGGER, 1, nullptr);
  sqlite3_limit(db, SQLITE_LIMIT_LENGTH, kMaxSqlValueBytes);
  sqlite3_limit(db, SQLITE_LIMIT_SQL_LENGTH, kMaxSqlQueryBytes);
  sqlite3_limit(db, SQLITE_LIMIT_COLUMN, kMaxSqlColumns);
  sqlite3_limit(db, SQLITE_LIMIT_VARIABLE_NUMBER, kMaxSqlParams);
  sqlite3_limit(db, SQLITE_LIMIT_FUNCTION_ARG, 32);
  sqlite3_limit(db, SQLITE_LIMIT_LIKE_PATTERN_LENGTH, 50);
  sqlite3_limit(db, SQLITE_LIMIT_EXPR_DEPTH, 1000);
  sqlite3_limit(db, SQLITE_LIMIT_COMPOUND_SELECT, 500);
  sqlite3_limit(db, SQLITE_LIMIT_TRIGGER_DEPTH, 100);
  sqlite3_limit(db, SQLITE_LIMIT_ATTACHED, 0);
}

int ObjectStore::authorize(void* self, int action, const char* a1, const char* a2, const char*,
                           const char* inner) {
  auto* store = static_cast<ObjectStore*>(self);
  // `inner` names the trigger or view the action comes from. The runtime's
  // schema has none, so such code is the object's, and it is checked even
  // inside the runtime's own statements (a user trigger fired by a cascade
  // from _dobj_kv must not write _dobj_kv).
  if (store->authorizing_ == Authorize::kOff && !inner) return SQLITE_OK;
  auto deny = [&](std::string why) {
    store->deny_reason_ = std::move(why);
    return SQLITE_DENY;
  };
  if (store->authorizing_ == Authorize::kAdminRead && !inner) {
    switch (action) {
      case SQLITE_SELECT:
      case SQLITE_READ:
      case SQLITE_RECURSIVE:
        return SQLITE_OK;
      case SQLITE_FUNCTION:
        break;  // checked below like the object's own SQL
      case SQLITE_PRAGMA:
        // Introspection only, and never with an argument that sets something.
        for (const char* p : kAdminPragmas) {
          if (a1 && strcasecmp(a1, p) == 0) return SQLITE_OK;
        }
        return deny(std::string("PRAGMA ") + (a1 ? a1 : "") +
                    " is not allowed in a read-only query");
      default:
        return deny(
            "read-only: the admin query may only read (SELECT, WITH, and introspection "
            "PRAGMAs)");
    }
  }
  switch (action) {
    case SQLITE_TRANSACTION:
      return deny("BEGIN, COMMIT and ROLLBACK are not allowed in SQL; use storage().transaction()");
    case SQLITE_SAVEPOINT:
      return deny("SAVEPOINT and RELEASE are not allowed in SQL; use storage().transaction()");
    case SQLITE_ATTACH:
    case SQLITE_DETACH:
      return deny("ATTACH and DETACH are not allowed");
    case SQLITE_CREATE_TEMP_INDEX:
    case SQLITE_CREATE_TEMP_TABLE:
    case SQLITE_CREATE_TEMP_TRIGGER:
    case SQLITE_CREATE_TEMP_VIEW:
    case SQLITE_DROP_TEMP_INDEX:
    case SQLITE_DROP_TEMP_TABLE:
    case SQLITE_DROP_TEMP_TRIGGER:
    case SQLITE_DROP_TEMP_VIEW:
      return deny("temporary tables, views, indexes and triggers are not allowed");
    case SQLITE_PRAGMA: {
      for (const char* p : kAllowedPragmas) {
        if (a1 && strcasecmp(a1, p) == 0) {
          if (reserved(a2)) return deny("names starting with _dobj_ are reserved for the runtime");
          return SQLITE_OK;
        }
      }
      return deny(std::string("PRAGMA ") + (a1 ? a1 : "") + " is not allowed");
    }
    case SQLITE_FUNCTION:
      for (const char* f : kDeniedFunctions) {
        if (a2 && strcasecmp(a2, f) == 0)
          return deny(std::string("function ") + f + " is not allowed");
      }
      return SQLITE_OK;
    default:
      if (reserved(a1) || reserved(a2)) {
        return deny("names starting with _dobj_ are reserved for the runtime");
      }
      return SQLITE_OK;
  }
}

void ObjectStore::fail_sql(int rc) {
  int primary = rc & 0xff;
  std::string message = db_.is_open() ? sqlite3_errmsg(db_.get()) : sqlite3_errstr(rc);
  // A denied function comes back as a plain error: "not authorized to use function: f".
  if (primary == SQLITE_AUTH ||
      (!deny_reason_.empty() && message.rfind("not authorized", 0) == 0)) {
    throw Error(Code::kInvalidArgument, deny_reason_.empty() ? message : deny_reason_);
  }
  if (primary == SQLITE_FULL || primary == SQLITE_IOERR || primary == SQLITE_CORRUPT ||
      primary == SQLITE_NOMEM || primary == SQLITE_CANTOPEN || primary == SQLITE_NOTADB) {
    // SQLite may have rolled back the whole transaction: the turn is lost.
    bool full = primary == SQLITE_FULL;
    if (in_txn_) mark_broken("storage failure: " + message, full);
    throw Error(full ? Code::kStorageFull : Code::kInternal, "storage failure: " + message);
  }
  throw Error(Code::kInvalidArgument, message);
}

SqlCursor ObjectStore::exec_sql(std::string_view query, const std::vector<SqlValue>& params) {
  if (env_->counters) {
    ++env_->counters->reads;
    ++env_->counters->sql;
  }
  ensure_open(/*create=*/true);
  struct AuthorizerScope {
    ObjectStore* store;
    explicit AuthorizerScope(ObjectStore* s) : store(s) {
      store->deny_reason_.clear();
      store->authorizing_ = Authorize::kUser;
    }
    ~AuthorizerScope() { store->authorizing_ = Authorize::kOff; }
  } auth(this);

  // SQLite stops reading at a NUL byte and would make no progress past it.
  if (query.find('\0') != std::string_view::npos) {
    throw Error(Code::kInvalidArgument, "the query contains a NUL character");
  }
  SqlCursor cursor;
  const int64_t changes_before = sqlite3_total_changes64(db_.get());
  const char* p = query.data();
  const char* end = p + query.size();
  int index = 0;
  std::string key(query);
  // Pre-emptive CPU limit: the query is interrupted at its deadline.
  Budget budget{std::chrono::steady_clock::now() + env_->sql_time_limit};
  std::optional<BudgetScope> budget_scope;
  if (env_->sql_time_limit.count() > 0) budget_scope.emplace(db_.get(), &budget);
  // Several statements are one exec: a failure in any undoes what those
  // before it wrote. A single statement is atomic by itself.
  bool several = false;
  bool savepoint = false;
  size_t result_bytes = 0;
  try {
    while (p < end && !only_trivia(p, end)) {
      sqlite3_stmt* raw = nullptr;
      Stmt owned;
      Stmt* statement = &owned;
      bool last;
      if (!sql_cache_) sql_cache_ = std::make_unique<std::unordered_map<std::string, Stmt>>();
      auto cached = index == 0 ? sql_cache_->find(key) : sql_cache_->end();
      if (cached != sql_cache_->end()) {
        statement = &cached->second;  // reset when its last use ended
        p = end;
        last = true;
      } else {
        const char* next = nullptr;
        int rc = sqlite3_prepare_v3(db_.get(), p, static_cast<int>(end - p),
                                    SQLITE_PREPARE_PERSISTENT, &raw, &next);
        if (rc != SQLITE_OK) fail_sql(rc);
        if (!raw) {
          if (next <= p) break;  // nothing more SQLite can read
          p = next;
          continue;
        }
        last = only_trivia(next, end);
        if (!last) several = true;
        if (index == 0 && last) {
          // The whole query is this one statement: keep it prepared.
          if (sql_cache_->size() >= kSqlCacheSize) sql_cache_->clear();
          statement = &sql_cache_->emplace(key, Stmt(raw)).first->second;
        } else {
          owned = Stmt(raw);
        }
        p = next;
      }
      ++index;
      StmtUse use(statement);  // reset when done: an open read blocks checkpoints
      raw = statement->get();
      int wanted = sqlite3_bind_parameter_count(raw);
      if (!last && wanted > 0) {
        throw Error(Code::kInvalidArgument, "statement " + std::to_string(index) +
                                                " uses parameters; in a query of several "
                                                "statements only the last one may");
      }
      if (last) {
        if (static_cast<size_t>(wanted) != params.size()) {
          throw Error(Code::kInvalidArgument, "the query has " + std::to_string(wanted) +
                                                  " parameters but " +
                                                  std::to_string(params.size()) + " were given");
        }
        for (int i = 0; i < wanted; ++i) bind(raw, i + 1, params[static_cast<size_t>(i)]);
      }
      if (!sqlite3_stmt_readonly(raw)) {
        // The runtime's own statements (BEGIN, its schema) are not the user's:
        // they run without the authorizer.
        authorizing_ = Authorize::kOff;
        begin_write();
        if (several && !savepoint) {
          begin_savepoint();
          savepoint = true;
        }
        authorizing_ = Authorize::kUser;
      }
      if (last) {
        cursor.columns_ = std::make_shared<std::vector<std::string>>();
        int n = sqlite3_column_count(raw);
        for (int i = 0; i < n; ++i) cursor.columns_->emplace_back(sqlite3_column_name(raw, i));
      }
      int rc;
      while ((rc = sqlite3_step(raw)) == SQLITE_ROW) {
        ++cursor.rows_read_;
        if (!last) continue;
        std::vector<SqlValue> row;
        int n = sqlite3_column_count(raw);
        row.reserve(static_cast<size_t>(n));
        for (int i = 0; i < n; ++i) {
          row.push_back(column(raw, i));
          result_bytes += sizeof(SqlValue) + static_cast<size_t>(sqlite3_column_bytes(raw, i));
        }
        cursor.rows_.emplace_back(std::move(row), cursor.columns_);
        if (result_bytes > kMaxSqlResultBytes) {
          throw Error(Code::kInvalidArgument, "the result is larger than " +
                                                  std::to_string(kMaxSqlResultBytes >> 20) +
                                                  " MiB; page through it with LIMIT");
        }
      }
      if (rc == SQLITE_INTERRUPT && budget.expired) {
        // A write interrupted inside the turn's transaction rolls all of it back.
        if (in_txn_) mark_broken("the query was interrupted");
        throw Error(Code::kInvalidArgument, "the query ran past the CPU limit of " +
                                                std::to_string(env_->sql_time_limit.count()) +
                                                " ms and was interrupted");
      }
      if (rc != SQLITE_DONE) fail_sql(rc);
      cursor.rows_read_ += sqlite3_stmt_status(raw, SQLITE_STMTSTATUS_FULLSCAN_STEP, /*reset=*/1);
    }
  } catch (...) {
    if (savepoint && !broken_) {
      authorizing_ = Authorize::kOff;
      try {
        end_savepoint(/*commit=*/false);
      } catch (const Error&) {
        // end_savepoint marked the store broken: the turn is lost anyway.
      }
    }
    throw;
  }
  if (savepoint) {
    authorizing_ = Authorize::kOff;
    end_savepoint(/*commit=*/true);
  }
  cursor.rows_written_ = sqlite3_total_changes64(db_.get()) - changes_before;
  cursor.rows_read_ += cursor.rows_written_;
  return cursor;
}

int64_t ObjectStore::database_size() {
  if (!ensure_open(false)) return 0;
  StmtUse s = stmt("SELECT page_count * page_size FROM pragma_page_count(), pragma_page_size()");
  return s->step() == SQLITE_ROW ? s->column_int(0) : 0;
}

void ObjectStore::drop_user_schema() {
  std::vector<std::pair<std::string, std::string>> objects;
  {
    StmtUse s = stmt(
        "SELECT type, name FROM sqlite_schema WHERE type IN ('table', 'view') "
        "AND name NOT LIKE '\\_dobj\\_%' ESCAPE '\\' AND name NOT LIKE 'sqlite\\_%' ESCAPE '\\'");
    while (s->step() == SQLITE_ROW) {
      objects.emplace_back(std::string(s->column_blob(0)), std::string(s->column_blob(1)));
    }
  }
  if (objects.empty()) return;
  if (Status st = db_.exec("PRAGMA defer_foreign_keys=ON"); !st) {
    mark_broken(st.message());
    throw Error(st);
  }
  for (const auto& [type, name] : objects) {
    std::string sql = (type == "view" ? "DROP VIEW IF EXISTS " : "DROP TABLE IF EXISTS ") +
                      quote_identifier(name);
    if (Status st = db_.exec(sql.c_str()); !st) {
      mark_broken(st.message());
      throw Error(st);
    }
  }
}

ObjectStore::AdminRows ObjectStore::admin_query(std::string_view query, size_t max_rows,
                                                int budget_ms) {
  AdminRows out;
  if (!ensure_open(false)) {
    // No file: the object stored nothing. Run the query on an empty schema
    // would need one; say so instead.
    throw Error(Code::kNotFound, "the object has no storage");
  }
  deny_reason_.clear();
  authorizing_ = Authorize::kAdminRead;
  sqlite3_stmt* raw = nullptr;
  const char* next = nullptr;
  int rc = sqlite3_prepare_v2(db_.get(), query.data(), static_cast<int>(query.size()), &raw, &next);
  authorizing_ = Authorize::kOff;
  Stmt owned(raw);
  if (rc != SQLITE_OK) fail_sql(rc);
  if (!raw) throw Error(Code::kInvalidArgument, "the query is empty");
  if (!only_trivia(next, query.data() + query.size())) {
    throw Error(Code::kInvalidArgument, "one statement at a time");
  }
  if (!sqlite3_stmt_readonly(raw))
    throw Error(Code::kInvalidArgument, "read-only: the query writes");
  if (sqlite3_bind_parameter_count(raw) > 0) {
    throw Error(Code::kInvalidArgument, "the query has parameters; write the values in it");
  }
  int n = sqlite3_column_count(raw);
  for (int i = 0; i < n; ++i) out.columns.emplace_back(sqlite3_column_name(raw, i));
  Budget budget{std::chrono::steady_clock::now() + std::chrono::milliseconds(budget_ms)};
  BudgetScope scope(db_.get(), &budget);
  while ((rc = sqlite3_step(raw)) == SQLITE_ROW) {
    if (out.rows.size() == max_rows) {
      out.truncated = true;
      break;
    }
    std::vector<SqlValue> row;
    row.reserve(static_cast<size_t>(n));
    for (int i = 0; i < n; ++i) row.push_back(column(raw, i));
    out.rows.push_back(std::move(row));
  }
  if (budget.expired) {
    throw Error(Code::kInvalidArgument, "the query ran past its budget of " +
                                            std::to_string(budget_ms) +
                                            " ms (it would hold up the object); narrow it");
  }
  if (rc != SQLITE_ROW && rc != SQLITE_DONE) fail_sql(rc);
  return out;
}

std::vector<ObjectStore::TableInfo> ObjectStore::admin_tables() {
  std::vector<TableInfo> out;
  if (!ensure_open(false)) return out;
  {
    StmtUse s = stmt(
        "SELECT name, type, sql FROM sqlite_schema WHERE type IN ('table', 'view') "
        "AND name NOT LIKE 'sqlite\\_%' ESCAPE '\\' ORDER BY name");
    while (s->step() == SQLITE_ROW) {
      out.push_back({std::string(s->column_blob(0)), std::string(s->column_blob(1)),
                     std::string(s->column_blob(2)), std::nullopt});
    }
  }
  // Row counts within one shared budget: a huge table is shown without one.
  Budget budget{std::chrono::steady_clock::now() + std::chrono::milliseconds(20)};
  BudgetScope scope(db_.get(), &budget);
  for (TableInfo& t : out) {
    if (t.type != "table" || budget.expired) continue;
    std::string sql = "SELECT count(*) FROM " + quote_identifier(t.name);
    sqlite3_stmt* raw = nullptr;
    if (sqlite3_prepare_v2(db_.get(), sql.c_str(), -1, &raw, nullptr) != SQLITE_OK) continue;
    Stmt owned(raw);
    if (sqlite3_step(raw) == SQLITE_ROW) t.rows = sqlite3_column_int64(raw, 0);
  }
  return out;
}

std::vector<std::pair<std::string, std::string>> ObjectStore::admin_keys(
    const std::optional<std::string>& after, int limit) {
  std::vector<std::pair<std::string, std::string>> out;
  if (!ensure_open(false)) return out;
  StmtUse s = stmt(after ? "SELECT key, value FROM _dobj_kv WHERE key > ?1 ORDER BY key LIMIT ?2"
                         : "SELECT key, value FROM _dobj_kv ORDER BY key LIMIT ?2");
  if (after) s->bind_blob(1, *after);
  s->bind_int(2, limit);
  while (s->step() == SQLITE_ROW) {
    out.emplace_back(std::string(s->column_blob(0)), std::string(s->column_blob(1)));
  }
  return out;
}

Task<void> ObjectStore::sync() {
  if (!owner_) throw Error(Code::kInternal, "sync() is only available inside an object");
  return owner_->sync();
}

}  // namespace internal
}  // namespace dobj
