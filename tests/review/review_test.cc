// The reviewer (src/review, docs/review.md): each rule on its fixtures (code
// it must flag at the lines marked "// expect", and the corrected code it
// must pass), the examples, suppression comments, the config checks, live
// evidence, and the three ways in: `dobj review`, POST /_dobj/review and the
// MCP tool reviewCode on a running dobj-js.
#include <gtest/gtest.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>

#include "review/review.h"
#include "support/server_fixture.h"
#include "support/server_process.h"
#include "testing/http_client.h"
#include "testing/temp_dir.h"

namespace dobj::test {
namespace {

using Json = nlohmann::json;
namespace fs = std::filesystem;

const std::string kFixtures = DOBJ_REVIEW_FIXTURES;

std::string slurp(const fs::path& p) {
  std::ifstream f(p);
  std::stringstream s;
  s << f.rdbuf();
  return s.str();
}

Json review_sources(std::vector<review::Source> files, std::optional<review::Source> config = {},
                    Json live = nullptr) {
  review::Input input;
  input.files = std::move(files);
  input.config = std::move(config);
  input.live = std::move(live);
  auto r = review::run(input);
  EXPECT_TRUE(r) << r.status().message();
  return r ? *r : Json();
}

Json review_code(const std::string& code) { return review_sources({{"worker.js", code}}); }

std::set<std::string> rules_of(const Json& result) {
  std::set<std::string> out;
  for (const auto& f : result["findings"]) out.insert(f["rule"].get<std::string>());
  return out;
}

// The fixture files: <rule>.bad.js and <rule>.good.js.
std::vector<std::string> fixtures() {
  std::vector<std::string> out;
  for (const auto& e : fs::directory_iterator(kFixtures)) out.push_back(e.path().filename().string());
  std::sort(out.begin(), out.end());
  return out;
}

class Fixture : public ::testing::TestWithParam<std::string> {};

TEST_P(Fixture, FlagsExactlyTheMarkedLines) {
  const std::string name = GetParam();
  const bool bad = name.find(".bad.js") != std::string::npos;
  const std::string rule = name.substr(0, name.find('.'));
  std::string code = slurp(fs::path(kFixtures) / name);
  std::vector<int> want;
  std::istringstream lines(code);
  std::string line;
  for (int n = 1; std::getline(lines, line); ++n) {
    if (line.size() >= 9 && line.compare(line.size() - 9, 9, "// expect") == 0) want.push_back(n);
  }
  ASSERT_EQ(bad, !want.empty()) << name << ": a .bad.js marks its lines, a .good.js none";
  Json result = review_sources({{name, code}});
  std::vector<int> got;
  for (const auto& f : result["findings"]) {
    EXPECT_EQ(f["rule"], rule) << name << ": another rule fired: " << f.dump();
    if (f["rule"] == rule) got.push_back(f["line"].get<int>());
    // Every finding explains itself.
    EXPECT_FALSE(f["why"].get<std::string>().empty());
    EXPECT_FALSE(f["fix"].get<std::string>().empty());
    EXPECT_GT(f["column"].get<int>(), 0);
  }
  EXPECT_EQ(got, want) << name << "\n" << result.dump(2);
}

std::string fixture_name(const ::testing::TestParamInfo<std::string>& info) {
  std::string n = info.param.substr(0, info.param.size() - 3);  // no ".js"
  for (char& c : n) {
    if (!std::isalnum(static_cast<unsigned char>(c))) c = '_';
  }
  return n;
}
INSTANTIATE_TEST_SUITE_P(Rules, Fixture, ::testing::ValuesIn(fixtures()), fixture_name);

TEST(Review, EveryCodeRuleHasAWrongAndARightFixtureAndADocsEntry) {
  Json rules = review::rules();
  ASSERT_GE(rules.size(), 20u);
  std::string docs = slurp(DOBJ_REVIEW_DOCS);
  for (const auto& r : rules) {
    std::string id = r["id"];
    EXPECT_NE(docs.find("`" + id + "`"), std::string::npos) << id << " is not in docs/review.md";
    if (id.rfind("config-", 0) == 0 || id == "parse-error") continue;
    EXPECT_TRUE(fs::exists(fs::path(kFixtures) / (id + ".bad.js"))) << id;
    EXPECT_TRUE(fs::exists(fs::path(kFixtures) / (id + ".good.js"))) << id;
  }
}

TEST(Review, TheExamplesGiveNoFinding) {
  auto input = review::collect(DOBJ_EXAMPLES_JS);
  ASSERT_TRUE(input) << input.status().message();
  EXPECT_GE(input->files.size(), 2u);
  ASSERT_TRUE(input->config);
  auto r = review::run(*input);
  ASSERT_TRUE(r);
  EXPECT_EQ((*r)["findings"], Json::array()) << r->dump(2);
  EXPECT_FALSE(review::has_errors(*r));
}

TEST(Review, ACommentSwitchesARuleOffForALineOrAFile) {
  const std::string body = R"(
import { DurableObject } from "cloudflare:workers";
export class Loop extends DurableObject {
  async fetch() {
    LINE
    while (true) {}
  }
})";
  auto with = [&](const std::string& line, const std::string& head = "") {
    std::string code = head + body;
    code.replace(code.find("LINE"), 4, line);
    return rules_of(review_code(code));
  };
  EXPECT_EQ(with(""), std::set<std::string>{"blocking-loop"});
  EXPECT_TRUE(with("// dobj-review-disable-next-line blocking-loop").empty());
  EXPECT_TRUE(with("// dobj-review-disable-next-line").empty());  // every rule
  // Another rule's name does not switch this one off.
  EXPECT_EQ(with("// dobj-review-disable-next-line busy-wait"), std::set<std::string>{"blocking-loop"});
  EXPECT_TRUE(with("", "/* dobj-review-disable blocking-loop */").empty());
  std::string same_line = body;
  same_line.replace(same_line.find("while (true) {}"), 15,
                    "while (true) {} // dobj-review-disable-line blocking-loop");
  same_line.replace(same_line.find("LINE"), 4, "");
  EXPECT_TRUE(rules_of(review_code(same_line)).empty());
}

// The findings of a review of config beside a module exporting Room.
Json config_findings(const review::Source& config) {
  return review_sources({{"src/index.js", "export class Room {}\nexport default { fetch() {} };\n"}}, config);
}

// "rule@line" of every finding, each expected in file.
std::multiset<std::string> rules_at_lines(const Json& r, const std::string& file) {
  std::multiset<std::string> got;
  for (const auto& f : r["findings"]) {
    got.insert(f["rule"].get<std::string>() + "@" + std::to_string(f["line"].get<int>()));
    EXPECT_EQ(f["file"], file);
  }
  return got;
}

TEST(Review, TheConfigIsCheckedAgainstTheModules) {
  const std::string config = R"({
  // a comment, as wrangler.jsonc allows
  "main": "src/index.js",
  "durable_objects": { "bindings": [
    { "name": "ROOM", "class_name": "Room" },
    { "name": "GHOST", "class_name": "Ghost" },
  ] },
  "migrations": [ { "tag": "v1", "new_sqlite_classes": ["Ghost"] } ],
  "kv_namespaces": [ { "binding": "CACHE", "id": "x" } ],
})";
  Json r = config_findings(review::Source{"wrangler.jsonc", config});
  EXPECT_EQ(rules_at_lines(r, "wrangler.jsonc"), (std::multiset<std::string>{"config-class-not-exported@6",
                                              "config-class-not-in-migration@5",
                                              "config-unsupported-binding@9"}))
      << r.dump(2);
}

