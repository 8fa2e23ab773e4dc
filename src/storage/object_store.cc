#include "storage/object_store.h"

#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstring>

#include "base/clock.h"
#include "base/fs.h"
#include "base/log.h"
#include "storage/vfs.h"

namespace dobj::internal {
namespace {

// synchronous=OFF: SQLite never syncs; durability is the flusher's job (the
// WAL of every commit) and start_checkpoint()'s (the database file). SQLite's own
// syncs would run on the shard thread, six of them to create one database.
constexpr const char* kOpenPragmas =
    // locking_mode first: any statement that reads the schema opens the WAL,
    // which without exclusive locking wants shared memory (unix-none has none).
    "PRAGMA locking_mode=EXCLUSIVE;"
    "PRAGMA synchronous=OFF;"  // before the switch to WAL, which would sync
    "PRAGMA journal_mode=WAL;"
    "PRAGMA foreign_keys=ON;"
    "PRAGMA cache_size=-256;";

constexpr const char* kSchema =
    "CREATE TABLE IF NOT EXISTS _dobj_kv("
    "key BLOB PRIMARY KEY, value BLOB NOT NULL) WITHOUT ROWID;"
    "CREATE TABLE IF NOT EXISTS _dobj_alarm("
    "id INTEGER PRIMARY KEY CHECK (id = 0), at INTEGER NOT NULL);";

}  // namespace

const char* ObjectStore::runtime_schema() { return kSchema; }

namespace {

// The smallest string greater than every string with this prefix, or nullopt
// when there is none (the prefix is all 0xff bytes).
std::optional<std::string> prefix_successor(std::string prefix) {
  while (!prefix.empty()) {
    unsigned char c = static_cast<unsigned char>(prefix.back());
    if (c != 0xff) {
      prefix.back() = static_cast<char>(c + 1);
      return prefix;
    }
    prefix.pop_back();
  }
  return std::nullopt;
}

}  // namespace

void DbCache::touch(ObjectStore* store) {
  store->last_used_ = ++clock_;
  if (store->open_slot_ != ObjectStore::kNotOpen) return;
  store->open_slot_ = open_.size();
  open_.push_back(store);
  enforce(store);
}

void DbCache::remove(ObjectStore* store) {
  size_t slot = store->open_slot_;
  if (slot == ObjectStore::kNotOpen) return;
  open_[slot] = open_.back();
  open_[slot]->open_slot_ = slot;
  open_.pop_back();
  store->open_slot_ = ObjectStore::kNotOpen;
}

bool DbCache::closable(const ObjectStore* s, const ObjectStore* keep) {
  return s != keep && !s->in_txn_ && s->pins_ == 0;
}

// The alarm a store will run soon (before `soon`), if it is known without a query.
static std::optional<int64_t> alarm_before(const ObjectStore* s, int64_t soon) {
  const auto& known = s->known_alarm();
  if (!known || !*known || **known > soon) return std::nullopt;
  return **known;
}

bool DbCache::rather(const ObjectStore* a, const ObjectStore* b, int64_t soon) {
  auto at_a = alarm_before(a, soon), at_b = alarm_before(b, soon);
  if (at_a && at_b) return *at_a > *at_b;  // the alarm the scheduler runs last
  if (at_a || at_b) return !at_a;          // the one without an alarm due soon
  return a->last_used_ < b->last_used_;    // the one used longest ago
}

void DbCache::enforce(ObjectStore* keep) {
  if (open_.size() <= capacity_) return;
  // Alarm times are in the runtime's clock, which every store of a shard shares.
  int64_t soon = open_.front()->now_ms() + kAlarmSoonMs;
  while (open_.size() > capacity_) {
    ObjectStore* victim = nullptr;
    for (int i = 0; i < kSample; ++i) {
      ObjectStore* s = open_[random_() % open_.size()];
      if (closable(s, keep) && (!victim || rather(s, victim, soon))) victim = s;
    }
    if (!victim) {
      // Every sample was busy (inside a turn, or pinned): look at them all.
      for (ObjectStore* s : open_) {
        if (closable(s, keep) && (!victim || rather(s, victim, soon))) victim = s;
      }
      if (!victim) return;  // all busy: over the cap until one ends its turn
    }
    victim->close_connection();  // removes it from open_
  }
}

ObjectStore::ObjectStore(StoreEnv env, std::string dir, std::string file_name)
    : env_(env), dir_(std::move(dir)), path_(dir_ + "/" + file_name) {}

ObjectStore::~ObjectStore() {
  sql_cache_.clear();
  if (in_txn_) rollback();
  close_connection();
}

void ObjectStore::fail(std::string_view what) {
  Status st = db_.error(Code::kInternal, what);
  if (in_txn_) mark_broken(st.message());
  throw Error(st);
}

StmtUse ObjectStore::stmt(std::string_view sql) {
  auto s = db_.cached(sql);
  if (!s) {
    if (in_txn_) mark_broken(s.status().message());
    throw Error(s.status());
  }
  return std::move(*s);
}

bool ObjectStore::ensure_open(bool create) {
  if (db_.is_open()) {
    env_.open_dbs->touch(this);
    return true;
  }
  bool existed = !file_known_missing_ && file_exists(path_);
  if (!existed && !create) {
    file_known_missing_ = true;
    return false;
  }
  bool wal_existed = existed && file_exists(path_ + "-wal");
  if (!existed) {
    schema_ready_ = false;  // a new file (or one made again after a delete)
    bool dir_existed = file_exists(dir_);
    if (Status st = make_dirs(dir_); !st) throw Error(st);
    if (!dir_existed) {
      // A new shard folder: its own entry in the namespace folder must be
      // durable with the first commit (the flusher syncs it, not this thread).
      auto parent = SyncFile::open(dir_.substr(0, dir_.rfind('/')), /*is_dir=*/true);
      if (!parent) throw Error(parent.status());
      parent_dir_to_sync_ = std::move(*parent);
    }
  }
  if (Status st = db_.open(path_, create); !st) throw Error(st);
  sqlite3_db_config(db_.get(), SQLITE_DBCONFIG_NO_CKPT_ON_CLOSE, 1, nullptr);
  limit_connection(db_.get());
  // A new file takes the configured page size (before anything is written;
  // an existing one keeps its own). Its switch to WAL writes the header
  // through an in-memory journal: a rollback journal file would be created,
  // written and deleted for one write into an empty file.
  if (!existed) {
    std::string size = "PRAGMA page_size=" + std::to_string(env_.page_size);
    Status st = db_.exec(size.c_str());
    bool empty = false;
    if (st) {
      auto pages = db_.cached("PRAGMA page_count");
      empty = pages && (*pages)->step() == SQLITE_ROW && (*pages)->column_int(0) == 0;
    }
    if (st && empty) st = db_.exec("PRAGMA journal_mode=MEMORY");
    if (!st) {
      db_.close();
      throw Error(st);
    }
  }
  if (Status st = read_wal_ahead(db_.get(), kOpenPragmas); !st) {
    db_.close();
    throw Error(st);
  }
  // Every commit from here on is followed by flush_wal_writes (end_turn's,
  // and the runtime's tables' below), which writes what this holds back.
  combine_wal_writes(db_.get());

  if (env_.max_database_bytes > 0) {
    // The file's own page size (a new file's is the one set above).
    int64_t page = env_.page_size;
    if (auto s = db_.cached("PRAGMA page_size"); s && (*s)->step() == SQLITE_ROW) {
      page = (*s)->column_int(0);
    }
    std::string cap = "PRAGMA max_page_count=" +
                      std::to_string(std::max<int64_t>(env_.max_database_bytes / page, 4));
    if (Status st = db_.exec(cap.c_str()); !st) {
      db_.close();
      throw Error(st);
    }
  }
  // The runtime's tables exist from the moment the file does, outside any
  // turn: a turn that is rolled back must not take them with it. (A no-op
  // that writes nothing when they exist; skipped when this store made sure of
  // them before, as on a reopen after the connection cap closed it.)
  if (!schema_ready_) {
    Status st = db_.exec(kSchema);
    if (st) st = flush_wal_writes(db_.get());
    if (!st) {
      db_.close();
      throw Error(st);
    }
    schema_ready_ = true;
  }
  sqlite3_set_authorizer(db_.get(), &ObjectStore::authorize, this);
  track_wal_frames(db_.get(), &wal_frames_);  // end_turn checkpoints
  file_known_missing_ = false;
  new_file_ = !existed;
  if (!existed || !wal_existed) {
    auto dir = SyncFile::open(dir_, /*is_dir=*/true);
    if (!dir) {
      db_.close();
      throw Error(dir.status());
    }
    dir_to_sync_ = std::move(*dir);
  }
  env_.open_dbs->touch(this);
  return true;
}

void ObjectStore::begin_write() {
  ensure_open(/*create=*/true);
  if (in_txn_) return;
  if (Status st = db_.exec("BEGIN"); !st) throw Error(st);
  in_txn_ = true;
}

std::optional<std::string> ObjectStore::get(std::string_view key) {
  if (env_.counters) ++env_.counters->reads;
  if (!ensure_open(false)) return std::nullopt;
  StmtUse s = stmt("SELECT value FROM _dobj_kv WHERE key = ?1");
  s->bind_blob(1, key);
  int rc = s->step();
  if (rc == SQLITE_ROW) return std::string(s->column_blob(0));
  if (rc != SQLITE_DONE) fail("get");
  return std::nullopt;
}

void ObjectStore::put(std::string_view key, std::string_view value) {
  if (env_.counters) ++env_.counters->writes;
  begin_write();
  StmtUse s = stmt("INSERT OR REPLACE INTO _dobj_kv(key, value) VALUES (?1, ?2)");
  s->bind_blob(1, key);
  s->bind_blob(2, value);
  if (s->step() != SQLITE_DONE) fail("put");
}

bool ObjectStore::remove(std::string_view key) {
  if (env_.counters) ++env_.counters->deletes;
  if (!ensure_open(false)) return false;
  begin_write();
  StmtUse s = stmt("DELETE FROM _dobj_kv WHERE key = ?1");
  s->bind_blob(1, key);
  if (s->step() != SQLITE_DONE) fail("delete");
  return sqlite3_changes(db_.get()) > 0;
}

std::vector<std::pair<std::string, std::string>> ObjectStore::list(const ListOptions& o) {
  std::vector<std::pair<std::string, std::string>> out;
  if (env_.counters) {
    ++env_.counters->reads;
    ++env_.counters->lists;
  }
  if (!ensure_open(false)) return out;
  std::optional<std::string> lower;
  bool lower_inclusive = true;
  if (o.start) lower = o.start;
  if (o.start_after) {
    lower = o.start_after;
    lower_inclusive = false;
  }
  std::optional<std::string> upper = o.end;
  if (o.prefix) {
    if (!lower || *o.prefix > *lower || (*o.prefix == *lower && lower_inclusive)) {
      lower = o.prefix;
      lower_inclusive = true;
    }
    if (auto succ = prefix_successor(*o.prefix); succ && (!upper || *succ < *upper)) upper = succ;
  }
  if (lower && upper && *lower >= *upper) return out;

  std::string sql = "SELECT key, value FROM _dobj_kv";
  const char* joiner = " WHERE ";
  if (lower) {
    sql += joiner;
    sql += lower_inclusive ? "key >= ?1" : "key > ?1";
    joiner = " AND ";
  }
  if (upper) {
    sql += joiner;
    sql += "key < ?2";
  }
  sql += o.reverse ? " ORDER BY key DESC" : " ORDER BY key";
  if (o.limit) sql += " LIMIT ?3";
  StmtUse s = stmt(sql);
  if (lower) s->bind_blob(1, *lower);
  if (upper) s->bind_blob(2, *upper);
  if (o.limit) s->bind_int(3, *o.limit);
  int rc;
  while ((rc = s->step()) == SQLITE_ROW) {
    out.emplace_back(std::string(s->column_blob(0)), std::string(s->column_blob(1)));
  }
  if (rc != SQLITE_DONE) fail("list");
  return out;
}

std::optional<int64_t> ObjectStore::stored_alarm() {
  if (!ensure_open(false)) return std::nullopt;
  if (alarm_known_) return *alarm_known_;
  StmtUse s = stmt("SELECT at FROM _dobj_alarm WHERE id = 0");
  int rc = s->step();
  if (rc == SQLITE_ROW) {
    alarm_known_ = s->column_int(0);
  } else if (rc == SQLITE_DONE) {
    alarm_known_ = std::optional<int64_t>();
  } else {
    fail("get alarm");
  }
  return *alarm_known_;
}

std::optional<int64_t> ObjectStore::get_alarm() {
  if (running_alarm_ && !alarm_touched_in_handler_) return std::nullopt;  // the one running
  return stored_alarm();
}

int64_t ObjectStore::now_ms() const { return env_.now_ms ? env_.now_ms() : system_now_ms(); }

void ObjectStore::set_alarm(int64_t at_ms) {
  if (!env_.alarms_allowed) {
    throw Error(Code::kInvalidArgument, "set_alarm: this object class has no alarm() handler");
  }
  begin_write();
  StmtUse s = stmt("INSERT OR REPLACE INTO _dobj_alarm(id, at) VALUES (0, ?1)");
  s->bind_int(1, at_ms);
  if (s->step() != SQLITE_DONE) fail("set alarm");  // forgets alarm_known_
  alarm_known_ = at_ms;
  alarm_dirty_ = true;
  if (running_alarm_) alarm_touched_in_handler_ = true;
}

void ObjectStore::delete_alarm() {
  if (!ensure_open(false)) return;
  begin_write();
  StmtUse s = stmt("DELETE FROM _dobj_alarm");
  if (s->step() != SQLITE_DONE) fail("delete alarm");  // forgets alarm_known_
  alarm_known_ = std::optional<int64_t>();
  alarm_dirty_ = true;
  if (running_alarm_) alarm_touched_in_handler_ = true;
}

bool ObjectStore::take_alarm_change(std::optional<int64_t>* at) {
  if (!alarm_changed_) return false;
  alarm_changed_ = false;
  *at = alarm_after_;
  return true;
}

void ObjectStore::delete_all() {
  if (!ensure_open(false)) return;
  begin_write();
  alarm_dirty_ = true;
  if (Status st = db_.exec("DELETE FROM _dobj_kv; DELETE FROM _dobj_alarm"); !st) {
    mark_broken(st.message());  // forgets alarm_known_
    throw Error(st);
  }
  alarm_known_ = std::optional<int64_t>();
  drop_user_schema();
}

void ObjectStore::begin_nested() {
  if (env_.counters) ++env_.counters->transactions;
  begin_write();
  begin_savepoint();
}

void ObjectStore::begin_savepoint() {
  std::string sql = "SAVEPOINT n" + std::to_string(nested_);
  if (Status st = db_.exec(sql.c_str()); !st) {
    mark_broken(st.message());
    throw Error(st);
  }
  ++nested_;
}

void ObjectStore::end_nested(bool commit) { end_savepoint(commit); }

void ObjectStore::end_savepoint(bool commit) {
  --nested_;
  std::string name = "n" + std::to_string(nested_);
  std::string sql = commit ? "RELEASE " + name : "ROLLBACK TO " + name + "; RELEASE " + name;
  if (!commit) alarm_known_.reset();
  if (Status st = db_.exec(sql.c_str()); !st) {
    mark_broken(st.message());
    throw Error(st);
  }
}

Status ObjectStore::end_turn() {
  if (!in_txn_) return Status::ok();
  nested_ = 0;
  if (broken_) {
    broken_ = false;
    in_txn_ = false;
    alarm_dirty_ = false;
    rollback();
    return Status(std::exchange(broken_full_, false) ? Code::kStorageFull : Code::kReset,
                  "a storage operation failed (" + std::exchange(broken_reason_, "") +
                      "); the turn's writes were discarded");
  }
  if (alarm_dirty_) {
    // The node's index learns of a new alarm before the commit that sets it,
    // so that no committed alarm is missing from it after a crash.
    alarm_after_ = stored_alarm();
    if (alarm_after_ && env_.alarms) {
      AlarmRecord r = identity_;
      r.at_ms = *alarm_after_;
      auto f = env_.alarms->record(r);
      if (!f) {
        mark_broken(f.status().message(), f.status().code() == Code::kStorageFull);
        return end_turn();
      }
      env_.commits->add_dirty(*f);
    }
  }
  Status st = Status::ok();
  if (env_.faults && env_.faults->fail_next_commits.load() > 0) {
    env_.faults->fail_next_commits.fetch_sub(1);
    st = Status(Code::kInternal, "injected commit failure");
  } else {
    st = db_.exec("COMMIT");
  }
  in_txn_ = false;
  bool alarm_touched = std::exchange(alarm_dirty_, false);
  if (!st) {
    bool full = db_full();
    rollback();
    return Status(full ? Code::kStorageFull : Code::kReset, "commit failed: " + st.message());
  }
  if (Status w = flush_wal_writes(db_.get()); !w) {
    // SQLite counts the commit, the file lacks it: start over from the file.
    close_connection();
    return Status(w.code() == Code::kStorageFull ? Code::kStorageFull : Code::kReset,
                  "commit failed: " + w.message());
  }
  if (alarm_touched) alarm_changed_ = true;
  if (!wal_file_) {
    auto f = SyncFile::open(path_ + "-wal", /*is_dir=*/false);
    if (!f) return Status(Code::kReset, f.status().message());
    wal_file_ = std::move(*f);
  }
  if (new_file_) {
    // The database file was written when it was created; it must reach the
    // disk with the first commit that depends on it.
    auto f = SyncFile::open(path_, /*is_dir=*/false);
    if (!f) return Status(Code::kReset, f.status().message());
    env_.commits->add_dirty(std::move(*f));
    new_file_ = false;
    if (env_.catalog) {
      // The catalog learns of it later (after a crash, from the folder).
      CatalogTouch t;
      t.ns = identity_.ns;
      t.id = identity_.id_hex;
      t.path = path_;
      t.name = identity_.name;
      env_.catalog->created(std::move(t));
    }
  }
  if (parent_dir_to_sync_) env_.commits->add_dirty(std::move(parent_dir_to_sync_));
  last_commit_seq_ = env_.commits->committed(wal_file_, std::move(dir_to_sync_));
  dir_to_sync_.reset();
  return Status::ok();
}

void ObjectStore::start_checkpoint(std::function<void()> done) {
  pin();  // the connection cap must not close it meanwhile
  std::weak_ptr<bool> alive = alive_;
  auto finish = [this, alive, done](bool ok) {
    if (alive.expired()) return;  // the store (and its owner) went away
    unpin();
    if (ok) wal_frames_ = 0;
    done();
  };
  if (!env_.commits->syncs()) {
    // Durability::kOs: nothing waits for a flush; still keep the order that
    // protects the file (WAL on disk, copy, file on disk, then a restart).
    Status st = wal_file_->sync();
    bool ok = st && copy_wal_into_file();
    if (ok) {
      auto f = SyncFile::open(path_, /*is_dir=*/false);
      st = f ? (*f)->sync() : f.status();
      if (!st) {
        log_error("database sync after checkpoint failed: " + st.message());
        close_connection();  // keeps the WAL from restarting: a reopen replays it
        ok = false;
      }
    }
    finish(ok);
    return;
  }
  // The WAL is on disk once the last commit is durable.
  env_.commits->when_durable(last_commit_seq_, [this, alive, finish](Status st) {
    if (alive.expired()) return;
    if (!st || !copy_wal_into_file()) return finish(false);
    auto f = SyncFile::open(path_, /*is_dir=*/false);
    if (!f) {
      log_error("checkpoint: " + f.status().message());
      close_connection();
      return finish(false);
    }
    uint64_t seq = env_.commits->committed(std::move(*f), nullptr);
    env_.commits->when_durable(seq, [this, alive, finish](Status st) {
      if (alive.expired()) return;
      // A failed flush stops the node; until it does, a reopen replays the WAL.
      if (!st) close_connection();
      finish(st.is_ok());
    });
  });
}

bool ObjectStore::copy_wal_into_file() {
  if (!db_.is_open() || in_txn_) return false;
  int rc =
      sqlite3_wal_checkpoint_v2(db_.get(), nullptr, SQLITE_CHECKPOINT_PASSIVE, nullptr, nullptr);
  if (rc != SQLITE_OK) {
    log_warn(db_.error(Code::kInternal, "checkpoint").message());
    return false;
  }
  return true;
}

void ObjectStore::discard_turn() {
  alarm_dirty_ = false;
  if (!in_txn_) return;
  rollback();
  in_txn_ = false;
  nested_ = 0;
  broken_ = false;
  broken_reason_.clear();
}

void ObjectStore::rollback() {
  alarm_known_.reset();  // the alarm may have been written in the turn
  (void)db_.exec("ROLLBACK");
}

void ObjectStore::mark_broken(const std::string& why, bool full) {
  alarm_known_.reset();  // SQLite may have rolled the whole transaction back
  if (!broken_) {
    broken_reason_ = why;
    broken_full_ = full || db_full();
  }
  broken_ = true;
}

bool ObjectStore::db_full() const {
  return db_.is_open() && (sqlite3_extended_errcode(db_.get()) & 0xff) == SQLITE_FULL;
}

void ObjectStore::close_connection() {
  if (in_txn_) return;
  alarm_known_.reset();
  env_.open_dbs->remove(this);
  sql_cache_.clear();
  db_.close();
  wal_file_.reset();
}

Status ObjectStore::remove_files() {
  discard_turn();
  close_connection();
  bool removed = false;
  for (const std::string& p : {path_ + "-wal", path_}) {
    if (::unlink(p.c_str()) == 0) {
      removed = true;
    } else if (errno != ENOENT) {
      return Status(Code::kInternal, "cannot remove " + p + ": " + std::strerror(errno));
    }
  }
  file_known_missing_ = true;
  // The removal survives power loss once answered.
  return removed ? sync_dir(dir_) : Status::ok();
}

Status ObjectStore::replace_files(const std::string& file) {
  discard_turn();
  close_connection();
  if (Status st = make_dirs(dir_); !st) return st;
  // The old WAL belongs to the old file: it goes first, so that no crash
  // leaves the new file with the old log.
  if (::unlink((path_ + "-wal").c_str()) != 0 && errno != ENOENT) {
    return Status(Code::kInternal, "cannot remove " + path_ + "-wal: " + std::strerror(errno));
  }
  if (::rename(file.c_str(), path_.c_str()) != 0) {
    return Status(Code::kInternal, "cannot move the import into place: " +
                                       std::string(std::strerror(errno)));
  }
  return sync_dir(dir_);
}

}  // namespace dobj::internal
