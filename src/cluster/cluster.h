// Cluster: this node's membership in a dobj cluster coordinated by etcd, and
// the Placement the runtime asks where each object is served.
//
// etcd holds the configuration, never the data (docs/cluster.md):
//
//   <prefix>secret            the cluster's ID secret (hex), made once
//   <prefix>config            {"partitions": P}, fixed when the cluster is made
//   <prefix>nodes/<node>      {"peer": host:port} under the node's lease
//   <prefix>retired/<node>    {"at": ms}: an operator retired the node
//   <prefix>partitions/<p>    {"owner", "replicas", "in_sync", "generation", "handed"}
//
// An object's partition is (ObjectId::hash() >> 32) % P. A partition record's
// etcd mod_revision is its epoch. A node serves partition p while the record
// names it owner, it re-stamped the record (a compare-and-swap that makes a
// new epoch) under its current lease, and its lease deadline has not passed
// on its own monotonic clock. The deadline is the send time of the last
// renewal that succeeded plus the TTL less a margin, so a node that cannot
// renew (cut off, paused, etcd down) stops serving before etcd lets the lease
// go and anything could take its place.
//
// Placement: a partition without a record goes to the live node that wins
// rendezvous hashing, once membership has been still for a moment (so that
// nodes started together share the partitions), with the next replicas-1
// nodes as its backups. Replication, failover and catch-up are in
// replicator.cc; with replicas = 1 a partition stays with its owner and its
// objects answer 503 while the owner is down.
//
// Threads: the agent runs on a thread of its own and is the only user of the
// etcd client; the runtime's shards read the published view (an immutable
// snapshot) and the lease deadline, both atomics.
#pragma once

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <unordered_map>
#include <utility>
#include <vector>

#include "cluster/etcd.h"
#include "cluster/rules.h"
#include "dobj/server.h"
#include "ids/id_factory.h"
#include "runtime/placement.h"
#include "storage/replication.h"

namespace dobj::internal {

class Runtime;
class PeerPools;
class ObjectHost;

class Cluster final : public Placement {
 public:
  explicit Cluster(ClusterOptions options);
  ~Cluster() override;

  // Before the runtime exists: reads (or, for the first node, makes) the
  // cluster's ID secret and partition count. A data folder that already has
  // a secret of its own must have this one. Retries while etcd is
  // unreachable, up to `wait`.
  Result<Secret> join_secret(const std::string& data_dir, std::chrono::milliseconds wait);
  // After the runtime started and the peer listener is bound: registers the
  // node under a lease and starts the agent. advertise: host:port of the peer
  // listener as the other nodes should dial it.
  void start(Runtime* runtime, std::string advertise);
  // Revokes the lease (the node leaves at once) and joins the agent.
  void stop();

  const ClusterOptions& options() const { return options_; }
  // A catch-up's copy of an object larger than this goes in parts of this
  // size (ReplicaRecord kAppend): no record holds more than one part.
  static constexpr size_t kCopyPartBytes = size_t{32} << 20;

  int partitions() const override { return partitions_; }
  int partition_of(const ObjectId& id) const override {
    return static_cast<int>((id.hash() >> 32) % static_cast<uint64_t>(partitions_));
  }
  std::shared_ptr<const ClusterView> view() const { return view_.load(std::memory_order_acquire); }
  // Whether the lease deadline is still ahead.
  bool lease_live() const;
  // The cluster's state as the admin plane shows it (/_dobj/cluster), JSON.
  std::string status_json() const override;
  void set_retired(std::string node, bool retired, std::function<void(Response)> done) override;
  // Blocks until this node serves every partition it owns and all P are
  // placed, or the timeout passes (tests, scripts/cluster.sh).
  bool wait_ready(std::chrono::milliseconds timeout) const;

  // Asks the agent to read etcd now rather than at its next tick (a peer
  // could not be reached: the view may be stale). Any thread.
  void nudge();

  // The token peers present (a keyed hash of the ID secret).
  const std::string& peer_token() const { return peer_token_; }

