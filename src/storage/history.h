// An object's history: every commit's pages, kept in a file beside its
// database (<id>.sqlite-history), so that the database can be rebuilt as of
// any commit still in the file (a bookmark).
//
// The file is a sequence of records. A record is a base (the whole database
// as of one commit) or a commit: the pages one transaction wrote, as
// capture_wal_frames gives them, whole (kCommit) or as the bytes that
// changed in each (kChanges; see append_changes). The first record is a
// base; the state as of commit S is the last base at or before S with every
// commit after it up to S applied in order (apply_wal_frames' rule: each
// page at its place, the file cut to the commit's size).
//
// Each record carries its commit's sequence number (one more per commit,
// never reused: a restore is itself a new base with the next number) and the
// time it was made. It ends with a checksum and its own length, so the last
// record can be found and checked from the end of the file: a record torn by
// a power cut was never synced, so no answer depended on it, and it is cut
// off when the file is opened.
//
// Durability: the file is synced when a checkpoint lets the WAL start over
// (ObjectStore::start_checkpoint), not with each commit: until then the WAL
// holds every commit the file may lack, and a store that opens rebuilds them
// from it. So a commit's record may wait: it is held in memory until its
// commit is durable (so that the file never holds a commit a power cut took),
// and held records are written together, about kHoldLimit bytes at a time
// (write_out; the checkpoint writes them all before it syncs). Reads see the
// held records. Thread affinity: the owning store's.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "dobj/status.h"
#include "storage/vfs.h"

namespace dobj::internal {

class HistoryFile {
 public:
  // kChanges records are read since 2026-12 (a build before that stops
  // reading a history at the first one).
  enum class Kind : uint8_t { kBase = 0, kCommit = 1, kChanges = 2 };
  // Where a record is, without its pages.
  struct Entry {
    Kind kind;
    uint64_t seq;
    int64_t time_ms;
    uint64_t offset;  // of the record's header
    uint64_t bytes;   // the whole record
    bool legacy;      // written before every commit was numbered ('DOH1', 'DOH2')
  };

  HistoryFile() = default;
  ~HistoryFile();
  HistoryFile(const HistoryFile&) = delete;
  HistoryFile& operator=(const HistoryFile&) = delete;

  // Opens (creating) path and checks its last record; a torn last record
  // is cut off. Where the records before it are is read when first asked
  // for (entries(), state_at, ...): opening costs the same at any length.
  Status open(const std::string& path);
  bool is_open() const { return fd_ >= 0; }
  const std::string& path() const { return path_; }
  // Every record, in order.
  const std::vector<Entry>& entries() {
    index_all();
    return entries_;
  }
  const Entry* last() const { return entries_.empty() ? nullptr : &entries_.back(); }
  std::optional<uint64_t> last_seq() const {
    return entries_.empty() ? std::nullopt : std::optional<uint64_t>(entries_.back().seq);
  }
  // The time of the second record (before which retention could drop the
  // first), read without the whole index; nullopt: fewer than two.
  std::optional<int64_t> second_time();
  // Checks the records of commit `seq` on whole (they may not have reached
  // the disk whole, as after a crash), and cuts the file before the first
  // that is not. No records may be held.
  Status cut_damaged_from(uint64_t seq);
  // Records were found damaged inside the file: the next commit must be a
  // base, or no state after them could be rebuilt.
  bool needs_base() const { return needs_base_; }

