#include "kv_probe/kv_probe.h"

#include "common/util.h"

namespace examples {
namespace {

using dobj::Json;
using dobj::Response;

Response ok_json(const Json& j) { return Response::json(j.dump()); }

Json pairs(const std::vector<std::pair<std::string, Json>>& entries) {
  Json out = Json::array();
  for (const auto& [k, v] : entries) out.push_back(Json::array({k, v}));
  return out;
}

// Keys of a JSON array of strings, or nullopt when it is not one.
std::optional<std::vector<std::string>> string_list(const Json& j) {
  if (!j.is_array()) return std::nullopt;
  std::vector<std::string> out;
  for (const auto& k : j) {
    if (!k.is_string()) return std::nullopt;
    out.push_back(k.get<std::string>());
  }
  return out;
}

struct RolledBack {};

}  // namespace

dobj::Task<Response> KvProbe::fetch(dobj::Request req) {
  // /kv/<name>[/<key>]: the key is the rest of the path, decoded (it may hold '/').
  std::string_view path = req.path();
  size_t name_start = path.find('/', 1);
  if (name_start == std::string_view::npos) co_return Response::error(404, "not found");
  size_t key_start = path.find('/', name_start + 1);
  if (key_start == std::string_view::npos) {
    if (req.method == "GET") co_return list(req);
    if (req.method == "DELETE") {
      storage().delete_all();
      co_return ok_json({{"ok", true}});
    }
    co_return Response::error(405, "use GET to list or DELETE to delete all");
  }
  auto key = dobj::url_decode(path.substr(key_start + 1));
  if (!key) co_return Response::error(400, "malformed percent-encoding in the key");

  if (req.method == "POST" && (*key == "batch" || *key == "transaction")) {
    auto body = dobj::parse_json(req.body);
    if (!body) co_return Response::error(400, body.status().message());
    if (!body->is_object()) co_return Response::error(400, "body must be a JSON object");
    co_return *key == "batch" ? batch(*body) : transaction(*body);
  }
  if (req.method == "PUT") {
    auto value = dobj::parse_json(req.body);
    if (!value) co_return Response::error(400, value.status().message());
    storage().put(*key, *value);
    co_return ok_json({{"ok", true}});
  }
  if (req.method == "GET") {
    // The stored JSON as it is, not parsed and printed again.
    auto text = storage().get_json_text(*key);
    if (!text) co_return Response::error(404, "no such key");
    co_return Response::json(std::move(*text));
  }
  if (req.method == "DELETE") co_return ok_json({{"deleted", storage().remove(*key)}});
  co_return Response::error(405, "use PUT, GET or DELETE on a key");
}

Response KvProbe::list(const dobj::Request& req) {
  dobj::ListOptions o;
  o.prefix = req.query("prefix");
  o.start = req.query("start");
  o.start_after = req.query("startAfter");
  o.end = req.query("end");
  if (auto r = req.query("reverse")) {
    if (*r != "true" && *r != "false") return Response::error(400, "reverse must be true or false");
    o.reverse = *r == "true";
  }
  if (auto l = req.query("limit")) {
    o.limit = parse_int(*l);
    if (!o.limit) return Response::error(400, "limit must be an integer");
  }
  return ok_json(pairs(storage().list<Json>(o)));
}

Response KvProbe::batch(const Json& body) {
  if (body.size() != 1) return Response::error(400, "give exactly one of put, get or delete");
  if (body.contains("put")) {
    const Json& put = body["put"];
    if (!put.is_object()) return Response::error(400, "put must be an object");
    std::vector<std::pair<std::string, Json>> entries;
    for (auto it = put.begin(); it != put.end(); ++it) entries.emplace_back(it.key(), it.value());
    storage().put(entries);
    return ok_json({{"ok", true}});
  }
  if (body.contains("get")) {
    auto keys = string_list(body["get"]);
    if (!keys) return Response::error(400, "get must be an array of strings");
    Json out = Json::object();
    for (auto& [k, v] : storage().get<Json>(*keys)) out[k] = v;
    return ok_json(out);
  }
  if (body.contains("delete")) {
    auto keys = string_list(body["delete"]);
    if (!keys) return Response::error(400, "delete must be an array of strings");
    return ok_json({{"deleted", storage().remove(*keys)}});
  }
  return Response::error(400, "give exactly one of put, get or delete");
}

Response KvProbe::transaction(const Json& body) {
  if (!body.contains("ops") || !body["ops"].is_array()) {
    return Response::error(400, "body must be {\"ops\": [...]}");
  }
  const Json& ops = body["ops"];
  // Check every op before running any, so a bad body writes nothing.
  for (const auto& op : ops) {
    if (!op.is_object() || !op.contains("op") || !op["op"].is_string()) {
      return Response::error(400, "each op needs an \"op\" string");
    }
    std::string kind = op["op"];
    bool has_key = op.contains("key") && op["key"].is_string();
    if (kind == "put" && (!has_key || !op.contains("value"))) {
      return Response::error(400, "a put op needs a string key and a value");
    }
    if (kind == "delete" && !has_key) return Response::error(400, "a delete op needs a string key");
    if (kind != "put" && kind != "delete" && kind != "fail") {
      return Response::error(400, "unknown op " + kind);
    }
  }
  try {
    storage().transaction([&](dobj::Transaction&) {
      for (const auto& op : ops) {
        std::string kind = op["op"];
        if (kind == "put") storage().put(op["key"].get<std::string>(), op["value"]);
        if (kind == "delete") storage().remove(op["key"].get<std::string>());
        if (kind == "fail") throw RolledBack{};
      }
    });
  } catch (const RolledBack&) {
    return Response::error(409, "rolled back");
  }
  return ok_json({{"ok", true}});
}

}  // namespace examples
