#include "runtime/metrics.h"

#include <cmath>

namespace dobj::internal {

namespace {
// Bucket i holds durations up to 1 µs * 2^(i/4).
int bucket_of(int64_t ns) {
  if (ns <= 1000) return 0;
  int b = static_cast<int>(std::ceil(4.0 * std::log2(static_cast<double>(ns) / 1000.0)));
  return b >= Histogram::kBuckets ? Histogram::kBuckets - 1 : b;
}
double upper_ms(int b) { return std::exp2(b / 4.0) / 1000.0; }
}  // namespace

void Histogram::record(int64_t ns) {
  if (ns < 0) ns = 0;
  ++buckets_[static_cast<size_t>(bucket_of(ns))];
  ++count_;
  sum_ns_ += static_cast<uint64_t>(ns);
}

void Histogram::merge(const Histogram& o) {
  for (size_t i = 0; i < buckets_.size(); ++i) buckets_[i] += o.buckets_[i];
  count_ += o.count_;
  sum_ns_ += o.sum_ns_;
}

double Histogram::percentile_ms(double p) const {
  if (count_ == 0) return 0;
  auto rank = static_cast<uint64_t>(std::ceil(p * static_cast<double>(count_)));
  if (rank == 0) rank = 1;
  uint64_t seen = 0;
  for (int i = 0; i < kBuckets; ++i) {
    seen += buckets_[static_cast<size_t>(i)];
    if (seen >= rank) return upper_ms(i);
  }
  return upper_ms(kBuckets - 1);
}

void NamespaceMetrics::merge(const NamespaceMetrics& o) {
  requests += o.requests;
  socket_messages += o.socket_messages;
  alarms_fired += o.alarms_fired;
  alarm_retries += o.alarm_retries;
  errors += o.errors;
  evictions += o.evictions;
  resets += o.resets;
  overloaded += o.overloaded;
  storage.reads += o.storage.reads;
  storage.writes += o.storage.writes;
  storage.deletes += o.storage.deletes;
  storage.sql += o.storage.sql;
  storage.lists += o.storage.lists;
  storage.transactions += o.storage.transactions;
  instances += o.instances;
  single_event_evictions += o.single_event_evictions;
  turns_read += o.turns_read;
  turns_blind_write += o.turns_blind_write;
  turns_rmw += o.turns_rmw;
  sockets_kept += o.sockets_kept;
  unique_ids += o.unique_ids;
  turn_time.merge(o.turn_time);
  event_time.merge(o.event_time);
  gate_wait.merge(o.gate_wait);
  alarm_lateness.merge(o.alarm_lateness);
  active_objects += o.active_objects;
  sockets_open += o.sockets_open;
  sockets_idle_closed += o.sockets_idle_closed;
  sockets_hibernated += o.sockets_hibernated;
  stored_objects += o.stored_objects;
  storage_bytes += o.storage_bytes;
}

}  // namespace dobj::internal
