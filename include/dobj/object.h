// DurableObject and what it sees: State, Env, Namespace and Stub.
//
// A namespace (binding) is a C++ class deriving from DurableObject. For each ID
// at most one instance is live; all its events run on one shard thread, one
// turn at a time, so object code needs no locks. While a handler awaits
// something outside the object (a stub call, an outgoing fetch, a timer),
// another event of the same object may start, as in JavaScript; awaiting
// storage().sync() lets none start, and neither does anything awaited inside
// state().block_concurrency_while, which holds every other event until its
// callback finishes.
//
// Lifecycle: the runtime constructs the object (State&, Env&) on its first
// event, and destroys it when it has been idle for ServerOptions::idle_timeout
// (and holds no socket it keeps itself), or when it is reset (an uncaught
// failure of a commit, abort, the CPU limit, a block_concurrency_while that
// throws or times out). There is no eviction under memory pressure: the
// open-database cap closes idle database connections, not instances. Its
// storage persists; in-memory members do not. The constructor is synchronous;
// asynchronous set-up goes through state().block_concurrency_while.
//
// An exception that escapes a handler fails that event only, and the object
// keeps running. dobj::Error is answered with its mapped HTTP status and its
// message (throw it for what the client should read); anything else is a bug:
// logged on the server with the object, the exception's type and message,
// and answered 500 {"error": "internal error", "incident": N}
// (ServerOptions::expose_exception_messages adds the message, for development).
#pragma once

#include <chrono>
#include <cstdlib>
#include <functional>
#include <map>
#include <optional>
#include <memory>
#include <string>
#include <string_view>
#include <tuple>
#include <typeinfo>
#include <type_traits>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "dobj/http.h"
#include "dobj/id.h"
#include "dobj/status.h"
#include "dobj/storage.h"
#include "dobj/task.h"
#include "dobj/websocket.h"

namespace dobj {

namespace internal {
struct MethodTable;
// Whether a type converts to and from JSON (nlohmann's to_json/from_json).
template <typename T>
inline constexpr bool kJsonWritable = std::is_constructible_v<Json, T>;
template <typename T>
struct JsonReadable : std::bool_constant<requires(const Json& j) { j.get<T>(); }> {};
template <>
struct JsonReadable<void> : std::true_type {};
template <typename T>
inline constexpr bool kJsonReadable = JsonReadable<T>::value;
class NamespaceImpl;
class Runtime;
class ObjectHost;
struct ApiAccess;  // the runtime's way to make the handles below (src/runtime/api_access.h)
}  // namespace internal

// A method an object offers to typed calls: its name on the wire and the
// member function. A class lists them in a table of its own,
//
//   class Counter : public dobj::DurableObject {
//    public:
//     dobj::Task<int64_t> add(int64_t n);
//     static constexpr auto kMethods = dobj::methods(dobj::Method{"add", &Counter::add});
//   };
//
// Server::bind<Counter> registers each, and a caller writes
// co_await stub.call(&Counter::add, 5): the arguments' and the result's types
// are checked at compile time against add's. Every parameter and result
// must convert to and from JSON (nlohmann's to_json/from_json).
template <typename P>
struct Method {
  std::string_view name;
  P fn;
};
template <typename... P>
constexpr auto methods(Method<P>... m) {
  return std::tuple<Method<P>...>(m...);
}

namespace internal {
template <typename T>
concept HasMethods = requires { T::kMethods; };
// The name T::kMethods gives fn, or empty when fn is not in the table.
template <typename T, typename P>
std::string_view method_name(P fn) {
  std::string_view out;
  std::apply(
      [&](const auto&... m) {
        auto match = [&](const auto& entry) {
          if constexpr (std::is_same_v<decltype(entry.fn), P>) {
            if (out.empty() && entry.fn == fn) out = entry.name;
          }
        };
        (match(m), ...);
      },
      T::kMethods);
  return out;
}
template <typename T, typename P>
constexpr bool kTableHasType = []<typename... M>(std::tuple<M...>*) {
  return (std::is_same_v<decltype(M::fn), P> || ...);
}(static_cast<std::remove_cvref_t<decltype(T::kMethods)>*>(nullptr));
}  // namespace internal

// A client handle to one object. Cheap to copy (copies are the same stub);
// usable from the worker or from inside any object, on the thread that made it.
class Stub {
 public:
  const ObjectId& id() const { return id_; }

