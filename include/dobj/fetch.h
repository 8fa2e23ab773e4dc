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
// http:// and https:// URLs. Over TLS the server's certificate is verified
// against this machine's CA store (or FetchOptions::ca_file) and must name
// the URL's host. Failures (bad URL, DNS, refused, timeout, a certificate
// refused) throw dobj::Error: kInvalidArgument for a bad URL, kUnavailable
// for the rest, with a message saying which step failed and why. Responses
// are read whole, up to max_response_bytes.
#pragma once

#include <chrono>
#include <string>

#include "dobj/http.h"
#include "dobj/task.h"

namespace dobj {

struct FetchOptions {
  std::chrono::milliseconds timeout{30'000};  // for the whole exchange
  size_t max_response_bytes = 32 * 1024 * 1024;
  // A PEM file of the certificate authorities to trust for https:// instead
  // of the system's store (a private CA); empty: the system's.
  std::string ca_file;
};

// request.method, headers and body are sent; its target is replaced by the
// URL's path and query.
Task<Response> fetch(std::string url, Request request = {}, FetchOptions options = {});

}  // namespace dobj
