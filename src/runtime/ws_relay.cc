#include "runtime/ws_relay.h"

#include <array>
#include <boost/asio/write.hpp>

#include "runtime/runtime.h"
#include "runtime/socket_io.h"

namespace dobj::internal {

namespace asio = boost::asio;
using tcp = asio::ip::tcp;

namespace {

constexpr auto kParkedFor = std::chrono::seconds(30);

// Where the owner's frames (unmasked, server to client) start and end, so
// that a close frame of our own is written only between two of them.
class FrameTrack {
 public:
  void feed(const char* p, size_t n) {
    while (n > 0) {
      if (payload_left_ > 0) {
        size_t k = static_cast<size_t>(std::min<uint64_t>(n, payload_left_));
        payload_left_ -= k;
        p += k;
        n -= k;
        continue;
      }
      head_[head_len_++] = static_cast<uint8_t>(*p++);
      --n;
      if (head_len_ < 2) continue;
      uint8_t len7 = head_[1] & 0x7f;
      size_t need = 2 + (len7 == 126 ? 2 : len7 == 127 ? 8 : 0) + ((head_[1] & 0x80) ? 4 : 0);
      if (head_len_ < need) continue;
      uint64_t len = len7;
      if (len7 == 126) len = (uint64_t{head_[2]} << 8) | head_[3];
      if (len7 == 127) {
        len = 0;
        for (int i = 0; i < 8; ++i) len = (len << 8) | head_[2 + i];
      }
      if ((head_[0] & 0x0f) == 0x8) saw_close_ = true;
      payload_left_ = len;
      head_len_ = 0;
    }
  }
  bool at_boundary() const { return head_len_ == 0 && payload_left_ == 0; }
  bool saw_close() const { return saw_close_; }

 private:
  std::array<uint8_t, 14> head_{};
  size_t head_len_ = 0;
  uint64_t payload_left_ = 0;
  bool saw_close_ = false;
};

}  // namespace

std::string close_frame(uint16_t code, std::string_view reason) {
  std::string f;
  f.push_back(static_cast<char>(0x88));
  f.push_back(static_cast<char>(2 + reason.size()));  // callers keep reasons short
  f.push_back(static_cast<char>(code >> 8));
  f.push_back(static_cast<char>(code & 0xff));
  f.append(reason);
  return f;
}

struct WsRelays::Pipe : std::enable_shared_from_this<Pipe> {
  Pipe(WsRelays* table, ConnectionCounts* counts, tcp::socket client, tcp::socket owner)
      : table(table), counts(counts), client(std::move(client)), owner(std::move(owner)) {
    counts->open.fetch_add(1, std::memory_order_relaxed);
  }
  ~Pipe() { counts->open.fetch_sub(1, std::memory_order_relaxed); }

  // to_client: the 101 and the owner's first frames; to_owner: the client's.
  void run(std::string to_client, std::string to_owner, size_t owner_bytes) {
    track.feed(to_client.data() + to_client.size() - owner_bytes, owner_bytes);
    auto self = shared_from_this();
    first_down = std::move(to_client);
    asio::async_write(client, asio::buffer(first_down), [self](boost::system::error_code ec, size_t) {
      if (ec) return self->finish();
      self->read_down();
    });
    first_up = std::move(to_owner);
    if (first_up.empty()) return read_up();
    asio::async_write(owner, asio::buffer(first_up), [self](boost::system::error_code ec, size_t) {
      if (ec) return self->drop_owner();
      self->read_up();
    });
  }

  // A write to the owner failed: only the owner-to-client direction writes
  // to the client, so it is the one to notice (its read fails) and close.
  void drop_owner() {
    boost::system::error_code ignored;
    owner.close(ignored);
  }

