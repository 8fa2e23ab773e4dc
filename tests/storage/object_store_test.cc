#include "storage/object_store.h"

#include <gtest/gtest.h>
#include <sqlite3.h>
#include <sys/stat.h>
#include <unistd.h>

#include <fstream>

#include "base/fs.h"
#include "storage/import_check.h"
#include "runtime/api_access.h"
#include "support/errors.h"
#include "support/server_process.h"

namespace dobj {

struct Point {
  int x, y;
};
template <>
struct Codec<Point> {
  static void encode(const Point& p, std::string& out) {
    out += std::to_string(p.x) + "," + std::to_string(p.y);
  }
  static Point decode(std::string_view s) {
    auto comma = s.find(',');
    if (comma == std::string_view::npos) throw Error(Code::kInvalidArgument, "not a point");
    return Point{std::stoi(std::string(s.substr(0, comma))),
                 std::stoi(std::string(s.substr(comma + 1)))};
  }
};

namespace internal {
namespace {

using Entries = std::vector<std::pair<std::string, int64_t>>;

class StoreTest : public ::testing::Test {
 protected:
  std::unique_ptr<ObjectStore> open_store(const std::string& name = "obj") {
    return std::make_unique<ObjectStore>(StoreEnv{&commits_, &open_dbs_, &faults_},
                                         dir_.path() + "/ns/ab", name + ".sqlite");
  }
  void SetUp() override {
    store_ = open_store();
    storage_ = std::make_unique<Storage>(internal::ApiAccess::storage(store_.get()));
  }
  Storage& s() { return *storage_; }
  std::vector<std::string> keys(const ListOptions& o) {
    std::vector<std::string> out;
    for (auto& [k, v] : s().list<int64_t>(o)) out.push_back(k);
    return out;
  }
  void put_keys(std::initializer_list<const char*> ks) {
    for (const char* k : ks) s().put(k, int64_t{1});
    ASSERT_TRUE(store_->end_turn().is_ok());
  }

  test::TempDir dir_;
  GroupCommit commits_{nullptr, [](std::function<void()> f) { f(); }};
  DbCache open_dbs_{4};
  StoreFaults faults_;
  std::unique_ptr<ObjectStore> store_;
  std::unique_ptr<Storage> storage_;
};

TEST_F(StoreTest, TypedValuesRoundTrip) {
  s().put("i", int64_t{-42});
  s().put("d", 2.5);
  s().put("s", std::string("héllo"));
  s().put("b", Bytes{0, 1, 255});
  s().put("j", Json{{"a", {1, 2}}});
  s().put("p", Point{3, 4});
  ASSERT_TRUE(store_->end_turn().is_ok());
  EXPECT_EQ(s().get<int64_t>("i"), -42);
  EXPECT_EQ(s().get<double>("d"), 2.5);
  EXPECT_EQ(s().get<std::string>("s"), "héllo");
  EXPECT_EQ(s().get<Bytes>("b"), (Bytes{0, 1, 255}));
  EXPECT_EQ(s().get<Json>("j"), (Json{{"a", {1, 2}}}));
  EXPECT_EQ(s().get<Point>("p")->y, 4);
  EXPECT_EQ(s().get<Json>("i"), Json(-42));  // JSON reads scalars too
  EXPECT_FALSE(s().get<int64_t>("missing").has_value());
}

// get_json_text gives what get<Json> and dump would, for every type JSON
// reads, without the parse.
TEST_F(StoreTest, JsonTextIsTheValueAsGetAndDumpWouldPrintIt) {
  Json nested = Json::parse(R"({"z":[1,2.5,-0.0,1e300],"a":{"é":"\u0001\"q\""},"n":null,"t":true})");
  s().put("j", nested);
  s().put("i", int64_t{-42});
  s().put("d", 0.1);
  s().put("s", std::string("line\nbreak \"quoted\" é"));
  s().put("b", Bytes{0, 1, 255});
  ASSERT_TRUE(store_->end_turn().is_ok());
  for (const char* k : {"j", "i", "d", "s"}) {
    EXPECT_EQ(s().get_json_text(k), s().get<Json>(k)->dump()) << k;
  }
  EXPECT_EQ(Json::parse(*s().get_json_text("j")), nested);
  EXPECT_EQ(s().get_json_text("s"), R"("line\nbreak \"quoted\" é")");
  EXPECT_FALSE(s().get_json_text("missing").has_value());
  try {
    (void)s().get_json_text("b");
    FAIL() << "bytes are not JSON";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), Code::kInvalidArgument);
  }
}

