// A server with C++ and JavaScript objects side by side (dobj::js::load_worker):
// two C++ classes next to the Worker of tests/js/bridge, whose front fetch
// routes /cpp/... and /calls/... to them (js_test.cc).
//
//   js-mixed-server WRANGLER_CONFIG [server flags]
#include <cstdio>
#include <vector>

#include <dobj/dobj.h>
#include <dobj/js.h>

namespace {

// Counts, in C++.
class CppCounter : public dobj::DurableObject {
 public:
  using DurableObject::DurableObject;
  dobj::Task<dobj::Response> fetch(dobj::Request) override {
    int64_t n = storage().get<int64_t>("n").value_or(0) + 1;
    storage().put("n", n);
    co_return dobj::Response::text("cpp " + std::to_string(n));
  }
};

// Asks a JavaScript object (PROBE, of the bridge Worker) through a stub.
class CallsJs : public dobj::DurableObject {
 public:
  using DurableObject::DurableObject;
  dobj::Task<dobj::Response> fetch(dobj::Request) override {
    dobj::Namespace probe = env().ns("PROBE");
    dobj::Request ask;
    ask.target = "/probe/from-cpp/boots";
    dobj::Response r = co_await probe.get(probe.id_from_name("from-cpp")).fetch(std::move(ask));
    co_return dobj::Response::text("js said " + std::to_string(r.status) + " " + r.body);
  }
};

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) return 2;
  dobj::Server server;
  server.bind<CppCounter>("CPP_COUNTER");
  server.bind<CallsJs>("CALLS_JS");
  if (dobj::Status st = dobj::js::load_worker(server, argv[1]); !st) {
    std::fprintf(stderr, "js-mixed-server: %s\n", st.message().c_str());
    return 2;
  }
  std::vector<char*> args{argv[0]};
  for (int i = 2; i < argc; ++i) args.push_back(argv[i]);
  return server.run(static_cast<int>(args.size()), args.data());
}
