// SocketHub, the socket I/O: adopting an upgraded connection, reading and
// parsing frames, queued sends written with sendmsg, and the close frame.
#include <openssl/evp.h>
#include <openssl/sha.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include <cerrno>

#include "base/log.h"
#include "runtime/object_host.h"
#include "runtime/shard.h"
#include "runtime/socket_io.h"

namespace dobj::internal {

std::string websocket_accept_key(std::string_view client_key) {
  std::string input(client_key);
  input += "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";
  unsigned char digest[SHA_DIGEST_LENGTH];
  SHA1(reinterpret_cast<const unsigned char*>(input.data()), input.size(), digest);
  unsigned char out[32];
  int n = EVP_EncodeBlock(out, digest, SHA_DIGEST_LENGTH);
  return std::string(reinterpret_cast<char*>(out), static_cast<size_t>(n));
}

std::string upgrade_answer(std::string_view client_key, const Headers& extra) {
  std::string hs =
      "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
      "Sec-WebSocket-Accept: " +
      websocket_accept_key(client_key) + "\r\n";
  for (auto& [k, v] : extra) hs += k + ": " + v + "\r\n";
  hs += "\r\n";
  return hs;
}

boost::system::error_code take_connection(tcp::socket& socket, int fd) {
  sockaddr_storage addr{};
  socklen_t len = sizeof addr;
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len);
  boost::system::error_code ec;
  socket.assign(addr.ss_family == AF_INET6 ? tcp::v6() : tcp::v4(), fd, ec);
  if (ec) ::close(fd);
  return ec;
}

void refuse_connection(int fd) {
  static const char kGone[] = "HTTP/1.1 410 Gone\r\nContent-Length: 0\r\nConnection: close\r\n\r\n";
  (void)!::send(fd, kGone, sizeof kGone - 1, MSG_NOSIGNAL | MSG_DONTWAIT);
  ::close(fd);
}

void SocketHub::adopt(uint64_t socket_id, int fd, const std::string& key, std::string already_read,
                      Headers extra) {
  auto it = by_id_.find(socket_id);
  std::shared_ptr<SocketConn> c = it == by_id_.end() ? nullptr : it->second;
  if (!c || c->phase == SocketConn::Phase::kClosed || c->io || c->key != key) {
    // Expired, closed, or a 101 that does not belong to this request.
    return refuse_connection(fd);
  }
  c->io = std::make_unique<SocketConn::Io>(shard_->io(), &shard_->runtime().connections());
  c->heard_ms = system_now_ms();
  if (auto ec = take_connection(c->io->socket, fd)) {
    c->io.reset();
    finish(*c, ws::kAbnormal, "could not adopt the connection: " + ec.message(), false, false);
    return;
  }
  std::string hs = upgrade_answer(c->key, extra);
  SocketConn::Out o;
  o.payload = std::make_shared<const std::string>(std::move(hs));
  c->out.insert(c->out.begin() + static_cast<ptrdiff_t>(c->out_head), std::move(o));
  c->out_bytes += c->out[c->out_head].payload->size();
  if (c->phase == SocketConn::Phase::kPending) c->phase = SocketConn::Phase::kOpen;
  mark_dirty(*c);
  c->io->partial = std::move(already_read);
  if (!c->io->partial.empty()) {
    on_readable(c);  // frames sent right behind the request
  } else {
    wait_readable(c);
  }
}

void SocketHub::wait_readable(const std::shared_ptr<SocketConn>& c) {
  if (c->reading || !c->io || c->phase == SocketConn::Phase::kClosed) return;
  c->reading = true;
  c->io->socket.async_wait(tcp::socket::wait_read, [this, c](boost::system::error_code ec) {
    c->reading = false;
    if (ec) return;  // closed
    on_readable(c);
  });
}

