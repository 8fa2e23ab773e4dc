// ApiAccess: how the runtime makes the handles of the public API. Their
// constructors take runtime internals and are private, so that object
// authors can only get them from the runtime (State, Env, stubs).
#pragma once

#include <memory>

#include "dobj/object.h"
#include "dobj/storage.h"

namespace dobj::internal {

struct ApiAccess {
  static std::unique_ptr<State> state(ObjectHost* host) {
    return std::unique_ptr<State>(new State(host));
  }
  static Storage storage(ObjectStore* store) { return Storage(store); }
  // The host behind an object's State (the JavaScript objects' natives).
  static ObjectHost* host(const State& state) { return state.host_; }
  static Env env(Runtime* runtime) { return Env(runtime); }
  static Namespace ns(const NamespaceImpl* impl) { return Namespace(impl); }
  static Stub stub(const NamespaceImpl* ns, ObjectId id) { return Stub(ns, std::move(id)); }
};

}  // namespace dobj::internal
