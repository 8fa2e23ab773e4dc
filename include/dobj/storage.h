// Storage: an object's private durable key-value store.
//
// Backed by the object's own SQLite database. Calls are synchronous and run on
// the object's shard thread; no other event of the object runs during a call
// (the input gate), because nothing here yields.
//
// Batching and durability: every write made in one turn (from one resumption of
// the object's code until it next suspends) commits as one atomic batch when
// the turn ends. A response or other message the object sends after a write is
// held until that write is durable (the output gate); the handler need not wait.
//
// Limits (each violation throws dobj::Error with Code::kInvalidArgument):
// keys at most kMaxKeyBytes bytes, stored values at most kMaxValueBytes bytes
// (tag byte included), batches at most kMaxBatchKeys keys.
//
// Keys are ordered by their bytes (memcmp), which is UTF-8 code point order.
//
// Lifetime: owned by the object's State; valid while the object instance lives.
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <vector>

#include "dobj/codec.h"
#include "dobj/sql.h"
#include "dobj/status.h"
#include "dobj/task.h"

namespace dobj {

namespace internal {
class ObjectStore;
struct ApiAccess;  // the runtime's way to make the handles below (src/runtime/api_access.h)
template <typename T>
inline constexpr bool kIsTask = false;
template <typename T>
inline constexpr bool kIsTask<Task<T>> = true;
}  // namespace internal

// Every member has an initializer, so designated initializers name only
// what they set without warnings: list<int64_t>({.prefix = "score:"}).
struct ListOptions {
  std::optional<std::string> start{};        // first key, inclusive
  std::optional<std::string> start_after{};  // first key, exclusive; not with start
  std::optional<std::string> end{};          // last key, exclusive
  std::optional<std::string> prefix{};       // only keys with this prefix
  bool reverse = false;                      // descending order; with limit, the last N
  std::optional<int64_t> limit{};            // must be > 0 when given
};

// Passed to the callback of Storage::transaction.
class Transaction {
 public:
  // Discards every write of the transaction when the callback returns.
  void rollback() { rolled_back_ = true; }
  bool rolled_back() const { return rolled_back_; }

 private:
  bool rolled_back_ = false;
};

class Storage {
 public:
  static constexpr size_t kMaxKeyBytes = 2048;
  static constexpr size_t kMaxValueBytes = 131072;
  // The latest alarm time set_alarm takes: JavaScript's last date.
  static constexpr int64_t kMaxAlarmMs = 8'640'000'000'000'000;
  static constexpr size_t kMaxBatchKeys = 128;
  // Page size of a new object database (ServerOptions::page_size).
  static constexpr int kDefaultPageBytes = 1024;

  // The object's SQL database (see sql.h).
  Sql& sql() { return sql_; }

  // Completes when every write made before it is durable; throws
  // dobj::Error(kReset) if that write failed (the object is then reset).
  // Awaiting it ends the turn, which commits the turn's writes. No other event
  // runs meanwhile.
  Task<void> sync();

  template <typename T>
  std::optional<T> get(std::string_view key) {
    auto raw = get_raw(key);
    if (!raw) return std::nullopt;
    return internal::decode_value<T>(*raw);
  }

  // A value that reads as Json (JSON, integer, double or string), as compact
  // JSON text: what get<Json>(key)->dump() gives, without parsing a stored
  // JSON value and printing it again (for an answer that is the value, about
  // a fifth of a small JSON read's instructions). nullopt if the key does not
  // exist; dobj::Error (kInvalidArgument) for a value of another type.
  std::optional<std::string> get_json_text(std::string_view key);

  // The keys that exist, in key order.
  template <typename T>
  std::vector<std::pair<std::string, T>> get(const std::vector<std::string>& keys) {
    return decode_all<T>(get_raw(keys));
  }

  template <typename T>
  void put(std::string_view key, const T& value) {
    put_raw(key, internal::encode_value(value));
  }

  template <typename T>
  void put(const std::vector<std::pair<std::string, T>>& entries) {
    std::vector<std::pair<std::string, std::string>> raw;
    raw.reserve(entries.size());
    for (const auto& [k, v] : entries) raw.emplace_back(k, internal::encode_value(v));
    put_raw(raw);
  }

  // Deletes one key; returns whether it existed.
  bool remove(std::string_view key);
  // Deletes keys; returns how many existed.
  size_t remove(const std::vector<std::string>& keys);

  template <typename T>
  std::vector<std::pair<std::string, T>> list(const ListOptions& options = {}) {
    return decode_all<T>(list_raw(options));
  }

  // Deletes every key, every SQL table, view and trigger, and the alarm.
  void delete_all();

