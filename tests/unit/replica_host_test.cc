// Tests of src/worker/replica_host: the replicas a worker runs follow the
// cluster map, and a replica a request is still using survives being dropped
// by a move (the rebalance test under ASan once caught a write's thread
// freeing a ShardReplica's state a second time after the map dropped it).
#include "src/worker/replica_host.h"

#include "tests/unit/raft_test_util.h"

#include <gtest/gtest.h>

#include <unistd.h>

#include <filesystem>
#include <memory>
#include <string>

namespace rm {
namespace {

using namespace std::chrono_literals;
using raft::testing_util::FreePort;
using raft::testing_util::PointsCommand;
using raft::testing_util::WaitFor;

struct Worker {
  std::string id;
  std::string raft_address;
  std::unique_ptr<ShardRegistry> shards;
  std::unique_ptr<ReplicaHost> host;
};

class ReplicaHostTest : public testing::Test {
 protected:
  void SetUp() override {
    dir_ = testing::TempDir() + "/replica_host_test_" + std::to_string(getpid()) + "_" +
           testing::UnitTest::GetInstance()->current_test_info()->name();
    std::filesystem::remove_all(dir_);
    for (const char* id : {"w1", "w2"}) {
      Worker w;
      w.id = id;
      w.raft_address = "127.0.0.1:" + std::to_string(FreePort());
      const std::string d = dir_ + "/" + id;
      w.shards = std::make_unique<ShardRegistry>(d, ShardStoreOptions{});
      ASSERT_TRUE(w.shards->OpenExisting().ok());
      raft::RaftGroupOptions o;
      o.election_timeout_ms = 300;
      o.heartbeat_timeout_ms = 50;
      w.host = std::make_unique<ReplicaHost>(id, w.raft_address, w.raft_address, d, *w.shards, o,
                                             raft::SnapshotFetcher{});
      workers_.push_back(std::move(w));
    }
  }
  void TearDown() override {
    for (auto& w : workers_) w.host->Close();
    workers_.clear();
    std::filesystem::remove_all(dir_);
  }

  // One shard, replicated on the workers named in `ids`.
  ClusterMap Map(const std::vector<std::string>& ids) {
    ClusterMap map(1, 2);
    for (const auto& id : ids) {
      map.UpsertWorker(id, "127.0.0.1:" + std::to_string(FreePort()));
      for (const auto& w : workers_) {
        if (w.id == id) map.SetRaftAddress(id, w.raft_address);
      }
    }
    map.AssignRoundRobin();
    return map;
  }

  // The worker whose replica of shard 0 leads, or nullptr after 10 s.
  Worker* Leader() {
    Worker* found = nullptr;
    WaitFor([&] {
      for (auto& w : workers_) {
        auto r = w.host->Find(0);
        if (r && r->GetStatus().role == "leader") found = &w;
      }
      return found != nullptr;
    }, 10s);
    return found;
  }

  std::string dir_;
  std::vector<Worker> workers_;
};

TEST_F(ReplicaHostTest, RunsTheMapsReplicasAndDropsThoseMovedAway) {
  ClusterMap both = Map({"w1", "w2"});
  for (auto& w : workers_) w.host->Sync(both);
  Worker* leader = Leader();
  ASSERT_NE(leader, nullptr);
  auto written = leader->host->Find(0)->Write(PointsCommand(0, "k1", "h", 5), 5s);
  ASSERT_TRUE(written.ok()) << written.status().ToString();

  // A map without w1 (it was removed): w1 hosts nothing and deletes the files.
  ClusterMap without = Map({"w2", "w3"});
  workers_[0].host->Sync(without);
  EXPECT_EQ(workers_[0].host->Find(0), nullptr);
  EXPECT_FALSE(std::filesystem::exists(dir_ + "/w1/raft-0"));
  EXPECT_EQ(workers_[0].shards->Find(0), nullptr);
  EXPECT_NE(workers_[1].host->Find(0), nullptr);
}

TEST_F(ReplicaHostTest, AReplicaInUseOutlivesItsRemovalFromTheMap) {
  ClusterMap both = Map({"w1", "w2"});
  for (auto& w : workers_) w.host->Sync(both);
  Worker* leader = Leader();
  ASSERT_NE(leader, nullptr);
  std::shared_ptr<raft::ShardReplica> held = leader->host->Find(0);
  ASSERT_NE(held, nullptr);

  // Another request's view: the map drops the replica while `held` is in use.
  ClusterMap without = Map({leader == &workers_[0] ? "w2" : "w1", "w3"});
  leader->host->Sync(without);
  EXPECT_EQ(leader->host->Find(0), nullptr);

  // Closed, not freed: it answers, and refuses writes instead of hanging.
  EXPECT_EQ(held->GetStatus().role, "unavailable");
  auto start = std::chrono::steady_clock::now();
  auto r = held->Write(PointsCommand(0, "k2", "h", 5), 5s);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), Code::kUnavailable) << r.status().ToString();
  EXPECT_LT(std::chrono::steady_clock::now() - start, 2s);
  held.reset();  // the last user frees it
}

}  // namespace
}  // namespace rm
