// The example objects as one application: their bindings and the router of
// EXAMPLES.md, for the example server and for tests (dobj/testing.h).
#pragma once

#include <dobj/dobj.h>

#include "bank/bank_account.h"
#include "chat_room/chat_room.h"
#include "counter/counter.h"
#include "kv_probe/kv_probe.h"
#include "rate_limiter/rate_limiter.h"
#include "sharded_counter/sharded_counter.h"
#include "sql_probe/sql_probe.h"
#include "task_runner/task_runner.h"
#include "webhooks/webhook_processor.h"

namespace examples {

// Binds every example class on a dobj::Server or a dobj::testing::TestRuntime.
template <typename Binder>
void bind_all(Binder& b) {
  b.template bind<Counter>("COUNTER");
  b.template bind<KvProbe>("KV");
  b.template bind<SqlProbe>("SQL");
  b.template bind<BankAccount>("BANK");
  b.template bind<RateLimiter>("RATE_LIMITER");
  b.template bind<CounterShard>("SHARDED_COUNTER");
  b.template bind<TaskRunner>("TASK_RUNNER");
  b.template bind<WebhookProcessor>("WEBHOOKS");
  b.template bind<ChatRoom>("CHAT_ROOM");
}

// /<route>/<name>/... → the object id_from_name(<name>) of the route's binding.
inline dobj::Task<dobj::Response> route(dobj::Request req, dobj::Env& env) {
  auto segments = req.path_segments();
  if (!segments) co_return dobj::Response::error(400, "malformed percent-encoding in the path");
  if (segments->size() < 2) co_return dobj::Response::error(404, "not found");
  const std::string& kind = (*segments)[0];
  if (kind == "sharded") {
    bool increment = segments->size() == 3 && (*segments)[2] == "increment";
    if (segments->size() != 2 && !increment) co_return dobj::Response::error(404, "not found");
    co_return co_await sharded_counter_route(std::move(req), env, (*segments)[1], increment);
  }
  const char* binding = kind == "counter"     ? "COUNTER"
                        : kind == "kv"        ? "KV"
                        : kind == "sql"       ? "SQL"
                        : kind == "bank"      ? "BANK"
                        : kind == "ratelimit" ? "RATE_LIMITER"
                        : kind == "tasks"     ? "TASK_RUNNER"
                        : kind == "webhooks"  ? "WEBHOOKS"
                        : kind == "room"      ? "CHAT_ROOM"
                                              : nullptr;
  if (!binding) co_return dobj::Response::error(404, "no route for /" + kind);
  dobj::Namespace ns = env.ns(binding);
  co_return co_await ns.get(ns.id_from_name((*segments)[1])).fetch(std::move(req));
}

}  // namespace examples
