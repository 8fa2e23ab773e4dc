// Headless Chromium (Debian's chromium package) for the tests of web pages.
#pragma once

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <optional>
#include <string>

#include "support/server_process.h"

namespace dobj::test {

inline constexpr const char* kChromium = "/usr/bin/chromium";

// Loads url, lets its scripts run for budget_ms of virtual time, and returns
// the DOM as HTML; nullopt if Chromium failed.
inline std::optional<std::string> chromium_dom(const std::string& url, int budget_ms) {
  TempDir profile;
  std::string out = profile.path() + "/dom.html";
  std::string cmd = std::string(kChromium) +
                    " --headless --no-sandbox --disable-gpu --disable-dev-shm-usage"
                    " --no-first-run --user-data-dir=" + profile.path() +
                    " --virtual-time-budget=" + std::to_string(budget_ms) + " --dump-dom '" + url +
                    "' > " + out + " 2>/dev/null";
  if (std::system(cmd.c_str()) != 0) return std::nullopt;
  std::ifstream f(out);
  return std::string((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
}

}  // namespace dobj::test
