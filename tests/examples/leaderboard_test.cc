// The leaderboard example tested with the kit: docs/testing.md walks through it.
#include <gtest/gtest.h>

#include <dobj/testing.h>

#include "leaderboard/leaderboard.h"

namespace {

using namespace std::chrono_literals;
using examples::Leaderboard;
using examples::Player;

struct Game : dobj::testing::TestRuntime {
  explicit Game(dobj::testing::Options o = {}) : TestRuntime(o) {
    bind<Leaderboard>("LEADERBOARD");
    bind<Player>("PLAYER");
  }
  int64_t play(const std::string& who, int64_t score) {
    return object<Player>("PLAYER", who).call(&Player::play, score);
  }
  std::vector<std::string> top() {
    return object<Leaderboard>("LEADERBOARD", "global").call(&Leaderboard::top);
  }
};

TEST(Leaderboard, RanksBestScores) {
  Game game;
  EXPECT_EQ(game.play("ada", 30), 1);
  EXPECT_EQ(game.play("bob", 50), 1);
  EXPECT_EQ(game.play("ada", 10), 2);  // not a best: ada keeps 30
  EXPECT_EQ(game.top(), (std::vector<std::string>{"bob 50", "ada 30"}));
}

TEST(Leaderboard, SurvivesEvictionAndRestart) {
  Game game;
  game.play("ada", 30);
  EXPECT_TRUE(game.object("LEADERBOARD", "global").evict());
  game.restart();
  EXPECT_EQ(game.top(), std::vector<std::string>{"ada 30"});
  EXPECT_EQ(game.object<Player>("PLAYER", "ada").call(&Player::games), 1);
}

TEST(Leaderboard, StartsANewSeasonAfterAWeek) {
  Game game;
  game.play("ada", 30);
  game.advance(24h * 7 - 1ms);
  EXPECT_EQ(game.top().size(), 1u);
  game.advance(1ms);
  EXPECT_TRUE(game.top().empty());
}

TEST(Leaderboard, WatchersHearNewBestsWhileTheBoardSleeps) {
  Game game;
  auto watcher = game.connect("/LEADERBOARD/global/");
  ASSERT_TRUE(watcher.is_open());
  EXPECT_TRUE(game.object("LEADERBOARD", "global").evict());
  game.play("ada", 30);
  EXPECT_EQ(watcher.receive(), "ada 30");
}

TEST(Leaderboard, AFailedCommitLosesNoEarlierScore) {
  Game game;
  game.play("ada", 30);
  game.fail_next_commits();
  EXPECT_THROW(game.play("ada", 99), dobj::Error);
  EXPECT_EQ(game.top(), std::vector<std::string>{"ada 30"});
}

// The classic mistake: a count kept only in a member.
class ForgetfulPlayer : public dobj::DurableObject {
 public:
  using DurableObject::DurableObject;
  dobj::Task<int64_t> play() { co_return ++games_; }
  static constexpr auto kMethods = dobj::methods(dobj::Method{"play", &ForgetfulPlayer::play});

 private:
  int64_t games_ = 0;
};

TEST(Leaderboard, EvictAfterEveryEventCatchesStateKeptInMembers) {
  dobj::testing::Options o;
  o.evict_after_every_event = true;
  dobj::testing::TestRuntime rt(o);
  rt.bind<ForgetfulPlayer>("PLAYER");
  auto ada = rt.object<ForgetfulPlayer>("PLAYER", "ada");
  EXPECT_EQ(ada.call(&ForgetfulPlayer::play), 1);
  EXPECT_EQ(ada.call(&ForgetfulPlayer::play), 1);  // 2 without the mode: the bug stays hidden
}

}  // namespace