TEST(Review, AWranglerTomlIsCheckedAsItsJsoncIs) {
  const std::string config = R"(# the same settings as wrangler.toml
main = "src/index.js"

[[durable_objects.bindings]]
name = "ROOM"
class_name = "Room"

[[durable_objects.bindings]]
name = "GHOST"
class_name = "Ghost" # dobj-review-disable-line config-class-not-exported

[[migrations]]
tag = "v1"
new_sqlite_classes = ["Ghost"]

[[kv_namespaces]]
binding = "CACHE"
id = "x"
)";
  Json r = config_findings(review::Source{"wrangler.toml", config});
  EXPECT_EQ(rules_at_lines(r, "wrangler.toml"), (std::multiset<std::string>{"config-class-not-in-migration@6",
                                              "config-unsupported-binding@16"}))
      << r.dump(2);
  // A syntax error names the line.
  review::Input input;
  TempDir dir;
  std::ofstream(dir.path() + "/wrangler.toml") << "main = \"index.js\"\n[vars\n";
  Status s = review::collect_into(input, dir.path() + "/wrangler.toml");
  EXPECT_EQ(s.code(), Code::kInvalidArgument);
  EXPECT_NE(s.message().find("wrangler.toml:2:"), std::string::npos) << s.message();
}

// ctx.storage.kv (the synchronous key-value API) is storage to the rules:
// its writes keep state durable, a read and write across I/O is flagged.
TEST(Review, TheSynchronousKvApiIsStorage) {
  const std::string durable = R"(import { DurableObject } from "cloudflare:workers";
export class Visits extends DurableObject {
  count = 0;
  async fetch() {
    const kv = this.ctx.storage.kv;
    this.count = (kv.get("count") ?? 0) + 1;
    kv.put("count", this.count);
    return new Response(String(this.count));
  }
}
)";
  EXPECT_TRUE(rules_of(review_code(durable)).empty()) << review_code(durable).dump(2);
  const std::string across_io = R"(import { DurableObject } from "cloudflare:workers";
