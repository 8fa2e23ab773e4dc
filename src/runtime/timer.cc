#include "dobj/timer.h"

#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>

#include "runtime/object_host.h"

namespace dobj {
namespace {

struct TimerAwaitable {
  std::chrono::milliseconds duration;
  // Shared: the timer's handler may run after the awaiting frame was destroyed
  // by a reset; it must still find the timer alive.
  std::shared_ptr<boost::asio::steady_timer> timer;

  bool await_ready() const { return duration.count() <= 0; }
  void await_suspend(std::coroutine_handle<> h) {
    internal::ResumeTarget back = internal::current_resume_target();
    timer = std::make_shared<boost::asio::steady_timer>(back.shard->io(), duration);
    timer->async_wait(
        [back, h, t = timer](boost::system::error_code) { back.shard->resume(back, h); });
  }
  void await_resume() const {}
};

}  // namespace

Task<void> sleep_for(std::chrono::milliseconds duration) {
  if (!internal::Shard::current()) {
    throw Error(Code::kInternal, "sleep_for must be awaited on a dobj shard thread");
  }
  TimerAwaitable awaitable{duration, nullptr};  // named: see FetchAwaitable in api.cc
  co_await awaitable;
}

}  // namespace dobj
