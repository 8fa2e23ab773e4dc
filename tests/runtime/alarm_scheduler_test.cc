#include "runtime/alarm_scheduler.h"

#include <gtest/gtest.h>

namespace dobj::internal {
namespace {

class FakeClock : public AlarmClock {
 public:
  int64_t now = 1'000'000;
  std::optional<int64_t> armed;
  int64_t now_ms() override { return now; }
  void arm(int64_t at_ms) override { armed = at_ms; }
};

ObjectId id_of(uint8_t b) {
  ObjectId::Bytes bytes{};
  bytes.fill(b);
  return ObjectId(bytes, std::nullopt);
}

struct Fired {
  uint8_t object;
  int retry;
  int64_t scheduled;
};

class SchedulerTest : public ::testing::Test {
 protected:
  FakeClock clock_;
  std::vector<Fired> fired_;
  AlarmScheduler scheduler_{&clock_, [this](const ObjectKey& k, int retry, int64_t at) {
                              fired_.push_back({k.id.bytes()[0], retry, at});
                            }};
  void advance_to(int64_t t) {
    clock_.now = t;
    if (clock_.armed && *clock_.armed <= t) scheduler_.on_timer();
  }
};

TEST_F(SchedulerTest, FiresInTimeOrderAndNotBefore) {
  scheduler_.schedule({nullptr, id_of(1)}, clock_.now + 300, 0);
  scheduler_.schedule({nullptr, id_of(2)}, clock_.now + 100, 0);
  scheduler_.schedule({nullptr, id_of(3)}, clock_.now + 200, 0);
  EXPECT_EQ(clock_.armed, clock_.now + 100);
  advance_to(clock_.now + 99);
  EXPECT_TRUE(fired_.empty());
  advance_to(clock_.now + 250 - 99);
  ASSERT_EQ(fired_.size(), 2u);
  EXPECT_EQ(fired_[0].object, 2);
  EXPECT_EQ(fired_[1].object, 3);
  advance_to(clock_.now + 1000);
  ASSERT_EQ(fired_.size(), 3u);
  EXPECT_EQ(fired_[2].object, 1);
  EXPECT_EQ(scheduler_.size(), 0u);
}

TEST_F(SchedulerTest, OneEntryPerObjectTheLatestWins) {
  scheduler_.schedule({nullptr, id_of(1)}, clock_.now + 100, 0);
  scheduler_.schedule({nullptr, id_of(1)}, clock_.now + 500, 2);
  EXPECT_EQ(scheduler_.size(), 1u);
  advance_to(clock_.now + 10'000);
  ASSERT_EQ(fired_.size(), 1u);
  EXPECT_EQ(fired_[0].retry, 2);
}

TEST_F(SchedulerTest, CancelledAlarmsDoNotFire) {
  scheduler_.schedule({nullptr, id_of(1)}, clock_.now + 100, 0);
  scheduler_.cancel({nullptr, id_of(1)});
  advance_to(clock_.now + 10'000);
  EXPECT_TRUE(fired_.empty());
}

TEST_F(SchedulerTest, APastTimeFiresAtOnce) {
  scheduler_.schedule({nullptr, id_of(1)}, clock_.now - 5000, 0);
  EXPECT_LE(*clock_.armed, clock_.now);
  advance_to(clock_.now);
  EXPECT_EQ(fired_.size(), 1u);
}

TEST_F(SchedulerTest, ABurstFiresInBatchesSoTheShardCanBreathe) {
  for (int i = 0; i < 1200; ++i) {
    ObjectId::Bytes b{};
    b[0] = static_cast<uint8_t>(i);
    b[1] = static_cast<uint8_t>(i >> 8);
    scheduler_.schedule({nullptr, ObjectId(b, std::nullopt)}, clock_.now + 10, 0);
  }
  clock_.now += 10;
  scheduler_.on_timer();
  EXPECT_EQ(fired_.size(), AlarmScheduler::kFireBatch);
  EXPECT_EQ(clock_.armed, clock_.now - 0);  // re-armed for the rest at once
  while (fired_.size() < 1200u && clock_.armed) scheduler_.on_timer();
  EXPECT_EQ(fired_.size(), 1200u);
}

TEST(AlarmBackoff, DoublesFromTwoSecondsWithAtMostAQuarterOfJitter) {
  EXPECT_EQ(alarm_backoff_ms(1, 1.0, 0.0), 2000);
  EXPECT_EQ(alarm_backoff_ms(2, 1.0, 0.0), 4000);
  EXPECT_EQ(alarm_backoff_ms(6, 1.0, 0.0), 64000);
  EXPECT_EQ(alarm_backoff_ms(1, 1.0, 1.0), 2500);
  EXPECT_EQ(alarm_backoff_ms(3, 0.01, 0.0), 80);
}

TEST(AlarmLateness, SummarizesPercentiles) {
  FakeClock clock;
  AlarmScheduler s(&clock, [](const ObjectKey&, int, int64_t) {});
  for (int i = 1; i <= 100; ++i) s.record_lateness(i);
  auto l = s.lateness();
  EXPECT_EQ(l.count, 100u);
  EXPECT_EQ(l.p50_ms, 51);
  EXPECT_EQ(l.p99_ms, 100);
  EXPECT_EQ(l.max_ms, 100);
}

}  // namespace
}  // namespace dobj::internal
