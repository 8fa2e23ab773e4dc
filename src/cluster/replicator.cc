// Replication of each partition's commits to its in-sync backups: the
// owner's shards ship (ShardReplicatorImpl), backups apply (apply_replica),
// and the agent keeps the in-sync sets in etcd (shrinks, leaving on rejoin,
// adopting the objects of a partition taken over). docs/cluster.md.
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <future>
#include <map>
#include <nlohmann/json.hpp>
#include <set>

#include "base/clock.h"
#include "base/fs.h"
#include "base/hex.h"
#include "base/log.h"
#include "cluster/cluster.h"
#include "cluster/etcd.h"
#include "cluster/peer.h"
#include "runtime/alarm_runner.h"
#include "runtime/object_host.h"
#include "runtime/runtime.h"
#include "storage/replica_history.h"
#include "storage/snapshots.h"

namespace dobj::internal {
namespace {

using nlohmann::json;

// The ID of a hex string, for its partition only (the check is not verified).
std::optional<ObjectId> id_of(const std::string& hex) {
  auto bytes = from_hex_lower(hex);
  if (!bytes || bytes->size() != ObjectId::kSize) return std::nullopt;
  ObjectId::Bytes b;
  std::copy(bytes->begin(), bytes->end(), b.begin());
  return ObjectId(b, std::nullopt);
}

// The partition a record belongs to; P (none) for a malformed one.
uint32_t partition_of_record(const Cluster& cluster, const ReplicaRecord& r) {
  auto partitions = static_cast<uint32_t>(cluster.partitions());
  if (r.kind == ReplicaRecord::Kind::kSnapshot) {
    return snapshots::valid_name(r.id) ? snapshots::partition_of(r.id, partitions) : partitions;
  }
  auto id = id_of(r.id);
  return id ? static_cast<uint32_t>(cluster.partition_of(*id)) : partitions;
}

// Calls fn(ns, id, path) for every object database in the namespaces'
// folders (the copies a backup holds included).
template <typename F>
void for_each_database(Runtime& runtime, F fn) {
  for (const auto& ns : runtime.namespaces()) {
    std::error_code ec;
    for (auto it = std::filesystem::recursive_directory_iterator(ns->dir(), ec);
         !ec && it != std::filesystem::recursive_directory_iterator(); it.increment(ec)) {
      std::string name = it->path().filename().string();
      if (name.size() != 64 + 7 || name.compare(64, 7, ".sqlite") != 0) continue;
      auto id = ns->ids().from_string(name.substr(0, 64));
      if (id) fn(ns.get(), *id, it->path().string());
    }
  }
}

class ShardReplicatorImpl final : public ShardReplicator {
 public:
  ShardReplicatorImpl(Cluster* cluster, Shard* shard) : cluster_(cluster), shard_(shard) {}

  void record(ReplicaRecord r) override {
    r.partition = partition_of_record(*cluster_, r);
    records_.push_back(std::move(r));
  }

