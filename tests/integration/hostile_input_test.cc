// The example server against input an attacker would send: each test sends
// something that once crashed, hung or bloated the node, and checks that the
// client gets a clear error, nothing is written, and the node goes on serving.
#include <gtest/gtest.h>

#include <signal.h>
#include <sqlite3.h>
#include <unistd.h>

#include <fstream>
#include <nlohmann/json.hpp>
#include <string>
#include <thread>

#include "testing/http_client.h"
#include "support/server_process.h"

namespace dobj::test {
namespace {

using Json = nlohmann::json;
const std::string kToken = "hostile-token";

// Under AddressSanitizer freed memory waits in a quarantine, so the server's
// resident size says nothing about what it keeps: memory bounds are checked
// in the plain build only.
#if defined(__SANITIZE_ADDRESS__)
constexpr bool kRssIsMeaningful = false;
#else
constexpr bool kRssIsMeaningful = true;
#endif

class HostileInputTest : public ::testing::Test {
 protected:
  void SetUp() override { start(); }
  void start(std::vector<std::string> args = {}) {
    args.insert(args.begin(), {"--admin-token", kToken});
    server_ = std::make_unique<ServerProcess>(DOBJ_EXAMPLES_BIN, dir_.path(), args);
    ASSERT_TRUE(server_->start()) << server_->output();
  }
  int port() const { return server_->port(); }
  HttpResponse call(const std::string& method, const std::string& target,
                    const std::string& body = "") {
    return http(port(), method, target, body);
  }
  HttpResponse admin(const std::string& method, const std::string& target,
                     const std::string& body = "") {
    HttpClient c(port());
    return c.request(method, target, body, {{"Authorization", "Bearer " + kToken}});
  }
  // The error message of a JSON error answer ("" when the body is not one).
  static std::string error_of(const HttpResponse& r) {
    Json j = Json::parse(r.body, nullptr, false);
    return j.is_object() && j.contains("error") && j["error"].is_string()
               ? j["error"].get<std::string>()
               : "";
  }
  // The node still serves: a counter increments.
  void expect_alive() {
    HttpResponse r = call("POST", "/counter/alive/increment");
    EXPECT_EQ(r.status, 200) << "the server stopped answering\n" << server_->output();
  }

  long rss_kib() { return server_->rss_kib(); }
  // Sends head, then up to `bytes` more of filler in pieces until the server
  // stops taking them; returns the answer.
  HttpResponse send_endless(const std::string& head, size_t bytes) {
    HttpClient c(port(), std::chrono::seconds(10));
    EXPECT_TRUE(c.send_raw(head));
    const std::string piece(64 * 1024, 'e');
    for (size_t sent = 0; sent < bytes; sent += piece.size()) {
      if (!c.send_raw(piece)) break;
    }
    return c.read_response();
  }

