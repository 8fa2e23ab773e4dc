// ObjectStore: one object's SQLite database, its key-value table and its
// per-turn write batch.
//
// File: <data>/objects/<namespace>/<first two hex digits>/<id>.sqlite, WAL mode,
// exclusive locking (one connection per file, no shared-memory index). The
// file is created by the first write of a turn (ensure_open(create)), with
// its folder if that is new; the first commit's flush syncs the folder
// entries too. Reading an object that never wrote makes no file. An import
// (replace_files) puts a file in place whole.
//
// Batching: the first write of a turn opens a SQLite transaction; end_turn()
// commits it and registers the commit with the shard's GroupCommit. Nested
// storage transactions are savepoints inside it. While a flush is in flight
// the commit may be deferred instead (coalescing, storage/group_commit.h):
// the transaction stays open, the next turns write into it each inside the
// savepoint `dobj_turn`, and it is committed before the next flush starts,
// or at a turn's end once no flush is in flight, or before the connection
// closes or its files are read or replaced. Not with history or
// replication (each commit is recorded), nor for a turn that touched the
// alarm, made the file or is due a checkpoint, nor for an object whose last
// commit is durable (one that did not write within this flush). Any SQLite
// failure while writing marks the store broken: end_turn() then rolls back
// and reports it, and the runtime resets the object.
//
// Open connections per shard are capped by DbCache: a store whose connection
// is not inside a turn is closed (no checkpoint on close; the WAL is replayed
// on the next open).
//
// Thread affinity: the owning shard thread only.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <random>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

#include "dobj/sql.h"
#include "dobj/storage.h"
#include "dobj/task.h"
#include "storage/alarm_index.h"
#include "storage/catalog.h"
#include "storage/counters.h"
#include "storage/group_commit.h"
#include "storage/history.h"
#include "storage/replication.h"
#include "storage/sqlite.h"

namespace dobj::internal {

class ObjectStore;

// The stores of one shard that have an open connection, at most `capacity`.
//
// Past the cap, of kSample open stores picked at random, one is closed
// (sampling, as Redis evicts keys): the one used longest ago, unless every
// sample has an alarm due within kAlarmSoonMs; then the one whose alarm is
// due last, as the scheduler will run it last. Exact LRU closes exactly the
// wrong store when objects are visited in a cycle a little larger than the
// cap, as alarms of many objects due one after another are: every visit
// reopens a file. Simulated on a cycle 5% over the cap, LRU among samples
// keeps 73% of visits on an open connection (exact LRU: none), the alarm
// order 84%; on skewed (Pareto) traffic without alarms sampling is within
// 0.1% of exact LRU. Touching a store is a counter increment.
class DbCache {
 public:
  static constexpr int kSample = 3;
  static constexpr int64_t kAlarmSoonMs = 10'000;
  explicit DbCache(size_t capacity) : capacity_(capacity) {}
  void touch(ObjectStore* store);
  void remove(ObjectStore* store);
  size_t open_count() const { return open_.size(); }
  // Whether a should be closed rather than b, with alarms before `soon`
  // (ms since the epoch) counting as due soon.
  static bool rather(const ObjectStore* a, const ObjectStore* b, int64_t soon);

