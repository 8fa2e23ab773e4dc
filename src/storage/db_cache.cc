// DbCache: the cap on a shard's open SQLite connections (object_store.h).
#include <algorithm>

#include "storage/object_store.h"

namespace dobj::internal {

void DbCache::touch(ObjectStore* store) {
  store->last_used_ = ++clock_;
  if (store->open_slot_ != ObjectStore::kNotOpen) return;
  store->open_slot_ = open_.size();
  open_.push_back(store);
  enforce(store);
}

void DbCache::remove(ObjectStore* store) {
  size_t slot = store->open_slot_;
  if (slot == ObjectStore::kNotOpen) return;
  open_[slot] = open_.back();
  open_[slot]->open_slot_ = slot;
  open_.pop_back();
  store->open_slot_ = ObjectStore::kNotOpen;
}

bool DbCache::closable(const ObjectStore* s, const ObjectStore* keep) {
  return s != keep && !s->in_txn_ && s->pins_ == 0;
}

// The alarm a store will run soon (before `soon`), if it is known without a query.
static std::optional<int64_t> alarm_before(const ObjectStore* s, int64_t soon) {
  const auto& known = s->known_alarm();
  if (!known || !*known || **known > soon) return std::nullopt;
  return **known;
}

bool DbCache::rather(const ObjectStore* a, const ObjectStore* b, int64_t soon) {
  auto at_a = alarm_before(a, soon), at_b = alarm_before(b, soon);
  if (at_a && at_b) return *at_a > *at_b;  // the alarm the scheduler runs last
  if (at_a || at_b) return !at_a;          // the one without an alarm due soon
  return a->last_used_ < b->last_used_;    // the one used longest ago
}

void DbCache::enforce(ObjectStore* keep) {
  if (open_.size() <= capacity_) return;
  // Alarm times are in the runtime's clock, which every store of a shard shares.
  int64_t soon = open_.front()->now_ms() + kAlarmSoonMs;
  while (open_.size() > capacity_) {
    ObjectStore* victim = nullptr;
    for (int i = 0; i < kSample; ++i) {
      ObjectStore* s = open_[random_() % open_.size()];
      if (closable(s, keep) && (!victim || rather(s, victim, soon))) victim = s;
    }
    if (!victim) {
      // Every sample was busy (inside a turn, or pinned): look at them all.
      for (ObjectStore* s : open_) {
        if (closable(s, keep) && (!victim || rather(s, victim, soon))) victim = s;
      }
      if (!victim) return;  // all busy: over the cap until one ends its turn
    }
    victim->close_connection();  // removes it from open_
    victim->files_known_ = true;  // its reopen need not look for its files
  }
}

ObjectStore::ObjectStore(std::shared_ptr<const StoreEnv> env, std::string_view dir,
                         std::string_view file_name)
    : env_(std::move(env)) {
  path_.reserve(dir.size() + 1 + file_name.size());
  path_.append(dir).append("/").append(file_name);
}

ObjectStore::~ObjectStore() {
  sql_cache_.reset();
  if (in_txn_) discard_turn();
  close_connection();
}

}  // namespace dobj::internal
