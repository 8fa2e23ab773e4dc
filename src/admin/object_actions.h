// The operator's actions that change an object's storage underneath it:
// delete and import (replace). Each runs in the object's queue, between its
// events (Delivery::admin), on the object's shard.
#pragma once

#include <string>

#include <functional>

#include "dobj/status.h"

namespace dobj::internal {

class ObjectHost;

// Drops the instance (its callers get a reset error naming `why`), closes the
// object's sockets and alarm, and removes its storage and catalog entry; the
// next event builds an empty object.
Status delete_object(ObjectHost& host, const std::string& why);
// The same, then puts the database file `file` in its place, catalogues it
// and schedules the alarm it holds. in_history: `file` is already the
// history's next commit (ObjectStore::restored_database).
Status replace_object(ObjectHost& host, const std::string& why, const std::string& file,
                      bool in_history = false);
// In a cluster with backups: calls done once what the object's store recorded
// so far (a removal, an import) is on every in-sync backup, as a commit would
// be; at once otherwise. On the object's shard.
void when_replicated(ObjectHost& host, std::function<void(Status)> done);

}  // namespace dobj::internal
