// Request and Response: the HTTP messages objects and the worker exchange.
//
// Plain values with no network types in them, so object code compiles without
// Boost. Header names compare case-insensitively. The target keeps the raw
// request target (path and query, still URL-encoded); path() and query()
// split and decode it.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace dobj {

using Headers = std::vector<std::pair<std::string, std::string>>;

// Decodes %XX escapes (and '+' as space when form is set). Returns nullopt on a
// malformed escape.
std::optional<std::string> url_decode(std::string_view s, bool form = false);
// Encodes everything but unreserved characters (RFC 3986).
std::string url_encode(std::string_view s);

struct Request {
  std::string method = "GET";
  std::string target = "/";  // raw path and query
  Headers headers;
  std::string body;

  // The path without the query, still encoded.
  std::string_view path() const;
  // The path split at '/', each segment decoded; nullopt if an escape is
  // malformed. "/a/b%2Fc/" gives {"a", "b/c"}.
  std::optional<std::vector<std::string>> path_segments() const;
  // The decoded value of query parameter `name`, if present.
  std::optional<std::string> query(std::string_view name) const;
  std::optional<std::string> header(std::string_view name) const;
  void set_header(std::string name, std::string value);
  // GET with "Upgrade: websocket" and "Connection: upgrade".
  bool is_websocket_upgrade() const;
};

class WebSocket;
namespace internal {
struct ResponseAccess;
}

struct Response {
  int status = 200;
  Headers headers;
  std::string body;

  std::optional<std::string> header(std::string_view name) const;
  void set_header(std::string name, std::string value);

  static Response text(std::string body, int status = 200);
  static Response json(std::string body, int status = 200);
  // {"error": message} with the given status.
  static Response error(int status, std::string_view message);

 private:
  friend class WebSocket;
  friend struct internal::ResponseAccess;
  // Which accepted socket a 101 completes: set only by
  // WebSocket::upgrade_response, carried with the response through workers
  // and stubs, and out of reach of object code (no header can forge it).
  struct Upgrade {
    size_t shard = 0;
    uint64_t socket_id = 0;
    bool relay = false;  // relayed to another node (runtime/ws_relay.h)
  };
  std::optional<Upgrade> upgrade_;
  // A file sent as the body instead of `body` (an export), streamed from disk
  // and removed once opened. Set only by the runtime.
  std::optional<std::string> body_file_;
  // The runtime's answer for an event that failed (the object's code threw,
  // the object was reset or overloaded, its node unreachable) rather than a
  // response the object gave: a JavaScript caller's stub.fetch() rejects with
  // it, as on Cloudflare. Set only by the runtime.
  bool failed_ = false;
};

}  // namespace dobj