  // Client to owner.
  void read_up() {
    auto self = shared_from_this();
    client.async_read_some(asio::buffer(up), [self](boost::system::error_code ec, size_t n) {
      if (ec) return self->finish();  // the client left: the owner sees the connection end
      asio::async_write(self->owner, asio::buffer(self->up, n), [self](boost::system::error_code ec, size_t) {
        if (ec) return self->drop_owner();
        self->read_up();
      });
    });
  }

  // Owner to client.
  void read_down() {
    auto self = shared_from_this();
    owner.async_read_some(asio::buffer(down), [self](boost::system::error_code ec, size_t n) {
      if (ec) return self->owner_lost();
      self->track.feed(self->down.data(), n);
      asio::async_write(self->client, asio::buffer(self->down, n), [self](boost::system::error_code ec, size_t) {
        if (ec) return self->finish();
        self->read_down();
      });
    });
  }

  // The owner's side ended (called from the owner-to-client direction only,
  // so no other write to the client is under way). After its close frame
  // that is the end of the socket; otherwise the client hears 1012, at a
  // frame boundary.
  void owner_lost() { end_with(ws::kServiceRestart, "owner node lost"); }

  void end_with(uint16_t code, std::string_view reason) {
    if (done) return;
    if (track.saw_close() || !track.at_boundary() || writing_close) return finish();
    writing_close = true;
    boost::system::error_code ignored;
    owner.close(ignored);
    last = close_frame(code, reason);
    auto self = shared_from_this();
    asio::async_write(client, asio::buffer(last), [self](boost::system::error_code, size_t) {
      self->finish();
    });
  }

  void finish() {
    if (done) return;
    done = true;
    boost::system::error_code ignored;
    client.shutdown(tcp::socket::shutdown_both, ignored);
    client.close(ignored);
    owner.close(ignored);
    if (table) table->pipes_.erase(this);
  }

  WsRelays* table;
  ConnectionCounts* counts;
  tcp::socket client;
  tcp::socket owner;
  std::array<char, 16 * 1024> up{};
  std::array<char, 16 * 1024> down{};
  std::string first_down, first_up, last;
  FrameTrack track;
  bool done = false;
  bool writing_close = false;
};

WsRelays::WsRelays(asio::io_context& io, ConnectionCounts* counts) : io_(io), counts_(counts) {}

WsRelays::~WsRelays() {
  for (auto& [raw, weak] : pipes_) {
    if (auto p = weak.lock()) p->table = nullptr;
  }
}

uint64_t WsRelays::park(tcp::socket owner, std::string already) {
  uint64_t id = next_id_++;
  auto p = std::make_unique<Parked>(Parked{std::move(owner), std::move(already),
                                           std::make_unique<asio::steady_timer>(io_, kParkedFor)});
  p->expiry->async_wait([this, id](boost::system::error_code ec) {
    if (!ec) parked_.erase(id);  // the Worker dropped the 101: the owner's side closes
  });
  parked_.emplace(id, std::move(p));
  return id;
}

void WsRelays::start(uint64_t id, int client_fd, const std::string& key, std::string client_already,
                     Headers extra) {
  auto it = parked_.find(id);
  if (it == parked_.end()) return refuse_connection(client_fd);
  std::unique_ptr<Parked> parked = std::move(it->second);
  parked_.erase(it);
  parked->expiry->cancel();
  tcp::socket client(io_);
  if (take_connection(client, client_fd)) return;  // closed
  std::string hs = upgrade_answer(key, extra);
  size_t owner_bytes = parked->already.size();
  hs += parked->already;
  auto pipe = std::make_shared<Pipe>(this, counts_, std::move(client), std::move(parked->owner));
  pipes_.emplace(pipe.get(), pipe);
  pipe->run(std::move(hs), std::move(client_already), owner_bytes);
}

size_t WsRelays::running() const { return pipes_.size(); }

void WsRelays::close_all() {
  parked_.clear();
  auto pipes = pipes_;
  for (auto& [raw, weak] : pipes) {
    if (auto p = weak.lock()) p->finish();
  }
}

}  // namespace dobj::internal
