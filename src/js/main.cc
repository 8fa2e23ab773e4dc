// dobj-js: serves a Cloudflare Worker (its wrangler.jsonc) on dobj.
//
//   dobj-js path/to/wrangler.jsonc [--listen HOST:PORT] [--data DIR] ...
//
// The flags are the example server's (dobj-js --help). The Worker is loaded
// and checked before the server starts: a syntax error, a failed import or a
// binding to a class the module does not export stops it with the file,
// line and message.
#include <cstdio>
#include <cstring>
#include <memory>
#include <unordered_map>
#include <vector>

#include "dobj/server.h"
#include "js/js_object.h"
#include "js/vm.h"
#include "js/wrangler.h"

int main(int argc, char** argv) {
  using namespace dobj;
  if (argc < 2 || argv[1][0] == '-') {
    std::fprintf(stderr,
                 "usage: %s WRANGLER_CONFIG [server flags]\n"
                 "  serves the Worker of WRANGLER_CONFIG (wrangler.jsonc or wrangler.json);\n"
                 "  %s CONFIG --help lists the server flags\n",
                 argv[0], argv[0]);
    return 2;
  }
  auto config = js::read_wrangler(argv[1]);
  if (!config) {
    std::fprintf(stderr, "dobj-js: %s\n", config.status().message().c_str());
    return 2;
  }
  auto script = std::make_shared<js::Script>();
  script->config = *config;
  js::Vm::set_script(script);
  std::unordered_map<std::string, bool> has_alarm;
  if (Status st = js::Vm::check(*script, &has_alarm); !st) {
    std::fprintf(stderr, "dobj-js: %s\n", st.message().c_str());
    js::Vm::shutdown();
    return 2;
  }
  int rc = 0;
  {
    Server server;
    bool deletes_alarm = js::delete_all_deletes_alarm(*config);
    for (const auto& b : config->bindings) {
      std::string cls = b.class_name;
      server.bind_factory(
          b.name,
          [cls, deletes_alarm](State& state, Env& env) -> std::unique_ptr<DurableObject> {
            return std::make_unique<js::JsObject>(state, env, cls, deletes_alarm);
          },
          has_alarm[b.name]);
    }
    server.worker(&js::js_worker);
    server.on_options([script](const ServerOptions& o) {
      // Set before any shard makes its Vm; the watchdog reads it.
      script->cpu_limit = o.cpu_limit;
      script->expose_exception_messages = o.expose_exception_messages;
    });
    std::vector<char*> args{argv[0]};
    for (int i = 2; i < argc; ++i) args.push_back(argv[i]);
    rc = server.run(static_cast<int>(args.size()), args.data());
    js::Vm::release_boxes();  // stopped: no JavaScript runs any more
  }
  js::Vm::shutdown();
  return rc;
}
