// The runtime without HTTP: requests go straight to objects on their shards.
#include "runtime/runtime.h"
#include <openssl/ssl.h>

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <atomic>
#include <future>
#include <mutex>
#include <nlohmann/json.hpp>
#include <set>

#include "dobj/codec.h"
#include "dobj/fetch.h"
#include "dobj/timer.h"
#include "support/runtime_harness.h"
#include "support/server_process.h"
#include "support/tls_listener.h"

namespace dobj::internal {
namespace {

using namespace std::chrono_literals;

std::atomic<int> g_constructions{0};

// Counts constructions; answers with the in-memory request count and the
// stored counter. ?sleep=MS awaits a timer first; ?throw=1 throws.
class Probe : public DurableObject {
 public:
  Probe(State& s, Env& e) : DurableObject(s, e) { ++g_constructions; }
  Task<Response> fetch(Request req) override {
    ++requests_;
    if (auto ms = req.query("sleep")) co_await sleep_for(std::chrono::milliseconds(std::stoi(*ms)));
    if (req.query("throw")) throw std::runtime_error("handler failed");
    if (req.query("alarm")) storage().set_alarm(1);
    int64_t n = storage().get<int64_t>("n").value_or(0);
    if (req.method == "POST") storage().put("n", ++n);
    nlohmann::json j = {{"n", n}, {"requests", requests_}};
    co_return Response::json(j.dump());
  }

 private:
  int requests_ = 0;
};

// Its constructor sets up state asynchronously under block_concurrency_while.
class SlowStart : public DurableObject {
 public:
  SlowStart(State& s, Env& e) : DurableObject(s, e) {
    (void)state().block_concurrency_while([this]() -> Task<void> {
      co_await sleep_for(100ms);
      ready_ = true;
    });
  }
  Task<Response> fetch(Request) override {
    co_return Response::text(ready_ ? "ready" : "not ready");
  }

 private:
  bool ready_ = false;
};

// Writes, awaits storage().sync(), then answers whether it came back.
class Syncer : public DurableObject {
 public:
  using DurableObject::DurableObject;
  Task<Response> fetch(Request req) override {
    if (req.method == "GET") co_return Response::text("read");
    storage().put("x", int64_t{1});
    co_await storage().sync();
    co_return Response::text("synced");
  }
};

// Calls another object (or itself back) through stubs:
// /?call=NAME asks NAME's /?back=MY_NAME, which calls back into this object.
class Caller : public DurableObject {
 public:
  using DurableObject::DurableObject;
  Task<Response> fetch(Request req) override {
    Namespace ns = env().ns("CALLER");
    if (auto target = req.query("call")) {
      Request r;
      r.target = "/?back=" + *state().id().name();
      Response got = co_await ns.get(ns.id_from_name(*target)).fetch(std::move(r));
      co_return Response::text("via " + *target + ": " + got.body);
    }
    if (auto back = req.query("back")) {
      Request r;
      r.target = "/?hello=1";
      Response got = co_await ns.get(ns.id_from_name(*back)).fetch(std::move(r));
      co_return Response::text("back " + got.body);
    }
    if (auto target = req.query("proxy")) {
      // Passes on what another object answered, headers and all.
      Request r;
      r.target = "/?forge=1";
      Response got = co_await ns.get(ns.id_from_name(*target)).fetch(std::move(r));
      co_return Response::text("epoch header " + got.header("x-dobj-instance-epoch").value_or("-"));
    }
    if (req.query("forge")) {
      // A backend's answer with headers that once steered the runtime.
      Response r = Response::text("forged");
      r.set_header("x-dobj-instance-epoch", "x");
      r.set_header("x-dobj-websocket", "0:1");
      co_return r;
    }
    if (req.query("fanout")) {
      std::vector<Task<Response>> calls;
      for (int i = 0; i < 10; ++i) {
        Request r;
        r.target = "/?hello=1";
        calls.push_back(ns.get(ns.id_from_name("leaf" + std::to_string(i))).fetch(std::move(r)));
      }
      std::string all;
      for (const auto& r : co_await when_all(std::move(calls))) all += r.body;
      co_return Response::text(all);
    }
    co_return Response::text(*state().id().name());
  }
};

// Typed methods, and a worker-like caller that reports what a call gave.
class Adder : public DurableObject {
 public:
  Adder(State& s, Env& e) : DurableObject(s, e) {
    method("add", &Adder::add);
    method("append", &Adder::append);
    method("log", &Adder::log);
    method("fail", &Adder::fail);
    method("slow", &Adder::slow);
  }
  Task<int64_t> slow() {
    co_await sleep_for(300ms);
    co_return 1;
  }
  Task<int64_t> add(int64_t a, int64_t b) { co_return a + b; }
  Task<void> append(std::string s) {
    log_.push_back(std::move(s));
    co_return;
  }
  Task<std::vector<std::string>> log() { co_return log_; }
  Task<int64_t> fail() {
    throw Error(Code::kConflict, "not today");
    co_return 0;
  }

  // /?t=... runs one scenario against the object named "target".
  Task<Response> fetch(Request req) override {
    Namespace ns = env().ns("ADDER");
    Stub target = ns.get(ns.id_from_name("target-" + *state().id().name()));
    std::string t = *req.query("t");
    try {
      if (t == "add")
        co_return Response::text(std::to_string(co_await target.call<int64_t>("add", 2, 40)));
      if (t == "order") {
        std::vector<Task<Json>> calls;
        for (int i = 0; i < 50; ++i)
          calls.push_back(target.call_json("append", Json::array({std::to_string(i)})));
        (void)co_await when_all(std::move(calls));
        auto log = co_await target.call<std::vector<std::string>>("log");
        std::string joined;
        for (auto& x : log) joined += x + ",";
        co_return Response::text(joined);
      }
      if (t == "slowcall")
        co_return Response::text(std::to_string(co_await target.call<int64_t>("slow")));
      if (t == "unknown") co_await target.call<int64_t>("nope");
      if (t == "badarg") co_await target.call<int64_t>("add", "two", 40);
      if (t == "badresult") co_await target.call<std::string>("add", 1, 2);
      if (t == "throws") co_await target.call<int64_t>("fail");
    } catch (const Error& e) {
      co_return Response::text(std::string(code_name(e.code())) + ": " + e.what());
    }
    co_return Response::text("no error");
  }