  void ship(std::function<void(Status)> done) override {
    if (records_.empty()) return done(Status::ok());
    std::vector<ReplicaRecord> records = std::exchange(records_, {});
    auto view = cluster_->view();
    const std::string& me = cluster_->node_id();
    std::map<std::string, std::vector<size_t>> per_node;
    std::map<std::string, std::set<int>> parts_of;  // required: a failure drops the node
    // Learners asked once per partition a ship; those this ship does not wait
    // for are counted as under way until it ends (Cluster::learners_for_ship;
    // a failure ends the catch-up): node -> partition -> catch-up run.
    std::map<int, std::vector<Cluster::Learner>> learners_of;
    std::map<std::string, std::map<int, uint64_t>> unwaited;
    auto learners = [&](int part) -> const std::vector<Cluster::Learner>& {
      auto [it, fresh] = learners_of.try_emplace(part);
      if (fresh) {
        it->second = cluster_->learners_for_ship(part);
        for (const auto& l : it->second) {
          if (!l.required) unwaited[l.node][part] = l.run;
        }
      }
      return it->second;
    };
    for (size_t i = 0; i < records.size(); ++i) {
      ReplicaRecord& r = records[i];
      const auto& p = view->partitions[r.partition];
      if (p.owner != me) {
        // Its commits were made while it served the partition; another
        // node has it now, so they can never count as acknowledged. As when
        // a backup cannot be dropped: the node restarts clean.
        log_error("cluster: partition " + std::to_string(r.partition) +
                  " moved to another node while commits of its objects waited here; exiting so "
                  "that the node rejoins clean");
        std::fflush(nullptr);
        std::_Exit(75);
      }
      r.epoch = p.epoch;
      int part = static_cast<int>(r.partition);
      if (!r.only_to.empty()) {  // a snapshot for p's learner
        per_node[r.only_to].push_back(i);
        (void)learners(part);
        continue;
      }
      for (const auto& n : p.in_sync) {
        if (n == me) continue;
        per_node[n].push_back(i);
        parts_of[n].insert(part);
      }
      for (const auto& l : learners(part)) {
        if (std::find(p.in_sync.begin(), p.in_sync.end(), l.node) != p.in_sync.end()) continue;
        per_node[l.node].push_back(i);
        if (l.required) parts_of[l.node].insert(part);
      }
    }
    // Counted, but nothing goes to it (it is in the in-sync set already).
    for (const auto& [node, runs] : unwaited) {
      if (per_node.count(node)) continue;
      for (const auto& [p, run] : runs) cluster_->learner_ship_ended(p, node, run, true);
    }
    if (per_node.empty()) return done(Status::ok());
    struct Gather {
      size_t left;
      std::vector<std::pair<int, std::string>> drops;
      std::function<void(Status)> done;
    };
    auto g = std::make_shared<Gather>(Gather{per_node.size(), {}, std::move(done)});
    auto answered = [this, g](const std::string& node, const std::set<int>& parts,
                              const std::map<int, uint64_t>& learning, bool ok) {
      if (!ok) {
        for (int p : parts) {
          g->drops.emplace_back(p, node);
          cluster_->learner_failed(p, node);
        }
      }
      for (const auto& [p, run] : learning) cluster_->learner_ship_ended(p, node, run, ok);
      if (--g->left > 0) return;
      if (g->drops.empty()) return g->done(Status::ok());
      cluster_->shrink_in_sync(std::move(g->drops), std::move(g->done));
    };
    // A backup that does not answer within a lease is taken out of the
    // in-sync sets rather than holding every write.
    auto timeout = cluster_->options().lease;
    for (auto& [node, indexes] : per_node) {
      std::vector<ReplicaRecord> subset;
      subset.reserve(indexes.size());
      for (size_t i : indexes) subset.push_back(records[i]);
      auto peer = view->nodes.find(node);
      const std::set<int>& parts = parts_of[node];
      const std::map<int, uint64_t>& learning = unwaited[node];
      if (peer == view->nodes.end() || peer->second.peer.empty()) {
        answered(node, parts, learning, false);
        continue;
      }
      Request req;
      req.method = "POST";
      req.target = "/_dobj_peer/replicate";
      req.headers = {{"dobj-peer-token", cluster_->peer_token()}, {"dobj-peer-replicate", "1"}};
      req.body = encode_replica_records(subset);
      cluster_->pools().exchange(static_cast<size_t>(shard_->index()), shard_->io(), peer->second.peer,
                                 std::move(req), timeout,
                                 [answered, cluster = cluster_, node = node, parts, learning](Result<Response> r) {
                                   bool ok = r && r->status == 200;
                                   if (!r) cluster->backup_unreachable(node);
                                   if (!ok) {
                                     log_warn("cluster: backup " + node + " did not take a ship: " +
                                              (r ? std::to_string(r->status) + " " + r->body
                                                 : r.status().message()));
                                   }
                                   answered(node, parts, learning, ok);
                                 });
    }
  }

