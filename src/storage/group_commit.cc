#include "storage/group_commit.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>

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
  if (!thread_.joinable()) thread_ = std::thread([this] { loop(); });
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
    if (inject) {
      for (auto* f : distinct)
        results[f] = Status(Code::kInternal, "injected flush failure on " + f->path());
    } else if (distinct.size() > kSyncfsThreshold) {
      Status st = distinct.front()->sync_filesystem();
      for (auto* f : distinct) results[f] = st;
    } else {
      for (auto* f : distinct) results[f] = f->sync();
    }
    flushes_.fetch_add(1, std::memory_order_relaxed);
    for (auto& b : batches) {
      Status st;
      for (auto& f : b.files) {
        if (!results[f.get()].is_ok()) {
          st = results[f.get()];
          break;
        }
      }
      b.done(st);
    }
  }
}

GroupCommit::GroupCommit(Flusher* flusher, Post post_to_shard)
    : flusher_(flusher), post_(std::move(post_to_shard)) {}

uint64_t GroupCommit::committed(std::shared_ptr<SyncFile> file, std::shared_ptr<SyncFile> dir) {
  uint64_t seq = next_seq_++;
  if (!flusher_) {
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

void GroupCommit::when_durable(uint64_t seq, Waiter waiter) {
  if (seq <= durable_seq_) {
    waiter(Status::ok());
    return;
  }
  waiters_.emplace(seq, std::move(waiter));
  maybe_flush();
}

void GroupCommit::maybe_flush() {
  // Nothing to do while the waiters are all covered by finished flushes.
  if (in_flight_ || waiters_.empty() || waiters_.rbegin()->first <= flushed_upto()) return;
  uint64_t upto = next_seq_ - 1;
  std::vector<std::shared_ptr<SyncFile>> files;
  files.reserve(dirty_.size());
  for (auto& [k, f] : dirty_) files.push_back(std::move(f));
  dirty_.clear();
  in_flight_ = true;
  flusher_->submit(std::move(files), [this, upto](Status st) {
    post_([this, upto, st = std::move(st)]() mutable { flushed(upto, std::move(st)); });
  });
}

void GroupCommit::flushed(uint64_t upto, Status status) {
  in_flight_ = false;
  releases_.emplace_back(upto, std::move(status));
  if (!release_posted_) release();
  maybe_flush();
}

void GroupCommit::release() {
  size_t ran = 0;
  while (!releases_.empty()) {
    auto& [upto, status] = releases_.front();
    // Waiters added while these run (a released object committing again)
    // have later sequence numbers and wait for a later flush.
    while (!waiters_.empty() && waiters_.begin()->first <= upto) {
      if (ran++ == kReleaseBatch) {
        release_posted_ = true;
        post_([this] {
          release_posted_ = false;
          release();
        });
        return;
      }
      Waiter w = std::move(waiters_.begin()->second);
      waiters_.erase(waiters_.begin());
      w(status);
    }
    if (upto > durable_seq_) durable_seq_ = upto;
    releases_.pop_front();
  }
}

}  // namespace dobj::internal
