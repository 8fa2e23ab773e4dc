// etcd's JSON gateway through Beast, one call at a time on the caller's thread.
#include "cluster/etcd.h"

#include <atomic>
#include <boost/asio/connect.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <nlohmann/json.hpp>
#include <optional>

#include "base/base64.h"

namespace dobj::internal::etcd {
namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = asio::ip::tcp;
using nlohmann::json;

int64_t number(const json& j, const char* field) {
  auto it = j.find(field);
  if (it == j.end()) return 0;  // the gateway leaves out zero values
  if (it->is_string()) return std::stoll(it->get<std::string>());
  return it->get<int64_t>();
}

std::string bytes(const json& j, const char* field) {
  auto it = j.find(field);
  if (it == j.end() || !it->is_string()) return {};
  auto decoded = base64_decode(it->get<std::string>());
  if (!decoded) throw std::runtime_error(std::string("etcd: bad base64 in ") + field);
  return std::move(*decoded);
}

std::vector<KeyValue> key_values(const json& range) {
  std::vector<KeyValue> out;
  auto it = range.find("kvs");
  if (it == range.end()) return out;
  for (const json& kv : *it) {
    out.push_back(KeyValue{bytes(kv, "key"), bytes(kv, "value"), number(kv, "create_revision"),
                           number(kv, "mod_revision"), number(kv, "version"), number(kv, "lease")});
  }
  return out;
}

json op_json(const Op& op) {
  switch (op.kind) {
    case Op::Kind::kPut: {
      json put = {{"key", base64_encode(op.key)}, {"value", base64_encode(op.value)}};
      if (op.lease != 0) put["lease"] = std::to_string(op.lease);
      return {{"requestPut", put}};
    }
    case Op::Kind::kDelete: {
      json del = {{"key", base64_encode(op.key)}};
      if (!op.range_end.empty()) del["range_end"] = base64_encode(op.range_end);
      return {{"requestDeleteRange", del}};
    }
    case Op::Kind::kRange: {
      json range = {{"key", base64_encode(op.key)}};
      if (!op.range_end.empty()) range["range_end"] = base64_encode(op.range_end);
      return {{"requestRange", range}};
    }
  }
  return {};
}

json compare_json(const Compare& c) {
  json j = {{"key", base64_encode(c.key)}, {"result", "EQUAL"}};
  switch (c.target) {
    case Compare::Target::kCreateRevision:
      j["target"] = "CREATE";
      j["create_revision"] = std::to_string(c.revision);
      break;
    case Compare::Target::kModRevision:
      j["target"] = "MOD";
      j["mod_revision"] = std::to_string(c.revision);
      break;
    case Compare::Target::kValue:
      j["target"] = "VALUE";
      j["value"] = base64_encode(c.value);
      break;
    case Compare::Target::kLease:
      j["target"] = "LEASE";
      j["lease"] = std::to_string(c.revision);
      break;
  }
  return j;
}

struct Endpoint {
  std::string host;
  std::string port;
};

Endpoint parse_endpoint(std::string e) {
  if (e.rfind("http://", 0) == 0) e = e.substr(7);
  while (!e.empty() && e.back() == '/') e.pop_back();
  auto colon = e.rfind(':');
  if (colon == std::string::npos) return {e, "2379"};
  return {e.substr(0, colon), e.substr(colon + 1)};
}

// A gateway call: POST of a JSON body, on a kept-alive connection.
http::request<http::string_body> post_json(const Endpoint& ep, const std::string& path, const std::string& body) {
  http::request<http::string_body> req{http::verb::post, path, 11};
  req.set(http::field::host, ep.host + ":" + ep.port);
  req.set(http::field::content_type, "application/json");
  req.keep_alive(true);
  req.body() = body;
  req.prepare_payload();
  return req;
}

}  // namespace

