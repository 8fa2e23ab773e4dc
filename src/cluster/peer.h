// Forwarding between nodes: a request for an object another node serves goes
// to that node's peer listener over HTTP/1.1 on kept-alive connections.
//
// The forwarded request is the original one (method, target, headers, body)
// with the delivery's particulars in headers of its own, which the sender
// first strips from the client's headers:
//
//   dobj-peer-token      the cluster's peer token (a keyed hash of its secret)
//   dobj-peer-ns         the binding
//   dobj-peer-id         the object's ID, hex
//   dobj-peer-call       a typed call's method (the body is its JSON arguments)
//   dobj-peer-stub       "1" when sent through a stub (the binding rule applies),
//                        then dobj-peer-bound: the instance the stub is bound to
//   dobj-peer-epoch      the partition's epoch as the sender knows it
//
// and the answer carries dobj-peer-instance, the instance that answered.
//
// Connections: each shard keeps its own idle connections per peer and uses a
// connection for one exchange at a time. A kept connection that turns out to
// be closed before any byte of the answer came back is retried once on a new
// connection: the peer closes only idle connections, so it never read the
// request.
#pragma once

#include <boost/asio/ip/tcp.hpp>
#include <chrono>
#include <functional>
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

#include "dobj/http.h"
#include "dobj/status.h"

namespace dobj::internal {

inline constexpr const char* kPeerHeaderPrefix = "dobj-peer-";

class PeerPools {
 public:
  explicit PeerPools(size_t shards);
  ~PeerPools();
  // On shard `shard`'s thread, with its io_context: sends request to peer
  // (host:port) and calls done with the answer or kUnavailable.
  void exchange(size_t shard, boost::asio::io_context& io, const std::string& peer, Request request,
                std::chrono::milliseconds timeout, std::function<void(Result<Response>)> done);
  // A WebSocket upgrade, on a connection of its own: with a 101, on_upgrade
  // gets the answer (to mark), the connection and the bytes read past the
  // 101, before done gets the answer.
  using OnUpgrade = std::function<void(Response&, boost::asio::ip::tcp::socket, std::string)>;
  void upgrade(size_t shard, boost::asio::io_context& io, const std::string& peer, Request request,
               std::chrono::milliseconds timeout, OnUpgrade on_upgrade,
               std::function<void(Result<Response>)> done);
  // On shard `shard`'s thread: fails every exchange under way to peer (it
  // left the cluster) and drops its idle connections.
  void cancel(size_t shard, const std::string& peer);

  struct Pool;

 private:
  std::vector<std::shared_ptr<Pool>> pools_;
};

}  // namespace dobj::internal