 private:
  // Closes stores until the cap holds; never `keep` (the store being opened).
  void enforce(ObjectStore* keep);
  static bool closable(const ObjectStore* s, const ObjectStore* keep);
  size_t capacity_;
  uint64_t clock_ = 0;
  std::vector<ObjectStore*> open_;
  std::minstd_rand random_{20261127};
};

// Test hook: makes commits fail as a full disk or an I/O error would.
struct StoreFaults {
  std::atomic<int> fail_next_commits{0};
};

// What a store works with. The stores of one namespace on one shard share
// one (ObjectStore holds it by pointer: it is most of a store's size).
struct StoreEnv {
  GroupCommit* commits;
  DbCache* open_dbs;
  StoreFaults* faults = nullptr;   // optional
  int64_t max_database_bytes = 0;  // 0: no cap; past it writes fail as on a full disk
  AlarmIndex* alarms = nullptr;    // null: alarm changes are not indexed
  bool alarms_allowed = true;      // false: the class has no alarm() handler
  StorageCounters* counters = nullptr;  // optional: where operations are counted
  Catalog* catalog = nullptr;           // null: new databases are not catalogued
  int page_size = Storage::kDefaultPageBytes;  // of a new database file
  // Longest one exec of the object's SQL may run before it is interrupted
  // (the CPU limit of a turn, made pre-emptive for SQL); 0: no limit.
  std::chrono::milliseconds sql_time_limit{0};
  // The runtime's clock, milliseconds since the Unix epoch (State::now,
  // set_alarm of a delay); null: the system clock.
  std::function<int64_t()> now_ms = nullptr;
  // A cluster node's backups: each commit's frames, imports and removals are
  // recorded here (storage/replication.h); null: not replicated.
  ReplicationLog* replication = nullptr;
  // Keep every commit's pages in <id>.sqlite-history (storage/history.h), so
  // the database can be rebuilt as of any of them (bookmarks, restore).
  bool history = false;
  // Where Storage::snapshot() writes its copies (<data>/snapshots); empty:
  // snapshots are not available. On a cluster, a snapshot's name says the
  // object's partition (StoreOwner::partition, storage/snapshots.h); 0
  // partitions: a single node.
  std::string snapshot_dir{};
  uint32_t partitions = 0;
  // History's retention: commits older than this go (0: kept for ever), as
  // do the oldest once the file passes history_max_bytes (0: no cap).
  int64_t history_keep_ms = 0;
  int64_t history_max_bytes = 0;
};

// The object a store belongs to (the runtime's ObjectHost), asked when
// needed instead of copied into every store.
class StoreOwner {
 public:
  // Its namespace, ID and name (at_ms and retry 0): for the node's alarm
  // index, the catalog and a cluster's replication records.
  virtual AlarmRecord identity() const = 0;
  // Its partition, on a cluster (StoreEnv::partitions).
  virtual uint32_t partition() const = 0;
  // Storage::sync(): the runtime's to implement, as it needs the object's turn.
  virtual Task<void> sync() = 0;

 protected:
  ~StoreOwner() = default;
};

class ObjectStore final : public DeferredCommit {
 public:
  // WAL size (in frames, one page each) past which a commit is followed by a
  // checkpoint.
  static constexpr int kCheckpointFrames = 1000;
  // The SQL that makes the runtime's own tables (_dobj_kv, _dobj_alarm).
  static const char* runtime_schema();
  // The SQL that made them in earlier versions (their databases are still
  // accepted, as they are, by an import).
  static std::vector<std::string> earlier_runtime_schemas();
  // A base at least every this many bytes of commit records, and no sooner
  // than the database's size of them (end_turn: a periodic base).
  static constexpr uint64_t kHistoryBaseEveryBytes = uint64_t{1} << 20;
  // The SQL of the history's table (_dobj_history), made when history is on.
  static const char* history_schema();
  // Its SQL in earlier versions (accepted by an import; opened, it is altered).
  static std::vector<std::string> earlier_history_schemas();
  // The SQL of the table that holds a restore asked for by the object itself
  // (_dobj_restore: Storage::on_next_session_restore_bookmark,
  // State::on_next_session_restore), done when the object next starts.
  static const char* restore_schema();

  // The file is dir/file_name.
  ObjectStore(std::shared_ptr<const StoreEnv> env, std::string_view dir, std::string_view file_name);
  ObjectStore(StoreEnv env, std::string_view dir, std::string_view file_name)
      : ObjectStore(std::make_shared<const StoreEnv>(std::move(env)), dir, file_name) {}
  ~ObjectStore();
  ObjectStore(const ObjectStore&) = delete;
  ObjectStore& operator=(const ObjectStore&) = delete;

