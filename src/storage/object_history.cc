// ObjectStore, its history (StoreEnv::history): each commit's pages go to
// <id>.sqlite-history (storage/history.h) with the commit's number, which
// the database keeps too (_dobj_history.seq, written in the commit itself).
// So after any crash the two can be made to agree: a record past the
// database's number is a commit that never happened (it is dropped), and a
// database past the history's last record gets its whole state as a base.
#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "base/fs.h"
#include "base/log.h"
#include "storage/object_store.h"

namespace dobj::internal {

namespace {

constexpr const char* kHistoryTable =
    "CREATE TABLE IF NOT EXISTS _dobj_history(id INTEGER PRIMARY KEY CHECK (id = 0), seq INTEGER NOT NULL);"
    "INSERT OR IGNORE INTO _dobj_history(id, seq) VALUES (0, 0);";

// Sets _dobj_history.seq inside a database held in memory.
Status set_seq_in_image(std::string& database, uint64_t seq) {
  sqlite3* mem = nullptr;
  if (sqlite3_open(":memory:", &mem) != SQLITE_OK) {
    sqlite3_close(mem);
    return Status(Code::kInternal, "history: cannot open a database in memory");
  }
  std::unique_ptr<sqlite3, int (*)(sqlite3*)> owner(mem, sqlite3_close);
  auto size = static_cast<sqlite3_int64>(database.size());
  auto* buf = static_cast<unsigned char*>(sqlite3_malloc64(static_cast<sqlite3_uint64>(size)));
  if (!buf) return Status(Code::kInternal, "history: out of memory");
  std::memcpy(buf, database.data(), database.size());
  // Read in memory as a rollback-journal database (bytes 18 and 19 are 2 in
  // WAL mode, which a database in memory cannot be in).
  if (database.size() >= 20) buf[18] = buf[19] = 1;
  if (sqlite3_deserialize(mem, "main", buf, size, size,
                          SQLITE_DESERIALIZE_FREEONCLOSE | SQLITE_DESERIALIZE_RESIZEABLE) != SQLITE_OK) {
    return Status(Code::kInternal, "history: cannot read the database");
  }
  std::string sql = std::string(kHistoryTable) + "UPDATE _dobj_history SET seq = " + std::to_string(seq) + ";";
  if (sqlite3_exec(mem, "PRAGMA journal_mode=MEMORY", nullptr, nullptr, nullptr) != SQLITE_OK ||
      sqlite3_exec(mem, sql.c_str(), nullptr, nullptr, nullptr) != SQLITE_OK) {
    return Status(Code::kInvalidArgument, std::string("history: ") + sqlite3_errmsg(mem));
  }
  sqlite3_int64 out_size = 0;
  unsigned char* out = sqlite3_serialize(mem, "main", &out_size, 0);
  if (!out) return Status(Code::kInternal, "history: cannot copy the database");
  database.assign(reinterpret_cast<const char*>(out), static_cast<size_t>(out_size));
  sqlite3_free(out);
  // As a file: WAL mode (bytes 18 and 19), as the runtime opens it.
  if (database.size() >= 20) database[18] = database[19] = 2;
  return Status::ok();
}

}  // namespace

const char* ObjectStore::history_schema() { return kHistoryTable; }

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

}  // namespace dobj::internal
