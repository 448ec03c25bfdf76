// Tests of src/cluster/placement (which replica moves next) and of the move
// bookkeeping in src/cluster/cluster_map it relies on.
#include "src/cluster/placement.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <map>
#include <set>
#include <string>

namespace rm {
namespace {

// `n` workers with Raft addresses, shards placed with RF 3.
ClusterMap Placed(int n, uint32_t shards = 6) {
  ClusterMap map(shards, 3);
  for (int i = 1; i <= n; ++i) {
    const std::string id = "worker-" + std::to_string(i);
    map.UpsertWorker(id, "127.0.0.1:" + std::to_string(8080 + i));
    map.SetRaftAddress(id, "127.0.0.1:" + std::to_string(9080 + i));
  }
  map.AssignRoundRobin();
  return map;
}

PlacementInput AllHealthy(const ClusterMap& map) {
  PlacementInput in;
  for (const auto& w : map.workers()) in.healthy.insert(w.id);
  return in;
}

void AddWorker(ClusterMap& map, int i) {
  const std::string id = "worker-" + std::to_string(i);
  map.UpsertWorker(id, "127.0.0.1:" + std::to_string(8080 + i));
  map.SetRaftAddress(id, "127.0.0.1:" + std::to_string(9080 + i));
}

// Carries out every planned move; returns how many there were.
int Settle(ClusterMap& map, const PlacementInput& in) {
  int moves = 0;
  while (auto move = PlanNextMove(map, in)) {
    if (map.PendingMove(move->shard) == nullptr) {
      EXPECT_TRUE(map.BeginMove(*move));
    }
    map.CompleteMove(move->shard);
    if (++moves > 100) break;
  }
  return moves;
}

TEST(Placement, BalancedClusterNeedsNoMove) {
  ClusterMap map = Placed(3);
  EXPECT_EQ(PlanNextMove(map, AllHealthy(map)), std::nullopt);
}

TEST(Placement, RfOneIsNeverMoved) {
  ClusterMap map(4, 1);
  map.UpsertWorker("worker-1", "h:1");
  map.SetRaftAddress("worker-1", "h:2");
  map.AssignRoundRobin();
  AddWorker(map, 2);
  EXPECT_EQ(PlanNextMove(map, AllHealthy(map)), std::nullopt);
}

TEST(Placement, ANewWorkerGetsItsShareAndNoShardLosesACopy) {
  ClusterMap map = Placed(3);  // 6 shards x 3 = 18 replicas, 6 each
  AddWorker(map, 4);
  auto first = PlanNextMove(map, AllHealthy(map));
  ASSERT_TRUE(first);
  EXPECT_EQ(first->to, "worker-4");
  EXPECT_EQ(first->reason, "rebalance");
  EXPECT_GT(Settle(map, AllHealthy(map)), 0);
  std::map<std::string, size_t> load;
  for (uint32_t s = 0; s < map.num_shards(); ++s) {
    auto replicas = map.Replicas(s);
    ASSERT_EQ(replicas.size(), 3u);
    std::set<std::string> distinct;
    for (auto* r : replicas) {
      distinct.insert(r->id);
      ++load[r->id];
    }
    EXPECT_EQ(distinct.size(), 3u) << "shard " << s;
    EXPECT_FALSE(map.Bootstraps(s) && std::any_of(replicas.begin(), replicas.end(),
                                                    [](auto* r) { return r->id == "worker-4"; }));
  }
  for (const auto& [id, n] : load) EXPECT_TRUE(n == 4 || n == 5) << id << " holds " << n;
}

TEST(Placement, AWorkerWithoutRaftAddressOrHealthGetsNothing) {
  ClusterMap map = Placed(3);
  map.UpsertWorker("worker-4", "127.0.0.1:8084");  // no Raft address yet
  EXPECT_EQ(PlanNextMove(map, AllHealthy(map)), std::nullopt);
  map.SetRaftAddress("worker-4", "127.0.0.1:9084");
  PlacementInput in = AllHealthy(map);
  in.healthy.erase("worker-4");
  EXPECT_EQ(PlanNextMove(map, in), std::nullopt);
}

TEST(Placement, DecommissionMovesEveryReplicaOffThenTheWorkerLeaves) {
  ClusterMap map = Placed(4);
  map.SetDecommissioning("worker-2");
  auto first = PlanNextMove(map, AllHealthy(map));
  ASSERT_TRUE(first);
  EXPECT_EQ(first->from, "worker-2");
  EXPECT_EQ(first->reason, "decommission");
  EXPECT_FALSE(map.RemoveWorker("worker-2").ok());  // still holds replicas
  Settle(map, AllHealthy(map));
  EXPECT_TRUE(map.HostedBy("worker-2").empty());
  ASSERT_TRUE(map.RemoveWorker("worker-2").ok());
  EXPECT_TRUE(map.removed("worker-2"));
  EXPECT_EQ(map.FindWorker("worker-2"), nullptr);
  for (uint32_t s = 0; s < map.num_shards(); ++s) EXPECT_EQ(map.Replicas(s).size(), 3u);
}

TEST(Placement, DecommissionWithNowhereToGoPlansNothing) {
  ClusterMap map = Placed(3);
  map.SetDecommissioning("worker-1");
  EXPECT_EQ(PlanNextMove(map, AllHealthy(map)), std::nullopt);
}

TEST(Placement, ADeadWorkerIsReplacedWhereAHealthyOneIsFree) {
  ClusterMap map = Placed(4);
  PlacementInput in = AllHealthy(map);
  in.healthy.erase("worker-3");
  in.dead.insert("worker-3");
  auto move = PlanNextMove(map, in);
  ASSERT_TRUE(move);
  EXPECT_EQ(move->from, "worker-3");
  EXPECT_EQ(move->reason, "replace_dead");
  Settle(map, in);
  EXPECT_TRUE(map.HostedBy("worker-3").empty());
}

TEST(Placement, APendingMoveIsResumedAndSurvivesJson) {
  ClusterMap map = Placed(3);
  AddWorker(map, 4);
  auto move = PlanNextMove(map, AllHealthy(map));
  ASSERT_TRUE(move);
  ASSERT_TRUE(map.BeginMove(*move));
  EXPECT_FALSE(map.BeginMove(*move));  // one per shard
  EXPECT_EQ(map.Learner(move->shard), "worker-4");
  EXPECT_EQ(map.HostedBy("worker-4"), std::vector<uint32_t>{move->shard});
  auto copy = ClusterMap::FromJson(map.ToJson());
  ASSERT_TRUE(copy.ok());
  EXPECT_EQ(PlanNextMove(*copy, AllHealthy(*copy)), move);
  copy->CompleteMove(move->shard);
  EXPECT_FALSE(copy->Bootstraps(move->shard));
  auto again = ClusterMap::FromJson(copy->ToJson());
  ASSERT_TRUE(again.ok());
  EXPECT_FALSE(again->Bootstraps(move->shard));
  EXPECT_TRUE(again->pending_moves().empty());
}

}  // namespace
}  // namespace rm
