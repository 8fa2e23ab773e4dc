// Vm: one V8 isolate per shard thread running one Worker script.
//
// The isolate holds one context with the prelude (prelude.js: the web
// platform classes and the Durable Object API) and the Worker's ES modules.
// Every object of the script on this shard is an instance in that context
// (a context per object would cost ~150 KiB; an instance ~0.3 KiB), as in
// Cloudflare, where one isolate hosts many objects of a script.
//
// Entering JavaScript goes through Vm::Entry, which also runs the microtask
// queue to the end before it leaves (V8's policy is explicit): so everything
// JavaScript does in response to one event runs inside that event's turn,
// and the turn's writes commit when the object's code next waits for
// something outside it (an outgoing fetch, a stub call, a timer).
//
// JavaScript waiting on C++ (a stub fetch, a timer, an outgoing fetch) is an
// op: a Driver owned by the Scope that started it (the object, or the worker
// run), resumed through the shard like any coroutine of an object; it
// settles its promise inside a new Entry. C++ waiting on JavaScript (a
// handler's promise) is a PromiseWait.
//
// Thread affinity: the shard thread that made it, which stays inside the
// isolate until the thread ends. Vms live until Vm::shutdown, after the
// server stopped (objects hold pointers to theirs).
#pragma once

#include <atomic>
#include <chrono>
#include <coroutine>
#include <cstdint>
#include <list>
#include <memory>
#include <optional>
#include <string>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include <v8.h>

#include "dobj/object.h"
#include "js/wrangler.h"
#include "runtime/driver.h"
#include "runtime/shard.h"

namespace dobj::js {

class JsObject;
class Vm;

// V8's setters return a Maybe that GCC does not let a (void) cast drop;
// where failure leaves an exception pending for the caller, we pass it on.
template <typename M>
inline void discard(M&&) {}

// A C++ value a JavaScript object owns (boxes.h). The Vm keeps every live
// one, so that those the garbage collector never took are freed too.
struct BoxBase {
  virtual ~BoxBase() = default;
  v8::Global<v8::Object> self;
};

// What started ops belong to: an object instance or one worker request. Ops
// still pending when it goes are destroyed with it.
struct Scope {
  JsObject* object = nullptr;  // null for the worker
  std::list<internal::Driver> ops;
  void reap();
};

// The script, loaded once per process: its configuration and sources.
struct Script {
  WranglerConfig config;
  // Limits of every isolate.
  size_t heap_limit_bytes = 128u << 20;
  std::chrono::milliseconds cpu_limit{30'000};
  bool expose_exception_messages = false;
};

// A JavaScript failure as a C++ exception: the message and stack of what
// was thrown, for the log (never for clients, unless exposed).
class JsError : public std::runtime_error {
 public:
  explicit JsError(const std::string& text, std::string message = {})
      : std::runtime_error(text), message(message.empty() ? text : std::move(message)) {}
  // What was thrown, without the stack: for an RPC caller.
  std::string message;
  // Its class when it is one of JavaScript's standard errors (RangeError,
  // TypeError...; "" otherwise): an RPC caller's error is made of the same
  // class, as on Cloudflare.
  std::string name;
  // What was thrown is a stub's failure passed on unchanged (the object
  // called was overloaded, reset, threw): the runtime's answer for it, which
  // a Worker that does not catch it gives its client as it came.
  std::optional<Response> failure;
};

// JS RPC values inside a typed call's JSON (natives.cc).
Json rpc_value(Vm& vm, v8::Local<v8::Value> v);
v8::Local<v8::Value> from_rpc_value(Vm& vm, const Json& j);
// A new ArrayBuffer holding a copy of n bytes.
v8::Local<v8::ArrayBuffer> array_buffer(v8::Isolate* isolate, const void* bytes, size_t n);
// crypto.subtle's natives (crypto.cc), added to the natives object.
void install_crypto(Vm& vm, v8::Local<v8::Object> natives);

// JavaScript was terminated: past the CPU or heap limit, or by ctx.abort().
// The object it ran for is reset.
class Terminated : public Error {
 public:
  Terminated(int why, const std::string& message) : Error(Code::kReset, message), why(why) {}
  int why;
};

class Vm {
 public:
  // The Vm of this thread for the process's script (made on first use).
  static Vm& current();
  // Process-wide set-up and tear-down: set the script before any Vm is made;
  // shutdown disposes every Vm (after the server stopped).
  static void set_script(std::shared_ptr<const Script> script);
  static const Script& script();
  static void shutdown();
  // Loads the script in a throw-away isolate on this thread: "file:line:
  // message" for a syntax error, a failed import, a missing class or a
  // binding to something that is not a class. Fills has_alarm per binding.
  static Status check(const Script& script, std::unordered_map<std::string, bool>* has_alarm);

  ~Vm();
  v8::Isolate* isolate() const { return isolate_; }
  v8::Local<v8::Context> context() const { return context_.Get(isolate_); }

