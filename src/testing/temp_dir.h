// TempDir: a fresh empty folder under $TMPDIR (or /tmp), removed with
// everything in it by the destructor unless keep() was called.
#pragma once

#include <string>

namespace dobj::test {

class TempDir {
 public:
  TempDir();
  ~TempDir();
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  const std::string& path() const { return path_; }
  void keep() { keep_ = true; }

 private:
  std::string path_;
  bool keep_ = false;
};

}  // namespace dobj::test