 private:
  Cluster* cluster_;
  Shard* shard_;
  std::vector<ReplicaRecord> records_;
};

// A copy that was this node's own object until it was handed away keeps
// its WAL (objects close without a checkpoint), whose frames would override
// the shipped pages at the next open. SQLite copies the WAL's committed frames
// into the file and removes it before the first ship lands on the copy.
Status fold_wal(const std::string& path) {
  sqlite3* db = nullptr;
  int rc = sqlite3_open_v2(path.c_str(), &db, SQLITE_OPEN_READWRITE, nullptr);
  if (rc == SQLITE_OK) {
    rc = sqlite3_exec(db, "PRAGMA locking_mode=EXCLUSIVE; PRAGMA wal_checkpoint(TRUNCATE);", nullptr, nullptr,
                      nullptr);
  }
  std::string error = rc == SQLITE_OK ? "" : sqlite3_errmsg(db);
  sqlite3_close(db);  // the last connection: removes the WAL
  if (!error.empty()) return Status(Code::kInternal, "folding the WAL of " + path + ": " + error);
  if (std::filesystem::exists(path + "-wal")) return Status(Code::kInternal, path + "-wal is still there");
  return Status::ok();
}

}  // namespace

std::unique_ptr<ShardReplicator> Cluster::make_replicator(Shard& shard) {
  if (options_.replicas <= 1) return nullptr;
  return std::make_unique<ShardReplicatorImpl>(this, &shard);
}

void Cluster::apply_replica(std::string body, std::function<void(Response)> done) {
  runtime_->run_blocking([this, body = std::move(body), done = std::move(done)] {
    auto records = decode_replica_records(body);
    if (!records) return done(Response::error(400, records.status().message()));
    std::lock_guard lock(apply_mu_);
    auto view = this->view();
    for (const auto& r : *records) {
      if (r.partition >= view->partitions.size() || partition_of_record(*this, r) != r.partition) {
        return done(Response::error(400, "a record of the wrong partition"));
      }
      // In sync or catching up, a copy takes what its owner ships; never
      // the owner's own partition, nor from an owner older than it knows.
      const auto& p = view->partitions[r.partition];
      std::string why = p.owner == options_.node_id ? "this node owns partition "
                        : r.epoch < p.epoch         ? "an older epoch of partition "
                                                    : "";
      if (!why.empty()) return done(Response::error(409, why + std::to_string(r.partition)));
    }
    std::map<std::string, int> files;  // path -> descriptor, synced at the end
    // With --history, the owner's history records go beside the copies.
    const ServerOptions& options = runtime_->options();
    std::optional<ReplicaHistories> histories;
    if (options.history) {
      histories.emplace([&options](const std::string& ns) { return options.history_keep_ms(ns); },
                        static_cast<uint64_t>(options.history_max_bytes));
    }
    std::vector<std::pair<const ReplicaRecord*, std::string>> copies;  // applied, with their files
    std::set<std::string> dirs;        // folders whose entries changed
    Status failed;
    auto open_file = [&](const std::string& path, int flags) -> int {
      auto it = files.find(path);
      if (it != files.end()) return it->second;
      int fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC | flags, 0644);
      if (fd >= 0) files[path] = fd;
      return fd;
    };
    auto close_file = [&](const std::string& path) {  // a copy about to be replaced or removed
      if (auto it = files.find(path); it != files.end()) {
        ::close(it->second);
        files.erase(it);
      }
    };
    for (auto& r : *records) {
      if (r.kind == ReplicaRecord::Kind::kSnapshot) {
        // Written and synced at once: snapshots are rare, and each is whole.
        failed = snapshots::write(snapshot_dir(), r.id, r.file, r.history_time_ms);
        if (!failed.is_ok()) break;
        continue;
      }
      const NamespaceImpl* ns = runtime_->find_namespace(r.ns);
      if (!ns) {
        failed = Status(Code::kInvalidArgument, "no binding " + r.ns + " on this node");
        break;
      }
      std::string dir = ns->object_dir(r.id);
      std::string path = dir + "/" + NamespaceImpl::object_file(r.id);
      if (r.kind == ReplicaRecord::Kind::kRemove) {
        close_file(path);
        ::unlink((path + "-wal").c_str());
        ::unlink(path.c_str());
        if (histories) {
          if (Status st = histories->removed(path); !st) {
            failed = st;
            break;
          }
        }
        dirs.insert(dir);
        copies.push_back({&r, path});
        continue;
      }
      if (!std::filesystem::exists(dir)) {
        if (Status st = make_dirs(dir); !st) {
          failed = st;
          break;
        }
        dirs.insert(dir.substr(0, dir.rfind('/')));
      }
      bool existed = std::filesystem::exists(path);
      if (r.kind == ReplicaRecord::Kind::kAppend) {
        // A part of a large copy, assembled beside it until it is whole.
        auto append = [&](const std::string& to, const std::string& bytes, uint64_t at) {
          int fd = open_file(to, 0);
          if (fd >= 0 && at == 0 && ::ftruncate(fd, 0) != 0) fd = -1;
          struct stat st;
          if (fd < 0 || ::fstat(fd, &st) != 0) return Status(Code::kInternal, "opening " + to + ": " + std::strerror(errno));
          if (static_cast<uint64_t>(st.st_size) != at) {
            return Status(Code::kInvalidArgument, to + " holds " + std::to_string(st.st_size) + " bytes, not " +
                                                      std::to_string(at) + ": a part is missing");
          }
          if (::pwrite(fd, bytes.data(), bytes.size(), static_cast<off_t>(at)) != static_cast<ssize_t>(bytes.size())) {
            return Status(Code::kInternal, "writing " + to + ": " + std::strerror(errno));
          }
          return Status::ok();
        };
        failed = append(path + ".catchup", r.file, r.history_seq);
        if (failed.is_ok()) failed = append(path + "-history.catchup", r.history, static_cast<uint64_t>(r.history_time_ms));
        if (!failed.is_ok()) break;
        continue;
      }
      if (r.kind == ReplicaRecord::Kind::kReplace && r.history_base) {
        // The assembled parts, whole: moved into place.
        for (const std::string& staged : {path + ".catchup", path + "-history.catchup"}) {
          if (auto it = files.find(staged); it != files.end()) {
            if (::fdatasync(it->second) != 0) failed = Status(Code::kInternal, "syncing " + staged);
            ::close(it->second);
            files.erase(it);
          } else if (Status st = sync_file(staged); !st) {
            failed = st;
          }
        }
        close_file(path);
        ::unlink((path + "-wal").c_str());
        if (failed.is_ok()) {
          // No history came (the owner keeps none): none stays either.
          std::string history = path + "-history", staged = history + ".catchup";
          bool none = std::filesystem::file_size(staged) == 0;
          if (::rename((path + ".catchup").c_str(), path.c_str()) != 0 ||
              (none ? ::unlink(staged.c_str()) != 0 || (::unlink(history.c_str()) != 0 && errno != ENOENT)
                    : ::rename(staged.c_str(), history.c_str()) != 0)) {
            failed = Status(Code::kInternal, "moving the parts of " + path + " into place: " + std::strerror(errno));
          }
        }
        if (failed.is_ok() && histories) failed = histories->replaced(r, path);
        if (!failed.is_ok()) break;
        dirs.insert(dir);
        copies.push_back({&r, path});
        continue;
      }
      if (r.kind == ReplicaRecord::Kind::kReplace) {
        close_file(path);
        ::unlink((path + "-wal").c_str());
        int fd = open_file(path, O_TRUNC);
        if (fd < 0 || ::pwrite(fd, r.file.data(), r.file.size(), 0) != static_cast<ssize_t>(r.file.size())) {
          failed = Status(Code::kInternal, "writing " + path + ": " + std::strerror(errno));
          break;
        }
        if (histories) {
          if (Status st = histories->replaced(r, path); !st) {
            failed = st;
            break;
          }
        }
      } else {
        if (!files.count(path) && std::filesystem::exists(path + "-wal")) {
          if (Status st = fold_wal(path); !st) {
            failed = st;
            break;
          }
        }
        int fd = open_file(path, 0);
        if (fd < 0) {
          failed = Status(Code::kInternal, "opening " + path + ": " + std::strerror(errno));
          break;
        }
        auto apply = [&] {
          return apply_wal_frames(fd, static_cast<int>(r.page_size), r.frames.data(), r.frames.size());
        };
        if (Status st = histories ? histories->commit(r, path, apply) : apply(); !st) {
          failed = st;
          break;
        }
      }
      if (!existed) dirs.insert(dir);
      copies.push_back({&r, path});
    }
    if (histories && failed.is_ok()) failed = histories->finish(system_now_ms());
    for (auto& [path, fd] : files) {
      if (failed.is_ok() && ::fdatasync(fd) != 0) {
        failed = Status(Code::kInternal, "syncing " + path + ": " + std::strerror(errno));
      }
      ::close(fd);
    }
    for (const auto& d : dirs) {
      if (failed.is_ok()) {
        if (Status st = sync_dir(d); !st) failed = st;
      }
    }
    if (!failed.is_ok()) {
      // The copy is now unknown: this node must not count as in sync.
      log_error("cluster: applying a ship failed: " + failed.message());
      return done(Response::error(500, failed.message()));
    }
    catalog_copies(copies);
    done(Response::text("ok"));
  });
}

