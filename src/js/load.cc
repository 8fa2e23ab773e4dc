// dobj::js::load_worker: a Worker's classes and front fetch on a Server.
#include <cstdlib>
#include <memory>
#include <mutex>
#include <unordered_map>

#include "dobj/js.h"
#include "js/js_object.h"
#include "js/vm.h"
#include "js/wrangler.h"

namespace dobj::js {

Status load_worker(Server& server, const std::string& wrangler_path) {
  static std::once_flag loaded;
  bool first = false;
  std::call_once(loaded, [&] { first = true; });
  if (!first) return Status(Code::kInvalidArgument, "one Worker per process: already loaded");
  auto config = read_wrangler(wrangler_path);
  if (!config) return config.status();
  auto script = std::make_shared<Script>();
  script->config = *config;
  Vm::set_script(script);
  std::atexit([] { Vm::shutdown(); });  // after the server (and its objects) went
  std::unordered_map<std::string, bool> has_alarm;
  if (Status st = Vm::check(*script, &has_alarm); !st) return st;
  bool deletes_alarm = delete_all_deletes_alarm(*config);
  for (const auto& b : config->bindings) {
    std::string cls = b.class_name;
    server.bind_factory(
        b.name,
        [cls, deletes_alarm](State& state, Env& env) -> std::unique_ptr<DurableObject> {
          return std::make_unique<JsObject>(state, env, cls, deletes_alarm);
        },
        has_alarm[b.name]);
  }
  server.worker(&js_worker);
  server.on_options([script](const ServerOptions& o) {
    // Before any shard makes its Vm; the watchdog reads it.
    script->cpu_limit = o.cpu_limit;
    script->expose_exception_messages = o.expose_exception_messages;
  });
  // Each shard's isolate and Worker, made before the first request instead
  // of by it.
  server.on_shard_start([] { Vm::current(); });
  // Boxes may hold sockets of the runtime's hubs: freed while those live.
  server.on_stopped([] { Vm::release_boxes(); });
  return Status();
}

}  // namespace dobj::js