 private:
  std::vector<std::string> log_;
};

// Ways to get reset: abort, burning CPU, a block_concurrency_while that hangs.
class Resetter : public DurableObject {
 public:
  using DurableObject::DurableObject;
  Task<Response> fetch(Request req) override {
    ++requests_;
    if (auto reason = req.query("abort")) {
      storage().put("x", int64_t{99});  // discarded with the turn
      state().abort(*reason);
    }
    if (auto ms = req.query("spin")) {
      timespec ts;
      clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
      double end = ts.tv_sec + ts.tv_nsec / 1e9 + std::stoi(*ms) / 1e3;
      volatile uint64_t sink = 0;
      do {
        for (int i = 0; i < 10000; ++i) sink = sink + i;
        clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
      } while (ts.tv_sec + ts.tv_nsec / 1e9 < end);
    }
    if (auto ms = req.query("hold")) {  // the thread waits, using no CPU
      std::this_thread::sleep_for(std::chrono::milliseconds(std::stoi(*ms)));
    }
    if (auto ms = req.query("block")) {
      auto d = std::chrono::milliseconds(std::stoi(*ms));
      co_await state().block_concurrency_while([d]() -> Task<void> { co_await sleep_for(d); });
    }
    co_return Response::text(std::to_string(requests_) + " " +
                             std::to_string(storage().get<int64_t>("x").value_or(0)));
  }

 private:
  int requests_ = 0;
};

// Keeps one stub to a Resetter across requests, to see what a reset does to it.
class Holder : public DurableObject {
 public:
  using DurableObject::DurableObject;
  Task<Response> fetch(Request req) override {
    Namespace ns = env().ns("RESETTER");
    std::string t = *req.query("t");
    if (!held_ || t == "fresh") held_ = ns.get(ns.id_from_name("held-target"));
    Request r;
    if (t == "abort") r.target = "/?abort=asked";
    Response got = co_await held_->fetch(std::move(r));
    co_return Response::text(std::to_string(got.status) + " " + got.body);
  }

 private:
  std::optional<Stub> held_;
};

// Fetches ?url= (after writing, when ?write=1) and reports what came back.
class Fetcher : public DurableObject {
 public:
  using DurableObject::DurableObject;
  Task<Response> fetch(Request req) override {
    if (req.query("write")) storage().put("x", int64_t{1});
    Request out;
    out.method = "POST";
    out.body = "ping";
    FetchOptions options;
    options.timeout = 300ms;
    if (auto ca = req.query("ca")) options.ca_file = *ca;
    try {
      Response r = co_await dobj::fetch(*req.query("url"), std::move(out), options);
      co_return Response::text(std::to_string(r.status) + " " + r.body);
    } catch (const Error& e) {
      co_return Response::text(std::string(code_name(e.code())) + ": " + e.what());
    }
  }
};

// A listening socket on a free loopback port.
int listen_on_loopback(int* port) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a);
  socklen_t len = sizeof a;
  getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len);
  *port = ntohs(a.sin_port);
  listen(fd, 4);
  return fd;
}

// A one-connection HTTP server on loopback: records the request and when it
// arrived, answers 201 "pong" (or never answers, when mute).
class Upstream {
 public:
  explicit Upstream(bool mute = false) : mute_(mute) {
    fd_ = listen_on_loopback(&port_);
    thread_ = std::thread([this] {
      int c = accept(fd_, nullptr, nullptr);
      if (c < 0) return;
      char buf[4096];
      while (request_.find("ping") == std::string::npos) {
        ssize_t n = recv(c, buf, sizeof buf, 0);
        if (n <= 0) break;
        request_.append(buf, static_cast<size_t>(n));
      }
      arrived_ = std::chrono::steady_clock::now();
      if (!mute_) {
        std::string resp = "HTTP/1.1 201 Created\r\nContent-Length: 4\r\n\r\npong";
        send(c, resp.data(), resp.size(), 0);
      } else {
        std::this_thread::sleep_for(600ms);
      }
      close(c);
    });
  }
  ~Upstream() {
    shutdown(fd_, SHUT_RDWR);
    close(fd_);
    thread_.join();
  }
  std::string url() const { return "http://127.0.0.1:" + std::to_string(port_) + "/hook?a=1"; }
  const std::string& request() const { return request_; }
  std::chrono::steady_clock::time_point arrived() const { return arrived_; }

 private:
  bool mute_;
  int fd_;
  int port_;
  std::thread thread_;
  std::string request_;
  std::chrono::steady_clock::time_point arrived_;
};

// Records every alarm() run; ?set=MS sets the alarm, ?fail=N makes the next N
// runs throw, ?replace=1 makes the next run set a new alarm and then throw.
// Its alarm (at ?at=) holds its shard for ?ms= of CPU.
class BusyAlarm : public DurableObject {
 public:
  using DurableObject::DurableObject;
  Task<Response> fetch(Request req) override {
    storage().put("ms", int64_t{std::stoi(*req.query("ms"))});
    storage().set_alarm(std::stoll(*req.query("at")));
    co_return Response::text("ok");
  }
  Task<void> alarm(AlarmInfo) override {
    auto until = std::chrono::steady_clock::now() +
                 std::chrono::milliseconds(storage().get<int64_t>("ms").value_or(0));
    while (std::chrono::steady_clock::now() < until) {
    }
    co_return;
  }
};

class Alarmed : public DurableObject {
 public:
  using DurableObject::DurableObject;
  Task<Response> fetch(Request req) override {
    if (auto f = req.query("fail")) storage().put("fail", int64_t{std::stoi(*f)});
    if (req.query("replace")) storage().put("replace", int64_t{1});
    if (auto c = req.query("chain")) storage().put("chain", int64_t{std::stoi(*c)});
    if (auto a = req.query("abort")) storage().put("abort", int64_t{std::stoi(*a)});
    if (auto ms = req.query("set")) storage().set_alarm(state().now_ms() + std::stoi(*ms));
    if (auto ms = req.query("in")) storage().set_alarm(std::chrono::milliseconds(std::stoi(*ms)));
    if (req.query("zero")) storage().set_alarm(0);
    if (req.query("txn")) {
      storage().transaction([&](Transaction& t) {
        storage().set_alarm(state().now_ms() + 100000);
        t.rollback();
      });
    }
    if (req.query("deleteall")) {
      storage().set_alarm(state().now_ms() + 100000);
      storage().delete_all();
    }
    auto alarm = storage().get_alarm();
    nlohmann::json j = {{"runs", storage().get<Json>("runs").value_or(Json::array())},
                        {"alarm", alarm ? Json(*alarm) : Json(nullptr)}};
    co_return Response::json(j.dump());
  }
  Task<void> alarm(AlarmInfo info) override {
    auto inside = storage().get_alarm();
    Json runs = storage().get<Json>("runs").value_or(Json::array());
    runs.push_back({{"retry", info.retry_count},
                    {"isRetry", info.is_retry},
                    {"alarmInside", inside ? Json(*inside) : Json(nullptr)}});
    storage().put("runs", runs);
    if (storage().get<int64_t>("replace").value_or(0)) {
      storage().put("replace", int64_t{0});
      storage().set_alarm(state().now_ms() + 30);
      throw std::runtime_error("fails, but set a new alarm first");
    }
    if (auto mode = storage().get<int64_t>("abort"); mode && *mode > 0) {
      storage().put("abort", int64_t{0});  // discarded by the abort: the next run sees it again
      state().abort("aborting inside alarm()", State::AbortOptions{*mode == 1});
    }
    if (int64_t chain = storage().get<int64_t>("chain").value_or(0); chain > 0) {
      // Re-arm for right now: often the very millisecond this alarm was due.
      storage().put("chain", chain - 1);
      storage().set_alarm(state().now_ms());
    }
    if (int64_t fail = storage().get<int64_t>("fail").value_or(0); fail > 0) {
      storage().put("fail", fail - 1);
      throw std::runtime_error("alarm fails on purpose");
    }
    co_return;
  }
};