std::string prefix_end(std::string_view prefix) {
  std::string end(prefix);
  while (!end.empty()) {
    if (static_cast<uint8_t>(end.back()) < 0xff) {
      end.back() = static_cast<char>(static_cast<uint8_t>(end.back()) + 1);
      return end;
    }
    end.pop_back();
  }
  return std::string(1, '\0');  // every key
}

struct Client::Impl {
  std::vector<Endpoint> endpoints;
  std::chrono::milliseconds timeout;
  size_t current = 0;
  asio::io_context io;
  tcp::resolver resolver{io};
  std::optional<beast::tcp_stream> stream;
  beast::flat_buffer buffer;

  // Opens a new connection to ep (within `timeout`), then calls then();
  // failed(ec) is asked after each step and ends the chain when it says so.
  template <typename Failed, typename Then>
  void open(const Endpoint& ep, Failed failed, Then then) {
    stream.emplace(io);
    buffer.clear();
    stream->expires_after(timeout);
    resolver.async_resolve(ep.host, ep.port, [this, failed, then](beast::error_code ec, tcp::resolver::results_type r) {
      if (failed(ec)) return;
      stream->async_connect(r, [failed, then](beast::error_code ec, const tcp::endpoint&) {
        if (failed(ec)) return;
        then();
      });
    });
  }

  // One exchange on the open connection (opening it first if needed).
  Result<json> exchange(const Endpoint& ep, const std::string& path, const std::string& body) {
    beast::error_code error;
    std::optional<http::response<http::string_body>> response;
    auto req = post_json(ep, path, body);
    auto read_response = [&] {
      response.emplace();
      http::async_read(*stream, buffer, *response, [&](beast::error_code ec, size_t) { error = ec; });
    };
    auto send = [&] {
      http::async_write(*stream, req, [&](beast::error_code ec, size_t) {
        if (ec) {
          error = ec;
          return;
        }
        read_response();
      });
    };
    if (!stream) {
      open(ep, [&](const beast::error_code& ec) {
        error = ec;
        return static_cast<bool>(ec);
      }, send);
    } else {
      stream->expires_after(timeout);
      send();
    }
    io.restart();
    io.run();
    if (error || !response) {
      stream.reset();
      return Status(Code::kUnavailable, "etcd " + ep.host + ":" + ep.port + path + ": " +
                                            (error ? error.message() : std::string("no answer")));
    }
    if (!response->keep_alive()) stream.reset();
    json parsed = json::parse(response->body(), nullptr, /*allow_exceptions=*/false);
    if (response->result() != http::status::ok) {
      std::string message = parsed.is_object() && parsed.contains("error") && parsed["error"].is_string()
                                ? parsed["error"].get<std::string>()
                                : response->body();
      return Status(Code::kUnavailable, "etcd " + path + ": " + message);
    }
    if (parsed.is_discarded()) return Status(Code::kUnavailable, "etcd " + path + ": answer is not JSON");
    return parsed;
  }

  std::atomic<bool> cancelled{false};  // cancel_watch() was called

