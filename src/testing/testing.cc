// The test kit (include/dobj/testing.h): the real runtime with a fake clock,
// driven from the test's thread. Every wait is bounded by Options::timeout.
#include "dobj/testing.h"

#include <atomic>
#include <future>
#include <thread>
#include <stdexcept>

#include "base/log.h"
#include "ids/id_factory.h"
#include "net/http_server.h"
#include "runtime/api_access.h"
#include "runtime/object_host.h"
#include "runtime/runtime.h"
#include "runtime/time_source.h"
#include "testing/temp_dir.h"
#include "testing/ws_client.h"

namespace dobj::testing {

using internal::Runtime;
using internal::Shard;

struct Socket::Impl {
  test::WsClient client;
  Impl(int port, const std::string& target, std::chrono::milliseconds timeout)
      : client(port, target, timeout) {}
};

Socket::Socket(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Socket::Socket(Socket&&) noexcept = default;
Socket& Socket::operator=(Socket&&) noexcept = default;
Socket::~Socket() = default;
bool Socket::is_open() const { return impl_->client.connected(); }
int Socket::status() const { return impl_->client.upgrade_response().status; }
std::string Socket::refusal() const { return impl_->client.upgrade_response().body; }
bool Socket::send(std::string_view text) { return impl_->client.send_text(std::string(text)); }
bool Socket::send_binary(std::string_view data) {
  return impl_->client.send_binary(std::string(data));
}
std::optional<std::string> Socket::receive(std::chrono::milliseconds timeout) {
  return impl_->client.next_message(timeout);
}
std::pair<int, std::string> Socket::close(int code, std::string_view reason) {
  if (!impl_->client.send_close(code, std::string(reason))) return {0, ""};
  return impl_->client.await_close();
}
std::pair<int, std::string> Socket::wait_closed(std::chrono::milliseconds timeout) {
  return impl_->client.await_close(timeout);
}

struct TestRuntime::Impl {
  explicit Impl(Options o) : options(std::move(o)), time(to_ms(options.start_time)) {
    if (options.keep_data) dir.keep();
    options.server.data_dir = dir.path();
    options.server.listen = "127.0.0.1:0";
    options.server.exit_on_flush_failure = false;
    options.server.evict_after_every_event = options.evict_after_every_event;
  }
  ~Impl() { stop(); }

  static int64_t to_ms(std::chrono::system_clock::time_point t) {
    return std::chrono::duration_cast<std::chrono::milliseconds>(t.time_since_epoch()).count();
  }

  void start() {
    if (runtime) return;
    Result<internal::Secret> secret = internal::load_or_create_secret(dir.path());
    if (!secret) throw std::runtime_error("dobj::testing: " + secret.status().message());
    runtime = std::make_unique<Runtime>(options.server, bindings, worker, *secret, &time);
    runtime->start();
    http = std::make_unique<internal::HttpServer>(*runtime, options.server);
    if (Status st = http->start(); !st) {
      throw std::runtime_error("dobj::testing: cannot listen on loopback: " + st.message());
    }
  }
  void stop() {
    if (http) http->stop(std::chrono::seconds(2));
    if (runtime) runtime->stop(options.timeout);
    http.reset();
    runtime.reset();
  }
  Runtime& rt() {
    start();
    return *runtime;
  }
  const internal::NamespaceImpl* ns(std::string_view binding) {
    const internal::NamespaceImpl* n = rt().find_namespace(binding);
    if (!n) throw Error(Code::kNotFound, "no binding named " + std::string(binding));
    return n;
  }
  // Waits for a future from a shard, at most options.timeout.
  template <typename T>
  T wait(std::future<T> f, std::string_view what) {
    if (f.wait_for(options.timeout) != std::future_status::ready) {
      throw std::runtime_error("dobj::testing: " + std::string(what) + " did not finish within " +
                               std::to_string(options.timeout.count()) + " ms");
    }
    return f.get();
  }
  // Runs fn on the object's shard (any thread but a shard's).
  template <typename F>
  auto on_shard(const ObjectId& id, F fn, std::string_view what) {
    using R = decltype(fn(std::declval<Shard&>()));
    auto p = std::make_shared<std::promise<R>>();
    Shard& shard = rt().shard_for(id);
    shard.post([p, &shard, fn = std::move(fn)]() mutable {
      if constexpr (std::is_void_v<R>) {
        fn(shard);
        p->set_value();
      } else {
        p->set_value(fn(shard));
      }
    });
    return wait(p->get_future(), what);
  }
  // Runs fn in the object's queue, between its events and without building
  // the object (Delivery::admin), and waits until fn replies.
  void between_events(const internal::NamespaceImpl* ns, const ObjectId& id,
                      std::function<void(internal::ObjectHost&, internal::Reply)> fn,
                      std::string_view what) {
    auto p = std::make_shared<std::promise<void>>();
    rt().run_on_object(ns, id, nullptr, std::move(fn), [p](internal::Answer) { p->set_value(); });
    wait(p->get_future(), what);
  }
  Shard& next_shard() {
    Runtime& r = rt();
    return r.shard(next_shard_index++ % r.shard_count());
  }

  Options options;
  test::TempDir dir;
  internal::FakeTime time;
  internal::Bindings bindings;
  Worker worker;
  std::unique_ptr<Runtime> runtime;
  std::unique_ptr<internal::HttpServer> http;
  size_t next_shard_index = 0;
};

TestRuntime::TestRuntime(Options options) : impl_(std::make_unique<Impl>(std::move(options))) {}
TestRuntime::~TestRuntime() = default;

TestRuntime& TestRuntime::bind_factory(std::string binding, ObjectFactory factory,
                                       bool has_alarm_handler, const std::type_info* class_type) {
  if (impl_->runtime) throw std::logic_error("dobj::testing: bind before the first use");
  impl_->bindings[std::move(binding)] =
      internal::Binding(std::move(factory), has_alarm_handler, class_type);
  return *this;
}

TestRuntime& TestRuntime::worker(Worker worker) {
  if (impl_->runtime) throw std::logic_error("dobj::testing: set the worker before the first use");
  impl_->worker = std::move(worker);
  return *this;
}

void TestRuntime::start() { impl_->start(); }

ObjectId TestRuntime::id_from_name(std::string_view binding, std::string_view name) {
  return internal::ApiAccess::ns(impl_->ns(binding)).id_from_name(name);
}

ObjectId TestRuntime::new_unique_id(std::string_view binding) {
  return internal::ApiAccess::ns(impl_->ns(binding)).new_unique_id();
}

Response TestRuntime::fetch(Request request) {
  auto p = std::make_shared<std::promise<Response>>();
  Shard& shard = impl_->next_shard();
  shard.post([&shard, p, request = std::move(request)]() mutable {
    shard.run_worker(std::move(request), [p](internal::Answer a) { p->set_value(std::move(a.response)); });
  });
  return impl_->wait(p->get_future(), "a request through the worker");
}

Response TestRuntime::fetch(std::string method, std::string target, std::string body) {
  Request r;
  r.method = std::move(method);
  r.target = std::move(target);
  r.body = std::move(body);
  return fetch(std::move(r));
}

void TestRuntime::run(std::function<Task<void>(Env&)> body) {
  std::exception_ptr error;
  auto p = std::make_shared<std::promise<void>>();
  Shard& shard = impl_->next_shard();
  // The coroutine below refers to body and error, which outlive it: this
  // function returns only once it has finished (or throws on the timeout,
  // which leaves the runtime unusable anyway).
  shard.post([&shard, &body, &error, p] {
    shard.run_task(
        [&body, &error](Env& env) -> Task<Response> {
          try {
            co_await body(env);
          } catch (...) {
            error = std::current_exception();
          }
          co_return Response{};
        },
        [p](internal::Answer) { p->set_value(); });
  });
  impl_->wait(p->get_future(), "a coroutine run by the test");
  if (error) std::rethrow_exception(error);
}

Socket TestRuntime::connect(std::string target) {
  impl_->start();
  return Socket(std::make_unique<Socket::Impl>(impl_->http->port(), target, impl_->options.timeout));
}

std::chrono::system_clock::time_point TestRuntime::now() const {
  return std::chrono::system_clock::time_point(std::chrono::milliseconds(impl_->time.now_ms()));
}

void TestRuntime::advance(std::chrono::milliseconds by) {
  impl_->start();
  impl_->time.advance(by);
  settle();
}

void TestRuntime::set_time(std::chrono::system_clock::time_point at) {
  impl_->start();
  impl_->time.set(Impl::to_ms(at));
  settle();
}

void TestRuntime::settle() {
  if (!impl_->rt().settle(impl_->options.timeout)) {
    throw std::runtime_error("dobj::testing: objects were still busy after " +
                             std::to_string(impl_->options.timeout.count()) + " ms");
  }
}

uint64_t TestRuntime::constructions(std::string_view binding) {
  const internal::NamespaceImpl* ns = impl_->ns(binding);
  Runtime& rt = impl_->rt();
  uint64_t total = 0;
  for (size_t i = 0; i < rt.shard_count(); ++i) {
    Shard& shard = rt.shard(i);
    total += shard.run_and_wait([&] { return shard.metrics(ns->index()).instances; });
  }
  return total;
}

void TestRuntime::fail_next_commits(int n) { impl_->rt().store_faults().fail_next_commits += n; }
void TestRuntime::fail_next_flush() { impl_->rt().flusher()->faults().fail_next += 1; }
void TestRuntime::exceed_cpu_limit(int n) { impl_->rt().turn_faults().exceed_cpu_limit += n; }

void TestRuntime::restart() {
  impl_->stop();
  impl_->start();
}

const std::string& TestRuntime::data_dir() const { return impl_->dir.path(); }

int TestRuntime::port() {
  impl_->start();
  return impl_->http->port();
}

Response TestRuntime::fetch_object(const std::string& binding, const ObjectId& id,
                                   Request request) {
  const internal::NamespaceImpl* ns = impl_->ns(binding);
  return impl_->wait(impl_->rt().send_to_object(ns, id, std::move(request)), "a request to an object");
}

void TestRuntime::with_storage(const std::string& binding, const ObjectId& id,
                               const std::function<void(Storage&)>& fn) {
  Status status;
  std::exception_ptr error;
  impl_->between_events(impl_->ns(binding), id, [&](internal::ObjectHost& host, internal::Reply reply) {
    host.with_storage(fn, [&, reply = std::move(reply)](Status st, std::exception_ptr e) {
      status = std::move(st);
      error = e;
      reply(Response{});
    });
  }, "a storage access");
  if (error) std::rethrow_exception(error);
  if (!status) throw Error(status);
}

bool TestRuntime::evict(const std::string& binding, const ObjectId& id) {
  const internal::NamespaceImpl* ns = impl_->ns(binding);
  return impl_->on_shard(id, [ns, &id](Shard& s) { return s.evict_now(ns, id); }, "an eviction");
}

bool TestRuntime::in_memory(const std::string& binding, const ObjectId& id) {
  const internal::NamespaceImpl* ns = impl_->ns(binding);
  return impl_->on_shard(id, [ns, &id](Shard& s) { return s.presence(ns, id).resident; },
                         "a look at an object");
}

void TestRuntime::reset(const std::string& binding, const ObjectId& id, const std::string& why) {
  impl_->between_events(impl_->ns(binding), id, [&](internal::ObjectHost& host, internal::Reply reply) {
    host.inject_reset(why);
    reply(Response{});
  }, "a reset");
}

}  // namespace dobj::testing
