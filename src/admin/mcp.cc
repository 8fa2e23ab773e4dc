// The admin plane as a Model Context Protocol server (streamable HTTP at
// POST /_dobj/mcp, JSON responses, no server-initiated stream). Each tool is
// one of the admin routes, called in-process with the caller's token, so the
// MCP tools and the HTTP API cannot disagree.
#include <memory>
#include <mutex>
#include <nlohmann/json.hpp>

#include "admin/admin.h"
#include "admin/mcp_protocol.h"

namespace dobj::internal {

using Json = nlohmann::json;

void AdminPlane::mcp(Shard& here, const Request& request, Reply reply) {
  if (request.method != "POST") {
    Response r = Response::error(405, "POST JSON-RPC messages here; this server opens no stream");
    r.set_header("allow", "POST");
    return reply(std::move(r));
  }
  Result<Json> parsed = parse_json(request.body);
  if (!parsed) {
    return reply(Response::json(
        mcp_error(nullptr, -32700, "parse error: " + parsed.status().message()).dump(), 400));
  }
  Json msg = std::move(*parsed);
  std::string auth = request.header("authorization").value_or("");
  if (!msg.is_array()) {
    return mcp_message(here, msg, auth, [reply = std::move(reply)](std::optional<Json> out) {
      if (!out) return reply(Response::text("", 202));
      reply(Response::json(out->dump(-1, ' ', false, Json::error_handler_t::replace)));
    });
  }
  // A batch: the answers in one array, once all came.
  struct Batch {
    std::mutex mu;
    size_t left;
    std::vector<std::optional<Json>> out;
    Reply reply;
  };
  if (msg.empty()) return reply(Response::json(mcp_error(nullptr, -32600, "empty batch").dump(), 400));
  auto b = std::make_shared<Batch>();
  b->left = msg.size();
  b->out.resize(msg.size());
  b->reply = std::move(reply);
  for (size_t i = 0; i < msg.size(); ++i) {
    mcp_message(here, msg[i], auth, [b, i](std::optional<Json> out) {
      std::lock_guard lock(b->mu);
      b->out[i] = std::move(out);
      if (--b->left > 0) return;
      Json all = Json::array();
      for (auto& o : b->out) {
        if (o) all.push_back(std::move(*o));
      }
      if (all.empty()) return b->reply(Response::text("", 202));
      b->reply(Response::json(all.dump(-1, ' ', false, Json::error_handler_t::replace)));
    });
  }
}

void AdminPlane::mcp_message(Shard& here, const Json& msg, const std::string& auth,
                             std::function<void(std::optional<Json>)> done) {
  McpStep step = mcp_step(msg, auth);
  if (step.silent) return done(std::nullopt);
  if (step.answer) return done(std::move(step.answer));
  Request sub = std::move(*step.call);
  handle(here, sub, [step = std::move(step), done = std::move(done)](Answer a) {
    done(mcp_tool_result(step, std::move(a.response)));
  });
}

}  // namespace dobj::internal
