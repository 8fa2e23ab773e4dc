#include "storage/vfs.h"

#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <map>
#include <mutex>
#include <string>
#include <vector>

namespace dobj::internal {
namespace {

sqlite3_vfs g_vfs;
sqlite3_vfs* g_base = nullptr;

// A WAL file: our methods in front of the base VFS's file, which follows this
// struct in the same allocation (szOsFile covers both).
struct WalFile {
  sqlite3_file file;  // first: SQLite sees a sqlite3_file*
  sqlite3_file* real;
  bool combine;
  bool read_ahead;  // the next read from offset 0 may read the whole file
  sqlite3_int64 pending_offset;
  std::vector<char>* pending;  // bytes for [pending_offset, + size)
  std::vector<char>* ahead;    // the file's bytes from offset 0, while valid
  struct Capture {
    WalCommitSink sink;
    int page_size = 0;
    sqlite3_int64 header_offset = -1;  // a frame header waiting for its page
    WalFrame frame;
    // The frames of the transaction under way, by offset: a later write to
    // an offset replaces the frame there (a savepoint or transaction rolled
    // back rewinds SQLite's write position).
    std::map<sqlite3_int64, WalFrame> open;
    bool intact = true;
  };
  Capture* capture;  // null: frames are not captured
};
static_assert(sizeof(WalFile) % 8 == 0);

// Past this much held back, write it out at once (a large transaction). Also
// the most one write passes on: the unix VFS writes at most 128 KiB - 1 at a
// time (it masks the size to 17 bits).
constexpr size_t kMaxPending = 64 * 1024;

// A WAL up to this size is read in one go when its connection opens it
// (SQLite reads it back frame by frame to rebuild its index).
constexpr sqlite3_int64 kMaxAhead = 256 * 1024;

// Set around a connection's first read (read_wal_ahead): a WAL opened then
// may be read ahead.
thread_local bool t_read_ahead = false;

WalFile* wal(sqlite3_file* f) { return reinterpret_cast<WalFile*>(f); }

int flush(WalFile* w) {
  std::vector<char>& p = *w->pending;
  int rc = SQLITE_OK;
  for (size_t done = 0; done < p.size() && rc == SQLITE_OK;) {
    size_t n = std::min(p.size() - done, kMaxPending);
    rc = w->real->pMethods->xWrite(w->real, p.data() + done, static_cast<int>(n),
                                   w->pending_offset + static_cast<sqlite3_int64>(done));
    done += n;
  }
  p.clear();
  return rc;
}

void drop_ahead(WalFile* w) {
  w->read_ahead = false;
  delete w->ahead;
  w->ahead = nullptr;
}

int wal_close(sqlite3_file* f) {
  WalFile* w = wal(f);
  int rc = flush(w);
  int rc2 = w->real->pMethods->xClose(w->real);
  delete w->pending;
  w->pending = nullptr;
  delete w->capture;
  w->capture = nullptr;
  drop_ahead(w);
  return rc != SQLITE_OK ? rc : rc2;
}

int wal_read(sqlite3_file* f, void* buf, int n, sqlite3_int64 off) {
  WalFile* w = wal(f);
  if (int rc = flush(w); rc != SQLITE_OK) return rc;
  if (w->read_ahead && !w->ahead && off == 0) {
    sqlite3_int64 size = 0;
    if (w->real->pMethods->xFileSize(w->real, &size) == SQLITE_OK && size > 0 &&
        size <= kMaxAhead) {
      auto* bytes = new std::vector<char>(static_cast<size_t>(size));
      if (w->real->pMethods->xRead(w->real, bytes->data(), static_cast<int>(size), 0) ==
          SQLITE_OK) {
        w->ahead = bytes;
      } else {
        delete bytes;
      }
    }
    if (!w->ahead) w->read_ahead = false;
  }
  if (w->ahead && off >= 0 && off + n <= static_cast<sqlite3_int64>(w->ahead->size())) {
    std::memcpy(buf, w->ahead->data() + off, static_cast<size_t>(n));
    return SQLITE_OK;
  }
  return w->real->pMethods->xRead(w->real, buf, n, off);
}

// Follows SQLite's frame writes: a 24-byte header (page number, then the
// database size on a commit frame) and the page, as two writes or one; a page
// of the open transaction rewritten in place, and its header rewritten alone
// (new checksums). The 32-byte WAL header at offset 0 carries no page.
void capture(WalFile::Capture& c, const char* bytes, int n, sqlite3_int64 off) {
  if (!c.intact) return;
  const sqlite3_int64 frame_size = 24 + c.page_size;
  const bool frame_start = off >= 32 && (off - 32) % frame_size == 0;
  if (off == 0 && n == 32) return;
  if (frame_start && (n == 24 || n == frame_size)) {
    c.frame = WalFrame{wal_be32(bytes), wal_be32(bytes + 4), {}};
    if (n == 24) {
      c.header_offset = off;
      return;
    }
    c.frame.data.assign(bytes + 24, static_cast<size_t>(c.page_size));
  } else if (c.header_offset >= 0 && off == c.header_offset + 24 && n == c.page_size) {
    c.frame.data.assign(bytes, static_cast<size_t>(n));
    off = c.header_offset;
  } else if (auto it = c.open.find(off - 24); n == c.page_size && it != c.open.end()) {
    // A page written again in the same transaction, in place (its header
    // follows later, when SQLite rewrites the checksums).
    it->second.data.assign(bytes, static_cast<size_t>(n));
    return;
  } else {
    c.intact = false;
    c.open.clear();
    return;
  }
  c.header_offset = -1;
  bool commit = c.frame.commit_pages > 0;
  c.open[off] = std::move(c.frame);
  if (!commit) return;
  // The transaction is every frame up to this one; any past it are left from
  // a rolled-back one.
  std::vector<WalFrame> txn;
  for (auto& [at, frame] : c.open) {
    if (at > off) break;
    txn.push_back(std::move(frame));
  }
  c.open.clear();
  c.sink(std::move(txn));
}

int wal_write(sqlite3_file* f, const void* buf, int n, sqlite3_int64 off) {
  WalFile* w = wal(f);
  drop_ahead(w);
  if (w->capture) capture(*w->capture, static_cast<const char*>(buf), n, off);
  if (!w->combine) return w->real->pMethods->xWrite(w->real, buf, n, off);
  std::vector<char>& p = *w->pending;
  if (!p.empty() && off != w->pending_offset + static_cast<sqlite3_int64>(p.size())) {
    if (int rc = flush(w); rc != SQLITE_OK) return rc;
  }
  if (p.empty()) w->pending_offset = off;
  const char* bytes = static_cast<const char*>(buf);
  p.insert(p.end(), bytes, bytes + n);
  return p.size() >= kMaxPending ? flush(w) : SQLITE_OK;
}

// The rest flush first where the file's contents or size matter, and pass on.
int wal_truncate(sqlite3_file* f, sqlite3_int64 size) {
  WalFile* w = wal(f);
  drop_ahead(w);
  if (int rc = flush(w); rc != SQLITE_OK) return rc;
  return w->real->pMethods->xTruncate(w->real, size);
}
int wal_sync(sqlite3_file* f, int flags) {
  WalFile* w = wal(f);
  if (int rc = flush(w); rc != SQLITE_OK) return rc;
  return w->real->pMethods->xSync(w->real, flags);
}
int wal_file_size(sqlite3_file* f, sqlite3_int64* size) {
  WalFile* w = wal(f);
  if (int rc = flush(w); rc != SQLITE_OK) return rc;
  return w->real->pMethods->xFileSize(w->real, size);
}
int wal_lock(sqlite3_file* f, int level) {
  return wal(f)->real->pMethods->xLock(wal(f)->real, level);
}
int wal_unlock(sqlite3_file* f, int level) {
  return wal(f)->real->pMethods->xUnlock(wal(f)->real, level);
}
int wal_check_reserved_lock(sqlite3_file* f, int* out) {
  return wal(f)->real->pMethods->xCheckReservedLock(wal(f)->real, out);
}
int wal_file_control(sqlite3_file* f, int op, void* arg) {
  WalFile* w = wal(f);
  if (int rc = flush(w); rc != SQLITE_OK) return rc;
  return w->real->pMethods->xFileControl(w->real, op, arg);
}
int wal_sector_size(sqlite3_file* f) { return wal(f)->real->pMethods->xSectorSize(wal(f)->real); }
int wal_device_characteristics(sqlite3_file* f) {
  return wal(f)->real->pMethods->xDeviceCharacteristics(wal(f)->real);
}
int wal_shm_map(sqlite3_file* f, int region, int size, int extend, void volatile** out) {
  return wal(f)->real->pMethods->xShmMap(wal(f)->real, region, size, extend, out);
}
int wal_shm_lock(sqlite3_file* f, int offset, int n, int flags) {
  return wal(f)->real->pMethods->xShmLock(wal(f)->real, offset, n, flags);
}
void wal_shm_barrier(sqlite3_file* f) { wal(f)->real->pMethods->xShmBarrier(wal(f)->real); }
int wal_shm_unmap(sqlite3_file* f, int del) {
  return wal(f)->real->pMethods->xShmUnmap(wal(f)->real, del);
}
int wal_fetch(sqlite3_file* f, sqlite3_int64 off, int n, void** out) {
  WalFile* w = wal(f);
  if (int rc = flush(w); rc != SQLITE_OK) return rc;
  return w->real->pMethods->xFetch(w->real, off, n, out);
}
int wal_unfetch(sqlite3_file* f, sqlite3_int64 off, void* p) {
  return wal(f)->real->pMethods->xUnfetch(wal(f)->real, off, p);
}

// Version 3 methods; set up only for base files that have version 3 too.
const sqlite3_io_methods kWalMethods = {
    3,
    wal_close,
    wal_read,
    wal_write,
    wal_truncate,
    wal_sync,
    wal_file_size,
    wal_lock,
    wal_unlock,
    wal_check_reserved_lock,
    wal_file_control,
    wal_sector_size,
    wal_device_characteristics,
    wal_shm_map,
    wal_shm_lock,
    wal_shm_barrier,
    wal_shm_unmap,
    wal_fetch,
    wal_unfetch,
};

int vfs_open(sqlite3_vfs*, sqlite3_filename name, sqlite3_file* file, int flags, int* out_flags) {
  if (!(flags & SQLITE_OPEN_WAL)) return g_base->xOpen(g_base, name, file, flags, out_flags);
  WalFile* w = wal(file);
  sqlite3_file* real = reinterpret_cast<sqlite3_file*>(w + 1);
  w->file.pMethods = nullptr;  // SQLite closes only files whose open succeeded
  int rc = g_base->xOpen(g_base, name, real, flags, out_flags);
  if (rc != SQLITE_OK) return rc;
  if (!real->pMethods || real->pMethods->iVersion < 3) {
    // Not the unix VFS we know: close it and refuse, rather than guess.
    if (real->pMethods) real->pMethods->xClose(real);
    return SQLITE_CANTOPEN;
  }
  w->real = real;
  w->combine = false;
  w->read_ahead = t_read_ahead;
  w->pending_offset = 0;
  w->pending = new std::vector<char>();
  w->ahead = nullptr;
  w->capture = nullptr;
  w->file.pMethods = &kWalMethods;
  return SQLITE_OK;
}

int full_pathname(sqlite3_vfs*, const char* path, int n_out, char* out) {
  if (path[0] != '/') return g_base->xFullPathname(g_base, path, n_out, out);
  size_t len = std::strlen(path);
  if (len + 1 > static_cast<size_t>(n_out)) return SQLITE_CANTOPEN;
  std::memcpy(out, path, len + 1);
  return SQLITE_OK;
}

// The connection's WAL, if it is open and ours.
WalFile* wal_of(sqlite3* db) {
  sqlite3_file* f = nullptr;
  if (sqlite3_file_control(db, "main", SQLITE_FCNTL_JOURNAL_POINTER, &f) != SQLITE_OK || !f ||
      f->pMethods != &kWalMethods) {
    return nullptr;
  }
  return wal(f);
}

}  // namespace

void register_dobj_vfs() {
  // Once: registering the same VFS again would relink it into SQLite's list.
  static std::once_flag once;
  std::call_once(once, [] {
    g_base = sqlite3_vfs_find("unix-none");
    if (!g_base) return;  // opens through kDobjVfs then fail with "no such vfs"
    g_vfs = *g_base;
    g_vfs.zName = kDobjVfs;
    g_vfs.pNext = nullptr;
    g_vfs.szOsFile = static_cast<int>(sizeof(WalFile)) + g_base->szOsFile;
    g_vfs.xOpen = vfs_open;
    g_vfs.xFullPathname = full_pathname;
    sqlite3_vfs_register(&g_vfs, /*makeDflt=*/0);
  });
}

void combine_wal_writes(sqlite3* db) {
  if (WalFile* w = wal_of(db)) w->combine = true;
}

Status read_wal_ahead(sqlite3* db, const char* statements) {
  t_read_ahead = true;
  int rc = sqlite3_exec(db, statements, nullptr, nullptr, nullptr);
  // If those did not open the WAL, a read now: it opens the WAL and rebuilds
  // its index.
  if (rc == SQLITE_OK && !wal_of(db)) {
    rc = sqlite3_exec(db, "PRAGMA schema_version", nullptr, nullptr, nullptr);
  }
  t_read_ahead = false;
  if (WalFile* w = wal_of(db)) drop_ahead(w);
  if (rc == SQLITE_OK) return Status::ok();
  return Status(Code::kInternal, std::string("reading the database: ") + sqlite3_errmsg(db));
}

bool capture_wal_frames(sqlite3* db, int page_size, WalCommitSink sink) {
  WalFile* w = wal_of(db);
  if (!w) return false;
  delete w->capture;
  w->capture = nullptr;
  if (sink) {
    w->capture = new WalFile::Capture();
    w->capture->sink = std::move(sink);
    w->capture->page_size = page_size;
  }
  return true;
}

bool wal_capture_intact(sqlite3* db) {
  WalFile* w = wal_of(db);
  return w && w->capture && w->capture->intact;
}

Status apply_wal_frames(int fd, int page_size, const WalFrame* frames, size_t count) {
  for (size_t i = 0; i < count; ++i) {
    const WalFrame& f = frames[i];
    if (f.page == 0 || f.data.size() != static_cast<size_t>(page_size)) {
      return Status(Code::kInvalidArgument, "a frame of the wrong size or page 0");
    }
    off_t at = static_cast<off_t>(f.page - 1) * page_size;
    for (size_t done = 0; done < f.data.size();) {
      ssize_t w = ::pwrite(fd, f.data.data() + done, f.data.size() - done, at + static_cast<off_t>(done));
      if (w < 0 && errno == EINTR) continue;
      if (w <= 0) {
        return Status(errno == ENOSPC ? Code::kStorageFull : Code::kInternal,
                      std::string("writing a replica page: ") + std::strerror(errno));
      }
      done += static_cast<size_t>(w);
    }
    if (f.commit_pages > 0 && ::ftruncate(fd, static_cast<off_t>(f.commit_pages) * page_size) != 0) {
      return Status(Code::kInternal, std::string("cutting a replica: ") + std::strerror(errno));
    }
  }
  return Status::ok();
}

Status flush_wal_writes(sqlite3* db) {
  WalFile* w = wal_of(db);
  if (!w) return Status::ok();
  int rc = flush(w);
  if (rc == SQLITE_OK) return Status::ok();
  return Status((rc & 0xff) == SQLITE_FULL ? Code::kStorageFull : Code::kInternal,
                std::string("WAL write failed: ") + sqlite3_errstr(rc));
}

}  // namespace dobj::internal