  // Delivers the request to the object and returns its response. Requests from
  // one caller through one stub are delivered in the order they were made.
  // Failures of the runtime (object overloaded, object reset) come back as
  // responses with the mapped status and a JSON error body. The task does not
  // refer to this Stub: a temporary stub is fine.
  Task<Response> fetch(Request request) const;

  // A typed call of a method the object registered (DurableObject::method):
  //   int64_t n = co_await stub.call<int64_t>("add", 5);
  // Arguments and the result travel as JSON. Throws dobj::Error: kNotFound for
  // an unknown method, kInvalidArgument for arguments or a result of the wrong
  // type, and the code of whatever the method threw (kReset, kOverloaded...).
  // Calls from one caller through one stub are delivered in order.
  template <typename R = void, typename... Args>
  Task<R> call(std::string method, Args&&... args) const {
    constexpr bool kArgsOk = (internal::kJsonWritable<Args> && ...);
    static_assert(kArgsOk,
                  "dobj: an argument of this call has no JSON conversion: define "
                  "to_json(Json&, const T&) and from_json(const Json&, T&) for its type, or "
                  "NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE(T, fields...)");
    static_assert(internal::kJsonReadable<R>,
                  "dobj: the call's result type has no JSON conversion: define "
                  "from_json(const Json&, T&) for it, or NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE");
    if constexpr (kArgsOk && internal::kJsonReadable<R>) {
      Json list = Json::array();
      (list.push_back(Json(std::forward<Args>(args))), ...);
      return typed<R>(call_json(std::move(method), std::move(list)));
    } else {
      std::abort();  // not compiled: the assertions above failed
    }
  }
  // A typed call of a method in the class's kMethods table:
  //   int64_t n = co_await stub.call(&Counter::add, 5);
  // The number and types of the arguments and the result type are checked
  // at compile time. Errors at run time as for the string form.
  //
  // GCC 12 (Debian 12's compiler) destroys a temporary that has a destructor
  // twice when it is created inside a co_await expression
  // (co_await stub.call(&Ledger::add, Entry{"ada", 5}) crashes): pass named
  // values (Entry e{"ada", 5}; co_await stub.call(&Ledger::add, e);).
  // Integers and other trivially destructible temporaries are fine.
  template <typename T, typename R, typename... P, typename... A>
  Task<R> call(Task<R> (T::*fn)(P...), A&&... args) const {
    static_assert(internal::HasMethods<T>,
                  "dobj: a typed call needs the class's table: static constexpr auto kMethods = "
                  "dobj::methods(dobj::Method{\"name\", &T::name}, ...)");
    static_assert(sizeof...(A) == sizeof...(P), "dobj: wrong number of arguments for this method");
    if constexpr (internal::HasMethods<T> && sizeof...(A) == sizeof...(P)) {
      static_assert((std::is_convertible_v<A&&, std::decay_t<P>> && ...),
                    "dobj: an argument does not convert to the method's parameter type");
      static_assert(internal::kTableHasType<T, decltype(fn)>,
                    "dobj: this method is not in the class's kMethods table");
      std::string_view name = internal::method_name<T>(fn);
      if (name.empty()) {
        throw Error(Code::kNotFound, "the method is not in the class's kMethods table");
      }
      return call<R>(std::string(name), std::decay_t<P>(std::forward<A>(args))...);
    } else {
      std::abort();  // not compiled: the assertions above failed
    }
  }
  // The untyped form: a JSON array of arguments in, the JSON result out.
  Task<Json> call_json(std::string method, Json args) const;