  TempDir dir_;
  std::unique_ptr<ServerProcess> server_;
};

std::string nested_arrays(int depth) {
  return std::string(static_cast<size_t>(depth), '[') + std::string(static_cast<size_t>(depth), ']');
}

TEST_F(HostileInputTest, DeeplyNestedJsonIsRefusedAtEveryEntryPoint) {
  const std::string deep = nested_arrays(100'000);
  HttpResponse r = call("PUT", "/kv/a/k", deep);
  EXPECT_EQ(r.status, 400);
  EXPECT_NE(error_of(r).find("nested deeper than"), std::string::npos) << r.body;
  EXPECT_EQ(call("GET", "/kv/a/k").status, 404) << "nothing was written";

  r = call("POST", "/sql/a", R"({"query":"SELECT ?","params":[)" + deep + "]}");
  EXPECT_EQ(r.status, 400);
  EXPECT_NE(error_of(r).find("nested deeper than"), std::string::npos) << r.body;

  r = call("POST", "/kv/a/batch", R"({"put":{"k":)" + deep + "}}");
  EXPECT_EQ(r.status, 400);
  r = call("POST", "/webhooks/q", deep);
  EXPECT_EQ(r.status, 400);

  r = admin("POST", "/_dobj/objects/KV/name:a/sql", R"({"query":)" + deep + "}");
  EXPECT_EQ(r.status, 400);
  r = admin("POST", "/_dobj/mcp", deep);
  EXPECT_EQ(r.status, 400);
  expect_alive();

  // As deep as the limit still round-trips.
  const std::string ok = nested_arrays(256);
  EXPECT_EQ(call("PUT", "/kv/a/k", ok).status, 200);
  EXPECT_EQ(call("GET", "/kv/a/k").body, ok);
}

TEST_F(HostileInputTest, InspectingAnObjectWithNoKeysShownAnswersInsteadOfCrashing) {
  ASSERT_EQ(call("PUT", "/kv/insp/a", "1").status, 200);
  ASSERT_EQ(call("PUT", "/kv/insp/b", "2").status, 200);
  HttpResponse r = admin("GET", "/_dobj/objects/KV/name:insp?keys=0");
  ASSERT_EQ(r.status, 200) << r.body;
  Json j = Json::parse(r.body);
  EXPECT_TRUE(j["keys"].empty());
  EXPECT_EQ(j["nextKey"], "") << "more keys follow, from the start";
  r = admin("GET", "/_dobj/objects/KV/name:insp?keys=1");
  j = Json::parse(r.body);
  ASSERT_EQ(j["keys"].size(), 1u);
  EXPECT_EQ(j["nextKey"], "a");
  expect_alive();
}

TEST_F(HostileInputTest, AnEndlessChunkExtensionOrTrailerIsCutOffWithA431) {
  expect_alive();
  long before = rss_kib();
  const std::string head =
      "POST /kv/chunky/k HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n";
  HttpResponse r = send_endless(head + "1;e=", 32 << 20);
  EXPECT_EQ(r.status, 431) << r.body;
  r = send_endless(head + "1\r\n1\r\n0\r\nX-Trailer: ", 32 << 20);
  EXPECT_EQ(r.status, 431) << r.body;
  long after = rss_kib();
  if (kRssIsMeaningful) {
    EXPECT_LT(after - before, 16 * 1024) << "the server kept what the client sent: " << before
                                         << " -> " << after << " KiB";
  }
  EXPECT_EQ(call("GET", "/kv/chunky/k").status, 404);
  expect_alive();
}

TEST_F(HostileInputTest, ATransferEncodingThatDoesNotEndInChunkedIsRefusedNotSmuggled) {
  HttpClient c(port());
  ASSERT_TRUE(c.send_raw(
      "POST /kv/te/k HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip\r\n\r\n"
      "POST /counter/smuggled/increment HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n"));
  HttpResponse r = c.read_response();
  EXPECT_EQ(r.status, 400);
  EXPECT_NE(error_of(r).find("chunked"), std::string::npos) << r.body;
  EXPECT_TRUE(c.closed_by_server());
  EXPECT_EQ(call("GET", "/counter/smuggled").body, "0");
  // chunked, then another coding: also refused.
  HttpClient d(port());
  ASSERT_TRUE(d.send_raw(
      "POST /kv/te/k HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked, gzip\r\n\r\n"));
  EXPECT_EQ(d.read_response().status, 400);
  expect_alive();
}

TEST_F(HostileInputTest, AnEndlessSqlQueryIsInterruptedAndItsShardGoesOn) {
  server_->stop(SIGKILL);
  start({"--cpu-limit-ms", "300", "--shards", "1"});
  // One shard: the query and the counter share a thread.
  std::thread other([&] {
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
    expect_alive();
  });
  auto begin = std::chrono::steady_clock::now();
  HttpResponse r = call("POST", "/sql/endless",
                        R"({"query":"WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 )"
                        R"(FROM n) SELECT count(*) FROM n"})");
  auto took = std::chrono::steady_clock::now() - begin;
  other.join();
  EXPECT_NE(r.status, 200);
  // Interrupted at the limit: the query's own error, or, when the rest of the
  // turn pushed it just over (slow builds), the turn's CPU-limit reset.
  std::string why = error_of(r);
  EXPECT_TRUE(why.find("CPU limit") != std::string::npos ||
              why.find("of CPU; the limit is 300 ms") != std::string::npos)
      << r.body;
  EXPECT_LT(took, std::chrono::seconds(3));
  // Values too large for memory are refused before they are made.
  r = call("POST", "/sql/endless", R"j({"query":"SELECT zeroblob(20000000)"})j");
  EXPECT_EQ(r.status, 400);
  EXPECT_NE(error_of(r).find("too big"), std::string::npos) << r.body;
  expect_alive();
}

TEST_F(HostileInputTest, ASqlQueryWithANulCharacterGetsA400) {
  HttpResponse r = call("POST", "/sql/nul", R"({"query":"\u0000SELECT 1"})");
  EXPECT_EQ(r.status, 400);
  EXPECT_NE(error_of(r).find("NUL"), std::string::npos) << r.body;
  expect_alive();
}

TEST_F(HostileInputTest, AFailingSqlQueryOfSeveralStatementsWritesNothing) {
  HttpResponse r = call("POST", "/sql/multi",
                        R"({"query":"CREATE TABLE a(x); INSERT INTO a VALUES(1); SELEC oops"})");
  EXPECT_EQ(r.status, 400);
  r = call("POST", "/sql/multi", R"({"query":"SELECT count(*) FROM sqlite_schema WHERE name='a'"})");
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(Json::parse(r.body)["rows"][0][0], 0);
}

TEST_F(HostileInputTest, ObjectNamesOverTheLimitGetA400) {
  HttpResponse r = call("POST", "/counter/" + std::string(1025, 'n') + "/increment");
  EXPECT_EQ(r.status, 400);
  EXPECT_NE(error_of(r).find("at most 1024 bytes"), std::string::npos) << r.body;
  r = call("POST", "/counter/" + std::string(1024, 'n') + "/increment");
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(r.body, "1");
  r = admin("GET", "/_dobj/objects/COUNTER/name:" + std::string(1025, 'n'));
  EXPECT_EQ(r.status, 400);
  // Names as large as the header limit allows, many times: refused, and the
  // server does not keep them.
  expect_alive();
  long before = rss_kib();
  HttpClient c(port());
  for (int i = 0; i < 2000; ++i) {
    std::string name = std::to_string(i) + std::string(15000, 'x');
    ASSERT_EQ(c.request("POST", "/counter/" + name + "/increment").status, 400);
  }
  if (kRssIsMeaningful) {
    EXPECT_LT(rss_kib() - before, 16 * 1024);
  }
  expect_alive();
}

TEST_F(HostileInputTest, AnAlarmDelayThatWouldOverflowIsRefused) {
  HttpResponse r = call("POST", "/tasks/far/schedule?delay_ms=9223372036854775000");
  EXPECT_EQ(r.status, 400);
  EXPECT_NE(error_of(r).find("at most"), std::string::npos) << r.body;
  EXPECT_EQ(Json::parse(call("GET", "/tasks/far").body)["alarm"], nullptr) << "nothing set";
  // The longest allowed delay is stored and waits (no overflow into the past).
  r = call("POST", "/tasks/far/schedule?delay_ms=315360000000");
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(Json::parse(call("GET", "/tasks/far").body)["fired"], 0);
  expect_alive();
}

TEST_F(HostileInputTest, AWrongMethodOnAKnownRouteIs405) {
  EXPECT_EQ(call("POST", "/room/r/count").status, 405);
  EXPECT_EQ(call("DELETE", "/counter/c/increment").status, 405);
  EXPECT_EQ(call("PUT", "/tasks/t/schedule").status, 405);
  EXPECT_EQ(call("GET", "/ratelimit/k").status, 405);
}

TEST_F(HostileInputTest, ConnectionsPastTheCapGet503AndTheNodeRecovers) {
  server_->stop(SIGKILL);
  start({"--max-connections", "4"});
  std::vector<std::unique_ptr<HttpClient>> held;
  for (int i = 0; i < 4; ++i) {
    held.push_back(std::make_unique<HttpClient>(port()));
    ASSERT_EQ(held.back()->request("GET", "/counter/held").status, 200);  // connected, kept
  }
  HttpResponse r = call("GET", "/counter/held");
  EXPECT_EQ(r.status, 503);
  EXPECT_NE(error_of(r).find("too many connections"), std::string::npos) << r.body;
  held.pop_back();  // one closes
  bool served = false;
  for (int i = 0; i < 100 && !served; ++i) {  // the server sees the close within milliseconds
    served = call("GET", "/counter/held").status == 200;
    if (!served) std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  EXPECT_TRUE(served);
  held.clear();
  for (int i = 0; i < 100; ++i) {  // until the server has seen the closes
    r = admin("GET", "/metrics");
    if (r.status == 200) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  EXPECT_NE(r.body.find("dobj_connections_refused_total "), std::string::npos)
      << r.status << " " << r.body.substr(0, 300);
  EXPECT_EQ(r.body.find("dobj_connections_refused_total 0"), std::string::npos) << r.body;
}

// A database file made by the test: the runtime's schema, then `extra`.
std::string crafted_database(const std::string& path, const std::string& extra) {
  sqlite3* db = nullptr;
  EXPECT_EQ(sqlite3_open(path.c_str(), &db), SQLITE_OK);
  std::string sql =
      "CREATE TABLE _dobj_kv(key BLOB PRIMARY KEY, value BLOB NOT NULL) WITHOUT ROWID;"
      "CREATE TABLE _dobj_alarm(id INTEGER PRIMARY KEY CHECK (id = 0), at INTEGER NOT NULL);"
      "INSERT INTO _dobj_kv VALUES (CAST('k' AS BLOB), x'6a31');" +  // the JSON value 1
      extra;
  char* err = nullptr;
  EXPECT_EQ(sqlite3_exec(db, sql.c_str(), nullptr, nullptr, &err), SQLITE_OK) << (err ? err : "");
  sqlite3_free(err);
  sqlite3_close(db);
  std::ifstream f(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(f), {});
}

TEST_F(HostileInputTest, AnImportedDatabaseWithCodeOnTheRuntimesTablesIsRefused) {
  int n = 0;
  struct Case {
    const char* what;
    const char* extra;
  };
  for (const Case& c : {
           Case{"trigger on _dobj_kv",
                "CREATE TRIGGER t AFTER DELETE ON _dobj_kv BEGIN "
                "INSERT INTO _dobj_alarm VALUES (0, 1); END;"},
           Case{"trigger naming _dobj_kv", "CREATE TABLE u(x); CREATE TRIGGER t AFTER INSERT ON u "
                                           "BEGIN DELETE FROM _dobj_kv; END;"},
           Case{"index on _dobj_kv", "CREATE INDEX i ON _dobj_kv(value);"},
           Case{"view named _dobj_", "CREATE VIEW _dobj_x AS SELECT 1;"},
       }) {
    std::string file = crafted_database(dir_.path() + "/crafted-" + std::to_string(++n), c.extra);
    HttpResponse r = admin("PUT", "/_dobj/objects/KV/name:crafted/import", file);
    EXPECT_EQ(r.status, 400) << c.what << ": " << r.body;
    EXPECT_NE(error_of(r).find("is not the runtime's"), std::string::npos) << r.body;
  }
  EXPECT_EQ(call("GET", "/kv/crafted/k").status, 404) << "nothing was imported";
  // The runtime's own schema with user tables is taken.
  std::string ok = crafted_database(dir_.path() + "/plain", "CREATE TABLE mine(x);");
  HttpResponse r = admin("PUT", "/_dobj/objects/KV/name:crafted/import", ok);
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(call("GET", "/kv/crafted/k").body, "1");
}

// The example server with its data on a 6 MiB tmpfs of its own.
class FullDiskTest : public HostileInputTest {
 protected:
  void SetUp() override {
    if (geteuid() != 0) GTEST_SKIP() << "mounting a tmpfs in a namespace needs root";
    setenv("DOBJ_TMPFS_BINARY", DOBJ_EXAMPLES_BIN, 1);
    setenv("DOBJ_TMPFS_SIZE", "6m", 1);
    server_ = std::make_unique<ServerProcess>(
        DOBJ_IN_SMALL_TMPFS, dir_.path(),
        std::vector<std::string>{"--admin-token", kToken, "--max-object-bytes", "0"});
    ASSERT_TRUE(server_->start()) << server_->output();
  }
};

TEST_F(FullDiskTest, WritesFailWith507ReadsGoOnNothingIsLostAndSpaceFreedIsUsedAgain) {
  const std::string value = "\"" + std::string(60'000, 'v') + "\"";
  // Ballast that the operator will delete later.
  for (int i = 0; i < 30; ++i) {
    ASSERT_EQ(call("PUT", "/kv/ballast/k" + std::to_string(i), value).status, 200);
  }
  std::vector<std::string> acked;
  HttpResponse r;
  for (int i = 0; i < 200; ++i) {
    std::string key = "/kv/fill/k" + std::to_string(i);
    r = call("PUT", key, value);
    if (r.status != 200) break;
    acked.push_back(key);
  }
  ASSERT_EQ(r.status, 507) << r.body;
  Json err = Json::parse(r.body);
  EXPECT_EQ(err["storageFull"], true);
  EXPECT_NE(err["error"].get<std::string>().find("full"), std::string::npos) << r.body;
  ASSERT_FALSE(acked.empty());
  // Another write fails the same way; the node is up and reads go on.
  EXPECT_EQ(call("PUT", "/kv/fill/again", value).status, 507);
  for (const auto& key : acked) ASSERT_EQ(call("GET", key).status, 200) << key;
  EXPECT_EQ(call("GET", "/kv/ballast/k3").status, 200);
  // Space is freed (the ballast object is deleted): writes succeed again.
  ASSERT_EQ(admin("DELETE", "/_dobj/objects/KV/name:ballast").status, 200);
  EXPECT_EQ(call("PUT", "/kv/fill/after", value).status, 200);
  EXPECT_EQ(call("POST", "/counter/after-full/increment").body, "1");
  for (const auto& key : acked) ASSERT_EQ(call("GET", key).body, value) << key;
}

}  // namespace
}  // namespace dobj::test