export class Balance extends DurableObject {
  async fetch() {
    const balance = this.ctx.storage.kv.get("balance") ?? 0;
    const rate = await fetch("https://rates.example/eur").then((r) => r.json());
    this.ctx.storage.kv.put("balance", balance * rate);
    return new Response("ok");
  }
}
)";
  EXPECT_EQ(rules_of(review_code(across_io)), std::set<std::string>{"read-modify-write-across-io"})
      << review_code(across_io).dump(2);
}

// APIs dobj provides are not "unsupported": point-in-time recovery (with
// --history), jurisdictions, HMAC.
TEST(Review, ApisDobjProvidesAreNotFlagged) {
  const std::string code = R"(import { DurableObject } from "cloudflare:workers";
export class Doc extends DurableObject {
  async fetch(request) {
    const key = await crypto.subtle.importKey("raw", new Uint8Array([1]), { name: "HMAC", hash: "SHA-256" }, false, ["sign"]);
    await crypto.subtle.sign("HMAC", key, new Uint8Array([2]));
    const before = await this.ctx.storage.getBookmarkForTime(Date.now() - 60000);
    await this.ctx.storage.onNextSessionRestoreBookmark(before);
    this.ctx.abort();
  }
}
export default {
  async fetch(request, env) {
    return env.DOC.jurisdiction("eu").getByName(new URL(request.url).pathname).fetch(request);
  },
};
)";
  EXPECT_TRUE(rules_of(review_code(code)).empty()) << review_code(code).dump(2);
}

TEST(Review, ASyntaxErrorIsAFindingWithItsLine) {
  Json r = review_sources({{"a.js", "export default {\n  fetch() {\n    return (;\n  }\n};\n"},
                           {"b.js", "while (true) {}\n"}});
  ASSERT_EQ(r["findings"].size(), 2u) << r.dump(2);
  EXPECT_EQ(r["findings"][0]["rule"], "parse-error");
  EXPECT_EQ(r["findings"][0]["file"], "a.js");
  EXPECT_EQ(r["findings"][0]["line"], 3);
  // The other file is still reviewed.
  EXPECT_EQ(r["findings"][1]["rule"], "blocking-loop");
  EXPECT_TRUE(review::has_errors(r));
}

