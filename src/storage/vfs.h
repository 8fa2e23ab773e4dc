// The "dobj" SQLite VFS: SQLite's "unix-none" with two changes, for files that
// have exactly one connection (exclusive locking mode; the server locks its
// data folder, so no POSIX advisory locks are needed):
//
// - An absolute path is taken as it is. SQLite would lstat every folder on
//   the way to resolve symbolic links: six system calls for an object's file,
//   on every reopen. Our paths are composed by the runtime and one file has
//   one connection, so the resolved name would not change what is locked.
// - Writes to a WAL can be combined: SQLite writes each frame as two writes
//   (24-byte header, then the page), so a commit of two pages is four
//   pwrites. With combining on, contiguous writes collect in memory and reach
//   the file as one pwrite when the commit ends (flush_wal_writes), or before
//   anything that could see the file: a read, a write elsewhere, a size,
//   truncate, sync or close. The file sees the same bytes in the same order.
// - When a connection opens its WAL, the WAL can be read in one go
//   (read_wal_ahead) and SQLite's frame-by-frame reads served from memory.
//
// Thread affinity: as the connection's.
#pragma once

#include <sqlite3.h>

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "dobj/status.h"

namespace dobj::internal {

inline constexpr const char* kDobjVfs = "dobj";

// Registers the VFS (the first call; later ones do nothing). Before the
// first open through it.
void register_dobj_vfs();

// Runs `statements` (the connection's set-up pragmas) and then a read, which
// opens the WAL and reads it all back to rebuild the WAL index: a WAL of up
// to 256 KiB is read with one pread instead of one or two per frame. Call
// once, right after the open.
Status read_wal_ahead(sqlite3* db, const char* statements);

// Turns on write combining for the connection's WAL (a no-op if the WAL is
// not open, or not through this VFS). The owner must then call
// flush_wal_writes after every statement that commits.
void combine_wal_writes(sqlite3* db);

// Replication's unit: the pages of each committed transaction, as SQLite
// writes them to the WAL. `commit_pages` is the database's size in pages
// after the transaction, on its last frame (the commit frame), 0 on the
// others. Applying every commit's frames in order to a copy of the database
// (apply_wal_frames) gives the database as of that commit, whatever
// checkpoints and WAL restarts happen on the original: a frame carries a
// whole page.
//
// Frames are held until their commit frame is written, then sent as one
// transaction: frames of a transaction or savepoint that was rolled back
// are overwritten (SQLite rewinds its write position) or lie past the commit
// frame, and are never sent.
struct WalFrame {
  uint32_t page = 0;
  uint32_t commit_pages = 0;
  std::string data;
};
using WalCommitSink = std::function<void(std::vector<WalFrame>)>;

// Sends every transaction the connection commits from now on to sink, on the
// connection's thread (null: stops). page_size: the database's. False when
// the WAL is not open through this VFS.
bool capture_wal_frames(sqlite3* db, int page_size, WalCommitSink sink);
// False once a WAL write came that is not a frame as SQLite writes them
// (header, then page; or both at once): the transactions sent since cannot
// be trusted to describe the database, so its copies must be made anew.
bool wal_capture_intact(sqlite3* db);

// Writes frames into a copy of a database: each page at its place, and on a
// commit frame the file cut to the committed size. Creates the file. Does not
// sync (the caller does, once per batch).
Status apply_wal_frames(int fd, int page_size, const WalFrame* frames, size_t count);

// A WAL's numbers (frame and file headers) are big-endian 32-bit words.
inline uint32_t wal_be32(const void* p) {
  const auto* b = static_cast<const unsigned char*>(p);
  return uint32_t{b[0]} << 24 | uint32_t{b[1]} << 16 | uint32_t{b[2]} << 8 | b[3];
}

// The transactions committed in a WAL file, oldest first, as SQLite's
// recovery finds them: frames whose salts are the header's and whose running
// checksum holds, up to the last commit frame (none for no file). What a copy
// of the database that lags behind needs (the history, after a crash).
Result<std::vector<std::vector<WalFrame>>> read_wal_commits(const std::string& path);

// Writes what the connection's WAL holds back. On failure the commit did not
// reach the file, though SQLite counts it: close the connection. A full disk
// is kStorageFull.
Status flush_wal_writes(sqlite3* db);

}  // namespace dobj::internal
