#include "support/tls_listener.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstdlib>

namespace dobj::test {

TlsListener::TlsListener(const std::string& dir, std::function<void(SSL*)> handler)
    : cert_(dir + "/cert.pem"), key_(dir + "/key.pem"), handler_(std::move(handler)) {
  std::string cmd = "openssl req -x509 -newkey rsa:2048 -nodes -days 1 -subj /CN=localhost "
                    "-addext subjectAltName=DNS:localhost -keyout " + key_ + " -out " + cert_ + " 2>/dev/null";
  made_ = std::system(cmd.c_str()) == 0;
  ctx_ = SSL_CTX_new(TLS_server_method());
  made_ = made_ && SSL_CTX_use_certificate_file(ctx_, cert_.c_str(), SSL_FILETYPE_PEM) == 1 &&
          SSL_CTX_use_PrivateKey_file(ctx_, key_.c_str(), SSL_FILETYPE_PEM) == 1;
  fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof a;
  made_ = made_ && ::bind(fd_, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0 &&
          ::getsockname(fd_, reinterpret_cast<sockaddr*>(&a), &len) == 0 && ::listen(fd_, 8) == 0;
  port_ = ntohs(a.sin_port);
  acceptor_ = std::thread([this] {
    for (;;) {
      int c = ::accept(fd_, nullptr, nullptr);
      if (c < 0) return;
      std::lock_guard lock(mu_);
      connections_.emplace_back([this, c] {
        SSL* ssl = SSL_new(ctx_);
        SSL_set_fd(ssl, c);
        if (SSL_accept(ssl) == 1) handler_(ssl);
        SSL_free(ssl);
        ::close(c);
      });
    }
  });
}

TlsListener::~TlsListener() {
  ::shutdown(fd_, SHUT_RDWR);
  ::close(fd_);
  acceptor_.join();
  for (auto& t : connections_) t.join();
  SSL_CTX_free(ctx_);
}

std::function<void(SSL*)> TlsListener::relay_to(int port) {
  return [port](SSL* ssl) {
    int up = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    a.sin_port = htons(static_cast<uint16_t>(port));
    if (::connect(up, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) {
      ::close(up);
      return;
    }
    const int down = SSL_get_fd(ssl);
    char buf[1 << 16];
    for (;;) {
      // What OpenSSL already holds decrypted is read before waiting.
      if (SSL_pending(ssl) == 0) {
        pollfd p[2] = {{down, POLLIN, 0}, {up, POLLIN, 0}};
        if (::poll(p, 2, 30'000) <= 0) break;
        if (p[1].revents != 0) {
          ssize_t n = ::read(up, buf, sizeof buf);
          if (n <= 0 || SSL_write(ssl, buf, static_cast<int>(n)) <= 0) break;
          continue;
        }
      }
      int n = SSL_read(ssl, buf, sizeof buf);
      if (n <= 0) break;
      for (int done = 0; done < n;) {
        ssize_t w = ::write(up, buf + done, static_cast<size_t>(n - done));
        if (w <= 0) {
          n = -1;
          break;
        }
        done += static_cast<int>(w);
      }
      if (n < 0) break;
    }
    ::close(up);
  };
}

}  // namespace dobj::test
