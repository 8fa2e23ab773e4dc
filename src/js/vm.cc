#include "js/vm.h"

#include <algorithm>
#include <filesystem>
#include <condition_variable>
#include <cstring>
#include <mutex>
#include <thread>

#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>

#include "base/fs.h"
#include "base/log.h"
#include "base/thread_name.h"
#include "js/boxes.h"
#include "js/engine.h"
#include "js/js_object.h"
#include "js/prelude.h"
#include "runtime/object_host.h"

namespace dobj::js {
namespace {

int64_t steady_ns() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

// The process's script, every Vm, and the watchdog that terminates
// JavaScript running past the CPU limit.
struct Process {
  std::mutex mu;
  std::shared_ptr<const Script> script;
  std::vector<std::unique_ptr<Vm>> vms;
  std::thread watchdog;
  bool stopping = false;
  std::condition_variable wake;
};

Process& process() {
  static Process* p = new Process();  // outlives every thread that may use it
  return *p;
}

thread_local Vm* t_vm = nullptr;

// A shard thread stays inside its isolate from the Vm's making to the
// thread's end: every Entry's enter is then a counter's increment (entering
// from outside looks up the thread's data under a lock, ~4% of a request).
// The isolate is disposed after the threads ended (Vm::shutdown).
struct EnteredIsolate {
  v8::Isolate* isolate = nullptr;
  ~EnteredIsolate() {
    if (isolate) isolate->Exit();
  }
};
thread_local EnteredIsolate t_entered;

}  // namespace

// Terminates an entry that ran past the CPU limit (wall time inside
// JavaScript, checked every 10 ms: pre-emptive, where the runtime's own limit
// is checked when a turn ends).
class Watchdog {
 public:
  static void run() {
    Process& p = process();
    std::unique_lock lock(p.mu);
    while (!p.stopping) {
      p.wake.wait_for(lock, std::chrono::milliseconds(10));
      int64_t now = steady_ns();
      for (auto& vm : p.vms) {
        int64_t entered = vm->entered_ns_.load(std::memory_order_relaxed);
        int64_t limit = std::chrono::nanoseconds(p.script->cpu_limit).count();
        if (entered != 0 && limit > 0 && now - entered > limit &&
            vm->terminated_.exchange(Vm::kCpu) == Vm::kNone) {
          vm->isolate_->TerminateExecution();
        }
      }
    }
  }
};

void Vm::set_script(std::shared_ptr<const Script> script) {
  init_v8();
  Process& p = process();
  std::lock_guard lock(p.mu);
  p.script = std::move(script);
  if (!p.watchdog.joinable()) {
    p.watchdog = std::thread([] {
      name_this_thread("dobj-js-watch");
      Watchdog::run();
    });
  }
}

const Script& Vm::script() { return *process().script; }

Vm& Vm::current() {
  if (t_vm) return *t_vm;
  Process& p = process();
  auto vm = std::unique_ptr<Vm>(new Vm(*p.script));
  Status st = vm->load(*p.script);
  if (!st) {
    // Checked before the server started (Vm::check); a failure here is a
    // file changed since: nothing of this script can run.
    throw Error(Code::kInternal, "the Worker failed to load: " + st.message());
  }
  t_vm = vm.get();
  vm->isolate_->Enter();
  t_entered.isolate = vm->isolate_;
  std::lock_guard lock(p.mu);
  p.vms.push_back(std::move(vm));
  return *t_vm;
}

void Vm::shutdown() {
  Process& p = process();
  std::vector<std::unique_ptr<Vm>> vms;
  {
    std::lock_guard lock(p.mu);
    p.stopping = true;
    vms.swap(p.vms);
  }
  p.wake.notify_all();
  if (p.watchdog.joinable()) p.watchdog.join();
  vms.clear();
}

Status Vm::check(const Script& script, std::unordered_map<std::string, bool>* has_alarm) {
  init_v8();
  Vm vm(script);
  Status st = vm.load(script);
  if (!st) return st;
  v8::Isolate::Scope iscope(vm.isolate_);
  v8::HandleScope handles(vm.isolate_);
  v8::Local<v8::Context> ctx = vm.context();
  v8::Context::Scope cscope(ctx);
  v8::Local<v8::Object> exports = vm.exports();
  for (const auto& b : script.config.bindings) {
    v8::Local<v8::Value> cls;
    if (!exports->Get(ctx, vm.str(b.class_name)).ToLocal(&cls) || !cls->IsFunction()) {
      return Status(Code::kInvalidArgument,
                    script.config.main + ": binding " + b.name + " names class " + b.class_name +
                        ", which the module does not export");
    }
    v8::Local<v8::Value> proto;
    v8::Local<v8::Value> alarm;
    bool found = cls.As<v8::Object>()->Get(ctx, vm.str("prototype")).ToLocal(&proto) &&
                 proto->IsObject() &&
                 proto.As<v8::Object>()->Get(ctx, vm.str("alarm")).ToLocal(&alarm) &&
                 alarm->IsFunction();
    (*has_alarm)[b.name] = found;
  }
  return Status();
}

Vm::Vm(const Script& script) : script_(script) {
  allocator_ = v8::ArrayBuffer::Allocator::NewDefaultAllocator();
  v8::Isolate::CreateParams params;
  params.array_buffer_allocator = allocator_;
  params.constraints.ConfigureDefaultsFromHeapSize(0, script.heap_limit_bytes);
  isolate_ = v8::Isolate::New(params);
  isolate_->SetData(0, this);
  isolate_->SetMicrotasksPolicy(v8::MicrotasksPolicy::kExplicit);
  // Past the heap limit: terminate the entry (the object is reset) and give
  // V8 room to unwind instead of aborting the process.
  isolate_->AddNearHeapLimitCallback(
      [](void* data, size_t current, size_t) -> size_t {
        auto* vm = static_cast<Vm*>(data);
        if (vm->terminated_.exchange(kHeap) == kNone) vm->isolate_->TerminateExecution();
        return current + (64u << 20);
      },
      this);
  isolate_->SetPromiseRejectCallback([](v8::PromiseRejectMessage message) {
    if (message.GetEvent() != v8::kPromiseRejectWithNoHandler) return;
    v8::Isolate* iso = message.GetPromise()->GetIsolate();
    auto* vm = static_cast<Vm*>(iso->GetData(0));
    internal::log_warn(vm->who() + "unhandled promise rejection: " + vm->stack_of(message.GetValue()));
  });
  v8::Isolate::Scope iscope(isolate_);
  v8::HandleScope handles(isolate_);
  context_.Reset(isolate_, v8::Context::New(isolate_));
}

Vm::~Vm() {
  for (BoxBase* b : boxes_) delete b;
  boxes_.clear();
  waits_.clear();
  objects_.clear();
  modules_.clear();
  helpers_.Reset();
  make_request_.Reset();
  response_parts_.Reset();
  wait_for_.Reset();
  execution_context_.Reset();
  worker_.Reset();
  names_.clear();
  box_template_.Reset();
  exports_.Reset();
  env_.Reset();
  context_.Reset();
  isolate_->Dispose();
  delete allocator_;
}

namespace {
bool is_ascii(std::string_view s) {
  for (char c : s) {
    if (static_cast<unsigned char>(c) >= 0x80) return false;
  }
  return true;
}

// Bytes known to be ASCII, copied into a one-byte string as they are.
v8::Local<v8::String> ascii_string(v8::Isolate* isolate, std::string_view s) {
  return v8::String::NewFromOneByte(isolate, reinterpret_cast<const uint8_t*>(s.data()),
                                    v8::NewStringType::kNormal, static_cast<int>(s.size()))
      .ToLocalChecked();
}
}  // namespace

v8::Local<v8::String> Vm::str(std::string_view s) const {
  // ASCII (most strings: methods, URLs, header names and values) is copied
  // as it is; only the rest goes through V8's UTF-8 decoder.
  if (is_ascii(s)) return ascii_string(isolate_, s);
  return v8::String::NewFromUtf8(isolate_, s.data(), v8::NewStringType::kNormal,
                                 static_cast<int>(s.size()))
      .ToLocalChecked();
}

v8::Local<v8::String> Vm::name(const std::string& s) {
  if (auto it = names_.find(s); it != names_.end()) return it->second.Get(isolate_);
  v8::Local<v8::String> made = v8::String::NewFromUtf8(isolate_, s.data(), v8::NewStringType::kInternalized,
                                                       static_cast<int>(s.size()))
                                   .ToLocalChecked();
  if (names_.size() >= kNamesKept) names_.clear();
  names_[s].Reset(isolate_, made);
  return made;
}

std::string Vm::utf8(v8::Local<v8::Value> v) const {
  if (v->IsString()) {
    // Written straight into the result: a short string into room for the
    // worst case (3 bytes a UTF-16 unit), cut to what was written; a long
    // one measured first. Utf8Value measures every string and copies it
    // through a buffer of its own.
    auto s = v.As<v8::String>();
    size_t units = static_cast<size_t>(s->Length());
    std::string out(units <= 256 ? units * 3 : static_cast<size_t>(s->Utf8Length(isolate_)), '\0');
    int written = s->WriteUtf8(isolate_, out.data(), static_cast<int>(out.size()), nullptr,
                               v8::String::NO_NULL_TERMINATION | v8::String::REPLACE_INVALID_UTF8);
    out.resize(static_cast<size_t>(written));
    return out;
  }
  v8::String::Utf8Value u(isolate_, v);
  return *u ? std::string(*u, u.length()) : std::string();
}

void Vm::throw_error(std::string_view message) const {
  isolate_->ThrowException(v8::Exception::Error(str(message)));
}

std::string Vm::describe(v8::TryCatch& tc) const {
  v8::Local<v8::Context> ctx = context();
  std::string out;
  v8::Local<v8::Value> stack;
  if (tc.StackTrace(ctx).ToLocal(&stack) && stack->IsString()) {
    out = utf8(stack);
  } else if (!tc.Exception().IsEmpty()) {
    out = utf8(tc.Exception());
  }
  v8::Local<v8::Message> m = tc.Message();
  if (!m.IsEmpty() && out.find("\n    at ") == std::string::npos &&
      m->GetScriptResourceName()->IsString()) {
    std::string file = utf8(m->GetScriptResourceName());
    int line = m->GetLineNumber(ctx).FromMaybe(0);
    out = file + ":" + std::to_string(line) + ": " + out;
  }
  return out.empty() ? "unknown exception" : out;
}

v8::Local<v8::ArrayBuffer> array_buffer(v8::Isolate* isolate, const void* bytes, size_t n) {
  auto buffer = v8::ArrayBuffer::New(isolate, n);
  if (n > 0) std::memcpy(buffer->GetBackingStore()->Data(), bytes, n);
  return buffer;
}

std::string Vm::stack_of(v8::Local<v8::Value> thrown) const {
  if (thrown.IsEmpty()) return "undefined";
  v8::Local<v8::Value> stack;
  if (thrown->IsObject() &&
      thrown.As<v8::Object>()->Get(context(), str("stack")).ToLocal(&stack) && stack->IsString()) {
    return utf8(stack);
  }
  return utf8(thrown);
}

std::string Vm::message_of(v8::Local<v8::Value> thrown) const {
  if (thrown.IsEmpty()) return {};
  v8::Local<v8::Value> message;
  if (thrown->IsNativeError() &&
      thrown.As<v8::Object>()->Get(context(), str("message")).ToLocal(&message)) {
    return utf8(message);
  }
  return utf8(thrown);
}

namespace {
// JavaScript's error classes whose name an RPC error keeps (as Cloudflare's
// does; AggregateError is not among them there either).
constexpr std::string_view kStandardErrors[] = {"Error",          "EvalError",   "RangeError", "ReferenceError",
                                                "SyntaxError",    "TypeError",   "URIError"};
bool standard_error(std::string_view name) {
  return std::find(std::begin(kStandardErrors), std::end(kStandardErrors), name) != std::end(kStandardErrors);
}
}  // namespace

JsError Vm::js_error(std::string text, v8::Local<v8::Value> thrown) const {
  JsError error(text, message_of(thrown));
  if (thrown.IsEmpty() || !thrown->IsNativeError()) return error;
  v8::Local<v8::Object> o = thrown.As<v8::Object>();
  // The nearest standard class on its prototype chain (a class extending
  // RangeError is a RangeError to the caller).
  for (v8::Local<v8::Value> p = o->GetPrototype(); p->IsObject(); p = p.As<v8::Object>()->GetPrototype()) {
    v8::Local<v8::Value> ctor;
    if (!p.As<v8::Object>()->GetRealNamedProperty(context(), str("constructor")).ToLocal(&ctor) ||
        !ctor->IsFunction()) {
      continue;
    }
    std::string name = utf8(ctor.As<v8::Function>()->GetName());
    if (standard_error(name)) {
      error.name = name;
      break;
    }
  }
  v8::Local<v8::Value> kept;
  if (!failure_key_.IsEmpty() && o->GetPrivate(context(), failure_key_.Get(isolate_)).ToLocal(&kept)) {
    if (const Response* failure = unbox<Response>(kept)) error.failure = *failure;
  }
  return error;
}

v8::Local<v8::Value> Vm::stub_error(const Response& answer) {
  auto parsed = Json::parse(answer.body, nullptr, false);
  Json body = parsed.is_object() ? std::move(parsed) : Json::object();
  std::string message = body.contains("error") && body["error"].is_string() ? body["error"].get<std::string>()
                                                                               : answer.body;
  if (body.contains("incident") && body["incident"].is_number_unsigned()) {
    message += " (incident " + std::to_string(body["incident"].get<uint64_t>()) + ")";
  }
  std::string name = body.contains("name") && body["name"].is_string() ? body["name"].get<std::string>() : "";
  v8::Local<v8::String> m = str(message);
  v8::Local<v8::Value> e = name == "RangeError"       ? v8::Exception::RangeError(m)
                           : name == "TypeError"      ? v8::Exception::TypeError(m)
                           : name == "ReferenceError" ? v8::Exception::ReferenceError(m)
                           : name == "SyntaxError"    ? v8::Exception::SyntaxError(m)
                                                      : v8::Exception::Error(m);
  v8::Local<v8::Object> o = e.As<v8::Object>();
  if (name == "EvalError" || name == "URIError") {
    // V8's API makes no such errors: set the prototype of one.
    v8::Local<v8::Value> ctor;
    if (context()->Global()->Get(context(), str(name)).ToLocal(&ctor) && ctor->IsFunction()) {
      v8::Local<v8::Value> proto;
      if (ctor.As<v8::Object>()->Get(context(), str("prototype")).ToLocal(&proto)) {
        discard(o->SetPrototype(context(), proto));
      }
    }
  }
  auto flag = [&](const char* key) {
    auto it = body.find(key);
    return it != body.end() && it->is_boolean() && it->get<bool>();
  };
  auto mark = [&](const char* key, bool on) {
    if (on) discard(o->Set(context(), str(key), v8::True(isolate_)));
  };
  // Thrown by the object's own code: its incident, or an RPC method's error.
  mark("remote", body.contains("incident") || flag("remote"));
  mark("retryable", flag("retryable"));
  mark("overloaded", flag("overloaded"));
  if (internal::ResponseAccess::failed(answer)) {
    if (failure_key_.IsEmpty()) {
      failure_key_.Reset(isolate_, v8::Private::New(isolate_, str("dobj.failure")));
    }
    // The answer itself, headers and mark included, for JsError::failure.
    discard(o->SetPrivate(context(), failure_key_.Get(isolate_), box(*this, answer)));
  }
  return e;
}

std::string Vm::who() const {
  if (scope_ && scope_->object) return scope_->object->who() + ": ";
  return "worker: ";
}

// ---- Entry ------------------------------------------------------------------

Vm::Entry::Entry(Vm& vm, Scope* scope)
    : vm_(vm),
      isolate_scope_(vm.isolate_),
      handles_(vm.isolate_),
      context_scope_(vm.context()),
      try_catch_(vm.isolate_),
      outer_scope_(vm.scope_),
      outermost_(vm.depth_ == 0) {
  if (scope) vm.scope_ = scope;
  if (outermost_) {
    vm.entered_ns_.store(steady_ns(), std::memory_order_relaxed);
    if (vm.async_context_used_) vm.context()->SetContinuationPreservedEmbedderData(v8::Undefined(vm.isolate_));
  }
  ++vm.depth_;
}

Vm::Entry::~Entry() {
  if (outermost_) {
    drain();
    if (vm_.scope_ && vm_.scope_->object) {
      try {
        vm_.scope_->object->entry_ended();
      } catch (const std::exception&) {
        // The store is marked broken: the turn's end resets the object.
      }
    }
  }
  --vm_.depth_;
  vm_.scope_ = outer_scope_;
  if (outermost_) {
    vm_.entered_ns_.store(0, std::memory_order_relaxed);
    if (vm_.isolate_->IsExecutionTerminating()) vm_.isolate_->CancelTerminateExecution();
  }
}

void Vm::Entry::drain() {
  // Only the outermost entry: a native function that settles a promise
  // synchronously must not run other code in the middle of the caller's.
  if (outermost_ && !vm_.isolate_->IsExecutionTerminating()) {
    vm_.isolate_->PerformMicrotaskCheckpoint();
  }
}

int Vm::take_termination() {
  int why = terminated_.exchange(kNone);
  if (why != kNone && isolate_->IsExecutionTerminating()) isolate_->CancelTerminateExecution();
  return why;
}

std::string Vm::termination_message(int why) const {
  switch (why) {
    case kCpu:
      return "exceeded its CPU time limit of " + std::to_string(script_.cpu_limit.count()) + " ms";
    case kHeap:
      return "exceeded the JavaScript heap limit of " +
             std::to_string(script_.heap_limit_bytes >> 20) + " MiB";
    default:
      return abort_reason_;
  }
}

void Vm::Entry::rethrow(std::string_view where) {
  int why = vm_.take_termination();
  if (why != kNone) throw Terminated(why, vm_.termination_message(why));
  JsError error = vm_.js_error(std::string(where) + ": " + vm_.describe(try_catch_), try_catch_.Exception());
  try_catch_.Reset();
  throw error;
}

// ---- Promises -----------------------------------------------------------------

Vm::PromiseWait::PromiseWait(Vm& vm, v8::Local<v8::Promise> promise)
    : vm_(vm), promise_(vm.isolate_, promise) {}

Vm::PromiseWait::~PromiseWait() {
  if (id_) vm_.waits_.erase(id_);
}

bool Vm::PromiseWait::ready() {
  v8::Isolate::Scope iscope(vm_.isolate_);
  v8::HandleScope handles(vm_.isolate_);
  v8::Local<v8::Promise> p = promise_.Get(vm_.isolate_);
  if (p->State() == v8::Promise::kPending) return false;
  settle(p->State() == v8::Promise::kRejected, p->Result());
  return true;
}

void Vm::PromiseWait::settle(bool rejected, v8::Local<v8::Value> value) {
  rejected_ = rejected;
  value_.Reset(vm_.isolate_, value);
  if (rejected) promise_.Get(vm_.isolate_)->MarkAsHandled();
}

void Vm::PromiseWait::suspend(std::coroutine_handle<> h) {
  handle_ = h;
  target_ = internal::current_resume_target();
  id_ = vm_.next_wait_++;
  vm_.waits_[id_] = this;
  v8::Isolate::Scope iscope(vm_.isolate_);
  v8::HandleScope handles(vm_.isolate_);
  v8::Local<v8::Context> ctx = vm_.context();
  v8::Context::Scope cscope(ctx);
  // The prelude's waitFor(promise, id) attaches the reactions (closures made
  // in JavaScript cost less than functions made through the API).
  v8::Local<v8::Value> argv[] = {promise_.Get(vm_.isolate_),
                                 v8::Number::New(vm_.isolate_, static_cast<double>(id_))};
  v8::Local<v8::Value> ignored;
  discard(vm_.wait_for_.Get(vm_.isolate_)->Call(ctx, vm_.helpers(), 2, argv).ToLocal(&ignored));
}

void Vm::settle_waiter(const v8::FunctionCallbackInfo<v8::Value>& info) {
  auto* vm = static_cast<Vm*>(info.GetIsolate()->GetData(0));
  auto id = static_cast<uint64_t>(info[0].As<v8::Number>()->Value());
  bool rejected = info[1]->BooleanValue(info.GetIsolate());
  auto it = vm->waits_.find(id);
  if (it == vm->waits_.end()) return;  // the waiting frame is gone (a reset)
  PromiseWait* w = it->second;
  vm->waits_.erase(it);
  w->id_ = 0;
  w->settle(rejected, info[2]);
  // A new turn of its own, after the one that settled the promise ended.
  internal::ResumeTarget target = w->target_;
  std::coroutine_handle<> h = w->handle_;
  boost::asio::post(target.shard->io(), [target, h] { target.shard->resume(target, h); });
}

// ---- Objects and ops ------------------------------------------------------------

uint64_t Vm::add_object(JsObject* object) {
  uint64_t handle = next_object_++;
  objects_[handle] = object;
  return handle;
}

void Vm::remove_object(uint64_t handle) {
  objects_.erase(handle);
  collect_soon();
}

void Vm::collect_soon() {
  // What evicted objects held (their instances, their sockets' JavaScript
  // objects) is garbage that V8 collects only when it next allocates enough;
  // a quiet shard would keep it. So, a while after evictions, and at most
  // every kCollectEvery, a full collection that gives the memory back.
  internal::Shard* shard = internal::Shard::current();
  if (!shard || collect_pending_) return;
  collect_pending_ = true;
  auto now = std::chrono::steady_clock::now();
  auto at = std::max(now + kCollectDelay, last_collect_ + kCollectEvery);
  shard->run_after(std::chrono::duration_cast<std::chrono::milliseconds>(at - now), [this] {
    collect_pending_ = false;
    last_collect_ = std::chrono::steady_clock::now();
    v8::Isolate::Scope iscope(isolate_);
    isolate_->LowMemoryNotification();
  });
}

JsObject* Vm::object(uint64_t handle) const {
  auto it = objects_.find(handle);
  return it == objects_.end() ? nullptr : it->second;
}

void Scope::reap() {
  for (auto it = ops.begin(); it != ops.end();) {
    it = it->done() ? ops.erase(it) : std::next(it);
  }
}

void Vm::set_runtime_env(const Env& env) {
  if (!runtime_env_) runtime_env_.emplace(env);
}

// ---- Loading --------------------------------------------------------------------

namespace {

// The exports of a module the prelude provides (helpers.modules[spec]).
v8::Local<v8::Object> builtin_exports(Vm* vm, v8::Local<v8::Context> ctx, v8::Local<v8::String> spec) {
  v8::Local<v8::Object> modules = vm->helpers()->Get(ctx, vm->str("modules")).ToLocalChecked().As<v8::Object>();
  v8::Local<v8::Value> exports;
  if (!modules->HasOwnProperty(ctx, spec).FromMaybe(false) || !modules->Get(ctx, spec).ToLocal(&exports) ||
      !exports->IsObject()) {
    return {};
  }
  return exports.As<v8::Object>();
}

v8::MaybeLocal<v8::Value> builtin_module_exports(v8::Local<v8::Context> ctx, v8::Local<v8::Module> module) {
  v8::Isolate* iso = ctx->GetIsolate();
  auto* vm = static_cast<Vm*>(iso->GetData(0));
  v8::Local<v8::Object> exports = builtin_exports(vm, ctx, vm->str(vm->module_spec(module)));
  v8::Local<v8::Array> names = exports->GetOwnPropertyNames(ctx).ToLocalChecked();
  for (uint32_t i = 0; i < names->Length(); ++i) {
    v8::Local<v8::Value> name = names->Get(ctx, i).ToLocalChecked();
    if (module
            ->SetSyntheticModuleExport(iso, name.As<v8::String>(),
                                       exports->Get(ctx, name).ToLocalChecked())
            .IsNothing()) {
      return {};
    }
  }
  return v8::Undefined(iso);
}

}  // namespace

v8::MaybeLocal<v8::Module> Vm::resolve(v8::Local<v8::Context> ctx, v8::Local<v8::String> specifier,
                                       v8::Local<v8::FixedArray>, v8::Local<v8::Module> referrer) {
  v8::Isolate* iso = ctx->GetIsolate();
  auto* vm = static_cast<Vm*>(iso->GetData(0));
  std::string spec = vm->utf8(specifier);
  // cloudflare:workers, and with nodejs_compat node:buffer, node:events,
  // node:process and node:async_hooks: synthetic modules of what the prelude
  // made.
  if (auto it = vm->modules_.find(spec); it != vm->modules_.end()) return it->second.Get(iso);
  if (v8::Local<v8::Object> exports = builtin_exports(vm, ctx, specifier); !exports.IsEmpty()) {
    v8::Local<v8::Array> names = exports->GetOwnPropertyNames(ctx).ToLocalChecked();
    std::vector<v8::Local<v8::String>> export_names;
    for (uint32_t i = 0; i < names->Length(); ++i) {
      export_names.push_back(names->Get(ctx, i).ToLocalChecked().As<v8::String>());
    }
    v8::Local<v8::Module> m =
        v8::Module::CreateSyntheticModule(iso, specifier, export_names, builtin_module_exports);
    vm->modules_[spec].Reset(iso, m);
    vm->module_paths_[m->GetIdentityHash()] = spec;
    return m;
  }
  std::string from = vm->module_paths_[referrer->GetIdentityHash()];
  if (spec.find(':') != std::string::npos || (!spec.starts_with("./") && !spec.starts_with("../") &&
                                              !spec.starts_with("/"))) {
    bool node = spec.starts_with("node:");
    vm->throw_error(from + ": import of \"" + spec + "\": " +
                    (node ? "of Node.js's modules dobj provides node:buffer, node:events, node:process "
                            "and node:async_hooks, with the nodejs_compat compatibility flag (docs/js.md)"
                          : "only relative files, cloudflare:workers and (with nodejs_compat) node:buffer, "
                            "node:events, node:process and node:async_hooks can be imported (bundle npm "
                            "packages with wrangler or esbuild; docs/js.md)"));
    return {};
  }
  namespace fs = std::filesystem;
  std::error_code ec;
  std::string path =
      fs::weakly_canonical(fs::path(from).parent_path() / spec, ec).lexically_normal().string();
  if (!fs::exists(path)) {
    vm->throw_error(from + ": import of \"" + spec + "\": " + path + " does not exist");
    return {};
  }
  return vm->compile_module(path);
}

namespace {

// Text modules (wrangler's default rules: *.txt, *.html, *.sql): the file's
// text as the default export.
bool is_text_module(const std::string& path) {
  return path.ends_with(".txt") || path.ends_with(".html") || path.ends_with(".sql");
}

v8::MaybeLocal<v8::Value> text_module_exports(v8::Local<v8::Context> ctx,
                                              v8::Local<v8::Module> module) {
  v8::Isolate* iso = ctx->GetIsolate();
  auto* vm = static_cast<Vm*>(iso->GetData(0));
  const std::string& text = vm->module_text(module->GetIdentityHash());
  if (module->SetSyntheticModuleExport(iso, vm->str("default"), vm->str(text)).IsNothing()) return {};
  return v8::Undefined(iso);
}

}  // namespace

const std::string& Vm::module_text(int identity) { return module_texts_[identity]; }

v8::MaybeLocal<v8::Module> Vm::compile_module(const std::string& path) {
  auto it = modules_.find(path);
  if (it != modules_.end()) return it->second.Get(isolate_);
  auto text = internal::read_file(path);
  if (!text) {
    throw_error("cannot read module " + path + ": " + text.status().message());
    return {};
  }
  if (is_text_module(path)) {
    std::vector<v8::Local<v8::String>> names{str("default")};
    v8::Local<v8::Module> m =
        v8::Module::CreateSyntheticModule(isolate_, str(path), names, text_module_exports);
    modules_[path].Reset(isolate_, m);
    module_paths_[m->GetIdentityHash()] = path;
    module_texts_[m->GetIdentityHash()] = std::move(*text);
    return m;
  }
  v8::ScriptOrigin origin(isolate_, str(path), 0, 0, false, -1, v8::Local<v8::Value>(), false,
                          false, /*is_module=*/true);
  v8::ScriptCompiler::Source source(str(*text), origin);
  v8::Local<v8::Module> m;
  if (!v8::ScriptCompiler::CompileModule(isolate_, &source).ToLocal(&m)) return {};
  modules_[path].Reset(isolate_, m);
  module_paths_[m->GetIdentityHash()] = path;
  return m;
}

Status Vm::load(const Script& script) {
  Entry entry(*this, nullptr);
  v8::Local<v8::Context> ctx = entry.context();
  auto failed = [&](const std::string& what) {
    std::string text = describe(entry.try_catch());
    entry.try_catch().Reset();
    return Status(Code::kInvalidArgument, what + text);
  };
  // The prelude: a function of the natives, returning the helpers.
  v8::ScriptOrigin prelude_origin(isolate_, str("dobj:prelude.js"));
  v8::Local<v8::Script> prelude;
  v8::Local<v8::Value> fn;
  if (!v8::Script::Compile(ctx, str(kPreludeSource), &prelude_origin).ToLocal(&prelude) ||
      !prelude->Run(ctx).ToLocal(&fn) || !fn->IsFunction()) {
    return failed("the prelude failed: ");
  }
  v8::Local<v8::Object> natives = v8::Object::New(isolate_);
  install_natives(natives);
  // nodejs_compat: node:buffer, node:events, node:process and
  // node:async_hooks; from compatibility date 2024-09-23 on (or with
  // nodejs_compat_v2), Buffer and process are globals too, as on Cloudflare.
  const auto& flags = script.config.compatibility_flags;
  auto flag = [&](std::string_view f) { return std::find(flags.begin(), flags.end(), f) != flags.end(); };
  bool node = flag("nodejs_compat") || flag("nodejs_compat_v2");
  bool node_globals = node && !flag("no_nodejs_compat_v2") &&
                      (flag("nodejs_compat_v2") || script.config.compatibility_date >= "2024-09-23");
  discard(natives->Set(ctx, str("nodejsCompat"), v8::Boolean::New(isolate_, node)));
  discard(natives->Set(ctx, str("nodeGlobals"), v8::Boolean::New(isolate_, node_globals)));
  discard(natives->Set(ctx, str("nodejsAls"), v8::Boolean::New(isolate_, flag("nodejs_als"))));
  // process.env holds the text vars from 2025-04-01 on (or with
  // nodejs_compat_populate_process_env), before any module runs.
  v8::Local<v8::Object> process_env = v8::Object::New(isolate_);
  if (node && !flag("nodejs_compat_do_not_populate_process_env") &&
      (flag("nodejs_compat_populate_process_env") || script.config.compatibility_date >= "2025-04-01")) {
    for (const auto& [key, value] : script.config.vars.items()) {
      if (value.is_string()) discard(process_env->Set(ctx, str(key), str(value.get<std::string>())));
    }
  }
  discard(natives->Set(ctx, str("processEnv"), process_env));
  v8::Local<v8::Value> argv[] = {natives};
  v8::Local<v8::Value> helpers;
  if (!fn.As<v8::Function>()->Call(ctx, ctx->Global(), 1, argv).ToLocal(&helpers)) {
    return failed("the prelude failed: ");
  }
  helpers_.Reset(isolate_, helpers.As<v8::Object>());
  auto helper = [&](const char* name) {
    return helpers.As<v8::Object>()->Get(ctx, str(name)).ToLocalChecked().As<v8::Function>();
  };
  make_request_.Reset(isolate_, helper("makeRequest"));
  wait_for_.Reset(isolate_, helper("waitFor"));
  response_parts_.Reset(isolate_, helper("responseParts"));
  execution_context_.Reset(isolate_, helper("executionContext"));

  v8::Local<v8::Module> main;
  if (!compile_module(script.config.main).ToLocal(&main)) return failed("");
  if (!main->InstantiateModule(ctx, &Vm::resolve).FromMaybe(false)) return failed("");
  v8::Local<v8::Value> evaluated;
  if (!main->Evaluate(ctx).ToLocal(&evaluated)) return failed("");
  entry.drain();
  if (main->GetStatus() == v8::Module::kErrored) {
    return Status(Code::kInvalidArgument, script.config.main + ": " + stack_of(main->GetException()));
  }
  exports_.Reset(isolate_, main->GetModuleNamespace().As<v8::Object>());
  v8::Local<v8::Value> handler;
  if (exports()->Get(ctx, str("default")).ToLocal(&handler) && handler->IsObject()) {
    worker_.Reset(isolate_, handler.As<v8::Object>());
  }

  // env: one namespace per binding, then the vars.
  v8::Local<v8::Object> env = v8::Object::New(isolate_);
  v8::Local<v8::Function> make_ns =
      helpers.As<v8::Object>()->Get(ctx, str("makeNamespace")).ToLocalChecked().As<v8::Function>();
  for (const auto& b : script.config.bindings) {
    v8::Local<v8::Value> arg[] = {str(b.name)};
    v8::Local<v8::Value> ns;
    if (!make_ns->Call(ctx, helpers, 1, arg).ToLocal(&ns)) return failed("");
    discard(env->Set(ctx, str(b.name), ns));
  }
  for (const auto& [key, value] : script.config.vars.items()) {
    v8::Local<v8::Value> v;
    if (!v8::JSON::Parse(ctx, str(value.dump())).ToLocal(&v)) return failed("vars." + key + ": ");
    discard(env->Set(ctx, str(key), v));
  }
  v8::Local<v8::Value> wrap_argv[] = {env};
  v8::Local<v8::Value> wrapped;
  if (!helper("wrapEnv")->Call(ctx, helpers, 1, wrap_argv).ToLocal(&wrapped)) return failed("env: ");
  env_.Reset(isolate_, wrapped.As<v8::Object>());
  return Status();
}

// ---- Requests and responses ---------------------------------------------------------

std::string Vm::body_bytes(v8::Local<v8::Value> body) {
  if (body->IsString()) return utf8(body);
  if (body->IsArrayBufferView()) {
    auto view = body.As<v8::ArrayBufferView>();
    std::string out(view->ByteLength(), '\0');
    view->CopyContents(out.data(), out.size());
    return out;
  }
  return {};
}

v8::Local<v8::Value> Vm::js_body(const std::string& bytes) {
  auto buffer = v8::ArrayBuffer::New(isolate_, bytes.size());
  if (!bytes.empty()) std::memcpy(buffer->GetBackingStore()->Data(), bytes.data(), bytes.size());
  return v8::Uint8Array::New(buffer, 0, bytes.size());
}

v8::Local<v8::Value> Vm::http_body(const std::string& bytes) {
  constexpr size_t kMaxStringBody = 16u << 20;  // far below V8's longest string
  if (bytes.size() > kMaxStringBody || !is_ascii(bytes)) return js_body(bytes);
  return ascii_string(isolate_, bytes);
}

v8::Local<v8::Array> Vm::flat_headers(const Headers& headers) {
  std::vector<v8::Local<v8::Value>> items;
  items.reserve(headers.size() * 2);
  for (const auto& [k, v] : headers) {
    items.push_back(name(k));
    items.push_back(str(v));
  }
  return v8::Array::New(isolate_, items.data(), items.size());
}

v8::Local<v8::Value> Vm::to_js_request(const Request& request) {
  v8::Local<v8::Context> ctx = context();
  std::string host = request.header("host").value_or("localhost");
  std::string url = "http://" + host + request.target;
  v8::Local<v8::Array> flat = flat_headers(request.headers);
  v8::Local<v8::Value> body = request.body.empty() ? v8::Null(isolate_).As<v8::Value>()
                                                   : http_body(request.body);
  v8::Local<v8::Value> argv[] = {name(request.method), str(url), flat, body};
  v8::Local<v8::Value> out;
  if (!make_request_.Get(isolate_)->Call(ctx, helpers(), 4, argv).ToLocal(&out)) return {};
  return out;
}

v8::Local<v8::ObjectTemplate> Vm::box_template() {
  if (box_template_.IsEmpty()) {
    auto t = v8::ObjectTemplate::New(isolate_);
    t->SetInternalFieldCount(2);
    box_template_.Reset(isolate_, t);
  }
  return box_template_.Get(isolate_);
}

void Vm::adopt_box(BoxBase* box, v8::Local<v8::Object> handle) {
  boxes_.insert(box);
  box->self.Reset(isolate_, handle);
  box->self.SetWeak(
      box,
      [](const v8::WeakCallbackInfo<BoxBase>& data) {
        BoxBase* b = data.GetParameter();
        auto* vm = static_cast<Vm*>(data.GetIsolate()->GetData(0));
        vm->boxes_.erase(b);
        delete b;
      },
      v8::WeakCallbackType::kParameter);
}

void Vm::release_boxes() {
  Process& p = process();
  std::lock_guard lock(p.mu);
  for (auto& vm : p.vms) {
    for (BoxBase* b : vm->boxes_) delete b;
    vm->boxes_.clear();
  }
}

Response Vm::to_response(v8::Local<v8::Value> value, SocketAccept* accept, v8::Local<v8::Promise>* pending) {
  v8::Local<v8::Context> ctx = context();
  v8::Local<v8::Value> argv[] = {value};
  v8::Local<v8::Value> parts;
  if (!response_parts_.Get(isolate_)->Call(ctx, helpers(), 1, argv).ToLocal(&parts)) {
    throw JsError("the handler did not return a Response (got " + utf8(value) + ")");
  }
  if (parts->IsPromise()) {
    *pending = parts.As<v8::Promise>();
    return {};
  }
  auto a = parts.As<v8::Array>();
  Response r;
  r.status = a->Get(ctx, 0).ToLocalChecked()->Int32Value(ctx).FromMaybe(500);
  auto flat = a->Get(ctx, 1).ToLocalChecked().As<v8::Array>();
  for (uint32_t i = 0; i + 1 < flat->Length(); i += 2) {
    r.headers.emplace_back(utf8(flat->Get(ctx, i).ToLocalChecked()),
                           utf8(flat->Get(ctx, i + 1).ToLocalChecked()));
  }
  r.body = body_bytes(a->Get(ctx, 2).ToLocalChecked());
  v8::Local<v8::Value> socket = a->Get(ctx, 3).ToLocalChecked();
  if (auto* upgrade = unbox<internal::ResponseAccess::Upgrade>(socket)) {
    internal::ResponseAccess::set_upgrade(r, *upgrade);  // a stub's 101, passed on
  } else if (socket->IsArray()) {
    if (!accept) {
      throw JsError("a WebSocket can be accepted only by a Durable Object (ctx.acceptWebSocket)");
    }
    auto parts = socket.As<v8::Array>();
    accept->server.Reset(isolate_, parts->Get(ctx, 0).ToLocalChecked().As<v8::Object>());
    accept->hibernate = parts->Get(ctx, 1).ToLocalChecked()->BooleanValue(isolate_);
    auto tags = parts->Get(ctx, 2).ToLocalChecked().As<v8::Array>();
    for (uint32_t i = 0; i < tags->Length(); ++i) {
      accept->tags.push_back(utf8(tags->Get(ctx, i).ToLocalChecked()));
    }
  }
  return r;
}

}  // namespace dobj::js
