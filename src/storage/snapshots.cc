#include "storage/snapshots.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstring>
#include <ctime>
#include <random>

#include "base/fs.h"
#include "base/hex.h"

namespace dobj::internal::snapshots {
namespace {

constexpr std::string_view kPrefix = "snap-";
constexpr std::string_view kSuffix = ".sqlite";

int64_t cutoff_ms() { return (static_cast<int64_t>(::time(nullptr)) - int64_t{kDays} * 86400) * 1000; }

int64_t mtime_ms(const struct stat& st) {
  return static_cast<int64_t>(st.st_mtim.tv_sec) * 1000 + st.st_mtim.tv_nsec / 1'000'000;
}

// Calls fn(name, file, made_ms) for each snapshot file in dir.
template <typename F>
void for_each_file(const std::string& dir, F fn) {
  DIR* d = ::opendir(dir.c_str());
  if (!d) return;
  while (dirent* e = ::readdir(d)) {
    std::string_view entry = e->d_name;
    if (entry.size() <= kSuffix.size() || entry.substr(entry.size() - kSuffix.size()) != kSuffix) continue;
    std::string_view name = entry.substr(0, entry.size() - kSuffix.size());
    if (!valid_name(name)) continue;
    std::string file = dir + "/" + std::string(entry);
    struct stat st;
    if (::stat(file.c_str(), &st) == 0) fn(std::string(name), file, mtime_ms(st));
  }
  ::closedir(d);
}

}  // namespace

bool valid_name(std::string_view name) {
  return name.size() == kPrefix.size() + 32 && name.substr(0, kPrefix.size()) == kPrefix &&
         from_hex_lower(name.substr(kPrefix.size())).has_value();
}

uint32_t partition_of(std::string_view name, uint32_t partitions) {
  if (partitions == 0) return 0;
  auto bytes = from_hex_lower(name.substr(kPrefix.size(), 8));
  uint32_t v = 0;
  for (uint8_t b : *bytes) v = v << 8 | b;
  return v % partitions;
}

std::string new_name(uint32_t partition, uint32_t partitions) {
  static thread_local std::mt19937_64 rng{std::random_device{}()};
  uint8_t bytes[16];
  for (size_t i = 0; i < sizeof bytes; i += 8) {
    uint64_t r = rng();
    std::memcpy(bytes + i, &r, 8);
  }
  if (partitions > 0) {
    // The first four bytes: a random multiple of the count, plus the partition.
    uint64_t multiples = (uint64_t{UINT32_MAX} - partition) / partitions + 1;
    uint32_t v = static_cast<uint32_t>((rng() % multiples) * partitions + partition);
    for (int i = 0; i < 4; ++i) bytes[i] = static_cast<uint8_t>(v >> (24 - 8 * i));
  }
  return std::string(kPrefix) + to_hex(bytes, sizeof bytes);
}

std::string folder(const std::string& data_dir) { return data_dir + "/snapshots"; }

std::string path(const std::string& dir, std::string_view name) {
  return dir + "/" + std::string(name) + std::string(kSuffix);
}

Status write(const std::string& dir, std::string_view name, const std::string& image, int64_t made_ms) {
  if (!valid_name(name)) return Status(Code::kInvalidArgument, "not a snapshot name: " + std::string(name));
  if (Status st = make_dirs(dir, /*durable=*/true); !st) return st;
  // Snapshots past their time go now: they are few, and this is when one is made.
  int64_t cutoff = cutoff_ms();
  for_each_file(dir, [&](const std::string&, const std::string& file, int64_t made) {
    if (made < cutoff) ::unlink(file.c_str());
  });
  std::string file = path(dir, name);
  if (Status st = write_file_atomic(file, image, 0600); !st) return st;
  // When it was made decides when it goes, on every node that holds a copy.
  struct timespec times[2];
  times[0].tv_sec = times[1].tv_sec = static_cast<time_t>(made_ms / 1000);
  times[0].tv_nsec = times[1].tv_nsec = static_cast<long>(made_ms % 1000) * 1'000'000;
  ::utimensat(AT_FDCWD, file.c_str(), times, 0);
  return Status::ok();
}

Result<std::string> find(const std::string& dir, std::string_view name) {
  if (!valid_name(name)) return Status(Code::kInvalidArgument, "not a snapshot name (snap- and 32 hex digits)");
  std::string file = path(dir, name);
  struct stat st;
  if (dir.empty() || ::stat(file.c_str(), &st) != 0 || mtime_ms(st) < cutoff_ms()) {
    return Status(Code::kNotFound, "no snapshot " + std::string(name) + " (or it expired)");
  }
  return file;
}

Result<Copy> read(const std::string& dir, std::string_view name) {
  auto file = find(dir, name);
  if (!file) return file.status();
  struct stat st;
  auto image = ::stat(file->c_str(), &st) == 0 ? read_file(*file) : Result<std::string>(Status(Code::kNotFound, ""));
  if (!image) {
    if (image.status().code() != Code::kNotFound) return image.status();
    return Status(Code::kNotFound, "no snapshot " + std::string(name) + " (or it expired)");
  }
  return Copy{std::move(*image), mtime_ms(st)};
}

std::vector<Entry> list(const std::string& dir) {
  std::vector<Entry> out;
  int64_t cutoff = cutoff_ms();
  for_each_file(dir, [&](const std::string& name, const std::string&, int64_t made) {
    if (made >= cutoff) out.push_back(Entry{name, made});
  });
  return out;
}

}  // namespace dobj::internal::snapshots
