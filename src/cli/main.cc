// dobj: the operator's command line, a client of a server's admin plane.
//
//   dobj objects [--namespace NS] [--prefix P] [--sort bytes] [--all]
//   dobj inspect NS OBJECT          OBJECT: a hex ID, a name, or name:<name>
//   dobj sql NS OBJECT "SELECT ..."
//   dobj metrics [--namespace NS] [--prometheus]
//   dobj advise
//   dobj export NS OBJECT [-o FILE]
//   dobj import NS OBJECT FILE [--replace]
//   dobj delete NS OBJECT --yes
//   dobj mcp                        the admin plane as an MCP server on stdio
//
// The server and token come from --server/--token or $DOBJ_SERVER and
// $DOBJ_ADMIN_TOKEN. --json prints the server's JSON as it came.
//
// Over 500 lines: nine small commands, each a flag set and a printer, kept
// side by side so that their options and output read alike.
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <cctype>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <cstdio>
#include <chrono>
#include <ctime>
#include <fstream>
#include <iomanip>
#include <iostream>
#include <optional>
#include <nlohmann/json.hpp>
#include <sstream>
#include <utility>

#include "cli/admin_client.h"
#include "dobj/codec.h"
#include "dobj/http.h"
#ifdef DOBJ_REVIEW
#include "review/review.h"
#endif

