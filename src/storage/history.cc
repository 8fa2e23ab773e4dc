#include "storage/history.h"

#include <endian.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cinttypes>
#include <cstdio>
#include <cstring>
#include <mutex>
#include <new>
#include <optional>
#include <set>
#include <tuple>

#include "base/fs.h"
#include "base/hex.h"
#include "base/log.h"

namespace dobj::internal {

namespace {

// History files whose last record this process knows is whole: it wrote
// them, or checked them, and a file is only torn by a crash, which ends the
// process. An open that finds one as it was left skips checking its last
// record (which reads it all: a large base is a copy of the database).
class KnownWhole {
 public:
  using Key = std::tuple<dev_t, ino_t, uint64_t>;  // device, inode, size
  static Key key(const struct stat& st) { return {st.st_dev, st.st_ino, static_cast<uint64_t>(st.st_size)}; }
  bool has(const Key& k) {
    std::lock_guard lock(mu_);
    return keys_.count(k) > 0;
  }
  void add(const Key& k) {
    std::lock_guard lock(mu_);
    if (keys_.size() >= kMax) keys_.clear();  // a bound; forgetting costs a check
    keys_.insert(k);
  }

 private:
  static constexpr size_t kMax = 1 << 16;
  std::mutex mu_;
  std::set<Key> keys_;
};
KnownWhole known_whole;

// A record: header, payload, trailer; numbers little-endian, so that a
// history copied to another machine reads the same.
//   header  u32 'DOH1' | u8 kind | 3 zero bytes | u64 seq | i64 time_ms |
//           u32 page_size | u32 frame count | u64 payload bytes
//   payload base: the database's bytes; commit: per frame u32 page,
//           u32 commit_pages, then page_size bytes; changes: per frame u32
//           page, u32 commit_pages, u32 bytes of runs, then the runs, each
//           a varint of unchanged bytes skipped (from the previous run's
//           end), a varint length and that many bytes of the page
//   trailer u64 checksum of header and payload | u32 record bytes | u32 'DOHE'
// The checksum is word_sum in 'DOH3' and 'DOH2' records and FNV-1a in the
// 'DOH1' records of the first version, which are still read. 'DOH3' records
// are numbered as ObjectStore numbers commits now (every commit, each
// written once it is durable); the earlier ones are legacy (Entry::legacy).
constexpr uint32_t kMagic = 0x33484f44;     // "DOH3"
constexpr uint32_t kMagicV2 = 0x32484f44;   // "DOH2"
constexpr uint32_t kMagicV1 = 0x31484f44;   // "DOH1"
constexpr uint32_t kEndMagic = 0x45484f44;  // "DOHE"
constexpr size_t kHeader = 40, kTrailer = 16;

void put32(std::string& out, uint32_t v) {
  char b[4];
  for (int i = 0; i < 4; ++i) b[i] = static_cast<char>((v >> (8 * i)) & 0xff);
  out.append(b, 4);
}
void put64(std::string& out, uint64_t v) {
  char b[8];
  for (int i = 0; i < 8; ++i) b[i] = static_cast<char>((v >> (8 * i)) & 0xff);
  out.append(b, 8);
}
uint32_t get32(const char* p) {
  uint32_t v = 0;
  for (int i = 3; i >= 0; --i) v = (v << 8) | static_cast<uint8_t>(p[i]);
  return v;
}
uint64_t get64(const char* p) {
  uint64_t v = 0;
  for (int i = 7; i >= 0; --i) v = (v << 8) | static_cast<uint8_t>(p[i]);
  return v;
}

uint64_t fnv1a(uint64_t h, std::string_view bytes) {
  for (char c : bytes) {
    h ^= static_cast<uint8_t>(c);
    h *= 0x100000001b3ull;
  }
  return h;
}
constexpr uint64_t kFnvStart = 0xcbf29ce484222325ull;

// Eight bytes at a time (little-endian words, so the same on any machine),
// each mixed in by a multiply and a shift: several times cheaper than FNV-1a's
// multiply per byte, and as good at catching torn or stray bytes.
// In pieces: sum_start(the whole length), sum_words for each piece (all but
// the last a multiple of 8 bytes long), sum_end.
uint64_t sum_start(uint64_t total_bytes) { return 0x9e3779b97f4a7c15ull ^ total_bytes; }
uint64_t sum_words(uint64_t h, std::string_view bytes) {
  size_t i = 0;
  for (; i + 8 <= bytes.size(); i += 8) {
    uint64_t w;
    std::memcpy(&w, bytes.data() + i, 8);
    h = (h ^ le64toh(w)) * 0xff51afd7ed558ccdull;
    h ^= h >> 32;
  }
  for (; i < bytes.size(); ++i) h = (h ^ static_cast<uint8_t>(bytes[i])) * 0x100000001b3ull;
  return h;
}
uint64_t sum_end(uint64_t h) { return h ^ (h >> 29); }
uint64_t word_sum(std::string_view bytes) { return sum_end(sum_words(sum_start(bytes.size()), bytes)); }

uint64_t record_sum(uint32_t magic, std::string_view bytes) {
  return magic == kMagicV1 ? fnv1a(kFnvStart, bytes) : word_sum(bytes);
}

Status read_at(int fd, char* out, size_t n, uint64_t at, const std::string& path) {
  size_t done = 0;
  while (done < n) {
    ssize_t r = ::pread(fd, out + done, n - done, static_cast<off_t>(at + done));
    if (r < 0 && errno == EINTR) continue;
    if (r < 0) return Status(Code::kInternal, "reading " + path + ": " + std::strerror(errno));
    if (r == 0) return Status(Code::kInternal, "reading " + path + ": shorter than its records say");
    done += static_cast<size_t>(r);
  }
  return Status::ok();
}

Status write_at(int fd, std::string_view bytes, uint64_t at, const std::string& path) {
  size_t done = 0;
  while (done < bytes.size()) {
    ssize_t w = ::pwrite(fd, bytes.data() + done, bytes.size() - done, static_cast<off_t>(at + done));
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) {
      return Status(errno == ENOSPC ? Code::kStorageFull : Code::kInternal,
                    "writing " + path + ": " + std::strerror(errno));
    }
    done += static_cast<size_t>(w);
  }
  return Status::ok();
}

// Goes through `bytes` bytes a piece at a time (1 MiB, a multiple of 8 as
// sum_words asks of all but the last piece): read(into, n, offset) fills a
// piece, then use(piece, offset). For payloads too large to hold whole.
template <class Read, class Use>
Status in_pieces(uint64_t bytes, Read&& read, Use&& use) {
  constexpr size_t kPiece = 1 << 20;
  std::string piece;
  for (uint64_t done = 0; done < bytes; done += piece.size()) {
    piece.resize(static_cast<size_t>(std::min<uint64_t>(kPiece, bytes - done)));
    if (Status st = read(piece.data(), piece.size(), done); !st) return st;
    if (Status st = use(std::string_view(piece), done); !st) return st;
  }
  return Status::ok();
}

// Reads the first `size` bytes of a file through a window, so that a scan
// of record headers and trailers (about a kilobyte apart for a small commit)
// makes a few large reads instead of two small ones a record.
class WindowReader {
 public:
  static constexpr size_t kScan = 1 << 20;  // for a scan of many records
  static constexpr size_t kFew = 4096;      // for one or two
  WindowReader(int fd, uint64_t size, size_t window) : fd_(fd), size_(size), window_(window) {}
  // n bytes at `at` (n <= the window, at + n <= size), or nullptr if they do
  // not read. When they are outside the window it moves to begin at them,
  // or with `backward` to end at them (a scan from the end).
  const char* get(uint64_t at, size_t n, bool backward = false) {
    if (at < start_ || at + n > start_ + buf_.size()) {
      uint64_t start = backward ? (at + n > window_ ? at + n - window_ : 0) : at;
      auto len = static_cast<size_t>(std::min<uint64_t>(window_, size_ - start));
      buf_.resize(len);
      if (!read_at(fd_, buf_.data(), len, start, "")) {
        buf_.clear();
        return nullptr;
      }
      start_ = start;
    }
    return buf_.data() + (at - start_);
  }

