#include "dobj/sql.h"

#include <gtest/gtest.h>
#include <sqlite3.h>

#include "runtime/api_access.h"
#include "storage/object_store.h"
#include "support/errors.h"
#include "support/server_process.h"

namespace dobj::internal {
namespace {

class SqlTest : public ::testing::Test {
 protected:
  void SetUp() override {
    store_ = std::make_unique<ObjectStore>(StoreEnv{&commits_, &open_dbs_, nullptr, max_bytes_},
                                           dir_.path() + "/ns/ab", "obj.sqlite");
    storage_ = std::make_unique<Storage>(internal::ApiAccess::storage(store_.get()));
  }
  Sql& sql() { return storage_->sql(); }
  std::string refusal(std::string_view query) {
    try {
      (void)sql().exec(query);
    } catch (const Error& e) {
      EXPECT_EQ(e.code(), Code::kInvalidArgument) << query;
      return e.what();
    }
    ADD_FAILURE() << "not refused: " << query;
    return "";
  }

  test::TempDir dir_;
  GroupCommit commits_{nullptr, [](std::function<void()> f) { f(); }};
  DbCache open_dbs_{4};
  int64_t max_bytes_ = 0;
  std::unique_ptr<ObjectStore> store_;
  std::unique_ptr<Storage> storage_;
};

TEST_F(SqlTest, RowsColumnsAndCounts) {
  sql().exec("CREATE TABLE t(id INTEGER PRIMARY KEY, name TEXT, score REAL, data BLOB)");
  auto ins = sql().exec("INSERT INTO t(name, score, data) VALUES (?, ?, ?), (?, ?, ?)", "a", 1.5,
                        Bytes{1, 2}, "b", nullptr, std::optional<Bytes>());
  EXPECT_EQ(ins.rows_written(), 2);
  auto c = sql().exec("SELECT id, name, score, data FROM t ORDER BY id");
  EXPECT_EQ(c.column_names(), (std::vector<std::string>{"id", "name", "score", "data"}));
  ASSERT_EQ(c.size(), 2u);
  EXPECT_EQ(std::get<int64_t>(c.raw()[0][0]), 1);
  EXPECT_EQ(std::get<std::string>(c.raw()[0][1]), "a");
  EXPECT_EQ(std::get<double>(c.raw()[0][2]), 1.5);
  EXPECT_EQ(std::get<Bytes>(c.raw()[0][3]), (Bytes{1, 2}));
  EXPECT_TRUE(std::holds_alternative<std::nullptr_t>(c.raw()[1][2]));
  EXPECT_EQ(std::get<std::string>(c.to_array()[1]["name"]), "b");
  EXPECT_GE(c.rows_read(), 2);
  EXPECT_EQ(c.rows_written(), 0);
}

TEST_F(SqlTest, OneInsistsOnExactlyOneRow) {
  sql().exec("CREATE TABLE t(x)");
  EXPECT_THROW((void)sql().exec("SELECT x FROM t").one(), Error);
  sql().exec("INSERT INTO t VALUES (7)");
  EXPECT_EQ(std::get<int64_t>(sql().exec("SELECT x FROM t").one()[0]), 7);
  sql().exec("INSERT INTO t VALUES (8)");
  EXPECT_THROW((void)sql().exec("SELECT x FROM t").one(), Error);
}

TEST_F(SqlTest, RowsReadTypedByIndexAndNameWithNullAsOptional) {
  sql().exec("CREATE TABLE t(id INTEGER PRIMARY KEY, name TEXT, score REAL, data BLOB, n INTEGER)");
  sql().exec("INSERT INTO t(name, score, data, n) VALUES ('a', 1.5, x'0102', 5000000000)");
  sql().exec("INSERT INTO t(name, score, data, n) VALUES (NULL, 2, NULL, -1)");
  auto c = sql().exec("SELECT id, name, score, data, n FROM t ORDER BY id");
  const SqlRow& a = c.raw()[0];
  EXPECT_EQ(a.get<int64_t>("id"), 1);
  EXPECT_EQ(a.get<std::string>(1), "a");
  EXPECT_EQ(a.get<double>("score"), 1.5);
  EXPECT_EQ(a.get<Bytes>("data"), (Bytes{1, 2}));
  EXPECT_EQ(a.get<std::optional<std::string>>("name"), "a");
  const SqlRow& b = c.raw()[1];
  EXPECT_EQ(b.get<std::optional<std::string>>("name"), std::nullopt);
  EXPECT_EQ(b.get<double>("score"), 2.0);  // stored as REAL 2.0
  EXPECT_EQ(b.get<int32_t>("n"), -1);
  EXPECT_EQ(a.to_json(), (Json{{"id", 1}, {"name", "a"}, {"score", 1.5}, {"data", {1, 2}},
                               {"n", 5000000000}}));
  EXPECT_EQ(c.to_json()[1]["name"], nullptr);
  EXPECT_EQ(sql().exec("SELECT count(*) FROM t").one<int64_t>(), 2);
  EXPECT_EQ(sql().exec("SELECT max(n) FROM t WHERE id > 5").one<std::optional<int64_t>>(),
            std::nullopt);
}

// A wrong type, a NULL or a value out of range names the column and what it
// holds, instead of std::get's "wrong index for variant".
TEST_F(SqlTest, TypedReadsThatDoNotFitNameTheColumnAndItsType) {
  sql().exec("CREATE TABLE t(name TEXT, n INTEGER)");
  sql().exec("INSERT INTO t VALUES (NULL, 5000000000)");
  auto row = sql().exec("SELECT name, n FROM t").one();
  auto message = [](auto read) { return test::invalid_argument_message(read); };
  EXPECT_EQ(message([&] { (void)row.get<std::string>("name"); }),
            "column \"name\" (0) is NULL, not TEXT (read it as std::optional)");
  EXPECT_EQ(message([&] { (void)row.get<std::string>("n"); }),
            "column \"n\" (1) is INTEGER, not TEXT");
  EXPECT_EQ(message([&] { (void)row.get<int32_t>("n"); }),
            "column \"n\" (1) is INTEGER, not an integer that fits");
  EXPECT_EQ(message([&] { (void)row.get<int64_t>("missing"); }),
            "no column \"missing\" in the result");
  EXPECT_EQ(message([&] { (void)row.get<int64_t>(2); }), "no column 2 in a row of 2");
  EXPECT_EQ(message([&] { (void)sql().exec("SELECT name, n FROM t").one<int64_t>(); }),
            "expected one column, got 2");
}

TEST_F(SqlTest, AQueryRunsEvenIfItsCursorIsNeverRead) {
  sql().exec("CREATE TABLE t(x)");
  (void)sql().exec("INSERT INTO t VALUES (1)");
  EXPECT_EQ(sql().exec("SELECT count(*) FROM t").one()[0], SqlValue(int64_t{1}));
}

TEST_F(SqlTest, ParametersAndResultsBelongToTheLastStatement) {
  auto c = sql().exec(
      "CREATE TABLE t(x); INSERT INTO t VALUES (1); INSERT INTO t VALUES (2);"
      "SELECT x FROM t WHERE x > ? ORDER BY x; -- trailing comment",
      1);
  ASSERT_EQ(c.size(), 1u);
  EXPECT_EQ(c.raw()[0][0], SqlValue(int64_t{2}));
  EXPECT_THROW((void)sql().exec("SELECT ?; SELECT 1", 5), Error);
  EXPECT_THROW((void)sql().exec("SELECT ?, ?", 1), Error);  // too few parameters
}

TEST_F(SqlTest, SqlWritesCommitWithTheTurnAndRollBackWithATransaction) {
  sql().exec("CREATE TABLE t(x)");
  ASSERT_TRUE(store_->end_turn().is_ok());
  EXPECT_THROW(storage_->transaction_sync([&] {
    sql().exec("INSERT INTO t VALUES (1)");
    storage_->put("k", int64_t{1});
    throw std::runtime_error("undo");
  }),
               std::runtime_error);
  ASSERT_TRUE(store_->end_turn().is_ok());
  EXPECT_EQ(sql().exec("SELECT count(*) FROM t").one()[0], SqlValue(int64_t{0}));
  EXPECT_FALSE(storage_->get<int64_t>("k").has_value());
}

TEST_F(SqlTest, AFailedCommitDiscardsSqlWritesToo) {
  StoreFaults faults;
  store_ = std::make_unique<ObjectStore>(StoreEnv{&commits_, &open_dbs_, &faults},
                                         dir_.path() + "/ns/ab", "f.sqlite");
  Storage storage = internal::ApiAccess::storage(store_.get());
  Sql& s = storage.sql();
  s.exec("CREATE TABLE t(x)");
  ASSERT_TRUE(store_->end_turn().is_ok());
  s.exec("INSERT INTO t VALUES (1)");
  faults.fail_next_commits = 1;
  EXPECT_FALSE(store_->end_turn().is_ok());
  EXPECT_EQ(s.exec("SELECT count(*) FROM t").one()[0], SqlValue(int64_t{0}));
}

TEST_F(SqlTest, ASqlErrorUndoesOnlyItsStatement) {
  sql().exec("CREATE TABLE t(x UNIQUE)");
  sql().exec("INSERT INTO t VALUES (1)");
  try {
    sql().exec("INSERT INTO t VALUES (1)");
    FAIL();
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), Code::kInvalidArgument);
    EXPECT_NE(std::string(e.what()).find("UNIQUE"), std::string::npos);
  }
  EXPECT_TRUE(store_->end_turn().is_ok());
  EXPECT_EQ(sql().exec("SELECT count(*) FROM t").one()[0], SqlValue(int64_t{1}));
  EXPECT_NE(refusal("SELEC nonsense").find("syntax error"), std::string::npos);
}

