#include "admin/docs.h"

#include <algorithm>
#include <cctype>
#include <cmath>
#include <set>
#include <string>
#include <vector>

#include "admin/embedded_docs.h"  // generated

namespace dobj::internal {

namespace {

struct Section {
  std::string doc;
  std::string heading;
  std::string text;   // as written
  std::string lower;  // for matching
};

std::string lowered(std::string_view s) {
  std::string out(s);
  for (char& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

const std::vector<Section>& sections() {
  static const std::vector<Section> all = [] {
    std::vector<Section> out;
    for (const EmbeddedDoc& d : kEmbeddedDocs) {
      std::string_view text = d.text;
      Section cur{d.name, d.name, "", ""};
      size_t at = 0;
      bool in_code = false;
      while (at < text.size()) {
        size_t end = text.find('\n', at);
        if (end == std::string_view::npos) end = text.size();
        std::string_view line = text.substr(at, end - at);
        if (line.rfind("```", 0) == 0) in_code = !in_code;
        if (!in_code && !line.empty() && line[0] == '#') {
          if (!cur.text.empty()) out.push_back(std::move(cur));
          size_t h = line.find_first_not_of("# ");
          cur = Section{d.name, std::string(h == std::string_view::npos ? line : line.substr(h)), "", ""};
        }
        cur.text.append(line).push_back('\n');
        at = end + 1;
      }
      if (!cur.text.empty()) out.push_back(std::move(cur));
    }
    for (Section& s : out) s.lower = lowered(s.text);
    return out;
  }();
  return all;
}

// Words too common to tell sections apart.
const std::set<std::string> kStopWords = {"a",    "an",   "and",  "are",  "be",   "by",   "can",
                                          "do",   "does", "for",  "from", "how",  "i",    "in",
                                          "is",   "it",   "its",  "my",   "of",   "on",   "or",
                                          "the",  "to",   "what", "when", "why",  "with", "you"};

size_t count(const std::string& hay, const std::string& needle) {
  size_t n = 0;
  for (size_t at = hay.find(needle); at != std::string::npos; at = hay.find(needle, at + 1)) ++n;
  return n;
}

}  // namespace

nlohmann::json search_docs(std::string_view query, size_t limit) {
  // The query's words (letters, digits, _ and -), two characters or more.
  std::vector<std::string> words;
  std::string w;
  for (char c : lowered(query) + " ") {
    if (std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '-' || c == '.') {
      w.push_back(c);
    } else {
      if (w.size() >= 2 && !kStopWords.count(w) && std::find(words.begin(), words.end(), w) == words.end()) {
        words.push_back(w);
      }
      w.clear();
    }
  }
  const auto& all = sections();
  struct Scored {
    double score;
    const Section* s;
  };
  std::vector<Scored> scored;
  // A rare word counts more than a common one (inverse document frequency).
  std::vector<double> weight;
  for (const auto& word : words) {
    size_t df = 0;
    for (const Section& s : all) df += s.lower.find(word) != std::string::npos;
    weight.push_back(df ? std::log(1.0 + static_cast<double>(all.size()) / static_cast<double>(df)) : 0);
  }
  for (const Section& s : all) {
    double score = 0;
    size_t matched = 0;
    std::string heading = lowered(s.heading);
    for (size_t i = 0; i < words.size(); ++i) {
      size_t n = count(s.lower, words[i]);
      if (n == 0) continue;
      ++matched;
      score += weight[i] * (1.0 + std::log(static_cast<double>(n)));
      if (heading.find(words[i]) != std::string::npos) score += 3 * weight[i];
    }
    // Sections matching more of the words first.
    if (matched > 0) scored.push_back({score * static_cast<double>(matched), &s});
  }
  std::stable_sort(scored.begin(), scored.end(),
                   [](const Scored& a, const Scored& b) { return a.score > b.score; });
  nlohmann::json out = nlohmann::json::array();
  for (size_t i = 0; i < scored.size() && i < limit; ++i) {
    const Section& s = *scored[i].s;
    std::string text = s.text.size() > 2000 ? s.text.substr(0, 2000) + "…" : s.text;
    out.push_back({{"doc", s.doc},
                   {"heading", s.heading},
                   {"text", text},
                   {"score", std::round(scored[i].score * 100) / 100}});
  }
  return out;
}

}  // namespace dobj::internal
