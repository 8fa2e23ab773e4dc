// WebSocket: a client connection an object accepted.
//
// An object accepts an upgrade request in fetch() and answers with the
// socket's upgrade_response():
//
//   Task<Response> fetch(Request req) override {
//     if (!req.is_websocket_upgrade()) co_return Response::error(426, "expected a WebSocket");
//     WebSocket ws = state().accept_websocket(req, {"player"});
//     co_return ws.upgrade_response();
//   }
//
// From then on the runtime owns the connection and delivers its messages to
// the object's websocket_message / websocket_close / websocket_error handlers
// as events (one at a time, in the order each socket received them). With
// accept_websocket (the hibernation API) the object may be evicted while its
// sockets stay open: the next message builds a new instance and delivers it.
// With keep_websocket the object handles the socket through its own callbacks
// and is not evicted while the socket is open.
//
// A WebSocket is a handle: cheap to copy, compared by identity, and used only
// on its object's thread. A send that follows a write of the same object
// leaves once that write is durable (the output gate), like a response.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "dobj/http.h"
#include "dobj/task.h"

namespace dobj {

namespace internal {
struct SocketConn;
}

// Limits (the same as Durable Objects).
inline constexpr size_t kMaxWebSocketMessageBytes = 32 * 1024 * 1024;
inline constexpr size_t kMaxWebSocketsPerObject = 32'768;
inline constexpr size_t kMaxWebSocketTags = 10;
inline constexpr size_t kMaxWebSocketTagLength = 256;
inline constexpr size_t kMaxWebSocketAttachmentBytes = 16 * 1024;

// One received (or to-be-sent) message: text or binary. Its bytes are shared,
// not copied, when it is sent to many sockets.
class WebSocketMessage {
 public:
  WebSocketMessage() = default;
  static WebSocketMessage text(std::string data);
  static WebSocketMessage binary(std::string data);
  bool is_binary() const { return binary_; }
  std::string_view data() const;

 private:
  std::shared_ptr<const std::string> bytes_;
  bool binary_ = false;
  friend class WebSocket;
};

class WebSocket {
 public:
  enum class ReadyState { kConnecting, kOpen, kClosing, kClosed };

  // Queues a message. Sending on a socket the peer already closed is a quiet
  // no-op (its close event is on its way); after this object's own close()
  // it throws dobj::Error. Each socket has a bounded send queue: a client that
  // reads too slowly is closed with code 1008, so one slow client cannot slow
  // the others or grow memory without bound.
  void send(std::string_view text) const;
  void send_binary(std::string_view bytes) const;
  void send(const WebSocketMessage& message) const;
  // Starts the closing handshake (code 1000 or 3000-4999; reason at most 123
  // bytes of UTF-8).
  void close(int code = 1000, std::string_view reason = {}) const;
  ReadyState ready_state() const;

  // A small value kept with the socket by the runtime, so that it survives the
  // object's eviction (at most 16 KiB; more throws dobj::Error).
  void serialize_attachment(std::string value) const;
  std::optional<std::string> deserialize_attachment() const;

  // The 101 response that completes the upgrade: return it from fetch().
  Response upgrade_response() const;

  // Unique on the server while the socket lives.
  uint64_t id() const;
  bool operator==(const WebSocket& o) const { return conn_ == o.conn_; }

  explicit WebSocket(std::shared_ptr<internal::SocketConn> conn) : conn_(std::move(conn)) {}
  const std::shared_ptr<internal::SocketConn>& conn() const { return conn_; }

 private:
  std::shared_ptr<internal::SocketConn> conn_;
};

// The callbacks of a socket the object keeps itself (State::keep_websocket).
// They run as events of the object, like the hibernation handlers.
struct WebSocketHandlers {
  std::function<Task<void>(WebSocket, WebSocketMessage)> message;
  std::function<Task<void>(WebSocket, int code, std::string reason, bool was_clean)> close;
  std::function<Task<void>(WebSocket, std::string error)> error;
};

}  // namespace dobj
