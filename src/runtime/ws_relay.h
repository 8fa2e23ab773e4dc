// WsRelays: WebSockets relayed to the node that serves their object, one
// table per shard (docs/cluster.md, "WebSockets").
//
// In a cluster, a WebSocket upgrade that reaches a node which does not serve
// the object is forwarded to the owner over a connection of its own
// (Cluster::forward). Once the owner answers 101, that connection is parked
// here under an id, and the 101 travels back through the Worker like any
// upgrade (Response::Upgrade with relay set). When the HTTP session hands the
// client's connection over, start() writes the client's 101 and copies bytes
// both ways, unchanged: the frames are the owner's. If the owner's side ends
// without a close frame (the owner died or was cut off), the client gets a
// close frame 1012 ("service restart": reconnect), written at a frame
// boundary; a relay never started is dropped after 30 s.
//
// Thread affinity: a shard's table is used on that shard's thread only.
#pragma once

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/steady_timer.hpp>
#include <cstdint>
#include <memory>
#include <string>
#include <unordered_map>

#include "dobj/http.h"

namespace dobj::internal {

struct ConnectionCounts;

class WsRelays {
 public:
  // counts: the server's open connections, which a running relay's client
  // connection stays part of (ServerOptions::max_connections).
  WsRelays(boost::asio::io_context& io, ConnectionCounts* counts);
  ~WsRelays();
  WsRelays(const WsRelays&) = delete;
  WsRelays& operator=(const WsRelays&) = delete;

  // Parks the owner's side (its 101 read; `already`: bytes that came after
  // it) and returns its id.
  uint64_t park(boost::asio::ip::tcp::socket owner, std::string already);
  // The client's connection for relay `id`: answers its upgrade (the accept
  // key from `key`, plus extra headers, the owner's), then relays. An id
  // that is unknown (expired) gets 410 and the connection is closed.
  void start(uint64_t id, int client_fd, const std::string& key, std::string client_already,
             Headers extra);
  // Relays running now (for tests and metrics).
  size_t running() const;
  // Ends every relay (the server stops): both connections close.
  void close_all();

  struct Pipe;

 private:
  struct Parked {
    boost::asio::ip::tcp::socket owner;
    std::string already;
    std::unique_ptr<boost::asio::steady_timer> expiry;
  };
  boost::asio::io_context& io_;
  ConnectionCounts* counts_;
  uint64_t next_id_ = 1;
  std::unordered_map<uint64_t, std::unique_ptr<Parked>> parked_;
  std::unordered_map<Pipe*, std::weak_ptr<Pipe>> pipes_;
};

// The bytes of an unmasked close frame (server to client) with code and reason.
std::string close_frame(uint16_t code, std::string_view reason);

}  // namespace dobj::internal
