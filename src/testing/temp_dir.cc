#include "testing/temp_dir.h"

#include <stdlib.h>

#include <cstdlib>
#include <filesystem>
#include <stdexcept>

namespace dobj::test {

TempDir::TempDir() {
  const char* base = std::getenv("TMPDIR");
  std::string templ = std::string(base && *base ? base : "/tmp") + "/dobj-test-XXXXXX";
  if (!mkdtemp(templ.data())) throw std::runtime_error("cannot make a folder like " + templ);
  path_ = templ;
}

TempDir::~TempDir() {
  std::error_code ec;
  if (!keep_) std::filesystem::remove_all(path_, ec);
}

}  // namespace dobj::test
