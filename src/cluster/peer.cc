// Forwarded deliveries: the sending side (Cluster::forward, PeerPools) and the
// receiving side (Cluster::handle_peer).
#include "cluster/peer.h"

#include <boost/asio/connect.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <openssl/crypto.h>

#include <algorithm>
#include <deque>
#include <unordered_set>

#include "base/log.h"
#include "cluster/cluster.h"
#include "runtime/object_host.h"
#include "runtime/runtime.h"
#include "runtime/shard.h"
#include "runtime/ws_relay.h"
#include "storage/snapshots.h"

namespace dobj::internal {
namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = asio::ip::tcp;

// A kept connection unused this long is closed rather than reused: the peer
// closes idle connections after its own timeout (60 s by default).
constexpr auto kIdleReuse = std::chrono::seconds(20);
constexpr size_t kIdlePerPeer = 64;

bool is_peer_header(std::string_view name) {
  return name.size() >= 10 && beast::iequals(name.substr(0, 10), kPeerHeaderPrefix);
}

bool is_framing_header(std::string_view name) {
  return beast::iequals(name, "content-length") || beast::iequals(name, "transfer-encoding") ||
         beast::iequals(name, "connection") || beast::iequals(name, "keep-alive");
}

}  // namespace

struct Connection {
  explicit Connection(asio::io_context& io) : stream(io) {}
  beast::tcp_stream stream;
  beast::flat_buffer buffer;
  std::chrono::steady_clock::time_point last_used;
};

namespace {
class Exchange;
}

struct PeerPools::Pool {
  std::unordered_map<std::string, std::deque<std::unique_ptr<Connection>>> idle;
  // Exchanges under way, by peer: cancelled when the peer leaves the cluster.
  std::unordered_map<std::string, std::unordered_set<Exchange*>> active;
};

namespace {

class Exchange : public std::enable_shared_from_this<Exchange> {
 public:
  using Done = std::function<void(Result<Response>)>;
  Exchange(std::shared_ptr<PeerPools::Pool> pool, asio::io_context& io, std::string peer,
           Request request, std::chrono::milliseconds timeout, Done done,
           PeerPools::OnUpgrade on_upgrade = nullptr)
      : pool_(std::move(pool)), io_(io), peer_(std::move(peer)), timeout_(timeout), done_(std::move(done)),
        on_upgrade_(std::move(on_upgrade)) {
    req_.method_string(request.method);
    req_.target(request.target);
    req_.version(11);
    for (auto& [k, v] : request.headers) {
      if (!is_framing_header(k)) req_.insert(k, v);
    }
    req_.keep_alive(true);
    req_.body() = std::move(request.body);
    req_.prepare_payload();
    if (on_upgrade_) req_.set(http::field::connection, "Upgrade");
  }

  void start() {
    pool_->active[peer_].insert(this);
    if (on_upgrade_) return connect();  // an upgrade takes a connection of its own
    auto& idle = pool_->idle[peer_];
    auto now = std::chrono::steady_clock::now();
    while (!idle.empty()) {
      auto c = std::move(idle.back());
      idle.pop_back();
      if (now - c->last_used < kIdleReuse) {
        conn_ = std::move(c);
        reused_ = true;
        return send();
      }
    }
    connect();
  }

  // The peer left the cluster (its lease ended): fail now rather than wait
  // for an answer that may never come (a paused process).
  void cancel() {
    cancelled_ = true;
    if (conn_) conn_->stream.cancel();
  }

 private:
  void connect() {
    reused_ = false;
    conn_ = std::make_unique<Connection>(io_);
    auto colon = peer_.rfind(':');
    std::string host = peer_.substr(0, colon), port = colon == std::string::npos ? "80" : peer_.substr(colon + 1);
    boost::system::error_code ec;
    auto address = asio::ip::make_address(host, ec);
    if (ec) return fail("bad peer address", ec);
    conn_->stream.expires_after(timeout_);
    conn_->stream.async_connect(tcp::endpoint(address, static_cast<unsigned short>(std::stoi(port))),
                                [self = shared_from_this()](beast::error_code ec) {
                                  if (ec) return self->fail("connect", ec);
                                  self->conn_->stream.socket().set_option(tcp::no_delay(true));
                                  self->send();
                                });
  }

