// The native functions behind prelude.js (its `N`): storage, SQL, IDs,
// stubs, outgoing fetch, timers, and the bits of the web platform V8 lacks.
//
// Every function catches C++ exceptions and throws them into JavaScript as
// Errors with their message: nothing unwinds through V8's frames. Storage
// calls are synchronous underneath (dobj's storage never yields), and the
// prelude wraps them in promises where the API is asynchronous.
#include <openssl/rand.h>

#include <cmath>
#include <cstring>

#include "base/base64.h"
#include "base/log.h"
#include "dobj/fetch.h"
#include "dobj/timer.h"
#include "js/boxes.h"
#include "js/js_object.h"
#include "js/vm.h"
#include "runtime/api_access.h"
#include "runtime/object_host.h"

namespace dobj::js {
namespace {

using Info = v8::FunctionCallbackInfo<v8::Value>;
using Raw = internal::ApiAccess;

Vm& vm_of(const Info& info) { return *static_cast<Vm*>(info.GetIsolate()->GetData(0)); }

void throw_js(const Info& info, v8::Local<v8::Value> exception) {
  info.GetIsolate()->ThrowException(exception);
}

// The object whose handle is argument 0: its storage, state and host.
JsObject& object_of(const Info& info) {
  Vm& vm = vm_of(info);
  JsObject* o = info[0]->IsNumber()
                    ? vm.object(static_cast<uint64_t>(info[0].As<v8::Number>()->Value()))
                    : nullptr;
  if (!o) {
    throw Error(Code::kInvalidArgument,
                "this Durable Object instance was reset: its ctx is no longer usable");
  }
  return *o;
}

// Runs fn, turning a C++ exception into a JavaScript one.
template <typename F>
void guarded(const Info& info, F fn) {
  try {
    fn();
  } catch (const std::exception& e) {
    vm_of(info).throw_error(e.what());
  }
}

std::string arg_string(Vm& vm, const Info& info, int i) { return vm.utf8(info[i]); }

// ---- Values in storage --------------------------------------------------------
// JavaScript values are stored as V8 serializes them (structured clone, as
// Cloudflare does) under tag 'v'; values written by C++ objects or imports
// are read by their own tags.

std::string encode(Vm& vm, v8::Local<v8::Value> value) {
  v8::ValueSerializer ser(vm.isolate());
  ser.WriteHeader();
  if (!ser.WriteValue(vm.context(), value).FromMaybe(false)) {
    throw Error(Code::kInvalidArgument, "the value cannot be serialized (structured clone)");
  }
  auto [data, size] = ser.Release();
  std::string out(1, 'v');
  out.append(reinterpret_cast<const char*>(data), size);
  free(data);
  return out;
}

v8::Local<v8::Value> decode(Vm& vm, std::string_view stored) {
  v8::Isolate* iso = vm.isolate();
  v8::Local<v8::Context> ctx = vm.context();
  if (stored.empty()) return v8::Undefined(iso);
  std::string_view p = stored.substr(1);
  switch (stored[0]) {
    case 'v': {
      v8::ValueDeserializer des(iso, reinterpret_cast<const uint8_t*>(p.data()), p.size());
      v8::Local<v8::Value> out;
      if (!des.ReadHeader(ctx).FromMaybe(false) || !des.ReadValue(ctx).ToLocal(&out)) {
        throw Error(Code::kInternal, "a stored value could not be deserialized");
      }
      return out;
    }
    case 'i': {
      int64_t v = internal::decode_value<int64_t>(stored);
      if (std::llabs(v) <= (int64_t{1} << 53)) return v8::Number::New(iso, static_cast<double>(v));
      return v8::BigInt::New(iso, v);
    }
    case 'd':
      return v8::Number::New(iso, internal::decode_value<double>(stored));
    case 's':
      return vm.str(p);
    case 'j': {
      v8::Local<v8::Value> out;
      if (!v8::JSON::Parse(ctx, vm.str(p)).ToLocal(&out)) return v8::Undefined(iso);
      return out;
    }
    default:
      return vm.js_body(std::string(p));  // bytes ('b', user codecs): a Uint8Array
  }
}

}  // namespace

// JS RPC values travel as {"structuredClone": base64 of V8's serialization}
// inside the JSON of a typed call; plain JSON (from C++) is read too.
Json rpc_value(Vm& vm, v8::Local<v8::Value> v) {
  std::string bytes = encode(vm, v).substr(1);
  return Json{{"structuredClone", internal::base64_encode(bytes)}};
}

v8::Local<v8::Value> from_rpc_value(Vm& vm, const Json& j) {
  if (j.is_object() && j.contains("structuredClone") && j["structuredClone"].is_string()) {
    auto bytes = internal::base64_decode(j["structuredClone"].get<std::string>());
    if (!bytes) throw Error(Code::kInvalidArgument, "a call's value is not valid base64");
    return decode(vm, "v" + *bytes);
  }
  v8::Local<v8::Value> out;
  if (!v8::JSON::Parse(vm.context(), vm.str(j.dump())).ToLocal(&out)) return v8::Undefined(vm.isolate());
  return out;
}

namespace {

std::vector<std::string> string_list(Vm& vm, v8::Local<v8::Value> v) {
  std::vector<std::string> out;
  if (!v->IsArray()) throw Error(Code::kInvalidArgument, "expected a list of keys");
  auto a = v.As<v8::Array>();
  for (uint32_t i = 0; i < a->Length(); ++i) out.push_back(vm.utf8(a->Get(vm.context(), i).ToLocalChecked()));
  return out;
}

// A JavaScript array of each(item) for the items.
template <typename Items, typename Each>
v8::Local<v8::Array> to_array(Vm& vm, const Items& items, Each each) {
  v8::Local<v8::Array> out = v8::Array::New(vm.isolate(), static_cast<int>(items.size()));
  uint32_t i = 0;
  for (const auto& item : items) discard(out->Set(vm.context(), i++, each(item)));
  return out;
}

v8::Local<v8::Map> to_map(Vm& vm, const std::vector<std::pair<std::string, std::string>>& entries) {
  v8::Local<v8::Map> m = v8::Map::New(vm.isolate());
  for (const auto& [k, v] : entries) discard(m->Set(vm.context(), vm.str(k), decode(vm, v)));
  return m;
}

// ---- Ops: JavaScript awaiting C++ ------------------------------------------------

// A stub's answer that is not a response: a failed event (the object
// threw, was reset or overloaded) or an RPC method's error.
struct StubFailure : std::runtime_error {
  explicit StubFailure(Response r) : std::runtime_error("the call failed"), answer(std::move(r)) {}
  Response answer;
};

// A JS RPC call: its result, or StubFailure for anything but a 200.
Task<Json> call_or_fail(Stub stub, std::string method, Json args) {
  Response r = co_await internal::ApiAccess::call_response(stub, std::move(method), std::move(args));
  if (r.status != 200) throw StubFailure(std::move(r));
  Result<Json> parsed = parse_json(r.body);
  if (!parsed) throw Error(Code::kInternal, "the call's result is not JSON: " + parsed.status().message());
  co_return std::move(*parsed);
}

v8::Local<v8::Value> error_value(Vm& vm, std::exception_ptr e) {
  std::string message = "unknown error";
  try {
    std::rethrow_exception(e);
  } catch (const StubFailure& f) {
    return vm.stub_error(f.answer);
  } catch (const std::exception& ex) {
    message = ex.what();
  } catch (...) {
  }
  return v8::Exception::Error(vm.str(message));
}

template <typename R>
using ToJs = v8::Local<v8::Value> (*)(Vm&, R&);

template <typename R, typename Body>
internal::Driver run_op(Vm* vm, Scope* scope,
                        std::shared_ptr<v8::Global<v8::Promise::Resolver>> resolver, Body body,
                        ToJs<R> convert) {
  std::optional<R> result;
  std::exception_ptr error;
  try {
    result.emplace(co_await body());
    if constexpr (std::is_same_v<R, Response>) {
      // A stub's answer for a failed event: stub.fetch() rejects with it
      // (as Cloudflare's does). Only the runtime marks one.
      if (internal::ResponseAccess::failed(*result)) throw StubFailure(std::move(*result));
    }
  } catch (...) {
    error = std::current_exception();
  }
  {
    Vm::Entry entry(*vm, scope);
    auto r = resolver->Get(vm->isolate());
    if (error) {
      discard(r->Reject(entry.context(), error_value(*vm, error)));
    } else {
      discard(r->Resolve(entry.context(), convert(*vm, *result)));
    }
    entry.drain();
  }
  resolver->Reset();
  int why = vm->take_termination();
  if (why != Vm::kNone && scope->object) scope->object->abort_soon(vm->termination_message(why));
}

// Starts body() (returning a Task<R>) for the current scope; its result,
// converted, settles the returned promise.
template <typename R, typename Body>
v8::Local<v8::Promise> start_op(Vm& vm, Body body, ToJs<R> convert) {
  auto resolver = v8::Promise::Resolver::New(vm.context()).ToLocalChecked();
  Scope* scope = vm.scope();
  if (!scope) throw Error(Code::kInternal, "an asynchronous call outside any request");
  scope->reap();
  auto held = std::make_shared<v8::Global<v8::Promise::Resolver>>(vm.isolate(), resolver);
  scope->ops.push_back(run_op<R>(&vm, scope, held, std::move(body), convert));
  {
    // Runs until it first waits; a stub call it makes goes through the loop
    // (an object's JavaScript must not start inside this call).
    internal::NoInlineDelivery not_here;
    scope->ops.back().resume();
  }
  return resolver->GetPromise();
}

v8::Local<v8::Value> undefined_of(Vm& vm, int&) { return v8::Undefined(vm.isolate()); }

v8::Local<v8::Value> response_parts(Vm& vm, Response& r) {
  v8::Isolate* iso = vm.isolate();
  // A 101 of another object's socket, for the Worker to pass on.
  auto upgrade = internal::ResponseAccess::upgrade(r);
  v8::Local<v8::Value> parts[] = {
      v8::Integer::New(iso, r.status), vm.flat_headers(r.headers),
      r.body.empty() ? v8::Null(iso).As<v8::Value>() : vm.http_body(r.body),
      upgrade ? box(vm, *upgrade).As<v8::Value>() : v8::Null(iso).As<v8::Value>()};
  return v8::Array::New(iso, parts, 4);
}

Request request_from(Vm& vm, const Info& info, int first) {
  // (method, url, flat headers, body) from argument `first` on.
  Request req;
  req.method = vm.utf8(info[first]);
  std::string url = vm.utf8(info[first + 1]);
  size_t scheme = url.find("://");
  size_t path = scheme == std::string::npos ? std::string::npos : url.find('/', scheme + 3);
  req.target = path == std::string::npos ? "/" : url.substr(path);
  size_t hash = req.target.find('#');
  if (hash != std::string::npos) req.target.resize(hash);
  if (info[first + 2]->IsArray()) {
    auto flat = info[first + 2].As<v8::Array>();
    for (uint32_t i = 0; i + 1 < flat->Length(); i += 2) {
      req.headers.emplace_back(vm.utf8(flat->Get(vm.context(), i).ToLocalChecked()),
                               vm.utf8(flat->Get(vm.context(), i + 1).ToLocalChecked()));
    }
  }
  if (!info[first + 3]->IsNullOrUndefined()) req.body = vm.body_bytes(info[first + 3]);
  return req;
}

Task<int> sleep_op(std::chrono::milliseconds d) {
  // A timer is a task of its own, after whatever runs now: even at 0 ms it
  // goes through the event loop (as browsers clamp to a minimum delay).
  co_await sleep_for(std::max(d, std::chrono::milliseconds(1)));
  co_return 0;
}

Task<int> sync_op(Storage* storage) {
  co_await storage->sync();
  co_return 0;
}

Task<int> restore_op(State* state, std::string snapshot) {
  co_await state->on_next_session_restore(std::move(snapshot));
  co_return 0;
}

v8::Local<v8::Value> string_of(Vm& vm, std::string& s) { return vm.str(s); }

// ---- Stubs -------------------------------------------------------------------------

Namespace ns_of(Vm& vm, const std::string& binding) { return vm.runtime_env().ns(binding); }

// ---- Blocking callbacks (blockConcurrencyWhile, transactions) --------------------

Task<void> run_blocking(Vm* vm, Scope* scope, std::shared_ptr<v8::Global<v8::Function>> fn,
                        std::shared_ptr<v8::Global<v8::Value>> out) {
  std::optional<Vm::PromiseWait> wait;
  {
    Vm::Entry entry(*vm, scope);
    v8::Local<v8::Value> result;
    if (!fn->Get(vm->isolate())->Call(entry.context(), v8::Undefined(vm->isolate()), 0, nullptr).ToLocal(&result)) {
      entry.rethrow("blockConcurrencyWhile callback");
    }
    if (result->IsPromise()) {
      wait.emplace(*vm, result.As<v8::Promise>());
    } else {
      out->Reset(vm->isolate(), result);
    }
  }
  if (!wait) co_return;
  co_await wait->settled();
  Vm::Entry entry(*vm, scope);
  if (wait->rejected()) {
    throw JsError("blockConcurrencyWhile callback failed: " + vm->stack_of(wait->value()));
  }
  out->Reset(vm->isolate(), wait->value());
}

Task<int> block_op(JsObject* object, std::function<Task<void>()> fn) {
  co_await object->state().block_concurrency_while(std::move(fn));
  co_return 0;
}

}  // namespace

void Vm::install_natives(v8::Local<v8::Object> natives) {
  v8::Local<v8::Context> ctx = context();
  auto add = [&](const char* name, v8::FunctionCallback fn) {
    discard(natives->Set(ctx, str(name), v8::Function::New(ctx, fn).ToLocalChecked()));
  };

  add("settled", &Vm::settle_waiter);

  // -- text and bytes
  add("utf8Encode", [](const Info& info) {
    Vm& vm = vm_of(info);
    info.GetReturnValue().Set(vm.js_body(vm.utf8(info[0])));
  });
  add("utf8Decode", [](const Info& info) {
    Vm& vm = vm_of(info);
    std::string bytes = vm.body_bytes(info[0]);
    bool fatal = info[1]->BooleanValue(info.GetIsolate());
    v8::Local<v8::String> s;
    if (!v8::String::NewFromUtf8(info.GetIsolate(), bytes.data(), v8::NewStringType::kNormal,
                                 static_cast<int>(bytes.size()))
             .ToLocal(&s)) {
      return vm.throw_error("TextDecoder: the text is too long");
    }
    if (fatal && vm.utf8(s) != bytes) {
      return throw_js(info, 
          v8::Exception::TypeError(vm.str("The encoded data was not valid utf-8")));
    }
    info.GetReturnValue().Set(s);
  });
  add("bytesOf", [](const Info& info) {
    Vm& vm = vm_of(info);
    info.GetReturnValue().Set(vm.js_body(vm.body_bytes(info[0])));
  });
  add("atob", [](const Info& info) {
    Vm& vm = vm_of(info);
    std::string in = vm.utf8(info[0]);
    std::string clean;
    for (char c : in) {
      if (c != ' ' && c != '\t' && c != '\n' && c != '\r' && c != '\f') clean.push_back(c);
    }
    auto out = internal::base64_decode(clean);
    if (!out) {
      return throw_js(info, v8::Exception::Error(
          vm.str("atob: the string to be decoded is not correctly encoded")));
    }
    // A binary string: one character per byte.
    std::u16string wide(out->begin(), out->end());
    for (size_t i = 0; i < out->size(); ++i) wide[i] = static_cast<unsigned char>((*out)[i]);
    info.GetReturnValue().Set(
        v8::String::NewFromTwoByte(info.GetIsolate(), reinterpret_cast<const uint16_t*>(wide.data()),
                                   v8::NewStringType::kNormal, static_cast<int>(wide.size()))
            .ToLocalChecked());
  });
  add("btoa", [](const Info& info) {
    Vm& vm = vm_of(info);
    v8::Local<v8::String> s = info[0]->ToString(vm.context()).ToLocalChecked();
    std::u16string wide(s->Length(), u'\0');
    s->Write(info.GetIsolate(), reinterpret_cast<uint16_t*>(wide.data()));
    std::string bytes;
    for (char16_t c : wide) {
      if (c > 0xff) {
        return throw_js(info, v8::Exception::Error(
            vm.str("btoa: the string contains characters outside of the Latin1 range")));
      }
      bytes.push_back(static_cast<char>(c));
    }
    info.GetReturnValue().Set(vm.str(internal::base64_encode(bytes)));
  });

  // -- timers, clone, console, clock, crypto
  add("sleep", [](const Info& info) {
    Vm& vm = vm_of(info);
    guarded(info, [&] {
      double ms = info[0]->NumberValue(vm.context()).FromMaybe(0);
      auto d = std::chrono::milliseconds(static_cast<int64_t>(std::max(0.0, ms)));
      info.GetReturnValue().Set(start_op<int>(vm, [d] { return sleep_op(d); }, &undefined_of));
    });
  });
  add("clone", [](const Info& info) {
    Vm& vm = vm_of(info);
    guarded(info, [&] { info.GetReturnValue().Set(decode(vm, encode(vm, info[0]))); });
  });
  add("log", [](const Info& info) {
    Vm& vm = vm_of(info);
    int level = info[0]->Int32Value(vm.context()).FromMaybe(1);
    std::string line = vm.who() + vm.utf8(info[1]);
    if (level >= 3) {
      internal::log_error(line);
    } else if (level == 2) {
      internal::log_warn(line);
    } else {
      internal::log_info(line);
    }
  });
  // AsyncLocalStorage's frame: V8 keeps it with every promise reaction made
  // while it is set and restores it when the reaction runs.
  add("getAsyncContext", [](const Info& info) {
    info.GetReturnValue().Set(info.GetIsolate()->GetCurrentContext()->GetContinuationPreservedEmbedderData());
  });
  add("setAsyncContext", [](const Info& info) {
    vm_of(info).note_async_context();
    info.GetIsolate()->GetCurrentContext()->SetContinuationPreservedEmbedderData(info[0]);
  });
  add("now", [](const Info& info) {
    static const auto start = std::chrono::steady_clock::now();
    double ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count();
    info.GetReturnValue().Set(ms);
  });
  add("randomUUID", [](const Info& info) {
    uint8_t b[16];
    RAND_bytes(b, sizeof b);
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    char out[37];
    snprintf(out, sizeof out, "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x",
             b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7], b[8], b[9], b[10], b[11], b[12], b[13],
             b[14], b[15]);
    info.GetReturnValue().Set(vm_of(info).str(out));
  });
  add("randomFill", [](const Info& info) {
    Vm& vm = vm_of(info);
    if (!info[0]->IsArrayBufferView() || info[0]->IsFloat32Array() || info[0]->IsFloat64Array() ||
        info[0]->IsDataView()) {
      return throw_js(info, v8::Exception::TypeError(
          vm.str("getRandomValues: the argument must be an integer typed array")));
    }
    auto view = info[0].As<v8::ArrayBufferView>();
    if (view->ByteLength() > 65536) {
      return throw_js(info, 
          v8::Exception::Error(vm.str("getRandomValues: more than 65536 bytes requested")));
    }
    auto* base = static_cast<uint8_t*>(view->Buffer()->GetBackingStore()->Data());
    RAND_bytes(base + view->ByteOffset(), static_cast<int>(view->ByteLength()));
  });
  install_crypto(*this, natives);