 private:
  int fd_;
  uint64_t size_;
  size_t window_;
  uint64_t start_ = 0;
  std::string buf_;
};

bool known_magic(uint32_t magic) { return magic == kMagic || magic == kMagicV2 || magic == kMagicV1; }

// The record whose header is at `at`, if its header and trailer hold
// together and it ends by `limit`. Its payload is not read.
std::optional<HistoryFile::Entry> record_at(WindowReader& r, uint64_t at, uint64_t limit, bool backward = false) {
  if (at + kHeader + kTrailer > limit) return std::nullopt;
  const char* header = r.get(at, kHeader, backward);
  if (header == nullptr) return std::nullopt;
  uint32_t magic = get32(header);
  uint64_t payload = get64(header + 32);
  auto kind = static_cast<uint8_t>(header[4]);
  if (!known_magic(magic) || kind > 2 || payload > limit - at - kHeader - kTrailer) return std::nullopt;
  HistoryFile::Entry e{static_cast<HistoryFile::Kind>(kind), get64(header + 8), static_cast<int64_t>(get64(header + 16)),
                       at, kHeader + payload + kTrailer, magic != kMagic};
  const char* trailer = r.get(at + kHeader + payload, kTrailer, backward);
  if (trailer == nullptr || get32(trailer + 8) != e.bytes || get32(trailer + 12) != kEndMagic) return std::nullopt;
  return e;
}

// The record that ends at `end` (found by its trailer), if it begins at or
// after `floor`.
std::optional<HistoryFile::Entry> record_ending_at(WindowReader& r, uint64_t end, uint64_t floor) {
  if (end < floor + kHeader + kTrailer) return std::nullopt;
  const char* trailer = r.get(end - kTrailer, kTrailer, /*backward=*/true);
  if (trailer == nullptr) return std::nullopt;
  uint32_t bytes = get32(trailer + 8);
  if (get32(trailer + 12) != kEndMagic || bytes < kHeader + kTrailer || bytes > end - floor) return std::nullopt;
  auto e = record_at(r, end - bytes, end, /*backward=*/true);
  if (!e || e->offset + e->bytes != end) return std::nullopt;
  return e;
}

// The records from `at` on, in order, as far as they hold together (up to
// `limit`); returns where they stop.
uint64_t scan_forward(WindowReader& r, uint64_t at, uint64_t limit, std::vector<HistoryFile::Entry>& out) {
  while (auto e = record_at(r, at, limit)) {
    out.push_back(*e);
    at += e->bytes;
  }
  return at;
}

void put_varint(std::string& out, uint64_t v) {
  for (; v >= 0x80; v >>= 7) out.push_back(static_cast<char>(0x80 | (v & 0x7f)));
  out.push_back(static_cast<char>(v));
}
bool get_varint(std::string_view in, size_t& at, uint64_t& v) {
  v = 0;
  for (int shift = 0; shift < 64 && at < in.size(); shift += 7) {
    auto b = static_cast<uint8_t>(in[at++]);
    v |= uint64_t{b & 0x7fu} << shift;
    if (b < 0x80) return true;
  }
  return false;
}

// The runs (see the record format) that make `before` into `now`, two pages
// of one size. Runs fewer than kJoin unchanged bytes apart are one run: a
// run's own cost is two or three bytes.
void put_changes(std::string& out, std::string_view before, std::string_view now) {
  constexpr size_t kJoin = 4;
  const size_t n = now.size();
  size_t i = 0, done = 0;
  auto word = [](const char* p) {
    uint64_t w;
    std::memcpy(&w, p, 8);
    return w;
  };
  while (true) {
    // Most of a page is as it was: 64 bytes a step, then 8, then 1.
    for (; i + 64 <= n; i += 64) {
      uint64_t differ = 0;
      for (size_t k = 0; k < 64; k += 8) differ |= word(before.data() + i + k) ^ word(now.data() + i + k);
      if (differ != 0) break;
    }
    while (i + 8 <= n && word(before.data() + i) == word(now.data() + i)) i += 8;
    while (i < n && before[i] == now[i]) ++i;
    if (i == n) return;
    size_t end = i + 1;
    for (size_t j = end; j < n && j - end < kJoin; ++j) {
      if (before[j] != now[j]) end = j + 1;
    }
    put_varint(out, i - done);
    put_varint(out, end - i);
    out.append(now.substr(i, end - i));
    done = i = end;
  }
}

// A database being rebuilt, held in memory.
class MemoryDb {
 public:
  explicit MemoryDb(std::string& bytes) : bytes_(bytes) {}
  uint64_t size() const { return bytes_.size(); }
  Status resize(uint64_t n) {
    bytes_.resize(static_cast<size_t>(n));
    return Status::ok();
  }
  Status write(uint64_t at, const char* p, size_t n) {
    bytes_.replace(static_cast<size_t>(at), n, p, n);
    return Status::ok();
  }

