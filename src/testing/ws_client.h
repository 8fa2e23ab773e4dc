// A minimal blocking WebSocket client over loopback, for the test kit
// (dobj/testing.h) and the project's tests.
//
// Connects with an upgrade request, sends masked frames (or raw bytes, to test
// broken input), and reads messages and close frames with a timeout, so a
// test never hangs. Uses the runtime's own frame reader in client mode.
#pragma once

#include <chrono>
#include <optional>
#include <string>
#include <vector>

#include "base/websocket_frame.h"
#include "testing/http_client.h"

namespace dobj::test {

class WsClient {
 public:
  // Connects to ws://127.0.0.1:port<path>; connected() tells whether the
  // server answered 101 (else upgrade_response() has its answer).
  WsClient(int port, const std::string& path,
           std::chrono::milliseconds timeout = std::chrono::seconds(10));
  ~WsClient();
  WsClient(const WsClient&) = delete;
  WsClient& operator=(const WsClient&) = delete;

  bool connected() const { return fd_ >= 0; }
  const HttpResponse& upgrade_response() const { return upgrade_; }

  bool send_text(const std::string& text) { return send_frame(internal::ws::kText, text); }
  bool send_binary(const std::string& data) { return send_frame(internal::ws::kBinary, data); }
  bool send_frame(uint8_t opcode, const std::string& payload, bool fin = true);
  bool send_close(int code, const std::string& reason = "");
  bool send_raw(const std::string& bytes);

  // The next event from the server (kMessage, kPing, kPong, kClose), or
  // kNeedMore when nothing came within the timeout or the connection ended.
  internal::ws::Event next(std::chrono::milliseconds timeout);
  internal::ws::Event next() { return next(timeout_); }
  // The next data message's payload, or nullopt.
  std::optional<std::string> next_message(std::chrono::milliseconds timeout);
  std::optional<std::string> next_message() { return next_message(timeout_); }
  // Reads until the server's close frame; its code (0: none came) and reason.
  std::pair<int, std::string> await_close(std::chrono::milliseconds timeout);
  std::pair<int, std::string> await_close() { return await_close(timeout_); }
  // True once the server closed the TCP connection.
  bool await_eof();
  // Closes the TCP connection without a close frame.
  void drop();
  // Hands the open connection over (for a client of one's own): its
  // descriptor, and the bytes read past the 101 into *buffered.
  int release(std::string* buffered);

 private:
  std::chrono::milliseconds timeout_;
  HttpResponse upgrade_;
  int fd_ = -1;
  std::string buf_;
  size_t pos_ = 0;
  internal::ws::FrameReader reader_{/*expect_masked=*/false, 64 * 1024 * 1024};
};

}  // namespace dobj::test
