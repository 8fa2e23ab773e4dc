// AlarmIndex: the node-level record of pending alarms, so that alarms fire
// after a restart without opening every object's database.
//
// One SQLite file, <data>/alarms.sqlite. An object's alarm time is written
// here before the object's own commit that sets it (the index may run ahead of
// the truth, never behind): on firing, the object's own table decides, and
// entries that no longer match are removed then. The file's WAL joins the
// group flush of the commit.
//
// Shared by all shards: every call takes the mutex (alarm changes are rare).
#pragma once

#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "dobj/status.h"
#include "storage/group_commit.h"
#include "storage/sqlite.h"

namespace dobj::internal {

struct AlarmRecord {
  std::string ns;
  std::string id_hex;
  std::optional<std::string> name;
  int64_t at_ms = 0;
  int retry = 0;  // failed runs so far (kept across restarts)
};

class AlarmIndex {
 public:
  Status open(const std::string& path);
  // Upserts; returns the file to flush with the commit that depends on it.
  Result<std::shared_ptr<SyncFile>> record(const AlarmRecord& r);
  void remove(const std::string& ns, const std::string& id_hex);
  // Notes that the alarm's next run is retry number `retry`, so that a
  // restart continues the count (and its cap) instead of starting over.
  void set_retry(const std::string& ns, const std::string& id_hex, int retry);
  std::vector<AlarmRecord> all();
  // The indexed alarm time of one object (may run ahead of the object's own).
  std::optional<int64_t> get(const std::string& ns, const std::string& id_hex);

 private:
  std::mutex mu_;
  Db db_;                          // guarded by mu_
  std::shared_ptr<SyncFile> wal_;  // guarded by mu_
  std::string path_;
};

}  // namespace dobj::internal
