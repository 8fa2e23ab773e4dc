// dobj-js as a user runs it: the real binary serving the Worker of
// tests/js/bridge over real sockets. Checks the bridge between V8 and the
// runtime: event order, values, errors, limits, RPC, sockets, start-up errors.
// (The examples' HTTP contract runs on dobj-js in examples_test.)
#include <gtest/gtest.h>
#include <signal.h>

#include <nlohmann/json.hpp>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <thread>

#include "support/server_fixture.h"
#include "support/server_process.h"
#include "testing/http_client.h"
#include "testing/temp_dir.h"
#include "testing/ws_client.h"

namespace dobj::test {
namespace {

using Json = nlohmann::json;

const ServerCommand kBridge{DOBJ_JS_BIN, {DOBJ_JS_TESTS "/bridge/wrangler.jsonc"}};

class JsTest : public ::testing::Test, protected ServerFixture {
 protected:
  void SetUp() override { start(); }
  void start(std::vector<std::string> args = {}) { start_server(kBridge, std::move(args)); }
  HttpResponse get(const std::string& target) { return call("GET", target); }
  Json get_json(const std::string& target) { return json("GET", target); }
};

TEST_F(JsTest, MicrotasksAndTimersRunInTheirOrderWithinTheEvent) {
  EXPECT_EQ(get_json("/probe/o/order"),
            Json({"sync 1", "sync 2", "microtask", "then", "after put", "timeout 0", "after timer"}));
}

// One shard, so that the object lives on the Worker's shard: the runtime
// runs a C++ worker's call to such an object at once, inside the call, but
// never a JavaScript Worker's (runtime/shard.h, NoInlineDelivery).
TEST_F(JsTest, AStubCallStartsTheObjectOnlyAfterTheWorkersCodeAndMicrotasks) {
  start({"--shards", "1"});
  Json expected = {"worker after the call", "worker microtask", "object fetch"};
  EXPECT_EQ(get_json("/call-order/o"), expected) << "a new object";
  EXPECT_EQ(get_json("/call-order/o"), expected) << "a resident, idle object";
}

TEST_F(JsTest, StructuredCloneValuesRoundTripThroughStorageAcrossARestart) {
  ASSERT_EQ(get("/probe/c/clone-put").body, "ok");
  EXPECT_EQ(server_->stop(SIGKILL), 128 + SIGKILL);
  start();
  Json r = get_json("/probe/c/clone-get");
  EXPECT_EQ(r["bad"], Json::array()) << "these values changed in storage";
  EXPECT_EQ(r["clone"], true) << "structuredClone changed a value";
}

TEST_F(JsTest, TheAdminPlaneListsAndInspectsJavaScriptObjects) {
  start({"--admin-token", "secret"});
  ASSERT_EQ(get("/probe/adm/clone-put").body, "ok");
  HttpClient c(port());
  HttpResponse r = c.request("GET", "/_dobj/objects/PROBE/name:adm", "",
                             {{"Authorization", "Bearer secret"}});
  ASSERT_EQ(r.status, 200) << r.body;
  Json j = Json::parse(r.body);
  std::map<std::string, std::string> types;
  for (const auto& k : j["keys"]) types[k["key"]] = k["type"];
  EXPECT_EQ(types["samples"], "js") << r.body;  // V8's structured clone, shown as hex
  EXPECT_EQ(types["boots"], "js");
}

TEST_F(JsTest, AnUncaughtExceptionIsA500WithTheStackInTheLogAndTheObjectGoesOn) {
  HttpResponse r = get("/probe/e/throw");
  EXPECT_EQ(r.status, 500);
  EXPECT_NE(r.body.find("incident"), std::string::npos) << r.body;
  EXPECT_EQ(r.body.find("boom"), std::string::npos) << "the message reached the client: " << r.body;
  std::string log = server_->output();
  EXPECT_NE(log.find("boom in fetch"), std::string::npos) << log;
  EXPECT_NE(log.find("worker.js:"), std::string::npos) << "no stack in the log: " << log;
  EXPECT_EQ(get("/probe/e/boots").status, 200);
}

TEST_F(JsTest, AnUnhandledRejectionIsLogged) {
  EXPECT_EQ(get("/probe/r/reject").body, "ok");
  std::string log = server_->output();
  EXPECT_NE(log.find("unhandled promise rejection"), std::string::npos) << log;
  EXPECT_NE(log.find("nobody listens"), std::string::npos) << log;
}

TEST_F(JsTest, TheWorkersCtxTakesWaitUntilAndLogsWhatFailsInIt) {
  EXPECT_EQ(get("/wait-until/w1").body, "function function undefined");
  EXPECT_EQ(get("/wait-until/w2").body, "function function undefined");
  // The rejections are logged after the answers left: look for a while.
  std::string log = server_->output();
  for (int i = 0; i < 50 && log.find("late failure w2") == std::string::npos; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
    log = server_->output();
  }
  EXPECT_NE(log.find("waitUntil:"), std::string::npos) << log;
  EXPECT_NE(log.find("late failure w1"), std::string::npos) << log;
  EXPECT_NE(log.find("late failure w2"), std::string::npos) << log;
}

TEST_F(JsTest, BlockConcurrencyWhileInTheConstructorHoldsEveryEventUntilItEnds) {
  std::vector<std::thread> threads;
  std::vector<Json> answers(8);
  for (int i = 0; i < 8; ++i) threads.emplace_back([&, i] { answers[i] = get_json("/probe/b/boots"); });
  for (auto& t : threads) t.join();
  for (const auto& a : answers) EXPECT_EQ(a, Json({{"loaded", 0}, {"boots", 1}}));
}

TEST_F(JsTest, RpcCallsThroughOneStubArriveInOrderWithClonedValuesAndRethrownErrors) {
  Json r = get_json("/rpc/x");
  EXPECT_EQ(r["sums"], Json({1, 3, 6, 10, 15}));
  EXPECT_EQ(r["echoed"], "[object Map]");
  EXPECT_EQ(r["mapOk"], true);
  EXPECT_EQ(r["error"], "not enough");
}

// As on Cloudflare: a failed call through a stub is an exception (an RPC
// method's error keeps its standard class; `remote` when the object's code
// threw, `retryable` when the object was reset), not a response.
TEST_F(JsTest, AFailedCallThroughAStubThrowsWithCloudflaresMarkers) {
  Json r = get_json("/failures/f");
  EXPECT_EQ(r["rpc"]["name"], "RangeError") << r;
  EXPECT_EQ(r["rpc"]["instance"], "RangeError") << r;
  EXPECT_EQ(r["rpc"]["message"], "too far") << r;
  EXPECT_EQ(r["rpc"]["remote"], true) << r;
  EXPECT_EQ(r["rpc"]["retryable"], false) << r;
  EXPECT_EQ(r["subclass"]["instance"], "TypeError") << r;
  EXPECT_EQ(r["subclass"]["message"], "over quota") << r;

  EXPECT_EQ(r["fetch"]["instance"], "Error") << r;
  EXPECT_EQ(r["fetch"]["remote"], true) << r;
  EXPECT_NE(r["fetch"]["message"].get<std::string>().find("incident"), std::string::npos) << r;
  EXPECT_EQ(r["fetch"]["message"].get<std::string>().find("boom"), std::string::npos)
      << "the object's message reached its caller: " << r;

  EXPECT_EQ(r["reset"]["retryable"], true) << r;
  EXPECT_EQ(r["reset"]["remote"], false) << r;
  EXPECT_NE(r["reset"]["message"].get<std::string>().find("asked to"), std::string::npos) << r;

  // A failure an RPC method lets through reaches its caller as it came.
  EXPECT_EQ(r["relayed"]["remote"], true) << r;
  EXPECT_NE(r["relayed"]["message"].get<std::string>().find("incident"), std::string::npos) << r;

  EXPECT_EQ(r["answer"], 404) << "a response with an error status was thrown: " << r;
}

// A Worker that does not catch a stub's failure answers its client with it:
// the object's incident (one, in the log with the object's stack), not a new
// one of the Worker's.
TEST_F(JsTest, AFailureTheWorkerDoesNotCatchReachesTheClientAsItCame) {
  HttpResponse r = get("/probe/e2/throw");
  ASSERT_EQ(r.status, 500) << r.body;
  Json body = Json::parse(r.body);
  std::string incident = "(incident " + std::to_string(body["incident"].get<uint64_t>()) + ")";
  std::string log = server_->output();
  size_t at = log.find(incident);
  ASSERT_NE(at, std::string::npos) << log;
  size_t line = log.rfind('\n', at);
  EXPECT_NE(log.substr(line == std::string::npos ? 0 : line, at - line).find("boom in fetch"), std::string::npos) << log;
  EXPECT_EQ(log.find("worker: unhandled"), std::string::npos) << log;
}

// FormData, Blob and File as the web platform has them: a form a client
// posts (multipart, with a binary file; urlencoded), one a Worker sends an
// object, and the content types their bodies get.
TEST_F(JsTest, FormsAndBlobsTravelAsMultipartAndUrlencodedBodies) {
  Json r = get_json("/forms/fm");
  Json file = {{"file", "a %22b%22.bin"}, {"type", "application/x-test"}, {"size", 6}, {"bytes", {0, 13, 10, 255, 111, 107}}};
  EXPECT_EQ(r["object"]["entries"],
            Json::array({Json::array({"greeting", "héllo\r\nworld"}), Json::array({"upload", file}),
                         Json::array({"greeting", "again"}), Json::array({"solo", "2"})}))
      << r;
  EXPECT_EQ(r["object"]["type"].get<std::string>().rfind("multipart/form-data; boundary=", 0), 0u) << r;
  EXPECT_EQ(r["paramsType"], "application/x-www-form-urlencoded;charset=UTF-8");
  EXPECT_EQ(r["params"], Json::parse(R"([["a","1"],["b","x y"]])"));
  EXPECT_EQ(r["blob"], Json::parse(R"({"size":7,"type":"text/plain","text":"héllo!","slice":"éllo","tail":"!"})"));
  EXPECT_EQ(r["fromResponse"], "héllo!");
  EXPECT_EQ(r["responseType"], "text/plain");
  EXPECT_EQ(r["file"], Json::parse(R"(["f.txt",5,true])"));
  EXPECT_EQ(r["has"], Json::parse(R"([true,2,null])"));
  EXPECT_EQ(r["notAForm"], "TypeError");

  // A client's multipart form, with a file whose bytes are not text.
  HttpClient c(port());
  std::string body =
      "--XyZ\r\nContent-Disposition: form-data; name=\"note\"\r\n\r\nfirst line\r\nsecond\r\n"
      "--XyZ\r\nContent-Disposition: form-data; name=\"doc\"; filename=\"d.bin\"\r\n"
      "Content-Type: application/octet-stream\r\n\r\n\x01\r\n--X\xfe\r\n--XyZ--\r\n";
  HttpResponse posted = c.request("POST", "/forms/fm", body, {{"Content-Type", "multipart/form-data; boundary=\"XyZ\""}});
  ASSERT_EQ(posted.status, 200) << posted.body;
  EXPECT_EQ(Json::parse(posted.body),
            Json::parse(R"([["note","first line\r\nsecond"],
                            ["doc",{"file":"d.bin","type":"application/octet-stream","size":7,"bytes":[1,13,10,45,45,88,254]}]])"));
  HttpResponse urlencoded = c.request("POST", "/forms/fm", "k=v%26w&k=2", {{"Content-Type", "application/x-www-form-urlencoded"}});
  EXPECT_EQ(urlencoded.body, R"([["k","v&w"],["k","2"]])");
  // A broken form is the Worker's exception (a 500), not a crash.
  HttpResponse broken = c.request("POST", "/forms/fm", "--XyZ\r\nno end", {{"Content-Type", "multipart/form-data; boundary=XyZ"}});
  EXPECT_EQ(broken.status, 500);
  EXPECT_EQ(get("/forms/fm").status, 200);
}

// The Streams standard's classes, and stream bodies: read whole before they
// leave, including a response whose stream fills after its handler returned.
TEST_F(JsTest, StreamsWorkAndAStreamBodyIsSentWhenItEnds) {
  Json r = get_json("/streams/st");
  EXPECT_EQ(r["read"], Json({"a", "b"})) << r;
  EXPECT_EQ(r["lockedAfter"], false) << r;
  EXPECT_EQ(r["tee"], Json::parse(R"([["p","q"],["p","q"]])")) << r;
  EXPECT_EQ(r["piped"], Json::parse(R"([10,20,30,"end","closed"])")) << r;
  EXPECT_EQ(r["decoded"], "€uro") << r;
  EXPECT_EQ(r["cancelled"], "enough") << r;
  EXPECT_EQ(r["errored"], "bad source") << r;
  EXPECT_EQ(r["afterClose"], "TypeError") << r;
  EXPECT_EQ(r["text"], "hello") << r;
  EXPECT_EQ(r["clone"], Json({"cloned", "cloned"})) << r;
  EXPECT_EQ(r["sent"], Json::parse(R"({"n":7,"text":"one two","used":true})")) << r;
  EXPECT_EQ(r["late"], "chunk 1;chunk 2;chunk 3;") << r;
  EXPECT_EQ(r["blobStream"], "blob") << r;

  // An object's and the Worker's answers whose streams fill after the
  // handler returned reach the client whole.
  HttpResponse late = get("/probe/st/stream-late");
  EXPECT_EQ(late.status, 200);
  EXPECT_EQ(late.body, "chunk 1;chunk 2;chunk 3;");
  EXPECT_EQ(get("/streams/st?late").body, "XYZ");
  // A client's body read through request.body.
  HttpClient c(port());
  HttpResponse read = c.request("POST", "/probe/st/read-body", std::string(70000, 'x'));
  EXPECT_EQ(Json::parse(read.body)["n"], 70000) << read.body.substr(0, 200);
  // A stream that fails is the handler's failure: a 500, and the object goes on.
  HttpResponse failed = get("/probe/sf/stream-fails");
  EXPECT_EQ(failed.status, 500) << failed.body;
  EXPECT_NE(server_->output().find("the source broke"), std::string::npos) << server_->output();
  EXPECT_EQ(get("/probe/sf/boots").status, 200);
}

// Signatures and AES-GCM against what OpenSSL's command line made
// (tests/js/crypto-vectors.json), GCM's, PBKDF2's and HKDF's published test
// vectors: the JWTs, webhooks, sealed values and password hashes real
// Workers handle.
TEST_F(JsTest, AsymmetricKeysAndAesGcmAgreeWithOpensslsOwnOutput) {
  std::string vectors;
  {
    std::FILE* f = std::fopen(DOBJ_JS_TESTS "/crypto-vectors.json", "rb");
    ASSERT_NE(f, nullptr);
    char buf[4096];
    for (size_t n; (n = std::fread(buf, 1, sizeof buf, f)) > 0;) vectors.append(buf, n);
    std::fclose(f);
  }
  HttpClient c(port());
  HttpResponse answer = c.request("POST", "/crypto-keys/k", vectors, {{"Content-Type", "application/json"}});
  ASSERT_EQ(answer.status, 200) << answer.body;
  Json r = Json::parse(answer.body);
  EXPECT_EQ(r["rsa"], Json::parse(R"({"signs":true,"jwkSigns":true,"verifies":true,"tampered":false,"spki":true,
      "algorithm":[2048,[1,0,1],"SHA-256","public"],"jwk":["RSA","RS256","d,dp,dq,p,q,qi"]})")) << r;
  EXPECT_EQ(r["pss"], Json({true, false})) << r;
  EXPECT_EQ(r["ecdsa"], Json::parse(R"({"verifies":true,"tampered":false,"jwk":["EC","P-256",true,true],
      "raw":[65,true],"generated":[96,true,["sign"],["verify"]]})")) << r;
  EXPECT_EQ(r["ed25519"], Json::parse(R"({"signs":true,"verifies":true,"tampered":false,"node":true,
      "jwk":["OKP","Ed25519","string"]})")) << r;
  EXPECT_EQ(r["aes"], Json::parse(R"({"kat":"0388dace60b6a392f328c2b971b2fe78ab6e47d42cec13bdf53a67b21257bddf",
      "opened":true,"altered":"OperationError","jwk":"A256GCM"})")) << r;
  EXPECT_EQ(r["derive"], Json::parse(R"({"pbkdf2":"0c60c80f961f0e71f3a9b524af6012062fe037a6",
      "pbkdf2sha256":"c5e478d59288c841aa530db6845c4c8d962893a001ce4e11a4963873aa98134a",
      "hkdf":"3cb25f25faacd57a90434f64d0362f2a2d2d0a90cf1a5a4c5db02d56ecc4c5bf34007208d5b887185865",
      "derivedKey":["AES-GCM",256,32],"extractable":"SyntaxError","oddLength":"OperationError"})")) << r;
  EXPECT_EQ(r["errors"], Json::parse(R"({"wrongKind":"DataError","wrongCurve":"DataError","garbage":"DataError",
      "signWithPublic":"InvalidAccessError","wrongUsage":"SyntaxError","unsupported":"NotSupportedError",
      "privateAsRaw":"InvalidAccessError"})")) << r;
}

// With nodejs_compat: node:buffer's Buffer, node:events' EventEmitter and
// node:async_hooks' AsyncLocalStorage behave as Node's, and the flag's v2
// globals are there (process.env with the text vars).
TEST_F(JsTest, NodeBuffersAndEventEmittersWithNodejsCompat) {
  start({"--shards", "1"});  // one isolate: the next request sees what this one left
  EXPECT_EQ(get("/node/n?enter").body, "leak");
  Json r = get_json("/node/n");
  EXPECT_EQ(r, Json::parse(R"({"global":true,"length":13,"byteLength":6,"hex":"68c3a9","base64":"aMOpbGxvIHfDtnJsZA==",
      "base64url":"-_8","back":"héllo wörld","fromHex":"hé","latin1":233,"utf16":"68006900","concat":"abcd",
      "slice":"Héll","numbers":[3735928559,-2,239,"efbeaddefffe0000"],"json":"{\"type\":\"Buffer\",\"data\":[1,2]}",
      "equals":true,"indexOf":7,"isBuffer":[true,false],"events":["on 1","once 1","on 2"],"late":"late","count":1,
      "unhandled":"no listener","env":["test","test",false],
      "stores":["outer","outer","outer","inner","outer","outer","outer","exited","none"],"leaked":null})")) << r;
}

TEST_F(JsTest, IdsNamesAndVars) {
  Json id = get_json("/probe/nm/id");
  EXPECT_EQ(id["name"], "nm");
  EXPECT_EQ(id["equal"], true);
  EXPECT_EQ(id["id"].get<std::string>().size(), 64u);
  EXPECT_EQ(get_json("/probe/e/env"), Json({{"mode", "test"}, {"limits", {{"n", 3}}}}));
  EXPECT_EQ(get_json("/unique/x"), Json({{"equal", true}, {"length", 64}}));
  EXPECT_EQ(get("/badid/x").status, 400);
}

TEST_F(JsTest, SqlCursors) {
  Json r = get_json("/probe/s/sql");
  EXPECT_EQ(r["rows"], Json::parse(R"([{"a":1,"b":"x"},{"a":2,"b":"y"}])"));
  EXPECT_EQ(r["columns"], Json({"a", "b"}));
  EXPECT_EQ(r["one"], 2);
  EXPECT_EQ(r["raw"], Json::parse("[[1],[2]]"));
  EXPECT_EQ(r["size"], true);
}

TEST_F(JsTest, WebPlatformClasses) {
  Json r = get_json("/probe/w/web");
  EXPECT_EQ(r["href"], "https://example.com/a/x/y?q=1#h");
  EXPECT_EQ(r["path"], "/a/x/y");
  EXPECT_EQ(r["all"], Json({"1", "3"}));
  EXPECT_EQ(r["b"], "two words");
  EXPECT_EQ(r["text"], "h\xc3\xa9llo");
  EXPECT_EQ(r["b64"], "aGkh");
  EXPECT_EQ(r["unb64"], "hi!");
  EXPECT_EQ(r["sha256"], "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  EXPECT_EQ(r["header"], "1, 2");
  EXPECT_EQ(r["uuid"], true);
}

TEST_F(JsTest, SchedulerWaitIsATimerThatASignalAborts) {
  EXPECT_EQ(get_json("/probe/w/wait"),
            Json({{"waited", true}, {"aborted", "stop"}, {"agent", "Cloudflare-Workers"}}));
}

TEST_F(JsTest, HmacSignsAndVerifiesAsRfc4231Says) {
  Json r = get_json("/probe/w/hmac");
  EXPECT_EQ(r["SHA-256"], "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843");
  EXPECT_EQ(r["SHA-512"],
            "164b7a7bfcf819e2e395fbe73b56e0a387bd64222e831fd610270cd7ea250554"
            "9758bf75c05a994a6d034f65f8f0e6fdcaeab1a34d4a6b4b636e070a38bce737");
  for (const char* hash : {"SHA-256", "SHA-512"}) {
    EXPECT_EQ(r[std::string(hash) + " verifies"], true) << hash;
    EXPECT_EQ(r[std::string(hash) + " other data"], false) << hash;
  }
  EXPECT_EQ(r["jwk"], Json({"SmVmZQ", "HS256", true}));  // "Jefe", base64url
  EXPECT_EQ(r["generated"], Json({1024, false, "secret"}));  // SHA-512's block
  EXPECT_EQ(r["errors"], Json({"InvalidAccessError", "InvalidAccessError", "NotSupportedError",
                               "NotSupportedError"}));
  EXPECT_EQ(r["equal"], Json({true, false, "TypeError"}));
}

TEST_F(JsTest, TextCrossesBetweenCppAndJavaScriptAsUtf8) {
  HttpClient client(port());
  HttpResponse r = client.request("GET", "/probe/u/text", "", {{"x-name", "Zo\xc3\xab"}});
  ASSERT_EQ(r.status, 200) << r.body;
  // The key made in JavaScript went to storage and came back whole (306
  // UTF-16 units: "clé-", 300 "ü", one emoji as two); a lone surrogate in a
  // body is written as U+FFFD.
  std::string sharp;
  for (int i = 0; i < 300; ++i) sharp += "\xc3\x9f";
  EXPECT_EQ(r.body, "1 true 306\xef\xbf\xbd" + sharp);
  EXPECT_EQ(r.header("x-echo"), "Zo\xc3\xab-ok");
  EXPECT_EQ(r.header("x-short"), "\xc3\xb6");
}

TEST_F(JsTest, HeaderNamesCrossRightPastTheCacheOfNames) {
  // More distinct names than the runtime keeps (Vm::kNamesKept, 256): when
  // it starts over, names made before and after still cross both ways.
  HttpClient client(port());
  for (int round = 0; round < 2; ++round) {
    for (int i = 0; i < 300; i += round == 0 ? 1 : 37) {
      std::string name = "x-n" + std::to_string(i);
      std::string value = "v" + std::to_string(i * 7);
      HttpResponse r = client.request("GET", "/probe/u/header?name=" + name, "", {{name, value}});
      ASSERT_EQ(r.status, 200) << name << ": " << r.body;
      EXPECT_EQ(r.body, value) << name;
      EXPECT_EQ(r.header(name), value) << name;
    }
  }
}

TEST_F(JsTest, CopiedRequestsAndClonedResponsesKeepTheirHeadersAndBodies) {
  HttpClient client(port());
  HttpResponse r = client.request("POST", "/copies/cp", "plain ascii", {});
  ASSERT_EQ(r.status, 200) << r.body;
  Json j = Json::parse(r.body);
  EXPECT_EQ(j["requestType"], nullptr) << j;  // none sent, none added by the copy
  EXPECT_EQ(j["requestText"], "plain ascii");
  EXPECT_EQ(j["cloneType"], nullptr) << j;
  EXPECT_EQ(j["cloneBytes"], Json({255, 104, 105}));
  EXPECT_EQ(j["answerBytes"], Json({255, 104, 105}));
  // An ASCII answer passes through the Worker as the same bytes, with no
  // content type added on the way.
  HttpResponse b = client.request("GET", "/probe/cp/bytes?ascii=hi%00there", "", {});
  ASSERT_EQ(b.status, 200);
  EXPECT_EQ(b.body, std::string("hi\0there", 8));
  EXPECT_EQ(b.header("content-type"), std::nullopt);
}

TEST_F(JsTest, TheSynchronousKvApiSharesItsKeysWithTheAsyncOne) {
  EXPECT_EQ(get_json("/probe/k/sync-kv"),
            Json({{"a", {{"n", 1}}},
                  {"b", Json::array({Json::array({"x", 2})})},
                  {"c", 3},
                  {"asyncA", {{"n", 1}}},
                  {"missing", true},
                  {"listed", {"sk-a", "sk-b", "sk-c"}},
                  {"reversed", {"sk-c", "sk-b"}},
                  {"deleted", {true, false}},
                  {"putUndefined", "TypeError"}}));
  // What it wrote is durable like the rest: after a SIGKILL, still there.
  EXPECT_EQ(server_->stop(SIGKILL), 128 + SIGKILL);
  start();
  EXPECT_EQ(get_json("/probe/k/sync-kv-read"),
            Json::parse(R"([["sk-a", {"n": 1}], ["sk-b", [["x", 2]]]])"));
}

TEST_F(JsTest, TransactionsUndoOnThrowAndOnRollback) {
  EXPECT_EQ(get_json("/probe/t/txn"), Json({{"afterThrow", 0}, {"afterRollback", 0}}));
}

TEST_F(JsTest, ATransactionThatAwaitsIoIsRolledBackAndSaysSo) {
  Json r = get_json("/probe/t/txn-io");
  EXPECT_EQ(r["u"], 0);
  EXPECT_NE(r["error"].get<std::string>().find("rolled back"), std::string::npos) << r;
  EXPECT_EQ(get_json("/probe/t/boots")["boots"], 1);  // the object was not reset
}

TEST_F(JsTest, AbortResetsTheObjectAndTheNextEventBuildsANewOne) {
  EXPECT_EQ(get_json("/probe/a/boots")["boots"], 1);
  HttpResponse r = get("/probe/a/abort");
  EXPECT_EQ(r.status, 500);
  EXPECT_NE(r.body.find("reset"), std::string::npos) << r.body;
  EXPECT_EQ(get_json("/probe/a/boots")["boots"], 2);  // the constructor ran again
}

TEST_F(JsTest, BookmarksRestoresAndForksWithCloudflaresNamesAcrossASigkill) {
  start({"--history"});
  get("/probe/h/bump");
  get("/probe/h/bump");
  std::string two = get("/probe/h/bookmark").body;
  ASSERT_EQ(two.size(), 29u) << two;
  EXPECT_EQ(get("/probe/h/bump").body, "3");
  std::string three = get("/probe/h/bookmark").body;
  EXPECT_GT(three, two);
  // A time now names the last commit.
  auto now = std::chrono::duration_cast<std::chrono::milliseconds>(
                 std::chrono::system_clock::now().time_since_epoch()).count();
  EXPECT_EQ(get("/probe/h/bookmark-at?t=" + std::to_string(now + 1000)).body, three);

  // Asked for, then the server is killed: the restore happens on its next start.
  HttpResponse undo = get("/probe/h/restore?b=" + two);
  ASSERT_EQ(undo.status, 200) << undo.body;
  EXPECT_EQ(server_->stop(SIGKILL), 128 + SIGKILL);
  start({"--history"});
  EXPECT_EQ(get("/probe/h/n").body, "2");
  // Undone, with ctx.abort() as the restart.
  ASSERT_EQ(get("/probe/h/restore?b=" + undo.body).status, 200);
  EXPECT_EQ(get("/probe/h/abort").status, 500);
  EXPECT_EQ(get("/probe/h/n").body, "3");

  HttpResponse bad = get("/probe/h/restore?b=tuesday");
  EXPECT_EQ(bad.status, 400);
  EXPECT_NE(bad.body.find("bookmark"), std::string::npos) << bad.body;
  EXPECT_EQ(get("/probe/h/n").body, "3");

  // A fork: another object starts over on a snapshot of this one.
  std::string snap = get("/probe/h/snapshot").body;
  ASSERT_EQ(snap.rfind("snap-", 0), 0u) << snap;
  get("/probe/h/bump");
  get("/probe/f/bump");
  EXPECT_EQ(get("/probe/f/fork?s=" + snap).status, 500);  // its abort
  EXPECT_EQ(get("/probe/f/n").body, "3");
  EXPECT_EQ(get("/probe/h/n").body, "4");
  EXPECT_EQ(get("/probe/f/bump").body, "4");
  EXPECT_EQ(get("/probe/h/n").body, "4");
}

TEST_F(JsTest, ClassesWithoutTheBaseClassWork) {
  EXPECT_EQ(get("/plain/p").body, "plain 1 test");
  EXPECT_EQ(get("/plain/p").body, "plain 2 test");
}

TEST_F(JsTest, AnEndlessLoopIsStoppedByTheCpuLimitAndResetsOnlyItsObject) {
  start({"--cpu-limit-ms", "300"});
  EXPECT_EQ(get_json("/probe/s/boots")["boots"], 1);
  HttpResponse r = get("/probe/s/spin");
  EXPECT_EQ(r.status, 500);
  EXPECT_NE(r.body.find("reset"), std::string::npos) << r.body;
  EXPECT_EQ(get_json("/probe/s/boots")["boots"], 2);
  EXPECT_NE(server_->output().find("CPU time limit"), std::string::npos) << server_->output();
}

TEST_F(JsTest, HibernatedSocketsKeepTheirTagsAndAttachments) {
  start({"--evict-after-every-event"});
  WsClient ws(server_->port(), "/probe/h/ws");
  ASSERT_TRUE(ws.connected()) << ws.upgrade_response().status << " " << ws.upgrade_response().body;
  EXPECT_EQ(ws.next_message(), "hello");
  ASSERT_TRUE(ws.send_text("a"));
  EXPECT_EQ(ws.next_message(), "a 1 t1,t2 1");
  ASSERT_TRUE(ws.send_text("b"));
  EXPECT_EQ(ws.next_message(), "b 2 t1,t2 1");
  // Each message built a new instance (the constructor counts boots).
  EXPECT_GE(get_json("/probe/h/boots")["boots"].get<int>(), 3);
}

TEST_F(JsTest, EvictedObjectsGiveTheirMemoryBack) {
  // Under ASan, freed memory waits in a quarantine (256 MiB by default)
  // before it is reused, so the RSS would follow how much the rounds
  // allocated rather than what they kept: a small one measures what is kept.
  server_ = std::make_unique<ServerProcess>(kBridge, dir_.path(),
                                            std::vector<std::string>{"--idle-timeout-ms", "200", "--durability", "os"});
  const char* asan = std::getenv("ASAN_OPTIONS");
  std::string options = asan && *asan ? std::string(asan) + ":" : "";
  server_->set_environment({{"ASAN_OPTIONS", options + "quarantine_size_mb=4"}});
  ASSERT_TRUE(server_->start()) << server_->output();
  auto round = [&](int r) {
    for (int i = 0; i < 1000; ++i) {
      ASSERT_EQ(get("/plain/r" + std::to_string(r) + "-" + std::to_string(i)).status, 200);
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(1500));  // all evicted
  };
  // The first rounds grow the allocator's and V8's pools to their working
  // size (RSS after two rounds varied from 70 to 84 MiB between runs, and
  // all reached ~90 MiB by the fourth); what is measured is the growth after.
  for (int r = 0; r < 4; ++r) round(r);
  long after_four = server_->rss_kib();
  for (int r = 4; r < 8; ++r) round(r);
  long after_eight = server_->rss_kib();
  ASSERT_GT(after_four, 0);
  std::printf("RSS after four rounds of 1,000 objects: %ld KiB; after eight: %ld KiB\n", after_four, after_eight);
  // 4,000 more objects came and went: what they held was given back (kept,
  // they would be ~40 MiB).
  EXPECT_LT(after_eight - after_four, 16 * 1024) << after_four << " KiB, then " << after_eight << " KiB";
}

TEST_F(JsTest, APureJavaScriptServerHasNoCppBindings) {
  EXPECT_EQ(get("/cpp/a").status, 404);
}

// C++ and JavaScript classes in one server, calling each other through stubs.
TEST(JsMixed, CppAndJavaScriptObjectsCallEachOther) {
  TempDir dir;
  ServerProcess p(ServerCommand{DOBJ_JS_MIXED_BIN, {DOBJ_JS_TESTS "/bridge/wrangler.jsonc"}},
                  dir.path());
  ASSERT_TRUE(p.start()) << p.output();
  // The JavaScript front Worker reaches a C++ object...
  EXPECT_EQ(http(p.port(), "GET", "/cpp/a", "").body, "cpp 1");
  EXPECT_EQ(http(p.port(), "GET", "/cpp/a", "").body, "cpp 2");
  // ...and a C++ object reaches a JavaScript one.
  EXPECT_EQ(http(p.port(), "GET", "/calls/x", "").body, R"(js said 200 {"loaded":0,"boots":1})");
  // The JavaScript objects still work as usual beside them.
  EXPECT_EQ(http(p.port(), "GET", "/plain/p", "").body, "plain 1 test");
}

// wrangler.toml: the bridge's settings written as TOML serve the same Worker
// (bindings, migrations, vars with a nested table).
TEST(JsStart, AWranglerTomlServesTheWorkerAsItsJsoncDoes) {
  TempDir dir;
  ServerProcess p(ServerCommand{DOBJ_JS_BIN, {DOBJ_JS_TESTS "/bridge/wrangler.toml"}}, dir.path());
  ASSERT_TRUE(p.start()) << p.output();
  EXPECT_EQ(Json::parse(http(p.port(), "GET", "/probe/e/env", "").body),
            Json({{"mode", "test"}, {"limits", {{"n", 3}}}}));
  EXPECT_EQ(Json::parse(http(p.port(), "GET", "/probe/nm/id", "").body)["name"], "nm");
  EXPECT_EQ(http(p.port(), "GET", "/plain/p", "").body, "plain 1 test");
}

// The nodejs_als flag alone gives node:async_hooks, and nothing else of
// nodejs_compat (no Buffer global).
TEST(JsStart, TheNodejsAlsFlagAloneGivesAsyncLocalStorage) {
  TempDir dir;
  ServerProcess p(ServerCommand{DOBJ_JS_BIN, {DOBJ_JS_TESTS "/als/wrangler.jsonc"}}, dir.path());
  ASSERT_TRUE(p.start(std::chrono::seconds(10))) << p.output();
  HttpClient c(p.port());
  EXPECT_EQ(c.request("GET", "/", "").body, "kept undefined");
}

TEST(JsStart, ABrokenWorkerStopsTheStartWithTheFileLineAndMessage) {
  TempDir dir;
  struct Case {
    const char* config;
    std::vector<std::string> wanted;
  };
  for (const Case& c : {Case{"syntax.jsonc", {"syntax.js:3", "SyntaxError"}},
                        Case{"missing.jsonc", {"NotHere", "does not export"}},
                        Case{"import.jsonc", {"import.js", "does-not-exist.js"}},
                        Case{"node.jsonc", {"node.js", "node:buffer", "nodejs_compat"}},
                        Case{"syntax.toml", {"syntax.toml:4:", "not valid TOML", "expected ']'"}}}) {
    ServerProcess p(ServerCommand{DOBJ_JS_BIN, {std::string(DOBJ_JS_TESTS "/broken/") + c.config}},
                    dir.path());
    EXPECT_FALSE(p.start(std::chrono::seconds(10))) << c.config;
    std::string out = p.output();
    for (const auto& w : c.wanted) EXPECT_NE(out.find(w), std::string::npos) << c.config << ": " << out;
  }
}

}  // namespace
}  // namespace dobj::test