  // -- outgoing fetch
  add("httpFetch", [](const Info& info) {
    Vm& vm = vm_of(info);
    guarded(info, [&] {
      std::string url = vm.utf8(info[0]);
      Request req = request_from(vm, info, 1);
      req.method = vm.utf8(info[1]);
      info.GetReturnValue().Set(start_op<Response>(
          vm, [url, req]() mutable { return dobj::fetch(url, std::move(req)); }, &response_parts));
    });
  });

  // -- namespaces, IDs, stubs
  add("hasNamespace", [](const Info& info) {
    Vm& vm = vm_of(info);
    bool found = false;
    if (vm.has_runtime_env()) {
      try {
        vm.runtime_env().ns(vm.utf8(info[0]));
        found = true;
      } catch (const Error&) {
      }
    }
    info.GetReturnValue().Set(found);
  });
  add("idFromName", [](const Info& info) {
    Vm& vm = vm_of(info);
    guarded(info, [&] {
      ObjectId id = ns_of(vm, arg_string(vm, info, 0)).id_from_name(arg_string(vm, info, 1));
      info.GetReturnValue().Set(vm.str(id.to_string()));
    });
  });
  add("idFromString", [](const Info& info) {
    Vm& vm = vm_of(info);
    guarded(info, [&] {
      auto id = ns_of(vm, arg_string(vm, info, 0)).id_from_string(arg_string(vm, info, 1));
      if (!id) {
        return throw_js(info, 
            v8::Exception::TypeError(vm.str("Invalid Durable Object ID: " + id.status().message())));
      }
      info.GetReturnValue().Set(vm.str(id->to_string()));
    });
  });
  add("newUniqueId", [](const Info& info) {
    Vm& vm = vm_of(info);
    guarded(info, [&] {
      info.GetReturnValue().Set(vm.str(ns_of(vm, arg_string(vm, info, 0)).new_unique_id().to_string()));
    });
  });
  add("makeStub", [](const Info& info) {
    Vm& vm = vm_of(info);
    guarded(info, [&] {
      Namespace ns = ns_of(vm, arg_string(vm, info, 0));
      // An ID with a name is made again from the name, so the object knows it.
      ObjectId id;
      if (info[2]->IsString()) {
        id = ns.id_from_name(arg_string(vm, info, 2));
      } else {
        auto parsed = ns.id_from_string(arg_string(vm, info, 1));
        if (!parsed) throw Error(parsed.status());
        id = *parsed;
      }
      v8::Local<v8::Object> handle = box(vm, ns.get(id));
      info.GetReturnValue().Set(handle);
    });
  });
  add("stubCall", [](const Info& info) {
    Vm& vm = vm_of(info);
    guarded(info, [&] {
      Stub* boxed = unbox<Stub>(info[0]);
      if (!boxed) throw Error(Code::kInvalidArgument, "not a stub");
      std::string method = vm.utf8(info[2]);
      Json args = rpc_value(vm, info[3]);
      Stub stub = *boxed;
      info.GetReturnValue().Set(start_op<Json>(
          vm, [stub, method, args]() mutable { return call_or_fail(stub, method, std::move(args)); },
          +[](Vm& v, Json& result) { return from_rpc_value(v, result); }));
    });
  });
  add("stubFetch", [](const Info& info) {
    Vm& vm = vm_of(info);
    guarded(info, [&] {
      Stub* boxed = unbox<Stub>(info[0]);
      if (!boxed) throw Error(Code::kInvalidArgument, "not a stub");
      Request req = request_from(vm, info, 1);
      Stub stub = *boxed;
      info.GetReturnValue().Set(start_op<Response>(
          vm, [stub, req]() mutable { return stub.fetch(std::move(req)); }, &response_parts));
    });
  });

