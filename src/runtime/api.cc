// The object-author API (State, Env, Namespace, Stub, DurableObject) on top
// of the runtime.
#include <optional>

#include "base/log.h"
#include "dobj/object.h"
#include "runtime/api_access.h"
#include "runtime/object_actions.h"
#include "runtime/object_host.h"
#include "runtime/runtime.h"

namespace dobj {

using internal::ObjectHost;
using internal::ResumeTarget;
using internal::Shard;

State::State(internal::ObjectHost* host)
    : host_(host), storage_(internal::ApiAccess::storage(&host->store())) {}

const ObjectId& State::id() const { return host_->id(); }

int64_t State::now_ms() const { return host_->store().now_ms(); }

std::chrono::system_clock::time_point State::now() const {
  return std::chrono::system_clock::time_point(std::chrono::milliseconds(now_ms()));
}

void State::abort(std::string_view reason, AbortOptions options) {
  host_->abort(reason, options.retry_alarm);
}

namespace {

// On a cluster, brings a snapshot made on another node here
// (internal::fetch_snapshot_here) and resumes the caller.
struct SnapshotHereAwaitable {
  std::string name;
  Status result;
  bool await_ready() const noexcept { return false; }
  void await_suspend(std::coroutine_handle<> h) {
    ResumeTarget back = internal::current_resume_target();
    internal::fetch_snapshot_here(*back.shard, name, [back, h, this](Status st) {
      back.shard->post([back, h, this, st] {
        if (!back.shard->alive(back)) return;  // the caller was reset: h is gone
        result = st;
        back.shard->resume(back, h);
      });
    });
  }
  void await_resume() const {
    if (!result.is_ok()) throw Error(result);
  }
};

}  // namespace

Task<void> State::on_next_session_restore(std::string snapshot) {
  internal::ObjectStore& store = host_->store();
  if (auto file = store.snapshot_file(snapshot); !file) {
    // On a cluster another node may hold it: it is copied here now, so that
    // the restore finds it (and the caller learns now if there is none).
    if (file.status().code() != Code::kNotFound || !host_->shard()->runtime().placement()) throw Error(file.status());
    SnapshotHereAwaitable here{snapshot, Status::ok()};
    co_await here;
  }
  store.request_restore("snapshot", snapshot);
  co_await storage_.sync();
}

Stub::Stub(const internal::NamespaceImpl* ns, ObjectId id)
    : ns_(ns), id_(std::move(id)), binding_(std::make_shared<uint64_t>(0)) {}

Task<void> State::block_concurrency_while(std::function<Task<void>()> fn) {
  return host_->block_concurrency_while(std::move(fn));
}

Task<Response> DurableObject::fetch(Request) {
  co_return Response::error(501, "this object does not handle fetch");
}

Task<void> DurableObject::alarm(AlarmInfo) {
  throw Error(Code::kInternal, "this object class has no alarm() handler");
  co_return;
}

Task<Response> DurableObject::dispatch_call(std::string method, std::string args_json) {
  auto it = methods_.find(method);
  if (it == methods_.end())
    throw Error(Code::kNotFound, "the object has no method named " + method);
  Result<Json> args = parse_json(args_json);
  if (!args) throw Error(Code::kInvalidArgument, "call arguments: " + args.status().message());
  Json result = co_await it->second(std::move(*args));
  co_return Response::json(result.dump(-1, ' ', false, Json::error_handler_t::replace));
}

Namespace Env::ns(std::string_view binding) const {
  const internal::NamespaceImpl* impl = runtime_->find_namespace(binding);
  if (!impl) throw Error(Code::kNotFound, "no namespace is bound as " + std::string(binding));
  return Namespace(impl);
}

const std::string& Namespace::name() const { return impl_->name(); }

const std::type_info* Namespace::class_type() const { return impl_->class_type(); }

void Env::check_class(const Namespace& ns, const std::type_info& wanted) const {
  const std::type_info* bound = ns.class_type();
  if (bound && *bound != wanted) {
    throw Error(Code::kInvalidArgument, "the binding " + ns.name() + " holds " +
                                            internal::demangled(bound->name()) + ", not " +
                                            internal::demangled(wanted.name()));
  }
}
ObjectId Namespace::id_from_name(std::string_view name) const {
  return impl_->ids().from_name(name);
}
Result<ObjectId> Namespace::id_from_string(std::string_view hex) const {
  return impl_->ids().from_string(hex);
}
ObjectId Namespace::new_unique_id() const {
  impl_->count_unique_id();
  return impl_->ids().unique();
}

namespace {

// Sends a request to an object's shard and continues the caller on its own
// shard with the response. A call made by an object after a write leaves
// only once the write is durable.
struct FetchAwaitable {
  const internal::NamespaceImpl* ns;
  ObjectId id;
  Request request;
  std::optional<std::string> call_method;
  internal::StubBinding binding;
  std::optional<Response> result;

