#include "cli/admin_client.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <boost/asio/connect.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http.hpp>
#include <cerrno>
#include <cstring>
#include <vector>

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

namespace {

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

}  // namespace

Result<AdminResponse> AdminClient::request(const std::string& method, const std::string& target,
                                           const std::string& body, const std::string& content_type,
                                           const Progress& progress, const Files& files) {
  std::vector<char> piece(kPiece);
  for (int attempt = 0; attempt < 2; ++attempt) {
    bool reused = conn_ != nullptr;
    if (!conn_) {
      if (Status st = connect(); !st) return st;
    }
    Fd in;
    uint64_t size = body.size();
    if (!files.send.empty()) {
      in.fd = ::open(files.send.c_str(), O_RDONLY | O_CLOEXEC);
      struct stat st;
      if (in.fd < 0 || ::fstat(in.fd, &st) != 0) return file_error("read", files.send);
      size = static_cast<uint64_t>(st.st_size);
    }
    boost::system::error_code ec;
    http::request<http::empty_body> req(http::string_to_verb(method), target, 11);
    req.set(http::field::host, host_ + ":" + port_);
    req.set(http::field::authorization, "Bearer " + token_);
    req.set(http::field::user_agent, "dobj-cli");
    if (size > 0 || method == "POST" || method == "PUT") {
      req.set(http::field::content_type, content_type);
      req.content_length(size);
    }
    http::request_serializer<http::empty_body> head(req);
    http::write_header(conn_->socket, head, ec);
    // The body goes out in pieces, with progress for the large ones.
    for (uint64_t sent = 0; !ec && sent < size;) {
      auto n = static_cast<size_t>(std::min<uint64_t>(kPiece, size - sent));
      const char* from = body.data() + sent;
      if (in.fd >= 0) {
        ssize_t got = ::pread(in.fd, piece.data(), n, static_cast<off_t>(sent));
        if (got < 0 && errno == EINTR) continue;
        if (got <= 0) {
          conn_.reset();  // the server waits for bytes that will not come
          return got < 0 ? file_error("read", files.send)
                         : Status(Code::kInternal, files.send + " got shorter while it was sent");
        }
        n = static_cast<size_t>(got);
        from = piece.data();
      }
      asio::write(conn_->socket, asio::buffer(from, n), ec);
      sent += n;
      if (progress && !ec) progress(sent, size);
    }
    // The answer, a piece at a time: into the body, or the file.
    http::response_parser<http::buffer_body> parser;
    parser.body_limit(boost::none);
    if (!ec) http::read_header(conn_->socket, conn_->buffer, parser, ec);
    AdminResponse out;
    Fd file;
    if (!ec) {
      out.status = static_cast<int>(parser.get().result_int());
      out.content_type = std::string(parser.get()[http::field::content_type]);
      if (!files.receive.empty() && out.status / 100 == 2) {
        file.fd = ::open(files.receive.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
        if (file.fd < 0) {
          conn_.reset();
          return file_error("write", files.receive);
        }
      }
    }
    uint64_t total = parser.content_length().value_or(0);
    while (!ec && !parser.is_done()) {
      parser.get().body().data = piece.data();
      parser.get().body().size = piece.size();
      http::read(conn_->socket, conn_->buffer, parser, ec);
      if (ec == http::error::need_buffer) ec = {};
      if (ec) break;
      size_t n = piece.size() - parser.get().body().size;
      if (file.fd < 0) {
        out.body.append(piece.data(), n);
      } else {
        for (size_t done = 0; done < n;) {
          ssize_t w = ::write(file.fd, piece.data() + done, n - done);
          if (w < 0 && errno == EINTR) continue;
          if (w < 0) {
            conn_.reset();
            return file_error("write", files.receive);
          }
          done += static_cast<size_t>(w);
        }
      }
      out.body_bytes += n;
      if (progress && total > kPiece) progress(out.body_bytes, total);
    }
    if (ec) {
      conn_.reset();
      // A kept-alive connection the server closed meanwhile: once more, fresh.
      if (reused && attempt == 0) continue;
      return Status(Code::kUnavailable, "request to the server failed: " + ec.message());
    }
    if (file.fd >= 0 && ::fsync(file.fd) != 0) return file_error("write", files.receive);
    if (!parser.get().keep_alive()) conn_.reset();
    return out;
  }
  return Status(Code::kUnavailable, "request to the server failed");
}

}  // namespace dobj::cli
