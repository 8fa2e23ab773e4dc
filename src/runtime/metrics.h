// Metrics: what each namespace's objects do, counted per shard and merged
// when read.
//
// Every counter lives in its shard and is touched only by that shard's thread
// (plain integers, no atomics, no locks), so counting costs a few additions on
// the hot path. A reader collects a copy from every shard (Runtime::
// collect_metrics) and merges them.
#pragma once

#include <array>
#include <chrono>
#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "storage/counters.h"

namespace dobj::internal {

// Durations in nanoseconds, in buckets that grow by a factor of 2^(1/4)
// (about 19%), from 1 µs to about 70 s; percentiles are accurate to a bucket.
class Histogram {
 public:
  static constexpr int kBuckets = 108;
  void record(int64_t ns);
  void merge(const Histogram& o);
  uint64_t count() const { return count_; }
  double sum_ms() const { return static_cast<double>(sum_ns_) / 1e6; }
  // The upper bound of the bucket holding percentile p (0..1), in ms; 0 if empty.
  double percentile_ms(double p) const;
  // Whole, for another node to merge (docs/cluster.md).
  nlohmann::json to_json() const;
  static Histogram from_json(const nlohmann::json& j);

 private:
  std::array<uint64_t, kBuckets> buckets_{};
  uint64_t count_ = 0;
  uint64_t sum_ns_ = 0;
};

// One namespace on one shard.
struct NamespaceMetrics {
  uint64_t requests = 0;         // HTTP requests and typed calls delivered
  uint64_t socket_messages = 0;  // WebSocket messages delivered to the object
  uint64_t alarms_fired = 0;     // alarm() runs, retries included
  uint64_t alarm_retries = 0;    // alarm() runs that were retries
  uint64_t errors = 0;           // events that ended with an error status
  uint64_t evictions = 0;        // instances evicted after the idle timeout
  uint64_t resets = 0;
  uint64_t overloaded = 0;  // events refused because the object's queue was full
  uint64_t instances = 0;   // objects constructed (brought into memory)
  uint64_t single_event_evictions = 0;  // evicted after serving exactly one event
  // Turns by what they did to storage (for the advisor): read only, wrote
  // without reading, read and wrote (read-modify-write).
  uint64_t turns_read = 0;
  uint64_t turns_blind_write = 0;
  uint64_t turns_rmw = 0;
  StorageCounters storage;
  Histogram turn_time;    // time each turn of an object ran (CPU, unless descheduled)
  Histogram event_time;   // wall time of each event, start to end
  Histogram gate_wait;    // how long finished outputs waited for durability
  Histogram alarm_lateness;
  // Filled in when collected (not counters).
  uint64_t active_objects = 0;
  uint64_t sockets_open = 0;
  uint64_t sockets_hibernated = 0;  // open sockets whose object is not in memory
  uint64_t sockets_kept = 0;        // open sockets accepted with keep_websocket
  uint64_t sockets_idle_closed = 0;  // closed: the client sent nothing for the idle timeout
  uint64_t unique_ids = 0;          // IDs minted by new_unique_id since start
  uint64_t stored_objects = 0;      // objects with storage (the catalog)
  uint64_t storage_bytes = 0;       // their files on disk, database + WAL

  void merge(const NamespaceMetrics& o);
};

// The busiest objects in memory, by events and by turn time.
struct ObjectStat {
  std::string ns;
  std::string id;
  std::string name;
  uint64_t events = 0;
  double turn_ms = 0;
  double age_ms = 0;   // since the object came into memory
  size_t queued = 0;   // events waiting now
};

struct MetricsSnapshot {
  std::chrono::steady_clock::time_point at;
  std::vector<std::string> namespaces;     // by namespace index
  std::vector<NamespaceMetrics> per_ns;    // merged over shards
  std::vector<ObjectStat> top_by_events;   // at most 10
  std::vector<ObjectStat> top_by_time;     // at most 10
  // The node's client connections (HTTP and WebSocket).
  uint64_t connections_open = 0;
  uint64_t connections_refused = 0;  // over the cap
  uint64_t connections_moved = 0;  // to the shard of their objects
  // In a cluster, a snapshot merged over the nodes: the nodes in it, and
  // those that did not answer (their numbers are missing).
  std::vector<std::string> nodes;
  std::vector<std::string> unreachable_nodes;
};

// A snapshot whole (counters, histograms, busiest objects), and merging one
// into another: the metrics of every node of a cluster (admin plane).
nlohmann::json snapshot_to_json(const MetricsSnapshot& s);
void merge_snapshot(MetricsSnapshot& into, const nlohmann::json& other);

}  // namespace dobj::internal
