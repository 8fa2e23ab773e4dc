// The cluster's decisions about partition records, as pure functions: where
// a partition goes, who takes it over, how a record changes when a node
// re-stamps it, leaves or rejoins its in-sync set, or hands it on. The agent
// (cluster.cc, rebalance.cc, replicator.cc) makes each change with a
// compare-and-swap in etcd; the deterministic simulation
// (tests/unit/cluster_sim_test.cc) runs the same functions against a model
// of etcd, leases and copies, under many seeded interleavings.
#pragma once

#include <algorithm>
#include <cstdint>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <vector>

namespace dobj::internal {

// What a node knows of the cluster at one etcd revision.
struct ClusterView {
  struct Node {
    std::string peer;  // host:port
    int64_t lease = 0;
  };
  struct Partition {
    std::string owner;  // empty: not yet placed
    std::vector<std::string> replicas;  // the owner first
    std::vector<std::string> in_sync;   // replicas whose copy is current (the owner too)
    int64_t generation = 0;
    int64_t epoch = 0;  // the record's mod_revision
    // Set by a hand-off (the old owner drained it and named this owner);
    // cleared by the new owner's first stamp. Until then the new owner has
    // made no commit of it, so its in-sync set holds even after a restart.
    bool handed = false;
    bool serving_here = false;  // owned and re-stamped under this node's lease
    int64_t served_since = 0;   // serving_here: the revision of the stamp it began with
    std::string moving_to;      // this node is handing it to that node now
    // The partition's etcd record (owner, replicas, in_sync, generation,
    // handed), JSON.
    std::string record() const;
  };
  int64_t revision = 0;
  std::map<std::string, Node> nodes;  // the live ones
  std::vector<Partition> partitions;
  std::set<std::string> retired;  // nodes an operator retired
};

inline bool contains(const std::vector<std::string>& v, const std::string& x) {
  return std::find(v.begin(), v.end(), x) != v.end();
}

namespace rules {

using NodeSet = std::set<std::string>;
using Record = ClusterView::Partition;

// A record as etcd holds it (ClusterView::Partition::record()), at epoch
// (its mod_revision); nullopt if it is not a JSON object.
std::optional<Record> parse_record(std::string_view json, int64_t epoch);

// Rendezvous (highest random weight) hashing: nodes ranked by their score
// for partition p, best first.
std::vector<std::string> ranked(int p, const NodeSet& nodes);
// The replicas partition p should have, best first: rendezvous order over the
// live nodes and the replicas away for now (a node that restarts keeps its
// place rather than have its partitions copied elsewhere), less the retired.
std::vector<std::string> preferred_replicas(int p, NodeSet live, const std::vector<std::string>& replicas, int count,
                                            const NodeSet& retired);
// Whether p's record is where the preferred order wants it.
bool placed_as_preferred(int p, const Record& r, const NodeSet& live, int count, const NodeSet& retired);

// A partition with no record yet: the record `me` creates (if still absent)
// when it is first in the preferred order; the owner and the next count-1
// nodes, all in sync (all are empty).
std::optional<Record> place(int p, const std::string& me, const NodeSet& members, int count,
                            const NodeSet& retired);
// The owner is not among the live nodes (its lease ended, so it serves
// nothing): the record with which `me` takes p over, if it is the first live
// in-sync replica in rendezvous order. It is alone in sync afterwards:
// another backup may hold a commit the old owner shipped it and not `me`,
// so it must be made anew before it counts again.
std::optional<Record> take_over(int p, const Record& r, const std::string& me, const NodeSet& live);
// `me` owns r from before its current lease, or was handed it: the record of
// a new epoch it serves under. In its process's first lease its backups may
// lack commits it made before it stopped (which it will never ship), so it
// is alone in sync, unless the partition was handed to it and it has served
// it under no lease since.
Record restamp(const Record& r, bool first_lease_of_process);
// `me` started on an empty data folder and finds itself the owner of r (from
// before: it has none of r's data). What it does instead of serving it:
//  - kHandOn: another in-sync replica is live: `record` names it the owner
//    (as a hand-off), with `me` out of sync; a catch-up copies r back later;
//  - kWait: other in-sync replicas exist, none live: nothing until one is;
//  - kServeAnew: `me` was the only in-sync copy: its data is gone with the
//    folder, and it serves r from empty (`record` is its restamp).
struct StepDown {
  enum class Kind { kHandOn, kWait, kServeAnew };
  Kind kind = Kind::kWait;
  Record record;
};
StepDown step_down(int p, const Record& r, const std::string& me, const NodeSet& live);
// r with `node` out of the in-sync set (a ship to it failed; or it rejoins
// and may have missed commits while away).
Record out_of_sync(const Record& r, const std::string& node);
// r with `node` back in the in-sync set (a catch-up copied everything to it).
Record back_in_sync(const Record& r, const std::string& node);
// The replica of r that `me` (its owner) should catch up next: the first
// live one out of sync; empty if none.
std::string to_catch_up(const Record& r, const std::string& me, const NodeSet& live);

// One step towards p's preferred replicas (rebalance.cc), for a partition
// `me` serves with no catch-up under way.
struct Move {
  enum class Kind { kNone, kAddReplica, kHandOff, kDropReplica };
  Kind kind = Kind::kNone;
  std::string node;
};
Move next_move(const Record& r, const std::vector<std::string>& want, const std::string& me, const NodeSet& live);
// The record after an add or drop move.
Record moved(const Record& r, const Move& m);
// The record of a hand-off to `to`: the new owner first in both lists,
// `handed` set (the in-sync set stands until its first stamp).
Record hand_to(const Record& r, const std::string& to);

}  // namespace rules
}  // namespace dobj::internal
