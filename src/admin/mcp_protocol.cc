#include "admin/mcp_protocol.h"

#include <vector>

#include "dobj/codec.h"

namespace dobj::internal {

using Json = nlohmann::json;

namespace {

constexpr const char* kLatestProtocol = "2025-06-18";
constexpr const char* kProtocols[] = {"2025-06-18", "2025-03-26", "2024-11-05"};

Json rpc_error(const Json& id, int code, const std::string& message) {
  return {{"jsonrpc", "2.0"}, {"id", id}, {"error", {{"code", code}, {"message", message}}}};
}

Json rpc_result(const Json& id, Json result) {
  return {{"jsonrpc", "2.0"}, {"id", id}, {"result", std::move(result)}};
}

Json object_schema(Json properties, std::vector<std::string> required = {}) {
  Json s = {{"type", "object"}, {"properties", std::move(properties)}};
  if (!required.empty()) s["required"] = required;
  return s;
}

const Json& tool_list() {
  static const Json tools = Json::array({
      {{"name", "getDOMetrics"},
       {"description",
        "Live metrics of a Durable Object namespace (or all): activeObjects (in memory), "
        "requestsPerSecond, cpuTimeP95 (ms per turn), stateOperations, storage, sockets, "
        "alarms, errors. Use them to ground advice about a namespace's code in what it does."},
       {"inputSchema",
        object_schema({{"namespace", {{"type", "string"},
                                      {"description", "binding name; omit for all namespaces"}}}})}},
      {{"name", "listObjects"},
       {"description",
        "Objects with storage, from the node's catalog: id, name, bytes, last activity, alarm, "
        "resident, sockets. Paged: pass nextCursor back as cursor."},
       {"inputSchema",
        object_schema({{"namespace", {{"type", "string"}}},
                       {"prefix", {{"type", "string"}, {"description", "name prefix"}}},
                       {"sort", {{"type", "string"}, {"enum", {"id", "name", "bytes", "lastActive"}}}},
                       {"limit", {{"type", "integer"}, {"minimum", 1}, {"maximum", 1000}}},
                       {"cursor", {{"type", "string"}}}})}},
      {{"name", "inspectObject"},
       {"description", "One object: its keys and values, SQL tables, alarm, residency, sockets."},
       {"inputSchema",
        object_schema({{"namespace", {{"type", "string"}}},
                       {"id", {{"type", "string"}, {"description", "hex ID"}}},
                       {"name", {{"type", "string"}, {"description", "the name it was made from"}}},
                       {"keys", {{"type", "integer"}, {"minimum", 0}, {"maximum", 1000}}}},
                      {"namespace"})}},
      {{"name", "querySql"},
       {"description",
        "Run one read-only SQL statement (SELECT, WITH, introspection PRAGMAs) on an object's "
        "database; writes are refused."},
       {"inputSchema", object_schema({{"namespace", {{"type", "string"}}},
                                      {"id", {{"type", "string"}}},
                                      {"name", {{"type", "string"}}},
                                      {"query", {{"type", "string"}}}},
                                     {"namespace", "query"})}},
      {{"name", "objectHistory"},
       {"description",
        "An object's history (server started with --history): its latest commits as bookmarks "
        "with their times, which are whole copies (base), the current bookmark and the "
        "history's size."},
       {"inputSchema", object_schema({{"namespace", {{"type", "string"}}},
                                      {"id", {{"type", "string"}}},
                                      {"name", {{"type", "string"}}},
                                      {"limit", {{"type", "integer"}, {"minimum", 1}, {"maximum", 100000}}}},
                                     {"namespace"})},
       {"annotations", {{"readOnlyHint", true}}}},
      {{"name", "restoreObject"},
       {"description",
        "Put an object back as it was at a bookmark, or at a time (ms since the epoch: the last "
        "commit made by then). Resets the object; the restore is itself a commit, so restoring "
        "the bookmark that was current before undoes it."},
       {"inputSchema", object_schema({{"namespace", {{"type", "string"}}},
                                      {"id", {{"type", "string"}}},
                                      {"name", {{"type", "string"}}},
                                      {"bookmark", {{"type", "string"}}},
                                      {"time", {{"type", "integer"}}}},
                                     {"namespace"})},
       {"annotations", {{"destructiveHint", true}}}},
      {{"name", "forkObject"},
       {"description",
        "Copy an object's database (not its alarm) into another object of the same namespace, "
        "named by as; replace must be true to overwrite one that has storage."},
       {"inputSchema", object_schema({{"namespace", {{"type", "string"}}},
                                      {"id", {{"type", "string"}}},
                                      {"name", {{"type", "string"}}},
                                      {"as", {{"type", "string"}}},
                                      {"replace", {{"type", "boolean"}}}},
                                     {"namespace", "as"})},
       {"annotations", {{"destructiveHint", true}}}},
      {{"name", "reviewCode"},
       {"description",
        "Review JavaScript Durable Object code (a Cloudflare Worker's modules) for the model's "
        "classic mistakes: state kept only in memory, read-modify-write across outside I/O, "
        "blocking loops, timers instead of alarms, constant object names, non-hibernating "
        "sockets, SQL transaction statements and more. Each finding has rule, severity, "
        "file:line, why and fix; findings the server's live numbers confirm say so. Give "
        "source (one module), or files (path to text), and optionally config (wrangler.jsonc "
        "text), or path (a file or folder on the server's machine)."},
       {"inputSchema",
        object_schema({{"source", {{"type", "string"}, {"description", "one module's code"}}},
                       {"files", {{"type", "object"},
                                  {"description", "module path -> code"},
                                  {"additionalProperties", {{"type", "string"}}}}},
                       {"config", {{"type", "string"}, {"description", "wrangler.jsonc text"}}},
                       {"path", {{"type", "string"},
                                 {"description", "a .js file, folder or wrangler.jsonc on the server"}}}})}},
      {{"name", "searchDocs"},
       {"description",
        "Search dobj's own documentation (architecture, storage, WebSockets, JavaScript "
        "objects, the review rules, operations, cluster): the best-matching sections, so "
        "advice follows how dobj wants things done."},
       {"inputSchema",
        object_schema({{"query", {{"type", "string"}}},
                       {"limit", {{"type", "integer"}, {"minimum", 1}, {"maximum", 20}}}},
                      {"query"})}},
      {{"name", "advise"},
       {"description",
        "The advisor's findings: the Durable Objects review rules (hot objects, plain key-value "
        "use, objects used once, blocking handlers, non-hibernating sockets, idle residents, "
        "failing or late alarms) applied to the live numbers, each with evidence and a "
        "suggestion."},
       {"inputSchema", object_schema(Json::object())}},
  });
  return tools;
}

std::string str(const Json& args, const char* key) {
  auto it = args.find(key);
  return it != args.end() && it->is_string() ? it->get<std::string>() : "";
}

// The object segment of a route from the tool's id or name.
std::optional<std::string> object_of(const Json& args) {
  std::string id = str(args, "id");
  if (!id.empty()) return id;
  std::string name = str(args, "name");
  if (!name.empty()) return "name:" + name;
  return std::nullopt;
}

}  // namespace

Json mcp_error(const Json& id, int code, const std::string& message) {
  return rpc_error(id, code, message);
}

McpStep mcp_step(const Json& msg, const std::string& auth) {
  McpStep step;
  auto answer = [&](Json a) {
    step.answer = std::move(a);
    return std::move(step);
  };
  // Every field is read by type: a client's JSON of the wrong shape gets an
  // error, never an exception.
  if (!msg.is_object() || str(msg, "jsonrpc") != "2.0" || !msg.contains("method")) {
    // A response from the client (we send no requests), or junk.
    if (msg.is_object() && (msg.contains("result") || msg.contains("error"))) {
      step.silent = true;
      return step;
    }
    return answer(rpc_error(msg.is_object() && msg.contains("id") ? msg["id"] : Json(nullptr),
                            -32600, "invalid request"));
  }
  const std::string method = str(msg, "method");
  if (!msg.contains("id")) {  // a notification: nothing to answer
    step.silent = true;
    return step;
  }
  Json id = msg["id"];
  const Json& p = msg.contains("params") ? msg["params"] : Json();
  const Json params = p.is_object() ? p : Json::object();
  if (method == "initialize") {
    std::string asked = str(params, "protocolVersion");
    std::string version = kLatestProtocol;
    for (const char* p : kProtocols) {
      if (asked == p) version = p;
    }
    return answer(rpc_result(
        id, {{"protocolVersion", version},
             {"capabilities", {{"tools", {{"listChanged", false}}}}},
             {"serverInfo", {{"name", "dobj"}, {"version", "0.1.0"}}},
             {"instructions",
              "Tools over a running dobj server (Durable Objects). Ground advice about Durable "
              "Object code in these live numbers: getDOMetrics per namespace, advise for the "
              "review rules, listObjects/inspectObject/querySql to look at state; reviewCode "
              "for findings in code, searchDocs for how dobj wants it done."}}));
  }
  if (method == "ping") return answer(rpc_result(id, Json::object()));
  if (method == "tools/list") return answer(rpc_result(id, {{"tools", tool_list()}}));
  if (method != "tools/call") return answer(rpc_error(id, -32601, "method not found: " + method));

  std::string tool = str(params, "name");
  const Json& a = params.contains("arguments") ? params["arguments"] : Json();
  const Json args = a.is_object() ? a : Json::object();
  Request sub;
  sub.method = "GET";
  sub.headers.emplace_back("authorization", auth);
  std::string ns = str(args, "namespace");
  auto obj = object_of(args);
  std::string keep_ns;  // getDOMetrics: the namespace to pick out
  if (tool == "getDOMetrics") {
    sub.target = "/_dobj/metrics";
    keep_ns = ns;
  } else if (tool == "listObjects") {
    sub.target = "/_dobj/objects?";
    for (const char* k : {"namespace", "prefix", "sort", "cursor"}) {
      std::string v = str(args, k);
      if (!v.empty()) sub.target += std::string(k) + "=" + url_encode(v) + "&";
    }
    if (args.contains("limit") && args["limit"].is_number_integer()) {
      sub.target += "limit=" + std::to_string(args["limit"].get<int64_t>());
    }
  } else if (tool == "inspectObject" || tool == "querySql" || tool == "objectHistory" || tool == "restoreObject" ||
             tool == "forkObject") {
    if (ns.empty() || !obj) {
      return answer(rpc_result(id, {{"content", {{{"type", "text"},
                                                {"text", "give namespace and id or name"}}}},
                                  {"isError", true}}));
    }
    sub.target = "/_dobj/objects/" + url_encode(ns) + "/" + url_encode(*obj);
    if (tool == "inspectObject") {
      if (args.contains("keys") && args["keys"].is_number_integer()) {
        sub.target += "?keys=" + std::to_string(args["keys"].get<int64_t>());
      }
    } else if (tool == "objectHistory") {
      sub.target += "/history";
      if (args.contains("limit") && args["limit"].is_number_integer()) {
        sub.target += "?limit=" + std::to_string(args["limit"].get<int64_t>());
      }
    } else if (tool == "restoreObject") {
      sub.method = "POST";
      sub.target += "/restore?";
      if (args.contains("time") && args["time"].is_number_integer()) {
        sub.target += "time=" + std::to_string(args["time"].get<int64_t>());
      } else {
        sub.target += "bookmark=" + url_encode(str(args, "bookmark"));
      }
    } else if (tool == "forkObject") {
      sub.method = "POST";
      sub.target += "/fork?as=" + url_encode(str(args, "as"));
      if (args.contains("replace") && args["replace"].is_boolean() && args["replace"].get<bool>()) {
        sub.target += "&replace=1";
      }
    } else {
      sub.method = "POST";
      sub.target += "/sql";
      sub.body = Json{{"query", str(args, "query")}}.dump();
    }
  } else if (tool == "advise") {
    sub.target = "/_dobj/advice";
  } else if (tool == "reviewCode") {
    sub.method = "POST";
    sub.target = "/_dobj/review";
    Json body = Json::object();
    for (const char* k : {"source", "files", "config", "path"}) {
      if (args.contains(k)) body[k] = args[k];
    }
    sub.body = body.dump(-1, ' ', false, Json::error_handler_t::replace);
  } else if (tool == "searchDocs") {
    sub.target = "/_dobj/docs?q=" + url_encode(str(args, "query"));
    if (args.contains("limit") && args["limit"].is_number_integer()) {
      sub.target += "&limit=" + std::to_string(args["limit"].get<int64_t>());
    }
  } else {
    return answer(rpc_error(id, -32602, "unknown tool: " + tool));
  }
  step.id = std::move(id);
  step.keep_ns = std::move(keep_ns);
  step.call = std::move(sub);
  return step;
}

Json mcp_tool_result(const McpStep& step, Response r) {
  const std::string& keep_ns = step.keep_ns;
  Result<Json> parsed = parse_json(r.body);
  Json body = parsed ? std::move(*parsed) : Json(Json::value_t::discarded);
  if (r.status == 200 && !keep_ns.empty()) {
    if (!body.contains("namespaces") || !body["namespaces"].contains(keep_ns)) {
      r.status = 404;
      body = {{"error", "no namespace " + keep_ns}};
    } else {
      Json one = body["namespaces"][keep_ns];
      one["namespace"] = keep_ns;
      body = std::move(one);
    }
  }
  Json result = {{"content", {{{"type", "text"},
                               {"text", body.is_discarded() ? r.body
                                                            : body.dump(2, ' ', false,
                                                                        Json::error_handler_t::replace)}}}},
                 {"isError", r.status >= 400}};
  if (r.status < 400 && body.is_object()) result["structuredContent"] = body;
  return rpc_result(step.id, std::move(result));
}

}  // namespace dobj::internal
