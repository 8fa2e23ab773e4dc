// The dobj command line and the MCP server, against the real example server:
// each subcommand's output, errors, progress, and MCP over HTTP and stdio.
#include <gtest/gtest.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <array>
#include <cerrno>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <thread>

#include "testing/http_client.h"
#include "support/server_process.h"
#include "support/tls_listener.h"

namespace dobj::test {
namespace {

using Json = nlohmann::json;
const std::string kToken = "cli-token-42";

struct CliRun {
  int code = -1;
  std::string out;  // stdout and stderr together
  long peak_kib = 0;  // the most memory the command (its shell included) held
};

class CliTest : public ::testing::Test {
 protected:
  void SetUp() override {
    server_ = std::make_unique<ServerProcess>(DOBJ_EXAMPLES_BIN, dir_.path(),
                                              std::vector<std::string>{"--admin-token", kToken});
    ASSERT_TRUE(server_->start()) << server_->output();
  }
  std::string server() const { return "http://127.0.0.1:" + std::to_string(server_->port()); }
  // Runs `dobj <args>` with the server and token in the environment.
  CliRun dobj(const std::string& args, const std::string& stdin_text = "",
           const std::string& token = kToken, const std::string& cwd = "", const std::string& env = "") {
    std::string in = work_.path() + "/stdin";
    std::ofstream(in) << stdin_text;
    std::string cmd = (cwd.empty() ? "" : "cd " + cwd + " && ") + "DOBJ_SERVER=" + server() + " DOBJ_ADMIN_TOKEN=" + token +
                      " " + env + " " + DOBJ_CLI_BIN + " " + args + " < " + in + " 2>&1";
    CliRun r;
    int out[2];
    if (::pipe(out) != 0) return r;
    pid_t pid = ::fork();
    if (pid == 0) {
      ::dup2(out[1], STDOUT_FILENO);
      ::close(out[0]);
      ::close(out[1]);
      ::execl("/bin/sh", "sh", "-c", cmd.c_str(), static_cast<char*>(nullptr));
      ::_exit(127);
    }
    ::close(out[1]);
    std::array<char, 4096> buf;
    ssize_t n;
    while ((n = ::read(out[0], buf.data(), buf.size())) > 0 || (n < 0 && errno == EINTR)) {
      if (n > 0) r.out.append(buf.data(), static_cast<size_t>(n));
    }
    ::close(out[0]);
    int status = 0;
    struct rusage usage {};
    if (pid < 0 || ::wait4(pid, &status, 0, &usage) != pid) return r;
    r.code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
    r.peak_kib = usage.ru_maxrss;  // the shell's and the children it waited for
    return r;
  }
  int call(const std::string& method, const std::string& target, const std::string& body = "") {
    return http(server_->port(), method, target, body).status;
  }

