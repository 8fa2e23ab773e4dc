// ObjectStore, the files: opening a database (and creating it with the
// runtime's schema on the first write), checkpoints, closing the connection,
// and removing or replacing the files (an operator's delete and import).
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <map>
#include <mutex>
#include <tuple>

#include "base/fs.h"
#include "base/log.h"
#include "storage/object_store.h"
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
    "PRAGMA cache_size=-256;";

constexpr const char* kSchema =
    "CREATE TABLE IF NOT EXISTS _dobj_kv("
    "key BLOB PRIMARY KEY, value BLOB NOT NULL) WITHOUT ROWID;"
    "CREATE TABLE IF NOT EXISTS _dobj_alarm("
    "id INTEGER PRIMARY KEY CHECK (id = 0), at INTEGER NOT NULL, retry INTEGER NOT NULL DEFAULT 0);";

// Databases made before the alarm's retry count was kept have _dobj_alarm
// without the column; it is added the first time a count is written.
constexpr const char* kLegacyAlarmTable =
    "CREATE TABLE _dobj_alarm(id INTEGER PRIMARY KEY CHECK (id = 0), at INTEGER NOT NULL);";
constexpr const char* kAddAlarmRetry =
    "ALTER TABLE _dobj_alarm ADD COLUMN retry INTEGER NOT NULL DEFAULT 0";

// The bytes of a new object's database before its first commit: the
// runtime's tables, WAL mode, pages of page_size bytes. Made once per page
// size by SQLite itself, in a scratch file in `dir`, and copied into each new
// file: making the tables in every new database was over half of the CPU of
// creating an object (docs/performance.md). Null when it cannot be made (then
// each database makes its tables itself, as before).
std::shared_ptr<const std::string> empty_database_image(const std::string& dir, int page_size) {
  static std::mutex mu;
  static std::map<int, std::shared_ptr<const std::string>> images;
  static uint64_t scratch_counter = 0;  // under mu
  std::lock_guard lock(mu);
  if (auto it = images.find(page_size); it != images.end()) return it->second;
  std::string scratch = dir + "/.empty-" + std::to_string(::getpid()) + "-" +
                        std::to_string(scratch_counter++) + ".tmp";  // not .sqlite: never listed as an object
  std::shared_ptr<const std::string> image;
  {
    Db db;
    std::string size = "PRAGMA page_size=" + std::to_string(page_size) + ";";
    Status st = db.open(scratch, /*create=*/true);
    // Tables first, through a journal in memory, then the switch to WAL:
    // the file ends with every page in it and the WAL header bytes set.
    if (st) st = db.exec((size + "PRAGMA locking_mode=EXCLUSIVE; PRAGMA journal_mode=MEMORY;"
                                 "PRAGMA synchronous=OFF;").c_str());
    if (st) st = db.exec(kSchema);
    if (st) st = db.exec("PRAGMA journal_mode=WAL");
    db.close();
    auto bytes = st ? read_file(scratch) : Result<std::string>(st);
    // A WAL-mode file of whole pages (bytes 18 and 19 are 2 in WAL mode).
    if (bytes && !bytes->empty() && bytes->size() % static_cast<size_t>(page_size) == 0 &&
        (*bytes)[18] == 2 && (*bytes)[19] == 2) {
      image = std::make_shared<const std::string>(std::move(*bytes));
    } else {
      log_warn("cannot make the empty database image (" +
               (bytes ? std::string("unexpected bytes") : bytes.status().message()) +
               "); new databases make their tables themselves");
    }
  }
  for (const std::string& p : {scratch, scratch + "-wal", scratch + "-journal"}) ::unlink(p.c_str());
  images[page_size] = image;
  return image;
}

// Writes image into path: a new file (replace=false, refused when it exists)
// or one cut short (replace=true). On failure nothing new is left behind.
Status write_database_image(const std::string& path, const std::string& image, bool replace) {
  int flags = O_WRONLY | O_CLOEXEC | (replace ? O_TRUNC : O_CREAT | O_EXCL);
  int fd = ::open(path.c_str(), flags, 0644);
  if (fd < 0) return Status(Code::kInternal, "cannot create " + path + ": " + std::strerror(errno));
  size_t done = 0;
  while (done < image.size()) {
    ssize_t n = ::write(fd, image.data() + done, image.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      Status st(errno == ENOSPC ? Code::kStorageFull : Code::kInternal,
                "cannot write " + path + ": " + std::strerror(errno));
      ::close(fd);
      if (!replace) ::unlink(path.c_str());
      return st;
    }
    done += static_cast<size_t>(n);
  }
  ::close(fd);
  return Status::ok();
}

