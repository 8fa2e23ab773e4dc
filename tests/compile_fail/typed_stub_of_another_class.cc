// expect: this stub's object is of another class
#include "dobj/object.h"

class Counter : public dobj::DurableObject {
 public:
  using DurableObject::DurableObject;
  dobj::Task<int64_t> add(int64_t n) { co_return n; }
  static constexpr auto kMethods = dobj::methods(dobj::Method{"add", &Counter::add});
};
class Room : public dobj::DurableObject {
 public:
  using DurableObject::DurableObject;
};

dobj::Task<void> caller(dobj::Env& env) {
  auto rooms = env.ns<Room>("ROOM");
  co_await rooms.get(rooms.id_from_name("r")).call(&Counter::add, 5);
}
