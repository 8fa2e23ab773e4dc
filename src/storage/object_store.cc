// ObjectStore, the key-value side and the turn: reads and writes, the alarm,
// savepoints, the commit at the end of a turn, and its failures. The files
// (open, create, checkpoint, remove, replace) are in object_files.cc, the
// SQL session in sql.cc, the cache of open connections in db_cache.cc.
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

void ObjectStore::begin_write() {
  ensure_open(/*create=*/true);
  if (in_txn_) return;
  if (deferred_) {
    // Into the transaction of the ended turns, undone alone if this one fails.
    if (Status st = db_.run_cached("SAVEPOINT dobj_turn"); !st) throw Error(st);
    turn_savepoint_ = true;
  } else if (Status st = db_.run_cached("BEGIN"); !st) {
    throw Error(st);
  }
  in_txn_ = true;
}

std::optional<std::string> ObjectStore::get(std::string_view key) {
  if (env_->counters) ++env_->counters->reads;
  if (auto it = cached_values_.find(key); it != cached_values_.end() && db_.is_open()) {
    env_->open_dbs->touch(this);  // as ensure_open would: a use, for the connection cap
    return it->second;
  }
  if (!ensure_open(false)) return std::nullopt;
  StmtUse s = stmt("SELECT value FROM _dobj_kv WHERE key = ?1");
  s->bind_blob(1, key);
  int rc = s->step();
  std::optional<std::string> value;
  if (rc == SQLITE_ROW) {
    value.emplace(s->column_blob(0));
  } else if (rc != SQLITE_DONE) {
    fail("get");
  }
  cache_value(key, value);
  return value;
}

void ObjectStore::put(std::string_view key, std::string_view value) {
  if (env_->counters) ++env_->counters->writes;
  begin_write();
  StmtUse s = stmt("INSERT OR REPLACE INTO _dobj_kv(key, value) VALUES (?1, ?2)");
  s->bind_blob(1, key);
  s->bind_blob(2, value);
  if (s->step() != SQLITE_DONE) fail("put");
  cache_value(key, value);
}

bool ObjectStore::remove(std::string_view key) {
  if (env_->counters) ++env_->counters->deletes;
  if (!ensure_open(false)) return false;
  begin_write();
  StmtUse s = stmt("DELETE FROM _dobj_kv WHERE key = ?1");
  s->bind_blob(1, key);
  if (s->step() != SQLITE_DONE) fail("delete");
  cache_value(key, std::nullopt);
  return sqlite3_changes(db_.get()) > 0;
}

void ObjectStore::cache_value(std::string_view key, const std::optional<std::string_view>& value) {
  constexpr size_t kOverhead = 96;  // the node and both strings' headers
  auto bytes = [](std::string_view k, size_t v) { return k.size() + v + kOverhead; };
  size_t size = bytes(key, value ? value->size() : 0);
  auto it = cached_values_.find(key);
  if (it != cached_values_.end()) {
    cached_bytes_ -= bytes(it->first, it->second ? it->second->size() : 0);
    if (size > kCacheEntryBytes) {
      cached_values_.erase(it);  // too large to keep: its old value must go
      return;
    }
    it->second = value ? std::optional<std::string>(*value) : std::nullopt;
    cached_bytes_ += size;
    return;
  }
  if (size > kCacheEntryBytes) return;
  if (cached_bytes_ + size > kCacheBytes) forget_cached_values();
  cached_values_.emplace(key, value ? std::optional<std::string>(*value) : std::nullopt);
  cached_bytes_ += size;
}

