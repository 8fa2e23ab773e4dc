// The files Storage::snapshot() makes: an object's committed database as a
// whole (no alarm), <data>/snapshots/snap-<32 hex>.sqlite, kept kDays days
// from when it was made (its modification time), then removed.
//
// On a cluster a snapshot belongs to a partition: the one its name gives
// (the first four bytes of the name, big-endian, modulo the partition count),
// which is the partition of the object that made it. The owner ships it to
// the partition's backups with the object's commits (ReplicaRecord
// kSnapshot), a catch-up copies it, and any node fetches it from whichever
// replica of the partition has it (docs/history.md, "On a cluster").
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "dobj/status.h"

namespace dobj::internal::snapshots {

constexpr int kDays = 7;

// "snap-" and 32 lowercase hex digits.
bool valid_name(std::string_view name);
// A fresh random name in `partition` of `partitions` (0: no partitions).
std::string new_name(uint32_t partition, uint32_t partitions);
// The partition of a valid name (0 when partitions is 0).
uint32_t partition_of(std::string_view name, uint32_t partitions);

// Where a server keeps them: <data>/snapshots.
std::string folder(const std::string& data_dir);
std::string path(const std::string& dir, std::string_view name);
// Writes snapshot `name` into dir durably (the folder made if need be), its
// modification time set to made_ms; snapshots older than kDays go first.
Status write(const std::string& dir, std::string_view name, const std::string& image, int64_t made_ms);
// The file of `name` in dir: kInvalidArgument for a malformed name,
// kNotFound when there is none (or it expired).
Result<std::string> find(const std::string& dir, std::string_view name);
// Its bytes and when it was made (errors as find's).
struct Copy {
  std::string image;
  int64_t made_ms = 0;
};
Result<Copy> read(const std::string& dir, std::string_view name);
// The snapshots in dir that are not expired, with when each was made.
struct Entry {
  std::string name;
  int64_t made_ms = 0;
};
std::vector<Entry> list(const std::string& dir);

}  // namespace dobj::internal::snapshots
