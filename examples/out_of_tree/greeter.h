// Greeter: counts visits per name. GET /greeter/<name> (the default router).
#pragma once

#include <dobj/dobj.h>

class Greeter : public dobj::DurableObject {
 public:
  using DurableObject::DurableObject;
  dobj::Task<dobj::Response> fetch(dobj::Request) override {
    int64_t visits = storage().get<int64_t>("visits").value_or(0) + 1;
    storage().put("visits", visits);
    std::string name = state().id().name().value_or("stranger");
    co_return dobj::Response::text("hello " + name + ", visit " + std::to_string(visits));
  }
};
