// POST /_dobj/objects/<ns>/<id>/replay: requests sent straight to one
// object's fetch handler (no Worker in front), optionally evicting the object
// before each request after the first. The reviewer's replay (docs/review.md)
// uses it to show state kept only in memory: the same two requests answer
// differently when the object is evicted between them.
#include <future>

#include "admin/admin.h"
#include "dobj/codec.h"
#include "runtime/object_host.h"
#include "runtime/runtime.h"

namespace dobj::internal {

namespace {

constexpr size_t kMaxReplayRequests = 16;
constexpr auto kReplayTimeout = std::chrono::seconds(30);

}  // namespace

void AdminPlane::replay_object(Shard& here, const ObjectKey& t, const Request& request, Reply reply) {
  Result<nlohmann::json> body = parse_json(request.body);
  const char* usage =
      R"(body: {"requests": [{"method": "GET", "path": "/...", "body": "..."}, ...], "evictBetween": true})";
  if (!body || !body->is_object() || !(*body)["requests"].is_array() || (*body)["requests"].empty()) {
    return reply(Response::error(400, usage));
  }
  std::vector<Request> requests;
  for (const auto& r : (*body)["requests"]) {
    if (!r.is_object() || !r.value("path", nlohmann::json()).is_string()) {
      return reply(Response::error(400, usage));
    }
    Request q;
    q.method = r.value("method", "GET");
    q.target = r["path"].get<std::string>();
    if (q.target.empty() || q.target[0] != '/') return reply(Response::error(400, "a path starts with /"));
    if (r.contains("body") && r["body"].is_string()) q.body = r["body"].get<std::string>();
    q.headers.emplace_back("host", "replay.dobj");
    requests.push_back(std::move(q));
  }
  if (requests.size() > kMaxReplayRequests) {
    return reply(Response::error(400, "at most " + std::to_string(kMaxReplayRequests) + " requests"));
  }
  bool evict_between = body->value("evictBetween", false);
  // The requests wait on each other: the blocking pool sends them one by one.
  runtime_.run_blocking([this, &here, t, evict_between, requests = std::move(requests),
                         reply = std::move(reply)]() mutable {
    nlohmann::json answers = nlohmann::json::array();
    Status failed = Status::ok();
    for (size_t i = 0; i < requests.size() && failed; ++i) {
      bool evicted = false;
      if (i > 0 && evict_between) {
        auto done = std::make_shared<std::promise<bool>>();
        auto f = done->get_future();
        Shard& shard = runtime_.shard_for(t.id);
        shard.post([&shard, t, done] { done->set_value(shard.evict_now(t.ns, t.id)); });
        if (f.wait_for(kReplayTimeout) != std::future_status::ready) {
          failed = Status(Code::kUnavailable, "the eviction did not happen in time");
          break;
        }
        evicted = f.get();
      }
      auto answer = runtime_.send_to_object(t.ns, t.id, requests[i]);
      if (answer.wait_for(kReplayTimeout) != std::future_status::ready) {
        failed = Status(Code::kUnavailable, "request " + std::to_string(i) + " got no answer in time");
        break;
      }
      Response r = answer.get();
      answers.push_back({{"status", r.status}, {"body", r.body}, {"evictedBefore", evicted}});
    }
    here.post([failed, answers = std::move(answers), reply = std::move(reply)] {
      if (!failed) return reply(error_response(failed));
      reply(Response::json(nlohmann::json{{"answers", answers}}.dump(
          -1, ' ', false, nlohmann::json::error_handler_t::replace)));
    });
  });
}

}  // namespace dobj::internal
