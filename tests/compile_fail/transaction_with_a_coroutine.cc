// expect: takes a synchronous callback
#include "dobj/object.h"

class Transfer : public dobj::DurableObject {
 public:
  using DurableObject::DurableObject;
  dobj::Task<dobj::Response> fetch(dobj::Request) override {
    storage().transaction([&](dobj::Transaction&) -> dobj::Task<void> {
      storage().put("a", 1);
      co_await storage().sync();
      storage().put("b", 2);
    });
    co_return dobj::Response::text("ok");
  }
};
