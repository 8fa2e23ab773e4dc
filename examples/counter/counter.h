// Counter: a named singleton that counts. See README.md beside this file.
#pragma once

#include <dobj/dobj.h>

namespace examples {

class Counter : public dobj::DurableObject {
 public:
  using DurableObject::DurableObject;

  // /counter/<name>/increment (POST or GET) and /counter/<name> (GET).
  dobj::Task<dobj::Response> fetch(dobj::Request req) override {
    auto segments = req.path_segments();
    if (!segments || segments->size() < 2 || segments->size() > 3) {
      co_return dobj::Response::error(404, "not found");
    }
    if (segments->size() == 3) {
      if ((*segments)[2] != "increment") co_return dobj::Response::error(404, "not found");
      if (req.method != "POST" && req.method != "GET") {
        co_return dobj::Response::error(405, "use POST (or GET) to increment");
      }
      int64_t n = storage().get<int64_t>("count").value_or(0) + 1;
      storage().put("count", n);  // committed with this turn; the answer waits for it
      co_return dobj::Response::text(std::to_string(n));
    }
    if (req.method != "GET") co_return dobj::Response::error(405, "use GET to read the counter");
    co_return dobj::Response::text(std::to_string(storage().get<int64_t>("count").value_or(0)));
  }
};

}  // namespace examples
