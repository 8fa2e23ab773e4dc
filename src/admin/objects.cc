// The admin plane's object routes: list, inspect, read-only SQL, export,
// import, delete (docs/operations.md).
#include <fcntl.h>
#include <sqlite3.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cmath>
#include <cstring>
#include <nlohmann/json.hpp>
#include <random>

#include "admin/admin.h"
#include "runtime/object_actions.h"
#include "base/fs.h"
#include "base/hex.h"
#include "base/websocket_frame.h"
#include "dobj/codec.h"
#include "runtime/object_host.h"
#include "runtime/placement.h"
#include "runtime/runtime.h"
#include "storage/import_check.h"

namespace dobj::internal {

using Json = nlohmann::json;

namespace {

constexpr int kQueryBudgetMs = 100;
constexpr size_t kMaxQueryRows = 10000;
constexpr int kExportPagesPerStep = 256;  // 1 MiB of 4 KiB pages between the object's events

std::string dump(const Json& j) { return j.dump(-1, ' ', false, Json::error_handler_t::replace); }

Json bytes_json(std::string_view b) { return Json{{"hex", to_hex(b)}}; }

// A stored value as JSON: the value itself for the JSON-friendly tags, hex
// for bytes and user codecs.
Json stored_value_json(std::string_view stored, std::string* type) {
  if (stored.empty()) {
    *type = "empty";
    return nullptr;
  }
  char tag = stored[0];
  switch (tag) {
    case 'i': *type = "integer"; break;
    case 'd': *type = "double"; break;
    case 's': *type = "string"; break;
    case 'j': *type = "json"; break;
    case 'b': *type = "bytes"; return bytes_json(stored.substr(1));
    case 'u': *type = "codec"; return bytes_json(stored.substr(1));
    // A JavaScript object's value, as V8 serializes it (structured clone).
    case 'v': *type = "js"; return bytes_json(stored.substr(1));
    default: *type = "unknown"; return bytes_json(stored);
  }
  try {
    return decode_json_any<Json>(stored);
  } catch (const std::exception&) {
    *type = "corrupt";
    return bytes_json(stored);
  }
}

Json sql_value_json(const SqlValue& v) {
  if (std::holds_alternative<int64_t>(v)) return std::get<int64_t>(v);
  if (std::holds_alternative<double>(v)) {
    double d = std::get<double>(v);
    return std::isfinite(d) ? Json(d) : Json(nullptr);
  }
  if (std::holds_alternative<std::string>(v)) return std::get<std::string>(v);
  if (std::holds_alternative<Bytes>(v)) {
    const Bytes& b = std::get<Bytes>(v);
    return bytes_json(std::string_view(reinterpret_cast<const char*>(b.data()), b.size()));
  }
  return nullptr;
}

// A database file whose header says WAL mode cannot be read without its WAL
// index; a lone file (an export, an import) is the whole database, so it is
// marked as a rollback-journal database, as PRAGMA journal_mode=DELETE would
// (header bytes 18 and 19: file format write and read versions).
void mark_rollback_journal(std::string& file) {
  static constexpr char kMagic[] = "SQLite format 3";
  if (file.size() < 100 || file.compare(0, sizeof(kMagic), kMagic, sizeof(kMagic)) != 0) return;
  if (file[18] == 2 && file[19] == 2) file[18] = file[19] = 1;
}

// The same on a file: its header's two bytes, in place.
Status mark_rollback_journal_file(const std::string& path) {
  int fd = ::open(path.c_str(), O_RDWR | O_CLOEXEC);
  if (fd < 0) return Status(Code::kInternal, "open " + path + ": " + std::strerror(errno));
  std::string head(100, '\0');
  ssize_t n = ::pread(fd, head.data(), head.size(), 0);
  Status st = Status::ok();
  if (n == static_cast<ssize_t>(head.size())) {
    std::string marked = head;
    mark_rollback_journal(marked);
    if (marked != head && ::pwrite(fd, marked.data() + 18, 2, 18) != 2) {
      st = Status(Code::kInternal, "write " + path + ": " + std::strerror(errno));
    }
  }
  ::close(fd);
  return st;
}


// Copies the first `size` bytes of fd into a new file at path, synced.
Status copy_file_prefix(int fd, uint64_t size, const std::string& path) {
  int out = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (out < 0) return Status(Code::kInternal, "cannot create " + path + ": " + std::strerror(errno));
  std::string buf(1 << 20, '\0');
  Status st = Status::ok();
  for (uint64_t at = 0; st && at < size;) {
    ssize_t n = ::pread(fd, buf.data(), std::min<uint64_t>(buf.size(), size - at), static_cast<off_t>(at));
    if (n <= 0) {
      st = Status(Code::kInternal, "cannot read the history: " + std::string(n < 0 ? std::strerror(errno) : "short"));
      break;
    }
    if (::write(out, buf.data(), static_cast<size_t>(n)) != n) {
      st = Status(Code::kInternal, "cannot write " + path + ": " + std::strerror(errno));
    }
    at += static_cast<uint64_t>(n);
  }
  if (st && ::fsync(out) != 0) st = Status(Code::kInternal, "cannot sync " + path + ": " + std::strerror(errno));
  ::close(out);
  return st;
}

// One export: an online backup of the object's database into a file, a step
// at a time on the object's shard, between its events. Writes the object
// makes through its own connection meanwhile reach the copy too, so the file
// is the database as of the last step.
struct ExportJob {
  Shard* shard;
  const NamespaceImpl* ns;
  ObjectId id;
  std::string path;
  sqlite3* dst = nullptr;
  sqlite3_backup* backup = nullptr;
  Reply reply;