  // Key-value operations. Reads of a store with no file see nothing. Throw
  // dobj::Error on bad input (kInvalidArgument) or storage failure (kInternal).
  std::optional<std::string> get(std::string_view key);
  void put(std::string_view key, std::string_view value);
  bool remove(std::string_view key);
  std::vector<std::pair<std::string, std::string>> list(const ListOptions& options);
  void delete_all();

  void begin_nested();
  void end_nested(bool commit);

  // The alarm (one per object), a write like any other.
  std::optional<int64_t> get_alarm();
  void set_alarm(int64_t at_ms);
  int64_t now_ms() const;
  void delete_alarm();
  // The runtime's side: who the store belongs to (none: an empty identity,
  // partition 0, and sync() throws).
  void set_owner(StoreOwner* owner) { owner_ = owner; }
  // The stored alarm time, including this turn's writes.
  std::optional<int64_t> stored_alarm();
  // How many runs of the stored alarm failed (0 when none, or when there is
  // no alarm). Kept in the database so that it moves with the object (a
  // cluster's failover) and restarts at 0 when the alarm is set again.
  int stored_alarm_retry();
  // Records `retry` failed runs of the stored alarm, in this turn.
  void set_alarm_retry(int retry);
  // History (env.history): the object's last `limit` commits as bookmarks,
  // oldest first (empty when history is off or the object has no file);
  // `total`, when given, is set to how many commits the history holds.
  struct Bookmark {
    std::string bookmark;
    uint64_t seq;
    int64_t time_ms;
    bool base;  // a whole database (the first, or a restore or import)
  };
  std::vector<Bookmark> bookmarks(size_t limit = SIZE_MAX, size_t* total = nullptr);
  // The history file's size in bytes, with the records it holds in memory
  // (0 without one).
  uint64_t history_bytes();
  // Writes the records held in memory to the history file, for readers of
  // the file itself (HistoryFile::write_out).
  Status write_out_history();
  // The bookmark of the database as it is now (kNotFound without history).
  Result<std::string> current_bookmark();
  // The bookmark of the last commit at or before time_ms.
  Result<std::string> bookmark_for_time(int64_t time_ms);
  // The database's bytes as of `bookmark`. Outside a turn.
  Result<std::string> database_at(std::string_view bookmark);
  // A restore to `bookmark`, in three steps so that the heavy one can run
  // off the shard:
  //  1. prepare_restore, on the shard, outside a turn, the object's instance
  //     gone: the WAL is folded into the file, every history record is
  //     written, and the connection is closed.
  //  2. build_restore, on any thread, while nothing opens the store: the
  //     state is rebuilt from the history, stamped as the next commit and
  //     put in place of the database (durably; the WAL goes first), then
  //     recorded in the history as a base; all through files, a record at a
  //     time in memory. Returns the new database's bytes when replicated
  //     (the backups get them whole), else nothing.
  //  3. restored(bytes) on the shard: the backups are told; then the store
  //     is replaced by a fresh one.
  // A crash anywhere leaves the database as it was or restored, and its
  // history matching it (a restored database without its base gets one
  // when it opens).
  struct RestorePlan {
    std::string database;  // the object's database file
    std::string file;      // where step 2 writes the new one first
    uint64_t seq = 0;      // the state to rebuild
    uint64_t next_seq = 0;
    int64_t time_ms = 0;
    bool replicated = false;  // step 2 returns the new database's bytes for the backups
  };
  Result<RestorePlan> prepare_restore(std::string_view bookmark, std::string file);
  static Result<std::string> build_restore(const RestorePlan& plan);
  Status restored(std::string database);
  // kNotFound unless `bookmark` is well formed and names a commit in the
  // history (an object's own restore is checked when it asks for it).
  Status check_bookmark(std::string_view bookmark);