 private:
  std::string& bytes_;
};

// A database being rebuilt in a file (written, not synced): only a record
// at a time is in memory.
class FileDb {
 public:
  FileDb(int fd, std::string path) : fd_(fd), path_(std::move(path)) {}
  uint64_t size() const { return size_; }
  Status resize(uint64_t n) {
    if (::ftruncate(fd_, static_cast<off_t>(n)) != 0) {
      return Status(errno == ENOSPC ? Code::kStorageFull : Code::kInternal,
                    "cannot size " + path_ + ": " + std::strerror(errno));
    }
    size_ = n;
    return Status::ok();
  }
  Status write(uint64_t at, const char* p, size_t n) { return write_at(fd_, std::string_view(p, n), at, path_); }

 private:
  int fd_;
  std::string path_;
  uint64_t size_ = 0;
};

// Applies one commit's frames, whole pages (kCommit) or changes
// (kChanges), to a database being rebuilt. A database grows by the pages a
// commit writes (and the one page SQLite never writes, at 1 GiB), so a frame
// past that is a damaged (or made-up) record, refused before it can ask for
// memory or disk.
template <class Db>
Status apply(Db& db, HistoryFile::Kind kind, uint32_t page_size, uint32_t count, std::string_view payload) {
  if (page_size < 512 || page_size > 65536 || (page_size & (page_size - 1)) != 0) {
    return Status(Code::kInternal, "history: a commit record with a page size of " + std::to_string(page_size));
  }
  const Status malformed(Code::kInternal, "history: a malformed commit record");
  const bool changes = kind == HistoryFile::Kind::kChanges;
  const size_t frame_header = changes ? 12 : 8;
  size_t at = 0;
  const uint64_t most = db.size() + (uint64_t{count} + 1) * page_size;
  for (uint32_t i = 0; i < count; ++i) {
    if (payload.size() - at < frame_header) return malformed;
    uint32_t page = get32(payload.data() + at), commit_pages = get32(payload.data() + at + 4);
    size_t bytes = changes ? get32(payload.data() + at + 8) : page_size;
    at += frame_header;
    if (payload.size() - at < bytes) return malformed;
    uint64_t offset = uint64_t{page - 1} * page_size;
    if (page == 0 || offset + page_size > most || uint64_t{commit_pages} * page_size > most) {
      return Status(Code::kInternal, "history: a commit record writes past its database");
    }
    if (db.size() < offset + page_size) {
      if (Status st = db.resize(offset + page_size); !st) return st;
    }
    if (!changes) {
      if (Status st = db.write(offset, payload.data() + at, page_size); !st) return st;
    } else {
      std::string_view runs = payload.substr(at, bytes);
      size_t r = 0, in_page = 0;
      while (r < runs.size()) {
        uint64_t skip = 0, len = 0;
        if (!get_varint(runs, r, skip) || !get_varint(runs, r, len) || skip > page_size - in_page ||
            len > page_size - in_page - skip || len > runs.size() - r) {
          return malformed;
        }
        in_page += skip;
        if (Status st = db.write(offset + in_page, runs.data() + r, len); !st) return st;
        in_page += len;
        r += len;
      }
    }
    at += bytes;
    if (commit_pages > 0) {
      if (Status st = db.resize(uint64_t{commit_pages} * page_size); !st) return st;
    }
  }
  if (at != payload.size()) return malformed;
  return Status::ok();
}

}  // namespace

HistoryFile::~HistoryFile() {
  // Records still held are dropped: the WAL has their commits (write_out).
  if (fd_ < 0) return;
  // What this process wrote to it is whole (a failed write is cut back).
  struct stat st;
  if (::fstat(fd_, &st) == 0 && static_cast<uint64_t>(st.st_size) == written_) known_whole.add(KnownWhole::key(st));
  ::close(fd_);
}