  // A base written at once (kUnavailable while records are held).
  Status append_base(uint64_t seq, int64_t time_ms, const std::string& database);
  // Records held until write_out(durable) with durable >= gate (the group
  // commit number the commit's durability waits for).
  Status hold_base(uint64_t seq, int64_t time_ms, const std::string& database, uint64_t gate);
  // A commit with every page whole (kCommit), as the store wrote them until
  // 2026-12; still read. (Tests of that format.)
  Status append_commit(uint64_t seq, int64_t time_ms, int page_size, const std::vector<WalFrame>& frames,
                       uint64_t gate);
  // A commit, kept as what it changed (kChanges): a page the records since
  // the last base wrote (up to kChangedPagesLimit bytes of them are
  // remembered) is kept as the bytes that differ from its last record, any
  // other whole. So a commit that changes a few bytes of a page costs tens of bytes, not
  // the page. Right only while every change of the database goes through it
  // in order (the owning store's, or a backup's within one batch of ships);
  // when the database changes otherwise, forget_pages() first.
  Status append_changes(uint64_t seq, int64_t time_ms, int page_size, const std::vector<WalFrame>& frames,
                        uint64_t gate);
  void forget_pages();
  static constexpr size_t kChangedPagesLimit = 256 * 1024;
  // Drops every record after seq (commits the database never got).
  Status truncate_after(uint64_t seq);
  // Whether a record reads back whole (its checksum holds).
  bool intact(const Entry& e) const;
  // The database's bytes as of commit seq (kNotFound: not in the file).
  Result<std::string> state_at(uint64_t seq);
  // The same written to a file at path (made or emptied; not synced), with
  // a record at a time in memory: for a database of any size.
  Status write_state(uint64_t seq, const std::string& path);
  // A base written at once from the file at path (kUnavailable while records
  // are held), a piece at a time.
  Status append_base_from(uint64_t seq, int64_t time_ms, const std::string& path);
  // The last commit made at or before time_ms (kNotFound: none is that old).
  Result<uint64_t> seq_at_time(int64_t time_ms);
  // Drops the commits before `seq`: the first commit kept becomes a base
  // (its whole database) and the records after it stay. Rewrites the file
  // (atomically) under its name.
  Status drop_before(uint64_t seq);
  // Retention: drops the commits made before cutoff_ms (the last one at or
  // before it stays: it is the state at that time), and, past `cap` bytes
  // (0: no cap), the oldest until the file with the base its first kept
  // commit becomes (about database_bytes(), asked only then) fits 3/4 of
  // the cap. Held records whose gate is at most `durable` are written out
  // first; the others are never dropped. *dropped: the file was rewritten
  // (drop_before).
  Status trim(std::optional<int64_t> cutoff_ms, uint64_t cap, const std::function<uint64_t()>& database_bytes,
              uint64_t durable, bool* dropped);
  // Every record, the held ones included: what a copy of the file would hold.
  Result<std::string> contents() const;
  uint64_t size_bytes() const { return end_; }
  // Writes the held records whose gate is at most `durable` to the file
  // (not synced), in order, if they come to at least `at_least` bytes. On
  // failure they stay held, and the file ends where it did.
  Status write_out(uint64_t durable = UINT64_MAX, size_t at_least = 0);
  size_t held_bytes() const { return held_.size(); }
  // Bytes of commit records after the last base (periodic bases). The
  // records from before the open are walked back once, up to `look_back`
  // bytes of them (more: at least that many).
  uint64_t commit_bytes_since_base(uint64_t look_back);
  // Where the file's written part ends (the held records follow).
  uint64_t written_bytes() const { return written_; }
  // The number in the header of a record open() cut off (0: none, or not
  // readable).
  uint64_t cut_seq() const { return cut_seq_; }
  static constexpr size_t kHoldLimit = 64 * 1024;

  // Bookmarks: text that sorts as the commits do.
  static std::string bookmark(uint64_t seq, int64_t time_ms);
  static Result<uint64_t> parse_bookmark(std::string_view bookmark);
  std::string bookmark_of(uint64_t seq);

 private:
  // A base's payload written from where it is: bytes, or a file (fd >= 0).
  struct Outside {
    std::string_view bytes;
    int fd = -1;
  };
  // Writes one record; `payload` appends its payload_bytes to the record
  // being built (held), or the payload is `outside` (written at once).
  Status append(Kind kind, uint64_t seq, int64_t time_ms, uint32_t page_size, uint32_t count,
                uint64_t payload_bytes, const std::function<void(std::string&)>& payload,
                const Outside* outside, uint64_t gate);
  Result<std::string> read_payload(const Entry& e, uint32_t* page_size, uint32_t* count) const;
  // The indexes of the base a state of seq starts from and of seq's record.
  Result<std::pair<size_t, size_t>> span_of(uint64_t seq);
  // A base's payload into the file out, checked against its checksum.
  Status copy_base(const Entry& e, int out, const std::string& out_path) const;
  // Reads the file from the start, as far as its records hold together, and
  // cuts off what follows (open, when the last record does not check).
  Status scan_and_cut();
  // Reads where the records before the ones known are (indexed_from_ > 0).
  void index_all();
  // n bytes at `at`, from the file or the held records.
  Status read_range(char* out, size_t n, uint64_t at) const;

  std::string path_;
  int fd_ = -1;
  uint64_t end_ = 0;      // of the last record, held ones included
  uint64_t written_ = 0;  // of what is in the file; held_ follows it
  uint64_t cut_seq_ = 0;
  // commit_bytes_since_base(): of the records appended since the count
  // began (an open, a cut, a rewrite), and of those before it (walked).
  void forget_since_base();
  uint64_t since_base_ = 0;
  bool base_since_open_ = false;
  bool walked_ = false;
  uint64_t before_open_ = 0;
  uint64_t file_at_open_ = 0;
  std::string held_;
  struct HeldMark {
    uint64_t end;   // of a held record
    uint64_t gate;  // written once this group commit number is durable
  };
  std::vector<HeldMark> held_marks_;
  // The records known: every one from the record at indexed_from_ on (0:
  // all of them).
  std::vector<Entry> entries_;
  uint64_t indexed_from_ = 0;
  bool needs_base_ = false;
  // The pages as the records since the last base left them (append_changes).
  std::map<uint32_t, std::string> pages_;
  size_t pages_bytes_ = 0;
  std::string changes_;  // a record's payload, built here to be measured

};

}  // namespace dobj::internal