// Its first instance's set-up fails; later instances set up fine.
std::atomic<int> g_failing_setups{0};
class FailingSetUp : public DurableObject {
 public:
  FailingSetUp(State& s, Env& e) : DurableObject(s, e) {
    bool fail = g_failing_setups.fetch_add(1) == 0;
    (void)state().block_concurrency_while([fail]() -> Task<void> {
      co_await sleep_for(10ms);
      if (fail) throw std::runtime_error("set-up failed");
    });
  }
  Task<Response> fetch(Request) override { co_return Response::text("up"); }
};

// Its constructor starts block_concurrency_while, whose callback uses the
// object, and then throws: the object never existed.
class ThrowsAfterBlocking : public DurableObject {
 public:
  ThrowsAfterBlocking(State& s, Env& e) : DurableObject(s, e) {
    (void)state().block_concurrency_while([this]() -> Task<void> {
      co_await sleep_for(20ms);
      ready_ = true;  // would write into the freed object
      storage().put("ready", int64_t{1});
    });
    throw std::runtime_error("constructor failed after blocking");
  }
  Task<Response> fetch(Request) override { co_return Response::text(ready_ ? "ready" : "no"); }

 private:
  bool ready_ = false;
};

internal::Bindings all_bindings() {
  internal::Bindings bindings;
  bindings["PROBE"] = Binding([](State& s, Env& e) { return std::make_unique<Probe>(s, e); },
                              /*has_alarm=*/false, nullptr);
  bindings["SLOW_START"] = [](State& s, Env& e) { return std::make_unique<SlowStart>(s, e); };
  bindings["SYNCER"] = [](State& s, Env& e) { return std::make_unique<Syncer>(s, e); };
  bindings["CALLER"] = [](State& s, Env& e) { return std::make_unique<Caller>(s, e); };
  bindings["ADDER"] = [](State& s, Env& e) { return std::make_unique<Adder>(s, e); };
  bindings["RESETTER"] = [](State& s, Env& e) { return std::make_unique<Resetter>(s, e); };
  bindings["HOLDER"] = [](State& s, Env& e) { return std::make_unique<Holder>(s, e); };
  bindings["FETCHER"] = [](State& s, Env& e) { return std::make_unique<Fetcher>(s, e); };
  bindings["ALARMED"] = [](State& s, Env& e) { return std::make_unique<Alarmed>(s, e); };
  bindings["BUSY_ALARM"] = [](State& s, Env& e) { return std::make_unique<BusyAlarm>(s, e); };
  bindings["THROWS_AFTER_BLOCKING"] = [](State& s, Env& e) {
    return std::make_unique<ThrowsAfterBlocking>(s, e);
  };
  bindings["FAILING_SETUP"] = [](State& s, Env& e) { return std::make_unique<FailingSetUp>(s, e); };
  return bindings;
}

// The runtime with every class above bound; see TheProcessExitsWhenAFlushFails
// for the node's default on a failed flush.
class Harness : public test::RuntimeHarness {
 public:
  explicit Harness(ServerOptions o = {}, TimeSource* time = nullptr)
      : RuntimeHarness(all_bindings(), o, time) {}
};

TEST(Runtime, ConcurrentIncrementsOfOneObjectAreSerialized) {
  Harness h;
  std::vector<std::future<Response>> futures;
  for (int i = 0; i < 100; ++i) futures.push_back(h.send("PROBE", "c", "POST"));
  std::set<int64_t> answers;
  for (auto& f : futures) answers.insert(nlohmann::json::parse(f.get().body)["n"].get<int64_t>());
  EXPECT_EQ(answers.size(), 100u);
  EXPECT_EQ(*answers.begin(), 1);
  EXPECT_EQ(*answers.rbegin(), 100);
}

TEST(Runtime, AnotherEventRunsWhileAHandlerAwaitsATimer) {
  Harness h;
  auto slow = h.send("PROBE", "i", "GET", "/?sleep=300");
  auto fast = h.send("PROBE", "i", "GET", "/");
  EXPECT_EQ(fast.wait_for(250ms), std::future_status::ready);
  EXPECT_EQ(slow.wait_for(0ms), std::future_status::timeout);
  EXPECT_EQ(nlohmann::json::parse(slow.get().body)["requests"], 2);
}

// A handler's unexpected exception is a bug: the operator reads it in the log
// (object, type, message), the client gets a generic 500 whose incident
// number matches the log line, and never the exception's text.
// A stop waits for busy objects up to its timeout and says whether they all
// finished: the server's last log line depends on it.
TEST(Runtime, AStopSaysWhetherItTimedOut) {
  Harness busy;
  // 300 ms in a call; delivered before the stop looks (one shard, in order).
  auto slow = busy.send("ADDER", "s", "GET", "/?t=slowcall");
  EXPECT_FALSE(busy.stop(20ms));
  Harness idle;
  EXPECT_EQ(idle.send("ADDER", "a", "GET", "/?t=add").get().body, "42");
  EXPECT_TRUE(idle.stop(5s));
}

TEST(Runtime, AnExceptionFailsTheEventButDoesNotResetTheObject) {
  Harness h;
  int before = g_constructions;
  EXPECT_EQ(h.json("PROBE", "t", "GET")["requests"], 1);
  ::testing::internal::CaptureStderr();
  Response r = h.send("PROBE", "t", "GET", "/?throw=1").get();
  std::string log = ::testing::internal::GetCapturedStderr();
  EXPECT_EQ(r.status, 500);
  auto body = nlohmann::json::parse(r.body);
  EXPECT_EQ(body["error"], "internal error");
  EXPECT_EQ(r.body.find("handler failed"), std::string::npos);
  ASSERT_TRUE(body["incident"].is_number());
  std::string incident = "(incident " + std::to_string(body["incident"].get<int>()) + ")";
  EXPECT_NE(log.find("PROBE " + h.runtime().find_namespace("PROBE")->ids().from_name("t")
                                    .to_string() + " (\"t\"): fetch: unhandled exception "
                     "std::runtime_error: handler failed " + incident),
            std::string::npos)
      << log;
  EXPECT_EQ(h.json("PROBE", "t", "GET")["requests"], 3);  // same instance
  EXPECT_EQ(g_constructions - before, 1);
}