namespace dobj::cli {
namespace {

using Json = nlohmann::json;

// The server's answer (or a stdio MCP line) as JSON; a discarded value when it
// is not JSON or nests too deep.
Json parse_or_discarded(std::string_view text) {
  Result<Json> j = parse_json(text);
  return j ? std::move(*j) : Json(Json::value_t::discarded);
}

struct Globals {
  std::string server;
  std::string token;
  bool json = false;
};

// Text from the server (object names, keys, values, messages) as it may be
// shown on a terminal: control characters (C0, DEL, C1) and bytes that are not
// UTF-8 become visible escapes, so no stored byte can steer the terminal.
std::string safe(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  auto hex = [&](unsigned char c) {
    static const char* kDigits = "0123456789abcdef";
    out += "\\x";
    out += kDigits[c >> 4];
    out += kDigits[c & 15];
  };
  for (size_t i = 0; i < s.size();) {
    auto c = static_cast<unsigned char>(s[i]);
    if (c < 0x20 || c == 0x7f) {
      hex(c);
      ++i;
      continue;
    }
    if (c < 0x80) {
      out += static_cast<char>(c);
      ++i;
      continue;
    }
    // One UTF-8 sequence, whole and well-formed, and not a C1 control.
    size_t n = c >= 0xf0 && c <= 0xf4 ? 4 : c >= 0xe0 ? 3 : c >= 0xc2 && c < 0xe0 ? 2 : 0;
    bool ok = n > 0 && i + n <= s.size();
    for (size_t k = 1; ok && k < n; ++k) ok = (static_cast<unsigned char>(s[i + k]) & 0xc0) == 0x80;
    if (ok && c == 0xc2 && static_cast<unsigned char>(s[i + 1]) < 0xa0) ok = false;  // C1
    if (!ok) {
      hex(c);
      ++i;
      continue;
    }
    out.append(s.substr(i, n));
    i += n;
  }
  return out;
}

int fail(const std::string& message) {
  std::cerr << "dobj: " << safe(message) << "\n";
  return 1;
}

// A file name for an exported object: its name or ID with everything but
// letters, digits, '-', '_' and '.' replaced, never a path or a hidden file.
std::string export_file_name(std::string_view object) {
  std::string out;
  for (char c : object) {
    bool keep = std::isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '_' || c == '.';
    out += keep ? c : '_';
  }
  if (out.empty() || out[0] == '.') out.insert(out.begin(), '_');
  return out + ".sqlite";
}

std::string env_or(const char* name, std::string fallback) {
  const char* v = std::getenv(name);
  return v && *v ? v : fallback;
}

std::string human_bytes(int64_t b) {
  const char* units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
  double v = static_cast<double>(b);
  int u = 0;
  while (v >= 1024 && u < 4) {
    v /= 1024;
    ++u;
  }
  char out[32];
  std::snprintf(out, sizeof out, u == 0 ? "%.0f %s" : "%.1f %s", v, units[u]);
  return out;
}

std::string human_time(const Json& ms) {
  if (!ms.is_number()) return "-";
  std::time_t t = static_cast<std::time_t>(ms.get<int64_t>() / 1000);
  std::tm tm{};
  gmtime_r(&t, &tm);
  char out[32];
  std::strftime(out, sizeof out, "%Y-%m-%d %H:%M:%SZ", &tm);
  return out;
}

std::string cell(const Json& v) {
  if (v.is_string()) return v.get<std::string>();
  if (v.is_null()) return "NULL";
  if (v.is_object() && v.contains("hex")) return "x'" + v["hex"].get<std::string>() + "'";
  return v.dump();
}

// Prints rows as aligned columns.
void print_table(const std::vector<std::string>& head,
                 std::vector<std::vector<std::string>> rows) {
  for (auto& r : rows) {
    for (auto& c : r) c = safe(c);
  }
  std::vector<size_t> w(head.size());
  for (size_t i = 0; i < head.size(); ++i) w[i] = head[i].size();
  for (const auto& r : rows) {
    for (size_t i = 0; i < r.size() && i < w.size(); ++i) w[i] = std::max(w[i], r[i].size());
  }
  auto line = [&](const std::vector<std::string>& r) {
    std::string out;
    for (size_t i = 0; i < r.size(); ++i) {
      out += r[i];
      if (i + 1 < r.size()) out += std::string(w[i] - r[i].size() + 2, ' ');
    }
    std::cout << out << "\n";
  };
  line(head);
  for (const auto& r : rows) line(r);
}

// A file removed when it goes, unless its path was cleared (kept).
struct TempFile {
  std::string path;
  explicit TempFile(std::string p) : path(std::move(p)) {}
  TempFile(TempFile&& o) noexcept : path(std::exchange(o.path, {})) {}
  TempFile(const TempFile&) = delete;
  TempFile& operator=(const TempFile&) = delete;
  ~TempFile() {
    if (!path.empty()) ::unlink(path.c_str());
  }
  // A new empty file in $TMPDIR (or /tmp).
  static Result<TempFile> make(const std::string& prefix) {
    const char* dir = std::getenv("TMPDIR");
    std::string name = std::string(dir && *dir ? dir : "/tmp") + "/" + prefix + "-XXXXXX";
    int fd = ::mkstemp(name.data());
    if (fd < 0) return Status(Code::kInternal, "cannot make a file like " + name + ": " + std::strerror(errno));
    ::close(fd);
    return TempFile(std::move(name));
  }
};

// A progress line on stderr when it is a terminal, a final one otherwise.
Progress progress_printer(const std::string& what) {
  bool tty = isatty(STDERR_FILENO);
  return [what, tty, last = uint64_t{0}](uint64_t done, uint64_t total) mutable {
    bool end = total > 0 && done >= total;
    if (!tty && !end && done - last < (uint64_t{64} << 20)) return;
    last = done;
    std::fprintf(stderr, "%s%s %s", tty ? "\r" : "", what.c_str(), human_bytes(static_cast<int64_t>(done)).c_str());
    if (total > 0) {
      std::fprintf(stderr, " of %s (%.0f%%)", human_bytes(static_cast<int64_t>(total)).c_str(),
                   100.0 * static_cast<double>(done) / static_cast<double>(total));
    }
    std::fprintf(stderr, "%s", tty && !end ? "" : "\n");
    std::fflush(stderr);
  };
}

constexpr const char* kObjectHelp =
    "hex ID, a name, or name:<name> (for a name that looks like an ID)";

// OBJECT as typed: a 64-digit lowercase hex ID, name:<name>, or a plain name
// (a name that looks like an ID needs the name: prefix).
std::string object_path(const std::string& ns, const std::string& object) {
  bool is_id = object.size() == 64 && object.find_first_not_of("0123456789abcdef") ==
                                          std::string::npos;
  bool prefixed = object.rfind("name:", 0) == 0;
  std::string ref = is_id || prefixed ? object : "name:" + object;
  return "/_dobj/objects/" + url_encode(ns) + "/" + url_encode(ref);
}

// The database's pages in use, and (from the catalog, as `objects` shows it)
// its bytes on disk with the WAL, which a write-ahead log keeps larger until
// the next checkpoint.
std::string storage_line(const Json& j) {
  if (!j["exists"].get<bool>()) return "none";
  std::string line = human_bytes(j["databaseBytes"].get<int64_t>()) + " in the database";
  if (j.contains("bytes") && j["bytes"].is_number()) {
    line += ", " + human_bytes(j["bytes"].get<int64_t>()) +
            " on disk with its WAL (as `objects` lists)";
  }
  return line;
}

// dobj restore --to: a bookmark, milliseconds since the epoch, a UTC time
// (2026-12-05T14:00:00Z, seconds and Z optional) or a time ago (-90s, -30m,
// -2h, -7d). The restore route's query.
Result<std::string> restore_query(const std::string& to) {
  if (to.size() == 29 && to[16] == '-') return "bookmark=" + to;
  auto ms = [](int64_t v) { return Result<std::string>("time=" + std::to_string(v)); };
  if (!to.empty() && to.find_first_not_of("0123456789") == std::string::npos) return ms(std::stoll(to));
  if (to.size() >= 3 && to[0] == '-' && to.find_first_not_of("0123456789", 1) == to.size() - 1) {
    int64_t unit = 0;
    switch (to.back()) {
      case 's': unit = 1000; break;
      case 'm': unit = 60'000; break;
      case 'h': unit = 3'600'000; break;
      case 'd': unit = 86'400'000; break;
    }
    if (unit > 0) {
      auto now = std::chrono::duration_cast<std::chrono::milliseconds>(
                     std::chrono::system_clock::now().time_since_epoch()).count();
      return ms(now - std::stoll(to.substr(1, to.size() - 2)) * unit);
    }
  }
  std::tm tm{};
  for (const char* format : {"%Y-%m-%dT%H:%M:%S", "%Y-%m-%dT%H:%M", "%Y-%m-%d %H:%M:%S", "%Y-%m-%d %H:%M"}) {
    tm = std::tm{};
    const char* end = strptime(to.c_str(), format, &tm);
    if (end && (*end == '\0' || (end[0] == 'Z' && end[1] == '\0'))) return ms(int64_t{timegm(&tm)} * 1000);
  }
  return Status(Code::kInvalidArgument,
                "--to: a bookmark, milliseconds since the epoch, a UTC time (2026-12-05T14:00:00Z) or a time "
                "ago (-30m, -2h, -7d)");
}

class Cli {
 public:
  explicit Cli(Globals g) : g_(std::move(g)), client_(g_.server, g_.token) {}

