// The project's documentation, searched by section: searchDocs in the MCP
// server and GET /_dobj/docs?q=... in the admin API, so that an assistant can
// ask dobj how it wants a thing done.
#pragma once

#include <nlohmann/json.hpp>
#include <string_view>

namespace dobj::internal {

// The sections (a heading and the text up to the next heading) that best
// match query's words, best first: [{doc, heading, text, score}]; text is cut
// at about 2,000 characters.
nlohmann::json search_docs(std::string_view query, size_t limit);

}  // namespace dobj::internal
