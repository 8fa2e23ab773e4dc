#include "admin/object_actions.h"

#include "runtime/alarm_runner.h"
#include "runtime/object_host.h"
#include "runtime/runtime.h"

namespace dobj::internal {

Status delete_object(ObjectHost& host, const std::string& why) {
  if (Status st = host.let_go_of_storage(why); !st) return st;
  Status st = host.store().remove_files();
  host.shard()->runtime().catalog().remove(host.ns()->name(), host.id().to_string());
  host.reopen_store();
  return st;
}

Status replace_object(ObjectHost& host, const std::string& why, const std::string& file, bool in_history) {
  if (Status st = host.let_go_of_storage(why); !st) return st;
  Status st = host.store().replace_files(file, in_history);
  host.reopen_store();
  if (!st) return st;
  Shard& shard = *host.shard();
  Runtime& runtime = shard.runtime();
  const NamespaceImpl& ns = *host.ns();
  std::string hex = host.id().to_string();
  CatalogEntry entry;
  entry.ns = ns.name();
  entry.id = hex;
  entry.name = host.id().name();
  if (Status s = runtime.catalog().record_created(entry); !s) return s;
  runtime.catalog().touch(
      {CatalogTouch{ns.name(), hex, host.store().path(), shard.now_ms(), host.id().name(), false}});
  try {
    // Opening the file converts it to our journal mode and adds the
    // runtime's tables if it lacks them.
    std::optional<int64_t> at = host.store().stored_alarm();
    if (at && ns.has_alarm_handler()) {
      AlarmRecord r{ns.name(), hex, host.id().name(), *at, 0};
      auto wal = runtime.alarm_index().record(r);
      if (!wal) return wal.status();
      if (*wal) {
        if (Status s = (*wal)->sync(); !s) return s;
      }
      shard.alarms().schedule(ObjectKey{host.ns(), host.id()}, *at, 0);
    }
  } catch (const Error& e) {
    return e.status();
  }
  return Status::ok();
}

void when_replicated(ObjectHost& host, std::function<void(Status)> done) {
  Shard& shard = *host.shard();
  if (!shard.replication_log()) return done(Status::ok());
  GroupCommit& commits = shard.commits();
  commits.when_durable(commits.committed(nullptr, nullptr), std::move(done));
}

}  // namespace dobj::internal