  // An entry into JavaScript on behalf of `scope`: enters the isolate and
  // context, opens a handle scope and a TryCatch; its destructor runs the
  // microtasks to the end. Nested entries (a native function calling back
  // into JS) do not run microtasks themselves.
  class Entry {
   public:
    Entry(Vm& vm, Scope* scope);
    ~Entry();
    Entry(const Entry&) = delete;
    Entry& operator=(const Entry&) = delete;
    v8::Local<v8::Context> context() const { return vm_.context(); }
    v8::TryCatch& try_catch() { return try_catch_; }
    // Runs the microtasks now (and again at the end).
    void drain();
    // Throws JsError (or the object's abort) for what try_catch caught.
    [[noreturn]] void rethrow(std::string_view where);

   private:
    Vm& vm_;
    v8::Isolate::Scope isolate_scope_;
    v8::HandleScope handles_;
    v8::Context::Scope context_scope_;
    v8::TryCatch try_catch_;
    Scope* outer_scope_;
    bool outermost_;
  };

  // Awaits a JavaScript promise from a C++ coroutine: resumes (as a new
  // turn of the object, through the shard) once it settles.
  class PromiseWait {
   public:
    PromiseWait(Vm& vm, v8::Local<v8::Promise> promise);
    ~PromiseWait();
    PromiseWait(const PromiseWait&) = delete;
    PromiseWait& operator=(const PromiseWait&) = delete;
    // co_await wait.settled();
    struct Awaiter {
      PromiseWait* w;
      bool await_ready() { return w->ready(); }
      void await_suspend(std::coroutine_handle<> h) { w->suspend(h); }
      void await_resume() const {}
    };
    Awaiter settled() { return Awaiter{this}; }
    bool rejected() const { return rejected_; }
    v8::Local<v8::Value> value() const { return value_.Get(vm_.isolate()); }

   private:
    friend class Vm;
    bool ready();
    void suspend(std::coroutine_handle<> h);
    void settle(bool rejected, v8::Local<v8::Value> value);
    Vm& vm_;
    v8::Global<v8::Promise> promise_;
    v8::Global<v8::Value> value_;
    bool rejected_ = false;
    uint64_t id_ = 0;
    internal::ResumeTarget target_;
    std::coroutine_handle<> handle_;
  };

  // The prelude's helpers and the Worker's exports.
  v8::Local<v8::Object> helpers() const { return helpers_.Get(isolate_); }
  const v8::Global<v8::Object>& helpers_handle() const { return helpers_; }
  // Objects with two internal fields (boxes.h), and the boxes made with them:
  // freed when collected, or by release_boxes.
  v8::Local<v8::ObjectTemplate> box_template();
  void adopt_box(BoxBase* box, v8::Local<v8::Object> handle);
  // Frees every box of every Vm: after the server stopped, before the
  // runtime goes (a box may hold a socket of its hub).
  static void release_boxes();
  v8::Local<v8::Object> exports() const { return exports_.Get(isolate_); }
  // The Worker's default export (empty when it has none) and the helper that
  // makes a request's `ctx`: looked up once, used by every request.
  const v8::Global<v8::Object>& worker_handler() const { return worker_; }
  v8::Local<v8::Function> execution_context() const { return execution_context_.Get(isolate_); }
  // The env object handed to the Worker and every object (bindings, vars).
  v8::Local<v8::Object> env() const { return env_.Get(isolate_); }
  // The runtime's Env (for namespaces and stubs), given on first use.
  void set_runtime_env(const Env& env);
  const Env& runtime_env() const { return *runtime_env_; }
  bool has_runtime_env() const { return runtime_env_.has_value(); }

  // Objects by the handle their JavaScript state carries.
  uint64_t add_object(JsObject* object);
  // Also schedules a collection of what the object held (collect_soon).
  void remove_object(uint64_t handle);
  JsObject* object(uint64_t handle) const;

  Scope* scope() const { return scope_; }
  // The text of a text module (an imported .txt, .html or .sql file).
  const std::string& module_text(int identity);