Status HistoryFile::write_out(uint64_t durable, size_t at_least) {
  size_t marks = 0;
  while (marks < held_marks_.size() && held_marks_[marks].gate <= durable) ++marks;
  if (marks == 0 || held_marks_[marks - 1].end - written_ < at_least) return Status::ok();
  auto bytes = static_cast<size_t>(held_marks_[marks - 1].end - written_);
  if (Status st = write_at(fd_, std::string_view(held_).substr(0, bytes), written_, path_); !st) {
    (void)::ftruncate(fd_, static_cast<off_t>(written_));  // kept in memory, written again next time
    return st;
  }
  written_ += bytes;
  held_.erase(0, bytes);
  held_marks_.erase(held_marks_.begin(), held_marks_.begin() + static_cast<std::ptrdiff_t>(marks));
  if (held_.empty() && held_.capacity() > 4 * kHoldLimit) held_.shrink_to_fit();
  return Status::ok();
}

Status HistoryFile::read_range(char* out, size_t n, uint64_t at) const {
  size_t from_file = at < written_ ? static_cast<size_t>(std::min<uint64_t>(n, written_ - at)) : 0;
  if (from_file > 0) {
    if (Status st = read_at(fd_, out, from_file, at, path_); !st) return st;
  }
  if (from_file == n) return Status::ok();
  uint64_t in_held = at + from_file - written_;
  if (in_held + (n - from_file) > held_.size()) {
    return Status(Code::kInternal, "reading " + path_ + ": past its last record");
  }
  std::memcpy(out + from_file, held_.data() + in_held, n - from_file);
  return Status::ok();
}

Status HistoryFile::open(const std::string& path) {
  path_ = path;
  fd_ = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
  if (fd_ < 0) return Status(Code::kInternal, "cannot open " + path + ": " + std::strerror(errno));
  struct stat st;
  if (::fstat(fd_, &st) != 0) return Status(Code::kInternal, "cannot stat " + path);
  uint64_t size = static_cast<uint64_t>(st.st_size);
  entries_.clear();
  held_.clear();
  held_marks_.clear();
  forget_pages();
  cut_seq_ = 0;
  end_ = written_ = size;
  forget_since_base();
  indexed_from_ = 0;
  // The last record, found from the end and checked whole, is all an open
  // needs: the records before it are read when asked for (index_all), so an
  // object with a long history opens as fast as one with a short one.
  WindowReader r(fd_, size, WindowReader::kFew);
  if (auto last = record_ending_at(r, size, 0); last && (known_whole.has(KnownWhole::key(st)) || intact(*last))) {
    entries_.push_back(*last);
    indexed_from_ = last->offset;
    return Status::ok();
  }
  return scan_and_cut();
}

Status HistoryFile::scan_and_cut() {
  // From the start, as far as the records hold together; the last is checked
  // whole (a power cut may have kept its frame and lost pages inside it), and
  // what follows is cut off: a record torn by a power cut was never synced.
  uint64_t size = written_;
  WindowReader r(fd_, size, WindowReader::kScan);
  entries_.clear();
  indexed_from_ = 0;
  forget_pages();
  uint64_t at = scan_forward(r, 0, size, entries_);
  if (!entries_.empty() && !intact(entries_.back())) {
    at = entries_.back().offset;
    entries_.pop_back();
  }
  if (at < size) {
    // The number of the record cut, when its header reads.
    char header[kHeader];
    if (at + kHeader <= size && read_at(fd_, header, kHeader, at, path_) && known_magic(get32(header))) {
      cut_seq_ = get64(header + 8);
    }
    log_warn(path_ + ": " + std::to_string(size - at) +
             " bytes of a record that never reached the disk whole are cut off");
    if (::ftruncate(fd_, static_cast<off_t>(at)) != 0) {
      return Status(Code::kInternal, "cannot cut " + path_ + ": " + std::strerror(errno));
    }
  }
  end_ = written_ = at;
  return Status::ok();
}

void HistoryFile::index_all() {
  if (indexed_from_ == 0) return;
  WindowReader r(fd_, indexed_from_, WindowReader::kScan);
  std::vector<Entry> before;
  uint64_t stop = scan_forward(r, 0, indexed_from_, before);
  if (stop != indexed_from_) {
    // Damage inside the file (a power cut damages only its end, which open
    // checks): the records after it that still hold together are found back
    // from the ones known. The commits in between are lost to the history,
    // and state_at refuses a state that would need them.
    std::vector<Entry> after;
    uint64_t at = indexed_from_;
    while (auto e = record_ending_at(r, at, stop)) {
      after.push_back(*e);
      at = e->offset;
    }
    log_error(path_ + ": bytes " + std::to_string(stop) + " to " + std::to_string(at) +
              " of the history do not read as records; the commits in them are left out");
    before.insert(before.end(), after.rbegin(), after.rend());
    needs_base_ = true;
  }
  entries_.insert(entries_.begin(), before.begin(), before.end());
  indexed_from_ = 0;
}

