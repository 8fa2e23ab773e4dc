// JavaScript Durable Objects beside C++ ones (link dobj::js; docs/js.md).
//
//   dobj::Server server;
//   server.bind<Counter>("COUNTER");                        // C++
//   if (auto st = dobj::js::load_worker(server, "worker/wrangler.jsonc"); !st) ...
//   return server.run(argc, argv);
//
// The Worker's classes are bound under their binding names next to the C++
// ones, and its default export's fetch becomes the server's worker. Each
// kind reaches the other through stubs: C++ with env.ns("ROOM"), JavaScript
// with env.COUNTER (every binding of the server is on the Worker's env).
#pragma once

#include <string>

#include "dobj/server.h"
#include "dobj/status.h"

namespace dobj::js {

// Reads the wrangler.jsonc (or wrangler.json), loads and checks the Worker
// (a syntax error, a failed import or a missing class comes back as an
// error naming the file and line, and nothing is bound), binds its classes
// and sets the server's worker. One Worker per process, loaded before the
// server starts; the server's --cpu-limit-ms applies to JavaScript too.
Status load_worker(Server& server, const std::string& wrangler_path);

}  // namespace dobj::js
