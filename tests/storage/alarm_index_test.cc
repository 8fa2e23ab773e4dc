#include "storage/alarm_index.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <thread>
#include <tuple>

#include "support/server_process.h"

namespace dobj::internal {
namespace {

namespace fs = std::filesystem;

AlarmRecord alarm(const std::string& id, int64_t at) {
  return AlarmRecord{"NS", id, std::nullopt, at, 0};
}

using Row = std::tuple<std::string, int64_t, int>;  // id, at, retry

// The rows a restart finds in the folder holding `path` (journals included).
std::vector<Row> rows(const std::string& path) {
  AlarmIndex index;
  EXPECT_TRUE(index.open(path, /*background=*/false).is_ok());
  std::vector<Row> out;
  for (auto& r : index.all()) out.emplace_back(r.id_hex, r.at_ms, r.retry);
  std::sort(out.begin(), out.end());
  return out;
}

class AlarmIndexTest : public ::testing::Test {
 protected:
  std::string path() { return dir_.path() + "/alarms.sqlite"; }
  // What a SIGKILL leaves: the folder's files as they are now, copied to
  // another folder while the index stays open. Returns the copy's index path.
  std::string crash_image(const std::string& name = "image") {
    std::string to = image_.path() + "/" + name;
    fs::create_directories(to);
    for (const auto& e : fs::directory_iterator(dir_.path())) {
      if (e.path().extension() == ".sqlite-shm") continue;
      fs::copy_file(e.path(), to + "/" + e.path().filename().string());
    }
    return to + "/alarms.sqlite";
  }
  test::TempDir dir_;
  test::TempDir image_;
};

TEST_F(AlarmIndexTest, RemovedEntriesLeaveTheFileAtTheNextFoldAndByTheStop) {
  {
    AlarmIndex index;
    ASSERT_TRUE(index.open(path(), /*background=*/false).is_ok());
    for (int i = 0; i < 5; ++i) ASSERT_TRUE(index.record(alarm("o" + std::to_string(i), 100)));
    index.remove("NS", "o1");
    EXPECT_FALSE(index.get("NS", "o1").has_value());  // forgotten at once
    ASSERT_TRUE(index.fold().is_ok());
    EXPECT_EQ(index.all().size(), 4u);
    index.remove("NS", "o2");
    index.remove("NS", "o3");
  }  // the stop folds what is left
  EXPECT_EQ(rows(path()), (std::vector<Row>{{"o0", 100, 0}, {"o4", 100, 0}}));
}

// An entry removed and recorded again before the fold keeps the new row: the
// fold must not delete it.
TEST_F(AlarmIndexTest, AnEntryRecordedAgainBeforeTheFoldKeepsItsRow) {
  {
    AlarmIndex index;
    ASSERT_TRUE(index.open(path(), /*background=*/false).is_ok());
    ASSERT_TRUE(index.record(alarm("a", 100)));
    ASSERT_TRUE(index.record(alarm("b", 100)));
    ASSERT_TRUE(index.fold().is_ok());
    index.remove("NS", "a");
    index.remove("NS", "b");
    auto journal = index.record(alarm("a", 50));  // earlier than none: written
    ASSERT_TRUE(journal);
    EXPECT_TRUE(*journal != nullptr);
    ASSERT_TRUE(index.fold().is_ok());
    EXPECT_EQ(index.get("NS", "a"), 50);
  }
  EXPECT_EQ(rows(path()), (std::vector<Row>{{"a", 50, 0}}));
}

// A later time over a stored earlier one writes nothing (the object wakes at
// the earlier time after a restart and waits); an earlier one is written.
TEST_F(AlarmIndexTest, OnlyAnEarlierTimeIsWritten) {
  {
    AlarmIndex index;
    ASSERT_TRUE(index.open(path()).is_ok());
    ASSERT_TRUE(index.record(alarm("a", 100)));
    auto later = index.record(alarm("a", 200));
    ASSERT_TRUE(later);
    EXPECT_EQ(*later, nullptr);
    EXPECT_EQ(index.get("NS", "a"), 200);
    auto earlier = index.record(alarm("a", 10));
    ASSERT_TRUE(earlier);
    EXPECT_NE(*earlier, nullptr);
  }
  EXPECT_EQ(rows(path()), (std::vector<Row>{{"a", 10, 0}}));
}

// A shard's record touches the journal only, never SQLite: the commit that
// depends on it flushes the journal it names.
TEST_F(AlarmIndexTest, RecordingWritesTheJournalAndNotTheDatabase) {
  AlarmIndex index;
  ASSERT_TRUE(index.open(path(), /*background=*/false).is_ok());
  auto sizes = [&] {
    uintmax_t n = fs::file_size(path());
    if (fs::exists(path() + "-wal")) n += fs::file_size(path() + "-wal");
    return n;
  };
  uintmax_t before = sizes();
  std::string journal = index.journal_path();
  for (int i = 0; i < 100; ++i) {
    auto f = index.record(alarm("object-" + std::to_string(i), 1000 + i));
    ASSERT_TRUE(f);
    ASSERT_NE(*f, nullptr);
    EXPECT_EQ((*f)->path(), journal);
  }
  EXPECT_EQ(sizes(), before);
  EXPECT_GT(fs::file_size(journal), 100u * 20);
  EXPECT_TRUE(index.all().empty());
  // The fold moves them into SQLite, starts a new journal and drops the old.
  ASSERT_TRUE(index.fold().is_ok());
  EXPECT_EQ(index.all().size(), 100u);
  EXPECT_NE(index.journal_path(), journal);
  EXPECT_FALSE(fs::exists(journal));
}

// After a crash the journal's records are in no SQLite row yet: the next open
// folds them (retry counts included).
TEST_F(AlarmIndexTest, AJournalLeftByACrashIsFoldedAtOpen) {
  AlarmIndex index;
  ASSERT_TRUE(index.open(path(), /*background=*/false).is_ok());
  ASSERT_TRUE(index.record(alarm("a", 100)));
  ASSERT_TRUE(index.fold().is_ok());
  AlarmRecord named = alarm("b", 200);
  named.name = "bee";
  ASSERT_TRUE(index.record(named));
  index.set_retry("NS", "b", 3);
  ASSERT_TRUE(index.record(alarm("c", 300)));
  index.remove("NS", "a");  // not yet folded: its row is still there
  std::string image = crash_image();
  EXPECT_EQ(rows(image), (std::vector<Row>{{"a", 100, 0}, {"b", 200, 3}, {"c", 300, 0}}));
  AlarmIndex again;
  ASSERT_TRUE(again.open(image, /*background=*/false).is_ok());
  auto all = again.all();
  auto b = std::find_if(all.begin(), all.end(), [](auto& r) { return r.id_hex == "b"; });
  ASSERT_NE(b, all.end());
  EXPECT_EQ(b->name, "bee");
}

// A power cut in the middle of a record's write leaves a torn record at the
// journal's end (never synced, so no answer depended on it): the records
// before it are kept, the torn one is dropped, and the open succeeds.
TEST_F(AlarmIndexTest, ATornRecordAtTheEndIsDropped) {
  AlarmIndex index;
  ASSERT_TRUE(index.open(path(), /*background=*/false).is_ok());
  ASSERT_TRUE(index.record(alarm("a", 100)));
  ASSERT_TRUE(index.record(alarm("b", 200)));
  std::string journal = fs::path(index.journal_path()).filename().string();

  std::string cut = crash_image("cut");
  std::string cut_journal = fs::path(cut).parent_path().string() + "/" + journal;
  fs::resize_file(cut_journal, fs::file_size(cut_journal) - 3);
  EXPECT_EQ(rows(cut), (std::vector<Row>{{"a", 100, 0}}));

  std::string flipped = crash_image("flipped");
  std::string flipped_journal = fs::path(flipped).parent_path().string() + "/" + journal;
  {
    std::fstream f(flipped_journal, std::ios::in | std::ios::out | std::ios::binary);
    f.seekp(-2, std::ios::end);
    f.put('\x7f');
  }
  EXPECT_EQ(rows(flipped), (std::vector<Row>{{"a", 100, 0}}));
}

// Without anyone calling fold(), the background thread folds within about a
// second.
TEST_F(AlarmIndexTest, TheBackgroundThreadFolds) {
  AlarmIndex index;
  ASSERT_TRUE(index.open(path()).is_ok());
  for (int i = 0; i < 10; ++i) ASSERT_TRUE(index.record(alarm("o" + std::to_string(i), i)));
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  while (index.all().size() < 10 && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  EXPECT_EQ(index.all().size(), 10u);
}

}  // namespace
}  // namespace dobj::internal
