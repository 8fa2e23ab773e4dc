// Placement: which node serves an object, for a node in a cluster.
//
// A single node has none (Runtime::placement() is null): every object is
// served here. In a cluster (src/cluster/) the ID space is split into fixed
// partitions, each owned by one node at a time; the runtime asks the
// placement before it delivers anything to an object:
//
// - a stub's call to an object served elsewhere is forwarded to its owner
//   (forward), after the output gate like any call that leaves the object;
// - a delivery that reaches a shard for an object not served here (a stale
//   route, a node that lost its lease) is never run: it goes on to the owner
//   the view names now (at most two hops), waits out a hand-off under way
//   (Route::transient), or is refused with 503.
//
// Thread affinity: route and serves_here from any shard thread; forward from
// the shard thread `from`.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "dobj/http.h"
#include "dobj/id.h"
#include "dobj/status.h"
#include "storage/replication.h"
#include "storage/snapshots.h"

namespace dobj::internal {

class Shard;
class NamespaceImpl;
struct Delivery;

class Placement {
 public:
  virtual ~Placement() = default;

  struct Route {
    enum class Kind { kLocal, kRemote, kUnavailable };
    Kind kind = Kind::kLocal;
    int partition = 0;
    std::string node;    // kRemote: the owner's node ID
    std::string peer;    // kRemote: the owner's peer address, host:port
    int64_t epoch = 0;   // the partition's epoch (its etcd revision) as known here
    std::string reason;  // kUnavailable: why, for the 503
    // kUnavailable for a moment only: the partition is being handed to
    // another node, which serves it within the hand-off's bound (a delivery
    // waits for that rather than failing).
    bool transient = false;
  };
  virtual Route route(const ObjectId& id) const = 0;
  // Whether this node may run the object now: it owns the partition under a
  // live lease.
  virtual bool serves_here(const ObjectId& id) const = 0;
  // While serves_here: a number that changes each time this node starts
  // serving the object's partition anew (after its lease lapsed, or the
  // partition went away and came back). A host made before that may hold an
  // older database than the files, which catch-ups and ships have changed.
  virtual int64_t serving_since(const ObjectId& id) const = 0;
  // Asked by the output gate before anything of the object leaves (a
  // response, a socket message, a call out): ok while this node still serves
  // it under a live lease (a node paused past its lease answers nothing it
  // ran before) and its partition has at least --min-copies in-sync copies
  // (every commit the output depends on is on that many disks: a ship that
  // dropped a backup has the smaller set published before its commits count
  // durable). Otherwise kUnavailable, saying why.
  virtual Status may_release(const ObjectId& id) const = 0;
  // Tests (--trace-activations): an event of the object that started at
  // `started` (steady clock) had its answer released now.
  virtual bool tracing() const = 0;
  virtual void trace_release(const NamespaceImpl* ns, const ObjectId& id,
                             std::chrono::steady_clock::time_point started) = 0;
  // Sends the delivery to route.peer and answers it through its reply (on
  // `from`, as local deliveries answer).
  virtual void forward(Shard& from, const NamespaceImpl* ns, const ObjectId& id, Delivery delivery,
                       const Route& route) = 0;
  // The cluster as this node sees it, JSON (the admin plane's /_dobj/cluster).
  virtual std::string status_json() const = 0;
  // An operator retires a node (its partitions move to the others; a node
  // that is gone for good is replaced) or takes it back; done(answer) on
  // any thread once etcd has it.
  virtual void set_retired(std::string node, bool retired, std::function<void(Response)> done) = 0;

  // The admin plane across nodes. An admin request the entry node took (and
  // authorized) goes to another node marked as a peer's, which that node
  // serves for its own objects only. peer_authorized checks the mark.
  struct Peer {
    std::string node;
    std::string address;  // host:port of its peer listener
  };
  // This node's ID, and the live nodes other than this one.
  virtual const std::string& node_id() const = 0;
  virtual std::vector<Peer> other_nodes() const = 0;
  virtual void send_admin(Shard& from, const Peer& to, Request request,
                          std::function<void(Response)> done) = 0;
  virtual bool peer_authorized(std::string_view token) const = 0;

  // What the shard's commits ship to the backups before they count durable
  // (storage/replication.h); null when partitions have no backups. Called
  // once per shard at start, before any object opens its database.
  virtual std::unique_ptr<ShardReplicator> make_replicator(Shard& shard) = 0;

  // Storage snapshots (storage/snapshots.h): a snapshot's name says its
  // partition (that of the object that made it), out of partitions().
  virtual int partitions() const = 0;
  virtual int partition_of(const ObjectId& id) const = 0;
  // The bytes of snapshot `name` and when it was made, from a node that
  // holds a copy (the owner of its partition, else a backup); kNotFound when
  // none has it. done runs on `from`'s thread.
  virtual void fetch_snapshot(Shard& from, std::string name,
                              std::function<void(Result<snapshots::Copy>)> done) = 0;
};

}  // namespace dobj::internal
