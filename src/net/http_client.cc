// dobj::fetch: Beast client on the caller's shard, plain or over TLS.
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl.hpp>

#include <map>
#include <mutex>

#include "dobj/fetch.h"
#include "net/tls_client.h"
#include "runtime/object_host.h"

namespace dobj {
namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = asio::ip::tcp;

namespace ssl = asio::ssl;

struct Url {
  bool tls = false;
  std::string host;
  std::string port;
  std::string target;
  std::string text() const {
    return std::string(tls ? "https://" : "http://") + host + ":" + port + target;
  }
};

Result<Url> parse_url(std::string_view url) {
  Url u;
  std::string_view rest;
  if (url.rfind("http://", 0) == 0) {
    rest = url.substr(7);
  } else if (url.rfind("https://", 0) == 0) {
    rest = url.substr(8);
    u.tls = true;
  } else {
    return Status(Code::kInvalidArgument,
                  "fetch: only http:// and https:// URLs are supported, got " + std::string(url));
  }
  const std::string default_port = u.tls ? "443" : "80";
  auto slash = rest.find_first_of("/?");
  std::string_view authority = rest.substr(0, slash);
  u.target = slash == std::string_view::npos ? "/" : std::string(rest.substr(slash));
  if (u.target[0] == '?') u.target = "/" + u.target;
  if (authority.empty())
    return Status(Code::kInvalidArgument, "fetch: no host in " + std::string(url));
  if (authority.front() == '[') {  // [v6]:port
    auto close = authority.find(']');
    if (close == std::string_view::npos)
      return Status(Code::kInvalidArgument, "fetch: bad host in " + std::string(url));
    u.host = std::string(authority.substr(1, close - 1));
    u.port = close + 1 < authority.size() && authority[close + 1] == ':'
                 ? std::string(authority.substr(close + 2))
                 : default_port;
  } else {
    auto colon = authority.rfind(':');
    u.host = std::string(authority.substr(0, colon));
    u.port = colon == std::string_view::npos ? default_port : std::string(authority.substr(colon + 1));
  }
  if (u.port.empty() || u.port.find_first_not_of("0123456789") != std::string::npos) {
    return Status(Code::kInvalidArgument, "fetch: bad port in " + std::string(url));
  }
  return u;
}

// The TLS settings of outgoing requests: peers are verified against the
// system's CA store (or the PEM file FetchOptions::ca_file names). One
// context per CA file, made on first use and shared by every shard.
ssl::context& tls_context(const std::string& ca_file) {
  static std::mutex mu;
  static std::map<std::string, std::unique_ptr<ssl::context>> contexts;
  std::lock_guard lock(mu);
  auto& c = contexts[ca_file];
  if (!c) {
    auto made = std::make_unique<ssl::context>(ssl::context::tls_client);
    // Kept only once set up: a context without its trusted certificates
    // would verify nothing.
    if (Status st = internal::set_up_client_tls(*made, ca_file); !st) {
      throw Error(Code::kUnavailable, "fetch: " + st.message());
    }
    c = std::move(made);
  }
  return *c;
}

// One exchange over a plain or a TLS stream. Shared: its handlers keep it
// alive until the exchange ends.
template <typename Stream>
class Exchange : public std::enable_shared_from_this<Exchange<Stream>> {
 public:
  using Done = std::function<void(Result<Response>)>;
  template <typename... StreamArgs>
  Exchange(asio::io_context& io, Url url, Request request, FetchOptions options, Done done,
           StreamArgs&&... stream_args)
      : resolver_(io),
        stream_(io, std::forward<StreamArgs>(stream_args)...),
        url_(std::move(url)),
        options_(options),
        done_(std::move(done)) {
    req_.method_string(request.method);
    req_.target(url_.target);
    req_.version(11);
    for (auto& [k, v] : request.headers) req_.set(k, v);
    bool default_port = url_.port == (url_.tls ? "443" : "80");
    req_.set(http::field::host, url_.host + (default_port ? "" : ":" + url_.port));
    if (req_[http::field::user_agent].empty()) req_.set(http::field::user_agent, "dobj");
    req_.body() = std::move(request.body);
    req_.keep_alive(false);
    req_.prepare_payload();
    parser_.body_limit(options_.max_response_bytes);
  }

