// Lowercase hex encoding.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace dobj::internal {

std::string to_hex(const uint8_t* data, size_t size);
inline std::string to_hex(std::string_view bytes) {
  return to_hex(reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size());
}
// Only lowercase digits are accepted: IDs have one spelling.
std::optional<std::vector<uint8_t>> from_hex_lower(std::string_view hex);

}  // namespace dobj::internal
