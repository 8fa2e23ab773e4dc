// The retry cap holds on every path: an alarm whose object is reset each
// time it runs (abort) is retried six times, like one that throws, and then
// dropped.
#include <gtest/gtest.h>

#include <atomic>
#include <thread>

#include "dobj/dobj.h"
#include "support/in_process_server.h"

namespace dobj {
namespace {

using namespace std::chrono_literals;

std::atomic<int> g_runs{0};

// POST /R/<name>/arm sets an alarm now; alarm() aborts (resets) the object.
class Resetter : public DurableObject {
 public:
  using DurableObject::DurableObject;
  Task<Response> fetch(Request req) override {
    if (req.path().ends_with("/arm")) {
      storage().set_alarm(1);  // long past: due at once
      co_return Response::text("armed");
    }
    auto at = storage().get_alarm();
    co_return Response::text(at ? std::to_string(*at) : "none");
  }
  Task<void> alarm(AlarmInfo) override {
    ++g_runs;
    state().abort("this alarm resets its object");
    co_return;
  }
};

TEST(AlarmCap, AnAlarmThatResetsItsObjectIsDroppedAfterSixRetries) {
  ServerOptions o;
  o.alarm_backoff_scale = 0.005;  // 10, 20, 40 ... ms
  test::InProcessServer s(
      o, {{"R", [](State& st, Env& e) { return std::make_unique<Resetter>(st, e); }}});
  ASSERT_EQ(test::http(s.port(), "POST", "/R/x/arm").status, 200);
  auto deadline = std::chrono::steady_clock::now() + 10s;
  while (g_runs < 7 && std::chrono::steady_clock::now() < deadline) std::this_thread::sleep_for(10ms);
  std::this_thread::sleep_for(1s);  // a retry past the cap would come within 640 ms
  EXPECT_EQ(g_runs.load(), 7);  // the first run and six retries
  EXPECT_EQ(s.get("/R/x/get"), "none");
}

}  // namespace
}  // namespace dobj
