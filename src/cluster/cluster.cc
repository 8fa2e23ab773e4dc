// The cluster agent: lease, membership, placement, and the view it publishes.
#include "cluster/cluster.h"

#include <fcntl.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <nlohmann/json.hpp>

#include "base/fs.h"
#include "base/hex.h"
#include "base/log.h"
#include "base/thread_name.h"
#include "cluster/etcd.h"
#include "cluster/peer.h"
#include "runtime/runtime.h"

namespace dobj::internal {
namespace {

using nlohmann::json;
using Clock = std::chrono::steady_clock;

int64_t now_ns() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(Clock::now().time_since_epoch()).count();
}

std::vector<std::string> split_endpoints(const std::string& list) {
  std::vector<std::string> out;
  size_t from = 0;
  while (from <= list.size()) {
    size_t comma = list.find(',', from);
    if (comma == std::string::npos) comma = list.size();
    if (comma > from) out.push_back(list.substr(from, comma - from));
    from = comma + 1;
  }
  return out;
}

}  // namespace

Cluster::Cluster(ClusterOptions options) : options_(std::move(options)) {
  if (options_.etcd_prefix.empty() || options_.etcd_prefix.back() != '/') options_.etcd_prefix += '/';
  // A call bounded well inside the lease, so a renewal that hangs cannot
  // outlive the deadline unnoticed.
  auto timeout = std::max(std::chrono::milliseconds(200), options_.lease / 4);
  etcd_ = std::make_unique<etcd::Client>(split_endpoints(options_.etcd), timeout);
  keeper_etcd_ = std::make_unique<etcd::Client>(split_endpoints(options_.etcd), timeout);
  watch_etcd_ = std::make_unique<etcd::Client>(split_endpoints(options_.etcd), timeout);
  if (!options_.activation_trace.empty()) {
    trace_fd_ = ::open(options_.activation_trace.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    if (trace_fd_ < 0) log_error("cluster: cannot open " + options_.activation_trace + ": " + std::strerror(errno));
  }
}

Cluster::~Cluster() {
  stop();
  if (trace_fd_ >= 0) ::close(trace_fd_);
}

Result<Secret> Cluster::join_secret(const std::string& data_dir, std::chrono::milliseconds wait) {
  if (options_.node_id.empty()) return Status(Code::kInvalidArgument, "--node-id is required with --cluster");
  if (options_.node_id.find('/') != std::string::npos || options_.node_id.size() > 64) {
    return Status(Code::kInvalidArgument, "--node-id: at most 64 characters, no '/'");
  }
  if (options_.replicas < 1 || options_.replicas > 5) {
    return Status(Code::kInvalidArgument, "--replicas: 1 to 5");
  }
  if (options_.min_copies < 1 || options_.min_copies > options_.replicas) {
    return Status(Code::kInvalidArgument, "--min-copies: 1 to --replicas (" + std::to_string(options_.replicas) + ")");
  }
  if (options_.partitions < 1 || options_.partitions > 4096) {
    return Status(Code::kInvalidArgument, "--partitions: 1 to 4096");
  }
  if (options_.lease < std::chrono::milliseconds(1000)) {
    return Status(Code::kInvalidArgument, "--lease-ms: at least 1000 (etcd counts leases in seconds)");
  }
  // The local secret, if this folder has one.
  std::optional<Secret> local;
  std::string path = data_dir + "/secret";
  if (auto existing = read_file(path)) {
    if (existing->size() != 32) return Status(Code::kInternal, path + " is damaged: expected 32 bytes");
    local.emplace();
    std::memcpy(local->data(), existing->data(), 32);
  }
  Secret proposed;
  if (local) {
    proposed = *local;
  } else if (RAND_bytes(proposed.data(), static_cast<int>(proposed.size())) != 1) {
    return Status(Code::kInternal, "cannot generate the ID secret");
  }
  json config = {{"partitions", options_.partitions}};
  auto deadline = Clock::now() + wait;
  Result<etcd::TxnResult> made = Status(Code::kUnavailable, "etcd not reached");
  for (;;) {
    // Make the secret and the configuration if this is the first node, read
    // them otherwise: one transaction.
    made = etcd_->txn({etcd::Compare::absent(key("secret"))},
                      {etcd::Op::put(key("secret"), to_hex(proposed.data(), proposed.size())),
                       etcd::Op::put(key("config"), config.dump()), etcd::Op::get(key("secret")),
                       etcd::Op::get(key("config"))},
                      {etcd::Op::get(key("secret")), etcd::Op::get(key("config"))});
    if (made || Clock::now() >= deadline) break;
    log_warn("cluster: etcd not reached (" + made.status().message() + "); retrying");
    std::this_thread::sleep_for(std::chrono::milliseconds(500));
  }
  if (!made) return Status(Code::kUnavailable, "cluster: cannot reach etcd at " + options_.etcd +
                                                   ": " + made.status().message());
  if (made->ranges.size() != 2 || made->ranges[0].size() != 1 || made->ranges[1].size() != 1) {
    return Status(Code::kInternal, "cluster: etcd has a secret but no configuration under " +
                                       options_.etcd_prefix);
  }
  auto bytes = from_hex_lower(made->ranges[0][0].value);
  if (!bytes || bytes->size() != 32) return Status(Code::kInternal, "cluster: the secret in etcd is damaged");
  Secret secret;
  std::memcpy(secret.data(), bytes->data(), 32);
  json stored = json::parse(made->ranges[1][0].value, nullptr, false);
  if (!stored.is_object() || !stored.contains("partitions") || !stored["partitions"].is_number_integer()) {
    return Status(Code::kInternal, "cluster: the configuration in etcd is damaged");
  }
  partitions_ = stored["partitions"].get<int>();
  if (partitions_ != options_.partitions) {
    log_info("cluster: using the cluster's " + std::to_string(partitions_) + " partitions (--partitions " +
             std::to_string(options_.partitions) + " applies only to a new cluster)");
  }
  if (local && *local != secret) {
    return Status(Code::kInvalidArgument,
                  "data folder " + data_dir + " was made with another ID secret (a single node or "
                  "another cluster): its objects' IDs would not match this cluster's; start this "
                  "node with an empty --data folder");
  }
  data_dir_ = data_dir;
  std::string marker = data_dir + "/" + kEmptyMarker;
  if (!local) {
    // Marked before the secret makes the folder look used: a restart before
    // the marker goes does the stepping down again.
    Status st = write_file_atomic(marker, "this node joined with an empty data folder\n", 0600);
    if (!st) return st;
    st = write_file_atomic(path, std::string(reinterpret_cast<const char*>(secret.data()), 32), 0600);
    if (!st) return st;
  }
  fresh_data_ = static_cast<bool>(read_file(marker));
  left_in_sync_ = !fresh_data_;
  uint8_t mac[32];
  unsigned mac_len = 0;
  static constexpr char kLabel[] = "dobj peer token";
  HMAC(EVP_sha256(), secret.data(), static_cast<int>(secret.size()),
       reinterpret_cast<const uint8_t*>(kLabel), sizeof kLabel - 1, mac, &mac_len);
  peer_token_ = to_hex(mac, mac_len);
  records_.assign(static_cast<size_t>(partitions_), {});
  view_.store(std::make_shared<const ClusterView>(ClusterView{0, {}, records_, {}}));
  return secret;
}

void Cluster::start(Runtime* runtime, std::string advertise) {
  runtime_ = runtime;
  advertise_ = std::move(advertise);
  pools_ = std::make_unique<PeerPools>(runtime->shard_count());
  agent_ = std::thread([this] {
    name_this_thread("dobj-agent");
    run();
  });
  keeper_ = std::thread([this] {
    name_this_thread("dobj-lease");
    keep_lease();
  });
  watcher_ = std::thread([this] {
    name_this_thread("dobj-etcd-watch");
    watch();
  });
}

void Cluster::stop() {
  {
    std::lock_guard lock(mu_);
    if (stopping_ || !agent_.joinable()) {
      stopping_ = true;
      return;
    }
    stopping_ = true;
  }
  cv_.notify_all();
  watch_etcd_->cancel_watch();
  agent_.join();
  keeper_.join();
  watcher_.join();
  deadline_ns_.store(0);
  // Idle peer connections live on the shards' io_contexts, which the runtime
  // destroys after this: close them now (the loops have stopped).
  pools_.reset();
  if (lease_ != 0) (void)etcd_->revoke(lease_);
  lease_ = 0;
}

void Cluster::nudge() {
  {
    std::lock_guard lock(mu_);
    nudged_ = true;
  }
  cv_.notify_all();
}

bool Cluster::lease_live() const { return now_ns() < deadline_ns_.load(std::memory_order_acquire); }

void Cluster::run() {
  auto tick = std::max(std::chrono::milliseconds(100), options_.lease / 6);
  for (;;) {
    auto started = Clock::now();
    if (lease_ == 0) {
      acquire_lease();
    } else if (lease_lost_.exchange(false)) {
      // The lease is gone (expired in etcd): serve nothing until a new one
      // is granted and every owned partition re-stamped under it.
      log_warn("cluster: the lease expired; rejoining");
      lease_ = 0;
      renewing_.store(0);
      stamped_.clear();
      deadline_ns_.store(0);
    }
    refresh();  // without a lease: the view only (requests for other nodes' objects go on)
    if (lease_ != 0 && options_.replicas > 1) {
      catch_up();
      rebalance();
    }
    run_shrinks();
    std::vector<std::function<void()>> tasks;
    {
      std::lock_guard lock(mu_);
      tasks.swap(agent_tasks_);
    }
    for (auto& task : tasks) task();
    // A nudge starts the next round at once, but rounds stay kMinRound
    // apart: the agent's own writes to etcd nudge it too, through the watch.
    std::unique_lock lock(mu_);
    if (cv_.wait_until(lock, started + kMinRound, [this] { return stopping_; })) return;
    if (cv_.wait_until(lock, started + tick, [this] { return stopping_ || nudged_; }) && stopping_) return;
    nudged_ = false;
  }
}

void Cluster::watch() {
  auto idle = std::max(std::chrono::milliseconds(30'000), 4 * options_.lease);
  for (;;) {
    (void)watch_etcd_->watch(options_.etcd_prefix, [this] { nudge(); }, idle);
    std::unique_lock lock(mu_);
    // Between two watches the agent's tick alone notices changes.
    if (cv_.wait_for(lock, std::chrono::milliseconds(250), [this] { return stopping_; })) return;
  }
}

void Cluster::acquire_lease() {
  auto sent = Clock::now();
  int64_t ttl_s = std::max<int64_t>(1, options_.lease.count() / 1000);
  auto lease = etcd_->grant(ttl_s);
  if (!lease) {
    log_warn("cluster: cannot get a lease: " + lease.status().message());
    return;
  }
  // The node's key exists only while no other process holds this node ID:
  // a restarted node waits here until its previous lease has expired.
  json node = {{"peer", advertise_}};
  auto made = etcd_->txn({etcd::Compare::absent(key("nodes/" + options_.node_id))},
                         {etcd::Op::put(key("nodes/" + options_.node_id), node.dump(), *lease)}, {});
  if (!made || !made->succeeded) {
    (void)etcd_->revoke(*lease);
    if (made) {
      log_info("cluster: node " + options_.node_id +
               " is still registered (a previous process's lease); waiting for it to expire");
    }
    return;
  }
  lease_ = *lease;
  stamped_.clear();
  // The first lease of this process: whatever it owns, its backups may lack
  // commits it made before it stopped, which it will never ship.
  first_lease_of_process_ = !had_lease_;
  had_lease_ = true;
  // The view still marks the partitions of the lost lease as served here:
  // publish one that serves none before the new lease makes lease_live()
  // true, or a request arriving in between would run on a partition that
  // may have moved (each is served again once refresh() stamps it).
  publish();
  auto margin = std::max(std::chrono::milliseconds(250), options_.lease / 5);
  deadline_ns_.store(std::chrono::duration_cast<std::chrono::nanoseconds>(
                         (sent + std::chrono::seconds(ttl_s) - margin).time_since_epoch())
                         .count());
  lease_lost_.store(false);
  renewing_.store(lease_);
  seen_revision_ = -1;  // read everything again
  log_info("cluster: node " + options_.node_id + " joined (lease " + std::to_string(lease_) + ")");
}

void Cluster::keep_lease() {
  auto tick = std::max(std::chrono::milliseconds(100), options_.lease / 6);
  auto margin = std::max(std::chrono::milliseconds(250), options_.lease / 5);
  for (;;) {
    auto sent = Clock::now();
    if (int64_t lease = renewing_.load(); lease != 0) {
      auto ttl = keeper_etcd_->keep_alive(lease);
      // A failure is "unknown": the deadline stays, and runs out on its own.
      if (ttl && renewing_.load() == lease) {
        if (*ttl <= 0) {
          deadline_ns_.store(0);
          lease_lost_.store(true);
          renewing_.store(0);
          nudge();
        } else {
          deadline_ns_.store(std::chrono::duration_cast<std::chrono::nanoseconds>(
                                 (sent + std::chrono::seconds(*ttl) - margin).time_since_epoch())
                                 .count());
        }
      }
    }
    std::unique_lock lock(mu_);
    if (cv_.wait_until(lock, sent + tick, [this] { return stopping_; })) return;
  }
}

void Cluster::refresh() {
  auto revision = etcd_->revision();
  if (!revision) return;
  bool changed = *revision != seen_revision_;
  if (changed) {
    auto nodes = etcd_->get_prefix(key("nodes/"));
    if (!nodes) return;
    auto parts = etcd_->get_prefix(key("partitions/"));
    if (!parts) return;
    auto retired = etcd_->get_prefix(key("retired/"));
    if (!retired) return;
    retired_.clear();
    for (const auto& kv : retired->kvs) retired_.insert(kv.key.substr(key("retired/").size()));
    nodes_.clear();
    for (const auto& kv : nodes->kvs) {
      json j = json::parse(kv.value, nullptr, false);
      std::string id = kv.key.substr(key("nodes/").size());
      nodes_[id] = ClusterView::Node{j.is_object() ? j.value("peer", "") : "", kv.lease};
    }
    std::vector<ClusterView::Partition> records(static_cast<size_t>(partitions_));
    for (const auto& kv : parts->kvs) {
      std::string rest = kv.key.substr(key("partitions/").size());
      if (rest.empty() || rest.size() > 5 || rest.find_first_not_of("0123456789") != std::string::npos) continue;
      int p = std::stoi(rest);
      if (p >= partitions_) continue;
      if (auto r = rules::parse_record(kv.value, kv.mod_revision)) records[static_cast<size_t>(p)] = std::move(*r);
    }
    records_ = std::move(records);
    // Both reads saw at least this revision; a change after it shows as a
    // newer revision next time.
    seen_revision_ = *revision;
    std::set<std::string> members;
    for (const auto& [id, n] : nodes_) members.insert(id);
    if (members != last_members_) {
      last_members_ = std::move(members);
      members_since_ = Clock::now();
    }
  }
  if (lease_ == 0) {
    if (changed) publish();
    return;
  }
  if (fresh_data_ && !inherited_known_) {
    // The first read under a lease with an empty folder: what this node
    // owns now it owned from before (nothing was handed to it yet).
    for (int p = 0; p < partitions_; ++p) {
      if (records_[static_cast<size_t>(p)].owner == options_.node_id) inherited_.insert(p);
    }
    inherited_known_ = true;
  }
  if (!left_in_sync_) {
    leave_in_sync_sets();
    changed = true;
  }
  bool pending = std::any_of(records_.begin(), records_.end(), [&](const auto& r) {
    return r.owner.empty() || r.owner == options_.node_id ||
           (!nodes_.count(r.owner) && contains(r.in_sync, options_.node_id));
  });
  std::set<int> before = stamped_;
  if (pending && place_and_stamp()) changed = true;
  if (fresh_data_) clear_fresh();
  if (changed) publish();
  // Partitions taken over from a dead owner: their objects' alarms and
  // catalog rows, now that this node serves them.
  for (int p : stamped_) {
    if (!before.count(p) && adopting_.erase(p)) adopt_objects(p);
  }
}

std::vector<std::string> Cluster::preferred(int p) const {
  return rules::preferred_replicas(p, last_members_, records_[static_cast<size_t>(p)].replicas, options_.replicas,
                            retired_);
}

bool Cluster::settled() const { return Clock::now() - members_since_ >= options_.lease; }

Result<int64_t> Cluster::swap_records(const std::vector<RecordSwap>& swaps, std::vector<etcd::Compare> also) {
  std::vector<etcd::Op> puts;
  for (const auto& s : swaps) {
    std::string k = partition_key(s.p);
    also.push_back(etcd::Compare::unchanged_since(k, s.epoch));
    puts.push_back(etcd::Op::put(k, s.next.record()));
  }
  auto made = etcd_->txn(also, puts, {});
  if (!made) return made.status();
  if (!made->succeeded) {
    return Status(Code::kConflict, swaps.size() == 1 ? "partition " + std::to_string(swaps[0].p) + "'s record changed meanwhile"
                                                     : "a partition's record changed meanwhile");
  }
  return made->revision;
}

Result<int64_t> Cluster::swap_record(int p, int64_t epoch, const ClusterView::Partition& next,
                                     std::vector<etcd::Compare> also) {
  return swap_records({RecordSwap{p, epoch, next}}, std::move(also));
}

bool Cluster::place_and_stamp() {
  bool changed = false;
  const std::set<std::string>& members = last_members_;  // the live nodes
  auto now = Clock::now();
  // Nodes started together join within a moment of each other: place only
  // once membership has been still for a lease, so they share the partitions.
  bool settled = this->settled();
  // The changes go to etcd kBatch at a time, each batch one transaction (an
  // etcd write takes a raft round and a disk flush: one at a time, a dead
  // node's eighty-odd partitions took a second or more to take over).
  enum class Kind { kPlace, kTakeOver, kRestamp };
  struct Change {
    Kind kind;
    RecordSwap swap;
  };
  std::vector<Change> batch;
  // After the record is written at revision `epoch`.
  auto done = [&](const Change& c, int64_t epoch) {
    int p = c.swap.p;
    auto& r = records_[static_cast<size_t>(p)];
    // The hosts in memory from when this node served p before stay good
    // only if nobody changed the record since (no other owner, no ships).
    bool untouched = c.kind == Kind::kRestamp && stamped_at_.count(p) && served_epoch_[p] == r.epoch;
    if (c.kind == Kind::kTakeOver) {
      log_info("cluster: took over partition " + std::to_string(p) + " from node " + r.owner);
      adopting_.insert(p);
    } else if (c.kind == Kind::kRestamp && r.handed) {
      // Taken by a hand-off: its objects' alarms and catalog rows, as
      // after a takeover.
      log_info("cluster: took partition " + std::to_string(p) + ", handed over");
      adopting_.insert(p);
    }
    r = c.swap.next;
    r.epoch = epoch;
    stamped_.insert(p);
    if (!untouched) stamped_at_[p] = epoch;
    changed = true;
  };
  auto flush = [&] {
    if (batch.empty()) return;
    std::vector<RecordSwap> swaps;
    for (const auto& c : batch) swaps.push_back(c.swap);
    // A takeover waits for the ship being applied: no copy it opens is
    // half written.
    std::unique_lock apply(apply_mu_, std::defer_lock);
    if (std::any_of(batch.begin(), batch.end(), [](const Change& c) { return c.kind == Kind::kTakeOver; })) {
      apply.lock();
    }
    // A backup writes the history records of its copies without syncing
    // them (storage/replica_history.h): before it serves copies it held as
    // a backup, they go to disk, all at once.
    if (runtime_->options().history && std::any_of(batch.begin(), batch.end(), [](const Change& c) {
          return c.kind != Kind::kPlace;
        })) {
      if (Status st = sync_filesystem(runtime_->options().data_dir); !st) {
        log_error("cluster: cannot sync the data folder before taking partitions: " + st.message());
        batch.clear();
        return;
      }
    }
    auto made = swap_records(swaps);
    if (made) {
      for (const auto& c : batch) done(c, *made);
    } else if (made.status().code() == Code::kConflict) {
      // Another node changed one of them: each on its own, so that one
      // stale record holds up none of the others.
      for (const auto& c : batch) {
        if (auto one = swap_record(c.swap.p, c.swap.epoch, c.swap.next)) done(c, *one);
      }
    }
    batch.clear();
  };
  for (int p = 0; p < partitions_; ++p) {
    // Leave the rest for the next round rather than hold up this one.
    if (Clock::now() - now > options_.lease / 4) break;
    auto& r = records_[static_cast<size_t>(p)];
    if (r.owner.empty()) {
      if (!settled) continue;
      if (auto mine = rules::place(p, options_.node_id, members, options_.replicas, retired_)) {
        batch.push_back({Kind::kPlace, {p, 0, std::move(*mine)}});
      }
    } else if (r.owner != options_.node_id && !nodes_.count(r.owner) && contains(r.in_sync, options_.node_id)) {
      if (auto next = rules::take_over(p, r, options_.node_id, members)) {
        batch.push_back({Kind::kTakeOver, {p, r.epoch, std::move(*next)}});
      }
    } else if (r.owner != options_.node_id || stamped_.count(p) || moving_.count(p)) {
      continue;
    } else if (inherited_.count(p)) {
      changed = step_down(p) || changed;
    } else {
      // Owned from before this lease, or handed to this node: a new epoch
      // before serving it, so that anything still holding the old one can
      // tell. A node's first lease may follow commits it never shipped, so
      // its backups are out of sync, unless the partition was handed to it
      // and it has served it under no lease since.
      batch.push_back({Kind::kRestamp, {p, r.epoch, rules::restamp(r, first_lease_of_process_)}});
    }
    if (batch.size() >= kBatch) flush();
  }
  flush();
  return changed;
}

bool Cluster::step_down(int p) {
  auto& r = records_[static_cast<size_t>(p)];
  auto down = rules::step_down(p, r, options_.node_id, last_members_);
  if (down.kind == rules::StepDown::Kind::kWait) return false;
  auto made = swap_record(p, r.epoch, down.record);
  if (!made) return false;
  inherited_.erase(p);
  down.record.epoch = *made;
  r = down.record;
  if (down.kind == rules::StepDown::Kind::kServeAnew) {
    log_error("cluster: partition " + std::to_string(p) + " had its only in-sync copy in this node's data folder, "
              "which is empty now: its objects start anew");
    stamped_.insert(p);
    stamped_at_[p] = *made;
  } else {
    log_warn("cluster: this node's data folder is empty; partition " + std::to_string(p) + " goes to node " +
             r.owner + ", which holds it");
  }
  return true;
}

void Cluster::clear_fresh() {
  if (!left_in_sync_ || !inherited_known_ || !inherited_.empty()) return;
  if (::unlink((data_dir_ + "/" + kEmptyMarker).c_str()) != 0 && errno != ENOENT) return;
  (void)sync_dir(data_dir_);
  fresh_data_ = false;
  log_info("cluster: this node's copies are disowned; its data folder counts as its own from now on");
}

void Cluster::publish() {
  // Calls under way to a node that left (or moved its peer address) fail at
  // once: the node may be paused and never answer.
  auto old = view_.load(std::memory_order_acquire);
  std::vector<std::string> gone;
  for (const auto& [id, n] : old->nodes) {
    auto now = nodes_.find(id);
    if (now == nodes_.end() || now->second.peer != n.peer) gone.push_back(n.peer);
  }
  if (!gone.empty() && runtime_) {
    for (size_t i = 0; i < runtime_->shard_count(); ++i) {
      runtime_->shard(i).post([this, i, gone] {
        if (!pools_) return;
        for (const auto& peer : gone) pools_->cancel(i, peer);
      });
    }
  }
  auto view = std::make_shared<ClusterView>();
  view->revision = seen_revision_;
  view->nodes = nodes_;
  view->partitions = records_;
  view->retired = retired_;
  for (int p = 0; p < partitions_; ++p) {
    auto& r = view->partitions[static_cast<size_t>(p)];
    auto moving = moving_.find(p);
    if (moving != moving_.end()) r.moving_to = moving->second;
    r.serving_here = r.owner == options_.node_id && stamped_.count(p) > 0 && moving == moving_.end();
    if (r.serving_here) {
      r.served_since = stamped_at_[p];
      served_epoch_[p] = r.epoch;
    }
  }
  view_.store(std::move(view), std::memory_order_release);
}

Placement::Route Cluster::route(const ObjectId& id) const {
  int p = partition_of(id);
  auto view = view_.load(std::memory_order_acquire);
  const auto& r = view->partitions[static_cast<size_t>(p)];
  Route out;
  out.partition = p;
  out.epoch = r.epoch;
  if (r.serving_here) {
    if (lease_live()) return out;
    out.kind = Route::Kind::kUnavailable;
    out.reason = "this node's cluster lease is not live (etcd unreachable?); partition " +
                 std::to_string(p) + " is not served until it is renewed";
    return out;
  }
  if (r.owner.empty()) {
    out.kind = Route::Kind::kUnavailable;
    // A node that has not read etcd yet (it just started) knows no owner
    // for a moment only.
    out.transient = view->revision <= 0;
    out.reason = out.transient ? "this node has not read the cluster's state yet"
                               : "partition " + std::to_string(p) + " has no owner yet (the cluster is starting)";
    return out;
  }
  if (!r.moving_to.empty() || (r.owner == options_.node_id && r.handed)) {
    // A hand-off: the old owner drains, then the new one stamps; moments.
    out.kind = Route::Kind::kUnavailable;
    out.transient = true;
    out.reason = "partition " + std::to_string(p) + " is moving to node " +
                 (r.moving_to.empty() ? options_.node_id : r.moving_to);
    return out;
  }
  if (r.owner == options_.node_id) {
    out.kind = Route::Kind::kUnavailable;
    out.reason = "partition " + std::to_string(p) + " is not served yet on this node (rejoining)";
    return out;
  }
  auto node = view->nodes.find(r.owner);
  if (node == view->nodes.end() || node->second.peer.empty()) {
    out.kind = Route::Kind::kUnavailable;
    out.reason = "partition " + std::to_string(p) + "'s owner, node " + r.owner + ", is down; its objects " +
                 (r.in_sync.size() > 1 ? std::string("move to a backup within a lease")
                                       : std::string("wait for it to return (no backup is in sync)"));
    return out;
  }
  out.kind = Route::Kind::kRemote;
  out.node = r.owner;
  out.peer = node->second.peer;
  return out;
}

std::vector<Placement::Peer> Cluster::other_nodes() const {
  auto view = view_.load(std::memory_order_acquire);
  std::vector<Peer> out;
  for (const auto& [id, n] : view->nodes) {
    if (id != options_.node_id && !n.peer.empty()) out.push_back(Peer{id, n.peer});
  }
  return out;
}

bool Cluster::serves_here(const ObjectId& id) const {
  auto view = view_.load(std::memory_order_acquire);
  return view->partitions[static_cast<size_t>(partition_of(id))].serving_here && lease_live();
}

void Cluster::set_retired(std::string node, bool retired, std::function<void(Response)> done) {
  if (node.empty() || node.size() > 64 || node.find('/') != std::string::npos) {
    return done(Response::error(400, "give the node's ID: ?node=<id>"));
  }
  {
    std::lock_guard lock(mu_);
    agent_tasks_.push_back([this, node = std::move(node), retired, done = std::move(done)] {
      bool known = nodes_.count(node) > 0 || retired_.count(node) > 0;
      for (const auto& r : records_) known = known || contains(r.replicas, node);
      if (!known) return done(Response::error(404, "no node " + node + " in this cluster"));
      if (retired) {
        bool others = std::any_of(nodes_.begin(), nodes_.end(),
                                  [&](const auto& n) { return n.first != node && !retired_.count(n.first); });
        if (!others) return done(Response::error(409, "no live node would be left to serve the partitions"));
      }
      std::string k = key("retired/" + node);
      json at = {{"at", std::chrono::duration_cast<std::chrono::milliseconds>(
                            std::chrono::system_clock::now().time_since_epoch())
                            .count()}};
      auto made = retired ? etcd_->txn({}, {etcd::Op::put(k, at.dump())}, {})
                          : etcd_->txn({}, {etcd::Op::remove(k)}, {});
      if (!made) return done(Response::error(503, "etcd: " + made.status().message()));
      log_info(std::string("cluster: node ") + node + (retired ? " retired" : " no longer retired") +
               " by an operator");
      seen_revision_ = -1;  // read it back at once
      json out = {{"node", node}, {"retired", retired}};
      done(Response::json(out.dump()));
    });
    nudged_ = true;
  }
  cv_.notify_all();
}

Status Cluster::may_release(const ObjectId& id) const {
  int p = partition_of(id);
  auto view = view_.load(std::memory_order_acquire);
  const auto& r = view->partitions[static_cast<size_t>(p)];
  // While handing the partition off, events under way still finish here
  // (nothing new starts; the record names this node until they have).
  if (!(r.serving_here || !r.moving_to.empty()) || !lease_live()) {
    return Status(Code::kUnavailable, "this node stopped serving partition " + std::to_string(p) +
                                          " (its lease lapsed, or the partition moved) before the answer could leave");
  }
  if (static_cast<int>(r.in_sync.size()) < options_.min_copies) {
    return Status(Code::kUnavailable, "partition " + std::to_string(p) + " has " + std::to_string(r.in_sync.size()) +
                                          " in-sync copies, fewer than --min-copies " +
                                          std::to_string(options_.min_copies) + "; it answers again once a copy catches up");
  }
  return Status::ok();
}

void Cluster::trace_release(const NamespaceImpl* ns, const ObjectId& id,
                            std::chrono::steady_clock::time_point started) {
  // One write(2) per line to an O_APPEND file: lines from several shards do
  // not interleave, and a SIGKILL loses none already written.
  char line[256];
  int n = std::snprintf(line, sizeof line, "%s %s %s %lld %lld %lld\n", options_.node_id.c_str(),
                        ns->name().c_str(), id.to_string().c_str(), static_cast<long long>(serving_since(id)),
                        static_cast<long long>(started.time_since_epoch().count()),
                        static_cast<long long>(std::chrono::steady_clock::now().time_since_epoch().count()));
  if (n > 0 && n < static_cast<int>(sizeof line)) (void)!::write(trace_fd_, line, static_cast<size_t>(n));
}

int64_t Cluster::serving_since(const ObjectId& id) const {
  auto view = view_.load(std::memory_order_acquire);
  return view->partitions[static_cast<size_t>(partition_of(id))].served_since;
}

bool Cluster::wait_ready(std::chrono::milliseconds timeout) const {
  auto deadline = Clock::now() + timeout;
  while (Clock::now() < deadline) {
    auto view = view_.load();
    bool ready = lease_live() && !view->partitions.empty();
    for (const auto& p : view->partitions) {
      if (p.owner.empty() || (p.owner == options_.node_id && !p.serving_here)) ready = false;
    }
    if (ready) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  return false;
}

std::string Cluster::status_json() const {
  auto view = view_.load();
  json nodes = json::array();
  std::map<std::string, int> owned;
  for (const auto& p : view->partitions) {
    if (!p.owner.empty()) ++owned[p.owner];
  }
  std::set<std::string> named;
  for (const auto& [id, n] : view->nodes) {
    nodes.push_back({{"id", id}, {"peer", n.peer}, {"live", true}, {"partitions", owned[id]},
                     {"retired", view->retired.count(id) > 0}});
    named.insert(id);
  }
  for (const auto& [id, count] : owned) {
    if (!named.count(id)) {
      nodes.push_back({{"id", id}, {"live", false}, {"partitions", count}, {"retired", view->retired.count(id) > 0}});
      named.insert(id);
    }
  }
  for (const auto& id : view->retired) {
    if (!named.count(id)) nodes.push_back({{"id", id}, {"live", false}, {"partitions", 0}, {"retired", true}});
  }
  json partitions = json::array();
  int unplaced = 0, below_min = 0;
  for (size_t p = 0; p < view->partitions.size(); ++p) {
    const auto& r = view->partitions[p];
    if (r.owner.empty()) ++unplaced;
    below_min += !r.owner.empty() && static_cast<int>(r.in_sync.size()) < options_.min_copies;
    partitions.push_back({{"partition", p},
                          {"owner", r.owner},
                          {"replicas", r.replicas},
                          {"in_sync", r.in_sync},
                          {"epoch", r.epoch},
                          {"owner_live", view->nodes.count(r.owner) > 0}});
  }
  // Partitions not yet where the preferred order wants them (moves under
  // way or waiting for a catch-up); none with one copy, which never moves.
  int moves_pending = 0;
  if (options_.replicas > 1) {
    std::set<std::string> live;
    for (const auto& [id, n] : view->nodes) live.insert(id);
    for (size_t p = 0; p < view->partitions.size(); ++p) {
      moves_pending +=
          !rules::placed_as_preferred(static_cast<int>(p), view->partitions[p], live, options_.replicas, view->retired);
    }
  }
  int owned_here = 0, serving_here = 0;
  for (const auto& p : view->partitions) {
    owned_here += p.owner == options_.node_id;
    serving_here += p.serving_here;
  }
  json out = {{"mode", "cluster"},
              {"owned", owned_here},
              {"serving", lease_live() ? serving_here : 0},
              {"node", options_.node_id},
              {"lease_live", lease_live()},
              {"etcd_revision", view->revision},
              {"partition_count", view->partitions.size()},
              {"unplaced", unplaced},
              {"replicas", options_.replicas},
              {"min_copies", options_.min_copies},
              {"below_min_copies", below_min},
              {"moves_pending", moves_pending},
              {"nodes", nodes},
              {"partitions", partitions}};
  return out.dump();
}

}  // namespace dobj::internal