  // Request and Response across the boundary. A response whose webSocket
  // is the peer of an accepted server end fills `accept` (null: the caller
  // cannot accept sockets, an error).
  struct SocketAccept {
    v8::Global<v8::Object> server;  // empty: nothing to accept
    bool hibernate = true;
    std::vector<std::string> tags;
  };
  v8::Local<v8::Value> to_js_request(const Request& request);
  // [name, value, ...] of the headers.
  v8::Local<v8::Array> flat_headers(const Headers& headers);
  // The Response a handler returned, in C++. When its body is a stream not
  // read yet, returns nothing and sets *pending to a promise of the same
  // Response once the stream has been read: wait for it and convert again.
  Response to_response(v8::Local<v8::Value> value, SocketAccept* accept, v8::Local<v8::Promise>* pending);
  // A body value (string, Uint8Array, null) to bytes, and back: js_body
  // makes a Uint8Array; http_body a string when the bytes are ASCII (the
  // same bytes come back, and a string costs far less to make than an
  // ArrayBuffer), else a Uint8Array.
  std::string body_bytes(v8::Local<v8::Value> body);
  v8::Local<v8::Value> js_body(const std::string& bytes);
  v8::Local<v8::Value> http_body(const std::string& bytes);
  v8::Local<v8::String> str(std::string_view s) const;
  // An internalized string for a name used again and again (a handler's
  // method, a property), made once: a property lookup by a fresh string
  // first makes it and then looks it up in V8's string table.
  v8::Local<v8::String> name(const std::string& s);
  std::string utf8(v8::Local<v8::Value> v) const;
  // Throws a JavaScript Error with `message` in the current entry.
  void throw_error(std::string_view message) const;
  // "message\n    at ..." of a caught exception.
  std::string describe(v8::TryCatch& tc) const;
  // A thrown value's stack (its text when it has none), and its message
  // alone (an Error's `message`; the text of anything else).
  std::string stack_of(v8::Local<v8::Value> thrown) const;
  std::string message_of(v8::Local<v8::Value> thrown) const;
  // The JsError for a thrown value, `text` for the log.
  JsError js_error(std::string text, v8::Local<v8::Value> thrown) const;
  // What a JavaScript caller's stub call rejects with when the answer is not
  // a response (a failed event, an RPC method's error): an Error of the class
  // the answer names, with Cloudflare's markers (remote, retryable,
  // overloaded) and, for a failure, the answer itself (JsError::failure).
  v8::Local<v8::Value> stub_error(const Response& answer);
  // A log prefix naming the object of the current scope.
  std::string who() const;
  // AsyncLocalStorage was used: each outermost entry starts with no frame
  // (what one event set must not leak into the next).
  void note_async_context() { async_context_used_ = true; }
  // A loaded module's file, or the name of a module the prelude provides.
  std::string module_spec(v8::Local<v8::Module> m) const {
    auto it = module_paths_.find(m->GetIdentityHash());
    return it == module_paths_.end() ? std::string() : it->second;
  }

  // Why JavaScript was terminated (set by the watchdog, the heap callback
  // and ctx.abort()), taken by whoever leaves the entry.
  enum : int { kNone = 0, kCpu, kHeap, kAbort };
  void terminate_for_abort(std::string reason) {
    abort_reason_ = std::move(reason);
    if (terminated_.exchange(kAbort) == kNone) isolate_->TerminateExecution();
  }
  int take_termination();
  std::string termination_message(int why) const;

 private:
  explicit Vm(const Script& script);
  Status load(const Script& script);
  void install_natives(v8::Local<v8::Object> natives);
  void collect_soon();
  static constexpr std::chrono::seconds kCollectDelay{1};
  static constexpr std::chrono::seconds kCollectEvery{10};
  static v8::MaybeLocal<v8::Module> resolve(v8::Local<v8::Context> ctx,
                                            v8::Local<v8::String> specifier,
                                            v8::Local<v8::FixedArray> assertions,
                                            v8::Local<v8::Module> referrer);
  v8::MaybeLocal<v8::Module> compile_module(const std::string& path);
  // N.settled(id, rejected, value): a PromiseWait's promise settled.
  static void settle_waiter(const v8::FunctionCallbackInfo<v8::Value>& info);

  const Script& script_;
  v8::ArrayBuffer::Allocator* allocator_ = nullptr;
  v8::Isolate* isolate_ = nullptr;
  v8::Global<v8::Context> context_;
  v8::Global<v8::Object> helpers_;
  // The helpers every request uses, looked up once.
  v8::Global<v8::Function> make_request_;
  v8::Global<v8::Function> response_parts_;
  v8::Global<v8::Function> wait_for_;
  v8::Global<v8::Function> execution_context_;
  v8::Global<v8::Object> worker_;
  // Where stub_error keeps a failure's answer on its Error.
  v8::Global<v8::Private> failure_key_;
  // name()'s strings. Header and RPC method names come from clients, so at
  // kNamesKept it starts over (the names in use come back at once; a client
  // sending new names cannot keep them out for good).
  static constexpr size_t kNamesKept = 256;
  std::unordered_map<std::string, v8::Global<v8::String>> names_;
  v8::Global<v8::Object> exports_;
  v8::Global<v8::Object> env_;
  v8::Global<v8::ObjectTemplate> box_template_;
  std::unordered_set<BoxBase*> boxes_;
  std::optional<Env> runtime_env_;
  std::unordered_map<std::string, v8::Global<v8::Module>> modules_;
  std::unordered_map<int, std::string> module_paths_;  // identity hash → file (or builtin's name)
  std::unordered_map<int, std::string> module_texts_;  // text modules' contents
  std::unordered_map<uint64_t, JsObject*> objects_;
  uint64_t next_object_ = 1;
  std::unordered_map<uint64_t, PromiseWait*> waits_;
  uint64_t next_wait_ = 1;
  Scope* scope_ = nullptr;
  int depth_ = 0;
  // For the watchdog: when the outermost entry began (steady ns), 0 outside.
  std::atomic<int64_t> entered_ns_{0};
  std::atomic<int> terminated_{kNone};
  bool collect_pending_ = false;
  bool async_context_used_ = false;
  std::chrono::steady_clock::time_point last_collect_{};
  std::string abort_reason_;
  friend class Watchdog;
};

}  // namespace dobj::js