  // Placement.
  Route route(const ObjectId& id) const override;
  bool serves_here(const ObjectId& id) const override;
  int64_t serving_since(const ObjectId& id) const override;
  Status may_release(const ObjectId& id) const override;
  bool tracing() const override { return trace_fd_ >= 0; }
  void trace_release(const NamespaceImpl* ns, const ObjectId& id,
                     std::chrono::steady_clock::time_point started) override;
  void forward(Shard& from, const NamespaceImpl* ns, const ObjectId& id, Delivery delivery,
               const Route& route) override;
  std::vector<Peer> other_nodes() const override;
  void send_admin(Shard& from, const Peer& to, Request request,
                  std::function<void(Response)> done) override;
  bool peer_authorized(std::string_view token) const override;
  std::unique_ptr<ShardReplicator> make_replicator(Shard& shard) override;
  void fetch_snapshot(Shard& from, std::string name, std::function<void(Result<snapshots::Copy>)> done) override;
  // Where this node keeps storage snapshots (storage/snapshots.h).
  std::string snapshot_dir() const;

  // Replication (replicator.cc). A backup's side: applies records another
  // node's shard shipped, durably, and answers; off the shards (blocking
  // I/O), done on any thread.
  void apply_replica(std::string body, std::function<void(Response)> done);
  // A catch-up begins: removes this node's copies of partition p's objects.
  void reset_partition(int p, int64_t epoch, std::function<void(Response)> done);
  // The owner's side: asks the agent to take `node` out of the in-sync sets
  // of these partitions (it did not take a ship); done(ok) once etcd says so
  // (or it was out already), done(error) if this node no longer owns one.
  void shrink_in_sync(std::vector<std::pair<int, std::string>> drops, std::function<void(Status)> done);
  // A backup did not answer a ship within a lease (no answer at all): it is
  // taken out of the in-sync sets of every partition this node owns, not
  // only of those the ship carried, so that the next write of each does not
  // wait a lease for it too. Any thread.
  void backup_unreachable(const std::string& node);
  PeerPools& pools() { return *pools_; }

  // Catch-up (replicator.cc): a replica out of a partition's in-sync set gets
  // the partition's objects anew, then counts as in sync again. While it
  // catches up it is a learner: ships of the partition go to it too.
  struct Learner {
    std::string node;
    bool required = false;  // past its snapshots: a failed ship drops it
    uint64_t run = 0;       // its catch-up
  };
  // The learners of partition p now, for a ship about to go (any thread).
  // One not yet required is counted as having a ship under way, which the
  // ship must end with learner_ship_ended(): the catch-up adds the learner
  // to the in-sync set only once every such ship has ended well (one still
  // under way could fail after that, and nothing would then drop the
  // learner while the commit it lacks counts as acknowledged).
  std::vector<Learner> learners_for_ship(int p);
  // A ship to a learner failed (any thread).
  void learner_failed(int p, const std::string& node);
  void learner_ship_ended(int p, const std::string& node, uint64_t run, bool ok);
  const std::string& node_id() const override { return options_.node_id; }
  Runtime* runtime() const { return runtime_; }

  // The peer listener's handler: a request forwarded by another node
  // (peer.cc). Runs on the shard that accepted it; done runs there too.
  void handle_peer(Shard& accepted_on, Request request, std::function<void(Response)> done);