TEST_F(StoreTest, ReadingAsTheWrongTypeIsAClearError) {
  s().put("s", std::string("text"));
  try {
    (void)s().get<int64_t>("s");
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), Code::kInvalidArgument);
    EXPECT_STREQ(e.what(), "stored value is a string, not an integer");
  }
}

TEST_F(StoreTest, TextLiteralsAndStringViewsAreStoredAsStrings) {
  s().put("literal", "v");
  const char* pointer = "from a pointer";
  s().put("pointer", pointer);
  std::string backing = "a view";
  s().put("view", std::string_view(backing));
  ASSERT_TRUE(store_->end_turn().is_ok());
  EXPECT_EQ(s().get<std::string>("literal"), "v");
  EXPECT_EQ(s().get<std::string>("pointer"), "from a pointer");
  EXPECT_EQ(s().get<std::string>("view"), "a view");
}

// A value that does not fit the type asked for is an error, never a wrap.
TEST_F(StoreTest, IntegersThatDoNotFitAreErrorsNotTruncations) {
  s().put("big", int64_t{5'000'000'000});
  s().put("negative", -1);
  ASSERT_TRUE(store_->end_turn().is_ok());
  EXPECT_EQ(s().get<int64_t>("big"), 5'000'000'000);
  auto message = [](auto read) { return test::invalid_argument_message(read); };
  EXPECT_EQ(message([&] { (void)s().get<int32_t>("big"); }),
            "cannot read the integer 5000000000 as int32_t: it does not fit");
  EXPECT_EQ(message([&] { (void)s().get<uint32_t>("negative"); }),
            "cannot read the integer -1 as uint32_t: it does not fit");
  EXPECT_EQ(s().get<int32_t>("negative"), -1);
  EXPECT_EQ(message([&] { s().put("huge", uint64_t{1} << 63); }),
            "cannot store the integer 9223372036854775808 as int64_t: it does not fit");
  EXPECT_FALSE(s().get<int64_t>("huge").has_value());
}

TEST_F(StoreTest, ReadingAnObjectThatNeverWroteCreatesNoFile) {
  EXPECT_FALSE(s().get<int64_t>("x").has_value());
  EXPECT_TRUE(s().list<int64_t>().empty());
  EXPECT_FALSE(s().remove("x"));
  EXPECT_TRUE(store_->end_turn().is_ok());
  EXPECT_FALSE(file_exists(store_->path()));
  s().put("x", int64_t{1});
  EXPECT_TRUE(store_->end_turn().is_ok());
  EXPECT_TRUE(file_exists(store_->path()));
}

// A replacement (import, restore) removes the old WAL before it moves the new
// file in. One that fails there (here the new file is missing; a crash at
// that point is the same case) keeps every commit the object had: they were
// copied into the database file, synced, before the WAL went.
TEST_F(StoreTest, AReplacementThatFailsLosesNoCommit) {
  s().put("a", int64_t{1});
  ASSERT_TRUE(store_->end_turn().is_ok());
  s().put("b", int64_t{2});
  ASSERT_TRUE(store_->end_turn().is_ok());
  ASSERT_TRUE(file_exists(store_->path() + "-wal"));  // the commits are in the WAL only
  Status st = store_->replace_files(dir_.path() + "/missing.sqlite");
  ASSERT_FALSE(st.is_ok());
  EXPECT_NE(st.message().find("cannot move"), std::string::npos) << st.message();
  EXPECT_FALSE(file_exists(store_->path() + "-wal"));
  storage_.reset();
  store_ = open_store();
  storage_ = std::make_unique<Storage>(internal::ApiAccess::storage(store_.get()));
  EXPECT_EQ(s().get<int64_t>("a"), 1);
  EXPECT_EQ(s().get<int64_t>("b"), 2);
}

TEST_F(StoreTest, ListOrdersKeysByTheirBytes) {
  put_keys({"b", "a", "z", "\xc3\xa9", "B", "aa"});
  EXPECT_EQ(keys({}), (std::vector<std::string>{"B", "a", "aa", "b", "z", "\xc3\xa9"}));
}

TEST_F(StoreTest, ListHonoursStartStartAfterEndPrefixReverseAndLimit) {
  put_keys({"a", "b", "c", "d", "e", "pa", "pb", "pc", "q"});
  ListOptions o;
  o.start = "b";
  o.end = "d";
  EXPECT_EQ(keys(o), (std::vector<std::string>{"b", "c"}));  // end is exclusive
  o = {};
  o.start_after = "b";
  o.limit = 2;
  EXPECT_EQ(keys(o), (std::vector<std::string>{"c", "d"}));
  o = {};
  o.prefix = "p";
  EXPECT_EQ(keys(o), (std::vector<std::string>{"pa", "pb", "pc"}));
  o.reverse = true;
  EXPECT_EQ(keys(o), (std::vector<std::string>{"pc", "pb", "pa"}));
  o = {};
  o.reverse = true;
  o.limit = 2;  // reverse with limit gives the last N
  EXPECT_EQ(keys(o), (std::vector<std::string>{"q", "pc"}));
  o = {};
  o.prefix = "p";
  o.start = "pb";
  EXPECT_EQ(keys(o), (std::vector<std::string>{"pb", "pc"}));
  o = {};
  o.prefix = "p";
  o.start_after = "pa";
  o.end = "pc";
  EXPECT_EQ(keys(o), (std::vector<std::string>{"pb"}));
  o = {};
  o.start = "x";
  o.end = "b";
  EXPECT_TRUE(keys(o).empty());
}

TEST_F(StoreTest, ListRefusesStartWithStartAfterAndNonPositiveLimits) {
  put_keys({"a"});
  ListOptions o;
  o.start = "a";
  o.start_after = "a";
  EXPECT_THROW(keys(o), Error);
  for (int64_t limit : {0, -1}) {
    ListOptions l;
    l.limit = limit;
    EXPECT_THROW(keys(l), Error);
  }
}

TEST_F(StoreTest, PrefixOfHighBytesHasNoUpperBound) {
  put_keys({"\xff", "\xff\xff", "\xfe"});
  ListOptions o;
  o.prefix = "\xff";
  EXPECT_EQ(keys(o), (std::vector<std::string>{"\xff", "\xff\xff"}));
}

TEST_F(StoreTest, KeyAndValueLimitsAreEnforcedAtTheirExactSize) {
  std::string key(Storage::kMaxKeyBytes, 'k');
  EXPECT_NO_THROW(s().put(key, int64_t{1}));
  EXPECT_THROW(s().put(key + "k", int64_t{1}), Error);
  EXPECT_THROW((void)s().get<int64_t>(key + "k"), Error);
  std::string value(Storage::kMaxValueBytes - 1, 'v');  // + tag byte = the limit
  EXPECT_NO_THROW(s().put("v", value));
  EXPECT_THROW(s().put("v2", value + "v"), Error);
  Status st = store_->end_turn();
  ASSERT_TRUE(st.is_ok()) << st.message();
  EXPECT_FALSE(s().get<std::string>("v2").has_value());
}

TEST_F(StoreTest, BatchesOverTheKeyLimitAreRefusedWhole) {
  std::vector<std::pair<std::string, int64_t>> entries;
  for (int i = 0; i < 129; ++i) entries.emplace_back("k" + std::to_string(i), i);
  EXPECT_THROW(s().put(entries), Error);
  entries.pop_back();
  EXPECT_NO_THROW(s().put(entries));
  std::vector<std::string> ks;
  for (int i = 0; i < 129; ++i) ks.push_back("k" + std::to_string(i));
  EXPECT_THROW((void)s().get<int64_t>(ks), Error);
  EXPECT_THROW(s().remove(ks), Error);
  ks.pop_back();
  EXPECT_EQ(s().get<int64_t>(ks).size(), 128u);
  EXPECT_EQ(s().remove(ks), 128u);
}

TEST_F(StoreTest, ABatchWithOneBadValueWritesNothing) {
  std::vector<std::pair<std::string, std::string>> entries = {
      {"a", "ok"}, {"b", std::string(Storage::kMaxValueBytes, 'x')}};
  EXPECT_THROW(s().put(entries), Error);
  ASSERT_TRUE(store_->end_turn().is_ok());
  EXPECT_FALSE(s().get<std::string>("a").has_value());
}

TEST_F(StoreTest, TransactionRollsBackOnExceptionAndOnRequest) {
  s().put("x", int64_t{1});
  EXPECT_THROW(s().transaction([&](Transaction&) {
    s().put("x", int64_t{2});
    s().put("y", int64_t{2});
    throw std::runtime_error("boom");
  }),
               std::runtime_error);
  s().transaction([&](Transaction& t) {
    s().put("z", int64_t{3});
    t.rollback();
  });
  ASSERT_TRUE(store_->end_turn().is_ok());
  EXPECT_EQ(s().get<int64_t>("x"), 1);
  EXPECT_FALSE(s().get<int64_t>("y").has_value());
  EXPECT_FALSE(s().get<int64_t>("z").has_value());
}

TEST_F(StoreTest, NestedTransactionRollsBackOnlyItself) {
  s().transaction_sync([&] {
    s().put("outer", int64_t{1});
    try {
      s().transaction_sync([&] {
        s().put("inner", int64_t{1});
        throw std::runtime_error("inner fails");
      });
    } catch (const std::runtime_error&) {
    }
  });
  ASSERT_TRUE(store_->end_turn().is_ok());
  EXPECT_TRUE(s().get<int64_t>("outer").has_value());
  EXPECT_FALSE(s().get<int64_t>("inner").has_value());
}

TEST_F(StoreTest, AFailedCommitDiscardsTheWholeTurn) {
  s().put("kept", int64_t{1});
  ASSERT_TRUE(store_->end_turn().is_ok());
  uint64_t before = store_->last_commit_seq();
  s().put("a", int64_t{1});
  s().put("kept", int64_t{2});
  faults_.fail_next_commits = 1;
  Status st = store_->end_turn();
  EXPECT_EQ(st.code(), Code::kReset);
  EXPECT_EQ(store_->last_commit_seq(), before);  // nothing new to wait for
  EXPECT_FALSE(s().get<int64_t>("a").has_value());
  EXPECT_EQ(s().get<int64_t>("kept"), 1);
}

TEST_F(StoreTest, ADiscardedFirstTurnLeavesAUsableDatabase) {
  s().put("x", int64_t{1});  // creates the file
  store_->discard_turn();
  EXPECT_FALSE(s().get<int64_t>("x").has_value());
  EXPECT_TRUE(s().list<int64_t>().empty());
  s().put("y", int64_t{2});
  ASSERT_TRUE(store_->end_turn().is_ok());
  EXPECT_EQ(s().get<int64_t>("y"), 2);
}

// A power cut before a new object's first commit was durable can leave its
// file with only a part of the empty database it was copied from (its name
// reached the disk with another object's folder sync). The object opens
// again, and a commit that was durable in the WAL over such a file (after a
// discarded first turn, the file reaches the disk with the next flush, not
// before) is read back.
TEST_F(StoreTest, ANewFileCutShortByAPowerCutOpensAgainWithItsLog) {
  std::string path = dir_.path() + "/ns/ab/obj.sqlite";
  s().put("x", int64_t{1});  // creates the file
  store_->discard_turn();
  auto image = read_file(path);
  ASSERT_TRUE(image.is_ok());
  ASSERT_GT(image->size(), 1000u);
  storage_.reset();
  store_.reset();
  for (size_t cut : {size_t{0}, size_t{50}, image->size() / 2 + 7, image->size() - 1}) {
    SCOPED_TRACE(cut);
    auto again = open_store();
    Storage s2 = internal::ApiAccess::storage(again.get());
    s2.put("y" + std::to_string(cut), int64_t{2});
    ASSERT_TRUE(again->end_turn().is_ok());
    again.reset();
    ASSERT_EQ(::truncate(path.c_str(), static_cast<off_t>(cut)), 0);
    again = open_store();
    Storage s3 = internal::ApiAccess::storage(again.get());
    EXPECT_EQ(s3.get<int64_t>("y" + std::to_string(cut)), 2);
    EXPECT_EQ(s3.list<int64_t>().size(), 1u);
    s3.put("z", int64_t{3});
    EXPECT_TRUE(again->end_turn().is_ok());
    s3.delete_all();
    ASSERT_TRUE(again->end_turn().is_ok());
  }
}

// A file that is not a part of the empty database is not touched: a
// database that SQLite finds corrupt stays an error.
TEST_F(StoreTest, AShortFileThatIsNotAPartOfANewDatabaseIsNotRewritten) {
  std::string path = dir_.path() + "/ns/ab/obj.sqlite";
  ASSERT_TRUE(make_dirs(dir_.path() + "/ns/ab").is_ok());
  std::ofstream(path) << std::string(5000, 'x');
  EXPECT_THROW(s().get<int64_t>("x"), Error);
  auto bytes = read_file(path);
  ASSERT_TRUE(bytes.is_ok());
  EXPECT_EQ(*bytes, std::string(5000, 'x'));
}

TEST_F(StoreTest, DeleteAllRemovesEveryKey) {
  put_keys({"a", "b"});
  s().delete_all();
  ASSERT_TRUE(store_->end_turn().is_ok());
  EXPECT_TRUE(keys({}).empty());
}

TEST_F(StoreTest, DataSurvivesClosingAndReopening) {
  s().put("x", int64_t{7});
  ASSERT_TRUE(store_->end_turn().is_ok());
  storage_.reset();
  store_.reset();
  auto again = open_store();
  Storage s2 = internal::ApiAccess::storage(again.get());
  EXPECT_EQ(s2.get<int64_t>("x"), 7);
}

TEST_F(StoreTest, CheckpointsKeepTheWalBoundedAndLoseNothing) {
  std::string value(3000, 'v');
  for (int i = 0; i < 3000; ++i) {
    (void)s().get<std::string>("k0");  // a read left open would block checkpoints
    s().put("k" + std::to_string(i % 500), value + std::to_string(i));
    ASSERT_TRUE(store_->end_turn().is_ok());
    // The owner's part (ObjectHost): without a flusher it runs at once.
    bool done = false;
    if (store_->checkpoint_due()) {
      store_->start_checkpoint([&] { done = true; });
      EXPECT_TRUE(done);
    }
  }
  struct stat st;
  ASSERT_EQ(stat((store_->path() + "-wal").c_str(), &st), 0);
  // Without checkpoints 3000 commits of a 3 KB value would pass 12 MB.
  EXPECT_LT(st.st_size, (ObjectStore::kCheckpointFrames + 50) * 4200);
  storage_.reset();
  store_.reset();
  auto again = open_store();
  Storage s2 = internal::ApiAccess::storage(again.get());
  for (int i = 2500; i < 3000; ++i) {
    EXPECT_EQ(s2.get<std::string>("k" + std::to_string(i % 500)), value + std::to_string(i));
  }
}

// WAL writes are combined per commit (storage/vfs.h): a turn big enough to
// spill pages into the WAL before it ends, rolled back, then commits larger
// than one combined write (64 KiB), must all read back the same from a fresh
// connection, which knows only what reached the file.
TEST_F(StoreTest, SpilledRolledBackAndLargeCommitsReadBackAfterAReopen) {
  std::string chunk(60 * 1024, 'x');
  for (int i = 0; i < 40; ++i) s().put("spill" + std::to_string(i), chunk);  // 2.4 MB > cache
  store_->discard_turn();
  std::string big(100 * 1024, 'b');
  s().put("a", int64_t{1});
  s().put("big", big);
  ASSERT_TRUE(store_->end_turn().is_ok());
  // What the file holds once end_turn returned, read by a second connection
  // while the first is still open: the commit, not held back in memory.
  {
    sqlite3* db = nullptr;
    ASSERT_EQ(sqlite3_open_v2((dir_.path() + "/ns/ab/obj.sqlite").c_str(), &db,
                              SQLITE_OPEN_READONLY, "unix-none"),
              SQLITE_OK);
    sqlite3_stmt* q = nullptr;
    ASSERT_EQ(sqlite3_exec(db, "PRAGMA locking_mode=EXCLUSIVE", nullptr, nullptr, nullptr),
              SQLITE_OK);
    ASSERT_EQ(sqlite3_prepare_v2(db, "SELECT count(*), max(length(value)) FROM _dobj_kv", -1, &q,
                                 nullptr),
              SQLITE_OK)
        << sqlite3_errmsg(db);
    ASSERT_EQ(sqlite3_step(q), SQLITE_ROW) << sqlite3_errmsg(db);
    EXPECT_EQ(sqlite3_column_int(q, 0), 2);
    EXPECT_GT(sqlite3_column_int(q, 1), 100 * 1024);
    sqlite3_finalize(q);
    sqlite3_close(db);
  }
  for (int round = 2; round <= 3; ++round) {
    storage_.reset();
    store_ = open_store();  // a new connection: replays the WAL from the file
    storage_ = std::make_unique<Storage>(internal::ApiAccess::storage(store_.get()));
    EXPECT_EQ(s().get<int64_t>("a"), round - 1);
    EXPECT_EQ(s().get<std::string>("big"), big);
    EXPECT_FALSE(s().get<std::string>("spill0").has_value());
    s().put("a", int64_t{round});
    ASSERT_TRUE(store_->end_turn().is_ok());
  }
}

// A reopened connection reads a small WAL back in one go (the VFS's read
// ahead) and a large one frame by frame: both give every commit back, and
// commits made after the reopen land after them.
TEST_F(StoreTest, SmallAndLargeWalsReadBackAfterAReopen) {
  std::string wal = dir_.path() + "/ns/ab/obj.sqlite-wal";
  auto reopen = [&] {
    storage_.reset();
    store_ = open_store();
    storage_ = std::make_unique<Storage>(internal::ApiAccess::storage(store_.get()));
  };
  for (int i = 0; i < 100; ++i) {
    s().put("k" + std::to_string(i), int64_t{i});
    ASSERT_TRUE(store_->end_turn().is_ok());
  }
  struct stat st {};
  ASSERT_EQ(::stat(wal.c_str(), &st), 0);
  EXPECT_LT(st.st_size, 256 * 1024);  // read ahead
  reopen();
  for (int i = 0; i < 100; ++i) EXPECT_EQ(s().get<int64_t>("k" + std::to_string(i)), i);
  s().put("k0", int64_t{-1});
  ASSERT_TRUE(store_->end_turn().is_ok());
  std::string value(2000, 'v');
  for (int i = 0; i < 200; ++i) {
    s().put("big" + std::to_string(i), value);
    ASSERT_TRUE(store_->end_turn().is_ok());
  }
  ASSERT_EQ(::stat(wal.c_str(), &st), 0);
  EXPECT_GT(st.st_size, 256 * 1024);  // read frame by frame
  reopen();
  EXPECT_EQ(s().get<int64_t>("k0"), -1);
  EXPECT_EQ(s().get<int64_t>("k99"), 99);
  for (int i = 0; i < 200; ++i) EXPECT_EQ(s().get<std::string>("big" + std::to_string(i)), value);
}

// The stored alarm is remembered between reads (an alarm run reads it four
// times); every way a turn can undo a write forgets it.
TEST_F(StoreTest, TheAlarmReadsBackThroughRollbacksAndReopens) {
  store_->set_alarm(5);
  EXPECT_EQ(store_->get_alarm(), 5);
  store_->begin_nested();
  store_->set_alarm(9);
  EXPECT_EQ(store_->get_alarm(), 9);
  store_->end_nested(/*commit=*/false);
  EXPECT_EQ(store_->get_alarm(), 5);
  store_->discard_turn();
  EXPECT_EQ(store_->get_alarm(), std::nullopt);
  store_->set_alarm(7);
  ASSERT_TRUE(store_->end_turn().is_ok());
  store_->delete_all();
  EXPECT_EQ(store_->get_alarm(), std::nullopt);
  store_->discard_turn();
  EXPECT_EQ(store_->get_alarm(), 7);
  store_->delete_alarm();
  faults_.fail_next_commits = 1;
  EXPECT_FALSE(store_->end_turn().is_ok());
  EXPECT_EQ(store_->get_alarm(), 7);
  storage_.reset();
  store_ = open_store();
  EXPECT_EQ(store_->get_alarm(), 7);
}

// The count of an alarm's failed runs is in the database (it moves with the
// data to another node), starts over when the alarm is set again, and is
// added to a database made before it was kept, which an import still takes
// as it was and after the change.
TEST_F(StoreTest, TheAlarmsRetryCountIsStoredAndStartsOverWithANewAlarm) {
  store_->set_alarm(5);
  store_->set_alarm_retry(2);
  ASSERT_TRUE(store_->end_turn().is_ok());
  storage_.reset();
  store_ = open_store();
  EXPECT_EQ(store_->stored_alarm_retry(), 2);
  store_->set_alarm(6);
  EXPECT_EQ(store_->stored_alarm_retry(), 0);
  store_->delete_alarm();
  EXPECT_EQ(store_->stored_alarm_retry(), 0);
  ASSERT_TRUE(store_->end_turn().is_ok());

  std::string old = dir_.path() + "/old.sqlite";
  {
    Db db;
    ASSERT_TRUE(db.open(old, /*create=*/true).is_ok());
    for (const std::string& schema : ObjectStore::earlier_runtime_schemas()) {
      if (schema.find("ALTER") == std::string::npos) {
        ASSERT_TRUE(db.exec(schema.c_str()).is_ok());
      }
    }
    ASSERT_TRUE(db.exec("INSERT INTO _dobj_alarm(id, at) VALUES (0, 9)").is_ok());
  }
  EXPECT_TRUE(check_importable_database(old).is_ok());
  ASSERT_TRUE(make_dirs(dir_.path() + "/ns/cd").is_ok());
  ASSERT_EQ(::rename(old.c_str(), (dir_.path() + "/ns/cd/old.sqlite").c_str()), 0);
  auto legacy = std::make_unique<ObjectStore>(StoreEnv{&commits_, &open_dbs_, &faults_},
                                              dir_.path() + "/ns/cd", "old.sqlite");
  EXPECT_EQ(legacy->stored_alarm_retry(), 0);
  legacy->set_alarm_retry(3);
  ASSERT_TRUE(legacy->end_turn().is_ok());
  EXPECT_EQ(legacy->stored_alarm_retry(), 3);
  EXPECT_EQ(legacy->stored_alarm(), 9);
  legacy.reset();
  // As an export leaves it: one file, the WAL folded in.
  auto plain_exec = [](const std::string& path, const char* sql) {
    sqlite3* db = nullptr;
    int rc = sqlite3_open(path.c_str(), &db);
    if (rc == SQLITE_OK) rc = sqlite3_exec(db, sql, nullptr, nullptr, nullptr);
    sqlite3_close(db);
    return rc;
  };
  ASSERT_EQ(plain_exec(dir_.path() + "/ns/cd/old.sqlite", "PRAGMA journal_mode=DELETE"), SQLITE_OK);
  Status altered = check_importable_database(dir_.path() + "/ns/cd/old.sqlite");
  EXPECT_TRUE(altered.is_ok()) << altered.message();
  // A column of its own on the runtime's table is still refused.
  ASSERT_EQ(plain_exec(dir_.path() + "/ns/cd/old.sqlite", "ALTER TABLE _dobj_alarm ADD COLUMN extra INTEGER"),
            SQLITE_OK);
  EXPECT_FALSE(check_importable_database(dir_.path() + "/ns/cd/old.sqlite").is_ok());
}

// A delay counts from the runtime's clock, not the system's: with a clock
// in 1970 the alarm lands in 1970. A time point is rounded up to the ms.
TEST_F(StoreTest, AlarmsTakeADelayByTheRuntimesClockOrATimePoint) {
  int64_t fake_now = 1'000'000;
  auto store = std::make_unique<ObjectStore>(
      StoreEnv{.commits = &commits_, .open_dbs = &open_dbs_, .now_ms = [&] { return fake_now; }},
      dir_.path() + "/ns/cd", "clocked.sqlite");
  Storage storage = internal::ApiAccess::storage(store.get());
  using namespace std::chrono_literals;
  storage.set_alarm(30s);
  EXPECT_EQ(storage.get_alarm(), 1'030'000);
  fake_now += 5;
  storage.set_alarm(std::chrono::microseconds(1500));
  EXPECT_EQ(storage.get_alarm(), 1'000'007);
  storage.set_alarm(std::chrono::system_clock::time_point(std::chrono::microseconds(42'000'001)));
  EXPECT_EQ(storage.get_alarm(), 42'001);
  EXPECT_EQ(store->now_ms(), 1'000'005);
}

// Reads of keys read or written before are answered from memory
// (ObjectStore::cached_values_). Whatever undoes writes must make the
// following reads see the stored values again, not the undone ones.
TEST_F(StoreTest, ReadsAfterUndoneWritesSeeWhatIsStored) {
  store_->put("k", "old");
  ASSERT_TRUE(store_->end_turn().is_ok());
  EXPECT_EQ(store_->get("k"), "old");
  EXPECT_EQ(store_->get("missing"), std::nullopt);

  // A transaction rolled back.
  store_->begin_nested();
  store_->put("k", "new");
  store_->put("missing", "here");
  EXPECT_EQ(store_->get("k"), "new");
  store_->end_nested(/*commit=*/false);
  EXPECT_EQ(store_->get("k"), "old");
  EXPECT_EQ(store_->get("missing"), std::nullopt);
  ASSERT_TRUE(store_->end_turn().is_ok());

  // A turn discarded (its handler threw).
  store_->put("k", "discarded");
  EXPECT_TRUE(store_->remove("k"));
  EXPECT_EQ(store_->get("k"), std::nullopt);
  store_->discard_turn();
  EXPECT_EQ(store_->get("k"), "old");

  // A turn whose commit failed.
  store_->put("k", "lost");
  EXPECT_EQ(store_->get("k"), "lost");
  faults_.fail_next_commits = 1;
  EXPECT_FALSE(store_->end_turn().is_ok());
  EXPECT_EQ(store_->get("k"), "old");

  // Everything deleted.
  store_->delete_all();
  EXPECT_EQ(store_->get("k"), std::nullopt);
  ASSERT_TRUE(store_->end_turn().is_ok());
  EXPECT_EQ(store_->get("k"), std::nullopt);
}

TEST_F(StoreTest, LargeValuesAndManyKeysReadBackAsWritten) {
  // A value too large to keep in memory replaces a small one kept there.
  store_->put("k", "small");
  EXPECT_EQ(store_->get("k"), "small");
  std::string big(5000, 'b');
  store_->put("k", big);
  EXPECT_EQ(store_->get("k"), big);
  store_->put("k", "small again");
  EXPECT_EQ(store_->get("k"), "small again");
  ASSERT_TRUE(store_->end_turn().is_ok());
  // More keys than memory keeps: each reads back its own value, twice.
  for (int i = 0; i < 300; ++i) store_->put("key" + std::to_string(i), std::string(100, static_cast<char>('a' + i % 26)));
  ASSERT_TRUE(store_->end_turn().is_ok());
  for (int round = 0; round < 2; ++round) {
    for (int i = 0; i < 300; ++i) {
      EXPECT_EQ(store_->get("key" + std::to_string(i)), std::string(100, static_cast<char>('a' + i % 26))) << i;
    }
  }
  // And from the file, through a store that never read them.
  storage_.reset();
  store_.reset();
  auto other = open_store("obj");
  EXPECT_EQ(other->get("key299"), std::string(100, static_cast<char>('a' + 299 % 26)));
  EXPECT_EQ(other->get("k"), "small again");
}

TEST_F(StoreTest, OpenDatabasesAreCapped) {
  std::vector<std::unique_ptr<ObjectStore>> stores;
  for (int i = 0; i < 20; ++i) {
    stores.push_back(open_store("o" + std::to_string(i)));
    Storage st = internal::ApiAccess::storage(stores.back().get());
    st.put("i", int64_t{i});
    ASSERT_TRUE(stores.back()->end_turn().is_ok());
    EXPECT_LE(open_dbs_.open_count(), 4u);
  }
  for (int i = 0; i < 20; ++i) {
    Storage st = internal::ApiAccess::storage(stores[i].get());
    EXPECT_EQ(st.get<int64_t>("i"), i);
    EXPECT_LE(open_dbs_.open_count(), 4u);
  }
}

// Past the cap, of the sampled stores the one whose alarm the scheduler runs
// last is closed, and before any of those one without an alarm due soon.
TEST_F(StoreTest, TheConnectionCapClosesStoresWithoutAnAlarmDueSoonFirst) {
  auto with_alarm = [&](const std::string& name, std::optional<int64_t> at) {
    auto store = open_store(name);
    Storage st = internal::ApiAccess::storage(store.get());
    st.put("x", int64_t{1});
    if (at) store->set_alarm(*at);
    EXPECT_TRUE(store->end_turn().is_ok());
    return store;
  };
  const int64_t soon = 1'000'000;
  auto early = with_alarm("early", 100);
  auto late = with_alarm("late", 900);
  auto far = with_alarm("far", soon + 1);  // beyond "soon": as if it had none
  auto none_old = with_alarm("none-old", std::nullopt);
  auto none_new = with_alarm("none-new", std::nullopt);
  EXPECT_TRUE(DbCache::rather(late.get(), early.get(), soon));
  EXPECT_FALSE(DbCache::rather(early.get(), late.get(), soon));
  EXPECT_TRUE(DbCache::rather(none_new.get(), late.get(), soon));
  EXPECT_TRUE(DbCache::rather(far.get(), late.get(), soon));
  EXPECT_TRUE(DbCache::rather(none_old.get(), none_new.get(), soon));  // used longer ago
  EXPECT_TRUE(DbCache::rather(far.get(), none_new.get(), soon));
}

}  // namespace
}  // namespace internal
}  // namespace dobj