TEST(Runtime, ExposedExceptionMessagesReachTheClientForDevelopment) {
  ServerOptions o;
  o.expose_exception_messages = true;
  Harness h(o);
  Response r = h.send("PROBE", "t", "GET", "/?throw=1").get();
  EXPECT_EQ(r.status, 500);
  EXPECT_EQ(nlohmann::json::parse(r.body)["error"], "internal error: handler failed");
}

TEST(Runtime, AFailedCommitSendsNothingAndResetsTheObject) {
  Harness h;
  EXPECT_EQ(h.json("PROBE", "f", "POST")["n"], 1);
  int before = g_constructions;
  h.runtime().store_faults().fail_next_commits = 1;
  Response r = h.send("PROBE", "f", "POST").get();
  EXPECT_EQ(r.status, 500);
  auto body = nlohmann::json::parse(r.body);
  EXPECT_EQ(body["reset"], true);
  EXPECT_NE(body["error"].get<std::string>().find("injected commit failure"), std::string::npos);
  auto after = h.json("PROBE", "f", "GET");
  EXPECT_EQ(after["n"], 1);         // the failed write is not there
  EXPECT_EQ(after["requests"], 1);  // a fresh instance
  EXPECT_EQ(g_constructions - before, 1);
}

TEST(Runtime, AFailedFlushFailsTheHeldResponseWithAReset) {
  Harness h;
  h.runtime().flusher()->faults().fail_next = 1;
  Response r = h.send("PROBE", "flush", "POST").get();
  EXPECT_EQ(r.status, 500);
  EXPECT_EQ(nlohmann::json::parse(r.body)["reset"], true);
  // The rebuilt object would read the write that was never made durable, so
  // its answers are held and fail too.
  Response again = h.send("PROBE", "flush", "GET").get();
  EXPECT_EQ(again.status, 500);
  EXPECT_EQ(nlohmann::json::parse(again.body)["reset"], true);
}

TEST(Runtime, SyncWaitsForTheFlushOfEarlierWrites) {
  Harness h;
  h.runtime().flusher()->faults().delay_ms = 150;
  auto start = std::chrono::steady_clock::now();
  Response r = h.send("SYNCER", "s", "POST").get();
  EXPECT_EQ(r.body, "synced");
  EXPECT_GE(std::chrono::steady_clock::now() - start, 140ms);
}

TEST(Runtime, SyncReportsAFailedFlush) {
  Harness h;
  h.runtime().flusher()->faults().fail_next = 1;
  Response r = h.send("SYNCER", "s", "POST").get();
  EXPECT_EQ(r.status, 500);
  EXPECT_EQ(nlohmann::json::parse(r.body)["reset"], true);
}

TEST(Runtime, AfterAFailedFlushNoWriteIsAcknowledgedAndReadsGoOn) {
  Harness h;
  EXPECT_EQ(h.json("PROBE", "before", "POST")["n"], 1);
  h.runtime().flusher()->faults().fail_next = 1;
  EXPECT_EQ(h.send("SYNCER", "s", "POST").get().status, 500);
  // The next flush would succeed, but what the failed one covered may be
  // gone: no later write of any object is acknowledged.
  for (const char* name : {"s", "t"}) {
    Response r = h.send("SYNCER", name, "POST").get();
    EXPECT_NE(r.status, 200) << r.body;
    EXPECT_NE(r.body.find("storage flush failed"), std::string::npos) << r.body;
  }
  // An object that wrote nothing since is still read.
  EXPECT_EQ(h.json("PROBE", "before", "GET")["n"], 1);
  Response w = h.send("PROBE", "before", "POST").get();
  EXPECT_NE(w.status, 200) << w.body;
}

// Starts a node with the default options, makes its first flush fail and
// sends a write; returns only if the process did not exit.
void write_with_a_failing_flush(const std::string& data_dir) {
  ServerOptions o;  // exit_on_flush_failure: true by default
  o.data_dir = data_dir;
  o.shards = 1;
  internal::Bindings bindings;
  bindings["SYNCER"] = [](State& s, Env& e) { return std::make_unique<Syncer>(s, e); };
  Runtime runtime(o, bindings, nullptr, Secret{});
  runtime.start();
  runtime.flusher()->faults().fail_next = 1;
  const NamespaceImpl* ns = runtime.find_namespace("SYNCER");
  Request req;
  req.method = "POST";
  Response r = runtime.send_to_object(ns, ns->ids().from_name("x"), std::move(req)).get();
  std::fprintf(stderr, "answered %d\n", r.status);
}

TEST(RuntimeDeathTest, TheProcessExitsWhenAFlushFails) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  test::TempDir dir;
  EXPECT_EXIT(write_with_a_failing_flush(dir.path()), ::testing::ExitedWithCode(kExitFlushFailed),
              "storage flush failed.*exiting with status 74");
}

TEST(Runtime, ACallFromAToBThatCallsBackIntoAWorks) {
  Harness h;
  auto r = h.send("CALLER", "a", "GET", "/?call=b");
  ASSERT_EQ(r.wait_for(5s), std::future_status::ready) << "deadlock";
  EXPECT_EQ(r.get().body, "via b: back a");
}

TEST(Runtime, AnObjectsOwnHeadersPassThroughStubsAndSteerNothing) {
  Harness h;
  for (int i = 0; i < 3; ++i) {
    auto r = h.send("CALLER", "proxy", "GET", "/?proxy=forger");
    ASSERT_EQ(r.wait_for(5s), std::future_status::ready);
    EXPECT_EQ(r.get().body, "epoch header x");
  }
  EXPECT_EQ(h.send("CALLER", "other", "GET", "/?call=b").get().body, "via b: back other");
}

TEST(Runtime, ATaskThatThrowsOnAShardIsSkippedAndTheShardGoesOn) {
  Harness h;
  for (size_t i = 0; i < h.runtime().shard_count(); ++i) {
    h.runtime().shard(i).post([] { throw std::runtime_error("a bug in a posted task"); });
  }
  for (const char* name : {"a", "b", "c", "d"}) {
    auto r = h.send("PROBE", name, "POST");
    ASSERT_EQ(r.wait_for(5s), std::future_status::ready) << "a shard stopped";
    EXPECT_EQ(r.get().status, 200);
  }
}