  // Sends the request; on an error status prints the server's message.
  std::optional<AdminResponse> call(const std::string& method, const std::string& target,
                                    const std::string& body = "",
                                    const std::string& type = "application/json",
                                    const Progress& progress = nullptr,
                                    const std::string& conflict_hint = "", const Files& files = {}) {
    auto r = client_.request(method, target, body, type, progress, files);
    if (!r) {
      fail(r.status().message());
      return std::nullopt;
    }
    if (r->status >= 400) {
      Json j = parse_or_discarded(r->body);
      std::string msg = j.is_object() && j.contains("error") ? j["error"].get<std::string>() : r->body;
      if (r->status == 401) msg += " (set --token or $DOBJ_ADMIN_TOKEN)";
      if (r->status == 409) msg += conflict_hint;
      fail("server answered " + std::to_string(r->status) + ": " + msg);
      return std::nullopt;
    }
    return std::move(*r);
  }
  std::optional<Json> call_json(const std::string& method, const std::string& target,
                                const std::string& body = "") {
    auto j = call_json_quiet(method, target, body);
    if (j && g_.json) std::cout << j->dump(2) << "\n";
    return j;
  }
  // call_json without printing the answer for --json.
  std::optional<Json> call_json_quiet(const std::string& method, const std::string& target,
                                      const std::string& body = "") {
    auto r = call(method, target, body);
    if (!r) return std::nullopt;
    Json j = parse_or_discarded(r->body);
    if (j.is_discarded()) {
      fail("the server's answer is not JSON");
      return std::nullopt;
    }
    return j;
  }

  int objects(const std::string& ns, const std::string& prefix, const std::string& sort,
              int64_t min_bytes, int limit, bool all) {
    std::string q = "/_dobj/objects?limit=" + std::to_string(limit) + "&sort=" + url_encode(sort);
    if (!ns.empty()) q += "&namespace=" + url_encode(ns);
    if (!prefix.empty()) q += "&prefix=" + url_encode(prefix);
    if (min_bytes > 0) q += "&minBytes=" + std::to_string(min_bytes);
    std::string cursor;
    std::vector<std::vector<std::string>> rows;
    do {
      auto page = call_json("GET", q + (cursor.empty() ? "" : "&cursor=" + url_encode(cursor)));
      if (!page) return 1;
      if (!g_.json) {
        for (const auto& o : (*page)["objects"]) {
          rows.push_back({o["namespace"].get<std::string>(), o["id"].get<std::string>(),
                          o["name"].is_null() ? "-" : o["name"].get<std::string>(),
                          human_bytes(o["bytes"].get<int64_t>()), human_time(o["lastActive"]),
                          human_time(o["alarm"]), o["resident"].get<bool>() ? "yes" : "no",
                          std::to_string(o["sockets"].get<int64_t>())});
        }
      }
      cursor = (*page)["nextCursor"].is_string() ? (*page)["nextCursor"].get<std::string>() : "";
      if (!all && !cursor.empty() && !g_.json) {
        std::cerr << "(more: --all lists every page)\n";
        break;
      }
    } while (all && !cursor.empty());
    if (!g_.json) {
      print_table({"NAMESPACE", "ID", "NAME", "SIZE", "LAST ACTIVE", "ALARM", "RESIDENT", "SOCKETS"},
                  rows);
    }
    return 0;
  }

  int inspect(const std::string& ns, const std::string& object, int keys) {
    auto o = call_json("GET", object_path(ns, object) + "?keys=" + std::to_string(keys));
    if (!o) return 1;
    if (g_.json) return 0;
    const Json& j = *o;
    std::cout << "namespace  " << safe(j["namespace"].get<std::string>()) << "\n"
              << "id         " << safe(j["id"].get<std::string>()) << "\n"
              << "name       " << (j["name"].is_null() ? "-" : safe(j["name"].get<std::string>()))
              << "\n"
              << "storage    " << storage_line(j) << "\n"
              << "alarm      " << human_time(j["alarm"]) << "\n"
              << "resident   " << (j["resident"].get<bool>() ? "yes" : "no") << "\n"
              << "sockets    " << j["sockets"].get<int64_t>() << "\n";
    if (j.contains("lastActive")) std::cout << "active     " << human_time(j["lastActive"]) << "\n";
    std::cout << "\nkeys (" << j["keys"].size() << (j["nextKey"].is_null() ? "" : ", more") << ")\n";
    std::vector<std::vector<std::string>> rows;
    for (const auto& k : j["keys"]) {
      const Json& value = k["value"];
      std::string v = value.is_object() && value.contains("hex") ? cell(value) : value.dump();
      if (v.size() > 80) v = v.substr(0, 77) + "...";
      rows.push_back({k["key"].get<std::string>(), k["type"].get<std::string>(), v});
    }
    if (!rows.empty()) print_table({"KEY", "TYPE", "VALUE"}, rows);
    rows.clear();
    for (const auto& t : j["tables"]) {
      rows.push_back({t["name"].get<std::string>(), t["type"].get<std::string>(),
                      t["rows"].is_null() ? "?" : std::to_string(t["rows"].get<int64_t>())});
    }
    std::cout << "\ntables\n";
    if (!rows.empty()) print_table({"NAME", "TYPE", "ROWS"}, rows);
    return 0;
  }

