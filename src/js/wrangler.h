// WranglerConfig: what dobj reads from a Worker's wrangler.jsonc, wrangler.json
// or wrangler.toml.
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

// Reads a wrangler.jsonc (JSON with comments and trailing commas),
// wrangler.json or wrangler.toml (by its name's ending; the same keys).
// Errors name the file (and for TOML's syntax the line) and what is wrong.
Result<WranglerConfig> read_wrangler(const std::string& path);
// The settings of a wrangler.toml (by path's ending) or of a wrangler.jsonc /
// wrangler.json, as one JSON object; a syntax error names path (and for TOML
// the line and column).
Result<nlohmann::json> parse_wrangler(const std::string& path, const std::string& text);
// JSONC to JSON: comments removed, trailing commas dropped; strings kept.
std::string strip_jsonc(std::string_view text);

}  // namespace dobj::js
