// dobj-examples: the example server. Serves every example object under the
// routes of EXAMPLES.md on 127.0.0.1:8787 by default (see --help).
#include <dobj/dobj.h>

#include "page.h"
#include "server/app.h"

namespace {

dobj::Task<dobj::Response> chat_page() {
  dobj::Response page = dobj::Response::text(kChatPage);
  page.set_header("content-type", "text/html; charset=utf-8");
  co_return page;
}

// The chat page at /, the example routes below it. Not a coroutine itself: a
// request to an object costs no extra coroutine frame.
dobj::Task<dobj::Response> route(dobj::Request req, dobj::Env& env) {
  // A path of slashes only ("/"): no segments. Checked without parsing the
  // path, which examples::route does once for the rest.
  if (req.method == "GET" && req.path().find_first_not_of('/') == std::string_view::npos) {
    return chat_page();
  }
  return examples::route(std::move(req), env);
}

}  // namespace

int main(int argc, char** argv) {
  dobj::Server server;
  examples::bind_all(server);
  server.worker(route);
  return server.run(argc, argv);
}
