#include "base/fs.h"

#include <gtest/gtest.h>
#include <sys/stat.h>

#include <fstream>
#include <string>

#include "testing/temp_dir.h"

namespace dobj::internal {
namespace {

bool is_dir(const std::string& path) {
  struct stat st;
  return ::stat(path.c_str(), &st) == 0 && S_ISDIR(st.st_mode);
}

TEST(MakeDirs, MakesEveryMissingFolderOfAPath) {
  test::TempDir dir;
  std::string deep = dir.path() + "/a/b/c/d";
  ASSERT_TRUE(make_dirs(deep).is_ok());
  EXPECT_TRUE(is_dir(dir.path() + "/a"));
  EXPECT_TRUE(is_dir(deep));
  // Again, and for a path whose folders all exist: nothing to do, no error.
  EXPECT_TRUE(make_dirs(deep).is_ok());
  EXPECT_TRUE(make_dirs(dir.path()).is_ok());
  // One more level under folders that exist.
  EXPECT_TRUE(make_dirs(deep + "/e", /*durable=*/true).is_ok());
  EXPECT_TRUE(is_dir(deep + "/e"));
}

TEST(MakeDirs, AFileInTheWayIsAnErrorThatNamesThePath) {
  test::TempDir dir;
  std::ofstream(dir.path() + "/file") << "x";
  Status st = make_dirs(dir.path() + "/file/sub/leaf");
  ASSERT_FALSE(st.is_ok());
  EXPECT_NE(st.message().find(dir.path() + "/file/sub"), std::string::npos) << st.message();
  EXPECT_FALSE(is_dir(dir.path() + "/file/sub"));
}

}  // namespace
}  // namespace dobj::internal
