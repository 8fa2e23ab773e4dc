// The HTTP server: one acceptor per shard (SO_REUSEPORT) and Session, one
// connection's state machine (read with limits, route to the worker or the
// admin plane, write in order, keep-alive and pipelining, timeouts, the hand-
// over of a WebSocket upgrade). Over 500 lines because Session reads best as
// one piece: its states and timers refer to one another throughout.
#include "net/http_server.h"

#include <fcntl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/socket_base.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <array>
#include <charconv>
#include <cstring>
#include <future>
#include <nlohmann/json.hpp>
#include <thread>
#include <unordered_set>

#include "admin/admin.h"
#include "runtime/placement.h"
#include "base/fs.h"
#include "base/log.h"
#include "runtime/runtime.h"
#include "runtime/ws_relay.h"

namespace dobj::internal {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = asio::ip::tcp;

namespace {

// Sockets and timers bound to the shard's io_context by type: Beast's
// tcp_stream and the default executor type-erase the executor, which cost a
// few percent of the CPU of a small request in copies and virtual calls.
using Executor = asio::io_context::executor_type;
using Socket = asio::basic_stream_socket<tcp, Executor>;
using Timer = asio::basic_waitable_timer<std::chrono::steady_clock,
                                         asio::wait_traits<std::chrono::steady_clock>, Executor>;
class Session;
}

// Lives on one shard's thread. Shared: sessions keep their shard's registry
// alive, because their handlers may be destroyed with the io_context after
// the HttpServer itself is gone.
// The largest database an operator may import when objects have no size cap.
constexpr uint64_t kMaxImportBytes = uint64_t{1} << 30;
// A ship from another node of the cluster: a batch of records, each field
// at most 2 GiB (storage/replication.cc); a catch-up sends large copies in
// parts (Cluster::kCopyPartBytes).
constexpr uint64_t kMaxPeerBodyBytes = uint64_t{4} << 30;

struct HttpServer::PerShard {
  Runtime* runtime = nullptr;
  // Shared by every PerShard and kept by each connection through its
  // PerShard: a connection that outlives the server (held by an object past
  // a stop's timeout) still reads valid limits.
  std::shared_ptr<const ServerOptions> options;
  std::shared_ptr<AdminPlane> admin;
  Shard* shard = nullptr;
  std::unique_ptr<tcp::acceptor> acceptor;
  std::unordered_set<Session*> sessions;
  bool stopping = false;
  std::atomic<size_t> session_count{0};
  // The admin listener's (--admin-listen): serves only the admin plane.
  bool admin_only = false;
  // On the main listener when the admin plane has its own: where it is.
  std::string admin_elsewhere;
  // The peer listener's (a cluster node): every request is a forwarded
  // delivery and goes here.
  std::shared_ptr<const HttpServer::PeerHandler> peer;
  // The main listener's on every shard, by shard index: where a connection
  // moves to be served beside its objects (Session::move_to_shard).
  std::vector<std::weak_ptr<PerShard>> siblings;
};

namespace {

// Appends s with CR and LF replaced by spaces: a header an object set from
// client input cannot start another header or end the head.
void append_header_text(std::string& out, std::string_view s) {
  size_t from = out.size();
  out += s;
  if (s.find('\r') == std::string_view::npos && s.find('\n') == std::string_view::npos) return;
  for (size_t i = from; i < out.size(); ++i) {
    if (out[i] == '\r' || out[i] == '\n') out[i] = ' ';
  }
}

void append_number(std::string& out, uint64_t n) {
  char digits[20];
  auto [end, ec] = std::to_chars(digits, digits + sizeof digits, n);
  out.append(digits, end);
}

// 1xx, 204 and 304 answers have no body (nor a Content-Length).
bool has_body(int status) { return status >= 200 && status != 204 && status != 304; }

// The status line and headers of an answer, into head (its capacity kept
// from one answer to the next). The framing headers are the server's:
// Content-Length (none for 1xx, 204 and 304, which have no body) and
// Connection; an object's own are dropped.
void response_head(std::string& head, const Response& r, unsigned version, bool keep_alive,
                   uint64_t body_bytes) {
  using namespace std::string_view_literals;
  head.clear();
  head.reserve(160);
  head += version == 10 ? "HTTP/1.0 "sv : "HTTP/1.1 "sv;
  append_number(head, static_cast<uint64_t>(std::max(r.status, 0)));
  head += ' ';
  beast::string_view reason = http::obsolete_reason(http::int_to_status(static_cast<unsigned>(r.status)));
  head.append(reason.data(), reason.size());
  head += "\r\n"sv;
  for (const auto& [name, value] : r.headers) {
    if (beast::iequals(name, "content-length") || beast::iequals(name, "connection") ||
        beast::iequals(name, "transfer-encoding") || beast::iequals(name, "server")) {
      continue;
    }
    append_header_text(head, name);
    head += ": "sv;
    append_header_text(head, value);
    head += "\r\n"sv;
  }
  head += "Server: dobj\r\n"sv;
  if (has_body(r.status)) {
    head += "Content-Length: "sv;
    append_number(head, body_bytes);
    head += "\r\n"sv;
  }
  if (version == 10 && keep_alive) head += "Connection: keep-alive\r\n"sv;
  if (version != 10 && !keep_alive) head += "Connection: close\r\n"sv;
  head += "\r\n"sv;
}

class Session : public std::enable_shared_from_this<Session> {
 public:
  Session(Socket socket, std::shared_ptr<HttpServer::PerShard> per_shard)
      : stream_(std::move(socket)),
        idle_timer_(stream_.get_executor()),
        buffer_(per_shard->options->max_header_bytes + kReadSlackBytes),
        per_shard_(std::move(per_shard)),
        options_(*per_shard_->options) {
    per_shard_->sessions.insert(this);
    per_shard_->session_count.fetch_add(1);
    per_shard_->runtime->connections().open.fetch_add(1, std::memory_order_relaxed);
  }
  ~Session() {
    drop_body_file();
    if (out_fd_ >= 0) ::close(out_fd_);
    per_shard_->sessions.erase(this);
    per_shard_->session_count.fetch_sub(1);
    per_shard_->runtime->connections().open.fetch_sub(1, std::memory_order_relaxed);
  }

