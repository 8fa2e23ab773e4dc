// POST /_dobj/review: the code reviewer (src/review) behind the admin token,
// with the server's live advisor findings as evidence.
#include <mutex>

#include "admin/admin.h"
#include "dobj/codec.h"
#include "runtime/object_host.h"
#include "runtime/runtime.h"

namespace dobj::internal {

namespace {

std::mutex reviewer_mu;
CodeReviewer& reviewer() {
  static CodeReviewer r;
  return r;
}

}  // namespace

void set_code_reviewer(CodeReviewer r) {
  std::lock_guard lock(reviewer_mu);
  reviewer() = std::move(r);
}

void AdminPlane::review_code(Shard& here, const Request& request, Reply reply) {
  if (request.method != "POST") return reply(Response::error(405, "POST the code as JSON"));
  CodeReviewer review;
  {
    std::lock_guard lock(reviewer_mu);
    review = reviewer();
  }
  if (!review) {
    return reply(Response::error(501, "this server was built without the reviewer: dobj-js has "
                                      "it, and `dobj review PATH` runs it without a server"));
  }
  Result<nlohmann::json> body = parse_json(request.body);
  if (!body || !body->is_object()) {
    return reply(Response::error(
        400, R"(body must be JSON: {"source": "..."} or {"files": {"path": "code"}, "config": "..."} or {"path": "..."})"));
  }
  // The live numbers first (in a cluster, every node's), then the review on
  // the blocking pool: parsing a large Worker must not hold a shard.
  collect_all(here, /*from_peer=*/false, [this, &here, review, body = std::move(*body),
                                          reply = std::move(reply)](MetricsSnapshot s) mutable {
    nlohmann::json live = nlohmann::json::parse(advice_json(s), nullptr, false);
    runtime_.run_blocking([&here, review, body = std::move(body), live = std::move(live),
                           reply = std::move(reply)]() mutable {
      Result<nlohmann::json> out = review(body, live);
      here.post([out = std::move(out), reply = std::move(reply)] {
        if (!out) return reply(error_response(out.status()));
        reply(Response::json(out->dump(-1, ' ', false, nlohmann::json::error_handler_t::replace)));
      });
    });
  });
}

}  // namespace dobj::internal