  // A restore the object asked for, done by the runtime before the object's
  // next instance is built. kind "bookmark" (source: a bookmark of its own
  // history) or "snapshot" (source: a Storage::snapshot() name).
  struct PendingRestore {
    std::string kind;
    std::string source;
  };
  // Records it in the turn (a write like any other: discarded with the turn).
  void request_restore(std::string_view kind, std::string_view source);
  // The recorded one, if any (opens an existing file; none without a file).
  std::optional<PendingRestore> pending_restore();
  // Forgets it, outside a turn (the restore could not be done).
  void clear_pending_restore();
  // The committed database as a whole, without its alarm or pending
  // restore: what Storage::snapshot() keeps. At the start of a turn.
  Result<std::string> snapshot_image();
  // Writes snapshot_image() to env.snapshot_dir, durably, and returns its
  // name (storage/snapshots.h). On a cluster it is also recorded for the
  // partition's backups, as a commit: durable on them once last_commit_seq()
  // is.
  Result<std::string> write_snapshot();
  // The file of snapshot `name`: kInvalidArgument for a malformed name,
  // kNotFound when there is no such snapshot (or it expired).
  Result<std::string> snapshot_file(std::string_view name) const;
  // The same when known without a query (outer nullopt: unknown).
  const std::optional<std::optional<int64_t>>& known_alarm() const { return alarm_known_; }
  // While alarm() runs for time `at`, get_alarm() does not report it unless
  // the handler set or deleted the alarm itself.
  void set_running_alarm(std::optional<int64_t> at) {
    running_alarm_ = at;
    alarm_touched_in_handler_ = false;
  }
  // Whether the running alarm() called set_alarm or delete_alarm.
  bool alarm_touched_in_handler() const { return alarm_touched_in_handler_; }
  // After a successful end_turn: whether that turn changed the alarm, and to what.
  bool take_alarm_change(std::optional<int64_t>* at);

  // SQL (sql.cc). Throws dobj::Error like the key-value operations.
  SqlCursor exec_sql(std::string_view query, const std::vector<SqlValue>& params);
  int64_t database_size();

  // Storage::sync(), through the owner.
  Task<void> sync();

  // Commits the turn's batch, if it wrote anything. On failure the batch is
  // rolled back and the error returned; the caller must reset the object.
  Status end_turn();
  // Rolls back the turn's batch instead (the object is being reset).
  void discard_turn();
  // Commits a deferred commit now (GroupCommit, and before anything that
  // reads or replaces the files whole); false inside a turn.
  bool settle_deferred() override;
  // The same, between turns, and starts the flush that makes it durable.
  void settle();
  // The sequence number of this store's last commit (0 if none); responses that
  // follow it wait until GroupCommit says it is durable.
  uint64_t last_commit_seq() const { return last_commit_seq_; }

  // Checkpoints: once the WAL has grown past kCheckpointFrames, its pages are
  // copied into the database file. The syncs this needs run on the flusher,
  // not on the shard: the WAL's is the last commit's own flush, the database
  // file's a flush of its own after the copy. Until that one is done the WAL
  // must not restart (the next commit would overwrite frames whose pages the
  // file may not yet hold on disk), so the owner runs nothing on this store
  // between start_checkpoint() and `done`.
  bool checkpoint_due() const {
    return wal_frames_ >= kCheckpointFrames && db_.is_open() && !in_txn_ && !deferred_;
  }
  // `done` runs on the shard when the checkpoint has finished or given up;
  // possibly before this returns (when nothing is synced).
  void start_checkpoint(std::function<void()> done);
  bool in_turn_transaction() const { return in_txn_; }
  // Closes the connection (the next operation reopens it). No-op inside a turn.
  void close_connection();
  const std::string& path() const { return path_; }