  void start() {
    stream_.set_option(tcp::no_delay(true));
    read_header();
  }

  // Called on stop: idle connections close now, busy ones after their answer.
  void stop() {
    if (!busy_) {
      beast::error_code ec;
      stream_.shutdown(tcp::socket::shutdown_both, ec);
      stream_.close(ec);
    }
  }

 private:
  void read_header() {
    parser_.emplace();
    parser_->header_limit(static_cast<uint32_t>(options_.max_header_bytes));
    // The body's limit depends on the route (on_header sets it): a limit here
    // would refuse a large import's Content-Length with the head.
    parser_->body_limit(boost::none);
    arm_idle_timer();
    http::async_read_header(
        stream_, buffer_, *parser_,
        [self = shared_from_this()](beast::error_code ec, size_t) { self->on_header(ec); });
  }

  void on_header(beast::error_code ec) {
    if (ec) return on_error(ec);
    auto& req = parser_->get();
    if (req.count(http::field::transfer_encoding) && !parser_->chunked()) {
      // RFC 9112 6.3: the body's length cannot be known. Reading it as no
      // body would serve its bytes as the next request.
      return send_error_and_close(400, "Transfer-Encoding must end in chunked");
    }
    uint64_t limit = options_.max_body_bytes;
    bool upload = !per_shard_->peer && req.method() == http::verb::put && AdminPlane::owns(req.target()) &&
                  per_shard_->admin->authorized_header(req[http::field::authorization]);
    if (per_shard_->peer) {
      // Another node of the cluster (its token checked before any of the
      // body is read) ships what its commits and copies hold: a transaction
      // or an object's copy part may be far larger than a client's request.
      Placement* placement = per_shard_->runtime->placement();
      if (placement && placement->peer_authorized(std::string_view(req["dobj-peer-token"]))) {
        limit = kMaxPeerBodyBytes;
      }
    }
    if (upload) {
      // An import carries a whole database: up to the per-object cap.
      int64_t cap = per_shard_->runtime->options().max_object_bytes;
      limit = cap > 0 ? static_cast<uint64_t>(cap) + (1 << 20) : kMaxImportBytes;
    }
    if (parser_->content_length() && *parser_->content_length() > limit) {
      return send_error_and_close(
          413, "request body is larger than " + std::to_string(limit) + " bytes");
    }
    parser_->body_limit(limit);
    body_limit_ = limit;
    if (upload) {
      // Streamed to a file as it arrives, not held in memory.
      auto path = AdminPlane::upload_path(per_shard_->runtime->options().data_dir);
      if (!path) return send_error_and_close(500, path.status().message());
      file_parser_.emplace(std::move(*parser_));
      file_parser_->body_limit(limit);
      beast::error_code open_ec;
      file_parser_->get().body().open(path->c_str(), beast::file_mode::write, open_ec);
      if (open_ec) {
        file_parser_.reset();
        return send_error_and_close(500, "cannot store the upload: " + open_ec.message());
      }
      body_file_ = *path;
    }
    // The head, in whichever parser now holds it.
    const http::request_header<>& head =
        file_parser_ ? static_cast<const http::request_header<>&>(file_parser_->get())
                     : static_cast<const http::request_header<>&>(parser_->get());
    if (head[http::field::expect] == "100-continue" && !body_done()) {
      // Answer the interim response so the client sends its body at once.
      auto cont = std::make_shared<http::response<http::empty_body>>(http::status::continue_,
                                                                     head.version());
      http::async_write(stream_, *cont,
                        [self = shared_from_this(), cont](beast::error_code ec, size_t) {
                          if (ec) return self->close();
                          self->read_body();
                        });
      return;
    }
    read_body();
  }

