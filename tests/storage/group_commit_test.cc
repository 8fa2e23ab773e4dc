#include "storage/group_commit.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <optional>
#include <mutex>

#include "storage/object_store.h"

#include "support/manual_loop.h"
#include "support/server_process.h"

namespace dobj::internal {
namespace {

class GroupCommitTest : public ::testing::Test {
 protected:
  void SetUp() override {
    flusher_.start();
    auto f = SyncFile::open(dir_.path(), /*is_dir=*/true);
    ASSERT_TRUE(f.is_ok());
    file_ = *f;
  }
  void TearDown() override { flusher_.stop(); }
  // From here on, every path a flush syncs is noted (covered() asks).
  void note_synced_paths() {
    flusher_.faults().observe = [this](const std::vector<std::string>& paths) {
      std::lock_guard lock(synced_mu_);
      synced_.insert(synced_.end(), paths.begin(), paths.end());
    };
  }
  bool covered(const std::string& path) {
    std::lock_guard lock(synced_mu_);
    return std::find(synced_.begin(), synced_.end(), path) != synced_.end();
  }
  // Runs the loop until commit `seq` is durable (and expects it to be).
  void wait_durable(uint64_t seq) {
    bool durable = false;
    commits_.when_durable(seq, [&](Status st) {
      EXPECT_TRUE(st.is_ok());
      durable = true;
    });
    ASSERT_TRUE(loop_.run_until([&] { return durable; }));
  }
  void forget_synced() {
    std::lock_guard lock(synced_mu_);
    synced_.clear();
  }
  std::mutex synced_mu_;
  std::vector<std::string> synced_;

