// The admin plane of a cluster node: an object's actions go to the node that
// serves it, and the catalog is every node's, merged (docs/cluster.md).
#include <algorithm>
#include <memory>

#include "admin/admin.h"
#include "base/fs.h"
#include "runtime/object_host.h"
#include "runtime/runtime.h"

namespace dobj::internal {
namespace {

using Json = nlohmann::json;

CatalogEntry entry_of(const Json& o) {
  CatalogEntry e;
  e.ns = o.value("namespace", "");
  e.id = o.value("id", "");
  if (o.contains("name") && o["name"].is_string()) e.name = o["name"].get<std::string>();
  e.bytes = o.value("bytes", int64_t{0});
  e.created_ms = o.value("created", int64_t{0});
  e.active_ms = o.value("lastActive", int64_t{0});
  return e;
}

// The order of CatalogQuery::Sort, as the catalog's SQL sorts (names and IDs
// as bytes; bytes and activity largest first, ties by namespace and ID
// descending).
bool before(CatalogQuery::Sort sort, const CatalogEntry& a, const CatalogEntry& b) {
  using Sort = CatalogQuery::Sort;
  auto ascending = [&] { return std::tie(a.ns, a.id) < std::tie(b.ns, b.id); };
  auto descending = [&] { return std::tie(b.ns, b.id) < std::tie(a.ns, a.id); };
  switch (sort) {
    case Sort::kId: return ascending();
    case Sort::kName: {
      const std::string an = a.name.value_or(""), bn = b.name.value_or("");
      return an != bn ? an < bn : ascending();
    }
    case Sort::kBytes: return a.bytes != b.bytes ? a.bytes > b.bytes : descending();
    case Sort::kActive: return a.active_ms != b.active_ms ? a.active_ms > b.active_ms : descending();
  }
  return false;
}

}  // namespace

bool AdminPlane::forward_to_owner(Shard& here, const ObjectKey& target, const Request& request,
                                  Reply& reply, std::string& body_file) {
  Placement* placement = runtime_.placement();
  if (!placement) return false;
  Placement::Route route = placement->route(target.id);
  if (route.kind == Placement::Route::Kind::kLocal) return false;
  if (route.kind == Placement::Route::Kind::kUnavailable) {
    Response r = Response::error(503, route.reason);
    r.set_header("retry-after", "1");
    reply(std::move(r));
    return true;
  }
  Request copy = request;
  if (!body_file.empty()) {
    // An import streamed to a file here goes on whole to the owner.
    auto bytes = read_file(body_file);
    ::unlink(body_file.c_str());
    body_file.clear();
    if (!bytes) {
      reply(Response::error(500, "cannot read the upload: " + bytes.status().message()));
      return true;
    }
    copy.body = std::move(*bytes);
  }
  placement->send_admin(here, Placement::Peer{route.node, route.peer}, std::move(copy),
                        [reply](Response r) { reply(std::move(r)); });
  return true;
}

void AdminPlane::list_cluster_objects(Shard& here, const Request& request, Reply reply) {
  auto query = catalog_query(request);
  if (!query) return reply(error_response(query.status()));
  std::vector<Placement::Peer> peers = runtime_.placement()->other_nodes();
  struct Gather {
    CatalogQuery query;
    size_t left = 0;
    std::vector<CatalogEntry> entries;
    std::vector<Json> objects;
    // The earliest place where a node's page stopped with more to come:
    // every node's objects up to there are in hand, none past it.
    std::optional<CatalogEntry> cutoff;
    std::string cutoff_cursor;
    Json missing = Json::array();
    Reply reply;
  };
  auto g = std::make_shared<Gather>();
  g->query = *query;
  g->left = peers.size() + 1;
  g->reply = std::move(reply);
  auto take = [g](const std::string& node, const Response& r) {
    Json page = r.status == 200 ? Json::parse(r.body, nullptr, false) : Json(Json::value_t::discarded);
    if (!page.is_object() || !page.contains("objects")) {
      g->missing.push_back({{"node", node}, {"status", r.status}});
    } else {
      for (auto& o : page["objects"]) {
        g->entries.push_back(entry_of(o));
        g->objects.push_back(std::move(o));
      }
      if (page["nextCursor"].is_string()) {
        std::string cursor = page["nextCursor"];
        auto at = catalog_cursor_position(g->query.sort, cursor);
        if (at && (!g->cutoff || before(g->query.sort, *at, *g->cutoff))) {
          g->cutoff = at;
          g->cutoff_cursor = cursor;
        }
      }
    }
    if (--g->left > 0) return;
    std::vector<size_t> order;
    for (size_t i = 0; i < g->entries.size(); ++i) {
      if (!g->cutoff || !before(g->query.sort, *g->cutoff, g->entries[i])) order.push_back(i);
    }
    std::sort(order.begin(), order.end(),
              [&](size_t a, size_t b) { return before(g->query.sort, g->entries[a], g->entries[b]); });
    Json next = g->cutoff ? Json(g->cutoff_cursor) : Json(nullptr);
    size_t limit = static_cast<size_t>(g->query.limit);
    if (order.size() > limit) {
      order.resize(limit);
      next = catalog_cursor_after(g->query.sort, g->entries[order.back()]);
    }
    Json out;
    out["objects"] = Json::array();
    for (size_t i : order) out["objects"].push_back(std::move(g->objects[i]));
    out["nextCursor"] = std::move(next);
    // Nodes that did not answer: their objects are missing from this page.
    out["unreachableNodes"] = std::move(g->missing);
    g->reply(Response::json(out.dump(-1, ' ', false, Json::error_handler_t::replace)));
  };
  list_objects(here, request, [take](Answer a) { take("(this node)", a.response); });
  for (const auto& peer : peers) {
    runtime_.placement()->send_admin(here, peer, request,
                                     [take, node = peer.node](Response r) { take(node, r); });
  }
}

void AdminPlane::collect_all(Shard& here, bool from_peer, std::function<void(MetricsSnapshot)> done) {
  Placement* placement = runtime_.placement();
  if (!placement || from_peer) return runtime_.collect_metrics(&here, std::move(done));
  std::vector<Placement::Peer> peers = placement->other_nodes();
  struct Gather {
    MetricsSnapshot all;
    std::vector<std::pair<std::string, Json>> others;
    size_t left = 0;
    std::function<void(MetricsSnapshot)> done;
  };
  auto g = std::make_shared<Gather>();
  g->left = peers.size() + 1;
  g->done = std::move(done);
  // Every answer comes on this shard; the last one merges.
  auto finish = [g] {
    if (--g->left > 0) return;
    for (auto& [node, j] : g->others) {
      if (j.is_object()) {
        merge_snapshot(g->all, j);
        g->all.nodes.push_back(node);
      } else {
        g->all.unreachable_nodes.push_back(node);
      }
    }
    g->done(std::move(g->all));
  };
  // This node's snapshot is the base the others merge into (at finish).
  runtime_.collect_metrics(&here, [g, finish, self = placement->node_id()](MetricsSnapshot s) {
    g->all = std::move(s);
    g->all.nodes.push_back(self);
    finish();
  });
  for (const auto& peer : peers) {
    Request ask;
    ask.method = "GET";
    ask.target = "/_dobj/snapshot";
    placement->send_admin(here, peer, std::move(ask), [g, finish, node = peer.node](Response r) {
      Json j = r.status == 200 ? Json::parse(r.body, nullptr, false) : Json();
      g->others.emplace_back(node, j.is_discarded() ? Json() : std::move(j));
      finish();
    });
  }
}

}  // namespace dobj::internal
