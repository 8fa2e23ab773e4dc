// dobj-ws-bench: WebSocket load for any server with the ChatRoom routes of
// EXAMPLES.md (dobj or workerd). Not a test: it reports, it asserts nothing.
//
//   dobj-ws-bench broadcast --port P [--clients 100] [--inflight 16] [--seconds 5] [--room NAME]
//     One room, `clients` sockets. Messages are sent round-robin by the
//     clients, `inflight` at a time: a new one leaves when an earlier one has
//     reached every socket. Prints "deliveries/s p50_ms p99_ms" (end to end,
//     from send to each receipt).
//   dobj-ws-bench idle --port P --pid SERVER_PID [--sockets 10000] [--per-room 1000]
//     Opens idle sockets across rooms and prints "sockets_held bytes_per_socket"
//     from the server's anonymous RSS (RssAnon) before and after: the memory
//     the process holds, not pages of its binary and libraries that a first
//     use brings in once (kernel buffers are not in RSS either).
#include <poll.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <string>
#include <thread>
#include <vector>

#include "base/websocket_frame.h"
#include "testing/http_client.h"
#include "testing/ws_client.h"

namespace ws = dobj::internal::ws;

namespace {

int64_t now_ns() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return int64_t{ts.tv_sec} * 1'000'000'000 + ts.tv_nsec;
}

struct Conn {
  int fd = -1;
  std::string buf;
  ws::FrameReader reader{/*expect_masked=*/false, 1 << 20};
};

using dobj::test::send_all;

// Connects and upgrades; returns the connection or fd -1.
Conn open_socket(int port, const std::string& path) {
  Conn c;
  dobj::test::WsClient client(port, path);
  if (!client.connected()) {
    if (client.upgrade_response().status != 0) {
      fprintf(stderr, "upgrade refused: %d %s\n", client.upgrade_response().status,
              client.upgrade_response().body.c_str());
    }
    return c;
  }
  c.fd = client.release(&c.buf);
  return c;
}

int arg(int argc, char** argv, const char* name, int def) {
  for (int i = 2; i + 1 < argc; ++i) {
    if (std::strcmp(argv[i], name) == 0) return std::atoi(argv[i + 1]);
  }
  return def;
}

int broadcast(int argc, char** argv) {
  int port = arg(argc, argv, "--port", 8787);
  int clients = arg(argc, argv, "--clients", 100);
  int inflight = arg(argc, argv, "--inflight", 16);
  int seconds = arg(argc, argv, "--seconds", 5);
  std::string room = "/room/bench-" + std::to_string(now_ns() % 1000000) + "/websocket";
  for (int i = 2; i + 1 < argc; ++i) {
    if (std::strcmp(argv[i], "--room") == 0) room = std::string("/room/") + argv[i + 1] + "/websocket";
  }
  std::vector<Conn> conns(static_cast<size_t>(clients));
  int ep = epoll_create1(EPOLL_CLOEXEC);
  for (int i = 0; i < clients; ++i) {
    conns[i] = open_socket(port, room);
    if (conns[i].fd < 0) {
      fprintf(stderr, "could not connect client %d\n", i);
      return 1;
    }
    epoll_event ev{};
    ev.events = EPOLLIN;
    ev.data.u32 = static_cast<uint32_t>(i);
    epoll_ctl(ep, EPOLL_CTL_ADD, conns[i].fd, &ev);
  }
  // remaining[seq % window]: sockets that have not yet received message seq.
  const int window = inflight;
  std::vector<int> remaining(static_cast<size_t>(window), 0);
  int64_t next_seq = 0;
  const uint8_t mask[4] = {0x11, 0x22, 0x33, 0x44};
  auto send_next = [&] {
    int64_t seq = next_seq++;
    remaining[static_cast<size_t>(seq % window)] = clients;
    std::string text = std::to_string(seq) + " " + std::to_string(now_ns());
    send_all(conns[static_cast<size_t>(seq % clients)].fd, ws::encode_frame(ws::kText, text, mask));
  };
  int64_t start = now_ns();
  int64_t warm_until = start + 1'000'000'000;
  int64_t stop_at = warm_until + int64_t{seconds} * 1'000'000'000;
  std::vector<uint32_t> latency_us;
  latency_us.reserve(4'000'000);
  int64_t deliveries = 0;
  for (int i = 0; i < window; ++i) send_next();
  epoll_event events[256];
  std::vector<char> tmp(256 * 1024);
  int64_t t = now_ns();
  while (t < stop_at) {
    int n = epoll_wait(ep, events, 256, 1000);
    t = now_ns();
    bool measuring = t >= warm_until;
    for (int k = 0; k < n; ++k) {
      Conn& c = conns[events[k].data.u32];
      ssize_t got = ::recv(c.fd, tmp.data(), tmp.size(), MSG_DONTWAIT);
      if (got <= 0) {
        if (got == 0) {
          fprintf(stderr, "server closed a socket\n");
          return 1;
        }
        continue;
      }
      c.buf.append(tmp.data(), static_cast<size_t>(got));
      size_t pos = 0;
      for (ws::Event e = c.reader.next(c.buf, pos); e.kind != ws::Event::kNeedMore;
           e = c.reader.next(c.buf, pos)) {
        if (e.kind != ws::Event::kMessage) continue;
        int64_t seq = std::strtoll(e.payload.c_str(), nullptr, 10);
        int64_t sent = std::strtoll(e.payload.c_str() + e.payload.find(' ') + 1, nullptr, 10);
        if (measuring && sent >= warm_until) {
          latency_us.push_back(static_cast<uint32_t>((t - sent) / 1000));
          ++deliveries;
        }
        if (--remaining[static_cast<size_t>(seq % window)] == 0) send_next();
      }
      c.buf.erase(0, pos);
    }
  }
  double secs = static_cast<double>(stop_at - warm_until) / 1e9;
  std::sort(latency_us.begin(), latency_us.end());
  auto pct = [&](double p) {
    if (latency_us.empty()) return 0.0;
    return latency_us[static_cast<size_t>(p * static_cast<double>(latency_us.size() - 1))] / 1000.0;
  };
  printf("%.0f %.2f %.2f\n", static_cast<double>(deliveries) / secs, pct(0.5), pct(0.99));
  for (auto& c : conns) ::close(c.fd);
  return 0;
}

