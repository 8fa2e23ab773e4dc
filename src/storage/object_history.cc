// ObjectStore, its history (StoreEnv::history): each commit's pages go to
// <id>.sqlite-history (storage/history.h) with the commit's number, which
// the database keeps too (_dobj_history.seq, written in the commit itself).
// So after any crash the two can be made to agree: a record past the
// database's number is a commit that never happened (it is dropped), and a
// database past the history's last record gets its whole state as a base.
#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <ctime>
#include <random>

#include "base/fs.h"
#include "base/hex.h"
#include "base/log.h"
#include "storage/object_store.h"

namespace dobj::internal {

namespace {

constexpr const char* kHistoryTable =
    "CREATE TABLE IF NOT EXISTS _dobj_history(id INTEGER PRIMARY KEY CHECK (id = 0), seq INTEGER NOT NULL);"
    "INSERT OR IGNORE INTO _dobj_history(id, seq) VALUES (0, 0);";

constexpr const char* kRestoreTable =
    "CREATE TABLE IF NOT EXISTS _dobj_restore(id INTEGER PRIMARY KEY CHECK (id = 0), kind TEXT NOT NULL, "
    "source TEXT NOT NULL);";

// Runs `sql` on a database held in memory (a whole file's bytes), in place:
// SQLite works on the string's own buffer (a restored database can be a
// GiB; no copy of it is made), with room for a few new pages.
Status edit_image(std::string& database, const std::string& sql) {
  if (database.size() < 100) return Status(Code::kInvalidArgument, "history: not a database");
  uint32_t page = (static_cast<uint8_t>(database[16]) << 8) | static_cast<uint8_t>(database[17]);
  if (page == 1) page = 65536;
  size_t size = database.size(), room = size + 16 * size_t{page};
  if (database.capacity() < room) database.reserve(room);
  database.resize(room);
  // Read in memory as a rollback-journal database (bytes 18 and 19 are 2 in
  // WAL mode, which a database in memory cannot be in).
  database[18] = database[19] = 1;
  sqlite3* mem = nullptr;
  Status st = Status::ok();
  int64_t pages = -1;
  if (sqlite3_open(":memory:", &mem) != SQLITE_OK) {
    st = Status(Code::kInternal, "history: cannot open a database in memory");
  } else if (sqlite3_deserialize(mem, "main", reinterpret_cast<unsigned char*>(database.data()),
                                 static_cast<sqlite3_int64>(size), static_cast<sqlite3_int64>(room), 0) != SQLITE_OK) {
    st = Status(Code::kInternal, "history: cannot read the database");
  } else if (sqlite3_exec(mem, "PRAGMA journal_mode=MEMORY", nullptr, nullptr, nullptr) != SQLITE_OK ||
             sqlite3_exec(mem, sql.c_str(), nullptr, nullptr, nullptr) != SQLITE_OK) {
    st = Status(Code::kInvalidArgument, std::string("history: ") + sqlite3_errmsg(mem));
  } else {
    sqlite3_stmt* s = nullptr;
    if (sqlite3_prepare_v2(mem, "PRAGMA page_count", -1, &s, nullptr) == SQLITE_OK && sqlite3_step(s) == SQLITE_ROW) {
      pages = sqlite3_column_int64(s, 0);
    }
    sqlite3_finalize(s);
  }
  sqlite3_close(mem);  // before the string is touched again
  if (st && (pages <= 0 || static_cast<size_t>(pages) * page > room)) {
    st = Status(Code::kInternal, "history: cannot size the edited database");
  }
  database.resize(st ? static_cast<size_t>(pages) * page : size);
  // As a file: WAL mode (bytes 18 and 19), as the runtime opens it.
  database[18] = database[19] = 2;
  return st;
}

// Sets _dobj_history.seq inside a database held in memory. A restore the
// database was waiting for is not part of what it restores to.
Status set_seq_in_image(std::string& database, uint64_t seq) {
  return edit_image(database, std::string(kHistoryTable) + "UPDATE _dobj_history SET seq = " +
                                  std::to_string(seq) + "; DROP TABLE IF EXISTS _dobj_restore;");
}

}  // namespace

const char* ObjectStore::history_schema() { return kHistoryTable; }
const char* ObjectStore::restore_schema() { return kRestoreTable; }

std::string ObjectStore::serialize_database() {
  sqlite3_int64 size = 0;
  unsigned char* bytes = sqlite3_serialize(db_.get(), "main", &size, 0);
  if (!bytes) throw Error(Code::kInternal, "history: cannot copy the database");
  std::string out(reinterpret_cast<const char*>(bytes), static_cast<size_t>(size));
  sqlite3_free(bytes);
  return out;
}

void ObjectStore::open_history() {
  if (Status st = db_.exec(kHistoryTable); !st) throw Error(st);
  if (Status st = flush_wal_writes(db_.get()); !st) throw Error(st);
  auto s = db_.cached("SELECT seq FROM _dobj_history WHERE id = 0");
  if (!s || (*s)->step() != SQLITE_ROW) throw Error(Code::kInternal, "history: cannot read the commit number");
  history_seq_ = static_cast<uint64_t>((*s)->column_int(0));
  auto file = std::make_unique<HistoryFile>();
  if (Status st = file->open(path_ + "-history"); !st) throw Error(st);
  auto sync = SyncFile::open(file->path(), /*is_dir=*/false);
  if (!sync) throw Error(sync.status());
  history_sync_ = std::move(*sync);
  if (file->last_seq() != history_seq_) {
    if (Status st = file->truncate_after(history_seq_); !st) throw Error(st);
    if (file->last_seq() != history_seq_) {
      if (Status st = file->append_base(history_seq_, now_ms(), serialize_database()); !st) throw Error(st);
    }
    // On disk with the next flush (no answer depends on it before then).
    env_.commits->add_dirty(history_sync_);
  }
  history_ = std::move(file);
  history_needs_base_ = false;
  if (Status st = keep_history_in_bounds(now_ms(), /*at_open=*/true); !st) throw Error(st);
}

Status ObjectStore::keep_history_in_bounds(int64_t now, bool at_open) {
  const auto& e = history_->entries();
  if (e.size() < 2) return Status::ok();
  size_t first = 0;  // the first record kept
  if (env_.history_keep_ms > 0 && (at_open || now - history_trimmed_ms_ >= kHistoryTrimIntervalMs)) {
    history_trimmed_ms_ = now;
    // The last commit at or before the window's start stays: it is the state
    // at that time, which a bookmark for it names.
    int64_t cutoff = now - env_.history_keep_ms;
    while (first + 1 < e.size() && e[first + 1].time_ms <= cutoff) ++first;
  }
  auto cap = static_cast<uint64_t>(env_.history_max_bytes);
  if (cap > 0 && history_->size_bytes() > cap) {
    // Down to 3/4 of the cap (so that it is not rewritten at every commit),
    // counting the base the first kept commit becomes (about the database).
    uint64_t budget = cap / 4 * 3;
    uint64_t base = static_cast<uint64_t>(database_size());
    size_t i = e.size() - 1;
    uint64_t kept = e[i].bytes + base;
    while (i > first && kept + e[i - 1].bytes <= budget) kept += e[--i].bytes;
    first = std::max(first, i);
  }
  if (first == 0) return Status::ok();
  uint64_t seq = e[first].seq;
  if (Status st = history_->drop_before(seq); !st) {
    // The file is as it was: try again later.
    log_warn("history of " + path_ + ": cannot drop the commits before " + std::to_string(seq) + ": " +
             st.message());
    return Status::ok();
  }
  // The file was replaced: the flusher must sync the new one.
  auto sync = SyncFile::open(history_->path(), /*is_dir=*/false);
  if (!sync) return sync.status();
  history_sync_ = std::move(*sync);
  return Status::ok();
}

uint64_t ObjectStore::history_bytes() {
  if (!env_.history || !ensure_open(false) || !history_) return 0;
  return history_->size_bytes();
}

void ObjectStore::record_frames(int page_size, std::vector<WalFrame> txn) {
  if (history_) {
    if (history_pending_ && !history_pending_->recorded && wal_capture_intact(db_.get())) {
      Status st = history_->append_commit(history_pending_->seq, history_pending_->time_ms, page_size, txn);
      if (st) {
        history_pending_->recorded = true;
      } else {
        log_warn("history of " + path_ + ": " + st.message() + " (the commit is kept as a base)");
      }
    } else if (!history_pending_) {
      history_needs_base_ = true;
    }
  }
  if (env_.replication) {
    ReplicaRecord r;
    r.kind = ReplicaRecord::Kind::kCommit;
    r.ns = identity_.ns;
    r.id = identity_.id_hex;
    r.page_size = static_cast<uint32_t>(page_size);
    r.frames = std::move(txn);
    env_.replication->record(std::move(r));
  }
}

Status ObjectStore::stamp_as_next_base(std::string& database) {
  HistoryFile* history = history_.get();
  HistoryFile own;
  if (!history) {
    if (Status st = own.open(path_ + "-history"); !st) return st;
    history = &own;
  }
  uint64_t seq = std::max(history->last_seq().value_or(0), history_seq_) + 1;
  if (Status st = set_seq_in_image(database, seq); !st) return st;
  if (Status st = history->append_base(seq, now_ms(), database); !st) return st;
  auto sync = SyncFile::open(history->path(), /*is_dir=*/false);
  if (!sync) return sync.status();
  return (*sync)->sync();
}

std::vector<ObjectStore::Bookmark> ObjectStore::bookmarks() {
  std::vector<Bookmark> out;
  if (!env_.history || !ensure_open(false) || !history_) return out;
  for (const auto& e : history_->entries()) {
    out.push_back(Bookmark{HistoryFile::bookmark(e.seq, e.time_ms), e.seq, e.time_ms,
                           e.kind == HistoryFile::Kind::kBase});
  }
  return out;
}

Result<std::string> ObjectStore::current_bookmark() {
  if (!env_.history) return Status(Code::kNotFound, "history is off (--history)");
  if (!ensure_open(true) || !history_) return Status(Code::kInternal, "history: the object has no database");
  return history_->bookmark_of(history_seq_);
}

Result<std::string> ObjectStore::bookmark_for_time(int64_t time_ms) {
  if (!env_.history) return Status(Code::kNotFound, "history is off (--history)");
  if (!ensure_open(false) || !history_) return Status(Code::kNotFound, "the object has no history");
  auto seq = history_->seq_at_time(time_ms);
  if (!seq) return seq.status();
  return history_->bookmark_of(*seq);
}

Status ObjectStore::check_bookmark(std::string_view bookmark) {
  if (!env_.history) return Status(Code::kNotFound, "history is off (start the server with --history)");
  auto seq = HistoryFile::parse_bookmark(bookmark);
  if (!seq) return seq.status();
  if (!ensure_open(false) || !history_) return Status(Code::kNotFound, "the object has no history");
  for (const auto& e : history_->entries()) {
    if (e.seq == *seq) return Status::ok();
  }
  return Status(Code::kNotFound, "bookmark " + std::string(bookmark) + " is not in the object's history");
}

void ObjectStore::request_restore(std::string_view kind, std::string_view source) {
  begin_write();
  if (Status st = db_.exec(kRestoreTable); !st) fail("record a restore");
  StmtUse s = stmt("INSERT OR REPLACE INTO _dobj_restore(id, kind, source) VALUES (0, ?1, ?2)");
  s->bind_blob(1, kind);
  s->bind_blob(2, source);
  if (s->step() != SQLITE_DONE) fail("record a restore");
}

std::optional<ObjectStore::PendingRestore> ObjectStore::pending_restore() {
  if (!ensure_open(false)) return std::nullopt;
  // From the schema SQLite holds in memory: no statement for the objects
  // that never asked (almost all of them).
  if (sqlite3_table_column_metadata(db_.get(), "main", "_dobj_restore", "kind", nullptr, nullptr, nullptr,
                                    nullptr, nullptr) != SQLITE_OK) {
    return std::nullopt;
  }
  auto s = db_.cached("SELECT kind, source FROM _dobj_restore WHERE id = 0");
  if (!s || (*s)->step() != SQLITE_ROW) return std::nullopt;
  return PendingRestore{std::string((*s)->column_blob(0)), std::string((*s)->column_blob(1))};
}

void ObjectStore::clear_pending_restore() {
  if (!ensure_open(false)) return;
  Status st = db_.exec("DROP TABLE IF EXISTS _dobj_restore");
  if (st) st = flush_wal_writes(db_.get());
  if (!st) throw Error(st);
}

Result<std::string> ObjectStore::snapshot_image() {
  if (in_txn_) return Status(Code::kInternal, "snapshot: the turn has uncommitted writes");
  ensure_open(true);  // an object that never wrote: its empty database
  std::string database = serialize_database();
  // Alarms are not copied (as in Cloudflare), nor a restore the source waits for.
  if (Status st = edit_image(database, "DELETE FROM _dobj_alarm; DROP TABLE IF EXISTS _dobj_restore;"); !st) {
    return st;
  }
  return database;
}

Result<std::string> ObjectStore::snapshot_file(std::string_view name) const {
  if (env_.snapshot_dir.empty()) return Status(Code::kNotFound, "snapshots are not available here");
  if (name.size() != 37 || name.substr(0, 5) != "snap-" || !from_hex_lower(name.substr(5))) return Status(Code::kInvalidArgument, "not a snapshot name (snap- and 32 hex digits)");
  std::string path = env_.snapshot_dir + "/" + std::string(name) + ".sqlite";
  if (!file_exists(path)) return Status(Code::kNotFound, "no snapshot " + std::string(name) + " (or it expired)");
  return path;
}

Result<std::string> ObjectStore::write_snapshot() {
  if (env_.snapshot_dir.empty()) return Status(Code::kNotFound, "snapshots are not available here");
  auto image = snapshot_image();
  if (!image) return image.status();
  if (Status st = make_dirs(env_.snapshot_dir, /*durable=*/true); !st) return st;
  // Snapshots past their time go now: they are few, and this is when one is made.
  if (DIR* d = ::opendir(env_.snapshot_dir.c_str())) {
    time_t cutoff = ::time(nullptr) - kSnapshotDays * 86400;
    while (dirent* e = ::readdir(d)) {
      std::string file = env_.snapshot_dir + "/" + e->d_name;
      struct stat st;
      if (std::strncmp(e->d_name, "snap-", 5) == 0 && ::stat(file.c_str(), &st) == 0 && st.st_mtime < cutoff) {
        ::unlink(file.c_str());
      }
    }
    ::closedir(d);
  }
  std::random_device random;
  uint8_t bytes[16];
  for (uint8_t& b : bytes) b = static_cast<uint8_t>(random());
  std::string name = "snap-" + to_hex(bytes, sizeof bytes);
  if (Status st = write_file_atomic(env_.snapshot_dir + "/" + name + ".sqlite", *image, 0600); !st) return st;
  return name;
}

Result<std::string> ObjectStore::restored_database(std::string_view bookmark) {
  if (!env_.history) return Status(Code::kNotFound, "history is off (--history)");
  auto seq = HistoryFile::parse_bookmark(bookmark);
  if (!seq) return seq.status();
  if (in_txn_) return Status(Code::kInternal, "history: a restore inside a turn");
  if (!ensure_open(false) || !history_) return Status(Code::kNotFound, "the object has no history");
  auto state = history_->state_at(*seq);
  if (!state) return state.status();
  std::string database = std::move(*state);
  if (Status st = stamp_as_next_base(database); !st) return st;
  return database;
}

Status ObjectStore::history_for_copy(int* fd, uint64_t* size) {
  if (!env_.history) return Status(Code::kNotFound, "history is off (start the server with --history)");
  if (!ensure_open(false) || !history_) return Status(Code::kNotFound, "the object has no history");
  *fd = ::open(history_->path().c_str(), O_RDONLY | O_CLOEXEC);
  if (*fd < 0) return Status(Code::kInternal, "cannot open " + history_->path() + ": " + std::strerror(errno));
  *size = history_->size_bytes();
  return Status::ok();
}

Result<std::string> ObjectStore::latest_database_in(const std::string& path) {
  HistoryFile file;
  if (Status st = file.open(path); !st) return Status(Code::kInvalidArgument, "not a history file: " + st.message());
  auto last = file.last_seq();
  if (!last) return Status(Code::kInvalidArgument, "the history file holds no commit");
  auto state = file.state_at(*last);
  if (!state) return Status(Code::kInvalidArgument, "the history's last state cannot be read: " + state.status().message());
  std::string database = std::move(*state);
  if (Status st = set_seq_in_image(database, *last); !st) return st;
  return database;
}

Status ObjectStore::replace_with_history(const std::string& database_file, const std::string& history_file) {
  if (!env_.history) return Status(Code::kNotFound, "history is off (start the server with --history)");
  discard_turn();
  close_connection();
  if (Status st = make_dirs(dir_); !st) return st;
  for (const std::string& old : {path_ + "-history", path_ + "-wal"}) {
    if (::unlink(old.c_str()) != 0 && errno != ENOENT) {
      return Status(Code::kInternal, "cannot remove " + old + ": " + std::strerror(errno));
    }
  }
  if (Status st = sync_dir(dir_); !st) return st;
  if (::rename(database_file.c_str(), path_.c_str()) != 0 ||
      ::rename(history_file.c_str(), (path_ + "-history").c_str()) != 0) {
    return Status(Code::kInternal, "cannot move the files into place: " + std::string(std::strerror(errno)));
  }
  return sync_dir(dir_);
}

}  // namespace dobj::internal