 private:
  void run();
  // The lease keeper's thread: renews the lease on a client of its own, so
  // that slow work of the agent (many compare-and-swaps) never lets it lapse.
  void keep_lease();
  // The watcher's thread: nudges the agent whenever anything under the
  // cluster's prefix changes in etcd (a node key gone with its lease, a
  // record changed by another node), so that a takeover, and every node's
  // view of it, need not wait for the next tick.
  void watch();
  void acquire_lease();
  void refresh();
  // Places unowned partitions and re-stamps owned ones; whether it changed any.
  bool place_and_stamp();
  // Agent: the pending shrink requests, against etcd.
  void run_shrinks();
  // Agent, on joining with an empty data folder: out of every in-sync set it
  // is in as a backup (the copies that made it a member are gone). A node
  // that restarts with its folder stays in them: any ship it missed made its
  // owner drop it (or exit) before a write counted, and its copies are
  // synced before it answers a ship.
  void leave_in_sync_sets();
  // Agent: with fresh data, a partition owned from before is handed on (or
  // served anew if this was its only in-sync copy); whether it is settled.
  bool step_down(int p);
  // Agent: removes the empty-folder marker once the copies are disowned.
  void clear_fresh();
  // Agent, after taking over partition p: its objects' alarms and catalog
  // rows, which a backup's copies did not make.
  void adopt_objects(int p);
  // Agent: starts, advances and finishes catch-ups of out-of-sync replicas.
  void catch_up();
  // A catch-up's large copy, in parts (kCopyPartBytes).
  void ship_in_parts(ObjectHost& host, ReplicaRecord whole, std::function<bool()> wanted,
                     std::function<void(Status)> done);
  // Whether partition p's catch-up of `node` runs and has not failed.
  bool learner_ok(int p, const std::string& node) const;
  // A catch-up's copies of storage snapshots: shipped to `node` only; done
  // (any thread) says whether all are on it.
  void ship_snapshots(const std::string& node, std::vector<std::string> names, std::function<void(bool)> done);
  // Agent (rebalance.cc): moves this node's partitions towards their
  // preferred nodes (rendezvous order over the live nodes and the replicas
  // away for now): adds a preferred node missing from the replicas (catch-up
  // then copies the partition to it), hands the partition to its first
  // preferred node once that one is in sync, and drops a replica past the
  // count once every preferred one is in sync.
  void rebalance();
  // Agent: drains partition p here and names `to` its owner; whether it did.
  bool hand_off(int p, const std::string& to);
  // The preferred replicas of partition p, best first (agent).
  std::vector<std::string> preferred(int p) const;
  // Agent: a peer request from this thread, waiting for its answer.
  Result<Response> peer_call(const std::string& address, Request request);
  // Agent: asks the node at `address` to remove its copies of partition p
  // (reset_partition there), at p's epoch as this node knows it.
  Result<Response> reset_copies_on(const std::string& address, int p);
  void publish();
  std::string key(const std::string& rest) const { return options_.etcd_prefix + rest; }
  std::string partition_key(int p) const { return key("partitions/" + std::to_string(p)); }
  // Agent: the one way a partition record changes. Writes `next` as p's
  // record if it is still the one written at revision `epoch` (0: there is
  // none yet) and every compare of `also` holds; the new record's epoch (the
  // store's revision after the write). kConflict when the record changed (or
  // a compare failed); an etcd error is "unknown": read again before deciding.
  Result<int64_t> swap_record(int p, int64_t epoch, const ClusterView::Partition& next,
                              std::vector<etcd::Compare> also = {});
  // Several at once, all or none, in one transaction: every new record's
  // epoch is the one revision returned.
  struct RecordSwap {
    int p = -1;
    int64_t epoch = 0;
    ClusterView::Partition next;
  };
  Result<int64_t> swap_records(const std::vector<RecordSwap>& swaps, std::vector<etcd::Compare> also = {});
  // How many record changes place_and_stamp() puts in one transaction
  // (etcd's default --max-txn-ops is 128, compares and puts counted apart).
  static constexpr size_t kBatch = 32;

