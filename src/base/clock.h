// The system's wall clock in the unit dobj keeps times in.
#pragma once

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

}  // namespace dobj::internal
