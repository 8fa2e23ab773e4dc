#include "support/cluster.h"

#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <optional>
#include <nlohmann/json.hpp>
#include <thread>

namespace dobj::test {

int free_port() {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  a.sin_port = 0;
  socklen_t len = sizeof a;
  int port = 0;
  if (::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0 &&
      ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len) == 0) {
    port = ntohs(a.sin_port);
  }
  ::close(fd);
  return port;
}

bool have_etcd() { return ::access("/usr/bin/etcd", X_OK) == 0; }

bool wait_for(const std::function<bool()>& holds, std::chrono::milliseconds within,
              std::chrono::milliseconds every) {
  auto deadline = std::chrono::steady_clock::now() + within;
  while (!holds()) {
    if (std::chrono::steady_clock::now() >= deadline) return false;
    std::this_thread::sleep_for(every);
  }
  return true;
}

EtcdCluster::EtcdCluster(std::string dir, int members) : dir_(std::move(dir)) {
  std::filesystem::create_directories(dir_);
  for (int i = 0; i < members; ++i) {
    Member m;
    m.name = "e" + std::to_string(i);
    m.client = free_port();
    m.peer = free_port();
    if (!initial_cluster_.empty()) initial_cluster_ += ",";
    initial_cluster_ += m.name + "=http://127.0.0.1:" + std::to_string(m.peer);
    members_.push_back(m);
  }
  for (size_t i = 0; i < members_.size(); ++i) {
    if (!launch(i, true)) return;
  }
  ready_ = wait_answering(std::chrono::seconds(30));
}

EtcdCluster::~EtcdCluster() {
  for (size_t i = 0; i < members_.size(); ++i) {
    if (members_[i].pid > 0) {
      ::kill(members_[i].pid, SIGCONT);
      signal(static_cast<int>(i), SIGKILL);
    }
  }
}

