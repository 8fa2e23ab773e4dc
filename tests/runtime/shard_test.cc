// Unit tests of Shard and ObjectHost through their own interfaces: hosts
// created and evicted, a coroutine run as the worker runs, settling after a
// move of the fake clock, storage turns outside any instance, resets, and
// evict-after-every-event. (The queue's limit: Runtime.AFullQueueAnswersOverloaded.)
#include <gtest/gtest.h>

#include <atomic>
#include <thread>

#include "dobj/dobj.h"
#include "runtime/object_host.h"
#include "runtime/shard.h"
#include "support/runtime_harness.h"

namespace dobj::internal {
namespace {

using namespace std::chrono_literals;

std::atomic<int> g_built{0};

// Counts its instances; GET answers "<stored n> <requests to this instance>",
// POST increments n, ?alarm=MS sets the alarm that far ahead.
class Unit : public DurableObject {
 public:
  Unit(State& s, Env& e) : DurableObject(s, e) { ++g_built; }
  Task<Response> fetch(Request req) override {
    ++requests_;
    int64_t n = storage().get<int64_t>("n").value_or(0);
    if (req.method == "POST") storage().put("n", ++n);
    if (auto ms = req.query("alarm")) storage().set_alarm(std::chrono::milliseconds(std::stoi(*ms)));
    co_return Response::text(std::to_string(n) + " " + std::to_string(requests_));
  }
  Task<void> alarm(AlarmInfo) override {
    storage().put("alarms", storage().get<int64_t>("alarms").value_or(0) + 1);
    co_return;
  }

