#include "testing/http_client.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <utility>

namespace dobj::test {

std::optional<std::string> HttpResponse::header(const std::string& name) const {
  for (const auto& [k, v] : headers) {
    if (strcasecmp(k.c_str(), name.c_str()) == 0) return v;
  }
  return std::nullopt;
}

HttpClient::HttpClient(int port, std::chrono::milliseconds timeout)
    : port_(port), timeout_(timeout) {}

HttpClient::~HttpClient() {
  if (fd_ >= 0) ::close(fd_);
}

bool HttpClient::ensure_connected() {
  if (fd_ >= 0) return true;
  fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(port_));
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  // The connect waits at most the timeout too (a port whose packets a test
  // drops would otherwise hold it for the kernel's two minutes of retries);
  // sends after it block as before.
  timeval limit{static_cast<time_t>(timeout_.count() / 1000),
                static_cast<suseconds_t>(timeout_.count() % 1000 * 1000)};
  setsockopt(fd_, SOL_SOCKET, SO_SNDTIMEO, &limit, sizeof limit);
  if (::connect(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
    ::close(fd_);
    fd_ = -1;
    return false;
  }
  timeval none{};
  setsockopt(fd_, SOL_SOCKET, SO_SNDTIMEO, &none, sizeof none);
  int one = 1;
  setsockopt(fd_, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  buf_.clear();
  return true;
}

int HttpClient::take_connection(std::string* buffered) {
  *buffered = std::move(buf_);
  buf_.clear();
  return std::exchange(fd_, -1);
}

bool send_all(int fd, const std::string& bytes) {
  size_t off = 0;
  while (off < bytes.size()) {
    ssize_t n = ::send(fd, bytes.data() + off, bytes.size() - off, MSG_NOSIGNAL);
    if (n < 0) {
      if (errno == EINTR) continue;
      return false;
    }
    off += static_cast<size_t>(n);
  }
  return true;
}

bool HttpClient::send_raw(const std::string& bytes) {
  return ensure_connected() && send_all(fd_, bytes);
}

bool HttpClient::fill() {
  pollfd p{fd_, POLLIN, 0};
  int rc = ::poll(&p, 1, static_cast<int>(timeout_.count()));
  if (rc <= 0) return false;
  char tmp[65536];
  ssize_t n = ::recv(fd_, tmp, sizeof tmp, 0);
  if (n <= 0) return false;
  buf_.append(tmp, static_cast<size_t>(n));
  return true;
}

HttpResponse HttpClient::read_response() {
  HttpResponse r;
  size_t header_end;
  while ((header_end = buf_.find("\r\n\r\n")) == std::string::npos) {
    if (!fill()) return r;
  }
  std::string head = buf_.substr(0, header_end);
  buf_.erase(0, header_end + 4);
  size_t line_end = head.find("\r\n");
  std::string status_line = head.substr(0, line_end);
  auto sp = status_line.find(' ');
  r.status = std::stoi(status_line.substr(sp + 1, 3));
  size_t pos = line_end == std::string::npos ? head.size() : line_end + 2;
  size_t content_length = 0;
  while (pos < head.size()) {
    size_t e = head.find("\r\n", pos);
    if (e == std::string::npos) e = head.size();
    std::string line = head.substr(pos, e - pos);
    auto colon = line.find(':');
    if (colon != std::string::npos) {
      std::string k = line.substr(0, colon);
      std::string v = line.substr(colon + 1);
      while (!v.empty() && v.front() == ' ') v.erase(0, 1);
      if (strcasecmp(k.c_str(), "content-length") == 0) content_length = std::stoul(v);
      r.headers.emplace_back(k, v);
    }
    pos = e + 2;
  }
  if (r.status == 100) return read_response();
  while (buf_.size() < content_length) {
    if (!fill()) {
      r.status = 0;
      return r;
    }
  }
  r.body = buf_.substr(0, content_length);
  buf_.erase(0, content_length);
  auto conn = r.header("connection");
  if (conn && strcasecmp(conn->c_str(), "close") == 0) {
    ::close(fd_);
    fd_ = -1;
  }
  return r;
}

HttpResponse HttpClient::request(const std::string& method, const std::string& target,
                                 const std::string& body,
                                 const std::vector<std::pair<std::string, std::string>>& headers) {
  for (int attempt = 0; attempt < 2; ++attempt) {
    if (!ensure_connected()) return {};
    std::string req = method + " " + target + " HTTP/1.1\r\nHost: 127.0.0.1\r\n";
    for (const auto& [k, v] : headers) req += k + ": " + v + "\r\n";
    req += "Content-Length: " + std::to_string(body.size()) + "\r\n\r\n" + body;
    if (send_raw(req)) {
      HttpResponse r = read_response();
      if (r.status != 0 || attempt == 1) return r;
    }
    // The server may have closed an idle keep-alive connection: reconnect once.
    ::close(fd_);
    fd_ = -1;
  }
  return {};
}

bool HttpClient::closed_by_server() {
  if (fd_ < 0) return true;
  for (;;) {
    pollfd p{fd_, POLLIN, 0};
    if (::poll(&p, 1, static_cast<int>(timeout_.count())) <= 0) return false;
    char tmp[4096];
    ssize_t n = ::recv(fd_, tmp, sizeof tmp, 0);
    if (n <= 0) return true;
    buf_.append(tmp, static_cast<size_t>(n));
  }
}

HttpResponse http(int port, const std::string& method, const std::string& target,
                  const std::string& body) {
  HttpClient c(port);
  return c.request(method, target, body);
}

}  // namespace dobj::test
