// Power loss, simulated (tests/support/power_cut_preload.cc): the server runs
// with a library that records what each sync made durable; the test kills it
// under the mixed load, rebuilds the data folder as a power cut would leave
// it (only what was synced; in torn cuts also a random part of what was not),
// restarts on it, and checks every acknowledged write and every database: as
// the server left it before each cut, whole; after the cut, opened again by
// the server (a new file cut short before its first commit was durable).
//
// DOBJ_POWER_CUTS=N runs N cuts instead of 8 (bench/soak runs it with 100+).
#include <gtest/gtest.h>
#include <signal.h>

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <memory>
#include <nlohmann/json.hpp>

#include "testing/http_client.h"
#include "support/mixed_load.h"
#include "support/power_cut.h"
#include "support/server_process.h"
#include "storage/history.h"

namespace dobj::test {
namespace {

struct CutRun {
  int cuts = 0;
  int databases = 0;
  std::vector<std::string> lost;  // acknowledged writes missing, corrupt databases
  PowerCut::Stats last;
  int64_t dropped = 0, kept = 0;
  int64_t checked = 0;
  int reopened = 0;  // databases a cut left short that the server opened again
  int histories = 0;  // histories checked whole (--history)
};

// With --history: every object's history, as the server gives it after the
// cut (rebuilt from the WAL where the cut took records), reads back whole,
// rebuilds its last state, and ends at the database's current bookmark.
std::vector<std::string> broken_histories(const std::string& data, int port, int* checked) {
  std::vector<std::string> bad;
  TempDir tmp;
  for (const auto& entry : std::filesystem::recursive_directory_iterator(data + "/objects")) {
    if (entry.path().extension() != ".sqlite") continue;
    std::string ns = entry.path().parent_path().parent_path().filename().string();
    std::string route = "/_dobj/objects/" + ns + "/" + entry.path().stem().string();
    HttpClient c(port);
    HttpResponse file = c.request("GET", route + "/history-file", "", {{"authorization", "Bearer cut"}});
    HttpResponse list = c.request("GET", route + "/history?limit=1", "", {{"authorization", "Bearer cut"}});
    if (file.status != 200 || list.status != 200) {
      bad.push_back(route + ": history " + std::to_string(file.status) + " " + file.body + list.body);
      continue;
    }
    std::string copy = tmp.path() + "/h";
    std::ofstream(copy, std::ios::binary | std::ios::trunc) << file.body;
    internal::HistoryFile h;
    if (Status st = h.open(copy); !st || h.entries().empty()) {
      bad.push_back(route + ": the history does not open: " + st.message());
      continue;
    }
    for (const auto& e : h.entries()) {
      if (!h.intact(e)) bad.push_back(route + ": the record of commit " + std::to_string(e.seq) + " is damaged");
      // The load makes no restores or imports: a base after the first would
      // be the database taken whole because commits went missing.
      if (e.kind == internal::HistoryFile::Kind::kBase && e.offset > 0) {
        bad.push_back(route + ": commits before " + std::to_string(e.seq) + " were lost (it is a base)");
      }
    }
    if (!h.state_at(*h.last_seq()).is_ok()) bad.push_back(route + ": the last state does not rebuild");
    std::string current = nlohmann::json::parse(list.body, nullptr, false).value("current", "");
    if (current != h.bookmark_of(*h.last_seq())) {
      bad.push_back(route + ": the history ends at " + h.bookmark_of(*h.last_seq()) + ", the database at " + current);
    }
    ++*checked;
  }
  return bad;
}

// Runs `cuts` power cuts, alternating exact and torn ones, under the mixed
// load, with the server's extra flags.
CutRun run_cuts(int cuts, std::vector<std::string> flags,
                std::chrono::milliseconds alarm_wait = std::chrono::seconds(20)) {
  TempDir dir, shadow;
  std::string data = dir.path() + "/data";
  std::filesystem::create_directories(data);
  auto env = PowerCut::environment(data, shadow.path());
  flags.insert(flags.end(), {"--admin-token", "cut"});
  auto start = [&] {
    auto s = std::make_unique<ServerProcess>(DOBJ_EXAMPLES_BIN, data, flags);
    s->set_environment(env);
    EXPECT_TRUE(s->start()) << s->output();
    return s;
  };
  CutRun run;
  auto server = start();
  MixedLoad load("cut");
  load.set_alarm_wait(alarm_wait);
  EXPECT_TRUE(load.prepare(server->port()));
  std::mt19937 rng(777);
  for (int cut = 1; cut <= cuts; ++cut) {
    load.run(server->port(), [&] { EXPECT_EQ(server->stop(SIGKILL), 128 + SIGKILL); });
    // What the server left (a process crash) is whole, every file of it.
    for (auto& bad : corrupt_databases(data, &run.databases)) run.lost.push_back("before the cut: " + bad);
    auto mode = cut % 2 ? PowerCut::Mode::kSynced : PowerCut::Mode::kTorn;
    run.last = PowerCut::cut(data, shadow.path(), mode, rng);
    run.dropped += run.last.bytes_dropped;
    run.kept += run.last.bytes_kept;
    // After the cut, a new object's file whose first commit was never
    // durable (so no answer depended on it) can be a part of the empty
    // database it was copied from; the server must open it again. Each
    // database that does not pass the check now must open through the
    // server, which the next round's check (before its cut) then finds whole.
    std::vector<std::string> suspects;
    int ignored = 0;
    for (auto& bad : corrupt_databases(data, &ignored)) suspects.push_back(bad.substr(0, bad.find(": ")));
    server = start();
    if (server->port() == 0) break;
    for (const std::string& file : suspects) {
      std::filesystem::path p(file);
      std::string ns = p.parent_path().parent_path().filename().string();
      std::string id = p.stem().string();
      HttpResponse r = HttpClient(server->port())
                           .request("GET", "/_dobj/objects/" + ns + "/" + id, "",
                                    {{"authorization", "Bearer cut"}});
      if (r.status != 200) run.lost.push_back(file + " does not open after the cut: " + r.body);
      ++run.reopened;
    }
    for (auto& lost : load.check(server->port())) run.lost.push_back(lost);
    if (std::find(flags.begin(), flags.end(), "--history") != flags.end()) {
      for (auto& bad : broken_histories(data, server->port(), &run.histories)) run.lost.push_back(bad);
    }
    ++run.cuts;
  }
  // The last round's files, as the server leaves them.
  EXPECT_EQ(server->stop(SIGKILL), 128 + SIGKILL);
  for (auto& bad : corrupt_databases(data, &run.databases)) run.lost.push_back("at the end: " + bad);
  run.checked = load.writes_checked();
  return run;
}

int cuts_wanted() {
  const char* n = std::getenv("DOBJ_POWER_CUTS");
  return n ? std::max(1, std::atoi(n)) : 8;
}

TEST(PowerCutTest, AcknowledgedWritesSurviveSimulatedPowerCutsUnderLoad) {
  CutRun run = run_cuts(cuts_wanted(), {});
  EXPECT_EQ(run.cuts, cuts_wanted());
  for (const auto& lost : run.lost) ADD_FAILURE() << lost;
  // The cuts did throw written, unsynced bytes away: the test has teeth.
  EXPECT_GT(run.dropped, 0);
  std::printf(
      "power cuts: %d, %lld acknowledged writes checked, %d database checks, "
      "%d cut short and opened again, %lld unsynced bytes dropped, %lld kept (torn)\n",
      run.cuts, static_cast<long long>(run.checked), run.databases, run.reopened,
      static_cast<long long>(run.dropped), static_cast<long long>(run.kept));
}

// On a fresh data folder the server creates objects/<BINDING>/ itself; a
// cut right after the first answered write must find the path to the new
// object's file, not only the file (a folder's fsync does not make its own
// entry in its parent durable). One object's first commit flushes four files,
// too few for the flusher's syncfs, which would hide a missing folder sync.
TEST(PowerCutTest, TheFirstWriteOnAFreshFolderSurvivesACut) {
  TempDir dir, shadow;
  std::string data = dir.path() + "/fresh/data";
  std::filesystem::create_directories(dir.path() + "/fresh");
  auto env = PowerCut::environment(dir.path() + "/fresh", shadow.path());
  auto start = [&] {
    auto s = std::make_unique<ServerProcess>(DOBJ_EXAMPLES_BIN, data, std::vector<std::string>{});
    s->set_environment(env);
    EXPECT_TRUE(s->start()) << s->output();
    return s;
  };
  auto server = start();
  HttpResponse r = HttpClient(server->port()).request("POST", "/counter/first/increment");
  ASSERT_EQ(r.status, 200);
  ASSERT_EQ(r.body, "1");
  EXPECT_EQ(server->stop(SIGKILL), 128 + SIGKILL);
  std::mt19937 rng(1);
  PowerCut::cut(dir.path() + "/fresh", shadow.path(), PowerCut::Mode::kSynced, rng);
  server = start();
  ASSERT_NE(server->port(), 0);
  EXPECT_EQ(HttpClient(server->port()).request("GET", "/counter/first").body, "1");
}

// The history file is synced only before a checkpoint lets the WAL start
// over; what a cut takes from it is rebuilt from the WAL when the object
// opens. Every history must come back whole and agree with its database.
TEST(PowerCutTest, HistoriesComeBackWholeAfterSimulatedPowerCuts) {
  CutRun run = run_cuts(std::max(2, cuts_wanted() / 2), {"--history"});
  for (const auto& lost : run.lost) ADD_FAILURE() << lost;
  EXPECT_GT(run.histories, 0);
  std::printf("history power cuts: %d, %d histories checked whole, %lld acknowledged writes checked\n", run.cuts,
              run.histories, static_cast<long long>(run.checked));
}

// With room for two open databases per shard, nearly every write of the
// load reopens its object's files after the connection cap closed them
// (without looking for them again: ObjectStore::files_known_), and new
// objects' files are made between such closes. Their writes must survive
// the cuts as well.
TEST(PowerCutTest, WritesThroughReopenedConnectionsSurviveSimulatedPowerCuts) {
  CutRun run = run_cuts(std::max(2, cuts_wanted() / 2), {"--max-open-databases", "2"});
  for (const auto& lost : run.lost) ADD_FAILURE() << lost;
  EXPECT_GT(run.dropped, 0);
  std::printf("power cuts with 2 open databases a shard: %d, %lld acknowledged writes checked\n", run.cuts,
              static_cast<long long>(run.checked));
}

// The same cuts with fsync switched off lose acknowledged writes: the test
// above would catch a commit path that acknowledged before syncing.
TEST(PowerCutTest, WithoutFsyncTheCutsLoseAcknowledgedWrites) {
  CutRun run = run_cuts(2, {"--durability", "os"}, std::chrono::seconds(2));
  EXPECT_FALSE(run.lost.empty());
  std::printf("without fsync, after %d cuts: %zu problems, first: %s\n", run.cuts,
              run.lost.size(), run.lost.empty() ? "-" : run.lost.front().c_str());
}

}  // namespace
}  // namespace dobj::test
