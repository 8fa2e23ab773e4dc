#include "storage/catalog.h"

#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <memory>

#include "testing/temp_dir.h"

namespace dobj::internal {
namespace {

constexpr const char* kNs = "COUNTER";

// The catalog on a folder of fake object files. Each step opens the catalog,
// queues what happened, and stops it (which applies the queue), as a server
// that runs and stops cleanly would.
class CatalogTest : public ::testing::Test {
 protected:
  std::string file_of(const std::string& id) { return dir_.path() + "/" + id + ".sqlite"; }
  // The object's database grows (or shrinks) to `bytes`.
  void resize(const std::string& id, int64_t bytes) {
    std::filesystem::resize_file(file_of(id), static_cast<uintmax_t>(bytes));
  }
  void create(const std::string& id, int64_t bytes) {
    std::ofstream(file_of(id)).close();
    resize(id, bytes);
  }
  int64_t on_disk(const std::string& id) { return static_cast<int64_t>(std::filesystem::file_size(file_of(id))); }

  CatalogTouch touch_of(const std::string& id, int64_t active_ms, std::optional<std::string> name = {}) {
    return CatalogTouch{kNs, id, file_of(id), active_ms, std::move(name), false};
  }
  // Opens the catalog, runs `queue` on it, applies by stopping it; the
  // stopped catalog stays readable.
  template <typename Fn>
  void step(Fn queue) {
    catalog_ = std::make_unique<Catalog>();
    ASSERT_TRUE(catalog_->open(dir_.path() + "/catalog.sqlite", {}).is_ok());
    queue(*catalog_);
    catalog_->stop();
  }
  CatalogEntry entry(const std::string& id) {
    auto e = catalog_->get(kNs, id);
    EXPECT_TRUE(e.has_value()) << id;
    return e.value_or(CatalogEntry{});
  }
  // The namespace's total as the catalog keeps it (at open, then by each
  // write's change) must be the sum of its rows.
  void expect_totals_add_up(const std::vector<std::string>& ids) {
    int64_t sum = 0;
    for (const auto& id : ids) sum += entry(id).bytes;
    EXPECT_EQ(catalog_->totals()[kNs].bytes, sum);
    EXPECT_EQ(catalog_->totals()[kNs].objects, static_cast<int64_t>(ids.size()));
  }

  test::TempDir dir_;
  std::unique_ptr<Catalog> catalog_;
};

TEST_F(CatalogTest, SizesStayWithinABlockOrASixteenthOfTheFilesAndTotalsAddUp) {
  const std::vector<std::string> ids = {"small", "medium", "large"};
  create("small", 4096);
  create("medium", 100 * 1024);
  create("large", 1024 * 1024);
  step([&](Catalog& c) {
    for (const auto& id : ids) c.created(touch_of(id, 1'000'000));
  });
  for (const auto& id : ids) EXPECT_EQ(entry(id).bytes, on_disk(id)) << id;
  expect_totals_add_up(ids);

  // Growth past the bound is written; growth within it may wait (while the
  // activity, later by more than its resolution, is written).
  int64_t active = 1'000'000;
  auto later = [&] { return active += Catalog::kActiveResolutionMs * 2; };
  resize("small", 4096 + 1024);
  resize("medium", 100 * 1024 + 2048);
  resize("large", 1024 * 1024 + 100 * 1024);  // more than 1/16
  step([&](Catalog& c) {
    std::vector<CatalogTouch> batch;
    int64_t at = later();
    for (const auto& id : ids) batch.push_back(touch_of(id, at));
    c.touch(std::move(batch));
  });
  EXPECT_EQ(entry("large").bytes, on_disk("large"));
  EXPECT_EQ(entry("medium").active_ms, active);
  for (const auto& id : ids) {
    int64_t apart = std::llabs(entry(id).bytes - on_disk(id));
    EXPECT_LE(apart, std::max<int64_t>(Catalog::kBytesResolution, on_disk(id) / 16)) << id;
  }
  expect_totals_add_up(ids);

  // Small steps add up: the catalogued size follows once they pass the bound,
  // shrinking as well as growing.
  for (int64_t size : {6144, 7168, 8192, 9216, 2048}) {
    resize("small", size);
    step([&](Catalog& c) { c.touch({touch_of("small", later())}); });
    int64_t apart = std::llabs(entry("small").bytes - size);
    EXPECT_LT(apart, Catalog::kBytesResolution) << size;
    expect_totals_add_up(ids);
  }
  EXPECT_EQ(entry("small").bytes, 2048);  // 6 KiB less than the last written
}

TEST_F(CatalogTest, ActivityAndALateNameAreWrittenOnTheirOwn) {
  create("a", 4096);
  create("b", 4096);
  const int64_t t0 = 1'700'000'000'000;
  step([&](Catalog& c) {
    c.created(touch_of("a", t0));
    c.created(touch_of("b", t0 + 1000));
  });
  EXPECT_EQ(entry("a").active_ms, t0);
  EXPECT_FALSE(entry("a").name.has_value());

  // "a" is busy again past the resolution: the most recently active now.
  step([&](Catalog& c) { c.touch({touch_of("a", t0 + Catalog::kActiveResolutionMs + 5000)}); });
  EXPECT_EQ(entry("a").active_ms, t0 + Catalog::kActiveResolutionMs + 5000);
  EXPECT_EQ(entry("a").bytes, 4096);
  CatalogQuery q;
  q.sort = CatalogQuery::Sort::kActive;
  auto page = catalog_->list(q);
  ASSERT_TRUE(page.is_ok());
  ASSERT_EQ(page->entries.size(), 2u);
  EXPECT_EQ(page->entries[0].id, "a");

  // A name learned late, with nothing else moved.
  step([&](Catalog& c) { c.touch({touch_of("b", t0 + 1000, "user-b")}); });
  EXPECT_EQ(entry("b").name, "user-b");
  EXPECT_EQ(entry("b").active_ms, t0 + 1000);
  CatalogQuery named;
  named.name_prefix = "user-";
  auto found = catalog_->list(named);
  ASSERT_TRUE(found.is_ok());
  ASSERT_EQ(found->entries.size(), 1u);
  EXPECT_EQ(found->entries[0].id, "b");
}

}  // namespace
}  // namespace dobj::internal
