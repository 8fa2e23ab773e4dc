// dobj-cluster-chaos: faults against a real cluster (three etcd members and
// three dobj-examples nodes on loopback) while clients increment counters
// through random nodes, then a check of every answer. Not a test: it
// reports; docs/reliability.md has its numbers.
//
//   dobj-cluster-chaos --bin build/release/examples/dobj-examples
//       [--faults 100] [--replicas 3] [--min-copies 1] [--counters 40] [--clients 8] [--seed 1]
//
// Faults, one node at a time, in turn: SIGKILL then a restart 1-4 s later,
// or SIGSTOP for 1-4 s then SIGCONT (past the 2 s lease: the node is fenced
// and its partitions move). After each fault the cluster is let settle.
//
// The check, per counter (an increment answers the counter's new value):
//   lost       final value below the number of acknowledged increments, or
//              below the largest value an increment answered
//   duplicate  two acknowledged increments that answered the same value (two
//              live instances, or a write lost and redone)
//   phantom    final value above the increments attempted
// and, from the nodes' activation traces (--trace-activations), any answer
// one node released while another node had already started an event of the
// same counter (a double activation), or a takeover at an epoch not newer.
// Unavailability: for each counter, each stretch from its first failed
// increment to its next acknowledged one; p50, p99 and max over all. A
// request sent to a node killed by the driver is not a failure of the
// cluster (a client or load balancer goes to another node): it is counted
// apart and starts no stretch, so the outages that begin during a kill
// measure failover, the wait for a dead owner's partitions to be served
// through a surviving node.
#include <signal.h>
#include <sys/wait.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <mutex>
#include <random>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "support/cluster.h"
#include "testing/http_client.h"
#include "testing/temp_dir.h"

using namespace dobj::test;
using Clock = std::chrono::steady_clock;

namespace {

struct Counter {
  std::mutex mu;
  uint64_t attempted = 0;
  uint64_t acked = 0;
  std::vector<int64_t> answered;             // values of acknowledged increments
  std::optional<Clock::time_point> failing;  // since the first failure of a stretch
  bool failing_in_kill = false;              // that failure came while a node was killed
  std::vector<double> outages_ms;
  std::vector<double> kill_outages_ms;       // the outages that began during a kill
};

double percentile(std::vector<double> v, double p) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  size_t i = static_cast<size_t>(p * static_cast<double>(v.size() - 1) + 0.5);
  return v[std::min(i, v.size() - 1)];
}

}  // namespace