TEST(Review, TypeScriptIsReviewedFromItsCompiledOutput) {
  review::Input input;
  Status s = review::collect_into(input, kFixtures + "/../typescript/worker.ts");
  EXPECT_EQ(s.code(), Code::kInvalidArgument);
  EXPECT_NE(s.message().find("compiled JavaScript"), std::string::npos) << s.message();
  // A config whose main is TypeScript says so too, rather than reviewing nothing.
  s = review::collect_into(input, kFixtures + "/../typescript/wrangler.jsonc");
  EXPECT_EQ(s.code(), Code::kInvalidArgument);
  EXPECT_NE(s.message().find("main is TypeScript"), std::string::npos) << s.message();
}

TEST(Review, LiveNumbersConfirmAFindingOfTheSameNamespace) {
  const std::string config = R"({"main": "index.js",
    "durable_objects": {"bindings": [{"name": "COUNTER", "class_name": "Counter"}]},
    "migrations": [{"tag": "v1", "new_sqlite_classes": ["Counter"]}]})";
  const std::string code = slurp(fs::path(kFixtures) / "constant-object-name.bad.js") +
                           "export class Counter {}\n";
  Json hot = {{"findings",
               {{{"rule", "hot-object"},
                 {"namespace", "COUNTER"},
                 {"evidence", "2400 events/s for 30 s, its code busy 91% of its thread"}}}}};
  Json r = review_sources({{"index.js", code}}, review::Source{"wrangler.jsonc", config}, hot);
  ASSERT_EQ(r["findings"].size(), 1u) << r.dump(2);
  EXPECT_EQ(r["findings"][0]["rule"], "constant-object-name");
  EXPECT_EQ(r["findings"][0]["confirmed"]["by"], "hot-object");
  EXPECT_NE(review::to_text(r).find("confirmed by the live numbers (hot-object, COUNTER)"),
            std::string::npos);
  // Numbers of another namespace confirm nothing.
  hot["findings"][0]["namespace"] = "OTHER";
  r = review_sources({{"index.js", code}}, review::Source{"wrangler.jsonc", config}, hot);
  EXPECT_FALSE(r["findings"][0].contains("confirmed")) << r.dump(2);
}

TEST(Review, TooMuchSourceIsRefused) {
  review::Input input;
  input.files.push_back({"big.js", std::string(review::kMaxSourceBytes + 1, ' ')});
  auto r = review::run(input);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.status().code(), Code::kTooLarge);
}

