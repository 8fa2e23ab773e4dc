// Small helpers the example objects share.
#pragma once

#include <cstdint>
#include <optional>
#include <string>

namespace examples {

// The whole text as a decimal integer (std::stoll rules), or nullopt when
// it is not one: empty, trailing characters, out of range.
inline std::optional<int64_t> parse_int(const std::string& text) {
  try {
    size_t used = 0;
    int64_t v = std::stoll(text, &used);
    if (used != text.size()) return std::nullopt;
    return v;
  } catch (const std::exception&) {
    return std::nullopt;
  }
}

}  // namespace examples
