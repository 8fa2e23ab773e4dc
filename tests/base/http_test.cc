// The HTTP types objects see (include/dobj/http.h, src/base/http.cc): paths,
// queries, headers, upgrades, and the helpers that build responses.
#include "dobj/http.h"

#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

namespace dobj {
namespace {

Request at(std::string target) {
  Request r;
  r.target = std::move(target);
  return r;
}

TEST(HttpRequest, PathDropsTheQuery) {
  EXPECT_EQ(at("/a/b?x=1").path(), "/a/b");
  EXPECT_EQ(at("/a/b").path(), "/a/b");
  EXPECT_EQ(at("?x=1").path(), "");
}

TEST(HttpRequest, PathSegmentsAreDecodedAndEmptyOnesSkipped) {
  EXPECT_EQ(at("/a/b%2Fc/").path_segments(), (std::vector<std::string>{"a", "b/c"}));
  EXPECT_EQ(at("//a///b").path_segments(), (std::vector<std::string>{"a", "b"}));
  EXPECT_EQ(at("/").path_segments(), std::vector<std::string>{});
  EXPECT_EQ(at("/caf%C3%A9").path_segments(), std::vector<std::string>{"café"});
  // A plus sign is a plus in a path (only a query's form encoding makes it a space).
  EXPECT_EQ(at("/a+b").path_segments(), std::vector<std::string>{"a+b"});
}

TEST(HttpRequest, AMalformedEscapeInThePathGivesNoSegments) {
  EXPECT_EQ(at("/a/%zz").path_segments(), std::nullopt);
  EXPECT_EQ(at("/a/%4").path_segments(), std::nullopt);
}

TEST(HttpRequest, QueryParametersAreFormDecoded) {
  Request r = at("/x?a=1&b=hello+world&c=%26%3D&empty=&flag");
  EXPECT_EQ(r.query("a"), "1");
  EXPECT_EQ(r.query("b"), "hello world");
  EXPECT_EQ(r.query("c"), "&=");
  EXPECT_EQ(r.query("empty"), "");
  EXPECT_EQ(r.query("flag"), "");
  EXPECT_EQ(r.query("missing"), std::nullopt);
  EXPECT_EQ(at("/x").query("a"), std::nullopt);
  EXPECT_EQ(at("/x?a=1&a=2").query("a"), "1");  // the first one
  EXPECT_EQ(at("/x?n%61me=v").query("name"), "v");  // names are decoded too
}

TEST(HttpRequest, HeadersAreFoundWithoutRegardToCaseAndSetReplaces) {
  Request r;
  r.headers.emplace_back("Content-Type", "text/plain");
  EXPECT_EQ(r.header("content-type"), "text/plain");
  r.set_header("CONTENT-TYPE", "application/json");
  EXPECT_EQ(r.header("Content-Type"), "application/json");
  EXPECT_EQ(r.headers.size(), 1u);
  EXPECT_EQ(r.header("x-missing"), std::nullopt);
}

TEST(HttpRequest, AWebSocketUpgradeNeedsGetAndBothTokens) {
  Request r;
  r.set_header("Upgrade", "WebSocket");
  r.set_header("Connection", "keep-alive, Upgrade");
  EXPECT_TRUE(r.is_websocket_upgrade());
  r.method = "POST";
  EXPECT_FALSE(r.is_websocket_upgrade());
  r.method = "GET";
  r.set_header("Connection", "keep-alive, upgraded");  // a token, not a substring
  EXPECT_FALSE(r.is_websocket_upgrade());
  r.set_header("Connection", "upgrade");
  r.set_header("Upgrade", "h2c");
  EXPECT_FALSE(r.is_websocket_upgrade());
}

TEST(HttpResponse, HelpersSetStatusTypeAndBody) {
  Response t = Response::text("hi", 201);
  EXPECT_EQ(t.status, 201);
  EXPECT_EQ(t.header("content-type"), "text/plain; charset=utf-8");
  EXPECT_EQ(t.body, "hi");
  Response j = Response::json(R"({"a":1})");
  EXPECT_EQ(j.status, 200);
  EXPECT_EQ(j.header("Content-Type"), "application/json");
}

TEST(HttpResponse, AnErrorIsJsonEvenForMessagesThatAreNotUtf8) {
  Response e = Response::error(404, "no \"such\" thing");
  EXPECT_EQ(e.status, 404);
  EXPECT_EQ(nlohmann::json::parse(e.body)["error"], "no \"such\" thing");
  Response bad = Response::error(400, std::string("key \xff\xfe"));
  EXPECT_TRUE(nlohmann::json::accept(bad.body)) << bad.body;
}

}  // namespace
}  // namespace dobj
