#include "webhooks/webhook_processor.h"

#include "common/util.h"

namespace examples {

using dobj::Json;
using dobj::Response;

WebhookProcessor::WebhookProcessor(dobj::State& state, dobj::Env& env) : DurableObject(state, env) {
  storage().sql().exec(
      "CREATE TABLE IF NOT EXISTS events("
      " seq INTEGER PRIMARY KEY AUTOINCREMENT, id TEXT NOT NULL UNIQUE, customer TEXT NOT NULL,"
      " type TEXT NOT NULL, fail_times INTEGER NOT NULL, backoff_ms INTEGER NOT NULL,"
      " attempts INTEGER NOT NULL DEFAULT 0, next_at INTEGER NOT NULL,"
      " state TEXT NOT NULL DEFAULT 'pending', done_order INTEGER)");
}

dobj::Task<Response> WebhookProcessor::fetch(dobj::Request req) {
  auto segments = req.path_segments();
  if (!segments || segments->size() != 2) co_return Response::error(404, "not found");
  if (req.method == "GET") {
    Json processed = Json::array(), dead = Json::array();
    for (const auto& row : storage().sql().exec("SELECT id, attempts, state FROM events WHERE "
                                                "state != 'pending' ORDER BY done_order")) {
      Json e = {{"id", row.get<std::string>("id")}, {"attempts", row.get<int64_t>("attempts")}};
      (row.get<std::string>("state") == "processed" ? processed : dead).push_back(e);
    }
    auto pending = storage()
                       .sql()
                       .exec("SELECT count(*) FROM events WHERE state = 'pending'")
                       .one<int64_t>();
    co_return Response::json(
        Json({{"processed", processed}, {"pending", pending}, {"dead", dead}}).dump());
  }
  if (req.method != "POST") co_return Response::error(405, "use POST to queue or GET to read");
  int64_t backoff = 1000;
  if (auto b = req.query("backoff_ms")) {
    auto parsed = parse_int(*b);
    if (!parsed || *parsed < 0)
      co_return Response::error(400, "backoff_ms must be a non-negative integer");
    backoff = *parsed;
  }
  dobj::Result<Json> parsed = dobj::parse_json(req.body);
  if (!parsed) co_return Response::error(400, parsed.status().message());
  Json e = std::move(*parsed);
  if (!e.is_object())
    co_return Response::error(400, "body must be a JSON object");
  for (const char* field : {"id", "customer", "type"}) {
    if (!e.contains(field) || !e[field].is_string() || e[field].get<std::string>().empty()) {
      co_return Response::error(400, std::string("missing ") + field);
    }
  }
  int64_t fail_times = 0;
  if (e.contains("fail_times")) {
    if (!e["fail_times"].is_number_integer())
      co_return Response::error(400, "fail_times must be an integer");
    fail_times = e["fail_times"].get<int64_t>();
  }
  // Idempotent on the event id: a repeat is accepted and ignored.
  storage().sql().exec(
      "INSERT INTO events(id, customer, type, fail_times, backoff_ms, next_at) VALUES (?, ?, ?, ?, "
      "?, ?)"
      " ON CONFLICT(id) DO NOTHING",
      e["id"].get<std::string>(), e["customer"].get<std::string>(), e["type"].get<std::string>(),
      fail_times, backoff, state().now_ms());
  schedule_next();
  co_return Response::text("Queued", 202);  // sent once the event and the alarm are durable
}

// The alarm goes to the earliest time at which some customer's first pending
// event may be tried.
void WebhookProcessor::schedule_next() {
  auto next = storage().sql().exec(
      "SELECT min(next_at) FROM events e WHERE state = 'pending' AND seq = "
      "(SELECT min(seq) FROM events f WHERE f.customer = e.customer AND f.state = 'pending')");
  if (auto at = next.one<std::optional<int64_t>>()) {
    storage().set_alarm(std::max<int64_t>(1, *at));
  } else {
    storage().delete_alarm();
  }
}

dobj::Task<void> WebhookProcessor::alarm(dobj::AlarmInfo) {
  int64_t now = state().now_ms();
  int64_t order =
      storage().sql().exec("SELECT coalesce(max(done_order), 0) FROM events").one<int64_t>();
  // Each customer's events in arrival order: handle the first pending one
  // while it is due; a processed or dead event lets the next one go.
  for (;;) {
    auto due = storage().sql().exec(
        "SELECT seq, fail_times, backoff_ms, attempts FROM events e WHERE state = 'pending'"
        " AND next_at <= ? AND seq = (SELECT min(seq) FROM events f"
        " WHERE f.customer = e.customer AND f.state = 'pending') ORDER BY seq",
        now);
    if (due.size() == 0) break;
    for (const auto& row : due) {
      int64_t seq = row.get<int64_t>("seq");
      int64_t fail_times = row.get<int64_t>("fail_times");
      int64_t backoff = row.get<int64_t>("backoff_ms");
      int64_t attempts = row.get<int64_t>("attempts") + 1;
      if (attempts <= fail_times) {  // this attempt fails
        if (attempts >= kMaxAttempts) {
          storage().sql().exec(
              "UPDATE events SET attempts = ?, state = 'dead', done_order = ? WHERE seq = ?",
              attempts, ++order, seq);
        } else {
          storage().sql().exec("UPDATE events SET attempts = ?, next_at = ? WHERE seq = ?",
                               attempts, now + backoff * (int64_t{1} << (attempts - 1)), seq);
        }
      } else {
        storage().sql().exec(
            "UPDATE events SET attempts = ?, state = 'processed', done_order = ? WHERE seq = ?",
            attempts, ++order, seq);
      }
    }
  }
  schedule_next();
  co_return;
}

}  // namespace examples