  bool body_done() const { return file_parser_ ? file_parser_->is_done() : parser_->is_done(); }

  void read_body() {
    if (body_done()) return on_request();
    auto done = [self = shared_from_this()](beast::error_code ec, size_t) {
      if (ec) return self->on_error(ec);
      self->on_request();
    };
    if (file_parser_) return http::async_read(stream_, buffer_, *file_parser_, std::move(done));
    http::async_read(stream_, buffer_, *parser_, std::move(done));
  }

  // An upload that did not reach its handler.
  void drop_body_file() {
    file_parser_.reset();
    if (!body_file_.empty()) ::unlink(body_file_.c_str());
    body_file_.clear();
  }

  // Reads and writes wait at most connection_idle_timeout. The timer cancels
  // the operation rather than closing the socket, so a client whose request
  // stalled still gets its 408. A wait only moves the deadline; the timer,
  // set once, sleeps on to the deadline when it fires early, and does nothing
  // when no read or write waits. (Setting and cancelling the timer around
  // every read and write cost two timer-queue updates under the reactor's
  // lock and a cancelled handler's run each time: 7% of a read's
  // instructions.) It holds no owner of the session, so a closed session is
  // freed at once.
  void arm_idle_timer() {
    timed_out_ = false;
    waiting_ = true;
    deadline_ = std::chrono::steady_clock::now() + options_.connection_idle_timeout;
    if (!timer_set_) set_idle_timer();
  }
  // The read or write finished: the timer ignores the deadline until the
  // next one.
  void disarm_idle_timer() { waiting_ = false; }

  void set_idle_timer() {
    timer_set_ = true;
    idle_timer_.expires_at(deadline_);
    idle_timer_.async_wait([weak = weak_from_this()](beast::error_code ec) {
      auto self = weak.lock();
      if (!self) return;  // the session is gone
      self->timer_set_ = false;
      if (!self->waiting_) return;
      if (ec || std::chrono::steady_clock::now() < self->deadline_) return self->set_idle_timer();
      self->timed_out_ = true;
      beast::error_code ignored;
      self->stream_.cancel(ignored);
    });
  }

  void on_error(beast::error_code ec) {
    disarm_idle_timer();
    drop_body_file();
    if (timed_out_ && ec == asio::error::operation_aborted && !per_shard_->stopping) {
      return send_error_and_close(408, "the connection was idle for too long");
    }
    if (ec == http::error::end_of_stream || ec == asio::error::eof ||
        ec == asio::error::connection_reset || ec == asio::error::operation_aborted ||
        ec == asio::error::bad_descriptor) {
      return close();
    }
    if (ec == http::error::buffer_overflow) {
      return send_error_and_close(
          431, "a request head, chunk header or trailer is larger than " +
                   std::to_string(options_.max_header_bytes + kReadSlackBytes) + " bytes");
    }
    if (ec == http::error::header_limit) {
      return send_error_and_close(431, "request headers are larger than " +
                                           std::to_string(options_.max_header_bytes) + " bytes");
    }
    if (ec == http::error::body_limit) {
      return send_error_and_close(
          413, "request body is larger than " + std::to_string(body_limit_) + " bytes");
    }
    send_error_and_close(400, "malformed HTTP request: " + ec.message());
  }

