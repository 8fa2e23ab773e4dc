// The greeter tested in-process with the installed test kit (dobj::testing),
// with no test framework: exits 1 on the first failed check.
#include <dobj/testing.h>

#include <cstdio>
#include <cstdlib>

#include "greeter.h"

static void check(bool ok, const char* what) {
  if (ok) return;
  std::fprintf(stderr, "greeter_test: failed: %s\n", what);
  std::exit(1);
}

int main() {
  dobj::testing::Options options;
  options.evict_after_every_event = true;  // each visit on a fresh instance
  dobj::testing::TestRuntime rt(options);
  rt.bind<Greeter>("GREETER");
  check(rt.fetch("GET", "/greeter/ada").body == "hello ada, visit 1", "first visit");
  check(rt.fetch("GET", "/greeter/ada").body == "hello ada, visit 2", "the count is stored");
  check(rt.object("GREETER", "ada").get<int64_t>("visits") == 2, "storage read directly");
  std::puts("greeter_test: passed");
}
