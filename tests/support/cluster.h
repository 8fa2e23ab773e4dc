// Clusters for integration tests: real etcd members and real dobj nodes, as
// processes on loopback ports, each with a folder of its own.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "support/server_process.h"
#include "testing/http_client.h"

namespace dobj::test {

// A loopback port nothing listens on now (bound, then released).
int free_port();

// Whether etcd is installed (the cluster tests skip without it).
bool have_etcd();

// Asks holds() every `every` until it says yes (true) or `within` has
// passed (false).
bool wait_for(const std::function<bool()>& holds, std::chrono::milliseconds within,
              std::chrono::milliseconds every = std::chrono::milliseconds(100));

class EtcdCluster {
 public:
  // Starts `members` etcd members under dir and waits until they answer.
  EtcdCluster(std::string dir, int members);
  ~EtcdCluster();
  bool ready() const { return ready_; }
  // Client endpoints, comma-separated host:port (dobj's --cluster).
  std::string endpoints() const;
  int client_port(int member) const { return members_[static_cast<size_t>(member)].client; }
  // Signals one member (SIGKILL, SIGSTOP, SIGCONT); SIGKILL waits for the exit.
  void signal(int member, int sig);
  // Starts a killed member again, with its data.
  bool restart(int member);
  // The index of the member that leads now, -1 when none answers.
  int leader() const;
  // Whether a quorum answers a write (a put of a test key).
  bool writable() const;

 private:
  struct Member {
    std::string name;
    int client = 0;
    int peer = 0;
    pid_t pid = -1;
  };
  bool launch(size_t i, bool fresh);
  bool wait_answering(std::chrono::milliseconds timeout) const;
  std::string dir_;
  std::string initial_cluster_;
  std::vector<Member> members_;
  bool ready_ = false;
};

// dobj nodes (the example server) in one cluster.
class NodeSet {
 public:
  static constexpr const char* kToken = "cluster-test-token";
  NodeSet(ServerCommand command, std::string dir, std::string etcd, int nodes,
          std::vector<std::string> extra_args = {});
  // Starts every node; false (with their output in failure()) if one did not.
  bool start();
  size_t size() const { return nodes_.size(); }
  ServerProcess& node(size_t i) { return *nodes_[i]; }
  std::string node_id(size_t i) const { return "n" + std::to_string(i + 1); }
  // Starts node i again (same data folder and node ID).
  bool restart(size_t i);
  // Starts one more node (the next ID, an empty folder); false if it did not.
  bool add();
  // Waits until every running node sees all partitions placed with live
  // owners and its own lease live.
  bool wait_ready(std::chrono::milliseconds timeout);
  // /_dobj/cluster of node i, parsed by the caller (JSON text).
  std::string status(size_t i);
  std::string failure();
  // Every node writes its activation trace (--trace-activations) here.
  std::vector<std::string> trace_files() const;
  // From the next start on, node i runs as user first_uid + i (its folder
  // and trace are given to that user), so that firewall rules can tell the
  // nodes' packets apart (iptables' owner match). The test runs as root.
  void run_as_users(int first_uid);
  // From the next start on, node i gets these flags too.
  void add_node_args(size_t i, std::vector<std::string> args);

 private:
  std::vector<std::string> args(size_t i) const;
  std::unique_ptr<ServerProcess> make(size_t i) const;
  ServerCommand command_;
  std::string dir_;
  std::string etcd_;
  std::vector<std::string> extra_;
  int first_uid_ = -1;
  std::map<size_t, std::vector<std::string>> node_args_;
  std::vector<std::unique_ptr<ServerProcess>> nodes_;
};

// What the activation traces of a cluster's nodes show (--trace-activations:
// one line per released answer: node, namespace, object, the node's serving
// epoch, the event's start and its answer's release on the monotonic clock,
// which all processes on one machine share).
struct ActivationCheck {
  size_t answers = 0;
  size_t objects = 0;
  // Times an object's answers came from another node than the answer before.
  size_t handovers = 0;
  // Two nodes ran one object at once (an answer's span from start to release
  // overlaps another node's), or a node that took an object over served an
  // epoch not newer than the node before it; the first few, described.
  size_t violations = 0;
  std::vector<std::string> examples;
};
ActivationCheck check_activations(const std::vector<std::string>& trace_files);

}  // namespace dobj::test