  bool await_ready() const noexcept { return false; }
  void await_suspend(std::coroutine_handle<> h) {
    ResumeTarget back = internal::current_resume_target();
    Shard* target = &ns->runtime().shard_for(id);
    internal::Reply reply = [back, h, this](internal::Answer a) {
      back.shard->post([back, h, this, a = std::move(a)]() mutable {
        if (!back.shard->alive(back)) return;  // the caller was reset: h is gone
        // Bind the stub to the instance that answered (first answer only).
        if (binding && *binding == 0) *binding = a.instance_epoch;
        result = std::move(a.response);
        back.shard->resume(back, h);
      });
    };
    internal::Delivery delivery{std::move(request), std::move(reply),       std::move(call_method),
                                binding != nullptr, binding ? *binding : 0, std::nullopt, std::nullopt, nullptr, 0, 0};
    // A worker's call (it runs at once, on the worker's shard): where its
    // objects live decides which shard should serve its connection.
    uint64_t worker = back.ns ? 0 : back.generation;
    auto send = [from = back.shard, worker, target, ns = ns, id = id, d = std::move(delivery)](Status st) mutable {
      // The caller may not send now (reset, or its node may not answer for
      // it): the call fails in the caller rather than never return.
      if (!st.is_ok()) return d.reply(internal::error_response(st));
      if (internal::Placement* placement = ns->runtime().placement()) {
        internal::Placement::Route route = placement->route(id);
        if (route.kind != internal::Placement::Route::Kind::kLocal && worker != 0) {
          from->note_worker_call(worker, -1);
        }
        if (route.kind == internal::Placement::Route::Kind::kRemote) {
          return placement->forward(*from, ns, id, std::move(d), route);
        }
        // A hand-off under way (transient): the object's shard waits for it
        // (Shard::reroute).
        if (route.kind == internal::Placement::Route::Kind::kUnavailable && !route.transient) {
          Response r = internal::error_response(Status(Code::kUnavailable, route.reason));
          r.set_header("retry-after", "1");
          return d.reply(std::move(r));
        }
      }
      if (worker != 0) from->note_worker_call(worker, target->index());
      // A worker runs outside any object, so the object's turn may run here
      // (shard.h, NoInlineDelivery); an object's call still goes through the
      // loop, where no turn of the caller is under way.
      if (worker != 0 && target == from && internal::ObjectHost::current() == nullptr &&
          !internal::NoInlineDelivery::active()) {
        return target->deliver(ns, id, std::move(d));
      }
      target->post([target, ns, id = std::move(id), d = std::move(d)]() mutable {
        target->deliver(ns, id, std::move(d));
      });
    };
    internal::send_through_output_gate(std::move(send));
  }
  Response await_resume() { return std::move(*result); }
};

Task<Response> stub_fetch(const internal::NamespaceImpl* ns, ObjectId id, Request request,
                          std::optional<std::string> call_method, internal::StubBinding binding) {
  // A named awaitable: GCC 12 copies a temporary awaitable bitwise into the
  // frame, which breaks members such as std::string.
  FetchAwaitable awaitable{
      ns,          std::move(id), std::move(request), std::move(call_method), std::move(binding),
      std::nullopt};
  co_return co_await awaitable;
}

// The Code a typed call's error response stands for.
Code code_of(const Response& r, const Json& body) {
  switch (r.status) {
    case 400:
      return Code::kInvalidArgument;
    case 404:
      return Code::kNotFound;
    case 409:
      return Code::kConflict;
    case 413:
      return Code::kTooLarge;
    case 507:
      return Code::kStorageFull;
    case 503:
      return body.value("overloaded", false) ? Code::kOverloaded : Code::kUnavailable;
    default:
      return body.value("reset", false) ? Code::kReset : Code::kInternal;
  }
}

// A call is a POST of its arguments' JSON to the method.
Task<Response> call_fetch(const internal::NamespaceImpl* ns, ObjectId id, std::string method,
                          const Json& args, internal::StubBinding binding) {
  Request request;
  request.method = "POST";
  request.body = args.dump(-1, ' ', false, Json::error_handler_t::replace);
  return stub_fetch(ns, std::move(id), std::move(request), std::move(method), std::move(binding));
}

Task<Json> stub_call(const internal::NamespaceImpl* ns, ObjectId id, std::string method, Json args,
                     internal::StubBinding binding) {
  Response r = co_await call_fetch(ns, std::move(id), std::move(method), args, std::move(binding));
  Result<Json> parsed = parse_json(r.body);
  Json body = parsed ? std::move(*parsed) : Json(Json::value_t::discarded);
  if (r.status != 200) {
    std::string message = body.is_object() && body.contains("error") && body["error"].is_string()
                              ? body["error"].get<std::string>()
                              : r.body;
    throw Error(code_of(r, body.is_object() ? body : Json::object()), message);
  }
  co_return body;
}

}  // namespace

// Not a coroutine itself: the task must not refer to the Stub, which is often
// a temporary (ns.get(id).fetch(...)) gone before the task runs.
Task<Response> Stub::fetch(Request request) const {
  return stub_fetch(ns_, id_, std::move(request), std::nullopt, binding_);
}

Task<Json> Stub::call_json(std::string method, Json args) const {
  return stub_call(ns_, id_, std::move(method), std::move(args), binding_);
}

namespace internal {
Task<Response> ApiAccess::call_response(const Stub& stub, std::string method, Json args) {
  return call_fetch(stub.ns_, stub.id_, std::move(method), args, stub.binding_);
}
}  // namespace internal

}  // namespace dobj