  // -- key-value storage
  add("get", [](const Info& info) {
    guarded(info, [&] {
      Vm& vm = vm_of(info);
      auto raw = Raw::get_raw(object_of(info).storage(), vm.utf8(info[1]));
      info.GetReturnValue().Set(raw ? decode(vm, *raw) : v8::Undefined(info.GetIsolate()).As<v8::Value>());
    });
  });
  add("getMany", [](const Info& info) {
    guarded(info, [&] {
      Vm& vm = vm_of(info);
      auto found = Raw::get_raw(object_of(info).storage(), string_list(vm, info[1]));
      info.GetReturnValue().Set(to_map(vm, found));
    });
  });
  add("put", [](const Info& info) {
    guarded(info, [&] {
      Vm& vm = vm_of(info);
      std::string value = encode(vm, info[2]);
      Raw::put_raw(object_of(info).storage(), vm.utf8(info[1]), value);
    });
  });
  add("putMany", [](const Info& info) {
    guarded(info, [&] {
      Vm& vm = vm_of(info);
      if (!info[1]->IsObject()) throw Error(Code::kInvalidArgument, "put() expects an object of entries");
      auto obj = info[1].As<v8::Object>();
      auto names = obj->GetOwnPropertyNames(vm.context()).ToLocalChecked();
      std::vector<std::pair<std::string, std::string>> entries;
      for (uint32_t i = 0; i < names->Length(); ++i) {
        auto k = names->Get(vm.context(), i).ToLocalChecked();
        entries.emplace_back(vm.utf8(k), encode(vm, obj->Get(vm.context(), k).ToLocalChecked()));
      }
      Raw::put_raw(object_of(info).storage(), entries);
    });
  });
  add("delete", [](const Info& info) {
    guarded(info, [&] {
      Vm& vm = vm_of(info);
      info.GetReturnValue().Set(object_of(info).storage().remove(vm.utf8(info[1])));
    });
  });
  add("deleteMany", [](const Info& info) {
    guarded(info, [&] {
      Vm& vm = vm_of(info);
      size_t n = object_of(info).storage().remove(string_list(vm, info[1]));
      info.GetReturnValue().Set(static_cast<double>(n));
    });
  });
  add("list", [](const Info& info) {
    guarded(info, [&] {
      Vm& vm = vm_of(info);
      v8::Local<v8::Context> ctx = vm.context();
      ListOptions o;
      auto opts = info[1].As<v8::Object>();
      auto str_opt = [&](const char* name) -> std::optional<std::string> {
        v8::Local<v8::Value> v;
        if (opts->Get(ctx, vm.str(name)).ToLocal(&v) && v->IsString()) return vm.utf8(v);
        return std::nullopt;
      };
      o.start = str_opt("start");
      o.start_after = str_opt("startAfter");
      o.end = str_opt("end");
      o.prefix = str_opt("prefix");
      v8::Local<v8::Value> v;
      o.reverse = opts->Get(ctx, vm.str("reverse")).ToLocal(&v) && v->BooleanValue(vm.isolate());
      if (opts->Get(ctx, vm.str("limit")).ToLocal(&v) && v->IsNumber()) {
        o.limit = static_cast<int64_t>(v.As<v8::Number>()->Value());
      }
      info.GetReturnValue().Set(to_map(vm, Raw::list_raw(object_of(info).storage(), o)));
    });
  });
  add("deleteAll", [](const Info& info) {
    guarded(info, [&] { object_of(info).delete_all(); });
  });
  add("getAlarm", [](const Info& info) {
    guarded(info, [&] {
      auto at = object_of(info).storage().get_alarm();
      if (at) {
        info.GetReturnValue().Set(static_cast<double>(*at));
      } else {
        info.GetReturnValue().SetNull();
      }
    });
  });
  add("setAlarm", [](const Info& info) {
    guarded(info, [&] {
      double ms = info[1]->NumberValue(vm_of(info).context()).FromMaybe(NAN);
      if (!std::isfinite(ms)) throw Error(Code::kInvalidArgument, "setAlarm() needs a time");
      object_of(info).storage().set_alarm(static_cast<int64_t>(std::ceil(ms)));
    });
  });
  add("deleteAlarm", [](const Info& info) {
    guarded(info, [&] { object_of(info).storage().delete_alarm(); });
  });
  add("sync", [](const Info& info) {
    Vm& vm = vm_of(info);
    guarded(info, [&] {
      Storage* storage = &object_of(info).storage();
      info.GetReturnValue().Set(start_op<int>(vm, [storage] { return sync_op(storage); }, &undefined_of));
    });
  });
  // History (docs/history.md): Cloudflare's names, dobj's semantics.
  add("getCurrentBookmark", [](const Info& info) {
    Vm& vm = vm_of(info);
    guarded(info, [&] {
      Storage* storage = &object_of(info).storage();
      info.GetReturnValue().Set(start_op<std::string>(vm, [storage] { return storage->current_bookmark(); }, &string_of));
    });
  });
  add("getBookmarkForTime", [](const Info& info) {
    Vm& vm = vm_of(info);
    guarded(info, [&] {
      double ms = info[1]->NumberValue(vm.context()).FromMaybe(NAN);
      if (!std::isfinite(ms)) throw Error(Code::kInvalidArgument, "getBookmarkForTime() needs a time");
      info.GetReturnValue().Set(vm.str(object_of(info).storage().bookmark_for_time(static_cast<int64_t>(ms))));
    });
  });
  add("onNextSessionRestoreBookmark", [](const Info& info) {
    Vm& vm = vm_of(info);
    guarded(info, [&] {
      Storage* storage = &object_of(info).storage();
      std::string bookmark = vm.utf8(info[1]);
      info.GetReturnValue().Set(start_op<std::string>(
          vm, [storage, bookmark] { return storage->on_next_session_restore_bookmark(bookmark); }, &string_of));
    });
  });
  add("snapshot", [](const Info& info) {
    Vm& vm = vm_of(info);
    guarded(info, [&] {
      Storage* storage = &object_of(info).storage();
      info.GetReturnValue().Set(start_op<std::string>(vm, [storage] { return storage->snapshot(); }, &string_of));
    });
  });
  add("onNextSessionRestore", [](const Info& info) {
    Vm& vm = vm_of(info);
    guarded(info, [&] {
      State* state = &object_of(info).state();
      std::string snapshot = vm.utf8(info[1]);
      info.GetReturnValue().Set(start_op<int>(
          vm, [state, snapshot] { return restore_op(state, snapshot); }, &undefined_of));
    });
  });
  add("txBegin", [](const Info& info) {
    guarded(info, [&] { info.GetReturnValue().Set(static_cast<double>(object_of(info).begin_transaction())); });
  });
  add("txCheck", [](const Info& info) {
    guarded(info, [&] {
      object_of(info).check_transaction(static_cast<uint64_t>(info[1].As<v8::Number>()->Value()));
    });
  });
  add("txEnd", [](const Info& info) {
    guarded(info, [&] {
      object_of(info).end_transaction(static_cast<uint64_t>(info[1].As<v8::Number>()->Value()),
                                      info[2]->BooleanValue(info.GetIsolate()));
    });
  });
  add("transactionSync", [](const Info& info) {
    Vm& vm = vm_of(info);
    guarded(info, [&] {
      Storage& storage = object_of(info).storage();
      if (!info[1]->IsFunction()) throw Error(Code::kInvalidArgument, "transactionSync() needs a function");
      Raw::begin_nested(storage);
      v8::Local<v8::Value> result;
      if (!info[1].As<v8::Function>()->Call(vm.context(), v8::Undefined(vm.isolate()), 0, nullptr).ToLocal(&result)) {
        Raw::end_nested(storage, false);
        return;  // the exception goes on to the caller
      }
      Raw::end_nested(storage, true);
      info.GetReturnValue().Set(result);
    });
  });

