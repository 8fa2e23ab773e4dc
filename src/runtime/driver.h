// Driver: an owned, top-level coroutine that runs a Task to completion.
//
// Starts suspended; the owner resumes it (inside an object's turn, or on a
// shard for the worker). It suspends at its end instead of destroying itself,
// so its owner decides when the frame goes away: after it finished, or early
// when the object it belongs to is reset. Destroying the Driver destroys the
// frame and every task it was awaiting.
#pragma once

#include <coroutine>
#include <exception>
#include <utility>

namespace dobj::internal {

class Driver {
 public:
  struct promise_type {
    Driver get_return_object() {
      return Driver(std::coroutine_handle<promise_type>::from_promise(*this));
    }
    std::suspend_always initial_suspend() noexcept { return {}; }
    std::suspend_always final_suspend() noexcept { return {}; }
    void return_void() noexcept {}
    // Driver bodies catch everything; an escape is a bug.
    void unhandled_exception() noexcept { std::terminate(); }
  };

  Driver() = default;
  explicit Driver(std::coroutine_handle<promise_type> h) : h_(h) {}
  Driver(Driver&& o) noexcept : h_(std::exchange(o.h_, {})) {}
  Driver& operator=(Driver&& o) noexcept {
    std::swap(h_, o.h_);
    return *this;
  }
  ~Driver() {
    if (h_) h_.destroy();
  }
  void resume() { h_.resume(); }
  bool done() const { return !h_ || h_.done(); }

 private:
  std::coroutine_handle<promise_type> h_;
};

}  // namespace dobj::internal
