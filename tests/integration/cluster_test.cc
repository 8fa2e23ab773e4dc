// A cluster of real processes: three etcd members and three dobj nodes (the
// example server) on loopback ports. Skipped when etcd is not installed.
#include "support/cluster.h"
#include "support/mixed_load.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <sched.h>
#include <signal.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <mutex>
#include <nlohmann/json.hpp>
#include <random>
#include <set>
#include <thread>

#include "testing/http_client.h"
#include "testing/temp_dir.h"
#include "testing/ws_client.h"

namespace dobj::test {
namespace {

using nlohmann::json;
using namespace std::chrono_literals;

// A short lease keeps the tests quick; etcd counts it in whole seconds.
const std::vector<std::string> kNodeArgs = {"--lease-ms", "2000"};

class ClusterTest : public ::testing::Test {
 protected:
  void SetUp() override { start_cluster(kNodeArgs); }

  // Every test, whatever it did to the nodes: no two nodes ever ran one
  // object at once (their activation traces, support/cluster.h).
  void TearDown() override {
    if (!nodes_) return;
    ActivationCheck check = check_activations(nodes_->trace_files());
    std::string examples;
    for (const auto& e : check.examples) examples += "\n  " + e;
    EXPECT_EQ(check.violations, 0u) << examples;
    std::printf("activation trace: %zu answers of %zu objects, %zu hand-overs between nodes, %zu overlaps\n",
                check.answers, check.objects, check.handovers, check.violations);
  }

  // Three etcd members, then three nodes with these flags, all ready.
  void start_cluster(const std::vector<std::string>& node_args, ServerCommand binary = {DOBJ_EXAMPLES_BIN, {}},
                     int node_count = 3) {
    if (!have_etcd()) GTEST_SKIP() << "etcd is not installed (scripts/deps.sh etcd-server)";
    if (std::getenv("DOBJ_KEEP_CLUSTER_DIR")) dir_.keep();  // to read the etcd logs after a failure
    etcd_ = std::make_unique<EtcdCluster>(dir_.path() + "/etcd", 3);
    ASSERT_TRUE(etcd_->ready()) << "etcd did not start";
    nodes_ = std::make_unique<NodeSet>(binary, dir_.path(), etcd_->endpoints(), node_count, node_args);
    if (first_uid_ >= 0) nodes_->run_as_users(first_uid_);
    for (const auto& [i, args] : node_args_) nodes_->add_node_args(i, args);
    ASSERT_TRUE(nodes_->start()) << nodes_->failure();
    ASSERT_TRUE(nodes_->wait_ready(30s)) << nodes_->failure();
  }

  // The usual nodes with `--replicas replicas`.
  void start_replicated(int replicas, int node_count = 3) {
    std::vector<std::string> args = kNodeArgs;
    args.insert(args.end(), {"--replicas", std::to_string(replicas)});
    start_cluster(args, {DOBJ_EXAMPLES_BIN, {}}, node_count);
  }

  // The index of the node that serves ns/name, as an inspect through node
  // `ask` answers (`inspect`: the answer); nodes_->size() when it names none.
  size_t serving_node(const std::string& ns, const std::string& name, size_t ask, HttpResponse* inspect) {
    HttpClient admin(nodes_->node(ask).port());
    *inspect = admin.request("GET", "/_dobj/objects/" + ns + "/name:" + name, "",
                             {{"authorization", std::string("Bearer ") + NodeSet::kToken}});
    std::string owner = inspect->status == 200 ? json::parse(inspect->body, nullptr, false).value("node", "") : "";
    size_t i = 0;
    while (i < nodes_->size() && nodes_->node_id(i) != owner) ++i;
    return i;
  }
  // The same through node 1 by default; fails the test when no node is.
  size_t owner_of(const std::string& ns, const std::string& name, size_t ask = 1) {
    HttpResponse inspect;
    size_t i = serving_node(ns, name, ask, &inspect);
    EXPECT_EQ(inspect.status, 200) << inspect.body;
    EXPECT_LT(i, nodes_->size()) << "no node is the owner: " << inspect.body;
    return i;
  }
  HttpResponse post(size_t node, const std::string& target) {
    return http(nodes_->node(node).port(), "POST", target);
  }
  HttpResponse get(size_t node, const std::string& target) {
    return http(nodes_->node(node).port(), "GET", target);
  }
  // The objects of namespace ns in the catalog, as node lists it for the
  // whole cluster (page by page): how many times each is listed, by name, or
  // by "id:<hex>" for one listed without a name.
  std::map<std::string, int> listed_objects(size_t node, const std::string& ns) {
    std::map<std::string, int> listed;
    std::string cursor;
    for (int page = 0; page < 50; ++page) {
      HttpClient admin(nodes_->node(node).port());
      auto r = admin.request("GET",
                             "/_dobj/objects?namespace=" + ns + "&limit=8" + (cursor.empty() ? "" : "&cursor=" + cursor),
                             "", {{"authorization", std::string("Bearer ") + NodeSet::kToken}});
      EXPECT_EQ(r.status, 200) << r.body;
      json j = json::parse(r.body, nullptr, false);
      if (!j.is_object()) break;
      for (const auto& o : j["objects"]) {
        ++listed[o["name"].is_string() ? o["name"].get<std::string>() : "id:" + o["id"].get<std::string>()];
      }
      if (!j["nextCursor"].is_string()) break;
      cursor = j["nextCursor"];
    }
    return listed;
  }
  // GET through node until it answers 200 (its object's partition moved to
  // a live node) or the deadline passes; the last answer.
  HttpResponse get_once_served(size_t node, const std::string& target,
                               std::chrono::steady_clock::time_point deadline) {
    HttpResponse r;
    do {
      r = get(node, target);
      if (r.status == 200) break;
      std::this_thread::sleep_for(100ms);
    } while (std::chrono::steady_clock::now() < deadline);
    return r;
  }
  // Each counter /counter/<prefix><c> that had increments attempted, read
  // through node via(c) (once served, waiting up to `within`), holds every
  // acknowledged increment and no more than were attempted (an unanswered
  // one may have been applied).
  void expect_counters(const std::string& prefix, const std::map<int, int>& acked,
                       const std::map<int, int>& attempted, const std::function<size_t(int)>& via,
                       std::chrono::seconds within) {
    for (const auto& [c, tries] : attempted) {
      HttpResponse r = get_once_served(via(c), "/counter/" + prefix + std::to_string(c),
                                       std::chrono::steady_clock::now() + within);
      ASSERT_EQ(r.status, 200) << "counter " << prefix << c << ": " << r.body;
      auto ok = acked.find(c);
      EXPECT_GE(std::stoi(r.body), ok == acked.end() ? 0 : ok->second) << "counter " << prefix << c;
      EXPECT_LE(std::stoi(r.body), tries) << "counter " << prefix << c;
    }
  }

