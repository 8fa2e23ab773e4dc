#include "storage/catalog.h"

#include <sys/stat.h>

#include <algorithm>
#include <chrono>
#include <filesystem>

#include "base/clock.h"
#include "base/hex.h"
#include "base/log.h"
#include "base/thread_name.h"

namespace dobj::internal {

namespace {

// Bytes on disk of a database and its WAL; nullopt if the database is gone.
std::optional<int64_t> file_bytes(const std::string& path, int64_t* mtime_ms = nullptr) {
  struct stat st;
  if (::stat(path.c_str(), &st) != 0) return std::nullopt;
  int64_t bytes = st.st_size;
  if (mtime_ms) *mtime_ms = int64_t{st.st_mtim.tv_sec} * 1000 + st.st_mtim.tv_nsec / 1'000'000;
  struct stat wal;
  if (::stat((path + "-wal").c_str(), &wal) == 0) bytes += wal.st_size;
  return bytes;
}

// Whether a measured size is far enough from the catalogued one to be
// written: a busy object's WAL grows a page with each commit, and each write
// of a row's size rewrites its index entry. A catalogued size is at most one
// filesystem block or 1/16 away from the files' (objects' and namespaces'
// totals alike).
bool bytes_moved(int64_t catalogued, int64_t measured) {
  int64_t apart = measured > catalogued ? measured - catalogued : catalogued - measured;
  return apart >= std::max<int64_t>(Catalog::kBytesResolution, catalogued / 16);
}

// The smallest string greater than every string that starts with p, or
// nullopt when there is none (p is all 0xff bytes).
std::optional<std::string> prefix_end(std::string p) {
  while (!p.empty()) {
    if (static_cast<unsigned char>(p.back()) != 0xff) {
      p.back() = static_cast<char>(static_cast<unsigned char>(p.back()) + 1);
      return p;
    }
    p.pop_back();
  }
  return std::nullopt;
}

// A cursor is the last row's sort value, namespace and ID, each hex-encoded
// and joined by '.', so that any byte of a name survives the trip.
std::string make_cursor(const std::string& value, const CatalogEntry& e) {
  return to_hex(value) + "." + to_hex(e.ns) + "." + to_hex(e.id);
}

bool parse_cursor(const std::string& c, std::string* value, std::string* ns, std::string* id) {
  size_t a = c.find('.');
  size_t b = a == std::string::npos ? a : c.find('.', a + 1);
  if (b == std::string::npos) return false;
  auto v = from_hex_lower(c.substr(0, a));
  auto n = from_hex_lower(c.substr(a + 1, b - a - 1));
  auto i = from_hex_lower(c.substr(b + 1));
  if (!v || !n || !i) return false;
  value->assign(v->begin(), v->end());
  ns->assign(n->begin(), n->end());
  id->assign(i->begin(), i->end());
  return true;
}

// Inserts an object's row unless it has one; true if it was new.
Result<bool> insert_object(Db& db, const std::string& ns, const std::string& id,
                           const std::optional<std::string>& name, int64_t bytes,
                           int64_t created_ms) {
  auto s = db.cached(
      "INSERT INTO objects(ns, id, name, bytes, created, active) VALUES (?1, ?2, ?3, ?4, ?5, ?5)"
      " ON CONFLICT(ns, id) DO NOTHING");
  if (!s) return s.status();
  StmtUse st = std::move(*s);
  st->bind_blob(1, ns);
  st->bind_blob(2, id);
  if (name) st->bind_blob(3, *name);
  st->bind_int(4, bytes);
  st->bind_int(5, created_ms);
  if (st->step() != SQLITE_DONE) return db.error(Code::kInternal, "catalog insert");
  return sqlite3_changes(db.get()) > 0;
}

}  // namespace

Catalog::~Catalog() { stop(); }

Status Catalog::open_connection(Db& db) {
  if (Status st = db.open(path_, /*create=*/true, /*shared=*/true); !st) return st;
  // synchronous=NORMAL: commits do not sync (a crash is repaired from the
  // objects' folders; imports sync themselves), checkpoints do (on the
  // catalog's thread).
  if (Status st = db.exec("PRAGMA busy_timeout=10000; PRAGMA synchronous=NORMAL;"
                          "PRAGMA wal_autocheckpoint=0;");
      !st) {
    return st;
  }
  sqlite3_wal_hook(
      db.get(),
      [](void* self, sqlite3*, const char*, int frames) {
        static_cast<Catalog*>(self)->wal_frames_.store(frames, std::memory_order_relaxed);
        return SQLITE_OK;
      },
      this);
  return Status::ok();
}

Status Catalog::open(const std::string& path, const std::map<std::string, std::string>& scan_dirs) {
  path_ = path;
  bool existed = std::filesystem::exists(path);
  if (Status st = open_connection(bg_db_); !st) return st;
  Status st = bg_db_.exec(
      "PRAGMA journal_mode=WAL;"
      "CREATE TABLE IF NOT EXISTS objects(ns BLOB NOT NULL, id BLOB NOT NULL, name BLOB,"
      " bytes INTEGER NOT NULL DEFAULT 0, created INTEGER NOT NULL, active INTEGER NOT NULL,"
      " PRIMARY KEY(ns, id)) WITHOUT ROWID;"
      "CREATE INDEX IF NOT EXISTS objects_by_name ON objects(ns, name) WHERE name IS NOT NULL;"
      "CREATE INDEX IF NOT EXISTS objects_by_bytes ON objects(ns, bytes);"
      "CREATE INDEX IF NOT EXISTS objects_by_active ON objects(ns, active);"
      "CREATE TABLE IF NOT EXISTS meta(key TEXT PRIMARY KEY, value TEXT);");
  if (!st) return st;
  bool clean = false;
  if (existed) {
    auto m = bg_db_.cached("SELECT value FROM meta WHERE key = 'clean'");
    if (!m) return m.status();
    clean = (*m)->step() == SQLITE_ROW && (*m)->column_blob(0) == "1";
  }
  if (!clean) {
    // A crash (or no catalog yet): creations still queued then are found
    // again in the objects' folders.
    if (Status s = scan(scan_dirs); !s) return s;
  }
  if (Status s = set_clean(false); !s) return s;
  if (Status s = open_connection(write_db_); !s) return s;
  if (Status s = open_connection(read_db_); !s) return s;
  auto s = bg_db_.cached("SELECT ns, count(*), sum(bytes) FROM objects GROUP BY ns");
  if (!s) return s.status();
  std::lock_guard q(queue_mu_);
  while ((*s)->step() == SQLITE_ROW) {
    totals_[std::string((*s)->column_blob(0))] = {(*s)->column_int(1), (*s)->column_int(2)};
  }
  return Status::ok();
}

Status Catalog::scan(const std::map<std::string, std::string>& dirs) {
  namespace fs = std::filesystem;
  if (Status st = bg_db_.exec("BEGIN"); !st) return st;
  int found = 0, added = 0;
  for (const auto& [ns, dir] : dirs) {
    std::error_code ec;
    for (fs::recursive_directory_iterator it(dir, ec), end; !ec && it != end; it.increment(ec)) {
      const fs::path& p = it->path();
      if (p.extension() != ".sqlite" || !it->is_regular_file()) continue;
      int64_t mtime = 0;
      auto bytes = file_bytes(p.string(), &mtime);
      if (!bytes) continue;
      ++found;
      auto inserted = insert_object(bg_db_, ns, p.stem().string(), std::nullopt, *bytes, mtime);
      if (!inserted) return inserted.status();
      if (*inserted) ++added;
    }
  }
  if (found > 0) {
    log_info("catalog: checked " + std::to_string(found) +
             " databases (no clean stop recorded); " + std::to_string(added) + " were not listed");
  }
  return bg_db_.exec("COMMIT");
}

void Catalog::start() {
  thread_ = std::thread([this] {
    name_this_thread("dobj-catalog");
    run();
  });
}

void Catalog::stop() {
  {
    std::lock_guard lock(queue_mu_);
    if (stopping_) return;
    stopping_ = true;
  }
  wake_.notify_all();
  if (thread_.joinable()) thread_.join();
  if (!bg_db_.is_open()) return;
  std::vector<CatalogTouch> rest = std::move(queue_);
  apply(rest);
  if (Status st = set_clean(true); !st) log_warn("catalog: " + st.message());
}

Status Catalog::set_clean(bool clean) {
  std::string sql = std::string("INSERT OR REPLACE INTO meta(key, value) VALUES ('clean', '") +
                    (clean ? "1" : "0") + "')";
  if (Status st = bg_db_.exec(sql.c_str()); !st) return st;
  // The mark must be on disk before the server goes on (or ends): a full
  // checkpoint syncs the WAL and the database file.
  int rc = sqlite3_wal_checkpoint_v2(bg_db_.get(), nullptr, SQLITE_CHECKPOINT_FULL, nullptr, nullptr);
  if (rc != SQLITE_OK && rc != SQLITE_BUSY) return bg_db_.error(Code::kInternal, "catalog mark");
  return Status::ok();
}

Status Catalog::record_created(const CatalogEntry& e) {
  std::lock_guard lock(write_mu_);
  auto added =
      insert_object(write_db_, e.ns, e.id, e.name, 0, e.created_ms ? e.created_ms : system_now_ms());
  if (!added) return added.status();
  if (*added) {
    std::lock_guard q(queue_mu_);
    ++totals_[e.ns].objects;
  }
  auto wal = SyncFile::open(path_ + "-wal", /*is_dir=*/false);
  if (!wal) return wal.status();
  return (*wal)->sync();
}

void Catalog::created(CatalogTouch t) {
  t.created = true;
  if (t.active_ms == 0) t.active_ms = system_now_ms();
  std::lock_guard lock(queue_mu_);
  queue_.push_back(std::move(t));
  if (!created_pending_) {
    created_pending_ = true;
    wake_.notify_one();
  }
}

void Catalog::touch(std::vector<CatalogTouch> batch) {
  if (batch.empty()) return;
  std::lock_guard lock(queue_mu_);
  if (queue_.empty()) {
    queue_ = std::move(batch);
  } else {
    queue_.insert(queue_.end(), std::make_move_iterator(batch.begin()),
                  std::make_move_iterator(batch.end()));
  }
}

void Catalog::remove(const std::string& ns, const std::string& id) {
  std::lock_guard lock(write_mu_);
  int64_t bytes = 0;
  bool found = false;
  if (auto s = write_db_.cached("SELECT bytes FROM objects WHERE ns = ?1 AND id = ?2")) {
    (*s)->bind_blob(1, ns);
    (*s)->bind_blob(2, id);
    if ((*s)->step() == SQLITE_ROW) {
      bytes = (*s)->column_int(0);
      found = true;
    }
  }
  if (!found) return;
  if (auto s = write_db_.cached("DELETE FROM objects WHERE ns = ?1 AND id = ?2")) {
    (*s)->bind_blob(1, ns);
    (*s)->bind_blob(2, id);
    (*s)->step();
  }
  std::lock_guard q(queue_mu_);
  auto& t = totals_[ns];
  --t.objects;
  t.bytes -= bytes;
}

void Catalog::run() {
  using Clock = std::chrono::steady_clock;
  std::unique_lock lock(queue_mu_);
  // The next round starts no sooner than this: the thread rests nine times
  // as long as its last round worked, so that under a stream of new and
  // busy objects it takes at most a tenth of a core, and its rounds (and
  // transactions) grow instead: one write of a page covers more rows.
  Clock::time_point rested = Clock::now();
  while (true) {
    wake_.wait_for(lock, std::chrono::milliseconds(kPeriodMs),
                   [&] { return stopping_ || created_pending_; });
    if (created_pending_ && !stopping_) {
      // New objects show in the list soon; creations that come meanwhile
      // share the round.
      wake_.wait_until(lock, std::max(rested, Clock::now() + std::chrono::milliseconds(kCreatedDelayMs)),
                       [&] { return stopping_; });
    }
    created_pending_ = false;
    std::vector<CatalogTouch> batch = std::move(queue_);
    queue_.clear();
    bool stop = stopping_;
    lock.unlock();
    Clock::time_point began = Clock::now();
    apply(batch);
    Clock::time_point ended = Clock::now();
    rested = ended + std::min<Clock::duration>(9 * (ended - began), std::chrono::milliseconds(kPeriodMs));
    lock.lock();
    if (stop) return;
  }
}

bool Catalog::apply_row(const CatalogTouch& t, std::optional<int64_t> bytes, Tally& tally) {
  if (!bytes) return true;  // no file: nothing stored, or deleted meanwhile
  if (t.created) {
    // A new row carries its size at once (no read back and update).
    auto inserted = insert_object(bg_db_, t.ns, t.id, t.name, *bytes, t.active_ms);
    if (inserted && *inserted) {
      ++tally.new_objects[t.ns];
      tally.bytes[t.ns] += *bytes;
      return true;
    }
  }
  auto sel = bg_db_.cached("SELECT bytes, active, name IS NULL FROM objects WHERE ns = ?1 AND id = ?2");
  if (!sel) return false;
  (*sel)->bind_blob(1, t.ns);
  (*sel)->bind_blob(2, t.id);
  if ((*sel)->step() != SQLITE_ROW) return true;  // not (or no longer) catalogued
  int64_t old = (*sel)->column_int(0);
  int64_t old_active = (*sel)->column_int(1);
  bool set_name = (*sel)->column_int(2) == 1 && t.name;
  bool set_bytes = bytes_moved(old, *bytes);
  bool set_active = t.active_ms - old_active >= kActiveResolutionMs;
  if (!set_bytes && !set_active && !set_name) return true;
  // Only what moved: each column set rewrites its index's entry.
  std::string sql = "UPDATE objects SET ";
  if (set_bytes) sql += "bytes = ?3, ";
  if (set_active) sql += "active = max(active, ?4), ";
  if (set_name) sql += "name = ?5, ";
  sql.resize(sql.size() - 2);
  sql += " WHERE ns = ?1 AND id = ?2";
  auto up = bg_db_.cached(sql);
  if (!up) return false;
  (*up)->bind_blob(1, t.ns);
  (*up)->bind_blob(2, t.id);
  if (set_bytes) (*up)->bind_int(3, *bytes);
  if (set_active) (*up)->bind_int(4, t.active_ms);
  if (set_name) (*up)->bind_blob(5, *t.name);
  (*up)->step();
  if (set_bytes) tally.bytes[t.ns] += *bytes - old;
  return true;
}

void Catalog::apply(std::vector<CatalogTouch>& batch) {
  // In key order, so that the rows of a transaction share the table's pages.
  std::stable_sort(batch.begin(), batch.end(), [](const CatalogTouch& a, const CatalogTouch& b) {
    return std::tie(a.ns, a.id) < std::tie(b.ns, b.id);
  });
  // Measure the files first, outside the lock: stat() is the slow part.
  std::vector<std::optional<int64_t>> sizes(batch.size());
  for (size_t i = 0; i < batch.size(); ++i) sizes[i] = file_bytes(batch[i].path);
  size_t i = 0;
  while (i < batch.size()) {
    Tally tally;
    {
      // Writers take write_mu_ rather than meet in SQLite's lock, whose busy
      // handler would put a shard thread to sleep for milliseconds. One
      // transaction holds it for about kChunkMs.
      std::lock_guard writers(write_mu_);
      if (Status st = bg_db_.exec("BEGIN"); !st) {
        log_warn("catalog update failed: " + st.message());
        return;
      }
      auto until = std::chrono::steady_clock::now() + std::chrono::milliseconds(kChunkMs);
      bool ok = true;
      for (size_t n = 0; ok && i < batch.size(); ++i, ++n) {
        if (n % 16 == 15 && std::chrono::steady_clock::now() >= until) break;
        ok = apply_row(batch[i], sizes[i], tally);
      }
      if (Status st = ok ? bg_db_.exec("COMMIT") : Status(Code::kInternal, "a statement failed"); !st) {
        log_warn("catalog update failed: " + st.message());
        (void)bg_db_.exec("ROLLBACK");
        return;
      }
    }
    std::lock_guard q(queue_mu_);
    for (const auto& [ns, d] : tally.bytes) totals_[ns].bytes += d;
    for (const auto& [ns, n] : tally.new_objects) totals_[ns].objects += n;
  }
  if (wal_frames_.load(std::memory_order_relaxed) >= 1000) {
    // synchronous=NORMAL: SQLite syncs the WAL before and the file after. A
    // PASSIVE checkpoint waits for no reader or writer.
    int rc = sqlite3_wal_checkpoint_v2(bg_db_.get(), nullptr, SQLITE_CHECKPOINT_PASSIVE, nullptr,
                                       nullptr);
    if (rc != SQLITE_OK) log_warn(bg_db_.error(Code::kInternal, "catalog checkpoint").message());
    wal_frames_.store(0, std::memory_order_relaxed);
  }
}

std::map<std::string, CatalogTotals> Catalog::totals() {
  std::lock_guard q(queue_mu_);
  return totals_;
}

namespace {

CatalogEntry read_entry(Stmt& s) {
  CatalogEntry e;
  e.ns = std::string(s.column_blob(0));
  e.id = std::string(s.column_blob(1));
  if (sqlite3_column_type(s.get(), 2) != SQLITE_NULL) e.name = std::string(s.column_blob(2));
  e.bytes = s.column_int(3);
  e.created_ms = s.column_int(4);
  e.active_ms = s.column_int(5);
  return e;
}

}  // namespace

std::optional<CatalogEntry> Catalog::get(const std::string& ns, const std::string& id) {
  std::lock_guard lock(read_mu_);
  auto s = read_db_.cached(
      "SELECT ns, id, name, bytes, created, active FROM objects WHERE ns = ?1 AND id = ?2");
  if (!s) return std::nullopt;
  (*s)->bind_blob(1, ns);
  (*s)->bind_blob(2, id);
  if ((*s)->step() != SQLITE_ROW) return std::nullopt;
  return read_entry(*s->get());
}

Result<CatalogPage> Catalog::list(const CatalogQuery& q) {
  using Sort = CatalogQuery::Sort;
  std::string value, cns, cid;
  bool has_cursor = !q.cursor.empty();
  if (has_cursor && !parse_cursor(q.cursor, &value, &cns, &cid)) {
    return Status(Code::kInvalidArgument, "bad cursor: pass nextCursor from the previous page");
  }
  std::string sql = "SELECT ns, id, name, bytes, created, active FROM objects WHERE 1";
  if (q.ns) sql += " AND ns = ?1";
  std::optional<std::string> hi;
  if (q.name_prefix) {
    sql += " AND name >= ?2";
    hi = prefix_end(*q.name_prefix);
    if (hi) sql += " AND name < ?3";
  }
  if (q.sort == Sort::kName) sql += " AND name IS NOT NULL";
  if (q.min_bytes) sql += " AND bytes >= ?4";
  if (q.active_after_ms) sql += " AND active >= ?5";
  if (q.active_before_ms) sql += " AND active < ?6";
  // Keyset paging: each page starts right after the previous page's last
  // row, found through an index, so every page costs the same. With the
  // namespace fixed, the comparison leaves it out (SQLite then uses the
  // index range; with it, only the namespace prefix).
  const bool one_ns = q.ns.has_value();
  switch (q.sort) {
    case Sort::kId:
      if (has_cursor) sql += one_ns ? " AND id > ?9" : " AND (ns, id) > (?8, ?9)";
      sql += " ORDER BY ns, id";
      break;
    case Sort::kName:
      if (has_cursor) sql += one_ns ? " AND (name, id) > (?7, ?9)" : " AND (name, ns, id) > (?7, ?8, ?9)";
      sql += " ORDER BY name, ns, id";
      break;
    case Sort::kBytes:
      if (has_cursor) sql += one_ns ? " AND (bytes, id) < (?7, ?9)" : " AND (bytes, ns, id) < (?7, ?8, ?9)";
      sql += " ORDER BY bytes DESC, ns DESC, id DESC";
      break;
    case Sort::kActive:
      if (has_cursor) sql += one_ns ? " AND (active, id) < (?7, ?9)" : " AND (active, ns, id) < (?7, ?8, ?9)";
      sql += " ORDER BY active DESC, ns DESC, id DESC";
      break;
  }
  sql += " LIMIT ?10";
  int limit = std::clamp(q.limit, 1, 1000);

  std::lock_guard lock(read_mu_);
  auto s = read_db_.cached(sql);
  if (!s) return s.status();
  StmtUse st = std::move(*s);
  if (q.ns) st->bind_blob(1, *q.ns);
  if (q.name_prefix) st->bind_blob(2, *q.name_prefix);
  if (hi) st->bind_blob(3, *hi);
  if (q.min_bytes) st->bind_int(4, *q.min_bytes);
  if (q.active_after_ms) st->bind_int(5, *q.active_after_ms);
  if (q.active_before_ms) st->bind_int(6, *q.active_before_ms);
  if (has_cursor) {
    if (q.sort == Sort::kBytes || q.sort == Sort::kActive) {
      st->bind_int(7, std::strtoll(value.c_str(), nullptr, 10));
    } else {
      st->bind_blob(7, value);
    }
    st->bind_blob(8, cns);
    st->bind_blob(9, cid);
  }
  st->bind_int(10, limit + 1);
  CatalogPage page;
  while (st->step() == SQLITE_ROW) page.entries.push_back(read_entry(*st.get()));
  if (static_cast<int>(page.entries.size()) > limit) {
    page.entries.resize(limit);
    page.next_cursor = catalog_cursor_after(q.sort, page.entries.back());
  }
  return page;
}

std::optional<CatalogEntry> catalog_cursor_position(CatalogQuery::Sort sort, const std::string& cursor) {
  std::string value;
  CatalogEntry e;
  if (!parse_cursor(cursor, &value, &e.ns, &e.id)) return std::nullopt;
  using Sort = CatalogQuery::Sort;
  try {
    switch (sort) {
      case Sort::kId: break;
      case Sort::kName: e.name = value; break;
      case Sort::kBytes: e.bytes = std::stoll(value); break;
      case Sort::kActive: e.active_ms = std::stoll(value); break;
    }
  } catch (...) {
    return std::nullopt;
  }
  return e;
}

std::string catalog_cursor_after(CatalogQuery::Sort sort, const CatalogEntry& last) {
  using Sort = CatalogQuery::Sort;
  switch (sort) {
    case Sort::kId: return make_cursor("", last);
    case Sort::kName: return make_cursor(last.name.value_or(""), last);
    case Sort::kBytes: return make_cursor(std::to_string(last.bytes), last);
    case Sort::kActive: return make_cursor(std::to_string(last.active_ms), last);
  }
  return {};
}

}  // namespace dobj::internal