TEST_F(SqlTest, AFailingQueryOfSeveralStatementsWritesNothing) {
  sql().exec("CREATE TABLE kept(x)");
  ASSERT_TRUE(store_->end_turn().is_ok());
  EXPECT_NE(refusal("CREATE TABLE a(x); INSERT INTO a VALUES(1); INSERT INTO kept VALUES(2); "
                    "SELEC oops")
                .find("syntax error"),
            std::string::npos);
  // The same turn goes on, and commits, without any of it.
  sql().exec("INSERT INTO kept VALUES(3)");
  ASSERT_TRUE(store_->end_turn().is_ok());
  EXPECT_EQ(sql().exec("SELECT count(*) FROM sqlite_schema WHERE name = 'a'").one()[0],
            SqlValue(int64_t{0}));
  EXPECT_EQ(sql().exec("SELECT group_concat(x) FROM kept").one()[0], SqlValue(std::string("3")));
  // A runtime error in a later statement undoes the earlier ones too.
  sql().exec("CREATE TABLE u(x UNIQUE)");
  refusal("INSERT INTO u VALUES(1); INSERT INTO u VALUES(2); INSERT INTO u VALUES(1)");
  EXPECT_EQ(sql().exec("SELECT count(*) FROM u").one()[0], SqlValue(int64_t{0}));
  // Inside a transaction, only the failed exec is undone.
  storage_->transaction_sync([&] {
    sql().exec("INSERT INTO u VALUES(7)");
    refusal("INSERT INTO u VALUES(8); INSERT INTO u VALUES(7)");
  });
  ASSERT_TRUE(store_->end_turn().is_ok());
  EXPECT_EQ(sql().exec("SELECT group_concat(x) FROM u").one()[0], SqlValue(std::string("7")));
}

