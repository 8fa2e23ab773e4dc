#include "js/js_object.h"

#include <algorithm>

#include "base/log.h"
#include "js/boxes.h"
#include "runtime/api_access.h"
#include "runtime/object_host.h"

namespace dobj::js {
namespace {

using Value = std::shared_ptr<v8::Global<v8::Value>>;
using Args = std::function<std::vector<v8::Local<v8::Value>>(Vm&)>;

// A socket event's arguments, for the hibernation handlers and the listeners
// alike: a message (a string, or an ArrayBuffer when binary), and a close.
Args message_args(WebSocketMessage m) {
  return [m = std::move(m)](Vm& vm) {
    std::string data(m.data());
    return std::vector<v8::Local<v8::Value>>{
        m.is_binary() ? vm.js_body(data).As<v8::Uint8Array>()->Buffer().As<v8::Value>()
                      : vm.str(data).As<v8::Value>()};
  };
}

Args close_args(int code, std::string reason, bool clean) {
  return [code, reason = std::move(reason), clean](Vm& vm) {
    return std::vector<v8::Local<v8::Value>>{v8::Integer::New(vm.isolate(), code).As<v8::Value>(),
                                             vm.str(reason), v8::Boolean::New(vm.isolate(), clean)};
  };
}

// Calls target[method](...args) in an entry of `scope` and waits for the
// promise it returns, if any, to settle. Hands the value to `finish` inside
// the entry that has it (a conversion then needs no entry of its own) and
// returns null; without `finish`, returns the value. `finish` may return a
// promise instead (a response whose body stream is still being read): its
// value is then waited for and handed to `finish` again. Throws JsError for
// an exception or a rejection (with its stack), Terminated when the entry was
// terminated, dobj::Error(kNotFound) when there is no such method.
using Finish = std::function<v8::Local<v8::Promise>(v8::Local<v8::Value>)>;
Task<Value> call_js(Vm& vm, Scope* scope, const v8::Global<v8::Object>* target, std::string method,
                    Args args, Finish finish = nullptr) {
  Value out;
  std::optional<Vm::PromiseWait> wait;
  auto take = [&](v8::Local<v8::Value> v) {
    if (!finish) {
      out = std::make_shared<v8::Global<v8::Value>>(vm.isolate(), v);
      return;
    }
    v8::Local<v8::Promise> more = finish(v);
    if (!more.IsEmpty()) wait.emplace(vm, more);
  };
  {
    Vm::Entry entry(vm, scope);
    v8::Local<v8::Context> ctx = entry.context();
    v8::Local<v8::Object> self = target->Get(vm.isolate());
    v8::Local<v8::Value> fn;
    if (!self->Get(ctx, vm.name(method)).ToLocal(&fn) || !fn->IsFunction()) {
      throw Error(Code::kNotFound, "the handler has no " + method + "() method");
    }
    std::vector<v8::Local<v8::Value>> argv = args(vm);
    for (const auto& a : argv) {
      if (a.IsEmpty()) entry.rethrow(method);
    }
    v8::Local<v8::Value> result;
    if (!fn.As<v8::Function>()->Call(ctx, self, static_cast<int>(argv.size()), argv.data()).ToLocal(&result)) {
      entry.rethrow(method + "()");
    }
    entry.drain();
    if (int why = vm.take_termination()) throw Terminated(why, vm.termination_message(why));
    if (!result->IsPromise()) {
      take(result);
    } else if (auto p = result.As<v8::Promise>(); p->State() == v8::Promise::kFulfilled) {
      // Settled by the microtasks just run (an async handler that awaited
      // nothing outside): its value now, without a wait and another entry.
      take(p->Result());
    } else {
      wait.emplace(vm, p);
    }
  }
  while (wait) {
    co_await wait->settled();
    Vm::Entry entry(vm, scope);
    if (wait->rejected()) {
      v8::Local<v8::Value> e = wait->value();
      throw vm.js_error(method + "(): " + vm.stack_of(e), e);
    }
    v8::Local<v8::Value> v = wait->value();
    wait.reset();
    take(v);  // the entry's end runs what a new wait needs (a stream's reading)
  }
  co_return out;
}

}  // namespace

namespace {
// The listeners' side of listeners(): prelude.dispatchSocketEvent(ws, ...).
Task<void> dispatch_socket(JsObject* object, WebSocket ws, Args args, bool forget) {
  try {
    Task<Value> call = call_js(object->vm(), object->scope(), &object->vm().helpers_handle(),
                               "dispatchSocketEvent", std::move(args));
    co_await call;
    if (forget) object->forget_socket(ws);
  } catch (const Terminated& t) {
    object->terminated(t);
  }
}
}  // namespace

bool delete_all_deletes_alarm(const WranglerConfig& config) {
  for (const auto& f : config.compatibility_flags) {
    if (f == "delete_all_deletes_alarm") return true;
    if (f == "delete_all_preserves_alarm") return false;
  }
  // ISO dates compare as strings.
  return !config.compatibility_date.empty() && config.compatibility_date >= "2026-02-24";
}

JsObject::JsObject(State& state, Env& env, const std::string& class_name, bool delete_all_alarm)
    : DurableObject(state, env),
      vm_(Vm::current()),
      host_(internal::ApiAccess::host(state)),
      handle_(0),
      delete_all_deletes_alarm_(delete_all_alarm) {
  vm_.set_runtime_env(env);
  handle_ = vm_.add_object(this);
  scope_.object = this;
  try {
    Vm::Entry entry(vm_, &scope_);
    v8::Local<v8::Context> ctx = entry.context();
    v8::Local<v8::Value> cls;
    if (!vm_.exports()->Get(ctx, vm_.str(class_name)).ToLocal(&cls) || !cls->IsFunction()) {
      throw Error(Code::kInternal, "the Worker does not export class " + class_name);
    }
    const ObjectId& id = state.id();
    v8::Local<v8::Value> name = id.name() ? vm_.str(*id.name()).As<v8::Value>()
                                          : v8::Undefined(vm_.isolate()).As<v8::Value>();
    v8::Local<v8::Value> make_args[] = {v8::Number::New(vm_.isolate(), static_cast<double>(handle_)),
                                        vm_.str(id.to_string()), name};
    v8::Local<v8::Value> ctx_object;
    if (!vm_.helpers()
             ->Get(ctx, vm_.name("makeState"))
             .ToLocalChecked()
             .As<v8::Function>()
             ->Call(ctx, vm_.helpers(), 3, make_args)
             .ToLocal(&ctx_object)) {
      entry.rethrow("ctx");
    }
    v8::Local<v8::Value> argv[] = {ctx_object, vm_.env()};
    v8::Local<v8::Object> instance;
    if (!cls.As<v8::Function>()->NewInstance(ctx, 2, argv).ToLocal(&instance)) {
      entry.rethrow("constructor of " + class_name);
    }
    instance_.Reset(vm_.isolate(), instance);
  } catch (...) {
    vm_.remove_object(handle_);
    throw;
  }
  if (int why = vm_.take_termination()) abort_soon(vm_.termination_message(why));
}

JsObject::~JsObject() {
  scope_.ops.clear();  // pending ops go first: they refer to this object
  vm_.remove_object(handle_);
  instance_.Reset();
}

std::string JsObject::who() const { return internal::describe(*host_->ns(), host_->id()); }

void JsObject::terminated(const Terminated& t) {
  internal::log_warn(who() + ": JavaScript stopped, the object is reset: " + t.what());
  state().abort(t.what());
}

void JsObject::abort_soon(const std::string& reason) {
  internal::log_warn(who() + ": the object is reset: " + reason);
  try {
    host_->abort(reason, /*retry_alarm=*/true);
  } catch (const Error&) {
    // abort() throws to unwind a handler; here the op simply ends.
  }
}

uint64_t JsObject::begin_transaction() {
  internal::ApiAccess::begin_nested(storage());
  open_transactions_.push_back(next_transaction_);
  return next_transaction_++;
}

void JsObject::check_transaction(uint64_t serial) const {
  if (std::find(open_transactions_.begin(), open_transactions_.end(), serial) ==
      open_transactions_.end()) {
    throw Error(Code::kConflict,
                "this transaction was rolled back: its callback awaited something outside the "
                "object (a fetch, a timer, another object); a transaction must not wait for I/O");
  }
}

void JsObject::end_transaction(uint64_t serial, bool commit) {
  check_transaction(serial);
  if (open_transactions_.back() != serial) {
    throw Error(Code::kConflict, "transactions must end in the order they began");
  }
  open_transactions_.pop_back();
  internal::ApiAccess::end_nested(storage(), commit);
}

void JsObject::entry_ended() {
  if (open_transactions_.empty()) return;
  internal::log_warn(who() + ": a storage.transaction() callback awaited something outside the "
                             "object; its writes are rolled back");
  while (!open_transactions_.empty()) {
    open_transactions_.pop_back();
    internal::ApiAccess::end_nested(storage(), false);
  }
}

void JsObject::delete_all() {
  Storage& s = storage();
  std::optional<int64_t> alarm = delete_all_deletes_alarm_ ? std::nullopt : s.get_alarm();
  s.delete_all();
  if (alarm) s.set_alarm(*alarm);
}

Task<Response> JsObject::fetch(Request request) {
  try {
    Args args = [&request](Vm& vm) {
      return std::vector<v8::Local<v8::Value>>{vm.to_js_request(request)};
    };
    Vm::SocketAccept accept;
    Response r;
    Task<Value> call = call_js(vm_, &scope_, &instance_, "fetch", std::move(args),
                               [&](v8::Local<v8::Value> v) {
                                 v8::Local<v8::Promise> pending;
                                 r = vm_.to_response(v, &accept, &pending);
                                 return pending;
                               });
    co_await call;
    if (accept.server.IsEmpty()) co_return r;
    Vm::Entry entry(vm_, &scope_);
    // The 101 of fetch() carries the peer of an accepted server end: the
    // upgrade completes on this request's connection.
    WebSocket ws = accept.hibernate ? state().accept_websocket(request, accept.tags)
                                    : state().keep_websocket(request, listeners());
    v8::Local<v8::Object> server = accept.server.Get(vm_.isolate());
    v8::Local<v8::Value> argv[] = {server, box(vm_, ws)};
    v8::Local<v8::Value> ignored;
    if (!vm_.helpers()
             ->Get(entry.context(), vm_.name("bindSocket"))
             .ToLocalChecked()
             .As<v8::Function>()
             ->Call(entry.context(), vm_.helpers(), 2, argv)
             .ToLocal(&ignored)) {
      entry.rethrow("the accepted WebSocket");
    }
    sockets_[ws.id()].Reset(vm_.isolate(), server);
    co_return ws.upgrade_response();
  } catch (const Terminated& t) {
    terminated(t);
  }
}

Task<Response> JsObject::dispatch_call(std::string method, std::string args_json) {
  static const char* const kNotCallable[] = {"constructor", "fetch", "alarm", "webSocketMessage",
                                             "webSocketClose", "webSocketError"};
  for (const char* name : kNotCallable) {
    if (method == name) throw Error(Code::kNotFound, method + "() cannot be called through RPC");
  }
  Result<Json> parsed = parse_json(args_json);
  if (!parsed) throw Error(Code::kInvalidArgument, "call arguments: " + parsed.status().message());
  Json json = std::move(*parsed);
  try {
    Args args = [&json](Vm& vm) {
      std::vector<v8::Local<v8::Value>> argv;
      v8::Local<v8::Value> list = from_rpc_value(vm, json);
      if (list->IsArray()) {
        auto a = list.As<v8::Array>();
        for (uint32_t i = 0; i < a->Length(); ++i) argv.push_back(a->Get(vm.context(), i).ToLocalChecked());
      }
      return argv;
    };
    Task<Value> call = call_js(vm_, &scope_, &instance_, method, std::move(args));
    Value v;
    try {
      v = co_await call;
    } catch (const JsError& e) {
      // A stub's failure the method let through reaches the caller as it
      // came (the object it called was overloaded: so is this call).
      if (e.failure) co_return *e.failure;
      // What the method threw is the caller's to see, with its class, as in
      // Cloudflare.
      Json j = {{"error", e.message}, {"remote", true}};
      if (!e.name.empty()) j["name"] = e.name;
      co_return Response::json(j.dump(-1, ' ', false, Json::error_handler_t::replace), 500);
    }
    Vm::Entry entry(vm_, &scope_);
    co_return Response::json(rpc_value(vm_, v->Get(vm_.isolate())).dump());
  } catch (const Terminated& t) {
    terminated(t);
  }
}

v8::Local<v8::Object> JsObject::wrap_socket(const WebSocket& ws) {
  auto it = sockets_.find(ws.id());
  if (it != sockets_.end()) return it->second.Get(vm_.isolate());
  v8::Local<v8::Context> ctx = vm_.context();
  v8::Local<v8::Value> argv[] = {box(vm_, ws)};
  v8::Local<v8::Value> made = vm_.helpers()
                                  ->Get(ctx, vm_.name("boundSocket"))
                                  .ToLocalChecked()
                                  .As<v8::Function>()
                                  ->Call(ctx, vm_.helpers(), 1, argv)
                                  .ToLocalChecked();
  sockets_[ws.id()].Reset(vm_.isolate(), made.As<v8::Object>());
  return made.As<v8::Object>();
}

Task<void> JsObject::socket_event(const char* handler, WebSocket ws,
                                  std::function<std::vector<v8::Local<v8::Value>>(Vm&)> more,
                                  bool forget) {
  try {
    Args args = [this, &ws, &more](Vm& vm) {
      std::vector<v8::Local<v8::Value>> argv{wrap_socket(ws)};
      for (auto& a : more(vm)) argv.push_back(a);
      return argv;
    };
    Task<Value> call = call_js(vm_, &scope_, &instance_, handler, std::move(args));
    try {
      co_await call;
    } catch (const Error& e) {
      if (e.code() != Code::kNotFound) throw;  // no such handler: nothing to do
    }
    if (forget) sockets_.erase(ws.id());
  } catch (const Terminated& t) {
    terminated(t);
  }
}

Task<void> JsObject::websocket_message(WebSocket ws, WebSocketMessage message) {
  return socket_event(
      "webSocketMessage", std::move(ws),
      message_args(std::move(message)), false);
}

Task<void> JsObject::websocket_close(WebSocket ws, int code, std::string reason, bool was_clean) {
  return socket_event(
      "webSocketClose", std::move(ws),
      close_args(code, std::move(reason), was_clean), true);
}

Task<void> JsObject::websocket_error(WebSocket ws, std::string error) {
  return socket_event(
      "webSocketError", std::move(ws),
      [error](Vm& vm) {
        return std::vector<v8::Local<v8::Value>>{v8::Exception::Error(vm.str(error))};
      },
      true);
}

WebSocketHandlers JsObject::listeners() {
  // Each event becomes dispatchSocketEvent(ws, type, ...) on the prelude.
  auto dispatch = [this](WebSocket ws, const char* type, Args more, bool forget) -> Task<void> {
    Args args = [this, ws, type, more](Vm& vm) {
      std::vector<v8::Local<v8::Value>> argv{wrap_socket(ws), vm.str(type)};
      for (auto& a : more(vm)) argv.push_back(a);
      return argv;
    };
    return dispatch_socket(this, std::move(ws), std::move(args), forget);
  };
  WebSocketHandlers h;
  h.message = [dispatch](WebSocket ws, WebSocketMessage m) {
    return dispatch(std::move(ws), "message", message_args(std::move(m)), false);
  };
  h.close = [dispatch](WebSocket ws, int code, std::string reason, bool clean) {
    return dispatch(std::move(ws), "close", close_args(code, std::move(reason), clean), true);
  };
  h.error = [dispatch](WebSocket ws, std::string error) {
    return dispatch(std::move(ws), "error", [error](Vm& vm) {
      return std::vector<v8::Local<v8::Value>>{vm.str(error)};
    }, true);
  };
  return h;
}

Task<void> JsObject::alarm(AlarmInfo info) {
  try {
    Args args = [info](Vm& vm) {
      v8::Local<v8::Object> o = v8::Object::New(vm.isolate());
      discard(o->Set(vm.context(), vm.name("retryCount"), v8::Integer::New(vm.isolate(), info.retry_count)));
      discard(o->Set(vm.context(), vm.name("isRetry"), v8::Boolean::New(vm.isolate(), info.is_retry)));
      return std::vector<v8::Local<v8::Value>>{o};
    };
    Task<Value> call = call_js(vm_, &scope_, &instance_, "alarm", std::move(args));
    co_await call;
  } catch (const Terminated& t) {
    terminated(t);
  }
}

Task<Response> js_worker(Request request, Env& env) {
  Vm& vm = Vm::current();
  vm.set_runtime_env(env);
  Scope scope;  // ops of this request; gone with it
  if (vm.worker_handler().IsEmpty()) {
    co_return Response::error(501, "the Worker has no default export with a fetch() handler");
  }
  try {
    Args args = [&request](Vm& vm) {
      v8::Local<v8::Value> ctx_object;
      discard(vm.execution_context()->Call(vm.context(), vm.helpers(), 0, nullptr).ToLocal(&ctx_object));
      return std::vector<v8::Local<v8::Value>>{vm.to_js_request(request), vm.env(), ctx_object};
    };
    Response r;
    Task<Value> call = call_js(vm, &scope, &vm.worker_handler(), "fetch", std::move(args),
                               [&](v8::Local<v8::Value> v) {
                                 v8::Local<v8::Promise> pending;
                                 r = vm.to_response(v, nullptr, &pending);
                                 return pending;
                               });
    co_await call;
    co_return r;
  } catch (const Terminated& t) {
    co_return Response::error(500, std::string("the Worker ") + t.what());
  } catch (const JsError& e) {
    // A stub's failure the Worker did not catch: its client gets the answer
    // the Worker was given (503 overloaded, 500 with the object's incident),
    // not a new incident of the Worker's.
    if (!e.failure) throw;
    co_return *e.failure;
  }
}

}  // namespace dobj::js
