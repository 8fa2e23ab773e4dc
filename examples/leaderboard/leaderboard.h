// Leaderboard: players' best scores, a typed call between two objects, live
// updates over hibernating WebSockets and a weekly reset by alarm. The
// example of docs/testing.md; tests/examples/leaderboard_test.cc tests it.
#pragma once

#include <dobj/dobj.h>

#include <algorithm>
#include <chrono>
#include <string>
#include <vector>

namespace examples {

class Leaderboard : public dobj::DurableObject {
 public:
  using DurableObject::DurableObject;

  // Records a player's best score; returns the player's rank (1: first).
  dobj::Task<int64_t> submit(std::string player, int64_t score) {
    if (storage().get<int64_t>("score:" + player).value_or(-1) < score) {
      storage().put("score:" + player, score);
      if (!storage().get_alarm()) storage().set_alarm(std::chrono::hours(24 * 7));
      for (const dobj::WebSocket& ws : state().get_websockets()) {
        ws.send(player + " " + std::to_string(score));
      }
    }
    int64_t mine = storage().get<int64_t>("score:" + player).value_or(0);
    int64_t rank = 1;
    for (const auto& [key, s] : storage().list<int64_t>({.prefix = "score:"})) rank += s > mine;
    co_return rank;
  }
  dobj::Task<std::vector<std::string>> top() {
    auto scores = storage().list<int64_t>({.prefix = "score:"});
    std::sort(scores.begin(), scores.end(), [](auto& a, auto& b) { return a.second > b.second; });
    std::vector<std::string> out;
    for (const auto& [key, s] : scores) out.push_back(key.substr(6) + " " + std::to_string(s));
    co_return out;
  }
  static constexpr auto kMethods = dobj::methods(dobj::Method{"submit", &Leaderboard::submit},
                                                 dobj::Method{"top", &Leaderboard::top});

  // Watchers connect here and get "player score" for every new best.
  dobj::Task<dobj::Response> fetch(dobj::Request req) override {
    if (!req.is_websocket_upgrade()) co_return dobj::Response::error(426, "WebSocket only");
    co_return state().accept_websocket(req).upgrade_response();
  }
  // A new season every week.
  dobj::Task<void> alarm(dobj::AlarmInfo) override {
    storage().delete_all();
    co_return;
  }
};

// One player: counts games and submits each score to the board "global".
class Player : public dobj::DurableObject {
 public:
  using DurableObject::DurableObject;
  dobj::Task<int64_t> play(int64_t score) {
    storage().put("games", storage().get<int64_t>("games").value_or(0) + 1);
    auto board = env().ns<Leaderboard>("LEADERBOARD");
    std::string name = state().id().name().value_or("anonymous");
    auto global = board.get(board.id_from_name("global"));
    co_return co_await global.call(&Leaderboard::submit, name, score);
  }
  dobj::Task<int64_t> games() { co_return storage().get<int64_t>("games").value_or(0); }
  static constexpr auto kMethods =
      dobj::methods(dobj::Method{"play", &Player::play}, dobj::Method{"games", &Player::games});
};

}  // namespace examples
