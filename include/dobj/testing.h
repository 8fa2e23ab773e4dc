// dobj::testing: test Durable Objects in-process, fast and deterministically.
//
//   dobj::testing::TestRuntime rt;           // fresh temp folder, fake clock
//   rt.bind<Counter>("COUNTER");
//   auto c = rt.object<Counter>("COUNTER", "alice");
//   EXPECT_EQ(c.call(&Counter::add, 5), 5);  // typed call, checked at compile time
//   c.evict();                               // drop it from memory...
//   EXPECT_EQ(c.call(&Counter::add, 1), 6);  // ...its storage is what remains
//   rt.advance(std::chrono::minutes(5));     // runs every alarm due by then
//
// A TestRuntime is the real runtime (shards, gates, group commit, real SQLite
// in a temporary folder removed afterwards) with a fake clock: time stands
// still until advance() moves it, and alarms fire and idle objects are
// evicted only then, so these tests neither sleep nor race. Every call blocks until its answer is back
// (at most Options::timeout, then it throws), so a test reads top to bottom.
// It works with any test framework; link dobj::testing.
//
// Evict-after-every-event mode (Options::evict_after_every_event) runs each
// event on a fresh instance: an object that keeps state only in members fails
// its test at once. docs/testing.md shows a wrong and a right object.
//
// Threads: use a TestRuntime and its handles from one thread (the test's).
// Objects run on the runtime's own shard threads, as in the server.
#pragma once

#include <chrono>
#include <cstdint>
#include <exception>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>

#include "dobj/http.h"
#include "dobj/id.h"
#include "dobj/object.h"
#include "dobj/server.h"
#include "dobj/storage.h"
#include "dobj/task.h"

namespace dobj::testing {

struct Options {
  // Where the fake clock starts: 2026-01-01T00:00:00Z.
  std::chrono::system_clock::time_point start_time =
      std::chrono::system_clock::time_point(std::chrono::milliseconds(1'767'225'600'000));
  // Drop every object from memory after each event (see above).
  bool evict_after_every_event = false;
  // The longest any one call of the kit waits before it throws.
  std::chrono::milliseconds timeout{30'000};
  // Keep the data folder after the runtime is destroyed (to look at it).
  bool keep_data = false;
  // The runtime's options. The kit sets data_dir (a fresh temporary folder),
  // listen (a free loopback port) and exit_on_flush_failure (false); the
  // rest are yours. Two shards by default, so calls between objects cross
  // threads as in production.
  ServerOptions server = [] {
    ServerOptions o;
    o.shards = 2;
    return o;
  }();
};

class TestRuntime;

// A WebSocket client connected to the runtime over loopback.
class Socket {
 public:
  Socket(Socket&&) noexcept;
  Socket& operator=(Socket&&) noexcept;
  ~Socket();

  // Whether the server accepted the upgrade (101). If not, status() and
  // refusal() say what it answered instead.
  bool is_open() const;
  int status() const;
  std::string refusal() const;

  bool send(std::string_view text);
  bool send_binary(std::string_view data);
  // The next text or binary message; nullopt if none came within timeout
  // (or the server closed the socket).
  std::optional<std::string> receive(std::chrono::milliseconds timeout = std::chrono::seconds(5));
  // Sends a close frame and waits for the server's; returns its code and
  // reason (code 0: none came).
  std::pair<int, std::string> close(int code = 1000, std::string_view reason = {});
  // Waits for the server to close the socket; its code and reason (0: none).
  std::pair<int, std::string> wait_closed(std::chrono::milliseconds timeout = std::chrono::seconds(5));

