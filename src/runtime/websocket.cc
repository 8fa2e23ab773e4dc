// The public WebSocket API: handles, State's socket methods and the default
// handlers. The connections themselves live in SocketHub.
#include "dobj/websocket.h"

#include "base/websocket_frame.h"
#include "dobj/object.h"
#include "runtime/object_host.h"
#include "runtime/runtime.h"
#include "runtime/socket_hub.h"

namespace dobj {

using internal::SocketConn;

WebSocketMessage WebSocketMessage::text(std::string data) {
  WebSocketMessage m;
  m.bytes_ = std::make_shared<const std::string>(std::move(data));
  return m;
}

WebSocketMessage WebSocketMessage::binary(std::string data) {
  WebSocketMessage m = text(std::move(data));
  m.binary_ = true;
  return m;
}

std::string_view WebSocketMessage::data() const {
  return bytes_ ? std::string_view(*bytes_) : std::string_view();
}

namespace {

void check_thread(const SocketConn& c) {
  if (internal::Shard::current() != c.hub->shard()) {
    throw Error(Code::kInternal, "a WebSocket is used only on its object's thread");
  }
}

// An output of the socket the gate refused. A reset deals with the object's
// sockets itself; otherwise the node may not answer for the object now, so
// the client hears 1012 (reconnect) rather than miss a message unaware.
void refused(SocketConn& c, const Status& why) {
  if (why.code() == Code::kReset || c.phase != SocketConn::Phase::kOpen) return;
  c.hub->close(c, internal::ws::kServiceRestart, "this node cannot answer for the object now; reconnect");
}

// A send or close leaves under the output gate of the object running now.
void send_gated(const std::shared_ptr<SocketConn>& c, uint8_t opcode,
                std::shared_ptr<const std::string> payload) {
  check_thread(*c);
  if (c->closed_by_object) throw Error(Code::kInvalidArgument, "send() after close()");
  if (payload->size() > kMaxWebSocketMessageBytes) {
    throw Error(Code::kTooLarge, "a WebSocket message may be at most " +
                                     std::to_string(kMaxWebSocketMessageBytes) + " bytes");
  }
  internal::send_through_output_gate([c, opcode, payload = std::move(payload)](Status st) mutable {
    if (!st.is_ok()) return refused(*c, st);
    c->hub->send(*c, opcode, std::move(payload));
  });
}

}  // namespace

void WebSocket::send(std::string_view text) const {
  send_gated(conn_, internal::ws::kText, std::make_shared<const std::string>(text));
}

void WebSocket::send_binary(std::string_view bytes) const {
  send_gated(conn_, internal::ws::kBinary, std::make_shared<const std::string>(bytes));
}

void WebSocket::send(const WebSocketMessage& message) const {
  if (!message.bytes_) return send(std::string_view());
  send_gated(conn_, message.binary_ ? internal::ws::kBinary : internal::ws::kText,
             message.bytes_);
}

void WebSocket::close(int code, std::string_view reason) const {
  check_thread(*conn_);
  if (code != 1000 && (code < 3000 || code > 4999)) {
    throw Error(Code::kInvalidArgument,
                "close code must be 1000 or 3000-4999, got " + std::to_string(code));
  }
  if (reason.size() > 123 || !internal::ws::valid_utf8(reason)) {
    throw Error(Code::kInvalidArgument, "close reason must be at most 123 bytes of UTF-8");
  }
  auto c = conn_;
  c->closed_by_object = true;  // later sends throw, even before the frame leaves
  internal::send_through_output_gate([c, code, reason = std::string(reason)](Status st) {
    if (!st.is_ok()) return refused(*c, st);
    c->hub->close(*c, code, reason);
  });
}

WebSocket::ReadyState WebSocket::ready_state() const {
  switch (conn_->phase) {
    case SocketConn::Phase::kPending:
      return ReadyState::kConnecting;
    case SocketConn::Phase::kOpen:
      return conn_->closed_by_object ? ReadyState::kClosing : ReadyState::kOpen;
    case SocketConn::Phase::kClosing:
      return ReadyState::kClosing;
    case SocketConn::Phase::kClosed:
      break;
  }
  return ReadyState::kClosed;
}

void WebSocket::serialize_attachment(std::string value) const {
  check_thread(*conn_);
  if (value.size() > kMaxWebSocketAttachmentBytes) {
    throw Error(Code::kInvalidArgument, "a WebSocket attachment may be at most " +
                                            std::to_string(kMaxWebSocketAttachmentBytes) +
                                            " bytes, got " + std::to_string(value.size()));
  }
  conn_->attachment = std::move(value);
}

std::optional<std::string> WebSocket::deserialize_attachment() const { return conn_->attachment; }

Response WebSocket::upgrade_response() const {
  Response r;
  r.status = 101;
  r.upgrade_ = Response::Upgrade{static_cast<size_t>(conn_->hub->shard()->index()), conn_->id, false};
  return r;
}

uint64_t WebSocket::id() const { return conn_->id; }

namespace {
internal::SocketHub& hub_of(internal::ObjectHost* host) { return host->shard()->sockets(); }
}  // namespace

WebSocket State::accept_websocket(const Request& upgrade, std::vector<std::string> tags) {
  return hub_of(host_).accept(host_->ns(), host_->id(), upgrade, std::move(tags), nullptr);
}

WebSocket State::keep_websocket(const Request& upgrade, WebSocketHandlers handlers) {
  return hub_of(host_).accept(host_->ns(), host_->id(), upgrade, {},
                              std::make_shared<WebSocketHandlers>(std::move(handlers)));
}

std::vector<WebSocket> State::get_websockets(std::string_view tag) {
  return hub_of(host_).sockets_of(host_->ns(), host_->id(), tag);
}

std::vector<std::string> State::get_tags(const WebSocket& ws) { return ws.conn()->tags; }

void State::set_websocket_auto_response(std::string request, std::string response) {
  hub_of(host_).set_auto_response(host_->ns(), host_->id(),
                                  std::make_pair(std::move(request), std::move(response)));
}

void State::clear_websocket_auto_response() {
  hub_of(host_).set_auto_response(host_->ns(), host_->id(), std::nullopt);
}

std::optional<std::pair<std::string, std::string>> State::get_websocket_auto_response() {
  return hub_of(host_).auto_response(host_->ns(), host_->id());
}

std::optional<int64_t> State::get_websocket_auto_response_timestamp(const WebSocket& ws) {
  return ws.conn()->auto_response_ms;
}

Task<void> DurableObject::websocket_message(WebSocket, WebSocketMessage) { co_return; }
Task<void> DurableObject::websocket_close(WebSocket, int, std::string, bool) { co_return; }
Task<void> DurableObject::websocket_error(WebSocket, std::string) { co_return; }

}  // namespace dobj
