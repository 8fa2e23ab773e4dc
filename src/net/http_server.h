// HttpServer: the HTTP/1.1 front door (Boost.Beast), one acceptor per shard.
//
// Every shard accepts on the same port (SO_REUSEPORT) and serves the
// connections it accepted: it parses requests, hands them to the worker on its
// own thread, and writes the responses. Keep-alive and pipelining work (a
// connection's requests are answered in order). Limits: headers over
// max_header_bytes → 431, bodies over max_body_bytes → 413, a malformed request
// → 400, a connection idle past connection_idle_timeout → 408 and close. Each
// error closes the connection after its answer.
//
// Only this module includes Beast; the rest of the runtime sees Request and
// Response values.
#pragma once

#include <chrono>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "dobj/server.h"
#include "dobj/status.h"

namespace dobj::internal {

class Runtime;
class AdminPlane;
class Shard;

class HttpServer {
 public:
  HttpServer(Runtime& runtime, const ServerOptions& options);
  ~HttpServer();

  // A cluster node's peer listener: requests other nodes forward. Every
  // request there goes to the handler, on the shard that accepted it, which
  // answers through the function it is given (on that shard). Before start.
  using PeerHandler = std::function<void(Shard&, Request, std::function<void(Response)>)>;
  void set_peer(std::string listen, PeerHandler handler) {
    peer_listen_ = std::move(listen);
    peer_handler_ = std::make_shared<const PeerHandler>(std::move(handler));
  }
  int peer_port() const { return peer_port_; }

  // Binds and starts accepting on every shard. The runtime must be started.
  Status start();
  int port() const { return port_; }
  // The admin listener's port (--admin-listen), 0 when there is none.
  int admin_port() const { return admin_port_; }
  // Stops accepting, closes idle connections, lets busy ones finish their
  // current request, then waits (up to timeout) until every connection closed.
  void stop(std::chrono::milliseconds timeout);

  struct PerShard;  // per-shard acceptor and connections (http_server.cc)

 private:
  Runtime& runtime_;
  ServerOptions options_;
  int port_ = 0;
  int admin_port_ = 0;
  int peer_port_ = 0;
  std::string peer_listen_;
  std::shared_ptr<const PeerHandler> peer_handler_;
  std::vector<std::shared_ptr<PerShard>> shards_;
  std::shared_ptr<AdminPlane> admin_;
};

}  // namespace dobj::internal
