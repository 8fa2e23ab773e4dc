#include "storage/group_commit.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>

#include "base/thread_name.h"
#include "storage/replication.h"

namespace dobj::internal {

Result<std::shared_ptr<SyncFile>> SyncFile::open(const std::string& path, bool is_dir) {
  struct stat st;
  if (::stat(path.c_str(), &st) != 0) {
    return Status(Code::kInternal, "stat " + path + ": " + std::strerror(errno));
  }
  return std::shared_ptr<SyncFile>(new SyncFile(path, is_dir));
}

namespace {
// Opens path, runs fn(fd), closes.
Status with_fd(const std::string& path, bool is_dir, const char* what, int (*fn)(int)) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | (is_dir ? O_DIRECTORY : 0));
  // A file removed since its commit (its object was deleted) has nothing
  // left to sync: whoever removed it synced its folder.
  if (fd < 0 && errno == ENOENT) return Status::ok();
  if (fd < 0) return Status(Code::kInternal, "open " + path + ": " + std::strerror(errno));
  int rc = fn(fd);
  int err = errno;
  ::close(fd);
  if (rc != 0)
    return Status(Code::kInternal, std::string(what) + " " + path + ": " + std::strerror(err));
  return Status::ok();
}
}  // namespace

Status SyncFile::sync_filesystem() const {
  return with_fd(path_, is_dir_, "syncfs", [](int fd) { return ::syncfs(fd); });
}

Status SyncFile::sync() const {
  return is_dir_ ? with_fd(path_, true, "fsync", [](int fd) { return ::fsync(fd); })
                 : with_fd(path_, false, "fdatasync", [](int fd) { return ::fdatasync(fd); });
}

Flusher::Flusher() = default;
Flusher::~Flusher() { stop(); }

void Flusher::start() {
  std::lock_guard lock(mu_);
  stopping_ = false;
  if (thread_.joinable()) return;
  thread_ = std::thread([this] {
    name_this_thread("dobj-flusher");
    loop();
  });
}

void Flusher::stop() {
  {
    std::lock_guard lock(mu_);
    stopping_ = true;
  }
  cv_.notify_all();
  if (thread_.joinable()) thread_.join();
}

void Flusher::submit(std::vector<std::shared_ptr<SyncFile>> files, Done done) {
  {
    std::lock_guard lock(mu_);
    queue_.push_back(Batch{std::move(files), std::move(done)});
  }
  cv_.notify_one();
}

void Flusher::loop() {
  for (;;) {
    std::deque<Batch> batches;
    {
      std::unique_lock lock(mu_);
      cv_.wait(lock, [&] { return stopping_ || !queue_.empty(); });
      if (queue_.empty()) return;  // stopping and drained
      batches.swap(queue_);
    }
    if (int d = faults_.delay_ms.load(); d > 0) {
      std::this_thread::sleep_for(std::chrono::milliseconds(d));
    }
    // One fdatasync per distinct file across every batch taken: shards that
    // dirtied the same file share it. Past a few files, one syncfs (all dirty
    // data and metadata of the filesystem, one device cache flush) is cheaper
    // than a device flush per file.
    std::map<const SyncFile*, Status> results;
    std::vector<const SyncFile*> distinct;
    for (auto& b : batches) {
      for (auto& f : b.files) {
        if (!results.count(f.get())) {
          results[f.get()] = Status::ok();
          distinct.push_back(f.get());
        }
      }
    }
    if (faults_.observe) {
      std::vector<std::string> paths;
      for (auto* f : distinct) paths.push_back(f->path());
      faults_.observe(paths);
    }
    bool inject = false;
    int pending = faults_.fail_next.load();
    while (pending > 0 && !faults_.fail_next.compare_exchange_weak(pending, pending - 1)) {
    }
    inject = pending > 0;
    if (!failure_.is_ok()) {
      for (auto* f : distinct) results[f] = failure_;
    } else if (inject) {
      for (auto* f : distinct)
        results[f] = Status(Code::kInternal, "injected flush failure on " + f->path());
    } else if (distinct.size() > kSyncfsThreshold) {
      Status st = distinct.front()->sync_filesystem();
      for (auto* f : distinct) results[f] = st;
    } else {
      for (auto* f : distinct) results[f] = f->sync();
    }
    flushes_.fetch_add(1, std::memory_order_relaxed);
    if (failure_.is_ok()) {
      for (auto* f : distinct) {
        if (!results[f].is_ok()) {
          failure_ = Status(Code::kUnavailable, "storage flush failed: " + results[f].message());
          failed_flag_.store(true, std::memory_order_release);
          if (on_failure_) on_failure_(failure_);
          break;
        }
      }
    }
    // Every batch of a round with a failure fails, even one whose own files
    // synced: the node is going down, and failing more is the safe side.
    for (auto& b : batches) b.done(failure_);
  }
}

GroupCommit::GroupCommit(Flusher* flusher, Post post_to_shard)
    : flusher_(flusher), post_(std::move(post_to_shard)) {}

uint64_t GroupCommit::committed(std::shared_ptr<SyncFile> file, std::shared_ptr<SyncFile> dir) {
  uint64_t seq = next_seq_++;
  if (!flusher_ && !replicator_) {
    durable_seq_ = seq;
    return seq;
  }
  if (file) dirty_.emplace(file.get(), std::move(file));
  if (dir) dirty_.emplace(dir.get(), std::move(dir));
  return seq;
}

