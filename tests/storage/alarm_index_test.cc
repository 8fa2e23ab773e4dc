#include "storage/alarm_index.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <thread>

#include "support/server_process.h"

namespace dobj::internal {
namespace {

AlarmRecord alarm(const std::string& id, int64_t at) {
  return AlarmRecord{"NS", id, std::nullopt, at, 0};
}

// The rows in the file, as a restart reads them.
std::vector<std::pair<std::string, int64_t>> rows(const std::string& path) {
  AlarmIndex index;
  EXPECT_TRUE(index.open(path).is_ok());
  std::vector<std::pair<std::string, int64_t>> out;
  for (auto& r : index.all()) out.emplace_back(r.id_hex, r.at_ms);
  std::sort(out.begin(), out.end());
  return out;
}

class AlarmIndexTest : public ::testing::Test {
 protected:
  std::string path() { return dir_.path() + "/alarms.sqlite"; }
  test::TempDir dir_;
};

TEST_F(AlarmIndexTest, RemovedEntriesLeaveTheFileInBatchesAndByTheStop) {
  {
    AlarmIndex index;
    ASSERT_TRUE(index.open(path()).is_ok());
    for (int i = 0; i < 5; ++i) ASSERT_TRUE(index.record(alarm("o" + std::to_string(i), 100)));
    index.remove("NS", "o1");
    EXPECT_FALSE(index.get("NS", "o1").has_value());  // forgotten at once
    index.apply_removals(AlarmIndex::kRemovalBatch);
    index.remove("NS", "o2");
    index.remove("NS", "o3");
  }  // the stop deletes what is left
  EXPECT_EQ(rows(path()), (std::vector<std::pair<std::string, int64_t>>{{"o0", 100}, {"o4", 100}}));
}

// An entry removed and recorded again before its row was deleted keeps the
// new row: the batch must not delete it.
TEST_F(AlarmIndexTest, AnEntryRecordedAgainBeforeTheBatchKeepsItsRow) {
  {
    AlarmIndex index;
    ASSERT_TRUE(index.open(path()).is_ok());
    ASSERT_TRUE(index.record(alarm("a", 100)));
    ASSERT_TRUE(index.record(alarm("b", 100)));
    index.remove("NS", "a");
    index.remove("NS", "b");
    auto wal = index.record(alarm("a", 50));  // earlier than none: written
    ASSERT_TRUE(wal);
    EXPECT_TRUE(*wal != nullptr);
    index.apply_removals(AlarmIndex::kRemovalBatch);
    EXPECT_EQ(index.get("NS", "a"), 50);
  }
  EXPECT_EQ(rows(path()), (std::vector<std::pair<std::string, int64_t>>{{"a", 50}}));
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
  EXPECT_EQ(rows(path()), (std::vector<std::pair<std::string, int64_t>>{{"a", 10}}));
}

// The background thread checkpoints the file once its WAL passes
// kCheckpointFrames (the commits themselves never do).
TEST_F(AlarmIndexTest, TheBackgroundThreadCheckpointsALongWal) {
  AlarmIndex index;
  ASSERT_TRUE(index.open(path()).is_ok());
  auto file_bytes = [&] { return std::filesystem::file_size(path()); };
  auto before = file_bytes();
  for (int i = 0; i < 2 * AlarmIndex::kCheckpointFrames; ++i) {
    ASSERT_TRUE(index.record(alarm("object-" + std::to_string(i), 100 + i)));
  }
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(5);
  while (file_bytes() <= before && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  EXPECT_GT(file_bytes(), before + 16 * 1024);  // the rows reached the file
}

}  // namespace
}  // namespace dobj::internal
