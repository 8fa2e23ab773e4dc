// The advisor: the review rules of the Durable Objects model applied to the
// live numbers. A pure function of a metrics snapshot (and the event rate of
// each namespace over the last seconds), so every rule can be tested on its
// own; docs/operations.md lists the rules and their thresholds.
#pragma once

#include <string>
#include <vector>

#include "runtime/metrics.h"

namespace dobj::internal {

struct Finding {
  std::string rule;      // stable name, e.g. "hot-object"
  std::string severity;  // "warning" or "info"
  std::string ns;        // the namespace (binding)
  std::string object;    // the object's ID, for rules about one object
  std::string title;
  std::string evidence;  // the numbers that raised it
  std::string suggestion;
};

struct AdvisorThresholds {
  // One object's sustained event rate: Durable Objects' documented soft
  // limit is about 1,000 requests/s per object.
  double hot_events_per_second = 1000;
  double hot_busy_fraction = 0.5;      // share of its thread one object uses
  uint64_t kv_min_turns = 50;          // storage turns before judging a namespace
  double kv_max_rmw_fraction = 0.05;   // read-modify-write turns below this: plain KV
  uint64_t kv_min_objects = 10;
  uint64_t once_min_instances = 20;
  double once_max_events_per_instance = 1.5;
  double cpu_p95_ms = 20;              // turn time p95 above this blocks the loop
  uint64_t cpu_min_turns = 10;
  uint64_t idle_min_resident = 50;
  double idle_max_events_per_object_second = 0.05;
  uint64_t alarm_min_retries = 3;
  double alarm_retry_fraction = 0.2;
  double alarm_late_p99_ms = 1000;
  uint64_t alarm_min_fired = 5;
};

// rates: events per second of each namespace over the last seconds (by
// namespace index, as AdminPlane samples them).
std::vector<Finding> advise(const MetricsSnapshot& s, const std::vector<double>& rates,
                            const AdvisorThresholds& t = {});

}  // namespace dobj::internal
