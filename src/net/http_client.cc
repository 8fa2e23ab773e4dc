// dobj::fetch: Beast client on the caller's shard.
#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>

#include "dobj/fetch.h"
#include "runtime/object_host.h"

namespace dobj {
namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = asio::ip::tcp;

struct Url {
  std::string host;
  std::string port;
  std::string target;
};

Result<Url> parse_url(std::string_view url) {
  constexpr std::string_view kScheme = "http://";
  if (url.rfind(kScheme, 0) != 0) {
    return Status(Code::kInvalidArgument,
                  "fetch: only http:// URLs are supported, got " + std::string(url));
  }
  std::string_view rest = url.substr(kScheme.size());
  auto slash = rest.find_first_of("/?");
  std::string_view authority = rest.substr(0, slash);
  Url u;
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
                 : "80";
  } else {
    auto colon = authority.rfind(':');
    u.host = std::string(authority.substr(0, colon));
    u.port = colon == std::string_view::npos ? "80" : std::string(authority.substr(colon + 1));
  }
  if (u.port.empty() || u.port.find_first_not_of("0123456789") != std::string::npos) {
    return Status(Code::kInvalidArgument, "fetch: bad port in " + std::string(url));
  }
  return u;
}

// One exchange. Shared: its handlers keep it alive until the exchange ends.
class Exchange : public std::enable_shared_from_this<Exchange> {
 public:
  using Done = std::function<void(Result<Response>)>;
  Exchange(asio::io_context& io, Url url, Request request, FetchOptions options, Done done)
      : resolver_(io),
        stream_(io),
        url_(std::move(url)),
        options_(options),
        done_(std::move(done)) {
    req_.method_string(request.method);
    req_.target(url_.target);
    req_.version(11);
    for (auto& [k, v] : request.headers) req_.set(k, v);
    req_.set(http::field::host, url_.host + (url_.port == "80" ? "" : ":" + url_.port));
    if (req_[http::field::user_agent].empty()) req_.set(http::field::user_agent, "dobj");
    req_.body() = std::move(request.body);
    req_.keep_alive(false);
    req_.prepare_payload();
    parser_.body_limit(options_.max_response_bytes);
  }

  void start() {
    stream_.expires_after(options_.timeout);
    resolver_.async_resolve(
        url_.host, url_.port,
        [self = shared_from_this()](beast::error_code ec, tcp::resolver::results_type r) {
          if (ec) return self->fail("resolve", ec);
          self->stream_.async_connect(r, [self](beast::error_code ec, const tcp::endpoint&) {
            if (ec) return self->fail("connect", ec);
            self->write();
          });
        });
  }

 private:
  void write() {
    http::async_write(stream_, req_, [self = shared_from_this()](beast::error_code ec, size_t) {
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
    beast::error_code ignored;
    stream_.socket().shutdown(tcp::socket::shutdown_both, ignored);
    done_(std::move(r));
  }
  void fail(const char* step, beast::error_code ec) {
    std::string what = ec == beast::error::timeout
                           ? "timed out after " + std::to_string(options_.timeout.count()) + " ms"
                           : ec.message();
    done_(Status(Code::kUnavailable, std::string("fetch http://") + url_.host + ":" + url_.port +
                                         url_.target + ": " + step + " failed: " + what));
  }

  tcp::resolver resolver_;
  beast::tcp_stream stream_;
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
    auto exchange = std::make_shared<Exchange>(back.shard->io(), std::move(url), std::move(request),
                                               options, [back, h, this](Result<Response> r) {
                                                 if (!back.shard->alive(back))
                                                   return;  // the caller was reset: h is gone
                                                 result.emplace(std::move(r));
                                                 back.shard->resume(back, h);
                                               });
    internal::send_through_output_gate([exchange] { exchange->start(); });
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
