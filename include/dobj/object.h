// DurableObject and what it sees: State, Env, Namespace and Stub.
//
// A namespace (binding) is a C++ class deriving from DurableObject. For each ID
// at most one instance is live; all its events run on one shard thread, one
// turn at a time, so object code needs no locks. While a handler awaits
// something other than storage (a stub call, block_concurrency_while's
// callback, a timer), another event of the same object may start, as in
// JavaScript.
//
// Lifecycle: the runtime constructs the object (State&, Env&) on its first
// event, and destroys it after an idle timeout, under memory pressure, or when
// it is reset (an uncaught failure of a commit, block_concurrency_while). Its
// storage persists; in-memory members do not. The constructor is synchronous;
// asynchronous set-up goes through state().block_concurrency_while.
//
// An exception that escapes a handler fails that event only: dobj::Error is
// answered with its mapped HTTP status, anything else with 500; the object
// keeps running.
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <string_view>

#include "dobj/http.h"
#include "dobj/id.h"
#include "dobj/status.h"
#include "dobj/storage.h"
#include "dobj/task.h"

namespace dobj {

namespace internal {
class NamespaceImpl;
class Runtime;
class ObjectHost;
}  // namespace internal

// A client handle to one object. Cheap to copy; usable from the worker or from
// inside any object, on the thread that made it.
class Stub {
 public:
  Stub(internal::NamespaceImpl* ns, ObjectId id) : ns_(ns), id_(std::move(id)) {}
  const ObjectId& id() const { return id_; }

  // Delivers the request to the object and returns its response. Requests from
  // one caller through one stub are delivered in the order they were made.
  // Failures of the runtime (object overloaded, object reset) come back as
  // responses with the mapped status and a JSON error body. The task does not
  // refer to this Stub: a temporary stub is fine.
  Task<Response> fetch(Request request) const;

 private:
  internal::NamespaceImpl* ns_;
  ObjectId id_;
};

// One binding: a class of objects and the IDs that name its instances.
class Namespace {
 public:
  explicit Namespace(internal::NamespaceImpl* impl) : impl_(impl) {}
  const std::string& name() const;

  // The same name always gives the same ID, across restarts.
  ObjectId id_from_name(std::string_view name) const;
  // Parses 64 lowercase hex digits; refuses a malformed string, a changed digit,
  // and an ID of another namespace.
  Result<ObjectId> id_from_string(std::string_view hex) const;
  // A random ID that no other call returns.
  ObjectId new_unique_id() const;
  Stub get(const ObjectId& id) const { return Stub(impl_, id); }

 private:
  internal::NamespaceImpl* impl_;
};

// The bindings an object or the worker can reach.
class Env {
 public:
  explicit Env(internal::Runtime* runtime) : runtime_(runtime) {}
  // Throws dobj::Error(kNotFound) when no namespace has that binding name.
  Namespace ns(std::string_view binding) const;

 private:
  internal::Runtime* runtime_;
};

// What the runtime gives one object instance. Touched only on the object's
// shard thread; lives as long as the instance.
class State {
 public:
  explicit State(internal::ObjectHost* host);
  const ObjectId& id() const;
  Storage& storage() { return storage_; }

  // Starts fn now. Until the task it returns finishes, no other event is
  // delivered to this object. The returned task finishes with fn's; awaiting it
  // is optional (a constructor cannot await, and need not). If fn throws, the
  // object is reset.
  Task<void> block_concurrency_while(std::function<Task<void>()> fn);

 private:
  internal::ObjectHost* host_;
  Storage storage_;
};

class DurableObject {
 public:
  DurableObject(State& state, Env& env) : state_(state), env_(env) {}
  virtual ~DurableObject() = default;
  DurableObject(const DurableObject&) = delete;
  DurableObject& operator=(const DurableObject&) = delete;

  // An HTTP request addressed to this object. The default answers 501.
  virtual Task<Response> fetch(Request request);

 protected:
  State& state() { return state_; }
  Storage& storage() { return state_.storage(); }
  Env& env() { return env_; }

 private:
  State& state_;
  Env& env_;
};

}  // namespace dobj