  test::TempDir dir_;
  test::ManualLoop loop_;
  Flusher flusher_;
  GroupCommit commits_{&flusher_, [this](std::function<void()> f) { loop_.post(std::move(f)); }};
  std::shared_ptr<SyncFile> file_;
};

TEST_F(GroupCommitTest, SixtyFourCommitsShareOneFlush) {
  int released = 0;
  for (int i = 0; i < 64; ++i) {
    uint64_t seq = commits_.committed(file_, nullptr);
    commits_.when_durable(seq, [&](Status st) {
      EXPECT_TRUE(st.is_ok());
      ++released;
    });
  }
  ASSERT_TRUE(loop_.run_until([&] { return released == 64; }));
  // The first waiter starts a flush at once; the 63 that came while it ran share
  // the next one.
  EXPECT_LE(flusher_.flush_count(), 2u);
  EXPECT_EQ(commits_.durable_seq(), commits_.last_seq());
}

// The answer to an object's first write waits for one flush that covers its
// WAL, its database file, its folder's entry for them and, for a new shard
// folder, the namespace folder's entry for that.
TEST_F(GroupCommitTest, ANewObjectsFirstFlushCoversItsFilesAndFolders) {
  note_synced_paths();
  std::string ns = dir_.path() + "/ns";
  std::filesystem::create_directories(ns);
  DbCache dbs{4};
  auto first_write = [&](const std::string& file) {
    forget_synced();
    ObjectStore store(StoreEnv{&commits_, &dbs}, ns + "/ab", file);
    store.put("k", "v");
    ASSERT_TRUE(store.end_turn().is_ok());
    wait_durable(store.last_commit_seq());
  };
  first_write("one.sqlite");
  EXPECT_TRUE(covered(ns + "/ab/one.sqlite-wal"));
  EXPECT_TRUE(covered(ns + "/ab/one.sqlite"));
  EXPECT_TRUE(covered(ns + "/ab"));
  EXPECT_TRUE(covered(ns));
  // A second object in the same shard folder: the folder is not new, but it
  // may have been made by another shard whose flush is still to come, so
  // the namespace folder's entry for it is synced again.
  first_write("two.sqlite");
  EXPECT_TRUE(covered(ns + "/ab/two.sqlite-wal"));
  EXPECT_TRUE(covered(ns + "/ab/two.sqlite"));
  EXPECT_TRUE(covered(ns + "/ab"));
  EXPECT_TRUE(covered(ns));
}

// The connection cap closes a store and the store opens its files again
// without looking for them (DbCache, ObjectStore::files_known_): its data
// reads back, and the flush of each later commit still covers its WAL.
TEST_F(GroupCommitTest, AStoreReopenedAfterTheConnectionCapClosedItKeepsItsDataAndItsFlushes) {
  note_synced_paths();
  std::string ns = dir_.path() + "/ns";
  std::filesystem::create_directories(ns);
  DbCache dbs{1};
  ObjectStore a(StoreEnv{&commits_, &dbs}, ns + "/ab", "a.sqlite");
  ObjectStore b(StoreEnv{&commits_, &dbs}, ns + "/cd", "b.sqlite");
  for (int round = 0; round < 3; ++round) {
    for (ObjectStore* s : {&a, &b}) {  // each open closes the other
      auto before = s->get("n");
      s->put("n", std::to_string(before ? std::stoi(*before) + 1 : 0));
      ASSERT_TRUE(s->end_turn().is_ok());
      EXPECT_EQ(dbs.open_count(), 1u);
      forget_synced();
      wait_durable(s->last_commit_seq());
      EXPECT_TRUE(covered(s == &a ? ns + "/ab/a.sqlite-wal" : ns + "/cd/b.sqlite-wal")) << round;
    }
  }
  EXPECT_EQ(a.get("n"), "2");
  EXPECT_EQ(b.get("n"), "2");
  // And from a store that was never open: what is on disk.
  ObjectStore fresh(StoreEnv{&commits_, &dbs}, ns + "/ab", "a.sqlite");
  EXPECT_EQ(fresh.get("n"), "2");
}

// An object whose first turn was discarded (its handler threw) has its file
// and folders but no commit; the store that commits to it later finds them
// existing. That commit's flush must still cover them.
TEST_F(GroupCommitTest, AFileFromADiscardedFirstTurnReachesTheDiskBeforeALaterAnswer) {
  note_synced_paths();
  std::string ns = dir_.path() + "/ns";
  std::filesystem::create_directories(ns);
  DbCache dbs{4};
  {
    ObjectStore store(StoreEnv{&commits_, &dbs}, ns + "/ab", "one.sqlite");
    store.put("k", "v");
    store.discard_turn();
  }  // evicted
  ObjectStore store(StoreEnv{&commits_, &dbs}, ns + "/ab", "one.sqlite");
  store.put("k", "w");
  ASSERT_TRUE(store.end_turn().is_ok());
  wait_durable(store.last_commit_seq());
  for (const std::string& path : {ns + "/ab/one.sqlite-wal", ns + "/ab/one.sqlite", ns + "/ab", ns}) {
    EXPECT_TRUE(covered(path)) << path;
  }
}

TEST_F(GroupCommitTest, AWaiterIsNotReleasedBeforeItsFlush) {
  flusher_.faults().delay_ms = 200;
  bool released = false;
  commits_.when_durable(commits_.committed(file_, nullptr), [&](Status) { released = true; });
  EXPECT_FALSE(loop_.run_until([&] { return released; }, std::chrono::milliseconds(50)));
  EXPECT_TRUE(loop_.run_until([&] { return released; }));
}

TEST_F(GroupCommitTest, AFailedFlushFailsItsWaitersAndEveryLaterOne) {
  flusher_.faults().fail_next = 1;
  std::optional<Status> got;
  commits_.when_durable(commits_.committed(file_, nullptr), [&](Status st) { got = st; });
  ASSERT_TRUE(loop_.run_until([&] { return got.has_value(); }));
  EXPECT_FALSE(got->is_ok());
  EXPECT_TRUE(flusher_.failed());
  // A sync that succeeds after a failed one proves nothing about the earlier
  // writes: later commits fail too, at once, and the flusher syncs no more.
  uint64_t flushes = flusher_.flush_count();
  std::optional<Status> next;
  commits_.when_durable(commits_.committed(file_, nullptr), [&](Status st) { next = st; });
  ASSERT_TRUE(loop_.run_until([&] { return next.has_value(); }));
  EXPECT_FALSE(next->is_ok());
  EXPECT_EQ(flusher_.flush_count(), flushes);
  EXPECT_EQ(commits_.durable_seq(), 0u);
}

TEST_F(GroupCommitTest, ACommitWithNoWaiterWhenItsFlushFailedNeverPassesForDurable) {
  // A WebSocket handler's write: committed, nobody waits for it yet.
  uint64_t unwaited = commits_.committed(file_, nullptr);
  flusher_.faults().fail_next = 1;
  std::optional<Status> got;
  commits_.when_durable(commits_.committed(file_, nullptr), [&](Status st) { got = st; });
  ASSERT_TRUE(loop_.run_until([&] { return got.has_value(); }));
  ASSERT_FALSE(got->is_ok());
  // Its object's next output waits for it: it must fail, not pass.
  std::optional<Status> later;
  commits_.when_durable(unwaited, [&](Status st) { later = st; });
  ASSERT_TRUE(later.has_value());
  EXPECT_FALSE(later->is_ok());
  EXPECT_EQ(later->code(), Code::kUnavailable);
}

TEST_F(GroupCommitTest, TheNodeIsToldOnceOfAFailedFlushBeforeAnyWaiterRuns) {
  Flusher flusher;
  std::atomic<int> told{0};
  flusher.set_on_failure([&](const Status& st) {
    EXPECT_NE(st.message().find("injected"), std::string::npos);
    ++told;
  });
  flusher.start();
  GroupCommit commits{&flusher, [this](std::function<void()> f) { loop_.post(std::move(f)); }};
  flusher.faults().fail_next = 1;
  int failed = 0;
  for (int round = 0; round < 3; ++round) {
    commits.when_durable(commits.committed(file_, nullptr), [&](Status st) {
      EXPECT_EQ(told.load(), 1);
      if (!st.is_ok()) ++failed;
    });
    ASSERT_TRUE(loop_.run_until([&] { return failed == round + 1; }));
  }
  EXPECT_EQ(told.load(), 1);
  flusher.stop();
}

TEST_F(GroupCommitTest, AFlushOfManyCommitsReleasesThemInTurnsAndInOrder) {
  const int kCommits = 200;
  std::vector<uint64_t> order;
  std::vector<uint64_t> seqs;
  for (int i = 0; i < kCommits; ++i) seqs.push_back(commits_.committed(file_, nullptr));
  for (uint64_t seq : seqs) {
    commits_.when_durable(seq, [&order, seq](Status st) {
      EXPECT_TRUE(st.is_ok());
      order.push_back(seq);
    });
  }
  // One flush covers all 200; its completion runs the first 64 and posts the rest.
  ASSERT_TRUE(loop_.run_until([&] { return !order.empty(); }));
  EXPECT_EQ(order.size(), GroupCommit::kReleaseBatch);
  EXPECT_LT(commits_.durable_seq(), seqs.back()) << "not durable until every waiter ran";
  // A waiter added now for an already flushed commit does not run at once:
  // it runs after the waiters for that commit that came before it.
  commits_.when_durable(seqs[100], [&order](Status) { order.push_back(0); });
  EXPECT_EQ(order.size(), GroupCommit::kReleaseBatch);
  ASSERT_TRUE(loop_.run_until([&] { return order.size() == kCommits + 1; }));
  std::vector<uint64_t> expected = seqs;
  expected.insert(expected.begin() + 101, 0);
  EXPECT_EQ(order, expected);
  EXPECT_EQ(commits_.durable_seq(), seqs.back());
  EXPECT_EQ(flusher_.flush_count(), 1u);
}

// A checkpoint's syncs run on the flusher: the WAL's with the last commit, the
// database file's in a flush of its own, and only then is it done (the owner
// holds the object's turns until then, so the WAL cannot restart before).
TEST_F(GroupCommitTest, ACheckpointSyncsTheDatabaseFileOnTheFlusherBeforeItIsDone) {
  std::mutex mu;
  std::vector<std::string> synced;
  flusher_.faults().observe = [&](const std::vector<std::string>& paths) {
    std::lock_guard lock(mu);
    synced.insert(synced.end(), paths.begin(), paths.end());
  };
  DbCache dbs{4};
  ObjectStore store(StoreEnv{&commits_, &dbs}, dir_.path() + "/ab", "obj.sqlite");
  std::string value(3000, 'v');
  int i = 0;
  while (!store.checkpoint_due()) {
    store.put("k" + std::to_string(i % 50), value + std::to_string(i));
    ASSERT_TRUE(store.end_turn().is_ok());
    ASSERT_LT(++i, 5 * ObjectStore::kCheckpointFrames);
  }
  auto db_synced = [&] {
    std::lock_guard lock(mu);
    return std::count(synced.begin(), synced.end(), store.path());
  };
  bool durable = false;
  commits_.when_durable(store.last_commit_seq(), [&](Status) { durable = true; });
  ASSERT_TRUE(loop_.run_until([&] { return durable; }));
  {
    std::lock_guard lock(mu);
    synced.clear();
  }
  bool done = false;
  store.start_checkpoint([&] { done = true; });
  EXPECT_FALSE(done);  // nothing synced on this thread
  ASSERT_TRUE(loop_.run_until([&] { return done; }));
  EXPECT_EQ(db_synced(), 1);
  EXPECT_FALSE(store.checkpoint_due());
  // The next commit restarts the WAL from its start: it grows no more.
  auto wal_size = std::filesystem::file_size(store.path() + "-wal");
  store.put("after", "x");
  ASSERT_TRUE(store.end_turn().is_ok());
  EXPECT_EQ(std::filesystem::file_size(store.path() + "-wal"), wal_size);
  store.close_connection();
  EXPECT_EQ(store.get("after"), std::optional<std::string>("x"));
  EXPECT_EQ(store.get("k" + std::to_string((i - 1) % 50)), value + std::to_string(i - 1));
}

// Coalescing: while a flush is in flight, the turns that end share one
// commit, made right before the next flush; their answers wait for that one.
class CoalescingTest : public GroupCommitTest {
 protected:
  void SetUp() override {
    GroupCommitTest::SetUp();
    store_ = std::make_unique<ObjectStore>(StoreEnv{&commits_, &dbs_, &faults_, 0, nullptr, true, &counters_},
                                           dir_.path() + "/ab", "obj.sqlite");
    // The first commit makes the file (never deferred); then a slow flush
    // is in flight while the next turns end.
    store_->put("k", "0");
    ASSERT_TRUE(store_->end_turn().is_ok());
    wait_durable(store_->last_commit_seq());
    flusher_.faults().delay_ms = 300;
    store_->put("k", "1");
    ASSERT_TRUE(store_->end_turn().is_ok());
    first_ = store_->last_commit_seq();
    commits_.when_durable(first_, [this](Status st) { first_status_ = st; });
    ASSERT_FALSE(first_status_.has_value());  // its flush is in flight
  }
  std::optional<std::string> read_back(const std::string& key) {
    ObjectStore again(StoreEnv{&commits_, &dbs_}, dir_.path() + "/ab", "obj.sqlite");
    return again.get(key);
  }
  DbCache dbs_{4};
  StoreFaults faults_;
  StorageCounters counters_;
  std::unique_ptr<ObjectStore> store_;
  uint64_t first_ = 0;
  std::optional<Status> first_status_;
};

TEST_F(CoalescingTest, TurnsThatEndDuringAFlushShareOneCommitAndTheNextFlush) {
  uint64_t commits_before = counters_.commits;
  std::vector<uint64_t> seqs;
  for (int i = 2; i <= 5; ++i) {
    store_->put("k", std::to_string(i));
    store_->put("t" + std::to_string(i), "x");
    ASSERT_TRUE(store_->end_turn().is_ok());
    seqs.push_back(store_->last_commit_seq());
    EXPECT_EQ(store_->get("k"), std::to_string(i));  // the object reads its own writes
  }
  // One number for the four turns, after the flush in flight; no commit yet.
  EXPECT_EQ(seqs, std::vector<uint64_t>(4, first_ + 1));
  EXPECT_EQ(counters_.commits, commits_before);
  EXPECT_EQ(counters_.turns_coalesced, 4u);
  // A turn that fails inside the shared transaction takes only its own writes.
  store_->put("k", "lost");
  store_->put("lost", "x");
  store_->discard_turn();
  EXPECT_EQ(store_->get("k"), "5");
  std::vector<std::optional<Status>> answers(4);
  for (int i = 0; i < 4; ++i) {
    commits_.when_durable(seqs[static_cast<size_t>(i)], [&answers, i](Status st) { answers[static_cast<size_t>(i)] = st; });
  }
  uint64_t flushes = flusher_.flush_count();
  ASSERT_TRUE(loop_.run_until([&] { return first_status_.has_value(); }));
  EXPECT_FALSE(answers[0].has_value());  // the flush in flight did not cover them
  ASSERT_TRUE(loop_.run_until([&] { return answers[3].has_value(); }, std::chrono::seconds(5)));
  for (const auto& a : answers) EXPECT_TRUE(a && a->is_ok());
  EXPECT_EQ(flusher_.flush_count(), flushes + 2);
  EXPECT_EQ(counters_.commits, commits_before + 1);
  EXPECT_TRUE(commits_.durable(first_ + 1));
  store_.reset();
  EXPECT_EQ(read_back("k"), "5");
  EXPECT_EQ(read_back("t2"), "x");
  EXPECT_EQ(read_back("t5"), "x");
  EXPECT_EQ(read_back("lost"), std::nullopt);
}

TEST_F(CoalescingTest, ATurnAfterTheFlushCommitsTheSharedTransactionWithItsOwn) {
  store_->put("a", "1");
  ASSERT_TRUE(store_->end_turn().is_ok());
  uint64_t deferred = store_->last_commit_seq();
  ASSERT_TRUE(loop_.run_until([&] { return first_status_.has_value(); }));
  // The flush ended and nothing waited: the shared commit was made then.
  EXPECT_FALSE(commits_.may_defer());
  store_->put("b", "2");
  ASSERT_TRUE(store_->end_turn().is_ok());
  EXPECT_GT(store_->last_commit_seq(), deferred);
  wait_durable(store_->last_commit_seq());
  EXPECT_TRUE(commits_.durable(deferred));
  store_.reset();
  EXPECT_EQ(read_back("a"), "1");
  EXPECT_EQ(read_back("b"), "2");
}

TEST_F(CoalescingTest, ClosingTheConnectionCommitsWhatWaited) {
  store_->put("a", "1");
  ASSERT_TRUE(store_->end_turn().is_ok());
  uint64_t deferred = store_->last_commit_seq();
  store_->close_connection();  // as the cap on open databases does
  std::optional<Status> answer;
  commits_.when_durable(deferred, [&](Status st) { answer = st; });
  ASSERT_TRUE(loop_.run_until([&] { return answer.has_value(); }, std::chrono::seconds(5)));
  EXPECT_TRUE(answer->is_ok());
  EXPECT_EQ(read_back("a"), "1");
}

TEST_F(CoalescingTest, AFailedSharedCommitFailsItsTurnsAnswersAndNoOthers) {
  store_->put("a", "1");
  ASSERT_TRUE(store_->end_turn().is_ok());
  uint64_t deferred = store_->last_commit_seq();
  std::optional<Status> answer;
  commits_.when_durable(deferred, [&](Status st) { answer = st; });
  faults_.fail_next_commits = 1;  // the commit made when the flush ends
  ASSERT_TRUE(loop_.run_until([&] { return answer.has_value(); }, std::chrono::seconds(5)));
  EXPECT_EQ(answer->code(), Code::kReset) << answer->message();
  ASSERT_TRUE(first_status_.has_value());
  EXPECT_TRUE(first_status_->is_ok());  // the turn before, in the flush, stands
  // An answer that asks later is refused too: the writes are gone.
  EXPECT_FALSE(commits_.durable(deferred));
  std::optional<Status> late;
  commits_.when_durable(deferred, [&](Status st) { late = st; });
  ASSERT_TRUE(late.has_value());
  EXPECT_FALSE(late->is_ok());
  EXPECT_EQ(store_->get("a"), std::nullopt);
  // The store goes on: the next turn commits.
  store_->put("b", "2");
  ASSERT_TRUE(store_->end_turn().is_ok());
  wait_durable(store_->last_commit_seq());
  store_.reset();
  EXPECT_EQ(read_back("k"), "1");
  EXPECT_EQ(read_back("a"), std::nullopt);
  EXPECT_EQ(read_back("b"), "2");
}

// An object that did not write within this flush has no turns to share a
// commit with: it commits at once, while the flush in flight runs.
TEST_F(CoalescingTest, AnObjectWhoseLastCommitIsDurableCommitsAtOnce) {
  ObjectStore other(StoreEnv{&commits_, &dbs_, &faults_, 0, nullptr, true, &counters_}, dir_.path() + "/ab",
                    "other.sqlite");
  other.put("a", "1");  // its first commit makes the file: not deferred
  ASSERT_TRUE(other.end_turn().is_ok());
  ASSERT_TRUE(loop_.run_until([&] { return first_status_.has_value(); }));
  wait_durable(other.last_commit_seq());
  // A slow flush of the first store's next write is in flight.
  first_status_.reset();
  store_->put("k", "2");
  ASSERT_TRUE(store_->end_turn().is_ok());
  uint64_t in_flight = store_->last_commit_seq();
  commits_.when_durable(in_flight, [this](Status st) { first_status_ = st; });
  ASSERT_TRUE(commits_.may_defer());
  uint64_t commits_before = counters_.commits;
  other.put("a", "2");
  ASSERT_TRUE(other.end_turn().is_ok());
  EXPECT_EQ(counters_.commits, commits_before + 1);
  EXPECT_EQ(counters_.turns_coalesced, 0u);
  // Its next write within the flight has a turn before it to join.
  other.put("a", "3");
  ASSERT_TRUE(other.end_turn().is_ok());
  EXPECT_EQ(counters_.turns_coalesced, 1u);
  wait_durable(other.last_commit_seq());
}

TEST_F(CoalescingTest, OffEveryTurnCommitsAtOnce) {
  commits_.set_coalescing(false);
  store_->put("a", "1");
  ASSERT_TRUE(store_->end_turn().is_ok());
  store_->put("b", "2");
  ASSERT_TRUE(store_->end_turn().is_ok());
  EXPECT_EQ(store_->last_commit_seq(), first_ + 2);
  EXPECT_EQ(counters_.turns_coalesced, 0u);
}

// A file removed after its commit (the object was deleted) is no failure of
// the flush that comes for it: there is nothing left of it to sync.
TEST_F(GroupCommitTest, AFileRemovedBeforeItsFlushIsNotAFailure) {
  std::string path = dir_.path() + "/gone";
  { std::ofstream(path) << "x"; }
  auto f = SyncFile::open(path, /*is_dir=*/false);
  ASSERT_TRUE(f.is_ok());
  uint64_t seq = commits_.committed(*f, nullptr);
  std::filesystem::remove(path);
  std::optional<Status> result;
  commits_.when_durable(seq, [&](Status st) { result = st; });
  ASSERT_TRUE(loop_.run_until([&] { return result.has_value(); }));
  EXPECT_TRUE(result->is_ok()) << result->message();
  EXPECT_FALSE(flusher_.failed());
}

TEST(GroupCommitOsMode, CommitsAreDurableAtOnce) {
  GroupCommit commits(nullptr, [](std::function<void()> f) { f(); });
  bool released = false;
  commits.when_durable(commits.committed(nullptr, nullptr),
                       [&](Status st) { released = st.is_ok(); });
  EXPECT_TRUE(released);
}

}  // namespace
}  // namespace dobj::internal
