// The MCP JSON-RPC handler (src/admin/mcp_protocol.cc) on any message:
// never an exception or a crash; every answer is a JSON-RPC 2.0 answer that
// can be written; every tool call becomes an admin route whose path is
// exactly the route and arguments given (no argument adds a segment, a query
// or leaves /_dobj/), with the caller's token and nothing else; and any
// route answer becomes a tool result.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>

#include "admin/mcp_protocol.h"
#include "dobj/codec.h"

namespace {

using Json = nlohmann::json;
using dobj::internal::McpStep;

void check_answer(const Json& a) {
  if (!a.is_object() || a.value("jsonrpc", "") != "2.0" || !a.contains("id")) std::abort();
  if (a.contains("result") == a.contains("error")) std::abort();
  (void)a.dump(-1, ' ', false, Json::error_handler_t::replace);
}

std::string text(const Json& args, const char* key) {
  auto it = args.find(key);
  return it != args.end() && it->is_string() ? it->get<std::string>() : "";
}

void check_call(const Json& msg, const McpStep& step) {
  const dobj::Request& r = *step.call;
  if (r.target.rfind("/_dobj/", 0) != 0) std::abort();
  if (r.headers.size() != 1 || r.headers[0].second != "caller-token") std::abort();
  auto segments = r.path_segments();
  if (!segments || segments->size() < 2 || (*segments)[0] != "_dobj") std::abort();
  const Json& params = msg["params"];
  std::string tool = text(params, "name");
  if (tool == "inspectObject" || tool == "querySql") {
    const Json& args = params["arguments"];
    std::string id = text(args, "id"), name = text(args, "name");
    std::string obj = !id.empty() ? id : "name:" + name;
    size_t want = tool == "querySql" ? 5 : 4;
    if (segments->size() != want || (*segments)[1] != "objects" ||
        (*segments)[2] != text(args, "namespace") || (*segments)[3] != obj) {
      std::abort();
    }
    if (tool == "querySql") {
      auto body = dobj::parse_json(r.body);
      if (!body || !body->is_object() || (*body)["query"] != text(args, "query")) std::abort();
    }
    if (tool == "querySql" && r.target.find('?') != std::string::npos) std::abort();
  } else if (segments->size() != 2) {
    std::abort();
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  // The first line is the message; the rest, the route's answer body.
  std::string input(reinterpret_cast<const char*>(data), size);
  size_t nl = input.find('\n');
  std::string message = input.substr(0, nl);
  std::string answer_body = nl == std::string::npos ? "" : input.substr(nl + 1);
  dobj::Result<Json> parsed = dobj::parse_json(message);
  if (!parsed) return 0;
  Json batch = parsed->is_array() ? *parsed : Json::array({*parsed});
  for (const Json& msg : batch) {
    McpStep step = dobj::internal::mcp_step(msg, "caller-token");
    if (step.silent) {
      if (step.answer || step.call) std::abort();
      continue;
    }
    if (step.answer) {
      if (step.call) std::abort();
      check_answer(*step.answer);
      continue;
    }
    if (!step.call) std::abort();
    check_call(msg, step);
    for (int status : {200, 404, 500}) {
      dobj::Response r;
      r.status = status;
      r.body = answer_body;
      check_answer(dobj::internal::mcp_tool_result(step, r));
    }
  }
  return 0;
}
