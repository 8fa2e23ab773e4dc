// expect: ^$
// The same shapes, done right, compile: the other files fail for the reason
// their first line names, not for a mistake of their own.
#include "dobj/object.h"

struct Point {
  int x, y;
};
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE(Point, x, y)

class Right : public dobj::DurableObject {
 public:
  Right(dobj::State& s, dobj::Env& e) : DurableObject(s, e) { method("where", &Right::where); }
  dobj::Task<Point> where() { co_return Point{1, 2}; }
  dobj::Task<void> alarm(dobj::AlarmInfo) override {
    storage().put("ran", true);
    storage().put("text", "a literal");
    co_await storage().sync();
    storage().transaction([&](dobj::Transaction&) { storage().put("after", 1); });
    co_return;
  }
};

dobj::Task<void> caller(dobj::Stub stub) {
  Point p = co_await stub.call<Point>("where");
  co_await stub.call("move", p);
}

class Counter : public dobj::DurableObject {
 public:
  using DurableObject::DurableObject;
  dobj::Task<int64_t> add(int64_t n) { co_return n; }
  static constexpr auto kMethods = dobj::methods(dobj::Method{"add", &Counter::add});
};

dobj::Task<int64_t> typed(dobj::Env& env) {
  auto counters = env.ns<Counter>("COUNTER");
  co_return co_await counters.get(counters.id_from_name("c")).call(&Counter::add, 5);
}
