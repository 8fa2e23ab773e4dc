// AlarmIndex: the node-level record of pending alarms, so that alarms fire
// after a restart without opening every object's database.
//
// Two files in the data folder: alarms.sqlite, the index itself, and a
// journal, alarms.journal.<generation>, in front of it. An object's alarm time
// reaches the journal before the object's own commit that sets it (the index
// may run ahead of the truth, never behind): on firing, the object's own table
// decides, and entries that no longer match are removed then.
//
// The shards only append to the journal: one write() of a small checksummed
// record, under a mutex held for that call alone, to the page cache like the
// object's own commit. The journal file joins the group flush of the commit,
// so both are durable before the answer leaves. The SQLite file belongs to a
// background thread: about once a second (or when the journal passes
// kFoldBytes) it starts a new journal, folds the old one into SQLite in one
// synchronous transaction, deletes the rows of removed entries, and then
// unlinks the old journal. No shard ever waits for SQLite or a sync here.
// At open, journals left by a crash are folded first; a torn record at a
// journal's end (a power cut during its write) ends that journal: it was never
// synced, so no answer depended on it.
//
// An object that re-arms its alarm for a later time while the stored entry
// would already wake it no later (and carries no retry count) writes nothing:
// after a restart the object wakes at the stored time, finds its own alarm
// later and waits for it. An alarm that re-arms itself on every run so costs
// one record, not one per run. The entries are mirrored in memory to decide
// that without a query.
//
// Removing an entry (its alarm ran, or was deleted) forgets it in memory at
// once; the background thread deletes the row at its next fold. A row not yet
// deleted at a crash only wakes its object after the restart, which finds no
// alarm.
//
// Shared by all shards. Locks: mu_ for the in-memory entries (every call, held
// for a lookup), journal_mu_ for the current journal (a record's write, and
// the switch to a new journal), db_mu_ for the SQLite connection (the
// background thread, open, stop and all()).
#pragma once

#include <atomic>
#include <chrono>
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
  // A journal this large is folded without waiting for the next second.
  static constexpr size_t kFoldBytes = 256 * 1024;
  static constexpr std::chrono::milliseconds kFoldInterval{1000};
  // WAL size (frames) past which SQLite checkpoints the file, on the
  // committing (background) thread.
  static constexpr int kCheckpointFrames = 1000;

  AlarmIndex() = default;
  ~AlarmIndex();
  AlarmIndex(const AlarmIndex&) = delete;
  AlarmIndex& operator=(const AlarmIndex&) = delete;

  // Opens (or creates) the index at path (alarms.sqlite), folds the journals
  // a crash left beside it, and starts the background thread (unless
  // background is false: tests fold by hand).
  Status open(const std::string& path, bool background = true);
  // Stops the background thread, then folds what is left.
  void stop();
  // Appends the entry to the journal, unless the stored entry already wakes
  // the object at or before r.at_ms. Returns the journal, to flush with the
  // commit that depends on it (null when nothing was written). kStorageFull
  // when the disk is full.
  Result<std::shared_ptr<SyncFile>> record(const AlarmRecord& r);
  void remove(const std::string& ns, const std::string& id_hex);
  // Notes that the alarm's next run is retry number `retry`, so that a
  // restart continues the count (and its cap) instead of starting over.
  // Best effort: not flushed on its own.
  void set_retry(const std::string& ns, const std::string& id_hex, int retry);
  // The background thread's work: a new journal, the old one into SQLite,
  // removed entries' rows deleted. Tests call it to be sure.
  Status fold();
  // The rows of the SQLite file (fold first to include the journal).
  std::vector<AlarmRecord> all();
  // The object's alarm time as last recorded (its own table decides; an
  // alarm deleted since stays here until its time comes).
  std::optional<int64_t> get(const std::string& ns, const std::string& id_hex);
  // The current journal's path (for tests).
  std::string journal_path() const;

 private:
  struct Entry {
    int64_t stored_at;  // the time in the journal or file: when a restart wakes the object
    int stored_retry;
    int64_t at;  // the time last recorded (>= stored_at)
  };
  static std::string key(const std::string& ns, const std::string& id_hex) {
    return ns + '\0' + id_hex;
  }
  std::string journal_name(uint64_t generation) const;
  // Appends one record to the current journal (journal_mu_ taken here);
  // returns the journal.
  Result<std::shared_ptr<SyncFile>> append(const std::string& record);
  // Creates journal `generation` and syncs the folder, so that its entry
  // survives a power cut before any record that a commit depends on.
  Status start_journal(uint64_t generation);
  // Applies the records of one journal file to db_ (inside a transaction).
  Status apply_journal(const std::string& path);
  void run_background();

  std::mutex mu_;
  std::unordered_map<std::string, Entry> entries_;  // guarded by mu_: the rows, as they will be
  std::unordered_set<std::string> removed_;         // guarded by mu_: rows to delete
  std::condition_variable wake_;                    // with mu_
  bool stopping_ = false;                           // guarded by mu_
  std::atomic<bool> fold_requested_{false};         // the journal passed kFoldBytes

  mutable std::mutex journal_mu_;
  int journal_fd_ = -1;                     // guarded by journal_mu_
  uint64_t generation_ = 0;                 // guarded by journal_mu_
  size_t journal_bytes_ = 0;                // guarded by journal_mu_
  std::shared_ptr<SyncFile> journal_file_;  // guarded by journal_mu_

  std::mutex db_mu_;
  Db db_;                            // guarded by db_mu_
  std::vector<std::string> unfolded_;  // guarded by db_mu_: journals to fold, oldest first
  std::string dir_;             // the folder of the files
  std::string journal_prefix_;  // <dir>/alarms.journal.
  std::thread background_;
};

}  // namespace dobj::internal
