#include "admin/admin.h"

#include <unistd.h>

#include <openssl/crypto.h>

#include <nlohmann/json.hpp>
#include <algorithm>
#include <sstream>

#include "admin/advisor.h"
#include "admin/docs.h"
#include "admin/ui.h"
#include "runtime/object_host.h"
#include "runtime/runtime.h"

namespace dobj::internal {

namespace {

uint64_t events_of(const NamespaceMetrics& m) {
  return m.requests + m.socket_messages + m.alarms_fired;
}

std::string escape_label(const std::string& v) {
  std::string out;
  for (char c : v) {
    if (c == '\\' || c == '"') out.push_back('\\');
    if (c == '\n') {
      out += "\\n";
      continue;
    }
    out.push_back(c);
  }
  return out;
}

}  // namespace

AdminPlane::AdminPlane(Runtime& runtime, std::string token)
    : runtime_(runtime), token_(std::move(token)) {
  samples_.push_back(
      Sample{std::chrono::steady_clock::now(), std::vector<uint64_t>(runtime_.namespaces().size())});
}

bool AdminPlane::owns(std::string_view target) {
  std::string_view path = target.substr(0, target.find('?'));
  return path == "/metrics" || path == "/_dobj" || path.rfind("/_dobj/", 0) == 0;
}

bool AdminPlane::authorized(const Request& request) const {
  return authorized_header(request.header("authorization").value_or(""));
}

bool AdminPlane::authorized_header(std::string_view h) const {
  const std::string_view prefix = "Bearer ";
  if (token_.empty() || h.size() != prefix.size() + token_.size() || h.rfind(prefix, 0) != 0) {
    return false;
  }
  return CRYPTO_memcmp(h.data() + prefix.size(), token_.data(), token_.size()) == 0;
}

std::vector<double> AdminPlane::rates(const MetricsSnapshot& s) {
  std::lock_guard lock(mu_);
  std::vector<uint64_t> now(s.per_ns.size());
  for (size_t i = 0; i < now.size(); ++i) now[i] = events_of(s.per_ns[i]);
  // The rate is taken against the newest earlier read at least a second old
  // (or the start): over the last seconds of polling, whoever polls.
  const auto window = std::chrono::seconds(1);
  size_t base = 0;
  for (size_t i = 0; i < samples_.size(); ++i) {
    if (s.at - samples_[i].at >= window) base = i;
  }
  const Sample& b = samples_[base];
  double secs = std::chrono::duration<double>(s.at - b.at).count();
  std::vector<double> out(now.size(), 0);
  for (size_t i = 0; i < now.size(); ++i) {
    if (secs > 0 && i < b.events.size() && now[i] >= b.events[i]) {
      out[i] = static_cast<double>(now[i] - b.events[i]) / secs;
    }
  }
  // Keep this read (one per 100 ms: a newer one replaces a younger one) and
  // drop those older than the base.
  samples_.erase(samples_.begin(), samples_.begin() + static_cast<ptrdiff_t>(base));
  if (samples_.size() > 1 && s.at - samples_.back().at < std::chrono::milliseconds(100)) {
    samples_.back() = Sample{s.at, std::move(now)};
  } else {
    samples_.push_back(Sample{s.at, std::move(now)});
  }
  return out;
}

void AdminPlane::handle(Shard& here, const Request& request, Reply reply,
                        std::string body_file, bool from_peer) {
  // What a handler throws (a bug; input errors are answered) costs that
  // request a 500, never the server: these run on a shard's thread.
  try {
    route(here, request, reply, body_file, from_peer);
  } catch (const std::exception& e) {
    reply(Response::error(500, std::string("admin request failed: ") + e.what()));
  }
  // An upload no route took.
  if (!body_file.empty()) ::unlink(body_file.c_str());
}

void AdminPlane::route(Shard& here, const Request& request, Reply reply, std::string& body_file,
                       bool from_peer) {
  if (request.path() == "/_dobj/ui" && request.method == "GET") {
    // The dashboard's page holds no data: it asks for the token and sends it
    // with every request it makes.
    Response page = Response::text(kDashboardPage);
    page.set_header("content-type", "text/html; charset=utf-8");
    page.set_header("cache-control", "no-store");
    page.set_header("content-security-policy",
                    "default-src 'self'; script-src 'unsafe-inline'; style-src 'unsafe-inline'");
    return reply(std::move(page));
  }
  if (!from_peer && !authorized(request)) {
    Response r = Response::error(401, "unauthorized: send Authorization: Bearer <admin token>");
    r.set_header("www-authenticate", "Bearer");
    return reply(std::move(r));
  }
  std::string path(request.path());
  auto segments = request.path_segments();
  if (!segments) return reply(Response::error(400, "bad escape in the path"));
  // segments: "_dobj", "objects", ns, id, action
  if (segments->size() >= 2 && (*segments)[0] == "_dobj" && (*segments)[1] == "objects") {
    const auto& s = *segments;
    if (s.size() == 2) {
      if (request.method != "GET") return reply(Response::error(405, "use GET"));
      if (runtime_.placement() && !from_peer) return list_cluster_objects(here, request, std::move(reply));
      return list_objects(here, request, std::move(reply));
    }
    if (s.size() < 4 || s.size() > 5) return reply(Response::error(404, "no admin route " + path));
    auto target = parse_target(s[2], s[3]);
    if (!target) return reply(error_response(target.status()));
    if (!from_peer && forward_to_owner(here, *target, request, reply, body_file)) return;
    std::string action = s.size() == 5 ? s[4] : "";
    auto route = [&](const char* method, const char* act) {
      return action == act && request.method == method;
    };
    if (route("GET", "")) return inspect_object(here, *target, request, std::move(reply));
    if (route("DELETE", "")) return delete_object(here, *target, std::move(reply));
    if (route("POST", "sql")) return query_object(here, *target, request, std::move(reply));
    if (route("GET", "export")) return export_object(here, *target, std::move(reply));
    if (route("POST", "replay")) return replay_object(here, *target, request, std::move(reply));
    if (route("GET", "history")) return object_history(here, *target, request, std::move(reply));
    if (route("POST", "restore")) return restore_object(here, *target, request, std::move(reply));
    if (route("GET", "history-file")) return download_history(here, *target, std::move(reply));
    if (route("PUT", "history-file")) {
      return upload_history(here, *target, request, std::move(reply), std::exchange(body_file, {}));
    }
    if (route("POST", "fork")) return fork_object(here, *target, request, std::move(reply));
    if (route("PUT", "import")) {
      return import_object(here, *target, request, std::move(reply), std::exchange(body_file, {}));
    }
    if (action.empty() || action == "sql" || action == "export" || action == "import" ||
        action == "replay" || action == "history" || action == "restore" || action == "history-file" ||
        action == "fork") {
      return reply(Response::error(405, "method not allowed here"));
    }
    return reply(Response::error(404, "no admin route " + path));
  }
  if (path == "/_dobj/cluster/retire") {
    // ?node=<id>: POST retires it (its partitions move to the other nodes),
    // DELETE takes it back.
    Placement* placement = runtime_.placement();
    if (!placement) return reply(Response::error(400, "a single node has no cluster to retire nodes from"));
    if (request.method != "POST" && request.method != "DELETE") {
      return reply(Response::error(405, "POST retires the node, DELETE takes it back"));
    }
    return placement->set_retired(request.query("node").value_or(""), request.method == "POST",
                                  [&here, reply](Response r) {
                                    here.post([reply, r = std::move(r)]() mutable { reply(std::move(r)); });
                                  });
  }
  if (path == "/_dobj/mcp") return mcp(here, request, std::move(reply));
  if (path == "/_dobj/review") return review_code(here, request, std::move(reply));
  if (request.method != "GET") return reply(Response::error(405, "use GET"));
  if (path == "/metrics") {
    return runtime_.collect_metrics(&here, [this, reply](MetricsSnapshot s) {
      Response r = Response::text(prometheus(s));
      r.set_header("content-type", "text/plain; version=0.0.4; charset=utf-8");
      reply(std::move(r));
    });
  }
  if (path == "/_dobj/cluster") {
    Placement* placement = runtime_.placement();
    return reply(Response::json(placement ? placement->status_json() : std::string(R"({"mode":"single"})")));
  }
  if (path == "/_dobj/docs") {
    std::string q = request.query("q").value_or("");
    if (q.empty()) return reply(Response::error(400, "give the words to search for: ?q=..."));
    int limit = std::atoi(request.query("limit").value_or("5").c_str());
    nlohmann::json out = {{"query", q}, {"sections", search_docs(q, std::clamp(limit, 1, 20))}};
    return reply(Response::json(out.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace)));
  }
  if (path == "/_dobj/advice") {
    return collect_all(here, from_peer, [this, reply](MetricsSnapshot s) {
      reply(Response::json(advice_json(s)));
    });
  }
  if (path == "/_dobj/metrics") {
    return collect_all(here, from_peer, [this, reply](MetricsSnapshot s) { reply(Response::json(json(s))); });
  }
  if (path == "/_dobj/snapshot") {  // this node's numbers whole, for the others to merge
    return runtime_.collect_metrics(&here, [reply](MetricsSnapshot s) {
      reply(Response::json(snapshot_to_json(s).dump(-1, ' ', false, nlohmann::json::error_handler_t::replace)));
    });
  }
  reply(Response::error(404, "no admin route " + path));
}