TEST_F(SqlTest, UserTriggersCannotReachTheRuntimesTablesThroughItsOwnStatements) {
  storage_->put("victim", int64_t{1});
  ASSERT_TRUE(store_->end_turn().is_ok());
  // A cascade from _dobj_kv into a user table whose trigger writes _dobj_kv:
  // the runtime's later delete would run it unchecked.
  for (const char* q :
       {"CREATE TABLE t(k BLOB REFERENCES _dobj_kv(key) ON DELETE CASCADE)",
        // Checking the reference would read _dobj_kv (refused): switched off,
        // each in a turn of its own (the pragma does nothing in a transaction).
        "PRAGMA foreign_keys=OFF", "INSERT INTO t VALUES (CAST('victim' AS BLOB))",
        "PRAGMA foreign_keys=ON",
        "CREATE TRIGGER tr AFTER DELETE ON t BEGIN "
        "INSERT INTO _dobj_kv(key, value) VALUES (CAST('planted' AS BLOB), x'69'); END"}) {
    try {
      sql().exec(q);
    } catch (const Error& e) {
      ADD_FAILURE() << q << ": " << e.what();
    }
    ASSERT_TRUE(store_->end_turn().is_ok());
  }
  ASSERT_EQ(sql().exec("SELECT count(*) FROM t").one()[0], SqlValue(int64_t{1}));
  ASSERT_TRUE(store_->end_turn().is_ok());
  try {
    storage_->remove("victim");
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("not authorized"), std::string::npos) << e.what();
  }
  (void)store_->end_turn();
  EXPECT_FALSE(storage_->get<int64_t>("planted").has_value());
  // Views are checked whenever they are read.
  sql().exec("CREATE VIEW v AS SELECT * FROM _dobj_kv");
  EXPECT_NE(refusal("SELECT * FROM v").find("reserved"), std::string::npos);
}