TEST(Runtime, AConstructorThatThrowsAfterBlockingLeavesNothingRunning) {
  Harness h;
  for (int i = 0; i < 3; ++i) {
    Response r = h.send("THROWS_AFTER_BLOCKING", "t", "GET").get();
    EXPECT_EQ(r.status, 500);
    // The constructor's own text is the operator's (in the log), not the client's.
    EXPECT_NE(r.body.find("the object's constructor threw (incident "), std::string::npos) << r.body;
    EXPECT_EQ(r.body.find("constructor failed after blocking"), std::string::npos) << r.body;
    // Long enough for the callback's timer and the block's own limit to come due.
    std::this_thread::sleep_for(60ms);
  }
  // The shard goes on (before the fix, the callback's timer resumed into the
  // freed object: a crash, or an ASan report).
  EXPECT_EQ(h.json("PROBE", "after", "POST")["n"], 1);
}

TEST(Runtime, AContinuationOfAWorkerRunThatIsGoneIsDropped) {
  // After a stop that timed out, a worker run's frames are freed while an
  // object's late answer may still come: it must find the run gone.
  Harness h;
  Shard& shard = h.runtime().shard(0);
  bool gone_is_alive = true, plain_is_alive = false;
  shard.run_and_wait([&] {
    gone_is_alive = shard.alive(ResumeTarget{&shard, nullptr, ObjectId(), 424242});
    plain_is_alive = shard.alive(ResumeTarget{&shard, nullptr, ObjectId(), 0});
    return true;
  });
  EXPECT_FALSE(gone_is_alive);
  EXPECT_TRUE(plain_is_alive);
}

TEST(Runtime, WhenAllAsksManyObjectsInParallel) {
  Harness h;
  EXPECT_EQ(h.send("CALLER", "root", "GET", "/?fanout=1").get().body,
            "leaf0leaf1leaf2leaf3leaf4leaf5leaf6leaf7leaf8leaf9");
}

TEST(TypedCalls, ArgumentsAndResultsTravelTyped) {
  Harness h;
  EXPECT_EQ(h.send("ADDER", "a", "GET", "/?t=add").get().body, "42");
}

TEST(TypedCalls, CallsThroughOneStubArriveInOrder) {
  Harness h;
  std::string want;
  for (int i = 0; i < 50; ++i) want += std::to_string(i) + ",";
  EXPECT_EQ(h.send("ADDER", "o", "GET", "/?t=order").get().body, want);
}

TEST(TypedCalls, ErrorsComeBackAsCodesTheCallerCanActOn) {
  Harness h;
  EXPECT_EQ(h.send("ADDER", "e", "GET", "/?t=unknown").get().body,
            "not_found: the object has no method named nope");
  EXPECT_EQ(
      h.send("ADDER", "e", "GET", "/?t=badarg").get().body.rfind("invalid_argument: argument 1", 0),
      0u);
  EXPECT_EQ(h.send("ADDER", "e", "GET", "/?t=badresult")
                .get()
                .body.rfind("invalid_argument: the call's result", 0),
            0u);
  EXPECT_EQ(h.send("ADDER", "e", "GET", "/?t=throws").get().body, "conflict: not today");
}

TEST(Gates, AnotherEventRunsWhileAHandlerAwaitsACall) {
  Harness h;
  // One object, so one shard: the slow call is delivered first.
  auto slow = h.send("ADDER", "i", "GET", "/?t=slowcall");
  auto fast = h.send("ADDER", "i", "GET", "/?t=add");
  EXPECT_EQ(fast.wait_for(200ms), std::future_status::ready);
  EXPECT_EQ(slow.wait_for(0ms), std::future_status::timeout);
  EXPECT_EQ(slow.get().body, "1");
}

TEST(Gates, NoEventRunsWhileAStorageSyncIsInFlight) {
  Harness h;
  h.runtime().flusher()->faults().delay_ms = 250;
  auto writer = h.send("SYNCER", "g", "POST");  // delivered first: one object, one shard
  auto reader = h.send("SYNCER", "g", "GET");
  EXPECT_EQ(reader.wait_for(120ms), std::future_status::timeout);  // held by the input gate
  EXPECT_EQ(writer.get().body, "synced");
  EXPECT_EQ(reader.get().body, "read");
}

TEST(Resets, AbortResetsTheObjectDiscardsTheTurnAndSaysWhy) {
  Harness h;
  EXPECT_EQ(h.send("RESETTER", "a", "GET").get().body, "1 0");
  Response r = h.send("RESETTER", "a", "GET", "/?abort=bad%20state").get();
  EXPECT_EQ(r.status, 500);
  auto body = nlohmann::json::parse(r.body);
  EXPECT_EQ(body["reset"], true);
  EXPECT_EQ(body["error"], "the object aborted: bad state");
  EXPECT_EQ(h.send("RESETTER", "a", "GET").get().body, "1 0");  // new instance, nothing written
}

TEST(Resets, ATurnOverTheCpuLimitResetsTheObject) {
  ServerOptions o;
  o.cpu_limit = 50ms;
  Harness h(o);
  Response r = h.send("RESETTER", "c", "GET", "/?spin=150").get();
  EXPECT_EQ(r.status, 500);
  auto body = nlohmann::json::parse(r.body);
  EXPECT_EQ(body["reset"], true);
  EXPECT_NE(body["error"].get<std::string>().find("ms of CPU; the limit is 50 ms"),
            std::string::npos);
  EXPECT_EQ(h.send("RESETTER", "c", "GET", "/?spin=5").get().body, "1 0");
}

// The limit is on CPU, not on time: a turn that waits past it is not reset,
// nor is one that follows other work closely.
TEST(Resets, ATurnThatWaitsWithoutUsingCpuIsNotReset) {
  ServerOptions o;
  o.cpu_limit = 50ms;
  Harness h(o);
  auto spun = h.send("RESETTER", "w", "GET", "/?spin=40");
  Response r = h.send("RESETTER", "w", "GET", "/?hold=120").get();
  EXPECT_EQ(spun.get().status, 200);
  EXPECT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(r.body, "2 0");
}

TEST(Resets, BlockConcurrencyWhilePastItsLimitResetsTheObject) {
  ServerOptions o;
  o.block_concurrency_timeout = 100ms;
  Harness h(o);
  Response r = h.send("RESETTER", "b", "GET", "/?block=2000").get();
  EXPECT_EQ(r.status, 500);
  EXPECT_NE(r.body.find("ran past its limit of 100 ms"), std::string::npos) << r.body;
  EXPECT_EQ(h.send("RESETTER", "b", "GET", "/?block=10").get().body, "1 0");
}

