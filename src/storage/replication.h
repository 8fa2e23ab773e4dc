// Replication's side of storage: what an object's store hands on to be copied
// to other nodes (a cluster's backups, docs/cluster.md), and the wire form.
//
// A store with a ReplicationLog records each committed transaction's WAL
// frames (storage/vfs.h), an import's whole file, and a removal. The shard's
// GroupCommit asks its CommitReplicator to ship everything recorded up to a
// flush, and counts the flush's commits durable only when both the local
// sync and the ship are done.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "dobj/status.h"
#include "storage/vfs.h"

namespace dobj::internal {

struct ReplicaRecord {
  // kSnapshot: a Storage::snapshot() of an object of the partition (id: its
  // name, ns: empty, file: its bytes, history_time_ms: when it was made).
  // kAppend: a part of a copy too large for one record (a catch-up's):
  // `file` and `history` are appended to the database and history being
  // assembled for it (<db>.catchup, <db>-history.catchup) at the byte
  // offsets history_seq and history_time_ms (their sizes so far; 0 starts
  // them anew). A kReplace with history_base set then puts the assembled
  // files in place (its file and history are empty).
  enum class Kind : uint8_t { kCommit = 0, kReplace = 1, kRemove = 2, kSnapshot = 3, kAppend = 4 };
  Kind kind = Kind::kCommit;
  std::string ns;
  std::string id;  // hex
  // Set by the replicator: the object's partition and its epoch there.
  uint32_t partition = 0;
  int64_t epoch = 0;
  uint32_t page_size = 0;        // kCommit
  std::vector<WalFrame> frames;  // kCommit: one transaction
  std::string file;              // kReplace: the database's bytes
  // kCommit, kReplace: the object's name, when the owner knows it, so that a
  // backup's catalog names the copy (and still does after a failover).
  std::optional<std::string> name;
  // With history on the owner (--history): kCommit, the commit's number and
  // time in the object's history; kReplace, those of the base the new file
  // is (its _dobj_history row holds the number). 0: no history.
  uint64_t history_seq = 0;
  int64_t history_time_ms = 0;
  // kCommit: the owner keeps this commit whole (a base: a periodic one, or
  // after records were lost); its backups do too.
  bool history_base = false;
  // kReplace: the history that goes with the file (a catch-up's copy, or a
  // pulled history), whole records; empty: the file starts a base.
  std::string history;
  // Not sent: set, the record goes to this node only (a catch-up's snapshot).
  std::string only_to;
};

// Where a shard's stores record what they change (shard thread only).
class ReplicationLog {
 public:
  virtual ~ReplicationLog() = default;
  virtual void record(ReplicaRecord r) = 0;
};

// What a GroupCommit waits for beside its sync.
class CommitReplicator {
 public:
  virtual ~CommitReplicator() = default;
  // Ships every record so far; done runs once each is durable on every
  // backup that must hold it (any thread). A failure is final for the shard,
  // as a failed sync is.
  virtual void ship(std::function<void(Status)> done) = 0;
};

// Both, one per shard.
class ShardReplicator : public ReplicationLog, public CommitReplicator {};

std::string encode_replica_records(const std::vector<ReplicaRecord>& records);
// Refuses (kInvalidArgument) anything malformed.
Result<std::vector<ReplicaRecord>> decode_replica_records(std::string_view bytes);

}  // namespace dobj::internal