 private:
  template <typename R>
  static Task<R> typed(Task<Json> pending) {
    Json result = co_await pending;
    if constexpr (!std::is_void_v<R>) {
      try {
        co_return result.get<R>();
      } catch (const Json::exception&) {
        throw Error(Code::kInvalidArgument,
                    "the call's result has the wrong type: " + result.dump());
      }
    }
  }

  friend class Namespace;
  friend struct internal::ApiAccess;
  Stub(const internal::NamespaceImpl* ns, ObjectId id);
  const internal::NamespaceImpl* ns_;
  ObjectId id_;
  // The instance this stub reached first; once that instance is reset the
  // stub keeps failing and a new stub is needed (as in Durable Objects).
  // Shared by copies; touched only on this stub's thread.
  std::shared_ptr<uint64_t> binding_;
};

// One binding: a class of objects and the IDs that name its instances.
class Namespace {
 public:
  const std::string& name() const;

  // The same name always gives the same ID, across restarts. Throws
  // dobj::Error(kInvalidArgument) for a name over ObjectId::kMaxNameBytes.
  ObjectId id_from_name(std::string_view name) const;
  // Parses 64 lowercase hex digits; refuses a malformed string, a changed digit,
  // and an ID of another namespace.
  Result<ObjectId> id_from_string(std::string_view hex) const;
  // A random ID that no other call returns.
  ObjectId new_unique_id() const;
  Stub get(const ObjectId& id) const { return Stub(impl_, id); }
  // The class bound here (Server::bind<T>), or null for a bare factory.
  const std::type_info* class_type() const;

 private:
  friend class Env;
  friend struct internal::ApiAccess;
  explicit Namespace(const internal::NamespaceImpl* impl) : impl_(impl) {}
  const internal::NamespaceImpl* impl_;
};

// A stub that knows its object's class: call() takes only T's methods.
template <typename T>
class TypedStub {
 public:
  explicit TypedStub(Stub stub) : stub_(std::move(stub)) {}
  const ObjectId& id() const { return stub_.id(); }
  Task<Response> fetch(Request request) const { return stub_.fetch(std::move(request)); }
  template <typename C, typename R, typename... P, typename... A>
  Task<R> call(Task<R> (C::*fn)(P...), A&&... args) const {
    static_assert(std::is_base_of_v<C, T>, "dobj: this stub's object is of another class");
    return stub_.call(fn, std::forward<A>(args)...);
  }
  // The untyped stub, for string-named calls.
  const Stub& untyped() const { return stub_; }

 private:
  Stub stub_;
};

// A namespace whose objects are of class T (Env::ns<T>).
template <typename T>
class TypedNamespace {
 public:
  explicit TypedNamespace(Namespace ns) : ns_(ns) {}
  const std::string& name() const { return ns_.name(); }
  ObjectId id_from_name(std::string_view name) const { return ns_.id_from_name(name); }
  Result<ObjectId> id_from_string(std::string_view hex) const { return ns_.id_from_string(hex); }
  ObjectId new_unique_id() const { return ns_.new_unique_id(); }
  TypedStub<T> get(const ObjectId& id) const { return TypedStub<T>(ns_.get(id)); }
  const Namespace& untyped() const { return ns_; }

 private:
  Namespace ns_;
};

// The bindings an object or the worker can reach.
class Env {
 public:
  // Throws dobj::Error(kNotFound) when no namespace has that binding name.
  Namespace ns(std::string_view binding) const;
  // The namespace as bound to class T: throws dobj::Error(kInvalidArgument)
  // when the binding holds another class (Server::bind<U>).
  template <typename T>
  TypedNamespace<T> ns(std::string_view binding) const {
    Namespace n = ns(binding);
    check_class(n, typeid(T));
    return TypedNamespace<T>(n);
  }

 private:
  friend struct internal::ApiAccess;
  explicit Env(internal::Runtime* runtime) : runtime_(runtime) {}
  void check_class(const Namespace& ns, const std::type_info& wanted) const;
  internal::Runtime* runtime_;
};

// What the runtime gives one object instance. Touched only on the object's
// shard thread; lives as long as the instance.
class State {
 public:
  const ObjectId& id() const;
  Storage& storage() { return storage_; }

