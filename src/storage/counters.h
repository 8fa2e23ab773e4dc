// StorageCounters: the storage operations of a namespace's objects on one
// shard (the runtime's metrics point each ObjectStore at its namespace's).
#pragma once

#include <cstdint>

namespace dobj::internal {

struct StorageCounters {
  uint64_t reads = 0;    // get and list calls, and SQL statements
  uint64_t writes = 0;   // put calls (keys written)
  uint64_t deletes = 0;  // remove calls (keys deleted)
  // Of the reads: SQL statements and list calls; transaction() calls.
  uint64_t sql = 0;
  uint64_t lists = 0;
  uint64_t transactions = 0;
  // SQLite commits of turns' writes, and the turns whose writes waited for a
  // commit made before the next flush, shared with the turns after them
  // (coalescing, storage/group_commit.h).
  uint64_t commits = 0;
  uint64_t turns_coalesced = 0;
};

}  // namespace dobj::internal
