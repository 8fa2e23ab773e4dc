#include "storage/alarm_index.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>

#include "base/fs.h"
#include "base/log.h"
#include "base/thread_name.h"

namespace dobj::internal {

namespace {

// A journal record: [u32 payload length][u64 checksum of the payload][payload],
// little-endian as the machine writes it (the journal never leaves the node).
// Payload: kind, ns, id, has_name, name, at, retry.
constexpr uint8_t kUpsert = 1;  // the entry's new time; its retries start over
constexpr uint8_t kRetry = 2;   // the entry's retry count
constexpr size_t kFrameHeader = sizeof(uint32_t) + sizeof(uint64_t);

// FNV-1a: a torn write at the end of a journal must not pass for a record.
uint64_t checksum(std::string_view s) {
  uint64_t h = 1469598103934665603ull;
  for (unsigned char c : s) h = (h ^ c) * 1099511628211ull;
  return h;
}

template <typename T>
void put(std::string& out, T v) {
  out.append(reinterpret_cast<const char*>(&v), sizeof v);
}
void put_str(std::string& out, std::string_view s) {
  put(out, static_cast<uint32_t>(s.size()));
  out.append(s);
}

std::string frame(uint8_t kind, const std::string& ns, const std::string& id_hex,
                  const std::optional<std::string>& name, int64_t at, int retry) {
  std::string p;
  put(p, kind);
  put_str(p, ns);
  put_str(p, id_hex);
  put(p, static_cast<uint8_t>(name.has_value()));
  put_str(p, name.value_or(""));
  put(p, at);
  put(p, static_cast<int32_t>(retry));
  std::string out;
  out.reserve(kFrameHeader + p.size());
  put(out, static_cast<uint32_t>(p.size()));
  put(out, checksum(p));
  out += p;
  return out;
}

struct Reader {
  std::string_view in;
  bool ok = true;
  template <typename T>
  T get() {
    T v{};
    if (in.size() < sizeof v) {
      ok = false;
      return v;
    }
    std::memcpy(&v, in.data(), sizeof v);
    in.remove_prefix(sizeof v);
    return v;
  }
  std::string str() {
    auto n = get<uint32_t>();
    if (!ok || in.size() < n) {
      ok = false;
      return {};
    }
    std::string s(in.substr(0, n));
    in.remove_prefix(n);
    return s;
  }
};

Status write_error(const std::string& path, int err) {
  return Status(err == ENOSPC || err == EDQUOT ? Code::kStorageFull : Code::kInternal,
                "alarm journal " + path + ": " + std::strerror(err));
}

}  // namespace

AlarmIndex::~AlarmIndex() { stop(); }

std::string AlarmIndex::journal_name(uint64_t generation) const {
  return journal_prefix_ + std::to_string(generation);
}

std::string AlarmIndex::journal_path() const {
  std::lock_guard lock(journal_mu_);
  return journal_name(generation_);
}

Status AlarmIndex::open(const std::string& path, bool background) {
  std::scoped_lock lock(db_mu_, mu_);
  std::filesystem::path p(path);
  dir_ = p.parent_path().empty() ? "." : p.parent_path().string();
  journal_prefix_ = (p.parent_path() / p.stem()).string() + ".journal.";
  if (Status st = db_.open(path, /*create=*/true, /*shared=*/true); !st) return st;
  // synchronous=FULL: a fold is durable when it commits, before the journal
  // it folded is unlinked. Only the background thread commits here, so its
  // syncs (and SQLite's automatic checkpoints) hold no shard up.
  if (Status st = db_.exec(
          "PRAGMA busy_timeout=10000; PRAGMA synchronous=FULL; PRAGMA journal_mode=WAL;"
          "CREATE TABLE IF NOT EXISTS alarms(ns TEXT NOT NULL, id TEXT NOT NULL, name TEXT,"
          " at INTEGER NOT NULL, retry INTEGER NOT NULL DEFAULT 0, PRIMARY KEY(ns, id))"
          " WITHOUT ROWID");
      !st) {
    return st;
  }
  sqlite3_wal_autocheckpoint(db_.get(), kCheckpointFrames);
  // Files from before the retry count: add the column.
  bool has_retry;
  {
    auto s = db_.cached("SELECT count(*) FROM pragma_table_info('alarms') WHERE name = 'retry'");
    if (!s) return s.status();
    has_retry = (*s)->step() == SQLITE_ROW && (*s)->column_int(0) == 1;
  }  // the statement is reset here, before the schema changes
  if (!has_retry) {
    if (Status st = db_.exec("ALTER TABLE alarms ADD COLUMN retry INTEGER NOT NULL DEFAULT 0");
        !st) {
      return st;
    }
  }
  // Journals a crash left: oldest first, in one transaction, then gone.
  std::vector<std::pair<uint64_t, std::string>> left;
  std::error_code ec;
  std::string prefix = std::filesystem::path(journal_prefix_).filename().string();
  for (const auto& e : std::filesystem::directory_iterator(dir_, ec)) {
    std::string name = e.path().filename().string();
    if (name.rfind(prefix, 0) != 0) continue;
    std::string digits = name.substr(prefix.size());
    if (digits.empty() || digits.find_first_not_of("0123456789") != std::string::npos) continue;
    left.emplace_back(std::stoull(digits), e.path().string());
  }
  if (ec) return Status(Code::kInternal, "list " + dir_ + ": " + ec.message());
  std::sort(left.begin(), left.end());
  if (!left.empty()) {
    if (Status st = db_.exec("BEGIN"); !st) return st;
    for (const auto& [generation, file] : left) {
      if (Status st = apply_journal(file); !st) {
        (void)db_.exec("ROLLBACK");
        return st;
      }
    }
    if (Status st = db_.exec("COMMIT"); !st) return st;
    for (const auto& [generation, file] : left) ::unlink(file.c_str());
    if (Status st = sync_dir(dir_); !st) return st;
  }
  entries_.clear();
  removed_.clear();
  auto s = db_.cached("SELECT ns, id, at, retry FROM alarms");
  if (!s) return s.status();
  while ((*s)->step() == SQLITE_ROW) {
    int64_t at = (*s)->column_int(2);
    entries_[key(std::string((*s)->column_blob(0)), std::string((*s)->column_blob(1)))] =
        Entry{at, static_cast<int>((*s)->column_int(3)), at};
  }
  if (Status st = start_journal(left.empty() ? 1 : left.back().first + 1); !st) return st;
  stopping_ = false;
  if (background) {
    background_ = std::thread([this] {
      name_this_thread("dobj-alarms");
      run_background();
    });
  }
  return Status::ok();
}

Status AlarmIndex::start_journal(uint64_t generation) {
  std::string name = journal_name(generation);
  int fd = ::open(name.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_APPEND | O_CLOEXEC, 0644);
  if (fd < 0) return write_error(name, errno);
  auto file = SyncFile::open(name, /*is_dir=*/false);
  Status st = file ? sync_dir(dir_) : file.status();
  if (!st) {
    ::close(fd);
    ::unlink(name.c_str());
    return st;
  }
  int old;
  {
    std::lock_guard lock(journal_mu_);
    old = std::exchange(journal_fd_, fd);
    generation_ = generation;
    journal_bytes_ = 0;
    journal_file_ = *file;
  }
  if (old >= 0) ::close(old);
  return Status::ok();
}

Result<std::shared_ptr<SyncFile>> AlarmIndex::append(const std::string& record) {
  std::lock_guard lock(journal_mu_);
  if (journal_fd_ < 0) return Status(Code::kInternal, "alarm index is not open");
  size_t done = 0;
  while (done < record.size()) {
    ssize_t n = ::write(journal_fd_, record.data() + done, record.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      int err = n < 0 ? errno : ENOSPC;
      // A partial record would end the journal for the records after it.
      if (done > 0 && ::ftruncate(journal_fd_, static_cast<off_t>(journal_bytes_)) != 0) {
        log_warn("alarm journal: could not cut a partial record: " +
                 std::string(std::strerror(errno)));
      }
      return write_error(journal_name(generation_), err);
    }
    done += static_cast<size_t>(n);
  }
  journal_bytes_ += record.size();
  if (journal_bytes_ >= kFoldBytes) {
    fold_requested_.store(true, std::memory_order_relaxed);
    wake_.notify_one();
  }
  return journal_file_;
}

Status AlarmIndex::apply_journal(const std::string& path) {
  auto text = read_file(path);
  if (!text) return text.status().code() == Code::kNotFound ? Status::ok() : text.status();
  Reader frames{*text};
  for (;;) {
    auto len = frames.get<uint32_t>();
    auto sum = frames.get<uint64_t>();
    // The end, or a torn last record (never synced).
    if (!frames.ok || frames.in.size() < len) break;
    std::string_view payload = frames.in.substr(0, len);
    if (checksum(payload) != sum) break;
    frames.in.remove_prefix(len);
    Reader r{payload};
    auto kind = r.get<uint8_t>();
    std::string ns = r.str();
    std::string id = r.str();
    bool has_name = r.get<uint8_t>() != 0;
    std::string name = r.str();
    auto at = r.get<int64_t>();
    auto retry = r.get<int32_t>();
    if (!r.ok) break;
    if (kind != kUpsert && kind != kRetry) continue;
    const char* sql =
        kind == kUpsert
            ? "INSERT OR REPLACE INTO alarms(ns, id, name, at, retry) VALUES (?1, ?2, ?3, ?4, 0)"
            : "UPDATE alarms SET retry = ?5 WHERE ns = ?1 AND id = ?2";
    auto s = db_.cached(sql);
    if (!s) return s.status();
    StmtUse st = std::move(*s);
    st->bind_blob(1, ns);
    st->bind_blob(2, id);
    if (kind == kUpsert) {
      if (has_name) st->bind_blob(3, name);
      st->bind_int(4, at);
    } else {
      st->bind_int(5, retry);
    }
    if (st->step() != SQLITE_DONE) return db_.error(Code::kInternal, "alarm index");
  }
  return Status::ok();
}

Status AlarmIndex::fold() {
  std::lock_guard db(db_mu_);
  if (!db_.is_open()) return Status::ok();
  fold_requested_.store(false, std::memory_order_relaxed);
  // Entries removed before the switch to a new journal: the records that set
  // them are in the journals folded below, so their rows go after them.
  std::unordered_set<std::string> removed;
  {
    std::lock_guard lock(mu_);
    removed.swap(removed_);
  }
  uint64_t generation;
  size_t bytes;
  {
    std::lock_guard lock(journal_mu_);
    generation = generation_;
    bytes = journal_bytes_;
  }
  if (bytes > 0) {
    if (Status st = start_journal(generation + 1); st) {
      unfolded_.push_back(journal_name(generation));
    } else {
      log_warn("alarm index: " + st.message());
    }
  }
  if (unfolded_.empty() && removed.empty()) return Status::ok();
  Status st = db_.exec("BEGIN");
  for (size_t i = 0; st && i < unfolded_.size(); ++i) st = apply_journal(unfolded_[i]);
  for (auto it = removed.begin(); st && it != removed.end(); ++it) {
    {
      // Recorded again since it was removed: its row is the new one.
      std::lock_guard lock(mu_);
      if (entries_.count(*it) > 0) continue;
    }
    size_t zero = it->find('\0');
    auto s = db_.cached("DELETE FROM alarms WHERE ns = ?1 AND id = ?2");
    if (!s) {
      st = s.status();
      break;
    }
    (*s)->bind_blob(1, std::string_view(*it).substr(0, zero));
    (*s)->bind_blob(2, std::string_view(*it).substr(zero + 1));
    if ((*s)->step() != SQLITE_DONE) st = db_.error(Code::kInternal, "alarm index");
  }
  if (st) st = db_.exec("COMMIT");
  if (!st) {
    // Nothing lost: the journals stay (and are folded again next time, or
    // at the next open), the removals wait for the next fold.
    (void)db_.exec("ROLLBACK");
    std::lock_guard lock(mu_);
    for (auto& k : removed) {
      if (entries_.count(k) == 0) removed_.insert(k);
    }
    return st;
  }
  if (!unfolded_.empty()) {
    for (const std::string& f : unfolded_) ::unlink(f.c_str());
    unfolded_.clear();
    // A journal that came back after a power cut would only be folded again
    // (old times: its objects wake early and wait), but keep the folder exact.
    if (Status s = sync_dir(dir_); !s) log_warn("alarm index: " + s.message());
  }
  return Status::ok();
}

void AlarmIndex::stop() {
  {
    std::lock_guard lock(mu_);
    stopping_ = true;
  }
  wake_.notify_all();
  if (background_.joinable()) background_.join();
  if (Status st = fold(); !st) log_warn("alarm index: " + st.message());
  std::lock_guard db(db_mu_);
  std::lock_guard lock(journal_mu_);
  if (journal_fd_ >= 0) {
    ::close(std::exchange(journal_fd_, -1));
    // Empty: the fold above moved every record into the file.
    if (journal_bytes_ == 0 && unfolded_.empty()) ::unlink(journal_name(generation_).c_str());
  }
  journal_file_.reset();
  db_.close();
}

void AlarmIndex::run_background() {
  std::unique_lock lock(mu_);
  while (!stopping_) {
    wake_.wait_for(lock, kFoldInterval,
                   [&] { return stopping_ || fold_requested_.load(std::memory_order_relaxed); });
    if (stopping_) break;
    lock.unlock();
    if (Status st = fold(); !st) log_warn("alarm index: " + st.message());
    lock.lock();
  }
}

void AlarmIndex::set_retry(const std::string& ns, const std::string& id_hex, int retry) {
  std::string k = key(ns, id_hex);
  {
    std::lock_guard lock(mu_);
    auto it = entries_.find(k);
    if (it == entries_.end()) return;
    it->second.stored_retry = retry;
  }
  // Best effort: a lost count only restarts the retries after a restart.
  (void)append(frame(kRetry, ns, id_hex, std::nullopt, 0, retry));
}

Result<std::shared_ptr<SyncFile>> AlarmIndex::record(const AlarmRecord& r) {
  std::string k = key(r.ns, r.id_hex);
  std::optional<Entry> before;
  bool was_removed;
  {
    std::lock_guard lock(mu_);
    auto it = entries_.find(k);
    if (it != entries_.end() && it->second.stored_retry == 0 && it->second.stored_at <= r.at_ms) {
      it->second.at = r.at_ms;
      return std::shared_ptr<SyncFile>();
    }
    // The entry changes before its record is written: a fold that reads the
    // record meanwhile must find the entry and keep the row.
    if (it != entries_.end()) before = it->second;
    was_removed = removed_.erase(k) > 0;
    entries_[k] = Entry{r.at_ms, 0, r.at_ms};
  }
  auto file = append(frame(kUpsert, r.ns, r.id_hex, r.name, r.at_ms, 0));
  if (!file) {
    std::lock_guard lock(mu_);
    if (before) {
      entries_[k] = *before;
    } else {
      entries_.erase(k);
    }
    if (was_removed) removed_.insert(k);
  }
  return file;
}

void AlarmIndex::remove(const std::string& ns, const std::string& id_hex) {
  std::lock_guard lock(mu_);
  std::string k = key(ns, id_hex);
  if (entries_.erase(k) > 0) removed_.insert(std::move(k));
}

std::optional<int64_t> AlarmIndex::get(const std::string& ns, const std::string& id_hex) {
  std::lock_guard lock(mu_);
  auto it = entries_.find(key(ns, id_hex));
  if (it == entries_.end()) return std::nullopt;
  return it->second.at;
}

std::vector<AlarmRecord> AlarmIndex::all() {
  std::lock_guard db(db_mu_);
  std::vector<AlarmRecord> out;
  auto s = db_.cached("SELECT ns, id, name, at, retry FROM alarms");
  if (!s) return out;
  while ((*s)->step() == SQLITE_ROW) {
    AlarmRecord r;
    r.ns = std::string((*s)->column_blob(0));
    r.id_hex = std::string((*s)->column_blob(1));
    if (sqlite3_column_type((*s)->get(), 2) != SQLITE_NULL)
      r.name = std::string((*s)->column_blob(2));
    r.at_ms = (*s)->column_int(3);
    r.retry = static_cast<int>((*s)->column_int(4));
    out.push_back(std::move(r));
  }
  return out;
}

}  // namespace dobj::internal
