// Catalog: the node's list of every object that has storage, so that objects
// can be listed and searched without opening their databases.
//
// One SQLite file, <data>/catalog.sqlite, table objects(ns, id, name, bytes,
// created, active). Nothing on a shard waits for it:
// - created(): an object's database got its first commit. Queued; the
//   catalog's thread inserts the row.
// - touch(): shards hand over, every couple of seconds, the objects that had
//   events; the catalog's thread measures their files (database + WAL on
//   disk) and updates bytes, last activity, and a name learned late.
// remove() drops a deleted object's row at once; record_created() inserts
// one at once and syncs it (imports).
//
// What a crash loses from the queue is found again: the file says whether
// the server stopped cleanly, and when it did not (or for a data folder from
// before the catalog) open() scans the objects' folders and enters every
// database it finds. So the catalog never misses an object with storage.
//
// Thread-safe. Three connections to the file (WAL mode, SQLite's own locks),
// so that no one waits long for another: creations and removals (shard
// threads, short, one mutex), the writer thread's updates and checkpoints
// (transactions of about kChunkMs), and reads (list pages, one mutex).
// Readers never wait for writers; a creation waits at most for one
// transaction.
//
// The writer's thread works in rounds: everything queued, sorted by key. It
// rests nine times as long as a round took (up to kPeriodMs) before the next,
// so a node creating or touching thousands of objects a second spends at
// most a tenth of a core here, and its rounds grow instead (a page of the
// table or an index is written once for more rows). A new object may then
// show in the list up to kPeriodMs after its first commit rather than
// kCreatedDelayMs.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "dobj/status.h"
#include "storage/group_commit.h"
#include "storage/sqlite.h"

namespace dobj::internal {

struct CatalogEntry {
  std::string ns;
  std::string id;  // hex
  std::optional<std::string> name;
  int64_t bytes = 0;
  int64_t created_ms = 0;
  int64_t active_ms = 0;
};

// An object that had events: where its files are and when it was active.
struct CatalogTouch {
  std::string ns;
  std::string id;
  std::string path;  // database file; its WAL is path + "-wal"
  int64_t active_ms = 0;
  std::optional<std::string> name;
  bool created = false;  // the first commit of its database: insert the row
};

struct CatalogQuery {
  std::optional<std::string> ns;
  std::optional<std::string> name_prefix;  // objects with a name that starts so
  std::optional<int64_t> min_bytes;
  std::optional<int64_t> active_after_ms;   // last active at or after
  std::optional<int64_t> active_before_ms;  // last active before
  enum class Sort { kId, kName, kBytes, kActive } sort = Sort::kId;  // bytes, active: largest first
  std::string cursor;  // from the previous page; empty: the first page
  int limit = 100;
};

struct CatalogPage {
  std::vector<CatalogEntry> entries;
  std::string next_cursor;  // empty: this was the last page
};

// The cursor of the page that follows `last` in that order (what a page's
// next_cursor is); a cluster merges nodes' pages with it.
std::string catalog_cursor_after(CatalogQuery::Sort sort, const CatalogEntry& last);
// The row a cursor stands for (the sort's field, namespace and ID set);
// nullopt for a malformed one.
std::optional<CatalogEntry> catalog_cursor_position(CatalogQuery::Sort sort, const std::string& cursor);

struct CatalogTotals {
  int64_t objects = 0;
  int64_t bytes = 0;
};

class Catalog {
 public:
  // The writer's transactions last about this long (what a creation or a
  // removal on a shard thread may wait).
  static constexpr int kChunkMs = 5;
  static constexpr int kPeriodMs = 2000;
  // A creation wakes the catalog's thread, which waits this long for more.
  static constexpr int kCreatedDelayMs = 20;
  // An object's row is written again only when its last activity moved by
  // this much, or its size by kBytesResolution or 1/16 (whichever is more),
  // and only the columns that moved: each write rewrites an index entry.
  static constexpr int64_t kActiveResolutionMs = 10'000;
  static constexpr int64_t kBytesResolution = 4096;

  ~Catalog();
  // Opens (creating) the file; with namespaces' folders to scan when the
  // catalog is new (binding name → folder).
  Status open(const std::string& path, const std::map<std::string, std::string>& scan_dirs);
  void start();  // the writer thread
  void stop();   // applies what is queued, then joins

  // Shard side: queued, applied by the catalog's thread.
  void created(CatalogTouch t);
  void touch(std::vector<CatalogTouch> batch);
  // Inserts now and syncs the file (an import answers only after this).
  Status record_created(const CatalogEntry& e);
  void remove(const std::string& ns, const std::string& id);

  Result<CatalogPage> list(const CatalogQuery& q);
  std::optional<CatalogEntry> get(const std::string& ns, const std::string& id);
  // Objects and bytes per namespace, as of the writer's last round.
  std::map<std::string, CatalogTotals> totals();

 private:
  void run();
  void apply(std::vector<CatalogTouch>& batch);
  // Changes per namespace of a transaction, for totals_ once it committed.
  struct Tally {
    std::map<std::string, int64_t> bytes;
    std::map<std::string, int64_t> new_objects;
  };
  // One row of apply()'s transaction; false if a statement could not be
  // prepared.
  bool apply_row(const CatalogTouch& t, std::optional<int64_t> bytes, Tally& tally);
  void recount();
  Status scan(const std::map<std::string, std::string>& dirs);

  // Opens one of the connections with the catalog's settings.
  Status open_connection(Db& db);

  std::string path_;
  // Marks the file as cleanly stopped (or not), durably.
  Status set_clean(bool clean);
  std::mutex write_mu_;  // guards write_db_
  Db write_db_;
  Db bg_db_;             // the writer thread's (and open()'s)
  std::mutex read_mu_;   // guards read_db_
  Db read_db_;
  std::atomic<int> wal_frames_{0};

  std::mutex queue_mu_;  // guards queue_, stopping_, totals_
  std::condition_variable wake_;
  std::vector<CatalogTouch> queue_;
  bool stopping_ = false;
  bool created_pending_ = false;
  std::map<std::string, CatalogTotals> totals_;
  std::thread thread_;
};

}  // namespace dobj::internal