  void send_error_and_close(int status, const std::string& message) {
    busy_ = true;
    write(Response::error(status, message), 11, /*keep_alive=*/false);
  }

  // Moves the parsed request (its body in memory or in body_file_) into req.
  template <typename Message>
  void take_head(Message& msg, Request& req, unsigned* version, bool* keep_alive) {
    req.method = std::string(msg.method_string());
    req.target = std::string(msg.target());
    req.headers.reserve(8);
    for (const auto& f : msg) req.headers.emplace_back(f.name_string(), f.value());
    *version = msg.version();
    *keep_alive = msg.keep_alive();
  }

  void on_request() {
    Request req;
    unsigned version = 11;
    bool keep_alive = false;
    std::string body_file;
    if (file_parser_) {
      auto msg = file_parser_->release();
      take_head(msg, req, &version, &keep_alive);
      msg.body().close();
      file_parser_.reset();
      body_file = std::exchange(body_file_, std::string());
    } else {
      auto msg = parser_->release();
      take_head(msg, req, &version, &keep_alive);
      req.body = std::move(msg.body());
    }
    std::string ws_key;
    if (req.is_websocket_upgrade()) ws_key = req.header("sec-websocket-key").value_or("");
    busy_ = true;
    disarm_idle_timer();
    auto reply = [self = shared_from_this(), version, keep_alive](Answer a) {
      self->write(std::move(a.response), version, keep_alive && !self->per_shard_->stopping);
    };
    if (per_shard_->peer && req.header("dobj-peer-admin")) return peer_admin(std::move(req), version, keep_alive);
    if (per_shard_->peer) {
      // A relayed WebSocket's upgrade is answered like a client's: the
      // object's socket takes this connection over.
      return (*per_shard_->peer)(*per_shard_->shard, std::move(req),
                                 [self = shared_from_this(), version, keep_alive,
                                  ws_key = std::move(ws_key)](Response r) {
                                   if (r.status == 101) return self->hand_over(std::move(r), ws_key, version);
                                   self->write(std::move(r), version,
                                               keep_alive && !self->per_shard_->stopping);
                                 });
    }
    if (AdminPlane::owns(req.target) && !per_shard_->admin_elsewhere.empty()) {
      return reply(Response::error(404, "the admin plane listens on " + per_shard_->admin_elsewhere));
    }
    if (per_shard_->admin_only && !AdminPlane::owns(req.target)) {
      return reply(Response::error(404, "this port serves the admin plane only (/_dobj/, /metrics)"));
    }
    if (AdminPlane::owns(req.target)) {
      return per_shard_->admin->handle(
          *per_shard_->shard, req,
          [self = shared_from_this(), version, keep_alive](Answer a) {
            self->write(std::move(a.response), version, keep_alive && !self->per_shard_->stopping);
          },
          std::move(body_file));
    }
    per_shard_->shard->run_worker(std::move(req), [self = shared_from_this(), version, keep_alive,
                                                   ws_key = std::move(ws_key)](Answer a) {
      Response& r = a.response;
      if (r.status == 101) return self->hand_over(std::move(r), ws_key, version);
      self->note_object_shard(a.object_shard);
      self->write(std::move(r), version, keep_alive && !self->per_shard_->stopping);
    });
  }

  // Connection affinity. A request whose worker calls objects on another
  // shard costs two thread hops (there and back), each a wake-up of another
  // thread; a connection whose requests keep going to one shard's objects (a
  // client of one room, one counter, one user) is cheaper served on that
  // shard. After kMoveAfter answers in a row whose objects were all on one
  // other shard, the connection moves there between two requests. A client
  // whose requests alternate between shards moves at most once every
  // kMoveAfter requests. Connections stop moving to a shard busier than
  // ServerOptions::affinity_max_load, and move in a few at a time
  // (Shard::admit_connection): with one very busy object, parsing its
  // requests (and running a JavaScript front Worker) on the other shards is
  // worth the hops. (On 2 cores shared with the load generator: hot counter
  // c64 +12%, p99 2.2 -> 1.9 ms; a read -3 to -8%, p99 1.5-1.9 -> 0.8-1.0 ms;
  // docs/performance.md.)
  static constexpr int kMoveAfter = 2;
  void note_object_shard(int shard) {
    if (shard < 0 || shard == per_shard_->shard->index() ||
        static_cast<size_t>(shard) >= per_shard_->siblings.size()) {
      affinity_streak_ = 0;
      return;
    }
    affinity_streak_ = shard == affinity_shard_ ? affinity_streak_ + 1 : 1;
    affinity_shard_ = shard;
  }

