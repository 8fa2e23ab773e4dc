// expect: error: no return statement in function returning non-void
// Without co_return or co_await this alarm() is not a coroutine: it falls off
// the end of a function returning a Task, and the runtime would run garbage.
// The dobj target makes that an error in every program built on it.
#include "dobj/object.h"

class Forgetful : public dobj::DurableObject {
 public:
  using DurableObject::DurableObject;
  dobj::Task<void> alarm(dobj::AlarmInfo) override { storage().put("ran", true); }
};