void Cluster::catalog_copies(const std::vector<std::pair<const ReplicaRecord*, std::string>>& copies) {
  int64_t now = system_now_ms();
  std::vector<CatalogTouch> touches;
  for (const auto& [r, path] : copies) {
    std::string key = r->ns + "/" + r->id;
    if (r->kind == ReplicaRecord::Kind::kRemove) {
      runtime_->catalog().remove(r->ns, r->id);
      catalogued_copies_.erase(key);
      continue;
    }
    // Once per copy, and once more when its name first comes.
    auto [it, fresh] = catalogued_copies_.try_emplace(key, false);
    if (!fresh && (it->second || !r->name)) continue;
    it->second = r->name.has_value();
    touches.push_back(CatalogTouch{r->ns, r->id, path, now, r->name, /*created=*/true});
  }
  if (!touches.empty()) runtime_->catalog().touch(std::move(touches));
  // A bound on the memory: forgetting costs one more catalog touch each.
  if (catalogued_copies_.size() > kMaxCataloguedCopies) catalogued_copies_.clear();
}

void Cluster::reset_partition(int p, int64_t epoch, std::function<void(Response)> done) {
  runtime_->run_blocking([this, p, epoch, done = std::move(done)] {
    std::lock_guard lock(apply_mu_);
    auto view = this->view();
    if (p < 0 || p >= partitions_) return done(Response::error(400, "no such partition"));
    const auto& r = view->partitions[static_cast<size_t>(p)];
    if (r.owner == options_.node_id) return done(Response::error(409, "this node owns the partition"));
    if (epoch < r.epoch) return done(Response::error(409, "an older epoch of the partition"));
    std::vector<std::string> doomed;
    for_each_database(*runtime_, [&](const NamespaceImpl*, const ObjectId& id, const std::string& path) {
      if (partition_of(id) == p) doomed.push_back(path);
    });
    size_t removed = 0;
    for (const auto& path : doomed) {
      ::unlink((path + "-wal").c_str());
      ::unlink((path + "-history").c_str());
      removed += ::unlink(path.c_str()) == 0;
    }
    log_info("cluster: partition " + std::to_string(p) + ": " + std::to_string(removed) +
             " files of an out-of-date copy removed for a catch-up");
    done(Response::text("ok"));
  });
}

void Cluster::shrink_in_sync(std::vector<std::pair<int, std::string>> drops,
                             std::function<void(Status)> done) {
  {
    std::lock_guard lock(mu_);
    shrinks_.push_back(Shrink{std::move(drops), std::move(done), {}});
    nudged_ = true;
  }
  cv_.notify_all();
}

void Cluster::backup_unreachable(const std::string& node) {
  {
    std::lock_guard lock(mu_);
    for (const auto& s : shrinks_) {
      if (s.everywhere == node) return;
    }
    shrinks_.push_back(Shrink{{}, [](Status) {}, node});
    nudged_ = true;
  }
  cv_.notify_all();
}