  // Between requests: gives the socket and any bytes already read to the
  // shard this connection's objects live on. false: it stays here.
  bool move_to_shard() {
    if (affinity_streak_ < kMoveAfter) return false;
    auto target = per_shard_->siblings[static_cast<size_t>(affinity_shard_)].lock();
    if (!target) return false;
    if (!target->shard->admit_connection(options_.affinity_max_load)) {
      affinity_streak_ = 0;
      return false;
    }
    beast::error_code ec;
    auto protocol = stream_.local_endpoint(ec).protocol();
    if (ec) return false;
    auto data = buffer_.data();
    std::string already(static_cast<const char*>(data.data()), data.size());
    int fd = stream_.release(ec);
    if (ec) return false;
    per_shard_->runtime->connections().moved.fetch_add(1, std::memory_order_relaxed);
    target->shard->post([target, fd, protocol, already = std::move(already)]() mutable {
      beast::error_code ec;
      Socket socket(target->shard->io());
      if (!target->stopping) socket.assign(protocol, fd, ec);
      if (target->stopping || ec) {
        ::close(fd);
        return;
      }
      auto session = std::make_shared<Session>(std::move(socket), target);
      session->take_bytes(already);
      session->read_header();
    });
    return true;
  }

  // Bytes a connection read on its previous shard past its last request.
  void take_bytes(std::string_view bytes) {
    if (bytes.empty()) return;
    auto space = buffer_.prepare(bytes.size());
    std::memcpy(space.data(), bytes.data(), bytes.size());
    buffer_.commit(bytes.size());
  }

  // An admin request another node took from an operator and forwarded here
  // for this node's own objects (docs/cluster.md).
  void peer_admin(Request req, unsigned version, bool keep_alive) {
    auto reply = [self = shared_from_this(), version, keep_alive](Answer a) {
      self->write(std::move(a.response), version, keep_alive && !self->per_shard_->stopping);
    };
    Placement* placement = per_shard_->runtime->placement();
    if (!placement || !placement->peer_authorized(req.header("dobj-peer-token").value_or(""))) {
      return reply(Response::error(403, "not a peer of this cluster"));
    }
    std::erase_if(req.headers, [](const auto& h) {
      return h.first.size() >= 10 && beast::iequals(std::string_view(h.first).substr(0, 10), "dobj-peer-");
    });
    std::string upload;
    if (req.method == "PUT" && !req.body.empty()) {
      // An import's database, in memory here: to a file, as the admin plane
      // takes uploads.
      auto path = AdminPlane::upload_path(per_shard_->runtime->options().data_dir);
      if (!path) return reply(Response::error(500, path.status().message()));
      if (Status st = write_file_atomic(*path, req.body, 0600); !st) {
        return reply(Response::error(500, "cannot store the upload: " + st.message()));
      }
      upload = *path;
      req.body.clear();
    }
    per_shard_->admin->handle(*per_shard_->shard, req, std::move(reply), std::move(upload),
                              /*from_peer=*/true);
  }

