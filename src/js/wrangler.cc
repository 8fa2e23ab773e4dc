#include "js/wrangler.h"

#include <filesystem>
#include <sstream>

#include <toml++/toml.h>

#include "base/fs.h"

namespace dobj::js {

std::string strip_jsonc(std::string_view in) {
  std::string out;
  out.reserve(in.size());
  size_t i = 0;
  while (i < in.size()) {
    char c = in[i];
    if (c == '"') {  // a string, escapes included, copied as it is
      size_t j = i + 1;
      while (j < in.size() && in[j] != '"') j += in[j] == '\\' ? 2 : 1;
      out.append(in.substr(i, j + 1 - i));
      i = j + 1;
    } else if (c == '/' && i + 1 < in.size() && in[i + 1] == '/') {
      while (i < in.size() && in[i] != '\n') ++i;
    } else if (c == '/' && i + 1 < in.size() && in[i + 1] == '*') {
      size_t end = in.find("*/", i + 2);
      // Newlines kept, so that the parser's line numbers stay right.
      for (size_t k = i; k < (end == std::string_view::npos ? in.size() : end); ++k) {
        if (in[k] == '\n') out.push_back('\n');
      }
      i = end == std::string_view::npos ? in.size() : end + 2;
    } else if (c == ',') {
      size_t j = i + 1;
      while (j < in.size() && std::isspace(static_cast<unsigned char>(in[j]))) ++j;
      if (j < in.size() && (in[j] == '}' || in[j] == ']')) {
        ++i;  // a trailing comma
      } else {
        out.push_back(c);
        ++i;
      }
    } else {
      out.push_back(c);
      ++i;
    }
  }
  return out;
}

namespace {

Status bad(const std::string& path, const std::string& what) {
  return Status(Code::kInvalidArgument, path + ": " + what);
}

Result<std::vector<std::string>> strings(const nlohmann::json& j, const std::string& path,
                                         const std::string& key) {
  std::vector<std::string> out;
  if (j.is_null()) return out;
  if (!j.is_array()) return bad(path, key + " must be a list of strings");
  for (const auto& v : j) {
    if (!v.is_string()) return bad(path, key + " must be a list of strings");
    out.push_back(v.get<std::string>());
  }
  return out;
}

// A TOML value as the JSON wrangler.jsonc would hold for it: tables are
// objects, arrays arrays; dates and times (compatibility_date written
// without quotes) the text TOML gives them.
nlohmann::json toml_to_json(const toml::node& n) {
  if (const toml::table* t = n.as_table()) {
    nlohmann::json out = nlohmann::json::object();
    for (const auto& [key, value] : *t) out[std::string(key.str())] = toml_to_json(value);
    return out;
  }
  if (const toml::array* a = n.as_array()) {
    nlohmann::json out = nlohmann::json::array();
    for (const toml::node& v : *a) out.push_back(toml_to_json(v));
    return out;
  }
  if (auto v = n.value_exact<std::string>()) return *v;
  if (auto v = n.value_exact<int64_t>()) return *v;
  if (auto v = n.value_exact<double>()) return *v;
  if (auto v = n.value_exact<bool>()) return *v;
  std::ostringstream text;
  n.visit([&](const auto& leaf) { text << leaf; });
  return text.str();
}

}  // namespace

Result<nlohmann::json> parse_wrangler(const std::string& path, const std::string& text) {
  if (path.ends_with(".toml")) {
    try {
      return toml_to_json(toml::parse(text, path));
    } catch (const toml::parse_error& e) {
      const auto& at = e.source().begin;
      return bad(path + ":" + std::to_string(at.line) + ":" + std::to_string(at.column),
                 "not valid TOML: " + std::string(e.description()));
    }
  }
  nlohmann::json j = nlohmann::json::parse(strip_jsonc(text), nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded() || !j.is_object()) return bad(path, "not valid JSON with comments");
  return j;
}

Result<WranglerConfig> read_wrangler(const std::string& path) {
  namespace fs = std::filesystem;
  auto text = internal::read_file(path);
  if (!text) return bad(path, text.status().message());
  auto parsed = parse_wrangler(path, *text);
  if (!parsed) return parsed.status();
  nlohmann::json& j = *parsed;
  WranglerConfig c;
  c.path = path;
  if (!j.contains("main") || !j["main"].is_string()) return bad(path, "\"main\" (the Worker's module) is missing");
  std::error_code ec;
  fs::path dir = fs::absolute(fs::path(path), ec).parent_path();
  c.main = fs::weakly_canonical(dir / j["main"].get<std::string>(), ec).string();
  if (!fs::exists(c.main)) return bad(path, "main module " + c.main + " does not exist");
  if (j.contains("compatibility_date")) {
    if (!j["compatibility_date"].is_string()) return bad(path, "compatibility_date must be a string");
    c.compatibility_date = j["compatibility_date"].get<std::string>();
  }
  auto flags = strings(j.value("compatibility_flags", nlohmann::json()), path, "compatibility_flags");
  if (!flags) return flags.status();
  c.compatibility_flags = *flags;
  if (j.contains("vars")) {
    if (!j["vars"].is_object()) return bad(path, "vars must be an object");
    c.vars = j["vars"];
  }
  const nlohmann::json& dobjs = j.value("durable_objects", nlohmann::json::object());
  const nlohmann::json& bindings = dobjs.is_object() ? dobjs.value("bindings", nlohmann::json::array())
                                                     : nlohmann::json();
  if (!bindings.is_array()) return bad(path, "durable_objects.bindings must be a list");
  for (const auto& b : bindings) {
    if (!b.is_object() || !b.contains("name") || !b["name"].is_string() || !b.contains("class_name") ||
        !b["class_name"].is_string()) {
      return bad(path, "each durable_objects binding needs \"name\" and \"class_name\"");
    }
    if (b.contains("script_name")) {
      return bad(path, "binding " + b["name"].get<std::string>() +
                           ": script_name (an object of another Worker) is not served by dobj");
    }
    c.bindings.push_back({b["name"].get<std::string>(), b["class_name"].get<std::string>()});
  }
  const nlohmann::json& migrations = j.value("migrations", nlohmann::json::array());
  if (!migrations.is_array()) return bad(path, "migrations must be a list");
  for (const auto& m : migrations) {
    if (!m.is_object()) return bad(path, "each migration must be an object");
    for (const char* key : {"new_sqlite_classes", "new_classes"}) {
      auto names = strings(m.value(key, nlohmann::json()), path, std::string("migrations.") + key);
      if (!names) return names.status();
      c.migrated_classes.insert(names->begin(), names->end());
    }
    for (const char* key : {"renamed_classes", "deleted_classes", "transferred_classes"}) {
      if (m.contains(key)) return bad(path, std::string("migrations.") + key + " is not supported yet");
    }
  }
  for (const auto& b : c.bindings) {
    if (!c.migrated_classes.empty() && !c.migrated_classes.count(b.class_name)) {
      return bad(path, "class " + b.class_name + " (binding " + b.name +
                           ") is in no migration's new_sqlite_classes or new_classes");
    }
  }
  return c;
}

}  // namespace dobj::js
