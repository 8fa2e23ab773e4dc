// Minimal logging to stderr. Thread-safe (one write(2) per line). Control
// characters in a message (a client's newline, say) are written as \xNN, so
// one call is always one line.
#pragma once

#include <exception>
#include <string>
#include <string_view>

namespace dobj::internal {

enum class LogLevel { kDebug, kInfo, kWarn, kError };

void log(LogLevel level, std::string_view message);
inline void log_info(std::string_view m) { log(LogLevel::kInfo, m); }
inline void log_warn(std::string_view m) { log(LogLevel::kWarn, m); }
inline void log_error(std::string_view m) { log(LogLevel::kError, m); }

// A C++ type's name as written ("std::bad_variant_access") from
// std::type_info::name().
std::string demangled(const char* mangled_name);
// Inside a catch block: the caught exception's type, demangled.
std::string demangled_exception_type();
// An exception's what(), or "unknown exception" for one that is not a
// std::exception.
std::string exception_message(std::exception_ptr e);

}  // namespace dobj::internal