void Cluster::run_shrinks() {
  std::vector<Shrink> pending;
  {
    std::lock_guard lock(mu_);
    pending.swap(shrinks_);
  }
  std::vector<Shrink> again;
  for (auto& s : pending) {
    const bool best_effort = !s.everywhere.empty();
    if (best_effort) {
      s.drops.clear();
      for (int p = 0; p < partitions_; ++p) {
        const auto& r = records_[static_cast<size_t>(p)];
        if (r.owner == options_.node_id && contains(r.in_sync, s.everywhere)) s.drops.emplace_back(p, s.everywhere);
      }
      if (!s.drops.empty()) {
        log_warn("cluster: node " + s.everywhere + " did not answer a ship within a lease; out of the in-sync sets of " +
                 std::to_string(s.drops.size()) + " partitions this node owns");
      }
    }
    Status result;
    bool retry = false;
    bool changed = false;
    for (const auto& [p, node] : s.drops) {
      auto got = etcd_->get(partition_key(p));
      if (!got || got->kvs.size() != 1) {
        retry = true;
        break;
      }
      auto now = rules::parse_record(got->kvs[0].value, got->kvs[0].mod_revision);
      if (!now || now->owner != options_.node_id || !lease_live()) {
        if (best_effort) continue;
        result = Status(Code::kUnavailable, "partition " + std::to_string(p) + " is no longer this node's");
        break;
      }
      if (!contains(now->in_sync, node)) continue;
      auto next = rules::out_of_sync(*now, node);
      auto made = swap_record(p, now->epoch, next);
      if (!made) {
        retry = true;
        break;
      }
      if (!best_effort) {
        log_warn("cluster: node " + node + " is out of partition " + std::to_string(p) + "'s in-sync set");
      }
      auto& r = records_[static_cast<size_t>(p)];
      r.in_sync = next.in_sync;
      r.epoch = *made;
      changed = true;
    }
    // The smaller sets are published before the ship waiting on them
    // finishes: the output gate then sees them (may_release) before any
    // commit of that ship can count durable.
    if (changed) publish();
    if (retry && lease_live()) {
      again.push_back(std::move(s));
      continue;
    }
    if (best_effort) continue;
    if (retry) result = Status(Code::kUnavailable, "this node's lease ended before it could drop a backup");
    if (!result.is_ok()) {
      // Writes waiting on this ship can never be acknowledged: the node
      // stops, as on a failed flush, and its supervisor restarts it.
      log_error("cluster: " + result.message() + "; exiting so that the node rejoins clean");
      std::fflush(nullptr);
      std::_Exit(75);
    }
    s.done(Status::ok());
  }
  if (!again.empty()) {
    std::lock_guard lock(mu_);
    for (auto& s : again) shrinks_.push_back(std::move(s));
  }
}

void Cluster::leave_in_sync_sets() {
  bool all = true;
  for (int p = 0; p < partitions_; ++p) {
    auto& r = records_[static_cast<size_t>(p)];
    if (r.owner == options_.node_id || !contains(r.in_sync, options_.node_id)) continue;
    ClusterView::Partition next = rules::out_of_sync(r, options_.node_id);
    if (auto made = swap_record(p, r.epoch, next)) {
      next.epoch = *made;
      r = next;
    } else {
      all = false;
    }
  }
  left_in_sync_ = all;
}

void Cluster::adopt_objects(int p) {
  int64_t now = system_now_ms();
  size_t adopted = 0;
  for_each_database(*runtime_, [&](const NamespaceImpl* ns, const ObjectId& id, const std::string& path) {
    if (partition_of(id) != p) return;
    ++adopted;
    {
      runtime_->run_on_object(
          ns, id, nullptr,
          [path, now](ObjectHost& host, Reply reply) {
            Runtime& rt = host.shard()->runtime();
            std::string hex = host.id().to_string();
            // An instance or connection left from when this node served the
            // object before (it was paused, and the object moved away and
            // back) knows an older database: start from the files.
            (void)host.let_go_of_storage("the object moved to this node");
            host.reopen_store();
            rt.catalog().created(CatalogTouch{host.ns()->name(), hex, path, now, std::nullopt, true});
            try {
              if (auto at = host.store().stored_alarm()) {
                int retry = host.store().stored_alarm_retry();  // came with the data
                auto file = rt.alarm_index().record(AlarmRecord{host.ns()->name(), hex, std::nullopt, *at, retry});
                if (file) host.shard()->commits().add_dirty(std::move(*file));
                host.shard()->alarms().schedule(ObjectKey{host.ns(), host.id()}, *at, retry);
              }
            } catch (const std::exception& e) {
              log_error("cluster: reading the alarm of " + hex + ": " + e.what());
            }
            reply(Response{});
          },
          [](Answer) {});
    }
  });
  log_info("cluster: partition " + std::to_string(p) + ": " + std::to_string(adopted) +
           " objects adopted (alarms scheduled, catalogued)");
}

std::vector<Cluster::Learner> Cluster::learners_for_ship(int p) {
  std::lock_guard lock(learners_mu_);
  auto it = catching_up_.find(p);
  if (it == catching_up_.end()) return {};
  CatchUp& c = it->second;
  if (!c.snapshots_sent) ++c.unwaited_ships;
  return {Learner{c.node, c.snapshots_sent, c.run}};
}

