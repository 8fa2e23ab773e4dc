// Internals shared by socket_hub.cc, socket_io.cc and ws_relay.cc: the
// connection's Asio socket, the limits of its I/O, and taking a connection
// over after an upgrade.
//
// The I/O stays in the runtime module rather than src/net: net depends on the
// runtime (the HTTP server hands an upgraded connection to the object's
// shard), and a socket's reads and writes are interleaved with its object's
// events on that shard; moving them to net would need an interface between
// the two modules with one implementation.
#pragma once

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <chrono>
#include <cstddef>
#include <string>

#include "runtime/runtime.h"
#include "runtime/socket_hub.h"

namespace dobj::internal {

namespace asio = boost::asio;
using tcp = asio::ip::tcp;

// Events handed to the object and not yet finished, per socket, before the
// hub stops reading that socket.
inline constexpr int kMaxUndelivered = 16;
// Bytes read per system call, and reads per readiness (then others get a turn).
inline constexpr size_t kReadChunk = 64 * 1024;
inline constexpr int kReadsPerWakeup = 4;
// iovecs per sendmsg.
inline constexpr int kMaxIov = 64;
// A socket that never completed its upgrade, or whose closing handshake
// stalls, is closed after this.
inline constexpr auto kHandshakeTimeout = std::chrono::seconds(30);
inline constexpr auto kClosingTimeout = std::chrono::seconds(5);

// A connection handed over after an upgrade (SocketHub::adopt, WsRelays::start):
// the 101 that answers the client's key, with extra headers;
std::string upgrade_answer(std::string_view client_key, const Headers& extra);
// its descriptor taken into socket (an error: the descriptor is closed);
boost::system::error_code take_connection(boost::asio::ip::tcp::socket& socket, int fd);
// and the answer when its socket is gone (expired, closed): 410, then closed.
void refuse_connection(int fd);

struct SocketConn::Io {
  // Counted among the node's client connections while it exists.
  Io(asio::io_context& io, ConnectionCounts* counts) : socket(io), counts(counts) {
    counts->open.fetch_add(1, std::memory_order_relaxed);
  }
  ~Io() { counts->open.fetch_sub(1, std::memory_order_relaxed); }
  Io(const Io&) = delete;
  Io& operator=(const Io&) = delete;
  tcp::socket socket;
  ConnectionCounts* counts;
  std::string partial;  // bytes of a frame not yet complete
  bool close_after_flush = false;
};

}  // namespace dobj::internal