  // One watch stream on a new connection to ep, until it ends (see
  // Client::watch). The gateway sends each message as one line of JSON.
  Status watch(const Endpoint& ep, const std::string& body, const std::function<void()>& changed,
               std::chrono::milliseconds idle) {
    if (cancelled) return Status(Code::kUnavailable, "etcd: the watch was cancelled");
    std::string where = "etcd " + ep.host + ":" + ep.port + "/v3/watch";
    beast::error_code error;
    Status ended;  // what the stream itself said, if it said why it ended
    auto req = post_json(ep, "/v3/watch", body);
    http::response_parser<http::string_body> parser;
    parser.body_limit(boost::none);
    std::string lines;
    constexpr size_t kMaxLine = 64 << 20;
    auto on_chunk = [&](uint64_t, beast::string_view piece, beast::error_code& ec) -> size_t {
      lines.append(piece.data(), piece.size());
      for (size_t nl; ended.is_ok() && (nl = lines.find('\n')) != std::string::npos;) {
        json message = json::parse(std::string_view(lines).substr(0, nl), nullptr, /*allow_exceptions=*/false);
        lines.erase(0, nl + 1);
        const json* result = message.is_object() ? &message["result"] : nullptr;
        if (!result || !result->is_object() || result->value("canceled", false)) {
          std::string why = message.is_object() && message.contains("error") ? message["error"].dump()
                            : result && result->is_object() ? result->value("cancel_reason", "cancelled by etcd")
                                                            : "an answer that is not a watch message";
          ended = Status(Code::kUnavailable, where + ": " + why);
          break;
        }
        changed();
      }
      if (ended.is_ok() && lines.size() > kMaxLine) ended = Status(Code::kUnavailable, where + ": a message over 64 MiB");
      if (!ended.is_ok()) ec = asio::error::operation_aborted;
      return piece.size();
    };
    parser.on_chunk_body(on_chunk);
    auto stop_if_cancelled = [&](const beast::error_code& ec) {
      if (!ec && cancelled) error = asio::error::operation_aborted;
      else error = ec;
      return static_cast<bool>(error);
    };
    std::function<void()> read_more = [&] {
      stream->expires_after(idle);
      http::async_read_some(*stream, buffer, parser, [&](beast::error_code ec, size_t) {
        if (stop_if_cancelled(ec)) return;
        if (parser.is_done()) {
          error = http::error::end_of_stream;
          return;
        }
        read_more();
      });
    };
    open(ep, stop_if_cancelled, [&] {
      http::async_write(*stream, req, [&](beast::error_code ec, size_t) {
        if (stop_if_cancelled(ec)) return;
        http::async_read_header(*stream, buffer, parser, [&](beast::error_code ec, size_t) {
          if (stop_if_cancelled(ec)) return;
          if (parser.get().result() != http::status::ok) {
            ended = Status(Code::kUnavailable, where + ": HTTP " + std::to_string(parser.get().result_int()));
            return;
          }
          read_more();
        });
      });
    });
    io.restart();
    io.run();
    stream.reset();
    if (!ended.is_ok()) return ended;
    if (cancelled) return Status(Code::kUnavailable, "etcd: the watch was cancelled");
    return Status(Code::kUnavailable, where + ": " + (error ? error.message() : std::string("ended")));
  }

  // Tries each member once, from the one that answered last.
  Result<json> call(const std::string& path, const json& body) {
    std::string text = body.dump();
    Status last;
    for (size_t attempt = 0; attempt < endpoints.size(); ++attempt) {
      const Endpoint& ep = endpoints[current];
      auto r = exchange(ep, path, text);
      if (r) return r;
      last = r.status();
      current = (current + 1) % endpoints.size();
    }
    return last;
  }
};

Client::Client(std::vector<std::string> endpoints, std::chrono::milliseconds timeout)
    : impl_(std::make_unique<Impl>()) {
  for (auto& e : endpoints) impl_->endpoints.push_back(parse_endpoint(std::move(e)));
  if (impl_->endpoints.empty()) impl_->endpoints.push_back(parse_endpoint("127.0.0.1:2379"));
  impl_->timeout = timeout;
}

Client::~Client() = default;

std::string Client::current_endpoint() const {
  const Endpoint& ep = impl_->endpoints[impl_->current];
  return ep.host + ":" + ep.port;
}

// The parsing below throws on answers of the wrong shape; each public call
// turns that into kUnavailable.
template <typename F>
auto guarded(F&& f) -> decltype(f()) {
  try {
    return f();
  } catch (const std::exception& e) {
    return Status(Code::kUnavailable, std::string("etcd: unexpected answer: ") + e.what());
  }
}

Result<RangeResult> Client::get(const std::string& key) {
  return guarded([&]() -> Result<RangeResult> {
    auto r = impl_->call("/v3/kv/range", {{"key", base64_encode(key)}});
    if (!r) return r.status();
    return RangeResult{number((*r)["header"], "revision"), key_values(*r)};
  });
}