  // The operator's reads (sql.cc), run between the object's turns.
  // Whether the database file exists (opening it if so).
  bool has_file() { return ensure_open(false); }
  // Keys after `after` in order, at most limit of them, with stored values.
  std::vector<std::pair<std::string, std::string>> admin_keys(const std::optional<std::string>& after,
                                                             int limit);
  struct TableInfo {
    std::string name;
    std::string type;  // "table" or "view"
    std::string sql;
    std::optional<int64_t> rows;  // unset when counting ran past the budget
  };
  std::vector<TableInfo> admin_tables();
  struct AdminRows {
    std::vector<std::string> columns;
    std::vector<std::vector<SqlValue>> rows;
    bool truncated = false;  // more rows than max_rows
  };
  // One statement that only reads (the runtime's tables included); refused
  // (kInvalidArgument) when it writes or runs past budget_ms. Throws dobj::Error.
  AdminRows admin_query(std::string_view query, size_t max_rows, int budget_ms);
  // The open connection for an export (nullptr when there is no file). While
  // pinned the connection is not closed to make room for others.
  sqlite3* admin_connection() { return ensure_open(false) ? db_.get() : nullptr; }
  // With history on, what goes with a copy of admin_connection()'s database
  // made now (a catch-up): the history's records, held ones included, and
  // the number and time of the database's last commit (the base it is).
  struct HistoryCopy {
    std::string records;
    uint64_t seq = 0;
    int64_t time_ms = 0;
  };
  Result<HistoryCopy> history_copy();
  void pin() { ++pins_; }
  void unpin() { --pins_; }
  // History files moved between servers (dobj pull). history_for_copy: a
  // descriptor of the history file (the caller closes it) and the size of its
  // whole records now; kNotFound without one. The file is only appended to,
  // or replaced by a rename, so those bytes stay as they are.
  Status history_for_copy(int* fd, uint64_t* size);
  // Writes the database as of the last record of the history file at
  // `history_path` to the file `out` (not synced), with that record's commit
  // number in it (what replace_with_history puts beside it), a record at a
  // time in memory; kInvalidArgument for a file that is not a usable history.
  static Status write_latest_database(const std::string& history_path, const std::string& out);
  // The commit number and time in a database's _dobj_history (bytes of a
  // whole file; given back unchanged); nullopt: it has none.
  static std::optional<std::pair<uint64_t, int64_t>> stamp_in_image(std::string& database);
  // replace_files for a database and its history: the old history goes
  // first, so that a crash never pairs a history with another database
  // (at worst the new database starts a history of its own).
  Status replace_with_history(const std::string& database_file, const std::string& history_file);
  // Closes the connection and removes the files, history included (delete);
  // or puts `file` in their place (import; with history on it becomes the
  // history's next commit, unless in_history: it is already, stamped with
  // its number). The store must not be used afterwards.
  Status remove_files();
  Status replace_files(const std::string& file, bool in_history = false);