  void start() {
    if constexpr (kTls) {
      if (beast::error_code ec = internal::expect_server_name(stream_, url_.host)) return fail("TLS set-up", ec);
    }
    tcp_layer().expires_after(options_.timeout);
    resolver_.async_resolve(
        url_.host, url_.port,
        [self = this->shared_from_this()](beast::error_code ec, tcp::resolver::results_type r) {
          if (ec) return self->fail("resolve", ec);
          self->tcp_layer().async_connect(r, [self](beast::error_code ec, const tcp::endpoint&) {
            if (ec) return self->fail("connect", ec);
            if constexpr (kTls) {
              self->stream_.async_handshake(ssl::stream_base::client, [self](beast::error_code ec) {
                if (ec) return self->fail("TLS handshake", ec);
                self->write();
              });
            } else {
              self->write();
            }
          });
        });
  }

 private:
  static constexpr bool kTls = !std::is_same_v<Stream, beast::tcp_stream>;
  beast::tcp_stream& tcp_layer() {
    if constexpr (kTls) {
      return beast::get_lowest_layer(stream_);
    } else {
      return stream_;
    }
  }
  void write() {
    http::async_write(stream_, req_, [self = this->shared_from_this()](beast::error_code ec, size_t) {
      if (ec) return self->fail("send", ec);
      http::async_read(self->stream_, self->buffer_, self->parser_,
                       [self](beast::error_code ec, size_t) {
                         if (ec) return self->fail("receive", ec);
                         self->finish();
                       });
    });
  }
  void finish() {
    auto msg = parser_.release();
    Response r;
    r.status = static_cast<int>(msg.result_int());
    for (const auto& f : msg) r.headers.emplace_back(f.name_string(), f.value());
    r.body = std::move(msg.body());
    // The whole answer is read and the connection is not kept: close it
    // without TLS's closing handshake (nothing more can arrive that matters).
    beast::error_code ignored;
    tcp_layer().socket().shutdown(tcp::socket::shutdown_both, ignored);
    done_(std::move(r));
  }
  void fail(const char* step, beast::error_code ec) {
    std::string what = ec == beast::error::timeout
                           ? "timed out after " + std::to_string(options_.timeout.count()) + " ms"
                           : ec.message();
    if (kTls && ec.category() == asio::error::get_ssl_category()) {
      if (std::string refused = internal::certificate_refusal(tcp_native()); !refused.empty()) {
        what = "the server's certificate was refused: " + refused +
               (options_.ca_file.empty() ? " (checked against this machine's CA store)"
                                         : " (checked against " + options_.ca_file + ")");
      }
    }
    done_(Status(Code::kUnavailable, "fetch " + url_.text() + ": " + step + " failed: " + what));
  }
  SSL* tcp_native() {
    if constexpr (kTls) {
      return stream_.native_handle();
    } else {
      return nullptr;
    }
  }

  tcp::resolver resolver_;
  Stream stream_;
  Url url_;
  FetchOptions options_;
  Done done_;
  http::request<http::string_body> req_;
  beast::flat_buffer buffer_;
  http::response_parser<http::string_body> parser_;
};

struct FetchAwaitable {
  Url url;
  Request request;
  FetchOptions options;
  std::optional<Result<Response>> result;

  bool await_ready() const noexcept { return false; }
  void await_suspend(std::coroutine_handle<> h) {
    internal::ResumeTarget back = internal::current_resume_target();
    auto done = [back, h, this](Result<Response> r) {
      if (!back.shard->alive(back)) return;  // the caller was reset: h is gone
      result.emplace(std::move(r));
      back.shard->resume(back, h);
    };
    // The request leaves under the output gate; one the gate refuses fails
    // the fetch, on a fresh stack (the refusal comes as a turn ends).
    auto gated = [done, shard = back.shard](auto exchange) {
      return [exchange, done, shard](Status st) {
        if (st.is_ok()) {
          exchange->start();
        } else {
          shard->post([done, st] { done(st); });
        }
      };
    };
    if (url.tls) {
      ssl::context& tls = tls_context(options.ca_file);
      internal::send_through_output_gate(gated(std::make_shared<Exchange<beast::ssl_stream<beast::tcp_stream>>>(
          back.shard->io(), std::move(url), std::move(request), options, done, tls)));
    } else {
      internal::send_through_output_gate(gated(std::make_shared<Exchange<beast::tcp_stream>>(
          back.shard->io(), std::move(url), std::move(request), options, done)));
    }
  }
  Response await_resume() {
    if (!result->is_ok()) throw Error(result->status());
    return std::move(result->value());
  }
};

}  // namespace

Task<Response> fetch(std::string url, Request request, FetchOptions options) {
  if (!internal::Shard::current()) {
    throw Error(Code::kInternal, "dobj::fetch must be awaited on a dobj shard thread");
  }
  auto parsed = parse_url(url);
  if (!parsed) throw Error(parsed.status());
  FetchAwaitable awaitable{std::move(*parsed), std::move(request), options,
                           std::nullopt};  // named: GCC 12
  co_return co_await awaitable;
}

}  // namespace dobj
