// An object's history (StoreEnv::history): every commit can be rebuilt
// exactly, from the bookmark current after it, through reopens, restores,
// torn records and commits the history missed.
#include <gtest/gtest.h>
#include <sqlite3.h>
#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <mutex>
#include <random>
#include <set>
#include <thread>

#include "base/fs.h"
#include "runtime/api_access.h"
#include "storage/object_store.h"
#include "storage/replica_history.h"
#include "support/server_process.h"

namespace dobj::internal {
namespace {

using Dump = std::map<std::string, std::string>;

// n letters drawn from rng: a value that changes every byte it covers, so a
// commit's record keeps its pages' bytes (and periodic bases come).
std::string random_letters(std::mt19937& rng, size_t n) {
  std::string s(n, ' ');
  for (char& c : s) c = static_cast<char>('a' + rng() % 26);
  return s;
}

// The key-value pairs of a database given as bytes (a restored one).
Dump dump_image(const std::string& database) {
  sqlite3* mem = nullptr;
  sqlite3_open(":memory:", &mem);
  auto size = static_cast<sqlite3_int64>(database.size());
  auto* buf = static_cast<unsigned char*>(sqlite3_malloc64(static_cast<sqlite3_uint64>(size)));
  std::memcpy(buf, database.data(), database.size());
  if (database.size() >= 20) buf[18] = buf[19] = 1;  // WAL mode, which memory cannot be in
  EXPECT_EQ(sqlite3_deserialize(mem, "main", buf, size, size, SQLITE_DESERIALIZE_FREEONCLOSE), SQLITE_OK);
  Dump out;
  sqlite3_stmt* s = nullptr;
  EXPECT_EQ(sqlite3_prepare_v2(mem, "SELECT key, value FROM _dobj_kv", -1, &s, nullptr), SQLITE_OK)
      << sqlite3_errmsg(mem);
  while (s && sqlite3_step(s) == SQLITE_ROW) {
    out[std::string(static_cast<const char*>(sqlite3_column_blob(s, 0)), sqlite3_column_bytes(s, 0))] =
        std::string(static_cast<const char*>(sqlite3_column_blob(s, 1)), sqlite3_column_bytes(s, 1));
  }
  sqlite3_finalize(s);
  std::string check;
  sqlite3_exec(
      mem, "PRAGMA integrity_check",
      [](void* o, int, char** v, char**) {
        *static_cast<std::string*>(o) += v[0] ? v[0] : "";
        return 0;
      },
      &check, nullptr);
  EXPECT_EQ(check, "ok");
  sqlite3_close(mem);
  return out;
}

class HistoryTest : public ::testing::Test {
 protected:
  void SetUp() override { reopen(); }
  // A restore in place, its three steps (ObjectStore::prepare_restore), then
  // a fresh store as the runtime makes.
  void restore_in_place(const std::string& bookmark) {
    auto plan = store_->prepare_restore(bookmark, dir_.path() + "/restore.tmp");
    ASSERT_TRUE(plan) << plan.status().message();
    auto built = ObjectStore::build_restore(*plan);
    ASSERT_TRUE(built) << built.status().message();
    ASSERT_TRUE(store_->restored(std::move(*built)));
    reopen();
  }
  void reopen() {
    store_.reset();
    StoreEnv env{&commits_, &open_dbs_};
    env.history = true;
    env.now_ms = [this] { return clock_ms_; };
    env.replication = replication_;
    store_ = std::make_unique<ObjectStore>(env, dir_.path() + "/ns/ab", "obj.sqlite");
  }
  Dump dump() {
    Dump out;
    for (auto& [k, v] : store_->list(ListOptions{})) out[k] = v;
    return out;
  }
  std::string path() const { return dir_.path() + "/ns/ab/obj.sqlite"; }
  // Sets the database's stamp (with the store closed), as the first format
  // wrote it with every commit.
  void set_stamp(uint64_t seq) {
    sqlite3* db = nullptr;
    ASSERT_EQ(sqlite3_open(path().c_str(), &db), SQLITE_OK);
    std::string sql = "UPDATE _dobj_history SET seq = " + std::to_string(seq) + "; PRAGMA wal_checkpoint(TRUNCATE);";
    EXPECT_EQ(sqlite3_exec(db, sql.c_str(), nullptr, nullptr, nullptr), SQLITE_OK) << sqlite3_errmsg(db);
    sqlite3_close(db);
  }
  // Closes the store and lets its WAL start over, as a checkpoint does.
  void close_and_restart_wal() {
    store_.reset();
    sqlite3* db = nullptr;
    ASSERT_EQ(sqlite3_open(path().c_str(), &db), SQLITE_OK);
    EXPECT_EQ(sqlite3_exec(db, "PRAGMA wal_checkpoint(TRUNCATE)", nullptr, nullptr, nullptr), SQLITE_OK);
    sqlite3_close(db);
  }
  // The state a bookmark names, read from the history file as it is (no
  // restore recorded).
  Result<std::string> state(const std::string& bookmark) {
    if (store_) {
      if (Status st = store_->write_out_history(); !st) return st;
    }
    HistoryFile file;
    if (Status st = file.open(path() + "-history"); !st) return st;
    auto seq = HistoryFile::parse_bookmark(bookmark);
    if (!seq) return seq.status();
    return file.state_at(*seq);
  }

