#include "admin/advisor.h"

#include <cstdio>
#include <map>

namespace dobj::internal {

namespace {

std::string num(double v, int decimals = 0) {
  char b[48];
  std::snprintf(b, sizeof b, "%.*f", decimals, v);
  return b;
}

std::string pct(double fraction) { return num(fraction * 100, 0) + "%"; }

}  // namespace

std::vector<Finding> advise(const MetricsSnapshot& s, const std::vector<double>& rates,
                            const AdvisorThresholds& t) {
  std::vector<Finding> out;
  auto add = [&](std::string rule, std::string severity, std::string ns, std::string object,
                 std::string title, std::string evidence, std::string suggestion) {
    out.push_back(Finding{std::move(rule), std::move(severity), std::move(ns), std::move(object),
                          std::move(title), std::move(evidence), std::move(suggestion)});
  };

  // A singleton or hot object near its limit: one object, one thread.
  for (const ObjectStat& o : s.top_by_events) {
    double secs = std::max(o.age_ms, 1000.0) / 1000.0;
    double rate = static_cast<double>(o.events) / secs;
    double busy = o.turn_ms / std::max(o.age_ms, 1000.0);
    if (rate < t.hot_events_per_second && busy < t.hot_busy_fraction) continue;
    std::string who = o.name.empty() ? o.id.substr(0, 16) + "…" : "\"" + o.name + "\"";
    add("hot-object", "warning", o.ns, o.id, "Object " + who + " is a hot spot",
        num(rate) + " events/s for " + num(secs, 1) + " s, its code busy " + pct(busy) +
            " of its thread; " + std::to_string(o.queued) + " events queued now",
        "One object runs on one thread, one event at a time: its throughput cannot grow with "
        "the machine. Shard it: spread the key over N objects (idFromName(key + \":\" + n)) "
        "and combine their answers, as the sharded counter example does, or keep hot reads "
        "out of it.");
  }

  for (size_t i = 0; i < s.per_ns.size(); ++i) {
    const NamespaceMetrics& m = s.per_ns[i];
    const std::string& ns = s.namespaces[i];
    double rate = i < rates.size() ? rates[i] : 0;

    if (m.overloaded > 0) {
      add("hot-object", "warning", ns, "",
          "Objects of " + ns + " turned requests away (queue full)",
          std::to_string(m.overloaded) + " events were refused with 503 overloaded",
          "An object's queue filled up: it gets more than one thread can serve. Shard the hot "
          "objects (see topByRequests in the metrics) or add back-pressure in the caller.");
    }

    // Plain key-value use: no coordination that needs an object.
    uint64_t storage_turns = m.turns_read + m.turns_blind_write + m.turns_rmw;
    if (storage_turns >= t.kv_min_turns && m.storage.sql == 0 && m.storage.lists == 0 &&
        m.storage.transactions == 0 && m.socket_messages == 0 && m.alarms_fired == 0 &&
        m.stored_objects >= t.kv_min_objects &&
        static_cast<double>(m.turns_rmw) <
            t.kv_max_rmw_fraction * static_cast<double>(storage_turns)) {
      add("plain-key-value", "info", ns, "",
          ns + " is used as a plain key-value store",
          std::to_string(storage_turns) + " turns used storage: " + std::to_string(m.turns_read) +
              " only read, " + std::to_string(m.turns_blind_write) + " only wrote, " +
              std::to_string(m.turns_rmw) + " read and wrote; no SQL, list, transaction, " +
              "socket or alarm, across " + std::to_string(m.stored_objects) + " objects",
          "Each request gets or puts single keys and nothing needs one object to coordinate "
          "(read-modify-write, ordering, transactions, sockets). A key-value store or one "
          "SQL table would serve this with less overhead; keep Durable Objects for state "
          "that needs a single point of coordination.");
    }

    // Objects used once: a new unique ID per request.
    if (m.instances >= t.once_min_instances && m.unique_ids * 2 >= m.instances) {
      double per_instance =
          static_cast<double>(m.requests + m.socket_messages + m.alarms_fired) /
          static_cast<double>(m.instances);
      if (per_instance <= t.once_max_events_per_instance) {
        add("unique-id-per-request", "warning", ns, "",
            "Objects of " + ns + " are used once",
            std::to_string(m.unique_ids) + " IDs minted with new_unique_id; " +
                std::to_string(m.instances) + " objects brought into memory for " +
                num(per_instance, 2) + " events each" +
                (m.single_event_evictions
                     ? "; " + std::to_string(m.single_event_evictions) +
                           " were evicted after a single event"
                     : std::string()),
            "A new unique ID per request creates an object per request: each pays a "
            "construction, a database file and a catalog entry, and nothing is shared. Derive "
            "the ID from what the state belongs to (id_from_name(user, room, document)) and "
            "keep the ID when you need the object again.");
      }
    }

    // Handlers that block the loop.
    if (m.turn_time.count() >= t.cpu_min_turns &&
        m.turn_time.percentile_ms(0.95) > t.cpu_p95_ms) {
      add("high-cpu", "warning", ns, "", "Handlers of " + ns + " hold their thread",
          "turn time (wall clock: CPU and blocking alike) p95 " +
              num(m.turn_time.percentile_ms(0.95), 1) + " ms, p99 " +
              num(m.turn_time.percentile_ms(0.99), 1) + " ms over " +
              std::to_string(m.turn_time.count()) + " turns",
          "While a turn runs, no other event of the object and no other object of its shard "
          "runs. Split long work into steps (an alarm per batch: set_alarm(now) and continue "
          "there), move heavy computation out of the object, or precompute.");
    }

    // Objects kept in memory by sockets that cannot hibernate.
    if (m.sockets_kept > 0) {
      add("classic-websockets", "info", ns, "",
          "Sockets keep objects of " + ns + " in memory",
          std::to_string(m.sockets_kept) + " open WebSockets were accepted with "
              "keep_websocket; their objects cannot be evicted while they are open",
          "Accept with state().accept_websocket() and handle websocket_message/close in the "
          "class: the runtime keeps the connection while the object hibernates, and memory "
          "no longer grows with idle connections.");
    }

    // Many residents, little traffic.
    if (m.active_objects >= t.idle_min_resident &&
        rate < t.idle_max_events_per_object_second * static_cast<double>(m.active_objects)) {
      add("idle-resident-objects", "info", ns, "",
          std::to_string(m.active_objects) + " objects of " + ns + " sit in memory, mostly idle",
          std::to_string(m.active_objects) + " resident objects, " + num(rate, 1) +
              " events/s over the last seconds (" +
              num(rate / static_cast<double>(m.active_objects), 3) + " per object)",
          "Memory goes to objects that do nothing. Lower --idle-timeout-ms so they are "
          "evicted sooner (their state is on disk), and let sockets hibernate.");
    }

    // Alarms that fail or run late.
    if (m.alarm_retries >= t.alarm_min_retries &&
        static_cast<double>(m.alarm_retries) >=
            t.alarm_retry_fraction * static_cast<double>(m.alarms_fired)) {
      add("alarm-retries", "warning", ns, "", "Alarms of " + ns + " fail and are retried",
          std::to_string(m.alarm_retries) + " of " + std::to_string(m.alarms_fired) +
              " alarm runs were retries (" +
              pct(static_cast<double>(m.alarm_retries) / static_cast<double>(m.alarms_fired)) +
              ")",
          "alarm() throws: each retry runs the whole handler again after a backoff, and after "
          "6 retries the alarm is dropped. Make the handler idempotent, catch the errors you "
          "can handle, and keep work that may fail (outside calls) retryable on its own.");
    }
    if (m.alarm_lateness.count() >= t.alarm_min_fired &&
        m.alarm_lateness.percentile_ms(0.99) > t.alarm_late_p99_ms) {
      add("alarms-late", "warning", ns, "", "Alarms of " + ns + " run late",
          "alarm lateness p50 " + num(m.alarm_lateness.percentile_ms(0.5)) + " ms, p99 " +
              num(m.alarm_lateness.percentile_ms(0.99)) + " ms over " +
              std::to_string(m.alarm_lateness.count()) + " alarms",
          "Alarms fire after their time when the objects or the shard are busy, or when the "
          "time set was already past. Check for long turns (high-cpu), do less per alarm, and "
          "set alarms in the future.");
    }
  }
  return out;
}

}  // namespace dobj::internal