TEST_F(SqlTest, ShadowTablesAreReadOnlyInDefensiveMode) {
  sql().exec("CREATE VIRTUAL TABLE docs USING fts5(body)");
  sql().exec("INSERT INTO docs VALUES ('hello world')");
  refusal("INSERT INTO docs_data VALUES (1000, x'00')");
  refusal("DELETE FROM docs_idx");
  EXPECT_EQ(sql().exec("SELECT count(*) FROM docs WHERE docs MATCH 'hello'").one()[0],
            SqlValue(int64_t{1}));
}

// Found by fuzz/sql_fuzz.cc: SQLite stops at a NUL byte, and the statement
// loop made no progress past it, holding the object's shard forever.
TEST_F(SqlTest, AQueryWithANulByteIsRefusedNotLoopedOn) {
  using namespace std::string_literals;
  EXPECT_NE(refusal("\0SELECT 1"s).find("NUL"), std::string::npos);
  EXPECT_NE(refusal("SELECT 1;\0 SELECT 2"s).find("NUL"), std::string::npos);
  EXPECT_EQ(sql().exec("SELECT 1").one()[0], SqlValue(int64_t{1}));
}

TEST_F(SqlTest, HugeValuesAndQueriesAreRefusedNotAllocated) {
  EXPECT_NE(refusal("SELECT zeroblob(20000000)").find("too big"), std::string::npos);
  EXPECT_NE(refusal("SELECT length(randomblob(3000000))").find("too big"), std::string::npos);
  refusal("SELECT '" + std::string(kMaxSqlQueryBytes, 'a') + "'");
  std::string many = "CREATE TABLE wide(c0";
  for (int i = 1; i <= kMaxSqlColumns; ++i) many += ", c" + std::to_string(i);
  refusal(many + ")");
  // A result past its cap is refused whole.
  sql().exec("CREATE TABLE big(b)");
  sql().exec(
      "INSERT INTO big SELECT zeroblob(1000000) FROM (WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL "
      "SELECT i + 1 FROM n WHERE i < 20) SELECT i FROM n)");
  EXPECT_NE(refusal("SELECT b FROM big").find("LIMIT"), std::string::npos);
  EXPECT_EQ(sql().exec("SELECT b FROM big LIMIT 5").size(), 5u);
}

