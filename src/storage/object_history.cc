// ObjectStore, its history (StoreEnv::history): each commit's pages go to
// <id>.sqlite-history (storage/history.h) with the commit's number, which
// the database keeps too (_dobj_history.seq, written in the commit itself).
// So after any crash the two can be made to agree: a record past the
// database's number is a commit that never happened (it is dropped), and a
// database past the history's last record gets its whole state as a base.
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <optional>

#include "base/clock.h"
#include "base/fs.h"
#include "base/hex.h"
#include "base/log.h"
#include "storage/object_store.h"
#include "storage/snapshots.h"
#include "storage/vfs.h"

namespace dobj::internal {

namespace {

// The commit's number and time. Spelled so that the ALTER of a table from
// before the time was kept (kHistoryTableV1) gives the same SQL text.
constexpr const char* kHistoryTable =
    "CREATE TABLE IF NOT EXISTS _dobj_history(id INTEGER PRIMARY KEY CHECK (id = 0), seq INTEGER NOT NULL, "
    "time INTEGER NOT NULL DEFAULT 0);"
    "INSERT OR IGNORE INTO _dobj_history(id, seq) VALUES (0, 0);";
constexpr const char* kHistoryTableV1 =
    "CREATE TABLE IF NOT EXISTS _dobj_history(id INTEGER PRIMARY KEY CHECK (id = 0), seq INTEGER NOT NULL);"
    "INSERT OR IGNORE INTO _dobj_history(id, seq) VALUES (0, 0);";
constexpr const char* kAddHistoryTime = "ALTER TABLE _dobj_history ADD COLUMN time INTEGER NOT NULL DEFAULT 0;";

uint16_t be16(const char* p) {
  return static_cast<uint16_t>((static_cast<uint8_t>(p[0]) << 8) | static_cast<uint8_t>(p[1]));
}

// SQLite's varint (1 to 9 bytes, big-endian, 7 bits a byte but the ninth).
std::optional<uint64_t> varint(std::string_view page, size_t* at) {
  uint64_t v = 0;
  for (int i = 0; i < 9; ++i) {
    if (*at >= page.size()) return std::nullopt;
    auto b = static_cast<uint8_t>(page[(*at)++]);
    if (i == 8) return (v << 8) | b;
    v = (v << 7) | (b & 0x7f);
    if (!(b & 0x80)) return v;
  }
  return v;
}

// The commit number and time in a page of _dobj_history (a table leaf
// holding its one row), as SQLite lays it out; nullopt if it is not that.
struct Stamp {
  uint64_t seq;
  int64_t time_ms;
};
std::optional<Stamp> read_stamp(std::string_view page, bool first_page) {
  size_t h = first_page ? 100 : 0;
  if (page.size() < h + 10 || static_cast<uint8_t>(page[h]) != 0x0d || be16(page.data() + h + 3) != 1) {
    return std::nullopt;
  }
  size_t at = be16(page.data() + h + 8);
  auto payload = varint(page, &at);
  auto rowid = varint(page, &at);
  size_t record = at;
  auto header = varint(page, &at);
  if (!payload || !rowid || !header || *rowid != 0 || record + *header > page.size()) return std::nullopt;
  std::vector<uint64_t> types;
  while (at < record + *header) {
    auto t = varint(page, &at);
    if (!t) return std::nullopt;
    types.push_back(*t);
  }
  // id (the rowid: stored as NULL), seq, then time (absent before it was kept).
  if (types.size() < 2 || types[0] != 0) return std::nullopt;
  size_t value = record + *header;
  int64_t values[2] = {0, 0};
  for (size_t c = 1; c < types.size() && c <= 2; ++c) {
    static constexpr size_t kBytes[] = {0, 1, 2, 3, 4, 6, 8};
    uint64_t t = types[c];
    if (t == 8 || t == 9) {
      values[c - 1] = static_cast<int64_t>(t - 8);
      continue;
    }
    if (t < 1 || t > 6 || value + kBytes[t] > page.size()) return std::nullopt;
    int64_t v = static_cast<int8_t>(page[value]);  // sign from the first byte
    for (size_t i = 1; i < kBytes[t]; ++i) v = (v << 8) | static_cast<uint8_t>(page[value + i]);
    values[c - 1] = v;
    value += kBytes[t];
  }
  return Stamp{static_cast<uint64_t>(values[0]), values[1]};
}

constexpr const char* kRestoreTable =
    "CREATE TABLE IF NOT EXISTS _dobj_restore(id INTEGER PRIMARY KEY CHECK (id = 0), kind TEXT NOT NULL, "
    "source TEXT NOT NULL);";

// Runs `sql` on a database held in memory (a whole file's bytes), in place:
// SQLite works on the string's own buffer (a restored database can be a
// GiB; no copy of it is made), with room for a few new pages.
// `row`, when given, is called with each row the SQL gives.
Status edit_image(std::string& database, const std::string& sql,
                  const std::function<void(int, char**)>& row = nullptr) {
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
             sqlite3_exec(
                 mem, sql.c_str(),
                 [](void* fn, int n, char** values, char**) {
                   (*static_cast<const std::function<void(int, char**)>*>(fn))(n, values);
                   return 0;
                 },
                 row ? const_cast<std::function<void(int, char**)>*>(&row) : nullptr, nullptr) != SQLITE_OK) {
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

// The SQL that sets _dobj_history's number and time in a database. A
// restore the database was waiting for is not part of what it restores to.
std::string set_seq_sql(uint64_t seq, int64_t time_ms) {
  return std::string(kHistoryTable) + "UPDATE _dobj_history SET seq = " + std::to_string(seq) +
         ", time = " + std::to_string(time_ms) + "; DROP TABLE IF EXISTS _dobj_restore;";
}

// The same inside a database held in memory.
Status set_seq_in_image(std::string& database, uint64_t seq, int64_t time_ms) {
  return edit_image(database, set_seq_sql(seq, time_ms));
}

// The same in a database file nothing else has open (a rebuilt one, before
// it is put in place): opened as a rollback-journal database with its
// journal in memory (bytes 18 and 19 are 2 in WAL mode; set back after), so
// that no -wal or -journal file is left beside it. Not synced.
Status set_seq_in_file(const std::string& path, uint64_t seq, int64_t time_ms) {
  int fd = ::open(path.c_str(), O_RDWR | O_CLOEXEC);
  if (fd < 0) return Status(Code::kInternal, "cannot open " + path + ": " + std::strerror(errno));
  auto mode = [&](char v) {
    const char both[2] = {v, v};
    return ::pwrite(fd, both, 2, 18) == 2;
  };
  Status st = mode(1) ? Status::ok() : Status(Code::kInternal, "cannot write " + path);
  if (st) {
    sqlite3* db = nullptr;
    if (sqlite3_open_v2(path.c_str(), &db, SQLITE_OPEN_READWRITE, nullptr) != SQLITE_OK ||
        sqlite3_exec(db, "PRAGMA journal_mode=MEMORY", nullptr, nullptr, nullptr) != SQLITE_OK ||
        sqlite3_exec(db, set_seq_sql(seq, time_ms).c_str(), nullptr, nullptr, nullptr) != SQLITE_OK) {
      st = Status(Code::kInvalidArgument, std::string("history: ") + (db ? sqlite3_errmsg(db) : "cannot open"));
    }
    sqlite3_close(db);
  }
  if (st && !mode(2)) st = Status(Code::kInternal, "cannot write " + path);
  ::close(fd);
  return st;
}

}  // namespace

std::optional<std::pair<uint64_t, int64_t>> ObjectStore::stamp_in_image(std::string& database) {
  if (database.size() < 100) return std::nullopt;
  // Read as edit_image does; the bytes are given back as they were.
  const char journal[2] = {database[18], database[19]};
  std::optional<std::pair<uint64_t, int64_t>> out;
  Status st = edit_image(database, "SELECT seq, time FROM _dobj_history WHERE id = 0", [&](int n, char** v) {
    if (n == 2 && v[0] && v[1]) out.emplace(std::strtoull(v[0], nullptr, 10), std::strtoll(v[1], nullptr, 10));
  });
  database[18] = journal[0];
  database[19] = journal[1];
  if (!st) return std::nullopt;
  return out;
}

const char* ObjectStore::history_schema() { return kHistoryTable; }
std::vector<std::string> ObjectStore::earlier_history_schemas() {
  return {kHistoryTableV1, std::string(kHistoryTableV1) + kAddHistoryTime};
}
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
  if (sqlite3_table_column_metadata(db_.get(), "main", "_dobj_history", "time", nullptr, nullptr, nullptr, nullptr,
                                    nullptr) != SQLITE_OK) {
    if (Status st = db_.exec(kAddHistoryTime); !st) throw Error(st);  // a table from before the time was kept
  }
  if (Status st = flush_wal_writes(db_.get()); !st) throw Error(st);
  auto s = db_.cached("SELECT seq, time FROM _dobj_history WHERE id = 0");
  if (!s || (*s)->step() != SQLITE_ROW) throw Error(Code::kInternal, "history: cannot read the commit number");
  uint64_t stamped = static_cast<uint64_t>((*s)->column_int(0));
  int64_t stamped_time = (*s)->column_int(1);
  auto file = std::make_unique<HistoryFile>();
  if (Status st = file->open(path_ + "-history"); !st) throw Error(st);
  auto sync = SyncFile::open(file->path(), /*is_dir=*/false);
  if (!sync) throw Error(sync.status());
  history_sync_ = std::move(*sync);
  const bool legacy = file->last() != nullptr && file->last()->legacy;
  auto wal_last = rebuild_from_wal(*file, legacy, stamped);
  if (!wal_last) throw Error(wal_last.status());
  if (legacy) {
    // Written when every commit was stamped: the stamp is the database's
    // number, and a record past it never happened.
    history_seq_ = stamped;
    if (Status st = file->truncate_after(history_seq_); !st) throw Error(st);
  } else {
    // The stamp is in the first commit after each open and checkpoint; the
    // commits after it are numbered on from it (rebuild_from_wal). A record
    // is written only once its commit is durable, so none is past the
    // database.
    history_seq_ = std::max({stamped, wal_last->value_or(0), file->last_seq().value_or(0)});
    // A record cut off that the WAL could not give back was synced before a
    // checkpoint, and then damaged: the database has at least that commit.
    // It becomes a base (below) under that number.
    history_seq_ = std::max(history_seq_, file->cut_seq());
  }
  if (file->last_seq() != history_seq_) {
    // As of the stamped commit, its time (a restore's or an import's base
    // has the time its backups were told); else the time of the open.
    int64_t time = history_seq_ == stamped && stamped_time > 0 ? stamped_time : now_ms();
    if (Status st = file->write_out(); !st) throw Error(st);
    if (Status st = file->append_base(history_seq_, time, serialize_database()); !st) throw Error(st);
  }
  if (legacy) {
    // The records of the earlier format on disk now: the WAL's commits are
    // numbered another way from here on.
    if (Status st = file->write_out(); !st) throw Error(st);
    if (Status st = history_sync_->sync(); !st) throw Error(st);
  }
  // On disk with the next flush (no answer depends on it before then).
  env_->commits->add_dirty(history_sync_);
  history_ = std::move(file);
  history_needs_base_ = false;
  stamp_next_ = true;
  if (Status st = keep_history_in_bounds(now_ms(), /*at_open=*/true); !st) throw Error(st);
}

Result<std::optional<uint64_t>> ObjectStore::rebuild_from_wal(HistoryFile& file, bool legacy, uint64_t stamped) {
  // The history file is synced when a checkpoint lets the WAL start over,
  // and a record is written once its commit is durable: after a crash its
  // last records may be missing or holed, and the WAL still holds every
  // commit since that sync.
  auto commits = read_wal_commits(path_ + "-wal");
  if (!commits) return commits.status();
  if (commits->empty()) return std::optional<uint64_t>();
  auto root = db_.cached("SELECT rootpage FROM sqlite_schema WHERE name = '_dobj_history'");
  if (!root || (*root)->step() != SQLITE_ROW) return Status(Code::kInternal, "history: no _dobj_history table");
  auto root_page = static_cast<uint32_t>((*root)->column_int(0));
  struct Rebuilt {
    Stamp stamp;
    std::vector<WalFrame> frames;
  };
  std::vector<Rebuilt> rebuilt;
  // Legacy: every turn's commit was stamped, and commits made outside turns
  // (no number of their own) joined the next one.
  std::vector<WalFrame> carried;
  // Now: a stamped commit gives the numbers of the commits after it, one
  // each. Those before the first stamp are of an earlier open (numbered by
  // a stamp the WAL no longer holds) or made before the history opened
  // (no number), so they are not rebuilt.
  std::optional<Stamp> running;
  uint32_t page_size = 0;
  for (auto& commit : *commits) {
    std::optional<Stamp> stamp;
    for (WalFrame& f : commit) {
      page_size = static_cast<uint32_t>(f.data.size());
      if (f.page == root_page) stamp = read_stamp(f.data, root_page == 1);
    }
    if (legacy) {
      for (WalFrame& f : commit) carried.push_back(std::move(f));
      if (!stamp) continue;
      rebuilt.push_back(Rebuilt{*stamp, std::move(carried)});
      carried.clear();
      continue;
    }
    if (stamp) {
      // Numbers given past it were commits of no number (made on an open
      // before its history did): not rebuilt.
      while (!rebuilt.empty() && rebuilt.back().stamp.seq >= stamp->seq) rebuilt.pop_back();
      running = *stamp;
    } else if (running) {
      // Its time is not in the WAL: the latest known, which is no later.
      ++running->seq;
      if (file.last_seq() && *file.last_seq() < running->seq) {
        running->time_ms = std::max(running->time_ms, file.last()->time_ms);
      }
    } else {
      continue;
    }
    rebuilt.push_back(Rebuilt{*running, std::move(commit)});
  }
  if (rebuilt.empty()) return std::optional<uint64_t>();
  // Records of these commits may not have reached the disk whole: checked,
  // and from the first that is not, written again from the WAL.
  if (Status st = file.cut_damaged_from(rebuilt.front().stamp.seq); !st) return st;
  size_t added = 0;
  for (Rebuilt& r : rebuilt) {
    uint64_t last = file.last_seq().value_or(0);
    if (r.stamp.seq <= last || (legacy && r.stamp.seq > stamped)) continue;
    if (r.stamp.seq != last + 1 || !file.last_seq()) break;  // a gap: the database becomes a base
    // Its commit may not be durable yet (a reopen in the same process).
    if (Status st = file.append_changes(r.stamp.seq, r.stamp.time_ms, static_cast<int>(page_size), r.frames,
                                       env_->commits->last_seq());
        !st) {
      return st;
    }
    ++added;
  }
  if (added > 0) log_info("history of " + path_ + ": " + std::to_string(added) + " commits rebuilt from the WAL");
  if (legacy) return std::optional<uint64_t>();
  return std::optional<uint64_t>(rebuilt.back().stamp.seq);
}

uint64_t ObjectStore::durable_gate() const {
  return env_->commits->syncs() ? env_->commits->durable_seq() : UINT64_MAX;
}

Status ObjectStore::keep_history_in_bounds(int64_t now, bool at_open) {
  const bool check_time = env_->history_keep_ms > 0 && (at_open || now - history_trimmed_ms_ >= kHistoryTrimIntervalMs);
  if (check_time) history_trimmed_ms_ = now;
  bool dropped = false;
  Status st = history_->trim(check_time ? std::optional<int64_t>(now - env_->history_keep_ms) : std::nullopt,
                             static_cast<uint64_t>(env_->history_max_bytes),
                             [this] { return static_cast<uint64_t>(database_size()); }, durable_gate(), &dropped);
  if (!st) {
    // The file is as it was: try again later.
    log_warn("history of " + path_ + ": cannot drop its oldest commits: " + st.message());
    return Status::ok();
  }
  if (!dropped) return Status::ok();
  // The file was replaced: the flusher must sync the new one.
  auto sync = SyncFile::open(history_->path(), /*is_dir=*/false);
  if (!sync) return sync.status();
  history_sync_ = std::move(*sync);
  return Status::ok();
}

Status ObjectStore::write_out_history() {
  if (!env_->history || !ensure_open(false) || !history_) return Status::ok();
  return history_->write_out(durable_gate());
}

uint64_t ObjectStore::history_bytes() {
  if (!env_->history || !ensure_open(false) || !history_) return 0;
  return history_->size_bytes();
}

void ObjectStore::record_frames(int page_size, std::vector<WalFrame> txn) {
  uint64_t seq = 0;  // the commit's number in the history (0: none kept)
  int64_t time_ms = 0;
  bool whole = false;  // kept as a base (end_turn takes it)
  if (history_) {
    // The record is written once the commit is durable: its group commit
    // number is the next one (end_turn takes it right after).
    uint64_t gate = env_->commits->last_seq() + 1;
    if (history_->needs_base()) history_needs_base_ = true;  // records were lost to damage
    if (history_pending_) {
      seq = history_pending_->seq;
      time_ms = history_pending_->time_ms;
      history_pending_->captured = true;
      if (!history_pending_->recorded && !history_needs_base_ && wal_capture_intact(db_.get())) {
        Status st = history_->append_changes(seq, time_ms, page_size, txn, gate);
        if (st) {
          history_pending_->recorded = true;
        } else {
          log_warn("history of " + path_ + ": " + st.message() + " (the commit is kept as a base)");
        }
      }
      whole = !history_pending_->recorded;
    } else {
      // A commit of the runtime's tables outside a turn: a number of its own
      // (the WAL's commits are numbered one each from a stamp).
      seq = history_seq_ + 1;
      time_ms = now_ms();
      if (history_needs_base_ || !wal_capture_intact(db_.get()) ||
          !history_->append_changes(seq, time_ms, page_size, txn, gate)) {
        history_needs_base_ = true;  // the next commit is taken whole
      }
      history_seq_ = seq;
    }
  }
  if (env_->replication) {
    ReplicaRecord r = replica_record(ReplicaRecord::Kind::kCommit);
    r.page_size = static_cast<uint32_t>(page_size);
    r.frames = std::move(txn);
    r.history_seq = seq;
    r.history_time_ms = time_ms;
    r.history_base = whole;
    env_->replication->record(std::move(r));
  }
}

uint64_t ObjectStore::next_history_seq(const HistoryFile* history) const {
  return std::max(history ? history->last_seq().value_or(0) : 0, history_seq_) + 1;
}

Status ObjectStore::stamp_as_next_base(std::string& database) {
  HistoryFile* history = history_.get();
  HistoryFile own;
  if (!history) {
    if (Status st = own.open(path_ + "-history"); !st) return st;
    history = &own;
  }
  if (Status st = set_seq_in_image(database, next_history_seq(history), now_ms()); !st) return st;
  // The records before it reach the disk before the WAL that could rebuild
  // them goes. The base itself is recorded when the database opens in its
  // place (open_history: a database past the history's last record), so a
  // crash before that leaves no base of a restore that did not happen.
  if (Status st = history->write_out(); !st) return st;
  auto sync = SyncFile::open(history->path(), /*is_dir=*/false);
  if (!sync) return sync.status();
  return (*sync)->sync();
}

std::vector<ObjectStore::Bookmark> ObjectStore::bookmarks(size_t limit, size_t* total) {
  std::vector<Bookmark> out;
  if (total != nullptr) *total = 0;
  if (!env_->history || !ensure_open(false) || !history_) return out;
  const auto& all = history_->entries();
  if (total != nullptr) *total = all.size();
  for (size_t i = all.size() > limit ? all.size() - limit : 0; i < all.size(); ++i) {
    const auto& e = all[i];
    out.push_back(Bookmark{HistoryFile::bookmark(e.seq, e.time_ms), e.seq, e.time_ms,
                           e.kind == HistoryFile::Kind::kBase});
  }
  return out;
}

Result<std::string> ObjectStore::current_bookmark() {
  if (!env_->history) return Status(Code::kNotFound, "history is off (--history)");
  if (!ensure_open(true) || !history_) return Status(Code::kInternal, "history: the object has no database");
  return history_->bookmark_of(history_seq_);
}

Result<std::string> ObjectStore::bookmark_for_time(int64_t time_ms) {
  if (!env_->history) return Status(Code::kNotFound, "history is off (--history)");
  if (!ensure_open(false) || !history_) return Status(Code::kNotFound, "the object has no history");
  auto seq = history_->seq_at_time(time_ms);
  if (!seq) return seq.status();
  return history_->bookmark_of(*seq);
}

Status ObjectStore::check_bookmark(std::string_view bookmark) {
  if (!env_->history) return Status(Code::kNotFound, "history is off (start the server with --history)");
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
  // A commit like a turn's: durable with the next flush (a checkpoint waits
  // for it, and its history record is written once it is).
  if (Status n = note_commit(); !n) throw Error(n);
}

Result<std::string> ObjectStore::snapshot_image() {
  if (in_txn_) return Status(Code::kInternal, "snapshot: the turn has uncommitted writes");
  settle();
  ensure_open(true);  // an object that never wrote: its empty database
  std::string database = serialize_database();
  // Alarms are not copied (as in Cloudflare), nor a restore the source waits for.
  if (Status st = edit_image(database, "DELETE FROM _dobj_alarm; DROP TABLE IF EXISTS _dobj_restore;"); !st) {
    return st;
  }
  return database;
}

Result<std::string> ObjectStore::snapshot_file(std::string_view name) const {
  if (env_->snapshot_dir.empty()) return Status(Code::kNotFound, "snapshots are not available here");
  return snapshots::find(env_->snapshot_dir, name);
}

Result<std::string> ObjectStore::write_snapshot() {
  if (env_->snapshot_dir.empty()) return Status(Code::kNotFound, "snapshots are not available here");
  auto image = snapshot_image();
  if (!image) return image.status();
  std::string name = snapshots::new_name(owner_ ? owner_->partition() : 0, env_->partitions);
  int64_t made = system_now_ms();
  if (Status st = snapshots::write(env_->snapshot_dir, name, *image, made); !st) return st;
  if (env_->replication) {
    // The partition's backups keep it too (a failover keeps it), and the
    // answer that names it waits for them as for a commit.
    ReplicaRecord r;
    r.kind = ReplicaRecord::Kind::kSnapshot;
    r.id = name;
    r.file = std::move(*image);
    r.history_time_ms = made;
    env_->replication->record(std::move(r));
    last_commit_seq_ = env_->commits->committed(nullptr, nullptr);
  }
  return name;
}

Result<std::string> ObjectStore::database_at(std::string_view bookmark) {
  if (!env_->history) return Status(Code::kNotFound, "history is off (--history)");
  auto seq = HistoryFile::parse_bookmark(bookmark);
  if (!seq) return seq.status();
  if (in_txn_) return Status(Code::kInternal, "history: a read of the history inside a turn");
  if (!ensure_open(false) || !history_) return Status(Code::kNotFound, "the object has no history");
  return history_->state_at(*seq);
}

Result<ObjectStore::RestorePlan> ObjectStore::prepare_restore(std::string_view bookmark, std::string file) {
  if (!env_->history) return Status(Code::kNotFound, "history is off (--history)");
  auto seq = HistoryFile::parse_bookmark(bookmark);
  if (!seq) return seq.status();
  if (in_txn_) return Status(Code::kInternal, "history: a restore inside a turn");
  if (Status st = check_bookmark(bookmark); !st) return st;
  // Every commit in the file and every record of them in the history, both
  // synced: the history is whole without the WAL, and nothing of this
  // store writes to either again.
  if (Status st = fold_wal_into_file(); !st) return st;
  RestorePlan plan;
  plan.database = path_;
  plan.file = std::move(file);
  plan.seq = *seq;
  plan.next_seq = next_history_seq(history_.get());
  plan.time_ms = now_ms();
  plan.replicated = env_->replication != nullptr;
  close_connection();
  return plan;
}

Result<std::string> ObjectStore::build_restore(const RestorePlan& plan) {
  HistoryFile history;
  if (Status st = history.open(plan.database + "-history"); !st) return st;
  // Rebuilt in the file, a record at a time: a database of any size.
  if (Status st = history.write_state(plan.seq, plan.file); !st) return st;
  if (Status st = set_seq_in_file(plan.file, plan.next_seq, plan.time_ms); !st) return st;
  if (Status st = sync_file(plan.file); !st) return st;
  // The old WAL belongs to the old file: it goes first, so that no crash
  // leaves the new file with the old log (it is empty: folded).
  std::string wal = plan.database + "-wal";
  if (::unlink(wal.c_str()) != 0 && errno != ENOENT) {
    return Status(Code::kInternal, "cannot remove " + wal + ": " + std::strerror(errno));
  }
  if (::rename(plan.file.c_str(), plan.database.c_str()) != 0) {
    return Status(Code::kInternal, "cannot move the restored database into place: " + std::string(std::strerror(errno)));
  }
  if (Status st = sync_dir(plan.database.substr(0, plan.database.rfind('/'))); !st) return st;
  // Its base, so that the open does not copy it again. The restore is done
  // now: if the base cannot be written (or a crash comes first), the open
  // records it.
  Status st = history.append_base_from(plan.next_seq, plan.time_ms, plan.database);
  if (st) st = history.write_out();
  if (st) st = sync_file(history.path());
  if (!st) log_warn("history of " + plan.database + ": the restored base is left to the next open: " + st.message());
  if (!plan.replicated) return std::string();
  return read_file(plan.database);  // for the backups
}

Status ObjectStore::restored(std::string database) {
  if (!env_->replication) return Status::ok();
  return replicate_replace(std::move(database), {});
}

Status ObjectStore::history_for_copy(int* fd, uint64_t* size) {
  if (!env_->history) return Status(Code::kNotFound, "history is off (start the server with --history)");
  if (!ensure_open(false) || !history_) return Status(Code::kNotFound, "the object has no history");
  if (Status st = write_out_history(); !st) return st;
  *fd = ::open(history_->path().c_str(), O_RDONLY | O_CLOEXEC);
  if (*fd < 0) return Status(Code::kInternal, "cannot open " + history_->path() + ": " + std::strerror(errno));
  *size = history_->size_bytes();
  return Status::ok();
}

Result<ObjectStore::HistoryCopy> ObjectStore::history_copy() {
  HistoryCopy out;
  if (!env_->history || !ensure_open(false) || !history_ || !history_->last()) return out;
  auto records = history_->contents();
  if (!records) return records.status();
  out.records = std::move(*records);
  out.seq = history_seq_;
  out.time_ms = history_->last()->seq == history_seq_ ? history_->last()->time_ms : now_ms();
  return out;
}

Status ObjectStore::write_latest_database(const std::string& history_path, const std::string& out) {
  HistoryFile file;
  if (Status st = file.open(history_path); !st) {
    return Status(Code::kInvalidArgument, "not a history file: " + st.message());
  }
  auto last = file.last_seq();
  if (!last) return Status(Code::kInvalidArgument, "the history file holds no commit");
  if (Status st = file.write_state(*last, out); !st) {
    if (st.code() == Code::kStorageFull) return st;
    return Status(Code::kInvalidArgument, "the history's last state cannot be read: " + st.message());
  }
  return set_seq_in_file(out, *last, file.last()->time_ms);
}

Status ObjectStore::replace_with_history(const std::string& database_file, const std::string& history_file) {
  if (!env_->history) return Status(Code::kNotFound, "history is off (start the server with --history)");
  if (Status st = fold_wal_into_file(); !st) return st;
  close_connection();
  if (Status st = make_dirs(dir()); !st) return st;
  for (const std::string& old : {path_ + "-history", path_ + "-wal"}) {
    if (::unlink(old.c_str()) != 0 && errno != ENOENT) {
      return Status(Code::kInternal, "cannot remove " + old + ": " + std::strerror(errno));
    }
  }
  if (Status st = sync_dir(dir()); !st) return st;
  if (env_->replication) {
    // The backups take both, as a catch-up's copy.
    auto database = read_file(database_file);
    auto history = database ? read_file(history_file) : database;
    if (!history) return history.status();
    if (Status st = replicate_replace(std::move(*database), std::move(*history)); !st) return st;
  }
  if (::rename(database_file.c_str(), path_.c_str()) != 0 ||
      ::rename(history_file.c_str(), (path_ + "-history").c_str()) != 0) {
    return Status(Code::kInternal, "cannot move the files into place: " + std::string(std::strerror(errno)));
  }
  return sync_dir(dir());
}

}  // namespace dobj::internal