Status HistoryFile::cut_damaged_from(uint64_t seq) {
  if (!held_.empty()) return Status(Code::kUnavailable, "history: records are held");
  // Back from the records known to the first of commit `seq`.
  WindowReader r(fd_, written_, WindowReader::kScan);
  std::vector<Entry> found;
  while (indexed_from_ > 0 && (found.empty() ? entries_.front().seq : found.back().seq) >= seq) {
    auto e = record_ending_at(r, indexed_from_, 0);
    if (!e) {
      // A damaged record: the file is read from the start, and cut there.
      if (Status st = scan_and_cut(); !st) return st;
      found.clear();
      break;
    }
    found.push_back(*e);
    indexed_from_ = e->offset;
  }
  entries_.insert(entries_.begin(), found.rbegin(), found.rend());
  for (const Entry& e : entries_) {
    if (e.seq >= seq && !intact(e)) {
      log_warn(path_ + ": the record of commit " + std::to_string(e.seq) + " is damaged; it is cut off with those after it");
      return truncate_after(e.seq - 1);
    }
  }
  return Status::ok();
}

std::optional<int64_t> HistoryFile::second_time() {
  if (indexed_from_ > 0) {
    // Its header, without reading the index.
    WindowReader r(fd_, written_, WindowReader::kFew);
    auto first = record_at(r, 0, written_);
    auto second = first ? record_at(r, first->bytes, written_) : std::nullopt;
    if (second) return second->time_ms;
    index_all();
  }
  if (entries_.size() < 2) return std::nullopt;
  return entries_[1].time_ms;
}

Status HistoryFile::append(Kind kind, uint64_t seq, int64_t time_ms, uint32_t page_size, uint32_t count,
                           uint64_t payload_bytes, const std::function<void(std::string&)>& payload,
                           const Outside* outside, uint64_t gate) {
  if (!entries_.empty() && seq <= entries_.back().seq) {
    return Status(Code::kInternal, "history: commit " + std::to_string(seq) + " after " +
                                       std::to_string(entries_.back().seq));
  }
  if (outside && !held_.empty()) {
    return Status(Code::kUnavailable, "history: records are held");
  }
  // A commit's record is built where it is held (see write_out).
  std::string own;
  std::string& rec = outside ? own : held_;
  const size_t start = rec.size();
  rec.reserve(start + kHeader + (outside ? 0 : payload_bytes) + kTrailer);
  put32(rec, kMagic);
  rec.push_back(static_cast<char>(kind));
  rec.append(3, '\0');
  put64(rec, seq);
  put64(rec, static_cast<uint64_t>(time_ms));
  put32(rec, page_size);
  put32(rec, count);
  put64(rec, payload_bytes);
  const uint64_t total = kHeader + payload_bytes;
  if (!outside) {
    payload(rec);
    if (rec.size() - start != total) {
      rec.resize(start);
      return Status(Code::kInternal, "history: a record of the wrong size");
    }
    uint64_t sum = word_sum(std::string_view(rec).substr(start));
    put64(rec, sum);
    put32(rec, static_cast<uint32_t>(total + kTrailer));
    put32(rec, kEndMagic);
  }
  entries_.push_back(Entry{kind, seq, time_ms, end_, total + kTrailer, false});
  if (kind == Kind::kBase) {
    needs_base_ = false;
    forget_pages();  // bounded by what is written after each base
  }
  end_ += total + kTrailer;
  const uint64_t since_base = since_base_;
  const bool base_since_open = base_since_open_;
  since_base_ = kind == Kind::kBase ? 0 : since_base_ + total + kTrailer;
  base_since_open_ = base_since_open_ || kind == Kind::kBase;
  if (!outside) {
    held_marks_.push_back(HeldMark{end_, gate});
    return Status::ok();
  }
  // A large payload is written from where it is: header, payload (summed as
  // it goes), trailer.
  const uint64_t at = entries_.back().offset;
  uint64_t sum = sum_words(sum_start(total), rec);
  Status st = write_at(fd_, rec, at, path_);
  if (st && outside->fd < 0) {
    sum = sum_words(sum, outside->bytes);
    st = write_at(fd_, outside->bytes, at + kHeader, path_);
  } else if (st) {
    st = in_pieces(
        payload_bytes,
        [&](char* into, size_t n, uint64_t done) { return read_at(outside->fd, into, n, done, "a base's file"); },
        [&](std::string_view piece, uint64_t done) {
          sum = sum_words(sum, piece);
          return write_at(fd_, piece, at + kHeader + done, path_);
        });
  }
  if (st) {
    std::string trailer;
    put64(trailer, sum_end(sum));
    put32(trailer, static_cast<uint32_t>(total + kTrailer));
    put32(trailer, kEndMagic);
    st = write_at(fd_, trailer, at + total, path_);
  }
  if (!st) {
    (void)::ftruncate(fd_, static_cast<off_t>(at));
    entries_.pop_back();
    end_ = at;
    since_base_ = since_base;
    base_since_open_ = base_since_open;
    return st;
  }
  written_ = end_;
  return Status::ok();
}

Status HistoryFile::append_base(uint64_t seq, int64_t time_ms, const std::string& database) {
  if (database.empty()) return Status(Code::kInternal, "history: an empty base");
  const Outside from{database, -1};
  return append(Kind::kBase, seq, time_ms, 0, 0, database.size(), nullptr, &from, 0);
}

Status HistoryFile::append_base_from(uint64_t seq, int64_t time_ms, const std::string& path) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return Status(Code::kInternal, "cannot open " + path + ": " + std::strerror(errno));
  struct stat st;
  Status out = ::fstat(fd, &st) == 0 ? Status::ok() : Status(Code::kInternal, "cannot stat " + path);
  if (out && st.st_size == 0) out = Status(Code::kInternal, "history: an empty base");
  if (out) {
    const Outside from{{}, fd};
    out = append(Kind::kBase, seq, time_ms, 0, 0, static_cast<uint64_t>(st.st_size), nullptr, &from, 0);
  }
  ::close(fd);
  return out;
}

