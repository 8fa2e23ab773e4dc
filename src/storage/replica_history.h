// A cluster backup's side of its objects' histories (docs/history.md, "On a
// cluster"): the history part of the records an owner ships, kept beside the
// backup's copies of their databases, so that the node that takes an object
// over after a failover has every bookmark its owner gave.
//
// The owner numbers each commit (ReplicaRecord::history_seq and its time);
// a backup appends the same commit from the same frames, or, when it lacks
// the records before one (a new copy, a history turned on later), a base of
// its copy as it was just before that commit. A replaced copy (a restore, an
// import, a catch-up's snapshot) becomes a base with the owner's number, or
// takes the owner's whole history with it (a catch-up, a pull).
//
// Durability: a backup has no WAL to rebuild records from, so its history
// must hold every commit its copy holds whenever the copy is used. Records
// are written (not synced) before a ship is acknowledged, so they outlive
// the process; a node that restarts serves none of its copies before a
// catch-up has replaced them, history included; and a node syncs its whole
// filesystem before it takes partitions it held as a backup (a takeover or
// a hand-off, Cluster::place_and_stamp). So no ship pays a sync for them.
//
// One per applied batch of records (the blocking pool's thread): the files
// it opens are written and trimmed to the retention by finish().
#pragma once

#include <functional>
#include <map>
#include <memory>
#include <string>

#include "dobj/status.h"
#include "storage/history.h"
#include "storage/replication.h"

namespace dobj::internal {

class ReplicaHistories {
 public:
  // keep_ms(ns): how long namespace ns keeps a commit (0: for ever);
  // max_bytes: the size past which a history drops its oldest (0: no cap).
  ReplicaHistories(std::function<int64_t(const std::string& ns)> keep_ms, uint64_t max_bytes)
      : keep_ms_(std::move(keep_ms)), max_bytes_(max_bytes) {}

  // A kCommit for the copy at `database` (its WAL folded in): `apply` puts
  // the frames into it; the commit's record goes to the history around it.
  Status commit(const ReplicaRecord& r, const std::string& database, const std::function<Status()>& apply);
  // A kReplace whose file is now in place at `database` (with history_base,
  // its history too: assembled from kAppend parts).
  Status replaced(const ReplicaRecord& r, const std::string& database);
  // A kRemove (or the reset of a partition): the copy's history goes too.
  Status removed(const std::string& database);
  // Writes what is held and drops what retention says (now_ms) in each
  // history touched.
  Status finish(int64_t now_ms);

 private:
  struct Open {
    std::unique_ptr<HistoryFile> file;
    std::string ns;
  };
  Result<HistoryFile*> open(const std::string& database, const std::string& ns);
  std::function<int64_t(const std::string&)> keep_ms_;
  uint64_t max_bytes_;
  std::map<std::string, Open> open_;  // by database path
};

}  // namespace dobj::internal
