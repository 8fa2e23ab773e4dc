// WranglerConfig: what dobj reads from a Worker's wrangler.jsonc / wrangler.json.
//
// Read: main, durable_objects.bindings (name, class_name; script_name must be
// absent: objects of other Workers are not served), migrations
// (new_sqlite_classes, new_classes, renamed/deleted classes refused), vars,
// compatibility_date and compatibility_flags. Other keys are ignored (routes,
// kv_namespaces, ...): docs/js.md lists what is and is not served.
#pragma once

#include <set>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "dobj/status.h"

namespace dobj::js {

struct WranglerConfig {
  std::string path;  // the config file
  std::string main;  // absolute path of the main module
  struct Binding {
    std::string name;
    std::string class_name;
  };
  std::vector<Binding> bindings;
  std::set<std::string> migrated_classes;  // new_sqlite_classes and new_classes
  nlohmann::json vars = nlohmann::json::object();
  std::string compatibility_date;
  std::vector<std::string> compatibility_flags;
};

// Reads a wrangler.jsonc (JSON with comments and trailing commas) or
// wrangler.json. Errors name the file and what is wrong.
Result<WranglerConfig> read_wrangler(const std::string& path);
// JSONC to JSON: comments removed, trailing commas dropped; strings kept.
std::string strip_jsonc(std::string_view text);

}  // namespace dobj::js