Status HistoryFile::hold_base(uint64_t seq, int64_t time_ms, const std::string& database, uint64_t gate) {
  if (database.empty()) return Status(Code::kInternal, "history: an empty base");
  return append(Kind::kBase, seq, time_ms, 0, 0, database.size(),
                [&](std::string& rec) { rec += database; }, nullptr, gate);
}

namespace {
Status check_frames(int page_size, const std::vector<WalFrame>& frames) {
  for (const WalFrame& f : frames) {
    if (f.data.size() != static_cast<size_t>(page_size) || f.page == 0) {
      return Status(Code::kInternal, "history: a frame of the wrong size");
    }
  }
  return Status::ok();
}
}  // namespace

Status HistoryFile::append_commit(uint64_t seq, int64_t time_ms, int page_size,
                                  const std::vector<WalFrame>& frames, uint64_t gate) {
  if (Status st = check_frames(page_size, frames); !st) return st;
  forget_pages();  // the records no longer pass through append_changes
  return append(Kind::kCommit, seq, time_ms, static_cast<uint32_t>(page_size), static_cast<uint32_t>(frames.size()),
                frames.size() * (8 + static_cast<uint64_t>(page_size)), [&](std::string& rec) {
                  for (const WalFrame& f : frames) {
                    put32(rec, f.page);
                    put32(rec, f.commit_pages);
                    rec += f.data;
                  }
                },
                nullptr, gate);
}

Status HistoryFile::append_changes(uint64_t seq, int64_t time_ms, int page_size,
                                   const std::vector<WalFrame>& frames, uint64_t gate) {
  if (Status st = check_frames(page_size, frames); !st) return st;
  const auto size = static_cast<size_t>(page_size);
  if (!pages_.empty() && pages_.begin()->second.size() != size) forget_pages();
  changes_.clear();
  for (const WalFrame& f : frames) {
    put32(changes_, f.page);
    put32(changes_, f.commit_pages);
    const size_t runs_at = changes_.size();
    put32(changes_, 0);
    if (auto it = pages_.find(f.page); it != pages_.end()) {
      put_changes(changes_, it->second, f.data);
      it->second.assign(f.data);
    } else {
      // Not known: the whole page, one run; remembered while there is room.
      put_varint(changes_, 0);
      put_varint(changes_, size);
      changes_ += f.data;
      if (pages_bytes_ + size <= kChangedPagesLimit) {
        pages_.emplace(f.page, f.data);
        pages_bytes_ += size;
      }
    }
    const auto runs = static_cast<uint32_t>(changes_.size() - runs_at - 4);
    for (int i = 0; i < 4; ++i) changes_[runs_at + i] = static_cast<char>((runs >> (8 * i)) & 0xff);
    if (f.commit_pages > 0) {
      // Pages past the database's end are gone: one written again starts anew.
      for (auto it = pages_.upper_bound(f.commit_pages); it != pages_.end();) {
        pages_bytes_ -= it->second.size();
        it = pages_.erase(it);
      }
    }
  }
  Status st = append(Kind::kChanges, seq, time_ms, static_cast<uint32_t>(page_size),
                     static_cast<uint32_t>(frames.size()), changes_.size(),
                     [&](std::string& rec) { rec += changes_; }, nullptr, gate);
  if (!st) forget_pages();  // they hold a commit the records lack
  return st;
}

void HistoryFile::forget_pages() {
  pages_.clear();
  pages_bytes_ = 0;
}

Result<std::string> HistoryFile::read_payload(const Entry& e, uint32_t* page_size, uint32_t* count) const {
  std::string rec(e.bytes, '\0');
  if (Status st = read_range(rec.data(), rec.size(), e.offset); !st) return st;
  uint64_t sum = get64(rec.data() + rec.size() - kTrailer);
  if (record_sum(get32(rec.data()), std::string_view(rec).substr(0, rec.size() - kTrailer)) != sum) {
    return Status(Code::kInternal, path_ + ": the record of commit " + std::to_string(e.seq) +
                                       " does not match its checksum");
  }
  *page_size = get32(rec.data() + 24);
  *count = get32(rec.data() + 28);
  uint64_t payload = get64(rec.data() + 32);
  if (e.kind == Kind::kCommit && payload != static_cast<uint64_t>(*count) * (8 + *page_size)) {
    return Status(Code::kInternal, path_ + ": the record of commit " + std::to_string(e.seq) + " is malformed");
  }
  return rec.substr(kHeader, payload);
}

bool HistoryFile::intact(const Entry& e) const {
  uint32_t page_size = 0, count = 0;
  return read_payload(e, &page_size, &count).is_ok();
}

Status HistoryFile::truncate_after(uint64_t seq) {
  forget_pages();
  if (indexed_from_ > 0 && entries_.front().seq > seq) index_all();
  while (!entries_.empty() && entries_.back().seq > seq) entries_.pop_back();
  // After the last record kept (bytes that did not read as records before it go too).
  end_ = entries_.empty() ? 0 : entries_.back().offset + entries_.back().bytes;
  while (!held_marks_.empty() && held_marks_.back().end > end_) held_marks_.pop_back();
  if (end_ >= written_) {
    held_.resize(static_cast<size_t>(end_ - written_));
    return Status::ok();
  }
  held_.clear();
  written_ = end_;
  forget_since_base();
  if (::ftruncate(fd_, static_cast<off_t>(end_)) != 0) {
    return Status(Code::kInternal, "cannot cut " + path_ + ": " + std::strerror(errno));
  }
  return Status::ok();
}

void HistoryFile::forget_since_base() {
  since_base_ = 0;
  base_since_open_ = false;
  walked_ = false;
  before_open_ = 0;
  file_at_open_ = written_;
}

