// ObjectHost, the output gate and the waits on durability: outputs held
// until the writes before them are durable, Storage::sync waits, and
// checkpoints (no event while the database file is synced).
#include "base/log.h"
#include "runtime/object_host.h"
#include "runtime/placement.h"
#include "runtime/runtime.h"

namespace dobj::internal {

bool ObjectHost::output_gate_open() const {
  return turn_outputs_.empty() && !store_->in_turn_transaction() &&
         shard_->commits().durable(store_->last_commit_seq()) && may_release().is_ok();
}

Status ObjectHost::may_release() const {
  Placement* placement = shard_->runtime().placement();
  return placement ? placement->may_release(id_) : Status::ok();
}

void ObjectHost::gate_output(std::function<void(Status)> send) {
  turn_outputs_.push_back(std::move(send));
  if (!in_turn_) release_outputs();
}

void ObjectHost::release_outputs() {
  if (turn_outputs_.empty()) return;
  auto outs = std::move(turn_outputs_);
  turn_outputs_.clear();
  GroupCommit& commits = shard_->commits();
  uint64_t seq = store_->last_commit_seq();
  if (commits.durable(seq)) {
    Status st = may_release();
    for (auto& o : outs) o(st);
    // The vector goes back, capacity and all, unless an output gated more.
    outs.clear();
    if (turn_outputs_.empty()) turn_outputs_.swap(outs);
    return;
  }
  ++held_output_batches_;
  auto held_at = timings_ ? std::chrono::steady_clock::now() : std::chrono::steady_clock::time_point();
  commits.when_durable(seq, [this, gen = generation_, outs = std::move(outs),
                             held_at](Status st) mutable {
    --held_output_batches_;
    if (timings_) metrics_->gate_wait.record((std::chrono::steady_clock::now() - held_at).count());
    Status result = st.is_ok() ? may_release() : Status(Code::kReset, "object reset: " + st.message());
    for (auto& o : outs) o(result);
    if (!st.is_ok() && gen == generation_) {
      reset(result);
      pump();
    }
    drop_instance_if_done();
  });
}

Task<void> ObjectHost::sync() {
  struct Awaiter {
    ObjectHost* host;
    Status result;
    bool await_ready() const { return false; }
    void await_suspend(std::coroutine_handle<> h) { host->pending_syncs_.push_back({h, &result}); }
    void await_resume() const {
      if (!result.is_ok()) throw Error(result);
    }
  };
  Awaiter awaiter{this, Status::ok()};  // named: see FetchAwaitable in api.cc
  co_await awaiter;
}

void ObjectHost::maybe_checkpoint() {
  if (checkpointing_ || !store_->checkpoint_due()) return;
  checkpointing_ = true;  // pump() starts nothing until it is done
  ResumeTarget t = {shard_, ns_, id_, generation_};
  store_->start_checkpoint([this, t] {
    checkpointing_ = false;
    // On a fresh stack: this may run inside the turn's end.
    shard_->post([t] {
      if (ObjectHost* h = t.shard->find_host(t.ns, t.id)) h->pump();
    });
  });
}

void ObjectHost::start_syncs() {
  if (pending_syncs_.empty()) return;
  auto syncs = std::move(pending_syncs_);
  pending_syncs_.clear();
  for (auto& w : syncs) {
    ++blocked_;  // a storage operation: no other event runs until it is done
    ++held_output_batches_;
    shard_->commits().when_durable(
        store_->last_commit_seq(), [this, w, gen = generation_](Status st) {
          // Continue on a fresh stack: this may run inside the turn that asked.
          shard_->post([this, w, gen, st] {
            --held_output_batches_;
            if (gen != generation_) return;  // reset meanwhile: the frame is gone
            --blocked_;
            *w.result = st.is_ok() ? st : Status(Code::kReset, "sync failed: " + st.message());
            resume(w.handle);
          });
        });
  }
}

}  // namespace dobj::internal
