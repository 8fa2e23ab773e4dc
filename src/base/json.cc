#include <nlohmann/json.hpp>
#include <string>

#include "dobj/codec.h"

namespace dobj {

namespace {

// True when arrays and objects in text nest deeper than limit. Brackets inside
// strings do not count; the text need not be valid JSON (the parser judges that).
bool nests_deeper_than(std::string_view text, int limit) {
  int depth = 0;
  bool in_string = false;
  for (size_t i = 0; i < text.size(); ++i) {
    char c = text[i];
    if (in_string) {
      if (c == '\\') {
        ++i;
      } else if (c == '"') {
        in_string = false;
      }
    } else if (c == '"') {
      in_string = true;
    } else if (c == '[' || c == '{') {
      if (++depth > limit) return true;
    } else if (c == ']' || c == '}') {
      --depth;
    }
  }
  return false;
}

}  // namespace

Result<Json> parse_json(std::string_view text) {
  if (nests_deeper_than(text, kMaxJsonDepth)) {
    return Status(Code::kInvalidArgument,
                  "JSON nested deeper than " + std::to_string(kMaxJsonDepth) + " levels");
  }
  try {
    return Json::parse(text);
  } catch (const Json::exception& e) {
    return Status(Code::kInvalidArgument, std::string("malformed JSON: ") + e.what());
  }
}

}  // namespace dobj