  int sql(const std::string& ns, const std::string& object, const std::string& query) {
    auto r = call_json("POST", object_path(ns, object) + "/sql", Json{{"query", query}}.dump());
    if (!r) return 1;
    if (g_.json) return 0;
    std::vector<std::string> head;
    for (const auto& c : (*r)["columns"]) head.push_back(c.get<std::string>());
    std::vector<std::vector<std::string>> rows;
    for (const auto& row : (*r)["rows"]) {
      std::vector<std::string> cells;
      for (const auto& v : row) cells.push_back(cell(v));
      rows.push_back(std::move(cells));
    }
    print_table(head, rows);
    if ((*r)["truncated"].get<bool>()) std::cerr << "(more rows than shown)\n";
    return 0;
  }

  int metrics(const std::string& ns, bool prometheus) {
    if (prometheus) {
      auto r = call("GET", "/metrics");
      if (!r) return 1;
      std::cout << r->body;
      return 0;
    }
    auto m = call_json("GET", "/_dobj/metrics");
    if (!m) return 1;
    if (g_.json) return 0;
    std::vector<std::vector<std::string>> rows;
    auto fmt = [](const Json& v) {
      char b[32];
      std::snprintf(b, sizeof b, "%.2f", v.get<double>());
      return std::string(b);
    };
    auto add = [&](const std::string& name, const Json& n) {
      rows.push_back({name, std::to_string(n["activeObjects"].get<int64_t>()),
                      fmt(n["requestsPerSecond"]), fmt(n["cpuTimeP95"]),
                      std::to_string(n["stateOperations"].get<int64_t>()),
                      std::to_string(n["storedObjects"].get<int64_t>()),
                      human_bytes(n["storageBytes"].get<int64_t>()),
                      std::to_string(n["websocketsOpen"].get<int64_t>()),
                      std::to_string(n["errors"].get<int64_t>())});
    };
    for (const auto& [name, n] : (*m)["namespaces"].items()) {
      if (ns.empty() || ns == name) add(name, n);
    }
    if (ns.empty()) add("(total)", (*m)["total"]);
    print_table({"NAMESPACE", "ACTIVE", "REQ/S", "CPU P95 MS", "STATE OPS", "STORED", "STORAGE",
                 "SOCKETS", "ERRORS"},
                rows);
    return 0;
  }

  int advise() {
    auto a = call_json("GET", "/_dobj/advice");
    if (!a) return 1;
    if (g_.json) return 0;
    const Json& findings = (*a)["findings"];
    if (findings.empty()) {
      std::cout << "no findings: nothing in the live numbers calls for a change\n";
      return 0;
    }
    for (const auto& f : findings) {
      auto text = [&](const char* k) { return safe(f[k].get<std::string>()); };
      std::cout << "[" << text("severity") << "] " << text("rule");
      if (f.contains("namespace")) std::cout << " (" << text("namespace") << ")";
      std::cout << "\n  " << text("title") << "\n  evidence: " << text("evidence")
                << "\n  suggestion: " << text("suggestion") << "\n\n";
    }
    return 0;
  }

  // dobj review: findings for the code at paths; with live, the server's
  // advisor findings confirm those they match. Exit 1 on an error-level
  // finding, 2 when the review could not run.
  int review(const std::vector<std::string>& paths, bool live, bool list_rules,
             const std::string& replay) {
#ifdef DOBJ_REVIEW
    if (list_rules) {
      Json rules = review::rules();
      if (g_.json) {
        std::cout << rules.dump(2) << "\n";
        return 0;
      }
      for (const auto& r : rules) {
        std::cout << r["id"].get<std::string>() << " (" << r["severity"].get<std::string>() << ")\n  "
                  << r["why"].get<std::string>() << "\n  fix: " << r["fix"].get<std::string>() << "\n";
      }
      return 0;
    }
    if (paths.empty()) {
      std::cerr << "dobj review: give a .js file, a folder or a wrangler.jsonc / wrangler.toml\n";
      return 2;
    }
    review::Input input;
    for (const auto& p : paths) {
      if (Status s = review::collect_into(input, p); !s) {
        std::cerr << "dobj review: " << s.message() << "\n";
        return 2;
      }
    }
    if (live) {
      auto r = call("GET", "/_dobj/advice");
      if (!r) return 2;
      input.live = parse_or_discarded(r->body);
      if (input.live.is_discarded()) input.live = nullptr;
    }
    auto result = review::run(input);
    if (!result) {
      std::cerr << "dobj review: " << result.status().message() << "\n";
      return 2;
    }
    if (!replay.empty() && !replay_findings(replay, *result)) return 2;
    if (g_.json) {
      std::cout << result->dump(2, ' ', false, Json::error_handler_t::replace) << "\n";
    } else {
      std::cout << review::to_text(*result);
    }
    return review::has_errors(*result) ? 1 : 0;
#else
    (void)paths, (void)live, (void)list_rules, (void)replay;
    std::cerr << "dobj review: this dobj was built without JavaScript support (DOBJ_JS=OFF)\n";
    return 2;
#endif
  }

#ifdef DOBJ_REVIEW
  // --replay "METHOD /path": each state-in-memory finding is replayed on the
  // server on two scratch objects of the class's namespace: the request twice
  // on one, and twice with an eviction between on the other (both deleted
  // afterwards). Different second answers show the state lost.
  bool replay_findings(const std::string& replay, Json& result) {
    auto space = replay.find(' ');
    if (space == std::string::npos || replay.find('/', space) != space + 1) {
      std::cerr << "dobj review: --replay takes \"METHOD /path\", e.g. \"POST /counter/x/increment\"\n";
      return false;
    }
    Json request = {{"method", replay.substr(0, space)}, {"path", replay.substr(space + 1)}};
    int n = 0;
    for (Json& f : result["findings"]) {
      if (f.value("rule", "") != "state-in-memory") continue;
      std::string binding = f.value("binding", "");  // from the config, by the reviewer
      if (binding.empty()) {
        f["replay"] = {{"confirmed", false},
                       {"note", "no binding for class " + f.value("className", "?") +
                                    " in the config: give the wrangler.jsonc (or .toml) to replay"}};
        continue;
      }
      std::string base = "dobj-review-replay-" + std::to_string(::getpid()) + "-" + std::to_string(n++);
      Json seconds = Json::array();
      for (bool evict : {false, true}) {
        std::string object = "/_dobj/objects/" + url_encode(binding) + "/" +
                             url_encode("name:" + base + (evict ? "-evicted" : "-kept"));
        Json body = {{"requests", {request, request}}, {"evictBetween", evict}};
        auto r = call("POST", object + "/replay", body.dump());
        if (!r) return false;
        Json answer = parse_or_discarded(r->body);
        call("DELETE", object);  // the scratch object's storage, if it made any
        if (!answer.is_object() || answer["answers"].size() != 2) {
          std::cerr << "dobj review: the replay failed: " << r->body << "\n";
          return false;
        }
        seconds.push_back(answer["answers"][1]);
      }
      bool differ = seconds[0]["status"] != seconds[1]["status"] || seconds[0]["body"] != seconds[1]["body"];
      auto shown = [](const Json& a) {
        std::string b = a.value("body", "");
        if (b.size() > 80) b = b.substr(0, 80) + "...";
        return std::to_string(a.value("status", 0)) + " " + b;
      };
      f["replay"] = {{"confirmed", differ},
                     {"request", replay},
                     {"inMemory", shown(seconds[0])},
                     {"afterEviction", shown(seconds[1])}};
    }
    return true;
  }