 private:
  friend class DbCache;
  // Opens the connection; with create, creates the file and schema. Returns
  // false when the file does not exist and create is false.
  bool ensure_open(bool create);
  void begin_write();
  // A savepoint inside the turn's transaction (storage().transaction(), and
  // an exec of several statements); end_savepoint releases or rolls back to it.
  void begin_savepoint();
  void end_savepoint(bool commit);
  [[noreturn]] void fail(std::string_view what);
  // Copies the WAL into the database file (SQLite's checkpoint, no sync).
  bool copy_wal_into_file();
  // Before the files are replaced: the WAL's commits go into the database
  // file and the held history records into theirs, both synced, so that
  // removing the WAL loses nothing if the replacement then fails or a crash
  // stops it. Discards an open turn.
  Status fold_wal_into_file();
  // Rolls the open SQLite transaction back (and forgets what it wrote).
  void rollback();
  // COMMIT and the WAL's one write. On failure the transaction is rolled
  // back, or the connection closed when SQLite counted the commit.
  Status commit_and_write();
  // Whether this turn's commit may wait for the next flush (the top).
  bool may_defer() const;
  // Undoes the running turn's writes: to its savepoint when it wrote inside
  // the deferred transaction, else (or if that is gone) the whole
  // transaction, whose ended turns then fail with `why`.
  void undo_turn(bool savepoint, const Status& why);
  // Ends the deferral (this store leaves GroupCommit's list): the deferred
  // commit's sequence number, or 0 if none was deferred.
  uint64_t take_deferred();
  // After a turn: commits the deferred transaction if no flush is in
  // flight any more (none would come to settle it).
  void settle_if_idle();
  // Marks the turn lost (it is rolled back at end_turn) and remembers why.
  void mark_broken(const std::string& why, bool full = false);
  // The connection's last error was SQLITE_FULL.
  bool db_full() const;
  StmtUse stmt(std::string_view sql);
  // Throws the Error for a failed SQL step or prepare; marks the store broken
  // when the failure is the storage's, not the query's.
  [[noreturn]] void fail_sql(int rc);
  // SQLite's limits, defensive mode and trusted_schema off (include/dobj/sql.h).
  static void limit_connection(sqlite3* db);
  static int authorize(void* self, int action, const char* a1, const char* a2, const char* db,
                       const char* trigger);
  void drop_user_schema();
  // History: opens the file and makes it agree with the database (a commit
  // the database lacks is dropped; one the history lacks becomes a base).
  void open_history();
  // A record of this object for its backups: kind, namespace, ID, name.
  ReplicaRecord replica_record(ReplicaRecord::Kind kind) const;
  // Records a kReplace of the object for its backups: the new database and
  // the history that goes with it (empty: the database starts a base).
  Status replicate_replace(std::string database, std::string history);
  // The database as SQLite sees it now (the WAL's commits included).
  std::string serialize_database();
  // Gives `database` (bytes of a whole database) the history's next commit
  // number and syncs the history; it becomes a base when it opens in place
  // of the database. Outside a turn.
  Status stamp_as_next_base(std::string& database);
  // The number the next base gets: past the history's last record and the
  // database's own (history may be another reader of this store's file).
  uint64_t next_history_seq(const HistoryFile* history) const;
  // Retention: drops the commits past env_.history_keep_ms (checked at open
  // and then at most once per kHistoryTrimIntervalMs) or past
  // env_.history_max_bytes (down to 3/4 of it). An error: the file was
  // replaced but cannot be synced (the connection must close).
  static constexpr int64_t kHistoryTrimIntervalMs = 3'600'000;
  Status keep_history_in_bounds(int64_t now, bool at_open);
  // Appends to `file` the commits it lacks that the WAL still holds (after a
  // crash: records wait for durability and the file is synced only before the
  // WAL starts over), numbered as open_history says, and writes again any
  // record of those commits that is not whole. Returns the number of the
  // WAL's last commit, when it can tell (not for a legacy file).
  Result<std::optional<uint64_t>> rebuild_from_wal(HistoryFile& file, bool legacy, uint64_t stamped);
  // Commits up to this group commit number are durable (all, without syncs).
  uint64_t durable_gate() const;
  // Hands a commit just made to the group commit (its WAL, and a new file's
  // entries), setting last_commit_seq_; kReset if a file cannot be opened.
  Status note_commit();
  // Called with each committed transaction's frames (the WAL capture).
  void record_frames(int page_size, std::vector<WalFrame> txn);

  // The object's folder: the file's path up to its name.
  std::string dir() const { return path_.substr(0, path_.rfind('/')); }
  AlarmRecord identity() const { return owner_ ? owner_->identity() : AlarmRecord{}; }

