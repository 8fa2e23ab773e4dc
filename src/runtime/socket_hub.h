// SocketHub: the WebSocket connections of one shard's objects.
//
// The runtime, not the object, owns each accepted socket, so an object can be
// evicted (hibernate) while its sockets stay open. A socket lives on the shard
// of its object: the front door that accepted the TCP connection hands the
// file descriptor over once the object answered the upgrade with a 101.
//
// Reading: the hub waits for a socket to become readable, reads into one
// shared buffer, parses frames (base/websocket_frame.h), answers pings and
// auto-responses itself, and delivers messages, closes and errors to the
// object as events. A socket with many undelivered events stops being read
// (TCP back-pressure), so a flood from one client cannot grow memory.
//
// Writing: sends are queued per socket as (frame header, shared payload) and
// written in one sendmsg per socket per loop pass, so a broadcast costs one
// system call per client and never copies the message. A socket whose queue
// grows past the limit (a client that reads too slowly) is closed with 1008.
//
// An idle socket costs its kernel buffers, Asio's descriptor state and the
// SocketConn below; no buffer is held between messages.
//
// Thread affinity: the owning shard's thread.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

#include "base/websocket_frame.h"
#include "dobj/id.h"
#include "dobj/websocket.h"
#include "runtime/alarm_scheduler.h"
#include "runtime/metrics.h"

namespace boost::asio {
class io_context;
}

namespace dobj::internal {

class Shard;
class NamespaceImpl;
class SocketHub;

// What happened on a socket, on its way to the object.
struct SocketEvent {
  enum Kind { kMessage, kClose, kError };
  Kind kind = kMessage;
  WebSocket socket;
  WebSocketMessage message;  // kMessage
  int code = 0;              // kClose
  std::string reason;        // kClose: the reason; kError: what went wrong
  bool was_clean = false;    // kClose
};

struct SocketConn : std::enable_shared_from_this<SocketConn> {
  enum class Phase { kPending, kOpen, kClosing, kClosed };
  struct Out {
    uint8_t header[ws::kMaxHeaderSize] = {};
    uint8_t header_size = 0;
    std::shared_ptr<const std::string> payload;
  };

  SocketHub* hub = nullptr;
  uint64_t id = 0;
  const NamespaceImpl* ns = nullptr;
  ObjectId object;
  bool hibernatable = true;
  std::shared_ptr<WebSocketHandlers> handlers;  // kept sockets only
  std::vector<std::string> tags;
  std::optional<std::string> attachment;
  std::optional<int64_t> auto_response_ms;  // when an auto-response last answered
  std::string key;                          // Sec-WebSocket-Key of the upgrade
  Phase phase = Phase::kPending;
  bool closed_by_object = false;  // the object called close(): no close event
  bool close_sent = false;
  bool close_reported = false;  // the object was told (close or error event)
  size_t slot = 0;              // index in its object's socket list

  struct Io;  // the TCP socket and its buffers (socket_hub.cc)
  std::unique_ptr<Io> io;
  ws::FrameReader reader{/*expect_masked=*/true, kMaxWebSocketMessageBytes};
  std::vector<Out> out;  // out[out_head...] waits to be written
  size_t out_head = 0;
  size_t out_bytes = 0;
  size_t front_written = 0;  // bytes of out[out_head] already written
  bool dirty = false;        // in the hub's list of sockets to flush
  bool waiting_writable = false;
  bool reading = false;  // a wait for readability is pending
  int undelivered = 0;   // events given to the object and not finished
  int64_t heard_ms = 0;  // when the client last sent anything (system clock, epoch ms: a network time, never faked)
  bool pinged = false;   // a ping went out since then

  ~SocketConn();
};

class SocketHub {
 public:
  SocketHub(Shard* shard, size_t send_queue_limit);
  ~SocketHub();
  Shard* shard() const { return shard_; }

  // accept_websocket / keep_websocket: a pending socket of the current object,
  // completed when the front door hands over the connection. Throws
  // dobj::Error for a request that is not a valid upgrade or over a limit.
  WebSocket accept(const NamespaceImpl* ns, const ObjectId& object, const Request& upgrade,
                   std::vector<std::string> tags, std::shared_ptr<WebSocketHandlers> handlers);
  // The front door's hand-over (posted to this shard): the connection's file
  // descriptor, the upgrade request's key, bytes read past the request, and
  // extra headers for the 101 (e.g. sec-websocket-protocol).
  void adopt(uint64_t socket_id, int fd, const std::string& key, std::string already_read,
             Headers extra);