std::string AdminPlane::json(const MetricsSnapshot& s) {
  using Json = nlohmann::json;
  std::vector<double> rate = rates(s);
  auto render = [](const NamespaceMetrics& m, double rps) {
    Json j;
    j["activeObjects"] = m.active_objects;
    j["requestsPerSecond"] = rps;
    j["cpuTimeP50"] = m.turn_time.percentile_ms(0.50);
    j["cpuTimeP95"] = m.turn_time.percentile_ms(0.95);
    j["cpuTimeP99"] = m.turn_time.percentile_ms(0.99);
    j["wallTimeP50"] = m.event_time.percentile_ms(0.50);
    j["wallTimeP95"] = m.event_time.percentile_ms(0.95);
    j["wallTimeP99"] = m.event_time.percentile_ms(0.99);
    j["stateOperations"] = m.storage.reads + m.storage.writes + m.storage.deletes;
    j["storageReads"] = m.storage.reads;
    j["storageWrites"] = m.storage.writes;
    j["storageDeletes"] = m.storage.deletes;
    j["requests"] = m.requests;
    j["websocketMessages"] = m.socket_messages;
    j["errors"] = m.errors;
    j["alarmsFired"] = m.alarms_fired;
    j["alarmRetries"] = m.alarm_retries;
    j["alarmLatenessP50"] = m.alarm_lateness.percentile_ms(0.50);
    j["alarmLatenessP99"] = m.alarm_lateness.percentile_ms(0.99);
    j["outputGateWaitP50"] = m.gate_wait.percentile_ms(0.50);
    j["outputGateWaitP99"] = m.gate_wait.percentile_ms(0.99);
    j["evictions"] = m.evictions;
    j["resets"] = m.resets;
    j["overloadRejections"] = m.overloaded;
    j["websocketsOpen"] = m.sockets_open;
    j["websocketsHibernated"] = m.sockets_hibernated;
    j["websocketsIdleClosed"] = m.sockets_idle_closed;
    j["storedObjects"] = m.stored_objects;
    j["storageBytes"] = m.storage_bytes;
    j["sqlStatements"] = m.storage.sql;
    j["listCalls"] = m.storage.lists;
    j["transactions"] = m.storage.transactions;
    j["commits"] = m.storage.commits;
    j["turnsCoalesced"] = m.storage.turns_coalesced;
    j["instancesCreated"] = m.instances;
    j["uniqueIdsCreated"] = m.unique_ids;
    j["singleEventEvictions"] = m.single_event_evictions;
    j["turnsReadOnly"] = m.turns_read;
    j["turnsWriteOnly"] = m.turns_blind_write;
    j["turnsReadWrite"] = m.turns_rmw;
    j["websocketsKept"] = m.sockets_kept;
    return j;
  };
  Json out;
  out["namespaces"] = Json::object();
  NamespaceMetrics total;
  double total_rate = 0;
  for (size_t i = 0; i < s.per_ns.size(); ++i) {
    out["namespaces"][s.namespaces[i]] = render(s.per_ns[i], rate[i]);
    total.merge(s.per_ns[i]);
    total_rate += rate[i];
  }
  out["total"] = render(total, total_rate);
  out["connections"] = {
      {"open", s.connections_open}, {"refused", s.connections_refused}, {"moved", s.connections_moved}};
  if (!s.nodes.empty()) out["nodes"] = {{"answered", s.nodes}, {"unreachable", s.unreachable_nodes}};
  auto list = [](const std::vector<ObjectStat>& v) {
    Json a = Json::array();
    for (const auto& o : v) {
      Json e = {{"namespace", o.ns}, {"id", o.id}, {"events", o.events}, {"cpuMs", o.turn_ms}};
      if (!o.name.empty()) e["name"] = o.name;
      a.push_back(std::move(e));
    }
    return a;
  };
  out["topByRequests"] = list(s.top_by_events);
  out["topByCpu"] = list(s.top_by_time);
  return out.dump(-1, ' ', false, Json::error_handler_t::replace);
}

