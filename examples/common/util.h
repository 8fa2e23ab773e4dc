// Small helpers the example objects share.
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>

namespace examples {

// Milliseconds since the Unix epoch: the unit of alarms.
inline int64_t now_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

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
