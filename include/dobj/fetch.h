// dobj::fetch: an outgoing HTTP/1.1 request from an object or the worker.
//
//   Response r = co_await dobj::fetch("http://127.0.0.1:9000/hook", request);
//
// Inside an object call it as dobj::fetch (DurableObject::fetch hides the
// name). It follows the output gate: a request made after a write leaves only
// once the write is durable. Awaiting it is awaiting something outside the
// object, so other events may run meanwhile. The continuation runs on the
// caller's shard.
//
// Only http:// URLs for now. Failures (bad URL, DNS, refused, timeout) throw
// dobj::Error: kInvalidArgument for a bad URL, kUnavailable for the rest.
// Responses are read whole, up to max_response_bytes.
#pragma once

#include <chrono>
#include <string>

#include "dobj/http.h"
#include "dobj/task.h"

namespace dobj {

struct FetchOptions {
  std::chrono::milliseconds timeout{30'000};  // for the whole exchange
  size_t max_response_bytes = 32 * 1024 * 1024;
};

// request.method, headers and body are sent; its target is replaced by the
// URL's path and query.
Task<Response> fetch(std::string url, Request request = {}, FetchOptions options = {});

}  // namespace dobj
