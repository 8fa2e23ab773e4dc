// Status, Result<T> and Error: how dobj reports what did not work.
//
// A Status is a small fixed code plus a message. Each code maps to exactly one
// HTTP status (http_status_for, in one place), so an error raised deep in the
// storage layer reaches a client with the right status and a clear message.
//
// The one rule, for every call of the API:
//  1. Absence is std::optional: a key not stored (get), no alarm (get_alarm),
//     a header or query parameter not sent. Not an error.
//  2. Parsing text that came from outside returns Result<T>: an ID string
//     (id_from_string), JSON (parse_json). A refusal there is an everyday
//     outcome the caller must handle, and [[nodiscard]] reminds them.
//  3. Everything else that fails throws dobj::Error with its Code: arguments
//     the object's own code got wrong (a key over the limit, a value read as
//     another type, an alarm time out of range: kInvalidArgument) and
//     failures of the runtime (kReset, kOverloaded, kStorageFull,
//     kUnavailable), as the Durable Objects API throws. Object code rarely
//     catches them: the runtime answers an uncaught one with the mapped status
//     and {"error": message}. The one exception is an HTTP answer:
//     Stub::fetch returns the runtime's failures as a Response with the mapped
//     status, as any HTTP client sees them; Stub::call throws them.
//  4. Any other exception is a bug: logged with the object, answered 500
//     {"error": "internal error", "incident": N}.
//  5. Outside object code (embedding: Server::start) calls return Status or
//     Result<T> and throw nothing.
#pragma once

#include <stdexcept>
#include <string>
#include <utility>
#include <variant>

namespace dobj {

enum class Code {
  kOk,
  kInvalidArgument,  // 400: the caller sent something malformed or over a limit
  kNotFound,         // 404
  kConflict,         // 409: e.g. a transaction that rolled back
  kTooLarge,         // 413
  kOverloaded,       // 503, marked "overloaded": the object's queue is full
  kReset,            // 500, marked "reset": the object was reset; retry reaches a new one
  kStorageFull,      // 507, marked "reset": the disk (or the object's cap) is full; the
                     // turn's writes were discarded, committed data is kept
  kUnavailable,      // 503: the server is stopping or storage is unavailable
  kInternal,         // 500: a bug or an unexpected exception
};

// The one place where a code becomes an HTTP status.
int http_status_for(Code code);
// "ok", "invalid_argument", ...: stable names for logs and JSON.
const char* code_name(Code code);

class [[nodiscard]] Status {
 public:
  Status() = default;
  Status(Code code, std::string message) : code_(code), message_(std::move(message)) {}
  static Status ok() { return {}; }

  bool is_ok() const { return code_ == Code::kOk; }
  explicit operator bool() const { return is_ok(); }
  Code code() const { return code_; }
  const std::string& message() const { return message_; }

 private:
  Code code_ = Code::kOk;
  std::string message_;
};

template <typename T>
class [[nodiscard]] Result {
 public:
  Result(T value) : v_(std::move(value)) {}         // NOLINT: implicit by design
  Result(Status status) : v_(std::move(status)) {}  // NOLINT: must not be ok
  bool is_ok() const { return v_.index() == 0; }
  explicit operator bool() const { return is_ok(); }
  T& value() & { return std::get<0>(v_); }
  T&& value() && { return std::get<0>(std::move(v_)); }
  const T& value() const& { return std::get<0>(v_); }
  T& operator*() & { return value(); }
  T&& operator*() && { return std::move(*this).value(); }
  const T& operator*() const& { return value(); }
  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }
  const Status& status() const {
    static const Status kOkStatus;
    return is_ok() ? kOkStatus : std::get<1>(v_);
  }

 private:
  std::variant<T, Status> v_;
};

// Thrown by the object-facing APIs (storage, IDs) on bad input.
class Error : public std::runtime_error {
 public:
  explicit Error(Status status)
      : std::runtime_error(status.message()), status_(std::move(status)) {}
  Error(Code code, const std::string& message) : Error(Status(code, message)) {}
  const Status& status() const { return status_; }
  Code code() const { return status_.code(); }

 private:
  Status status_;
};

}  // namespace dobj
