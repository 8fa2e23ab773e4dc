// Task<T>: the coroutine type of every handler that may wait.
//
// A Task is lazy: its body starts when it is first awaited (or handed to the
// runtime), and it resumes its awaiter by symmetric transfer when it finishes,
// so a chain of nested tasks uses no extra stack. A Task owns its coroutine
// frame: destroying an unfinished Task destroys the frame and, through it, every
// task that frame was awaiting.
//
// Thread affinity: a Task runs on the thread that resumes it. Inside an object
// that is always the object's shard thread.
#pragma once

#include <coroutine>
#include <exception>
#include <optional>
#include <utility>
#include <vector>

namespace dobj {

template <typename T = void>
class Task;

namespace internal {

struct TaskPromiseBase {
  std::coroutine_handle<> continuation = std::noop_coroutine();
  std::exception_ptr error;

  struct FinalAwaiter {
    bool await_ready() const noexcept { return false; }
    template <typename P>
    std::coroutine_handle<> await_suspend(std::coroutine_handle<P> h) noexcept {
      return h.promise().continuation;
    }
    void await_resume() const noexcept {}
  };

  std::suspend_always initial_suspend() const noexcept { return {}; }
  FinalAwaiter final_suspend() const noexcept { return {}; }
  void unhandled_exception() noexcept { error = std::current_exception(); }
};

template <typename T>
struct TaskPromise : TaskPromiseBase {
  std::optional<T> value;
  Task<T> get_return_object() noexcept;
  template <typename U>
  void return_value(U&& v) {
    value.emplace(std::forward<U>(v));
  }
  T take() {
    if (error) std::rethrow_exception(error);
    return std::move(*value);
  }
};

template <>
struct TaskPromise<void> : TaskPromiseBase {
  Task<void> get_return_object() noexcept;
  void return_void() const noexcept {}
  void take() const {
    if (error) std::rethrow_exception(error);
  }
};

}  // namespace internal

template <typename T>
class [[nodiscard]] Task {
 public:
  using promise_type = internal::TaskPromise<T>;
  using Handle = std::coroutine_handle<promise_type>;

  Task() = default;
  explicit Task(Handle h) : handle_(h) {}
  Task(Task&& other) noexcept : handle_(std::exchange(other.handle_, {})) {}
  Task& operator=(Task&& other) noexcept {
    if (this != &other) {
      reset();
      handle_ = std::exchange(other.handle_, {});
    }
    return *this;
  }
  Task(const Task&) = delete;
  Task& operator=(const Task&) = delete;
  ~Task() { reset(); }

  bool valid() const { return static_cast<bool>(handle_); }

  // Awaiting a task starts it and resumes the awaiter when it finishes.
  bool await_ready() const noexcept { return false; }
  std::coroutine_handle<> await_suspend(std::coroutine_handle<> awaiter) noexcept {
    handle_.promise().continuation = awaiter;
    return handle_;
  }
  T await_resume() { return handle_.promise().take(); }

 private:
  void reset() {
    if (handle_) handle_.destroy();
    handle_ = {};
  }
  Handle handle_;
};

namespace internal {
template <typename T>
Task<T> TaskPromise<T>::get_return_object() noexcept {
  return Task<T>(std::coroutine_handle<TaskPromise<T>>::from_promise(*this));
}
inline Task<void> TaskPromise<void>::get_return_object() noexcept {
  return Task<void>(std::coroutine_handle<TaskPromise<void>>::from_promise(*this));
}
// when_all support: each task runs in a runner coroutine; the last runner to
// finish resumes the awaiting coroutine by symmetric transfer.
struct WhenAllCounter {
  size_t remaining = 0;
  std::coroutine_handle<> parent;
};

class WhenAllRunner {
 public:
  struct promise_type {
    WhenAllCounter* counter = nullptr;
    WhenAllRunner get_return_object() {
      return WhenAllRunner(std::coroutine_handle<promise_type>::from_promise(*this));
    }
    std::suspend_always initial_suspend() const noexcept { return {}; }
    struct Final {
      bool await_ready() const noexcept { return false; }
      std::coroutine_handle<> await_suspend(std::coroutine_handle<promise_type> h) noexcept {
        WhenAllCounter* c = h.promise().counter;
        return --c->remaining == 0 ? c->parent : std::noop_coroutine();
      }
      void await_resume() const noexcept {}
    };
    Final final_suspend() const noexcept { return {}; }
    void return_void() const noexcept {}
    void unhandled_exception() const noexcept { std::terminate(); }  // bodies catch
  };
  explicit WhenAllRunner(std::coroutine_handle<promise_type> h) : h_(h) {}
  WhenAllRunner(WhenAllRunner&& o) noexcept : h_(std::exchange(o.h_, {})) {}
  WhenAllRunner& operator=(WhenAllRunner&&) = delete;
  ~WhenAllRunner() {
    if (h_) h_.destroy();
  }
  void start(WhenAllCounter* c) {
    h_.promise().counter = c;
    h_.resume();
  }

 private:
  std::coroutine_handle<promise_type> h_;
};

template <typename T>
WhenAllRunner when_all_one(Task<T>& task, std::optional<T>& slot, std::exception_ptr& error) {
  try {
    slot.emplace(co_await task);
  } catch (...) {
    if (!error) error = std::current_exception();
  }
}

struct WhenAllAwaiter {
  std::vector<WhenAllRunner>* runners;
  WhenAllCounter* counter;
  bool await_ready() const noexcept { return runners->empty(); }
  bool await_suspend(std::coroutine_handle<> parent) {
    counter->parent = parent;
    // One extra count held while starting, so that runners finishing at once
    // cannot resume the parent from inside this loop.
    counter->remaining = runners->size() + 1;
    for (auto& r : *runners) r.start(counter);
    return --counter->remaining != 0;  // false: all done already, continue now
  }
  void await_resume() const noexcept {}
};

}  // namespace internal

// Runs the tasks concurrently (each until it waits, then the next) and
// returns their results in order once all finished. If any throws, the first
// exception is rethrown after all finished.
template <typename T>
Task<std::vector<T>> when_all(std::vector<Task<T>> tasks) {
  std::vector<std::optional<T>> slots(tasks.size());
  std::exception_ptr error;
  std::vector<internal::WhenAllRunner> runners;
  runners.reserve(tasks.size());
  for (size_t i = 0; i < tasks.size(); ++i) {
    runners.push_back(internal::when_all_one(tasks[i], slots[i], error));
  }
  internal::WhenAllCounter counter;
  internal::WhenAllAwaiter awaiter{&runners, &counter};  // named: GCC 12 and temporaries
  co_await awaiter;
  if (error) std::rethrow_exception(error);
  std::vector<T> out;
  out.reserve(slots.size());
  for (auto& s : slots) out.push_back(std::move(*s));
  co_return out;
}

}  // namespace dobj
