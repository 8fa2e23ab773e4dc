// The operator's actions that change an object's storage underneath it:
// delete, import and restore (replace). Each runs in the object's queue, between its
// events (Delivery::admin), on the object's shard.
#pragma once

#include <string>

#include <functional>

#include "dobj/status.h"

namespace dobj::internal {

class ObjectHost;
class Shard;

// Drops the instance (its callers get a reset error naming `why`), closes the
// object's sockets and alarm, and removes its storage and catalog entry; the
// next event builds an empty object.
Status delete_object(ObjectHost& host, const std::string& why);
// The same, then puts the database file `file` in its place, catalogues it
// and schedules the alarm it holds. in_history: `file` is already the
// history's next commit (ObjectStore::restored_database).
Status replace_object(ObjectHost& host, const std::string& why, const std::string& file,
                      bool in_history = false);
// replace_object for a database and its history (ObjectStore::replace_with_history).
Status replace_object_and_history(ObjectHost& host, const std::string& why, const std::string& database_file,
                                  const std::string& history_file);
// replace_object with the file's bytes in memory (written to a temporary
// file under data_dir first).
Status replace_object_with(ObjectHost& host, const std::string& why, const std::string& database,
                           bool in_history);
// Puts the object back as it was at `bookmark` of its history, as a new
// commit (ObjectStore::prepare_restore): the rebuild runs on the blocking
// pool while the object's events wait (ObjectHost::wait_off_shard). done
// runs on the shard, the host still there, before the events go on;
// perhaps at once (a bad bookmark).
void restore_to_bookmark(ObjectHost& host, const std::string& bookmark, std::function<void(Status)> done);
// A fresh file name under <data>/tmp (emptied at start), the folder made.
Result<std::string> temp_path(const std::string& data_dir, const char* what);
// Does the restore the object asked for before its last instance ended
// (ObjectStore::pending_restore), if any: before its next is built.
enum class RestoreStep {
  kReady,     // none asked for, or done
  kFailed,    // `error` says why (see restore_failed)
  kWaiting,   // under way off the shard (a bookmark's rebuild, or the
              // snapshot's fetch from other nodes of a cluster): done(status)
              // runs once it ends, perhaps at once; the host then asks again
              // (or calls restore_failed)
};
RestoreStep restore_if_asked(ObjectHost& host, Status* error, std::function<void(Status)> done);
// A restore the object asked for could not be done: it is forgotten, and
// the object starts on its database as it is; unless an export holds the
// object or the snapshot's nodes did not answer (the next event tries
// again). Returns the error for the event that waited for it.
Status restore_failed(ObjectHost& host, const Status& why);
// Makes snapshot `name` (Storage::snapshot()) a file of this node: on a
// cluster, fetched from a node of its partition when this node has none.
// done(status) on `shard`'s thread, perhaps at once.
void fetch_snapshot_here(Shard& shard, std::string name, std::function<void(Status)> done);
// In a cluster with backups: calls done once what the object's store recorded
// so far (a removal, an import) is on every in-sync backup, as a commit would
// be; at once otherwise. On the object's shard.
void when_replicated(ObjectHost& host, std::function<void(Status)> done);

}  // namespace dobj::internal
