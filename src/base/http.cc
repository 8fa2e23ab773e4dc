#include "dobj/http.h"

#include <strings.h>

#include <algorithm>
#include <nlohmann/json.hpp>

namespace dobj {
namespace {

int hex_value(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

bool iequals(std::string_view a, std::string_view b) {
  return a.size() == b.size() && strncasecmp(a.data(), b.data(), a.size()) == 0;
}

std::optional<std::string> find_header(const Headers& headers, std::string_view name) {
  for (const auto& [k, v] : headers) {
    if (iequals(k, name)) return v;
  }
  return std::nullopt;
}

void replace_header(Headers& headers, std::string name, std::string value) {
  for (auto& [k, v] : headers) {
    if (iequals(k, name)) {
      v = std::move(value);
      return;
    }
  }
  headers.emplace_back(std::move(name), std::move(value));
}

}  // namespace

std::optional<std::string> url_decode(std::string_view s, bool form) {
  // Most segments and parameters have nothing to decode: one copy.
  size_t first = form ? s.find_first_of("%+") : s.find('%');
  if (first == std::string_view::npos) return std::string(s);
  std::string out;
  out.reserve(s.size());
  out.append(s.substr(0, first));
  for (size_t i = first; i < s.size(); ++i) {
    char c = s[i];
    if (c == '%') {
      if (i + 2 >= s.size()) return std::nullopt;
      int hi = hex_value(s[i + 1]);
      int lo = hex_value(s[i + 2]);
      if (hi < 0 || lo < 0) return std::nullopt;
      out.push_back(static_cast<char>(hi * 16 + lo));
      i += 2;
    } else if (form && c == '+') {
      out.push_back(' ');
    } else {
      out.push_back(c);
    }
  }
  return out;
}

std::string url_encode(std::string_view s) {
  static const char* kHex = "0123456789ABCDEF";
  std::string out;
  for (unsigned char c : s) {
    if (isalnum(c) || c == '-' || c == '_' || c == '.' || c == '~') {
      out.push_back(static_cast<char>(c));
    } else {
      out.push_back('%');
      out.push_back(kHex[c >> 4]);
      out.push_back(kHex[c & 15]);
    }
  }
  return out;
}

std::string_view Request::path() const {
  std::string_view t = target;
  auto q = t.find('?');
  return q == std::string_view::npos ? t : t.substr(0, q);
}

std::optional<std::vector<std::string>> Request::path_segments() const {
  std::vector<std::string> out;
  std::string_view p = path();
  out.reserve(static_cast<size_t>(std::count(p.begin(), p.end(), '/')));  // one allocation
  while (!p.empty()) {
    if (p[0] == '/') {
      p.remove_prefix(1);
      continue;
    }
    auto slash = p.find('/');
    auto seg = url_decode(p.substr(0, slash));
    if (!seg) return std::nullopt;
    out.push_back(std::move(*seg));
    p = slash == std::string_view::npos ? std::string_view() : p.substr(slash);
  }
  return out;
}

std::optional<std::string> Request::query(std::string_view name) const {
  std::string_view t = target;
  auto q = t.find('?');
  if (q == std::string_view::npos) return std::nullopt;
  std::string_view rest = t.substr(q + 1);
  while (!rest.empty()) {
    auto amp = rest.find('&');
    std::string_view part = rest.substr(0, amp);
    rest = amp == std::string_view::npos ? std::string_view() : rest.substr(amp + 1);
    auto eq = part.find('=');
    std::string_view k = part.substr(0, eq);
    std::string_view v = eq == std::string_view::npos ? std::string_view() : part.substr(eq + 1);
    auto dk = url_decode(k, true);
    if (dk && *dk == name) return url_decode(v, true);
  }
  return std::nullopt;
}

namespace {
bool has_token(std::string_view value, std::string_view token) {
  // Comma-separated, case-insensitive: "keep-alive, Upgrade".
  size_t i = 0;
  while (i <= value.size()) {
    size_t comma = value.find(',', i);
    if (comma == std::string_view::npos) comma = value.size();
    std::string_view part = value.substr(i, comma - i);
    while (!part.empty() && (part.front() == ' ' || part.front() == '\t')) part.remove_prefix(1);
    while (!part.empty() && (part.back() == ' ' || part.back() == '\t')) part.remove_suffix(1);
    if (part.size() == token.size()) {
      bool eq = true;
      for (size_t k = 0; k < part.size() && eq; ++k) {
        eq = tolower(static_cast<unsigned char>(part[k])) ==
             tolower(static_cast<unsigned char>(token[k]));
      }
      if (eq) return true;
    }
    i = comma + 1;
  }
  return false;
}

}  // namespace

bool Request::is_websocket_upgrade() const {
  return method == "GET" && has_token(header("upgrade").value_or(""), "websocket") &&
         has_token(header("connection").value_or(""), "upgrade");
}

std::optional<std::string> Request::header(std::string_view name) const {
  return find_header(headers, name);
}
void Request::set_header(std::string name, std::string value) {
  replace_header(headers, std::move(name), std::move(value));
}
std::optional<std::string> Response::header(std::string_view name) const {
  return find_header(headers, name);
}
void Response::set_header(std::string name, std::string value) {
  replace_header(headers, std::move(name), std::move(value));
}

Response Response::text(std::string body, int status) {
  Response r;
  r.status = status;
  r.headers.emplace_back("Content-Type", "text/plain; charset=utf-8");
  r.body = std::move(body);
  return r;
}

Response Response::json(std::string body, int status) {
  Response r;
  r.status = status;
  r.headers.emplace_back("Content-Type", "application/json");
  r.body = std::move(body);
  return r;
}

Response Response::error(int status, std::string_view message) {
  nlohmann::json j = {{"error", std::string(message)}};
  return json(j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace), status);
}

}  // namespace dobj
