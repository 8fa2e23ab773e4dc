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
  // The host behind an object's State, and Storage's calls on values in their
  // stored form (tag byte + payload), with all of Storage's checks: for the
  // JavaScript objects' natives (src/js), whose values V8 serializes.
  static ObjectHost* host(const State& state) { return state.host_; }
  static std::optional<std::string> get_raw(Storage& s, std::string_view key) {
    return s.get_raw(key);
  }
  static std::vector<std::pair<std::string, std::string>> get_raw(
      Storage& s, const std::vector<std::string>& keys) {
    return s.get_raw(keys);
  }
  static void put_raw(Storage& s, std::string_view key, std::string_view stored) {
    s.put_raw(key, stored);
  }
  static void put_raw(Storage& s, const std::vector<std::pair<std::string, std::string>>& entries) {
    s.put_raw(entries);
  }
  static std::vector<std::pair<std::string, std::string>> list_raw(Storage& s,
                                                                   const ListOptions& options) {
    return s.list_raw(options);
  }
  static void begin_nested(Storage& s) { s.begin_nested(); }
  static void end_nested(Storage& s, bool commit) { s.end_nested(commit); }
  static Env env(Runtime* runtime) { return Env(runtime); }
  static Namespace ns(const NamespaceImpl* impl) { return Namespace(impl); }
  static Stub stub(const NamespaceImpl* ns, ObjectId id) { return Stub(ns, std::move(id)); }
  // A typed call's answer as it came (Stub::call_json throws for a status
  // other than 200): for JavaScript RPC, whose errors keep their class and
  // markers (src/js/natives.cc).
  static Task<Response> call_response(const Stub& stub, std::string method, Json args);
};

}  // namespace dobj::internal
