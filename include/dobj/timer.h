// sleep_for: a timer an object or the worker can await.
//
// Awaiting a timer is awaiting something outside the object: other events of
// the object may run meanwhile (unlike storage, which never yields). The
// continuation runs on the caller's shard, in a new turn of the caller.
#pragma once

#include <chrono>

#include "dobj/task.h"

namespace dobj {

Task<void> sleep_for(std::chrono::milliseconds duration);

}  // namespace dobj
