// A small etcd v3 client over etcd's JSON gateway (HTTP/1.1, POST /v3/...),
// for the cluster agent: ranges, puts, transactions and leases, nothing more.
//
// Blocking: one Client belongs to one thread (the agent's). Each call is
// bounded by the timeout given at construction. It keeps one connection to
// one member and moves to the next endpoint when that fails; a call that
// failed on one member may still have been applied, so callers treat every
// failure as "unknown" and read the state again before deciding anything.
//
// Keys and values are bytes (base64 on the wire); revisions and lease IDs are
// int64 (decimal strings on the wire).
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "dobj/status.h"

namespace dobj::internal::etcd {

struct KeyValue {
  std::string key;
  std::string value;
  int64_t create_revision = 0;
  int64_t mod_revision = 0;
  int64_t version = 0;
  int64_t lease = 0;
};

// One condition of a transaction; all compare with "equal".
struct Compare {
  enum class Target { kCreateRevision, kModRevision, kValue, kLease };
  std::string key;
  Target target = Target::kCreateRevision;
  int64_t revision = 0;
  std::string value;
  // The key does not exist.
  static Compare absent(std::string key) { return {std::move(key), Target::kCreateRevision, 0, {}}; }
  // The key was last written at this revision (0: it does not exist).
  static Compare unchanged_since(std::string key, int64_t mod_revision) {
    return {std::move(key), Target::kModRevision, mod_revision, {}};
  }
  // The key is held by this lease (the node key of one process's lease).
  static Compare lease_is(std::string key, int64_t lease) { return {std::move(key), Target::kLease, lease, {}}; }
  static Compare value_is(std::string key, std::string value) {
    return {std::move(key), Target::kValue, 0, std::move(value)};
  }
};

// One operation of a transaction.
struct Op {
  enum class Kind { kPut, kDelete, kRange };
  Kind kind = Kind::kRange;
  std::string key;
  std::string value;
  std::string range_end;  // kRange, kDelete: empty for one key
  int64_t lease = 0;      // kPut
  static Op put(std::string key, std::string value, int64_t lease = 0) {
    return {Kind::kPut, std::move(key), std::move(value), {}, lease};
  }
  static Op remove(std::string key) { return {Kind::kDelete, std::move(key), {}, {}, 0}; }
  static Op get(std::string key) { return {Kind::kRange, std::move(key), {}, {}, 0}; }
};

struct TxnResult {
  bool succeeded = false;
  int64_t revision = 0;  // of the store after the transaction
  // What each range operation of the branch that ran returned, in order.
  std::vector<std::vector<KeyValue>> ranges;
};

struct RangeResult {
  int64_t revision = 0;  // of the store when read
  std::vector<KeyValue> kvs;
};

// The range_end that makes a range cover every key starting with prefix.
std::string prefix_end(std::string_view prefix);

class Client {
 public:
  // endpoints: "host:port" or "http://host:port", comma-separated lists split
  // by the caller.
  Client(std::vector<std::string> endpoints, std::chrono::milliseconds timeout);
  ~Client();
  Client(const Client&) = delete;
  Client& operator=(const Client&) = delete;

  Result<RangeResult> get(const std::string& key);
  Result<RangeResult> get_prefix(const std::string& prefix);
  // The store's revision now (a count-only range: no keys are read).
  Result<int64_t> revision();
  Result<int64_t> put(const std::string& key, const std::string& value, int64_t lease = 0);
  Result<TxnResult> txn(const std::vector<Compare>& compares, const std::vector<Op>& success,
                        const std::vector<Op>& failure);
  // A new lease of ttl seconds; its ID.
  Result<int64_t> grant(int64_t ttl_seconds);
  // Renews the lease; the TTL it has now, 0 when it had expired (then it is gone).
  Result<int64_t> keep_alive(int64_t lease);
  Status revoke(int64_t lease);

  // Watches every key starting with `prefix` (a stream on a connection of
  // its own, with no timeout but `idle`): calls `changed` once the watch is
  // in place (changes before it are not reported) and then after each batch
  // of changes (puts, deletes, lease expiries). Returns when the stream
  // ends: an error, nothing received for `idle` (etcd sends nothing while
  // nothing changes, so callers simply watch again), or cancel_watch().
  Status watch(const std::string& prefix, const std::function<void()>& changed, std::chrono::milliseconds idle);
  // From any thread: ends the watch under way, and every later one at once.
  void cancel_watch();

  // The member the last call reached, "host:port".
  std::string current_endpoint() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace dobj::internal::etcd