std::string AdminPlane::advice_json(const MetricsSnapshot& s) {
  using Json = nlohmann::json;
  Json out;
  out["findings"] = Json::array();
  for (const Finding& f : advise(s, rates(s))) {
    Json j = {{"rule", f.rule},         {"severity", f.severity}, {"namespace", f.ns},
              {"title", f.title},       {"evidence", f.evidence}, {"suggestion", f.suggestion}};
    if (!f.object.empty()) j["object"] = f.object;
    out["findings"].push_back(std::move(j));
  }
  if (!s.nodes.empty()) out["nodes"] = {{"answered", s.nodes}, {"unreachable", s.unreachable_nodes}};
  return out.dump(-1, ' ', false, Json::error_handler_t::replace);
}

std::string AdminPlane::prometheus(const MetricsSnapshot& s) {
  std::ostringstream o;
  auto family = [&](const char* name, const char* type, const char* help) {
    o << "# HELP " << name << ' ' << help << "\n# TYPE " << name << ' ' << type << '\n';
  };
  auto each = [&](const char* name, auto value) {
    for (size_t i = 0; i < s.per_ns.size(); ++i) {
      o << name << "{namespace=\"" << escape_label(s.namespaces[i]) << "\"} "
        << value(s.per_ns[i]) << '\n';
    }
  };
  auto summary = [&](const char* name, const char* help, auto hist) {
    family(name, "summary", help);
    for (size_t i = 0; i < s.per_ns.size(); ++i) {
      const Histogram& h = hist(s.per_ns[i]);
      std::string ns = escape_label(s.namespaces[i]);
      for (double q : {0.5, 0.95, 0.99}) {
        o << name << "{namespace=\"" << ns << "\",quantile=\"" << q << "\"} "
          << h.percentile_ms(q) / 1000.0 << '\n';
      }
      o << name << "_sum{namespace=\"" << ns << "\"} " << h.sum_ms() / 1000.0 << '\n';
      o << name << "_count{namespace=\"" << ns << "\"} " << h.count() << '\n';
    }
  };
  using M = const NamespaceMetrics&;
  struct Series {
    const char* name;
    const char* type;
    const char* help;
    uint64_t (*value)(M);
  };
  static const Series kSeries[] = {
      {"dobj_objects_active", "gauge", "Objects in memory.", [](M m) { return m.active_objects; }},
      {"dobj_requests_total", "counter", "HTTP requests and calls delivered to objects.",
       [](M m) { return m.requests; }},
      {"dobj_websocket_messages_total", "counter", "WebSocket messages delivered to objects.",
       [](M m) { return m.socket_messages; }},
      {"dobj_errors_total", "counter", "Events that failed.", [](M m) { return m.errors; }},
      {"dobj_alarms_fired_total", "counter", "alarm() runs, retries included.",
       [](M m) { return m.alarms_fired; }},
      {"dobj_alarm_retries_total", "counter", "alarm() runs that were retries.",
       [](M m) { return m.alarm_retries; }},
      {"dobj_evictions_total", "counter", "Objects evicted from memory after the idle timeout.",
       [](M m) { return m.evictions; }},
      {"dobj_resets_total", "counter", "Object resets.", [](M m) { return m.resets; }},
      {"dobj_overload_rejections_total", "counter", "Events refused with 503 overloaded.",
       [](M m) { return m.overloaded; }},
      {"dobj_websockets_open", "gauge", "Open WebSockets.", [](M m) { return m.sockets_open; }},
      {"dobj_websockets_hibernated", "gauge", "Open WebSockets whose object is not in memory.",
       [](M m) { return m.sockets_hibernated; }},
      {"dobj_instances_created_total", "counter", "Objects constructed (brought into memory).",
       [](M m) { return m.instances; }},
      {"dobj_unique_ids_total", "counter", "IDs minted with new_unique_id.",
       [](M m) { return m.unique_ids; }},
      {"dobj_websockets_kept", "gauge", "Open WebSockets accepted with keep_websocket.",
       [](M m) { return m.sockets_kept; }},
      {"dobj_websockets_idle_closed_total", "counter",
       "WebSockets closed because their client sent nothing for the idle timeout.",
       [](M m) { return m.sockets_idle_closed; }},
      {"dobj_objects_stored", "gauge", "Objects with storage (the catalog).",
       [](M m) { return m.stored_objects; }},
      {"dobj_storage_bytes", "gauge", "Bytes of the objects' files on disk (database and WAL).",
       [](M m) { return m.storage_bytes; }},
      {"dobj_storage_commits_total", "counter", "SQLite commits of the objects' turns.",
       [](M m) { return m.storage.commits; }},
      {"dobj_turns_coalesced_total", "counter",
       "Turns whose writes joined one commit with the turns after them, made before the next flush.",
       [](M m) { return m.storage.turns_coalesced; }},
  };
  for (const Series& series : kSeries) {
    family(series.name, series.type, series.help);
    each(series.name, series.value);
  }
  family("dobj_storage_operations_total", "counter",
         "Storage operations: get/list/SQL (read), put (write), remove (delete).");
  for (size_t i = 0; i < s.per_ns.size(); ++i) {
    std::string ns = escape_label(s.namespaces[i]);
    const StorageCounters& c = s.per_ns[i].storage;
    o << "dobj_storage_operations_total{namespace=\"" << ns << "\",op=\"read\"} " << c.reads << '\n'
      << "dobj_storage_operations_total{namespace=\"" << ns << "\",op=\"write\"} " << c.writes
      << '\n'
      << "dobj_storage_operations_total{namespace=\"" << ns << "\",op=\"delete\"} " << c.deletes
      << '\n';
  }
  family("dobj_connections_open", "gauge", "Client connections (HTTP and WebSocket) open.");
  o << "dobj_connections_open " << s.connections_open << '\n';
  family("dobj_connections_refused_total", "counter",
         "Connections refused with 503 because the node held its maximum.");
  o << "dobj_connections_refused_total " << s.connections_refused << '\n';
  family("dobj_connections_moved_total", "counter",
         "Keep-alive connections moved to the shard whose objects their requests went to.");
  o << "dobj_connections_moved_total " << s.connections_moved << '\n';
  summary("dobj_turn_seconds", "Time each turn of an object ran on its thread (CPU time).",
          [](M m) -> const Histogram& { return m.turn_time; });
  summary("dobj_event_seconds", "Wall time of each event, start to end.",
          [](M m) -> const Histogram& { return m.event_time; });
  summary("dobj_output_gate_wait_seconds", "How long outputs waited for their writes' flush.",
          [](M m) -> const Histogram& { return m.gate_wait; });
  summary("dobj_alarm_lateness_seconds", "How late alarms fired against their time.",
          [](M m) -> const Histogram& { return m.alarm_lateness; });
  return o.str();
}

}  // namespace dobj::internal
