// Standard base64 (RFC 4648, with padding): etcd's JSON API carries keys and
// values this way.
#pragma once

#include <optional>
#include <string>
#include <string_view>

namespace dobj::internal {

std::string base64_encode(std::string_view bytes);
// nullopt for anything that is not padded standard base64.
std::optional<std::string> base64_decode(std::string_view text);

}  // namespace dobj::internal