  // The answer to an MCP tools/call of reviewCode, reviewed in this process;
  // nullopt for every other message.
  std::optional<Json> local_review(const Json& msg) {
    if (!msg.is_object() || msg.value("method", "") != "tools/call" || !msg.contains("id") ||
        !msg["params"].is_object() || msg["params"].value("name", "") != "reviewCode") {
      return std::nullopt;
    }
    Json args = msg["params"].value("arguments", Json::object());
    auto result = [&](const Json& body, bool error) {
      Json r = {{"content", {{{"type", "text"}, {"text", body.dump(2, ' ', false, Json::error_handler_t::replace)}}}},
                {"isError", error}};
      if (!error) r["structuredContent"] = body;
      return Json{{"jsonrpc", "2.0"}, {"id", msg["id"]}, {"result", std::move(r)}};
    };
    auto input = review::input_from_json(args);
    if (!input) return result(Json{{"error", input.status().message()}}, true);
    if (auto r = client_.request("GET", "/_dobj/advice"); r && r->status == 200) {
      input->live = parse_or_discarded(r->body);
      if (input->live.is_discarded()) input->live = nullptr;
    }
    auto out = review::run(*input);
    if (!out) return result(Json{{"error", out.status().message()}}, true);
    return result(*out, false);
  }
#endif

  // The cluster as the server it asks sees it: nodes, then partitions
  // grouped by owner (all of them with --partitions).
  int cluster_status(bool every_partition) {
    auto c = call_json("GET", "/_dobj/cluster");
    if (!c) return 1;
    if (g_.json) return 0;
    if (c->value("mode", std::string()) != "cluster") {
      std::cout << "a single node (not started with --cluster)\n";
      return 0;
    }
    std::cout << "asked node " << safe(c->value("node", std::string())) << ": lease "
              << (c->value("lease_live", false) ? "live" : "NOT LIVE") << ", etcd revision "
              << c->value("etcd_revision", int64_t{0}) << ", " << c->value("partition_count", 0)
              << " partitions (" << c->value("unplaced", 0) << " unplaced, " << c->value("moves_pending", 0)
              << " not yet on their preferred nodes), replicas " << c->value("replicas", 0) << ", min copies "
              << c->value("min_copies", 1) << "\n";
    if (int short_of = c->value("below_min_copies", 0); short_of > 0) {
      std::cout << short_of << " partitions have fewer in-sync copies than --min-copies: they answer 503 "
                << "until a copy catches up\n";
    }
    std::cout << "\n";
    std::cout << std::left << std::setw(16) << "NODE" << std::setw(8) << "STATE" << std::setw(12)
              << "PARTITIONS" << "PEER\n";
    for (const auto& n : (*c)["nodes"]) {
      std::cout << std::setw(16) << safe(n.value("id", std::string())) << std::setw(8)
                << (n.value("retired", false) ? (n.value("live", false) ? "retired" : "gone")
                                               : (n.value("live", false) ? "live" : "DOWN"))
                << std::setw(12) << n.value("partitions", 0)
                << safe(n.value("peer", std::string("-"))) << "\n";
    }
    if (every_partition) {
      std::cout << "\n" << std::setw(11) << "PARTITION" << std::setw(16) << "OWNER" << std::setw(10)
                << "EPOCH" << "IN SYNC\n";
      for (const auto& p : (*c)["partitions"]) {
        std::string in_sync;
        for (const auto& r : p["in_sync"]) in_sync += (in_sync.empty() ? "" : ",") + safe(r.get<std::string>());
        std::cout << std::setw(11) << p.value("partition", 0) << std::setw(16)
                  << safe(p.value("owner", std::string("-"))) + (p.value("owner_live", false) ? "" : " (down)")
                  << std::setw(10) << p.value("epoch", int64_t{0}) << in_sync << "\n";
      }
    }
    return 0;
  }

