// SocketHub: the sockets of a shard's objects: accepting, delivering events
// to objects, closing, hibernation bookkeeping. The socket I/O (reading and
// parsing frames, queued sends, sendmsg) is in socket_io.cc.
#include "runtime/socket_hub.h"

#include <openssl/evp.h>
#include <openssl/sha.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <cerrno>

#include "base/log.h"
#include "runtime/object_host.h"
#include "runtime/runtime.h"
#include "runtime/shard.h"
#include "runtime/socket_io.h"

namespace dobj::internal {

SocketConn::~SocketConn() = default;

SocketHub::SocketHub(Shard* shard, size_t send_queue_limit)
    : shard_(shard), send_queue_limit_(send_queue_limit) {}

SocketHub::~SocketHub() { close_all(); }

WebSocket SocketHub::accept(const NamespaceImpl* ns, const ObjectId& object, const Request& upgrade,
                            std::vector<std::string> tags,
                            std::shared_ptr<WebSocketHandlers> handlers) {
  if (!upgrade.is_websocket_upgrade()) {
    throw Error(Code::kInvalidArgument,
                "not a WebSocket upgrade request (GET with Upgrade: websocket)");
  }
  if (upgrade.header("sec-websocket-version").value_or("") != "13") {
    throw Error(Code::kInvalidArgument, "only WebSocket version 13 is supported");
  }
  std::string key = upgrade.header("sec-websocket-key").value_or("");
  if (key.size() != 24 || key.substr(22) != "==") {
    throw Error(Code::kInvalidArgument, "Sec-WebSocket-Key must be 16 bytes in base64");
  }
  if (tags.size() > kMaxWebSocketTags) {
    throw Error(Code::kInvalidArgument,
                "a WebSocket may have at most " + std::to_string(kMaxWebSocketTags) + " tags");
  }
  for (const auto& t : tags) {
    if (t.size() > kMaxWebSocketTagLength) {
      throw Error(Code::kInvalidArgument, "a WebSocket tag may have at most " +
                                              std::to_string(kMaxWebSocketTagLength) +
                                              " characters");
    }
  }
  ObjectSockets& group = by_object_[ObjectKey{ns, object}];
  if (group.sockets.size() >= kMaxWebSocketsPerObject) {
    throw Error(Code::kOverloaded, "this object already holds " +
                                       std::to_string(kMaxWebSocketsPerObject) + " WebSockets");
  }
  auto c = std::make_shared<SocketConn>();
  c->hub = this;
  c->id = ++next_id_;
  c->ns = ns;
  c->object = object;
  c->hibernatable = handlers == nullptr;
  c->handlers = std::move(handlers);
  c->tags = std::move(tags);
  c->key = std::move(key);
  c->slot = group.sockets.size();
  group.sockets.push_back(c.get());
  if (!c->hibernatable) ++group.kept;
  by_id_.emplace(c->id, c);
  std::weak_ptr<SocketConn> weak = c;
  shard_->run_after(std::chrono::duration_cast<std::chrono::milliseconds>(kHandshakeTimeout),
                    [this, weak] {
                      auto c = weak.lock();
                      if (c && c->phase == SocketConn::Phase::kPending) {
                        finish(*c, ws::kAbnormal, "the upgrade never completed", false, false);
                      }
                    });
  return WebSocket(c);
}

void SocketHub::report(SocketConn& c, SocketEvent::Kind kind, int code, std::string reason,
                       bool was_clean) {
  if (c.closed_by_object || c.close_reported) return;
  c.close_reported = true;
  deliver(c, SocketEvent{kind, WebSocket(c.shared_from_this()), {}, code, std::move(reason),
                         was_clean});
}

void SocketHub::deliver(SocketConn& c, SocketEvent event) {
  ++c.undelivered;
  Delivery d;
  std::shared_ptr<SocketConn> keep = event.socket.conn();
  d.reply = [keep](Answer) { keep->hub->event_done(*keep); };
  d.socket_event = std::move(event);
  shard_->deliver(c.ns, c.object, std::move(d));
}

void SocketHub::event_done(SocketConn& c) {
  --c.undelivered;
  if (c.undelivered < kMaxUndelivered && c.io && !c.reading &&
      c.phase != SocketConn::Phase::kClosed && !c.io->close_after_flush) {
    wait_readable(c.shared_from_this());
  }
}

void SocketHub::close(SocketConn& c, int code, std::string_view reason) {
  if (c.close_sent || c.phase == SocketConn::Phase::kClosed) return;
  c.closed_by_object = true;
  send_close_frame(c, code, reason);
}

void SocketHub::finish(SocketConn& c, int code, std::string reason, bool was_clean,
                       bool is_error) {
  if (c.phase == SocketConn::Phase::kClosed) return;
  auto keep = c.shared_from_this();  // unregister drops the hub's reference
  c.phase = SocketConn::Phase::kClosed;
  if (c.io) {
    boost::system::error_code ec;
    c.io->socket.shutdown(tcp::socket::shutdown_both, ec);
    c.io->socket.close(ec);
    std::string().swap(c.io->partial);
  }
  c.out.clear();
  c.out_head = 0;
  c.out_bytes = 0;
  report(c, is_error ? SocketEvent::kError : SocketEvent::kClose, code, std::move(reason),
         was_clean);
  unregister(c);
}

void SocketHub::unregister(SocketConn& c) {
  auto it = by_object_.find(ObjectKey{c.ns, c.object});
  if (it != by_object_.end()) {
    auto& list = it->second.sockets;
    if (c.slot < list.size() && list[c.slot] == &c) {
      list[c.slot] = list.back();
      list[c.slot]->slot = c.slot;
      list.pop_back();
      if (!c.hibernatable) --it->second.kept;
    }
    if (list.empty() && !it->second.auto_response) by_object_.erase(it);
  }
  by_id_.erase(c.id);
}

std::vector<WebSocket> SocketHub::sockets_of(const NamespaceImpl* ns, const ObjectId& object,
                                             std::string_view tag) {
  std::vector<WebSocket> out;
  auto it = by_object_.find(ObjectKey{ns, object});
  if (it == by_object_.end()) return out;
  out.reserve(it->second.sockets.size());
  for (SocketConn* c : it->second.sockets) {
    if (c->phase != SocketConn::Phase::kPending && c->phase != SocketConn::Phase::kOpen) continue;
    if (!c->hibernatable) continue;  // kept sockets are the object's own business
    if (!tag.empty() && std::find(c->tags.begin(), c->tags.end(), tag) == c->tags.end()) continue;
    out.emplace_back(c->shared_from_this());
  }
  return out;
}

void SocketHub::set_auto_response(const NamespaceImpl* ns, const ObjectId& object,
                                  std::optional<std::pair<std::string, std::string>> pair) {
  ObjectKey key{ns, object};
  if (!pair) {
    auto it = by_object_.find(key);
    if (it == by_object_.end()) return;
    it->second.auto_response.reset();
    if (it->second.sockets.empty()) by_object_.erase(it);
    return;
  }
  by_object_[key].auto_response = std::move(pair);
}

std::optional<std::pair<std::string, std::string>> SocketHub::auto_response(
    const NamespaceImpl* ns, const ObjectId& object) {
  auto it = by_object_.find(ObjectKey{ns, object});
  if (it == by_object_.end()) return std::nullopt;
  return it->second.auto_response;
}

size_t SocketHub::kept_sockets(const NamespaceImpl* ns, const ObjectId& object) const {
  if (by_object_.empty()) return 0;
  auto it = by_object_.find(ObjectKey{ns, object});
  return it == by_object_.end() ? 0 : it->second.kept;
}

void SocketHub::object_reset(const NamespaceImpl* ns, const ObjectId& object) {
  close_sockets(ns, object, /*kept_only=*/true, ws::kInternalError, "the object was reset");
}

void SocketHub::close_object(const NamespaceImpl* ns, const ObjectId& object, int code,
                             std::string_view reason) {
  close_sockets(ns, object, /*kept_only=*/false, code, reason);
}

void SocketHub::close_sockets(const NamespaceImpl* ns, const ObjectId& object, bool kept_only,
                              int code, std::string_view reason) {
  auto it = by_object_.find(ObjectKey{ns, object});
  if (it == by_object_.end() || (kept_only && it->second.kept == 0)) return;
  std::vector<std::shared_ptr<SocketConn>> chosen;
  for (SocketConn* c : it->second.sockets) {
    if (!kept_only || !c->hibernatable) chosen.push_back(c->shared_from_this());
  }
  for (auto& c : chosen) {
    c->handlers.reset();  // they belonged to the instance that is gone
    c->closed_by_object = true;
    send_close_frame(*c, code, reason);
    if (c->io) c->io->close_after_flush = true;
    if (c->phase == SocketConn::Phase::kPending) finish(*c, ws::kAbnormal, "", false, false);
  }
}

std::vector<ObjectKey> SocketHub::objects() const {
  std::vector<ObjectKey> out;
  out.reserve(by_object_.size());
  for (const auto& [key, sockets] : by_object_) out.push_back(key);
  return out;
}

size_t SocketHub::socket_count(const NamespaceImpl* ns, const ObjectId& object) const {
  auto it = by_object_.find(ObjectKey{ns, object});
  return it == by_object_.end() ? 0 : it->second.sockets.size();
}

void SocketHub::count(
    std::vector<NamespaceMetrics>* per_ns,
    const std::function<bool(const NamespaceImpl*, const ObjectId&)>& resident) const {
  for (const auto& [key, group] : by_object_) {
    if (group.sockets.empty()) continue;
    NamespaceMetrics& m = (*per_ns)[key.ns->index()];
    m.sockets_open += group.sockets.size();
    if (!resident(key.ns, key.id)) m.sockets_hibernated += group.sockets.size();
    m.sockets_kept += group.kept;
  }
  for (const auto& [ns, n] : idle_closed_) (*per_ns)[ns].sockets_idle_closed += n;
}

void SocketHub::close_by_server(SocketConn& c, int code, std::string reason) {
  send_close_frame(c, code, reason);
  if (c.io) c.io->close_after_flush = true;
  report(c, SocketEvent::kClose, code, std::move(reason), false);
}

void SocketHub::close_idle(int64_t now_ms, int64_t timeout_ms) {
  std::vector<std::shared_ptr<SocketConn>> quiet;
  for (auto& [id, c] : by_id_) {
    if (c->io && c->phase == SocketConn::Phase::kOpen && !c->close_sent &&
        now_ms - c->heard_ms >= timeout_ms / 2) {
      quiet.push_back(c);
    }
  }
  static const auto kPing = std::make_shared<const std::string>();
  for (auto& cp : quiet) {
    SocketConn& c = *cp;
    if (now_ms - c.heard_ms < timeout_ms) {
      // Quiet for half the timeout: a ping, which a live client answers.
      if (!c.pinged) {
        c.pinged = true;
        send(c, ws::kPing, kPing);
      }
      continue;
    }
    std::string reason =
        "no frame from the client for " + std::to_string(timeout_ms / 1000) + " s";
    close_by_server(c, ws::kGoingAway, std::move(reason));
    if (c.ns) ++idle_closed_[c.ns->index()];
  }
}

void SocketHub::close_all() {
  std::vector<std::shared_ptr<SocketConn>> all;
  all.reserve(by_id_.size());
  for (auto& [id, c] : by_id_) all.push_back(c);
  static const std::string kGoingAway =
      ws::encode_frame(ws::kClose, ws::close_payload(ws::kGoingAway, "the server is stopping"));
  for (auto& c : all) {
    c->closed_by_object = true;  // the objects are being destroyed: no events
    if (c->io && c->phase != SocketConn::Phase::kClosed && !c->close_sent &&
        c->front_written == 0) {
      (void)!::send(c->io->socket.native_handle(), kGoingAway.data(), kGoingAway.size(),
                    MSG_NOSIGNAL | MSG_DONTWAIT);
    }
    finish(*c, ws::kGoingAway, "", false, false);
  }
  dirty_.clear();
}

}  // namespace dobj::internal