  // An object accepted the upgrade: give the connection to the shard that
  // holds its socket, with any bytes read past the request.
  void hand_over(Response r, const std::string& ws_key, unsigned version) {
    auto upgrade = ResponseAccess::upgrade(r);
    if (ws_key.empty() || !upgrade || per_shard_->stopping) {
      return write(Response::error(500, ws_key.empty()
                                            ? "a 101 answer to a request that is not an upgrade"
                                            : "a 101 answer without an accepted WebSocket"),
                   version, false);
    }
    // The object's own headers for the 101, with CR and LF neutralised as in
    // every other answer; the upgrade's own headers are the server's.
    Headers extra;
    for (auto& [k, v] : r.headers) {
      if (!beast::iequals(k, "upgrade") && !beast::iequals(k, "connection") &&
          !beast::iequals(k, "sec-websocket-accept") && !beast::iequals(k, "content-length") &&
          !beast::iequals(k, "transfer-encoding")) {
        std::string name, value;
        append_header_text(name, k);
        append_header_text(value, v);
        extra.emplace_back(std::move(name), std::move(value));
      }
    }
    auto data = buffer_.data();
    std::string already(static_cast<const char*>(data.data()), data.size());
    buffer_.consume(buffer_.size());
    beast::error_code ec;
    int fd = stream_.release(ec);
    busy_ = false;
    if (ec || upgrade->shard >= per_shard_->runtime->shard_count()) return close();
    Shard& owner = per_shard_->runtime->shard(upgrade->shard);
    owner.post([&owner, upgrade = *upgrade, fd, ws_key, already = std::move(already),
                extra = std::move(extra)]() mutable {
      if (upgrade.relay) {
        owner.relays().start(upgrade.socket_id, fd, ws_key, std::move(already), std::move(extra));
      } else {
        owner.sockets().adopt(upgrade.socket_id, fd, ws_key, std::move(already), std::move(extra));
      }
    });
  }

  void write(Response&& r, unsigned version, bool keep_alive) {
    if (const auto& file = ResponseAccess::body_file(r)) {
      return write_file(std::move(r), *file, version, keep_alive);
    }
    response_head(head_, r, version, keep_alive, r.body.size());
    body_ = has_body(r.status) ? std::move(r.body) : std::string();
    // A client that does not read its answer is closed after the timeout.
    arm_idle_timer();
    std::array<asio::const_buffer, 2> buffers{asio::buffer(head_), asio::buffer(body_)};
    asio::async_write(stream_, buffers,
                      [self = shared_from_this(), keep_alive](beast::error_code ec, size_t) {
                        self->busy_ = false;
                        self->disarm_idle_timer();
                        if (ec || !keep_alive || self->per_shard_->stopping) return self->close();
                        if (self->move_to_shard()) return;
                        self->read_header();
                      });
  }

  // An answer whose body is a file (an export): read and sent a piece at a
  // time, so neither this thread nor memory holds it whole. The file is
  // removed once open.
  void write_file(Response&& r, const std::string& path, unsigned version, bool keep_alive) {
    out_fd_ = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    ::unlink(path.c_str());
    struct stat st;
    if (out_fd_ < 0 || ::fstat(out_fd_, &st) != 0) {
      return write(Response::error(500, "the answer's file is gone"), version, false);
    }
    out_left_ = static_cast<uint64_t>(st.st_size);
    body_.clear();
    response_head(head_, r, version, keep_alive, out_left_);
    arm_idle_timer();
    asio::async_write(stream_, asio::buffer(head_),
                      [self = shared_from_this(), keep_alive](beast::error_code ec, size_t) {
                        self->send_file_piece(ec, keep_alive);
                      });
  }

  void send_file_piece(beast::error_code ec, bool keep_alive) {
    if (!ec && out_left_ > 0) {
      body_.resize(std::min<uint64_t>(out_left_, kFilePieceBytes));
      ssize_t n = ::read(out_fd_, body_.data(), body_.size());
      if (n <= 0) return close();  // the length was promised: end the connection
      body_.resize(static_cast<size_t>(n));
      out_left_ -= static_cast<uint64_t>(n);
      arm_idle_timer();
      return asio::async_write(stream_, asio::buffer(body_),
                               [self = shared_from_this(), keep_alive](beast::error_code ec,
                                                                       size_t) {
                                 self->send_file_piece(ec, keep_alive);
                               });
    }
    ::close(out_fd_);
    out_fd_ = -1;
    body_.clear();
    busy_ = false;
    disarm_idle_timer();
    if (ec || !keep_alive || per_shard_->stopping) return close();
    read_header();
  }

  void close() {
    beast::error_code ec;
    stream_.shutdown(tcp::socket::shutdown_send, ec);
    stream_.close(ec);
  }

