// Database files an operator (or whoever holds the admin token) imports: the
// check must answer for any bytes, never crash or hang, and say
// kInvalidArgument for what it refuses.
#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <fstream>
#include <string>

#include "storage/import_check.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const std::string path = [] {
    char tmpl[] = "/tmp/dobj-import-fuzz-XXXXXX";
    int fd = mkstemp(tmpl);
    if (fd >= 0) close(fd);
    return std::string(tmpl);
  }();
  {
    std::ofstream f(path, std::ios::binary | std::ios::trunc);
    f.write(reinterpret_cast<const char*>(data), static_cast<std::streamsize>(size));
  }
  dobj::Status st = dobj::internal::check_importable_database(path);
  if (!st.is_ok() && st.code() != dobj::Code::kInvalidArgument) std::abort();
  return 0;
}
