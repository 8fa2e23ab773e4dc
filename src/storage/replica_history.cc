#include "storage/replica_history.h"

#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "base/fs.h"

namespace dobj::internal {

Result<HistoryFile*> ReplicaHistories::open(const std::string& database, const std::string& ns) {
  auto it = open_.find(database);
  if (it != open_.end()) return it->second.file.get();
  auto file = std::make_unique<HistoryFile>();
  if (Status st = file->open(database + "-history"); !st) return st;
  HistoryFile* out = file.get();
  open_[database] = Open{std::move(file), ns};
  return out;
}

Status ReplicaHistories::commit(const ReplicaRecord& r, const std::string& database,
                                const std::function<Status()>& apply) {
  if (r.history_seq == 0) {
    // The owner keeps no history (or not yet: its tables). The copy changes
    // without a record: the pages the file remembers are no longer its own.
    if (auto it = open_.find(database); it != open_.end()) it->second.file->forget_pages();
    return apply();
  }
  auto opened = open(database, r.ns);
  if (!opened) return opened.status();
  HistoryFile& history = **opened;
  const uint64_t seq = r.history_seq;
  auto last = history.last_seq();
  if (last && seq <= *last) {
    history.forget_pages();  // as above
    return apply();          // a ship sent again: the record is here
  }
  // The records before it are missing (a copy new to this node, or a
  // history turned on later): the copy as it is now, in sync with its owner
  // up to the commit before, is that commit's state. Without a copy yet,
  // or with records of it already, the state after this commit is the base.
  const bool follows = last && *last + 1 == seq && !history.needs_base();
  // The owner keeps it whole (a periodic base): so does the backup; and
  // the copy is no state the file lacks when its last record is the commit
  // before (a base must follow damage).
  bool base_after = r.history_base || (!follows && last && *last + 1 == seq);
  if (!follows && !base_after) {
    auto before = read_file(database);
    if (!before && before.status().code() != Code::kNotFound) return before.status();
    if (before && !before->empty()) {
      if (Status st = history.write_out(); !st) return st;
      if (Status st = history.append_base(seq - 1, r.history_time_ms, *before); !st) return st;
    } else {
      base_after = true;
    }
  }
  if (Status st = apply(); !st) return st;
  if (!base_after) {
    // Every commit of this copy in the batch comes through here, in order.
    return history.append_changes(seq, r.history_time_ms, static_cast<int>(r.page_size), r.frames, 0);
  }
  auto after = read_file(database);
  if (!after) return after.status();
  if (Status st = history.write_out(); !st) return st;
  return history.append_base(seq, r.history_time_ms, *after);
}

Status ReplicaHistories::replaced(const ReplicaRecord& r, const std::string& database) {
  std::string path = database + "-history";
  // With a whole history: in r, or assembled from parts and in place now.
  const bool whole = !r.history.empty() || r.history_base;
  if (r.history_seq == 0 || whole) open_.erase(database);  // the file is replaced
  if (r.history_seq == 0) {
    // The owner keeps none: no history may pair an old state with this file.
    if (::unlink(path.c_str()) != 0 && errno != ENOENT) {
      return Status(Code::kInternal, "cannot remove " + path + ": " + std::strerror(errno));
    }
    return Status::ok();
  }
  if (!r.history.empty()) {
    if (Status st = write_file_atomic(path, r.history, 0644); !st) return st;
  }
  auto opened = open(database, r.ns);
  if (!opened) return opened.status();
  HistoryFile& history = **opened;
  auto last = history.last_seq();
  if (last && *last == r.history_seq && whole) return Status::ok();  // the copy's history ends with it
  // A restore or an import: a base with the owner's number. (Records at or
  // past it would be of states this file no longer follows.)
  if (last && *last >= r.history_seq) {
    if (Status st = history.truncate_after(r.history_seq - 1); !st) return st;
  }
  if (Status st = history.write_out(); !st) return st;
  if (!r.file.empty()) return history.append_base(r.history_seq, r.history_time_ms, r.file);
  auto file = read_file(database);  // assembled from parts
  if (!file) return file.status();
  return history.append_base(r.history_seq, r.history_time_ms, *file);
}

Status ReplicaHistories::removed(const std::string& database) {
  open_.erase(database);
  std::string path = database + "-history";
  if (::unlink(path.c_str()) != 0 && errno != ENOENT) {
    return Status(Code::kInternal, "cannot remove " + path + ": " + std::strerror(errno));
  }
  return Status::ok();
}

Status ReplicaHistories::finish(int64_t now_ms) {
  for (auto& [database, o] : open_) {
    HistoryFile& history = *o.file;
    if (Status st = history.write_out(); !st) return st;
    // The owner's retention, by the same rule (the times are the owner's).
    int64_t keep = keep_ms_(o.ns);
    auto database_bytes = [path = database.c_str()] {
      struct stat info;
      return ::stat(path, &info) == 0 ? static_cast<uint64_t>(info.st_size) : 0;
    };
    bool dropped = false;
    // A failure leaves the file as it was: the next ship tries again.
    (void)history.trim(keep > 0 ? std::optional<int64_t>(now_ms - keep) : std::nullopt, max_bytes_,
                       database_bytes, UINT64_MAX, &dropped);
  }
  open_.clear();
  return Status::ok();
}

}  // namespace dobj::internal
