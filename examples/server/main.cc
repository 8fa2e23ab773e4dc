// dobj-examples: the example server. Serves every example object under the
// routes of EXAMPLES.md on 127.0.0.1:8787 by default (see --help).
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
#include "page.h"

namespace {

// /<route>/<name>/... → the object id_from_name(<name>) of the route's binding.
dobj::Task<dobj::Response> route(dobj::Request req, dobj::Env& env) {
  auto segments = req.path_segments();
  if (!segments) co_return dobj::Response::error(400, "malformed percent-encoding in the path");
  if (segments->empty() && req.method == "GET") {
    dobj::Response page = dobj::Response::text(kChatPage);
    page.set_header("content-type", "text/html; charset=utf-8");
    co_return page;
  }
  if (segments->size() < 2) co_return dobj::Response::error(404, "not found");
  const std::string& kind = (*segments)[0];
  if (kind == "sharded") {
    bool increment = segments->size() == 3 && (*segments)[2] == "increment";
    if (segments->size() != 2 && !increment) co_return dobj::Response::error(404, "not found");
    co_return co_await examples::sharded_counter_route(std::move(req), env, (*segments)[1],
                                                       increment);
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

}  // namespace

int main(int argc, char** argv) {
  dobj::Server server;
  server.bind<examples::Counter>("COUNTER");
  server.bind<examples::KvProbe>("KV");
  server.bind<examples::SqlProbe>("SQL");
  server.bind<examples::BankAccount>("BANK");
  server.bind<examples::RateLimiter>("RATE_LIMITER");
  server.bind<examples::CounterShard>("SHARDED_COUNTER");
  server.bind<examples::TaskRunner>("TASK_RUNNER");
  server.bind<examples::WebhookProcessor>("WEBHOOKS");
  server.bind<examples::ChatRoom>("CHAT_ROOM");
  server.worker(route);
  return server.run(argc, argv);
}