void SocketHub::on_readable(const std::shared_ptr<SocketConn>& cp) {
  SocketConn& c = *cp;
  auto can_read = [&] {
    return c.phase != SocketConn::Phase::kClosed && !c.io->close_after_flush &&
           c.undelivered < kMaxUndelivered;
  };
  std::string& partial = c.io->partial;
  if (!partial.empty() && can_read()) {
    // Frames that came right behind the upgrade request.
    partial.erase(0, parse(cp, partial));
  }
  bool eof = false;
  for (int reads = 0; reads < kReadsPerWakeup && can_read(); ++reads) {
    scratch_.resize(kReadChunk);
    ssize_t n = ::recv(c.io->socket.native_handle(), scratch_.data(), kReadChunk, MSG_DONTWAIT);
    if (n == 0 || (n < 0 && errno != EINTR && errno != EAGAIN && errno != EWOULDBLOCK)) {
      eof = true;
      break;
    }
    if (n < 0) {
      if (errno == EINTR) continue;
      break;  // drained
    }
    size_t got = static_cast<size_t>(n);
    c.heard_ms = system_now_ms();
    c.pinged = false;
    if (partial.empty()) {
      scratch_.resize(got);
      size_t used = parse(cp, scratch_);
      if (c.phase != SocketConn::Phase::kClosed) partial.assign(scratch_, used, std::string::npos);
    } else {
      partial.append(scratch_.data(), got);
      partial.erase(0, parse(cp, partial));
    }
    if (got < kReadChunk) break;  // drained
  }
  // Hold no buffer between messages.
  if (partial.empty() || c.phase == SocketConn::Phase::kClosed) std::string().swap(partial);
  if (eof && c.phase != SocketConn::Phase::kClosed) {
    finish(c, ws::kAbnormal, "", false, false);
    return;
  }
  if (can_read()) wait_readable(cp);
}

size_t SocketHub::parse(const std::shared_ptr<SocketConn>& cp, std::string& buf) {
  SocketConn& c = *cp;
  size_t pos = 0;
  while (c.phase != SocketConn::Phase::kClosed && !c.io->close_after_flush) {
    ws::Event e = c.reader.next(buf, pos);
    switch (e.kind) {
      case ws::Event::kNeedMore:
        return pos;
      case ws::Event::kMessage: {
        bool binary = e.opcode == ws::kBinary;
        if (!binary) {
          auto it = by_object_.find(ObjectKey{c.ns, c.object});
          if (it != by_object_.end() && it->second.auto_response &&
              e.payload == it->second.auto_response->first) {
            // Answered by the runtime: the object is not woken, nor held up.
            send(c, ws::kText, std::make_shared<const std::string>(it->second.auto_response->second));
            c.auto_response_ms = shard_->now_ms();
            break;
          }
        }
        SocketEvent ev{SocketEvent::kMessage, WebSocket(cp), {}, 0, {}, false};
        ev.message = binary ? WebSocketMessage::binary(std::move(e.payload))
                            : WebSocketMessage::text(std::move(e.payload));
        deliver(c, std::move(ev));
        break;
      }
      case ws::Event::kPing:
        send(c, ws::kPong, std::make_shared<const std::string>(std::move(e.payload)));
        break;
      case ws::Event::kPong:
        break;
      case ws::Event::kClose:
        // Echo the code (RFC 6455 5.5.1) unless we closed first, then close
        // the connection once the echo is written.
        if (!c.close_sent) send_close_frame(c, e.close_code == ws::kNoStatus ? 0 : e.close_code, "");
        c.io->close_after_flush = true;
        report(c, SocketEvent::kClose, e.close_code, std::move(e.payload), true);
        mark_dirty(c);
        break;
      case ws::Event::kError:
        send_close_frame(c, e.close_code, e.payload);
        c.io->close_after_flush = true;
        report(c, SocketEvent::kError, e.close_code, std::move(e.payload), false);
        mark_dirty(c);
        break;
    }
  }
  return pos;
}

void SocketHub::send(SocketConn& c, uint8_t opcode, std::shared_ptr<const std::string> payload) {
  if (c.phase == SocketConn::Phase::kClosed || c.close_sent) return;
  SocketConn::Out o;
  o.header_size = static_cast<uint8_t>(ws::encode_header(o.header, opcode, payload->size()));
  size_t size = o.header_size + payload->size();
  if (c.out_bytes > 0 && c.out_bytes + size > send_queue_limit_) {
    // The client does not read fast enough: drop what waits (but finish a
    // frame already half written) and close it.
    size_t keep = c.front_written > 0 ? 1 : 0;
    c.out.erase(c.out.begin() + static_cast<ptrdiff_t>(c.out_head + keep), c.out.end());
    c.out_bytes = 0;
    for (size_t i = c.out_head; i < c.out.size(); ++i) {
      c.out_bytes += c.out[i].header_size + c.out[i].payload->size();
    }
    c.out_bytes -= c.front_written;
    std::string reason = "the client reads too slowly: over " +
                         std::to_string(send_queue_limit_ / 1024) + " KiB waited to be sent";
    close_by_server(c, ws::kPolicyViolation, std::move(reason));
    return;
  }
  o.payload = std::move(payload);
  c.out_bytes += size;
  c.out.push_back(std::move(o));
  mark_dirty(c);
}

