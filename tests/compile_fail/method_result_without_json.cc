// expect: this method's result type has no JSON conversion
#include "dobj/object.h"

struct Point {
  int x, y;
};

class Mover : public dobj::DurableObject {
 public:
  Mover(dobj::State& s, dobj::Env& e) : DurableObject(s, e) { method("where", &Mover::where); }
  dobj::Task<Point> where() { co_return Point{1, 2}; }
};