// A new database's file reaches the disk with its first commit. A power cut
// before that commit was durable can leave the file's name on disk (another
// object's commit synced the folder) with only a part of the image, or none:
// SQLite would call that file corrupt, and the object could never open
// again. No answer depended on such a file, so it is written again whole.
// True when path was such a part (a prefix of image, shorter than it).
// `size` is the file's size.
Result<bool> complete_cut_short_image(const std::string& path, uint64_t size, const std::string& image) {
  if (size >= image.size()) return false;
  auto bytes = read_file(path);
  if (!bytes) return bytes.status();
  if (bytes->size() >= image.size() || image.compare(0, bytes->size(), *bytes) != 0) return false;
  if (Status w = write_database_image(path, image, /*replace=*/true); !w) return w;
  log_warn(path + " held " + std::to_string(bytes->size()) + " of the " + std::to_string(image.size()) +
           " bytes of a new database (a power cut before its first commit); written again whole");
  return true;
}

}  // namespace

const char* ObjectStore::runtime_schema() { return kSchema; }

std::vector<std::string> ObjectStore::earlier_runtime_schemas() {
  std::string kv = kSchema;
  kv = kv.substr(0, kv.find("CREATE TABLE IF NOT EXISTS _dobj_alarm"));
  return {kv + kLegacyAlarmTable, kv + kLegacyAlarmTable + kAddAlarmRetry + ";"};
}

int ObjectStore::stored_alarm_retry() {
  if (!ensure_open(false)) return 0;
  auto s = db_.cached("SELECT retry FROM _dobj_alarm WHERE id = 0");
  if (!s) return 0;  // a database from before the count was kept
  return (*s)->step() == SQLITE_ROW ? static_cast<int>((*s)->column_int(0)) : 0;
}

void ObjectStore::set_alarm_retry(int retry) {
  begin_write();
  constexpr const char* kUpdate = "UPDATE _dobj_alarm SET retry = ?1 WHERE id = 0";
  if (!db_.cached(kUpdate)) {
    if (Status st = db_.exec(kAddAlarmRetry); !st) {
      mark_broken(st.message());
      throw Error(st);
    }
  }
  StmtUse s = stmt(kUpdate);
  s->bind_int(1, retry);
  if (s->step() != SQLITE_DONE) fail("set the alarm's retry count");
}

