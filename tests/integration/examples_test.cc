// The example server as a user runs it: the real binary, real sockets, real
// files. Checks the HTTP contract of EXAMPLES.md and the durability promises.
#include <gtest/gtest.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>

#include <atomic>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <set>
#include <thread>

#include "support/browser.h"
#include "testing/http_client.h"
#include "support/server_fixture.h"
#include "support/server_process.h"
#include "testing/ws_client.h"

namespace dobj::test {
namespace {

using Json = nlohmann::json;

// The same examples served two ways: by the C++ example server, and as the
// JavaScript Worker of examples/js by dobj-js. Every test runs on both.
struct ExampleServer {
  std::string name;
  ServerCommand command;
  bool js = false;
};
void PrintTo(const ExampleServer& s, std::ostream* os) { *os << s.name; }

class ExamplesTest : public ::testing::TestWithParam<ExampleServer>, protected ServerFixture {
 protected:
  void SetUp() override { start(); }
  bool js() const { return GetParam().js; }
  void start(std::vector<std::string> args = {}) { start_server(GetParam().command, std::move(args)); }
};

TEST_P(ExamplesTest, CounterCountsAndReadsZeroWhenNew) {
  EXPECT_EQ(call("GET", "/counter/fresh").body, "0");
  EXPECT_EQ(call("POST", "/counter/c1/increment").body, "1");
  EXPECT_EQ(call("GET", "/counter/c1/increment").body, "2");
  HttpResponse r = call("GET", "/counter/c1");
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(r.body, "2");
  EXPECT_EQ(r.header("content-type").value_or("").rfind("text/plain", 0), 0u);
  EXPECT_EQ(call("GET", "/counter/c%20with%20space/increment").body, "1");
}

TEST_P(ExamplesTest, WrongMethodsAndUnknownRoutesAnswerJsonErrors) {
  HttpResponse r = call("PUT", "/counter/c1/increment");
  EXPECT_EQ(r.status, 405);
  EXPECT_TRUE(Json::parse(r.body).contains("error"));
  r = call("GET", "/nothing/here");
  EXPECT_EQ(r.status, 404);
  EXPECT_TRUE(Json::parse(r.body).contains("error"));
  EXPECT_EQ(call("GET", "/counter/c1/increment/extra").status, 404);
  EXPECT_EQ(call("GET", "/counter/%zz").status, 400);
}

TEST_P(ExamplesTest, HundredConcurrentIncrementsAnswerAPermutationOfOneToHundred) {
  std::vector<std::thread> threads;
  std::vector<std::string> answers(100);
  for (int i = 0; i < 100; ++i) {
    threads.emplace_back([&, i] { answers[i] = call("POST", "/counter/par/increment").body; });
  }
  for (auto& t : threads) t.join();
  std::set<std::string> got(answers.begin(), answers.end());
  std::set<std::string> want;
  for (int i = 1; i <= 100; ++i) want.insert(std::to_string(i));
  EXPECT_EQ(got, want);
  EXPECT_EQ(call("GET", "/counter/par").body, "100");
}

// Clients that increment one counter as fast as they can, each on its own
// keep-alive connection, until told to stop or the server stops answering.
class IncrementLoad {
 public:
  IncrementLoad(int port, const std::string& counter, int clients) {
    for (int c = 0; c < clients; ++c) {
      threads_.emplace_back([this, port, counter] {
        HttpClient client(port, std::chrono::seconds(2));
        while (!stop_) {
          HttpResponse r = client.request("POST", "/counter/" + counter + "/increment");
          if (r.status != 200) break;
          ++acked_;
        }
      });
    }
  }
  ~IncrementLoad() { stop(); }
  void wait_for_acks(int n) {
    while (acked_ < n) std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  // Stops the clients and waits for them.
  void stop() {
    stop_ = true;
    for (auto& t : threads_) {
      if (t.joinable()) t.join();
    }
  }
  // Increments that were answered with 200.
  int acked() const { return acked_.load(); }

 private:
  std::atomic<int> acked_{0};
  std::atomic<bool> stop_{false};
  std::vector<std::thread> threads_;
};

TEST_P(ExamplesTest, AcknowledgedIncrementsSurviveSigkill) {
  // Eight clients increment as fast as they can; the server is killed while
  // they run. Every increment answered before the kill must be there after.
  IncrementLoad load(port(), "kill", 8);
  load.wait_for_acks(300);
  EXPECT_EQ(server_->stop(SIGKILL), 128 + SIGKILL);
  load.stop();
  start();
  int after = std::stoi(call("GET", "/counter/kill").body);
  EXPECT_GE(after, load.acked());
  // At most one unanswered increment per client can have landed.
  EXPECT_LE(after, load.acked() + 8);
}

TEST_P(ExamplesTest, SigtermFinishesInFlightWorkAndExitsCleanly) {
  IncrementLoad load(port(), "term", 4);
  load.wait_for_acks(100);
  EXPECT_EQ(server_->stop(SIGTERM), 0) << server_->output();
  EXPECT_NE(server_->output().find("stopped; every request answered and every acknowledged "
                                   "write flushed"),
            std::string::npos)
      << server_->output();
  load.stop();
  start();
  EXPECT_GE(std::stoi(call("GET", "/counter/term").body), load.acked());
}

TEST_P(ExamplesTest, ASecondServerOnTheSameDataFolderRefusesToStart) {
  ServerProcess second(DOBJ_EXAMPLES_BIN, dir_.path());
  EXPECT_FALSE(second.start(std::chrono::seconds(5)));
  EXPECT_NE(second.output().find("in use by another dobj server"), std::string::npos)
      << second.output();
}

TEST_P(ExamplesTest, KvPutGetDeleteRoundTripJsonValues) {
  EXPECT_EQ(json("PUT", "/kv/k/a", R"({"x":[1,2,"s"]})"), Json({{"ok", true}}));
  EXPECT_EQ(json("GET", "/kv/k/a"), Json::parse(R"({"x":[1,2,"s"]})"));
  EXPECT_EQ(json("PUT", "/kv/k/n", "42"), Json({{"ok", true}}));
  EXPECT_EQ(json("GET", "/kv/k/n"), Json(42));
  EXPECT_EQ(json("PUT", "/kv/k/path%2Fkey", R"("v")"), Json({{"ok", true}}));
  EXPECT_EQ(json("GET", "/kv/k/path%2Fkey"), Json("v"));
  EXPECT_EQ(call("GET", "/kv/k/missing").status, 404);
  EXPECT_EQ(json("DELETE", "/kv/k/a"), Json({{"deleted", true}}));
  EXPECT_EQ(json("DELETE", "/kv/k/a"), Json({{"deleted", false}}));
  EXPECT_EQ(call("GET", "/kv/k/a").status, 404);
}

TEST_P(ExamplesTest, KvListFollowsStorageListRules) {
  for (const char* k : {"a", "b", "c", "pa", "pb", "z"}) {
    ASSERT_EQ(call("PUT", std::string("/kv/l/") + k, "1").status, 200);
  }
  auto keys = [&](const std::string& query) {
    std::vector<std::string> out;
    for (const auto& pair : json("GET", "/kv/l" + query)) out.push_back(pair[0]);
    return out;
  };
  EXPECT_EQ(keys(""), (std::vector<std::string>{"a", "b", "c", "pa", "pb", "z"}));
  EXPECT_EQ(keys("?prefix=p"), (std::vector<std::string>{"pa", "pb"}));
  EXPECT_EQ(keys("?start=b&end=pb"), (std::vector<std::string>{"b", "c", "pa"}));
  EXPECT_EQ(keys("?startAfter=b&limit=2"), (std::vector<std::string>{"c", "pa"}));
  EXPECT_EQ(keys("?reverse=true&limit=2"), (std::vector<std::string>{"z", "pb"}));
  EXPECT_EQ(json("GET", "/kv/l?prefix=pa")[0], Json::parse(R"(["pa",1])"));
  EXPECT_EQ(call("GET", "/kv/l?start=a&startAfter=a").status, 400);
  EXPECT_EQ(call("GET", "/kv/l?limit=0").status, 400);
  EXPECT_EQ(call("GET", "/kv/l?limit=abc").status, 400);
}

TEST_P(ExamplesTest, KvBatchesAndTheirLimit) {
  Json put = {{"put", {{"a", 1}, {"b", {{"x", 2}}}, {"c", "three"}}}};
  EXPECT_EQ(json("POST", "/kv/b/batch", put.dump()), Json({{"ok", true}}));
  EXPECT_EQ(json("POST", "/kv/b/batch", R"({"get":["a","c","nope"]})"),
            Json::parse(R"({"a":1,"c":"three"})"));
  EXPECT_EQ(json("POST", "/kv/b/batch", R"({"delete":["a","nope"]})"), Json({{"deleted", 1}}));
  Json big = {{"put", Json::object()}};
  for (int i = 0; i < 129; ++i) big["put"]["k" + std::to_string(i)] = i;
  HttpResponse r = call("POST", "/kv/b/batch", big.dump());
  EXPECT_EQ(r.status, 400);
  EXPECT_NE(r.body.find("128"), std::string::npos);
  EXPECT_EQ(call("GET", "/kv/b/k0").status, 404);  // nothing of it was written
  EXPECT_EQ(call("POST", "/kv/b/batch", "{not json").status, 400);
}

TEST_P(ExamplesTest, KvTransactionAppliesAllOrNothing) {
  ASSERT_EQ(call("PUT", "/kv/t/keep", "1").status, 200);
  HttpResponse r = call("POST", "/kv/t/transaction",
                        R"({"ops":[{"op":"put","key":"x","value":1},{"op":"delete","key":"keep"},)"
                        R"({"op":"fail"}]})");
  EXPECT_EQ(r.status, 409);
  EXPECT_EQ(Json::parse(r.body), Json({{"error", "rolled back"}}));
  EXPECT_EQ(call("GET", "/kv/t/x").status, 404);
  EXPECT_EQ(call("GET", "/kv/t/keep").status, 200);
  EXPECT_EQ(json("POST", "/kv/t/transaction",
                 R"({"ops":[{"op":"put","key":"x","value":1},{"op":"delete","key":"keep"}]})"),
            Json({{"ok", true}}));
  EXPECT_EQ(call("GET", "/kv/t/x").status, 200);
  EXPECT_EQ(call("GET", "/kv/t/keep").status, 404);
  EXPECT_EQ(call("POST", "/kv/t/transaction", R"({"ops":[{"op":"explode"}]})").status, 400);
}

TEST_P(ExamplesTest, KvDeleteAllEmptiesTheObject) {
  ASSERT_EQ(call("PUT", "/kv/d/a", "1").status, 200);
  EXPECT_EQ(json("DELETE", "/kv/d"), Json({{"ok", true}}));
  EXPECT_EQ(json("GET", "/kv/d"), Json::array());
}

TEST_P(ExamplesTest, KvOversizedKeysAndValuesAreRefusedAndWriteNothing) {
  std::string long_key(2049, 'k');
  HttpResponse r = call("PUT", "/kv/s/" + long_key, "1");
  EXPECT_EQ(r.status, 400);
  EXPECT_NE(r.body.find("2048"), std::string::npos);
  EXPECT_EQ(call("PUT", "/kv/s/" + std::string(2048, 'k'), "1").status, 200);
  std::string big_value = "\"" + std::string(131072, 'v') + "\"";
  r = call("PUT", "/kv/s/big", big_value);
  EXPECT_EQ(r.status, 400);
  EXPECT_NE(r.body.find("131072"), std::string::npos);
  EXPECT_EQ(call("GET", "/kv/s/big").status, 404);
  EXPECT_EQ(call("PUT", "/kv/s/bad", "{oops").status, 400);
}

TEST_P(ExamplesTest, KvDataSurvivesARestart) {
  ASSERT_EQ(call("PUT", "/kv/r/a", R"({"v":1})").status, 200);
  EXPECT_EQ(server_->stop(SIGKILL), 128 + SIGKILL);
  start();
  EXPECT_EQ(json("GET", "/kv/r/a"), Json({{"v", 1}}));
}

TEST_P(ExamplesTest, KeepAliveAndPipelinedRequestsAreAnsweredInOrder) {
  HttpClient c(port());
  EXPECT_EQ(c.request("POST", "/counter/pipe/increment").body, "1");
  EXPECT_EQ(c.request("POST", "/counter/pipe/increment").body, "2");  // same connection
  std::string two =
      "POST /counter/pipe/increment HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n"
      "GET /counter/pipe HTTP/1.1\r\nHost: x\r\n\r\n";
  ASSERT_TRUE(c.send_raw(two));
  EXPECT_EQ(c.read_response().body, "3");
  EXPECT_EQ(c.read_response().body, "3");
}

// A keep-alive connection whose requests go to objects of another shard
// moves to that shard between two requests (connection affinity); requests
// it had already sent (pipelined) move with it and are answered in order.
TEST_P(ExamplesTest, ConnectionsMoveToTheirObjectsShardAndLoseNoPipelinedRequest) {
  server_->stop(SIGTERM);
  start({"--shards", "4", "--admin-token", "affinity-token"});
  constexpr int kConnections = 16, kEach = 5;
  std::string batch;
  for (int i = 0; i < kEach; ++i) {
    batch += "POST /counter/affinity/increment HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n";
  }
  std::vector<std::unique_ptr<HttpClient>> clients;
  for (int c = 0; c < kConnections; ++c) {
    clients.push_back(std::make_unique<HttpClient>(port()));
    ASSERT_TRUE(clients.back()->send_raw(batch));
  }
  std::set<int> seen;
  for (auto& c : clients) {
    int last = 0;
    for (int i = 0; i < kEach; ++i) {
      HttpResponse r = c->read_response();
      ASSERT_EQ(r.status, 200) << r.body;
      int v = std::stoi(r.body);
      EXPECT_GT(v, last) << "one connection's answers come in its order";
      last = v;
      EXPECT_TRUE(seen.insert(v).second) << v << " answered twice";
    }
    // The connection still serves after its move.
    EXPECT_EQ(c->request("GET", "/counter/affinity").status, 200);
  }
  EXPECT_EQ(seen.size(), size_t{kConnections * kEach});
  EXPECT_EQ(*seen.rbegin(), kConnections * kEach);
  EXPECT_EQ(call("GET", "/counter/affinity").body, std::to_string(kConnections * kEach));
  HttpClient admin(port());
  HttpResponse m = admin.request("GET", "/_dobj/metrics", "", {{"Authorization", "Bearer affinity-token"}});
  ASSERT_EQ(m.status, 200) << m.body;
  // 16 connections spread by the kernel over 4 shards: some were accepted
  // away from the counter's shard (all on it: one chance in 4^16).
  EXPECT_GE(Json::parse(m.body)["connections"]["moved"].get<int>(), 1) << m.body;
}

// --affinity-max-load 0: connections stay on the shard that accepted them,
// and their requests reach the object all the same.
TEST_P(ExamplesTest, WithAffinityOffNoConnectionMoves) {
  server_->stop(SIGTERM);
  start({"--shards", "4", "--admin-token", "affinity-token", "--affinity-max-load", "0"});
  std::vector<std::unique_ptr<HttpClient>> clients;
  for (int c = 0; c < 16; ++c) clients.push_back(std::make_unique<HttpClient>(port()));
  for (int i = 0; i < 5; ++i) {
    for (auto& c : clients) ASSERT_EQ(c->request("POST", "/counter/stay/increment").status, 200);
  }
  EXPECT_EQ(call("GET", "/counter/stay").body, "80");
  HttpClient admin(port());
  HttpResponse m = admin.request("GET", "/_dobj/metrics", "", {{"Authorization", "Bearer affinity-token"}});
  ASSERT_EQ(m.status, 200) << m.body;
  EXPECT_EQ(Json::parse(m.body)["connections"]["moved"].get<int>(), 0) << m.body;
}

TEST_P(ExamplesTest, MalformedHttpGetsA400AndTheServerGoesOn) {
  for (const std::string& junk :
       {std::string("NOT HTTP AT ALL\r\n\r\n"), std::string("GET / HTTP/1.1\r\nBad Header\r\n\r\n"),
        std::string("GET / HTTP/1.1\r\nContent-Length: x\r\n\r\n"),
        std::string("\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03", 11) + "\r\n\r\n"}) {
    HttpClient c(port());
    ASSERT_TRUE(c.send_raw(junk));
    HttpResponse r = c.read_response();
    EXPECT_EQ(r.status, 400) << junk;
    EXPECT_TRUE(c.closed_by_server());
  }
  EXPECT_EQ(call("GET", "/counter/alive").status, 200);
}

TEST_P(ExamplesTest, OversizedHeadersGet431) {
  HttpResponse r;
  HttpClient c(port());
  r = c.request("GET", "/counter/h", "", {{"X-Big", std::string(20000, 'h')}});
  EXPECT_EQ(r.status, 431);
  EXPECT_EQ(call("GET", "/counter/h").status, 200);
}

TEST_P(ExamplesTest, SqlProbeRunsQueriesAndReportsCounts) {
  EXPECT_EQ(
      call("POST", "/sql/q", R"j({"query":"CREATE TABLE t(id INTEGER PRIMARY KEY, v TEXT)"})j")
          .status,
      200);
  Json ins = json("POST", "/sql/q",
                  R"j({"query":"INSERT INTO t(v) VALUES (?), (?)","params":["a",null]})j");
  EXPECT_EQ(ins["rowsWritten"], 2);
  Json sel =
      json("POST", "/sql/q", R"j({"query":"SELECT id, v FROM t WHERE id >= ?","params":[1]})j");
  EXPECT_EQ(sel["columns"], Json::parse(R"(["id","v"])"));
  EXPECT_EQ(sel["rows"], Json::parse(R"([[1,"a"],[2,null]])"));
  EXPECT_GE(sel["rowsRead"].get<int>(), 2);
  EXPECT_EQ(sel["rowsWritten"], 0);
}

TEST_P(ExamplesTest, SqlProbeRefusesForbiddenStatementsWith400) {
  for (const char* q :
       {"BEGIN", "COMMIT", "ROLLBACK", "SAVEPOINT x", "ATTACH 'x' AS y", "DETACH y",
        "PRAGMA journal_mode", "SELECT * FROM _dobj_kv", "CREATE TEMP TABLE x(y)", "SELEKT 1"}) {
    HttpResponse r = call("POST", "/sql/q", Json({{"query", q}}).dump());
    EXPECT_EQ(r.status, 400) << q;
    EXPECT_FALSE(Json::parse(r.body)["error"].get<std::string>().empty()) << q;
  }
  EXPECT_EQ(json("POST", "/sql/q", R"j({"query":"PRAGMA table_list"})j")["rows"].size() > 0, true);
  EXPECT_EQ(call("POST", "/sql/q", "not json").status, 400);
  EXPECT_EQ(call("GET", "/sql/q").status, 405);
}

TEST_P(ExamplesTest, BankDepositsTransfersAndRefusesOverdrafts) {
  EXPECT_EQ(json("GET", "/bank/b/balance?account=nobody"), Json({{"balance", 0}}));
  EXPECT_EQ(json("POST", "/bank/b/deposit?account=alice&amount=100"), Json({{"balance", 100}}));
  EXPECT_EQ(json("POST", "/bank/b/transfer?from=alice&to=bob&amount=30"),
            Json({{"from", 70}, {"to", 30}}));
  HttpResponse r = call("POST", "/bank/b/transfer?from=bob&to=alice&amount=31");
  EXPECT_EQ(r.status, 409);
  EXPECT_EQ(Json::parse(r.body), Json({{"error", "Insufficient funds"}}));
  EXPECT_EQ(json("GET", "/bank/b/balance?account=bob"), Json({{"balance", 30}}));
  EXPECT_EQ(json("GET", "/bank/b/balance?account=alice"), Json({{"balance", 70}}));
  for (const char* bad : {"/bank/b/deposit?account=a&amount=x", "/bank/b/deposit?account=a",
                          "/bank/b/deposit?account=a&amount=-5", "/bank/b/deposit?amount=5",
                          "/bank/b/transfer?from=a&amount=5"}) {
    EXPECT_EQ(call("POST", bad).status, 400) << bad;
  }
  EXPECT_EQ(call("GET", "/bank/b/deposit?account=a&amount=1").status, 405);
}

TEST_P(ExamplesTest, ConcurrentTransfersNeverChangeTheTotal) {
  const int kAccounts = 5;
  for (int a = 0; a < kAccounts; ++a) {
    ASSERT_EQ(call("POST", "/bank/t/deposit?account=a" + std::to_string(a) + "&amount=100").status,
              200);
  }
  std::vector<std::thread> threads;
  for (int t = 0; t < 16; ++t) {
    threads.emplace_back([&, t] {
      HttpClient c(port());
      for (int i = 0; i < 25; ++i) {
        int from = (t + i) % kAccounts, to = (t * 7 + i * 3 + 1) % kAccounts;
        HttpResponse r = c.request("POST", "/bank/t/transfer?from=a" + std::to_string(from) +
                                               "&to=a" + std::to_string(to) +
                                               "&amount=" + std::to_string(1 + (i * 13) % 60));
        EXPECT_TRUE(r.status == 200 || r.status == 409) << r.status << r.body;
      }
    });
  }
  for (auto& t : threads) t.join();
  int64_t total = 0;
  for (int a = 0; a < kAccounts; ++a) {
    total += json("GET", "/bank/t/balance?account=a" + std::to_string(a))["balance"].get<int64_t>();
  }
  EXPECT_EQ(total, 100 * kAccounts);
}

TEST_P(ExamplesTest, RateLimiterAllowsTheFirstNCallsOfAWindow) {
  EXPECT_EQ(json("POST", "/ratelimit/k1?limit=3"),
            Json::parse(R"({"allowed":true,"remaining":2})"));
  EXPECT_EQ(json("POST", "/ratelimit/k1?limit=3"),
            Json::parse(R"({"allowed":true,"remaining":1})"));
  EXPECT_EQ(json("POST", "/ratelimit/k1?limit=3"),
            Json::parse(R"({"allowed":true,"remaining":0})"));
  HttpResponse r = call("POST", "/ratelimit/k1?limit=3");
  EXPECT_EQ(r.status, 429);
  EXPECT_EQ(Json::parse(r.body), Json::parse(R"({"allowed":false,"remaining":0})"));
  // Another key has its own window, and the window survives a restart.
  EXPECT_EQ(json("POST", "/ratelimit/k2?limit=3")["remaining"], 2);
  EXPECT_EQ(server_->stop(SIGKILL), 128 + SIGKILL);
  start();
  EXPECT_EQ(call("POST", "/ratelimit/k1?limit=3").status, 429);
  EXPECT_EQ(call("POST", "/ratelimit/k1?limit=x").status, 400);
  EXPECT_EQ(call("GET", "/ratelimit/k1?limit=3").status, 405);
}

TEST_P(ExamplesTest, ShardedCounterSumsItsTenShards) {
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&] {
      HttpClient c(port());
      for (int i = 0; i < 25; ++i)
        EXPECT_EQ(c.request("POST", "/sharded/likes/increment").body, "ok");
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(call("GET", "/sharded/likes").body, "100");
  EXPECT_EQ(call("GET", "/sharded/other").body, "0");
  // The increments really are spread: more than one shard object has a file.
  int shard_files = 0;
  for (const auto& e :
       std::filesystem::recursive_directory_iterator(dir_.path() + "/objects/SHARDED_COUNTER")) {
    if (e.path().extension() == ".sqlite") ++shard_files;
  }
  EXPECT_GT(shard_files, 5);
}

class ExamplesLimitsTest : public ExamplesTest {
 protected:
  void SetUp() override {
    start({"--max-body-bytes", "1000", "--connection-idle-timeout-ms", "300", "--max-object-bytes",
           "65536"});
  }
};

TEST_P(ExamplesLimitsTest, AFullDiskResetsTheObjectAndKeepsItsCommittedData) {
  ASSERT_EQ(call("POST", "/sql/full", R"j({"query":"CREATE TABLE t(v)"})j").status, 200);
  ASSERT_EQ(call("POST", "/sql/full", R"j({"query":"INSERT INTO t VALUES ('kept')"})j").status,
            200);
  HttpResponse r;
  int accepted = 0;
  for (int i = 0; i < 100; ++i) {
    r = call("POST", "/sql/full", R"j({"query":"INSERT INTO t VALUES (randomblob(3000))"})j");
    if (r.status != 200) break;
    ++accepted;
  }
  EXPECT_EQ(r.status, 507) << r.body;
  Json err = Json::parse(r.body);
  EXPECT_EQ(err["reset"], true);
  EXPECT_NE(err["error"].get<std::string>().find("full"), std::string::npos) << r.body;
  Json count = json("POST", "/sql/full", R"j({"query":"SELECT count(*) FROM t"})j");
  EXPECT_EQ(count["rows"][0][0], 1 + accepted);
}

TEST_P(ExamplesLimitsTest, OversizedBodiesGet413AndWriteNothing) {
  HttpResponse r = call("PUT", "/kv/x/a", "\"" + std::string(2000, 'a') + "\"");
  EXPECT_EQ(r.status, 413);
  EXPECT_EQ(call("GET", "/kv/x/a").status, 404);
}

TEST_P(ExamplesLimitsTest, IdleConnectionsGet408AndAreClosed) {
  HttpClient c(port());
  ASSERT_TRUE(c.send_raw("GET /counter/idle HTTP/1.1\r\nHost: x\r\n"));  // never finished
  HttpResponse r = c.read_response();
  EXPECT_EQ(r.status, 408);
  EXPECT_TRUE(c.closed_by_server());
}

// The timeout counts from a connection's last request, not its first: a
// client sending a request every 100 ms keeps its connection for three times
// the 300 ms timeout, then gets the 408 once it stops.
TEST_P(ExamplesLimitsTest, AConnectionInUseOutlivesTheIdleTimeout) {
  HttpClient c(port());
  auto start = std::chrono::steady_clock::now();
  for (int i = 0; std::chrono::steady_clock::now() - start < std::chrono::milliseconds(900); ++i) {
    ASSERT_TRUE(c.send_raw("GET /counter/busy HTTP/1.1\r\nHost: x\r\n\r\n")) << "request " << i;
    HttpResponse r = c.read_response();
    ASSERT_EQ(r.status, 200) << "request " << i;
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  ASSERT_TRUE(c.send_raw("GET /counter/busy HTTP/1.1\r\n"));  // never finished
  EXPECT_EQ(c.read_response().status, 408);
  EXPECT_TRUE(c.closed_by_server());
}

// A client that sends requests but never reads the answers: once the
// server's writes stall for the idle timeout, it closes the connection
// instead of holding it (and the answers) forever; others are served meanwhile.
TEST_P(ExamplesLimitsTest, AClientThatNeverReadsIsClosedAfterTheTimeout) {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  ASSERT_GE(fd, 0);
  int small = 4096;
  ::setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &small, sizeof small);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(port()));
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ASSERT_EQ(::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
  // Answers of ~900 bytes, far more than the socket buffers hold (4 MiB),
  // sent from a thread: the server reads the next request only after it
  // wrote the last answer, so it stalls after ~4,500 of them.
  ASSERT_EQ(call("PUT", "/kv/unread/v", "\"" + std::string(900, 'v') + "\"").status, 200);
  constexpr int kRequests = 20'000;
  std::thread sender([fd] {
    std::string batch;
    for (int i = 0; i < 1000; ++i) batch += "GET /kv/unread/v HTTP/1.1\r\nHost: x\r\n\r\n";
    for (int i = 0; i < kRequests / 1000; ++i) {
      if (!send_all(fd, batch)) return;  // the server closed: expected
    }
  });
  // Until the server ends the connection (a reset: it closed with requests
  // unread), at most 10 s; meanwhile it serves others.
  EXPECT_EQ(call("GET", "/counter/other").status, 200);
  pollfd p{fd, POLLRDHUP, 0};
  for (int waited = 0; waited < 10'000 && !(p.revents & (POLLRDHUP | POLLHUP | POLLERR));
       waited += 50) {
    p.revents = 0;
    ::poll(&p, 1, 50);
  }
  // Drain what reached us: the answers stop short of the requests, then EOF
  // (or a reset), within a few seconds.
  timeval tv{5, 0};
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  std::string data;
  char buf[65536];
  bool ended = false;
  for (;;) {
    ssize_t n = ::recv(fd, buf, sizeof buf, 0);
    if (n > 0) {
      data.append(buf, static_cast<size_t>(n));
      continue;
    }
    ended = n == 0 || errno == ECONNRESET;
    break;
  }
  ::shutdown(fd, SHUT_RDWR);
  sender.join();
  ::close(fd);
  EXPECT_TRUE(ended) << "the connection was still open after the server's writes stalled";
  size_t answers = 0;
  for (size_t at = data.find("HTTP/1.1 200"); at != std::string::npos;
       at = data.find("HTTP/1.1 200", at + 1)) {
    ++answers;
  }
  EXPECT_LT(answers, static_cast<size_t>(kRequests));
}

// The server frames every answer itself: Content-Length, and Connection as
// HTTP/1.0 and 1.1 want it; pipelined requests are answered in order.
TEST_P(ExamplesTest, AnswersAreFramedForHttp10And11AndPipelining) {
  {
    HttpClient c(port());
    ASSERT_TRUE(c.send_raw("POST /counter/framing/increment HTTP/1.0\r\nHost: x\r\n\r\n"));
    HttpResponse r = c.read_response();
    EXPECT_EQ(r.status, 200);
    EXPECT_EQ(r.body, "1");
    EXPECT_EQ(r.header("content-length"), "1");
    EXPECT_EQ(r.header("server"), "dobj");
    EXPECT_TRUE(c.closed_by_server());
  }
  {
    HttpClient c(port());
    ASSERT_TRUE(c.send_raw(
        "GET /counter/framing HTTP/1.0\r\nHost: x\r\nConnection: keep-alive\r\n\r\n"));
    HttpResponse r = c.read_response();
    EXPECT_EQ(r.header("connection"), "keep-alive");
    EXPECT_EQ(r.body, "1");
    ASSERT_TRUE(c.send_raw("GET /counter/framing HTTP/1.0\r\nHost: x\r\n\r\n"));
    EXPECT_EQ(c.read_response().body, "1");
    EXPECT_TRUE(c.closed_by_server());
  }
  {
    HttpClient c(port());
    ASSERT_TRUE(c.send_raw(
        "POST /counter/framing/increment HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n"
        "POST /counter/framing/increment HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n"
        "GET /counter/framing HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"));
    HttpResponse first = c.read_response(), second = c.read_response(), last = c.read_response();
    EXPECT_EQ(first.body, "2");
    EXPECT_FALSE(first.header("connection").has_value());
    EXPECT_EQ(second.body, "3");
    EXPECT_EQ(last.body, "3");
    EXPECT_EQ(last.header("connection"), "close");
    EXPECT_TRUE(c.closed_by_server());
  }
}

TEST_P(ExamplesTest, ChatRoomRelaysEveryTextMessageToEverySocketInOneOrder) {
  std::vector<std::unique_ptr<WsClient>> clients;
  for (int i = 0; i < 3; ++i) {
    clients.push_back(std::make_unique<WsClient>(port(), "/room/lobby/websocket"));
    ASSERT_TRUE(clients.back()->connected()) << clients.back()->upgrade_response().status;
  }
  EXPECT_EQ(call("GET", "/room/lobby/count").body, "3");
  // Two senders at once: every socket sees the same six messages, in one order.
  std::thread a([&] {
    for (int i = 0; i < 3; ++i) clients[0]->send_text("a" + std::to_string(i));
  });
  std::thread b([&] {
    for (int i = 0; i < 3; ++i) clients[1]->send_text("b" + std::to_string(i));
  });
  a.join();
  b.join();
  std::vector<std::vector<std::string>> seen(3);
  for (int c = 0; c < 3; ++c) {
    for (int i = 0; i < 6; ++i) {
      auto m = clients[c]->next_message();
      ASSERT_TRUE(m) << "client " << c << " message " << i;
      seen[c].push_back(*m);
    }
  }
  EXPECT_EQ(seen[0], seen[1]);
  EXPECT_EQ(seen[0], seen[2]);
  // Each sender's messages stay in its order.
  std::vector<std::string> from_a;
  for (auto& m : seen[0]) {
    if (m[0] == 'a') from_a.push_back(m);
  }
  EXPECT_EQ(from_a, (std::vector<std::string>{"a0", "a1", "a2"}));
  // Another room hears nothing of it.
  WsClient other(port(), "/room/elsewhere/websocket");
  ASSERT_TRUE(other.connected());
  EXPECT_EQ(other.next(std::chrono::milliseconds(100)).kind, internal::ws::Event::kNeedMore);
  // A socket that leaves is no longer counted.
  clients[2]->send_close(1000);
  clients[2]->await_eof();
  for (int i = 0; i < 100 && call("GET", "/room/lobby/count").body != "2"; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  EXPECT_EQ(call("GET", "/room/lobby/count").body, "2");
}

TEST_P(ExamplesTest, ChatRoomWantsAnUpgrade) {
  HttpResponse r = call("GET", "/room/lobby/websocket");
  EXPECT_EQ(r.status, 426);
  EXPECT_EQ(call("GET", "/room/lobby/count").body, "0");
}

// The chat page, in a real browser: headless Chromium opens /, joins a room
// and says hello; a test client in the same room hears it, and the page shows
// the room's echo.
TEST_P(ExamplesTest, ChatPageWorksInHeadlessChromium) {
  ASSERT_TRUE(std::filesystem::exists(kChromium)) << "install chromium (scripts/deps.sh does)";
  HttpResponse page = call("GET", "/");
  EXPECT_EQ(page.status, 200);
  EXPECT_EQ(page.header("content-type").value_or("").rfind("text/html", 0), 0u);
  // Chromium takes seconds to start on a loaded machine (CI runs the ASan
  // build beside it): the listener waits up to a minute for the message.
  WsClient listener(port(), "/room/browser/websocket", std::chrono::seconds(60));
  ASSERT_TRUE(listener.connected());
  std::optional<std::string> dom;
  std::thread browser([&] {
    dom = chromium_dom("http://127.0.0.1:" + std::to_string(port()) +
                               "/?room=browser&name=robot&say=hello",
                       "<li>robot: hello</li>", std::chrono::seconds(60));
  });
  auto heard = listener.next_message();
  browser.join();
  EXPECT_EQ(heard, "robot: hello");
  ASSERT_TRUE(dom);
  EXPECT_NE(dom->find("<li>robot: hello</li>"), std::string::npos) << dom->substr(0, 2000);
  EXPECT_NE(dom->find("In room browser as robot."), std::string::npos);
}

std::vector<ExampleServer> example_servers() {
  std::vector<ExampleServer> out{{"Cpp", {DOBJ_EXAMPLES_BIN, {}}, false}};
#ifdef DOBJ_JS_BIN
  out.push_back({"Js", {DOBJ_JS_BIN, {DOBJ_JS_EXAMPLES}}, true});
#endif
  return out;
}
std::string server_name(const ::testing::TestParamInfo<ExampleServer>& info) {
  return info.param.name;
}
INSTANTIATE_TEST_SUITE_P(Servers, ExamplesTest, ::testing::ValuesIn(example_servers()), server_name);
INSTANTIATE_TEST_SUITE_P(Servers, ExamplesLimitsTest, ::testing::ValuesIn(example_servers()),
                         server_name);

}  // namespace
}  // namespace dobj::test
