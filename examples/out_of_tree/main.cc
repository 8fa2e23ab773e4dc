// A whole dobj application outside the dobj tree: one object class, the
// default router, one binary. GET /greeter/<name> counts visits per name.
#include <dobj/dobj.h>

#include "greeter.h"

int main(int argc, char** argv) {
  dobj::Server server;
  server.bind<Greeter>("GREETER");  // the default router serves /greeter/<name>
  return server.run(argc, argv);
}