class SqlLimitTest : public SqlTest {
 protected:
  void SetUp() override {
    StoreEnv env{&commits_, &open_dbs_, nullptr, 0};
    env.sql_time_limit = std::chrono::milliseconds(200);
    store_ = std::make_unique<ObjectStore>(env, dir_.path() + "/ns/ab", "obj.sqlite");
    storage_ = std::make_unique<Storage>(internal::ApiAccess::storage(store_.get()));
  }
};

TEST_F(SqlLimitTest, AnEndlessQueryIsInterruptedAtTheCpuLimitAndItsTurnIsLost) {
  sql().exec("CREATE TABLE t(x)");
  ASSERT_TRUE(store_->end_turn().is_ok());
  sql().exec("INSERT INTO t VALUES (1)");
  auto start = std::chrono::steady_clock::now();
  std::string why = refusal(
      "INSERT INTO t WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n) "
      "SELECT i FROM n");
  auto took = std::chrono::steady_clock::now() - start;
  EXPECT_NE(why.find("CPU limit of 200 ms"), std::string::npos) << why;
  EXPECT_LT(took, std::chrono::seconds(2));
  EXPECT_FALSE(store_->end_turn().is_ok()) << "the turn was rolled back";
  EXPECT_EQ(sql().exec("SELECT count(*) FROM t").one()[0], SqlValue(int64_t{0}));
  // A read past the limit is interrupted too; the store goes on.
  refusal("WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n) SELECT count(*) FROM n");
  EXPECT_EQ(sql().exec("SELECT 1 + 1").one()[0], SqlValue(int64_t{2}));
}

TEST_F(SqlTest, TransactionControlAttachTempAndReservedNamesAreRefused) {
  EXPECT_NE(refusal("BEGIN").find("storage().transaction()"), std::string::npos);
  EXPECT_NE(refusal("COMMIT").find("storage().transaction()"), std::string::npos);
  EXPECT_NE(refusal("ROLLBACK").find("storage().transaction()"), std::string::npos);
  EXPECT_NE(refusal("SAVEPOINT s").find("SAVEPOINT"), std::string::npos);
  EXPECT_NE(refusal("RELEASE s").find("SAVEPOINT"), std::string::npos);
  EXPECT_NE(refusal("ATTACH DATABASE 'x.db' AS x").find("ATTACH"), std::string::npos);
  EXPECT_NE(refusal("CREATE TEMP TABLE t(x)").find("temporary"), std::string::npos);
  storage_->put("k", int64_t{1});
  EXPECT_NE(refusal("SELECT * FROM _dobj_kv").find("reserved"), std::string::npos);
  EXPECT_NE(refusal("DELETE FROM _dobj_kv").find("reserved"), std::string::npos);
  EXPECT_NE(refusal("CREATE TABLE _dobj_mine(x)").find("reserved"), std::string::npos);
  EXPECT_NE(refusal("PRAGMA table_info(_dobj_kv)").find("reserved"), std::string::npos);
  EXPECT_NE(refusal("DROP TABLE _dobj_kv").find("reserved"), std::string::npos);
  EXPECT_EQ(storage_->get<int64_t>("k"), 1);  // the key-value data is untouched
}

