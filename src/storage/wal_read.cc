// read_wal_commits (storage/vfs.h): a WAL file read as SQLite's recovery
// reads it (https://sqlite.org/fileformat2.html#walformat). Numbers in the
// file are big-endian; the checksums add up 32-bit words in the byte order
// the header's magic names.
#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "base/fs.h"
#include "storage/vfs.h"

namespace dobj::internal {

namespace {

constexpr size_t kWalHeader = 32, kFrameHeader = 24;

// SQLite's WAL checksum over n bytes (a multiple of 8), continuing s.
void wal_sum(bool big_endian, const char* p, size_t n, uint32_t s[2]) {
  for (size_t i = 0; i < n; i += 8) {
    uint32_t x0, x1;
    if (big_endian) {
      x0 = wal_be32(p + i);
      x1 = wal_be32(p + i + 4);
    } else {
      std::memcpy(&x0, p + i, 4);
      std::memcpy(&x1, p + i + 4, 4);
      x0 = le32toh(x0);
      x1 = le32toh(x1);
    }
    s[0] += x0 + s[1];
    s[1] += x1 + s[0];
  }
}

}  // namespace

Result<std::vector<std::vector<WalFrame>>> read_wal_commits(const std::string& path) {
  std::vector<std::vector<WalFrame>> commits;
  auto bytes = read_file(path);
  if (!bytes) return bytes.status().code() == Code::kNotFound ? Result(commits) : bytes.status();
  const std::string& w = *bytes;
  if (w.size() < kWalHeader) return commits;
  uint32_t magic = wal_be32(w.data());
  if (magic != 0x377f0682 && magic != 0x377f0683) return commits;
  bool big_endian = (magic & 1) != 0;
  uint32_t page_size = wal_be32(w.data() + 8);
  if (page_size == 1) page_size = 65536;
  if (page_size < 512 || page_size > 65536 || (page_size & (page_size - 1)) != 0) return commits;
  uint32_t sum[2] = {0, 0};
  wal_sum(big_endian, w.data(), 24, sum);
  if (sum[0] != wal_be32(w.data() + 24) || sum[1] != wal_be32(w.data() + 28)) return commits;
  const char* salts = w.data() + 16;
  std::vector<WalFrame> pending;
  for (size_t at = kWalHeader; at + kFrameHeader + page_size <= w.size(); at += kFrameHeader + page_size) {
    const char* f = w.data() + at;
    if (std::memcmp(f + 8, salts, 8) != 0) break;
    wal_sum(big_endian, f, 8, sum);
    wal_sum(big_endian, f + kFrameHeader, page_size, sum);
    if (sum[0] != wal_be32(f + 16) || sum[1] != wal_be32(f + 20)) break;
    uint32_t page = wal_be32(f), commit_pages = wal_be32(f + 4);
    if (page == 0) break;
    pending.push_back(WalFrame{page, commit_pages, std::string(f + kFrameHeader, page_size)});
    if (commit_pages != 0) commits.push_back(std::move(pending)), pending.clear();
  }
  return commits;  // frames after the last commit frame were never committed
}

}  // namespace dobj::internal
