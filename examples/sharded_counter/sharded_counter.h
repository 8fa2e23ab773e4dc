// ShardedCounter: one logical counter spread over 10 objects, so increments
// of a hot counter spread over 10 threads of control. See README.md.
#pragma once

#include <dobj/dobj.h>

namespace examples {

// One shard: /sharded/<name>:<i>/increment (POST) and /sharded/<name>:<i> (GET).
class CounterShard : public dobj::DurableObject {
 public:
  using DurableObject::DurableObject;
  dobj::Task<dobj::Response> fetch(dobj::Request req) override {
    if (req.method == "POST") {
      storage().put("count", storage().get<int64_t>("count").value_or(0) + 1);
      co_return dobj::Response::text("ok");
    }
    co_return dobj::Response::text(std::to_string(storage().get<int64_t>("count").value_or(0)));
  }
};

// The worker side: routes /sharded/<name>[/increment].
dobj::Task<dobj::Response> sharded_counter_route(dobj::Request req, dobj::Env& env,
                                                 const std::string& name, bool increment);

}  // namespace examples
