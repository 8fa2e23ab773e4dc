// dobj-js: serves a Cloudflare Worker (its wrangler.jsonc or wrangler.toml) on dobj.
//
//   dobj-js path/to/wrangler.jsonc [--listen HOST:PORT] [--data DIR] ...
//
// The flags are the example server's (dobj-js CONFIG --help). The Worker is
// loaded and checked before the server starts: a syntax error, a failed
// import or a binding to a class the module does not export stops it with
// the file, line and message (exit status 2). Its admin API also reviews
// code (POST /_dobj/review, docs/review.md).
#include <cstdio>
#include <vector>

#include "admin/admin.h"
#include "dobj/js.h"
#include "dobj/server.h"
#include "review/review.h"

int main(int argc, char** argv) {
  if (argc < 2 || argv[1][0] == '-') {
    std::fprintf(stderr,
                 "usage: %s WRANGLER_CONFIG [server flags]\n"
                 "  serves the Worker of WRANGLER_CONFIG (wrangler.jsonc, wrangler.json or wrangler.toml);\n"
                 "  %s CONFIG --help lists the server flags\n",
                 argv[0], argv[0]);
    return 2;
  }
  dobj::Server server;
  // The front Worker runs JavaScript, dearer than the hop to an object's
  // shard: with one busy object, connections stop moving to its shard sooner
  // and the other shards run its clients' Workers (against 900: read-c64
  // +16%, hot-c64 +15%, six alternating rounds).
  server.defaults().affinity_max_load = 600;
  if (dobj::Status st = dobj::js::load_worker(server, argv[1]); !st) {
    std::fprintf(stderr, "dobj-js: %s\n", st.message().c_str());
    return 2;
  }
  // POST /_dobj/review and the MCP tool reviewCode: code given in the
  // request, reviewed against the Worker's own config when none is given.
  std::string config = argv[1];
  dobj::internal::set_code_reviewer(
      [config](const nlohmann::json& request, const nlohmann::json& live) -> dobj::Result<nlohmann::json> {
        auto input = dobj::review::input_from_json(request, config);
        if (!input) return input.status();
        input->live = live;
        return dobj::review::run(*input);
      });
  std::vector<char*> args{argv[0]};
  for (int i = 2; i < argc; ++i) args.push_back(argv[i]);
  return server.run(static_cast<int>(args.size()), args.data());
}
