#include "base/log.h"

#include <unistd.h>

#include <string>

namespace dobj::internal {

void log(LogLevel level, std::string_view message) {
  static const char* kNames[] = {"debug", "info", "warn", "error"};
  std::string line = "dobj ";
  line += kNames[static_cast<int>(level)];
  line += ": ";
  line += message;
  line += '\n';
  ssize_t rc = ::write(2, line.data(), line.size());
  (void)rc;
}

}  // namespace dobj::internal
