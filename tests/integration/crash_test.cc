// Crash safety under load: mixed traffic of every durable example against the
// real server, SIGKILL at random moments, restart on the same data, and check
// that every acknowledged write is there, no transfer is half-applied, every
// acknowledged alarm fires, and no database is corrupt.
//
// DOBJ_KILLS=N runs N kills instead of 5 (bench/soak runs it with 100+).
#include <gtest/gtest.h>
#include <signal.h>

#include <cstdlib>
#include <memory>

#include "support/mixed_load.h"
#include "support/server_process.h"

namespace dobj::test {
namespace {

int kills_wanted() {
  const char* n = std::getenv("DOBJ_KILLS");
  return n ? std::max(1, std::atoi(n)) : 5;
}

TEST(CrashTest, AcknowledgedWritesSurviveRepeatedSigkillUnderLoad) {
  TempDir dir;
  auto server = std::make_unique<ServerProcess>(DOBJ_EXAMPLES_BIN, dir.path());
  ASSERT_TRUE(server->start()) << server->output();
  MixedLoad load("crash");
  ASSERT_TRUE(load.prepare(server->port()));
  int databases = 0;
  int kills = kills_wanted();
  for (int kill = 1; kill <= kills; ++kill) {
    load.run(server->port(), [&] { ASSERT_EQ(server->stop(SIGKILL), 128 + SIGKILL); });
    for (const auto& bad : corrupt_databases(dir.path(), &databases)) ADD_FAILURE() << bad;
    server = std::make_unique<ServerProcess>(DOBJ_EXAMPLES_BIN, dir.path());
    ASSERT_TRUE(server->start()) << server->output();
    for (const auto& lost : load.check(server->port())) ADD_FAILURE() << lost;
  }
  std::printf("crash test: %d kills, %lld acknowledged writes checked, %d database checks\n",
              kills, static_cast<long long>(load.writes_checked()), databases);
}

}  // namespace
}  // namespace dobj::test
