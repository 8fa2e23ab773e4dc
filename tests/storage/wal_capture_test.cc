// Replication's unit (storage/vfs.h): the frames of each committed
// transaction, applied in order to a copy, give the database as of that
// commit, through rollbacks, spills of a large transaction, checkpoints,
// WAL restarts, a database that shrinks, and a reopened connection.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <random>
#include <string>
#include <vector>

#include "storage/sqlite.h"
#include "storage/vfs.h"
#include "testing/temp_dir.h"

namespace dobj::internal {
namespace {

class WalCaptureTest : public ::testing::Test {
 protected:
  static constexpr int kPageSize = 1024;

  void SetUp() override {
    register_dobj_vfs();
    path_ = dir_.path() + "/original.sqlite";
    copy_path_ = dir_.path() + "/copy.sqlite";
    copy_fd_ = ::open(copy_path_.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    ASSERT_GE(copy_fd_, 0);
    open_original();
  }
  void TearDown() override {
    if (db_) sqlite3_close(db_);
    if (copy_fd_ >= 0) ::close(copy_fd_);
  }

  // Opens the original as the runtime opens an object's database, and
  // captures its commits into the copy.
  void open_original() {
    ASSERT_EQ(sqlite3_open_v2(path_.c_str(), &db_, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, kDobjVfs),
              SQLITE_OK);
    exec("PRAGMA page_size=" + std::to_string(kPageSize));
    sqlite3_db_config(db_, SQLITE_DBCONFIG_NO_CKPT_ON_CLOSE, 1, nullptr);
    ASSERT_TRUE(read_wal_ahead(db_,
                               "PRAGMA locking_mode=EXCLUSIVE; PRAGMA synchronous=OFF;"
                               "PRAGMA journal_mode=WAL; PRAGMA cache_size=-64;")
                    .is_ok());
    combine_wal_writes(db_);
    ASSERT_TRUE(capture_wal_frames(db_, kPageSize, [this](std::vector<WalFrame> txn) {
      ASSERT_FALSE(txn.empty());
      EXPECT_GT(txn.back().commit_pages, 0u);
      Status st = apply_wal_frames(copy_fd_, kPageSize, txn.data(), txn.size());
      EXPECT_TRUE(st.is_ok()) << st.message();
      ++commits_;
    }));
  }

  void exec(const std::string& sql) {
    char* err = nullptr;
    int rc = sqlite3_exec(db_, sql.c_str(), nullptr, nullptr, &err);
    ASSERT_EQ(rc, SQLITE_OK) << sql << ": " << (err ? err : "");
    ASSERT_TRUE(flush_wal_writes(db_).is_ok());
  }

  // Every row of t, and the integrity check, of a database.
  static std::string contents(sqlite3* db) {
    std::string out;
    sqlite3_stmt* st = nullptr;
    if (sqlite3_prepare_v2(db, "SELECT k, length(v), hex(substr(v, 1, 8)) FROM t ORDER BY k", -1, &st,
                           nullptr) != SQLITE_OK) {
      return std::string("error: ") + sqlite3_errmsg(db);
    }
    while (sqlite3_step(st) == SQLITE_ROW) {
      out += std::to_string(sqlite3_column_int64(st, 0)) + ":" + std::to_string(sqlite3_column_int64(st, 1)) +
             ":" + reinterpret_cast<const char*>(sqlite3_column_text(st, 2)) + "\n";
    }
    sqlite3_finalize(st);
    sqlite3_prepare_v2(db, "PRAGMA integrity_check", -1, &st, nullptr);
    if (sqlite3_step(st) == SQLITE_ROW) out += reinterpret_cast<const char*>(sqlite3_column_text(st, 0));
    sqlite3_finalize(st);
    return out;
  }

  // The copy, opened as a database of its own (in a fresh folder each time,
  // so that no WAL of an earlier look is replayed).
  std::string copy_contents() {
    std::string look = dir_.path() + "/look" + std::to_string(looks_++) + ".sqlite";
    std::string bytes(static_cast<size_t>(::lseek(copy_fd_, 0, SEEK_END)), '\0');
    EXPECT_EQ(::pread(copy_fd_, bytes.data(), bytes.size(), 0), static_cast<ssize_t>(bytes.size()));
    int fd = ::open(look.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    EXPECT_EQ(::write(fd, bytes.data(), bytes.size()), static_cast<ssize_t>(bytes.size()));
    ::close(fd);
    sqlite3* copy = nullptr;
    sqlite3_open_v2(look.c_str(), &copy, SQLITE_OPEN_READWRITE, nullptr);
    std::string out = contents(copy);
    sqlite3_close(copy);
    return out;
  }

  void expect_same() {
    EXPECT_TRUE(wal_capture_intact(db_));
    std::string original = contents(db_);
    EXPECT_NE(original.find("ok"), std::string::npos) << original;
    EXPECT_EQ(copy_contents(), original);
  }

  test::TempDir dir_;
  std::string path_, copy_path_;
  sqlite3* db_ = nullptr;
  int copy_fd_ = -1;
  int commits_ = 0;
  int looks_ = 0;
};

TEST_F(WalCaptureTest, ACopyBuiltFromCommittedFramesIsTheDatabase) {
  exec("CREATE TABLE t(k INTEGER PRIMARY KEY, v BLOB)");
  exec("INSERT INTO t VALUES (1, x'01'), (2, zeroblob(3000))");
  expect_same();
  std::mt19937 random(42);
  for (int round = 0; round < 40; ++round) {
    exec("BEGIN");
    for (int i = 0; i < 20; ++i) {
      int k = static_cast<int>(random() % 500);
      switch (random() % 3) {
        case 0:
          exec("INSERT OR REPLACE INTO t VALUES (" + std::to_string(k) + ", randomblob(" +
               std::to_string(random() % 2000) + "))");
          break;
        case 1: exec("DELETE FROM t WHERE k = " + std::to_string(k)); break;
        case 2: exec("UPDATE t SET v = randomblob(10) WHERE k % 7 = " + std::to_string(k % 7)); break;
      }
    }
    exec("COMMIT");
    if (round % 10 == 9) expect_same();
  }
  EXPECT_GT(commits_, 40);
}

TEST_F(WalCaptureTest, RolledBackWorkNeverReachesTheCopy) {
  exec("CREATE TABLE t(k INTEGER PRIMARY KEY, v BLOB)");
  exec("INSERT INTO t VALUES (1, randomblob(100))");
  // Larger than the cache: SQLite spills frames of the open transaction to
  // the WAL, then rolls them back.
  exec("BEGIN; WITH RECURSIVE s(value) AS (SELECT 1 UNION ALL SELECT value + 1 FROM s WHERE value < 400) "
       "INSERT INTO t SELECT value + 10, randomblob(900) FROM s;");
  exec("ROLLBACK");
  exec("INSERT INTO t VALUES (2, randomblob(100))");
  expect_same();
  // A savepoint rolled back inside a transaction that commits.
  exec("BEGIN; INSERT INTO t VALUES (3, randomblob(50)); SAVEPOINT s;"
       "WITH RECURSIVE s(value) AS (SELECT 1 UNION ALL SELECT value + 1 FROM s WHERE value < 300) "
       "INSERT INTO t SELECT value + 1000, randomblob(900) FROM s;"
       "ROLLBACK TO s; RELEASE s; INSERT INTO t VALUES (4, randomblob(50)); COMMIT");
  expect_same();
}

TEST_F(WalCaptureTest, CheckpointsRestartsShrinkingAndReopeningKeepTheCopyRight) {
  exec("CREATE TABLE t(k INTEGER PRIMARY KEY, v BLOB)");
  for (int i = 0; i < 30; ++i) {
    exec("INSERT INTO t VALUES (" + std::to_string(i) + ", randomblob(1500))");
    if (i % 7 == 6) exec("PRAGMA wal_checkpoint(TRUNCATE)");
    if (i % 11 == 10) exec("PRAGMA wal_checkpoint(PASSIVE)");
  }
  expect_same();
  // The database shrinks: the commit frame's size cuts the copy.
  exec("DELETE FROM t WHERE k > 3");
  exec("VACUUM");
  expect_same();
  exec("PRAGMA wal_checkpoint(TRUNCATE)");
  // A new connection (the runtime closes idle ones) goes on where the WAL is.
  sqlite3_close(db_);
  db_ = nullptr;
  open_original();
  exec("INSERT INTO t VALUES (100, randomblob(5000))");
  exec("UPDATE t SET v = randomblob(20) WHERE k = 1");
  expect_same();
}

}  // namespace
}  // namespace dobj::internal
