#include "base/log.h"

#include <cxxabi.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <memory>
#include <typeinfo>

namespace dobj::internal {

void log(LogLevel level, std::string_view message) {
  static const char* kNames[] = {"debug", "info", "warn", "error"};
  std::string line = "dobj ";
  line += kNames[static_cast<int>(level)];
  line += ": ";
  for (unsigned char c : message) {
    if (c < 0x20 || c == 0x7f) {
      char esc[5];
      std::snprintf(esc, sizeof esc, "\\x%02x", c);
      line += esc;
    } else {
      line += static_cast<char>(c);
    }
  }
  line += '\n';
  ssize_t rc = ::write(2, line.data(), line.size());
  (void)rc;
}

std::string demangled(const char* mangled_name) {
  int status = 0;
  std::unique_ptr<char, void (*)(void*)> name(
      abi::__cxa_demangle(mangled_name, nullptr, nullptr, &status), std::free);
  return status == 0 && name ? std::string(name.get()) : std::string(mangled_name);
}

std::string demangled_exception_type() {
  const std::type_info* type = abi::__cxa_current_exception_type();
  return type ? demangled(type->name()) : "(none)";
}

std::string exception_message(std::exception_ptr e) {
  try {
    std::rethrow_exception(e);
  } catch (const std::exception& ex) {
    return ex.what();
  } catch (...) {
    return "unknown exception";
  }
}

}  // namespace dobj::internal