  std::shared_ptr<const StoreEnv> env_;
  StoreOwner* owner_ = nullptr;
  std::string path_;
  Db db_;
  std::shared_ptr<SyncFile> wal_file_;
  std::shared_ptr<SyncFile> dir_to_sync_;  // set when this connection created entries
  std::shared_ptr<SyncFile> parent_dir_to_sync_;  // set for a new file: its folder's entry in the namespace folder
  bool file_known_missing_ = false;
  // Closed by the connection cap (DbCache), nothing done to its files since:
  // the database and its WAL are on disk, their folder entries synced or
  // handed to the flusher. Any other close clears it.
  bool files_known_ = false;
  bool schema_ready_ = false;  // the runtime's tables are known to exist in the file
  bool new_file_ = false;
  std::unique_ptr<HistoryFile> history_;  // open with the connection (env_.history)
  std::shared_ptr<SyncFile> history_sync_;
  // The database's commit number. Every commit has one, one more each;
  // _dobj_history.seq holds it as of the first commit after each open and
  // checkpoint (stamp_next_), so the WAL's commits can be numbered from it.
  uint64_t history_seq_ = 0;
  bool stamp_next_ = true;
  // Set by end_turn for the commit under way; the capture records it.
  struct PendingCommit {
    uint64_t seq;
    int64_t time_ms;
    bool stamped = false;
    bool captured = false;  // the commit wrote frames
    bool recorded = false;
  };
  std::optional<PendingCommit> history_pending_;
  bool history_needs_base_ = false;  // frames came that no commit announced, or a periodic base is due
  uint64_t history_base_check_at_ = kHistoryBaseEveryBytes;  // commit bytes since a base
  int64_t history_trimmed_ms_ = 0;   // when retention last looked at the times
  int wal_frames_ = 0;          // set by SQLite's WAL hook after each commit
  bool alarm_dirty_ = false;    // the current turn touched the alarm
  bool alarm_changed_ = false;  // the last committed turn did
  std::optional<int64_t> alarm_after_;
  // The stored alarm as this connection sees it, when known without a query
  // (an alarm run reads it four times). Unknown after open, rollback, failure.
  std::optional<std::optional<int64_t>> alarm_known_;
  // Values of keys read or written lately (nullopt: no such key), so that
  // reading a key again needs no SQLite query, as Cloudflare's storage
  // answers recent keys from memory. Always the transaction's own view:
  // every write of _dobj_kv goes through put/remove/delete_all, which keep
  // it, and whatever may undo writes (a rollback, a rolled-back savepoint, a
  // broken turn, a closed connection) empties it with alarm_known_
  // (forget_known). Small: an entry of up to kCacheEntryBytes (key, value and
  // overhead), all of them up to kCacheBytes (past that it starts over).
  static constexpr size_t kCacheEntryBytes = 1024;
  static constexpr size_t kCacheBytes = 8 * 1024;
  struct CacheHash {
    using is_transparent = void;
    size_t operator()(std::string_view s) const { return std::hash<std::string_view>{}(s); }
  };
  std::unordered_map<std::string, std::optional<std::string>, CacheHash, std::equal_to<>> cached_values_;
  size_t cached_bytes_ = 0;
  void cache_value(std::string_view key, const std::optional<std::string_view>& value);
  void forget_cached_values() {
    cached_values_.clear();
    cached_bytes_ = 0;
  }
  // Forgets all this store knows without a query (the alarm, recent values):
  // wherever writes may have been undone.
  void forget_known() {
    alarm_known_.reset();
    forget_cached_values();
  }
  std::optional<int64_t> running_alarm_;
  bool alarm_touched_in_handler_ = false;
  bool in_txn_ = false;
  bool deferred_ = false;        // a transaction of ended turns is open (coalescing)
  bool turn_savepoint_ = false;  // the running turn writes inside it, in savepoint dobj_turn
  bool broken_ = false;
  std::string broken_reason_;  // the first failure of the turn, for the reset message
  bool broken_full_ = false;   // that failure was a full disk (or the object's cap)
  int nested_ = 0;
  uint64_t last_commit_seq_ = 0;
  std::string deny_reason_;  // why the authorizer refused the last statement
  // The authorizer is installed once per connection (installing it expires
  // every prepared statement) and checks only while this is set: during user
  // SQL, not during the runtime's own statements.
  enum class Authorize { kOff, kUser, kAdminRead };
  Authorize authorizing_ = Authorize::kOff;
  int pins_ = 0;
  // Prepared single-statement user queries by text. Apart from Db's cache of
  // internal statements, so user text never reaches a statement that was
  // prepared without the authorizer.
  // Made on first use: most objects never run SQL of their own.
  std::unique_ptr<std::unordered_map<std::string, Stmt>> sql_cache_;
  static constexpr size_t kSqlCacheSize = 64;
  static constexpr size_t kNotOpen = ~size_t{0};
  // Callbacks that outlive the store (a checkpoint's) check this first.
  std::shared_ptr<bool> alive_ = std::make_shared<bool>(true);
  size_t open_slot_ = kNotOpen;  // index in DbCache::open_
  uint64_t last_used_ = 0;       // DbCache's clock at the last use
};

}  // namespace dobj::internal
