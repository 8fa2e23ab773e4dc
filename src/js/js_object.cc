#include "js/js_object.h"

#include "runtime/api_access.h"
#include "runtime/object_host.h"

namespace dobj::js {
namespace {

using Value = std::shared_ptr<v8::Global<v8::Value>>;
using Args = std::function<std::vector<v8::Local<v8::Value>>(Vm&)>;

std::string stack_of(Vm& vm, v8::Local<v8::Value> e) {
  v8::Local<v8::Value> stack;
  if (e->IsObject() && e.As<v8::Object>()->Get(vm.context(), vm.str("stack")).ToLocal(&stack) &&
      stack->IsString()) {
    return vm.utf8(stack);
  }
  return vm.utf8(e);
}

// Calls target[method](...args) in an entry of `scope` and waits for the
// promise it returns, if any, to settle. Returns the value; throws JsError
// for an exception or a rejection (with its stack), Terminated when the
// entry was terminated, dobj::Error(kNotFound) when there is no such method.
Task<Value> call_js(Vm& vm, Scope* scope, const v8::Global<v8::Object>* target, std::string method,
                    Args args) {
  auto out = std::make_shared<v8::Global<v8::Value>>();
  std::optional<Vm::PromiseWait> wait;
  {
    Vm::Entry entry(vm, scope);
    v8::Local<v8::Context> ctx = entry.context();
    v8::Local<v8::Object> self = target->Get(vm.isolate());
    v8::Local<v8::Value> fn;
    if (!self->Get(ctx, vm.str(method)).ToLocal(&fn) || !fn->IsFunction()) {
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
    if (result->IsPromise()) {
      wait.emplace(vm, result.As<v8::Promise>());
    } else {
      out->Reset(vm.isolate(), result);
    }
  }
  if (wait) {
    co_await wait->settled();
    Vm::Entry entry(vm, scope);
    if (wait->rejected()) throw JsError(method + "(): " + stack_of(vm, wait->value()));
    out->Reset(vm.isolate(), wait->value());
  }
  co_return out;
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
             ->Get(ctx, vm_.str("makeState"))
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

void JsObject::abort_soon(const std::string& reason) {
  try {
    host_->abort(reason, /*retry_alarm=*/true);
  } catch (const Error&) {
    // abort() throws to unwind a handler; here the op simply ends.
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
    Task<Value> call = call_js(vm_, &scope_, &instance_, "fetch", std::move(args));
    Value v = co_await call;
    Vm::Entry entry(vm_, &scope_);
    co_return vm_.to_response(v->Get(vm_.isolate()));
  } catch (const Terminated& t) {
    state().abort(t.what());
  }
}

Task<void> JsObject::alarm(AlarmInfo info) {
  try {
    Args args = [info](Vm& vm) {
      v8::Local<v8::Object> o = v8::Object::New(vm.isolate());
      discard(o->Set(vm.context(), vm.str("retryCount"), v8::Integer::New(vm.isolate(), info.retry_count)));
      discard(o->Set(vm.context(), vm.str("isRetry"), v8::Boolean::New(vm.isolate(), info.is_retry)));
      return std::vector<v8::Local<v8::Value>>{o};
    };
    Task<Value> call = call_js(vm_, &scope_, &instance_, "alarm", std::move(args));
    co_await call;
  } catch (const Terminated& t) {
    state().abort(t.what());
  }
}

Task<Response> js_worker(Request request, Env& env) {
  Vm& vm = Vm::current();
  vm.set_runtime_env(env);
  Scope scope;  // ops of this request; gone with it
  auto handler = std::make_shared<v8::Global<v8::Object>>();
  {
    Vm::Entry entry(vm, &scope);
    v8::Local<v8::Value> d;
    if (!vm.exports()->Get(entry.context(), vm.str("default")).ToLocal(&d) || !d->IsObject()) {
      co_return Response::error(501, "the Worker has no default export with a fetch() handler");
    }
    handler->Reset(vm.isolate(), d.As<v8::Object>());
  }
  try {
    Args args = [&request](Vm& vm) {
      v8::Local<v8::Value> ctx_object;
      v8::Local<v8::Context> ctx = vm.context();
      v8::Local<v8::Function> make = vm.helpers()
                                         ->Get(ctx, vm.str("executionContext"))
                                         .ToLocalChecked()
                                         .As<v8::Function>();
      discard(make->Call(ctx, vm.helpers(), 0, nullptr).ToLocal(&ctx_object));
      return std::vector<v8::Local<v8::Value>>{vm.to_js_request(request), vm.env(), ctx_object};
    };
    Task<Value> call = call_js(vm, &scope, handler.get(), "fetch", std::move(args));
    Value v = co_await call;
    Vm::Entry entry(vm, &scope);
    co_return vm.to_response(v->Get(vm.isolate()));
  } catch (const Terminated& t) {
    co_return Response::error(500, std::string("the Worker ") + t.what());
  }
}

}  // namespace dobj::js
