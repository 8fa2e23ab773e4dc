#include "support/power_cut.h"

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "support/power_cut_format.h"

namespace dobj::test {

namespace fs = std::filesystem;
using powercut::entries_path;
using powercut::inode_key;

std::vector<std::pair<std::string, std::string>> PowerCut::environment(
    const std::string& data_dir, const std::string& shadow_dir) {
  std::vector<std::pair<std::string, std::string>> env = {
      {"LD_PRELOAD", DOBJ_POWER_CUT_LIBRARY},
      {"DOBJ_POWERCUT_DATA", data_dir},
      {"DOBJ_POWERCUT_SHADOW", shadow_dir},
  };
  // Under ASan the library comes before the sanitizer's runtime.
  const char* asan = std::getenv("ASAN_OPTIONS");
  env.emplace_back("ASAN_OPTIONS",
                   std::string(asan ? asan : "") + (asan ? ":" : "") + "verify_asan_link_order=0");
  return env;
}

namespace {

std::string read_all(const fs::path& p) {
  std::ifstream f(p, std::ios::binary);
  std::ostringstream s;
  s << f.rdbuf();
  return s.str();
}

void write_all(const fs::path& p, const std::string& data) {
  std::ofstream f(p, std::ios::binary | std::ios::trunc);
  f.write(data.data(), static_cast<std::streamsize>(data.size()));
}

// What a torn write leaves of a file that was `synced` at its last sync and
// `now` in the page cache.
std::string tear(const std::string& synced, const std::string& now, std::mt19937& rng,
                 PowerCut::Stats& stats) {
  constexpr size_t kBlock = 4096;
  std::string out = synced;
  size_t common = std::min(synced.size(), now.size());
  for (size_t off = 0; off < common; off += kBlock) {
    size_t n = std::min(kBlock, common - off);
    if (synced.compare(off, n, now, off, n) == 0) continue;
    if (rng() % 2) {
      out.replace(off, n, now, off, n);
      stats.bytes_kept += static_cast<int64_t>(n);
    } else {
      stats.bytes_dropped += static_cast<int64_t>(n);
    }
  }
  if (now.size() > synced.size()) {
    size_t grown = now.size() - synced.size();
    size_t keep = rng() % (grown + 1);
    out.append(now, synced.size(), keep);
    stats.bytes_kept += static_cast<int64_t>(keep);
    stats.bytes_dropped += static_cast<int64_t>(grown - keep);
  } else if (now.size() < synced.size() && rng() % 2) {
    out.resize(now.size());  // the truncation reached the disk
  }
  return out;
}

void rebuild(const fs::path& from, const fs::path& to, const std::string& shadow,
             const std::string& rel, PowerCut::Mode mode, std::mt19937& rng,
             PowerCut::Stats& stats) {
  using Mode = PowerCut::Mode;
  fs::create_directories(to);
  ++stats.folders;
  std::ifstream list(entries_path(shadow, rel));
  std::string line;
  while (std::getline(list, line)) {
    // KIND \t KEY \t NAME
    size_t a = line.find('\t'), b = line.find('\t', a + 1);
    if (a == std::string::npos || b == std::string::npos) continue;
    char kind = line[0];
    std::string key = line.substr(a + 1, b - a - 1), name = line.substr(b + 1);
    std::string child = rel.empty() ? name : rel + "/" + name;
    if (kind == 'd') {
      rebuild(from / name, to / name, shadow, child, mode, rng, stats);
      continue;
    }
    fs::path copy = fs::path(shadow) / "inodes" / key;
    std::string synced = fs::exists(copy) ? read_all(copy) : std::string();
    std::string now;
    bool same_file = fs::exists(from / name) && inode_key(-1, (from / name).string()) == key;
    if (same_file) now = read_all(from / name);
    std::string data = synced;
    if (same_file && mode == Mode::kTorn) {
      data = tear(synced, now, rng, stats);
    } else if (same_file && now != synced) {
      stats.bytes_dropped += static_cast<int64_t>(std::max(now.size(), synced.size()));
    }
    write_all(to / name, data);
    ++stats.files;
  }
}

}  // namespace

PowerCut::Stats PowerCut::cut(const std::string& data_dir, const std::string& shadow_dir, Mode mode,
                              std::mt19937& rng) {
  Stats stats;
  fs::path rebuilt = data_dir + ".cut";
  fs::remove_all(rebuilt);
  rebuild(data_dir, rebuilt, shadow_dir, "", mode, rng, stats);
  fs::remove_all(data_dir);
  fs::rename(rebuilt, data_dir);
  fs::remove_all(shadow_dir);
  fs::create_directories(shadow_dir);
  return stats;
}

}  // namespace dobj::test