std::vector<std::pair<std::string, std::string>> ObjectStore::list(const ListOptions& o) {
  std::vector<std::pair<std::string, std::string>> out;
  if (env_->counters) {
    ++env_->counters->reads;
    ++env_->counters->lists;
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

int64_t ObjectStore::now_ms() const { return env_->now_ms ? env_->now_ms() : system_now_ms(); }

void ObjectStore::set_alarm(int64_t at_ms) {
  if (!env_->alarms_allowed) {
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
  forget_cached_values();
  if (Status st = db_.exec("DELETE FROM _dobj_kv; DELETE FROM _dobj_alarm"); !st) {
    mark_broken(st.message());  // forgets alarm_known_
    throw Error(st);
  }
  alarm_known_ = std::optional<int64_t>();
  drop_user_schema();
}

void ObjectStore::begin_nested() {
  if (env_->counters) ++env_->counters->transactions;
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
  if (!commit) forget_known();
  if (Status st = db_.exec(sql.c_str()); !st) {
    mark_broken(st.message());
    throw Error(st);
  }
}

Status ObjectStore::end_turn() {
  if (!in_txn_) {
    settle_if_idle();
    return Status::ok();
  }
  nested_ = 0;
  bool savepoint = std::exchange(turn_savepoint_, false);
  if (broken_) {
    broken_ = false;
    in_txn_ = false;
    alarm_dirty_ = false;
    Status why(std::exchange(broken_full_, false) ? Code::kStorageFull : Code::kReset,
               "a storage operation failed (" + std::exchange(broken_reason_, "") +
                   "); the turn's writes were discarded");
    undo_turn(savepoint, why);
    settle_if_idle();
    return why;
  }
  if (savepoint) {
    if (Status st = db_.run_cached("RELEASE dobj_turn"); !st) {
      mark_broken(st.message());
      turn_savepoint_ = true;
      return end_turn();
    }
  }
  if (may_defer()) {
    // The answers of this turn wait for the next flush anyway: its writes
    // join the next commit, made right before that flush starts.
    if (!deferred_) {
      deferred_ = true;
      last_commit_seq_ = env_->commits->defer(this);
    }
    if (env_->counters) ++env_->counters->turns_coalesced;
    in_txn_ = false;
    return Status::ok();
  }
  if (alarm_dirty_) {
    // The node's index learns of a new alarm before the commit that sets it,
    // so that no committed alarm is missing from it after a crash.
    alarm_after_ = stored_alarm();
    if (alarm_after_ && env_->alarms) {
      AlarmRecord r = identity();
      r.at_ms = *alarm_after_;
      auto f = env_->alarms->record(r);
      if (!f) {
        mark_broken(f.status().message(), f.status().code() == Code::kStorageFull);
        return end_turn();
      }
      env_->commits->add_dirty(*f);
    }
  }
  if (history_) {
    // The first commit after an open or a checkpoint carries its number and
    // time (see open_history): after a crash the commits the history file
    // lacks are rebuilt from the WAL, numbered on from this row's page. Not
    // every commit: the row's page would double what a small commit writes.
    int64_t time = now_ms();
    if (stamp_next_) {
      auto u = db_.cached("UPDATE _dobj_history SET seq = ?1, time = ?2 WHERE id = 0");
      if (!u || ((*u)->bind_int(1, static_cast<int64_t>(history_seq_ + 1)), (*u)->bind_int(2, time),
                 (*u)->step()) != SQLITE_DONE) {
        mark_broken(u ? db_.error(Code::kInternal, "history").message() : u.status().message());
        return end_turn();
      }
    }
    history_pending_ = PendingCommit{history_seq_ + 1, time, stamp_next_};
  }
  // The ended turns' writes, deferred, are committed with this one.
  uint64_t deferred_seq = take_deferred();
  in_txn_ = false;
  bool alarm_touched = std::exchange(alarm_dirty_, false);
  if (Status st = commit_and_write(); !st) {
    history_pending_.reset();
    if (deferred_seq) env_->commits->fail(deferred_seq, st);
    return st;
  }
  if (history_pending_ && !history_pending_->captured && wal_capture_intact(db_.get())) {
    history_pending_.reset();  // it wrote nothing: no commit, no number
  }
  if (history_pending_) {
    PendingCommit done = *history_pending_;
    history_pending_.reset();
    if (!done.recorded || history_needs_base_) {
      // The capture could not describe it (or missed a commit): the whole
      // database, as of this commit.
      Status b = history_->hold_base(done.seq, done.time_ms, serialize_database(), env_->commits->last_seq() + 1);
      if (!b) log_warn("history of " + path_ + ": " + b.message() + "; the next commit tries again");
      history_needs_base_ = !b;
    }
    history_seq_ = done.seq;
    if (done.stamped) stamp_next_ = false;
    // Periodic bases: once the commits since the last base add up to more
    // than the database (and at least kHistoryBaseEveryBytes), the next
    // commit is kept whole, so that rebuilding a state reads at most about
    // twice the database. (A file smaller than the mark has no need to
    // count; the size is asked for only past it.)
    uint64_t since = history_->size_bytes() < history_base_check_at_
                         ? 0
                         : history_->commit_bytes_since_base(kHistoryBaseEveryBytes);
    if (since >= history_base_check_at_) {
      auto size = static_cast<uint64_t>(database_size());
      history_base_check_at_ = std::max<uint64_t>(kHistoryBaseEveryBytes, size);
      if (since >= size) {
        history_needs_base_ = true;
        history_base_check_at_ = kHistoryBaseEveryBytes;
      }
    }
    // Written in batches, once their commits are durable: the WAL holds
    // them until then (and after a crash, open_history rebuilds them).
    // (At least half the limit at a time: while commits stream in, the
    // newest always wait for their flush.)
    if (history_->held_bytes() >= HistoryFile::kHoldLimit) {
      (void)history_->write_out(durable_gate(), HistoryFile::kHoldLimit / 2);
    }
    if (Status h = keep_history_in_bounds(done.time_ms, /*at_open=*/false); !h) {
      // The new file was synced whole; what comes next could not be.
      close_connection();
      return Status(Code::kReset, "history: " + h.message());
    }
    // Not synced with the commit: until a checkpoint lets the WAL start
    // over, the WAL holds every commit the file may lack (open_history).
  }
  if (alarm_touched) alarm_changed_ = true;
  if (env_->counters) ++env_->counters->commits;
  return note_commit();
}

Status ObjectStore::note_commit() {
  // Both files are there: SQLite just wrote the WAL, and holds the database open.
  if (!wal_file_) wal_file_ = SyncFile::known(path_ + "-wal", /*is_dir=*/false);
  if (new_file_) {
    // The database file was written when it was created; it must reach the
    // disk with the first commit that depends on it.
    env_->commits->add_dirty(SyncFile::known(path_, /*is_dir=*/false));
    new_file_ = false;
    if (env_->catalog) {
      // The catalog learns of it later (after a crash, from the folder).
      CatalogTouch t;
      AlarmRecord who = identity();
      t.ns = std::move(who.ns);
      t.id = std::move(who.id_hex);
      t.path = path_;
      t.name = std::move(who.name);
      env_->catalog->created(std::move(t));
    }
  }
  if (parent_dir_to_sync_) env_->commits->add_dirty(std::move(parent_dir_to_sync_));
  last_commit_seq_ = env_->commits->committed(wal_file_, std::move(dir_to_sync_));
  dir_to_sync_.reset();
  return Status::ok();
}

void ObjectStore::discard_turn() {
  alarm_dirty_ = false;
  if (in_txn_) {
    undo_turn(std::exchange(turn_savepoint_, false),
              Status(Code::kReset, "a turn's writes were discarded with the transaction they were in"));
    in_txn_ = false;
    nested_ = 0;
    broken_ = false;
    broken_reason_.clear();
  }
  settle_if_idle();
}

void ObjectStore::rollback() {
  forget_known();  // the turn may have written the alarm and values
  (void)db_.run_cached("ROLLBACK");
}

Status ObjectStore::commit_and_write() {
  Status st = Status::ok();
  if (env_->faults && env_->faults->fail_next_commits.load() > 0) {
    env_->faults->fail_next_commits.fetch_sub(1);
    st = Status(Code::kInternal, "injected commit failure");
  } else {
    st = db_.run_cached("COMMIT");
  }
  if (!st) {
    bool full = db_full();
    rollback();
    return Status(full ? Code::kStorageFull : Code::kReset, "commit failed: " + st.message());
  }
  if (Status w = flush_wal_writes(db_.get()); !w) {
    // SQLite counts the commit, the file lacks it: start over from the file
    // (and the history from the database's commit number).
    close_connection();
    return Status(w.code() == Code::kStorageFull ? Code::kStorageFull : Code::kReset,
                  "commit failed: " + w.message());
  }
  return Status::ok();
}

bool ObjectStore::may_defer() const {
  // Only an object whose last commit is not durable yet, one that writes
  // again within a flush: its next turns may well share the commit. Any
  // other's would share nothing, and committing it at once overlaps its
  // commit with the flush in flight instead of delaying the next one.
  return env_->commits->may_defer() && !env_->commits->durable(last_commit_seq_) &&
         !alarm_dirty_ && !env_->history && !env_->replication &&
         !new_file_ && !dir_to_sync_ && !parent_dir_to_sync_ && wal_file_ &&
         wal_frames_ < kCheckpointFrames &&
         !(env_->faults && env_->faults->fail_next_commits.load() > 0);
}

void ObjectStore::undo_turn(bool savepoint, const Status& why) {
  // Inside the deferred transaction: back to the turn's savepoint, unless
  // SQLite had rolled the whole transaction back (the ended turns too).
  if (savepoint) {
    forget_known();
    if (db_.run_cached("ROLLBACK TO dobj_turn").is_ok() && db_.run_cached("RELEASE dobj_turn").is_ok() &&
        sqlite3_get_autocommit(db_.get()) == 0) {
      return;
    }
  }
  rollback();
  if (uint64_t seq = take_deferred()) env_->commits->fail(seq, why);
}

uint64_t ObjectStore::take_deferred() {
  if (!deferred_) return 0;
  deferred_ = false;
  env_->commits->undefer(this);
  return last_commit_seq_;
}

void ObjectStore::settle_if_idle() {
  if (deferred_ && !env_->commits->may_defer()) settle();
}

void ObjectStore::settle() {
  if (!deferred_ || in_txn_) return;
  settle_deferred();
  env_->commits->kick();
}

bool ObjectStore::settle_deferred() {
  if (in_txn_) return !deferred_;
  uint64_t seq = take_deferred();
  if (!seq) return true;
  if (Status st = commit_and_write(); !st) {
    env_->commits->fail(seq, st);
    return true;
  }
  if (env_->counters) ++env_->counters->commits;
  env_->commits->add_dirty(wal_file_);
  return true;
}

void ObjectStore::mark_broken(const std::string& why, bool full) {
  forget_known();  // SQLite may have rolled the whole transaction back
  if (!broken_) {
    broken_reason_ = why;
    broken_full_ = full || db_full();
  }
  broken_ = true;
}

bool ObjectStore::db_full() const {
  return db_.is_open() && (sqlite3_extended_errcode(db_.get()) & 0xff) == SQLITE_FULL;
}

}  // namespace dobj::internal