  TempDir dir_;
  std::unique_ptr<EtcdCluster> etcd_;
  std::unique_ptr<NodeSet> nodes_;
  int first_uid_ = -1;  // >= 0: node i runs as user first_uid_ + i
  std::map<size_t, std::vector<std::string>> node_args_;  // flags of node i alone
};

TEST_F(ClusterTest, OneNameIsOneObjectThroughEveryNode) {
  for (int c = 0; c < 20; ++c) {
    std::string target = "/counter/c" + std::to_string(c);
    for (int k = 1; k <= 6; ++k) {
      auto r = post(static_cast<size_t>((c + k) % 3), target + "/increment");
      ASSERT_EQ(r.status, 200) << r.body;
      EXPECT_EQ(r.body, std::to_string(k)) << target << " through node " << (c + k) % 3;
    }
  }
  auto put = http(nodes_->node(0).port(), "PUT", "/kv/shared/colour", "\"teal\"");
  ASSERT_EQ(put.status, 200) << put.body;
  for (size_t n = 0; n < 3; ++n) {
    auto r = get(n, "/kv/shared/colour");
    EXPECT_EQ(r.status, 200);
    EXPECT_EQ(r.body, "\"teal\"") << "through node " << n;
  }
  // Every node sees the same owner for every partition, and each owns some.
  std::vector<json> views;
  for (size_t n = 0; n < 3; ++n) views.push_back(json::parse(nodes_->status(n)));
  for (size_t p = 0; p < views[0]["partitions"].size(); ++p) {
    EXPECT_EQ(views[0]["partitions"][p]["owner"], views[1]["partitions"][p]["owner"]);
    EXPECT_EQ(views[0]["partitions"][p]["owner"], views[2]["partitions"][p]["owner"]);
  }
  for (size_t n = 0; n < 3; ++n) EXPECT_GT(views[n]["owned"].get<int>(), 0) << nodes_->node_id(n);
  // Any node's /_dobj/metrics is the cluster's: each increment counted once,
  // on the node that ran it, and every node named.
  for (size_t n = 0; n < 3; ++n) {
    HttpClient c(nodes_->node(n).port());
    auto r = c.request("GET", "/_dobj/metrics", "", {{"Authorization", std::string("Bearer ") + NodeSet::kToken}});
    ASSERT_EQ(r.status, 200) << r.body;
    json m = json::parse(r.body);
    EXPECT_EQ(m["namespaces"]["COUNTER"]["requests"], 120) << "via node " << n;
    EXPECT_EQ(m["nodes"]["answered"].size(), 3u) << r.body.substr(0, 300);
    EXPECT_EQ(m["nodes"]["unreachable"], json::array());
    EXPECT_EQ(m["nodes"]["answered"][0], nodes_->node_id(n));  // the node asked, first
  }
}

// A WebSocket to any node reaches the room's one object: a node that does not
// serve the room relays the socket to the one that does, both ways; when that
// node dies, the relayed sockets close with 1012 and the others go on.
TEST_F(ClusterTest, WebSocketsThroughAnyNodeMeetInTheirRoomAndCloseWith1012WhenItsNodeDies) {
  // At least 9 rooms, and more until n2 serves some and not all of them
  // (placement is by hash, so any fixed set of names can miss a node).
  std::vector<std::unique_ptr<WsClient>> via0, via2;
  std::vector<bool> on_n2;
  auto served_by_n2 = [&] { return std::count(on_n2.begin(), on_n2.end(), true); };
  for (int r = 0; r < 9 || served_by_n2() == 0 || served_by_n2() == static_cast<long>(on_n2.size()); ++r) {
    ASSERT_LT(r, 60) << "placement never put a room on n2 and one elsewhere";
    std::string path = "/room/r" + std::to_string(r) + "/websocket";
    via0.push_back(std::make_unique<WsClient>(nodes_->node(0).port(), path));
    via2.push_back(std::make_unique<WsClient>(nodes_->node(2).port(), path));
    ASSERT_TRUE(via0.back()->connected()) << via0.back()->upgrade_response().status << " "
                                          << via0.back()->upgrade_response().body;
    ASSERT_TRUE(via2.back()->connected()) << via2.back()->upgrade_response().body;
    on_n2.push_back(owner_of("CHAT_ROOM", "r" + std::to_string(r)) == 1);
  }
  const int rooms = static_cast<int>(via0.size());
  for (int r = 0; r < rooms; ++r) {
    std::string room = "/room/r" + std::to_string(r);
    // One object per room, whichever node is asked.
    for (size_t n = 0; n < 3; ++n) EXPECT_EQ(get(n, room + "/count").body, "2") << room << " via " << n;
    ASSERT_TRUE(via0[r]->send_text("hello from 0 in r" + std::to_string(r)));
    for (auto* c : {via0[r].get(), via2[r].get()}) {
      EXPECT_EQ(c->next_message(), "hello from 0 in r" + std::to_string(r));
    }
    ASSERT_TRUE(via2[r]->send_text(std::string(70'000, 'x')));  // a frame with a 64-bit length
    for (auto* c : {via0[r].get(), via2[r].get()}) EXPECT_EQ(c->next_message()->size(), 70'000u);
  }
  // Node n2 dies: the rooms it served answer 503 through the others, and
  // their relayed sockets close with 1012 (reconnect); every other room's
  // sockets go on.
  EXPECT_EQ(nodes_->node(1).stop(SIGKILL), 128 + SIGKILL);
  for (int r = 0; r < rooms; ++r) {
    std::string room = "/room/r" + std::to_string(r);
    if (on_n2[r]) {
      EXPECT_EQ(get(0, room + "/count").status, 503) << room;
      for (auto* c : {via0[r].get(), via2[r].get()}) EXPECT_EQ(c->await_close().first, 1012) << room;
    } else {
      EXPECT_EQ(get(0, room + "/count").status, 200) << room;
      ASSERT_TRUE(via2[r]->send_text("still here"));
      for (auto* c : {via0[r].get(), via2[r].get()}) EXPECT_EQ(c->next_message(), "still here") << room;
    }
  }
}

TEST_F(ClusterTest, AKilledNodesObjectsWaitForItAndKeepEveryAcknowledgedWrite) {
  constexpr int kCounters = 30;
  std::map<int, int> acked, attempted;
  std::mt19937 random(7);
  auto increment = [&](int c) {
    ++attempted[c];
    auto r = post(random() % 3 == 0 ? 0 : random() % 2 + 1,
                  "/counter/k" + std::to_string(c) + "/increment");
    if (r.status == 200) ++acked[c];
    return r;
  };
  // Only nodes 0 and 2 take requests once node 1 is down.
  auto increment_via_live = [&](int c) {
    ++attempted[c];
    auto r = post(random() % 2 == 0 ? 0 : 2, "/counter/k" + std::to_string(c) + "/increment");
    if (r.status == 200) ++acked[c];
    return r;
  };
  for (int round = 0; round < 3; ++round) {
    for (int c = 0; c < kCounters; ++c) ASSERT_EQ(increment(c).status, 200);
  }
  EXPECT_EQ(nodes_->node(1).stop(SIGKILL), 128 + SIGKILL);
  // The dead node's objects answer 503 naming it; every other object goes on.
  int waiting = 0;
  for (int c = 0; c < kCounters; ++c) {
    auto r = increment_via_live(c);
    if (r.status == 503) {
      ++waiting;
      EXPECT_NE(r.body.find("n2"), std::string::npos) << r.body;
    } else {
      EXPECT_EQ(r.status, 200) << r.body;
    }
  }
  EXPECT_GT(waiting, 0) << "node n2 owned none of 30 counters";
  EXPECT_LT(waiting, kCounters);
  ASSERT_TRUE(nodes_->restart(1)) << nodes_->failure();
  ASSERT_TRUE(nodes_->wait_ready(30s)) << nodes_->failure();
  for (int c = 0; c < kCounters; ++c) {
    auto r = increment(c);
    ASSERT_EQ(r.status, 200) << "counter k" << c << ": " << r.body;
  }
  // No acknowledged increment lost; none counted that was never sent.
  for (int c = 0; c < kCounters; ++c) {
    auto r = get(static_cast<size_t>(c % 3), "/counter/k" + std::to_string(c));
    ASSERT_EQ(r.status, 200);
    int value = std::stoi(r.body);
    EXPECT_GE(value, acked[c]) << "counter k" << c;
    EXPECT_LE(value, attempted[c]) << "counter k" << c;
  }
}

TEST_F(ClusterTest, TheAdminPlaneOfAnyNodeCoversEveryObject) {
  for (int c = 0; c < 30; ++c) {
    ASSERT_EQ(
        post(static_cast<size_t>(c % 3), "/counter/a" + std::to_string(c) + "/increment").status,
        200);
  }
  auto admin = [&](size_t node, const std::string& method, const std::string& target,
                   const std::string& body = "") {
    HttpClient c(nodes_->node(node).port());
    return c.request(method, target, body,
                     {{"authorization", std::string("Bearer ") + NodeSet::kToken}});
  };
  // The catalog of node 2, seven at a time, lists every node's objects once,
  // in order across pages (the catalog catches up within seconds).
  for (const std::string sort : {"id", "bytes", "name"}) {
    std::vector<std::string> ids;
    std::set<std::string> names;
    auto deadline = std::chrono::steady_clock::now() + 20s;
    while (names.size() < 30 && std::chrono::steady_clock::now() < deadline) {
      ids.clear();
      names.clear();
      std::string cursor;
      for (int page = 0; page < 10; ++page) {
        auto r = admin(1, "GET",
                       "/_dobj/objects?namespace=COUNTER&limit=7&sort=" + sort +
                           (cursor.empty() ? "" : "&cursor=" + cursor));
        ASSERT_EQ(r.status, 200) << r.body;
        json j = json::parse(r.body);
        EXPECT_TRUE(j["unreachableNodes"].empty());
        for (const auto& o : j["objects"]) {
          ids.push_back(o["id"]);
          names.insert(o["name"].get<std::string>());
        }
        if (j["nextCursor"].is_null()) break;
        cursor = j["nextCursor"];
      }
      if (names.size() < 30) std::this_thread::sleep_for(200ms);
    }
    EXPECT_EQ(ids.size(), 30u) << "sort " << sort;
    EXPECT_EQ(names.size(), 30u) << "sort " << sort;
    if (sort == "id") {
      EXPECT_TRUE(std::is_sorted(ids.begin(), ids.end()));
    }
  }
  // Inspect, SQL, export, import and delete reach each object's node from any node.
  for (int c = 0; c < 6; ++c) {
    std::string object = "/_dobj/objects/COUNTER/name:a" + std::to_string(c);
    auto inspected = admin(static_cast<size_t>(c % 3), "GET", object);
    ASSERT_EQ(inspected.status, 200) << inspected.body;
    EXPECT_TRUE(json::parse(inspected.body)["exists"].get<bool>());
    auto rows = admin(static_cast<size_t>((c + 1) % 3), "POST", object + "/sql",
                      R"({"query":"SELECT count(*) FROM _dobj_kv"})");
    ASSERT_EQ(rows.status, 200) << rows.body;
    EXPECT_EQ(json::parse(rows.body)["rows"][0][0], 1);
  }
  auto exported = admin(0, "GET", "/_dobj/objects/COUNTER/name:a1/export");
  ASSERT_EQ(exported.status, 200) << exported.body;
  for (int k = 0; k < 3; ++k) {
    auto imported =
        admin(static_cast<size_t>(k), "PUT",
              "/_dobj/objects/COUNTER/name:copy" + std::to_string(k) + "/import", exported.body);
    ASSERT_EQ(imported.status, 200) << imported.body;
    EXPECT_EQ(get(static_cast<size_t>((k + 1) % 3), "/counter/copy" + std::to_string(k)).body, "1");
  }
  auto deleted = admin(2, "DELETE", "/_dobj/objects/COUNTER/name:a2");
  ASSERT_EQ(deleted.status, 200) << deleted.body;
  EXPECT_EQ(get(0, "/counter/a2").body, "0");
  // Without the admin token, nothing reaches a peer.
  HttpClient anonymous(nodes_->node(0).port());
  EXPECT_EQ(anonymous.request("GET", "/_dobj/objects/COUNTER/name:a3").status, 401);
}

TEST_F(ClusterTest, ASecondProcessWithALiveNodesIdServesNoneOfItsObjects) {
  // At least 12 counters, and more until n1 serves one of them.
  int counters = 0;
  for (bool on_n1 = false; counters < 12 || !on_n1; ++counters) {
    ASSERT_LT(counters, 60) << "placement never put a counter on n1";
    ASSERT_EQ(post(0, "/counter/d" + std::to_string(counters) + "/increment").status, 200);
    on_n1 = on_n1 || owner_of("COUNTER", "d" + std::to_string(counters)) == 0;
  }
  // Another process claims to be n1, with a folder of its own.
  ServerProcess impostor(
      DOBJ_EXAMPLES_BIN, dir_.path() + "/impostor",
      {"--cluster", etcd_->endpoints(), "--node-id", "n1", "--lease-ms", "2000"});
  ASSERT_TRUE(impostor.start(40s)) << impostor.output();
  std::this_thread::sleep_for(3s);  // longer than a lease: it keeps waiting
  int refused = 0;
  for (int c = 0; c < counters; ++c) {
    auto r = http(impostor.port(), "GET", "/counter/d" + std::to_string(c));
    if (r.status == 503) {
      ++refused;
    } else {
      // Objects of n2 and n3, reached through it, are the real ones.
      EXPECT_EQ(r.status, 200);
      EXPECT_EQ(r.body, "1");
    }
  }
  EXPECT_GT(refused, 0) << "n1 owned none of " << counters << " counters";
  EXPECT_NE(impostor.output().find("still registered"), std::string::npos) << impostor.output();
  // The real n1 serves its objects all along.
  for (int c = 0; c < counters; ++c) {
    auto r = get(0, "/counter/d" + std::to_string(c));
    EXPECT_EQ(r.status, 200) << r.body;
    EXPECT_EQ(r.body, "1");
  }
}

TEST_F(ClusterTest, APausedNodeIsFencedCallsToItFailFastAndItComesBackWhole) {
  constexpr int kCounters = 20;
  for (int c = 0; c < kCounters; ++c) {
    ASSERT_EQ(post(0, "/counter/p" + std::to_string(c) + "/increment").status, 200);
  }
  ::kill(nodes_->node(1).pid(), SIGSTOP);
  // A request straight to the paused node waits in its socket.
  HttpResponse to_paused;
  std::thread paused_client([&] {
    HttpClient c(nodes_->node(1).port(), 60s);
    to_paused = c.request("POST", "/counter/p0/increment");
  });
  // Through node 0, calls to the paused node's objects fail once its lease
  // is over (not at the 60 s forward timeout); the others go on.
  // A call that had reached the node before it stopped may have run there
  // (and been copied to its backups); its 503 says so.
  std::map<int, int> acked, unknown;
  auto maybe_applied = [](const HttpResponse& r) {
    return r.body.find("may have been applied") != std::string::npos;
  };
  int refused = 0;
  for (int c = 0; c < kCounters; ++c) {
    auto r = post(0, "/counter/p" + std::to_string(c) + "/increment");
    if (r.status == 200) {
      ++acked[c];
    } else {
      EXPECT_EQ(r.status, 503) << r.body;
      EXPECT_EQ(r.body.find("timed out"), std::string::npos) << r.body;
      ++refused;
      if (maybe_applied(r)) ++unknown[c];
    }
  }
  EXPECT_GT(refused, 0) << "n2 owned none of 20 counters";
  // Resumed, the node first answers what waited with its lease gone (or,
  // had it rejoined first, with a new epoch), then serves again.
  ::kill(nodes_->node(1).pid(), SIGCONT);
  paused_client.join();
  EXPECT_TRUE(to_paused.status == 503 || to_paused.status == 200) << to_paused.status << " " << to_paused.body;
  if (to_paused.status == 200) ++acked[0];
  if (to_paused.status == 503 && maybe_applied(to_paused)) ++unknown[0];
  ASSERT_TRUE(nodes_->wait_ready(30s)) << nodes_->failure();
  for (int c = 0; c < kCounters; ++c) {
    auto r = get(static_cast<size_t>(c % 3), "/counter/p" + std::to_string(c));
    ASSERT_EQ(r.status, 200) << r.body;
    int value = std::stoi(r.body);
    EXPECT_GE(value, 1 + acked[c]) << "counter p" << c << " lost an acknowledged increment";
    EXPECT_LE(value, 1 + acked[c] + unknown[c]) << "counter p" << c << " applied a call refused as not run";
  }
}

TEST_F(ClusterTest, KillingTheEtcdLeaderDoesNotStopTheCluster) {
  for (int c = 0; c < 10; ++c)
    ASSERT_EQ(post(0, "/counter/e" + std::to_string(c) + "/increment").status, 200);
  int leader = etcd_->leader();
  ASSERT_GE(leader, 0);
  etcd_->signal(leader, SIGKILL);
  // Within a few seconds every node serves every object again.
  auto deadline = std::chrono::steady_clock::now() + 20s;
  bool all_ok = false;
  while (!all_ok && std::chrono::steady_clock::now() < deadline) {
    all_ok = true;
    for (int c = 0; c < 10 && all_ok; ++c) {
      for (size_t n = 0; n < 3 && all_ok; ++n) {
        all_ok = get(n, "/counter/e" + std::to_string(c)).status == 200;
      }
    }
    if (!all_ok) std::this_thread::sleep_for(200ms);
  }
  ASSERT_TRUE(all_ok) << nodes_->failure();
  for (int c = 0; c < 10; ++c) {
    auto r = post(static_cast<size_t>(c % 3), "/counter/e" + std::to_string(c) + "/increment");
    EXPECT_EQ(r.status, 200) << r.body;
    EXPECT_EQ(r.body, "2");
  }
}

TEST_F(ClusterTest, WithEtcdUnreachableNodesStopServingThenRecoverWithTheirData) {
  for (int c = 0; c < 10; ++c)
    ASSERT_EQ(post(0, "/counter/f" + std::to_string(c) + "/increment").status, 200);
  for (int m = 0; m < 3; ++m) etcd_->signal(m, SIGSTOP);
  // Past the lease, no node serves anything: safety over availability.
  std::this_thread::sleep_for(3s);
  for (size_t n = 0; n < 3; ++n) {
    auto r = post(n, "/counter/f0/increment");
    EXPECT_EQ(r.status, 503) << "node " << n << ": " << r.body;
  }
  for (int m = 0; m < 3; ++m) etcd_->signal(m, SIGCONT);
  ASSERT_TRUE(nodes_->wait_ready(30s)) << nodes_->failure();
  for (int c = 0; c < 10; ++c) {
    auto r = get(static_cast<size_t>(c % 3), "/counter/f" + std::to_string(c));
    EXPECT_EQ(r.status, 200) << r.body;
    EXPECT_EQ(r.body, "1");
  }
}

#ifdef DOBJ_JS_BIN
// Two nodes serving the JavaScript Worker of tests/js/bridge.
class JsClusterTest : public ClusterTest {
 protected:
  void SetUp() override {
    start_cluster(kNodeArgs, {DOBJ_JS_BIN, {DOBJ_JS_TESTS "/bridge/wrangler.jsonc"}}, 2);
  }
};

// A call to an object on another node fails in its JavaScript caller as one
// on the same node does: the failure's mark crosses the peer link.
TEST_F(JsClusterTest, AFailedCallToAnotherNodeThrowsInTheCallerWithItsMarkers) {
  // Names whose objects (the one called, and the one reset) node 2 serves.
  std::string name;
  for (int i = 0; i < 200 && name.empty(); ++i) {
    std::string n = "x" + std::to_string(i);
    ASSERT_EQ(get(0, "/probe/" + n + "/boots").status, 200);
    ASSERT_EQ(get(0, "/probe/" + n + "-r/boots").status, 200);
    if (owner_of("PROBE", n) == 1 && owner_of("PROBE", n + "-r") == 1) name = n;
  }
  ASSERT_FALSE(name.empty()) << "no name served by node 2";
  HttpResponse r = get(0, "/failures/" + name);
  ASSERT_EQ(r.status, 200) << r.body;
  json j = json::parse(r.body);
  EXPECT_EQ(j["rpc"]["instance"], "RangeError") << j;
  EXPECT_EQ(j["rpc"]["remote"], true) << j;
  EXPECT_EQ(j["fetch"]["remote"], true) << j;
  EXPECT_NE(j["fetch"]["message"].get<std::string>().find("incident"), std::string::npos) << j;
  EXPECT_EQ(j["reset"]["retryable"], true) << j;
  EXPECT_EQ(j["answer"], 404) << j;
  // Not caught by the Worker: the client gets the incident of the node that
  // ran the object, and the Worker's node logs none of its own.
  HttpResponse thrown = get(0, "/probe/" + name + "/throw");
  EXPECT_EQ(thrown.status, 500) << thrown.body;
  EXPECT_NE(thrown.body.find("incident"), std::string::npos) << thrown.body;
  EXPECT_EQ(nodes_->node(0).output().find("worker: unhandled"), std::string::npos) << nodes_->node(0).output();
  // Its node killed, the object cannot be reached: a retryable failure.
  EXPECT_EQ(get(0, "/reach/" + name).body, "answered 200");
  nodes_->node(1).stop(SIGKILL);
  HttpResponse unreachable = get(0, "/reach/" + name);
  ASSERT_EQ(unreachable.status, 200) << unreachable.body;
  json u = json::parse(unreachable.body);
  EXPECT_EQ(u["retryable"], true) << u;
  EXPECT_EQ(u["remote"], false) << u;
}
#endif

// Every partition on three nodes (--replicas 3): the owner and two backups.
class ReplicatedClusterTest : public ClusterTest {
 protected:
  void SetUp() override { start_replicated(3); }
};

// An alarm that keeps failing, whose object's node dies between two runs:
// the new owner goes on with the count of failed runs where the old one was
// (it is in the object's database, replicated with it), and drops the alarm
// after the sixth retry as a single node would.
class AlarmRetryClusterTest : public ClusterTest {
 protected:
  void SetUp() override {
    std::vector<std::string> args = kNodeArgs;
    args.insert(args.end(), {"--replicas", "3", "--alarm-backoff-scale", "0.02"});
    start_cluster(args);
  }
};

TEST_F(AlarmRetryClusterTest, AFailingAlarmsRetryCountMovesWithItsObject) {
  ASSERT_EQ(post(0, "/tasks/stubborn/schedule?delay_ms=50&fail=100").status, 200);
  size_t victim = owner_of("TASK_RUNNER", "stubborn");
  ASSERT_LT(victim, nodes_->size());
  size_t reader = (victim + 1) % nodes_->size();
  auto state = [&] { return json::parse(get(reader, "/tasks/stubborn").body, nullptr, false); };
  auto deadline = std::chrono::steady_clock::now() + 20s;
  json j;
  do {
    j = state();
    if (j.is_object() && j.value("attempts", 0) >= 3) break;
    std::this_thread::sleep_for(10ms);
  } while (std::chrono::steady_clock::now() < deadline);
  ASSERT_GE(j.value("attempts", 0), 3) << j.dump();
  ASSERT_LT(j.value("attempts", 0), 7) << "every run was over before the kill: " << j.dump();
  EXPECT_EQ(nodes_->node(victim).stop(SIGKILL), 128 + SIGKILL);
  deadline = std::chrono::steady_clock::now() + 40s;
  do {
    j = state();
    if (j.is_object() && j.contains("alarm") && j["alarm"].is_null()) break;
    std::this_thread::sleep_for(100ms);
  } while (std::chrono::steady_clock::now() < deadline);
  ASSERT_TRUE(j.is_object() && j["alarm"].is_null()) << j.dump();
  std::this_thread::sleep_for(1s);  // past when a seventh run would come
  j = state();
  std::vector<int> counts = j["retryCounts"].get<std::vector<int>>();
  // 7 runs (retryCount 0 to 6); one more when the run under way at the kill
  // had not committed and ran again.
  ASSERT_GE(counts.size(), 7u) << j.dump();
  EXPECT_LE(counts.size(), 8u) << j.dump();
  EXPECT_EQ(counts.back(), 6) << j.dump();
  for (size_t i = 1; i < counts.size(); ++i) {
    EXPECT_GE(counts[i], counts[i - 1]) << "the count started over: " << j.dump();
  }
}

// An object that keeps a stub (cluster_node.cc's HOLDER) to a counter whose
// node dies: the counter moves to a backup with its writes, and the kept stub
// breaks as it does after a reset (its instance is gone), so the holder gets a
// new one; it never silently reaches the new instance as if nothing happened.
class HeldStubClusterTest : public ClusterTest {
 protected:
  void SetUp() override {
    std::vector<std::string> args = kNodeArgs;
    args.insert(args.end(), {"--replicas", "3"});
    start_cluster(args, {DOBJ_CLUSTER_NODE_BIN, {}});
  }
  // The node that serves an object, as its inspect answers.
  std::string node_of(size_t via, const std::string& ns, const std::string& name) {
    HttpClient c(nodes_->node(via).port());
    auto r = c.request("GET", "/_dobj/objects/" + ns + "/name:" + name, "",
                       {{"Authorization", std::string("Bearer ") + NodeSet::kToken}});
    return r.status == 200 ? json::parse(r.body).value("node", "") : "";
  }
};

TEST_F(HeldStubClusterTest, AStubKeptAcrossAFailoverBreaksAsAfterAResetAndNoWriteIsLost) {
  std::string counter_node = node_of(0, "COUNTER", "held");
  ASSERT_FALSE(counter_node.empty());
  std::string holder;
  for (int h = 0; h < 30 && holder.empty(); ++h) {
    std::string name = "h" + std::to_string(h);
    if (node_of(0, "HOLDER", name) != counter_node) holder = name;
  }
  ASSERT_FALSE(holder.empty()) << "every holder on " << counter_node;
  size_t dead = static_cast<size_t>(counter_node[1] - '1');  // "n2" -> 1
  size_t via = (dead + 1) % 3;
  std::string target = "/holder/" + holder + "/held";
  EXPECT_EQ(post(via, target).body, "1");
  EXPECT_EQ(post(via, target).body, "2");  // through the kept stub
  EXPECT_EQ(nodes_->node(dead).stop(SIGKILL), 128 + SIGKILL);
  // Until a backup takes the counter over: 503 (the stub is kept). Then the
  // kept stub reaches a new instance: a reset error, once.
  HttpResponse r;
  for (int i = 0; i < 300; ++i) {
    r = post(via, target);
    if (r.status != 503) break;
    std::this_thread::sleep_for(100ms);
  }
  EXPECT_EQ(r.status, 500) << r.body;
  EXPECT_NE(r.body.find("\"reset\":true"), std::string::npos) << r.body;
  // A new stub reaches the moved counter, with both acknowledged increments.
  r = post(via, target);
  EXPECT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(r.body, "3");
  EXPECT_NE(node_of(via, "COUNTER", "held"), counter_node);
}

TEST_F(ReplicatedClusterTest, ADeadOwnersObjectsMoveToABackupWithEveryAcknowledgedWrite) {
  constexpr int kCounters = 30;
  std::map<int, int> acked, attempted;
  std::mt19937 random(11);
  auto increment = [&](size_t node, int c) {
    ++attempted[c];
    auto r = post(node, "/counter/r" + std::to_string(c) + "/increment");
    if (r.status == 200) ++acked[c];
    return r;
  };
  for (int round = 0; round < 3; ++round) {
    for (int c = 0; c < kCounters; ++c) ASSERT_EQ(increment(random() % 3, c).status, 200);
  }
  // Alarms due after the kill: the objects that move must fire them on
  // their new node without a request.
  for (int t = 0; t < 10; ++t) {
    ASSERT_EQ(post(0, "/tasks/t" + std::to_string(t) + "/schedule?delay_ms=2500").status, 200);
  }
  auto killed_at = std::chrono::steady_clock::now();
  EXPECT_EQ(nodes_->node(0).stop(SIGKILL), 128 + SIGKILL);
  // Through the two others, every counter answers again within seconds,
  // and writes go on.
  std::map<int, std::chrono::steady_clock::duration> back_after;
  auto deadline = killed_at + 30s;  // a bound for the test, not a measurement
  while (back_after.size() < kCounters && std::chrono::steady_clock::now() < deadline) {
    for (int c = 0; c < kCounters; ++c) {
      if (back_after.count(c)) continue;
      if (increment(1 + random() % 2, c).status == 200) back_after[c] = std::chrono::steady_clock::now() - killed_at;
    }
    std::this_thread::sleep_for(50ms);
  }
  ASSERT_EQ(back_after.size(), static_cast<size_t>(kCounters)) << nodes_->failure();
  auto slowest = std::max_element(back_after.begin(), back_after.end(),
                                  [](auto& a, auto& b) { return a.second < b.second; });
  std::printf("failover: the last counter answered %lld ms after the kill\n",
              static_cast<long long>(std::chrono::duration_cast<std::chrono::milliseconds>(slowest->second).count()));
  // Each survivor's view catches up within a round of its agent (a request
  // through a node still behind answers 503 and is retried by clients).
  ASSERT_TRUE(nodes_->wait_ready(30s)) << nodes_->failure();
  // The tasks' names came with their copies (no request by name reached a
  // moved task since the kill): once the survivors serve all ten, the
  // catalog names each.
  std::map<std::string, int> tasks;
  wait_for([&] { return (tasks = listed_objects(1, "TASK_RUNNER")).size() >= 10; }, 20s);
  for (int t = 0; t < 10; ++t) EXPECT_EQ(tasks["t" + std::to_string(t)], 1) << "task t" << t;
  EXPECT_EQ(tasks.size(), 10u) << "listed without a name, or twice";
  for (int round = 0; round < 2; ++round) {
    for (int c = 0; c < kCounters; ++c) EXPECT_EQ(increment(1 + random() % 2, c).status, 200);
  }
  // No acknowledged increment lost, none counted that was never sent.
  for (int c = 0; c < kCounters; ++c) {
    auto r = get(1 + static_cast<size_t>(c % 2), "/counter/r" + std::to_string(c));
    ASSERT_EQ(r.status, 200) << r.body;
    int value = std::stoi(r.body);
    EXPECT_GE(value, acked[c]) << "counter r" << c;
    EXPECT_LE(value, attempted[c]) << "counter r" << c;
  }
  // Every alarm fired once, wherever its object now lives.
  auto alarms_deadline = std::chrono::steady_clock::now() + 20s;
  for (int t = 0; t < 10; ++t) {
    json state;
    do {
      auto r = get(1, "/tasks/t" + std::to_string(t));
      state = json::parse(r.body, nullptr, false);
      if (state.is_object() && state.value("fired", 0) == 1) break;
      std::this_thread::sleep_for(200ms);
    } while (std::chrono::steady_clock::now() < alarms_deadline);
    EXPECT_EQ(state.value("fired", -1), 1) << "task t" << t << ": " << state.dump();
  }
  // The dead node comes back with its old data: it serves none of what
  // moved until a catch-up made its copies current again (then the
  // partitions that prefer it come back to it by hand-offs).
  ASSERT_TRUE(nodes_->restart(0)) << nodes_->failure();
  ASSERT_TRUE(nodes_->wait_ready(30s)) << nodes_->failure();
  for (int c = 0; c < kCounters; ++c) {
    auto before = std::stoi(get(1, "/counter/r" + std::to_string(c)).body);
    auto r = increment(0, c);
    ASSERT_EQ(r.status, 200) << r.body;
    EXPECT_EQ(std::stoi(r.body), before + 1) << "counter r" << c;
  }
  // The catalog lists each object once: from the node serving it, not from
  // the copies the others hold (the returning node's old ones included).
  std::map<std::string, int> listed = listed_objects(2, "COUNTER");
  for (const auto& [name, times] : listed) EXPECT_EQ(times, 1) << name;
  EXPECT_EQ(listed.size(), static_cast<size_t>(kCounters));
}

// Whether every partition has all its replicas in sync, as node i sees it.
bool all_in_sync(NodeSet& nodes, size_t i) {
  json view = json::parse(nodes.status(i), nullptr, false);
  if (!view.is_object()) return false;
  for (const auto& p : view["partitions"]) {
    if (p["in_sync"].size() != p["replicas"].size()) return false;
  }
  return true;
}

// Waits up to `within` until all_in_sync(nodes, i); whether it came.
bool wait_all_in_sync(NodeSet& nodes, size_t i, std::chrono::seconds within) {
  return wait_for([&] { return all_in_sync(nodes, i); }, within);
}

TEST_F(ReplicatedClusterTest, ARestartedNodeCatchesUpAndItsCopiesServeTheNextFailover) {
  constexpr int kCounters = 24;
  std::map<int, int> acked;
  auto increment = [&](size_t node, int c) {
    auto r = post(node, "/counter/u" + std::to_string(c) + "/increment");
    if (r.status == 200) ++acked[c];
    return r.status;
  };
  for (int c = 0; c < kCounters; ++c) ASSERT_EQ(increment(static_cast<size_t>(c % 3), c), 200);
  // n1 dies; its partitions move; writes go on while it is away.
  EXPECT_EQ(nodes_->node(0).stop(SIGKILL), 128 + SIGKILL);
  auto deadline = std::chrono::steady_clock::now() + 20s;
  for (int c = 0; c < kCounters; ++c) {
    while (increment(1 + static_cast<size_t>(c % 2), c) != 200 && std::chrono::steady_clock::now() < deadline) {
      std::this_thread::sleep_for(100ms);
    }
  }
  // It comes back, catches up with every partition it is a replica of, and
  // every set is whole again.
  ASSERT_TRUE(nodes_->restart(0)) << nodes_->failure();
  deadline = std::chrono::steady_clock::now() + 90s;
  while (!all_in_sync(*nodes_, 1) && std::chrono::steady_clock::now() < deadline) {
    for (int c = 0; c < kCounters; ++c) increment(static_cast<size_t>(c % 3), c);  // writes meanwhile
    std::this_thread::sleep_for(200ms);
  }
  ASSERT_TRUE(all_in_sync(*nodes_, 1)) << nodes_->status(1);
  for (int c = 0; c < kCounters; ++c) ASSERT_EQ(increment(static_cast<size_t>(c % 3), c), 200);
  // (A ship that took longer than a lease on a loaded machine drops its
  // backup; it catches up again.)
  ASSERT_TRUE(wait_all_in_sync(*nodes_, 1, 60s)) << nodes_->status(1);
  // Now the two others die one after the other: n1's copies, caught up,
  // serve everything with every acknowledged write.
  EXPECT_EQ(nodes_->node(1).stop(SIGKILL), 128 + SIGKILL);
  EXPECT_EQ(nodes_->node(2).stop(SIGKILL), 128 + SIGKILL);
  deadline = std::chrono::steady_clock::now() + 30s;
  for (int c = 0; c < kCounters; ++c) {
    HttpResponse r = get_once_served(0, "/counter/u" + std::to_string(c), deadline);
    ASSERT_EQ(r.status, 200) << r.body;
    EXPECT_GE(std::stoi(r.body), acked[c]) << "counter u" << c;
  }
}

// --history on a replicated cluster (docs/history.md, "On a cluster"): the
// backups keep each commit in the history as its owner numbered it, so that
// every bookmark the old owner gave restores on the node that takes over; a
// restore is replicated like any change; a node that catches up gets the
// histories with its copies. A fork reaches a destination on another node.
class HistoryClusterTest : public ClusterTest {
 protected:
  void SetUp() override {
    std::vector<std::string> args = kNodeArgs;
    args.insert(args.end(), {"--replicas", "3", "--history"});
    start_cluster(args);
  }
  json admin_json(size_t node, const std::string& method, const std::string& target) {
    HttpClient admin(nodes_->node(node).port());
    auto r = admin.request(method, target, "", {{"authorization", std::string("Bearer ") + NodeSet::kToken}});
    EXPECT_EQ(r.status, 200) << method << " " << target << ": " << r.body;
    return json::parse(r.body, nullptr, false);
  }
  static constexpr const char* kHistory = "/_dobj/objects/COUNTER/name:hist/history";
  std::string current_bookmark(size_t node) {
    json h = admin_json(node, "GET", std::string(kHistory) + "?limit=1");
    return h.is_object() && h["current"].is_string() ? h["current"].get<std::string>() : "";
  }
  std::set<std::string> bookmarks(size_t node) {
    json h = admin_json(node, "GET", kHistory);
    std::set<std::string> out;
    if (h.is_object()) {
      for (const auto& b : h["bookmarks"]) out.insert(b["bookmark"].get<std::string>());
    }
    return out;
  }
};

TEST_F(HistoryClusterTest, EveryBookmarkRestoresAfterTwoFailoversAndACatchUpAndForksCrossNodes) {
  std::map<std::string, std::string> at;  // the counter's value -> its bookmark
  for (int v = 1; v <= 6; ++v) {
    ASSERT_EQ(post(static_cast<size_t>(v % 3), "/counter/hist/increment").body, std::to_string(v));
    at[std::to_string(v)] = current_bookmark(static_cast<size_t>(v + 1) % 3);
  }
  // A fork onto an object another node serves: the copy diverges, the
  // source stays as it was.
  size_t first = owner_of("COUNTER", "hist");
  std::string copy;
  for (int i = 0; copy.empty() && i < 64; ++i) {
    std::string name = "hist-fork-" + std::to_string(i);
    if (owner_of("COUNTER", name) != first) copy = name;
  }
  ASSERT_FALSE(copy.empty());
  json forked = admin_json((first + 1) % 3, "POST", "/_dobj/objects/COUNTER/name:hist/fork?as=" + copy);
  EXPECT_EQ(forked["forked"], true) << forked.dump();
  EXPECT_EQ(forked["name"], copy) << forked.dump();
  EXPECT_EQ(get(0, "/counter/" + copy).body, "6");
  EXPECT_EQ(post(1, "/counter/" + copy + "/increment").body, "7");
  EXPECT_EQ(get(2, "/counter/hist").body, "6");
  // Without ?replace=1, a fork onto an object with storage is refused.
  HttpClient admin(nodes_->node(first).port());
  EXPECT_EQ(admin.request("POST", "/_dobj/objects/COUNTER/name:hist/fork?as=" + copy, "",
                          {{"authorization", std::string("Bearer ") + NodeSet::kToken}})
                .status,
            409);
  // Its owner dies: the next one has every bookmark, and restores to one.
  EXPECT_EQ(nodes_->node(first).stop(SIGKILL), 128 + SIGKILL);
  size_t a = (first + 1) % 3, b = (first + 2) % 3;
  ASSERT_EQ(get_once_served(a, "/counter/hist", std::chrono::steady_clock::now() + 30s).body, "6");
  ASSERT_TRUE(nodes_->wait_ready(30s)) << nodes_->failure();
  std::set<std::string> kept = bookmarks(a);
  for (const auto& [value, bookmark] : at) EXPECT_TRUE(kept.count(bookmark)) << value << ": " << bookmark;
  EXPECT_EQ(admin_json(b, "POST", "/_dobj/objects/COUNTER/name:hist/restore?bookmark=" + at["2"])["restored"], true);
  EXPECT_EQ(get(a, "/counter/hist").body, "2");
  ASSERT_EQ(post(b, "/counter/hist/increment").body, "3");
  at["3 after the restore"] = current_bookmark(a);
  // The first node comes back and catches up (its old copy and history are
  // replaced by the owner's); then the two others die, and it serves alone.
  ASSERT_TRUE(nodes_->restart(first)) << nodes_->failure();
  ASSERT_TRUE(wait_all_in_sync(*nodes_, a, 90s)) << nodes_->status(a);
  EXPECT_EQ(nodes_->node(a).stop(SIGKILL), 128 + SIGKILL);
  EXPECT_EQ(nodes_->node(b).stop(SIGKILL), 128 + SIGKILL);
  ASSERT_EQ(get_once_served(first, "/counter/hist", std::chrono::steady_clock::now() + 30s).body, "3");
  kept = bookmarks(first);
  for (const auto& [value, bookmark] : at) EXPECT_TRUE(kept.count(bookmark)) << value << ": " << bookmark;
  for (const std::string value : {"5", "1", "3 after the restore"}) {
    json r = admin_json(first, "POST", "/_dobj/objects/COUNTER/name:hist/restore?bookmark=" + at[value]);
    EXPECT_EQ(r["restored"], true) << value << ": " << r.dump();
    EXPECT_EQ(get(first, "/counter/hist").body, value.substr(0, 1)) << "restored to " << value;
  }
}

// A catch-up copies an object larger than one record's part
// (Cluster::kCopyPartBytes, 32 MiB) with its history in parts: the node that
// caught up serves it alone afterwards, every byte and every bookmark.
TEST_F(HistoryClusterTest, ACatchUpCopiesALargeObjectAndItsHistoryInParts) {
  const std::string value(100'000, 'v');
  for (int b = 0; b < 45; ++b) {
    json put = json::object();
    for (int i = 0; i < 10; ++i) put["k" + std::to_string(b * 10 + i)] = value + std::to_string(b * 10 + i);
    ASSERT_EQ(http(nodes_->node(0).port(), "POST", "/kv/big/batch", json{{"put", put}}.dump()).status, 200);
  }
  static constexpr const char* kBig = "/_dobj/objects/KV/name:big/history";
  json before = admin_json(0, "GET", std::string(kBig) + "?limit=100");
  ASSERT_TRUE(before["current"].is_string()) << before.dump();
  size_t commits = before["bookmarks"].size();
  ASSERT_GE(commits, 45u);
  std::string early = before["bookmarks"][commits - 43]["bookmark"];  // after three batches
  // A node that is not the owner loses its data folder and catches up.
  size_t owner = owner_of("KV", "big");
  size_t fresh = (owner + 1) % 3, other = (owner + 2) % 3;
  EXPECT_EQ(nodes_->node(fresh).stop(SIGKILL), 128 + SIGKILL);
  std::filesystem::remove_all(dir_.path() + "/" + nodes_->node_id(fresh));
  ASSERT_TRUE(nodes_->restart(fresh)) << nodes_->failure();
  ASSERT_TRUE(nodes_->wait_ready(60s)) << nodes_->failure();  // it left the in-sync sets
  ASSERT_TRUE(wait_all_in_sync(*nodes_, fresh, 120s)) << nodes_->status(fresh);
  // Alone, it has the object whole, with every bookmark.
  EXPECT_EQ(nodes_->node(owner).stop(SIGKILL), 128 + SIGKILL);
  EXPECT_EQ(nodes_->node(other).stop(SIGKILL), 128 + SIGKILL);
  HttpResponse last = get_once_served(fresh, "/kv/big/k449", std::chrono::steady_clock::now() + 30s);
  ASSERT_EQ(last.status, 200) << last.body;
  EXPECT_TRUE(json::parse(last.body, nullptr, false) == value + "449");
  json after = admin_json(fresh, "GET", std::string(kBig) + "?limit=100");
  EXPECT_EQ(after["current"], before["current"]);
  EXPECT_EQ(after["bookmarks"], before["bookmarks"]);
  json restored = admin_json(fresh, "POST", "/_dobj/objects/KV/name:big/restore?bookmark=" + early);
  EXPECT_EQ(restored["restored"], true) << restored.dump();
  EXPECT_EQ(http(nodes_->node(fresh).port(), "GET", "/kv/big/k29").status, 200);
  EXPECT_EQ(http(nodes_->node(fresh).port(), "GET", "/kv/big/k30").status, 404);
}

// An object's storage snapshots (Storage::snapshot) on a cluster: kept by
// the replicas of its partition, found from any node, surviving the death of
// the node that made it, copied by a catch-up. Two copies on three nodes, so
// that one node has none of the snapshot's partition and must fetch it.
class SnapshotClusterTest : public ClusterTest {
 protected:
  void SetUp() override {
    std::vector<std::string> args = kNodeArgs;
    args.insert(args.end(), {"--replicas", "2"});
    start_cluster(args, {DOBJ_CLUSTER_NODE_BIN, {}});
  }
  std::string snapshot_file(size_t node, const std::string& snap) {
    return dir_.path() + "/" + nodes_->node_id(node) + "/snapshots/" + snap + ".sqlite";
  }
  // A LEDGER name that node `node` serves, as node `ask` sees it. Names
  // whose partition has not moved off a node just killed are passed over
  // (their inspect answers 503 until it has), for up to 30 s.
  std::string ledger_on(size_t node, const std::string& prefix, size_t ask) {
    auto deadline = std::chrono::steady_clock::now() + 30s;
    for (int i = 0; std::chrono::steady_clock::now() < deadline; i = (i + 1) % 200) {
      std::string name = prefix + std::to_string(i);
      HttpResponse inspect;
      size_t serving = serving_node("LEDGER", name, ask, &inspect);
      if (serving == node) return name;
      if (inspect.status != 200) std::this_thread::sleep_for(20ms);
    }
    return "";
  }
};

TEST_F(SnapshotClusterTest, ASnapshotForksOnEveryNodeAfterItsMakerDiesAndAfterACatchUp) {
  ASSERT_EQ(post(0, "/ledger/src/add?n=5").body, "5");
  HttpResponse made = post(1, "/ledger/src/snapshot");
  ASSERT_EQ(made.status, 200) << made.body;
  const std::string snap = made.body;
  ASSERT_EQ(post(2, "/ledger/src/add?n=1").body, "6");  // after the snapshot: not in it
  // The snapshot's partition is the source's: its replicas hold it, the
  // third node does not.
  size_t maker = owner_of("LEDGER", "src");
  json view = json::parse(nodes_->status(maker), nullptr, false);
  ASSERT_TRUE(view.is_object()) << nodes_->status(maker);
  size_t partitions = view["partitions"].size();
  size_t p = std::stoul(snap.substr(5, 8), nullptr, 16) % partitions;
  std::set<size_t> holders;
  for (const auto& n : view["partitions"][p]["replicas"]) {
    for (size_t i = 0; i < 3; ++i) {
      if (nodes_->node_id(i) == n.get<std::string>()) holders.insert(i);
    }
  }
  ASSERT_EQ(holders.size(), 2u) << view["partitions"][p].dump();
  ASSERT_TRUE(holders.count(maker));
  size_t other = 0;
  while (holders.count(other)) ++other;
  size_t backup = 3 - maker - other;
  for (size_t i : holders) EXPECT_TRUE(std::filesystem::exists(snapshot_file(i, snap))) << i;
  EXPECT_FALSE(std::filesystem::exists(snapshot_file(other, snap)));

  // A fork onto an object of the third node: it fetches the snapshot.
  std::string fork1 = ledger_on(other, "fork-a", maker);
  ASSERT_FALSE(fork1.empty());
  HttpResponse forked = post(maker, "/ledger/" + fork1 + "/fork?from=" + snap);
  EXPECT_EQ(forked.status, 500) << forked.body;
  EXPECT_NE(forked.body.find("\"reset\":true"), std::string::npos) << forked.body;
  EXPECT_EQ(get(backup, "/ledger/" + fork1).body, "5");
  EXPECT_EQ(post(other, "/ledger/" + fork1 + "/add?n=10").body, "15");  // the copy diverges
  EXPECT_EQ(get(other, "/ledger/src").body, "6");                       // the source does not
  EXPECT_TRUE(std::filesystem::exists(snapshot_file(other, snap)));

  // An unknown snapshot is refused when asked for; nothing changes.
  std::string unknown = "snap-" + snap.substr(5, 8) + std::string(24, '0');
  EXPECT_EQ(post(other, "/ledger/" + fork1 + "/fork?from=" + unknown).status, 404);
  EXPECT_EQ(post(other, "/ledger/" + fork1 + "/fork?from=snap-nothex").status, 400);
  EXPECT_EQ(get(other, "/ledger/" + fork1).body, "15");

  // A restore asked for, whose snapshot is gone from the node by the next
  // start: fetched then, before the object starts.
  std::string fork2 = ledger_on(other, "fork-b", maker);
  ASSERT_EQ(post(other, "/ledger/" + fork2 + "/add?n=100").body, "100");
  ASSERT_EQ(post(other, "/ledger/" + fork2 + "/fork?abort=0&from=" + snap).body, "ok");
  EXPECT_EQ(get(other, "/ledger/" + fork2).body, "100");
  std::filesystem::remove(snapshot_file(other, snap));
  EXPECT_EQ(post(other, "/ledger/" + fork2 + "/abort").status, 500);
  EXPECT_EQ(get(maker, "/ledger/" + fork2).body, "5");

  // Node `dead` is killed; a fork onto a new object of the third node (its
  // own copy of the snapshot removed) must get it from the copy left.
  auto fork_after_death = [&](size_t dead, size_t alive, const std::string& prefix) {
    EXPECT_EQ(nodes_->node(dead).stop(SIGKILL), 128 + SIGKILL);
    ASSERT_EQ(get_once_served(other, "/ledger/src", std::chrono::steady_clock::now() + 30s).body, "6");
    std::filesystem::remove(snapshot_file(other, snap));
    std::string fork = ledger_on(other, prefix, alive);
    ASSERT_FALSE(fork.empty());
    EXPECT_EQ(post(other, "/ledger/" + fork + "/fork?from=" + snap).status, 500);
    EXPECT_EQ(get(other, "/ledger/" + fork).body, "5") << "after node " << dead << " died";
  };
  // The maker dies: the partition's other replica has the snapshot.
  fork_after_death(maker, backup, "fork-c");
  // It comes back with an empty data folder: the catch-up copies the
  // snapshot to it, and once the backup dies too it serves the snapshot.
  std::filesystem::remove_all(dir_.path() + "/" + nodes_->node_id(maker));
  ASSERT_TRUE(nodes_->restart(maker)) << nodes_->failure();
  ASSERT_TRUE(wait_all_in_sync(*nodes_, other, 90s)) << nodes_->status(other);
  EXPECT_TRUE(std::filesystem::exists(snapshot_file(maker, snap)));
  fork_after_death(backup, maker, "fork-d");
}

// Whether node i's view has no partition owned by `gone` (its partitions
// were taken over), waiting up to `within`.
bool wait_owns_nothing(NodeSet& nodes, size_t i, const std::string& gone, std::chrono::seconds within) {
  auto owns_nothing = [&] {
    json view = json::parse(nodes.status(i), nullptr, false);
    if (!view.is_object() || !view["partitions"].is_array()) return false;
    for (const auto& p : view["partitions"]) {
      if (p["owner"] == gone) return false;
    }
    return true;
  };
  return wait_for(owns_nothing, within);
}

// A node whose data folder is wiped comes back with none of its copies:
// whether it returns before or after the others took its partitions over,
// it leaves every in-sync set and hands on what it owned; nothing
// acknowledged is lost, and catch-ups make it a full copy again.
TEST_F(ReplicatedClusterTest, ANodeWhoseDataFolderWasWipedRejoinsWithoutLosingAWrite) {
  constexpr int kCounters = 24;
  std::map<int, int> acked;
  auto increment = [&](size_t node, int c) {
    auto r = post(node, "/counter/w" + std::to_string(c) + "/increment");
    if (r.status == 200) ++acked[c];
    return r.status;
  };
  for (int round = 0; round < 2; ++round) {
    for (int c = 0; c < kCounters; ++c) ASSERT_EQ(increment(static_cast<size_t>(c % 3), c), 200);
  }
  for (int attempt = 0; attempt < 2; ++attempt) {
    // First straight back (it may register before anyone took over), then
    // after its partitions moved.
    EXPECT_EQ(nodes_->node(0).stop(SIGKILL), 128 + SIGKILL);
    if (attempt == 1) {
      ASSERT_TRUE(wait_owns_nothing(*nodes_, 1, nodes_->node_id(0), 30s)) << nodes_->status(1);
    }
    std::filesystem::remove_all(dir_.path() + "/" + nodes_->node_id(0));
    ASSERT_TRUE(nodes_->restart(0)) << nodes_->failure();
    ASSERT_TRUE(nodes_->wait_ready(60s)) << nodes_->failure();
    auto deadline = std::chrono::steady_clock::now() + 30s;
    for (int c = 0; c < kCounters; ++c) {
      HttpResponse r = get_once_served(static_cast<size_t>(c % 3), "/counter/w" + std::to_string(c), deadline);
      ASSERT_EQ(r.status, 200) << r.body;
      EXPECT_EQ(std::stoi(r.body), acked[c]) << "counter w" << c << " after wipe " << attempt;
    }
    ASSERT_TRUE(wait_all_in_sync(*nodes_, 1, 60s)) << nodes_->status(1);
    for (int c = 0; c < kCounters; ++c) EXPECT_EQ(increment(static_cast<size_t>(c % 3), c), 200);
  }
  // Its copies are whole again: with the two others gone, it serves them all.
  EXPECT_EQ(nodes_->node(1).stop(SIGKILL), 128 + SIGKILL);
  EXPECT_EQ(nodes_->node(2).stop(SIGKILL), 128 + SIGKILL);
  auto deadline = std::chrono::steady_clock::now() + 30s;
  for (int c = 0; c < kCounters; ++c) {
    HttpResponse r = get_once_served(0, "/counter/w" + std::to_string(c), deadline);
    ASSERT_EQ(r.status, 200) << r.body;
    EXPECT_EQ(std::stoi(r.body), acked[c]) << "counter w" << c;
  }
}

// The crash test's mixed load (counters, KV batches, bank transfers, SQL
// rows, new objects, alarms, a chat room), each request through a random
// node, while one node after another is killed. After each kill, through a
// survivor: every acknowledged write is there, every acknowledged alarm
// fires, and the bank's accounts still add up to what was deposited.
TEST_F(ReplicatedClusterTest, TheCrashTestsMixedLoadThroughRandomNodesLosesNothingAsEachNodeDies) {
  MixedLoad load("mix");
  load.set_unavailable_is_unknown(true);
  ASSERT_TRUE(load.prepare(nodes_->node(0).port()));
  std::vector<int> ports;
  for (size_t n = 0; n < 3; ++n) ports.push_back(nodes_->node(n).port());
  for (size_t victim = 0; victim < 3; ++victim) {
    load.run(ports, [&] { EXPECT_EQ(nodes_->node(victim).stop(SIGKILL), 128 + SIGKILL); });
    size_t via = (victim + 1) % 3;
    ASSERT_TRUE(wait_owns_nothing(*nodes_, via, nodes_->node_id(victim), 30s)) << nodes_->status(via);
    for (const auto& problem : load.check(nodes_->node(via).port())) ADD_FAILURE() << problem;
    // It comes back and catches up before the next one dies.
    ASSERT_TRUE(nodes_->restart(victim)) << nodes_->failure();
    ASSERT_TRUE(nodes_->wait_ready(30s)) << nodes_->failure();
    ASSERT_TRUE(wait_all_in_sync(*nodes_, victim, 60s)) << nodes_->status(victim);
  }
  EXPECT_GT(load.writes_checked(), 100);  // the load did run between the kills
  std::printf("mixed load: %d rounds, %lld acknowledged writes checked\n", load.rounds(),
              static_cast<long long>(load.writes_checked()));
}

TEST_F(ReplicatedClusterTest, ABackupThatStopsAnsweringLeavesTheInSyncSetAndWritesGoOn) {
  for (int c = 0; c < 10; ++c) ASSERT_EQ(post(0, "/counter/s" + std::to_string(c) + "/increment").status, 200);
  ::kill(nodes_->node(2).pid(), SIGSTOP);
  // Writes whose partitions have n3 as a backup wait up to a lease for it,
  // then go on without it.
  for (int c = 0; c < 10; ++c) {
    auto r = post(static_cast<size_t>(c % 2), "/counter/s" + std::to_string(c) + "/increment");
    if (r.status == 503) continue;  // an object n3 owns: it is paused
    EXPECT_EQ(r.status, 200) << r.body;
    EXPECT_EQ(r.body, "2");
  }
  json view = json::parse(nodes_->status(0));
  int without_n3 = 0;
  for (const auto& p : view["partitions"]) {
    if (p["owner"] != "n3" && std::find(p["in_sync"].begin(), p["in_sync"].end(), "n3") == p["in_sync"].end()) {
      ++without_n3;
    }
  }
  EXPECT_GT(without_n3, 0);
  ::kill(nodes_->node(2).pid(), SIGCONT);
}

// Three copies of every partition, and answers only while two are in sync.
class MinCopiesClusterTest : public ClusterTest {
 protected:
  void SetUp() override {
    std::vector<std::string> args = kNodeArgs;
    args.insert(args.end(), {"--replicas", "3", "--min-copies", "2"});
    start_cluster(args);
  }
};

// With --min-copies 2, one node down changes nothing for clients; with two
// down, the last node refuses to answer (503 naming the rule) rather than
// acknowledge writes only its own disk holds; once a node is back and has
// caught up, answers flow again, and no acknowledged write was lost.
TEST_F(MinCopiesClusterTest, BelowMinCopiesNothingIsAcknowledgedUntilACopyCatchesUp) {
  constexpr int kCounters = 16;
  std::map<int, int> acked, attempted;
  auto increment = [&](int c) {
    ++attempted[c];
    auto r = post(0, "/counter/m" + std::to_string(c) + "/increment");
    if (r.status == 200) ++acked[c];
    return r;
  };
  auto each_answers = [&](std::chrono::seconds within) {
    auto deadline = std::chrono::steady_clock::now() + within;
    for (int c = 0; c < kCounters; ++c) {
      while (increment(c).status != 200 && std::chrono::steady_clock::now() < deadline) {
        std::this_thread::sleep_for(100ms);
      }
    }
    return std::chrono::steady_clock::now() < deadline;
  };
  ASSERT_TRUE(each_answers(10s));
  // One node down: two copies are left of every partition.
  EXPECT_EQ(nodes_->node(2).stop(SIGKILL), 128 + SIGKILL);
  ASSERT_TRUE(each_answers(30s)) << nodes_->status(0);
  // Two down: n1 is alone. A write's ship to a dead backup takes it out of
  // the in-sync set, and the answer is held back: 503, with the reason (once
  // n1 has taken over n2's partitions, which were n2's to answer until then).
  EXPECT_EQ(nodes_->node(1).stop(SIGKILL), 128 + SIGKILL);
  auto deadline = std::chrono::steady_clock::now() + 30s;
  for (int c = 0; c < kCounters; ++c) {
    HttpResponse r;
    do {
      r = increment(c);
    } while (r.body.find("--min-copies 2") == std::string::npos && std::chrono::steady_clock::now() < deadline &&
             (std::this_thread::sleep_for(100ms), true));
    ASSERT_EQ(r.status, 503) << "counter m" << c << ": " << r.body;
    ASSERT_NE(r.body.find("--min-copies 2"), std::string::npos) << r.body;
  }
  for (int round = 0; round < 3; ++round) {
    for (int c = 0; c < kCounters; ++c) {
      HttpResponse r = increment(c);
      ASSERT_EQ(r.status, 503) << "counter m" << c << ": " << r.body;
      EXPECT_NE(r.body.find("--min-copies 2"), std::string::npos) << r.body;
    }
  }
  json view = json::parse(nodes_->status(0), nullptr, false);
  EXPECT_EQ(view.value("min_copies", 0), 2);
  EXPECT_GT(view.value("below_min_copies", 0), 0) << view.dump();
  // Reads are refused too: they could show a write only one disk holds.
  EXPECT_EQ(get(0, "/counter/m0").status, 503);
  // n2 returns and catches up: answers flow again.
  ASSERT_TRUE(nodes_->restart(1)) << nodes_->failure();
  ASSERT_TRUE(each_answers(90s)) << nodes_->status(0);
  // Every acknowledged increment is there; refused ones may be (they were
  // applied on n1 before the gate held their answer back), never more.
  ASSERT_NO_FATAL_FAILURE(expect_counters("m", acked, attempted, [](int) { return size_t{0}; }, 10s));
}

// Two nodes, two copies of every partition; a third node joins.
// A socket's messages are outputs too: while its room's partition has fewer
// copies in sync than --min-copies, a message the room would send cannot
// leave, and the socket closes with 1012 (reconnect) instead of missing it
// unaware.
TEST_F(MinCopiesClusterTest, ASocketWhosePartitionIsBelowMinCopiesClosesWith1012) {
  HttpClient admin(nodes_->node(0).port());
  auto inspect = [&](const std::string& ns, const std::string& name) {
    auto r = admin.request("GET", "/_dobj/objects/" + ns + "/name:" + name, "",
                           {{"authorization", std::string("Bearer ") + NodeSet::kToken}});
    return json::parse(r.body, nullptr, false);
  };
  // A room n1 serves, with a socket to it through n1, and a counter in the
  // same partition (writes there are what shrink its in-sync set).
  std::unique_ptr<WsClient> socket, other;
  std::string room;
  for (int r = 0; r < 60 && room.empty(); ++r) {
    std::string name = "s" + std::to_string(r);
    auto s = std::make_unique<WsClient>(nodes_->node(0).port(), "/room/" + name + "/websocket");
    ASSERT_TRUE(s->connected()) << s->upgrade_response().body;
    if (owner_of("CHAT_ROOM", name) != 0) continue;
    room = name;
    socket = std::move(s);
    other = std::make_unique<WsClient>(nodes_->node(0).port(), "/room/" + name + "/websocket");
    ASSERT_TRUE(other->connected());
  }
  ASSERT_FALSE(room.empty()) << "n1 served none of 60 rooms";
  json room_view = inspect("CHAT_ROOM", room);
  ASSERT_TRUE(room_view.contains("partition")) << room_view.dump();
  int partition = room_view["partition"];
  std::string counter;
  for (int c = 0; c < 5000 && counter.empty(); ++c) {
    std::string name = "q" + std::to_string(c);
    ASSERT_EQ(post(0, "/counter/" + name + "/increment").status, 200);
    if (inspect("COUNTER", name).value("partition", -1) == partition) counter = name;
  }
  ASSERT_FALSE(counter.empty()) << "no counter in partition " << partition;
  ASSERT_TRUE(socket->send_text("before"));
  EXPECT_EQ(other->next_message(), "before");
  // Both backups die; a write to the partition finds them gone and takes
  // them out of its in-sync set: one copy is left, fewer than two.
  EXPECT_EQ(nodes_->node(1).stop(SIGKILL), 128 + SIGKILL);
  EXPECT_EQ(nodes_->node(2).stop(SIGKILL), 128 + SIGKILL);
  auto deadline = std::chrono::steady_clock::now() + 30s;
  HttpResponse w;
  do {
    w = post(0, "/counter/" + counter + "/increment");
  } while (w.body.find("--min-copies 2") == std::string::npos && std::chrono::steady_clock::now() < deadline &&
           (std::this_thread::sleep_for(100ms), true));
  ASSERT_NE(w.body.find("--min-copies 2"), std::string::npos) << w.status << " " << w.body;
  // A message to the room: its broadcast may not leave; both sockets hear
  // 1012 rather than nothing.
  ASSERT_TRUE(socket->send_text("while below"));
  for (auto* s : {socket.get(), other.get()}) {
    auto [code, reason] = s->await_close();
    EXPECT_EQ(code, 1012) << reason;
  }
}

class GrowingClusterTest : public ClusterTest {
 protected:
  void SetUp() override { start_replicated(2, 2); }
};

// A node that joins a running cluster takes its share: partitions are copied
// to it (catch-up), then handed to it (drain, final ship, compare-and-swap)
// while clients keep writing through every node. No write is refused or
// lost, alarms set before the move fire once, every partition keeps two
// copies, and the newcomer's copies are real: when it dies, the others take
// its partitions back with every acknowledged write.
TEST_F(GrowingClusterTest, ANodeThatJoinsTakesItsShareWhileWritesGoOnAndLosesNothing) {
  constexpr int kCounters = 40;
  std::map<int, int> acked;
  std::atomic<int> refused{0};
  std::mutex mu;
  std::mt19937 random(7);
  auto increment_at = [&](int port, int c) {
    auto r = http(port, "POST", "/counter/g" + std::to_string(c) + "/increment");
    std::lock_guard lock(mu);
    if (r.status == 200) {
      ++acked[c];
    } else if (++refused <= 3) {
      std::printf("refused: %d %s\n", r.status, r.body.c_str());
    }
    return r;
  };
  auto increment = [&](size_t node, int c) { return increment_at(nodes_->node(node).port(), c); };
  for (int c = 0; c < kCounters; ++c) ASSERT_EQ(increment(random() % 2, c).status, 200);
  for (int t = 0; t < 8; ++t) {
    ASSERT_EQ(post(0, "/tasks/g" + std::to_string(t) + "/schedule?delay_ms=" + std::to_string(3000 + 1000 * t)).status,
              200);
  }
  // Sockets in rooms, through n1; the owner of each room before the join.
  constexpr int kRooms = 12;
  std::vector<std::unique_ptr<WsClient>> sockets;
  std::vector<size_t> room_owner;
  for (int r = 0; r < kRooms; ++r) {
    sockets.push_back(std::make_unique<WsClient>(nodes_->node(0).port(), "/room/m" + std::to_string(r) + "/websocket"));
    ASSERT_TRUE(sockets.back()->connected()) << sockets.back()->upgrade_response().body;
    room_owner.push_back(owner_of("CHAT_ROOM", "m" + std::to_string(r)));
  }
  // Writers through every node, the newcomer's included once it is up. They
  // take ports from this list (guarded by mu), never from the node set,
  // which grows under them.
  std::atomic<bool> stop{false};
  std::vector<int> ports = {nodes_->node(0).port(), nodes_->node(1).port()};
  std::vector<double> latencies;  // ms, every write during the moves
  std::vector<std::thread> writers;
  for (int w = 0; w < 2; ++w) {
    writers.emplace_back([&, w] {
      std::mt19937 mine(100 + w);
      while (!stop) {
        auto sent = std::chrono::steady_clock::now();
        int port;
        {
          std::lock_guard lock(mu);
          port = ports[mine() % ports.size()];
        }
        increment_at(port, static_cast<int>(mine() % kCounters));
        auto took = std::chrono::steady_clock::now() - sent;
        {
          std::lock_guard lock(mu);
          latencies.push_back(std::chrono::duration<double, std::milli>(took).count());
        }
        std::this_thread::sleep_for(5ms);
      }
    });
  }
  ASSERT_TRUE(nodes_->add()) << nodes_->failure();
  auto joined = std::chrono::steady_clock::now();
  {
    std::lock_guard lock(mu);
    ports.push_back(nodes_->node(2).port());
  }
  auto owned_by = [&](const json& view, const std::string& node) {
    int n = 0;
    for (const auto& p : view["partitions"]) n += p["owner"] == node;
    return n;
  };
  // Settled: every node has nothing left to move, every partition has its
  // two replicas in sync, and the newcomer owns a share.
  auto deadline = std::chrono::steady_clock::now() + 120s;  // a bound for the test, not a measurement
  json view;
  auto settled = [&] {
    for (size_t i = 0; i < 3; ++i) {
      json v = json::parse(nodes_->status(i), nullptr, false);
      if (!v.is_object() || v.value("moves_pending", -1) != 0) return false;
      if (i == 0) view = v;
    }
    for (const auto& p : view["partitions"]) {
      if (p["replicas"].size() != 2 || p["in_sync"].size() != 2) return false;
    }
    return owned_by(view, "n3") > 0;
  };
  while (!settled() && std::chrono::steady_clock::now() < deadline) std::this_thread::sleep_for(250ms);
  auto took = std::chrono::steady_clock::now() - joined;
  stop = true;
  for (auto& w : writers) w.join();
  ASSERT_TRUE(settled()) << view.dump();
  // Rendezvous hashing over three nodes: about a third each (256 partitions).
  int p = static_cast<int>(view["partitions"].size());
  for (const char* node : {"n1", "n2", "n3"}) {
    EXPECT_GT(owned_by(view, node), p / 6) << node;
    EXPECT_LT(owned_by(view, node), p / 2) << node;
  }
  std::printf("%.1f s after the join: n1 %d, n2 %d, n3 %d partitions; %d writes refused during the moves\n",
              std::chrono::duration<double>(took).count(), owned_by(view, "n1"), owned_by(view, "n2"),
              owned_by(view, "n3"), refused.load());
  // The moves were invisible to clients: requests waited for them.
  EXPECT_EQ(refused.load(), 0);
  std::sort(latencies.begin(), latencies.end());
  if (!latencies.empty()) {
    std::printf("%zu writes during the moves: p50 %.1f ms, p99 %.1f ms, max %.1f ms\n", latencies.size(),
                latencies[latencies.size() / 2], latencies[latencies.size() * 99 / 100], latencies.back());
  }
  // Every acknowledged write is there, through any node, and nothing else.
  std::set<size_t> owners;
  for (int c = 0; c < kCounters; ++c) {
    auto r = get(static_cast<size_t>(c % 3), "/counter/g" + std::to_string(c));
    ASSERT_EQ(r.status, 200) << r.body;
    EXPECT_EQ(std::stoi(r.body), acked[c]) << "counter g" << c;
    owners.insert(owner_of("COUNTER", "g" + std::to_string(c)));
  }
  EXPECT_TRUE(owners.count(2)) << "no counter moved to the new node";
  // A room that moved closed its sockets with 1012 (reconnect), and a new
  // socket meets the room on its new node; a room that stayed kept them.
  int moved_rooms = 0;
  for (int r = 0; r < kRooms; ++r) {
    std::string room = "/room/m" + std::to_string(r);
    if (owner_of("CHAT_ROOM", "m" + std::to_string(r)) == room_owner[r]) {
      ASSERT_TRUE(sockets[r]->send_text("stayed"));
      EXPECT_EQ(sockets[r]->next_message(), "stayed") << room;
      continue;
    }
    ++moved_rooms;
    EXPECT_EQ(sockets[r]->await_close().first, 1012) << room;
    WsClient again(nodes_->node(1).port(), room + "/websocket");
    ASSERT_TRUE(again.connected()) << again.upgrade_response().body;
    EXPECT_EQ(get(0, room + "/count").body, "1") << room;
  }
  std::printf("%d of %d rooms moved\n", moved_rooms, kRooms);
  // The catalog lists each object once, from the node that serves it now.
  std::map<std::string, int> listed;
  HttpClient admin(nodes_->node(2).port());
  auto r = admin.request("GET", "/_dobj/objects?namespace=COUNTER&limit=100", "",
                         {{"authorization", std::string("Bearer ") + NodeSet::kToken}});
  ASSERT_EQ(r.status, 200) << r.body;
  json page = json::parse(r.body);
  for (const auto& o : page["objects"]) ++listed[o["id"].get<std::string>()];
  EXPECT_EQ(listed.size(), static_cast<size_t>(kCounters)) << r.body;
  for (const auto& [name, times] : listed) EXPECT_EQ(times, 1) << name;
  // Each alarm fired exactly once, wherever its object went.
  auto alarms_deadline = std::chrono::steady_clock::now() + 30s;
  for (int t = 0; t < 8; ++t) {
    json state;
    do {
      state = json::parse(get(1, "/tasks/g" + std::to_string(t)).body, nullptr, false);
      if (state.is_object() && state.value("fired", 0) >= 1) break;
      std::this_thread::sleep_for(200ms);
    } while (std::chrono::steady_clock::now() < alarms_deadline);
    EXPECT_EQ(state.value("fired", -1), 1) << "task g" << t << ": " << state.dump();
  }
  // The newcomer dies: what it owns fails over to the copies on the others.
  EXPECT_EQ(nodes_->node(2).stop(SIGKILL), 128 + SIGKILL);
  deadline = std::chrono::steady_clock::now() + 30s;
  for (int c = 0; c < kCounters; ++c) {
    HttpResponse got = get_once_served(static_cast<size_t>(c % 2), "/counter/g" + std::to_string(c), deadline);
    ASSERT_EQ(got.status, 200) << got.body;
    EXPECT_EQ(std::stoi(got.body), acked[c]) << "counter g" << c;
  }
}

// Three nodes, two copies of every partition; an operator retires one.
class RetireClusterTest : public ClusterTest {
 protected:
  void SetUp() override { start_replicated(2); }
  // Counters <prefix>0.. each incremented once through the nodes in turn;
  // the acknowledged increments per counter.
  std::map<int, int> seed_counters(const std::string& prefix, int count) {
    std::map<int, int> acked;
    for (int c = 0; c < count; ++c) {
      auto r = post(static_cast<size_t>(c) % nodes_->size(), "/counter/" + prefix + std::to_string(c) + "/increment");
      EXPECT_EQ(r.status, 200) << r.body;
      acked[c] += r.status == 200;
    }
    return acked;
  }
  HttpResponse retire(size_t via, const std::string& node, bool undo = false) {
    HttpClient admin(nodes_->node(via).port());
    return admin.request(undo ? "DELETE" : "POST", "/_dobj/cluster/retire?node=" + node, "",
                         {{"authorization", std::string("Bearer ") + NodeSet::kToken}});
  }
  // Node i sees nothing left to move and every partition with its copies in
  // sync; `without` owns none and is in no replica set.
  bool settled_without(size_t i, const std::string& without) {
    json v = json::parse(nodes_->status(i), nullptr, false);
    if (!v.is_object() || v.value("moves_pending", -1) != 0) return false;
    for (const auto& p : v["partitions"]) {
      if (p["owner"] == without || p["in_sync"].size() != 2 || p["replicas"].size() != 2) return false;
      for (const auto& r : p["replicas"]) {
        if (r == without) return false;
      }
    }
    return true;
  }
};

// A live node retired: its partitions are handed to the others while
// clients write, and afterwards it holds nothing anyone waits for: killed,
// no request notices.
TEST_F(RetireClusterTest, ARetiredNodeHandsOverEverythingAndCanThenStopUnnoticed) {
  constexpr int kCounters = 30;
  std::map<int, int> acked = seed_counters("t", kCounters);
  EXPECT_EQ(retire(0, "nobody").status, 404);
  auto r = retire(0, "n3");
  ASSERT_EQ(r.status, 200) << r.body;
  int refused = 0;
  auto deadline = std::chrono::steady_clock::now() + 90s;  // a bound for the test, not a measurement
  while (!(settled_without(0, "n3") && settled_without(1, "n3")) && std::chrono::steady_clock::now() < deadline) {
    for (int c = 0; c < kCounters; ++c) {
      auto w = post(static_cast<size_t>(c % 2), "/counter/t" + std::to_string(c) + "/increment");
      if (w.status == 200) {
        ++acked[c];
      } else {
        ++refused;
      }
    }
  }
  ASSERT_TRUE(settled_without(0, "n3")) << nodes_->status(0);
  EXPECT_EQ(refused, 0);
  json view = json::parse(nodes_->status(1));
  bool listed = false;
  for (const auto& n : view["nodes"]) {
    if (n["id"] == "n3") listed = n.value("retired", false) && n.value("partitions", -1) == 0;
  }
  EXPECT_TRUE(listed) << view["nodes"].dump();
  EXPECT_EQ(nodes_->node(2).stop(SIGKILL), 128 + SIGKILL);
  for (int c = 0; c < kCounters; ++c) {
    auto got = get(static_cast<size_t>(c % 2), "/counter/t" + std::to_string(c));
    ASSERT_EQ(got.status, 200) << got.body;  // at once: nothing waited for n3
    EXPECT_EQ(std::stoi(got.body), acked[c]) << "counter t" << c;
  }
}

// Three copies on three nodes: a retired node leaves every replica set even
// though two nodes are then fewer than the count (nothing is left pending).
class RetireFromThreeCopiesTest : public RetireClusterTest {
 protected:
  void SetUp() override { start_replicated(3); }
};

TEST_F(RetireFromThreeCopiesTest, ARetiredNodeLeavesEveryReplicaSetWhenFewerNodesAreLeftThanCopies) {
  constexpr int kCounters = 12;
  std::map<int, int> acked = seed_counters("f", kCounters);
  ASSERT_EQ(retire(0, "n3").status, 200);
  auto deadline = std::chrono::steady_clock::now() + 60s;
  while (!(settled_without(0, "n3") && settled_without(1, "n3")) && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(200ms);
  }
  ASSERT_TRUE(settled_without(0, "n3")) << nodes_->status(0);
  EXPECT_EQ(nodes_->node(2).stop(SIGKILL), 128 + SIGKILL);
  for (int c = 0; c < kCounters; ++c) {
    auto got = get(static_cast<size_t>(c % 2), "/counter/f" + std::to_string(c));
    ASSERT_EQ(got.status, 200) << got.body;
    EXPECT_EQ(std::stoi(got.body), acked[c]) << "counter f" << c;
  }
}

// A node gone for good, retired: its copies are made again on the others,
// so the partitions have two copies once more, and survive the next loss.
TEST_F(RetireClusterTest, ADeadNodeRetiredHasItsCopiesMadeAgainElsewhere) {
  constexpr int kCounters = 30;
  std::map<int, int> acked = seed_counters("d", kCounters);
  EXPECT_EQ(nodes_->node(0).stop(SIGKILL), 128 + SIGKILL);
  // Retired through a survivor once it saw n1 go (its partitions failed over).
  auto deadline = std::chrono::steady_clock::now() + 60s;
  HttpResponse r;
  do {
    r = retire(1, "n1");
    if (r.status == 200) break;
    std::this_thread::sleep_for(200ms);
  } while (std::chrono::steady_clock::now() < deadline);
  ASSERT_EQ(r.status, 200) << r.body;
  while (!(settled_without(1, "n1") && settled_without(2, "n1")) && std::chrono::steady_clock::now() < deadline + 60s) {
    for (int c = 0; c < kCounters; ++c) {
      if (post(1 + static_cast<size_t>(c % 2), "/counter/d" + std::to_string(c) + "/increment").status == 200) {
        ++acked[c];
      }
    }
    std::this_thread::sleep_for(100ms);
  }
  ASSERT_TRUE(settled_without(1, "n1")) << nodes_->status(1);
  // Every partition is on n2 and n3 now: either can go.
  EXPECT_EQ(nodes_->node(1).stop(SIGKILL), 128 + SIGKILL);
  deadline = std::chrono::steady_clock::now() + 30s;
  for (int c = 0; c < kCounters; ++c) {
    HttpResponse got = get_once_served(2, "/counter/d" + std::to_string(c), deadline);
    ASSERT_EQ(got.status, 200) << got.body;
    EXPECT_EQ(std::stoi(got.body), acked[c]) << "counter d" << c;
  }
}

// A set-append checker in the manner of Jepsen: clients append unique values
// to one SQL table through random nodes, concurrently, while the node that
// owns the table's object is killed. Afterwards every acknowledged append is
// there exactly once, nothing is there that was never sent, and the table's
// order agrees with real time: an append acknowledged before another was sent
// comes before it.
TEST_F(ReplicatedClusterTest, AppendsThroughRandomNodesSurviveTheOwnersDeathInRealTimeOrder) {
  auto sql = [&](size_t node, const std::string& query) {
    return http(nodes_->node(node).port(), "POST", "/sql/appends", json{{"query", query}}.dump());
  };
  ASSERT_EQ(sql(0, "CREATE TABLE IF NOT EXISTS log(v INTEGER NOT NULL)").status, 200);
  size_t victim = owner_of("SQL", "appends");
  ASSERT_LT(victim, nodes_->size());

  struct Append {
    int64_t value;
    std::chrono::steady_clock::time_point sent, answered;
    bool acked = false;
  };
  constexpr int kClients = 3, kEach = 120;
  std::vector<std::vector<Append>> done(kClients);
  std::atomic<int> progress{0};
  std::atomic<bool> killed{false};
  std::vector<std::thread> clients;
  for (int c = 0; c < kClients; ++c) {
    clients.emplace_back([&, c] {
      std::mt19937 random(static_cast<unsigned>(c) + 7);
      // Until kEach were acknowledged: the ones sent during the failover fail.
      auto deadline = std::chrono::steady_clock::now() + 60s;  // a bound for the test
      int acked_here = 0;
      for (int i = 0; acked_here < kEach && std::chrono::steady_clock::now() < deadline; ++i) {
        Append a{int64_t{c} * 1'000'000 + i, std::chrono::steady_clock::now(), {}, false};
        // Through a live node: the victim is not asked once it was killed.
        size_t node = random() % nodes_->size();
        if (killed.load() && node == victim) node = (node + 1) % nodes_->size();
        auto r = sql(node, "INSERT INTO log(v) VALUES (" + std::to_string(a.value) + ")");
        a.answered = std::chrono::steady_clock::now();
        a.acked = r.status == 200;
        acked_here += a.acked ? 1 : 0;
        done[static_cast<size_t>(c)].push_back(a);
        ++progress;
        if (!a.acked) std::this_thread::sleep_for(20ms);  // during the failover
      }
    });
  }
  while (progress.load() < kClients * kEach / 3) std::this_thread::sleep_for(5ms);
  killed = true;
  EXPECT_EQ(nodes_->node(victim).stop(SIGKILL), 128 + SIGKILL);
  for (auto& t : clients) t.join();

  // The log as the surviving owner has it, in table order.
  size_t reader = (victim + 1) % nodes_->size();
  HttpResponse r;
  for (int attempt = 0; attempt < 100; ++attempt) {
    r = sql(reader, "SELECT v FROM log ORDER BY rowid");
    if (r.status == 200) break;
    std::this_thread::sleep_for(100ms);
  }
  ASSERT_EQ(r.status, 200) << r.body;
  std::map<int64_t, size_t> position;
  size_t index = 0;
  json log = json::parse(r.body);
  for (const auto& row : log["rows"]) {
    int64_t v = row[0].get<int64_t>();
    EXPECT_TRUE(position.emplace(v, index++).second) << v << " is in the log twice";
  }
  std::vector<Append> all;
  for (auto& d : done) all.insert(all.end(), d.begin(), d.end());
  std::set<int64_t> sent;
  int acked = 0;
  for (const auto& a : all) {
    sent.insert(a.value);
    if (!a.acked) continue;
    ++acked;
    EXPECT_TRUE(position.count(a.value)) << "acknowledged append " << a.value << " is lost";
  }
  for (const auto& [v, pos] : position) EXPECT_TRUE(sent.count(v)) << v << " was never sent";
  // Real-time order: a acknowledged before b was sent, both in the log: a first.
  int pairs = 0, out_of_order = 0;
  std::string first_violation;
  for (const auto& a : all) {
    if (!a.acked || !position.count(a.value)) continue;
    for (const auto& b : all) {
      if (!position.count(b.value) || !(a.answered < b.sent)) continue;
      ++pairs;
      if (position[a.value] > position[b.value] && out_of_order++ == 0) {
        first_violation = std::to_string(a.value) + " was acknowledged before " + std::to_string(b.value) +
                          " was sent, and comes after it";
      }
    }
  }
  EXPECT_EQ(out_of_order, 0) << first_violation;
  std::printf("appends: %d acknowledged of %zu sent, %zu in the log, %d ordered pairs checked\n", acked,
              all.size(), position.size(), pairs);
  EXPECT_EQ(acked, kClients * kEach) << "the clients gave up before the failover ended";
}

// Network faults. The test moves into a network namespace of its own
// (loopback only: nothing it does reaches the machine's network), runs each
// node as a user of its own, and cuts links with iptables rules on those
// users' packets. Leaving, it stops the processes, and the namespace goes
// with its rules. Needs root and iptables (scripts/deps.sh iptables).
class NetworkFaultClusterTest : public ClusterTest {
 protected:
  static constexpr int kFirstUid = 47001;

  void SetUp() override {
    if (::geteuid() != 0) GTEST_SKIP() << "needs root: a network namespace and iptables";
    if (std::system("iptables --version >/dev/null 2>&1") != 0) {
      GTEST_SKIP() << "iptables is not installed (scripts/deps.sh iptables)";
    }
    if (!have_etcd()) GTEST_SKIP() << "etcd is not installed (scripts/deps.sh etcd-server)";
    home_ = ::open("/proc/self/ns/net", O_RDONLY | O_CLOEXEC);
    ASSERT_GE(home_, 0);
    ASSERT_EQ(::unshare(CLONE_NEWNET), 0) << std::strerror(errno);
    ASSERT_EQ(std::system("ip link set lo up"), 0);
    first_uid_ = kFirstUid;
    std::vector<std::string> args = kNodeArgs;
    args.insert(args.end(), {"--replicas", "3"});
    start_cluster(args);
  }
  void TearDown() override {
    ClusterTest::TearDown();
    nodes_.reset();
    etcd_.reset();
    if (home_ >= 0) {
      EXPECT_EQ(::setns(home_, CLONE_NEWNET), 0);
      ::close(home_);
    }
  }
  // Node i's packets to these ports are dropped (silence, as a cut cable).
  void cut(size_t node, const std::vector<int>& ports) {
    for (int port : ports) {
      std::string rule = "iptables -A OUTPUT -m owner --uid-owner " + std::to_string(kFirstUid + static_cast<int>(node)) +
                         " -p tcp --dport " + std::to_string(port) + " -j DROP";
      ASSERT_EQ(std::system(rule.c_str()), 0) << rule;
    }
  }
  void heal() { ASSERT_EQ(std::system("iptables -F OUTPUT"), 0); }
  int peer_port(size_t node) {
    json view = json::parse(nodes_->status(node), nullptr, false);
    for (const auto& n : view["nodes"]) {
      if (n.value("id", "") == nodes_->node_id(node)) {
        std::string peer = n.value("peer", "");
        return std::stoi(peer.substr(peer.rfind(':') + 1));
      }
    }
    ADD_FAILURE() << "no peer address for node " << node << ": " << view.dump();
    return 0;
  }

  int home_ = -1;
};

// A node that still runs but cannot reach etcd stops answering for the
// objects it served before etcd lets its lease go, and the others take them
// over; when the link is back it rejoins and has every acknowledged write.
// The activation traces (TearDown) show no answer of the cut-off node after
// another node started serving the same object.
TEST_F(NetworkFaultClusterTest, ANodeCutOffFromEtcdStopsAnsweringAndTheOthersTakeOverWhileItRuns) {
  constexpr int kCounters = 24;
  std::map<int, int> acked, attempted;
  auto increment = [&](size_t node, int c) {
    ++attempted[c];
    auto r = post(node, "/counter/e" + std::to_string(c) + "/increment");
    if (r.status == 200) ++acked[c];
    return r.status;
  };
  for (int c = 0; c < kCounters; ++c) ASSERT_EQ(increment(static_cast<size_t>(c % 3), c), 200);
  std::set<int> n1s;
  for (int c = 0; c < kCounters; ++c) {
    if (owner_of("COUNTER", "e" + std::to_string(c)) == 0) n1s.insert(c);
  }
  ASSERT_FALSE(n1s.empty());
  cut(0, {etcd_->client_port(0), etcd_->client_port(1), etcd_->client_port(2)});
  auto cut_at = std::chrono::steady_clock::now();
  // Once n1's lease is gone (it stopped serving before that), n2 and n3 take
  // its partitions, and every counter answers through them.
  auto owned_by_n1 = [&] {
    json view = json::parse(nodes_->status(1), nullptr, false);
    int owned = 0;
    for (const auto& p : view["partitions"]) owned += p.value("owner", "") == "n1";
    return owned;
  };
  auto deadline = cut_at + 30s;
  while (owned_by_n1() > 0 && std::chrono::steady_clock::now() < deadline) std::this_thread::sleep_for(100ms);
  ASSERT_EQ(owned_by_n1(), 0) << nodes_->status(1);
  for (int c = 0; c < kCounters; ++c) {
    while (increment(1 + static_cast<size_t>(c % 2), c) != 200 && std::chrono::steady_clock::now() < deadline) {
      std::this_thread::sleep_for(100ms);
    }
    ASSERT_LT(std::chrono::steady_clock::now(), deadline) << "counter e" << c << " did not move";
  }
  std::printf("n1 cut off from etcd: its %zu counters answered through the others %.1f s later\n", n1s.size(),
              std::chrono::duration<double>(std::chrono::steady_clock::now() - cut_at).count());
  // n1 runs on, and answers nothing for what it served.
  ASSERT_FALSE(nodes_->node(0).exited());
  for (int c : n1s) EXPECT_NE(increment(0, c), 200) << "counter e" << c;
  heal();
  // It renews or rejoins, catches up, and is a full copy again.
  if (nodes_->node(0).exited()) {
    ASSERT_TRUE(nodes_->restart(0)) << nodes_->failure();
  }
  ASSERT_TRUE(wait_all_in_sync(*nodes_, 1, 90s)) << nodes_->status(1);
  ASSERT_NO_FATAL_FAILURE(expect_counters("e", acked, attempted, [](int) { return size_t{0}; }, 20s));
}

// n1 and n2 cannot reach each other; both still reach etcd, n3 and their
// clients. A write whose ship cannot reach its backup waits up to a lease,
// the backup leaves the in-sync set by compare-and-swap, and writes go on;
// once the link is back the backups catch up, and nothing acknowledged is
// missing.
TEST_F(NetworkFaultClusterTest, AnOwnerCutOffFromOneBackupDropsItFromTheInSyncSetAndWritesGoOn) {
  constexpr int kCounters = 24;
  std::map<int, int> acked, attempted;
  auto increment = [&](int c) {
    ++attempted[c];
    auto r = post(2, "/counter/b" + std::to_string(c) + "/increment");
    if (r.status == 200) ++acked[c];
    return r.status;
  };
  for (int c = 0; c < kCounters; ++c) ASSERT_EQ(increment(c), 200);
  int p1 = peer_port(0), p2 = peer_port(1);
  cut(0, {p2});
  cut(1, {p1});
  auto cut_at = std::chrono::steady_clock::now();
  auto deadline = cut_at + 30s;
  for (int round = 0; round < 3; ++round) {
    for (int c = 0; c < kCounters; ++c) {
      while (increment(c) != 200 && std::chrono::steady_clock::now() < deadline) std::this_thread::sleep_for(100ms);
      ASSERT_LT(std::chrono::steady_clock::now(), deadline)
          << "counter b" << c << " stopped answering\n" << nodes_->status(2) << "\n--- n1:\n"
          << nodes_->node(0).output().substr(nodes_->node(0).output().size() > 6000 ? nodes_->node(0).output().size() - 6000 : 0)
          << "\n--- n2:\n"
          << nodes_->node(1).output().substr(nodes_->node(1).output().size() > 6000 ? nodes_->node(1).output().size() - 6000 : 0);
    }
  }
  std::printf("n1 and n2 cut from each other: 3 rounds of %d increments done %.1f s later\n", kCounters,
              std::chrono::duration<double>(std::chrono::steady_clock::now() - cut_at).count());
  // Partitions n1 owns with n2 as a backup lost n2 from their in-sync sets
  // (or the other way round), by etcd's record.
  json view = json::parse(nodes_->status(2));
  int shrunk = 0;
  for (const auto& p : view["partitions"]) {
    std::string owner = p.value("owner", "");
    std::string other = owner == "n1" ? "n2" : owner == "n2" ? "n1" : "";
    if (!other.empty() && std::find(p["in_sync"].begin(), p["in_sync"].end(), other) == p["in_sync"].end()) ++shrunk;
  }
  EXPECT_GT(shrunk, 0) << view.dump();
  heal();
  for (size_t i = 0; i < 2; ++i) {
    if (nodes_->node(i).exited()) {
      ASSERT_TRUE(nodes_->restart(i)) << nodes_->failure();
    }
  }
  ASSERT_TRUE(wait_all_in_sync(*nodes_, 2, 90s)) << nodes_->status(2);
  ASSERT_NO_FATAL_FAILURE(
      expect_counters("b", acked, attempted, [](int c) { return static_cast<size_t>(c % 3); }, 20s));
}

// Clocks that disagree: n1's wall clock reads 90 s ahead, n2's 90 s behind
// (--clock-skew-ms moves what the runtime reads: alarm times, State::now).
// Clients that cannot reach a node (the cut is between it and them only: it
// still reaches etcd and the other nodes) lose nothing: its objects stay
// with it and answer through the other nodes, and nothing moves.
TEST_F(NetworkFaultClusterTest, ANodeItsClientsCannotReachStillServesItsObjectsThroughTheOthers) {
  std::map<std::string, int> value;  // counter -> acknowledged increments
  std::vector<std::string> on_n1;
  for (int c = 0; c < 60 && (c < 12 || on_n1.empty()); ++c) {
    std::string name = "a" + std::to_string(c);
    ASSERT_EQ(post(static_cast<size_t>(c % 3), "/counter/" + name + "/increment").status, 200);
    value[name] = 1;
    if (owner_of("COUNTER", name) == 0) on_n1.push_back(name);
  }
  ASSERT_FALSE(on_n1.empty()) << "n1 served none of the counters";
  // The test (root, a client) can no longer reach n1's port; the nodes can.
  std::string rule = "iptables -A OUTPUT -m owner --uid-owner 0 -p tcp --dport " +
                     std::to_string(nodes_->node(0).port()) + " -j DROP";
  ASSERT_EQ(std::system(rule.c_str()), 0) << rule;
  HttpClient direct(nodes_->node(0).port(), 1s);
  EXPECT_EQ(direct.request("GET", "/counter/" + on_n1[0]).status, 0) << "the cut did not cut";
  for (int round = 0; round < 3; ++round) {
    for (auto& [name, v] : value) {
      auto r = post(1 + static_cast<size_t>(round % 2), "/counter/" + name + "/increment");
      ASSERT_EQ(r.status, 200) << name << ": " << r.body;
      EXPECT_EQ(r.body, std::to_string(++v)) << name;
    }
  }
  for (const auto& name : on_n1) EXPECT_EQ(owner_of("COUNTER", name), 0u) << name << " moved";
  heal();
  for (const auto& [name, v] : value) {
    auto r = get(0, "/counter/" + name);
    ASSERT_EQ(r.status, 200) << r.body;
    EXPECT_EQ(r.body, std::to_string(v)) << name;
  }
}

class ClockSkewClusterTest : public ClusterTest {
 protected:
  void SetUp() override {
    node_args_[0] = {"--clock-skew-ms", "90000"};
    node_args_[1] = {"--clock-skew-ms", "-90000"};
    start_replicated(3);
  }
};

// Ownership runs on leases measured by monotonic clocks, so the skew changes
// nothing: through a kill, a restart with hand-offs back, and a pause past
// the lease, no acknowledged write is lost and the activation traces
// (TearDown) show no object served by two nodes at once. The skew itself is
// real: an alarm scheduled "in 5 s" by an object on a skewed node is 90 s
// off.
TEST_F(ClockSkewClusterTest, NodesWhoseWallClocksDisagreeByMinutesNeverServeOneObjectAtOnce) {
  constexpr int kCounters = 24;
  std::map<int, int> acked, attempted;
  auto increment = [&](size_t node, int c) {
    ++attempted[c];
    auto r = post(node, "/counter/k" + std::to_string(c) + "/increment");
    if (r.status == 200) ++acked[c];
    return r.status;
  };
  auto every_counter_answers = [&](std::vector<size_t> via, std::chrono::seconds within) {
    auto deadline = std::chrono::steady_clock::now() + within;
    for (int c = 0; c < kCounters; ++c) {
      while (increment(via[static_cast<size_t>(c) % via.size()], c) != 200 &&
             std::chrono::steady_clock::now() < deadline) {
        std::this_thread::sleep_for(100ms);
      }
    }
    return std::chrono::steady_clock::now() < deadline;
  };
  ASSERT_TRUE(every_counter_answers({0, 1, 2}, 10s));
  // The skew is there: each node schedules by its own wall clock.
  std::map<std::string, int64_t> off_by;
  for (int t = 0; t < 60 && off_by.size() < 3; ++t) {  // 12 names missed a node 2.3% of runs
    std::string name = "skew" + std::to_string(t);
    auto before = std::chrono::duration_cast<std::chrono::milliseconds>(
                      std::chrono::system_clock::now().time_since_epoch()).count();
    auto r = post(2, "/tasks/" + name + "/schedule?delay_ms=5000");
    ASSERT_EQ(r.status, 200) << r.body;
    off_by[nodes_->node_id(owner_of("TASK_RUNNER", name))] =
        json::parse(r.body).value("scheduled", int64_t{0}) - before - 5000;
  }
  ASSERT_EQ(off_by.size(), 3u);
  EXPECT_NEAR(static_cast<double>(off_by["n1"]), 90000, 5000);
  EXPECT_NEAR(static_cast<double>(off_by["n2"]), -90000, 5000);
  EXPECT_NEAR(static_cast<double>(off_by["n3"]), 0, 5000);
  // n1 (ahead) dies; n2 and n3 take its partitions.
  EXPECT_EQ(nodes_->node(0).stop(SIGKILL), 128 + SIGKILL);
  ASSERT_TRUE(every_counter_answers({1, 2}, 30s));
  // It returns, catches up, and takes back what it prefers.
  ASSERT_TRUE(nodes_->restart(0)) << nodes_->failure();
  auto deadline = std::chrono::steady_clock::now() + 90s;
  while (!all_in_sync(*nodes_, 2) && std::chrono::steady_clock::now() < deadline) {
    every_counter_answers({0, 1, 2}, 10s);
    std::this_thread::sleep_for(200ms);
  }
  ASSERT_TRUE(all_in_sync(*nodes_, 2)) << nodes_->status(2);
  // n2 (behind) pauses past its lease, and comes back.
  ::kill(nodes_->node(1).pid(), SIGSTOP);
  ASSERT_TRUE(every_counter_answers({0, 2}, 30s));
  ::kill(nodes_->node(1).pid(), SIGCONT);
  std::this_thread::sleep_for(2s);
  if (nodes_->node(1).exited()) {  // commits waited on its backups past the lease: status 75
    ASSERT_TRUE(nodes_->restart(1)) << nodes_->failure();
  }
  ASSERT_TRUE(every_counter_answers({0, 1, 2}, 30s));
  ASSERT_NO_FATAL_FAILURE(expect_counters("k", acked, attempted, [](int) { return size_t{2}; }, 20s));
}

// The check behind every cluster test's TearDown finds what it is for.
TEST(ActivationCheckTest, FindsTwoNodesRunningOneObjectAtOnceAndATakeoverAtAnOlderEpoch) {
  TempDir dir;
  auto write = [&](const std::string& name, const std::string& lines) {
    std::ofstream(dir.path() + "/" + name) << lines;
    return dir.path() + "/" + name;
  };
  // n1 serves a until 200, n2 from 300 at a newer epoch: fine.
  std::string n1 = write("n1", "n1 COUNTER a 10 100 150\nn1 COUNTER a 10 160 200\nn1 COUNTER b 10 100 110\n");
  std::string n2 = write("n2", "n2 COUNTER a 20 300 310\n");
  ActivationCheck ok = check_activations({n1, n2});
  EXPECT_EQ(ok.answers, 4u);
  EXPECT_EQ(ok.objects, 2u);
  EXPECT_EQ(ok.handovers, 1u);
  EXPECT_EQ(ok.violations, 0u);
  // n2 starts an event of a at 190, before n1's answer at 200 left.
  std::string n2_early = write("n2e", "n2 COUNTER a 20 190 195\n");
  ActivationCheck overlap = check_activations({n1, n2_early});
  EXPECT_EQ(overlap.violations, 1u);
  ASSERT_EQ(overlap.examples.size(), 1u);
  EXPECT_NE(overlap.examples[0].find("COUNTER/a"), std::string::npos) << overlap.examples[0];
  // n2 follows n1 at an epoch that is not newer.
  std::string n2_stale = write("n2s", "n2 COUNTER a 10 300 310\n");
  EXPECT_EQ(check_activations({n1, n2_stale}).violations, 1u);
}

TEST(ClusterStart, AFolderMadeWithAnotherIdSecretIsRefused) {
  if (!have_etcd()) GTEST_SKIP() << "etcd is not installed";
  TempDir dir;
  {
    ServerProcess single(DOBJ_EXAMPLES_BIN, dir.path() + "/data");
    ASSERT_TRUE(single.start());
    ASSERT_EQ(http(single.port(), "POST", "/counter/x/increment").status, 200);
    single.stop(SIGTERM);
  }
  EtcdCluster etcd(dir.path() + "/etcd", 1);
  ASSERT_TRUE(etcd.ready());
  // The first node of a new cluster gives the cluster its folder's secret...
  {
    ServerProcess first(DOBJ_EXAMPLES_BIN, dir.path() + "/data",
                        {"--cluster", etcd.endpoints(), "--node-id", "a", "--lease-ms", "2000"});
    ASSERT_TRUE(first.start(40s)) << first.output();
    first.stop(SIGTERM);
  }
  // ...and a folder with a secret of its own cannot join it.
  {
    ServerProcess other(DOBJ_EXAMPLES_BIN, dir.path() + "/other");
    ASSERT_TRUE(other.start());
    other.stop(SIGTERM);
  }
  ServerProcess joining(DOBJ_EXAMPLES_BIN, dir.path() + "/other",
                        {"--cluster", etcd.endpoints(), "--node-id", "b", "--lease-ms", "2000"});
  EXPECT_FALSE(joining.start(40s));
  EXPECT_NE(joining.output().find("another ID secret"), std::string::npos) << joining.output();
}

}  // namespace
}  // namespace dobj::test