  // -- SQL
  add("sqlExec", [](const Info& info) {
    guarded(info, [&] {
      Vm& vm = vm_of(info);
      v8::Isolate* iso = vm.isolate();
      v8::Local<v8::Context> ctx = vm.context();
      std::vector<SqlValue> params;
      if (info[2]->IsArray()) {
        auto a = info[2].As<v8::Array>();
        for (uint32_t i = 0; i < a->Length(); ++i) {
          v8::Local<v8::Value> v = a->Get(ctx, i).ToLocalChecked();
          if (v->IsNullOrUndefined()) {
            params.emplace_back(nullptr);
          } else if (v->IsBoolean()) {
            params.emplace_back(int64_t{v->BooleanValue(iso) ? 1 : 0});
          } else if (v->IsNumber()) {
            double d = v.As<v8::Number>()->Value();
            if (std::trunc(d) == d && std::fabs(d) <= 9007199254740992.0) {
              params.emplace_back(static_cast<int64_t>(d));
            } else {
              params.emplace_back(d);
            }
          } else if (v->IsBigInt()) {
            params.emplace_back(v.As<v8::BigInt>()->Int64Value());
          } else if (v->IsArrayBuffer() || v->IsArrayBufferView()) {
            std::string b = v->IsArrayBuffer() ? std::string(static_cast<const char*>(v.As<v8::ArrayBuffer>()->GetBackingStore()->Data()),
                                                             v.As<v8::ArrayBuffer>()->ByteLength())
                                               : vm.body_bytes(v);
            params.emplace_back(Bytes(b.begin(), b.end()));
          } else {
            params.emplace_back(vm.utf8(v));
          }
        }
      }
      SqlCursor cursor = object_of(info).storage().sql().exec_values(vm.utf8(info[1]), std::move(params));
      v8::Local<v8::Array> columns =
          to_array(vm, cursor.column_names(), [&](const std::string& n) { return vm.str(n); });
      v8::Local<v8::Array> rows = v8::Array::New(iso, static_cast<int>(cursor.size()));
      uint32_t r = 0;
      for (const SqlRow& row : cursor) {
        v8::Local<v8::Array> out = v8::Array::New(iso, static_cast<int>(row.size()));
        uint32_t i = 0;
        for (const SqlValue& v : row) {
          v8::Local<v8::Value> js;
          if (std::holds_alternative<std::nullptr_t>(v)) {
            js = v8::Null(iso);
          } else if (auto* n = std::get_if<int64_t>(&v)) {
            js = v8::Number::New(iso, static_cast<double>(*n));
          } else if (auto* d = std::get_if<double>(&v)) {
            js = v8::Number::New(iso, *d);
          } else if (auto* s = std::get_if<std::string>(&v)) {
            js = vm.str(*s);
          } else {
            const Bytes& b = std::get<Bytes>(v);
            js = array_buffer(iso, b.data(), b.size());
          }
          discard(out->Set(ctx, i++, js));
        }
        discard(rows->Set(ctx, r++, out));
      }
      v8::Local<v8::Array> result = v8::Array::New(iso, 4);
      discard(result->Set(ctx, 0, columns));
      discard(result->Set(ctx, 1, rows));
      discard(result->Set(ctx, 2, v8::Number::New(iso, static_cast<double>(cursor.rows_read()))));
      discard(result->Set(ctx, 3, v8::Number::New(iso, static_cast<double>(cursor.rows_written()))));
      info.GetReturnValue().Set(result);
    });
  });
  add("sqlSize", [](const Info& info) {
    guarded(info, [&] {
      info.GetReturnValue().Set(static_cast<double>(object_of(info).storage().sql().database_size()));
    });
  });