// `dobj review`: the exit status tells CI whether an error-level finding exists.
int run_cli(const std::string& args, std::string* out) {
  std::string cmd = std::string(DOBJ_CLI_BIN) + " " + args + " 2>&1";
  FILE* p = ::popen(cmd.c_str(), "r");
  char buf[4096];
  size_t n;
  out->clear();
  while ((n = std::fread(buf, 1, sizeof buf, p)) > 0) out->append(buf, n);
  int st = ::pclose(p);
  return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

TEST(ReviewCli, ExitsOneOnAnErrorZeroOnWarningsTwoWhenItCannotRun) {
  std::string out;
  EXPECT_EQ(run_cli("review " + kFixtures + "/sql-transaction-statement.bad.js", &out), 1) << out;
  EXPECT_NE(out.find("sql-transaction-statement.bad.js:5:"), std::string::npos) << out;
  EXPECT_NE(out.find("2 errors"), std::string::npos) << out;
  EXPECT_EQ(run_cli("review " + kFixtures + "/state-in-memory.bad.js", &out), 0) << out;
  EXPECT_NE(out.find("warning state-in-memory"), std::string::npos) << out;
  EXPECT_EQ(run_cli("review " DOBJ_EXAMPLES_JS, &out), 0) << out;
  EXPECT_NE(out.find("0 errors, 0 warnings"), std::string::npos) << out;
  EXPECT_EQ(run_cli("review /no/such/worker.js", &out), 2) << out;
  EXPECT_EQ(run_cli("--json review " + kFixtures + "/busy-wait.bad.js", &out), 1) << out;
  Json j = Json::parse(out, nullptr, false);
  ASSERT_FALSE(j.is_discarded()) << out;
  EXPECT_EQ(j["findings"][0]["rule"], "busy-wait");
  EXPECT_EQ(run_cli("review --rules", &out), 0);
  EXPECT_NE(out.find("read-modify-write-across-io"), std::string::npos);
}

// The admin API and the MCP server of a running dobj-js.
class ReviewServerTest : public ::testing::Test, protected ServerFixture {
 protected:
  void SetUp() override {
    start_server(ServerCommand{DOBJ_JS_BIN, {DOBJ_EXAMPLES_JS}}, {"--admin-token", "secret"});
  }
  HttpResponse admin(const std::string& method, const std::string& target, const std::string& body) {
    HttpClient c(port());
    return c.request(method, target, body, {{"Authorization", "Bearer secret"}});
  }
};

TEST_F(ReviewServerTest, TheAdminApiReviewsCodeAndSearchesTheDocs) {
  Json req = {{"files", {{"room.js", slurp(fs::path(kFixtures) / "broadcast-send-unguarded.bad.js")}}}};
  HttpResponse r = admin("POST", "/_dobj/review", req.dump());
  ASSERT_EQ(r.status, 200) << r.body;
  Json j = Json::parse(r.body);
  ASSERT_EQ(j["findings"].size(), 1u) << r.body;
  EXPECT_EQ(j["findings"][0]["rule"], "broadcast-send-unguarded");
  EXPECT_EQ(j["findings"][0]["file"], "room.js");
  EXPECT_EQ(j["findings"][0]["line"], 5);
  // A path on the server's machine: the Worker it serves, clean.
  r = admin("POST", "/_dobj/review", Json{{"path", DOBJ_EXAMPLES_JS}}.dump());
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(Json::parse(r.body)["findings"], Json::array()) << r.body;
  // Bad requests are told what to send; no token, no review.
  EXPECT_EQ(admin("POST", "/_dobj/review", "{not json").status, 400);
  EXPECT_EQ(admin("POST", "/_dobj/review", R"({"files": []})").status, 400);
  EXPECT_EQ(admin("GET", "/_dobj/review", "").status, 405);
  EXPECT_EQ(admin("POST", "/_dobj/review", R"({"path": "/no/such/file.js"})").status, 404);
  EXPECT_EQ(call("POST", "/_dobj/review", req.dump()).status, 401);
  // The documentation: the review rules' page answers a question about them.
  r = admin("GET", "/_dobj/docs?q=how+to+switch+a+review+rule+off&limit=3", "");
  ASSERT_EQ(r.status, 200) << r.body;
  Json docs = Json::parse(r.body);
  ASSERT_FALSE(docs["sections"].empty());
  EXPECT_EQ(docs["sections"][0]["doc"], "docs/review.md") << r.body;
  EXPECT_EQ(docs["sections"][0]["heading"], "Switching a rule off") << r.body;
  EXPECT_EQ(admin("GET", "/_dobj/docs", "").status, 400);
}

TEST_F(ReviewServerTest, TheMcpServerOffersReviewCodeAndSearchDocs) {
  auto rpc = [&](const Json& msg) {
    HttpResponse r = admin("POST", "/_dobj/mcp", msg.dump());
    EXPECT_EQ(r.status, 200) << r.body;
    return Json::parse(r.body);
  };
  Json tools = rpc({{"jsonrpc", "2.0"}, {"id", 1}, {"method", "tools/list"}});
  std::set<std::string> names;
  for (const auto& t : tools["result"]["tools"]) names.insert(t["name"]);
  EXPECT_TRUE(names.count("reviewCode") && names.count("searchDocs")) << tools.dump();
  Json call = {{"jsonrpc", "2.0"},
               {"id", 2},
               {"method", "tools/call"},
               {"params",
                {{"name", "reviewCode"},
                 {"arguments",
                  {{"source", "export default { async fetch(r, env) {\n"
                              "  return env.COUNTER.idFromName(\"global\"); } };\n"}}}}}};
  Json out = rpc(call);
  ASSERT_FALSE(out["result"]["isError"].get<bool>()) << out.dump();
  Json findings = out["result"]["structuredContent"]["findings"];
  ASSERT_EQ(findings.size(), 1u) << out.dump(2);
  EXPECT_EQ(findings[0]["rule"], "constant-object-name");
  EXPECT_EQ(findings[0]["line"], 2);
  Json search = {{"jsonrpc", "2.0"},
                 {"id", 3},
                 {"method", "tools/call"},
                 {"params", {{"name", "searchDocs"}, {"arguments", {{"query", "hibernation"}}}}}};
  out = rpc(search);
  ASSERT_FALSE(out["result"]["isError"].get<bool>()) << out.dump();
  EXPECT_FALSE(out["result"]["structuredContent"]["sections"].empty()) << out.dump();
}

// The replay: state kept in memory shows as two different answers to the
// same two requests, with and without an eviction between them.
class ReplayTest : public ::testing::Test, protected ServerFixture {
 protected:
  void SetUp() override {
    start_server(ServerCommand{DOBJ_JS_BIN, {kFixtures + "/../replay/wrangler.jsonc"}},
                 {"--admin-token", "secret"});
  }
  Json replay(const std::string& ns, const std::string& name, bool evict) {
    Json body = {{"requests", {{{"method", "POST"}, {"path", "/x/" + name}},
                               {{"method", "POST"}, {"path", "/x/" + name}}}},
                 {"evictBetween", evict}};
    HttpClient c(port());
    HttpResponse r = c.request("POST", "/_dobj/objects/" + ns + "/name:" + name + "/replay",
                               body.dump(), {{"Authorization", "Bearer secret"}});
    EXPECT_EQ(r.status, 200) << r.body;
    Json j = Json::parse(r.body, nullptr, false);
    EXPECT_EQ(j["answers"].size(), 2u) << r.body;
    return j["answers"];
  }
};

TEST_F(ReplayTest, TheAdminReplayEvictsBetweenRequestsWhenAsked) {
  Json kept = replay("VISITS", "a", false);
  EXPECT_EQ(kept[1]["body"], "2");
  EXPECT_EQ(kept[1]["evictedBefore"], false);
  Json evicted = replay("VISITS", "b", true);
  EXPECT_EQ(evicted[1]["body"], "1") << "the in-memory count survived an eviction";
  EXPECT_EQ(evicted[1]["evictedBefore"], true);
  // State in storage survives it.
  EXPECT_EQ(replay("STORED", "c", true)[1]["body"], "2");
  HttpClient c(port());
  EXPECT_EQ(c.request("POST", "/_dobj/objects/VISITS/name:d/replay", R"({"requests": []})",
                      {{"Authorization", "Bearer secret"}}).status, 400);
}

TEST_F(ReplayTest, DobjReviewReplayConfirmsStateKeptInMemoryAndCleansUp) {
  std::string out;
  std::string server = "--server http://127.0.0.1:" + std::to_string(port()) + " --token secret ";
  int rc = run_cli(server + "review " + kFixtures + "/../replay --replay 'POST /visits/x'", &out);
  EXPECT_EQ(rc, 0) << out;  // a warning, confirmed
  EXPECT_NE(out.find("warning state-in-memory"), std::string::npos) << out;
  EXPECT_NE(out.find("confirmed by replay (POST /visits/x twice): kept in memory 200 2; evicted "
                     "between 200 1"),
            std::string::npos)
      << out;
  // The scratch objects are gone (Visits stores nothing; nothing is listed).
  HttpClient c(port());
  HttpResponse list = c.request("GET", "/_dobj/objects?prefix=dobj-review-replay", "",
                                {{"Authorization", "Bearer secret"}});
  EXPECT_EQ(Json::parse(list.body)["objects"], Json::array()) << list.body;
  // Without the config the class has no binding: said, not guessed.
  rc = run_cli(server + "review " + kFixtures + "/state-in-memory.bad.js --replay 'POST /x'", &out);
  EXPECT_NE(out.find("replay: no binding for class Visits"), std::string::npos) << out;
}

}  // namespace
}  // namespace dobj::test
