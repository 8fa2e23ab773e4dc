// The reviewer: JavaScript Durable Object code checked against the model's
// classic mistakes (docs/review.md lists the rules).
//
// The rules are JavaScript (reviewer.js) over the ESTree that acorn (Debian's
// node-acorn) parses, both run in a V8 isolate of their own per review: no
// Node.js at run time, and nothing shared with the objects a server runs.
// TypeScript is reviewed from its compiled output (wrangler or esbuild).
//
// Used by `dobj review` (src/cli), the admin API's POST /_dobj/review and the
// MCP tool reviewCode (a server built with JavaScript support, dobj-js).
#pragma once

#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "dobj/status.h"

namespace dobj::review {

struct Source {
  std::string path;  // as findings name it
  std::string text;
};

struct Input {
  std::vector<Source> files;     // JavaScript modules
  std::optional<Source> config;  // wrangler.jsonc / wrangler.json, if any
  // Whether the config is checked against the files (off when the config is
  // only there to name the classes' namespaces for the live evidence).
  bool check_config = true;
  // The advisor's answer (GET /_dobj/advice) of the server running this
  // code: findings it confirms say so. Null: none.
  nlohmann::json live;
};

// The input for a path: a .js/.mjs file; a folder (its .js/.mjs files,
// node_modules skipped, and its wrangler.jsonc if it has one); or a
// wrangler.jsonc / wrangler.json (the folder of its main module).
Result<Input> collect(const std::string& path);
// Adds more paths' files to an input (several on a command line).
Status collect_into(Input& input, const std::string& path);

// The input of an admin API or MCP request: {"source": "code"} (one module,
// named worker.js), {"files": {"path": "code", ...}} with an optional
// "config" (wrangler.jsonc text), or {"path": "..."} (as collect()).
// default_config: the config used when the request gives neither config nor
// path (dobj-js passes the Worker it serves).
Result<Input> input_from_json(const nlohmann::json& request, const std::string& default_config = "");

// The findings: {"findings": [{rule, severity, file, line, column, message,
// why, fix, confirmed?}], "files": N, "ms": elapsed}. An error only when the
// review could not run (input too large, the engine failed).
Result<nlohmann::json> run(const Input& input);

// Every rule: id, severity, why, fix, confirmedBy (the advisor's rule), replayable.
nlohmann::json rules();

// Findings as text, one "file:line:column: severity rule: message" line and
// its fix per finding, and a count.
std::string to_text(const nlohmann::json& result);

// Whether a review has an error-level finding (the CLI exits 1).
bool has_errors(const nlohmann::json& result);

// Most source a review takes, in bytes (the admin API's limit too): about
// 100,000 lines, reviewed in a few seconds within the isolate's 512 MiB.
inline constexpr size_t kMaxSourceBytes = 4 << 20;

}  // namespace dobj::review