  int cluster_retire(const std::string& node, bool retire) {
    auto r = call_json(retire ? "POST" : "DELETE", "/_dobj/cluster/retire?node=" + url_encode(node));
    if (!r) return 1;
    if (!g_.json) {
      std::cout << "node " << safe(node)
                << (retire ? " retired: its partitions move to the other nodes (dobj cluster status shows "
                             "the moves pending)\n"
                           : " taken back: it gets its share of the partitions again\n");
    }
    return 0;
  }

  int export_object(const std::string& ns, const std::string& object, std::string out) {
    if (out.empty()) {
      out = export_file_name(object.rfind("name:", 0) == 0 ? object.substr(5) : object);
    }
    // Written beside its name, and named once whole.
    TempFile part(out + ".part");
    auto r = call("GET", object_path(ns, object) + "/export", "", "", progress_printer("export"), "",
                  Files::to(part.path));
    if (!r) return 1;
    if (::rename(part.path.c_str(), out.c_str()) != 0) return fail("cannot write " + out + ": " + std::strerror(errno));
    part.path.clear();
    std::cerr << "wrote " << out << " (" << human_bytes(static_cast<int64_t>(r->body_bytes)) << ")\n";
    return 0;
  }

  int import_object(const std::string& ns, const std::string& object, const std::string& file,
                    bool replace) {
    if (::access(file.c_str(), R_OK) != 0) return fail("cannot read " + file);
    auto r = call("PUT", object_path(ns, object) + "/import" + (replace ? "?replace=1" : ""), "",
                  "application/vnd.sqlite3", progress_printer("import"), " (pass --replace to replace it)",
                  Files::from(file));
    if (!r) return 1;
    Json j = parse_or_discarded(r->body);
    if (g_.json) {
      std::cout << j.dump(2) << "\n";
    } else {
      std::cerr << "imported " << file << " as " << safe(j.value("id", std::string("?"))) << "\n";
    }
    return 0;
  }

  int history(const std::string& ns, const std::string& object, int limit) {
    auto h = call_json("GET", object_path(ns, object) + "/history?limit=" + std::to_string(limit));
    if (!h) return 1;
    if (g_.json) return 0;
    const Json& j = *h;
    std::vector<std::vector<std::string>> rows;
    for (const auto& b : j["bookmarks"]) {
      rows.push_back({b["bookmark"].get<std::string>(), human_time(b["time"]),
                      b["base"].get<bool>() ? "base" : "commit"});
    }
    std::cout << "id       " << safe(j["id"].get<std::string>()) << "\n"
              << "commits  " << j["commits"].get<int64_t>() << " (" << human_bytes(j.value("historyBytes", int64_t{0}))
              << " of history)\n"
              << "current  " << (j["current"].is_string() ? j["current"].get<std::string>() : "-") << "\n\n";
    if (!rows.empty()) print_table({"BOOKMARK", "TIME", "KIND"}, rows);
    if (j["commits"].get<size_t>() > rows.size()) std::cerr << "(older commits: --limit)\n";
    return 0;
  }

  int restore(const std::string& ns, const std::string& object, const std::string& to) {
    auto query = restore_query(to);
    if (!query) return fail(query.status().message());
    auto before = call_json_quiet("GET", object_path(ns, object) + "/history?limit=1");
    if (!before) return 1;
    auto r = call_json("POST", object_path(ns, object) + "/restore?" + *query);
    if (!r) return 1;
    if (!g_.json) {
      std::cerr << "restored to " << (*r)["bookmark"].get<std::string>() << "; now at "
                << (*r)["current"].get<std::string>() << "\n";
      if ((*before)["current"].is_string()) {
        std::cerr << "undo: dobj restore " << ns << " " << object << " --to "
                  << (*before)["current"].get<std::string>() << "\n";
      }
    }
    return 0;
  }

  int fork(const std::string& ns, const std::string& object, const std::string& as, bool replace) {
    auto answer = call("POST", object_path(ns, object) + "/fork?as=" + url_encode(as) + (replace ? "&replace=1" : ""),
                       "", "application/json", nullptr, " (pass --replace to replace it)");
    if (!answer) return 1;
    auto r = std::optional<Json>(parse_or_discarded(answer->body));
    if (g_.json) std::cout << r->dump(2) << "\n";
    if (!g_.json) {
      std::cerr << "forked " << object << " as " << as << " (" << safe((*r)["id"].get<std::string>()) << ", "
                << human_bytes((*r)["databaseBytes"].get<int64_t>()) << ")\n";
    }
    return 0;
  }

