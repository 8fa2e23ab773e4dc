#include "runtime/object_actions.h"

#include <unistd.h>

#include <random>

#include "base/fs.h"
#include "base/log.h"
#include "runtime/alarm_runner.h"
#include "runtime/object_host.h"
#include "runtime/runtime.h"
#include "runtime/shard.h"
#include "storage/snapshots.h"

namespace dobj::internal {

Status delete_object(ObjectHost& host, const std::string& why) {
  if (Status st = host.let_go_of_storage(why); !st) return st;
  Status st = host.store().remove_files();
  host.shard()->runtime().catalog().remove(host.ns()->name(), host.id().to_string());
  host.reopen_store();
  return st;
}

namespace {

// After the object's files changed underneath it (`changed`: whether they
// did): reopens, catalogues it and schedules the alarm its new database holds.
Status settle_new_files(ObjectHost& host, Status changed) {
  host.reopen_store();
  if (!changed) return changed;
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

// Lets go of the object's storage, has `swap` change its files, then settles.
Status swap_object_files(ObjectHost& host, const std::string& why, const std::function<Status(ObjectStore&)>& swap) {
  if (Status st = host.let_go_of_storage(why); !st) return st;
  return settle_new_files(host, swap(host.store()));
}

}  // namespace

Status replace_object(ObjectHost& host, const std::string& why, const std::string& file, bool in_history) {
  return swap_object_files(host, why, [&](ObjectStore& s) { return s.replace_files(file, in_history); });
}

Status replace_object_and_history(ObjectHost& host, const std::string& why, const std::string& database_file,
                                  const std::string& history_file) {
  return swap_object_files(host, why,
                           [&](ObjectStore& s) { return s.replace_with_history(database_file, history_file); });
}

Result<std::string> temp_path(const std::string& data_dir, const char* what) {
  static thread_local std::mt19937_64 rng{std::random_device{}()};
  if (Status st = make_dirs(data_dir + "/tmp"); !st) return st;
  return data_dir + "/tmp/" + what + "-" + std::to_string(rng()) + ".sqlite";
}

Status replace_object_with(ObjectHost& host, const std::string& why, const std::string& database,
                           bool in_history) {
  auto path = temp_path(host.shard()->runtime().options().data_dir, "restore");
  if (!path) return path.status();
  Status st = write_file_atomic(*path, database, 0600);
  if (st) st = replace_object(host, why, *path, in_history);
  ::unlink(path->c_str());  // still there only when the move failed
  return st;
}

void restore_to_bookmark(ObjectHost& host, const std::string& bookmark, std::function<void(Status)> done) {
  ObjectStore& store = host.store();
  Shard& shard = *host.shard();
  if (Status st = store.check_bookmark(bookmark); !st) return done(st);
  auto file = temp_path(shard.runtime().options().data_dir, "restore");
  if (!file) return done(file.status());
  if (Status st = host.let_go_of_storage("the object was restored to bookmark " + bookmark); !st) return done(st);
  auto plan = store.prepare_restore(bookmark, *file);
  if (!plan) return done(settle_new_files(host, plan.status()));
  // The rebuild reads the history and writes a whole database: off the
  // shard, the object's events waiting.
  host.wait_off_shard();
  ResumeTarget t = {&shard, host.ns(), host.id(), host.generation()};
  shard.runtime().run_blocking([t, plan = std::move(*plan), done = std::move(done)]() mutable {
    auto built = ObjectStore::build_restore(plan);
    ::unlink(plan.file.c_str());  // still there only when it was not moved
    t.shard->post([t, built = std::move(built), done = std::move(done)]() mutable {
      ObjectHost* host = t.shard->find_host(t.ns, t.id);  // waiting: not evicted
      Status st = built ? host->store().restored(std::move(*built)) : built.status();
      done(settle_new_files(*host, st));
      host->done_off_shard();
    });
  });
}

namespace {

std::string restore_asked(const ObjectStore::PendingRestore& pending) {
  return pending.kind + " " + pending.source;
}

}  // namespace

RestoreStep restore_if_asked(ObjectHost& host, Status* error, std::function<void(Status)> done) {
  ObjectStore& store = host.store();
  std::optional<ObjectStore::PendingRestore> pending;
  try {
    pending = store.pending_restore();
  } catch (const Error&) {
    return RestoreStep::kReady;  // a database that cannot open: the object's first use of it says why
  }
  if (!pending) return RestoreStep::kReady;
  Status st;
  if (pending->kind == "bookmark") {
    std::string what = restore_asked(*pending), where = describe(*host.ns(), host.id());
    restore_to_bookmark(host, pending->source, [what, where, done = std::move(done)](Status st) {
      if (st) log_info(where + ": restored from " + what + ", as it asked");
      done(st);
    });
    return RestoreStep::kWaiting;
  } else if (pending->kind == "snapshot") {
    auto file = store.snapshot_file(pending->source);
    if (!file && file.status().code() == Code::kNotFound && host.shard()->runtime().placement()) {
      // Asked for on another node (the object moved since): fetched first.
      fetch_snapshot_here(*host.shard(), pending->source, std::move(done));
      return RestoreStep::kWaiting;
    }
    // Copied: other objects may restore the same snapshot.
    auto bytes = file ? read_file(*file) : Result<std::string>(file.status());
    st = bytes ? replace_object_with(host, "the object was restored from " + pending->source, *bytes,
                                     /*in_history=*/false)
               : bytes.status();
  } else {
    st = Status(Code::kInternal, "an unknown kind of restore: " + pending->kind);
  }
  if (st) {
    log_info(describe(*host.ns(), host.id()) + ": restored from " + restore_asked(*pending) + ", as it asked");
    return RestoreStep::kReady;
  }
  *error = restore_failed(host, st);
  return RestoreStep::kFailed;
}

Status restore_failed(ObjectHost& host, const Status& why) {
  std::string what = "restore";
  try {
    if (auto pending = host.store().pending_restore()) what = restore_asked(*pending);
  } catch (const Error&) {
  }
  // replace_object reopened the store; the database is as it was. The
  // request is forgotten, unless it can succeed later.
  if (why.code() != Code::kConflict && why.code() != Code::kUnavailable) {
    try {
      host.store().clear_pending_restore();
    } catch (const Error& e) {
      log_warn(describe(*host.ns(), host.id()) + ": cannot forget the restore it asked for: " + e.what());
    }
  }
  Status error(why.code(), "the restore the object asked for (" + what + ") failed: " + why.message());
  log_warn(describe(*host.ns(), host.id()) + ": " + error.message());
  return error;
}

void fetch_snapshot_here(Shard& shard, std::string name, std::function<void(Status)> done) {
  Runtime& runtime = shard.runtime();
  std::string dir = snapshots::folder(runtime.options().data_dir);
  auto here = snapshots::find(dir, name);
  Placement* placement = runtime.placement();
  if (here || here.status().code() != Code::kNotFound || !placement) return done(here.status());
  placement->fetch_snapshot(shard, name, [&shard, &runtime, dir, name, done = std::move(done)](
                                             Result<snapshots::Copy> copy) mutable {
    if (!copy) return done(copy.status());
    // Written off the shard (it may be large), durably: the restore that
    // follows must find it after a crash too.
    runtime.run_blocking([&shard, dir, name, copy = std::move(*copy), done = std::move(done)]() mutable {
      Status st = snapshots::write(dir, name, copy.image, copy.made_ms);
      shard.post([st, done = std::move(done)] { done(st); });
    });
  });
}

void when_replicated(ObjectHost& host, std::function<void(Status)> done) {
  Shard& shard = *host.shard();
  if (!shard.replication_log()) return done(Status::ok());
  GroupCommit& commits = shard.commits();
  commits.when_durable(commits.committed(nullptr, nullptr), std::move(done));
}

}  // namespace dobj::internal
