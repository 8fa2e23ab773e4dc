// AdminClient: the CLI's blocking HTTP/1.1 client for a server's admin plane.
//
// One keep-alive connection, opened on first use. Bodies of any size stream
// in and out in 1 MiB pieces, reporting progress, so export and import of a
// large object do not sit silent; with Files they come from and go to files,
// so the client's memory does not grow with them.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <utility>

#include "dobj/status.h"

namespace dobj::cli {

struct AdminResponse {
  int status = 0;
  std::string content_type;
  std::string body;          // empty when it went to Files::receive
  uint64_t body_bytes = 0;   // received, in body or in the file
};

// Bodies kept in files instead of memory, moved in pieces.
struct Files {
  std::string send;     // the request's body is this file's bytes
  std::string receive;  // a 2xx answer's body is written to this file
  static Files from(std::string path) { return Files{std::move(path), {}}; }
  static Files to(std::string path) { return Files{{}, std::move(path)}; }
};

// Bytes done and total (total 0 when unknown).
using Progress = std::function<void(uint64_t done, uint64_t total)>;

class AdminClient {
 public:
  // server: "http://host[:port]", "https://host[:port]" (TLS, the
  // certificate checked against this machine's CA store or $SSL_CERT_FILE)
  // or "host:port".
  AdminClient(std::string server, std::string token);
  ~AdminClient();

  Result<AdminResponse> request(const std::string& method, const std::string& target,
                                const std::string& body = "",
                                const std::string& content_type = "application/json",
                                const Progress& progress = nullptr, const Files& files = {});

 private:
  struct Conn;
  Status connect();
  std::string host_;
  std::string port_;
  std::string token_;
  bool tls_ = false;
  std::unique_ptr<Conn> conn_;
};

}  // namespace dobj::cli