Result<RangeResult> Client::get_prefix(const std::string& prefix) {
  return guarded([&]() -> Result<RangeResult> {
    auto r = impl_->call("/v3/kv/range", {{"key", base64_encode(prefix)},
                                          {"range_end", base64_encode(prefix_end(prefix))}});
    if (!r) return r.status();
    return RangeResult{number((*r)["header"], "revision"), key_values(*r)};
  });
}

Result<int64_t> Client::revision() {
  return guarded([&]() -> Result<int64_t> {
    auto r = impl_->call("/v3/kv/range", {{"key", base64_encode(std::string(1, '\0'))},
                                          {"range_end", base64_encode(std::string(1, '\0'))},
                                          {"count_only", true}});
    if (!r) return r.status();
    return number((*r)["header"], "revision");
  });
}

Result<int64_t> Client::put(const std::string& key, const std::string& value, int64_t lease) {
  return guarded([&]() -> Result<int64_t> {
    json body = {{"key", base64_encode(key)}, {"value", base64_encode(value)}};
    if (lease != 0) body["lease"] = std::to_string(lease);
    auto r = impl_->call("/v3/kv/put", body);
    if (!r) return r.status();
    return number((*r)["header"], "revision");
  });
}

Result<TxnResult> Client::txn(const std::vector<Compare>& compares, const std::vector<Op>& success,
                              const std::vector<Op>& failure) {
  return guarded([&]() -> Result<TxnResult> {
    json body = {{"compare", json::array()}, {"success", json::array()}, {"failure", json::array()}};
    for (const auto& c : compares) body["compare"].push_back(compare_json(c));
    for (const auto& op : success) body["success"].push_back(op_json(op));
    for (const auto& op : failure) body["failure"].push_back(op_json(op));
    auto r = impl_->call("/v3/kv/txn", body);
    if (!r) return r.status();
    TxnResult out;
    out.succeeded = r->value("succeeded", false);
    out.revision = number((*r)["header"], "revision");
    if (auto it = r->find("responses"); it != r->end()) {
      for (const json& resp : *it) {
        if (auto range = resp.find("response_range"); range != resp.end()) {
          out.ranges.push_back(key_values(*range));
        }
      }
    }
    return out;
  });
}

Result<int64_t> Client::grant(int64_t ttl_seconds) {
  return guarded([&]() -> Result<int64_t> {
    auto r = impl_->call("/v3/lease/grant", {{"TTL", std::to_string(ttl_seconds)}});
    if (!r) return r.status();
    int64_t id = number(*r, "ID");
    if (id == 0) return Status(Code::kUnavailable, "etcd: lease grant gave no ID");
    return id;
  });
}

Result<int64_t> Client::keep_alive(int64_t lease) {
  return guarded([&]() -> Result<int64_t> {
    auto r = impl_->call("/v3/lease/keepalive", {{"ID", std::to_string(lease)}});
    if (!r) return r.status();
    const json& result = r->contains("result") ? (*r)["result"] : *r;
    return number(result, "TTL");
  });
}

Status Client::watch(const std::string& prefix, const std::function<void()>& changed,
                     std::chrono::milliseconds idle) {
  json body = {{"create_request", {{"key", base64_encode(prefix)}, {"range_end", base64_encode(prefix_end(prefix))}}}};
  Status st = guarded([&]() -> Status { return impl_->watch(impl_->endpoints[impl_->current], body.dump(), changed, idle); });
  // The next watch goes to the next member (this one may be down or cut off).
  if (!impl_->cancelled) impl_->current = (impl_->current + 1) % impl_->endpoints.size();
  return st;
}

void Client::cancel_watch() {
  impl_->cancelled = true;
  asio::post(impl_->io, [impl = impl_.get()] {
    if (impl->stream) impl->stream->close();
  });
}

Status Client::revoke(int64_t lease) {
  return guarded([&]() -> Status {
    auto r = impl_->call("/v3/lease/revoke", {{"ID", std::to_string(lease)}});
    return r ? Status::ok() : r.status();
  });
}

}  // namespace dobj::internal::etcd