  // The runtime's clock: objects read time here, not from the system clock,
  // so that a test's fake clock (and alarms) agree with them.
  std::chrono::system_clock::time_point now() const;
  int64_t now_ms() const;  // milliseconds since the Unix epoch

  // Starts fn now. Until the task it returns finishes, no other event is
  // delivered to this object. The returned task finishes with fn's; awaiting it
  // is optional (a constructor cannot await, and need not). If fn throws, the
  // object is reset.
  Task<void> block_concurrency_while(std::function<Task<void>()> fn);

  struct AbortOptions {
    // When abort() is called while alarm() runs: whether that alarm is retried
    // (true, as for any failure) or dropped.
    bool retry_alarm = true;
  };
  // Resets the object: its in-memory state is dropped, storage kept (writes of
  // the current turn are discarded), its callers get an error marked "reset"
  // with the reason, and the next event builds a new instance. Throws to unwind
  // the handler.
  [[noreturn]] void abort(std::string_view reason, AbortOptions options);
  [[noreturn]] void abort(std::string_view reason) { abort(reason, AbortOptions{}); }

  // When the object next starts (after abort(), an eviction or a restart),
  // its database is replaced by `snapshot`, another object's (or its own)
  // Storage::snapshot(); its alarm is dropped, as snapshots carry none.
  // Throws dobj::Error(kNotFound) for an unknown or expired snapshot. On a
  // cluster, a snapshot made on another node is copied to this one first
  // (kUnavailable when no node that holds it answers). Awaiting it ends the
  // turn. (Cloudflare: ctx.onNextSessionRestore.)
  Task<void> on_next_session_restore(std::string snapshot);

  // WebSockets (see dobj/websocket.h). accept_websocket takes an upgrade
  // request through the hibernation API: the runtime holds the socket and
  // calls websocket_message/close/error, and the object may be evicted while
  // it is open. At most 10 tags of 256 characters; 32,768 sockets per object.
  // Throws dobj::Error for a request that is not a WebSocket upgrade.
  WebSocket accept_websocket(const Request& upgrade, std::vector<std::string> tags = {});
  // A socket the object keeps itself: its events go to these callbacks, and
  // the object stays in memory while the socket is open (reset closes it).
  WebSocket keep_websocket(const Request& upgrade, WebSocketHandlers handlers);
  // The open hibernatable sockets, or those with `tag`.
  std::vector<WebSocket> get_websockets(std::string_view tag = {});
  std::vector<std::string> get_tags(const WebSocket& ws);
  // A text message equal to `request` is answered with `response` by the
  // runtime, without waking the object (e.g. "ping" → "pong").
  void set_websocket_auto_response(std::string request, std::string response);
  void clear_websocket_auto_response();
  std::optional<std::pair<std::string, std::string>> get_websocket_auto_response();
  // When the auto-response last answered on this socket (ms since the epoch).
  std::optional<int64_t> get_websocket_auto_response_timestamp(const WebSocket& ws);

 private:
  friend struct internal::ApiAccess;
  explicit State(internal::ObjectHost* host);
  internal::ObjectHost* host_;
  Storage storage_;
};

// What alarm() is told about the run.
struct AlarmInfo {
  int retry_count = 0;  // 0 on the first attempt, then 1, 2, ... 6
  bool is_retry = false;
};

class DurableObject {
 public:
  DurableObject(State& state, Env& env) : state_(state), env_(env) {}
  virtual ~DurableObject() = default;
  DurableObject(const DurableObject&) = delete;
  DurableObject& operator=(const DurableObject&) = delete;

  // An HTTP request addressed to this object. The default answers 501.
  virtual Task<Response> fetch(Request request);

