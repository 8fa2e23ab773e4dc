// dobj-touch PORT PATH_PREFIX COUNT [CONNECTIONS]: sends POST
// PATH_PREFIX<i>/increment for i in 0..COUNT-1 over keep-alive connections
// and exits when all were answered. bench/compare uses it to touch 10,000
// objects before reading each server's memory.
#include <cstdio>
#include <cstdlib>
#include <string>
#include <thread>
#include <vector>

#include "testing/http_client.h"

int main(int argc, char** argv) {
  if (argc < 4) {
    std::fprintf(stderr, "usage: %s PORT PATH_PREFIX COUNT [CONNECTIONS]\n", argv[0]);
    return 2;
  }
  int port = std::atoi(argv[1]);
  std::string prefix = argv[2];
  int count = std::atoi(argv[3]);
  int conns = argc > 4 ? std::atoi(argv[4]) : 16;
  std::vector<std::thread> threads;
  std::vector<int> failures(static_cast<size_t>(conns));
  for (int c = 0; c < conns; ++c) {
    threads.emplace_back([&, c] {
      dobj::test::HttpClient client(port);
      for (int i = c; i < count; i += conns) {
        auto r = client.request("POST", prefix + std::to_string(i) + "/increment");
        if (r.status != 200) ++failures[static_cast<size_t>(c)];
      }
    });
  }
  for (auto& t : threads) t.join();
  int failed = 0;
  for (int f : failures) failed += f;
  if (failed) std::fprintf(stderr, "%d requests failed\n", failed);
  return failed ? 1 : 0;
}
