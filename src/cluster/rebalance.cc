// Moving partitions between live nodes: growth (a node that joins takes its
// share) and return (a node back from a failure takes back what it prefers).
// docs/cluster.md, "Moves".
#include <condition_variable>
#include <mutex>
#include <nlohmann/json.hpp>

#include "base/log.h"
#include "cluster/cluster.h"
#include "cluster/etcd.h"
#include "runtime/runtime.h"

namespace dobj::internal {

void Cluster::rebalance() {
  // One copy only: there is nothing to move a partition with.
  if (options_.replicas <= 1 || !lease_live() || !settled()) return;
  constexpr int kHandOffsPerRound = 8;
  const std::string& me = options_.node_id;
  auto started = std::chrono::steady_clock::now();
  auto out_of_time = [&] { return std::chrono::steady_clock::now() - started > options_.lease / 4; };
  // One compare-and-swap of p's record; publishes at once, so that this
  // node's shards ship with the new epoch before a backup learns it.
  auto swap = [&](int p, const ClusterView::Partition& next) {
    auto& r = records_[static_cast<size_t>(p)];
    auto made = swap_record(p, r.epoch, next);
    if (!made) return false;
    r = next;
    r.epoch = *made;
    publish();
    return true;
  };
  int handed = 0;
  for (int p = 0; p < partitions_; ++p) {
    const auto& r = records_[static_cast<size_t>(p)];
    if (r.owner != me || !stamped_.count(p)) continue;
    std::vector<std::string> want = preferred(p);
    if (want.empty()) continue;
    if (out_of_time()) continue;
    {
      std::lock_guard lock(learners_mu_);
      if (catching_up_.count(p)) continue;
    }
    auto move = rules::next_move(r, want, me, last_members_);
    switch (move.kind) {
      case rules::Move::Kind::kNone:
        continue;
      case rules::Move::Kind::kAddReplica:
        if (swap(p, rules::moved(r, move))) {
          log_info("cluster: node " + move.node + " joins partition " + std::to_string(p) + "'s replicas");
        }
        continue;
      case rules::Move::Kind::kHandOff:
        if (handed < kHandOffsPerRound && hand_off(p, move.node)) ++handed;
        continue;
      case rules::Move::Kind::kDropReplica:
        break;
    }
    const std::string& extra = move.node;
    ClusterView::Partition next = rules::moved(r, move);
    if (!swap(p, next)) continue;
    log_info("cluster: node " + extra + " leaves partition " + std::to_string(p) + "'s replicas");
    if (auto node = nodes_.find(extra); node != nodes_.end()) {
      // Its copies are of no use now; if the call fails they stay on its
      // disk, unserved, until a catch-up there replaces them.
      (void)reset_copies_on(node->second.peer, p);
    }
  }
}

bool Cluster::hand_off(int p, const std::string& to) {
  // Serving stops here: deliveries wait (the route is transient), alarms are
  // postponed, nothing new starts for the partition's objects.
  moving_[p] = to;
  publish();
  auto started = std::chrono::steady_clock::now();
  // Each shard lets the objects go and makes every commit before durable
  // here and on the in-sync backups, `to` among them.
  auto patience = std::max(std::chrono::milliseconds(250), options_.lease / 4);
  struct Gather {
    std::mutex mu;
    std::condition_variable cv;
    size_t left = 0;
    Status failed;
  };
  auto g = std::make_shared<Gather>();
  g->left = runtime_->shard_count();
  for (size_t i = 0; i < runtime_->shard_count(); ++i) {
    Shard& shard = runtime_->shard(i);
    shard.post([this, &shard, g, p, patience] {
      shard.release_objects([this, p](const ObjectId& id) { return partition_of(id) == p; }, patience,
                            [g](Status st) {
                              std::lock_guard lock(g->mu);
                              if (!st.is_ok()) g->failed = st;
                              --g->left;
                              g->cv.notify_all();
                            });
    });
  }
  Status drained;
  {
    std::unique_lock lock(g->mu);
    if (!g->cv.wait_for(lock, 2 * patience + options_.lease, [&] { return g->left == 0; })) {
      drained = Status(Code::kUnavailable, "the drain took too long");
    } else {
      drained = g->failed;
    }
  }
  const auto& r = records_[static_cast<size_t>(p)];
  bool done = false;
  if (drained.is_ok()) {
    // The record names the new owner, first in both lists; "handed" tells it
    // the in-sync set stands.
    ClusterView::Partition next = rules::hand_to(r, to);
    if (auto made = swap_record(p, r.epoch, next)) {
      next.epoch = *made;
      records_[static_cast<size_t>(p)] = next;
      stamped_.erase(p);
      done = true;
    } else {
      drained = made.status();
    }
  }
  moving_.erase(p);
  publish();
  auto took = std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - started);
  if (!done) {
    log_warn("cluster: handing partition " + std::to_string(p) + " to node " + to + " failed (" +
             drained.message() + "); serving it again");
    // The drain took the objects' alarms off this node's schedule.
    adopt_objects(p);
    return false;
  }
  log_info("cluster: handed partition " + std::to_string(p) + " to node " + to + " (" +
           std::to_string(took.count()) + " ms)");
  // It reads etcd at its next round anyway; now is sooner.
  if (auto node = nodes_.find(to); node != nodes_.end()) {
    Request nudge;
    nudge.method = "POST";
    nudge.target = "/_dobj_peer/nudge";
    nudge.headers = {{"dobj-peer-token", peer_token_}, {"dobj-peer-nudge", "1"}};
    (void)peer_call(node->second.peer, std::move(nudge));
  }
  return true;
}

}  // namespace dobj::internal
