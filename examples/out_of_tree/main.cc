// A whole dobj application outside the dobj tree: one object class, the
// default router, one binary. GET /greeter/<name> counts visits per name.
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

int main(int argc, char** argv) {
  dobj::Server server;
  server.bind<Greeter>("GREETER");  // the default router serves /greeter/<name>
  return server.run(argc, argv);
}
