// Group commit: many commits, one flush.
//
// Objects commit their turns to their SQLite WAL files without syncing. Each
// commit gets a sequence number from its shard's GroupCommit and the WAL file
// it dirtied. When no flush is in flight, the shard hands every file dirtied
// since the last flush to the node's Flusher thread in one batch; commits that
// arrive meanwhile wait for the next batch. So 64 concurrent increments of one
// counter cost one or two fdatasyncs, not 64, and a flush of many objects'
// files is one trip to the flusher thread.
//
// Coalescing: a turn that ends while a flush is in flight has nothing to
// gain from committing at once (its answer waits for the next flush
// anyway). If its object wrote before within this flush (its last commit
// is not durable), its store may keep the SQLite transaction open instead
// (defer) and take the next turns' writes into it, each turn a savepoint;
// the transaction is committed when the flush in flight is done, right
// before the next one is handed to the flusher. A hot object's thirty turns
// of one flush then cost one commit (the WAL's frames, their checksums, one
// write) instead of thirty. The deferred commit's sequence number is taken
// when it is deferred, so the waiters of its turns wait for it as for any
// other.
//
// Durability::kOs mode skips the flush: a commit is durable (against a crash
// of the process) once SQLite has written it, so waiters run at once.
//
// Threads: Flusher is node-wide and thread-safe (submit from any shard).
// GroupCommit belongs to one shard thread; the flusher's completions reach it
// through the post function it was given.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "dobj/status.h"

namespace dobj::internal {

// A file to fdatasync (or a folder to fsync) in a flush. It holds only the
// path: the flusher opens it for the sync, since fdatasync through any
// descriptor flushes the file, and a descriptor kept per open database would
// cost a third of the descriptor budget. Shared by the commits waiting on it.
class SyncFile {
 public:
  static Result<std::shared_ptr<SyncFile>> open(const std::string& path, bool is_dir);
  // One for a file or folder the caller knows is there (it just made or
  // wrote it): no stat. open()'s check costs a path lookup, and a new
  // object makes four of these.
  static std::shared_ptr<SyncFile> known(std::string path, bool is_dir) {
    return std::shared_ptr<SyncFile>(new SyncFile(std::move(path), is_dir));
  }
  Status sync() const;
  // syncfs: flushes the whole filesystem this file is on.
  Status sync_filesystem() const;
  const std::string& path() const { return path_; }

 private:
  SyncFile(std::string path, bool is_dir) : path_(std::move(path)), is_dir_(is_dir) {}
  std::string path_;
  bool is_dir_;
};

// Test hook: makes flushes fail or slow, to exercise failure paths, and
// shows what each flush covered.
struct FlushFaults {
  std::atomic<int> fail_next{0};  // fail this many upcoming flushes
  std::atomic<int> delay_ms{0};   // sleep before each flush
  // Called on the flusher thread with the paths of each flush; set before
  // the first submit.
  std::function<void(const std::vector<std::string>&)> observe;
};

// A failed sync is final. After fsync reports an error the kernel may have
// dropped the dirty pages and cleared the error, so a later sync that succeeds
// proves nothing about the earlier writes (PostgreSQL's "fsyncgate", 2018).
// From the first failure on, the flusher syncs nothing more: every batch, that
// one's and all later ones, completes with the failure, and on_failure runs
// once, on the flusher thread, before any of those batches completes. The
// node then stops: what it wrote since its last good flush is only trusted
// again after a restart has recovered what is really on disk.
class Flusher {
 public:
  // Batches with more distinct files than this are flushed with one syncfs.
  static constexpr size_t kSyncfsThreshold = 4;
  using Done = std::function<void(Status)>;  // runs on the flusher thread
  using OnFailure = std::function<void(const Status&)>;
  Flusher();
  ~Flusher();
  // Set before start().
  void set_on_failure(OnFailure f) { on_failure_ = std::move(f); }
  bool failed() const { return failed_flag_.load(std::memory_order_acquire); }
  void start();
  // Finishes every submitted batch, then joins the thread.
  void stop();
  void submit(std::vector<std::shared_ptr<SyncFile>> files, Done done);
  FlushFaults& faults() { return faults_; }
  uint64_t flush_count() const { return flushes_.load(std::memory_order_relaxed); }

 private:
  struct Batch {
    std::vector<std::shared_ptr<SyncFile>> files;
    Done done;
  };
  void loop();

  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<Batch> queue_;  // guarded by mu_
  bool stopping_ = false;    // guarded by mu_
  std::thread thread_;
  FlushFaults faults_;
  std::atomic<uint64_t> flushes_{0};
  OnFailure on_failure_;
  Status failure_;  // flusher thread only: the first failure, ok until then
  std::atomic<bool> failed_flag_{false};
};

// A store whose commit is deferred (see above). settle_deferred() commits it
// (or fails its sequence number); false when it cannot now, inside a turn of
// its own, whose end settles it.
class DeferredCommit {
 public:
  virtual bool settle_deferred() = 0;