  void send() {
    conn_->stream.expires_after(timeout_);
    http::async_write(conn_->stream, req_, [self = shared_from_this()](beast::error_code ec, size_t) {
      if (ec) return self->retry_or_fail("send", ec);
      self->sent_ = true;
      self->parser_.emplace();
      self->parser_->body_limit(std::numeric_limits<uint64_t>::max());
      self->parser_->header_limit(1 << 20);
      http::async_read(self->conn_->stream, self->conn_->buffer, *self->parser_,
                       [self](beast::error_code ec, size_t n) {
                         if (ec) return n == 0 ? self->retry_or_fail("receive", ec) : self->fail("receive", ec);
                         self->finish();
                       });
    });
  }

  // A kept connection the peer had closed while idle: it never read this
  // request, so sending it again on a new connection cannot run it twice.
  void retry_or_fail(const char* step, beast::error_code ec) {
    if (reused_ && !cancelled_ && (ec == http::error::end_of_stream || ec == asio::error::connection_reset ||
                    ec == asio::error::broken_pipe || ec == asio::error::eof)) {
      return connect();
    }
    fail(step, ec);
  }

  void finish() {
    pool_->active[peer_].erase(this);
    auto msg = parser_->release();
    Response r;
    r.status = static_cast<int>(msg.result_int());
    for (const auto& f : msg) {
      if (!is_framing_header(f.name_string())) r.headers.emplace_back(f.name_string(), f.value());
    }
    r.body = std::move(msg.body());
    if (on_upgrade_) {
      if (r.status == 101) {
        // The connection is the WebSocket's now, with any frames read past the 101.
        auto data = conn_->buffer.data();
        std::string rest(static_cast<const char*>(data.data()), data.size());
        on_upgrade_(r, conn_->stream.release_socket(), std::move(rest));
      }
      conn_.reset();
      return done_(std::move(r));
    }
    if (msg.keep_alive()) {
      conn_->last_used = std::chrono::steady_clock::now();
      auto& idle = pool_->idle[peer_];
      if (idle.size() < kIdlePerPeer) idle.push_back(std::move(conn_));
    }
    done_(std::move(r));
  }

  void fail(const char* step, beast::error_code ec) {
    pool_->active[peer_].erase(this);
    std::string what = cancelled_ ? std::string("it left the cluster")
                       : ec == beast::error::timeout
                           ? "timed out after " + std::to_string(timeout_.count()) + " ms"
                           : ec.message();
    // Once the whole request was written, the peer may have run it: say so,
    // since a client must not take this failure as "not applied".
    if (sent_) what += " (the request had reached it, so it may have been applied)";
    done_(Status(Code::kUnavailable, "node at " + peer_ + ": " + step + " failed: " + what));
  }

  std::shared_ptr<PeerPools::Pool> pool_;
  asio::io_context& io_;
  std::string peer_;
  std::chrono::milliseconds timeout_;
  Done done_;
  PeerPools::OnUpgrade on_upgrade_;
  std::unique_ptr<Connection> conn_;
  bool reused_ = false;
  bool cancelled_ = false;
  bool sent_ = false;
  http::request<http::string_body> req_;
  std::optional<http::response_parser<http::string_body>> parser_;
};

}  // namespace

PeerPools::PeerPools(size_t shards) {
  for (size_t i = 0; i < shards; ++i) pools_.push_back(std::make_shared<Pool>());
}

PeerPools::~PeerPools() = default;

void PeerPools::exchange(size_t shard, asio::io_context& io, const std::string& peer, Request request,
                         std::chrono::milliseconds timeout, std::function<void(Result<Response>)> done) {
  std::make_shared<Exchange>(pools_[shard], io, peer, std::move(request), timeout, std::move(done))->start();
}

void PeerPools::upgrade(size_t shard, asio::io_context& io, const std::string& peer, Request request,
                        std::chrono::milliseconds timeout, OnUpgrade on_upgrade,
                        std::function<void(Result<Response>)> done) {
  std::make_shared<Exchange>(pools_[shard], io, peer, std::move(request), timeout, std::move(done),
                             std::move(on_upgrade))
      ->start();
}

