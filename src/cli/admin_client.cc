#include "cli/admin_client.h"

#include <boost/asio/connect.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http.hpp>

namespace dobj::cli {

namespace asio = boost::asio;
namespace http = boost::beast::http;
using tcp = asio::ip::tcp;

namespace {
constexpr size_t kPiece = 1 << 20;
}

struct AdminClient::Conn {
  asio::io_context io;
  tcp::socket socket{io};
  boost::beast::flat_buffer buffer;
};

AdminClient::AdminClient(std::string server, std::string token) : token_(std::move(token)) {
  std::string s = std::move(server);
  if (s.rfind("http://", 0) == 0) s = s.substr(7);
  while (!s.empty() && s.back() == '/') s.pop_back();
  size_t colon = s.rfind(':');
  if (colon == std::string::npos) {
    host_ = s;
    port_ = "80";
  } else {
    host_ = s.substr(0, colon);
    port_ = s.substr(colon + 1);
  }
}

AdminClient::~AdminClient() = default;

Status AdminClient::connect() {
  conn_ = std::make_unique<Conn>();
  boost::system::error_code ec;
  tcp::resolver resolver(conn_->io);
  auto endpoints = resolver.resolve(host_, port_, ec);
  if (!ec) asio::connect(conn_->socket, endpoints, ec);
  if (ec) {
    conn_.reset();
    return Status(Code::kUnavailable,
                  "cannot reach the server at " + host_ + ":" + port_ + ": " + ec.message());
  }
  return Status::ok();
}

Result<AdminResponse> AdminClient::request(const std::string& method, const std::string& target,
                                           const std::string& body,
                                           const std::string& content_type,
                                           const Progress& progress) {
  for (int attempt = 0; attempt < 2; ++attempt) {
    bool reused = conn_ != nullptr;
    if (!conn_) {
      if (Status st = connect(); !st) return st;
    }
    boost::system::error_code ec;
    http::request<http::empty_body> req(http::string_to_verb(method), target, 11);
    req.set(http::field::host, host_ + ":" + port_);
    req.set(http::field::authorization, "Bearer " + token_);
    req.set(http::field::user_agent, "dobj-cli");
    if (!body.empty() || method == "POST" || method == "PUT") {
      req.set(http::field::content_type, content_type);
      req.content_length(body.size());
    }
    http::request_serializer<http::empty_body> head(req);
    http::write_header(conn_->socket, head, ec);
    // The body goes out in pieces, with progress for the large ones.
    for (size_t sent = 0; !ec && sent < body.size();) {
      size_t n = std::min(kPiece, body.size() - sent);
      asio::write(conn_->socket, asio::buffer(body.data() + sent, n), ec);
      sent += n;
      if (progress && !ec) progress(sent, body.size());
    }
    http::response_parser<http::string_body> parser;
    parser.body_limit(boost::none);
    if (!ec) http::read_header(conn_->socket, conn_->buffer, parser, ec);
    uint64_t total = parser.content_length().value_or(0);
    while (!ec && !parser.is_done()) {
      http::read_some(conn_->socket, conn_->buffer, parser, ec);
      if (progress && !ec && total > kPiece) progress(parser.get().body().size(), total);
    }
    if (ec) {
      conn_.reset();
      // A kept-alive connection the server closed meanwhile: once more, fresh.
      if (reused && attempt == 0) continue;
      return Status(Code::kUnavailable, "request to the server failed: " + ec.message());
    }
    auto res = parser.release();
    AdminResponse out;
    out.status = static_cast<int>(res.result_int());
    out.content_type = std::string(res[http::field::content_type]);
    out.body = std::move(res.body());
    if (!res.keep_alive()) conn_.reset();
    return out;
  }
  return Status(Code::kUnavailable, "request to the server failed");
}

}  // namespace dobj::cli
