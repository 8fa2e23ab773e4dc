#include "cli/admin_client.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <boost/asio/connect.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/beast/core/error.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl.hpp>
#include <cerrno>
#include <cstring>
#include <vector>

#include "net/tls_client.h"

namespace dobj::cli {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace ssl = asio::ssl;
namespace http = boost::beast::http;
using tcp = asio::ip::tcp;

namespace {
constexpr size_t kPiece = 1 << 20;

// A file descriptor closed when it goes.
struct Fd {
  int fd = -1;
  ~Fd() {
    if (fd >= 0) ::close(fd);
  }
};

Status file_error(const std::string& what, const std::string& path) {
  return Status(Code::kInternal, "cannot " + what + " " + path + ": " + std::strerror(errno));
}

struct Exchange {
  const std::string& method;
  const std::string& target;
  const std::string& body;
  const std::string& content_type;
  const Progress& progress;
  const Files& files;
  std::string host;
  std::string token;
};

// One request and its answer over a connected stream (plain or TLS). A
// failure of the connection sets *broken (the caller may try again on a
// fresh one); *kept: the server keeps the connection open.
template <class Stream>
Result<AdminResponse> exchange(Stream& stream, beast::flat_buffer& buffer, const Exchange& x, bool* broken,
                               bool* kept) {
  std::vector<char> piece(kPiece);
  Fd in;
  uint64_t size = x.body.size();
  if (!x.files.send.empty()) {
    in.fd = ::open(x.files.send.c_str(), O_RDONLY | O_CLOEXEC);
    struct stat st;
    if (in.fd < 0 || ::fstat(in.fd, &st) != 0) return file_error("read", x.files.send);
    size = static_cast<uint64_t>(st.st_size);
  }
  boost::system::error_code ec;
  http::request<http::empty_body> req(http::string_to_verb(x.method), x.target, 11);
  req.set(http::field::host, x.host);
  req.set(http::field::authorization, "Bearer " + x.token);
  req.set(http::field::user_agent, "dobj-cli");
  if (size > 0 || x.method == "POST" || x.method == "PUT") {
    req.set(http::field::content_type, x.content_type);
    req.content_length(size);
  }
  http::request_serializer<http::empty_body> head(req);
  http::write_header(stream, head, ec);
  // The body goes out in pieces, with progress for the large ones.
  for (uint64_t sent = 0; !ec && sent < size;) {
    auto n = static_cast<size_t>(std::min<uint64_t>(kPiece, size - sent));
    const char* from = x.body.data() + sent;
    if (in.fd >= 0) {
      ssize_t got = ::pread(in.fd, piece.data(), n, static_cast<off_t>(sent));
      if (got < 0 && errno == EINTR) continue;
      if (got <= 0) {
        return got < 0 ? file_error("read", x.files.send)
                       : Status(Code::kInternal, x.files.send + " got shorter while it was sent");
      }
      n = static_cast<size_t>(got);
      from = piece.data();
    }
    asio::write(stream, asio::buffer(from, n), ec);
    sent += n;
    if (x.progress && !ec) x.progress(sent, size);
  }
  // The answer, a piece at a time: into the body, or the file.
  http::response_parser<http::buffer_body> parser;
  parser.body_limit(boost::none);
  if (!ec) http::read_header(stream, buffer, parser, ec);
  AdminResponse out;
  Fd file;
  if (!ec) {
    out.status = static_cast<int>(parser.get().result_int());
    out.content_type = std::string(parser.get()[http::field::content_type]);
    if (!x.files.receive.empty() && out.status / 100 == 2) {
      file.fd = ::open(x.files.receive.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
      if (file.fd < 0) return file_error("write", x.files.receive);
    }
  }
  uint64_t total = parser.content_length().value_or(0);
  while (!ec && !parser.is_done()) {
    parser.get().body().data = piece.data();
    parser.get().body().size = piece.size();
    http::read(stream, buffer, parser, ec);
    if (ec == http::error::need_buffer) ec = {};
    if (ec) break;
    size_t n = piece.size() - parser.get().body().size;
    if (file.fd < 0) {
      out.body.append(piece.data(), n);
    } else {
      for (size_t done = 0; done < n;) {
        ssize_t w = ::write(file.fd, piece.data() + done, n - done);
        if (w < 0 && errno == EINTR) continue;
        if (w < 0) return file_error("write", x.files.receive);
        done += static_cast<size_t>(w);
      }
    }
    out.body_bytes += n;
    if (x.progress && total > kPiece) x.progress(out.body_bytes, total);
  }
  if (ec) {
    *broken = true;
    return Status(Code::kUnavailable, "request to the server failed: " + ec.message());
  }
  if (file.fd >= 0 && ::fsync(file.fd) != 0) return file_error("write", x.files.receive);
  *kept = parser.get().keep_alive();
  return out;
}

}  // namespace

struct AdminClient::Conn {
  asio::io_context io;
  std::unique_ptr<tcp::socket> plain;
  std::unique_ptr<ssl::context> tls_context;
  std::unique_ptr<beast::ssl_stream<tcp::socket>> tls;
  beast::flat_buffer buffer;
};

AdminClient::AdminClient(std::string server, std::string token) : token_(std::move(token)) {
  std::string s = std::move(server);
  std::string port = "80";
  if (s.rfind("https://", 0) == 0) {
    tls_ = true;
    port = "443";
    s = s.substr(8);
  } else if (s.rfind("http://", 0) == 0) {
    s = s.substr(7);
  }
  while (!s.empty() && s.back() == '/') s.pop_back();
  size_t colon = s.rfind(':');
  if (colon == std::string::npos || s.find(']', colon) != std::string::npos) {
    host_ = s;
    port_ = port;
  } else {
    host_ = s.substr(0, colon);
    port_ = s.substr(colon + 1);
  }
}

AdminClient::~AdminClient() = default;

Status AdminClient::connect() {
  auto c = std::make_unique<Conn>();
  const std::string where = host_ + ":" + port_;
  boost::system::error_code ec;
  tcp::resolver resolver(c->io);
  auto endpoints = resolver.resolve(host_, port_, ec);
  tcp::socket socket(c->io);
  if (!ec) asio::connect(socket, endpoints, ec);
  if (ec) return Status(Code::kUnavailable, "cannot reach the server at " + where + ": " + ec.message());
  if (!tls_) {
    c->plain = std::make_unique<tcp::socket>(std::move(socket));
    conn_ = std::move(c);
    return Status::ok();
  }
  // https: the server's certificate must be trusted by this machine's CA
  // store (or the PEM file $SSL_CERT_FILE names) and carry the host's name.
  c->tls_context = std::make_unique<ssl::context>(ssl::context::tls_client);
  if (Status st = internal::set_up_client_tls(*c->tls_context, ""); !st) return st;
  c->tls = std::make_unique<beast::ssl_stream<tcp::socket>>(std::move(socket), *c->tls_context);
  if (internal::expect_server_name(*c->tls, host_)) {
    return Status(Code::kUnavailable, "cannot set up TLS for " + where);
  }
  c->tls->handshake(ssl::stream_base::client, ec);
  if (ec) {
    std::string why = ec.message();
    if (std::string refused = internal::certificate_refusal(c->tls->native_handle()); !refused.empty()) {
      why = "its certificate was refused: " + refused +
            " (checked against this machine's CA store, or $SSL_CERT_FILE)";
    }
    return Status(Code::kUnavailable, "TLS handshake with " + where + " failed: " + why);
  }
  conn_ = std::move(c);
  return Status::ok();
}

Result<AdminResponse> AdminClient::request(const std::string& method, const std::string& target,
                                           const std::string& body, const std::string& content_type,
                                           const Progress& progress, const Files& files) {
  const Exchange x{method, target, body, content_type, progress, files, host_ + ":" + port_, token_};
  for (int attempt = 0; attempt < 2; ++attempt) {
    bool reused = conn_ != nullptr;
    if (!conn_) {
      if (Status st = connect(); !st) return st;
    }
    bool broken = false, kept = false;
    auto r = conn_->tls ? exchange(*conn_->tls, conn_->buffer, x, &broken, &kept)
                        : exchange(*conn_->plain, conn_->buffer, x, &broken, &kept);
    if (!r || !kept) conn_.reset();
    // A kept-alive connection the server closed meanwhile: once more, fresh.
    if (!r && broken && reused && attempt == 0) continue;
    return r;
  }
  return Status(Code::kUnavailable, "request to the server failed");
}

}  // namespace dobj::cli
