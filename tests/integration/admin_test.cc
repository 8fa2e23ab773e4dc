// The admin plane of the real example server: the token, and metrics that
// follow what the objects did.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <atomic>
#include <set>
#include <thread>

#include "testing/http_client.h"
#include "support/server_process.h"
#include "testing/ws_client.h"

namespace dobj::test {
namespace {

using Json = nlohmann::json;
const std::string kToken = "test-token-1234";

class AdminTest : public ::testing::Test {
 protected:
  void SetUp() override {
    server_ = std::make_unique<ServerProcess>(DOBJ_EXAMPLES_BIN, dir_.path(),
                                              std::vector<std::string>{"--admin-token", kToken});
    ASSERT_TRUE(server_->start()) << server_->output();
  }
  HttpResponse admin(const std::string& target, const std::string& token = kToken) {
    HttpClient c(server_->port());
    return c.request("GET", target, "", {{"Authorization", "Bearer " + token}});
  }
  Json metrics() {
    HttpResponse r = admin("/_dobj/metrics");
    EXPECT_EQ(r.status, 200) << r.body;
    return Json::parse(r.body);
  }

  TempDir dir_;
  std::unique_ptr<ServerProcess> server_;
};

TEST_F(AdminTest, WithoutTheTokenNothingIsServed) {
  for (const std::string target : {"/_dobj/metrics", "/metrics", "/_dobj/objects"}) {
    HttpResponse none = http(server_->port(), "GET", target);
    EXPECT_EQ(none.status, 401) << target;
    EXPECT_EQ(none.body.find("COUNTER"), std::string::npos);
    EXPECT_EQ(none.header("www-authenticate"), "Bearer");
    EXPECT_EQ(admin(target, "wrong-token-9999").status, 401) << target;
  }
  // The admin paths never reach the worker (which would answer 404 "no route").
  EXPECT_EQ(admin("/_dobj/nothing").status, 404);
}

// What top -H, ps -L and perf show for each of the server's threads.
TEST_F(AdminTest, TheServersThreadsAreNamedForWhatTheyDo) {
  ASSERT_EQ(http(server_->port(), "POST", "/counter/named/increment").status, 200);  // a flush
  std::multiset<std::string> names;
  std::string tasks = "/proc/" + std::to_string(server_->pid()) + "/task";
  for (const auto& t : std::filesystem::directory_iterator(tasks)) {
    std::ifstream comm(t.path() / "comm");
    std::string name;
    std::getline(comm, name);
    names.insert(name);
  }
  for (const char* want : {"dobj-shard-0", "dobj-flusher", "dobj-catalog", "dobj-alarms"}) {
    EXPECT_EQ(names.count(want), 1u) << want;
  }
}

TEST_F(AdminTest, MetricsFollowWhatTheObjectsDo) {
  Json before = metrics();
  EXPECT_EQ(before["namespaces"]["COUNTER"]["requests"], 0);
  for (int i = 0; i < 50; ++i) {
    ASSERT_EQ(http(server_->port(), "POST", "/counter/metered/increment").status, 200);
  }
  WsClient ws(server_->port(), "/room/metered/websocket");
  ASSERT_TRUE(ws.connected());
  ASSERT_TRUE(ws.send_text("hello"));
  ASSERT_EQ(ws.next_message(), "hello");
  Json m = metrics();
  Json counter = m["namespaces"]["COUNTER"];
  EXPECT_EQ(counter["requests"], 50);
  EXPECT_EQ(counter["activeObjects"], 1);
  EXPECT_EQ(counter["storageWrites"], 50);
  EXPECT_GE(counter["stateOperations"].get<int>(), 100);  // a get and a put each
  EXPECT_GT(counter["cpuTimeP95"].get<double>(), 0);
  EXPECT_GT(counter["requestsPerSecond"].get<double>(), 0);
  EXPECT_GT(counter["outputGateWaitP50"].get<double>(), 0);  // each answer waited for a flush
  Json room = m["namespaces"]["CHAT_ROOM"];
  EXPECT_EQ(room["websocketsOpen"], 1);
  EXPECT_EQ(room["websocketMessages"], 1);
  EXPECT_EQ(m["total"]["requests"].get<int>(), 51);  // the room's upgrade request too
  ASSERT_FALSE(m["topByRequests"].empty());
  EXPECT_EQ(m["topByRequests"][0]["name"], "metered");
  EXPECT_EQ(m["topByRequests"][0]["namespace"], "COUNTER");
  EXPECT_EQ(m["topByRequests"][0]["events"], 50);

  HttpResponse prom = admin("/metrics");
  EXPECT_EQ(prom.status, 200);
  EXPECT_NE(prom.body.find("dobj_requests_total{namespace=\"COUNTER\"} 50\n"), std::string::npos)
      << prom.body.substr(0, 3000);
  EXPECT_NE(prom.body.find("dobj_websockets_open{namespace=\"CHAT_ROOM\"} 1\n"),
            std::string::npos);
  EXPECT_NE(prom.body.find("dobj_storage_operations_total{namespace=\"COUNTER\",op=\"write\"} 50"),
            std::string::npos);
  EXPECT_NE(prom.body.find("# TYPE dobj_turn_seconds summary"), std::string::npos);
}

TEST(AdminToken, WithoutOneARandomTokenIsPrintedOnce) {
  TempDir dir;
  ServerProcess s(DOBJ_EXAMPLES_BIN, dir.path());
  ASSERT_TRUE(s.start());
  std::this_thread::sleep_for(std::chrono::milliseconds(100));
  std::string out = s.output();
  auto at = out.find("admin token");
  ASSERT_NE(at, std::string::npos) << out;
  std::string line = out.substr(at, out.find('\n', at) - at);
  std::string token = line.substr(line.rfind(' ') + 1);
  EXPECT_EQ(token.size(), 32u);
  HttpClient c(s.port());
  EXPECT_EQ(c.request("GET", "/_dobj/metrics", "", {{"Authorization", "Bearer " + token}}).status,
            200);
}

// --admin-listen: the admin plane on its own port and thread, and only there.
TEST(AdminListen, AdminPlaneMovesToItsOwnPort) {
  TempDir dir;
  ServerProcess server(DOBJ_EXAMPLES_BIN, dir.path(),
                       {"--admin-token", kToken, "--admin-listen", "127.0.0.1:0"});
  ASSERT_TRUE(server.start()) << server.output();
  std::string out = server.output();
  auto at = out.find("admin plane on 127.0.0.1:");
  ASSERT_NE(at, std::string::npos) << out;
  int admin_port = std::atoi(out.c_str() + at + std::string("admin plane on 127.0.0.1:").size());
  ASSERT_GT(admin_port, 0);
  ASSERT_NE(admin_port, server.port());
  ASSERT_EQ(http(server.port(), "POST", "/counter/c/increment").status, 200);
  HttpClient admin(admin_port);
  HttpResponse m = admin.request("GET", "/_dobj/metrics", "", {{"Authorization", "Bearer " + kToken}});
  EXPECT_EQ(m.status, 200);
  EXPECT_EQ(Json::parse(m.body)["namespaces"]["COUNTER"]["requests"], 1);
  EXPECT_EQ(admin.request("GET", "/_dobj/metrics").status, 401);
  // Not on the main port; no objects on the admin port.
  HttpClient front(server.port());
  HttpResponse main =
      front.request("GET", "/_dobj/metrics", "", {{"Authorization", "Bearer " + kToken}});
  EXPECT_EQ(main.status, 404);
  EXPECT_NE(main.body.find("admin plane listens on"), std::string::npos);
  EXPECT_EQ(http(admin_port, "POST", "/counter/c/increment").status, 404);
}

// Clients that increment one counter at once: the turns that end while a
// flush runs share one commit (coalescing), and every answered increment is
// counted; with --no-coalesce-commits each turn commits.
TEST(AdminCoalescing, ConcurrentWritesOfOneObjectShareCommitsAndLoseNone) {
  for (bool coalesce : {true, false}) {
    TempDir dir;
    std::vector<std::string> flags = {"--admin-token", kToken};
    if (!coalesce) flags.push_back("--no-coalesce-commits");
    ServerProcess server(DOBJ_EXAMPLES_BIN, dir.path(), flags);
    ASSERT_TRUE(server.start()) << server.output();
    constexpr int kClients = 8, kEach = 60;
    std::vector<std::thread> clients;
    std::atomic<int> answered{0};
    for (int c = 0; c < kClients; ++c) {
      clients.emplace_back([&] {
        HttpClient client(server.port());
        for (int i = 0; i < kEach; ++i) {
          if (client.request("POST", "/counter/shared/increment").status == 200) ++answered;
        }
      });
    }
    for (auto& t : clients) t.join();
    EXPECT_EQ(answered.load(), kClients * kEach);
    EXPECT_EQ(http(server.port(), "GET", "/counter/shared").body, std::to_string(kClients * kEach));
    HttpClient c(server.port());
    Json counter = Json::parse(
        c.request("GET", "/_dobj/metrics", "", {{"Authorization", "Bearer " + kToken}}).body)["namespaces"]["COUNTER"];
    int commits = counter["commits"].get<int>(), coalesced = counter["turnsCoalesced"].get<int>();
    if (coalesce) {
      EXPECT_GT(coalesced, 0);
      EXPECT_LT(commits, kClients * kEach);
    } else {
      EXPECT_EQ(coalesced, 0);
      EXPECT_EQ(commits, kClients * kEach);
    }
    // Every write went into exactly one commit, alone or with others.
    EXPECT_GE(commits + coalesced, kClients * kEach);
    // Restarted, the count is all there.
    ASSERT_EQ(server.stop(SIGTERM), 0);
    ServerProcess again(DOBJ_EXAMPLES_BIN, dir.path(), flags);
    ASSERT_TRUE(again.start()) << again.output();
    EXPECT_EQ(http(again.port(), "GET", "/counter/shared").body, std::to_string(kClients * kEach));
  }
}

// --timings off: counters keep counting, no times are taken.
TEST(AdminTimings, OffKeepsCountersAndDropsTimes) {
  TempDir dir;
  ServerProcess server(DOBJ_EXAMPLES_BIN, dir.path(), {"--admin-token", kToken, "--timings", "off"});
  ASSERT_TRUE(server.start()) << server.output();
  for (int i = 0; i < 20; ++i) ASSERT_EQ(http(server.port(), "POST", "/counter/t/increment").status, 200);
  HttpClient c(server.port());
  Json m = Json::parse(
      c.request("GET", "/_dobj/metrics", "", {{"Authorization", "Bearer " + kToken}}).body);
  Json counter = m["namespaces"]["COUNTER"];
  EXPECT_EQ(counter["requests"], 20);
  EXPECT_EQ(counter["storageWrites"], 20);
  EXPECT_EQ(counter["cpuTimeP95"], 0);
  EXPECT_EQ(counter["wallTimeP95"], 0);
  EXPECT_EQ(counter["outputGateWaitP99"], 0);
  ServerProcess bad(DOBJ_EXAMPLES_BIN, dir.path() + "/other", {"--timings", "maybe"});
  EXPECT_FALSE(bad.start(std::chrono::seconds(3)));
}

}  // namespace
}  // namespace dobj::test