bool ObjectStore::ensure_open(bool create) {
  if (db_.is_open()) {
    env_->open_dbs->touch(this);
    return true;
  }
  // Reopened after the connection cap closed it: both files are on disk as
  // it left them (no path lookups; most requests of a node with many more
  // objects than open connections reopen one).
  const bool known = std::exchange(files_known_, false);
  struct stat file;
  bool existed = known || (!file_known_missing_ && ::stat(path_.c_str(), &file) == 0);
  if (!existed && !create) {
    file_known_missing_ = true;
    return false;
  }
  bool wal_existed = known || (existed && file_exists(path_ + "-wal"));
  // A new file is a copy of the empty database (except on a cluster node:
  // its backups build their copies from the commits' pages, the tables'
  // included).
  bool from_image = false;
  const std::string folder = dir();
  if (!known && existed && !env_->replication && file.st_size < 8 * env_->page_size) {
    if (auto image = empty_database_image(folder, env_->page_size)) {
      auto completed = complete_cut_short_image(path_, static_cast<uint64_t>(file.st_size), *image);
      if (!completed) throw Error(completed.status());
      if (*completed) new_file_ = true;  // to the disk with the next commit
    }
  }
  if (!existed) {
    schema_ready_ = false;  // a new file (or one made again after a delete)
    if (Status st = make_dirs(folder); !st) throw Error(st);  // one mkdir when it is there
    // The folder's own entry in the namespace folder must be durable with
    // this first commit (the flusher syncs it, not this thread), also when
    // the folder was there: another shard may have made it a moment ago,
    // and that shard's flush may come after this object's answer.
    parent_dir_to_sync_ = SyncFile::known(folder.substr(0, folder.rfind('/')), /*is_dir=*/true);
    if (!env_->replication) {
      if (auto image = empty_database_image(folder, env_->page_size)) {
        if (Status st = write_database_image(path_, *image, /*replace=*/false); !st) throw Error(st);
        from_image = true;
        schema_ready_ = true;
      }
    }
  }
  if (Status st = db_.open(path_, create); !st) throw Error(st);
  sqlite3_db_config(db_.get(), SQLITE_DBCONFIG_NO_CKPT_ON_CLOSE, 1, nullptr);
  // PRAGMA foreign_keys=ON without parsing a statement on every open.
  sqlite3_db_config(db_.get(), SQLITE_DBCONFIG_ENABLE_FKEY, 1, nullptr);
  limit_connection(db_.get());
  // A new file takes the configured page size (before anything is written;
  // an existing one keeps its own). Its switch to WAL writes the header
  // through an in-memory journal: a rollback journal file would be created,
  // written and deleted for one write into an empty file.
  if (!existed && !from_image) {
    std::string size = "PRAGMA page_size=" + std::to_string(env_->page_size);
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
  if (env_->replication || env_->history) {
    int page = env_->page_size;
    if (auto s = db_.cached("PRAGMA page_size"); s && (*s)->step() == SQLITE_ROW) page = (*s)->column_int(0);
    capture_wal_frames(db_.get(), page,
                       [this, page](std::vector<WalFrame> txn) { record_frames(page, std::move(txn)); });
  }

  if (env_->max_database_bytes > 0) {
    // The file's own page size (a new file's is the one set above).
    int64_t page = env_->page_size;
    if (auto s = db_.cached("PRAGMA page_size"); s && (*s)->step() == SQLITE_ROW) {
      page = (*s)->column_int(0);
    }
    std::string cap = "PRAGMA max_page_count=" +
                      std::to_string(std::max<int64_t>(env_->max_database_bytes / page, 4));
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
  if (env_->history) {
    try {
      open_history();
    } catch (...) {
      history_.reset();
      db_.close();
      throw;
    }
  }
  sqlite3_set_authorizer(db_.get(), &ObjectStore::authorize, this);
  track_wal_frames(db_.get(), &wal_frames_);  // end_turn checkpoints
  file_known_missing_ = false;
  // Stays set over a close by the connection cap: the file is not on disk
  // until a commit (or close_connection) hands it to the flusher.
  if (!existed) new_file_ = true;
  if (!existed || !wal_existed) dir_to_sync_ = SyncFile::known(folder, /*is_dir=*/true);
  env_->open_dbs->touch(this);
  return true;
}

void ObjectStore::start_checkpoint(std::function<void()> done) {
  pin();  // the connection cap must not close it meanwhile
  std::weak_ptr<bool> alive = alive_;
  auto finish = [this, alive, done](bool ok) {
    if (alive.expired()) return;  // the store (and its owner) went away
    unpin();
    if (ok) {
      wal_frames_ = 0;
      stamp_next_ = true;  // the first commit of the WAL that starts over
    }
    done();
  };
  if (!env_->commits->syncs()) {
    // Durability::kOs: nothing waits for a flush; still keep the order that
    // protects the file (WAL on disk, copy, file on disk, then a restart).
    Status st = wal_file_->sync();
    // The history's records of the WAL's commits, before the WAL can go.
    if (st && history_) st = history_->write_out();
    if (st && history_sync_) st = history_sync_->sync();
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
  env_->commits->when_durable(last_commit_seq_, [this, alive, finish](Status st) {
    if (alive.expired()) return;
    // The history's held records go to the file before the WAL is copied:
    // they reach the disk with the copy (below). If they cannot, no
    // checkpoint: the WAL keeps them.
    if (st && history_) {
      if (Status h = history_->write_out(); !h) {
        log_warn("checkpoint of " + path_ + " waits: " + h.message());
        return finish(false);
      }
    }
    if (!st || !copy_wal_into_file()) return finish(false);
    auto f = SyncFile::open(path_, /*is_dir=*/false);
    if (!f) {
      log_error("checkpoint: " + f.status().message());
      close_connection();
      return finish(false);
    }
    // The history's records of the WAL's commits reach the disk with the
    // copy: the WAL, which could rebuild them, starts over after it.
    if (history_ && history_sync_) env_->commits->add_dirty(history_sync_);
    uint64_t seq = env_->commits->committed(std::move(*f), nullptr);
    env_->commits->when_durable(seq, [this, alive, finish](Status st) {
      if (alive.expired()) return;
      // A failed flush stops the node; until it does, a reopen replays the WAL.
      if (!st) close_connection();
      finish(st.is_ok());
    });
  });
}

bool ObjectStore::copy_wal_into_file() {
  settle();
  if (!db_.is_open() || in_txn_) return false;
  int rc =
      sqlite3_wal_checkpoint_v2(db_.get(), nullptr, SQLITE_CHECKPOINT_PASSIVE, nullptr, nullptr);
  if (rc != SQLITE_OK) {
    log_warn(db_.error(Code::kInternal, "checkpoint").message());
    return false;
  }
  return true;
}

void ObjectStore::close_connection() {
  if (in_txn_) return;
  files_known_ = false;  // DbCache::enforce sets it after this close
  settle();  // the ended turns' writes, if their commit was deferred
  // A file (or folder entry) made by this connection and not yet committed,
  // as when its first turn was discarded: the flusher takes it with its next
  // flush, which comes before any answer that waits for a later commit to it
  // (a store that finds the files existing syncs neither).
  if (std::exchange(new_file_, false)) env_->commits->add_dirty(SyncFile::known(path_, /*is_dir=*/false));
  if (dir_to_sync_) env_->commits->add_dirty(std::move(dir_to_sync_));
  if (parent_dir_to_sync_) env_->commits->add_dirty(std::move(parent_dir_to_sync_));
  forget_known();
  // Records of commits not yet durable are dropped: the WAL has them, and
  // the next open rebuilds them.
  if (history_) (void)history_->write_out(durable_gate());
  history_.reset();
  history_pending_.reset();
  env_->open_dbs->remove(this);
  sql_cache_.reset();
  db_.close();
  wal_file_.reset();
}

Status ObjectStore::remove_files() {
  discard_turn();
  new_file_ = false;
  close_connection();
  bool removed = false;
  for (const std::string& p : {path_ + "-wal", path_, path_ + "-history"}) {
    if (::unlink(p.c_str()) == 0) {
      removed = true;
    } else if (errno != ENOENT) {
      return Status(Code::kInternal, "cannot remove " + p + ": " + std::strerror(errno));
    }
  }
  file_known_missing_ = true;
  if (env_->replication) {
    env_->replication->record(replica_record(ReplicaRecord::Kind::kRemove));
  }
  // The removal survives power loss once answered.
  return removed ? sync_dir(dir()) : Status::ok();
}

Status ObjectStore::fold_wal_into_file() {
  discard_turn();
  try {
    if (!ensure_open(false)) return Status::ok();  // no database: nothing to keep
  } catch (const Error& e) {
    return e.status();
  }
  if (!copy_wal_into_file()) return Status(Code::kInternal, "cannot copy " + path_ + "-wal into the database");
  auto f = SyncFile::open(path_, /*is_dir=*/false);
  if (!f) return f.status();
  if (Status st = (*f)->sync(); !st) return st;
  // Their commits are in the synced file now: the held records may follow.
  if (history_) {
    if (Status st = history_->write_out(); !st) return st;
    if (history_sync_) return history_sync_->sync();
  }
  return Status::ok();
}

ReplicaRecord ObjectStore::replica_record(ReplicaRecord::Kind kind) const {
  ReplicaRecord r;
  r.kind = kind;
  AlarmRecord who = identity();
  r.ns = std::move(who.ns);
  r.id = std::move(who.id_hex);
  // A copy's name for its backup's catalog (a removal names none).
  if (kind != ReplicaRecord::Kind::kRemove) r.name = std::move(who.name);
  return r;
}

Status ObjectStore::replicate_replace(std::string database, std::string history) {
  ReplicaRecord r = replica_record(ReplicaRecord::Kind::kReplace);
  r.file = std::move(database);
  if (env_->history) {
    // Its backups keep it as a base with the number it has here.
    auto stamp = stamp_in_image(r.file);
    if (!stamp) return Status(Code::kInternal, "history: the new database has no commit number");
    std::tie(r.history_seq, r.history_time_ms) = *stamp;
    r.history = std::move(history);
  }
  env_->replication->record(std::move(r));
  return Status::ok();
}

Status ObjectStore::replace_files(const std::string& file, bool in_history) {
  if (Status st = fold_wal_into_file(); !st) return st;
  close_connection();
  if (Status st = make_dirs(dir()); !st) return st;
  if (env_->history && !in_history) {
    // An import is a commit of the history too: a base with the next number.
    auto bytes = read_file(file);
    if (!bytes) return bytes.status();
    if (Status st = stamp_as_next_base(*bytes); !st) return st;
    if (Status st = write_file_atomic(file, *bytes, 0644); !st) return st;
  }
  // The old WAL belongs to the old file: it goes first, so that no crash
  // leaves the new file with the old log.
  if (::unlink((path_ + "-wal").c_str()) != 0 && errno != ENOENT) {
    return Status(Code::kInternal, "cannot remove " + path_ + "-wal: " + std::strerror(errno));
  }
  if (env_->replication) {
    auto bytes = read_file(file);
    if (!bytes) return bytes.status();
    if (Status st = replicate_replace(std::move(*bytes), {}); !st) return st;
  }
  if (::rename(file.c_str(), path_.c_str()) != 0) {
    return Status(Code::kInternal, "cannot move the import into place: " +
                                       std::string(std::strerror(errno)));
  }
  return sync_dir(dir());
}

}  // namespace dobj::internal