bool EtcdCluster::launch(size_t i, bool fresh) {
  Member& m = members_[i];
  std::string data = dir_ + "/" + m.name;
  std::string log = dir_ + "/" + m.name + ".log";
  std::string client = "http://127.0.0.1:" + std::to_string(m.client);
  std::string peer = "http://127.0.0.1:" + std::to_string(m.peer);
  std::vector<std::string> args = {"/usr/bin/etcd",
                                   "--name", m.name,
                                   "--data-dir", data,
                                   "--listen-client-urls", client,
                                   "--advertise-client-urls", client,
                                   "--listen-peer-urls", peer,
                                   "--initial-advertise-peer-urls", peer,
                                   "--initial-cluster", initial_cluster_,
                                   "--initial-cluster-state", fresh ? "new" : "existing",
                                   "--initial-cluster-token", "dobj-test",
                                   // Elections within a second, as a test wants.
                                   "--heartbeat-interval", "100",
                                   "--election-timeout", "1000"};
  m.pid = fork();
  if (m.pid < 0) return false;
  if (m.pid == 0) {
    FILE* f = std::fopen(log.c_str(), "a");
    if (f) {
      dup2(fileno(f), 1);
      dup2(fileno(f), 2);
    }
    std::vector<char*> argv;
    for (auto& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    execv(argv[0], argv.data());
    _exit(127);
  }
  return true;
}

bool EtcdCluster::restart(int member) {
  if (!launch(static_cast<size_t>(member), false)) return false;
  return wait_answering(std::chrono::seconds(30));
}

std::string EtcdCluster::endpoints() const {
  std::string out;
  for (const auto& m : members_) {
    if (!out.empty()) out += ",";
    out += "127.0.0.1:" + std::to_string(m.client);
  }
  return out;
}

void EtcdCluster::signal(int member, int sig) {
  Member& m = members_[static_cast<size_t>(member)];
  if (m.pid <= 0) return;
  ::kill(m.pid, sig);
  if (sig == SIGKILL) {
    int status;
    waitpid(m.pid, &status, 0);
    m.pid = -1;
  }
}

int EtcdCluster::leader() const {
  for (size_t i = 0; i < members_.size(); ++i) {
    if (members_[i].pid <= 0) continue;
    HttpClient c(members_[i].client, std::chrono::seconds(2));
    auto r = c.request("POST", "/v3/maintenance/status", "{}");
    if (r.status != 200) continue;
    auto j = nlohmann::json::parse(r.body, nullptr, false);
    if (!j.is_object()) continue;
    std::string leader = j.value("leader", "");
    std::string self = j.contains("header") ? j["header"].value("member_id", "") : "";
    if (!leader.empty() && leader == self) return static_cast<int>(i);
  }
  return -1;
}

bool EtcdCluster::writable() const {
  for (const auto& m : members_) {
    if (m.pid <= 0) continue;
    HttpClient c(m.client, std::chrono::seconds(2));
    // key "dobj-test" and value "1", base64
    auto r = c.request("POST", "/v3/kv/put", R"({"key":"ZG9iai10ZXN0","value":"MQ=="})");
    if (r.status == 200) return true;
  }
  return false;
}

bool EtcdCluster::wait_answering(std::chrono::milliseconds timeout) const {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  while (std::chrono::steady_clock::now() < deadline) {
    if (writable() && leader() >= 0) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  return false;
}

NodeSet::NodeSet(ServerCommand command, std::string dir, std::string etcd, int nodes,
                 std::vector<std::string> extra_args)
    : command_(std::move(command)), dir_(std::move(dir)), etcd_(std::move(etcd)), extra_(std::move(extra_args)) {
  for (int i = 0; i < nodes; ++i) nodes_.push_back(make(static_cast<size_t>(i)));
}

std::unique_ptr<ServerProcess> NodeSet::make(size_t i) const {
  std::string folder = dir_ + "/" + node_id(i);
  auto node = std::make_unique<ServerProcess>(command_, folder, args(i));
  if (first_uid_ >= 0) {
    int uid = first_uid_ + static_cast<int>(i);
    std::filesystem::create_directories(folder);
    std::ofstream(folder + ".activations", std::ios::app).close();
    for (const std::string& path : {folder, folder + ".activations"}) {
      if (::chown(path.c_str(), static_cast<uid_t>(uid), static_cast<gid_t>(uid)) != 0) {
        std::fprintf(stderr, "cannot give %s to user %d\n", path.c_str(), uid);
      }
    }
    node->set_user(uid);
  }
  return node;
}

void NodeSet::add_node_args(size_t i, std::vector<std::string> args) {
  auto& own = node_args_[i];
  own.insert(own.end(), args.begin(), args.end());
  nodes_[i] = make(i);
}

void NodeSet::run_as_users(int first_uid) {
  first_uid_ = first_uid;
  ::chmod(dir_.c_str(), 0755);  // the nodes' users reach their folders through it
  for (size_t i = 0; i < nodes_.size(); ++i) nodes_[i] = make(i);
}

std::vector<std::string> NodeSet::args(size_t i) const {
  std::vector<std::string> a = {"--cluster", etcd_, "--node-id", node_id(i), "--admin-token", kToken,
                                "--shards", "2", "--trace-activations", dir_ + "/" + node_id(i) + ".activations"};
  a.insert(a.end(), extra_.begin(), extra_.end());
  if (auto own = node_args_.find(i); own != node_args_.end()) a.insert(a.end(), own->second.begin(), own->second.end());
  return a;
}

bool NodeSet::start() {
  for (auto& n : nodes_) {
    if (!n->start(std::chrono::seconds(40))) return false;
  }
  return true;
}

bool NodeSet::restart(size_t i) {
  nodes_[i] = make(i);
  return nodes_[i]->start(std::chrono::seconds(40));
}

bool NodeSet::add() {
  size_t i = nodes_.size();
  nodes_.push_back(make(i));
  return nodes_[i]->start(std::chrono::seconds(40));
}

std::string NodeSet::status(size_t i) {
  HttpClient c(nodes_[i]->port(), std::chrono::seconds(5));
  return c.request("GET", "/_dobj/cluster", "", {{"authorization", std::string("Bearer ") + kToken}}).body;
}

bool NodeSet::wait_ready(std::chrono::milliseconds timeout) {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  while (std::chrono::steady_clock::now() < deadline) {
    bool ready = true;
    std::optional<nlohmann::json> members;  // every node must see the same ones
    for (size_t i = 0; i < nodes_.size() && ready; ++i) {
      if (nodes_[i]->pid() <= 0) continue;
      auto j = nlohmann::json::parse(status(i), nullptr, false);
      if (j.is_object()) {
        nlohmann::json seen = nlohmann::json::array();
        for (const auto& n : j["nodes"]) seen.push_back({n.value("id", ""), n.value("peer", "")});
        if (members && *members != seen) ready = false;
        members = seen;
      }
      if (!j.is_object() || !j.value("lease_live", false) || j.value("unplaced", 1) != 0 ||
          j.value("serving", -1) != j.value("owned", -2)) {
        ready = false;
        break;
      }
      for (const auto& p : j["partitions"]) {
        if (!p.value("owner_live", false)) ready = false;
      }
    }
    if (ready) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  return false;
}

std::string NodeSet::failure() {
  std::string out;
  for (size_t i = 0; i < nodes_.size(); ++i) out += node_id(i) + ":\n" + nodes_[i]->output() + "\n";
  return out;
}


std::vector<std::string> NodeSet::trace_files() const {
  std::vector<std::string> files;
  for (size_t i = 0; i < nodes_.size(); ++i) files.push_back(dir_ + "/" + node_id(i) + ".activations");
  return files;
}

ActivationCheck check_activations(const std::vector<std::string>& trace_files) {
  struct Span {
    std::string node;
    int64_t epoch = 0;
    int64_t start = 0;
    int64_t release = 0;
  };
  std::map<std::string, std::vector<Span>> by_object;
  ActivationCheck out;
  for (const auto& file : trace_files) {
    std::ifstream in(file);
    std::string node, ns, id;
    Span s;
    while (in >> node >> ns >> id >> s.epoch >> s.start >> s.release) {
      s.node = node;
      by_object[ns + "/" + id].push_back(s);
      ++out.answers;
    }
  }
  out.objects = by_object.size();
  auto violation = [&](std::string what) {
    if (out.violations++ < 5) out.examples.push_back(std::move(what));
  };
  for (auto& [object, spans] : by_object) {
    std::sort(spans.begin(), spans.end(), [](const Span& a, const Span& b) { return a.start < b.start; });
    // Per node: the latest release so far, and the span before this one.
    std::map<std::string, int64_t> last_release;
    const Span* before = nullptr;
    for (const Span& s : spans) {
      for (const auto& [other, release] : last_release) {
        if (other != s.node && release > s.start) {
          violation(object + ": node " + s.node + " started an event " + std::to_string(release - s.start) +
                    " ns before node " + other + " released an answer");
        }
      }
      if (before && before->node != s.node) {
        ++out.handovers;
        if (s.epoch <= before->epoch) {
          violation(object + ": node " + s.node + " followed node " + before->node + " at epoch " +
                    std::to_string(s.epoch) + ", not newer than " + std::to_string(before->epoch));
        }
      }
      int64_t& r = last_release[s.node];
      r = std::max(r, s.release);
      before = &s;
    }
  }
  return out;
}

}  // namespace dobj::test
