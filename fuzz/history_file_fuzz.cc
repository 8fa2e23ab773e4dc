// History files an operator (or whoever holds the admin token) uploads, or
// a damaged one on disk: reading them must answer for any bytes, never
// crash or hang. The upload's check (write_latest_database) says
// kInvalidArgument for what it refuses; the file's own reads (the index,
// each record, the states) give an error or a database.
#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <fstream>
#include <string>

#include "storage/history.h"
#include "storage/object_store.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const std::string path = [] {
    char tmpl[] = "/tmp/dobj-history-fuzz-XXXXXX";
    int fd = mkstemp(tmpl);
    if (fd >= 0) close(fd);
    return std::string(tmpl);
  }();
  auto write = [&] {
    std::ofstream f(path, std::ios::binary | std::ios::trunc);
    f.write(reinterpret_cast<const char*>(data), static_cast<std::streamsize>(size));
  };
  write();
  static const std::string out = path + ".sqlite";
  dobj::Status latest = dobj::internal::ObjectStore::write_latest_database(path, out);
  if (!latest.is_ok() && latest.code() != dobj::Code::kInvalidArgument) std::abort();
  write();  // as it was (the open may have cut a torn end)
  dobj::internal::HistoryFile h;
  if (!h.open(path).is_ok()) return 0;
  const auto entries = h.entries();
  for (const auto& e : entries) (void)h.intact(e);
  if (!entries.empty()) {
    (void)h.state_at(entries.front().seq);
    (void)h.state_at(entries.back().seq);
    (void)h.seq_at_time(entries.back().time_ms);
  }
  return 0;
}
