#include "sql_probe/sql_probe.h"

namespace examples {

using dobj::Json;
using dobj::Response;

dobj::SqlValue sql_from_json(const Json& j) {
  if (j.is_null()) return nullptr;
  if (j.is_boolean()) return int64_t{j.get<bool>() ? 1 : 0};
  if (j.is_number_integer()) return j.get<int64_t>();
  if (j.is_number_unsigned()) return static_cast<int64_t>(j.get<uint64_t>());
  if (j.is_number()) return j.get<double>();
  if (j.is_string()) return j.get<std::string>();
  return j.dump();
}


dobj::Task<Response> SqlProbe::fetch(dobj::Request req) {
  auto segments = req.path_segments();
  if (!segments || segments->size() != 2) co_return Response::error(404, "not found");
  if (req.method != "POST") co_return Response::error(405, "use POST with {\"query\": ...}");
  dobj::Result<Json> parsed = dobj::parse_json(req.body);
  if (!parsed) co_return Response::error(400, parsed.status().message());
  Json body = std::move(*parsed);
  if (!body.is_object() || !body.contains("query") ||
      !body["query"].is_string()) {
    co_return Response::error(400, "body must be {\"query\": \"...\", \"params\": [...]}");
  }
  std::vector<dobj::SqlValue> params;
  if (body.contains("params")) {
    if (!body["params"].is_array()) co_return Response::error(400, "params must be an array");
    for (const auto& p : body["params"]) params.push_back(sql_from_json(p));
  }
  dobj::SqlCursor cursor;
  try {
    cursor = storage().sql().exec_values(body["query"].get<std::string>(), std::move(params));
  } catch (const dobj::Error& e) {
    if (e.code() != dobj::Code::kInvalidArgument) throw;  // storage failure: the object resets
    co_return Response::error(400, e.what());
  }
  Json rows = Json::array();
  for (const auto& row : cursor) {
    Json r = Json::array();
    for (const auto& v : row) r.push_back(dobj::to_json(v));
    rows.push_back(std::move(r));
  }
  Json out = {{"columns", cursor.column_names()},
              {"rows", std::move(rows)},
              {"rowsRead", cursor.rows_read()},
              {"rowsWritten", cursor.rows_written()}};
  co_return Response::json(out.dump(-1, ' ', false, Json::error_handler_t::replace));
}

}  // namespace examples