  // -- WebSockets
  add("wsSend", [](const Info& info) {
    guarded(info, [&] {
      Vm& vm = vm_of(info);
      WebSocket* ws = unbox<WebSocket>(info[0]);
      if (!ws) throw Error(Code::kInvalidArgument, "not a WebSocket");
      if (info[1]->IsString()) {
        ws->send(vm.utf8(info[1]));
      } else {
        ws->send_binary(vm.body_bytes(info[1]));
      }
    });
  });
  add("wsClose", [](const Info& info) {
    guarded(info, [&] {
      Vm& vm = vm_of(info);
      WebSocket* ws = unbox<WebSocket>(info[0]);
      if (!ws) throw Error(Code::kInvalidArgument, "not a WebSocket");
      int code = info[1]->Int32Value(vm.context()).FromMaybe(1000);
      // Closing a socket its client already closed is a no-op, whatever the
      // code (handlers often echo the client's, such as 1005).
      if (ws->ready_state() == WebSocket::ReadyState::kClosing ||
          ws->ready_state() == WebSocket::ReadyState::kClosed) {
        return;
      }
      ws->close(code, vm.utf8(info[2]));
    });
  });
  add("wsReadyState", [](const Info& info) {
    WebSocket* ws = unbox<WebSocket>(info[0]);
    info.GetReturnValue().Set(ws ? static_cast<int>(ws->ready_state()) : 3);
  });
  add("wsSetAttachment", [](const Info& info) {
    guarded(info, [&] {
      Vm& vm = vm_of(info);
      WebSocket* ws = unbox<WebSocket>(info[0]);
      if (!ws) throw Error(Code::kInvalidArgument, "not a WebSocket");
      ws->serialize_attachment(encode(vm, info[1]));
    });
  });
  add("wsGetAttachment", [](const Info& info) {
    guarded(info, [&] {
      Vm& vm = vm_of(info);
      WebSocket* ws = unbox<WebSocket>(info[0]);
      if (!ws) throw Error(Code::kInvalidArgument, "not a WebSocket");
      auto a = ws->deserialize_attachment();
      if (a) {
        info.GetReturnValue().Set(decode(vm, *a));
      } else {
        info.GetReturnValue().SetNull();
      }
    });
  });
  add("getWebSockets", [](const Info& info) {
    guarded(info, [&] {
      Vm& vm = vm_of(info);
      JsObject& object = object_of(info);
      auto sockets = object.state().get_websockets(vm.utf8(info[1]));
      info.GetReturnValue().Set(
          to_array(vm, sockets, [&](const WebSocket& ws) { return object.wrap_socket(ws); }));
    });
  });
  add("getTags", [](const Info& info) {
    guarded(info, [&] {
      Vm& vm = vm_of(info);
      WebSocket* ws = unbox<WebSocket>(info[1]);
      if (!ws) throw Error(Code::kInvalidArgument, "getTags() expects an accepted WebSocket");
      auto tags = object_of(info).state().get_tags(*ws);
      info.GetReturnValue().Set(to_array(vm, tags, [&](const std::string& t) { return vm.str(t); }));
    });
  });
  add("setAutoResponse", [](const Info& info) {
    guarded(info, [&] {
      Vm& vm = vm_of(info);
      State& state = object_of(info).state();
      if (info[1]->IsNull()) {
        state.clear_websocket_auto_response();
      } else {
        state.set_websocket_auto_response(vm.utf8(info[1]), vm.utf8(info[2]));
      }
    });
  });
  add("getAutoResponse", [](const Info& info) {
    guarded(info, [&] {
      Vm& vm = vm_of(info);
      auto pair = object_of(info).state().get_websocket_auto_response();
      if (!pair) return info.GetReturnValue().SetNull();
      v8::Local<v8::Array> out = v8::Array::New(vm.isolate(), 2);
      discard(out->Set(vm.context(), 0, vm.str(pair->first)));
      discard(out->Set(vm.context(), 1, vm.str(pair->second)));
      info.GetReturnValue().Set(out);
    });
  });
  add("getAutoResponseTimestamp", [](const Info& info) {
    guarded(info, [&] {
      WebSocket* ws = unbox<WebSocket>(info[1]);
      if (!ws) throw Error(Code::kInvalidArgument, "expects an accepted WebSocket");
      auto t = object_of(info).state().get_websocket_auto_response_timestamp(*ws);
      if (t) {
        info.GetReturnValue().Set(static_cast<double>(*t));
      } else {
        info.GetReturnValue().SetNull();
      }
    });
  });

  // -- the object's life
  add("blockConcurrencyWhile", [](const Info& info) {
    Vm& vm = vm_of(info);
    guarded(info, [&] {
      JsObject& object = object_of(info);
      if (!info[1]->IsFunction()) throw Error(Code::kInvalidArgument, "blockConcurrencyWhile() needs a function");
      auto fn = std::make_shared<v8::Global<v8::Function>>(vm.isolate(), info[1].As<v8::Function>());
      auto out = std::make_shared<v8::Global<v8::Value>>();
      Vm* vmp = &vm;
      Scope* scope = vm.scope();
      JsObject* o = &object;
      info.GetReturnValue().Set(start_op<int>(
          vm,
          [o, vmp, scope, fn, out] {
            return block_op(o, [vmp, scope, fn, out] { return run_blocking(vmp, scope, fn, out); });
          },
          +[](Vm& v, int&) -> v8::Local<v8::Value> { return v8::Undefined(v.isolate()); }));
    });
  });
  add("abort", [](const Info& info) {
    Vm& vm = vm_of(info);
    guarded(info, [&] {
      object_of(info);
      vm.terminate_for_abort(vm.utf8(info[1]));
    });
  });
}

}  // namespace dobj::js
