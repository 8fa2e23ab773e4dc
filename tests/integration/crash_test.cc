// Crash safety under load: mixed traffic against the real server, SIGKILL at
// random moments, restart on the same data, and check that every acknowledged
// write is there, no transfer is half-applied, and no database is corrupt.
#include <gtest/gtest.h>
#include <signal.h>
#include <sqlite3.h>

#include <atomic>
#include <filesystem>
#include <map>
#include <mutex>
#include <nlohmann/json.hpp>
#include <random>
#include <thread>

#include "support/http_client.h"
#include "support/server_process.h"

namespace dobj::test {
namespace {

using Json = nlohmann::json;
using namespace std::chrono_literals;

constexpr int kKills = 5;
constexpr int kCounters = 3;
constexpr int kBatchers = 2;
constexpr int kAccounts = 6;
constexpr int kStartBalance = 1000;

// Opens a database the way the server does (exclusive, no shared memory, no
// checkpoint on close), so checking it changes nothing.
std::string integrity_of(const std::string& path) {
  sqlite3* db = nullptr;
  if (sqlite3_open_v2(path.c_str(), &db, SQLITE_OPEN_READWRITE, "unix-none") != SQLITE_OK) {
    sqlite3_close(db);
    return "cannot open";
  }
  sqlite3_db_config(db, SQLITE_DBCONFIG_NO_CKPT_ON_CLOSE, 1, nullptr);
  std::string result;
  sqlite3_exec(db, "PRAGMA locking_mode=EXCLUSIVE", nullptr, nullptr, nullptr);
  sqlite3_exec(
      db, "PRAGMA integrity_check",
      [](void* out, int, char** values, char**) {
        *static_cast<std::string*>(out) += values[0] ? values[0] : "null";
        return 0;
      },
      &result, nullptr);
  sqlite3_close(db);
  return result;
}

struct Acked {
  std::mutex mu;
  std::array<int64_t, kCounters> counter{};         // highest value answered
  std::array<std::vector<int>, kBatchers> batches;  // batch numbers answered
  std::vector<std::string> created;                 // new objects whose first write answered
};

TEST(CrashTest, AcknowledgedWritesSurviveRepeatedSigkillUnderLoad) {
  TempDir dir;
  auto server = std::make_unique<ServerProcess>(DOBJ_EXAMPLES_BIN, dir.path());
  ASSERT_TRUE(server->start()) << server->output();
  for (int a = 0; a < kAccounts; ++a) {
    ASSERT_EQ(http(server->port(), "POST",
                   "/bank/crash/deposit?account=a" + std::to_string(a) +
                       "&amount=" + std::to_string(kStartBalance))
                  .status,
              200);
  }
  Acked acked;
  std::mt19937 rng(12345);
  int64_t checked_writes = 0;
  int databases_checked = 0;

  for (int kill = 1; kill <= kKills; ++kill) {
    int port = server->port();
    std::atomic<bool> stop{false};
    std::vector<std::thread> load;
    for (int c = 0; c < kCounters; ++c) {
      load.emplace_back([&, c] {
        HttpClient client(port, 2s);
        while (!stop) {
          HttpResponse r =
              client.request("POST", "/counter/crash" + std::to_string(c) + "/increment");
          if (r.status != 200) return;
          std::lock_guard lock(acked.mu);
          acked.counter[c] = std::max<int64_t>(acked.counter[c], std::stoll(r.body));
        }
      });
    }
    for (int b = 0; b < kBatchers; ++b) {
      load.emplace_back([&, b] {
        HttpClient client(port, 2s);
        int n;
        {
          std::lock_guard lock(acked.mu);
          n = static_cast<int>(acked.batches[b].size()) * 1000 + kill;  // unique per cycle
        }
        while (!stop) {
          ++n;
          Json body = {
              {"put", {{"b" + std::to_string(n) + "-x", n}, {"b" + std::to_string(n) + "-y", n}}}};
          HttpResponse r =
              client.request("POST", "/kv/crash" + std::to_string(b) + "/batch", body.dump());
          if (r.status != 200) return;
          std::lock_guard lock(acked.mu);
          acked.batches[b].push_back(n);
        }
      });
    }
    for (int t = 0; t < 2; ++t) {
      load.emplace_back([&, t] {
        HttpClient client(port, 2s);
        std::mt19937 local(static_cast<unsigned>(kill * 10 + t));
        while (!stop) {
          int from = static_cast<int>(local() % kAccounts),
              to = static_cast<int>(local() % kAccounts);
          HttpResponse r = client.request(
              "POST", "/bank/crash/transfer?from=a" + std::to_string(from) + "&to=a" +
                          std::to_string(to) + "&amount=" + std::to_string(1 + local() % 200));
          if (r.status != 200 && r.status != 409) return;
        }
      });
    }
    // New objects, one write each: a database file is made for every one.
    load.emplace_back([&] {
      HttpClient client(port, 2s);
      for (int i = 0; !stop; ++i) {
        std::string name = "new-" + std::to_string(kill) + "-" + std::to_string(i);
        if (client.request("POST", "/counter/" + name + "/increment").status != 200) return;
        std::lock_guard lock(acked.mu);
        acked.created.push_back(name);
      }
    });
    std::this_thread::sleep_for(std::chrono::milliseconds(200 + rng() % 600));
    ASSERT_EQ(server->stop(SIGKILL), 128 + SIGKILL);
    stop = true;
    for (auto& t : load) t.join();

    for (const auto& entry :
         std::filesystem::recursive_directory_iterator(dir.path() + "/objects")) {
      if (entry.path().extension() != ".sqlite") continue;
      EXPECT_EQ(integrity_of(entry.path()), "ok") << entry.path();
      ++databases_checked;
    }

    server = std::make_unique<ServerProcess>(DOBJ_EXAMPLES_BIN, dir.path());
    ASSERT_TRUE(server->start()) << server->output();
    port = server->port();
    for (int c = 0; c < kCounters; ++c) {
      int64_t now = std::stoll(http(port, "GET", "/counter/crash" + std::to_string(c)).body);
      EXPECT_GE(now, acked.counter[c]) << "counter " << c << " after kill " << kill;
      EXPECT_LE(now, acked.counter[c] + 1) << "counter " << c << " after kill " << kill;
      ++checked_writes;
    }
    for (int b = 0; b < kBatchers; ++b) {
      const auto& ns = acked.batches[b];
      for (size_t i = 0; i < ns.size(); i += 64) {
        Json keys = Json::array();
        for (size_t j = i; j < std::min(ns.size(), i + 64); ++j) {
          keys.push_back("b" + std::to_string(ns[j]) + "-x");
          keys.push_back("b" + std::to_string(ns[j]) + "-y");
        }
        Json got = Json::parse(http(port, "POST", "/kv/crash" + std::to_string(b) + "/batch",
                                    Json({{"get", keys}}).dump())
                                   .body);
        EXPECT_EQ(got.size(), keys.size()) << "batcher " << b << " lost writes after kill " << kill;
        checked_writes += static_cast<int64_t>(keys.size());
      }
    }
    for (const auto& name : acked.created) {
      EXPECT_EQ(http(port, "GET", "/counter/" + name).body, "1") << name << " after kill " << kill;
      ++checked_writes;
    }
    int64_t total = 0;
    for (int a = 0; a < kAccounts; ++a) {
      Json bal =
          Json::parse(http(port, "GET", "/bank/crash/balance?account=a" + std::to_string(a)).body);
      total += bal["balance"].get<int64_t>();
    }
    EXPECT_EQ(total, kAccounts * kStartBalance) << "after kill " << kill;
  }
  std::printf(
      "crash test: %d kills, %lld acknowledged writes checked, %d database checks, all ok\n",
      kKills, static_cast<long long>(checked_writes), databases_checked);
}

}  // namespace
}  // namespace dobj::test
