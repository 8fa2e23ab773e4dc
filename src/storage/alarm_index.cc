#include "storage/alarm_index.h"

namespace dobj::internal {

Status AlarmIndex::open(const std::string& path) {
  std::lock_guard lock(mu_);
  path_ = path;
  if (Status st = db_.open(path, /*create=*/true); !st) return st;
  // synchronous=NORMAL: commits do not sync (the flusher syncs the WAL with
  // the commits that depend on it), but SQLite's checkpoints do: they copy
  // the WAL into the file and then reuse the WAL, so the file must be on disk
  // first. (With OFF, a power loss after a checkpoint could lose entries.)
  if (Status st = db_.exec(
          "PRAGMA locking_mode=EXCLUSIVE; PRAGMA synchronous=NORMAL; PRAGMA journal_mode=WAL;"
          "CREATE TABLE IF NOT EXISTS alarms(ns TEXT NOT NULL, id TEXT NOT NULL, name TEXT,"
          " at INTEGER NOT NULL, retry INTEGER NOT NULL DEFAULT 0, PRIMARY KEY(ns, id))"
          " WITHOUT ROWID");
      !st) {
    return st;
  }
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
  return Status::ok();
}

void AlarmIndex::set_retry(const std::string& ns, const std::string& id_hex, int retry) {
  std::lock_guard lock(mu_);
  auto s = db_.cached("UPDATE alarms SET retry = ?3 WHERE ns = ?1 AND id = ?2");
  if (!s) return;
  (*s)->bind_blob(1, ns);
  (*s)->bind_blob(2, id_hex);
  (*s)->bind_int(3, retry);
  if ((*s)->step() != SQLITE_DONE) return;
  auto it = entries_.find(key(ns, id_hex));
  if (it != entries_.end()) it->second.stored_retry = retry;
}

Result<std::shared_ptr<SyncFile>> AlarmIndex::record(const AlarmRecord& r) {
  std::lock_guard lock(mu_);
  std::string k = key(r.ns, r.id_hex);
  auto it = entries_.find(k);
  if (it != entries_.end() && it->second.stored_retry == 0 && it->second.stored_at <= r.at_ms) {
    it->second.at = r.at_ms;
    return std::shared_ptr<SyncFile>();
  }
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
  entries_[k] = Entry{r.at_ms, 0, r.at_ms};
  if (!wal_) {
    auto f = SyncFile::open(path_ + "-wal", /*is_dir=*/false);
    if (!f) return f.status();
    wal_ = *f;
  }
  return wal_;
}

void AlarmIndex::remove(const std::string& ns, const std::string& id_hex) {
  std::lock_guard lock(mu_);
  auto s = db_.cached("DELETE FROM alarms WHERE ns = ?1 AND id = ?2");
  if (!s) return;
  (*s)->bind_blob(1, ns);
  (*s)->bind_blob(2, id_hex);
  if ((*s)->step() == SQLITE_DONE) entries_.erase(key(ns, id_hex));
}

std::optional<int64_t> AlarmIndex::get(const std::string& ns, const std::string& id_hex) {
  std::lock_guard lock(mu_);
  auto it = entries_.find(key(ns, id_hex));
  if (it == entries_.end()) return std::nullopt;
  return it->second.at;
}

std::vector<AlarmRecord> AlarmIndex::all() {
  std::lock_guard lock(mu_);
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