void Cluster::learner_failed(int p, const std::string& node) {
  std::lock_guard lock(learners_mu_);
  auto it = catching_up_.find(p);
  if (it != catching_up_.end() && it->second.node == node) it->second.failed = true;
}

void Cluster::learner_ship_ended(int p, const std::string& node, uint64_t run, bool ok) {
  std::lock_guard lock(learners_mu_);
  auto it = catching_up_.find(p);
  if (it == catching_up_.end() || it->second.node != node || it->second.run != run) return;
  --it->second.unwaited_ships;
  if (!ok) it->second.failed = true;
}

Result<Response> Cluster::peer_call(const std::string& address, Request request) {
  auto promise = std::make_shared<std::promise<Result<Response>>>();
  auto future = promise->get_future();
  Shard& shard = runtime_->shard(0);
  shard.post([this, &shard, address, request = std::move(request), promise]() mutable {
    if (!pools_) return promise->set_value(Status(Code::kUnavailable, "stopping"));
    pools_->exchange(0, shard.io(), address, std::move(request), options_.lease,
                     [promise](Result<Response> r) { promise->set_value(std::move(r)); });
  });
  if (future.wait_for(options_.lease * 2) != std::future_status::ready) {
    return Status(Code::kUnavailable, "no answer from " + address);
  }
  return future.get();
}

Result<Response> Cluster::reset_copies_on(const std::string& address, int p) {
  Request reset;
  reset.method = "POST";
  reset.target = "/_dobj_peer/reset";
  reset.headers = {{"dobj-peer-token", peer_token_},
                   {"dobj-peer-reset", std::to_string(p)},
                   {"dobj-peer-epoch", std::to_string(records_[static_cast<size_t>(p)].epoch)}};
  return peer_call(address, std::move(reset));
}

