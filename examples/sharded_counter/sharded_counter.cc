#include "sharded_counter/sharded_counter.h"

#include <random>

namespace examples {

constexpr int kShards = 10;

dobj::Task<dobj::Response> sharded_counter_route(dobj::Request req, dobj::Env& env,
                                                 const std::string& name, bool increment) {
  dobj::Namespace ns = env.ns("SHARDED_COUNTER");
  auto shard = [&](int i) { return ns.get(ns.id_from_name(name + ":" + std::to_string(i))); };
  if (increment) {
    if (req.method != "POST") co_return dobj::Response::error(405, "use POST to increment");
    thread_local std::minstd_rand rng{std::random_device{}()};
    dobj::Request inc;
    inc.method = "POST";
    co_return co_await shard(static_cast<int>(rng() % kShards)).fetch(std::move(inc));
  }
  if (req.method != "GET") co_return dobj::Response::error(405, "use GET to read");
  // Ask the 10 shards in parallel.
  std::vector<dobj::Task<dobj::Response>> reads;
  for (int i = 0; i < kShards; ++i) reads.push_back(shard(i).fetch(dobj::Request{}));
  int64_t sum = 0;
  for (const auto& r : co_await dobj::when_all(std::move(reads))) {
    if (r.status != 200) co_return r;
    sum += std::stoll(r.body);
  }
  co_return dobj::Response::text(std::to_string(sum));
}

}  // namespace examples