  void send(SocketConn& c, uint8_t opcode, std::shared_ptr<const std::string> payload);
  void close(SocketConn& c, int code, std::string_view reason);

  // Open sockets of an object, with `tag` when not empty.
  std::vector<WebSocket> sockets_of(const NamespaceImpl* ns, const ObjectId& object,
                                    std::string_view tag);
  void set_auto_response(const NamespaceImpl* ns, const ObjectId& object,
                         std::optional<std::pair<std::string, std::string>> pair);
  std::optional<std::pair<std::string, std::string>> auto_response(const NamespaceImpl* ns,
                                                                   const ObjectId& object);
  // Kept (non-hibernatable) sockets of an object: they keep it resident.
  size_t kept_sockets(const NamespaceImpl* ns, const ObjectId& object) const;
  // The object was reset: its kept sockets lose their callbacks, so they close (1011).
  void object_reset(const NamespaceImpl* ns, const ObjectId& object);
  // Closes every socket of the object (it was deleted or replaced).
  void close_object(const NamespaceImpl* ns, const ObjectId& object, int code,
                    std::string_view reason);
  // Open sockets of an object, kept or hibernatable.
  size_t socket_count(const NamespaceImpl* ns, const ObjectId& object) const;
  // The objects that have sockets here.
  std::vector<ObjectKey> objects() const;

  size_t open_sockets() const { return by_id_.size(); }
  // Adds open and hibernated sockets per namespace into per_ns; resident(ns,
  // id) tells whether the object is in memory.
  void count(std::vector<NamespaceMetrics>* per_ns,
             const std::function<bool(const NamespaceImpl*, const ObjectId&)>& resident) const;
  // Pings sockets whose client sent nothing for half of timeout_ms, and
  // closes (1001) those silent for all of it. From the shard's sweep.
  void close_idle(int64_t now_ms, int64_t timeout_ms);
  // Closes every socket with 1001 (the server is stopping).
  void close_all();

  // The object finished an event of this socket (the event's reply calls it).
  void event_done(SocketConn& c);

 private:
  void close_sockets(const NamespaceImpl* ns, const ObjectId& object, bool kept_only, int code,
                     std::string_view reason);
  void on_readable(const std::shared_ptr<SocketConn>& c);
  struct ObjectSockets {
    std::vector<SocketConn*> sockets;
    std::optional<std::pair<std::string, std::string>> auto_response;
    size_t kept = 0;
  };
  void mark_dirty(SocketConn& c);
  void flush_dirty();
  void flush(SocketConn& c);
  void wait_readable(const std::shared_ptr<SocketConn>& c);
  // Handles the complete frames at the front of buf; returns the bytes used.
  size_t parse(const std::shared_ptr<SocketConn>& c, std::string& buf);
  // Tells the object the socket ended (once, and not after its own close()).
  void report(SocketConn& c, SocketEvent::Kind kind, int code, std::string reason, bool was_clean);
  void deliver(SocketConn& c, SocketEvent event);
  // The connection ended: close the descriptor, tell the object once.
  void finish(SocketConn& c, int code, std::string reason, bool was_clean, bool is_error);
  void send_close_frame(SocketConn& c, int code, std::string_view reason);
  // The server closes a socket on its own account (a slow or silent client):
  // the close frame, the connection closed once it is written, the object told.
  void close_by_server(SocketConn& c, int code, std::string reason);
  void unregister(SocketConn& c);

  Shard* shard_;
  size_t send_queue_limit_;
  uint64_t next_id_ = 0;
  std::unordered_map<uint64_t, std::shared_ptr<SocketConn>> by_id_;
  std::map<size_t, uint64_t> idle_closed_;  // by namespace index
  std::unordered_map<ObjectKey, ObjectSockets, ObjectKeyHash> by_object_;
  std::vector<std::shared_ptr<SocketConn>> dirty_;
  bool flush_posted_ = false;
  std::string scratch_;  // one read buffer for all sockets
};

// The Sec-WebSocket-Accept value that answers a client's Sec-WebSocket-Key.
std::string websocket_accept_key(std::string_view client_key);

}  // namespace dobj::internal
