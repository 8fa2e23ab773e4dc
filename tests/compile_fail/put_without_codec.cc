// expect: this type has no storage codec
#include "dobj/object.h"

struct Point {
  int x, y;
};

class Saver : public dobj::DurableObject {
 public:
  using DurableObject::DurableObject;
  dobj::Task<dobj::Response> fetch(dobj::Request) override {
    storage().put("p", Point{1, 2});
    co_return dobj::Response::text("ok");
  }
};
