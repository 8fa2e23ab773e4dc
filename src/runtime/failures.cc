// Failures turned into answers: the JSON error of a Status, and what an
// exception that escaped object code becomes (its status for a dobj::Error; a
// logged, numbered incident for anything else).
#include <atomic>
#include <nlohmann/json.hpp>

#include "base/log.h"
#include "runtime/object_host.h"
#include "runtime/runtime.h"

namespace dobj::internal {
namespace {

std::optional<Status> status_of_error(std::exception_ptr e) {
  try {
    std::rethrow_exception(e);
  } catch (const Error& err) {
    return err.status();
  } catch (...) {
    return std::nullopt;
  }
}

}  // namespace

Incident record_incident(std::exception_ptr e, std::string_view where) {
  std::string type, message;
  try {
    std::rethrow_exception(e);
  } catch (const std::exception& ex) {
    message = ex.what();
    type = demangled_exception_type();
  } catch (...) {
    message = "not a std::exception";
    type = demangled_exception_type();
  }
  static std::atomic<uint64_t> incidents{0};
  uint64_t number = ++incidents;
  log_error(std::string(where) + ": unhandled exception " + type + ": " + message +
            " (incident " + std::to_string(number) + ")");
  return Incident{number, std::move(message)};
}

Response response_for(std::exception_ptr e, std::string_view where, bool expose) {
  // Thrown on purpose: its status and message are the answer.
  if (auto st = status_of_error(e)) return error_response(*st);
  // Anything else is a bug in the handler. Its text (a JSON parser's message,
  // "std::get: wrong index for variant") is for the operator, not the client;
  // the incident number ties the answer to the log line.
  Incident incident = record_incident(e, where);
  nlohmann::json j = {{"error", expose ? "internal error: " + incident.message : "internal error"},
                      {"incident", incident.number}};
  Response r = Response::json(j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace), 500);
  ResponseAccess::set_failed(r);
  return r;
}

Status failure_status(std::exception_ptr e, Code code, std::string_view what, std::string_view where,
                      bool expose) {
  if (auto st = status_of_error(e)) {
    return Status(code, std::string(what) + ": " + st->message());
  }
  Incident incident = record_incident(e, where);
  return Status(code, std::string(what) + (expose ? ": " + incident.message
                                                  : " (incident " + std::to_string(incident.number) +
                                                        ")"));
}

std::string describe(const NamespaceImpl& ns, const ObjectId& id) {
  std::string out = ns.name() + " " + id.to_string();
  if (id.name()) out += " (\"" + *id.name() + "\")";
  return out;
}

Response error_response(const Status& status) {
  nlohmann::json j = {{"error", status.message()}};
  if (status.code() == Code::kOverloaded) {
    j["overloaded"] = true;
    j["retryable"] = false;
  } else if (status.code() == Code::kReset) {
    j["reset"] = true;
    j["retryable"] = true;
  } else if (status.code() == Code::kStorageFull) {
    j["reset"] = true;
    j["storageFull"] = true;
  } else if (status.code() == Code::kUnavailable) {
    j["retryable"] = true;  // a server stopping, a node unreachable: transient
  }
  Response r = Response::json(j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace),
                               http_status_for(status.code()));
  switch (status.code()) {
    case Code::kOverloaded:
    case Code::kReset:
    case Code::kStorageFull:
    case Code::kUnavailable:
    case Code::kInternal:
      ResponseAccess::set_failed(r);
      break;
    default:  // an answer: what the caller sent, or asked for, was wrong
      break;
  }
  return r;
}

}  // namespace dobj::internal
