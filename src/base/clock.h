// The system's wall clock in the unit dobj keeps times in.
#pragma once

#include <time.h>

#include <chrono>
#include <cstdint>

namespace dobj::internal {

// Milliseconds since the Unix epoch, now. Object code and alarms read the
// runtime's clock instead (runtime/time_source.h), which a test may fake.
inline int64_t system_now_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

// CPU time the calling thread has used, in nanoseconds. A system call (the
// vDSO serves only the wall clocks): a few hundred nanoseconds that take the
// scheduler's lock, too dear for every request.
inline int64_t thread_cpu_ns() {
  timespec ts;
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return int64_t{ts.tv_sec} * 1'000'000'000 + ts.tv_nsec;
}

}  // namespace dobj::internal
