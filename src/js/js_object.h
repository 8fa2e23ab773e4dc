// JsObject: a Durable Object whose class is written in JavaScript.
//
// A C++ DurableObject to the runtime (so gates, turns, group commit, alarms,
// resets, the catalog and metrics apply unchanged) whose handlers call the
// JavaScript instance's: fetch(request), alarm(alarmInfo). The instance is
// made in the shard's Vm as `new Class(ctx, env)`; ctx carries the object's
// handle, by which the natives (natives.cc) reach its storage.
//
// js_worker is the Worker's `export default { fetch(request, env, ctx) }`.
#pragma once

#include <string>
#include <unordered_map>
#include <vector>

#include <v8.h>

#include "dobj/object.h"
#include "js/vm.h"
#include "storage/object_store.h"

namespace dobj::internal {
class ObjectHost;
}

namespace dobj::js {

class JsObject : public DurableObject {
 public:
  // Builds the JavaScript instance; throws JsError when its constructor throws.
  JsObject(State& state, Env& env, const std::string& class_name, bool delete_all_deletes_alarm);
  ~JsObject() override;

  Task<Response> fetch(Request request) override;
  Task<void> alarm(AlarmInfo info) override;
  Task<void> websocket_message(WebSocket ws, WebSocketMessage message) override;
  Task<void> websocket_close(WebSocket ws, int code, std::string reason, bool was_clean) override;
  Task<void> websocket_error(WebSocket ws, std::string error) override;
  // JS RPC: a public method of the class, with structured-clone arguments.
  Task<Response> dispatch_call(std::string method, std::string args_json) override;

  // For the natives.
  State& state() { return DurableObject::state(); }
  Storage& storage() { return DurableObject::storage(); }
  // storage.deleteAll(): keeps the alarm unless the compatibility date or
  // flag says otherwise (Cloudflare changed it on 2026-02-24).
  void delete_all();
  // storage.transaction(): a savepoint that must end within the entry that
  // opened it. begin gives its serial; an entry that ends with one still open
  // (the callback awaited something outside the object) rolls it back, and
  // check/end of it then throw.
  uint64_t begin_transaction();
  void check_transaction(uint64_t serial) const;
  void end_transaction(uint64_t serial, bool commit);
  // Called when an outermost entry of this object ends.
  void entry_ended();

  // Logs why JavaScript was terminated and resets the object (throws).
  [[noreturn]] void terminated(const Terminated& t);
  // Resets the object when the current turn ends (ctx.abort(), or a limit
  // hit while an op's continuation ran).
  void abort_soon(const std::string& reason);
  // "NS <hex id> (name)", for log lines.
  std::string who() const;
  Vm& vm() { return vm_; }
  Scope* scope() { return &scope_; }
  void forget_socket(const WebSocket& ws) { sockets_.erase(ws.id()); }
  // The JavaScript WebSocket of a socket: the same object for the same
  // socket while this instance lives (inside an entry).
  v8::Local<v8::Object> wrap_socket(const WebSocket& ws);

 private:
  Vm& vm_;
  internal::ObjectHost* host_;
  uint64_t handle_;
  Scope scope_;
  // Calls a handler of the instance with the socket, a missing handler
  // being no error; `forget` drops the socket's JavaScript object after.
  Task<void> socket_event(const char* handler, WebSocket ws,
                          std::function<std::vector<v8::Local<v8::Value>>(Vm&)> more, bool forget);
  // Events of a socket accepted with ws.accept() (not hibernatable): they go
  // to the WebSocket's event listeners.
  WebSocketHandlers listeners();

  v8::Global<v8::Object> instance_;
  bool delete_all_deletes_alarm_;
  std::unordered_map<uint64_t, v8::Global<v8::Object>> sockets_;
  std::vector<uint64_t> open_transactions_;  // serials, innermost last
  uint64_t next_transaction_ = 1;
};

// The Worker's default export, as dobj's worker.
Task<Response> js_worker(Request request, Env& env);

// Whether a compatibility date and flags ask deleteAll() to delete the alarm.
bool delete_all_deletes_alarm(const WranglerConfig& config);

}  // namespace dobj::js