void SocketHub::send_close_frame(SocketConn& c, int code, std::string_view reason) {
  if (c.close_sent || c.phase == SocketConn::Phase::kClosed) return;
  std::string body = code == 0 ? std::string() : ws::close_payload(code, reason.substr(0, 123));
  SocketConn::Out o;
  o.header_size = static_cast<uint8_t>(ws::encode_header(o.header, ws::kClose, body.size()));
  c.out_bytes += o.header_size + body.size();
  o.payload = std::make_shared<const std::string>(std::move(body));
  c.out.push_back(std::move(o));
  c.close_sent = true;
  if (c.phase == SocketConn::Phase::kOpen) c.phase = SocketConn::Phase::kClosing;
  mark_dirty(c);
  std::weak_ptr<SocketConn> weak = c.shared_from_this();
  shard_->run_after(std::chrono::duration_cast<std::chrono::milliseconds>(kClosingTimeout),
                    [this, weak] {
                      auto c = weak.lock();
                      if (c && c->phase != SocketConn::Phase::kClosed) {
                        finish(*c, ws::kAbnormal, "the closing handshake timed out", false, false);
                      }
                    });
}

void SocketHub::mark_dirty(SocketConn& c) {
  // A pending socket is flushed when adopted, a closed one never.
  if (c.dirty || !c.io || c.phase == SocketConn::Phase::kClosed) return;
  c.dirty = true;
  dirty_.push_back(c.shared_from_this());
  if (!flush_posted_) {
    flush_posted_ = true;
    // After the current handler: sends of one turn (a broadcast) and of
    // several turns in a row leave together, one system call per socket.
    shard_->post([this] { flush_dirty(); });
  }
}

void SocketHub::flush_dirty() {
  flush_posted_ = false;
  auto list = std::move(dirty_);
  dirty_.clear();
  for (auto& c : list) {
    c->dirty = false;
    flush(*c);
  }
}

void SocketHub::flush(SocketConn& c) {
  if (!c.io || c.waiting_writable || c.phase == SocketConn::Phase::kClosed) return;
  int fd = c.io->socket.native_handle();
  while (c.out_head < c.out.size()) {
    iovec iov[kMaxIov];
    int n = 0;
    size_t skip = c.front_written;
    for (size_t i = c.out_head; i < c.out.size() && n + 2 <= kMaxIov; ++i) {
      const SocketConn::Out& o = c.out[i];
      auto add = [&](const void* p, size_t len) {
        if (skip >= len) {
          skip -= len;
          return;
        }
        iov[n].iov_base = const_cast<char*>(static_cast<const char*>(p) + skip);
        iov[n].iov_len = len - skip;
        skip = 0;
        ++n;
      };
      add(o.header, o.header_size);
      add(o.payload->data(), o.payload->size());
    }
    msghdr msg{};
    msg.msg_iov = iov;
    msg.msg_iovlen = static_cast<size_t>(n);
    ssize_t w = ::sendmsg(fd, &msg, MSG_NOSIGNAL | MSG_DONTWAIT);
    if (w < 0) {
      if (errno == EINTR) continue;
      if (errno == EAGAIN || errno == EWOULDBLOCK) {
        c.waiting_writable = true;
        auto self = c.shared_from_this();
        c.io->socket.async_wait(tcp::socket::wait_write, [this, self](boost::system::error_code ec) {
          self->waiting_writable = false;
          if (!ec) flush(*self);
        });
        return;
      }
      finish(c, ws::kAbnormal, "", false, false);
      return;
    }
    size_t left = static_cast<size_t>(w);
    c.out_bytes -= left;
    while (left > 0) {
      SocketConn::Out& o = c.out[c.out_head];
      size_t total = o.header_size + o.payload->size();
      size_t rest = total - c.front_written;
      if (left >= rest) {
        left -= rest;
        o.payload.reset();
        c.front_written = 0;
        ++c.out_head;
      } else {
        c.front_written += left;
        left = 0;
      }
    }
  }
  c.out.clear();
  c.out_head = 0;
  c.front_written = 0;
  c.out_bytes = 0;
  if (c.out.capacity() > 64) std::vector<SocketConn::Out>().swap(c.out);
  // We echoed the peer's close (or failed the connection): done. After our
  // own close() we keep reading until the peer's close frame arrives.
  if (c.io->close_after_flush) finish(c, ws::kAbnormal, "", false, false);
}

}  // namespace dobj::internal
