// The admin plane's object routes on the real example server: the catalog
// (list, search, paging, after SIGKILL, for a folder from before it), inspect,
// read-only SQL, export/import and delete.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/stat.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <atomic>
#include <optional>
#include <set>
#include <thread>

#include "support/browser.h"
#include "testing/http_client.h"
#include "support/server_process.h"
#include "testing/ws_client.h"

namespace dobj::test {
namespace {

using Json = nlohmann::json;
const std::string kToken = "objects-token-1";

class ObjectsAdminTest : public ::testing::Test {
 protected:
  void SetUp() override { start(); }
  void start(std::vector<std::string> args = {}) {
    args.insert(args.begin(), {"--admin-token", kToken});
    server_ = std::make_unique<ServerProcess>(DOBJ_EXAMPLES_BIN, dir_.path(), args);
    ASSERT_TRUE(server_->start()) << server_->output();
  }
  void kill_and_restart() {
    server_->stop(SIGKILL);
    start();
  }
  HttpResponse admin(const std::string& method, const std::string& target,
                     const std::string& body = "") {
    HttpClient c(server_->port());
    return c.request(method, target, body, {{"Authorization", "Bearer " + kToken}});
  }
  Json admin_json(const std::string& method, const std::string& target,
                  const std::string& body = "", int want = 200) {
    HttpResponse r = admin(method, target, body);
    EXPECT_EQ(r.status, want) << method << " " << target << ": " << r.body;
    return Json::parse(r.body, nullptr, false);
  }
  int call(const std::string& method, const std::string& target, const std::string& body = "") {
    return http(server_->port(), method, target, body).status;
  }
  // Every object the catalog lists for the query, page by page.
  std::vector<Json> list_all(const std::string& query, int page_size) {
    std::vector<Json> out;
    std::string cursor;
    for (int pages = 0; pages < 1000; ++pages) {
      std::string target = "/_dobj/objects?limit=" + std::to_string(page_size) + query;
      if (!cursor.empty()) target += "&cursor=" + cursor;
      Json page = admin_json("GET", target);
      for (auto& o : page["objects"]) out.push_back(o);
      if (page["nextCursor"].is_null()) break;
      cursor = page["nextCursor"].get<std::string>();
    }
    return out;
  }
  // The catalog takes new objects in within tens of milliseconds, and names
  // learned later within a few seconds: poll for what a test expects.
  std::set<std::string> names_until(const std::string& query, const std::set<std::string>& want) {
    std::set<std::string> got;
    for (int tries = 0; tries < 100; ++tries) {
      got = names(list_all(query, 10));
      if (got == want) break;
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
    return got;
  }
  std::set<std::string> names(const std::vector<Json>& objects) {
    std::set<std::string> s;
    for (const auto& o : objects) s.insert(o["name"].is_null() ? "" : o["name"].get<std::string>());
    return s;
  }

  TempDir dir_;
  std::unique_ptr<ServerProcess> server_;
};

// Residency is asked of the objects' shards as the page is made: an object
// shows resident while in memory and not once evicted.
TEST_F(ObjectsAdminTest, AListedObjectIsResidentUntilItsEviction) {
  server_->stop(SIGTERM);
  start({"--idle-timeout-ms", "1000"});
  ASSERT_EQ(call("POST", "/counter/evicted-soon/increment"), 200);
  auto resident = [&]() -> std::optional<bool> {
    auto all = list_all("&namespace=COUNTER&prefix=evicted-soon", 10);
    if (all.size() != 1) return std::nullopt;
    return all[0]["resident"].get<bool>();
  };
  std::optional<bool> seen;
  for (int tries = 0; tries < 50 && !seen; ++tries) {  // until the catalog lists it
    seen = resident();
    if (!seen) std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  ASSERT_TRUE(seen.has_value());
  EXPECT_TRUE(*seen);
  for (int tries = 0; tries < 100 && seen == true; ++tries) {
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
    seen = resident();
  }
  EXPECT_EQ(seen, false);  // evicted (the idle time and a sweep or two)
  ASSERT_EQ(call("GET", "/counter/evicted-soon"), 200);
  EXPECT_EQ(resident(), true);  // back at once
}

TEST_F(ObjectsAdminTest, CatalogListsObjectsWithStorageAndPagesThroughThem) {
  for (int i = 0; i < 23; ++i) {
    ASSERT_EQ(call("POST", "/counter/user-" + std::to_string(i) + "/increment"), 200);
  }
  ASSERT_EQ(call("PUT", "/kv/alice/greeting", "\"hello\""), 200);
  ASSERT_EQ(call("GET", "/counter/only-read"), 200);  // reads make no storage

  // New objects reach the catalog within a moment; residency is asked of
  // the shards as each page is made.
  std::vector<Json> counters;
  for (int tries = 0; tries < 40; ++tries) {
    counters = list_all("&namespace=COUNTER", 5);
    bool all = counters.size() == 23;
    for (const auto& o : counters) all = all && o["resident"].get<bool>();
    if (all) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  ASSERT_EQ(counters.size(), 23u);
  std::set<std::string> want;
  for (int i = 0; i < 23; ++i) want.insert("user-" + std::to_string(i));
  EXPECT_EQ(names(counters), want);
  for (const auto& o : counters) {
    EXPECT_EQ(o["namespace"], "COUNTER");
    EXPECT_EQ(o["id"].get<std::string>().size(), 64u);
    EXPECT_TRUE(o["resident"].get<bool>());
    EXPECT_GT(o["created"].get<int64_t>(), 1'600'000'000'000);
  }
  size_t every = 0;  // every namespace (the KV object may reach the catalog last)
  for (int tries = 0; tries < 40 && every != 24; ++tries) {
    if (tries > 0) std::this_thread::sleep_for(std::chrono::milliseconds(100));
    every = list_all("", 7).size();
  }
  EXPECT_EQ(every, 24u);

  // Name prefix: user-1 and user-10 .. user-19.
  std::set<std::string> ones = names(list_all("&namespace=COUNTER&prefix=user-1", 4));
  EXPECT_EQ(ones.size(), 11u);
  EXPECT_TRUE(ones.count("user-1") && ones.count("user-19") && !ones.count("user-2"));
  // Sorted by name, paged.
  std::vector<Json> by_name = list_all("&namespace=COUNTER&sort=name", 6);
  ASSERT_EQ(by_name.size(), 23u);
  for (size_t i = 1; i < by_name.size(); ++i) {
    EXPECT_LT(by_name[i - 1]["name"].get<std::string>(), by_name[i]["name"].get<std::string>());
  }

  EXPECT_EQ(admin("GET", "/_dobj/objects?cursor=zzz").status, 400);
  EXPECT_EQ(admin("GET", "/_dobj/objects?sort=size").status, 400);
  EXPECT_EQ(admin("GET", "/_dobj/objects?limit=ten").status, 400);
}

TEST_F(ObjectsAdminTest, SizesAndActivityReachTheCatalogAndSortIt) {
  ASSERT_EQ(call("PUT", "/kv/small/k", "1"), 200);
  std::string big(100000, 'x');
  for (int i = 0; i < 5; ++i) {
    ASSERT_EQ(call("PUT", "/kv/big/k" + std::to_string(i), "\"" + big + "\""), 200);
  }
  // The catalog measures files every couple of seconds.
  std::vector<Json> by_bytes;
  for (int tries = 0; tries < 50; ++tries) {
    by_bytes = list_all("&namespace=KV&sort=bytes", 1);
    if (by_bytes.size() == 2 && by_bytes[0]["bytes"].get<int64_t>() > 400000) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
  }
  ASSERT_EQ(by_bytes.size(), 2u);
  EXPECT_EQ(by_bytes[0]["name"], "big");
  EXPECT_GT(by_bytes[0]["bytes"].get<int64_t>(), 400000);
  EXPECT_EQ(by_bytes[1]["name"], "small");
  EXPECT_EQ(names(list_all("&namespace=KV&minBytes=400000", 10)), std::set<std::string>{"big"});
  Json m = admin_json("GET", "/_dobj/metrics");
  EXPECT_EQ(m["namespaces"]["KV"]["storedObjects"], 2);
  EXPECT_GT(m["namespaces"]["KV"]["storageBytes"].get<int64_t>(), 400000);
  EXPECT_NE(admin("GET", "/metrics").body.find("dobj_storage_bytes{namespace=\"KV\"}"),
            std::string::npos);
}

TEST_F(ObjectsAdminTest, CatalogSurvivesSigkillAndIsRebuiltForOldFolders) {
  for (int i = 0; i < 10; ++i) ASSERT_EQ(call("POST", "/counter/k" + std::to_string(i) + "/increment"), 200);
  kill_and_restart();  // what the catalog had not taken in yet is found in the folder
  EXPECT_EQ(list_all("&namespace=COUNTER", 100).size(), 10u);
  server_->stop(SIGTERM);
  // A data folder from before the catalog: the files are found on start.
  std::filesystem::remove(dir_.path() + "/catalog.sqlite");
  std::filesystem::remove(dir_.path() + "/catalog.sqlite-wal");
  start();
  std::vector<Json> found = list_all("&namespace=COUNTER", 100);
  EXPECT_EQ(found.size(), 10u);
  for (const auto& o : found) EXPECT_GT(o["bytes"].get<int64_t>(), 0);
}

TEST_F(ObjectsAdminTest, InspectShowsKeysTablesAndAlarm) {
  ASSERT_EQ(call("PUT", "/kv/insp/greeting", "\"hello\""), 200);
  ASSERT_EQ(call("PUT", "/kv/insp/n", "42"), 200);
  ASSERT_EQ(call("PUT", "/kv/insp/obj", "{\"a\":[1,2]}"), 200);
  Json o = admin_json("GET", "/_dobj/objects/KV/name:insp");
  EXPECT_EQ(o["name"], "insp");
  EXPECT_TRUE(o["exists"].get<bool>());
  ASSERT_EQ(o["keys"].size(), 3u);
  EXPECT_EQ(o["keys"][0]["key"], "greeting");
  EXPECT_EQ(o["keys"][0]["value"], "hello");
  EXPECT_EQ(o["keys"][1]["key"], "n");
  EXPECT_EQ(o["keys"][1]["value"], 42);
  EXPECT_EQ(o["keys"][2]["value"]["a"][1], 2);
  EXPECT_TRUE(o["alarm"].is_null());
  // Paging through keys.
  Json first = admin_json("GET", "/_dobj/objects/KV/name:insp?keys=2");
  EXPECT_EQ(first["keys"].size(), 2u);
  EXPECT_EQ(first["nextKey"], "n");
  Json rest = admin_json("GET", "/_dobj/objects/KV/name:insp?keys=2&after=n");
  ASSERT_EQ(rest["keys"].size(), 1u);
  EXPECT_EQ(rest["keys"][0]["key"], "obj");

  ASSERT_EQ(call("POST", "/sql/tables",
                 R"j({"query":"CREATE TABLE t(a INTEGER, b TEXT); INSERT INTO t VALUES (1,'x'),(2,'y')"})j"),
            200);
  Json t = admin_json("GET", "/_dobj/objects/SQL/name:tables");
  bool found = false;
  for (const auto& table : t["tables"]) {
    if (table["name"] == "t") {
      found = true;
      EXPECT_EQ(table["rows"], 2);
      EXPECT_NE(table["sql"].get<std::string>().find("b TEXT"), std::string::npos);
    }
  }
  EXPECT_TRUE(found) << t.dump();

  ASSERT_EQ(call("POST", "/tasks/later/schedule?delay_ms=3600000"), 200);
  Json task = admin_json("GET", "/_dobj/objects/TASK_RUNNER/name:later");
  EXPECT_GT(task["alarm"].get<int64_t>(), 1'600'000'000'000);
  ASSERT_EQ(names_until("&namespace=TASK_RUNNER", {"later"}), std::set<std::string>{"later"});
  Json listed = list_all("&namespace=TASK_RUNNER", 10).at(0);
  EXPECT_EQ(listed["alarm"], task["alarm"]);

  // An object that never stored anything, a bad ID, an unknown namespace.
  Json empty = admin_json("GET", "/_dobj/objects/KV/name:nobody");
  EXPECT_FALSE(empty["exists"].get<bool>());
  EXPECT_EQ(empty["keys"].size(), 0u);
  EXPECT_EQ(admin("GET", "/_dobj/objects/KV/not-an-id").status, 400);
  EXPECT_EQ(admin("GET", "/_dobj/objects/NOPE/name:x").status, 404);
  EXPECT_EQ(admin("PATCH", "/_dobj/objects/KV/name:x").status, 405);
}

TEST_F(ObjectsAdminTest, SqlIsReadOnly) {
  ASSERT_EQ(call("POST", "/sql/ro", R"j({"query":"CREATE TABLE t(a); INSERT INTO t VALUES (7)"})j"),
            200);
  Json r = admin_json("POST", "/_dobj/objects/SQL/name:ro/sql", R"j({"query":"SELECT a FROM t"})j");
  EXPECT_EQ(r["columns"], Json::array({"a"}));
  EXPECT_EQ(r["rows"], Json::array({Json::array({7})}));
  // The runtime's own tables may be read too.
  Json kv = admin_json("POST", "/_dobj/objects/SQL/name:ro/sql",
                       R"j({"query":"SELECT count(*) FROM _dobj_kv"})j");
  EXPECT_EQ(kv["rows"][0][0], 0);
  for (const std::string q :
       {"DELETE FROM t", "INSERT INTO t VALUES (8)", "DROP TABLE t", "UPDATE t SET a = 0",
        "ATTACH '/tmp/x.db' AS x", "PRAGMA writable_schema = 1", "PRAGMA foreign_keys = 0",
        "SELECT 1; DELETE FROM t", "CREATE TABLE u(b)", "BEGIN", "SELECT load_extension('x')"}) {
    Json body = {{"query", q}};
    HttpResponse bad = admin("POST", "/_dobj/objects/SQL/name:ro/sql", body.dump());
    EXPECT_EQ(bad.status, 400) << q << ": " << bad.body;
  }
  EXPECT_EQ(admin("POST", "/_dobj/objects/SQL/name:ro/sql", "not json").status, 400);
  // Nothing changed.
  Json again = admin_json("POST", "/_dobj/objects/SQL/name:ro/sql", R"j({"query":"SELECT a FROM t"})j");
  EXPECT_EQ(again["rows"], Json::array({Json::array({7})}));
  // A query that would hold the object up is stopped.
  HttpResponse slow = admin("POST", "/_dobj/objects/SQL/name:ro/sql",
                            R"j({"query":"WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x+1 FROM c) SELECT count(*) FROM c"})j");
  EXPECT_EQ(slow.status, 400);
  EXPECT_NE(slow.body.find("budget"), std::string::npos);
  EXPECT_EQ(call("POST", "/sql/ro", R"j({"query":"SELECT a FROM t"})j"), 200);  // the object is fine
}

// A database of 60 MB goes out and back in a piece at a time: the server
// holds neither whole in memory, and the copy has every byte.
TEST_F(ObjectsAdminTest, ALargeExportAndImportStreamThroughTheServer) {
  auto sql = [&](const std::string& name, const std::string& query) {
    HttpResponse r = http(server_->port(), "POST", "/sql/" + name, Json({{"query", query}}).dump());
    EXPECT_EQ(r.status, 200) << r.body;
    return Json::parse(r.body, nullptr, false);
  };
  sql("big", "CREATE TABLE b(x)");
  for (int i = 0; i < 4; ++i) {
    sql("big",
        "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 10) "
        "INSERT INTO b SELECT randomblob(1500000) FROM n");
  }
  Json want = sql("big", "SELECT count(*), sum(length(x)), sum(hex(substr(x, 1, 4)) > '8') FROM b");
  long before = server_->rss_kib();
  HttpResponse exported = admin("GET", "/_dobj/objects/SQL/name:big/export");
  ASSERT_EQ(exported.status, 200) << exported.body;
  EXPECT_GT(exported.body.size(), 60u * 1000 * 1000);
  long after_export = server_->rss_kib();
  Json imported = admin_json("PUT", "/_dobj/objects/SQL/name:copy/import", exported.body);
  EXPECT_TRUE(imported["imported"].get<bool>());
  long after_import = server_->rss_kib();
  // Held whole, each would have cost at least 60 MB (before: twice that).
  EXPECT_LT(after_export - before, 30 * 1024) << "export grew the server by KiB";
  EXPECT_LT(after_import - before, 30 * 1024) << "import grew the server by KiB";
  EXPECT_EQ(sql("copy", "SELECT count(*), sum(length(x)), sum(hex(substr(x, 1, 4)) > '8') FROM b"),
            want);
  // No temporary file is left behind.
  EXPECT_TRUE(std::filesystem::is_empty(dir_.path() + "/tmp"));
}

// The page size in an exported database's header (bytes 16-17, big-endian).
size_t exported_page_size(const std::string& db) {
  return db.size() < 18 ? 0 : (static_cast<uint8_t>(db[16]) << 8) | static_cast<uint8_t>(db[17]);
}

TEST_F(ObjectsAdminTest, PageSizeAppliesToNewDatabasesAndOddSizesAreRefused) {
  ASSERT_EQ(call("PUT", "/kv/before/a", "1"), 200);
  EXPECT_EQ(exported_page_size(admin("GET", "/_dobj/objects/KV/name:before/export").body),
            size_t{1024});
  server_->stop(SIGTERM);
  TempDir other;
  ServerProcess odd(DOBJ_EXAMPLES_BIN, other.path(), {"--page-size", "3000"});
  EXPECT_FALSE(odd.start(std::chrono::seconds(5)));
  EXPECT_NE(odd.output().find("--page-size"), std::string::npos) << odd.output();
  start({"--page-size", "8192"});
  ASSERT_EQ(call("PUT", "/kv/after/a", "1"), 200);
  EXPECT_EQ(exported_page_size(admin("GET", "/_dobj/objects/KV/name:after/export").body),
            size_t{8192});
  EXPECT_EQ(exported_page_size(admin("GET", "/_dobj/objects/KV/name:before/export").body),
            size_t{1024});
  EXPECT_EQ(http(server_->port(), "GET", "/kv/before/a").body, "1");
}

TEST_F(ObjectsAdminTest, ExportThenImportUnderAnotherId) {
  ASSERT_EQ(call("PUT", "/kv/source/a", "1"), 200);
  ASSERT_EQ(call("PUT", "/kv/source/b", "\"two\""), 200);
  ASSERT_EQ(call("POST", "/sql/source", R"j({"query":"CREATE TABLE t(x); INSERT INTO t VALUES ('row')"})j"),
            200);
  HttpResponse exported = admin("GET", "/_dobj/objects/KV/name:source/export");
  ASSERT_EQ(exported.status, 200);
  EXPECT_EQ(exported.header("content-type"), "application/vnd.sqlite3");
  ASSERT_EQ(exported.body.rfind("SQLite format 3", 0), 0u);
  EXPECT_EQ(admin("GET", "/_dobj/objects/KV/name:nobody/export").status, 404);

  Json imported = admin_json("PUT", "/_dobj/objects/KV/name:copy/import", exported.body);
  EXPECT_TRUE(imported["imported"].get<bool>());
  EXPECT_EQ(http(server_->port(), "GET", "/kv/copy/b").body, "\"two\"");
  // Not over an object that has storage, unless asked; never from junk.
  EXPECT_EQ(admin("PUT", "/_dobj/objects/KV/name:copy/import", exported.body).status, 409);
  EXPECT_EQ(admin("PUT", "/_dobj/objects/KV/name:copy/import?replace=1", "not a database").status,
            400);
  std::string damaged = exported.body;
  // Every page after the first.
  for (size_t i = exported_page_size(damaged); i < damaged.size(); i += 7) damaged[i] = '\x5a';
  EXPECT_EQ(admin("PUT", "/_dobj/objects/KV/name:copy/import?replace=1", damaged).status, 400);
  EXPECT_EQ(http(server_->port(), "GET", "/kv/copy/a").body, "1");
  // Replacing a resident object: it sees the new data.
  ASSERT_EQ(call("PUT", "/kv/copy/a", "99"), 200);
  admin_json("PUT", "/_dobj/objects/KV/name:copy/import?replace=1", exported.body);
  EXPECT_EQ(http(server_->port(), "GET", "/kv/copy/a").body, "1");
  kill_and_restart();
  EXPECT_EQ(http(server_->port(), "GET", "/kv/copy/a").body, "1");
  // An object created just before the kill may come back from the folder
  // scan without its name; using it by name again tells the catalog.
  EXPECT_EQ(http(server_->port(), "GET", "/kv/source/b").body, "\"two\"");
  EXPECT_EQ(names_until("&namespace=KV", {"copy", "source"}),
            (std::set<std::string>{"copy", "source"}));
}

TEST_F(ObjectsAdminTest, ExportWithAlarmImportsTheAlarm) {
  ASSERT_EQ(call("POST", "/tasks/src/schedule?delay_ms=1500"), 200);
  HttpResponse exported = admin("GET", "/_dobj/objects/TASK_RUNNER/name:src/export");
  ASSERT_EQ(exported.status, 200);
  admin_json("PUT", "/_dobj/objects/TASK_RUNNER/name:dst/import", exported.body);
  // The imported alarm fires for the new object.
  Json state;
  for (int i = 0; i < 100; ++i) {
    state = Json::parse(http(server_->port(), "GET", "/tasks/dst").body, nullptr, false);
    if (state.is_object() && state["fired"] == 1) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  EXPECT_EQ(state["fired"], 1) << state.dump();
}

TEST_F(ObjectsAdminTest, DeleteRemovesStorageAlarmSocketsAndEntry) {
  ASSERT_EQ(call("PUT", "/kv/doomed/a", "1"), 200);
  ASSERT_EQ(call("PUT", "/kv/kept/a", "2"), 200);
  std::string id = admin_json("GET", "/_dobj/objects/KV/name:doomed")["id"];
  std::string file = dir_.path() + "/objects/KV/" + id.substr(0, 2) + "/" + id + ".sqlite";
  ASSERT_TRUE(std::filesystem::exists(file));
  Json d = admin_json("DELETE", "/_dobj/objects/KV/" + id);
  EXPECT_TRUE(d["deleted"].get<bool>());
  EXPECT_FALSE(std::filesystem::exists(file));
  EXPECT_EQ(http(server_->port(), "GET", "/kv/doomed/a").status, 404);
  EXPECT_EQ(names_until("&namespace=KV", {"kept"}), std::set<std::string>{"kept"});

  // An alarm and a socket go with the object.
  ASSERT_EQ(call("POST", "/tasks/gone/schedule?delay_ms=1500"), 200);
  admin_json("DELETE", "/_dobj/objects/TASK_RUNNER/name:gone");
  WsClient ws(server_->port(), "/room/closing/websocket");
  ASSERT_TRUE(ws.connected());
  ASSERT_TRUE(ws.send_text("hi"));
  ASSERT_EQ(ws.next_message(), "hi");
  admin_json("DELETE", "/_dobj/objects/CHAT_ROOM/name:closing");
  EXPECT_EQ(ws.await_close().first, 1001);

  kill_and_restart();
  EXPECT_EQ(http(server_->port(), "GET", "/kv/doomed/a").status, 404);
  EXPECT_EQ(http(server_->port(), "GET", "/kv/kept/a").body, "2");
  std::this_thread::sleep_for(std::chrono::milliseconds(1800));
  Json t = Json::parse(http(server_->port(), "GET", "/tasks/gone").body);
  EXPECT_EQ(t["fired"], 0);
  EXPECT_EQ(names_until("&namespace=KV", {"kept"}), std::set<std::string>{"kept"});
}

// The dashboard in a real browser: headless Chromium loads /_dobj/ui while
// the server is under load, shows live numbers, finds an object by name and
// shows its keys.
TEST_F(ObjectsAdminTest, DashboardShowsLiveNumbersAndFindsAnObjectInChromium) {
  ASSERT_TRUE(std::filesystem::exists(kChromium)) << "install chromium (scripts/deps.sh does)";
  HttpResponse page = http(server_->port(), "GET", "/_dobj/ui");  // the page holds no data
  ASSERT_EQ(page.status, 200);
  EXPECT_EQ(page.header("content-type").value_or("").rfind("text/html", 0), 0u);
  EXPECT_EQ(page.body.find("http://"), std::string::npos);  // nothing from elsewhere
  ASSERT_EQ(call("PUT", "/kv/findme-please/greeting", "\"hello from the dashboard\""), 200);
  std::atomic<bool> done{false};
  std::thread load([&] {
    HttpClient c(server_->port());
    for (int i = 0; !done; ++i) c.request("POST", "/counter/busy" + std::to_string(i % 8) + "/increment");
  });
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  std::optional<std::string> page_dom =
      chromium_dom("http://127.0.0.1:" + std::to_string(server_->port()) + "/_dobj/ui#token=" +
                       kToken + "&find=findme",
                   [](const std::string& dom) {
                     return dom.find("hello from the dashboard") != std::string::npos &&
                            dom.find("id=\"status\">live") != std::string::npos &&
                            (dom.find("class=\"finding") != std::string::npos ||
                             dom.find("No findings") != std::string::npos);
                   },
                   std::chrono::seconds(60));
  done = true;
  load.join();
  ASSERT_TRUE(page_dom);
  const std::string& dom = *page_dom;
  // The COUNTER row shows requests per second above zero.
  auto row = dom.find("<tr data-ns=\"COUNTER\">");
  ASSERT_NE(row, std::string::npos) << dom.substr(0, 3000);
  auto rps = dom.find("num rps\">", row);
  ASSERT_NE(rps, std::string::npos);
  double value = std::atof(dom.c_str() + rps + std::string("num rps\">").size());
  EXPECT_GT(value, 0) << dom.substr(row, 600);
  auto active = dom.find("num active\">", row);
  EXPECT_GT(std::atoi(dom.c_str() + active + std::string("num active\">").size()), 0);
  // The search found the object and the object view shows its key.
  EXPECT_NE(dom.find("findme-please"), std::string::npos);
  EXPECT_NE(dom.find("hello from the dashboard"), std::string::npos) << dom.substr(0, 4000);
  // The advisor's panel was filled in (findings or "No findings").
  EXPECT_TRUE(dom.find("class=\"finding") != std::string::npos ||
              dom.find("No findings") != std::string::npos);
  EXPECT_NE(dom.find("id=\"status\">live"), std::string::npos);  // not an error
}

// --history: an operator lists an object's bookmarks and restores it to one
// (or to a time); the restore is itself a commit, survives a SIGKILL, and can
// be undone by restoring a later bookmark. Without --history the routes
// answer 404.
// The object view's history in a real browser: the timeline and the latest
// bookmarks, each but the current with a restore button.
TEST_F(ObjectsAdminTest, DashboardShowsAnObjectsTimelineInChromium) {
  ASSERT_TRUE(std::filesystem::exists(kChromium)) << "install chromium (scripts/deps.sh does)";
  server_->stop(SIGTERM);
  start({"--history"});
  for (int i = 0; i < 4; ++i) ASSERT_EQ(call("POST", "/counter/timeline-a/increment"), 200);
  Json h = admin_json("GET", "/_dobj/objects/COUNTER/name:timeline-a/history");
  ASSERT_TRUE(h["current"].is_string()) << h.dump();
  std::string current = h["current"], first = h["bookmarks"][0]["bookmark"];
  std::optional<std::string> dom = chromium_dom(
      "http://127.0.0.1:" + std::to_string(server_->port()) + "/_dobj/ui#token=" + kToken + "&find=timeline-a",
      [&](const std::string& d) { return d.find("class=\"history\"") != std::string::npos; }, std::chrono::seconds(60));
  ASSERT_TRUE(dom);
  size_t at = dom->find("class=\"history\"");
  ASSERT_NE(at, std::string::npos) << dom->substr(0, 4000);
  EXPECT_NE(dom->find(h["commits"].dump() + " commits kept"), std::string::npos) << dom->substr(0, 4000);
  EXPECT_NE(dom->find("class=\"timeline\""), std::string::npos);
  std::string table = dom->substr(at);
  EXPECT_NE(table.find(current), std::string::npos);
  EXPECT_NE(table.find(first), std::string::npos);
  size_t buttons = 0;
  for (size_t p = table.find(">restore</button>"); p != std::string::npos; p = table.find(">restore</button>", p + 1)) {
    ++buttons;
  }
  EXPECT_EQ(buttons, h["bookmarks"].size() - 1) << table.substr(0, 2000);  // none on the current one
}

TEST_F(ObjectsAdminTest, HistoryRestoresACounterToABookmarkAndBackAcrossASigkill) {
  EXPECT_EQ(admin("GET", "/_dobj/objects/COUNTER/name:h/history").status, 404);
  server_->stop(SIGKILL);
  start({"--history"});
  for (int i = 0; i < 5; ++i) ASSERT_EQ(call("POST", "/counter/h/increment"), 200);
  Json h = admin_json("GET", "/_dobj/objects/COUNTER/name:h/history");
  ASSERT_TRUE(h["current"].is_string()) << h.dump();
  std::string at_five = h["current"];
  int64_t time_five = h["bookmarks"].back()["time"];
  std::this_thread::sleep_for(std::chrono::milliseconds(5));
  for (int i = 0; i < 3; ++i) ASSERT_EQ(call("POST", "/counter/h/increment"), 200);
  Json all = admin_json("GET", "/_dobj/objects/COUNTER/name:h/history");
  std::string at_eight = all["current"];
  EXPECT_GT(at_eight, at_five);
  // A limit gives the latest bookmarks; the count is of them all.
  Json two = admin_json("GET", "/_dobj/objects/COUNTER/name:h/history?limit=2");
  ASSERT_EQ(two["bookmarks"].size(), 2u) << two.dump();
  EXPECT_EQ(two["bookmarks"][1]["bookmark"], at_eight);
  EXPECT_EQ(two["current"], at_eight);
  EXPECT_EQ(two["commits"], all["bookmarks"].size());
  EXPECT_EQ(two["commits"], all["commits"]);
  Json r = admin_json("POST", "/_dobj/objects/COUNTER/name:h/restore?bookmark=" + at_five);
  EXPECT_EQ(r["restored"], true) << r.dump();
  EXPECT_EQ(http(server_->port(), "GET", "/counter/h").body, "5");
  ASSERT_EQ(call("POST", "/counter/h/increment"), 200);  // 6, after the restore
  server_->stop(SIGKILL);
  start({"--history"});
  EXPECT_EQ(http(server_->port(), "GET", "/counter/h").body, "6");
  // Undo: back to 8; and by time, to the last commit made by then.
  admin_json("POST", "/_dobj/objects/COUNTER/name:h/restore?bookmark=" + at_eight);
  EXPECT_EQ(http(server_->port(), "GET", "/counter/h").body, "8");
  admin_json("POST", "/_dobj/objects/COUNTER/name:h/restore?time=" + std::to_string(time_five));
  EXPECT_EQ(http(server_->port(), "GET", "/counter/h").body, "5");
  // Bad bookmarks and times are clear errors, and change nothing.
  EXPECT_EQ(admin("POST", "/_dobj/objects/COUNTER/name:h/restore?bookmark=nope").status, 400);
  EXPECT_EQ(admin("POST", "/_dobj/objects/COUNTER/name:h/restore?bookmark=00000000000fffff-000000000000").status,
            404);
  EXPECT_EQ(admin("POST", "/_dobj/objects/COUNTER/name:h/restore?time=1").status, 404);
  EXPECT_EQ(admin("POST", "/_dobj/objects/COUNTER/name:h/restore").status, 400);
  EXPECT_EQ(http(server_->port(), "GET", "/counter/h").body, "5");
}

// A restore rebuilds the database off the shard while the object's own
// requests wait: requests to it and to another object of the same (only)
// shard sent meanwhile all succeed; the object answers with the restored
// state, and writes made after the restore stay.
TEST_F(ObjectsAdminTest, RequestsDuringARestoreWaitForItOrGoOnAndNoneFails) {
  server_->stop(SIGKILL);
  start({"--history", "--shards", "1"});
  std::string value(100'000, 'v');
  for (int b = 0; b < 8; ++b) {
    Json put = Json::object();
    for (int i = 0; i < 10; ++i) put["k" + std::to_string(b * 10 + i)] = value;
    ASSERT_EQ(call("POST", "/kv/big/batch", Json{{"put", put}}.dump()), 200);
  }
  std::string mark = admin_json("GET", "/_dobj/objects/KV/name:big/history?limit=1")["current"];
  ASSERT_EQ(call("PUT", "/kv/big/k0", "\"changed\""), 200);
  std::atomic<bool> restored{false};
  std::atomic<int> answered{0}, failed{0};
  std::thread others([&] {
    HttpClient c(server_->port());
    for (int i = 0; !restored || i < 5; ++i) {
      bool ok = c.request("POST", "/counter/other/increment").status == 200 &&
                c.request("PUT", "/kv/big/x", std::to_string(i)).status == 200;
      ++(ok ? answered : failed);
    }
  });
  Json r = admin_json("POST", "/_dobj/objects/KV/name:big/restore?bookmark=" + mark);
  restored = true;
  others.join();
  EXPECT_EQ(r["restored"], true) << r.dump();
  EXPECT_EQ(failed, 0);
  EXPECT_GE(answered, 5);
  EXPECT_TRUE(Json::parse(http(server_->port(), "GET", "/kv/big/k0").body, nullptr, false) == value)
      << "k0 is not the bookmark's value";
  EXPECT_EQ(http(server_->port(), "GET", "/kv/big/k79").status, 200);
  // The last write was sent after the restore answered: it stays.
  EXPECT_EQ(http(server_->port(), "GET", "/kv/big/x").body, std::to_string(answered + failed - 1));
}

}  // namespace
}  // namespace dobj::test
