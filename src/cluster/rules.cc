// The cluster's decisions about partition records (rules.h).
#include "cluster/rules.h"

#include <nlohmann/json.hpp>

namespace dobj::internal {
namespace {

using nlohmann::json;

uint64_t mix(uint64_t x) {  // splitmix64's finaliser
  x ^= x >> 30;
  x *= 0xbf58476d1ce4e5b9ULL;
  x ^= x >> 27;
  x *= 0x94d049bb133111ebULL;
  x ^= x >> 31;
  return x;
}

uint64_t fnv1a(std::string_view s) {
  uint64_t h = 0xcbf29ce484222325ULL;
  for (unsigned char c : s) {
    h ^= c;
    h *= 0x100000001b3ULL;
  }
  return h;
}

// Moving a partition only when its winner changes keeps moves to those of
// the nodes that came or went.
uint64_t score(int p, const std::string& node) { return mix(fnv1a(node) ^ mix(static_cast<uint64_t>(p) + 1)); }

}  // namespace

std::string ClusterView::Partition::record() const {
  json j = {{"owner", owner}, {"replicas", replicas}, {"in_sync", in_sync}, {"generation", generation}};
  if (handed) j["handed"] = true;
  return j.dump();
}

namespace rules {

std::optional<Record> parse_record(std::string_view text, int64_t epoch) {
  json j = json::parse(text, nullptr, false);
  if (!j.is_object()) return std::nullopt;
  Record r;
  r.owner = j.value("owner", "");
  r.replicas = j.value("replicas", std::vector<std::string>{});
  r.in_sync = j.value("in_sync", r.replicas);
  r.generation = j.value("generation", int64_t{0});
  r.handed = j.value("handed", false);
  r.epoch = epoch;
  return r;
}

std::vector<std::string> ranked(int p, const NodeSet& nodes) {
  std::vector<std::string> out(nodes.begin(), nodes.end());
  std::sort(out.begin(), out.end(), [p](const std::string& a, const std::string& b) {
    uint64_t sa = score(p, a), sb = score(p, b);
    return sa != sb ? sa > sb : a < b;
  });
  return out;
}

std::vector<std::string> preferred_replicas(int p, NodeSet live, const std::vector<std::string>& replicas, int count,
                                            const NodeSet& retired) {
  live.insert(replicas.begin(), replicas.end());
  for (const auto& n : retired) live.erase(n);
  auto order = ranked(p, live);
  order.resize(std::min(order.size(), static_cast<size_t>(count)));
  return order;
}

bool placed_as_preferred(int p, const Record& r, const NodeSet& live, int count, const NodeSet& retired) {
  if (r.owner.empty()) return true;  // not placed yet: counted as such
  auto want = preferred_replicas(p, live, r.replicas, count, retired);
  if (want.empty() || r.owner != want.front()) return false;
  return NodeSet(want.begin(), want.end()) == NodeSet(r.replicas.begin(), r.replicas.end());
}

std::optional<Record> place(int p, const std::string& me, const NodeSet& members, int count,
                            const NodeSet& retired) {
  std::vector<std::string> order = preferred_replicas(p, members, {}, count, retired);
  if (order.empty() || order.front() != me) return std::nullopt;
  Record mine;
  mine.owner = me;
  mine.replicas = order;
  mine.in_sync = order;
  mine.generation = 1;
  return mine;
}

std::optional<Record> take_over(int p, const Record& r, const std::string& me, const NodeSet& live) {
  if (r.owner.empty() || r.owner == me || live.count(r.owner) || !contains(r.in_sync, me)) return std::nullopt;
  NodeSet live_in_sync;
  for (const auto& n : r.in_sync) {
    if (live.count(n)) live_in_sync.insert(n);
  }
  auto order = ranked(p, live_in_sync);
  if (order.empty() || order.front() != me) return std::nullopt;
  Record next = r;
  next.owner = me;
  next.in_sync = {me};
  next.generation = r.generation + 1;
  next.handed = false;
  return next;
}

Record restamp(const Record& r, bool first_lease_of_process) {
  Record next = r;
  next.generation = r.generation + 1;
  next.handed = false;
  if (first_lease_of_process && !r.handed) next.in_sync = {r.owner};
  return next;
}

StepDown step_down(int p, const Record& r, const std::string& me, const NodeSet& live) {
  NodeSet others, live_others;
  for (const auto& n : r.in_sync) {
    if (n == me) continue;
    others.insert(n);
    if (live.count(n)) live_others.insert(n);
  }
  if (others.empty()) {
    Record next = restamp(r, true);
    next.in_sync = {me};
    return {StepDown::Kind::kServeAnew, next};
  }
  if (live_others.empty()) return {};
  return {StepDown::Kind::kHandOn, hand_to(out_of_sync(r, me), ranked(p, live_others).front())};
}

Record out_of_sync(const Record& r, const std::string& node) {
  Record next = r;
  std::erase(next.in_sync, node);
  return next;
}

Record back_in_sync(const Record& r, const std::string& node) {
  Record next = r;
  if (!contains(next.in_sync, node)) next.in_sync.push_back(node);
  return next;
}

std::string to_catch_up(const Record& r, const std::string& me, const NodeSet& live) {
  for (const auto& n : r.replicas) {
    if (n != me && !contains(r.in_sync, n) && live.count(n)) return n;
  }
  return "";
}

Move next_move(const Record& r, const std::vector<std::string>& want, const std::string& me, const NodeSet& live) {
  using Kind = Move::Kind;
  if (want.empty()) return {};
  // A preferred live node that is no replica yet becomes one; catch-up
  // copies the partition to it.
  for (const auto& n : want) {
    if (live.count(n) && !contains(r.replicas, n)) return {Kind::kAddReplica, n};
  }
  // The first preferred node takes the partition once it holds every commit
  // (in sync). A preferred node that is away keeps its place: the partition
  // waits for it rather than move twice.
  if (want.front() != me) {
    if (live.count(want.front()) && contains(r.in_sync, want.front())) return {Kind::kHandOff, want.front()};
    return {};
  }
  // A replica past the preferred ones leaves (past the count, or a retired
  // node when fewer nodes are left than the count): one out of sync or away
  // at once, one in sync only when every preferred node is live and in sync.
  if (r.replicas.size() <= want.size()) return {};
  bool whole = std::all_of(want.begin(), want.end(),
                           [&](const std::string& n) { return live.count(n) && contains(r.in_sync, n); });
  std::string extra;
  for (const auto& n : r.replicas) {
    if (contains(want, n)) continue;
    if (!contains(r.in_sync, n) || !live.count(n)) {
      extra = n;
      break;
    }
    if (whole && extra.empty()) extra = n;
  }
  if (extra.empty()) return {};
  return {Kind::kDropReplica, extra};
}

Record moved(const Record& r, const Move& m) {
  Record next = r;
  if (m.kind == Move::Kind::kAddReplica) next.replicas.push_back(m.node);
  if (m.kind == Move::Kind::kDropReplica) {
    std::erase(next.replicas, m.node);
    std::erase(next.in_sync, m.node);
  }
  return next;
}

Record hand_to(const Record& r, const std::string& to) {
  Record next = r;
  next.owner = to;
  next.handed = true;
  next.generation = r.generation + 1;
  for (auto* list : {&next.replicas, &next.in_sync}) {
    std::erase(*list, to);
    list->insert(list->begin(), to);
  }
  return next;
}

}  // namespace rules
}  // namespace dobj::internal
