// The Model Context Protocol's side of the admin plane that needs no server:
// what one JSON-RPC message means (mcp_step) and how an admin route's answer
// becomes a tool's result (mcp_tool_result). mcp.cc runs the routes; the
// fuzz target (fuzz/mcp_fuzz.cc) drives these directly.
#pragma once

#include <nlohmann/json.hpp>
#include <optional>
#include <string>

#include "dobj/http.h"

namespace dobj::internal {

// One message, decided: an answer now, nothing to answer (a notification, or
// a response from the client), or an admin route to call, whose answer
// mcp_tool_result turns into the answer.
struct McpStep {
  std::optional<nlohmann::json> answer;
  bool silent = false;           // nothing to answer
  std::optional<Request> call;   // the admin route of a tools/call
  nlohmann::json id;             // the message's id, for the call's answer
  std::string keep_ns;           // getDOMetrics: the namespace to pick out
};

// auth: the caller's Authorization header, passed on to the route (the tools
// can do exactly what the token can). Never throws on any JSON value.
McpStep mcp_step(const nlohmann::json& msg, const std::string& auth);

// The JSON-RPC answer to a tools/call whose route answered r.
nlohmann::json mcp_tool_result(const McpStep& step, Response r);

// A JSON-RPC error answer.
nlohmann::json mcp_error(const nlohmann::json& id, int code, const std::string& message);

}  // namespace dobj::internal