  test::TempDir dir_;
  GroupCommit commits_{nullptr, [](std::function<void()> f) { f(); }};
  DbCache open_dbs_{4};
  int64_t clock_ms_ = 1'000'000;
  ReplicationLog* replication_ = nullptr;  // the store's backups, if any
  std::unique_ptr<ObjectStore> store_;
};

// What an owner records for its backups, kept to be applied later.
struct Shipped : ReplicationLog {
  std::vector<ReplicaRecord> records;
  void record(ReplicaRecord r) override { records.push_back(std::move(r)); }
};

// A backup's copy of one object, as a cluster node applies the records its
// owner ships (cluster/replicator.cc: the frames into the database file, the
// history beside it through ReplicaHistories), a batch at a time.
struct BackupCopy {
  std::string database;
  void apply(const std::vector<ReplicaRecord>& batch) {
    ReplicaHistories histories([](const std::string&) { return int64_t{0}; }, 0);
    for (const ReplicaRecord& r : batch) {
      if (r.kind == ReplicaRecord::Kind::kReplace) {
        ASSERT_TRUE(write_file_atomic(database, r.file, 0644).is_ok());
        ASSERT_TRUE(histories.replaced(r, database).is_ok());
        continue;
      }
      ASSERT_EQ(r.kind, ReplicaRecord::Kind::kCommit);
      int fd = ::open(database.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
      ASSERT_GE(fd, 0);
      Status st = histories.commit(r, database, [&] {
        return apply_wal_frames(fd, static_cast<int>(r.page_size), r.frames.data(), r.frames.size());
      });
      ::close(fd);
      ASSERT_TRUE(st.is_ok()) << st.message();
    }
    ASSERT_TRUE(histories.finish(0).is_ok());
  }
  Result<std::string> state(const std::string& bookmark) {
    HistoryFile file;
    if (Status st = file.open(database + "-history"); !st) return st;
    auto seq = HistoryFile::parse_bookmark(bookmark);
    if (!seq) return seq.status();
    return file.state_at(*seq);
  }
};

// The model: after each of many random commits (small and large values,
// deletes, a rolled-back savepoint, reopens, checkpoints), the state and the
// current bookmark are noted; every noted bookmark then rebuilds exactly its
// state, and a restore puts it in place as a new commit after which the
// later bookmarks still restore.
TEST_F(HistoryTest, EveryBookmarkRestoresExactlyTheStateItNamed) {
  std::mt19937 rng(42);
  std::vector<std::pair<std::string, Dump>> noted;
  std::vector<int64_t> times;
  Dump model;
  for (int commit = 0; commit < 1000; ++commit) {
    int writes = 1 + static_cast<int>(rng() % 4);
    for (int w = 0; w < writes; ++w) {
      std::string key = "k" + std::to_string(rng() % 200);
      if (rng() % 5 == 0) {
        store_->remove(key);
        model.erase(key);
      } else {
        std::string value(rng() % 7 == 0 ? 3000 + rng() % 5000 : 1 + rng() % 40, static_cast<char>('a' + rng() % 26));
        store_->put(key, value);
        model[key] = value;
      }
    }
    if (rng() % 10 == 0) {
      store_->begin_nested();
      store_->put("rolled-back", "x");
      store_->end_nested(/*commit=*/false);
    }
    if (rng() % 17 == 0) {
      store_->discard_turn();  // a failed turn: nothing of it is kept
      model = dump();
      continue;
    }
    ASSERT_TRUE(store_->end_turn().is_ok());
    times.push_back(clock_ms_);  // the commit's time
    clock_ms_ += 1 + static_cast<int64_t>(rng() % 50);
    auto b = store_->current_bookmark();
    ASSERT_TRUE(b.is_ok()) << b.status().message();
    if (!noted.empty()) {
      // Bookmarks sort as commits; a turn that changed no page (it removed
      // keys that were not there) made no commit.
      EXPECT_GE(*b, noted.back().first);
      if (*b == noted.back().first) {
        EXPECT_EQ(model, noted.back().second);
      }
    }
    noted.emplace_back(*b, model);
    if (rng() % 97 == 0) reopen();
  }
  ASSERT_EQ(dump(), model);
  for (int probe = 0; probe < 40; ++probe) {
    size_t i = rng() % noted.size();
    auto bytes = store_->database_at(noted[i].first);
    ASSERT_TRUE(bytes.is_ok()) << bytes.status().message();
    ASSERT_EQ(dump_image(*bytes), noted[i].second) << "bookmark " << noted[i].first;
  }
  // A restore in place: the database becomes the bookmark's state, the
  // current bookmark is new (after every earlier one), and a later bookmark
  // still restores (a restore can be undone).
  size_t back = noted.size() / 3;
  restore_in_place(noted[back].first);
  EXPECT_EQ(dump(), noted[back].second);
  auto now = store_->current_bookmark();
  ASSERT_TRUE(now.is_ok());
  EXPECT_GT(*now, noted.back().first);
  store_->put("after", "restore");
  ASSERT_TRUE(store_->end_turn().is_ok());
  auto forward = store_->database_at(noted.back().first);
  ASSERT_TRUE(forward.is_ok());
  EXPECT_EQ(dump_image(*forward), noted.back().second);
  // Times name the last commit made by then.
  for (size_t i : {size_t{10}, size_t{500}}) {
    auto at = store_->bookmark_for_time(times[i]);
    ASSERT_TRUE(at.is_ok());
    EXPECT_EQ(*at, noted[i].first);
    at = store_->bookmark_for_time(times[i + 1] - 1);
    ASSERT_TRUE(at.is_ok());
    EXPECT_EQ(*at, noted[i].first);
  }
  EXPECT_EQ(store_->bookmark_for_time(0).status().code(), Code::kNotFound);
  EXPECT_EQ(store_->database_at("not a bookmark").status().code(), Code::kInvalidArgument);
}

// A commit is kept as the bytes it changed (HistoryFile::append_changes): a
// counter's increment costs tens of bytes of history, not its page. Every
// state rebuilds exactly as the database grows past the pages remembered
// (kChangedPagesLimit), as values change a few bytes at a time, across
// reopens, and after a VACUUM shrinks the file and pages past its old end
// are written anew.
TEST_F(HistoryTest, ACommitKeepsOnlyTheBytesItChangedAndEveryStateRebuilds) {
  std::mt19937 rng(11);
  std::vector<std::pair<std::string, Dump>> noted;
  Dump model;
  auto commit = [&] {
    ASSERT_TRUE(store_->end_turn().is_ok());
    ++clock_ms_;
    auto b = store_->current_bookmark();
    ASSERT_TRUE(b.is_ok()) << b.status().message();
    noted.emplace_back(*b, model);
  };
  for (int i = 0; i < 200; ++i) {
    model["counter"] = std::to_string(1000 + i);
    store_->put("counter", model["counter"]);
    commit();
  }
  ASSERT_TRUE(store_->write_out_history().is_ok());
  {
    HistoryFile file;
    ASSERT_TRUE(file.open(path() + "-history").is_ok());
    const auto& all = file.entries();
    ASSERT_GE(all.size(), 100u);
    for (size_t i = all.size() - 100; i < all.size(); ++i) {
      EXPECT_EQ(all[i].kind, HistoryFile::Kind::kChanges);
      EXPECT_LT(all[i].bytes, 160u) << "commit " << all[i].seq;  // header and trailer: 56
    }
  }
  // Past the pages remembered: about 700 KB of values, then changes of a
  // few bytes inside them.
  for (int i = 0; i < 700; ++i) {
    std::string key = "v" + std::to_string(i);
    model[key] = random_letters(rng, 1000);
    store_->put(key, model[key]);
    if (i % 25 == 24) commit();
  }
  for (int i = 0; i < 400; ++i) {
    for (int w = 0, writes = 1 + static_cast<int>(rng() % 3); w < writes; ++w) {
      std::string key = "v" + std::to_string(rng() % 700);
      std::string& value = model[key];
      for (int b = 0; b < 3; ++b) value[rng() % value.size()] = static_cast<char>('A' + rng() % 26);
      store_->put(key, value);
    }
    commit();
    if (i % 150 == 149) reopen();
  }
  // Most go, and a VACUUM cuts the file (a commit the store keeps whole).
  for (int i = 0; i < 650; ++i) {
    std::string key = "v" + std::to_string(i);
    model.erase(key);
    store_->remove(key);
    if (i % 50 == 49) commit();
  }
  sqlite3* db = store_->admin_connection();
  ASSERT_NE(db, nullptr);
  auto pages = [&] {
    sqlite3_stmt* s = nullptr;
    EXPECT_EQ(sqlite3_prepare_v2(db, "PRAGMA page_count", -1, &s, nullptr), SQLITE_OK);
    int n = sqlite3_step(s) == SQLITE_ROW ? sqlite3_column_int(s, 0) : -1;
    sqlite3_finalize(s);
    return n;
  };
  const int before_vacuum = pages();
  const int attached = sqlite3_limit(db, SQLITE_LIMIT_ATTACHED, 1);  // VACUUM attaches its copy
  ASSERT_EQ(sqlite3_exec(db, "VACUUM", nullptr, nullptr, nullptr), SQLITE_OK) << sqlite3_errmsg(db);
  sqlite3_limit(db, SQLITE_LIMIT_ATTACHED, attached);
  EXPECT_LT(pages(), before_vacuum / 4);
  ASSERT_TRUE(store_->write_out_history().is_ok());
  for (int i = 0; i < 300; ++i) {
    std::string key = "w" + std::to_string(i % 120);
    model[key] = random_letters(rng, 20 + rng() % 900);
    store_->put(key, model[key]);
    if (i % 3 == 2) commit();
  }
  close_and_restart_wal();
  reopen();
  for (size_t i = 0; i < noted.size(); ++i) {
    auto state = this->state(noted[i].first);
    ASSERT_TRUE(state.is_ok()) << state.status().message();
    ASSERT_EQ(dump_image(*state), noted[i].second) << "bookmark " << i << " of " << noted.size();
  }
}

// Pages past a commit's new end are forgotten: one written again after the
// database shrank is kept whole, not as changes from what it held before
// (which the states in between no longer have).
TEST(HistoryFileTest, APageWrittenAgainAfterTheDatabaseShrankIsKeptWhole) {
  test::TempDir dir;
  HistoryFile h;
  ASSERT_TRUE(h.open(dir.path() + "/h").is_ok());
  const int size = 512;
  const std::string one(size, 'a'), two(size, 'b');
  std::string three(size, 'c');
  ASSERT_TRUE(h.append_base(1, 1, one + two).is_ok());
  ASSERT_TRUE(h.append_changes(2, 2, size, {WalFrame{3, 3, three}}, 0).is_ok());  // not known: whole
  three[10] = 'x';
  ASSERT_TRUE(h.append_changes(3, 3, size, {WalFrame{3, 3, three}}, 0).is_ok());
  ASSERT_TRUE(h.append_changes(4, 4, size, {WalFrame{2, 2, two}}, 0).is_ok());  // cut to two pages
  std::string again = three;
  again[20] = 'y';
  ASSERT_TRUE(h.append_changes(5, 5, size, {WalFrame{3, 3, again}}, 0).is_ok());
  const auto& e = h.entries();
  ASSERT_EQ(e.size(), 5u);
  EXPECT_GT(e[1].bytes, 512u);  // whole
  EXPECT_LT(e[2].bytes, 100u);  // one byte changed
  EXPECT_GT(e[4].bytes, 512u);  // whole again
  EXPECT_EQ(*h.state_at(3), one + two + three);
  EXPECT_EQ(*h.state_at(4), one + two);
  EXPECT_EQ(*h.state_at(5), one + two + again);
}

// Histories written before kChanges hold kCommit records (every page
// whole): they still read, and records of both kinds mix in one file (a
// store that opens an older history goes on with kChanges after them).
TEST(HistoryFileTest, WholePageRecordsOfTheEarlierFormatReadAmongChanges) {
  test::TempDir dir;
  HistoryFile h;
  ASSERT_TRUE(h.open(dir.path() + "/h").is_ok());
  const int size = 512;
  std::string one(size, 'a'), two(size, 'b');
  ASSERT_TRUE(h.append_base(1, 1, one + two).is_ok());
  one[5] = 'x';
  ASSERT_TRUE(h.append_changes(2, 2, size, {WalFrame{1, 2, one}}, 0).is_ok());
  two[7] = 'y';
  ASSERT_TRUE(h.append_commit(3, 3, size, {WalFrame{2, 2, two}}, 0).is_ok());
  one[6] = 'z';
  ASSERT_TRUE(h.append_changes(4, 4, size, {WalFrame{1, 2, one}}, 0).is_ok());  // whole: forgotten
  two[8] = 'w';
  ASSERT_TRUE(h.append_changes(5, 5, size, {WalFrame{2, 2, two}}, 0).is_ok());
  ASSERT_TRUE(h.write_out().is_ok());
  HistoryFile again;
  ASSERT_TRUE(again.open(dir.path() + "/h").is_ok());
  const auto& e = again.entries();
  ASSERT_EQ(e.size(), 5u);
  EXPECT_EQ(e[2].kind, HistoryFile::Kind::kCommit);
  EXPECT_EQ(e[3].kind, HistoryFile::Kind::kChanges);
  EXPECT_GT(e[3].bytes, 512u);
  std::string s3 = one, s5 = one + two;
  s3[6] = 'a';
  EXPECT_EQ(*again.state_at(3), s3 + std::string(two).replace(8, 1, "b"));
  EXPECT_EQ(*again.state_at(5), s5);
}

// A state written to a file (restores, pulls) is the state held in memory,
// byte for byte, for a base of several read pieces; a damaged byte in the
// base is caught by its checksum on the way.
TEST(HistoryFileTest, AStateWrittenToAFileIsTheStateAndDamageIsCaught) {
  test::TempDir dir;
  const std::string path = dir.path() + "/h", out = dir.path() + "/state";
  std::mt19937 rng(5);
  const int size = 4096;
  std::string base = random_letters(rng, 3 * (1 << 20) + size);  // 769 pages: four pieces
  {
    HistoryFile h;
    ASSERT_TRUE(h.open(path).is_ok());
    ASSERT_TRUE(h.append_base(1, 1, base).is_ok());
    std::string page = base.substr(0, size);
    for (uint64_t seq = 2; seq < 40; ++seq) {
      page[rng() % size] = 'X';
      const uint32_t grown = 770 + static_cast<uint32_t>(seq);  // each commit adds a page at the end
      std::vector<WalFrame> frames{WalFrame{1, 0, page}, WalFrame{grown, grown, random_letters(rng, size)}};
      ASSERT_TRUE(h.append_changes(seq, 1, size, frames, 0).is_ok());
    }
    ASSERT_TRUE(h.write_out().is_ok());
  }
  HistoryFile h;
  ASSERT_TRUE(h.open(path).is_ok());
  for (uint64_t seq : {1u, 2u, 20u, 39u}) {
    ASSERT_TRUE(h.write_state(seq, out).is_ok()) << seq;
    auto in_memory = h.state_at(seq);
    ASSERT_TRUE(in_memory.is_ok());
    EXPECT_EQ(*read_file(out), *in_memory) << seq;
  }
  std::string bytes = *read_file(path);
  bytes[40 + 2 * (1 << 20) + 17] ^= 0x20;  // inside the base's third piece
  ASSERT_TRUE(write_file_atomic(path, bytes, 0644).is_ok());
  HistoryFile damaged;
  ASSERT_TRUE(damaged.open(path).is_ok());
  Status st = damaged.write_state(39, out);
  EXPECT_FALSE(st.is_ok());
  EXPECT_NE(st.message().find("does not match its checksum"), std::string::npos) << st.message();
}

// Periodic bases: once the commits since the last base add up to more than
// the database and 1 MiB (ObjectStore::kHistoryBaseEveryBytes), the next
// commit is kept whole, so that a state is rebuilt from a recent base; every
// bookmark still restores exactly.
TEST_F(HistoryTest, ABaseIsKeptEachTimeTheCommitsSinceTheLastOneOutgrowTheDatabase) {
  std::vector<std::pair<std::string, Dump>> noted;
  Dump model;
  uint64_t commit_bytes = 0;
  for (int i = 0; i < 1500; ++i) {
    std::string key = "k" + std::to_string(i % 20);  // the database stays near 40 KB
    std::string value(1500, static_cast<char>('a' + i % 26));
    store_->put(key, value);
    model[key] = value;
    ASSERT_TRUE(store_->end_turn().is_ok());
    ++clock_ms_;
    auto b = store_->current_bookmark();
    ASSERT_TRUE(b.is_ok());
    noted.emplace_back(*b, model);
    if (i == 300) reopen();  // the count starts again at an open
  }
  ASSERT_TRUE(store_->write_out_history().is_ok());
  HistoryFile file;
  ASSERT_TRUE(file.open(path() + "-history").is_ok());
  size_t bases = 0;
  uint64_t since = 0, most_since = 0;
  for (const auto& e : file.entries()) {
    if (e.kind == HistoryFile::Kind::kBase) {
      ++bases;
      since = 0;
    } else {
      commit_bytes += e.bytes;
      most_since = std::max(most_since, since += e.bytes);
    }
  }
  // The first base, then one per MiB or so of commits (up to twice that
  // across the reopen, whose count starts at 0).
  EXPECT_GE(bases, commit_bytes / (2 * ObjectStore::kHistoryBaseEveryBytes)) << commit_bytes;
  EXPECT_GE(bases, 3u) << commit_bytes;
  EXPECT_LE(most_since, 2 * ObjectStore::kHistoryBaseEveryBytes + 64 * 1024);
  for (size_t i = 0; i < noted.size(); i += 37) {
    auto state = this->state(noted[i].first);
    ASSERT_TRUE(state.is_ok()) << state.status().message();
    EXPECT_EQ(dump_image(*state), noted[i].second) << "bookmark " << i;
  }
}

// A cluster's backups (storage/replica_history.h): from the records the
// owner ships, in batches, a backup that had every one and a backup that
// joined midway with a catch-up's copy each keep a history in which every
// bookmark the owner gave rebuilds exactly the owner's state, through
// reopens, checkpoints, periodic bases and a restore (a kReplace, as an
// import is too).
TEST_F(HistoryTest, ABackupsHistoryFromTheShippedRecordsRestoresEveryBookmarkOfTheOwner) {
  Shipped shipped;
  replication_ = &shipped;
  reopen();
  BackupCopy whole{dir_.path() + "/backup-1.sqlite"}, joined{dir_.path() + "/backup-2.sqlite"};
  size_t joined_from = 0;  // the records the late backup takes after its copy
  std::mt19937 rng(7);
  std::vector<std::pair<std::string, Dump>> noted;
  Dump model;
  auto note = [&] {
    auto b = store_->current_bookmark();
    ASSERT_TRUE(b.is_ok()) << b.status().message();
    noted.emplace_back(*b, model);
  };
  for (int commit = 0; commit < 300; ++commit) {
    for (int w = 0, writes = 1 + static_cast<int>(rng() % 3); w < writes; ++w) {
      std::string key = "k" + std::to_string(rng() % 50);
      if (rng() % 5 == 0) {
        store_->remove(key);
        model.erase(key);
      } else {
        std::string value = random_letters(rng, rng() % 9 == 0 ? 20000 : 1 + rng() % 30);
        store_->put(key, value);
        model[key] = value;
      }
    }
    ASSERT_TRUE(store_->end_turn().is_ok());
    clock_ms_ += 1 + static_cast<int64_t>(rng() % 20);
    note();
    if (rng() % 31 == 0) reopen();
    if (rng() % 43 == 0) close_and_restart_wal(), reopen();
    if (commit == 100) {
      // The late backup's catch-up: the database and history as they are.
      ReplicaRecord copy;
      copy.kind = ReplicaRecord::Kind::kReplace;
      sqlite3_int64 size = 0;
      unsigned char* bytes = sqlite3_serialize(store_->admin_connection(), "main", &size, 0);
      ASSERT_NE(bytes, nullptr);
      copy.file.assign(reinterpret_cast<const char*>(bytes), static_cast<size_t>(size));
      sqlite3_free(bytes);
      auto history = store_->history_copy();
      ASSERT_TRUE(history.is_ok());
      copy.history = history->records;
      copy.history_seq = history->seq;
      copy.history_time_ms = history->time_ms;
      joined.apply({copy});
      joined_from = shipped.records.size();
    }
    if (commit == 150) {
      // A restore to an early bookmark, then (below) commits on top of it.
      restore_in_place(noted[20].first);
      model = noted[20].second;
      ASSERT_EQ(dump(), model);
      note();
    }
  }
  // Some commits the owner kept whole (periodic bases): the backups do too.
  EXPECT_GT(std::count_if(shipped.records.begin(), shipped.records.end(),
                          [](const ReplicaRecord& r) { return r.history_base; }),
            0);
  // Shipped in batches of up to 7 records, as group commits do.
  for (size_t i = 0; i < shipped.records.size(); i += 7) {
    size_t end = std::min(shipped.records.size(), i + 7);
    std::vector<ReplicaRecord> batch(shipped.records.begin() + i, shipped.records.begin() + end);
    whole.apply(batch);
    if (end > joined_from) {
      joined.apply(std::vector<ReplicaRecord>(shipped.records.begin() + std::max(i, joined_from),
                                              shipped.records.begin() + end));
    }
  }
  for (size_t i = 0; i < noted.size(); ++i) {
    const auto& [bookmark, state] = noted[i];
    auto a = whole.state(bookmark);
    ASSERT_TRUE(a.is_ok()) << "bookmark " << i << ": " << a.status().message();
    EXPECT_EQ(dump_image(*a), state) << "the backup with every record, bookmark " << i;
    auto b = joined.state(bookmark);
    ASSERT_TRUE(b.is_ok()) << "bookmark " << i << ": " << b.status().message();
    EXPECT_EQ(dump_image(*b), state) << "the backup that joined, bookmark " << i;
  }
  // The copies themselves are the owner's database.
  auto copy = read_file(whole.database);
  ASSERT_TRUE(copy.is_ok());
  EXPECT_EQ(dump_image(*copy), model);
  // Within a batch a backup keeps a page it wrote before as its changes.
  HistoryFile kept;
  ASSERT_TRUE(kept.open(whole.database + "-history").is_ok());
  EXPECT_GT(std::count_if(kept.entries().begin(), kept.entries().end(),
                          [](const HistoryFile::Entry& e) {
                            return e.kind == HistoryFile::Kind::kChanges && e.bytes < 512;
                          }),
            20);
}

// An import replaces the database as a commit of the history: a base after
// the last bookmark, which still restores the state before the import.
TEST_F(HistoryTest, AnImportIsABaseAndTheStateBeforeItStillRestores) {
  store_->put("a", "mine");
  ASSERT_TRUE(store_->end_turn().is_ok());
  auto before = store_->current_bookmark();
  ASSERT_TRUE(before.is_ok());
  // Another object's database, as an export gives it.
  StoreEnv env{&commits_, &open_dbs_};
  auto other = std::make_unique<ObjectStore>(env, dir_.path() + "/ns/cd", "other.sqlite");
  other->put("b", "theirs");
  ASSERT_TRUE(other->end_turn().is_ok());
  other.reset();
  std::string tmp = dir_.path() + "/import.tmp";
  {
    sqlite3* db = nullptr;
    ASSERT_EQ(sqlite3_open((dir_.path() + "/ns/cd/other.sqlite").c_str(), &db), SQLITE_OK);
    ASSERT_EQ(sqlite3_exec(db, "PRAGMA journal_mode=DELETE", nullptr, nullptr, nullptr), SQLITE_OK);
    sqlite3_close(db);
  }
  ASSERT_EQ(::rename((dir_.path() + "/ns/cd/other.sqlite").c_str(), tmp.c_str()), 0);
  ASSERT_TRUE(store_->replace_files(tmp).is_ok());
  reopen();
  EXPECT_EQ(dump(), (Dump{{"b", "theirs"}}));
  auto list = store_->bookmarks();
  ASSERT_FALSE(list.empty());
  EXPECT_TRUE(list.back().base);
  EXPECT_GT(list.back().bookmark, *before);
  auto restored = store_->database_at(*before);
  ASSERT_TRUE(restored.is_ok()) << restored.status().message();
  EXPECT_EQ(dump_image(*restored), (Dump{{"a", "mine"}}));
}

// Dropping what is older than a commit (retention) keeps every later state
// exactly: the first kept commit becomes a base.
TEST_F(HistoryTest, DroppingTheOldestCommitsKeepsEveryLaterState) {
  for (int i = 0; i < 20; ++i) {
    store_->put("k" + std::to_string(i % 3), std::to_string(i));
    ASSERT_TRUE(store_->end_turn().is_ok());
  }
  store_.reset();
  HistoryFile h;
  ASSERT_TRUE(h.open(path() + "-history").is_ok());
  std::map<uint64_t, std::string> states;
  for (uint64_t seq = 10; seq <= 20; ++seq) {
    auto st = h.state_at(seq);
    ASSERT_TRUE(st.is_ok());
    states[seq] = *st;
  }
  uint64_t size = h.size_bytes();
  ASSERT_TRUE(h.drop_before(10).is_ok());
  EXPECT_EQ(h.entries().front().seq, 10u);
  EXPECT_EQ(h.entries().front().kind, HistoryFile::Kind::kBase);
  EXPECT_EQ(h.state_at(9).status().code(), Code::kNotFound);
  HistoryFile again;  // as the next open reads it
  ASSERT_TRUE(again.open(path() + "-history").is_ok());
  for (auto& [seq, state] : states) EXPECT_EQ(*again.state_at(seq), state) << seq;
  EXPECT_EQ(again.size_bytes(), h.size_bytes());
  std::printf("history of 20 small commits: %llu bytes, %llu after dropping 10\n",
              static_cast<unsigned long long>(size), static_cast<unsigned long long>(h.size_bytes()));
}

// A torn last record is cut off at the next open. When the WAL no longer
// holds that commit (a checkpoint let it start over), the database becomes a
// base, so its bookmark still restores it.
TEST_F(HistoryTest, ATornLastRecordIsCutAndTheDatabaseBecomesABase) {
  store_->put("a", "1");
  ASSERT_TRUE(store_->end_turn().is_ok());
  store_->put("a", "2");
  ASSERT_TRUE(store_->end_turn().is_ok());
  auto bookmark = store_->current_bookmark();
  ASSERT_TRUE(bookmark.is_ok());
  close_and_restart_wal();  // it cannot give the commit back
  std::string history = path() + "-history";
  auto bytes = read_file(history);
  ASSERT_TRUE(bytes.is_ok());
  ASSERT_EQ(::truncate(history.c_str(), static_cast<off_t>(bytes->size() - 10)), 0);
  reopen();
  EXPECT_EQ(store_->get("a"), "2");
  auto again = store_->current_bookmark();
  ASSERT_TRUE(again.is_ok());
  EXPECT_EQ(again->substr(0, 16), bookmark->substr(0, 16));  // the same commit
  auto restored = store_->database_at(*again);
  ASSERT_TRUE(restored.is_ok()) << restored.status().message();
  EXPECT_EQ(dump_image(*restored), (Dump{{"a", "2"}}));
  auto list = store_->bookmarks();
  ASSERT_GE(list.size(), 2u);
  EXPECT_TRUE(list.back().base);
}

uint64_t u64_at(const std::string& bytes, size_t at) {
  uint64_t v;
  std::memcpy(&v, bytes.data() + at, 8);
  return v;
}

// A history file's records rewritten as the first version wrote them
// ('DOH1', checksummed with FNV-1a), after `change` (which may alter them).
std::string as_first_version(std::string bytes, const std::function<void(std::string&)>& change = nullptr) {
  if (change) change(bytes);
  for (size_t at = 0; at < bytes.size();) {
    size_t payload = u64_at(bytes, at + 32), sum_at = at + 40 + payload;
    std::memcpy(bytes.data() + at, "DOH1", 4);
    uint64_t h = 0xcbf29ce484222325ull;
    for (size_t i = at; i < sum_at; ++i) h = (h ^ static_cast<uint8_t>(bytes[i])) * 0x100000001b3ull;
    std::memcpy(bytes.data() + sum_at, &h, 8);
    at = sum_at + 16;
  }
  return bytes;
}

// The history file is synced only before a checkpoint lets the WAL start
// over, and records wait in memory until their commits are durable: after a
// crash its last records can be missing, or present with holes. Open writes
// them again from the WAL, numbered on from the stamp of the first commit
// after the open, so that every bookmark given out still restores exactly
// (by its number: the WAL keeps no time, so a rebuilt record has the latest
// time known, no later than its own); commits made outside turns have
// numbers of their own.
TEST_F(HistoryTest, RecordsAPowerCutTookAreRebuiltFromTheWal) {
  std::string history = path() + "-history";
  std::vector<std::pair<std::string, Dump>> noted;
  std::vector<uint64_t> sizes;  // the file's size after each commit
  for (int i = 0; i < 12; ++i) {
    store_->put("k" + std::to_string(i % 5), std::string(100 + i * 300, static_cast<char>('a' + i)));
    if (i == 5) store_->request_restore("bookmark", "x");  // a table made in the turn...
    ASSERT_TRUE(store_->end_turn().is_ok());
    if (i == 5) store_->clear_pending_restore();  // ...and dropped outside one
    clock_ms_ += 7;
    noted.emplace_back(*store_->current_bookmark(), dump());
    sizes.push_back(store_->history_bytes());  // held or written
  }
  auto check_all = [&](const char* when) {
    auto listed = store_->bookmarks();
    std::map<std::string, std::string> names;  // number -> bookmark
    for (const auto& b : listed) names[b.bookmark.substr(0, 16)] = b.bookmark;
    for (const auto& [bookmark, dumped] : noted) {
      auto it = names.find(bookmark.substr(0, 16));
      ASSERT_TRUE(it != names.end()) << when << ": " << bookmark << " is not listed";
      EXPECT_LE(it->second, bookmark) << when << ": a rebuilt time later than the commit's";
      auto bytes = state(bookmark);
      ASSERT_TRUE(bytes.is_ok()) << when << ": " << bytes.status().message();
      EXPECT_EQ(dump_image(*bytes), dumped) << when << ": " << bookmark;
    }
    EXPECT_FALSE(listed.back().base) << when << ": rebuilt as commits, not taken whole";
  };
  store_.reset();
  // The file kept up to the fourth commit and half of the fifth.
  std::string whole = *read_file(history);
  std::string cut = whole.substr(0, sizes[3] + (sizes[4] - sizes[3]) / 2);
  ASSERT_TRUE(write_file_atomic(history, cut, 0644).is_ok());
  reopen();
  check_all("cut");

  // A hole: the eighth commit's record is there, its pages never arrived.
  store_.reset();
  HistoryFile::Entry eighth{};
  {
    HistoryFile file;
    ASSERT_TRUE(file.open(history).is_ok());
    uint64_t seq = *HistoryFile::parse_bookmark(noted[7].first);
    for (const auto& e : file.entries()) {
      if (e.seq == seq) eighth = e;
    }
    ASSERT_EQ(eighth.seq, seq);
  }
  std::string holed = *read_file(history);
  std::fill(holed.begin() + static_cast<long>(eighth.offset + 60),
            holed.begin() + static_cast<long>(eighth.offset + eighth.bytes - 40), '\0');
  ASSERT_TRUE(write_file_atomic(history, holed, 0644).is_ok());
  reopen();
  check_all("hole");
}

// A history from elsewhere (dobj pull) whose records are well formed but
// describe no real database: refused with an error, without asking for the
// memory they name.
TEST_F(HistoryTest, ARecordWritingFarPastItsDatabaseIsRefused) {
  store_->put("a", "1");
  ASSERT_TRUE(store_->end_turn().is_ok());
  store_.reset();
  std::string good = *read_file(path() + "-history");
  size_t commit = 40 + u64_at(good, 32) + 16;  // the second record: the commit
  ASSERT_LT(commit, good.size());
  std::string file = dir_.path() + "/pulled.history", out = dir_.path() + "/pulled.sqlite";
  for (uint32_t page : {0u, 0x7fffffffu, 100000u}) {
    std::string bad = as_first_version(good, [&](std::string& b) { std::memcpy(b.data() + commit + 40, &page, 4); });
    ASSERT_TRUE(write_file_atomic(file, bad, 0644).is_ok());
    Status st = ObjectStore::write_latest_database(file, out);
    ASSERT_FALSE(st.is_ok()) << page;
    EXPECT_NE(st.message().find("past its database"), std::string::npos) << st.message();
  }
  ASSERT_TRUE(write_file_atomic(file, as_first_version(good), 0644).is_ok());
  Status st = ObjectStore::write_latest_database(file, out);
  ASSERT_TRUE(st.is_ok()) << st.message();
  EXPECT_EQ(dump_image(*read_file(out)), (Dump{{"a", "1"}}));
}

// Histories written by the first version (records 'DOH1', checksummed with
// FNV-1a) still read; a changed byte inside a record is caught either way.
TEST_F(HistoryTest, FirstVersionRecordsStillReadAndDamageIsCaught) {
  std::vector<std::string> marks;
  for (const char* v : {"1", "2", "3"}) {
    store_->put("a", v);
    ASSERT_TRUE(store_->end_turn().is_ok());
    marks.push_back(*store_->current_bookmark());
  }
  store_.reset();
  // That version stamped every commit with its number.
  set_stamp(*HistoryFile::parse_bookmark(marks.back()));
  std::string history = path() + "-history";
  std::string bytes = as_first_version(*read_file(history));
  ASSERT_TRUE(write_file_atomic(history, bytes, 0644).is_ok());
  reopen();
  ASSERT_EQ(store_->bookmarks().size(), 4u);  // the base and the three commits
  for (size_t i = 0; i < marks.size(); ++i) {
    auto restored = state(marks[i]);
    ASSERT_TRUE(restored.is_ok()) << restored.status().message();
    EXPECT_EQ(dump_image(*restored), (Dump{{"a", std::to_string(i + 1)}}));
  }
  // New records are the new version, after the old ones.
  store_->put("a", "4");
  ASSERT_TRUE(store_->end_turn().is_ok());
  auto restored = state(*store_->current_bookmark());
  ASSERT_TRUE(restored.is_ok()) << restored.status().message();
  EXPECT_EQ(dump_image(*restored), (Dump{{"a", "4"}}));

  // One changed byte in the first commit's pages: its state (and every later
  // one, built on it) is refused rather than rebuilt wrong.
  store_.reset();
  bytes = *read_file(history);
  size_t second = 40 + u64_at(bytes, 32) + 16;  // after the base
  bytes[second + 40 + 8 + 100] ^= 0x5a;
  ASSERT_TRUE(write_file_atomic(history, bytes, 0644).is_ok());
  auto damaged = state(marks[0]);
  ASSERT_FALSE(damaged.is_ok());
  EXPECT_NE(damaged.status().message().find("checksum"), std::string::npos) << damaged.status().message();
  EXPECT_TRUE(state(marks[2]).status().message().find("checksum") != std::string::npos);
}

// An open reads a history from its end (the last record, checked whole) and
// the rest only when asked, so a long history opens as fast as a short one;
// every state still rebuilds exactly from a file of many read windows.
// Damage inside the file (a power cut damages only its end) loses the
// records it holds and no others: the states before it and from the next
// periodic base on rebuild, those that need it are refused rather than
// rebuilt wrong, and once it has been found the next commit is a base, so
// the states from there on rebuild.
TEST_F(HistoryTest, ALongHistoryOpensFromItsEndAndDamageInsideLosesOnlyItsRecords) {
  std::mt19937 rng(7);
  std::vector<std::pair<std::string, Dump>> noted;
  Dump model;
  const int kCommits = 3000;
  for (int i = 0; i < kCommits; ++i) {
    std::string key = "k" + std::to_string(rng() % 20);
    std::string value = random_letters(rng, 700 + rng() % 300);
    store_->put(key, value);
    model[key] = value;
    ASSERT_TRUE(store_->end_turn().is_ok());
    clock_ms_ += 10;
    if (i % 100 == 0) noted.emplace_back(*store_->current_bookmark(), model);
  }
  close_and_restart_wal();  // it cannot give commits back

  std::string history = path() + "-history";
  HistoryFile whole;
  ASSERT_TRUE(whole.open(history).is_ok());
  ASSERT_GT(whole.size_bytes(), 3u << 20);  // several of index_all's reads
  for (auto& [mark, want] : noted) {
    auto got = whole.state_at(*HistoryFile::parse_bookmark(mark));
    ASSERT_TRUE(got.is_ok()) << got.status().message();
    EXPECT_EQ(dump_image(*got), want) << mark;
  }
  const std::vector<HistoryFile::Entry> all = whole.entries();
  ASSERT_EQ(all.size(), kCommits + 1u);  // the base, then each commit
  for (size_t i = 1; i < all.size(); ++i) {
    ASSERT_EQ(all[i].offset, all[i - 1].offset + all[i - 1].bytes) << i;
    ASSERT_EQ(all[i].seq, all[i - 1].seq + 1) << i;
  }

  // One byte of the trailer of a record a third of the way in.
  const HistoryFile::Entry victim = all[all.size() / 3];
  std::string bytes = *read_file(history);
  bytes[victim.offset + victim.bytes - 1] ^= 0x5a;
  ASSERT_TRUE(write_file_atomic(history, bytes, 0644).is_ok());
  HistoryFile damaged;
  ASSERT_TRUE(damaged.open(history).is_ok());
  EXPECT_EQ(damaged.last_seq(), whole.last_seq());  // nothing is cut
  EXPECT_EQ(damaged.size_bytes(), whole.size_bytes());
  // The first periodic base after it (ObjectStore::kHistoryBaseEveryBytes)
  // starts the states that rebuild again.
  uint64_t next_base = UINT64_MAX;
  for (const auto& e : all) {
    if (e.kind == HistoryFile::Kind::kBase && e.seq > victim.seq) {
      next_base = e.seq;
      break;
    }
  }
  ASSERT_NE(next_base, UINT64_MAX) << "the history has no base after the damaged record";
  for (auto& [mark, want] : noted) {
    uint64_t seq = *HistoryFile::parse_bookmark(mark);
    auto got = damaged.state_at(seq);
    if (seq < victim.seq || seq >= next_base) {
      ASSERT_TRUE(got.is_ok()) << got.status().message();
      EXPECT_EQ(dump_image(*got), want) << mark;
    } else {
      ASSERT_EQ(got.status().code(), Code::kNotFound) << mark;
      EXPECT_NE(got.status().message().find("lacks commit " + std::to_string(victim.seq)), std::string::npos)
          << got.status().message();
    }
  }
  EXPECT_EQ(damaged.entries().size(), all.size() - 1);  // only the damaged record is left out

  reopen();
  EXPECT_EQ(store_->bookmarks().size(), all.size() - 1);  // found by the listing
  store_->put("after", "1");
  model["after"] = "1";
  ASSERT_TRUE(store_->end_turn().is_ok());
  auto restored = state(*store_->current_bookmark());
  ASSERT_TRUE(restored.is_ok()) << restored.status().message();
  EXPECT_EQ(dump_image(*restored), model);
  EXPECT_EQ(store_->bookmarks().back().base, true);
}

// Records of the earlier format were written before their commits were
// durable, so one could be of a commit the database never got (the
// history's append reached the disk, the WAL's did not): it is dropped at
// the next open. (Records now wait for their commits: the next test.)
TEST_F(HistoryTest, ARecordPastTheDatabaseIsDropped) {
  store_->put("a", "1");
  ASSERT_TRUE(store_->end_turn().is_ok());
  auto first = store_->current_bookmark();
  ASSERT_TRUE(first.is_ok());
  store_.reset();
  auto wal = read_file(path() + "-wal");
  ASSERT_TRUE(wal.is_ok());
  reopen();
  store_->put("a", "2");
  ASSERT_TRUE(store_->end_turn().is_ok());
  store_.reset();
  // Back to the WAL before the second commit: the history still has it.
  ASSERT_TRUE(write_file_atomic(path() + "-wal", *wal, 0644).is_ok());
  std::string history = path() + "-history";
  ASSERT_TRUE(write_file_atomic(history, as_first_version(*read_file(history)), 0644).is_ok());
  reopen();
  EXPECT_EQ(store_->get("a"), "1");
  auto now = store_->current_bookmark();
  ASSERT_TRUE(now.is_ok());
  EXPECT_EQ(*now, *first);
  store_->put("a", "3");
  ASSERT_TRUE(store_->end_turn().is_ok());
  auto list = store_->bookmarks();
  ASSERT_EQ(list.size(), 3u);  // base, "1", "3"
  auto restored = store_->database_at(list.back().bookmark);
  ASSERT_TRUE(restored.is_ok());
  EXPECT_EQ(dump_image(*restored), (Dump{{"a", "3"}}));
}

// A restore cut short anywhere (ObjectStore::prepare_restore's three steps)
// leaves the object as it was or restored, with a history that matches it.
TEST_F(HistoryTest, ARestoreCutShortAnywhereLeavesTheObjectAsItWasOrRestored) {
  store_->put("a", "1");
  ASSERT_TRUE(store_->end_turn().is_ok());
  auto first = store_->current_bookmark();
  store_->put("a", "2");
  ASSERT_TRUE(store_->end_turn().is_ok());
  auto second = store_->current_bookmark();
  ASSERT_TRUE(first.is_ok() && second.is_ok());
  size_t before = store_->bookmarks().size();
  std::string tmp = dir_.path() + "/restore.tmp";
  std::string history = dir_.path() + "/ns/ab/obj.sqlite-history";
  // Prepared, then the process died: nothing happened.
  ASSERT_TRUE(store_->prepare_restore(*first, tmp).is_ok());
  reopen();
  EXPECT_EQ(store_->get("a"), "2");
  EXPECT_EQ(*store_->current_bookmark(), *second);
  EXPECT_EQ(store_->bookmarks().size(), before);
  // In place, but the process died before its base reached the history:
  // the open records the base.
  auto plan = store_->prepare_restore(*first, tmp);
  ASSERT_TRUE(plan.is_ok()) << plan.status().message();
  auto history_size = std::filesystem::file_size(history);
  ASSERT_TRUE(ObjectStore::build_restore(*plan).is_ok());
  ASSERT_GT(std::filesystem::file_size(history), history_size);
  std::filesystem::resize_file(history, history_size);
  reopen();
  EXPECT_EQ(store_->get("a"), "1");
  auto restored = store_->current_bookmark();
  ASSERT_TRUE(restored.is_ok());
  EXPECT_GT(*restored, *second);
  EXPECT_EQ(store_->bookmarks().size(), before + 1);
  EXPECT_EQ(dump_image(*state(*restored)), (Dump{{"a", "1"}}));
  // And it goes on from there; every state before still rebuilds.
  store_->put("a", "3");
  ASSERT_TRUE(store_->end_turn().is_ok());
  EXPECT_EQ(dump_image(*state(*store_->current_bookmark())), (Dump{{"a", "3"}}));
  EXPECT_EQ(dump_image(*state(*second)), (Dump{{"a", "2"}}));
  EXPECT_EQ(dump_image(*state(*first)), (Dump{{"a", "1"}}));
  // A bookmark not in the history is refused before anything changes.
  EXPECT_EQ(store_->prepare_restore("0000000000000999-000000000000", tmp).status().code(), Code::kNotFound);
  EXPECT_EQ(store_->get("a"), "3");
}

// A commit's record is written to the file only once the commit is durable
// (until then it is held in memory, and a crash leaves it to the WAL), so no
// record can outlive a commit a power cut took.
TEST_F(HistoryTest, ARecordReachesTheFileOnlyOnceItsCommitIsDurable) {
  Flusher flusher;
  flusher.start();
  std::mutex mu;
  std::vector<std::function<void()>> posted;  // the shard's loop, run by hand
  GroupCommit commits(&flusher, [&](std::function<void()> f) {
    std::lock_guard lock(mu);
    posted.push_back(std::move(f));
  });
  StoreEnv env{&commits, &open_dbs_};
  env.history = true;
  env.now_ms = [this] { return clock_ms_; };
  auto store = std::make_unique<ObjectStore>(env, dir_.path() + "/ns/cd", "obj.sqlite");
  std::string history = dir_.path() + "/ns/cd/obj.sqlite-history";
  store->put("a", "0");
  ASSERT_TRUE(store->end_turn().is_ok());
  uint64_t at_start = std::filesystem::file_size(history);
  for (int i = 0; i < 60; ++i) {
    store->put("k" + std::to_string(i), std::string(2000, static_cast<char>('a' + i % 26)));
    ASSERT_TRUE(store->end_turn().is_ok());
  }
  // No flush has been seen through: everything past the first base waits.
  EXPECT_GT(store->history_bytes(), at_start + HistoryFile::kHoldLimit);
  EXPECT_EQ(std::filesystem::file_size(history), at_start);
  // An answer waits for the last commit: the flush runs, and its completion
  // runs on the "shard".
  commits.when_durable(commits.last_seq(), [](Status st) { EXPECT_TRUE(st.is_ok()); });
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  while (commits.durable_seq() < commits.last_seq() && std::chrono::steady_clock::now() < deadline) {
    std::vector<std::function<void()>> run;
    {
      std::lock_guard lock(mu);
      run.swap(posted);
    }
    for (auto& f : run) f();
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  ASSERT_EQ(commits.durable_seq(), commits.last_seq());
  store->put("b", "1");
  ASSERT_TRUE(store->end_turn().is_ok());
  // The durable ones went out together; the last one waits for its flush.
  uint64_t written = std::filesystem::file_size(history);
  EXPECT_GT(written, at_start + HistoryFile::kHoldLimit);
  EXPECT_LT(written, store->history_bytes());
  // Closed before its flush: its record is left to the WAL, and the next
  // open numbers it from there.
  auto last = store->current_bookmark();
  ASSERT_TRUE(last.is_ok());
  store.reset();
  EXPECT_EQ(std::filesystem::file_size(history), written);
  for (auto& f : posted) f();
  flusher.stop();
  GroupCommit os_mode(nullptr, [](std::function<void()> f) { f(); });
  StoreEnv again{&os_mode, &open_dbs_};
  again.history = true;
  again.now_ms = [this] { return clock_ms_; };
  store = std::make_unique<ObjectStore>(again, dir_.path() + "/ns/cd", "obj.sqlite");
  auto now = store->current_bookmark();
  ASSERT_TRUE(now.is_ok());
  EXPECT_EQ(now->substr(0, 16), last->substr(0, 16));
  auto bytes = store->database_at(*now);
  ASSERT_TRUE(bytes.is_ok()) << bytes.status().message();
  EXPECT_EQ(dump_image(*bytes).at("b"), "1");
  EXPECT_EQ(dump_image(*bytes).size(), 62u);
}

}  // namespace
}  // namespace dobj::internal
