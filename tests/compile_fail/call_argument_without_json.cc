// expect: an argument of this call has no JSON conversion
#include "dobj/object.h"

struct Point {
  int x, y;
};

dobj::Task<void> caller(dobj::Stub stub) { co_await stub.call("move", Point{1, 2}); }
