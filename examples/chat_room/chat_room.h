// ChatRoom: a room that relays every text message to every socket in it,
// through the hibernation API. See README.md beside this file.
#pragma once

#include <dobj/dobj.h>

#include <string>

namespace examples {

class ChatRoom : public dobj::DurableObject {
 public:
  using DurableObject::DurableObject;

  // /room/<name>/websocket (upgrade) and /room/<name>/count.
  dobj::Task<dobj::Response> fetch(dobj::Request req) override {
    auto segments = req.path_segments();
    if (!segments || segments->size() != 3) co_return dobj::Response::error(404, "not found");
    const std::string& what = (*segments)[2];
    if (what == "websocket") {
      if (!req.is_websocket_upgrade()) {
        co_return dobj::Response::error(426, "this route wants a WebSocket upgrade");
      }
      dobj::WebSocket ws = state().accept_websocket(req);
      co_return ws.upgrade_response();
    }
    if (what == "count") {
      if (req.method != "GET") co_return dobj::Response::error(405, "use GET to count sockets");
      co_return dobj::Response::text(std::to_string(state().get_websockets().size()));
    }
    co_return dobj::Response::error(404, "not found");
  }

  // Relays a text message, unchanged and without copying it, to every socket
  // of the room (the sender too), in the order the room received them.
  dobj::Task<void> websocket_message(dobj::WebSocket, dobj::WebSocketMessage message) override {
    if (message.is_binary()) co_return;
    for (const dobj::WebSocket& ws : state().get_websockets()) ws.send(message);
  }
};

}  // namespace examples