  // From another server's admin API (from) into this one's: the history
  // file, whose last state becomes the object's database here.
  int pull(const std::string& ns, const std::string& object, Globals from, bool replace) {
    from.json = false;
    Cli source(std::move(from));
    // Through a file in $TMPDIR (or /tmp), not memory: a history can be
    // larger than the machine's memory.
    auto temp = TempFile::make("dobj-pull");
    if (!temp) return fail(temp.status().message());
    auto file = source.call("GET", object_path(ns, object) + "/history-file", "", "", progress_printer("pull"), "",
                            Files::to(temp->path));
    if (!file) return 1;
    auto r = call("PUT", object_path(ns, object) + "/history-file" + (replace ? "?replace=1" : ""), "",
                  "application/octet-stream", progress_printer("push"), " (pass --replace to replace it)",
                  Files::from(temp->path));
    if (!r) return 1;
    Json j = parse_or_discarded(r->body);
    if (g_.json) {
      std::cout << j.dump(2) << "\n";
    } else {
      std::cerr << "pulled " << object << ": " << j.value("commits", int64_t{0}) << " commits ("
                << human_bytes(j.value("historyBytes", int64_t{0})) << " of history), database "
                << human_bytes(j.value("databaseBytes", int64_t{0})) << ", now at "
                << j.value("current", std::string("-")) << "\n";
    }
    return 0;
  }

  int remove(const std::string& ns, const std::string& object) {
    auto r = call_json("DELETE", object_path(ns, object));
    if (!r) return 1;
    if (!g_.json) std::cerr << "deleted " << safe((*r)["id"].get<std::string>()) << "\n";
    return 0;
  }

  // stdio MCP: one JSON-RPC message per line in, each forwarded to the
  // server's /_dobj/mcp, its answer (if any) written as one line.
  int mcp() {
    std::string line;
    while (std::getline(std::cin, line)) {
      if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
#ifdef DOBJ_REVIEW
      // reviewCode runs here, on this machine's files, whatever the server
      // was built with (its advisor's findings still count as evidence).
      if (auto answer = local_review(parse_or_discarded(line))) {
        std::cout << answer->dump(-1, ' ', false, Json::error_handler_t::replace) << "\n" << std::flush;
        continue;
      }
#endif
      auto r = client_.request("POST", "/_dobj/mcp", line, "application/json");
      Json id = nullptr;
      Json msg = parse_or_discarded(line);
      if (msg.is_object() && msg.contains("id")) id = msg["id"];
      if (!r || (r->status >= 400 && r->body.empty())) {
        if (id.is_null()) continue;
        std::string why = r ? "server answered " + std::to_string(r->status) : r.status().message();
        std::cout << Json{{"jsonrpc", "2.0"}, {"id", id}, {"error", {{"code", -32603}, {"message", why}}}}.dump()
                  << "\n" << std::flush;
        continue;
      }
      if (r->status == 202 || r->body.empty()) continue;  // a notification
      Json out = parse_or_discarded(r->body);
      if (out.is_discarded()) {
        out = Json{{"jsonrpc", "2.0"}, {"id", id}, {"error", {{"code", -32603}, {"message", r->body}}}};
      }
      std::cout << out.dump() << "\n" << std::flush;
    }
    return 0;
  }

 private:
  Globals g_;
  AdminClient client_;
};

}  // namespace
}  // namespace dobj::cli