void PeerPools::cancel(size_t shard, const std::string& peer) {
  Pool& pool = *pools_[shard];
  pool.idle.erase(peer);
  auto it = pool.active.find(peer);
  if (it == pool.active.end()) return;
  // Each cancelled exchange fails through its handler, which removes it.
  std::vector<Exchange*> running(it->second.begin(), it->second.end());
  for (Exchange* e : running) e->cancel();
}

void Cluster::forward(Shard& from, const NamespaceImpl* ns, const ObjectId& id, Delivery delivery,
                      const Route& route) {
  Request& req = delivery.request;
  const bool upgrade = req.is_websocket_upgrade();
  std::erase_if(req.headers, [](const auto& h) { return is_peer_header(h.first); });
  req.headers.emplace_back("dobj-peer-token", peer_token_);
  req.headers.emplace_back("dobj-peer-ns", ns->name());
  req.headers.emplace_back("dobj-peer-id", id.to_string());
  if (id.name()) req.headers.emplace_back("dobj-peer-name", url_encode(*id.name()));
  if (delivery.call_method) req.headers.emplace_back("dobj-peer-call", *delivery.call_method);
  if (delivery.via_stub) {
    req.headers.emplace_back("dobj-peer-stub", "1");
    req.headers.emplace_back("dobj-peer-bound", std::to_string(delivery.bound_epoch));
  }
  req.headers.emplace_back("dobj-peer-epoch", std::to_string(route.epoch));
  req.headers.emplace_back("dobj-peer-hops", std::to_string(delivery.hops + 1));
  // Long enough for any turn the owner may run (its CPU limit and storage),
  // bounded so that a dead peer cannot hold the caller forever.
  auto timeout = std::chrono::milliseconds(60'000);
  auto answered = [this, reply = std::move(delivery.reply), node = route.node](Result<Response> r) {
                     if (!r) {
                       nudge();  // the owner may have moved or come back elsewhere
                       Response e = error_response(
                           Status(Code::kUnavailable, "owner node " + node + " unreachable: " + r.status().message()));
                       e.set_header("retry-after", "1");
                       reply(std::move(e));
                       return;
                     }
                     Answer a(std::move(*r));
                     std::erase_if(a.response.headers, [&](const auto& h) {
                       if (beast::iequals(h.first, "dobj-peer-failed")) {
                         ResponseAccess::set_failed(a.response);
                         return true;
                       }
                       if (!beast::iequals(h.first, "dobj-peer-instance")) return false;
                       a.instance_epoch = std::strtoull(h.second.c_str(), nullptr, 10);
                       return true;
                     });
                     reply(std::move(a));
  };
  if (!upgrade) {
    return pools_->exchange(static_cast<size_t>(from.index()), from.io(), route.peer, std::move(req), timeout,
                            std::move(answered));
  }
  // A WebSocket: its own connection to the owner, which answers 101 and
  // keeps it as the socket; this shard relays it once the client's
  // connection is handed over (runtime/ws_relay.h).
  pools_->upgrade(static_cast<size_t>(from.index()), from.io(), route.peer, std::move(req), timeout,
                  [&from](Response& r, tcp::socket owner, std::string rest) {
                    uint64_t id = from.relays().park(std::move(owner), std::move(rest));
                    ResponseAccess::set_upgrade(r, {static_cast<size_t>(from.index()), id, true});
                  },
                  std::move(answered));
}

bool Cluster::peer_authorized(std::string_view token) const {
  return !peer_token_.empty() && token.size() == peer_token_.size() &&
         CRYPTO_memcmp(token.data(), peer_token_.data(), token.size()) == 0;
}

void Cluster::send_admin(Shard& from, const Peer& to, Request request,
                         std::function<void(Response)> done) {
  std::erase_if(request.headers, [](const auto& h) {
    return is_peer_header(h.first) || beast::iequals(h.first, "authorization");
  });
  request.headers.emplace_back("dobj-peer-token", peer_token_);
  request.headers.emplace_back("dobj-peer-admin", "1");
  pools_->exchange(static_cast<size_t>(from.index()), from.io(), to.address, std::move(request),
                   std::chrono::milliseconds(60'000),
                   [this, done = std::move(done), node = to.node](Result<Response> r) {
                     if (!r) {
                       nudge();
                       Response e = Response::error(503, "node " + node + " unreachable: " + r.status().message());
                       e.set_header("retry-after", "1");
                       return done(std::move(e));
                     }
                     done(std::move(*r));
                   });
}

std::string Cluster::snapshot_dir() const { return snapshots::folder(runtime_->options().data_dir); }

namespace {

// A fetch of a storage snapshot: the nodes to ask, in turn.
struct SnapshotFetch {
  Cluster* cluster;
  Shard* from;
  std::string name;
  std::vector<std::string> addresses;
  size_t next = 0;
  bool unanswered = false;  // some node could not be asked
  std::function<void(Result<snapshots::Copy>)> done;
};

void ask_next(std::shared_ptr<SnapshotFetch> f) {
  if (f->next == f->addresses.size()) {
    if (f->unanswered) {
      return f->done(Status(Code::kUnavailable, "no node that holds snapshot " + f->name + " answered; try again"));
    }
    return f->done(Status(Code::kNotFound, "no snapshot " + f->name + " (or it expired)"));
  }
  Request req;
  req.method = "GET";
  req.target = "/_dobj_peer/snapshot";
  req.headers = {{"dobj-peer-token", f->cluster->peer_token()}, {"dobj-peer-snapshot", f->name}};
  const std::string& address = f->addresses[f->next++];
  f->cluster->pools().exchange(static_cast<size_t>(f->from->index()), f->from->io(), address, std::move(req),
                               std::chrono::milliseconds(60'000), [f](Result<Response> r) {
                                 if (r && r->status == 200) {
                                   snapshots::Copy copy;
                                   copy.image = std::move(r->body);
                                   copy.made_ms = std::atoll(r->header("dobj-snapshot-made").value_or("0").c_str());
                                   return f->done(std::move(copy));
                                 }
                                 if (!r || r->status != 404) f->unanswered = true;
                                 ask_next(f);
                               });
}

}  // namespace

void Cluster::fetch_snapshot(Shard& from, std::string name, std::function<void(Result<snapshots::Copy>)> done) {
  if (!snapshots::valid_name(name)) {
    return done(Status(Code::kInvalidArgument, "not a snapshot name (snap- and 32 hex digits)"));
  }
  auto view = this->view();
  auto f = std::make_shared<SnapshotFetch>();
  f->cluster = this;
  f->from = &from;
  f->name = std::move(name);
  f->done = std::move(done);
  // The owner of its partition first (it has every snapshot of it), then
  // the other replicas.
  const auto& p = view->partitions[snapshots::partition_of(f->name, static_cast<uint32_t>(partitions_))];
  std::vector<std::string> nodes = p.replicas;
  if (!p.owner.empty() && !contains(nodes, p.owner)) nodes.insert(nodes.begin(), p.owner);
  for (const auto& n : nodes) {
    auto it = view->nodes.find(n);
    if (n == options_.node_id) continue;
    if (it == view->nodes.end() || it->second.peer.empty()) {
      f->unanswered = true;
      continue;
    }
    f->addresses.push_back(it->second.peer);
  }
  ask_next(std::move(f));
}

void Cluster::handle_peer(Shard& accepted_on, Request request, std::function<void(Response)> done) {
  if (auto name = request.header("dobj-peer-snapshot")) {
    if (!peer_authorized(request.header("dobj-peer-token").value_or(""))) {
      return done(Response::error(403, "not a peer of this cluster"));
    }
    return runtime_->run_blocking([this, &accepted_on, name = *name, done = std::move(done)]() mutable {
      Response r;
      auto copy = snapshots::read(snapshot_dir(), name);
      if (!copy) {
        r = Response::error(copy.status().code() == Code::kInvalidArgument ? 400 : 404, copy.status().message());
      } else {
        r.status = 200;
        r.body = std::move(copy->image);
        r.set_header("dobj-snapshot-made", std::to_string(copy->made_ms));
      }
      accepted_on.post([r = std::move(r), done = std::move(done)]() mutable { done(std::move(r)); });
    });
  }
  if (auto reset = request.header("dobj-peer-reset")) {
    if (!peer_authorized(request.header("dobj-peer-token").value_or(""))) {
      return done(Response::error(403, "not a peer of this cluster"));
    }
    int p = std::atoi(reset->c_str());
    int64_t epoch = std::atoll(request.header("dobj-peer-epoch").value_or("0").c_str());
    return reset_partition(p, epoch, [&accepted_on, done = std::move(done)](Response r) mutable {
      accepted_on.post([r = std::move(r), done = std::move(done)]() mutable { done(std::move(r)); });
    });
  }
  if (request.header("dobj-peer-nudge")) {
    // Another node handed this one a partition: read etcd now.
    if (!peer_authorized(request.header("dobj-peer-token").value_or(""))) {
      return done(Response::error(403, "not a peer of this cluster"));
    }
    nudge();
    return done(Response::text("ok"));
  }
  if (request.header("dobj-peer-replicate")) {
    if (!peer_authorized(request.header("dobj-peer-token").value_or(""))) {
      return done(Response::error(403, "not a peer of this cluster"));
    }
    return apply_replica(std::move(request.body), [&accepted_on, done = std::move(done)](Response r) mutable {
      accepted_on.post([r = std::move(r), done = std::move(done)]() mutable { done(std::move(r)); });
    });
  }
  std::string token, ns_name, id_hex, method, bound;
  std::optional<std::string> name, call;
  bool via_stub = false;
  int hops = 2;  // a sender that does not say: it goes no further
  int64_t epoch = 0;
  std::erase_if(request.headers, [&](const auto& h) {
    if (!is_peer_header(h.first)) return false;
    std::string_view k = std::string_view(h.first).substr(10);
    if (beast::iequals(k, "token")) token = h.second;
    else if (beast::iequals(k, "ns")) ns_name = h.second;
    else if (beast::iequals(k, "id")) id_hex = h.second;
    else if (beast::iequals(k, "name")) name = url_decode(h.second);
    else if (beast::iequals(k, "call")) call = h.second;
    else if (beast::iequals(k, "stub")) via_stub = h.second == "1";
    else if (beast::iequals(k, "bound")) bound = h.second;
    else if (beast::iequals(k, "hops")) hops = std::clamp(std::atoi(h.second.c_str()), 1, 2);
    else if (beast::iequals(k, "epoch")) epoch = std::atoll(h.second.c_str());
    return true;
  });
  if (!peer_authorized(token)) return done(Response::error(403, "not a peer of this cluster"));
  const NamespaceImpl* ns = runtime_->find_namespace(ns_name);
  if (!ns) return done(Response::error(404, "no binding " + ns_name + " on this node"));
  auto id = ns->ids().from_string(id_hex);
  if (!id) return done(Response::error(400, id.status().message()));
  ObjectId target = *id;
  if (name && ns->ids().from_name(*name) == target) target = ns->ids().from_name(*name);
  Shard* object_shard = &runtime_->shard_for(target);
  Reply reply = [&accepted_on, done = std::move(done)](Answer a) mutable {
    accepted_on.post([a = std::move(a), done = std::move(done)]() mutable {
      a.response.set_header("dobj-peer-instance", std::to_string(a.instance_epoch));
      // The mark of a failed event crosses to the caller's node (a JavaScript
      // caller's stub.fetch rejects with it); a header of that name the
      // object set is not one.
      std::erase_if(a.response.headers, [](const auto& h) { return beast::iequals(h.first, "dobj-peer-failed"); });
      if (ResponseAccess::failed(a.response)) a.response.set_header("dobj-peer-failed", "1");
      done(std::move(a.response));
    });
  };
  Delivery d{std::move(request), std::move(reply), std::move(call), via_stub,
             bound.empty() ? 0 : std::strtoull(bound.c_str(), nullptr, 10), std::nullopt, std::nullopt,
             nullptr, hops, epoch};
  object_shard->post([object_shard, ns, target = std::move(target), d = std::move(d)]() mutable {
    object_shard->deliver(ns, target, std::move(d));
  });
}

}  // namespace dobj::internal
