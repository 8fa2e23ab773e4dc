// AlarmIndex: the node-level record of pending alarms, so that alarms fire
// after a restart without opening every object's database.
//
// One SQLite file, <data>/alarms.sqlite. An object's alarm time is written
// here before the object's own commit that sets it (the index may run ahead of
// the truth, never behind): on firing, the object's own table decides, and
// entries that no longer match are removed then. The file's WAL joins the
// group flush of the commit.
//
// An object that re-arms its alarm for a later time while the stored entry
// would already wake it no later (and carries no retry count) writes nothing
// here: after a restart the object wakes at the stored time, finds its own
// alarm later and waits for it. An alarm that re-arms itself on every run so
// costs one write to this file, not one per run. The entries are mirrored in
// memory to decide that without a query.
//
// Removing an entry (its alarm ran, or was deleted) forgets it in memory at
// once; a background thread deletes the rows later, many in one transaction,
// and checkpoints the file. (One DELETE commit per finished alarm on the
// shard threads, behind one mutex, held shards up for milliseconds in a burst
// of alarms, and its checkpoints synced there.) A row not yet deleted at a
// crash only wakes its object after the restart, which finds no alarm.
//
// Shared by all shards. Two locks: mu_ for the in-memory entries (every call,
// held for a lookup), db_mu_ for the writing SQLite connection (only writes
// of new times and retries, the background thread's deletes, and start-up).
// Checkpoints, which sync, run on a second connection with neither lock held,
// so no shard ever waits for one.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <unordered_map>
#include <unordered_set>
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
  // Rows deleted per transaction; WAL size (frames) past which the
  // background thread checkpoints.
  static constexpr size_t kRemovalBatch = 256;
  static constexpr int kCheckpointFrames = 1000;

  AlarmIndex() = default;
  ~AlarmIndex();
  AlarmIndex(const AlarmIndex&) = delete;
  AlarmIndex& operator=(const AlarmIndex&) = delete;

  // Opens (or creates) the file and starts the background thread.
  Status open(const std::string& path);
  // Stops the background thread, then deletes the rows of every removed
  // entry and checkpoints.
  void stop();
  // Upserts, unless the stored entry already wakes the object at or before
  // r.at_ms. Returns the file to flush with the commit that depends on it
  // (null when nothing was written).
  Result<std::shared_ptr<SyncFile>> record(const AlarmRecord& r);
  void remove(const std::string& ns, const std::string& id_hex);
  // Deletes the rows of up to `most` removed entries in one transaction (the
  // background thread's work; tests call it to be sure).
  void apply_removals(size_t most);
  // Notes that the alarm's next run is retry number `retry`, so that a
  // restart continues the count (and its cap) instead of starting over.
  void set_retry(const std::string& ns, const std::string& id_hex, int retry);
  std::vector<AlarmRecord> all();
  // The object's alarm time as last recorded (its own table decides; an
  // alarm deleted since stays here until its time comes).
  std::optional<int64_t> get(const std::string& ns, const std::string& id_hex);
  // Checkpoints run so far (for tests).
  int checkpoints() const { return checkpoints_.load(); }

 private:
  struct Entry {
    int64_t stored_at;  // the time in the file: when a restart wakes the object
    int stored_retry;
    int64_t at;  // the time last recorded (>= stored_at)
  };
  static std::string key(const std::string& ns, const std::string& id_hex) {
    return ns + '\0' + id_hex;
  }
  void run_background();
  void checkpoint_if_due();  // on the background thread (or at stop)

  std::mutex mu_;
  std::unordered_map<std::string, Entry> entries_;  // guarded by mu_: the rows, as they will be
  std::unordered_set<std::string> removed_;         // guarded by mu_: rows to delete
  std::mutex db_mu_;
  Db db_;                          // guarded by db_mu_
  Db bg_db_;                       // the background thread's (checkpoints)
  std::atomic<int> checkpoints_{0};
  std::shared_ptr<SyncFile> wal_;  // guarded by db_mu_
  int wal_frames_ = 0;             // guarded by db_mu_
  std::string path_;
  std::condition_variable wake_;  // with mu_
  bool stopping_ = false;         // guarded by mu_
  std::thread background_;
};

}  // namespace dobj::internal