// One partition's catch-up, step by step, a step per agent round:
//  1. the replica removes its copies of the partition's objects (reset);
//  2. it becomes a learner (ships of the partition go to it too, not
//     waited for), and each object's snapshot is taken between the object's
//     events and shipped to it after the frames before it, so that frames
//     after a snapshot apply on top of it;
//  3. once every snapshot is on it, ships must reach it (a failure drops it);
//  4. a compare-and-swap adds it to the in-sync set.
void Cluster::catch_up() {
  constexpr size_t kAtOnce = 32;
  auto started = std::chrono::steady_clock::now();
  auto out_of_time = [&] { return std::chrono::steady_clock::now() - started > options_.lease / 4; };
  std::map<int, CatchUp> running;
  {
    std::lock_guard lock(learners_mu_);
    running = catching_up_;
  }
  auto end_catch_up = [&](int p, const std::string& why) {
    std::lock_guard lock(learners_mu_);
    auto it = catching_up_.find(p);
    if (it == catching_up_.end()) return;
    if (!why.empty()) {
      log_warn("cluster: catch-up of node " + it->second.node + " for partition " + std::to_string(p) +
               " stopped: " + why);
    }
    catching_up_.erase(it);
  };
  for (auto& [p, c] : running) {
    if (out_of_time()) return;
    const auto& r = records_[static_cast<size_t>(p)];
    auto learner = nodes_.find(c.node);
    if (c.failed || r.owner != options_.node_id || learner == nodes_.end() ||
        learner->second.lease != c.learner_lease) {
      end_catch_up(p, c.failed ? "a ship to it failed" : "it restarted, or it or this node left");
      continue;
    }
    // Snapshots still on their way, or an unwaited ship whose answer never
    // came: it starts again.
    if (std::chrono::steady_clock::now() - c.started > std::chrono::minutes(10)) {
      end_catch_up(p, "it took too long");
      continue;
    }
    if (c.pending > 0) continue;
    if (!c.snapshots_sent) {
      // Every object is on the learner: from now on a ship it misses drops
      // it; the next round adds it to the in-sync set.
      std::lock_guard lock(learners_mu_);
      catching_up_[p].snapshots_sent = true;
      continue;
    }
    auto got = etcd_->get(partition_key(p));
    if (!got || got->kvs.size() != 1) continue;
    auto now = rules::parse_record(got->kvs[0].value, got->kvs[0].mod_revision);
    if (!now || now->owner != options_.node_id) {
      end_catch_up(p, "the partition moved");
      continue;
    }
    auto next = rules::back_in_sync(*now, c.node);
    {
      // Every ship from here on waits for the learner, and one that fails
      // after this check is caught by the shrink it queues; every earlier
      // one must have ended well.
      std::lock_guard lock(learners_mu_);
      if (catching_up_[p].failed || catching_up_[p].unwaited_ships > 0) continue;
    }
    // The learner must be the process the snapshots went to: one restarted
    // since (its node key under another lease) may have lost them.
    auto made = swap_record(p, now->epoch, next, {etcd::Compare::lease_is(key("nodes/" + c.node), c.learner_lease)});
    if (!made) continue;
    auto& rec = records_[static_cast<size_t>(p)];
    rec.in_sync = next.in_sync;
    rec.epoch = *made;
    publish();
    log_info("cluster: node " + c.node + " caught up with partition " + std::to_string(p) + " and is in sync again");
    end_catch_up(p, "");
  }
  // New ones: partitions this node serves with a live replica out of sync;
  // those below --min-copies (refusing every answer) first.
  std::vector<int> order;
  for (int p = 0; p < partitions_; ++p) order.push_back(p);
  std::stable_partition(order.begin(), order.end(), [&](int p) {
    return static_cast<int>(records_[static_cast<size_t>(p)].in_sync.size()) < options_.min_copies;
  });
  std::set<std::string> unreachable;  // this round: a reset failed, try its others later
  std::vector<std::pair<int, std::string>> started_now;  // partition, learner
  for (int p : order) {
    if (running.size() >= kAtOnce || out_of_time()) break;
    const auto& r = records_[static_cast<size_t>(p)];
    if (r.owner != options_.node_id || !stamped_.count(p) || running.count(p)) continue;
    std::string node = rules::to_catch_up(r, options_.node_id, last_members_);
    if (node.empty() || unreachable.count(node)) continue;
    auto answer = reset_copies_on(nodes_[node].peer, p);
    if (!answer || answer->status != 200) {
      unreachable.insert(node);
      // Once a minute per node at most: it may stay away a while.
      auto& last = reset_warned_[node];
      if (std::chrono::steady_clock::now() - last > std::chrono::minutes(1)) {
        last = std::chrono::steady_clock::now();
        log_warn("cluster: node " + node + " did not reset partition " + std::to_string(p) +
                 " for a catch-up: " + (answer ? answer->body : answer.status().message()));
      }
      continue;
    }
    // A learner from here on: every ship of p reaches it.
    {
      std::lock_guard lock(learners_mu_);
      CatchUp c;
      c.partition = p;
      c.node = node;
      c.learner_lease = nodes_[node].lease;
      c.run = ++catch_up_runs_;
      c.started = std::chrono::steady_clock::now();
      catching_up_[p] = std::move(c);
    }
    running[p];
    started_now.emplace_back(p, node);
  }
  if (started_now.empty()) return;
  // Only now, with the learners registered, the objects to copy: any commit
  // before this is in a database file the pass finds, and the snapshot taken
  // later holds it; an object made after the pass has had every commit
  // shipped to the learner. (Listing before registering would miss an object
  // made in between, and the learner would count in sync without it.)
  std::map<int, std::vector<std::pair<const NamespaceImpl*, ObjectId>>> objects_of;
  for_each_database(*runtime_, [&](const NamespaceImpl* ns, const ObjectId& id, const std::string&) {
    objects_of[partition_of(id)].emplace_back(ns, id);
  });
  // Storage snapshots are never changed: those made from now on are shipped
  // to the learner anyway.
  std::map<int, std::vector<std::string>> snapshots_of;
  for (auto& e : snapshots::list(snapshot_dir())) {
    snapshots_of[static_cast<int>(snapshots::partition_of(e.name, static_cast<uint32_t>(partitions_)))].push_back(
        std::move(e.name));
  }
  for (const auto& [p, node] : started_now) {
    const auto& objects = objects_of[p];
    std::vector<std::string>& snapshot_names = snapshots_of[p];
    std::chrono::steady_clock::time_point started;  // tells this catch-up from a later one of p
    {
      std::lock_guard lock(learners_mu_);
      catching_up_[p].pending = objects.size() + (snapshot_names.empty() ? 0 : 1);
      started = catching_up_[p].started;
    }
    // One object's (or the snapshots') copy is on the learner, or failed.
    auto copied = [this, p, started](bool ok) {
      std::lock_guard lock(learners_mu_);
      auto it = catching_up_.find(p);
      if (it == catching_up_.end() || it->second.started != started) return;
      if (!ok) it->second.failed = true;
      if (it->second.pending > 0) --it->second.pending;
    };
    if (!snapshot_names.empty()) ship_snapshots(node, std::move(snapshot_names), copied);
    for (const auto& [ns, id] : objects) {
      runtime_->run_on_object(
          ns, id, nullptr,
          [this, node = node](ObjectHost& host, Reply reply) {
            int part = partition_of(host.id());
            ReplicaRecord rec;
            rec.ns = host.ns()->name();
            rec.id = host.id().to_string();
            rec.name = host.id().name();
            if (auto known = rec.name ? std::nullopt : runtime_->catalog().get(rec.ns, rec.id)) rec.name = known->name;
            rec.only_to = node;
            rec.kind = ReplicaRecord::Kind::kRemove;
            if (sqlite3* db = host.store().admin_connection()) {
              sqlite3_int64 size = 0;
              unsigned char* bytes = sqlite3_serialize(db, "main", &size, 0);
              if (!bytes) {
                learner_failed(part, node);
              } else {
                rec.kind = ReplicaRecord::Kind::kReplace;
                rec.file.assign(reinterpret_cast<const char*>(bytes), static_cast<size_t>(size));
                sqlite3_free(bytes);
                // Its history too, so that the copy has every bookmark.
                auto history = host.store().history_copy();
                if (!history) {
                  learner_failed(part, node);
                } else {
                  rec.history = std::move(history->records);
                  rec.history_seq = history->seq;
                  rec.history_time_ms = history->time_ms;
                }
              }
            }
            auto replied = [reply](Status st) { reply(st.is_ok() ? Response{} : Response::error(500, st.message())); };
            if (rec.file.size() + rec.history.size() > kCopyPartBytes) {
              return ship_in_parts(host, std::move(rec), [this, part, node] { return learner_ok(part, node); },
                                   std::move(replied));
            }
            host.shard()->replication_log()->record(std::move(rec));
            GroupCommit& commits = host.shard()->commits();
            commits.when_durable(commits.committed(nullptr, nullptr), std::move(replied));
          },
          // Also when the snapshot never ran (the object's shard refused the
          // delivery: its partition was moving, or the lease lapsed): the
          // catch-up fails and starts again, rather than wait for it.
          [copied](Answer a) { copied(a.response.status == 200); });
    }
    log_info("cluster: catching up node " + node + " with partition " + std::to_string(p) + " (" +
             std::to_string(objects.size()) + " objects)");
  }
}