  Socket stream_;
  Timer idle_timer_;
  std::chrono::steady_clock::time_point deadline_;  // of the read or write under way
  bool waiting_ = false;    // a read or write is under way
  bool timer_set_ = false;  // idle_timer_ has a wait pending
  bool timed_out_ = false;
  // Bounded: the parser needs a whole request head, chunk header line (with
  // its extensions) or trailer in it at once, and without a bound a client
  // sending an endless chunk extension grows it without end.
  static constexpr size_t kReadSlackBytes = 64 * 1024;
  beast::flat_buffer buffer_;
  std::optional<http::request_parser<http::string_body>> parser_;
  // An import's body goes to a file instead (body_file_, removed unless
  // handed to the admin plane).
  std::optional<http::request_parser<http::file_body>> file_parser_;
  std::string body_file_;
  uint64_t body_limit_ = 0;  // this request's
  int out_fd_ = -1;  // an answer's body file being sent
  uint64_t out_left_ = 0;
  static constexpr uint64_t kFilePieceBytes = 256 * 1024;
  std::string head_;  // of the answer being written
  std::string body_;
  std::shared_ptr<HttpServer::PerShard> per_shard_;
  const ServerOptions& options_;  // *per_shard_->options, kept alive by per_shard_
  bool busy_ = false;
  int affinity_shard_ = -1;  // the other shard its last answers' objects were on
  int affinity_streak_ = 0;  // answers in a row with objects on it
};

void do_accept(std::shared_ptr<HttpServer::PerShard> ps) {
  ps->acceptor->async_accept(ps->shard->io(), [ps](beast::error_code ec, Socket socket) {
    if (ec) {
      if (ec == asio::error::operation_aborted || ps->stopping) return;
      // Out of file descriptors (or memory): accepting again at once would
      // spin. Wait a little; connections meanwhile wait in the backlog.
      log_warn("accept: " + ec.message() + "; retrying in 100 ms");
      auto timer = std::make_shared<asio::steady_timer>(ps->acceptor->get_executor(),
                                                        std::chrono::milliseconds(100));
      timer->async_wait([ps, timer](beast::error_code) {
        if (!ps->stopping) do_accept(ps);
      });
      return;
    }
    ConnectionCounts& counts = ps->runtime->connections();
    // The runtime's options: it lowered the cap to fit the descriptor limit.
    if (counts.open.load(std::memory_order_relaxed) >= ps->runtime->options().max_connections &&
        !ps->admin_only && !ps->peer) {
      // At the cap: a short answer, and the descriptor is given back at once.
      ++counts.refused;
      static const char kFull[] =
          "HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\n"
          "Content-Length: 43\r\nConnection: close\r\n\r\n"
          "{\"error\":\"too many connections; try again\"}";
      (void)!::send(socket.native_handle(), kFull, sizeof kFull - 1, MSG_NOSIGNAL | MSG_DONTWAIT);
      beast::error_code ignored;
      socket.close(ignored);
    } else {
      std::make_shared<Session>(std::move(socket), ps)->start();
    }
    if (!ps->stopping) do_accept(ps);
  });
}

}  // namespace

HttpServer::HttpServer(Runtime& runtime, const ServerOptions& options)
    : runtime_(runtime),
      options_(options),
      admin_(std::make_shared<AdminPlane>(runtime, options.admin_token)) {}

HttpServer::~HttpServer() = default;

namespace {

Status parse_listen(const std::string& listen, const char* flag, asio::ip::address* address,
                    int* port) {
  auto colon = listen.rfind(':');
  if (colon == std::string::npos) {
    return Status(Code::kInvalidArgument, std::string(flag) + " wants HOST:PORT, got " + listen);
  }
  std::string host = listen.substr(0, colon);
  if (host.size() > 1 && host.front() == '[' && host.back() == ']')
    host = host.substr(1, host.size() - 2);
  try {
    *port = std::stoi(listen.substr(colon + 1));
  } catch (...) {
    return Status(Code::kInvalidArgument, std::string(flag) + ": bad port in " + listen);
  }
  beast::error_code ec;
  *address = asio::ip::make_address(host, ec);
  if (ec) return Status(Code::kInvalidArgument, std::string(flag) + ": bad address " + host);
  return Status::ok();
}

// Binds an acceptor on ps's shard and starts accepting; *port 0 becomes the
// port the system chose.
Status open_acceptor(HttpServer::PerShard& ps, const asio::ip::address& address, int* port,
                     const std::string& listen) {
  Status result;
  ps.shard->run_and_wait([&] {
    beast::error_code ec;
    auto acc = std::make_unique<tcp::acceptor>(ps.shard->io());
    tcp::endpoint ep(address, static_cast<unsigned short>(*port));
    acc->open(ep.protocol(), ec);
    if (!ec) acc->set_option(asio::socket_base::reuse_address(true), ec);
    if (!ec) {
      int one = 1;
      if (setsockopt(acc->native_handle(), SOL_SOCKET, SO_REUSEPORT, &one, sizeof one) != 0) {
        ec = beast::error_code(errno, boost::system::system_category());
      }
    }
    if (!ec) acc->bind(ep, ec);
    if (!ec) acc->listen(asio::socket_base::max_listen_connections, ec);
    if (ec) {
      result = Status(Code::kUnavailable, "cannot listen on " + listen + ": " + ec.message());
      return;
    }
    *port = acc->local_endpoint().port();
    ps.acceptor = std::move(acc);
  });
  return result;
}

}  // namespace

Status HttpServer::start() {
  asio::ip::address address;
  int port = 0;
  if (Status st = parse_listen(options_.listen, "--listen", &address, &port); !st) return st;
  auto shared_options = std::make_shared<const ServerOptions>(options_);
  auto per_shard = [&](Shard* shard) {
    auto ps = std::make_shared<PerShard>();
    ps->options = shared_options;
    ps->runtime = &runtime_;
    ps->admin = admin_;
    ps->shard = shard;
    return ps;
  };
  // Binds and starts accepting; *bound 0 becomes the port chosen.
  auto listen = [&](std::shared_ptr<PerShard> ps, const asio::ip::address& at, int* bound,
                    const std::string& text) {
    if (Status st = open_acceptor(*ps, at, bound, text); !st) return st;
    ps->shard->post([ps] { do_accept(ps); });
    shards_.push_back(std::move(ps));
    return Status::ok();
  };
  std::vector<std::shared_ptr<PerShard>> main;
  for (size_t i = 0; i < runtime_.shard_count(); ++i) main.push_back(per_shard(&runtime_.shard(i)));
  for (auto& ps : main) {
    for (auto& sibling : main) ps->siblings.push_back(sibling);
  }
  for (auto& ps : main) {
    ps->admin_elsewhere = options_.admin_listen;
    // Every shard binds the same port (SO_REUSEPORT); the first fixes port 0.
    if (Status st = listen(std::move(ps), address, &port, options_.listen); !st) return st;
  }
  port_ = port;
  if (!options_.admin_listen.empty()) {
    asio::ip::address admin_address;
    int admin_port = 0;
    if (Status st = parse_listen(options_.admin_listen, "--admin-listen", &admin_address, &admin_port);
        !st) {
      return st;
    }
    auto ps = per_shard(&runtime_.admin_shard());
    ps->admin_only = true;
    if (Status st = listen(std::move(ps), admin_address, &admin_port, options_.admin_listen); !st) return st;
    admin_port_ = admin_port;
  }
  if (peer_handler_) {
    asio::ip::address peer_address;
    int port = 0;
    if (Status st = parse_listen(peer_listen_, "--peer-listen", &peer_address, &port); !st) return st;
    for (size_t i = 0; i < runtime_.shard_count(); ++i) {
      auto ps = per_shard(&runtime_.shard(i));
      ps->peer = peer_handler_;
      if (Status st = listen(std::move(ps), peer_address, &port, peer_listen_); !st) return st;
    }
    peer_port_ = port;
  }
  return Status::ok();
}

void HttpServer::stop(std::chrono::milliseconds timeout) {
  for (auto& ps : shards_) {
    ps->shard->run_and_wait([&] {
      ps->stopping = true;
      beast::error_code ec;
      if (ps->acceptor) ps->acceptor->close(ec);
      std::vector<Session*> open(ps->sessions.begin(), ps->sessions.end());
      for (Session* s : open) s->stop();
    });
  }
  auto deadline = std::chrono::steady_clock::now() + timeout;
  for (auto& ps : shards_) {
    while (ps->session_count.load() > 0 && std::chrono::steady_clock::now() < deadline) {
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
  }
  for (auto& ps : shards_) {
    ps->shard->run_and_wait([&] {
      ps->acceptor.reset();
      std::vector<Session*> open(ps->sessions.begin(), ps->sessions.end());
      for (Session* s : open) s->stop();
    });
  }
}

}  // namespace dobj::internal