TEST(Resets, AThrowingBlockConcurrencyWhileResetsTheObject) {
  Harness h;
  Response first = h.send("FAILING_SETUP", "s", "GET").get();
  EXPECT_EQ(first.status, 500);
  auto body = nlohmann::json::parse(first.body);
  EXPECT_EQ(body["reset"], true);
  // What the callback threw is logged with an incident number; the client
  // gets the number, not the text.
  std::string error = body["error"].get<std::string>();
  EXPECT_NE(error.find("block_concurrency_while callback threw (incident "), std::string::npos)
      << error;
  EXPECT_EQ(error.find("set-up failed"), std::string::npos) << error;
  EXPECT_EQ(h.send("FAILING_SETUP", "s", "GET").get().body, "up");  // a new instance
}

TEST(Resets, AStubToAResetObjectKeepsFailingAndANewStubReachesTheNewInstance) {
  Harness h;
  EXPECT_EQ(h.send("HOLDER", "h", "GET", "/?t=first").get().body, "200 1 0");
  EXPECT_EQ(h.send("HOLDER", "h", "GET", "/?t=abort").get().body.rfind("500 ", 0), 0u);
  std::string again = h.send("HOLDER", "h", "GET", "/?t=again").get().body;
  EXPECT_EQ(again.rfind("500 ", 0), 0u);
  EXPECT_NE(again.find("get a new stub"), std::string::npos) << again;
  EXPECT_EQ(h.send("HOLDER", "h", "GET", "/?t=fresh").get().body, "200 1 0");
}

TEST(OutgoingFetch, SendsTheRequestAndReturnsTheResponse) {
  Harness h;
  Upstream up;
  EXPECT_EQ(h.send("FETCHER", "f", "GET", "/?url=" + url_encode(up.url())).get().body, "201 pong");
  EXPECT_EQ(up.request().rfind("POST /hook?a=1 HTTP/1.1\r\n", 0), 0u) << up.request();
  EXPECT_NE(up.request().find("\r\n\r\nping"), std::string::npos);
}

TEST(OutgoingFetch, ARequestAfterAWriteLeavesOnlyOnceTheWriteIsDurable) {
  Harness h;
  h.runtime().flusher()->faults().delay_ms = 200;
  Upstream up;
  auto sent = std::chrono::steady_clock::now();
  EXPECT_EQ(h.send("FETCHER", "g", "GET", "/?write=1&url=" + url_encode(up.url())).get().body,
            "201 pong");
  EXPECT_GE(up.arrived() - sent, 190ms);
}

TEST(OutgoingFetch, FailuresAreErrorsThatSayWhat) {
  Harness h;
  std::string refused =
      h.send("FETCHER", "e", "GET", "/?url=" + url_encode("http://127.0.0.1:1/x")).get().body;
  EXPECT_EQ(refused.rfind("unavailable: fetch http://127.0.0.1:1/x: connect failed", 0), 0u)
      << refused;
  Upstream mute(/*mute=*/true);
  std::string slow = h.send("FETCHER", "e", "GET", "/?url=" + url_encode(mute.url())).get().body;
  EXPECT_NE(slow.find("timed out after 300 ms"), std::string::npos) << slow;
  std::string bad =
      h.send("FETCHER", "e", "GET", "/?url=" + url_encode("ftp://example.invalid/")).get().body;
  EXPECT_EQ(bad.rfind("invalid_argument: fetch: only http:// and https://", 0), 0u) << bad;
}

// An HTTPS server on loopback with a self-signed certificate for
// "localhost": answers 200 "secure" and keeps the request.
class TlsUpstream {
 public:
  explicit TlsUpstream(const std::string& dir)
      : listener_(dir, [this](SSL* ssl) {
          char buf[4096];
          std::string got;
          while (got.find("\r\n\r\n") == std::string::npos) {
            int n = SSL_read(ssl, buf, sizeof buf);
            if (n <= 0) break;
            got.append(buf, static_cast<size_t>(n));
          }
          {
            std::lock_guard lock(mu_);
            request_ = got;
          }
          std::string resp = "HTTP/1.1 200 OK\r\nContent-Length: 6\r\n\r\nsecure";
          SSL_write(ssl, resp.data(), static_cast<int>(resp.size()));
        }) {}
  bool made() const { return listener_.made(); }
  std::string url() const { return "https://localhost:" + std::to_string(listener_.port()) + "/secret?x=1"; }
  const std::string& cert() const { return listener_.cert(); }
  std::string request() {
    std::lock_guard lock(mu_);
    return request_;
  }

 private:
  std::mutex mu_;
  std::string request_;
  test::TlsListener listener_;  // last: its threads use the members above
};

TEST(OutgoingFetch, HttpsVerifiesTheServersCertificate) {
  Harness h;
  test::TempDir dir;
  TlsUpstream up(dir.path());
  ASSERT_TRUE(up.made()) << "the openssl command could not make a certificate";
  // Not in this machine's CA store: refused, and the error says so.
  std::string refused = h.send("FETCHER", "t", "GET", "/?url=" + url_encode(up.url())).get().body;
  EXPECT_EQ(refused.rfind("unavailable: fetch https://localhost:", 0), 0u) << refused;
  EXPECT_NE(refused.find("TLS handshake failed: the server's certificate was refused: self-signed"),
            std::string::npos)
      << refused;
  // Trusted through ca_file: the exchange goes through, encrypted.
  std::string ok = h.send("FETCHER", "t", "GET",
                          "/?url=" + url_encode(up.url()) + "&ca=" + url_encode(up.cert()))
                       .get()
                       .body;
  EXPECT_EQ(ok, "200 secure");
  EXPECT_EQ(up.request().rfind("POST /secret?x=1 HTTP/1.1\r\n", 0), 0u) << up.request();
  // A certificate for another name is refused even when its issuer is trusted.
  std::string other = "https://127.0.0.1:" + up.url().substr(up.url().find(':', 8) + 1);
  std::string wrong_name = h.send("FETCHER", "t", "GET",
                                  "/?url=" + url_encode(other) + "&ca=" + url_encode(up.cert()))
                               .get()
                               .body;
  EXPECT_NE(wrong_name.find("TLS handshake failed"), std::string::npos) << wrong_name;
  // A CA file that cannot be read fails every fetch that names it: the
  // second one must not go through a context left without certificates
  // (which would verify nothing).
  std::string missing = dir.path() + "/no-such-ca.pem";
  for (int attempt = 0; attempt < 2; ++attempt) {
    std::string r = h.send("FETCHER", "t", "GET", "/?url=" + url_encode(up.url()) + "&ca=" + url_encode(missing))
                        .get()
                        .body;
    EXPECT_NE(r.find("cannot load the trusted certificates of " + missing), std::string::npos)
        << "attempt " << attempt << ": " << r;
  }
}

