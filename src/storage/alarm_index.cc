#include "storage/alarm_index.h"

namespace dobj::internal {

Status AlarmIndex::open(const std::string& path) {
  std::lock_guard lock(mu_);
  path_ = path;
  if (Status st = db_.open(path, /*create=*/true); !st) return st;
  if (Status st = db_.exec(
          "PRAGMA locking_mode=EXCLUSIVE; PRAGMA synchronous=OFF; PRAGMA journal_mode=WAL;"
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
    return db_.exec("ALTER TABLE alarms ADD COLUMN retry INTEGER NOT NULL DEFAULT 0");
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
  (*s)->step();
}

Result<std::shared_ptr<SyncFile>> AlarmIndex::record(const AlarmRecord& r) {
  std::lock_guard lock(mu_);
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
  (*s)->step();
}

std::optional<int64_t> AlarmIndex::get(const std::string& ns, const std::string& id_hex) {
  std::lock_guard lock(mu_);
  auto s = db_.cached("SELECT at FROM alarms WHERE ns = ?1 AND id = ?2");
  if (!s) return std::nullopt;
  (*s)->bind_blob(1, ns);
  (*s)->bind_blob(2, id_hex);
  if ((*s)->step() != SQLITE_ROW) return std::nullopt;
  return (*s)->column_int(0);
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