  // The object's alarm is due (storage().set_alarm). Delivered at least once:
  // the alarm is cleared only after this returns and its writes are durable.
  // If it throws, it is retried with exponential backoff (2, 4, 8, 16, 32,
  // 64 s, with up to 25% jitter), at most 6 times, then dropped. Setting a new
  // alarm inside replaces a pending retry. Override it to use alarms; a class
  // that does not cannot set_alarm.
  virtual Task<void> alarm(AlarmInfo info);

  // Events of sockets accepted with State::accept_websocket, in the order each
  // socket received them. A client that vanished without a close frame gives
  // code 1006 and was_clean false; a protocol violation gives
  // websocket_error. The defaults do nothing.
  virtual Task<void> websocket_message(WebSocket ws, WebSocketMessage message);
  virtual Task<void> websocket_close(WebSocket ws, int code, std::string reason, bool was_clean);
  virtual Task<void> websocket_error(WebSocket ws, std::string error);

 protected:
  // Registers a method that stubs can call by name, usually in the
  // constructor: method("add", &Counter::add) for
  //   Task<int64_t> add(int64_t n);
  // Arguments and result must convert to and from JSON (nlohmann::json rules).
  template <typename T, typename R, typename... Args>
  void method(std::string name, Task<R> (T::*fn)(Args...)) {
    constexpr bool kArgsOk = (internal::kJsonReadable<std::decay_t<Args>> && ...);
    constexpr bool kResultOk = std::is_void_v<R> || internal::kJsonWritable<R>;
    static_assert(kArgsOk,
                  "dobj: a parameter of this method has no JSON conversion: define "
                  "to_json/from_json for its type, or NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE");
    static_assert(kResultOk,
                  "dobj: this method's result type has no JSON conversion: define "
                  "to_json(Json&, const T&) for it, or NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE");
    if constexpr (kArgsOk && kResultOk) {
      T* self = static_cast<T*>(this);
      methods_[std::move(name)] = [self, fn](Json args) -> Task<Json> {
        return invoke(self, fn, std::move(args), std::index_sequence_for<Args...>{});
      };
    }
  }

  State& state() { return state_; }
  Storage& storage() { return state_.storage(); }
  Env& env() { return env_; }

 private:
  friend class internal::ObjectHost;  // runs dispatch_call
  // Runs a registered method for a typed call. Virtual for objects whose
  // methods are not C++ ones (a JavaScript class, src/js).
  virtual Task<Response> dispatch_call(std::string method, std::string args_json);
  template <typename A>
  static A argument(const Json& args, size_t i) {
    try {
      return args[i].get<A>();
    } catch (const Json::exception&) {
      throw Error(Code::kInvalidArgument,
                  "argument " + std::to_string(i + 1) + " has the wrong type: " + args[i].dump());
    }
  }
  template <typename T, typename R, typename... Args, size_t... I>
  static Task<Json> invoke(T* self, Task<R> (T::*fn)(Args...), Json args,
                           std::index_sequence<I...>) {
    if (!args.is_array() || args.size() != sizeof...(Args)) {
      throw Error(Code::kInvalidArgument,
                  "expects " + std::to_string(sizeof...(Args)) + " arguments, got " + args.dump());
    }
    std::tuple<std::decay_t<Args>...> values{argument<std::decay_t<Args>>(args, I)...};
    if constexpr (std::is_void_v<R>) {
      co_await (self->*fn)(std::get<I>(std::move(values))...);
      co_return Json(nullptr);
    } else {
      R result = co_await (self->*fn)(std::get<I>(std::move(values))...);
      co_return Json(std::move(result));
    }
  }

  friend struct internal::MethodTable;
  State& state_;
  Env& env_;
  std::map<std::string, std::function<Task<Json>(Json)>, std::less<>> methods_;
};

namespace internal {
// Registers the methods of T::kMethods on a new instance (Server::bind<T>).
struct MethodTable {
  template <typename T>
  static void register_all(T& object) {
    if constexpr (HasMethods<T>) {
      std::apply(
          [&](const auto&... m) {
            (static_cast<DurableObject&>(object).method(std::string(m.name), m.fn), ...);
          },
          T::kMethods);
    }
  }
};
}  // namespace internal

}  // namespace dobj