  ClusterOptions options_;
  int partitions_ = 0;
  std::string peer_token_;
  Runtime* runtime_ = nullptr;
  std::string advertise_;
  std::unique_ptr<etcd::Client> etcd_;
  std::unique_ptr<etcd::Client> keeper_etcd_;  // the keeper's
  std::thread keeper_;
  std::unique_ptr<etcd::Client> watch_etcd_;  // the watcher's
  std::thread watcher_;
  static constexpr std::chrono::milliseconds kMinRound{50};
  std::atomic<int64_t> renewing_{0};      // the lease the keeper renews; 0: none
  std::atomic<bool> lease_lost_{false};   // the keeper found it expired
  std::unique_ptr<PeerPools> pools_;
  std::thread agent_;
  std::mutex mu_;
  std::condition_variable cv_;
  bool stopping_ = false;  // guarded by mu_
  bool nudged_ = false;    // guarded by mu_
  struct Shrink {
    std::vector<std::pair<int, std::string>> drops;
    std::function<void(Status)> done;
    // Set: drop this node from every in-sync set of the partitions this node
    // owns (drops is empty); best effort, nothing waits on it.
    std::string everywhere;
  };
  std::vector<Shrink> shrinks_;  // guarded by mu_
  std::vector<std::function<void()>> agent_tasks_;  // guarded by mu_; run by the agent
  static constexpr const char* kEmptyMarker = "cluster-empty";
  // The data folder was empty when this node joined (kEmptyMarker in it):
  // it leaves every in-sync set it is in and steps down from the partitions
  // it owned from before (rules::step_down) before the marker goes.
  bool fresh_data_ = false;
  std::string data_dir_;
  bool left_in_sync_ = true;     // agent: no in-sync set to leave, or left them all
  bool inherited_known_ = false; // agent: inherited_ was read (fresh data only)
  std::set<int> inherited_;      // agent: owned from before, not yet stepped down from
  bool had_lease_ = false;       // agent: this process held a lease before
  bool first_lease_of_process_ = false;
  // Backups apply one batch at a time; a takeover waits for the batch under
  // way (so that no copy it opens is half written).
  std::mutex apply_mu_;
  // Backup, after a ship is applied and synced: the catalog lists the copies
  // (hidden from listings while another node serves them; counted in the
  // storage totals) with their names, which a failover then keeps.
  void catalog_copies(const std::vector<std::pair<const ReplicaRecord*, std::string>>& copies);
  // "ns/id" of the copies catalogued by this process; true: with a name.
  std::unordered_map<std::string, bool> catalogued_copies_;  // guarded by apply_mu_
  static constexpr size_t kMaxCataloguedCopies = 200'000;
  // The catch-ups under way, by partition (one replica at a time each).
  struct CatchUp {
    int partition = -1;
    std::string node;
    int64_t learner_lease = 0;  // the learner's lease when it began: a restart there ends it
    size_t pending = 0;  // snapshots not yet on the learner
    uint64_t run = 0;    // tells this catch-up from an earlier or later one of its partition
    size_t unwaited_ships = 0;  // ships to the learner under way that do not wait for it
    bool failed = false;
    bool snapshots_sent = false;
    std::chrono::steady_clock::time_point started;
  };
  mutable std::mutex learners_mu_;
  std::map<int, CatchUp> catching_up_;  // guarded by learners_mu_
  uint64_t catch_up_runs_ = 0;          // guarded by learners_mu_
  std::map<std::string, std::chrono::steady_clock::time_point> reset_warned_;  // agent

  // Agent thread only.
  int64_t lease_ = 0;
  int64_t seen_revision_ = -1;
  std::map<std::string, ClusterView::Node> nodes_;
  std::set<std::string> retired_;
  std::vector<ClusterView::Partition> records_;
  std::set<int> stamped_;  // partitions re-stamped under lease_
  // The revision of the stamp each partition's serving here began with, and
  // the record's epoch as last published while served here.
  std::map<int, int64_t> stamped_at_;
  std::map<int, int64_t> served_epoch_;
  std::set<int> adopting_;  // taken over, objects not yet adopted
  std::map<int, std::string> moving_;  // being handed to that node now
  std::set<std::string> last_members_;
  std::chrono::steady_clock::time_point members_since_{};
  // Membership has been still for a lease (nodes started together have all
  // joined): placement and moves wait for it.
  bool settled() const;

  int trace_fd_ = -1;  // --trace-activations, O_APPEND

  // Read by shards.
  std::atomic<std::shared_ptr<const ClusterView>> view_;
  std::atomic<int64_t> deadline_ns_{0};  // steady clock; serving stops here
};

}  // namespace dobj::internal