TEST_F(SqlTest, OnlyAllowListedPragmasAndSafeFunctionsRun) {
  sql().exec("CREATE TABLE t(id INTEGER PRIMARY KEY, x)");
  EXPECT_EQ(sql().exec("PRAGMA table_info(t)").size(), 2u);
  EXPECT_EQ(sql().exec("PRAGMA foreign_keys").one()[0], SqlValue(int64_t{1}));  // on by default
  EXPECT_NO_THROW(sql().exec("PRAGMA defer_foreign_keys = ON"));
  EXPECT_EQ(sql().exec("PRAGMA quick_check").one()[0], SqlValue(std::string("ok")));
  EXPECT_NE(refusal("PRAGMA journal_mode = DELETE").find("PRAGMA journal_mode"), std::string::npos);
  EXPECT_NE(refusal("PRAGMA synchronous = FULL").find("not allowed"), std::string::npos);
  std::string m = refusal("SELECT sqlite_compileoption_get(0)");
  EXPECT_NE(m.find("not allowed"), std::string::npos) << m;
  EXPECT_NE(refusal("SELECT load_extension('x')").find("not allowed"), std::string::npos);
}

TEST_F(SqlTest, ForeignKeysAreEnforced) {
  sql().exec("CREATE TABLE p(id INTEGER PRIMARY KEY); CREATE TABLE c(p INTEGER REFERENCES p(id))");
  EXPECT_NE(refusal("INSERT INTO c VALUES (42)").find("FOREIGN KEY"), std::string::npos);
}

TEST_F(SqlTest, AConstraintCheckedOnlyAtCommitFailsTheTurn) {
  sql().exec("CREATE TABLE p(id INTEGER PRIMARY KEY); CREATE TABLE c(p INTEGER REFERENCES p(id))");
  sql().exec("INSERT INTO p VALUES (1)");
  ASSERT_TRUE(store_->end_turn().is_ok());
  sql().exec("PRAGMA defer_foreign_keys = ON");
  sql().exec("INSERT INTO c VALUES (42)");  // accepted for now: checked at COMMIT
  storage_->put("k", int64_t{1});
  Status st = store_->end_turn();
  EXPECT_EQ(st.code(), Code::kReset);
  EXPECT_NE(st.message().find("FOREIGN KEY"), std::string::npos) << st.message();
  EXPECT_EQ(sql().exec("SELECT count(*) FROM c").one()[0], SqlValue(int64_t{0}));
  EXPECT_FALSE(storage_->get<int64_t>("k").has_value());
}

TEST_F(SqlTest, DeleteAllDropsTablesAndKeys) {
  sql().exec(
      "CREATE TABLE p(id INTEGER PRIMARY KEY); CREATE TABLE c(p REFERENCES p(id));"
      "INSERT INTO p VALUES (1); INSERT INTO c VALUES (1); CREATE VIEW v AS SELECT * FROM p");
  storage_->put("k", int64_t{1});
  storage_->delete_all();
  ASSERT_TRUE(store_->end_turn().is_ok());
  EXPECT_EQ(
      sql()
          .exec("SELECT count(*) FROM sqlite_schema WHERE name NOT LIKE '\\_dobj\\_%' ESCAPE '\\'")
          .one()[0],
      SqlValue(int64_t{0}));
  EXPECT_FALSE(storage_->get<int64_t>("k").has_value());
}

TEST_F(SqlTest, DatabaseSizeGrowsWithData) {
  EXPECT_EQ(sql().database_size(), 0);
  sql().exec("CREATE TABLE t(x)");
  int64_t small = sql().database_size();
  EXPECT_GT(small, 0);
  sql().exec(
      "INSERT INTO t SELECT randomblob(1000) FROM (WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL "
      "SELECT i + 1 FROM n WHERE i < 200) SELECT i FROM n)");
  EXPECT_GT(sql().database_size(), small + 150 * 1000);
}

class SqlCapTest : public SqlTest {
 protected:
  void SetUp() override {
    max_bytes_ = 64 * 1024;
    SqlTest::SetUp();
  }
};