  // The object's one alarm, as milliseconds since the Unix epoch. Setting or
  // deleting it is a write like any other: part of the turn's batch, undone
  // with a transaction. Inside alarm() the running alarm is not reported.
  // set_alarm throws dobj::Error(kInvalidArgument) for a time <= 0 or past
  // kMaxAlarmMs, or when the class has no alarm() handler; a time in the past
  // fires at once.
  //
  // set_alarm also takes a time point (rounded up to the millisecond) or a
  // delay from now by the runtime's clock (State::now):
  //   storage().set_alarm(30s);
  std::optional<int64_t> get_alarm();
  void set_alarm(int64_t epoch_ms);
  template <typename Duration>
  void set_alarm(std::chrono::time_point<std::chrono::system_clock, Duration> at) {
    set_alarm(
        std::chrono::ceil<std::chrono::milliseconds>(at.time_since_epoch()).count());
  }
  template <typename Rep, typename Period>
  void set_alarm(std::chrono::duration<Rep, Period> delay) {
    set_alarm(now_ms() + std::chrono::ceil<std::chrono::milliseconds>(delay).count());
  }
  void delete_alarm();

  // History, with the server started with --history (else these throw
  // dobj::Error(kNotFound)); Cloudflare's getCurrentBookmark,
  // getBookmarkForTime and onNextSessionRestoreBookmark. A bookmark names one
  // commit of the object's database, "<commit, 16 hex>-<time ms, 12 hex>";
  // bookmarks sort as the commits do.
  //
  // The bookmark of the database with every write made before the call.
  // Awaiting it ends the turn, as sync() does.
  Task<std::string> current_bookmark();
  // The last commit made at or before epoch_ms; kNotFound for a time before
  // the oldest commit the history keeps.
  std::string bookmark_for_time(int64_t epoch_ms);
  // When the object next starts (after State::abort, an eviction or a
  // restart), its database becomes the one `bookmark` names, as one new
  // commit (its alarm with it). Returns the bookmark of the database as it is
  // when the call returns: restoring that one undoes the restore. Throws
  // kNotFound for a bookmark not in the history. Awaiting it ends the turn.
  Task<std::string> on_next_session_restore_bookmark(std::string bookmark);
  // A copy of the whole database as committed, without its alarm, for
  // another object's State::on_next_session_restore (a fork). Returns its
  // name; kept 7 days. Does not need --history. On a cluster it is kept by
  // the replicas of this object's partition, and any node can restore it.
  // Awaiting it ends the turn.
  Task<std::string> snapshot();

  // Runs fn(Transaction&) atomically: if fn throws, or calls rollback(), none of
  // its writes happen; the exception propagates. Nested transactions nest.
  //
  // fn is synchronous, and must be: a transaction is one stretch of the
  // object's code with no await inside, which is what makes it atomic
  // without locks (no other event can run in the middle). A coroutine
  // callback (one returning a Task) does not compile: it would return at its
  // first co_await, commit half its writes, and leave its Transaction&
  // dangling. To wait for something and then write atomically, await first,
  // then open the transaction.
  template <typename F>
  auto transaction(F&& fn) {
    static_assert(!internal::kIsTask<std::invoke_result_t<F&, Transaction&>>,
                  "dobj: storage().transaction() takes a synchronous callback; a coroutine "
                  "(returning Task) would commit at its first co_await. Await first, then "
                  "open the transaction.");
    Transaction txn;
    begin_nested();
    try {
      if constexpr (std::is_void_v<decltype(fn(txn))>) {
        fn(txn);
        end_nested(!txn.rolled_back());
      } else {
        auto result = fn(txn);
        end_nested(!txn.rolled_back());
        return result;
      }
    } catch (...) {
      abandon_nested();
      throw;
    }
  }
  // transaction() for a callback that takes no argument.
  template <typename F>
  auto transaction_sync(F&& fn) {
    return transaction([&](Transaction&) { return fn(); });
  }

 private:
  friend struct internal::ApiAccess;
  explicit Storage(internal::ObjectStore* store) : store_(store), sql_(store) {}
  // Values in their stored form (tag byte + payload), for the typed calls
  // above; the tag bytes are the codec's business, not the author's.
  std::optional<std::string> get_raw(std::string_view key);
  std::vector<std::pair<std::string, std::string>> get_raw(const std::vector<std::string>& keys);
  void put_raw(std::string_view key, std::string_view stored);
  void put_raw(const std::vector<std::pair<std::string, std::string>>& entries);
  std::vector<std::pair<std::string, std::string>> list_raw(const ListOptions& options);

  template <typename T>
  static std::vector<std::pair<std::string, T>> decode_all(
      std::vector<std::pair<std::string, std::string>> raw) {
    std::vector<std::pair<std::string, T>> out;
    out.reserve(raw.size());
    for (auto& [k, v] : raw) out.emplace_back(std::move(k), internal::decode_value<T>(v));
    return out;
  }
  int64_t now_ms();
  void begin_nested();
  void end_nested(bool commit);
  void abandon_nested();

  internal::ObjectStore* store_;
  Sql sql_;
};

}  // namespace dobj
