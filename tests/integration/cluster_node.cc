// A node for the cluster tests: the example server's objects and routes, and
// HOLDER, an object that keeps one stub to a counter across its requests, as
// object code that caches a stub does.
//
//   POST /holder/<name>/<counter>  increments COUNTER <counter> through the
//   holder's kept stub; after a reset error it drops the stub (the next
//   request gets a new one), as the error tells object code to.
#include <optional>

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

dobj::Task<dobj::Response> route(dobj::Request req, dobj::Env& env) {
  std::string path(req.path());
  if (path.rfind("/holder/", 0) == 0) {
    std::string name = path.substr(8, path.find('/', 8) - 8);
    dobj::Namespace ns = env.ns("HOLDER");
    return ns.get(ns.id_from_name(name)).fetch(std::move(req));
  }
  return examples::route(std::move(req), env);
}

}  // namespace

int main(int argc, char** argv) {
  dobj::Server server;
  examples::bind_all(server);
  server.bind<Holder>("HOLDER");
  server.worker(route);
  return server.run(argc, argv);
}