TEST_F(SqlCapTest, AFullDatabaseFailsTheTurnAndKeepsWhatWasCommitted) {
  sql().exec("CREATE TABLE t(x)");
  sql().exec("INSERT INTO t VALUES ('kept')");
  ASSERT_TRUE(store_->end_turn().is_ok());
  try {
    for (int i = 0; i < 100; ++i) sql().exec("INSERT INTO t VALUES (randomblob(4000))");
    FAIL() << "the cap did not apply";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), Code::kStorageFull);
    EXPECT_NE(std::string(e.what()).find("full"), std::string::npos) << e.what();
  }
  EXPECT_EQ(store_->end_turn().code(), Code::kStorageFull);
  EXPECT_EQ(sql().exec("SELECT count(*) FROM t").one()[0], SqlValue(int64_t{1}));
}

// The page size of a closed database file, read from its header.
int file_page_size(const std::string& path) {
  sqlite3* db = nullptr;
  int size = 0;
  if (sqlite3_open_v2(path.c_str(), &db, SQLITE_OPEN_READONLY, nullptr) == SQLITE_OK) {
    sqlite3_stmt* s = nullptr;
    if (sqlite3_prepare_v2(db, "PRAGMA page_size", -1, &s, nullptr) == SQLITE_OK &&
        sqlite3_step(s) == SQLITE_ROW) {
      size = sqlite3_column_int(s, 0);
    }
    sqlite3_finalize(s);
  }
  sqlite3_close(db);
  return size;
}

TEST(SqlPageSizeTest, ANewDatabaseTakesThePageSizeAndAnOldOneKeepsItsOwn) {
  test::TempDir dir;
  GroupCommit commits{nullptr, [](std::function<void()> f) { f(); }};
  DbCache open_dbs{4};
  std::string path = dir.path() + "/ns/ab/obj.sqlite";
  // Each store is closed (its scope ends) before the file is read.
  auto open = [&](int page_size, int64_t max_bytes) {
    StoreEnv env{&commits, &open_dbs, nullptr, max_bytes};
    env.page_size = page_size;
    return std::make_unique<ObjectStore>(env, dir.path() + "/ns/ab", "obj.sqlite");
  };
  {
    auto store = open(8192, 0);
    Storage storage = internal::ApiAccess::storage(store.get());
    storage.sql().exec("CREATE TABLE t(x)");
    storage.put("k", std::string(100, 'v'));
    ASSERT_TRUE(store->end_turn().is_ok());
  }
  EXPECT_EQ(file_page_size(path), 8192);
  {
    // Reopened by a server whose default is smaller: the file keeps 8 KiB
    // pages, and the size cap counts them as such (32 KiB is 4 pages, not 32).
    auto store = open(1024, 32 * 1024);
    Storage storage = internal::ApiAccess::storage(store.get());
    EXPECT_EQ(storage.get<std::string>("k"), std::string(100, 'v'));
    EXPECT_THROW(
        {
          for (int i = 0; i < 40; ++i) storage.sql().exec("INSERT INTO t VALUES (randomblob(1000))");
        },
        Error);
    EXPECT_EQ(store->end_turn().code(), Code::kStorageFull);
    EXPECT_LE(storage.sql().database_size(), 32 * 1024);
  }
  EXPECT_EQ(file_page_size(path), 8192);
  {
    // delete_all keeps the file (and its page size); a new object's file
    // takes the configured one.
    auto store = open(2048, 0);
    Storage storage = internal::ApiAccess::storage(store.get());
    storage.delete_all();
    ASSERT_TRUE(store->end_turn().is_ok());
    StoreEnv env{&commits, &open_dbs};
    env.page_size = 2048;
    ObjectStore other(env, dir.path() + "/ns/cd", "other.sqlite");
    other.put("k", "v");
    ASSERT_TRUE(other.end_turn().is_ok());
  }
  EXPECT_EQ(file_page_size(path), 8192);
  EXPECT_EQ(file_page_size(dir.path() + "/ns/cd/other.sqlite"), 2048);
}

}  // namespace
}  // namespace dobj::internal
