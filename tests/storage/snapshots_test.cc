// Storage snapshot files (storage/snapshots.h): names that carry their
// partition, durable copies that keep the time they were made, expiry.
#include "storage/snapshots.h"

#include <gtest/gtest.h>
#include <sys/stat.h>

#include <filesystem>
#include <set>

#include "base/clock.h"
#include "testing/temp_dir.h"

namespace dobj::internal {
namespace {

TEST(SnapshotsTest, ANewNameIsWellFormedRandomAndInTheGivenPartition) {
  std::set<std::string> seen;
  for (uint32_t partitions : {0u, 1u, 7u, 64u, 4096u, 65521u}) {
    for (uint32_t p : {0u, 3u, 63u, 4095u, 65520u}) {
      if (partitions != 0 && p >= partitions) continue;
      for (int i = 0; i < 50; ++i) {
        std::string name = snapshots::new_name(p, partitions);
        ASSERT_TRUE(snapshots::valid_name(name)) << name;
        EXPECT_EQ(snapshots::partition_of(name, partitions), partitions == 0 ? 0 : p) << name;
        EXPECT_TRUE(seen.insert(name).second) << name;
      }
    }
  }
  for (const char* bad : {"", "snap-", "snap-0123456789abcdef0123456789abcde", "snap-0123456789abcdef0123456789abcdef0",
                          "snap-0123456789ABCDEF0123456789ABCDEF", "snip-0123456789abcdef0123456789abcdef",
                          "snap-0123456789abcdef0123456789abcdeg", "snap-../../../../etc/passwd/aaaaaaaaaaa"}) {
    EXPECT_FALSE(snapshots::valid_name(bad)) << bad;
  }
}

TEST(SnapshotsTest, ACopyKeepsWhenItWasMadeAndGoesAfterItsDays) {
  test::TempDir dir;
  std::string folder = dir.path() + "/deep/snapshots";
  std::string fresh = snapshots::new_name(0, 0), old = snapshots::new_name(0, 0);
  int64_t now = system_now_ms();
  int64_t day = 86'400'000;
  ASSERT_TRUE(snapshots::write(folder, fresh, "fresh bytes", now - day));
  ASSERT_TRUE(snapshots::write(folder, old, "old bytes", now - (snapshots::kDays * day + 60'000)));
  auto copy = snapshots::read(folder, fresh);
  ASSERT_TRUE(copy) << copy.status().message();
  EXPECT_EQ(copy->image, "fresh bytes");
  EXPECT_EQ(copy->made_ms, now - day);
  // Past its days: not found, not listed, and removed when the next is written.
  EXPECT_EQ(snapshots::find(folder, old).status().code(), Code::kNotFound);
  EXPECT_EQ(snapshots::read(folder, old).status().code(), Code::kNotFound);
  auto listed = snapshots::list(folder);
  ASSERT_EQ(listed.size(), 1u);
  EXPECT_EQ(listed[0].name, fresh);
  EXPECT_TRUE(std::filesystem::exists(snapshots::path(folder, old)));
  ASSERT_TRUE(snapshots::write(folder, snapshots::new_name(0, 0), "x", now));
  EXPECT_FALSE(std::filesystem::exists(snapshots::path(folder, old)));
  EXPECT_TRUE(std::filesystem::exists(snapshots::path(folder, fresh)));
  // Names are checked before any path is made of them.
  EXPECT_EQ(snapshots::find(folder, "snap-../x").status().code(), Code::kInvalidArgument);
  EXPECT_EQ(snapshots::write(folder, "../escape", "x", now).code(), Code::kInvalidArgument);
  EXPECT_EQ(snapshots::find(folder, snapshots::new_name(0, 0)).status().code(), Code::kNotFound);
  EXPECT_EQ(snapshots::find("", fresh).status().code(), Code::kNotFound);
}

}  // namespace
}  // namespace dobj::internal
