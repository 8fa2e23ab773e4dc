// AdminPlane: the operator's view of a running server, under /_dobj/ and at
// /metrics, behind a bearer token.
//
// Requests to these paths never reach the worker. Without the right
// "Authorization: Bearer <token>" header they get 401 and nothing else. What is
// served (docs/operations.md):
//   GET /metrics          Prometheus text, per namespace
//   GET /_dobj/metrics    the same as JSON, plus the busiest objects (in a
//                         cluster: every node's, merged; /metrics is per node)
//   GET /_dobj/objects    the catalog, searched and paged
//   GET|DELETE /_dobj/objects/<ns>/<id>            inspect, delete
//   POST /_dobj/objects/<ns>/<id>/sql              read-only query
//   GET  /_dobj/objects/<ns>/<id>/export           the database file
//   PUT  /_dobj/objects/<ns>/<id>/import           a database file in its place
//   POST /_dobj/objects/<ns>/<id>/replay           requests straight to its fetch
//   POST /_dobj/review    review JavaScript object code (docs/review.md)
//   GET  /_dobj/docs?q=   search the documentation
// <id> is the hex ID or name:<name>.
// Counters are read from every shard without stopping any (each shard copies
// its own), so an admin read costs an object nothing. Actions on one object
// run in its queue, between its events (objects.cc).
//
// Thread affinity: handle() runs on the shard that accepted the request and
// answers on it.
#pragma once

#include <chrono>
#include <deque>
#include <functional>
#include <map>
#include <mutex>
#include <string>

#include <nlohmann/json.hpp>
#include <optional>

#include "dobj/http.h"
#include "runtime/metrics.h"
#include "runtime/shard.h"
#include "storage/catalog.h"

namespace dobj::internal {

class Runtime;
class Shard;
class NamespaceImpl;


// The code reviewer of POST /_dobj/review (src/review), set by a binary built
// with it (dobj-js): request is the body's JSON ({source | files, config} or
// {path}), live the advisor's findings now; answers the review's JSON. Unset:
// the route answers 501. Runs on the blocking pool, never on a shard.
using CodeReviewer =
    std::function<Result<nlohmann::json>(const nlohmann::json& request, const nlohmann::json& live)>;
void set_code_reviewer(CodeReviewer reviewer);

// The catalog query an admin request asks for (/_dobj/objects?...).
Result<CatalogQuery> catalog_query(const Request& request);

class AdminPlane {
 public:
  AdminPlane(Runtime& runtime, std::string token);

  // Whether target belongs to the admin plane (and not to the worker).
  static bool owns(std::string_view target);
  // body_file: the request's body, already written to that file (an import
  // streamed to disk; see upload_path); empty: the body is request.body.
  // from_peer: another node of the cluster forwarded it (already authorized
  // there): it is answered for this node's own objects, never forwarded on.
  void handle(Shard& here, const Request& request, Reply reply, std::string body_file = {},
              bool from_peer = false);
  // A fresh file under <data>/tmp (emptied at start) for a streamed upload.
  static Result<std::string> upload_path(const std::string& data_dir);

  // Renderings of a snapshot (public for tests).
  std::string prometheus(const MetricsSnapshot& s);
  std::string json(const MetricsSnapshot& s);
  std::string advice_json(const MetricsSnapshot& s);

  // Whether an Authorization header value carries the token.
  bool authorized_header(std::string_view value) const;

 private:
  bool authorized(const Request& request) const;
  void review_code(Shard& here, const Request& request, Reply reply);
  // The metrics of this node, or in a cluster (unless a peer asks) of every
  // node, merged: counters and histograms add up, the busiest objects are
  // the busiest of all (cluster_admin.cc).
  void collect_all(Shard& here, bool from_peer, std::function<void(MetricsSnapshot)> done);
  void replay_object(Shard& here, const ObjectKey& t, const Request& request, Reply reply);
  void route(Shard& here, const Request& request, Reply reply, std::string& body_file, bool from_peer);
  // In a cluster: sends an object's admin request to the node that serves it
  // (true), or answers 503 when none does now (true); false: it is served here.
  bool forward_to_owner(Shard& here, const ObjectKey& target, const Request& request, Reply& reply,
                        std::string& body_file);
  // In a cluster: the catalog pages of every node, merged in the order asked.
  void list_cluster_objects(Shard& here, const Request& request, Reply reply);
  Result<ObjectKey> parse_target(const std::string& ns, const std::string& id);
  void list_objects(Shard& here, const Request& request, Reply reply);
  void inspect_object(Shard& here, const ObjectKey& t, const Request& request, Reply reply);
  void query_object(Shard& here, const ObjectKey& t, const Request& request, Reply reply);
  void export_object(Shard& here, const ObjectKey& t, Reply reply);
  // --history: the object's bookmarks, and a restore to one (or to a time).
  void object_history(Shard& here, const ObjectKey& t, const Request& request, Reply reply);
  void restore_object(Shard& here, const ObjectKey& t, const Request& request, Reply reply);
  // dobj pull: an object's history file, and an object made from one.
  void download_history(Shard& here, const ObjectKey& t, Reply reply);
  void upload_history(Shard& here, const ObjectKey& t, const Request& request, Reply reply,
                      std::string body_file);
  // A copy of an object's database (without its alarm) as another object.
  void fork_object(Shard& here, const ObjectKey& t, const Request& request, Reply reply);
  // A fork on a cluster: the source's image goes to the destination as an
  // import (PUT …/import), through the destination's owner.
  void fork_as_import(Shard& here, const ObjectKey& to, std::string image, bool replace, Reply reply);
  void import_object(Shard& here, const ObjectKey& t, const Request& request, Reply reply,
                     std::string body_file);
  void delete_object(Shard& here, const ObjectKey& t, Reply reply);
  // The MCP server (mcp.cc): one POST, one JSON-RPC message or a batch.
  void mcp(Shard& here, const Request& request, Reply reply);
  void mcp_message(Shard& here, const nlohmann::json& msg, const std::string& auth,
                   std::function<void(std::optional<nlohmann::json>)> done);
  // Events per second of each namespace since the previous sample (at least
  // a second old), or since the start.
  std::vector<double> rates(const MetricsSnapshot& s);

  Runtime& runtime_;
  std::string token_;
  std::mutex mu_;  // guards the rate samples (shards answer concurrently)
  struct Sample {
    std::chrono::steady_clock::time_point at;
    std::vector<uint64_t> events;
  };
  std::deque<Sample> samples_;  // oldest first; never empty
};

}  // namespace dobj::internal