uint64_t HistoryFile::commit_bytes_since_base(uint64_t look_back) {
  if (!base_since_open_ && !walked_) {
    // The commits after the last base among the records the file held
    // when this count began, walked back from their end.
    walked_ = true;
    WindowReader r(fd_, file_at_open_, WindowReader::kScan);
    for (uint64_t end = file_at_open_; before_open_ < look_back;) {
      auto e = record_ending_at(r, end, 0);
      if (!e || e->kind == Kind::kBase) break;
      before_open_ += e->bytes;
      end = e->offset;
    }
  }
  return since_base_ + (base_since_open_ ? 0 : before_open_);
}

Result<std::pair<size_t, size_t>> HistoryFile::span_of(uint64_t seq) {
  index_all();
  // The last base at or before seq, and seq itself among the records.
  size_t base = entries_.size(), last = entries_.size();
  for (size_t i = 0; i < entries_.size() && entries_[i].seq <= seq; ++i) {
    if (entries_[i].kind == Kind::kBase) base = i;
    last = i;
  }
  if (base == entries_.size() || last == entries_.size() || entries_[last].seq != seq) {
    return Status(Code::kNotFound, "commit " + std::to_string(seq) + " is not in the history");
  }
  // Each commit follows the one before it: a missing one (records lost to
  // damage, index_all) leaves the states after it unknown until a base.
  for (size_t i = base + 1; i <= last; ++i) {
    if (entries_[i].seq != entries_[i - 1].seq + 1) {
      return Status(Code::kNotFound, "commit " + std::to_string(seq) + " cannot be rebuilt: the history lacks commit " +
                                         std::to_string(entries_[i - 1].seq + 1));
    }
  }
  return std::pair<size_t, size_t>(base, last);
}

Result<std::string> HistoryFile::state_at(uint64_t seq) {
  auto span = span_of(seq);
  if (!span) return span.status();
  const auto [base, last] = *span;
  // Room for the largest the database can get on the way (each page a
  // commit writes adds at most a page), so that it is never copied to grow:
  // address space only, until the pages are written.
  uint64_t most = entries_[base].bytes;
  for (size_t i = base + 1; i <= last; ++i) most += entries_[i].bytes;
  std::string bytes;
  try {
    bytes.reserve(static_cast<size_t>(std::min<uint64_t>(most, uint64_t{1} << 36)));
  } catch (const std::bad_alloc&) {
    // It grows as it must instead.
  }
  MemoryDb db(bytes);
  for (size_t i = base; i <= last; ++i) {
    uint32_t page_size = 0, count = 0;
    auto payload = read_payload(entries_[i], &page_size, &count);
    if (!payload) return payload.status();
    if (entries_[i].kind == Kind::kBase) {
      bytes.assign(*payload);  // into the room made above
    } else {
      if (Status st = apply(db, entries_[i].kind, page_size, count, *payload); !st) return st;
    }
  }
  return bytes;
}

Status HistoryFile::write_state(uint64_t seq, const std::string& path) {
  auto span = span_of(seq);
  if (!span) return span.status();
  const auto [base, last] = *span;
  int fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) return Status(Code::kInternal, "cannot create " + path + ": " + std::strerror(errno));
  FileDb db(fd, path);
  Status st = copy_base(entries_[base], fd, path);
  if (st) st = db.resize(entries_[base].bytes - kHeader - kTrailer);
  for (size_t i = base + 1; st && i <= last; ++i) {
    uint32_t page_size = 0, count = 0;
    auto payload = read_payload(entries_[i], &page_size, &count);
    st = payload ? apply(db, entries_[i].kind, page_size, count, *payload) : payload.status();
  }
  ::close(fd);
  return st;
}

Status HistoryFile::copy_base(const Entry& e, int out, const std::string& out_path) const {
  // Read and checked a piece at a time, as read_payload checks a record.
  const uint64_t payload = e.bytes - kHeader - kTrailer;
  char header[kHeader], trailer[kTrailer];
  if (Status st = read_range(header, kHeader, e.offset); !st) return st;
  if (Status st = read_range(trailer, kTrailer, e.offset + kHeader + payload); !st) return st;
  const uint32_t magic = get32(header);
  const uint64_t total = kHeader + payload;
  uint64_t fnv = fnv1a(kFnvStart, std::string_view(header, kHeader));
  uint64_t sum = sum_words(sum_start(total), std::string_view(header, kHeader));
  Status copied = in_pieces(
      payload, [&](char* into, size_t n, uint64_t done) { return read_range(into, n, e.offset + kHeader + done); },
      [&](std::string_view piece, uint64_t done) {
        if (magic == kMagicV1) {
          fnv = fnv1a(fnv, piece);
        } else {
          sum = sum_words(sum, piece);
        }
        return write_at(out, piece, done, out_path);
      });
  if (!copied) return copied;
  if ((magic == kMagicV1 ? fnv : sum_end(sum)) != get64(trailer)) {
    return Status(Code::kInternal, path_ + ": the record of commit " + std::to_string(e.seq) +
                                       " does not match its checksum");
  }
  return Status::ok();
}

Result<uint64_t> HistoryFile::seq_at_time(int64_t time_ms) {
  index_all();
  std::optional<uint64_t> found;
  for (const Entry& e : entries_) {
    if (e.time_ms > time_ms) break;
    found = e.seq;
  }
  if (!found) return Status(Code::kNotFound, "the history begins after that time");
  return *found;
}

