// RateLimiter: one object per key, a fixed 60-second window from the first
// call. See README.md beside this file.
#pragma once

#include <dobj/dobj.h>

#include "common/util.h"

namespace examples {

class RateLimiter : public dobj::DurableObject {
 public:
  using DurableObject::DurableObject;
  static constexpr int64_t kWindowMs = 60'000;

  dobj::Task<dobj::Response> fetch(dobj::Request req) override {
    if (req.method != "POST") co_return dobj::Response::error(405, "use POST");
    auto limit_text = req.query("limit");
    auto parsed = limit_text ? parse_int(*limit_text) : std::nullopt;
    if (!parsed || *parsed < 0) {
      co_return dobj::Response::error(400, "limit must be a non-negative integer");
    }
    int64_t limit = *parsed;
    int64_t now = state().now_ms();
    int64_t start = storage().get<int64_t>("window_start").value_or(0);
    int64_t calls = storage().get<int64_t>("calls").value_or(0);
    if (start == 0 || now - start >= kWindowMs) {
      start = now;
      calls = 0;
      storage().put("window_start", start);
    }
    if (calls >= limit) {
      co_return dobj::Response::json(R"({"allowed":false,"remaining":0})", 429);
    }
    storage().put("calls", ++calls);
    dobj::Json out = {{"allowed", true}, {"remaining", limit - calls}};
    co_return dobj::Response::json(out.dump());
  }
};

}  // namespace examples