long rss_kb(int pid) {
  std::ifstream f("/proc/" + std::to_string(pid) + "/status");
  std::string line;
  while (std::getline(f, line)) {
    if (line.rfind("RssAnon:", 0) == 0) return std::atol(line.c_str() + 8);
  }
  return -1;
}

int idle(int argc, char** argv) {
  int port = arg(argc, argv, "--port", 8787);
  int pid = arg(argc, argv, "--pid", 0);
  int sockets = arg(argc, argv, "--sockets", 10000);
  int per_room = arg(argc, argv, "--per-room", 1000);
  int settle_ms = arg(argc, argv, "--settle-ms", 2000);
  // Warm up: one socket, so the first room's set-up is not counted per socket.
  Conn warm = open_socket(port, "/room/idle-warm/websocket");
  std::this_thread::sleep_for(std::chrono::milliseconds(settle_ms));
  long before = rss_kb(pid);
  std::vector<int> fds;
  fds.reserve(static_cast<size_t>(sockets));
  std::string tag = std::to_string(now_ns() % 1000000);
  for (int i = 0; i < sockets; ++i) {
    Conn c = open_socket(port, "/room/idle-" + tag + "-" + std::to_string(i / per_room) +
                                   "/websocket");
    if (c.fd < 0) {
      fprintf(stderr, "stopped at %d sockets: %s\n", i, strerror(errno));
      break;
    }
    fds.push_back(c.fd);
    if ((i + 1) % 2000 == 0) fprintf(stderr, "  %d sockets open\n", i + 1);
  }
  // The rooms go idle and are evicted (hibernate) while their sockets stay.
  std::this_thread::sleep_for(std::chrono::milliseconds(settle_ms));
  long after = rss_kb(pid);
  // Every socket still answers: a ping gets its pong from the server.
  int alive = 0;
  const uint8_t mask[4] = {1, 2, 3, 4};
  std::string ping = ws::encode_frame(ws::kPing, "x", mask);
  for (int fd : fds) send_all(fd, ping);
  for (int fd : fds) {
    pollfd p{fd, POLLIN, 0};
    char tmp[64];
    if (::poll(&p, 1, 2000) > 0 && ::recv(fd, tmp, sizeof tmp, 0) > 0) ++alive;
  }
  double per = fds.empty() ? 0 : static_cast<double>(after - before) * 1024.0 / fds.size();
  printf("%d %.0f\n", alive, per);
  for (int fd : fds) ::close(fd);
  if (warm.fd >= 0) ::close(warm.fd);
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  std::string mode = argc > 1 ? argv[1] : "";
  if (mode == "broadcast") return broadcast(argc, argv);
  if (mode == "idle") return idle(argc, argv);
  fprintf(stderr, "usage: dobj-ws-bench broadcast|idle --port P ... (see the source's header)\n");
  return 2;
}