  // A job dropped unfinished (its shard stopped) still releases SQLite's.
  ~ExportJob() {
    if (backup) sqlite3_backup_finish(backup);
    if (dst) sqlite3_close(dst);
  }

  void finish(ObjectHost* host, Response r) {
    if (backup) sqlite3_backup_finish(backup);
    if (dst) sqlite3_close(dst);
    backup = nullptr;
    dst = nullptr;
    if (host) {
      host->store().unpin();
      host->release();
    }
    // An answer that sends the file removes it when it opens it.
    if (!ResponseAccess::body_file(r)) ::unlink(path.c_str());
    reply(std::move(r));
  }

  static void step(std::shared_ptr<ExportJob> job) {
    ObjectHost* host = job->shard->find_host(job->ns, job->id);
    if (!host) return job->finish(nullptr, Response::error(503, "the server is stopping"));
    int rc = sqlite3_backup_step(job->backup, kExportPagesPerStep);
    if (rc == SQLITE_OK || rc == SQLITE_BUSY || rc == SQLITE_LOCKED) {
      job->shard->post([job] { step(job); });
      return;
    }
    if (rc != SQLITE_DONE) {
      return job->finish(host, Response::error(500, std::string("export failed: ") +
                                                         sqlite3_errstr(rc)));
    }
    sqlite3_backup_finish(job->backup);
    job->backup = nullptr;
    sqlite3_close(job->dst);
    job->dst = nullptr;
    // The connection streams the file from disk (net/http_server.cc).
    if (Status st = mark_rollback_journal_file(job->path); !st) {
      return job->finish(host, error_response(st));
    }
    Response r;
    r.status = 200;
    ResponseAccess::set_body_file(r, job->path);
    r.set_header("content-type", "application/vnd.sqlite3");
    r.set_header("content-disposition",
                 "attachment; filename=\"" + job->id.to_string() + ".sqlite\"");
    job->finish(host, std::move(r));
  }
};

// Answers `out` once the change just made to host's object is on its
// backups too (at once on a single node), or the error that stopped it.
void reply_when_replicated(ObjectHost& host, const Json& out, const Reply& reply) {
  internal::when_replicated(host, [reply, out = dump(out)](Status st) {
    reply(st ? Response::json(out) : error_response(st));
  });
}

}  // namespace

Result<ObjectKey> AdminPlane::parse_target(const std::string& ns_name,
                                              const std::string& id_text) {
  const NamespaceImpl* ns = runtime_.find_namespace(ns_name);
  if (!ns) return Status(Code::kNotFound, "no namespace " + ns_name);
  if (id_text.rfind("name:", 0) == 0) {
    std::string name = id_text.substr(5);
    if (name.empty()) return Status(Code::kInvalidArgument, "empty name");
    if (name.size() > ObjectId::kMaxNameBytes) {
      return Status(Code::kInvalidArgument, "a name may be at most " +
                                                std::to_string(ObjectId::kMaxNameBytes) + " bytes");
    }
    return ObjectKey{ns, ns->ids().from_name(name)};
  }
  auto id = ns->ids().from_string(id_text);
  if (!id) return id.status();
  return ObjectKey{ns, *id};
}

Result<CatalogQuery> catalog_query(const Request& request) {
  CatalogQuery q;
  q.ns = request.query("namespace");
  if (q.ns && q.ns->empty()) q.ns.reset();
  q.name_prefix = request.query("prefix");
  if (q.name_prefix && q.name_prefix->empty()) q.name_prefix.reset();
  auto number = [&](const char* name, std::optional<int64_t>* out) -> bool {
    auto v = request.query(name);
    if (!v || v->empty()) return true;
    char* end = nullptr;
    long long n = std::strtoll(v->c_str(), &end, 10);
    if (*end != '\0') return false;
    *out = n;
    return true;
  };
  std::optional<int64_t> limit;
  if (!number("minBytes", &q.min_bytes) || !number("activeAfter", &q.active_after_ms) ||
      !number("activeBefore", &q.active_before_ms) || !number("limit", &limit)) {
    return Status(Code::kInvalidArgument, "minBytes, activeAfter, activeBefore and limit are integers");
  }
  if (limit) q.limit = static_cast<int>(std::clamp<int64_t>(*limit, 1, 1000));
  // Without a sort, a filter picks the order its index serves, so that a
  // page never scans past rows it filters out.
  std::string sort = request.query("sort").value_or(q.name_prefix        ? "name"
                                                    : q.min_bytes        ? "bytes"
                                                    : q.active_after_ms  ? "lastActive"
                                                                         : "id");
  using Sort = CatalogQuery::Sort;
  if (sort == "id") {
    q.sort = Sort::kId;
  } else if (sort == "name") {
    q.sort = Sort::kName;
  } else if (sort == "bytes") {
    q.sort = Sort::kBytes;
  } else if (sort == "lastActive") {
    q.sort = Sort::kActive;
  } else {
    return Status(Code::kInvalidArgument, "sort is one of id, name, bytes, lastActive");
  }
  q.cursor = request.query("cursor").value_or("");
  return q;
}

void AdminPlane::list_objects(Shard& here, const Request& request, Reply reply) {
  auto parsed = catalog_query(request);
  if (!parsed) return reply(error_response(parsed.status()));
  CatalogQuery& q = *parsed;
  auto page = runtime_.catalog().list(q);
  if (!page) return reply(error_response(page.status()));
  // Residency and sockets live on the objects' shards.
  std::vector<ObjectKey> refs;
  std::vector<CatalogEntry> entries;
  Placement* placement = runtime_.placement();
  for (auto& e : page->entries) {
    const NamespaceImpl* ns = runtime_.find_namespace(e.ns);
    auto id = ns ? ns->ids().from_string(e.id) : Result<ObjectId>(Status(Code::kNotFound, ""));
    if (!id) continue;  // a binding since removed, or a folder of another secret
    // A cluster node lists what it serves: another node lists its backups'
    // copies and what moved away from here.
    if (placement && !placement->serves_here(*id)) continue;
    refs.push_back({ns, *id});
    entries.push_back(std::move(e));
  }
  std::string next_cursor = std::move(page->next_cursor);
  runtime_.object_states(
      &here, std::move(refs),
      [this, entries = std::move(entries), next_cursor = std::move(next_cursor),
       reply = std::move(reply)](std::vector<Shard::Presence> live) {
        Json out;
        out["objects"] = Json::array();
        for (size_t i = 0; i < entries.size(); ++i) {
          const CatalogEntry& e = entries[i];
          Json o = {{"namespace", e.ns},         {"id", e.id},
                    {"bytes", e.bytes},          {"created", e.created_ms},
                    {"lastActive", e.active_ms}, {"resident", live[i].resident},
                    {"sockets", live[i].sockets}};
          o["name"] = e.name ? Json(*e.name) : Json(nullptr);
          auto alarm = runtime_.alarm_index().get(e.ns, e.id);
          o["alarm"] = alarm ? Json(*alarm) : Json(nullptr);
          out["objects"].push_back(std::move(o));
        }
        out["nextCursor"] = next_cursor.empty() ? Json(nullptr) : Json(next_cursor);
        reply(Response::json(dump(out)));
      });
}

void AdminPlane::inspect_object(Shard& here, const ObjectKey& t, const Request& request,
                                Reply reply) {
  int limit = 100;
  if (auto v = request.query("keys")) limit = std::clamp(std::atoi(v->c_str()), 0, 1000);
  std::optional<std::string> after = request.query("after");
  auto entry = runtime_.catalog().get(t.ns->name(), t.id.to_string());
  runtime_.run_on_object(
      t.ns, t.id, &here,
      [limit, after, entry](ObjectHost& host, Reply reply) {
        Json out;
        out["namespace"] = host.ns()->name();
        out["id"] = host.id().to_string();
        out["name"] = host.id().name() ? Json(*host.id().name())
                      : entry && entry->name ? Json(*entry->name)
                                             : Json(nullptr);
        out["resident"] = host.has_instance();
        // In a cluster: the node that serves it (the one answering), and its
        // partition (docs/cluster.md).
        if (Placement* placement = host.shard()->runtime().placement()) {
          out["node"] = placement->node_id();
          out["partition"] = placement->route(host.id()).partition;
        }
        out["sockets"] = host.shard()->sockets().socket_count(host.ns(), host.id());
        try {
          ObjectStore& store = host.store();
          bool exists = store.has_file();
          out["exists"] = exists;
          out["databaseBytes"] = exists ? store.database_size() : 0;
          auto alarm = exists ? store.stored_alarm() : std::nullopt;
          out["alarm"] = alarm ? Json(*alarm) : Json(nullptr);
          auto keys = store.admin_keys(after, limit + 1);
          bool more = static_cast<int>(keys.size()) > limit;
          if (more) keys.resize(static_cast<size_t>(limit));
          // The next page starts after the last key shown; with none shown
          // (keys=0), where this one started.
          Json next_key = !more ? Json(nullptr)
                          : keys.empty() ? Json(after.value_or(""))
                                         : Json(keys.back().first);
          out["keys"] = Json::array();
          for (const auto& [k, v] : keys) {
            std::string type;
            Json item = {{"key", k}, {"value", stored_value_json(v, &type)}, {"type", type}};
            if (!ws::valid_utf8(k)) item["keyHex"] = to_hex(k);
            out["keys"].push_back(std::move(item));
          }
          out["nextKey"] = std::move(next_key);
          out["tables"] = Json::array();
          for (const auto& tb : store.admin_tables()) {
            out["tables"].push_back({{"name", tb.name},
                                     {"type", tb.type},
                                     {"sql", tb.sql},
                                     {"rows", tb.rows ? Json(*tb.rows) : Json(nullptr)}});
          }
        } catch (const Error& e) {
          return reply(error_response(e.status()));
        }
        if (entry) {
          out["bytes"] = entry->bytes;
          out["created"] = entry->created_ms;
          out["lastActive"] = entry->active_ms;
        }
        reply(Response::json(dump(out)));
      },
      std::move(reply));
}

void AdminPlane::query_object(Shard& here, const ObjectKey& t, const Request& request,
                              Reply reply) {
  Result<Json> parsed = parse_json(request.body);
  if (!parsed) return reply(Response::error(400, parsed.status().message()));
  Json body = std::move(*parsed);
  if (!body.is_object() || !body.contains("query") || !body["query"].is_string()) {
    return reply(Response::error(400, "send {\"query\": \"SELECT ...\"}"));
  }
  size_t max_rows = 1000;
  if (body.contains("maxRows") && body["maxRows"].is_number_unsigned()) {
    max_rows = std::min<size_t>(body["maxRows"].get<size_t>(), kMaxQueryRows);
  }
  std::string query = body["query"].get<std::string>();
  runtime_.run_on_object(
      t.ns, t.id, &here,
      [query = std::move(query), max_rows](ObjectHost& host, Reply reply) {
        ObjectStore::AdminRows rows;
        try {
          rows = host.store().admin_query(query, max_rows, kQueryBudgetMs);
        } catch (const Error& e) {
          return reply(error_response(e.status()));
        }
        Json out;
        out["columns"] = rows.columns;
        out["rows"] = Json::array();
        for (const auto& row : rows.rows) {
          Json r = Json::array();
          for (const auto& v : row) r.push_back(sql_value_json(v));
          out["rows"].push_back(std::move(r));
        }
        out["truncated"] = rows.truncated;
        reply(Response::json(dump(out)));
      },
      std::move(reply));
}

void AdminPlane::export_object(Shard& here, const ObjectKey& t, Reply reply) {
  auto path = temp_path(runtime_.options().data_dir, "export");
  if (!path) return reply(error_response(path.status()));
  runtime_.run_on_object(
      t.ns, t.id, &here,
      [path = *path](ObjectHost& host, Reply reply) {
        ObjectStore& store = host.store();
        sqlite3* src = store.admin_connection();
        if (!src) return reply(Response::error(404, "the object has no storage"));
        auto job = std::make_shared<ExportJob>();
        job->shard = host.shard();
        job->ns = host.ns();
        job->id = host.id();
        job->path = path;
        job->reply = std::move(reply);
        if (sqlite3_open_v2(path.c_str(), &job->dst, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE,
                            "unix-none") != SQLITE_OK) {
          return job->finish(nullptr, Response::error(500, "cannot create the export file"));
        }
        job->backup = sqlite3_backup_init(job->dst, "main", src, "main");
        if (!job->backup) {
          std::string why = sqlite3_errmsg(job->dst);
          return job->finish(nullptr, Response::error(500, "export failed: " + why));
        }
        host.hold();
        store.pin();
        ExportJob::step(job);
      },
      std::move(reply));
}

Result<std::string> AdminPlane::upload_path(const std::string& data_dir) {
  return temp_path(data_dir, "import");
}

void AdminPlane::import_object(Shard& here, const ObjectKey& t, const Request& request,
                               Reply reply, std::string body_file) {
  std::string body;  // a body that came in memory (the session streams imports to a file)
  if (body_file.empty()) {
    auto tmp = temp_path(runtime_.options().data_dir, "import");
    if (!tmp) return reply(error_response(tmp.status()));
    body_file = *tmp;
    body = request.body;
  }
  bool replace = request.query("replace").value_or("") == "1";
  // Writing, syncing and validating a file of up to the object cap is no
  // work for a shard's thread: the blocking pool does it, then the object's
  // shard moves the file into place.
  runtime_.run_blocking([this, shard = &here, t, path = std::move(body_file),
                         body = std::move(body), replace, reply = std::move(reply)]() mutable {
    Status st = Status::ok();
    if (!body.empty()) {
      st = write_file_atomic(path, body, 0600);
      body = std::string();
    }
    struct stat info;
    if (st && (::stat(path.c_str(), &info) != 0 || info.st_size == 0)) {
      st = Status(Code::kInvalidArgument, "send the database file as the body");
    }
    if (st) st = mark_rollback_journal_file(path);
    if (st) st = sync_file(path);
    if (st) st = check_importable_database(path);
    shard->post([this, shard, t, path, st, replace, reply = std::move(reply)]() mutable {
      if (!st) {
        ::unlink(path.c_str());
        return reply(error_response(st));
      }
      std::string hex = t.id.to_string();
      runtime_.run_on_object(
          t.ns, t.id, shard,
          [path, hex, replace](ObjectHost& host, Reply reply) {
            // The object's own files decide (the catalog may lag behind them).
            if (!replace && host.store().has_file()) {
              ::unlink(path.c_str());
              return reply(Response::error(
                  409, "the object already has storage; add ?replace=1 to replace it"));
            }
            Status st = internal::replace_object(host, "the object was replaced by an import", path);
            ::unlink(path.c_str());  // still there only when the move failed
            if (!st) return reply(error_response(st));
            Json out = {{"imported", true},
                        {"namespace", host.ns()->name()},
                        {"id", hex},
                        {"databaseBytes", host.store().database_size()}};
            reply_when_replicated(host, out, reply);
          },
          std::move(reply));
    });
  });
}

void AdminPlane::object_history(Shard& here, const ObjectKey& t, const Request& request, Reply reply) {
  if (!runtime_.options().history) return reply(Response::error(404, "history is off (start with --history)"));
  size_t limit = 1000;
  if (auto l = request.query("limit")) {
    limit = static_cast<size_t>(std::max(1L, std::strtol(std::string(*l).c_str(), nullptr, 10)));
  }
  runtime_.run_on_object(
      t.ns, t.id, &here,
      [limit](ObjectHost& host, Reply reply) {
        try {
          size_t commits = 0;
          auto last = host.store().bookmarks(limit, &commits);
          Json list = Json::array();
          for (const auto& b : last) {
            list.push_back({{"bookmark", b.bookmark}, {"time", b.time_ms}, {"base", b.base}});
          }
          Json out = {{"namespace", host.ns()->name()},
                      {"id", host.id().to_string()},
                      {"commits", commits},
                      {"historyBytes", host.store().history_bytes()},
                      {"bookmarks", list},
                      {"current", last.empty() ? Json(nullptr) : Json(last.back().bookmark)}};
          reply(Response::json(dump(out)));
        } catch (const Error& e) {
          reply(error_response(e.status()));
        }
      },
      std::move(reply));
}

void AdminPlane::restore_object(Shard& here, const ObjectKey& t, const Request& request, Reply reply) {
  if (!runtime_.options().history) return reply(Response::error(404, "history is off (start with --history)"));
  std::string bookmark(request.query("bookmark").value_or(""));
  std::optional<int64_t> time;
  if (auto q = request.query("time")) {
    char* end = nullptr;
    std::string text(*q);
    long long v = std::strtoll(text.c_str(), &end, 10);
    if (text.empty() || *end != '\0') return reply(Response::error(400, "time: milliseconds since the epoch"));
    time = v;
  }
  if (bookmark.empty() == !time) return reply(Response::error(400, "give ?bookmark=B or ?time=MS"));
  runtime_.run_on_object(
      t.ns, t.id, &here,
      [bookmark, time](ObjectHost& host, Reply reply) mutable {
        if (time) {
          auto b = host.store().bookmark_for_time(*time);
          if (!b) return reply(error_response(b.status()));
          bookmark = *b;
        }
        internal::restore_to_bookmark(host, bookmark, [&host, bookmark, reply](Status st) {
          if (!st) return reply(error_response(st));
          auto now = host.store().current_bookmark();
          Json out = {{"restored", true},
                      {"bookmark", bookmark},
                      {"current", now ? Json(*now) : Json(nullptr)},
                      {"databaseBytes", host.store().database_size()}};
          // On a cluster, once its backups hold the restored state too.
          reply_when_replicated(host, out, reply);
        });
      },
      std::move(reply));
}

void AdminPlane::download_history(Shard& here, const ObjectKey& t, Reply reply) {
  if (!runtime_.options().history) return reply(Response::error(404, "history is off (start with --history)"));
  runtime_.run_on_object(
      t.ns, t.id, &here,
      [this](ObjectHost& host, Reply reply) {
        int fd = -1;
        uint64_t size = 0;
        if (Status st = host.store().history_for_copy(&fd, &size); !st) return reply(error_response(st));
        auto path = temp_path(runtime_.options().data_dir, "history");
        if (!path) {
          ::close(fd);
          return reply(error_response(path.status()));
        }
        // The copy is disk work: the blocking pool does it, the shard answers.
        std::string name = host.id().to_string() + ".sqlite-history";
        runtime_.run_blocking([shard = host.shard(), fd, size, path = *path, name, reply = std::move(reply)]() mutable {
          Status st = copy_file_prefix(fd, size, path);
          ::close(fd);
          shard->post([st, path, name, reply = std::move(reply)] {
            if (!st) {
              ::unlink(path.c_str());
              return reply(error_response(st));
            }
            Response r;
            r.status = 200;
            ResponseAccess::set_body_file(r, path);  // sent from disk, then removed
            r.set_header("content-type", "application/octet-stream");
            r.set_header("content-disposition", "attachment; filename=\"" + name + "\"");
            reply(std::move(r));
          });
        });
      },
      std::move(reply));
}

void AdminPlane::upload_history(Shard& here, const ObjectKey& t, const Request& request, Reply reply,
                                std::string body_file) {
  if (!runtime_.options().history) {
    if (!body_file.empty()) ::unlink(body_file.c_str());
    return reply(Response::error(404, "history is off (start with --history)"));
  }
  std::string body;
  if (body_file.empty()) {
    auto tmp = temp_path(runtime_.options().data_dir, "history");
    if (!tmp) return reply(error_response(tmp.status()));
    body_file = *tmp;
    body = request.body;
  }
  bool replace = request.query("replace").value_or("") == "1";
  runtime_.run_blocking([this, shard = &here, t, history = std::move(body_file), body = std::move(body), replace,
                         reply = std::move(reply)]() mutable {
    Status st = body.empty() ? sync_file(history) : write_file_atomic(history, body, 0600);
    body = std::string();
    auto db_path = temp_path(runtime_.options().data_dir, "history-db");
    if (st) st = db_path.status();
    if (st) st = ObjectStore::write_latest_database(history, *db_path);  // a record at a time in memory
    if (st) st = mark_rollback_journal_file(*db_path);
    if (st) st = sync_file(*db_path);
    if (st) st = check_importable_database(*db_path);
    if (st) st = sync_file(history);  // cut short of a torn tail by the check above
    std::string db = db_path ? *db_path : "";
    shard->post([this, shard, t, history, db, st, replace, reply = std::move(reply)]() mutable {
      auto drop = [history, db] {
        ::unlink(history.c_str());
        if (!db.empty()) ::unlink(db.c_str());
      };
      if (!st) {
        drop();
        return reply(error_response(st));
      }
      runtime_.run_on_object(
          t.ns, t.id, shard,
          [history, db, drop, replace](ObjectHost& host, Reply reply) {
            if (!replace && host.store().has_file()) {
              drop();
              return reply(Response::error(409, "the object already has storage; add ?replace=1 to replace it"));
            }
            Status st = internal::replace_object_and_history(host, "the object was replaced by a pulled history",
                                                             db, history);
            drop();  // still there only when a move failed
            if (!st) return reply(error_response(st));
            size_t commits = 0;
            auto last = host.store().bookmarks(1, &commits);
            Json out = {{"imported", true},
                        {"namespace", host.ns()->name()},
                        {"id", host.id().to_string()},
                        {"commits", commits},
                        {"current", last.empty() ? Json(nullptr) : Json(last.back().bookmark)},
                        {"databaseBytes", host.store().database_size()},
                        {"historyBytes", host.store().history_bytes()}};
            reply_when_replicated(host, out, reply);
          },
          std::move(reply));
    });
  });
}

void AdminPlane::fork_object(Shard& here, const ObjectKey& t, const Request& request, Reply reply) {
  std::string as(request.query("as").value_or(""));
  if (as.empty()) return reply(Response::error(400, "give ?as=NAME (or ?as=<64-digit ID>) for the new object"));
  bool id_or_name = (as.size() == 64 && from_hex_lower(as)) || as.rfind("name:", 0) == 0;
  auto dest = parse_target(t.ns->name(), id_or_name ? as : "name:" + as);
  if (!dest) return reply(error_response(dest.status()));
  if (dest->id == t.id) return reply(Response::error(400, "an object cannot be forked onto itself"));
  bool replace = request.query("replace").value_or("") == "1";
  ObjectKey to = *dest;
  runtime_.run_on_object(
      t.ns, t.id, &here,
      [this, to, replace](ObjectHost& source, Reply reply) {
        auto image = source.store().snapshot_image();
        if (!image) return reply(error_response(image.status()));
        // On a cluster the destination may live on another node: the image
        // goes to it as an import does, through its owner.
        if (runtime_.placement()) return fork_as_import(*source.shard(), to, std::move(*image), replace, reply);
        std::string from = describe(*source.ns(), source.id());
        runtime_.run_on_object(
            to.ns, to.id, source.shard(),
            [image = std::move(*image), from, replace](ObjectHost& host, Reply reply) {
              if (!replace && host.store().has_file()) {
                return reply(Response::error(409, "the object already has storage; add ?replace=1 to replace it"));
              }
              Status st = internal::replace_object_with(host, "the object was replaced by a fork of " + from, image,
                                                        /*in_history=*/false);
              if (!st) return reply(error_response(st));
              Json out = {{"forked", true},
                          {"namespace", host.ns()->name()},
                          {"id", host.id().to_string()},
                          {"name", host.id().name() ? Json(*host.id().name()) : Json(nullptr)},
                          {"databaseBytes", host.store().database_size()}};
              reply(Response::json(dump(out)));
            },
            std::move(reply));
      },
      std::move(reply));
}

void AdminPlane::fork_as_import(Shard& here, const ObjectKey& to, std::string image, bool replace, Reply reply) {
  Request put;
  put.method = "PUT";
  std::optional<std::string> name = to.id.name();
  put.target = "/_dobj/objects/" + url_encode(to.ns->name()) + "/" +
               (name ? "name:" + url_encode(*name) : to.id.to_string()) + "/import" + (replace ? "?replace=1" : "");
  put.body = std::move(image);
  Reply answer = [reply, to, name](Answer a) {
    Response& r = a.response;
    if (r.status != 200) return reply(std::move(r));
    Json imported = Json::parse(r.body, nullptr, false);
    Json out = {{"forked", true},
                {"namespace", to.ns->name()},
                {"id", to.id.to_string()},
                {"name", name ? Json(*name) : Json(nullptr)},
                {"databaseBytes", imported.is_object() ? imported.value("databaseBytes", Json(nullptr)) : Json(nullptr)}};
    reply(Response::json(dump(out)));
  };
  std::string no_file;
  if (!forward_to_owner(here, to, put, answer, no_file)) import_object(here, to, put, std::move(answer), {});
}

void AdminPlane::delete_object(Shard& here, const ObjectKey& t, Reply reply) {
  runtime_.run_on_object(
      t.ns, t.id, &here,
      [](ObjectHost& host, Reply reply) {
        Status st = internal::delete_object(host, "the object was deleted by an operator");
        if (!st) return reply(error_response(st));
        reply_when_replicated(host, Json{{"deleted", true}, {"id", host.id().to_string()}}, reply);
      },
      std::move(reply));
}

}  // namespace dobj::internal