 private:
  int requests_ = 0;
};

Bindings unit_binding() {
  Bindings b;
  b["UNIT"] = [](State& s, Env& e) { return std::make_unique<Unit>(s, e); };
  return b;
}

struct ShardTest : ::testing::Test {
  FakeTime time{1'000'000'000'000};
  test::RuntimeHarness h{unit_binding(), ServerOptions{}, &time};
  std::string body(const std::string& name, const std::string& method = "GET",
                   const std::string& target = "/") {
    return h.send("UNIT", name, method, target).get().body;
  }
  Shard& shard(const std::string& name) { return h.shard_of("UNIT", name); }
  bool resident(const std::string& name) {
    Shard& s = shard(name);
    return s.run_and_wait([&] { return s.presence(h.ns("UNIT"), h.id("UNIT", name)).resident; });
  }
  // Runs fn in the object's queue between its events (Delivery::admin,
  // through Runtime::run_on_object) and waits for its reply.
  void between_events(const std::string& name, std::function<void(ObjectHost&, Reply)> fn) {
    std::promise<void> replied;
    h.runtime().run_on_object(h.ns("UNIT"), h.id("UNIT", name), nullptr, std::move(fn),
                              [&](Answer) { replied.set_value(); });
    replied.get_future().get();
  }
  bool evict(const std::string& name) {
    Shard& s = shard(name);
    return s.run_and_wait([&] { return s.evict_now(h.ns("UNIT"), h.id("UNIT", name)); });
  }
};

TEST_F(ShardTest, AHostIsMadeByTheFirstEventAndEvictNowDropsIt) {
  EXPECT_FALSE(resident("a"));
  EXPECT_TRUE(evict("a"));  // nothing to evict: out of memory already
  EXPECT_EQ(body("a", "POST"), "1 1");
  EXPECT_TRUE(resident("a"));
  Shard& s = shard("a");
  EXPECT_NE(s.run_and_wait([&] { return s.find_host(h.ns("UNIT"), h.id("UNIT", "a")); }), nullptr);
  EXPECT_TRUE(evict("a"));
  EXPECT_FALSE(resident("a"));
  EXPECT_EQ(s.run_and_wait([&] { return s.find_host(h.ns("UNIT"), h.id("UNIT", "a")); }), nullptr);
  EXPECT_EQ(body("a"), "1 1");  // a new instance, the stored count
}

TEST_F(ShardTest, RunTaskRunsACoroutineWithStubsAndRepliesWithItsResult) {
  Shard& s = h.runtime().shard(0);
  std::promise<Response> done;
  s.post([&] {
    s.run_task(
        [](Env& env) -> Task<Response> {
          Namespace ns = env.ns("UNIT");
          Request r;
          r.method = "POST";
          Response a = co_await ns.get(ns.id_from_name("t")).fetch(r);
          Response b = co_await ns.get(ns.id_from_name("t")).fetch(r);
          co_return Response::text(a.body + "|" + b.body);
        },
        [&](Answer a) { done.set_value(std::move(a.response)); });
  });
  EXPECT_EQ(done.get_future().get().body, "1 1|2 2");
}

TEST_F(ShardTest, SettledWaitsForAnAlarmThatTheClockMadeDue) {
  body("s", "GET", "/?alarm=1000");
  Shard& s = shard("s");
  EXPECT_TRUE(s.run_and_wait([&] { return s.settled(); }));  // nothing due yet
  time.advance(1000ms);
  h.settle();
  int64_t alarms = 0;
  between_events("s", [&](ObjectHost& host, Reply reply) {
    host.with_storage([&](Storage& st) { alarms = st.get<int64_t>("alarms").value_or(0); },
                      [reply](Status, std::exception_ptr) { reply(Response{}); });
  });
  EXPECT_EQ(alarms, 1);
}

TEST_F(ShardTest, AStorageTurnCommitsWithoutBuildingTheObjectAndAnExceptionDiscardsIt) {
  int before = g_built;
  auto storage_turn = [&](std::function<void(Storage&)> fn) {
    std::pair<Status, bool> out;
    between_events("w", [&](ObjectHost& host, Reply reply) {
      host.with_storage(fn, [&, reply](Status st, std::exception_ptr e) {
        out = {st, e != nullptr};
        reply(Response{});
      });
    });
    return out;
  };
  auto [ok, threw] = storage_turn([](Storage& st) { st.put("n", int64_t{41}); });
  EXPECT_TRUE(ok.is_ok());
  EXPECT_FALSE(threw);
  auto [ok2, threw2] = storage_turn([](Storage& st) {
    st.put("n", int64_t{1000});
    throw std::runtime_error("changed my mind");
  });
  EXPECT_TRUE(ok2.is_ok());  // nothing to commit: the writes were discarded
  EXPECT_TRUE(threw2);
  EXPECT_EQ(g_built, before);           // no instance was built for either
  EXPECT_EQ(body("w", "POST"), "42 1");  // the first write stayed, the second did not
}

TEST_F(ShardTest, InjectResetDropsTheInstanceAndBreaksBoundStubs) {
  EXPECT_EQ(body("r", "POST"), "1 1");
  Shard& s = shard("r");
  uint64_t epoch = s.run_and_wait([&] { return s.reset_epoch(h.ns("UNIT"), h.id("UNIT", "r")); });
  between_events("r", [](ObjectHost& host, Reply reply) {
    host.inject_reset("a test reset");
    reply(Response{});
  });
  EXPECT_FALSE(resident("r"));
  EXPECT_EQ(s.run_and_wait([&] { return s.reset_epoch(h.ns("UNIT"), h.id("UNIT", "r")); }),
            epoch + 1);
  EXPECT_EQ(body("r"), "1 1");  // built again from storage
}

TEST(ObjectHostEviction, EvictAfterEveryEventBuildsEachEventsInstanceAfresh) {
  ServerOptions o;
  o.evict_after_every_event = true;
  test::RuntimeHarness h(unit_binding(), o);
  int before = g_built;
  for (int i = 1; i <= 3; ++i) {
    EXPECT_EQ(h.send("UNIT", "e", "POST").get().body, std::to_string(i) + " 1");
  }
  EXPECT_EQ(g_built - before, 3);
  Shard& s = h.shard_of("UNIT", "e");
  EXPECT_FALSE(s.run_and_wait([&] { return s.presence(h.ns("UNIT"), h.id("UNIT", "e")).resident; }));
}

// A shard's loop stepped by hand: nothing runs until the test runs it, one
// handler at a time, on the test's thread.
TEST(SteppedShard, NothingRunsUntilTheTestStepsTheLoop) {
  ServerOptions o;
  o.shards = 1;
  test::RuntimeHarness h(unit_binding(), o, nullptr, Runtime::Loops::kStepped);
  Shard& s = h.runtime().shard(0);
  s.step_all();  // what the start posted
  auto a = h.send("UNIT", "s", "GET");
  auto b = h.send("UNIT", "s", "GET");
  EXPECT_EQ(a.wait_for(0s), std::future_status::timeout);
  ASSERT_TRUE(s.step());  // the first delivery: built, run, answered (it wrote nothing)
  ASSERT_EQ(a.wait_for(0s), std::future_status::ready);
  EXPECT_EQ(a.get().body, "0 1");
  EXPECT_EQ(b.wait_for(0s), std::future_status::timeout);
  ASSERT_TRUE(s.step());
  EXPECT_EQ(b.get().body, "0 2");
  EXPECT_FALSE(s.step());  // nothing left to run
  // A write's answer waits for its flush: the flusher thread posts the
  // release, and only a step runs it.
  auto w = h.send("UNIT", "s", "POST");
  ASSERT_TRUE(s.step());
  EXPECT_EQ(w.wait_for(0s), std::future_status::timeout);
  auto deadline = std::chrono::steady_clock::now() + 10s;
  while (w.wait_for(0s) != std::future_status::ready && std::chrono::steady_clock::now() < deadline) {
    if (!s.step()) std::this_thread::yield();
  }
  EXPECT_EQ(w.get().body, "1 3");
}

}  // namespace
}  // namespace dobj::internal