int main(int argc, char** argv) {
  using namespace dobj::cli;
  Globals g;
  g.server = env_or("DOBJ_SERVER", "http://127.0.0.1:8787");
  g.token = env_or("DOBJ_ADMIN_TOKEN", "");
  CLI::App app{"dobj: look into and manage a running dobj server (its admin API)"};
  app.require_subcommand(1);
  app.add_option("--server", g.server, "the server, http(s)://HOST:PORT (default $DOBJ_SERVER or "
                                      "http://127.0.0.1:8787)");
  app.add_option("--token", g.token, "the admin token (default $DOBJ_ADMIN_TOKEN)");
  app.add_flag("--json", g.json, "print the server's JSON instead of a table");

  std::string ns, object, prefix, sort = "id", query, file, out;
  int64_t min_bytes = 0;
  int limit = 100, keys = 100;
  bool all = false, prometheus = false, replace = false, yes = false;

  auto* objects = app.add_subcommand("objects", "list objects with storage (the catalog)");
  objects->add_option("--namespace,-n", ns, "only this namespace (binding)");
  objects->add_option("--prefix,-p", prefix, "only objects whose name starts so");
  objects->add_option("--sort", sort, "id, name, bytes (largest first) or lastActive (latest first)")
      ->check(CLI::IsMember({"id", "name", "bytes", "lastActive"}));
  objects->add_option("--min-bytes", min_bytes, "only objects at least this large");
  objects->add_option("--limit", limit, "objects per page (1-1000)")->check(CLI::Range(1, 1000));
  objects->add_flag("--all", all, "every page, not only the first");

  auto* inspect = app.add_subcommand("inspect", "an object's keys, tables, alarm and state");
  inspect->add_option("namespace", ns, "binding")->required();
  inspect->add_option("object", object, kObjectHelp)->required();
  inspect->add_option("--keys", keys, "keys to show (0-1000)")->check(CLI::Range(0, 1000));

  auto* sql = app.add_subcommand("sql", "run a read-only SQL query on an object");
  sql->add_option("namespace", ns, "binding")->required();
  sql->add_option("object", object, kObjectHelp)->required();
  sql->add_option("query", query, "one statement that only reads")->required();

  auto* metrics = app.add_subcommand("metrics", "per-namespace metrics");
  metrics->add_option("--namespace,-n", ns, "only this namespace");
  metrics->add_flag("--prometheus", prometheus, "the Prometheus text instead");

  app.add_subcommand("advise", "the advisor's findings from the live numbers");

  auto* exp = app.add_subcommand("export", "download an object's database (consistent copy)");
  exp->add_option("namespace", ns, "binding")->required();
  exp->add_option("object", object, kObjectHelp)->required();
  exp->add_option("-o,--output", out, "file to write (default <name or id>.sqlite)");

  auto* imp = app.add_subcommand("import", "put a database file in place of an object's storage");
  imp->add_option("namespace", ns, "binding")->required();
  imp->add_option("object", object, kObjectHelp)->required();
  imp->add_option("file", file, "a SQLite database (e.g. from dobj export)")->required()
      ->check(CLI::ExistingFile);
  imp->add_flag("--replace", replace, "replace an object that already has storage");

  auto* del = app.add_subcommand("delete", "delete an object and all its storage");
  del->add_option("namespace", ns, "binding")->required();
  del->add_option("object", object, kObjectHelp)->required();
  del->add_flag("--yes", yes, "confirm: the object's data is gone for good")->required();

  auto* hist = app.add_subcommand("history", "an object's bookmarks over time (server started with --history)");
  hist->add_option("namespace", ns, "binding")->required();
  hist->add_option("object", object, kObjectHelp)->required();
  hist->add_option("--limit", limit, "the latest N commits (1-100000)")->check(CLI::Range(1, 100000));

  std::string to;
  auto* rest = app.add_subcommand("restore", "put an object back as it was at a bookmark or time (--history)");
  rest->add_option("namespace", ns, "binding")->required();
  rest->add_option("object", object, kObjectHelp)->required();
  rest->add_option("--to", to, "a bookmark, ms since the epoch, a UTC time (2026-12-05T14:00:00Z) or a time "
                               "ago (-30m, -2h, -7d)")->required();

  std::string as;
  auto* frk = app.add_subcommand("fork", "copy an object's database (not its alarm) into another object");
  frk->add_option("namespace", ns, "binding")->required();
  frk->add_option("object", object, kObjectHelp)->required();
  frk->add_option("--as", as, "the new object's name (or name:NAME, or a 64-digit ID)")->required();
  frk->add_flag("--replace", replace, "replace an object that already has storage");

  Globals from;
  from.token = env_or("DOBJ_FROM_TOKEN", "");
  auto* pul = app.add_subcommand("pull", "copy an object with its history from another server (--from) into "
                                         "this one (--server), both started with --history");
  pul->add_option("namespace", ns, "binding")->required();
  pul->add_option("object", object, kObjectHelp)->required();
  pul->add_option("--from", from.server, "the server to copy from, http(s)://HOST:PORT")->required();
  pul->add_option("--from-token", from.token, "its admin token (default $DOBJ_FROM_TOKEN)");
  pul->add_flag("--replace", replace, "replace an object that already has storage here");

  app.add_subcommand("mcp", "serve the admin plane as an MCP server on stdin/stdout");

  bool every_partition = false;
  auto* cluster = app.add_subcommand("cluster", "a cluster's nodes and partitions");
  cluster->require_subcommand(1);
  auto* cluster_status = cluster->add_subcommand("status", "nodes, owners and epochs as the server sees them");
  cluster_status->add_flag("--partitions", every_partition, "list every partition");
  std::string retire_node;
  bool retire_undo = false;
  auto* cluster_retire = cluster->add_subcommand(
      "retire", "move every partition off a node (one to stop, or one gone for good: its copies are "
                "made again on the others)");
  cluster_retire->add_option("node", retire_node, "the node's ID")->required();
  cluster_retire->add_flag("--undo", retire_undo, "take the node back: it gets its share again");

  std::vector<std::string> review_paths;
  bool list_rules = false;
  auto* rev = app.add_subcommand(
      "review", "review JavaScript Durable Object code for the model's classic mistakes "
                "(exit 1 on an error); with --server, add the server's live evidence");
  rev->add_option("paths", review_paths, "a .js file, a folder or a wrangler.jsonc / wrangler.toml");
  rev->add_flag("--rules", list_rules, "list the rules");
  std::string replay;
  rev->add_option("--replay", replay,
                  "\"METHOD /path\": replay state-in-memory findings on the server (--server): the "
                  "request twice on a scratch object, with and without an eviction between");
  rev->fallthrough();

  CLI11_PARSE(app, argc, argv);
  if (*rev) {
    // Live evidence only from a server named on the command line or in the environment.
    bool live = app.get_option("--server")->count() > 0 || std::getenv("DOBJ_SERVER") != nullptr;
    if (!replay.empty()) live = true;
    return Cli(g).review(review_paths, live, list_rules, replay);
  }
  Cli cli(g);
  if (*objects) return cli.objects(ns, prefix, sort, min_bytes, limit, all);
  if (*inspect) return cli.inspect(ns, object, keys);
  if (*sql) return cli.sql(ns, object, query);
  if (*metrics) return cli.metrics(ns, prometheus);
  if (app.got_subcommand("advise")) return cli.advise();
  if (*exp) return cli.export_object(ns, object, out);
  if (*imp) return cli.import_object(ns, object, file, replace);
  if (*del) return cli.remove(ns, object);
  if (*hist) return cli.history(ns, object, app.get_subcommand("history")->get_option("--limit")->count() ? limit : 50);
  if (*rest) return cli.restore(ns, object, to);
  if (*frk) return cli.fork(ns, object, as, replace);
  if (*pul) return cli.pull(ns, object, from, replace);
  if (app.got_subcommand("mcp")) return cli.mcp();
  if (*cluster_status) return cli.cluster_status(every_partition);
  if (*cluster_retire) return cli.cluster_retire(retire_node, !retire_undo);
  return 1;
}