  TempDir dir_;
  TempDir work_;
  std::unique_ptr<ServerProcess> server_;
};

TEST_F(CliTest, EverySubcommandHasHelp) {
  for (const std::string sub :
       {"", "objects", "inspect", "sql", "metrics", "advise", "export", "import", "delete", "mcp", "history",
        "restore", "fork", "pull"}) {
    CliRun r = dobj(sub + " --help");
    EXPECT_EQ(r.code, 0) << sub << ": " << r.out;
    EXPECT_NE(r.out.find("Usage"), std::string::npos) << sub;
  }
  EXPECT_NE(dobj("").code, 0);  // a subcommand is required
}

TEST_F(CliTest, ObjectsInspectSqlAndMetrics) {
  ASSERT_EQ(call("PUT", "/kv/alice/greeting", "\"hello\""), 200);
  ASSERT_EQ(call("POST", "/counter/visits/increment"), 200);
  ASSERT_EQ(call("POST", "/sql/reports", R"j({"query":"CREATE TABLE t(a); INSERT INTO t VALUES (41)"})j"),
            200);

  // The catalog takes new objects in within tens of milliseconds.
  for (int i = 0; i < 50 && Json::parse(dobj("--json objects").out)["objects"].size() < 3; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  CliRun list = dobj("objects");
  ASSERT_EQ(list.code, 0) << list.out;
  EXPECT_NE(list.out.find("NAMESPACE"), std::string::npos);
  EXPECT_NE(list.out.find("alice"), std::string::npos);
  EXPECT_NE(list.out.find("visits"), std::string::npos);
  CliRun kv_only = dobj("objects --namespace KV");
  EXPECT_NE(kv_only.out.find("alice"), std::string::npos);
  EXPECT_EQ(kv_only.out.find("visits"), std::string::npos);
  Json as_json = Json::parse(dobj("--json objects --prefix vis").out);
  ASSERT_EQ(as_json["objects"].size(), 1u);
  EXPECT_EQ(as_json["objects"][0]["name"], "visits");

  CliRun inspect = dobj("inspect KV name:alice");
  ASSERT_EQ(inspect.code, 0) << inspect.out;
  EXPECT_NE(inspect.out.find("greeting"), std::string::npos);
  EXPECT_NE(inspect.out.find("\"hello\""), std::string::npos);
  EXPECT_NE(inspect.out.find("_dobj_kv"), std::string::npos);
  // A plain name works too.
  CliRun plain = dobj("inspect KV alice");
  ASSERT_EQ(plain.code, 0) << plain.out;
  EXPECT_EQ(plain.out, inspect.out);

  CliRun sql = dobj("sql SQL name:reports \"SELECT a + 1 AS answer FROM t\"");
  ASSERT_EQ(sql.code, 0) << sql.out;
  EXPECT_NE(sql.out.find("answer"), std::string::npos);
  EXPECT_NE(sql.out.find("42"), std::string::npos);
  CliRun write = dobj("sql SQL name:reports \"DELETE FROM t\"");
  EXPECT_EQ(write.code, 1);
  EXPECT_NE(write.out.find("read-only"), std::string::npos) << write.out;

  CliRun metrics = dobj("metrics");
  ASSERT_EQ(metrics.code, 0) << metrics.out;
  EXPECT_NE(metrics.out.find("COUNTER"), std::string::npos);
  EXPECT_NE(metrics.out.find("(total)"), std::string::npos);
  CliRun prom = dobj("metrics --prometheus");
  EXPECT_NE(prom.out.find("dobj_requests_total{namespace=\"COUNTER\"} 1"), std::string::npos)
      << prom.out;

  CliRun advise = dobj("advise");
  EXPECT_EQ(advise.code, 0) << advise.out;
  EXPECT_NE(advise.out.find("no findings"), std::string::npos) << advise.out;
}

TEST_F(CliTest, ExportImportDeleteWithProgress) {
  std::string big(100000, 'z');
  for (int i = 0; i < 30; ++i) {
    ASSERT_EQ(call("PUT", "/kv/big/k" + std::to_string(i), "\"" + big + "\""), 200);
  }
  std::string file = work_.path() + "/big.sqlite";
  CliRun exp = dobj("export KV name:big -o " + file);
  ASSERT_EQ(exp.code, 0) << exp.out;
  EXPECT_NE(exp.out.find("export"), std::string::npos);  // progress line
  EXPECT_NE(exp.out.find("100%"), std::string::npos) << exp.out;
  EXPECT_GT(std::filesystem::file_size(file), 3'000'000u);

  CliRun imp = dobj("import KV name:copy " + file);
  ASSERT_EQ(imp.code, 0) << imp.out;
  EXPECT_NE(imp.out.find("100%"), std::string::npos) << imp.out;
  EXPECT_EQ(http(server_->port(), "GET", "/kv/copy/k7").body.size(), big.size() + 2);
  CliRun again = dobj("import KV name:copy " + file);
  EXPECT_EQ(again.code, 1);
  EXPECT_NE(again.out.find("--replace"), std::string::npos) << again.out;
  EXPECT_EQ(dobj("import KV name:copy " + file + " --replace").code, 0);

  EXPECT_NE(dobj("delete KV name:copy").code, 0);  // --yes is required
  CliRun del = dobj("delete KV name:copy --yes");
  ASSERT_EQ(del.code, 0) << del.out;
  EXPECT_EQ(http(server_->port(), "GET", "/kv/copy/k7").status, 404);
}

Json mcp_call(int port, const Json& msg, int* status = nullptr) {
  HttpClient c(port);
  HttpResponse r = c.request("POST", "/_dobj/mcp", msg.dump(),
                             {{"Authorization", "Bearer " + kToken},
                              {"Content-Type", "application/json"},
                              {"Accept", "application/json, text/event-stream"}});
  if (status) *status = r.status;
  return Json::parse(r.body, nullptr, false);
}

// A line of the CLI's output that starts with `prefix`, without it.
std::string line_after(const std::string& out, const std::string& prefix) {
  size_t at = out.find(prefix);
  if (at == std::string::npos) return "";
  at += prefix.size();
  return out.substr(at, out.find('\n', at) - at);
}

TEST_F(CliTest, HistoryRestoreForkAndPullToAnotherServer) {
  TempDir prod_dir, laptop_dir;
  ServerProcess prod(DOBJ_EXAMPLES_BIN, prod_dir.path(), {"--admin-token", kToken, "--history"});
  ServerProcess laptop(DOBJ_EXAMPLES_BIN, laptop_dir.path(),
                       {"--admin-token", "laptop", "--history", "--history-days", "0"});
  ASSERT_TRUE(prod.start()) << prod.output();
  ASSERT_TRUE(laptop.start()) << laptop.output();
  std::string at_prod = "--server http://127.0.0.1:" + std::to_string(prod.port()) + " ";
  auto count = [](ServerProcess& s, const std::string& name) { return http(s.port(), "GET", "/counter/" + name).body; };

  ASSERT_EQ(http(prod.port(), "POST", "/counter/a/increment").body, "1");
  CliRun h = dobj(at_prod + "--json history COUNTER a");
  ASSERT_EQ(h.code, 0) << h.out;
  std::string one = Json::parse(h.out)["current"];
  for (int i = 0; i < 2; ++i) http(prod.port(), "POST", "/counter/a/increment");

  CliRun table = dobj(at_prod + "history COUNTER a");
  ASSERT_EQ(table.code, 0) << table.out;
  EXPECT_NE(table.out.find(one), std::string::npos) << table.out;
  EXPECT_NE(table.out.find("BOOKMARK"), std::string::npos) << table.out;

  CliRun restore = dobj(at_prod + "restore COUNTER a --to " + one);
  ASSERT_EQ(restore.code, 0) << restore.out;
  EXPECT_EQ(count(prod, "a"), "1");
  std::string undo = line_after(restore.out, "undo: dobj restore COUNTER a --to ");
  ASSERT_EQ(undo.size(), 29u) << restore.out;
  ASSERT_EQ(dobj(at_prod + "restore COUNTER a --to " + undo).code, 0);
  EXPECT_EQ(count(prod, "a"), "3");

  CliRun bad = dobj(at_prod + "restore COUNTER a --to yesterday");
  EXPECT_EQ(bad.code, 1);
  EXPECT_NE(bad.out.find("a bookmark"), std::string::npos) << bad.out;
  CliRun early = dobj(at_prod + "restore COUNTER a --to 2001-01-01T00:00:00Z");
  EXPECT_EQ(early.code, 1);
  EXPECT_NE(early.out.find("404"), std::string::npos) << early.out;
  EXPECT_EQ(count(prod, "a"), "3");

  // Fork: a copy that goes its own way; an object with storage needs --replace.
  CliRun fork = dobj(at_prod + "fork COUNTER a --as b");
  ASSERT_EQ(fork.code, 0) << fork.out;
  EXPECT_EQ(count(prod, "b"), "3");
  http(prod.port(), "POST", "/counter/b/increment");
  EXPECT_EQ(count(prod, "a"), "3");
  CliRun again = dobj(at_prod + "fork COUNTER a --as b");
  EXPECT_EQ(again.code, 1);
  EXPECT_NE(again.out.find("--replace"), std::string::npos) << again.out;
  ASSERT_EQ(dobj(at_prod + "fork COUNTER a --as b --replace").code, 0);
  EXPECT_EQ(count(prod, "b"), "3");

  // Pull: the object and its history on another server, bookmarks and all.
  std::string at_laptop = "--server http://127.0.0.1:" + std::to_string(laptop.port()) + " ";
  std::string from = "--from http://127.0.0.1:" + std::to_string(prod.port()) + " --from-token " + kToken;
  CliRun pull = dobj(at_laptop + "pull COUNTER a " + from, "", "laptop");
  ASSERT_EQ(pull.code, 0) << pull.out;
  EXPECT_EQ(count(laptop, "a"), "3");
  EXPECT_NE(pull.out.find("commits"), std::string::npos) << pull.out;
  http(laptop.port(), "POST", "/counter/a/increment");
  ASSERT_EQ(dobj(at_laptop + "restore COUNTER a --to " + one, "", "laptop").code, 0);
  EXPECT_EQ(count(laptop, "a"), "1");
  EXPECT_EQ(count(prod, "a"), "3");
  CliRun twice = dobj(at_laptop + "pull COUNTER a " + from, "", "laptop");
  EXPECT_EQ(twice.code, 1);
  EXPECT_NE(twice.out.find("--replace"), std::string::npos) << twice.out;
  // The same through MCP: the history, a restore by time, a fork.
  auto tool = [&](const std::string& name, Json args) {
    return mcp_call(prod.port(), {{"jsonrpc", "2.0"}, {"id", 9}, {"method", "tools/call"},
                                  {"params", {{"name", name}, {"arguments", args}}}})["result"];
  };
  Json listed = tool("objectHistory", {{"namespace", "COUNTER"}, {"name", "a"}, {"limit", 2}});
  ASSERT_FALSE(listed["isError"].get<bool>()) << listed.dump();
  EXPECT_EQ(listed["structuredContent"]["bookmarks"].size(), 2u);
  int64_t one_ms = Json::parse(dobj(at_prod + "--json history COUNTER a").out)["bookmarks"][1]["time"];
  Json back = tool("restoreObject", {{"namespace", "COUNTER"}, {"name", "a"}, {"time", one_ms}});
  ASSERT_FALSE(back["isError"].get<bool>()) << back.dump();
  EXPECT_EQ(count(prod, "a"), "1");
  Json forked = tool("forkObject", {{"namespace", "COUNTER"}, {"name", "a"}, {"as", "c"}, {"replace", "yes"}});
  ASSERT_FALSE(forked["isError"].get<bool>()) << forked.dump();
  EXPECT_EQ(count(prod, "c"), "1");
  EXPECT_TRUE(tool("forkObject", {{"namespace", "COUNTER"}, {"name", "a"}, {"as", "c"}})["isError"].get<bool>());
  // Garbage is not a history.
  HttpClient c(laptop.port());
  HttpResponse junk = c.request("PUT", "/_dobj/objects/COUNTER/name:junk/history-file", "not a history at all",
                                {{"Authorization", "Bearer laptop"}});
  EXPECT_EQ(junk.status, 400) << junk.body;
  EXPECT_EQ(count(laptop, "junk"), "0");
}

// Export, import and pull move a large object through files, never whole in
// the command's memory: a 60 MB database and its history (twice that) go
// from one server to another while the command stays far below their size.
TEST_F(CliTest, LargeObjectsGoThroughTheCommandInPieces) {
  TempDir prod_dir, laptop_dir;
  ServerProcess prod(DOBJ_EXAMPLES_BIN, prod_dir.path(), {"--admin-token", kToken, "--history"});
  ServerProcess laptop(DOBJ_EXAMPLES_BIN, laptop_dir.path(), {"--admin-token", kToken, "--history"});
  ASSERT_TRUE(prod.start()) << prod.output();
  ASSERT_TRUE(laptop.start()) << laptop.output();
  auto sql = [&](ServerProcess& s, const std::string& name, const std::string& query) {
    HttpResponse r = http(s.port(), "POST", "/sql/" + name, Json({{"query", query}}).dump());
    EXPECT_EQ(r.status, 200) << r.body;
    return Json::parse(r.body, nullptr, false);
  };
  sql(prod, "big", "CREATE TABLE b(x)");
  for (int i = 0; i < 4; ++i) {
    sql(prod, "big",
        "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 10) "
        "INSERT INTO b SELECT randomblob(1500000) FROM n");
  }
  const std::string check = "SELECT count(*), sum(length(x)), sum(hex(substr(x, 1, 4)) > '8') FROM b";
  Json want = sql(prod, "big", check);
  std::string at_prod = "--server http://127.0.0.1:" + std::to_string(prod.port()) + " ";
  std::string at_laptop = "--server http://127.0.0.1:" + std::to_string(laptop.port()) + " ";
  // What the command holds for a small answer (its code and libraries; more
  // under a sanitizer), and far below the 60 MB database on top of that.
  CliRun small = dobj(at_prod + "history SQL big --limit 1");
  ASSERT_EQ(small.code, 0) << small.out;
  const long kFarBelow = small.peak_kib + 24 * 1024;  // KiB
  CliRun exported = dobj(at_prod + "export SQL big -o " + work_.path() + "/big.sqlite");
  ASSERT_EQ(exported.code, 0) << exported.out;
  EXPECT_GT(std::filesystem::file_size(work_.path() + "/big.sqlite"), 60u * 1000 * 1000);
  EXPECT_FALSE(std::filesystem::exists(work_.path() + "/big.sqlite.part"));
  EXPECT_LT(exported.peak_kib, kFarBelow) << exported.out;
  CliRun imported = dobj(at_laptop + "import SQL copy " + work_.path() + "/big.sqlite");
  ASSERT_EQ(imported.code, 0) << imported.out;
  EXPECT_LT(imported.peak_kib, kFarBelow) << imported.out;
  EXPECT_EQ(sql(laptop, "copy", check), want);

  std::string from = "--from http://127.0.0.1:" + std::to_string(prod.port()) + " --from-token " + kToken;
  CliRun pull = dobj(at_laptop + "pull SQL big " + from);
  ASSERT_EQ(pull.code, 0) << pull.out;
  EXPECT_NE(pull.out.find("pulled big"), std::string::npos) << pull.out;
  EXPECT_LT(pull.peak_kib, kFarBelow) << pull.out;
  EXPECT_EQ(sql(laptop, "big", check), want);
  // Its history came too: the bookmark of the first insert (oldest first:
  // the empty database, the table, the first ten rows) restores.
  Json history = Json::parse(dobj(at_laptop + "--json history SQL big --limit 100").out);
  ASSERT_GE(history["bookmarks"].size(), 6u) << history.dump();
  std::string first = history["bookmarks"][2]["bookmark"];
  ASSERT_EQ(dobj(at_laptop + "restore SQL big --to " + first).code, 0) << history.dump();
  EXPECT_EQ(sql(laptop, "big", "SELECT count(*) FROM b")["rows"][0][0], 10) << history.dump();

  // A failed export leaves no file behind.
  CliRun missing = dobj(at_prod + "export SQL name:nothing-here -o " + work_.path() + "/none.sqlite");
  EXPECT_NE(missing.code, 0);
  EXPECT_FALSE(std::filesystem::exists(work_.path() + "/none.sqlite"));
  EXPECT_FALSE(std::filesystem::exists(work_.path() + "/none.sqlite.part"));
}

// Production usually sits behind TLS: the command speaks https://, checks
// the certificate (this machine's CA store, or $SSL_CERT_FILE) and its name,
// and says why when it refuses one.
TEST_F(CliTest, PullFromAnHttpsServerChecksItsCertificate) {
  TempDir prod_dir, laptop_dir, tls_dir;
  ServerProcess prod(DOBJ_EXAMPLES_BIN, prod_dir.path(), {"--admin-token", kToken, "--history"});
  ServerProcess laptop(DOBJ_EXAMPLES_BIN, laptop_dir.path(), {"--admin-token", kToken, "--history"});
  ASSERT_TRUE(prod.start()) << prod.output();
  ASSERT_TRUE(laptop.start()) << laptop.output();
  TlsListener proxy(tls_dir.path(), TlsListener::relay_to(prod.port()));
  ASSERT_TRUE(proxy.made()) << "the openssl command could not make a certificate";
  for (int i = 0; i < 3; ++i) http(prod.port(), "POST", "/counter/a/increment");
  std::string at_laptop = "--server http://127.0.0.1:" + std::to_string(laptop.port()) + " ";
  std::string from = "--from https://localhost:" + std::to_string(proxy.port()) + " --from-token " + kToken;

  CliRun untrusted = dobj(at_laptop + "pull COUNTER a " + from);
  EXPECT_EQ(untrusted.code, 1) << untrusted.out;
  EXPECT_NE(untrusted.out.find("certificate was refused: self-signed certificate"), std::string::npos)
      << untrusted.out;
  EXPECT_EQ(http(laptop.port(), "GET", "/counter/a").body, "0");

  const std::string trust = "SSL_CERT_FILE=" + proxy.cert();
  CliRun pulled = dobj(at_laptop + "pull COUNTER a " + from, "", kToken, "", trust);
  ASSERT_EQ(pulled.code, 0) << pulled.out;
  EXPECT_EQ(http(laptop.port(), "GET", "/counter/a").body, "3");
  // The same server by another name than its certificate's: refused.
  CliRun other_name = dobj("--server https://127.0.0.1:" + std::to_string(proxy.port()) + " history COUNTER a", "",
                           kToken, "", trust);
  EXPECT_EQ(other_name.code, 1) << other_name.out;
  EXPECT_NE(other_name.out.find("TLS handshake with 127.0.0.1:"), std::string::npos) << other_name.out;
  // And by its own name, any command works through it.
  CliRun listed = dobj("--server https://localhost:" + std::to_string(proxy.port()) + " history COUNTER a", "",
                       kToken, "", trust);
  EXPECT_EQ(listed.code, 0) << listed.out;
  EXPECT_NE(listed.out.find("commits"), std::string::npos) << listed.out;
}

TEST_F(CliTest, NamesKeysAndValuesCannotSendEscapesToTheTerminal) {
  // ESC ] 0 ; ... BEL sets a terminal's title; ESC [ 2 J clears it.
  ASSERT_EQ(call("PUT", "/kv/%1B%5D0%3Bowned%07/%1B%5B2J", R"("\u001b[31mred\u0007")"), 200);
  ASSERT_EQ(call("POST", "/counter/%1B%5B2J%C2%9B/increment"), 200);
  // The catalog takes new objects in within tens of milliseconds.
  for (int i = 0; i < 50 && Json::parse(dobj("--json objects").out)["objects"].size() < 2; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  for (const char* args :
       {R"sh(inspect KV "name:$(printf '\033]0;owned\007')")sh", "objects", "objects --all"}) {
    CliRun r = dobj(args);
    ASSERT_EQ(r.code, 0) << r.out;
    EXPECT_EQ(r.out.find('\x1b'), std::string::npos) << args;
    EXPECT_EQ(r.out.find('\x07'), std::string::npos) << args;
    EXPECT_EQ(r.out.find("\xc2\x9b"), std::string::npos) << args << ": a C1 control";
    EXPECT_NE(r.out.find("\\x1b"), std::string::npos) << r.out;  // shown, escaped
  }
}

TEST_F(CliTest, ExportOfANameWithSlashesWritesInTheCurrentFolderOnly) {
  ASSERT_EQ(call("PUT", "/kv/..%2F..%2Fescaped/k", "1"), 200);
  std::string inner = work_.path() + "/a/b";
  std::filesystem::create_directories(inner);
  CliRun r = dobj("export KV name:../../escaped", "", kToken, inner);
  ASSERT_EQ(r.code, 0) << r.out;
  EXPECT_FALSE(std::filesystem::exists(work_.path() + "/escaped.sqlite"));
  EXPECT_TRUE(std::filesystem::exists(inner + "/_.._.._escaped.sqlite")) << r.out;
}

TEST_F(CliTest, ErrorsAreClear) {
  CliRun bad_token = dobj("objects", "", "wrong-token");
  EXPECT_EQ(bad_token.code, 1);
  EXPECT_NE(bad_token.out.find("401"), std::string::npos) << bad_token.out;
  EXPECT_NE(bad_token.out.find("DOBJ_ADMIN_TOKEN"), std::string::npos);
  CliRun nowhere = dobj("--server http://127.0.0.1:1 objects");
  EXPECT_EQ(nowhere.code, 1);
  EXPECT_NE(nowhere.out.find("cannot reach"), std::string::npos) << nowhere.out;
  CliRun no_ns = dobj("inspect NOPE name:x");
  EXPECT_EQ(no_ns.code, 1);
  EXPECT_NE(no_ns.out.find("no namespace NOPE"), std::string::npos) << no_ns.out;
}


TEST_F(CliTest, McpOverHttp) {
  ASSERT_EQ(call("POST", "/counter/mcp/increment"), 200);
  Json init = mcp_call(server_->port(), {{"jsonrpc", "2.0"}, {"id", 1}, {"method", "initialize"},
                                         {"params", {{"protocolVersion", "2025-03-26"},
                                                     {"capabilities", Json::object()},
                                                     {"clientInfo", {{"name", "t"}, {"version", "1"}}}}}});
  EXPECT_EQ(init["result"]["protocolVersion"], "2025-03-26");
  EXPECT_EQ(init["result"]["serverInfo"]["name"], "dobj");
  int status = 0;
  mcp_call(server_->port(), {{"jsonrpc", "2.0"}, {"method", "notifications/initialized"}}, &status);
  EXPECT_EQ(status, 202);
  Json tools = mcp_call(server_->port(), {{"jsonrpc", "2.0"}, {"id", 2}, {"method", "tools/list"}});
  std::set<std::string> names;
  for (const auto& t : tools["result"]["tools"]) names.insert(t["name"]);
  EXPECT_EQ(names, (std::set<std::string>{"getDOMetrics", "listObjects", "inspectObject", "querySql", "advise",
                                          "reviewCode", "searchDocs", "objectHistory", "restoreObject",
                                          "forkObject"}));
  Json m = mcp_call(server_->port(), {{"jsonrpc", "2.0"}, {"id", 3}, {"method", "tools/call"},
                                      {"params", {{"name", "getDOMetrics"},
                                                  {"arguments", {{"namespace", "COUNTER"}}}}}});
  Json sc = m["result"]["structuredContent"];
  EXPECT_EQ(sc["namespace"], "COUNTER");
  for (const char* f : {"activeObjects", "requestsPerSecond", "cpuTimeP95", "stateOperations"}) {
    EXPECT_TRUE(sc.contains(f)) << f;
  }
  EXPECT_EQ(sc["requests"], 1);
  EXPECT_FALSE(m["result"]["isError"].get<bool>());
  Json q = mcp_call(server_->port(), {{"jsonrpc", "2.0"}, {"id", 4}, {"method", "tools/call"},
                                      {"params", {{"name", "querySql"},
                                                  {"arguments", {{"namespace", "COUNTER"},
                                                                 {"name", "mcp"},
                                                                 {"query", "DROP TABLE x"}}}}}});
  EXPECT_TRUE(q["result"]["isError"].get<bool>());
  Json unknown = mcp_call(server_->port(), {{"jsonrpc", "2.0"}, {"id", 5}, {"method", "nope"}});
  EXPECT_EQ(unknown["error"]["code"], -32601);
  Json junk = mcp_call(server_->port(), Json("not an object"));
  EXPECT_EQ(junk["error"]["code"], -32600);
  // Fields of the wrong type get JSON-RPC errors; the server stays up.
  EXPECT_EQ(mcp_call(server_->port(), Json::parse(R"({"jsonrpc":2,"id":6,"method":"ping"})"))
                ["error"]["code"],
            -32600);
  EXPECT_EQ(mcp_call(server_->port(),
                     Json::parse(R"({"jsonrpc":"2.0","id":7,"method":"tools/call","params":{"name":5}})"))
                ["error"]["code"],
            -32602);
  EXPECT_EQ(mcp_call(server_->port(),
                     Json::parse(R"({"jsonrpc":"2.0","id":8,"method":"tools/call","params":[1]})"))
                ["error"]["code"],
            -32602);
  Json init2 = mcp_call(server_->port(),
                        Json::parse(R"({"jsonrpc":"2.0","id":9,"method":"initialize","params":{"protocolVersion":3}})"));
  EXPECT_EQ(init2["result"]["protocolVersion"], "2025-06-18");
  EXPECT_EQ(http(server_->port(), "POST", "/counter/mcp/increment").status, 200);
  HttpClient c(server_->port());
  EXPECT_EQ(c.request("POST", "/_dobj/mcp", "{}").status, 401);
  EXPECT_EQ(c.request("GET", "/_dobj/mcp", "", {{"Authorization", "Bearer " + kToken}}).status, 405);
}

TEST_F(CliTest, McpOverStdio) {
  ASSERT_EQ(call("PUT", "/kv/stdio/k", "7"), 200);
  std::string in =
      R"({"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"t","version":"1"}}})"
      "\n"
      R"({"jsonrpc":"2.0","method":"notifications/initialized"})"
      "\n"
      R"({"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"inspectObject","arguments":{"namespace":"KV","name":"stdio"}}})"
      "\n"
      R"({"jsonrpc":"2.0","id":3,"method":"tools/call","params":{"name":"advise","arguments":{}}})"
      "\n";
  CliRun r = dobj("mcp", in);
  ASSERT_EQ(r.code, 0) << r.out;
  std::vector<Json> lines;
  std::istringstream s(r.out);
  for (std::string line; std::getline(s, line);) lines.push_back(Json::parse(line));
  ASSERT_EQ(lines.size(), 3u) << r.out;  // the notification has no answer
  EXPECT_EQ(lines[0]["id"], 1);
  EXPECT_EQ(lines[0]["result"]["protocolVersion"], "2025-06-18");
  EXPECT_EQ(lines[1]["id"], 2);
  EXPECT_EQ(lines[1]["result"]["structuredContent"]["keys"][0]["value"], 7);
  EXPECT_EQ(lines[2]["id"], 3);
  EXPECT_TRUE(lines[2]["result"]["structuredContent"]["findings"].is_array());
}

}  // namespace
}  // namespace dobj::test
