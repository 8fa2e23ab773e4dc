// Mixed load of every durable example, for the tests and the soak that kill
// the server (SIGKILL, or a simulated power cut) and check what survived.
//
// One round: client threads drive counters, KV batches, bank transfers, SQL
// inserts, alarm schedules, new objects and a chat room against a running
// server and remember every write the server acknowledged; the caller's `cut`
// kills the server mid-load; the clients stop at their first failed request.
// After a restart, check() asks the server for every acknowledged write.
// Given the ports of several cluster nodes, each request goes through one
// of them at random.
#pragma once

#include <array>
#include <chrono>
#include <cstdint>
#include <functional>
#include <mutex>
#include <random>
#include <string>
#include <vector>

namespace dobj::test {

class MixedLoad {
 public:
  static constexpr int kCounters = 3;
  static constexpr int kBatchers = 2;
  static constexpr int kAccounts = 6;
  static constexpr int kStartBalance = 1000;

  // `tag` keeps the names of one test's objects apart from another's.
  explicit MixedLoad(std::string tag, uint32_t seed = 12345);

  // Deposits the starting balances and makes the SQL table; false if the
  // server did not answer.
  bool prepare(int port);
  // Runs one round of load against port; calls cut() on this thread after a
  // random 200-800 ms (it must stop the server), then waits for the clients.
  void run(int port, const std::function<void()>& cut) { run(std::vector<int>{port}, cut); }
  // The same through several nodes, a random one for each request.
  void run(const std::vector<int>& ports, const std::function<void()>& cut);
  // Asks the server at port for every write acknowledged so far. Returns what
  // is missing or wrong, one line each (empty: all there).
  std::vector<std::string> check(int port);

  // How long check() waits for acknowledged alarms to fire (default 20 s).
  void set_alarm_wait(std::chrono::milliseconds wait) { alarm_wait_ = wait; }

  // In a cluster a 503 (the object's node is gone or fenced) leaves the
  // write's outcome unknown, as a dropped connection does, instead of being
  // an answer no request should get.
  void set_unavailable_is_unknown(bool yes) { unavailable_is_unknown_ = yes; }

  int rounds() const { return round_; }
  int64_t writes_checked() const { return checked_; }

 private:
  std::string tag_;
  std::mt19937 rng_;
  int round_ = 0;
  int64_t checked_ = 0;
  std::chrono::milliseconds alarm_wait_{20000};
  bool unavailable_is_unknown_ = false;
  std::mutex mu_;  // guards what follows, while clients run
  std::array<int64_t, kCounters> counter_{};          // highest value answered
  // Increments sent since that answer that got none (each may have landed).
  std::array<int64_t, kCounters> unanswered_{};
  std::vector<std::string> odd_answers_;              // statuses no request should get
  std::array<std::vector<int>, kBatchers> batches_;   // batch numbers answered
  std::vector<std::string> created_;                  // new objects whose first write answered
  std::vector<int64_t> rows_;                         // SQL rows whose insert answered
  std::vector<std::string> tasks_;                    // alarms whose schedule answered
  int next_id_ = 0;                                   // for batches, rows and tasks
};

// Runs PRAGMA integrity_check on every object database under data_dir;
// returns the failures, one line each, and counts the databases in *checked.
std::vector<std::string> corrupt_databases(const std::string& data_dir, int* checked);

}  // namespace dobj::test
