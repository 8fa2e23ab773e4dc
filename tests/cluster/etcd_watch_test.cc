// The etcd client's watch (src/cluster/etcd.h), against a real etcd member:
// the cluster's agent relies on it to notice a dead node's lease at once.
#include <gtest/gtest.h>
#include <signal.h>

#include <atomic>
#include <chrono>
#include <optional>
#include <thread>

#include "cluster/etcd.h"
#include "support/cluster.h"
#include "testing/temp_dir.h"

namespace dobj::internal::etcd {
namespace {

using namespace std::chrono_literals;
using test::EtcdCluster;
using Clock = std::chrono::steady_clock;
using test::wait_for;

class EtcdWatchTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!test::have_etcd()) GTEST_SKIP() << "etcd is not installed (scripts/deps.sh etcd-server)";
    etcd_.emplace(dir_.path() + "/etcd", 1);
    ASSERT_TRUE(etcd_->ready()) << "etcd did not start";
    endpoint_ = "127.0.0.1:" + std::to_string(etcd_->client_port(0));
  }
  void TearDown() override {
    if (watcher_.joinable()) {
      watch_client_->cancel_watch();
      watcher_.join();
    }
  }
  // Watches `prefix` on a thread of its own, counting the calls.
  void start_watch(const std::string& prefix) {
    watch_client_ = std::make_unique<Client>(std::vector<std::string>{endpoint_}, 2s);
    watcher_ = std::thread([this, prefix] {
      ended_ = watch_client_->watch(prefix, [this] { ++calls_; }, 30s);
      done_ = true;
    });
  }

  test::TempDir dir_;
  std::optional<EtcdCluster> etcd_;
  std::string endpoint_;
  std::unique_ptr<Client> watch_client_;
  std::thread watcher_;
  std::atomic<int> calls_{0};
  std::atomic<bool> done_{false};
  Status ended_;
};

TEST_F(EtcdWatchTest, ReportsEachChangeUnderItsPrefixALeaseExpiryIncludedAndNothingElse) {
  Client writer({endpoint_}, 2s);
  start_watch("/w/");
  ASSERT_TRUE(wait_for([&] { return calls_ == 1; }, 5s)) << "no call once the watch was in place";
  ASSERT_TRUE(writer.put("/w/a", "1"));
  EXPECT_TRUE(wait_for([&] { return calls_ == 2; }, 5s)) << calls_;
  ASSERT_TRUE(writer.put("/x/a", "1"));  // another prefix
  ASSERT_TRUE(writer.put("/w", "1"));    // the prefix without its slash
  std::this_thread::sleep_for(300ms);
  EXPECT_EQ(calls_, 2);
  // A key held by a lease that is not renewed: its deletion when the lease
  // expires is a change (the agent's cue for a takeover).
  auto lease = writer.grant(1);
  ASSERT_TRUE(lease);
  ASSERT_TRUE(writer.put("/w/node", "x", *lease));
  EXPECT_TRUE(wait_for([&] { return calls_ == 3; }, 5s)) << calls_;
  EXPECT_TRUE(wait_for([&] { return calls_ == 4; }, 5s)) << "the lease's expiry was not reported";
  auto got = writer.get("/w/node");
  ASSERT_TRUE(got);
  EXPECT_TRUE(got->kvs.empty());
  EXPECT_FALSE(done_);
}

TEST_F(EtcdWatchTest, EndsAtOnceWhenCancelledOrWhenItsMemberDies) {
  start_watch("/w/");
  ASSERT_TRUE(wait_for([&] { return calls_ == 1; }, 5s));
  auto before = Clock::now();
  watch_client_->cancel_watch();
  watcher_.join();
  EXPECT_LT(Clock::now() - before, 1s);
  EXPECT_FALSE(ended_.is_ok());
  // Once cancelled, a client's later watches end at once too.
  before = Clock::now();
  EXPECT_FALSE(watch_client_->watch("/w/", [] {}, 30s).is_ok());
  EXPECT_LT(Clock::now() - before, 1s);

  done_ = false;
  calls_ = 0;
  start_watch("/w/");
  ASSERT_TRUE(wait_for([&] { return calls_ == 1; }, 5s));
  etcd_->signal(0, SIGKILL);
  EXPECT_TRUE(wait_for([&] { return done_.load(); }, 3s)) << "the watch outlived its member";
  EXPECT_FALSE(ended_.is_ok());
  watcher_.join();
}

}  // namespace
}  // namespace dobj::internal::etcd
