// A minimal blocking HTTP/1.1 client over a loopback TCP socket, for the
// test kit (dobj/testing.h) and the project's tests.
//
// Keeps one connection open (keep-alive), parses Content-Length framed
// responses (what the server sends), and can send raw bytes to test malformed
// input. Every read has a timeout, so a test never hangs.
#pragma once

#include <chrono>
#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace dobj::test {

struct HttpResponse {
  int status = 0;  // 0: no response (connection closed or timed out)
  std::vector<std::pair<std::string, std::string>> headers;
  std::string body;
  std::optional<std::string> header(const std::string& name) const;
};

class HttpClient {
 public:
  explicit HttpClient(int port, std::chrono::milliseconds timeout = std::chrono::seconds(10));
  ~HttpClient();
  HttpClient(const HttpClient&) = delete;
  HttpClient& operator=(const HttpClient&) = delete;

  HttpResponse request(const std::string& method, const std::string& target,
                       const std::string& body = "",
                       const std::vector<std::pair<std::string, std::string>>& headers = {});
  // Sends bytes as they are.
  bool send_raw(const std::string& bytes);
  // Reads one response from the connection.
  HttpResponse read_response();
  // True once the server closed the connection (reads EOF within the timeout).
  bool closed_by_server();
  // Hands the connection over (after an upgrade): its descriptor, and the
  // bytes read past the last response into *buffered. The client is left
  // disconnected.
  int take_connection(std::string* buffered);

 private:
  bool ensure_connected();
  bool fill();  // reads more bytes into buf_; false on EOF/timeout/error
  int port_;
  std::chrono::milliseconds timeout_;
  int fd_ = -1;
  std::string buf_;
};

// Writes all of bytes to a blocking socket; false if the connection failed.
bool send_all(int fd, const std::string& bytes);

// One request on a fresh connection.
HttpResponse http(int port, const std::string& method, const std::string& target,
                  const std::string& body = "");

}  // namespace dobj::test