// Alarms on a fake clock: time moves only when a test moves it, and
// advance() returns once every alarm due by then has run (retries too).
class AlarmTest : public ::testing::Test {
 protected:
  static constexpr int64_t kStart = 1'000'000'000'000;
  Json state(const std::string& name, const std::string& q = "") {
    return Json::parse(h_.send("ALARMED", name, "GET", "/" + q).get().body);
  }
  void advance(std::chrono::milliseconds by) {
    time_.advance(by);
    h_.settle();
  }
  FakeTime time_{kStart};
  Harness h_{ServerOptions{}, &time_};
};

// An alarm 30 s away fires when the clock passes it, not a millisecond
// before; the object reads the same time.
TEST_F(AlarmTest, AlarmsFireWhenTheFakeClockPassesThem) {
  EXPECT_EQ(state("f", "?in=30000")["alarm"], kStart + 30'000);
  advance(29'999ms);
  EXPECT_TRUE(state("f")["runs"].empty());
  advance(1ms);
  Json j = state("f");
  ASSERT_EQ(j["runs"].size(), 1u);
  EXPECT_TRUE(j["alarm"].is_null());
}

TEST_F(AlarmTest, AnAlarmFiresOnceAndIsNullInsideAndAfter) {
  EXPECT_FALSE(state("a", "?set=50")["alarm"].is_null());
  advance(57ms);
  Json j = state("a");
  ASSERT_EQ(j["runs"].size(), 1u);
  EXPECT_EQ(j["runs"][0]["retry"], 0);
  EXPECT_EQ(j["runs"][0]["isRetry"], false);
  EXPECT_TRUE(j["runs"][0]["alarmInside"].is_null());
  EXPECT_TRUE(j["alarm"].is_null());
  advance(1h);
  EXPECT_EQ(state("a")["runs"].size(), 1u);  // once
  // It ran when the clock said 57 ms, 7 ms after its time.
  auto lateness = h_.runtime().alarm_lateness();
  EXPECT_EQ(lateness.count, 1u);
  EXPECT_EQ(lateness.max_ms, 7);
}

TEST_F(AlarmTest, AThrowingAlarmIsRetriedWithTheRetryCount) {
  state("r", "?fail=2&set=0");
  h_.settle();  // due now: it runs (and fails) at once
  EXPECT_EQ(state("r")["runs"].size(), 1u);
  // Retries after 2 to 2.5 s, then 4 to 5 s.
  advance(2500ms);
  EXPECT_EQ(state("r")["runs"].size(), 2u);
  advance(5000ms);
  Json j = state("r");
  ASSERT_EQ(j["runs"].size(), 3u);
  for (int i = 0; i < 3; ++i) EXPECT_EQ(j["runs"][i]["retry"], i);
  EXPECT_EQ(j["runs"][1]["isRetry"], true);
  advance(1h);
  EXPECT_EQ(state("r")["runs"].size(), 3u);
  EXPECT_TRUE(state("r")["alarm"].is_null());
}

TEST_F(AlarmTest, AnAlarmThatKeepsFailingIsDroppedAfterSixRetries) {
  state("d", "?fail=100&set=0");
  h_.settle();
  // Backoff 2, 4, 8, 16, 32, 64 s, each up to a quarter more (jitter).
  for (int i = 0; i < 6; ++i) advance(std::chrono::milliseconds(2500 << i));
  Json j = state("d");
  EXPECT_EQ(j["runs"].size(), 7u);
  EXPECT_EQ(j["runs"][6]["retry"], 6);
  EXPECT_TRUE(j["alarm"].is_null());
  advance(24h);
  EXPECT_EQ(state("d")["runs"].size(), 7u);
}

TEST_F(AlarmTest, SettingANewAlarmInsideAFailingOneReplacesTheRetry) {
  state("s", "?replace=1&set=0");
  h_.settle();
  advance(30ms);  // the new alarm, 30 ms after the first run; a retry would need 2 s
  Json j = state("s");
  ASSERT_EQ(j["runs"].size(), 2u);
  EXPECT_EQ(j["runs"][1]["retry"], 0);  // the new alarm, not a retry
}

TEST_F(AlarmTest, AnAlarmThatSetsItsNextForTheSameMillisecondKeepsIt) {
  state("c", "?chain=20&set=0");
  h_.settle();  // the clock does not move: each next alarm is due at once
  Json j = state("c");
  EXPECT_EQ(j["runs"].size(), 21u);
  EXPECT_TRUE(j["alarm"].is_null());
}

TEST_F(AlarmTest, AbortInsideAlarmSaysWhetherTheAlarmIsRetried) {
  // abort=2: retry_alarm = false, the alarm is dropped after one run.
  state("ad", "?abort=2&set=0");
  h_.settle();
  Json dropped = state("ad");
  EXPECT_TRUE(dropped["alarm"].is_null());
  EXPECT_EQ(dropped["runs"].size(), 0u);  // the aborted run's writes were discarded
  // abort=1: retry_alarm = true, the alarm runs again (and aborts again, its
  // write of the flag being discarded each time) with growing retry counts.
  state("ar", "?abort=1&set=0");
  h_.settle();
  advance(2500ms);
  EXPECT_FALSE(state("ar")["alarm"].is_null());
}

TEST_F(AlarmTest, SetAlarmIsAWriteLikeAnyOther) {
  EXPECT_TRUE(state("t", "?txn=1")["alarm"].is_null());        // rolled back with the transaction
  EXPECT_TRUE(state("t", "?deleteall=1")["alarm"].is_null());  // delete_all deletes it
  Response r = h_.send("ALARMED", "t", "GET", "/?zero=1").get();
  EXPECT_EQ(r.status, 400);
  EXPECT_NE(r.body.find("positive"), std::string::npos);
  advance(200s);  // past the alarms that were rolled back
  EXPECT_EQ(state("t")["runs"].size(), 0u);
}

TEST_F(AlarmTest, AClassWithoutAnAlarmHandlerCannotSetOne) {
  Response r = h_.send("PROBE", "x", "GET", "/?alarm=1").get();
  EXPECT_EQ(r.status, 400);
  EXPECT_NE(r.body.find("no alarm() handler"), std::string::npos) << r.body;
}

// Due alarms run one per task: a request that arrives during a burst waits
// behind the alarm running, not behind a batch of them. (With 16 posted at
// once, a request could wait for 16 x 5 ms here.)
TEST(AlarmBurst, ARequestDuringABurstWaitsForOneAlarmNotABatch) {
  ServerOptions o;
  o.shards = 1;  // the alarms and the request share the shard
  FakeTime time(1'000'000'000'000);
  Harness h(o, &time);
  const int kObjects = 40;
  int64_t at = time.now_ms() + 300;
  for (int i = 0; i < kObjects; ++i) {
    ASSERT_EQ(h.send("BUSY_ALARM", "b" + std::to_string(i), "POST",
                     "/?ms=5&at=" + std::to_string(at))
                  .get()
                  .status,
              200);
  }
  ASSERT_EQ(h.send("PROBE", "p", "GET").get().status, 200);  // built before the burst
  time.set(at);  // the burst starts: 40 alarms of 5 ms each
  double worst = 0;
  for (int i = 0; i < 10; ++i) {  // the burst holds the shard for ~200 ms
    auto t0 = std::chrono::steady_clock::now();
    ASSERT_EQ(h.send("PROBE", "p", "GET").get().status, 200);
    worst = std::max(worst, std::chrono::duration<double, std::milli>(
                                std::chrono::steady_clock::now() - t0)
                                .count());
  }
  EXPECT_LT(worst, 40.0);
  h.settle();
}

TEST_F(AlarmTest, AnEvictedObjectIsRebuiltToRunItsAlarm) {
  state("e", "?set=300");
  const NamespaceImpl* ns = h_.runtime().find_namespace("ALARMED");
  ObjectId id = ns->ids().from_name("e");
  Shard& shard = h_.runtime().shard_for(id);
  ASSERT_TRUE(shard.run_and_wait([&] { return shard.evict_now(ns, id); }));
  ASSERT_FALSE(shard.run_and_wait([&] { return shard.presence(ns, id).resident; }));
  advance(300ms);
  EXPECT_EQ(state("e")["runs"].size(), 1u);
}

TEST(Runtime, AFullQueueAnswersOverloaded) {
  ServerOptions o;
  o.max_queue = 5;
  Harness h(o);
  // The constructor blocks the object for 100 ms; requests queue behind it.
  std::vector<std::future<Response>> futures;
  for (int i = 0; i < 20; ++i) futures.push_back(h.send("SLOW_START", "q", "GET"));
  int ok = 0, overloaded = 0;
  for (auto& f : futures) {
    Response r = f.get();
    if (r.status == 200) ++ok;
    if (r.status == 503) {
      EXPECT_EQ(nlohmann::json::parse(r.body)["overloaded"], true);
      ++overloaded;
    }
  }
  EXPECT_EQ(ok + overloaded, 20);
  EXPECT_GE(overloaded, 10);
  EXPECT_GE(ok, 5);
}

TEST(Runtime, RequestsWaitingOnBlockConcurrencyWhileSeeTheFinishedSetUp) {
  Harness h;
  std::vector<std::future<Response>> futures;
  for (int i = 0; i < 10; ++i) futures.push_back(h.send("SLOW_START", "b", "GET"));
  for (auto& f : futures) EXPECT_EQ(f.get().body, "ready");
}

// Idle eviction follows the runtime's time source: with a FakeTime, objects
// idle for the timeout (10 s) go when the test moves the clock past it.
TEST(Runtime, IdleObjectsAreEvictedAndRebuiltWithTheirStorage) {
  FakeTime time(1'000'000'000'000);
  Harness h({}, &time);
  int before = g_constructions;
  EXPECT_EQ(h.json("PROBE", "e", "POST")["n"], 1);
  time.advance(9999ms);
  h.settle();
  EXPECT_EQ(h.json("PROBE", "e", "GET")["requests"], 2);  // still the same instance
  time.advance(10s);
  h.settle();
  auto j = h.json("PROBE", "e", "POST");
  EXPECT_EQ(j["n"], 2);
  EXPECT_EQ(j["requests"], 1);
  EXPECT_EQ(g_constructions - before, 2);
}

// A sweep evicts Shard::kEvictChunk objects per task and posts the rest:
// many more idle objects than that per shard all go.
TEST(Runtime, ManyIdleObjectsAreAllEvicted) {
  FakeTime time(1'000'000'000'000);
  Harness h({}, &time);
  const int kObjects = 16 * static_cast<int>(Shard::kEvictChunk);  // 2 shards: 8 chunks each
  std::vector<std::future<Response>> first;
  for (int i = 0; i < kObjects; ++i) first.push_back(h.send("PROBE", "m" + std::to_string(i), "POST"));
  for (auto& f : first) ASSERT_EQ(f.get().status, 200);
  int before = g_constructions;
  time.advance(10s);
  h.settle();
  std::vector<std::future<Response>> again;
  for (int i = 0; i < kObjects; ++i) again.push_back(h.send("PROBE", "m" + std::to_string(i), "POST"));
  int rebuilt = 0;
  for (auto& f : again) {
    auto j = nlohmann::json::parse(f.get().body);
    EXPECT_EQ(j["n"], 2);
    rebuilt += j["requests"] == 1;
  }
  EXPECT_EQ(rebuilt, kObjects);
  EXPECT_EQ(g_constructions - before, kObjects);
}

// Eviction walks the objects from the least recently active: one that is
// still busy past the idle timeout is passed over (and kept), and the idle
// objects behind it still go.
TEST(Runtime, AnObjectBusyPastTheIdleTimeoutIsKeptAndOthersStillGo) {
  ServerOptions o;
  o.shards = 1;  // one activity list: the busy object is its first entry
  FakeTime time(1'000'000'000'000);
  Harness h(o, &time);
  auto busy = h.send("PROBE", "busy", "POST", "/?sleep=300");  // the first one active
  const int kIdle = 8;
  std::vector<std::future<Response>> first;
  for (int i = 0; i < kIdle; ++i) first.push_back(h.send("PROBE", "idle" + std::to_string(i), "POST"));
  for (auto& f : first) ASSERT_EQ(nlohmann::json::parse(f.get().body)["n"], 1);
  int before = g_constructions;
  // The busy one is still in its request (a real 300 ms); the sweep this
  // posts runs before the requests below (one shard, in order).
  time.advance(10s);
  for (int i = 0; i < kIdle; ++i) {
    auto j = h.json("PROBE", "idle" + std::to_string(i), "POST");
    EXPECT_EQ(j["n"], 2);
    EXPECT_EQ(j["requests"], 1);  // a new instance: it was evicted
  }
  EXPECT_EQ(g_constructions - before, kIdle);
  // Its request finished on the instance it started on (an eviction while
  // busy would have failed it).
  Response r = busy.get();
  EXPECT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(nlohmann::json::parse(r.body)["requests"], 1);
  EXPECT_EQ(g_constructions - before, kIdle);
}

}  // namespace
}  // namespace dobj::internal
