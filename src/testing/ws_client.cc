#include "testing/ws_client.h"

#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <utility>

namespace dobj::test {

WsClient::WsClient(int port, const std::string& path, std::chrono::milliseconds timeout)
    : timeout_(timeout) {
  HttpClient http(port, timeout);
  upgrade_ = http.request("GET", path, "",
                          {{"Upgrade", "websocket"},
                           {"Connection", "Upgrade"},
                           {"Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ=="},
                           {"Sec-WebSocket-Version", "13"}});
  if (upgrade_.status == 101) fd_ = http.take_connection(&buf_);
}

WsClient::~WsClient() { drop(); }

void WsClient::drop() {
  if (fd_ >= 0) ::close(fd_);
  fd_ = -1;
}

int WsClient::release(std::string* buffered) {
  *buffered = buf_.substr(pos_);
  buf_.clear();
  pos_ = 0;
  return std::exchange(fd_, -1);
}

bool WsClient::send_raw(const std::string& bytes) { return send_all(fd_, bytes); }

bool WsClient::send_frame(uint8_t opcode, const std::string& payload, bool fin) {
  static const uint8_t kMask[4] = {0x12, 0x34, 0x56, 0x78};
  uint8_t header[internal::ws::kMaxHeaderSize];
  size_t h = internal::ws::encode_header(header, opcode, payload.size(), fin, kMask);
  std::string frame(reinterpret_cast<char*>(header), h);
  frame += payload;
  internal::ws::apply_mask(frame.data() + h, payload.size(), kMask);
  return send_raw(frame);
}

bool WsClient::send_close(int code, const std::string& reason) {
  return send_frame(internal::ws::kClose, internal::ws::close_payload(code, reason));
}

internal::ws::Event WsClient::next(std::chrono::milliseconds timeout) {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  for (;;) {
    internal::ws::Event e = reader_.next(buf_, pos_);
    if (e.kind != internal::ws::Event::kNeedMore) {
      buf_.erase(0, pos_);
      pos_ = 0;
      return e;
    }
    if (fd_ < 0) return {};
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) return {};
    pollfd p{fd_, POLLIN, 0};
    if (::poll(&p, 1, static_cast<int>(left.count())) <= 0) return {};
    char tmp[65536];
    ssize_t n = ::recv(fd_, tmp, sizeof tmp, 0);
    if (n <= 0) return {};
    buf_.append(tmp, static_cast<size_t>(n));
  }
}

std::optional<std::string> WsClient::next_message(std::chrono::milliseconds timeout) {
  for (;;) {
    internal::ws::Event e = next(timeout);
    if (e.kind == internal::ws::Event::kMessage) return e.payload;
    if (e.kind != internal::ws::Event::kPing && e.kind != internal::ws::Event::kPong) {
      return std::nullopt;
    }
  }
}

std::pair<int, std::string> WsClient::await_close(std::chrono::milliseconds timeout) {
  for (;;) {
    internal::ws::Event e = next(timeout);
    if (e.kind == internal::ws::Event::kClose) return {e.close_code, e.payload};
    if (e.kind == internal::ws::Event::kNeedMore || e.kind == internal::ws::Event::kError) {
      return {0, ""};
    }
  }
}

bool WsClient::await_eof() {
  auto deadline = std::chrono::steady_clock::now() + timeout_;
  while (std::chrono::steady_clock::now() < deadline) {
    pollfd p{fd_, POLLIN, 0};
    if (::poll(&p, 1, 100) <= 0) continue;
    char tmp[4096];
    ssize_t n = ::recv(fd_, tmp, sizeof tmp, 0);
    if (n == 0 || (n < 0 && errno != EINTR && errno != EAGAIN)) return true;
  }
  return false;
}

}  // namespace dobj::test
