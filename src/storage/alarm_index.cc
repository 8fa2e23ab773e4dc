#include "storage/alarm_index.h"

namespace dobj::internal {

AlarmIndex::~AlarmIndex() { stop(); }

Status AlarmIndex::open(const std::string& path) {
  std::scoped_lock lock(db_mu_, mu_);
  path_ = path;
  // Two connections in WAL mode with shared memory: the shards' writes go
  // through db_, the background thread's checkpoints through bg_db_, so a
  // checkpoint's syncs hold no shard up.
  if (Status st = db_.open(path, /*create=*/true, /*shared=*/true); !st) return st;
  // synchronous=NORMAL: commits do not sync (the flusher syncs the WAL with
  // the commits that depend on it), but SQLite's checkpoints do: they copy
  // the WAL into the file and sync it before the WAL may be reused. (With
  // OFF, a power loss after a checkpoint could lose entries.)
  if (Status st = db_.exec(
          "PRAGMA busy_timeout=10000; PRAGMA synchronous=NORMAL; PRAGMA journal_mode=WAL;"
          "CREATE TABLE IF NOT EXISTS alarms(ns TEXT NOT NULL, id TEXT NOT NULL, name TEXT,"
          " at INTEGER NOT NULL, retry INTEGER NOT NULL DEFAULT 0, PRIMARY KEY(ns, id))"
          " WITHOUT ROWID");
      !st) {
    return st;
  }
  sqlite3_wal_autocheckpoint(db_.get(), 0);
  if (Status st = bg_db_.open(path, /*create=*/false, /*shared=*/true); !st) return st;
  if (Status st = bg_db_.exec("PRAGMA busy_timeout=10000; PRAGMA synchronous=NORMAL;"); !st) {
    return st;
  }
  sqlite3_wal_autocheckpoint(bg_db_.get(), 0);
  // Files from before the retry count: add the column.
  bool has_retry;
  {
    auto s = db_.cached("SELECT count(*) FROM pragma_table_info('alarms') WHERE name = 'retry'");
    if (!s) return s.status();
    has_retry = (*s)->step() == SQLITE_ROW && (*s)->column_int(0) == 1;
  }  // the statement is reset here, before the schema changes
  if (!has_retry) {
    if (Status st = db_.exec("ALTER TABLE alarms ADD COLUMN retry INTEGER NOT NULL DEFAULT 0");
        !st) {
      return st;
    }
  }
  auto s = db_.cached("SELECT ns, id, at, retry FROM alarms");
  if (!s) return s.status();
  while ((*s)->step() == SQLITE_ROW) {
    int64_t at = (*s)->column_int(2);
    entries_[key(std::string((*s)->column_blob(0)), std::string((*s)->column_blob(1)))] =
        Entry{at, static_cast<int>((*s)->column_int(3)), at};
  }
  // The background thread checkpoints, not the commits on shard threads.
  track_wal_frames(db_.get(), &wal_frames_);
  stopping_ = false;
  background_ = std::thread([this] { run_background(); });
  return Status::ok();
}

void AlarmIndex::stop() {
  {
    std::lock_guard lock(mu_);
    if (!background_.joinable()) return;
    stopping_ = true;
  }
  wake_.notify_all();
  background_.join();
  apply_removals(SIZE_MAX);
  checkpoint_if_due();
}

void AlarmIndex::run_background() {
  std::unique_lock lock(mu_);
  while (!stopping_) {
    wake_.wait_for(lock, std::chrono::milliseconds(200), [&] { return stopping_; });
    if (stopping_) break;
    // A batch at a time, letting writers of new times in between.
    while (!removed_.empty() && !stopping_) {
      lock.unlock();
      apply_removals(kRemovalBatch);
      lock.lock();
    }
    lock.unlock();
    checkpoint_if_due();
    lock.lock();
  }
}

void AlarmIndex::checkpoint_if_due() {
  {
    std::lock_guard db(db_mu_);
    if (wal_frames_ < kCheckpointFrames || !bg_db_.is_open()) return;
    wal_frames_ = 0;
  }
  // On the background connection, with no lock of ours: writers go on
  // meanwhile. synchronous=NORMAL: SQLite syncs the WAL, then the file,
  // before it lets a writer restart the WAL.
  ++checkpoints_;
  sqlite3_wal_checkpoint_v2(bg_db_.get(), nullptr, SQLITE_CHECKPOINT_PASSIVE, nullptr, nullptr);
}

void AlarmIndex::set_retry(const std::string& ns, const std::string& id_hex, int retry) {
  std::lock_guard db(db_mu_);
  auto s = db_.cached("UPDATE alarms SET retry = ?3 WHERE ns = ?1 AND id = ?2");
  if (!s) return;
  (*s)->bind_blob(1, ns);
  (*s)->bind_blob(2, id_hex);
  (*s)->bind_int(3, retry);
  if ((*s)->step() != SQLITE_DONE) return;
  std::lock_guard lock(mu_);
  auto it = entries_.find(key(ns, id_hex));
  if (it != entries_.end()) it->second.stored_retry = retry;
}

Result<std::shared_ptr<SyncFile>> AlarmIndex::record(const AlarmRecord& r) {
  std::string k = key(r.ns, r.id_hex);
  {
    std::lock_guard lock(mu_);
    auto it = entries_.find(k);
    if (it != entries_.end() && it->second.stored_retry == 0 && it->second.stored_at <= r.at_ms) {
      it->second.at = r.at_ms;
      return std::shared_ptr<SyncFile>();
    }
  }
  // Only this object's shard writes its entry, so nothing changes it between
  // the check above and the write; the background thread deletes a row only
  // while its entry is absent, and not during this write.
  std::lock_guard db(db_mu_);
  // A new alarm time starts its retries over.
  auto s = db_.cached(
      "INSERT OR REPLACE INTO alarms(ns, id, name, at, retry) VALUES (?1, ?2, ?3, ?4, 0)");
  if (!s) return s.status();
  StmtUse st = std::move(*s);
  st->bind_blob(1, r.ns);
  st->bind_blob(2, r.id_hex);
  if (r.name) st->bind_blob(3, *r.name);
  st->bind_int(4, r.at_ms);
  if (st->step() != SQLITE_DONE) return db_.error(Code::kInternal, "alarm index");
  {
    std::lock_guard lock(mu_);
    entries_[k] = Entry{r.at_ms, 0, r.at_ms};
    removed_.erase(k);  // the row is new again
  }
  if (!wal_) {
    auto f = SyncFile::open(path_ + "-wal", /*is_dir=*/false);
    if (!f) return f.status();
    wal_ = *f;
  }
  return wal_;
}

void AlarmIndex::remove(const std::string& ns, const std::string& id_hex) {
  std::lock_guard lock(mu_);
  std::string k = key(ns, id_hex);
  if (entries_.erase(k) > 0) removed_.insert(std::move(k));
}

void AlarmIndex::apply_removals(size_t most) {
  std::vector<std::string> batch;
  {
    std::lock_guard lock(mu_);
    while (batch.size() < most && !removed_.empty()) {
      batch.push_back(std::move(removed_.extract(removed_.begin()).value()));
    }
  }
  if (batch.empty()) return;
  std::lock_guard db(db_mu_);
  if (!db_.is_open() || !db_.exec("BEGIN")) return;
  for (const std::string& k : batch) {
    {
      // Recorded again since it was removed: its row is the new one.
      std::lock_guard lock(mu_);
      if (entries_.count(k) > 0) continue;
    }
    size_t zero = k.find('\0');
    auto s = db_.cached("DELETE FROM alarms WHERE ns = ?1 AND id = ?2");
    if (!s) break;
    (*s)->bind_blob(1, std::string_view(k).substr(0, zero));
    (*s)->bind_blob(2, std::string_view(k).substr(zero + 1));
    (*s)->step();
  }
  // A failed commit leaves rows behind: they only wake their objects after a
  // restart, which then find no alarm.
  if (!db_.exec("COMMIT")) (void)db_.exec("ROLLBACK");
}

std::optional<int64_t> AlarmIndex::get(const std::string& ns, const std::string& id_hex) {
  std::lock_guard lock(mu_);
  auto it = entries_.find(key(ns, id_hex));
  if (it == entries_.end()) return std::nullopt;
  return it->second.at;
}

std::vector<AlarmRecord> AlarmIndex::all() {
  std::lock_guard db(db_mu_);
  std::vector<AlarmRecord> out;
  auto s = db_.cached("SELECT ns, id, name, at, retry FROM alarms");
  if (!s) return out;
  while ((*s)->step() == SQLITE_ROW) {
    AlarmRecord r;
    r.ns = std::string((*s)->column_blob(0));
    r.id_hex = std::string((*s)->column_blob(1));
    if (sqlite3_column_type((*s)->get(), 2) != SQLITE_NULL)
      r.name = std::string((*s)->column_blob(2));
    r.at_ms = (*s)->column_int(3);
    r.retry = static_cast<int>((*s)->column_int(4));
    out.push_back(std::move(r));
  }
  return out;
}

}  // namespace dobj::internal
