// TaskRunner: work scheduled with the alarm, retried by the runtime when it
// throws. See README.md beside this file.
#pragma once

#include <dobj/dobj.h>

#include "common/util.h"

namespace examples {

class TaskRunner : public dobj::DurableObject {
 public:
  using DurableObject::DurableObject;

  dobj::Task<dobj::Response> fetch(dobj::Request req) override {
    auto segments = req.path_segments();
    if (!segments || segments->size() < 2 || segments->size() > 3) {
      co_return dobj::Response::error(404, "not found");
    }
    std::string op = segments->size() == 3 ? (*segments)[2] : "";
    if (op == "schedule") {
      if (req.method != "POST") co_return dobj::Response::error(405, "use POST");
      auto delay = number(req.query("delay_ms"), -1);
      auto repeat = number(req.query("repeat"), 1);
      auto fail = number(req.query("fail"), 0);
      if (!delay || *delay < 0 || !repeat || *repeat < 1 || !fail || *fail < 0) {
        co_return dobj::Response::error(
            400, "delay_ms must be a number >= 0; repeat >= 1 and fail >= 0 when given");
      }
      if (*delay > kMaxDelayMs) {
        co_return dobj::Response::error(
            400, "delay_ms must be at most " + std::to_string(kMaxDelayMs) + " (ten years)");
      }
      int64_t at = state().now_ms() + *delay;
      storage().put("delay_ms", *delay);
      storage().put("repeat", *repeat);
      storage().put("fail", *fail);
      storage().set_alarm(at);
      co_return dobj::Response::json(dobj::Json({{"scheduled", at}}).dump());
    }
    if (op == "alarm") {
      if (req.method != "DELETE") co_return dobj::Response::error(405, "use DELETE");
      storage().delete_alarm();
      co_return dobj::Response::json(R"({"ok":true})");
    }
    if (!op.empty()) co_return dobj::Response::error(404, "not found");
    if (req.method != "GET") co_return dobj::Response::error(405, "use GET");
    auto alarm = storage().get_alarm();
    dobj::Json out = {
        {"fired", storage().get<int64_t>("fired").value_or(0)},
        {"attempts", storage().get<int64_t>("attempts").value_or(0)},
        {"retryCounts", storage().get<dobj::Json>("retry_counts").value_or(dobj::Json::array())},
        {"alarm", alarm ? dobj::Json(*alarm) : dobj::Json(nullptr)}};
    co_return dobj::Response::json(out.dump());
  }

  dobj::Task<void> alarm(dobj::AlarmInfo info) override {
    storage().put("attempts", storage().get<int64_t>("attempts").value_or(0) + 1);
    auto counts = storage().get<dobj::Json>("retry_counts").value_or(dobj::Json::array());
    counts.push_back(info.retry_count);
    storage().put("retry_counts", counts);
    int64_t failed = storage().get<int64_t>("failed").value_or(0);
    if (failed < storage().get<int64_t>("fail").value_or(0)) {
      storage().put("failed", failed + 1);
      throw std::runtime_error("task failed on purpose");  // the runtime retries
    }
    int64_t fired = storage().get<int64_t>("fired").value_or(0) + 1;
    storage().put("fired", fired);
    if (fired < storage().get<int64_t>("repeat").value_or(1)) {
      auto delay = std::chrono::milliseconds(storage().get<int64_t>("delay_ms").value_or(0));
      storage().set_alarm(delay);  // from now, by the runtime's clock
    }
    co_return;
  }

 private:
  static constexpr int64_t kMaxDelayMs = 10LL * 365 * 24 * 3600 * 1000;
  static std::optional<int64_t> number(const std::optional<std::string>& s, int64_t fallback) {
    if (!s) return fallback < 0 ? std::nullopt : std::optional<int64_t>(fallback);
    return parse_int(*s);
  }
};

}  // namespace examples