Status HistoryFile::drop_before(uint64_t seq) {
  index_all();
  size_t first = 0;
  while (first < entries_.size() && entries_[first].seq < seq) ++first;
  if (first == 0) return Status::ok();
  if (first == entries_.size()) return Status(Code::kInvalidArgument, "history: nothing would be left");
  // A held record stays held (its commit may not be durable yet), so the
  // first one kept, which may become a base, must be in the file.
  if (entries_[first].offset >= written_) return Status(Code::kUnavailable, "history: records are held");
  HistoryFile next;
  std::string tmp = path_ + ".tmp";
  ::unlink(tmp.c_str());
  if (Status st = next.open(tmp); !st) return st;
  size_t copy_from = first;
  if (entries_[first].kind != Kind::kBase) {
    // The first kept commit becomes a base; the records after it apply to it.
    const Entry& kept = entries_[first];
    auto state = state_at(kept.seq);
    if (!state) return state.status();
    if (Status st = next.append_base(kept.seq, kept.time_ms, *state); !st) return st;
    ++copy_from;
  }
  size_t held_from = copy_from;
  while (held_from < entries_.size() && entries_[held_from].offset < written_) ++held_from;
  for (size_t i = copy_from; i < held_from; ++i) {
    std::string rec(entries_[i].bytes, '\0');
    if (Status st = read_at(fd_, rec.data(), rec.size(), entries_[i].offset, path_); !st) return st;
    if (Status st = write_at(next.fd_, rec, next.end_, tmp); !st) return st;
    next.entries_.push_back(
        Entry{entries_[i].kind, entries_[i].seq, entries_[i].time_ms, next.end_, rec.size(), entries_[i].legacy});
    next.end_ += rec.size();
  }
  if (::fsync(next.fd_) != 0) return Status(Code::kInternal, "cannot sync " + tmp + ": " + std::strerror(errno));
  if (::rename(tmp.c_str(), path_.c_str()) != 0) {
    return Status(Code::kInternal, "cannot rename " + tmp + ": " + std::strerror(errno));
  }
  if (Status st = sync_dir(path_.substr(0, path_.rfind('/'))); !st) return st;
  // The held records follow the copied ones, in memory still.
  const uint64_t shift = next.end_;
  for (size_t i = held_from; i < entries_.size(); ++i) {
    Entry e = entries_[i];
    e.offset = e.offset - written_ + shift;
    next.entries_.push_back(e);
  }
  for (HeldMark& m : held_marks_) m.end = m.end - written_ + shift;
  std::swap(fd_, next.fd_);
  entries_ = std::move(next.entries_);
  written_ = shift;
  end_ = written_ + held_.size();
  forget_since_base();
  return Status::ok();
}

Status HistoryFile::trim(std::optional<int64_t> cutoff_ms, uint64_t cap,
                         const std::function<uint64_t()>& database_bytes, uint64_t durable, bool* dropped) {
  *dropped = false;
  const bool over_cap = cap > 0 && size_bytes() > cap;
  if (!cutoff_ms && !over_cap) return Status::ok();
  // Most often no commit is that old: told without reading the whole index.
  auto second = second_time();
  if (!second || (!over_cap && *second > *cutoff_ms)) return Status::ok();
  index_all();
  const auto& e = entries_;
  size_t first = 0;  // the first record kept
  if (cutoff_ms) {
    while (first + 1 < e.size() && e[first + 1].time_ms <= *cutoff_ms) ++first;
  }
  if (over_cap) {
    // Down to 3/4 of the cap (so that it is not rewritten at every commit).
    uint64_t budget = cap / 4 * 3;
    size_t i = e.size() - 1;
    uint64_t kept = e[i].bytes + database_bytes();
    while (i > first && kept + e[i - 1].bytes <= budget) kept += e[--i].bytes;
    first = std::max(first, i);
  }
  if (first == 0) return Status::ok();
  // Held records are kept whole: the first kept is one in the file.
  (void)write_out(durable);
  while (first > 0 && e[first].offset >= written_) --first;
  if (first == 0) return Status::ok();
  if (Status st = drop_before(e[first].seq); !st) return st;
  *dropped = true;
  return Status::ok();
}

Result<std::string> HistoryFile::contents() const {
  std::string out(static_cast<size_t>(end_), '\0');
  if (Status st = read_range(out.data(), out.size(), 0); !st) return st;
  return out;
}

std::string HistoryFile::bookmark(uint64_t seq, int64_t time_ms) {
  char buf[48];
  std::snprintf(buf, sizeof buf, "%016" PRIx64 "-%012" PRIx64, seq, static_cast<uint64_t>(time_ms));
  return buf;
}

Result<uint64_t> HistoryFile::parse_bookmark(std::string_view b) {
  // As bookmark() spells it: 16 and 12 lowercase hex digits.
  auto seq = b.size() == 29 && b[16] == '-' ? from_hex_lower(b.substr(0, 16)) : std::nullopt;
  if (!seq || !from_hex_lower(b.substr(17))) {
    return Status(Code::kInvalidArgument, "not a bookmark: " + std::string(b.substr(0, 64)));
  }
  uint64_t v = 0;
  for (uint8_t byte : *seq) v = (v << 8) | byte;
  return v;
}

std::string HistoryFile::bookmark_of(uint64_t seq) {
  // Most often the last commit's: the records known are looked at first.
  if (indexed_from_ > 0 && entries_.front().seq > seq) index_all();
  for (auto it = entries_.rbegin(); it != entries_.rend(); ++it) {
    if (it->seq == seq) return bookmark(seq, it->time_ms);
  }
  return bookmark(seq, 0);
}

}  // namespace dobj::internal
