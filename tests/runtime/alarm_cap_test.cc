// The retry cap holds on every path: an alarm whose object is reset each
// time it runs (abort) is retried six times, like one that throws, and then
// dropped.
#include <gtest/gtest.h>

#include <atomic>

#include "dobj/dobj.h"
#include "dobj/testing.h"

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
  testing::TestRuntime rt;  // a fake clock: retries run as the test moves it
  rt.bind<Resetter>("R");
  ASSERT_EQ(rt.fetch("POST", "/R/x/arm").status, 200);
  rt.settle();  // due at once: the first run
  // Backoff 2, 4, ... 64 s, each up to a quarter more (jitter).
  for (int i = 0; i < 6; ++i) rt.advance(std::chrono::milliseconds(2500 << i));
  EXPECT_EQ(g_runs.load(), 7);  // the first run and six retries
  rt.advance(24h);              // no retry past the cap
  EXPECT_EQ(g_runs.load(), 7);
  EXPECT_EQ(rt.fetch("GET", "/R/x/get").body, "none");
}

}  // namespace
}  // namespace dobj