 protected:
  ~DeferredCommit() = default;
};

// A failed flush poisons the shard's GroupCommit: durable_seq stops where
// the last good flush left it, and every waiter past it, present or future,
// gets the failure. So a commit that had no waiter when its flush failed (a
// WebSocket handler's write) can never later pass for durable.
//
// Waiters released by a flush run at most kReleaseBatch per task on the shard
// (the rest are posted): one flush may cover thousands of commits (a burst of
// alarms across many objects), and releasing them all at once would hold the
// shard for milliseconds ahead of every request queued behind it. A commit
// counts as durable (durable_seq) once every waiter up to it has run, so an
// object's later outputs never overtake its earlier ones.
class GroupCommit {
 public:
  static constexpr size_t kReleaseBatch = 64;
  using Post = std::function<void(std::function<void()>)>;
  using Waiter = std::function<void(Status)>;

  // flusher null means Durability::kOs: no flush.
  GroupCommit(Flusher* flusher, Post post_to_shard);
  // A cluster node's: each flush also ships what was recorded for the
  // backups, and its commits count durable once both are done. Set before
  // the first commit.
  void set_replicator(class CommitReplicator* r) { replicator_ = r; }

  // Records a commit that dirtied `file` (and `dir`, when it created an entry in
  // it); returns its sequence number.
  uint64_t committed(std::shared_ptr<SyncFile> file, std::shared_ptr<SyncFile> dir);
  // Adds a file to the next flush without a commit of its own (a new database
  // file whose first commit follows).
  void add_dirty(std::shared_ptr<SyncFile> file);
  // Calls waiter(ok) once every commit up to seq is durable, or waiter(error) if
  // a flush failed before that. Runs at once when already durable or failed.
  void when_durable(uint64_t seq, Waiter waiter);
  uint64_t durable_seq() const { return durable_seq_; }
  // Whether commit seq is durable (and was not a deferred commit that failed).
  bool durable(uint64_t seq) const { return seq <= durable_seq_ && (failed_.empty() || !failed_.count(seq)); }

  // Coalescing (see the top). Off: every turn commits at once.
  void set_coalescing(bool on) { coalescing_ = on; }
  // Whether a commit made now may be deferred (a flush is in flight); the
  // store adds its own conditions (ObjectStore::may_defer).
  bool may_defer() const { return coalescing_ && in_flight_ && flusher_ && !replicator_ && failure_.is_ok(); }
  // Takes a sequence number for c's deferred commit; c->settle_deferred()
  // runs before the next flush is handed over, unless c settles first.
  uint64_t defer(DeferredCommit* c);
  // c settled its deferred commit itself (it calls add_dirty with its WAL).
  void undefer(DeferredCommit* c);
  // The deferred commit seq will never be: its waiters, present and future,
  // get `why` (the object resets).
  void fail(uint64_t seq, Status why);
  // Starts the next flush if one is wanted and none is in flight.
  void kick() { maybe_flush(); }
  // False in Durability::kOs mode: nothing is flushed.
  bool syncs() const { return flusher_ != nullptr || replicator_ != nullptr; }
  // The failure of the first failed flush; ok while none failed.
  const Status& failure() const { return failure_; }
  uint64_t last_seq() const { return next_seq_ - 1; }

 private:
  void maybe_flush();
  // Commits the deferred commits; false if one could not be (a turn of its
  // store is running): no flush may start, it would not cover that one.
  bool settle_deferred();
  void flushed(uint64_t upto, Status status);
  // Runs the waiters of finished flushes, in order, up to kReleaseBatch.
  void release();
  // The last finished flush covered commits up to here.
  uint64_t flushed_upto() const { return releases_.empty() ? durable_seq_ : releases_.back().first; }

  Flusher* flusher_;
  class CommitReplicator* replicator_ = nullptr;
  Post post_;
  uint64_t next_seq_ = 1;
  uint64_t durable_seq_ = 0;   // every waiter up to here has run
  bool in_flight_ = false;
  bool release_posted_ = false;
  bool releasing_ = false;  // inside release()
  Status failure_;
  std::deque<std::pair<uint64_t, Status>> releases_;  // finished flushes, oldest first
  std::map<const SyncFile*, std::shared_ptr<SyncFile>> dirty_;
  std::multimap<uint64_t, Waiter> waiters_;
  bool coalescing_ = true;
  bool settling_ = false;  // inside settle_deferred()
  std::vector<DeferredCommit*> deferred_;
  std::map<uint64_t, Status> failed_;  // deferred commits that failed
};

}  // namespace dobj::internal
