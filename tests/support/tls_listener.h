// An HTTPS endpoint for tests: TLS on a loopback port with a self-signed
// certificate for "localhost" (made with the openssl command), each accepted
// connection handed, after its handshake, to a handler on a thread of its own.
#pragma once

#include <openssl/ssl.h>

#include <atomic>
#include <functional>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

namespace dobj::test {

class TlsListener {
 public:
  // The handler reads and writes through ssl; the connection is closed after.
  TlsListener(const std::string& dir, std::function<void(SSL* ssl)> handler);
  ~TlsListener();
  TlsListener(const TlsListener&) = delete;
  TlsListener& operator=(const TlsListener&) = delete;

  bool made() const { return made_; }
  int port() const { return port_; }
  const std::string& cert() const { return cert_; }  // PEM, to trust it

  // A handler that relays each connection to a plain TCP port on loopback
  // (a TLS-terminating proxy in front of a server).
  static std::function<void(SSL*)> relay_to(int port);

 private:
  std::string cert_, key_;
  bool made_ = false;
  SSL_CTX* ctx_ = nullptr;
  int fd_ = -1;
  int port_ = 0;
  std::function<void(SSL*)> handler_;
  std::thread acceptor_;
  std::mutex mu_;
  std::vector<std::thread> connections_;
};

}  // namespace dobj::test
