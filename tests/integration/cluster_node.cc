// A node for the cluster tests: the example server's objects and routes,
// HOLDER, an object that keeps one stub to a counter across its requests, as
// object code that caches a stub does, and LEDGER, a number that forks.
//
//   POST /holder/<name>/<counter>  increments COUNTER <counter> through the
//   holder's kept stub; after a reset error it drops the stub (the next
//   request gets a new one), as the error tells object code to.
//   GET  /ledger/<name>                   its number
//   POST /ledger/<name>/add?n=N           adds N, answers the new number
//   POST /ledger/<name>/snapshot          Storage::snapshot(): its name
//   POST /ledger/<name>/fork?from=S       becomes snapshot S: on_next_session_restore,
//                                         then abort (the answer is a reset error)
//   POST /ledger/<name>/fork?from=S&abort=0   asks only (the restore waits for a restart)
//   POST /ledger/<name>/abort             aborts (the next request starts it again)
#include <optional>
#include <string_view>
#include <utility>

#include <dobj/dobj.h>

#include "server/app.h"

namespace {

class Holder : public dobj::DurableObject {
 public:
  using DurableObject::DurableObject;
  dobj::Task<dobj::Response> fetch(dobj::Request req) override {
    std::string path(req.path());
    std::string counter = path.substr(path.rfind('/') + 1);
    dobj::Namespace ns = env().ns("COUNTER");
    if (!stub_) stub_ = ns.get(ns.id_from_name(counter));
    dobj::Request inc;
    inc.method = "POST";
    inc.target = "/counter/" + counter + "/increment";
    dobj::Response r = co_await stub_->fetch(std::move(inc));
    if (r.status == 500 && r.body.find("\"reset\":true") != std::string::npos) stub_.reset();
    co_return r;
  }

 private:
  std::optional<dobj::Stub> stub_;
};

class Ledger : public dobj::DurableObject {
 public:
  using DurableObject::DurableObject;
  dobj::Task<dobj::Response> fetch(dobj::Request req) override {
    std::string path(req.path());
    std::string action = path.substr(path.rfind('/') + 1);
    int64_t value = storage().get<int64_t>("value").value_or(0);
    if (req.method == "GET") co_return dobj::Response::text(std::to_string(value));
    if (action == "add") {
      value += std::stoll(req.query("n").value_or("1"));
      storage().put("value", value);
      co_return dobj::Response::text(std::to_string(value));
    }
    if (action == "snapshot") co_return dobj::Response::text(co_await storage().snapshot());
    if (action == "fork") co_await state().on_next_session_restore(req.query("from").value_or(""));
    if (action == "abort" || (action == "fork" && req.query("abort") != "0")) state().abort("asked to");
    co_return dobj::Response::text("ok");
  }
};

dobj::Task<dobj::Response> route(dobj::Request req, dobj::Env& env) {
  std::string path(req.path());
  for (auto [prefix, binding] : {std::pair{std::string_view("/holder/"), "HOLDER"}, {"/ledger/", "LEDGER"}}) {
    if (path.rfind(prefix, 0) != 0) continue;
    std::string name = path.substr(prefix.size(), path.find('/', prefix.size()) - prefix.size());
    dobj::Namespace ns = env.ns(binding);
    return ns.get(ns.id_from_name(name)).fetch(std::move(req));
  }
  return examples::route(std::move(req), env);
}

}  // namespace

int main(int argc, char** argv) {
  dobj::Server server;
  examples::bind_all(server);
  server.bind<Holder>("HOLDER");
  server.bind<Ledger>("LEDGER");
  server.worker(route);
  return server.run(argc, argv);
}
