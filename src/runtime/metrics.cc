#include "runtime/metrics.h"

#include <algorithm>
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

namespace {

// Every counter of a namespace's metrics, once: merge and the JSON between
// nodes (docs/cluster.md) both go through this list. f gets each field's name
// and that field of every m (one metrics object, or two to merge).
template <typename F, typename... M>
void visit_counts(F&& f, M&... m) {
  f("requests", m.requests...);
  f("socketMessages", m.socket_messages...);
  f("alarmsFired", m.alarms_fired...);
  f("alarmRetries", m.alarm_retries...);
  f("errors", m.errors...);
  f("evictions", m.evictions...);
  f("resets", m.resets...);
  f("overloaded", m.overloaded...);
  f("storageReads", m.storage.reads...);
  f("storageWrites", m.storage.writes...);
  f("storageDeletes", m.storage.deletes...);
  f("storageSql", m.storage.sql...);
  f("storageLists", m.storage.lists...);
  f("storageTransactions", m.storage.transactions...);
  f("storageCommits", m.storage.commits...);
  f("turnsCoalesced", m.storage.turns_coalesced...);
  f("instances", m.instances...);
  f("singleEventEvictions", m.single_event_evictions...);
  f("turnsRead", m.turns_read...);
  f("turnsBlindWrite", m.turns_blind_write...);
  f("turnsRmw", m.turns_rmw...);
  f("socketsKept", m.sockets_kept...);
  f("uniqueIds", m.unique_ids...);
  f("activeObjects", m.active_objects...);
  f("socketsOpen", m.sockets_open...);
  f("socketsIdleClosed", m.sockets_idle_closed...);
  f("socketsHibernated", m.sockets_hibernated...);
  f("storedObjects", m.stored_objects...);
  f("storageBytes", m.storage_bytes...);
}

template <typename F, typename... M>
void visit_histograms(F&& f, M&... m) {
  f("turnTime", m.turn_time...);
  f("eventTime", m.event_time...);
  f("gateWait", m.gate_wait...);
  f("alarmLateness", m.alarm_lateness...);
}

}  // namespace

void NamespaceMetrics::merge(const NamespaceMetrics& o) {
  visit_counts([](const char*, uint64_t& mine, const uint64_t& theirs) { mine += theirs; }, *this, o);
  visit_histograms([](const char*, Histogram& mine, const Histogram& theirs) { mine.merge(theirs); }, *this, o);
}

nlohmann::json Histogram::to_json() const {
  return {{"buckets", buckets_}, {"count", count_}, {"sumNs", sum_ns_}};
}

Histogram Histogram::from_json(const nlohmann::json& j) {
  Histogram h;
  if (!j.is_object()) return h;
  const auto& b = j.value("buckets", nlohmann::json::array());
  for (size_t i = 0; i < h.buckets_.size() && i < b.size(); ++i) {
    if (b[i].is_number_unsigned()) h.buckets_[i] = b[i].get<uint64_t>();
  }
  h.count_ = j.value("count", uint64_t{0});
  h.sum_ns_ = j.value("sumNs", uint64_t{0});
  return h;
}

nlohmann::json snapshot_to_json(const MetricsSnapshot& s) {
  using Json = nlohmann::json;
  Json out = {{"namespaces", Json::object()},
              {"connectionsOpen", s.connections_open},
              {"connectionsRefused", s.connections_refused},
              {"connectionsMoved", s.connections_moved}};
  for (size_t i = 0; i < s.namespaces.size() && i < s.per_ns.size(); ++i) {
    Json ns = Json::object();
    visit_counts([&](const char* k, const uint64_t& v) { ns[k] = v; }, s.per_ns[i]);
    visit_histograms([&](const char* k, const Histogram& h) { ns[k] = h.to_json(); }, s.per_ns[i]);
    out["namespaces"][s.namespaces[i]] = std::move(ns);
  }
  auto stats = [](const std::vector<ObjectStat>& list) {
    Json a = Json::array();
    for (const auto& o : list) {
      a.push_back({{"ns", o.ns}, {"id", o.id}, {"name", o.name}, {"events", o.events},
                   {"turnMs", o.turn_ms}, {"ageMs", o.age_ms}, {"queued", o.queued}});
    }
    return a;
  };
  out["topByEvents"] = stats(s.top_by_events);
  out["topByTime"] = stats(s.top_by_time);
  return out;
}

void merge_snapshot(MetricsSnapshot& into, const nlohmann::json& other) {
  using Json = nlohmann::json;
  if (!other.is_object() || !other["namespaces"].is_object()) return;
  for (auto& [name, j] : other["namespaces"].items()) {
    if (!j.is_object()) continue;
    NamespaceMetrics m;
    visit_counts(
        [&](const char* k, uint64_t& v) {
          auto it = j.find(k);
          if (it != j.end() && it->is_number_unsigned()) v = it->get<uint64_t>();
        },
        m);
    visit_histograms([&](const char* k, Histogram& h) { h = Histogram::from_json(j.value(k, Json::object())); },
                     m);
    auto at = std::find(into.namespaces.begin(), into.namespaces.end(), name);
    if (at == into.namespaces.end()) {
      into.namespaces.push_back(name);
      into.per_ns.push_back(m);
    } else {
      into.per_ns[static_cast<size_t>(at - into.namespaces.begin())].merge(m);
    }
  }
  auto take = [](std::vector<ObjectStat>& list, const Json& a, auto key) {
    if (!a.is_array()) return;
    for (const auto& o : a) {
      if (!o.is_object()) continue;
      list.push_back(ObjectStat{o.value("ns", ""), o.value("id", ""), o.value("name", ""),
                                o.value("events", uint64_t{0}), o.value("turnMs", 0.0),
                                o.value("ageMs", 0.0), o.value("queued", size_t{0})});
    }
    std::sort(list.begin(), list.end(), [&](const ObjectStat& x, const ObjectStat& y) { return key(x) > key(y); });
    if (list.size() > 10) list.resize(10);
  };
  take(into.top_by_events, other["topByEvents"], [](const ObjectStat& o) { return static_cast<double>(o.events); });
  take(into.top_by_time, other["topByTime"], [](const ObjectStat& o) { return o.turn_ms; });
  into.connections_open += other.value("connectionsOpen", uint64_t{0});
  into.connections_refused += other.value("connectionsRefused", uint64_t{0});
  into.connections_moved += other.value("connectionsMoved", uint64_t{0});
}

}  // namespace dobj::internal
