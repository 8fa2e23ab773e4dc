// The object's own history API (Storage::current_bookmark,
// bookmark_for_time, on_next_session_restore_bookmark, snapshot;
// State::on_next_session_restore), through the test kit: the real runtime
// with --history and a fake clock.
#include <gtest/gtest.h>

#include <dobj/testing.h>

#include <filesystem>

namespace {

using namespace std::chrono_literals;
using dobj::Code;
using dobj::Error;
using dobj::testing::Options;
using dobj::testing::TestRuntime;

class Ledger : public dobj::DurableObject {
 public:
  using DurableObject::DurableObject;
  dobj::Task<int64_t> add(int64_t n) {
    int64_t total = storage().get<int64_t>("total").value_or(0) + n;
    storage().put("total", total);
    co_return total;
  }
  dobj::Task<int64_t> total() { co_return storage().get<int64_t>("total").value_or(0); }
  dobj::Task<std::string> bookmark() { co_return co_await storage().current_bookmark(); }
  dobj::Task<std::string> bookmark_at(int64_t ms) { co_return storage().bookmark_for_time(ms); }
  // Asks for the restore; the caller decides when the object starts over.
  dobj::Task<std::string> restore_to(std::string bookmark) {
    co_return co_await storage().on_next_session_restore_bookmark(bookmark);
  }
  // The pattern Cloudflare documents: ask, then abort at once.
  dobj::Task<void> restore_now(std::string bookmark) {
    co_await storage().on_next_session_restore_bookmark(bookmark);
    state().abort("restoring to " + bookmark);
  }
  dobj::Task<std::string> snapshot() { co_return co_await storage().snapshot(); }
  dobj::Task<void> fork_from(std::string snapshot) {
    co_await state().on_next_session_restore(snapshot);
    state().abort("forking");
  }
  dobj::Task<void> set_alarm(int64_t at) {
    storage().set_alarm(at);
    co_return;
  }
  dobj::Task<void> alarm(dobj::AlarmInfo) override { co_return; }
  static constexpr auto kMethods = dobj::methods(
      dobj::Method{"add", &Ledger::add}, dobj::Method{"total", &Ledger::total},
      dobj::Method{"bookmark", &Ledger::bookmark}, dobj::Method{"bookmark_at", &Ledger::bookmark_at},
      dobj::Method{"restore_to", &Ledger::restore_to}, dobj::Method{"restore_now", &Ledger::restore_now},
      dobj::Method{"snapshot", &Ledger::snapshot}, dobj::Method{"fork_from", &Ledger::fork_from},
      dobj::Method{"set_alarm", &Ledger::set_alarm});
};

// A runtime with Ledger bound as LEDGER.
struct Ledgers : TestRuntime {
  explicit Ledgers(Options o = {}) : TestRuntime(std::move(o)) { bind<Ledger>("LEDGER"); }
};

Options with_history() {
  Options o;
  o.server.history = true;
  return o;
}

// The error a call failed with (kOk when it did not fail).
template <typename F>
Code code_of(F&& call) {
  try {
    call();
  } catch (const Error& e) {
    return e.code();
  }
  return Code::kOk;
}

TEST(HistoryApi, AnObjectRestoresItselfToABookmarkAndCanUndoIt) {
  Ledgers rt(with_history());
  auto ledger = rt.object<Ledger>("LEDGER", "a");
  std::vector<std::string> marks;
  for (int i = 1; i <= 3; ++i) {
    ledger.call(&Ledger::add, int64_t{10});
    marks.push_back(ledger.call(&Ledger::bookmark));
  }
  EXPECT_LT(marks[0], marks[1]);
  EXPECT_LT(marks[1], marks[2]);
  // No write between two bookmarks: the same commit.
  EXPECT_EQ(ledger.call(&Ledger::bookmark), marks[2]);

  // Asked for, the restore waits for the next start.
  std::string undo = ledger.call(&Ledger::restore_to, marks[0]);
  EXPECT_GT(undo, marks[2]);  // the commit that recorded the request
  EXPECT_EQ(ledger.call(&Ledger::total), 30);
  ledger.evict();
  EXPECT_EQ(ledger.call(&Ledger::total), 10);
  ledger.call(&Ledger::add, int64_t{1});
  EXPECT_EQ(ledger.call(&Ledger::total), 11);

  // Undo: back to the state the restore replaced.
  ledger.call(&Ledger::restore_to, undo);
  ledger.evict();
  EXPECT_EQ(ledger.call(&Ledger::total), 30);
  // ...and only once: later starts keep what the object writes.
  ledger.call(&Ledger::add, int64_t{5});
  ledger.evict();
  EXPECT_EQ(ledger.call(&Ledger::total), 35);

  // Ask, then abort, in one call: the caller sees the reset, the next call
  // the restored object.
  EXPECT_EQ(code_of([&] { ledger.call(&Ledger::restore_now, marks[1]); }), Code::kReset);
  EXPECT_EQ(ledger.call(&Ledger::total), 20);
}

TEST(HistoryApi, ARestoreAskedForHappensAfterARestart) {
  Ledgers rt(with_history());
  auto ledger = rt.object<Ledger>("LEDGER", "a");
  ledger.call(&Ledger::add, int64_t{1});
  std::string first = ledger.call(&Ledger::bookmark);
  ledger.call(&Ledger::add, int64_t{1});
  ledger.call(&Ledger::restore_to, first);
  rt.restart();
  EXPECT_EQ(ledger.call(&Ledger::total), 1);
}

TEST(HistoryApi, BookmarksForTimesNameTheLastCommitBeforeThem) {
  Ledgers rt(with_history());
  auto ledger = rt.object<Ledger>("LEDGER", "a");
  std::vector<std::pair<int64_t, std::string>> at;
  for (int i = 0; i < 4; ++i) {
    rt.advance(1min);
    ledger.call(&Ledger::add, int64_t{1});
    auto now = std::chrono::duration_cast<std::chrono::milliseconds>(rt.now().time_since_epoch()).count();
    at.emplace_back(now, ledger.call(&Ledger::bookmark));
  }
  for (size_t i = 0; i < at.size(); ++i) {
    EXPECT_EQ(ledger.call(&Ledger::bookmark_at, at[i].first + 30'000), at[i].second) << i;
  }
  // Before the object's first commit: nothing to name.
  EXPECT_EQ(code_of([&] { ledger.call(&Ledger::bookmark_at, at[0].first - 3'600'000); }), Code::kNotFound);
  // Restoring by time, as an operator would: a minute and a half in.
  std::string b = ledger.call(&Ledger::bookmark_at, at[1].first + 30'000);
  ledger.call(&Ledger::restore_to, b);
  ledger.evict();
  EXPECT_EQ(ledger.call(&Ledger::total), 2);
}

TEST(HistoryApi, BadBookmarksAreRefusedAndChangeNothing) {
  Ledgers rt(with_history());
  auto ledger = rt.object<Ledger>("LEDGER", "a");
  ledger.call(&Ledger::add, int64_t{7});
  std::string mark = ledger.call(&Ledger::bookmark);
  EXPECT_EQ(code_of([&] { ledger.call(&Ledger::restore_to, std::string("yesterday")); }), Code::kInvalidArgument);
  std::string unknown = "00000000000f4240" + mark.substr(16);  // commit 1,000,000
  EXPECT_EQ(code_of([&] { ledger.call(&Ledger::restore_to, unknown); }), Code::kNotFound);
  // Another object's bookmark names a commit this one does not have.
  auto other = rt.object<Ledger>("LEDGER", "b");
  for (int i = 0; i < 5; ++i) other.call(&Ledger::add, int64_t{1});
  EXPECT_EQ(code_of([&] { ledger.call(&Ledger::restore_to, other.call(&Ledger::bookmark)); }), Code::kNotFound);
  ledger.evict();
  EXPECT_EQ(ledger.call(&Ledger::total), 7);
}

TEST(HistoryApi, WithoutHistoryTheBookmarkCallsSaySoAndSnapshotsStillWork) {
  Ledgers rt;
  auto ledger = rt.object<Ledger>("LEDGER", "a");
  ledger.call(&Ledger::add, int64_t{3});
  EXPECT_EQ(code_of([&] { ledger.call(&Ledger::bookmark); }), Code::kNotFound);
  EXPECT_EQ(code_of([&] { ledger.call(&Ledger::bookmark_at, int64_t{1}); }), Code::kNotFound);
  auto fork = rt.object<Ledger>("LEDGER", "b");
  EXPECT_EQ(code_of([&] { fork.call(&Ledger::fork_from, ledger.call(&Ledger::snapshot)); }), Code::kReset);
  EXPECT_EQ(fork.call(&Ledger::total), 3);
}

int64_t ms_of(std::chrono::system_clock::time_point t) {
  return std::chrono::duration_cast<std::chrono::milliseconds>(t.time_since_epoch()).count();
}

TEST(HistoryRetention, CommitsOlderThanTheWindowGoAndTheWindowsStartStillRestores) {
  Options o = with_history();
  o.server.history_days = 1;
  o.server.history_days_by_namespace["FOREVER"] = 0;
  Ledgers rt(o);
  rt.bind<Ledger>("FOREVER");
  auto ledger = rt.object<Ledger>("LEDGER", "a");
  auto kept = rt.object<Ledger>("FOREVER", "a");
  std::vector<std::string> old_marks, kept_marks;
  int64_t first_ms = ms_of(rt.now());
  for (int i = 0; i < 3; ++i) {
    rt.advance(1min);
    ledger.call(&Ledger::add, int64_t{1});
    kept.call(&Ledger::add, int64_t{1});
    old_marks.push_back(ledger.call(&Ledger::bookmark));
    kept_marks.push_back(kept.call(&Ledger::bookmark));
  }
  int64_t last_old_ms = ms_of(rt.now());
  rt.advance(std::chrono::hours(48));
  ledger.call(&Ledger::add, int64_t{10});  // a commit two days on: the old ones go
  kept.call(&Ledger::add, int64_t{10});

  // The oldest commits are gone from LEDGER...
  EXPECT_EQ(code_of([&] { ledger.call(&Ledger::restore_to, old_marks[0]); }), Code::kNotFound);
  EXPECT_EQ(code_of([&] { ledger.call(&Ledger::bookmark_at, first_ms + 90'000); }), Code::kNotFound);
  // ...but the state at the window's start (the last commit before it) stays.
  std::string start = ledger.call(&Ledger::bookmark_at, ms_of(rt.now()) - 86'400'000);
  EXPECT_EQ(start, old_marks[2]);
  EXPECT_EQ(ledger.call(&Ledger::bookmark_at, last_old_ms), old_marks[2]);
  ledger.call(&Ledger::restore_to, start);
  ledger.evict();
  EXPECT_EQ(ledger.call(&Ledger::total), 3);

  // FOREVER keeps everything.
  kept.call(&Ledger::restore_to, kept_marks[0]);
  kept.evict();
  EXPECT_EQ(kept.call(&Ledger::total), 1);
}

TEST(HistoryRetention, PastTheSizeCapTheOldestCommitsGoAndTheRecentOnesRestore) {
  Options o = with_history();
  o.server.history_max_bytes = 256 * 1024;
  Ledgers rt(o);
  auto ledger = rt.object<Ledger>("LEDGER", "a");
  std::vector<std::string> marks;
  for (int i = 0; i < 300; ++i) {
    // Each pad changes every byte (a history keeps only what changed).
    ledger.storage(
        [&](dobj::Storage& s) { s.put("pad" + std::to_string(i % 8), std::string(2000, static_cast<char>('a' + i % 26))); });
    ledger.call(&Ledger::add, int64_t{1});
    marks.push_back(ledger.call(&Ledger::bookmark));
  }
  uint64_t history = 0;
  for (const auto& f : std::filesystem::recursive_directory_iterator(rt.data_dir())) {
    if (f.path().string().ends_with(".sqlite-history")) history += f.file_size();
  }
  EXPECT_GT(history, 0u);
  EXPECT_LE(history, 256u * 1024);
  EXPECT_EQ(code_of([&] { ledger.call(&Ledger::restore_to, marks[0]); }), Code::kNotFound);
  ledger.call(&Ledger::restore_to, marks[289]);
  ledger.evict();
  EXPECT_EQ(ledger.call(&Ledger::total), 290);
}

class ForkTest : public ::testing::TestWithParam<bool> {};

TEST_P(ForkTest, AForkStartsAsItsSourceWasAndThenGoesItsOwnWay) {
  Ledgers rt(GetParam() ? with_history() : Options{});
  auto source = rt.object<Ledger>("LEDGER", "source");
  auto fork = rt.object<Ledger>("LEDGER", "fork");
  source.call(&Ledger::add, int64_t{5});
  int64_t later = std::chrono::duration_cast<std::chrono::milliseconds>((rt.now() + 1h).time_since_epoch()).count();
  source.call(&Ledger::set_alarm, later);
  std::string snap = source.call(&Ledger::snapshot);
  EXPECT_EQ(snap.rfind("snap-", 0), 0u) << snap;
  source.call(&Ledger::add, int64_t{1});  // after the snapshot: not in it

  fork.call(&Ledger::add, int64_t{100});
  fork.call(&Ledger::set_alarm, later);
  EXPECT_EQ(code_of([&] { fork.call(&Ledger::fork_from, snap); }), Code::kReset);
  EXPECT_EQ(fork.call(&Ledger::total), 5);
  EXPECT_FALSE(fork.alarm().has_value());  // alarms are not copied, and its own went with its database
  EXPECT_TRUE(source.alarm().has_value());

  // Each goes its own way.
  EXPECT_EQ(fork.call(&Ledger::add, int64_t{1}), 6);
  EXPECT_EQ(source.call(&Ledger::add, int64_t{10}), 16);
  EXPECT_EQ(fork.call(&Ledger::total), 6);
  rt.restart();
  EXPECT_EQ(fork.call(&Ledger::total), 6);
  EXPECT_EQ(source.call(&Ledger::total), 16);

  // A snapshot serves many forks.
  auto second = rt.object<Ledger>("LEDGER", "second");
  EXPECT_EQ(code_of([&] { second.call(&Ledger::fork_from, snap); }), Code::kReset);
  EXPECT_EQ(second.call(&Ledger::total), 5);
  if (GetParam()) {
    // With history, the fork is a commit of the fork's own history.
    std::string after = fork.call(&Ledger::bookmark);
    EXPECT_FALSE(after.empty());
  }
}

INSTANTIATE_TEST_SUITE_P(History, ForkTest, ::testing::Bool(),
                         [](const auto& info) { return info.param ? "WithHistory" : "WithoutHistory"; });

TEST(HistoryApi, UnknownSnapshotsAreRefusedAndChangeNothing) {
  Ledgers rt;
  auto ledger = rt.object<Ledger>("LEDGER", "a");
  ledger.call(&Ledger::add, int64_t{2});
  EXPECT_EQ(code_of([&] { ledger.call(&Ledger::fork_from, std::string("snap-../../etc/passwd")); }),
            Code::kInvalidArgument);
  EXPECT_EQ(code_of([&] { ledger.call(&Ledger::fork_from, "snap-" + std::string(32, '0')); }), Code::kNotFound);
  EXPECT_EQ(ledger.call(&Ledger::total), 2);

  // A snapshot gone by the time the object starts again (expired): the
  // first call says so, and the object carries on with its own data.
  auto source = rt.object<Ledger>("LEDGER", "source");
  source.call(&Ledger::add, int64_t{9});
  std::string snap = source.call(&Ledger::snapshot);
  EXPECT_EQ(code_of([&] { ledger.call(&Ledger::fork_from, snap); }), Code::kReset);
  std::filesystem::remove(rt.data_dir() + "/snapshots/" + snap + ".sqlite");
  EXPECT_EQ(code_of([&] { ledger.call(&Ledger::total); }), Code::kNotFound);
  EXPECT_EQ(ledger.call(&Ledger::total), 2);
}

}  // namespace
