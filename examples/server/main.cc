// dobj-examples: the example server. Serves every example object under the
// routes of EXAMPLES.md on 127.0.0.1:8787 by default (see --help).
#include <dobj/dobj.h>

#include "page.h"
#include "server/app.h"

namespace {

// The chat page at /, the example routes below it.
dobj::Task<dobj::Response> route(dobj::Request req, dobj::Env& env) {
  if (auto segments = req.path_segments(); segments && segments->empty() && req.method == "GET") {
    dobj::Response page = dobj::Response::text(kChatPage);
    page.set_header("content-type", "text/html; charset=utf-8");
    co_return page;
  }
  co_return co_await examples::route(std::move(req), env);
}

}  // namespace

int main(int argc, char** argv) {
  dobj::Server server;
  examples::bind_all(server);
  server.worker(route);
  return server.run(argc, argv);
}