int main(int argc, char** argv) {
  std::string bin;
  int faults = 100, replicas = 3, min_copies = 1, counters = 40, clients = 8, lease_ms = 2000;
  unsigned seed = 1;
  for (int i = 1; i + 1 < argc; i += 2) {
    std::string k = argv[i], v = argv[i + 1];
    if (k == "--bin") bin = v;
    else if (k == "--faults") faults = std::atoi(v.c_str());
    else if (k == "--replicas") replicas = std::atoi(v.c_str());
    else if (k == "--min-copies") min_copies = std::atoi(v.c_str());
    else if (k == "--counters") counters = std::atoi(v.c_str());
    else if (k == "--clients") clients = std::atoi(v.c_str());
    else if (k == "--seed") seed = static_cast<unsigned>(std::atoi(v.c_str()));
    else if (k == "--lease-ms") lease_ms = std::atoi(v.c_str());
  }
  if (bin.empty() || !have_etcd()) {
    std::fprintf(stderr, "usage: %s --bin path/to/dobj-examples [--faults N] ... (needs etcd-server)\n", argv[0]);
    return 2;
  }
  TempDir dir;
  if (std::getenv("DOBJ_KEEP_CLUSTER_DIR")) {  // the nodes' and etcd's logs, to read after a run
    dir.keep();
    std::fprintf(stderr, "keeping %s\n", dir.path().c_str());
  }
  EtcdCluster etcd(dir.path() + "/etcd", 3);
  if (!etcd.ready()) {
    std::fprintf(stderr, "etcd did not start\n");
    return 1;
  }
  NodeSet nodes({bin, {}}, dir.path(), etcd.endpoints(), 3,
                {"--lease-ms", std::to_string(lease_ms), "--replicas", std::to_string(replicas), "--min-copies",
                 std::to_string(min_copies)});
  if (!nodes.start() || !nodes.wait_ready(std::chrono::seconds(60))) {
    std::fprintf(stderr, "the cluster did not start: %s\n", nodes.failure().c_str());
    return 1;
  }
  // Ports change when a node restarts: clients read them under this lock.
  std::mutex ports_mu;
  std::vector<int> ports = {nodes.node(0).port(), nodes.node(1).port(), nodes.node(2).port()};
  std::vector<Counter> state(static_cast<size_t>(counters));
  std::atomic<bool> stop{false};
  std::atomic<uint64_t> sent{0}, ok{0};
  std::atomic<bool> killed{false};  // a node is down by SIGKILL now
  std::set<int> dead_ports;         // of nodes the driver killed (under ports_mu)
  std::atomic<uint64_t> to_dead{0};  // requests that went to a killed node
  auto start = Clock::now();

  std::vector<std::thread> workers;
  for (int t = 0; t < clients; ++t) {
    workers.emplace_back([&, t] {
      std::mt19937 rng(seed * 1000 + static_cast<unsigned>(t));
      while (!stop) {
        size_t c = rng() % state.size();
        int port;
        {
          std::lock_guard lock(ports_mu);
          port = ports[rng() % ports.size()];
        }
        Counter& k = state[c];
        {
          std::lock_guard lock(k.mu);
          ++k.attempted;
        }
        HttpClient client(port, std::chrono::seconds(10));
        HttpResponse r = client.request("POST", "/counter/chaos" + std::to_string(c) + "/increment");
        ++sent;
        if (r.status != 200) {
          std::lock_guard lock(ports_mu);
          if (dead_ports.count(port)) {
            ++to_dead;
            continue;
          }
        }
        std::lock_guard lock(k.mu);
        if (r.status == 200) {
          ++ok;
          ++k.acked;
          k.answered.push_back(std::atoll(r.body.c_str()));
          if (k.failing) {
            double ms = std::chrono::duration<double, std::milli>(Clock::now() - *k.failing).count();
            k.outages_ms.push_back(ms);
            if (k.failing_in_kill) k.kill_outages_ms.push_back(ms);
            k.failing.reset();
          }
        } else if (!k.failing) {
          k.failing = Clock::now();
          k.failing_in_kill = killed;
        }
      }
    });
  }

  // Starts node i again; the clients send to its new port.
  auto restart = [&](size_t i) {
    if (!nodes.restart(i)) {
      std::fprintf(stderr, "node %zu did not restart: %s\n", i, nodes.failure().c_str());
      stop = true;
      return false;
    }
    std::lock_guard lock(ports_mu);
    ports[i] = nodes.node(i).port();
    dead_ports.erase(ports[i]);  // the system may hand a port out again
    return true;
  };
  std::mt19937 rng(seed);
  int kills = 0, pauses = 0, not_ready = 0, exits = 0;
  std::vector<double> settle_s;  // from healing a fault until every node is ready
  for (int f = 0; f < faults; ++f) {
    size_t n = rng() % 3;
    auto hold = std::chrono::milliseconds(1000 + rng() % 3000);
    std::this_thread::sleep_for(std::chrono::milliseconds(500 + rng() % 1000));
    if (f % 2 == 0) {
      ++kills;
      killed = true;
      {
        std::lock_guard lock(ports_mu);
        dead_ports.insert(ports[n]);
      }
      nodes.node(n).stop(SIGKILL);
      std::this_thread::sleep_for(hold);
      killed = false;
      if (!restart(n)) break;
    } else {
      ++pauses;
      pid_t pid = nodes.node(n).pid();
      if (pid <= 0) continue;  // never kill(-1, ...)
      ::kill(pid, SIGSTOP);
      std::this_thread::sleep_for(hold);
      ::kill(pid, SIGCONT);
      std::this_thread::sleep_for(std::chrono::milliseconds(500));  // time to notice its lease ended
    }
    // Wait until every node is ready, as a supervisor would: a node that
    // exited is started again. (A node paused past its lease while commits
    // of its objects waited for their backups exits with 75 by design,
    // docs/cluster.md.)
    auto healed = Clock::now();
    bool ready = false;
    while (!ready && !stop && Clock::now() - healed < std::chrono::seconds(60)) {
      for (size_t i = 0; i < nodes.size(); ++i) {
        int status = 0;
        if (!nodes.node(i).exited(&status)) continue;
        ++exits;
        std::fprintf(stderr, "  n%zu exited (%s %d): restarted\n", i + 1,
                     WIFEXITED(status) ? "status" : "signal",
                     WIFEXITED(status) ? WEXITSTATUS(status) : WTERMSIG(status));
        if (!restart(i)) break;
      }
      ready = nodes.wait_ready(std::chrono::seconds(2));
    }
    if (!ready) {
      ++not_ready;
      // What each node says of itself, for the report.
      for (size_t i = 0; i < nodes.size(); ++i) {
        auto j = nlohmann::json::parse(nodes.status(i), nullptr, false);
        if (!j.is_object()) {
          std::fprintf(stderr, "  not ready: n%zu does not answer\n", i + 1);
          continue;
        }
        int dead_owner = 0;
        for (const auto& p : j["partitions"]) dead_owner += !p.value("owner_live", false);
        std::fprintf(stderr, "  not ready: n%zu lease_live=%d unplaced=%d owned=%d serving=%d partitions with a dead owner=%d\n",
                     i + 1, j.value("lease_live", false), j.value("unplaced", -1), j.value("owned", -1),
                     j.value("serving", -1), dead_owner);
      }
    }
    double settle = std::chrono::duration<double>(Clock::now() - healed).count();
    settle_s.push_back(settle);
    std::fprintf(stderr, "fault %d/%d: %s n%zu for %lld ms, ready %.1f s later\n", f + 1, faults,
                 f % 2 == 0 ? "kill" : "pause", n + 1, static_cast<long long>(hold.count()), settle);
  }
  std::this_thread::sleep_for(std::chrono::seconds(2));
  stop = true;
  for (auto& w : workers) w.join();
  double seconds = std::chrono::duration<double>(Clock::now() - start).count();
  std::fprintf(stderr, "\n");
  nodes.wait_ready(std::chrono::seconds(60));

  // The final values, read through any node (retried while a partition settles).
  uint64_t lost = 0, duplicate = 0, phantom = 0;
  std::vector<double> outages, kill_outages;
  for (size_t c = 0; c < state.size(); ++c) {
    Counter& k = state[c];
    int64_t value = -1;
    HttpResponse last;
    for (int attempt = 0; attempt < 100 && value < 0; ++attempt) {
      HttpClient client(nodes.node(static_cast<size_t>(attempt) % 3).port(), std::chrono::seconds(10));
      last = client.request("GET", "/counter/chaos" + std::to_string(c));
      if (last.status == 200) value = std::atoll(last.body.c_str());
      else std::this_thread::sleep_for(std::chrono::milliseconds(200));
    }
    if (value < 0) std::printf("counter chaos%zu: the last read answered %d %s\n", c, last.status, last.body.c_str());
    std::set<int64_t> distinct(k.answered.begin(), k.answered.end());
    int64_t largest = k.answered.empty() ? 0 : *distinct.rbegin();
    if (value < 0) {
      std::printf("counter chaos%zu: no final value could be read\n", c);
      ++lost;
      continue;
    }
    if (static_cast<uint64_t>(value) < k.acked || value < largest) {
      ++lost;
      std::printf("LOST: chaos%zu ends at %lld with %llu acknowledged (largest answer %lld)\n", c,
                  static_cast<long long>(value), static_cast<unsigned long long>(k.acked),
                  static_cast<long long>(largest));
    }
    if (distinct.size() != k.answered.size()) {
      duplicate += k.answered.size() - distinct.size();
      std::printf("DUPLICATE: chaos%zu answered the same value to %zu increments\n", c,
                  k.answered.size() - distinct.size());
    }
    if (static_cast<uint64_t>(value) > k.attempted) {
      ++phantom;
      std::printf("PHANTOM: chaos%zu ends at %lld after %llu attempts\n", c, static_cast<long long>(value),
                  static_cast<unsigned long long>(k.attempted));
    }
    outages.insert(outages.end(), k.outages_ms.begin(), k.outages_ms.end());
    kill_outages.insert(kill_outages.end(), k.kill_outages_ms.begin(), k.kill_outages_ms.end());
  }
  if (std::getenv("DOBJ_KEEP_CLUSTER_DIR")) {
    for (size_t i = 0; i < nodes.size(); ++i) {
      std::ofstream(dir.path() + "/" + nodes.node_id(i) + ".log") << nodes.node(i).output();
    }
  }
  // Every node traced each answer it released: no two ran one counter at once.
  ActivationCheck trace = check_activations(nodes.trace_files());
  for (const auto& e : trace.examples) std::printf("DOUBLE ACTIVATION: %s\n", e.c_str());
  std::printf("activation trace: %zu answers, %zu hand-overs between nodes, %zu overlaps\n", trace.answers,
              trace.handovers, trace.violations);
  std::printf("| faults | kills | pauses | replicas | min copies | requests | acknowledged | counters lost | duplicate answers | phantom | double activations (trace) | outages | outage p50 ms | p99 ms | max ms | not ready after a fault | nodes that exited (restarted) | settle p50 s | settle max s | seconds |\n");
  std::printf("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n");
  std::printf("| %d | %d | %d | %d | %d | %llu | %llu | %llu | %llu | %llu | %zu | %zu | %.0f | %.0f | %.0f | %d | %d | %.1f | %.1f | %.0f |\n",
              kills + pauses, kills, pauses, replicas, min_copies, static_cast<unsigned long long>(sent.load()),
              static_cast<unsigned long long>(ok.load()), static_cast<unsigned long long>(lost),
              static_cast<unsigned long long>(duplicate), static_cast<unsigned long long>(phantom), trace.violations,
              outages.size(), percentile(outages, 0.5), percentile(outages, 0.99), percentile(outages, 1.0),
              not_ready, exits, percentile(settle_s, 0.5), percentile(settle_s, 1.0), seconds);
  // Failover as clients see it: outages that began while a node was killed
  // (from a counter's first failed increment to its next acknowledged one).
  std::printf("lease %d ms; outages that began during a kill: %zu, p50 %.0f ms, p99 %.0f ms, max %.0f ms; "
              "requests to a killed node (not counted as failures): %llu\n",
              lease_ms, kill_outages.size(), percentile(kill_outages, 0.5), percentile(kill_outages, 0.99),
              percentile(kill_outages, 1.0), static_cast<unsigned long long>(to_dead.load()));
  return lost + duplicate + phantom + trace.violations > 0 ? 1 : 0;
}
