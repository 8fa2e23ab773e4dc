// Headless Chromium (Debian's chromium package) for the tests of web pages.
#pragma once

#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>
#include <iterator>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <thread>

#include "support/server_process.h"
#include "testing/ws_client.h"

extern char** environ;

namespace dobj::test {

inline constexpr const char* kChromium = "/usr/bin/chromium";

// Loads url in headless Chromium and reads its DOM (as HTML) through the
// DevTools protocol every 100 ms until done(dom) or `timeout` passes; returns
// the last DOM read, nullopt if Chromium never answered.
//
// Polling the live page, rather than --dump-dom after a virtual-time budget,
// matters for pages fed by a WebSocket: virtual time runs out as soon as the
// page is idle, before a slow server's message arrives.
inline std::optional<std::string> chromium_dom(const std::string& url,
                                               const std::function<bool(const std::string&)>& done,
                                               std::chrono::milliseconds timeout) {
  TempDir profile;
  std::string user_data = "--user-data-dir=" + profile.path();
  std::vector<std::string> args = {kChromium,           "--headless",          "--no-sandbox",
                                   "--disable-gpu",     "--disable-dev-shm-usage", "--no-first-run",
                                   user_data,           "--remote-debugging-port=0", url};
  std::vector<char*> argv;
  for (auto& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_addopen(&actions, 1, "/dev/null", O_WRONLY, 0);
  posix_spawn_file_actions_addopen(&actions, 2, "/dev/null", O_WRONLY, 0);
  // Its own process group, so that its renderers go with it.
  posix_spawnattr_t attr;
  posix_spawnattr_init(&attr);
  posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETPGROUP);
  posix_spawnattr_setpgroup(&attr, 0);
  pid_t pid = -1;
  int rc = posix_spawn(&pid, kChromium, &actions, &attr, argv.data(), environ);
  posix_spawn_file_actions_destroy(&actions);
  posix_spawnattr_destroy(&attr);
  if (rc != 0) return std::nullopt;

  std::optional<std::string> dom;
  auto deadline = std::chrono::steady_clock::now() + timeout;
  auto wait = [] { std::this_thread::sleep_for(std::chrono::milliseconds(100)); };
  // Chromium writes its DevTools port into the profile once it listens.
  int port = 0;
  while (port == 0 && std::chrono::steady_clock::now() < deadline) {
    std::ifstream f(profile.path() + "/DevToolsActivePort");
    if (!(f >> port)) {
      port = 0;
      wait();
    }
  }
  // The page's own DevTools socket.
  std::string page_path;
  while (port != 0 && page_path.empty() && std::chrono::steady_clock::now() < deadline) {
    HttpResponse list = http(port, "GET", "/json/list");
    auto targets = nlohmann::json::parse(list.body, nullptr, false);
    if (targets.is_array()) {
      for (auto& t : targets) {
        std::string ws = t.value("webSocketDebuggerUrl", "");
        auto at = ws.find("/devtools/page/");
        if (t.value("type", "") == "page" && at != std::string::npos) page_path = ws.substr(at);
      }
    }
    if (page_path.empty()) wait();
  }
  if (!page_path.empty()) {
    WsClient devtools(port, page_path);
    nlohmann::json ask = {{"method", "Runtime.evaluate"},
                          {"params",
                           {{"expression", "document.documentElement.outerHTML"},
                            {"returnByValue", true}}}};
    for (int id = 1; devtools.connected() && std::chrono::steady_clock::now() < deadline; ++id) {
      ask["id"] = id;
      if (!devtools.send_text(ask.dump())) break;
      // Skip events; read this request's answer.
      for (;;) {
        auto m = devtools.next_message(std::chrono::seconds(5));
        if (!m) break;
        auto answer = nlohmann::json::parse(*m, nullptr, false);
        if (answer.is_object() && answer.value("id", 0) == id) {
          auto value = answer["result"]["result"]["value"];
          if (value.is_string()) dom = value.get<std::string>();
          break;
        }
      }
      if (dom && done(*dom)) break;
      wait();
    }
  }
  ::kill(-pid, SIGKILL);
  ::waitpid(pid, nullptr, 0);
  return dom;
}

// Until the DOM contains `wanted`.
inline std::optional<std::string> chromium_dom(const std::string& url, const std::string& wanted,
                                               std::chrono::milliseconds timeout) {
  return chromium_dom(
      url, [&](const std::string& dom) { return dom.find(wanted) != std::string::npos; }, timeout);
}

}  // namespace dobj::test
