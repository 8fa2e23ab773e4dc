#include "dobj/codec.h"

#include <gtest/gtest.h>

#include <nlohmann/json.hpp>
#include <string>

namespace dobj {
namespace {

std::string nested(int depth, const std::string& open = "[", const std::string& close = "]") {
  std::string s;
  for (int i = 0; i < depth; ++i) s += open;
  for (int i = 0; i < depth; ++i) s += close;
  return s;
}

TEST(ParseJson, AcceptsNestingUpToTheLimit) {
  Result<Json> j = parse_json(nested(kMaxJsonDepth));
  ASSERT_TRUE(j) << j.status().message();
  EXPECT_TRUE(j->is_array());
}

TEST(ParseJson, RefusesDeeperNestingWithAClearError) {
  Result<Json> j = parse_json(nested(kMaxJsonDepth + 1));
  ASSERT_FALSE(j);
  EXPECT_EQ(j.status().code(), Code::kInvalidArgument);
  EXPECT_NE(j.status().message().find("nested deeper than 256"), std::string::npos);
  // Objects count as levels too, and a huge depth is refused without recursion.
  std::string objects;
  for (int i = 0; i < 100'000; ++i) objects += "{\"a\":";
  objects += "1";
  for (int i = 0; i < 100'000; ++i) objects += "}";
  EXPECT_FALSE(parse_json(objects));
  EXPECT_FALSE(parse_json(nested(100'000)));
}

TEST(ParseJson, BracketsInsideStringsDoNotCount) {
  std::string deep_text = "\"" + std::string(1000, '[') + "\\\"" + std::string(1000, '{') + "\"";
  Result<Json> j = parse_json("[" + deep_text + "]");
  ASSERT_TRUE(j) << j.status().message();
  EXPECT_EQ((*j)[0].get<std::string>().size(), 2001u);
}

TEST(ParseJson, MalformedTextIsAnInvalidArgument) {
  Result<Json> j = parse_json("{\"a\": ");
  ASSERT_FALSE(j);
  EXPECT_EQ(j.status().code(), Code::kInvalidArgument);
  EXPECT_NE(j.status().message().find("malformed JSON"), std::string::npos);
}

TEST(ParseJson, StoredJsonThatNestsTooDeepReadsAsAnError) {
  std::string stored = "j" + nested(kMaxJsonDepth + 1);
  EXPECT_THROW(internal::decode_value<Json>(stored), Error);
}

}  // namespace
}  // namespace dobj