 private:
  friend class TestRuntime;
  struct Impl;
  explicit Socket(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

// One object of a TestRuntime, by binding and ID. T: its class, for typed
// calls (DurableObject: untyped). Cheap to copy; valid while its runtime is.
template <typename T = DurableObject>
class TestObject;

class TestRuntime {
 public:
  explicit TestRuntime(Options options = {});
  ~TestRuntime();
  TestRuntime(const TestRuntime&) = delete;
  TestRuntime& operator=(const TestRuntime&) = delete;

  // Bindings and the worker, as on Server, before the first use.
  template <typename T>
  TestRuntime& bind(std::string binding) {
    using C = internal::ClassBinding<T>;
    return bind_factory(std::move(binding), &C::make, C::kHasAlarm, &typeid(T));
  }
  TestRuntime& bind_factory(std::string binding, ObjectFactory factory, bool has_alarm_handler = true,
                            const std::type_info* class_type = nullptr);
  TestRuntime& worker(Worker worker);
  // Starts the runtime; the first use does it otherwise.
  void start();

  // An object by name (id_from_name) or by ID.
  template <typename T = DurableObject>
  TestObject<T> object(std::string_view binding, std::string_view name) {
    return TestObject<T>(this, std::string(binding), id_from_name(binding, name));
  }
  template <typename T = DurableObject>
  TestObject<T> object(std::string_view binding, const ObjectId& id) {
    return TestObject<T>(this, std::string(binding), id);
  }
  ObjectId id_from_name(std::string_view binding, std::string_view name);
  ObjectId new_unique_id(std::string_view binding);

  // A request through the worker, as a client's would arrive (the default
  // worker routes /<binding>/<name>/...).
  Response fetch(Request request);
  Response fetch(std::string method, std::string target, std::string body = "");
  // Runs a coroutine as the worker would (stubs, several calls at once);
  // rethrows what it throws.
  void run(std::function<Task<void>(Env&)> body);
  // A WebSocket through the worker (target: the path, e.g. "/ROOM/lobby/ws").
  Socket connect(std::string target);

  // The fake clock. advance() moves it and returns when every alarm due by
  // the new time has run (their retries too, if due) and nothing is left
  // running; an alarm that sets the next one inside the window runs again.
  std::chrono::system_clock::time_point now() const;
  void advance(std::chrono::milliseconds by);
  void set_time(std::chrono::system_clock::time_point at);
  // Waits until no object is running an event, every write is durable and no
  // alarm is due (advance() ends with it).
  void settle();

  // Instances constructed so far in a binding (each cold start counts).
  uint64_t constructions(std::string_view binding);

  // Injected failures.
  // The next n commits fail as an I/O error would: the object is reset,
  // its event answered 500 {"reset": true, ...}, the turn's writes gone.
  void fail_next_commits(int n = 1);
  // The next flush fails as an fsync error would: the answers it held fail
  // (500, reset). As in the server, nothing written after the last good
  // flush is trusted again: every later write fails until restart().
  void fail_next_flush();
  // The next n turns of objects in memory use "too much CPU": each object
  // is reset, its turn's writes discarded, its event answered 500.
  void exceed_cpu_limit(int n = 1);
  // Stops the runtime (gracefully: every write flushed) and starts it again
  // on the same data, the clock where it was. Sockets are closed.
  void restart();

  const std::string& data_dir() const;
  // The loopback port of the runtime's HTTP listener, for clients of one's own.
  int port();

 private:
  template <typename>
  friend class TestObject;
  struct Impl;
  Response fetch_object(const std::string& binding, const ObjectId& id, Request request);
  void with_storage(const std::string& binding, const ObjectId& id,
                    const std::function<void(Storage&)>& fn);
  bool evict(const std::string& binding, const ObjectId& id);
  bool in_memory(const std::string& binding, const ObjectId& id);
  void reset(const std::string& binding, const ObjectId& id, const std::string& why);
  std::unique_ptr<Impl> impl_;
};

template <typename T>
class TestObject {
 public:
  TestObject(TestRuntime* rt, std::string binding, ObjectId id)
      : rt_(rt), binding_(std::move(binding)), id_(std::move(id)) {}
  const ObjectId& id() const { return id_; }
  const std::string& binding() const { return binding_; }

  // A request straight to the object (no worker); target is what its fetch
  // sees.
  Response fetch(Request request) const { return rt_->fetch_object(binding_, id_, std::move(request)); }
  Response fetch(std::string method, std::string target, std::string body = "") const {
    Request r;
    r.method = std::move(method);
    r.target = std::move(target);
    r.body = std::move(body);
    return fetch(std::move(r));
  }
  // A typed call (T's kMethods), checked at compile time as Stub::call is;
  // throws what the call throws (dobj::Error).
  template <typename C, typename R, typename... P, typename... A>
  R call(Task<R> (C::*fn)(P...), A&&... args) const {
    static_assert(std::is_same_v<T, DurableObject> || std::is_base_of_v<C, T>,
                  "dobj: this object is of another class");
    // The arguments' number and types are checked by Stub::call; they are
    // passed on as the lvalues they are here (this call waits for the end).
    std::optional<std::conditional_t<std::is_void_v<R>, bool, R>> result;
    rt_->run([&](Env& env) -> Task<void> {
      Stub stub = env.ns(binding_).get(id_);
      Task<R> pending = stub.call(fn, args...);
      if constexpr (std::is_void_v<R>) {
        co_await std::move(pending);
        result = true;
      } else {
        result = co_await std::move(pending);
      }
    });
    if constexpr (!std::is_void_v<R>) return std::move(*result);
  }

  // Reads or writes the object's storage directly, between its events and
  // without constructing it. Writes commit (durably) like a turn's; an
  // instance in memory does not see them in state it copied into members.
  void storage(const std::function<void(Storage&)>& fn) const { rt_->with_storage(binding_, id_, fn); }
  template <typename V>
  std::optional<V> get(std::string_view key) const {
    std::optional<V> out;
    storage([&](Storage& s) { out = s.template get<V>(key); });
    return out;
  }
  // The object's alarm, if one is set.
  std::optional<std::chrono::system_clock::time_point> alarm() const {
    std::optional<int64_t> ms;
    storage([&](Storage& s) { ms = s.get_alarm(); });
    if (!ms) return std::nullopt;
    return std::chrono::system_clock::time_point(std::chrono::milliseconds(*ms));
  }

  // Drops the instance from memory as idle eviction would (sockets that
  // hibernate stay open). false if it is busy or holds a socket accepted
  // without hibernation.
  bool evict() const { return rt_->evict(binding_, id_); }
  bool in_memory() const { return rt_->in_memory(binding_, id_); }
  // Resets the object as a failure would: the instance is dropped, and
  // stubs that reached it fail from now on.
  void reset(const std::string& why = "reset by the test") const { rt_->reset(binding_, id_, why); }

 private:
  TestRuntime* rt_;
  std::string binding_;
  ObjectId id_;
};

}  // namespace dobj::testing
