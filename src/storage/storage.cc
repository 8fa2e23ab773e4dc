// The object-facing Storage API: input checks, then ObjectStore.
#include "dobj/storage.h"

#include <algorithm>
#include <nlohmann/json.hpp>

#include "storage/object_store.h"

namespace dobj {
namespace {

void check_key(std::string_view key) {
  if (key.size() > Storage::kMaxKeyBytes) {
    throw Error(Code::kInvalidArgument, "key is " + std::to_string(key.size()) +
                                            " bytes; the limit is " +
                                            std::to_string(Storage::kMaxKeyBytes));
  }
}

void check_value(std::string_view key, std::string_view stored) {
  if (stored.size() > Storage::kMaxValueBytes) {
    throw Error(Code::kInvalidArgument, "value of key '" + std::string(key.substr(0, 64)) +
                                            "' is " + std::to_string(stored.size()) +
                                            " bytes serialized; the limit is " +
                                            std::to_string(Storage::kMaxValueBytes));
  }
}

void check_batch(size_t n) {
  if (n > Storage::kMaxBatchKeys) {
    throw Error(Code::kInvalidArgument, "a batch has " + std::to_string(n) +
                                            " keys; the limit is " +
                                            std::to_string(Storage::kMaxBatchKeys));
  }
}

// A batch of keys, checked, in key order, each once.
std::vector<std::string> checked_key_batch(const std::vector<std::string>& keys) {
  check_batch(keys.size());
  for (const auto& k : keys) check_key(k);
  std::vector<std::string> sorted = keys;
  std::sort(sorted.begin(), sorted.end());
  sorted.erase(std::unique(sorted.begin(), sorted.end()), sorted.end());
  return sorted;
}

}  // namespace

std::optional<std::string> Storage::get_raw(std::string_view key) {
  check_key(key);
  return store_->get(key);
}

std::optional<std::string> Storage::get_json_text(std::string_view key) {
  auto raw = get_raw(key);
  if (!raw) return std::nullopt;
  // A JSON value is stored as its compact text (Codec<Json>::encode): the
  // payload is the answer. Other types go through Json.
  if (!raw->empty() && (*raw)[0] == 'j') {
    raw->erase(0, 1);
    return raw;
  }
  return internal::decode_json_any<Json>(*raw).dump();
}

std::vector<std::pair<std::string, std::string>> Storage::get_raw(
    const std::vector<std::string>& keys) {
  std::vector<std::string> sorted = checked_key_batch(keys);
  std::vector<std::pair<std::string, std::string>> out;
  for (const auto& k : sorted) {
    if (auto v = store_->get(k)) out.emplace_back(k, std::move(*v));
  }
  return out;
}

void Storage::put_raw(std::string_view key, std::string_view stored) {
  check_key(key);
  check_value(key, stored);
  store_->put(key, stored);
}

void Storage::put_raw(const std::vector<std::pair<std::string, std::string>>& entries) {
  check_batch(entries.size());
  for (const auto& [k, v] : entries) {
    check_key(k);
    check_value(k, v);
  }
  // All or nothing, even within a turn that goes on after a failure.
  transaction_sync([&] {
    for (const auto& [k, v] : entries) store_->put(k, v);
  });
}

bool Storage::remove(std::string_view key) {
  check_key(key);
  return store_->remove(key);
}

size_t Storage::remove(const std::vector<std::string>& keys) {
  std::vector<std::string> sorted = checked_key_batch(keys);
  return transaction_sync([&] {
    size_t n = 0;
    for (const auto& k : sorted) n += store_->remove(k) ? 1 : 0;
    return n;
  });
}

std::vector<std::pair<std::string, std::string>> Storage::list_raw(const ListOptions& options) {
  if (options.start && options.start_after) {
    throw Error(Code::kInvalidArgument, "list: start and startAfter cannot be used together");
  }
  if (options.limit && *options.limit <= 0) {
    throw Error(Code::kInvalidArgument, "list: limit must be a positive integer");
  }
  for (const auto* k : {&options.start, &options.start_after, &options.end, &options.prefix}) {
    if (*k) check_key(**k);
  }
  return store_->list(options);
}

void Storage::delete_all() { store_->delete_all(); }

std::optional<int64_t> Storage::get_alarm() { return store_->get_alarm(); }

void Storage::set_alarm(int64_t epoch_ms) {
  if (epoch_ms <= 0 || epoch_ms > kMaxAlarmMs) {
    throw Error(Code::kInvalidArgument,
                "set_alarm: the time must be a positive number of "
                "milliseconds since the epoch, at most 8640000000000000 (JavaScript's last "
                "date), got " +
                    std::to_string(epoch_ms));
  }
  store_->set_alarm(epoch_ms);
}

void Storage::delete_alarm() { store_->delete_alarm(); }

int64_t Storage::now_ms() { return store_->now_ms(); }

void Storage::begin_nested() { store_->begin_nested(); }
void Storage::end_nested(bool commit) { store_->end_nested(commit); }
void Storage::abandon_nested() {
  try {
    store_->end_nested(/*commit=*/false);
  } catch (...) {
    // The store is marked broken; end_turn reports it and the object resets.
  }
}

Task<void> Storage::sync() { return store_->sync(); }

namespace {
template <typename T>
T value_or_throw(Result<T> r) {
  if (!r) throw Error(r.status());
  return std::move(*r);
}
}  // namespace

Task<std::string> Storage::current_bookmark() {
  co_await sync();
  co_return value_or_throw(store_->current_bookmark());
}

std::string Storage::bookmark_for_time(int64_t epoch_ms) {
  return value_or_throw(store_->bookmark_for_time(epoch_ms));
}

Task<std::string> Storage::on_next_session_restore_bookmark(std::string bookmark) {
  if (Status st = store_->check_bookmark(bookmark); !st) throw Error(st);
  store_->request_restore("bookmark", bookmark);
  co_return co_await current_bookmark();
}

Task<std::string> Storage::snapshot() {
  co_await sync();
  std::string name = value_or_throw(store_->write_snapshot());
  co_await sync();  // on a cluster, until the partition's backups hold it too
  co_return name;
}

void Codec<Json>::encode(const Json& v, std::string& out) { out.append(v.dump()); }

Json Codec<Json>::decode(std::string_view p) {
  Result<Json> j = parse_json(p);
  if (!j) throw Error(Code::kInvalidArgument, "corrupt JSON value: " + j.status().message());
  return std::move(j).value();
}

namespace internal {

const char* tag_name(char tag) {
  switch (tag) {
    case 'i':
      return "an integer";
    case 'd':
      return "a double";
    case 's':
      return "a string";
    case 'b':
      return "bytes";
    case 'j':
      return "JSON";
    case 'u':
      return "a user type";
    case 'v':
      return "a JavaScript value (V8's structured clone)";
    default:
      return "an unknown type";
  }
}

void throw_integer_out_of_range(std::string_view what, std::string_view value, size_t bytes,
                                bool is_signed) {
  throw Error(Code::kInvalidArgument,
              std::string(what) + " the integer " + std::string(value) + " as " +
                  (is_signed ? "int" : "uint") + std::to_string(bytes * 8) +
                  "_t: it does not fit");
}

void throw_type_mismatch(char stored_tag, const char* wanted) {
  throw Error(Code::kInvalidArgument,
              std::string("stored value is ") + tag_name(stored_tag) + ", not " + wanted);
}

template <>
Json decode_json_any<Json>(std::string_view stored) {
  if (stored.empty()) throw_type_mismatch('\0', "JSON");
  std::string_view p = stored.substr(1);
  switch (stored[0]) {
    case 'j':
      return Codec<Json>::decode(p);
    case 'i':
      return Json(Codec<int64_t>::decode(p));
    case 'd':
      return Json(Codec<double>::decode(p));
    case 's':
      return Json(std::string(p));
    default:
      throw_type_mismatch(stored[0], "JSON");
  }
}

}  // namespace internal
}  // namespace dobj
