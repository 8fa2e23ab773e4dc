// The example objects tested with the test kit (dobj/testing.h): in-process,
// with the fake clock, eviction, sockets and injected failures.
#include <gtest/gtest.h>

#include <dobj/testing.h>

#include <nlohmann/json.hpp>

#include "server/app.h"

namespace {

using namespace std::chrono_literals;
using dobj::testing::Options;
using dobj::testing::TestRuntime;
using nlohmann::json;

struct App : TestRuntime {
  explicit App(Options o = {}) : TestRuntime(std::move(o)) {
    examples::bind_all(*this);
    worker(examples::route);
  }
  std::string body(const std::string& method, const std::string& target) {
    return fetch(method, target).body;
  }
  json tasks(const std::string& name) { return json::parse(body("GET", "/tasks/" + name)); }
};

TEST(ExamplesKit, CounterKeepsItsCountAcrossEvictionAndRestart) {
  App app;
  EXPECT_EQ(app.body("POST", "/counter/a/increment"), "1");
  EXPECT_EQ(app.body("POST", "/counter/a/increment"), "2");
  auto counter = app.object<examples::Counter>("COUNTER", "a");
  EXPECT_TRUE(counter.in_memory());
  EXPECT_TRUE(counter.evict());
  EXPECT_FALSE(counter.in_memory());
  EXPECT_EQ(app.body("POST", "/counter/a/increment"), "3");
  app.restart();
  EXPECT_EQ(app.body("GET", "/counter/a"), "3");
  EXPECT_EQ(counter.get<int64_t>("count"), 3);
}

TEST(ExamplesKit, IdleObjectsAreEvictedWhenTheFakeClockPassesTheIdleTimeout) {
  App app;  // idle timeout: 10 s (ServerOptions)
  EXPECT_EQ(app.body("POST", "/counter/a/increment"), "1");
  auto counter = app.object("COUNTER", "a");
  app.advance(9999ms);
  EXPECT_TRUE(counter.in_memory());
  app.advance(1ms);
  EXPECT_FALSE(counter.in_memory());
  EXPECT_EQ(app.body("POST", "/counter/a/increment"), "2");
}

TEST(ExamplesKit, EveryEventOnAFreshInstanceChangesNothingForObjectsThatStoreTheirState) {
  Options o;
  o.evict_after_every_event = true;
  App app(o);
  for (int i = 1; i <= 5; ++i) EXPECT_EQ(app.body("POST", "/counter/a/increment"), std::to_string(i));
  EXPECT_EQ(app.constructions("COUNTER"), 5u);
  EXPECT_FALSE(app.object("COUNTER", "a").in_memory());
}

TEST(ExamplesKit, TaskRunnerFiresWhenTheClockPassesItsTimeAndRepeats) {
  App app;
  auto t0 = app.now();
  auto scheduled = json::parse(app.body("POST", "/tasks/t/schedule?delay_ms=60000&repeat=3"));
  EXPECT_EQ(scheduled["scheduled"], std::chrono::duration_cast<std::chrono::milliseconds>(
                                        (t0 + 60s).time_since_epoch()).count());
  app.advance(59'999ms);
  EXPECT_EQ(app.tasks("t")["fired"], 0);
  app.advance(1ms);
  EXPECT_EQ(app.tasks("t")["fired"], 1);
  // Each run sets the next a minute after the clock it reads.
  EXPECT_EQ(app.object("TASK_RUNNER", "t").alarm(), t0 + 120s);
  app.advance(60s);
  app.advance(60s);
  json done = app.tasks("t");
  EXPECT_EQ(done["fired"], 3);
  EXPECT_TRUE(done["alarm"].is_null());
  app.advance(1h);
  EXPECT_EQ(app.tasks("t")["fired"], 3);
}

TEST(ExamplesKit, AFailingAlarmIsRetriedWithBackoffOnTheFakeClock) {
  App app;
  app.body("POST", "/tasks/t/schedule?delay_ms=1000&fail=2");
  app.advance(1s);
  EXPECT_EQ(app.tasks("t")["attempts"], 1);
  EXPECT_EQ(app.tasks("t")["fired"], 0);
  // The first retry comes 2 to 2.5 s later, the second 4 to 5 s after that.
  app.advance(1999ms);
  EXPECT_EQ(app.tasks("t")["attempts"], 1);
  app.advance(501ms);
  EXPECT_EQ(app.tasks("t")["attempts"], 2);
  app.advance(5s);
  json t = app.tasks("t");
  EXPECT_EQ(t["attempts"], 3);
  EXPECT_EQ(t["fired"], 1);
  EXPECT_EQ(t["retryCounts"], json::parse("[0,1,2]"));
}

TEST(ExamplesKit, RateLimiterWindowFollowsTheFakeClock) {
  App app;
  auto call = [&] { return app.fetch("POST", "/ratelimit/k?limit=2").status; };
  EXPECT_EQ(call(), 200);
  EXPECT_EQ(call(), 200);
  EXPECT_EQ(call(), 429);
  app.advance(59s);
  EXPECT_EQ(call(), 429);
  app.advance(1s);
  EXPECT_EQ(call(), 200);
}

TEST(ExamplesKit, ChatRoomRelaysThroughHibernation) {
  App app;
  auto a = app.connect("/room/lobby/websocket");
  auto b = app.connect("/room/lobby/websocket");
  ASSERT_TRUE(a.is_open());
  ASSERT_TRUE(b.is_open());
  auto room = app.object("CHAT_ROOM", "lobby");
  ASSERT_TRUE(a.send("hello"));
  EXPECT_EQ(a.receive(), "hello");
  EXPECT_EQ(b.receive(), "hello");
  uint64_t built = app.constructions("CHAT_ROOM");
  // The room sleeps; the runtime keeps both sockets open.
  EXPECT_TRUE(room.evict());
  EXPECT_FALSE(room.in_memory());
  ASSERT_TRUE(b.send("still here"));
  EXPECT_EQ(a.receive(), "still here");
  EXPECT_EQ(b.receive(), "still here");
  EXPECT_EQ(app.constructions("CHAT_ROOM"), built + 1);
  EXPECT_EQ(app.body("GET", "/room/lobby/count"), "2");
  EXPECT_EQ(a.close(1000, "bye").first, 1000);
  EXPECT_EQ(app.body("GET", "/room/lobby/count"), "1");
  auto refused = app.connect("/room/lobby/count");
  EXPECT_FALSE(refused.is_open());
}

// An injected failed commit or CPU-limit hit fails its event alone: the
// object is reset, the event's write is gone, the next increment counts on
// from the last answered one.
TEST(ExamplesKit, AnInjectedFailureLosesTheEventAndItsWritesOnly) {
  struct Case {
    const char* what;
    void (*inject)(App&);
    const char* says;
  };
  for (const Case& c : {Case{"failed commit", [](App& a) { a.fail_next_commits(); }, "commit"},
                        Case{"CPU limit", [](App& a) { a.exceed_cpu_limit(); }, "CPU"}}) {
    SCOPED_TRACE(c.what);
    App app;
    EXPECT_EQ(app.body("POST", "/counter/a/increment"), "1");
    c.inject(app);
    dobj::Response failed = app.fetch("POST", "/counter/a/increment");
    EXPECT_EQ(failed.status, 500);
    EXPECT_EQ(json::parse(failed.body)["reset"], true) << failed.body;
    EXPECT_NE(failed.body.find(c.says), std::string::npos) << failed.body;
    EXPECT_EQ(app.body("POST", "/counter/a/increment"), "2");
  }
}

TEST(ExamplesKit, AFailedFlushRefusesWritesUntilARestartThatKeepsWhatWasAnswered) {
  App app;
  EXPECT_EQ(app.body("POST", "/counter/a/increment"), "1");
  app.fail_next_flush();
  EXPECT_EQ(app.fetch("POST", "/counter/a/increment").status, 500);
  dobj::Response later = app.fetch("POST", "/counter/b/increment");
  EXPECT_NE(later.status, 200);
  EXPECT_NE(later.body.find("storage flush failed"), std::string::npos) << later.body;
  app.restart();
  // The answered write is there; the unanswered one may or may not be (its
  // data reached the file, its flush failed).
  int64_t n = std::stoll(app.body("GET", "/counter/a"));
  EXPECT_TRUE(n == 1 || n == 2) << n;
  EXPECT_EQ(app.body("POST", "/counter/a/increment"), std::to_string(n + 1));
}

TEST(ExamplesKit, StorageCanBeSeededAndReadDirectly) {
  App app;
  auto account = app.object("COUNTER", "seeded");
  account.storage([](dobj::Storage& s) { s.put("count", int64_t{41}); });
  EXPECT_FALSE(account.in_memory());  // storage access does not construct it
  EXPECT_EQ(app.body("POST", "/counter/seeded/increment"), "42");
  EXPECT_EQ(account.get<int64_t>("count"), 42);
  EXPECT_EQ(account.get<int64_t>("missing"), std::nullopt);
}

TEST(ExamplesKit, AResetObjectIsBuiltAgainFromStorage) {
  App app;
  EXPECT_EQ(app.body("POST", "/counter/a/increment"), "1");
  uint64_t built = app.constructions("COUNTER");
  app.object("COUNTER", "a").reset();
  EXPECT_FALSE(app.object("COUNTER", "a").in_memory());
  EXPECT_EQ(app.body("POST", "/counter/a/increment"), "2");
  EXPECT_EQ(app.constructions("COUNTER"), built + 1);
}

}  // namespace