bool Cluster::learner_ok(int p, const std::string& node) const {
  std::lock_guard lock(learners_mu_);
  auto it = catching_up_.find(p);
  return it != catching_up_.end() && it->second.node == node && !it->second.failed;
}

namespace {

// A catch-up's copy too large for one record, shipped part by part, each
// once the one before is on the learner, while the object's events wait
// (nothing may change the copy in between).
struct PartsShip {
  ResumeTarget host;
  ReplicaRecord whole;
  size_t file_at = 0, history_at = 0;
  std::function<bool()> wanted;  // the catch-up still runs
  std::function<void(Status)> done;
};

void ship_next_part(std::shared_ptr<PartsShip> s) {
  Shard& shard = *s->host.shard;
  const ReplicaRecord& whole = s->whole;
  ReplicaRecord r;
  r.ns = whole.ns;
  r.id = whole.id;
  r.only_to = whole.only_to;
  bool last = s->file_at == whole.file.size() && s->history_at == whole.history.size();
  if (!last) {
    r.kind = ReplicaRecord::Kind::kAppend;
    r.history_seq = s->file_at;
    r.history_time_ms = static_cast<int64_t>(s->history_at);
    size_t n = std::min(Cluster::kCopyPartBytes, whole.file.size() - s->file_at);
    size_t m = std::min(Cluster::kCopyPartBytes - n, whole.history.size() - s->history_at);
    r.file = whole.file.substr(s->file_at, n);
    r.history = whole.history.substr(s->history_at, m);
    s->file_at += n;
    s->history_at += m;
  } else {
    r.kind = ReplicaRecord::Kind::kReplace;
    r.history_base = true;  // the assembled parts
    r.name = whole.name;
    r.history_seq = whole.history_seq;
    r.history_time_ms = whole.history_time_ms;
  }
  shard.replication_log()->record(std::move(r));
  GroupCommit& commits = shard.commits();
  commits.when_durable(commits.committed(nullptr, nullptr), [s, last](Status st) {
    s->host.shard->post([s, last, st] {
      if (st.is_ok() && !last && s->wanted()) return ship_next_part(s);
      if (ObjectHost* h = s->host.shard->find_host(s->host.ns, s->host.id)) h->done_off_shard();
      s->done(st.is_ok() && !s->wanted() ? Status(Code::kUnavailable, "the catch-up ended") : st);
    });
  });
}

}  // namespace

void Cluster::ship_in_parts(ObjectHost& host, ReplicaRecord whole, std::function<bool()> wanted,
                            std::function<void(Status)> done) {
  host.wait_off_shard();
  auto s = std::make_shared<PartsShip>();
  s->host = ResumeTarget{host.shard(), host.ns(), host.id(), host.generation()};
  s->whole = std::move(whole);
  s->wanted = std::move(wanted);
  s->done = std::move(done);
  ship_next_part(std::move(s));
}

void Cluster::ship_snapshots(const std::string& node, std::vector<std::string> names,
                             std::function<void(bool)> done) {
  // Read off the shards; shipped by the first shard's replicator, to the
  // learner only.
  runtime_->run_blocking([this, node, names = std::move(names), done = std::move(done)]() mutable {
    auto records = std::make_shared<std::vector<ReplicaRecord>>();
    for (const auto& name : names) {
      auto copy = snapshots::read(snapshot_dir(), name);
      if (!copy) {
        if (copy.status().code() == Code::kNotFound) continue;  // expired meanwhile
        return done(false);
      }
      ReplicaRecord r;
      r.kind = ReplicaRecord::Kind::kSnapshot;
      r.id = name;
      r.file = std::move(copy->image);
      r.history_time_ms = copy->made_ms;
      r.only_to = node;
      records->push_back(std::move(r));
    }
    Shard& shard = runtime_->shard(0);
    shard.post([&shard, records, done = std::move(done)] {
      if (!shard.replication_log()) return done(false);
      for (auto& r : *records) shard.replication_log()->record(std::move(r));
      GroupCommit& commits = shard.commits();
      commits.when_durable(commits.committed(nullptr, nullptr), [done](Status st) { done(st.is_ok()); });
    });
  });
}

}  // namespace dobj::internal