void GroupCommit::add_dirty(std::shared_ptr<SyncFile> file) {
  if (flusher_ && file) dirty_.emplace(file.get(), std::move(file));
}

uint64_t GroupCommit::defer(DeferredCommit* c) {
  deferred_.push_back(c);
  return next_seq_++;
}

void GroupCommit::undefer(DeferredCommit* c) { std::erase(deferred_, c); }

void GroupCommit::fail(uint64_t seq, Status why) {
  failed_.emplace(seq, why);
  auto [from, to] = waiters_.equal_range(seq);
  if (from == to) return;
  std::vector<Waiter> failing;
  for (auto it = from; it != to; ++it) failing.push_back(std::move(it->second));
  waiters_.erase(from, to);
  // On a fresh stack: this runs inside a commit, perhaps inside a turn.
  post_([failing = std::move(failing), why = std::move(why)]() mutable {
    for (auto& w : failing) w(why);
  });
}

bool GroupCommit::settle_deferred() {
  if (settling_) return false;
  settling_ = true;
  std::vector<DeferredCommit*> pending;
  pending.swap(deferred_);
  bool all = true;
  for (DeferredCommit* c : pending) {
    if (!c->settle_deferred()) {
      deferred_.push_back(c);
      all = false;
    }
  }
  settling_ = false;
  return all;
}

void GroupCommit::when_durable(uint64_t seq, Waiter waiter) {
  if (!failed_.empty()) {
    if (auto it = failed_.find(seq); it != failed_.end()) {
      waiter(it->second);
      return;
    }
  }
  if (seq <= durable_seq_) {
    waiter(Status::ok());
    return;
  }
  if (!failure_.is_ok() && waiters_.empty() && !release_posted_) {
    waiter(failure_);
    return;
  }
  waiters_.emplace(seq, std::move(waiter));
  maybe_flush();
}

void GroupCommit::maybe_flush() {
  if (!failure_.is_ok()) {
    // Nothing flushes any more; the waiters fail in order, after those before them.
    if (!release_posted_ && !releasing_) release();
    return;
  }
  if (in_flight_) return;
  // The commits deferred while the last flush ran, first: the next flush
  // must cover every number handed out before it.
  if (!deferred_.empty() && !settle_deferred()) return;
  // Nothing to do while the waiters are all covered by finished flushes.
  if (waiters_.empty() || waiters_.rbegin()->first <= flushed_upto()) return;
  uint64_t upto = next_seq_ - 1;
  std::vector<std::shared_ptr<SyncFile>> files;
  files.reserve(dirty_.size());
  for (auto& [k, f] : dirty_) files.push_back(std::move(f));
  dirty_.clear();
  in_flight_ = true;
  if (!replicator_) {
    flusher_->submit(std::move(files), [this, upto](Status st) {
      post_([this, upto, st = std::move(st)]() mutable { flushed(upto, std::move(st)); });
    });
    return;
  }
  // Both the local sync and the backups' copies; the first failure counts.
  struct Parts {
    int left;
    Status status;
  };
  auto parts = std::make_shared<Parts>(Parts{flusher_ ? 2 : 1, Status::ok()});
  auto part_done = [this, upto, parts](Status st) {
    post_([this, upto, parts, st = std::move(st)]() mutable {
      if (!st.is_ok() && parts->status.is_ok()) parts->status = std::move(st);
      if (--parts->left == 0) flushed(upto, std::move(parts->status));
    });
  };
  if (flusher_) flusher_->submit(std::move(files), part_done);
  replicator_->ship(part_done);
}

void GroupCommit::flushed(uint64_t upto, Status status) {
  in_flight_ = false;
  releases_.emplace_back(upto, std::move(status));
  if (!release_posted_) release();
  maybe_flush();
}

void GroupCommit::release() {
  // A waiter may commit again and wait (when_durable → maybe_flush); after a
  // failure that must not start a nested release: this one fails it too.
  releasing_ = true;
  struct Clear {
    bool& flag;
    ~Clear() { flag = false; }
  } clear{releasing_};
  size_t ran = 0;
  // Runs the first waiter with status; false once kReleaseBatch ran in this
  // task (the rest is posted).
  auto run_first = [&](const Status& status) {
    if (ran++ == kReleaseBatch) {
      release_posted_ = true;
      post_([this] {
        release_posted_ = false;
        release();
      });
      return false;
    }
    Waiter w = std::move(waiters_.begin()->second);
    waiters_.erase(waiters_.begin());
    w(status);
    return true;
  };
  while (!releases_.empty()) {
    auto& [upto, status] = releases_.front();
    if (!status.is_ok() && failure_.is_ok()) failure_ = status;
    // Waiters added while these run (a released object committing again)
    // have later sequence numbers and wait for a later flush.
    while (!waiters_.empty() && waiters_.begin()->first <= upto) {
      if (!run_first(failure_.is_ok() ? status : failure_)) return;
    }
    if (failure_.is_ok() && upto > durable_seq_) durable_seq_ = upto;
    releases_.pop_front();
  }
  // After a failure no flush will cover the rest: they fail now.
  while (!failure_.is_ok() && !waiters_.empty()) {
    if (!run_first(failure_)) return;
  }
}

}  // namespace dobj::internal
