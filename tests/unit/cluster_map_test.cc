// Tests of src/cluster/cluster_map and the address helpers of
// src/cluster/node_config it relies on.
#include "src/cluster/cluster_map.h"

#include "src/cluster/node_config.h"

#include <gtest/gtest.h>

#include <map>
#include <set>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

namespace rm {
namespace {

namespace fs = std::filesystem;

class TempDir {
 public:
  TempDir() {
    static int counter = 0;
    path_ = fs::temp_directory_path() /
            ("rm_cluster_map_test_" + std::to_string(::getpid()) + "_" + std::to_string(counter++));
    fs::remove_all(path_);
    fs::create_directories(path_);
  }
  ~TempDir() {
    std::error_code ec;
    fs::remove_all(path_, ec);
  }
  std::string File(const std::string& name) const { return (path_ / name).string(); }

 private:
  fs::path path_;
};

TEST(NodeConfig, NormalizeAddressTreatsLocalhostAsLoopback) {
  EXPECT_EQ(NormalizeAddress("localhost:8081"), "127.0.0.1:8081");
  EXPECT_EQ(NormalizeAddress("http://localhost:8081/"), "127.0.0.1:8081");
  EXPECT_EQ(NormalizeAddress("https://worker-1:9000//"), "worker-1:9000");
  EXPECT_EQ(NormalizeAddress("127.0.0.1:8081"), "127.0.0.1:8081");
  EXPECT_EQ(NormalizeAddress("localhostx:1"), "localhostx:1");
  EXPECT_EQ(NormalizeAddress(""), "");
}

TEST(NodeConfig, SplitListTrimsAndDropsEmpties) {
  EXPECT_EQ(SplitList("a:1, b:2 ,,\tc:3\t,"), (std::vector<std::string>{"a:1", "b:2", "c:3"}));
  EXPECT_TRUE(SplitList("").empty());
  EXPECT_TRUE(SplitList(" , ").empty());
}

TEST(NodeConfig, NormalizeNodeIdPrefixesBareNumbers) {
  EXPECT_EQ(NormalizeNodeId("worker", "2"), "worker-2");
  EXPECT_EQ(NormalizeNodeId("control", "1"), "control-1");
  EXPECT_EQ(NormalizeNodeId("worker", "worker-7"), "worker-7");
  EXPECT_EQ(NormalizeNodeId("worker", ""), "");
}

TEST(ClusterMap, NewMapHasShardsButNoOwners) {
  ClusterMap map(16);
  EXPECT_EQ(map.num_shards(), 16u);
  EXPECT_FALSE(map.assigned());
  EXPECT_EQ(map.version(), 0u);
  EXPECT_TRUE(map.workers().empty());
  EXPECT_EQ(map.Owner(0), nullptr);
  EXPECT_TRUE(map.ShardsOf("w1").empty());
}

TEST(ClusterMap, UpsertAddsWorkerAndBumpsVersion) {
  ClusterMap map(4);
  EXPECT_TRUE(map.UpsertWorker("w1", "10.0.0.1:8081"));
  EXPECT_EQ(map.version(), 1u);
  ASSERT_EQ(map.workers().size(), 1u);
  EXPECT_EQ(map.workers()[0].id, "w1");
  EXPECT_EQ(map.workers()[0].address, "10.0.0.1:8081");
  ASSERT_NE(map.FindWorker("w1"), nullptr);
  EXPECT_EQ(map.FindWorker("w1")->address, "10.0.0.1:8081");
  EXPECT_EQ(map.FindWorker("w2"), nullptr);
}

TEST(ClusterMap, RepeatedUpsertIsNoChange) {
  ClusterMap map(4);
  map.UpsertWorker("w1", "10.0.0.1:8081");
  EXPECT_FALSE(map.UpsertWorker("w1", "10.0.0.1:8081"));
  EXPECT_FALSE(map.UpsertWorker("w1", "http://10.0.0.1:8081/"));
  EXPECT_FALSE(map.UpsertWorker("w1", ""));
  EXPECT_EQ(map.version(), 1u);
  EXPECT_EQ(map.workers().size(), 1u);
}

TEST(ClusterMap, SameIdNewAddressMovesTheWorker) {
  ClusterMap map(4);
  map.UpsertWorker("w1", "10.0.0.1:8081");
  EXPECT_TRUE(map.UpsertWorker("w1", "10.0.0.9:8081"));
  ASSERT_EQ(map.workers().size(), 1u);
  EXPECT_EQ(map.workers()[0].address, "10.0.0.9:8081");
  EXPECT_EQ(map.version(), 2u);
}

TEST(ClusterMap, LocalhostAndLoopbackAreOneWorker) {
  ClusterMap map(4);
  EXPECT_TRUE(map.UpsertWorker("w1", "localhost:8081"));
  EXPECT_FALSE(map.UpsertWorker("w1", "127.0.0.1:8081"));
  EXPECT_FALSE(map.UpsertWorker("", "http://localhost:8081"));
  ASSERT_EQ(map.workers().size(), 1u);
  EXPECT_EQ(map.workers()[0].address, "127.0.0.1:8081");
}

TEST(ClusterMap, IdIsLearnedForAWorkerHostsEntry) {
  ClusterMap map(4);
  // WORKER_HOSTS gives addresses only.
  EXPECT_TRUE(map.UpsertWorker("", "localhost:8081"));
  EXPECT_TRUE(map.UpsertWorker("", "localhost:8082"));
  EXPECT_EQ(map.workers().size(), 2u);
  // The worker registers with its id and its own idea of its address.
  EXPECT_TRUE(map.UpsertWorker("worker-1", "127.0.0.1:8081"));
  ASSERT_EQ(map.workers().size(), 2u);
  EXPECT_EQ(map.workers()[0].id, "worker-1");
  EXPECT_EQ(map.workers()[1].id, "");
  ASSERT_NE(map.FindWorker("worker-1"), nullptr);
}

TEST(ClusterMap, KnownWorkerMovingOntoAWorkerHostsAddressAbsorbsTheEntry) {
  ClusterMap map(4);
  map.UpsertWorker("", "127.0.0.1:8082");
  map.UpsertWorker("w1", "127.0.0.1:8081");
  EXPECT_TRUE(map.UpsertWorker("w1", "localhost:8082"));
  ASSERT_EQ(map.workers().size(), 1u);
  EXPECT_EQ(map.workers()[0].id, "w1");
  EXPECT_EQ(map.workers()[0].address, "127.0.0.1:8082");
}

TEST(ClusterMap, NewIdOnAnAddressTakesOverTheOldWorkersShards) {
  ClusterMap map(4);
  map.UpsertWorker("w1", "10.0.0.1:1");
  map.UpsertWorker("w2", "10.0.0.2:1");
  map.AssignRoundRobin();
  EXPECT_TRUE(map.UpsertWorker("w3", "10.0.0.1:1"));
  EXPECT_EQ(map.workers().size(), 2u);
  EXPECT_EQ(map.FindWorker("w1"), nullptr);
  EXPECT_EQ(map.ShardsOf("w3"), (std::vector<uint32_t>{0, 2}));
  EXPECT_TRUE(map.ShardsOf("w1").empty());
  ASSERT_NE(map.Owner(0), nullptr);
  EXPECT_EQ(map.Owner(0)->id, "w3");
}

TEST(ClusterMap, AssignRoundRobinOverWorkersWithIds) {
  ClusterMap map(8);
  map.UpsertWorker("w1", "a:1");
  map.UpsertWorker("", "b:1");  // no id yet: gets no shard
  map.UpsertWorker("w2", "c:1");
  map.UpsertWorker("w3", "d:1");
  uint64_t before = map.version();
  map.AssignRoundRobin();
  EXPECT_TRUE(map.assigned());
  EXPECT_EQ(map.version(), before + 1);
  EXPECT_EQ(map.ShardsOf("w1"), (std::vector<uint32_t>{0, 3, 6}));
  EXPECT_EQ(map.ShardsOf("w2"), (std::vector<uint32_t>{1, 4, 7}));
  EXPECT_EQ(map.ShardsOf("w3"), (std::vector<uint32_t>{2, 5}));
  EXPECT_TRUE(map.ShardsOf("").empty());
  for (uint32_t s = 0; s < 8; ++s) {
    ASSERT_NE(map.Owner(s), nullptr) << s;
  }
  EXPECT_EQ(map.Owner(4)->id, "w2");
  EXPECT_EQ(map.Owner(4)->address, "c:1");
  EXPECT_EQ(map.Owner(8), nullptr);  // out of range
}

TEST(ClusterMap, OwnerFollowsAWorkerThatMoved) {
  ClusterMap map(2);
  map.UpsertWorker("w1", "a:1");
  map.AssignRoundRobin();
  map.UpsertWorker("w1", "z:9");
  ASSERT_NE(map.Owner(1), nullptr);
  EXPECT_EQ(map.Owner(1)->address, "z:9");
}

TEST(ClusterMap, LateWorkerGetsNoShards) {
  ClusterMap map(4);
  map.UpsertWorker("w1", "a:1");
  map.AssignRoundRobin();
  EXPECT_TRUE(map.UpsertWorker("w2", "b:1"));
  EXPECT_TRUE(map.ShardsOf("w2").empty());
  EXPECT_EQ(map.ShardsOf("w1").size(), 4u);
}

TEST(ClusterMapDeathTest, AssignTwiceIsABrokenInvariant) {
  ClusterMap map(2);
  map.UpsertWorker("w1", "a:1");
  map.AssignRoundRobin();
  EXPECT_DEATH(map.AssignRoundRobin(), "assigned once");
}

TEST(ClusterMapDeathTest, AssignWithoutWorkersIsABrokenInvariant) {
  ClusterMap map(2);
  map.UpsertWorker("", "a:1");
  EXPECT_DEATH(map.AssignRoundRobin(), "at least one worker");
}

ClusterMap SampleMap() {
  ClusterMap map(6);
  map.UpsertWorker("w1", "10.0.0.1:8081");
  map.UpsertWorker("w2", "10.0.0.2:8081");
  map.UpsertWorker("", "10.0.0.3:8081");
  map.AssignRoundRobin();
  return map;
}

void ExpectSameMap(const ClusterMap& a, const ClusterMap& b) {
  EXPECT_EQ(a.num_shards(), b.num_shards());
  EXPECT_EQ(a.version(), b.version());
  EXPECT_EQ(a.assigned(), b.assigned());
  ASSERT_EQ(a.workers().size(), b.workers().size());
  for (size_t i = 0; i < a.workers().size(); ++i) {
    EXPECT_EQ(a.workers()[i].id, b.workers()[i].id);
    EXPECT_EQ(a.workers()[i].address, b.workers()[i].address);
  }
  for (uint32_t s = 0; s < a.num_shards(); ++s) {
    const WorkerInfo* oa = a.Owner(s);
    const WorkerInfo* ob = b.Owner(s);
    ASSERT_EQ(oa == nullptr, ob == nullptr);
    if (oa) {
      EXPECT_EQ(oa->id, ob->id);
    }
  }
  EXPECT_EQ(a.ToJson(), b.ToJson());
}

TEST(ClusterMap, JsonRoundTrip) {
  ClusterMap map = SampleMap();
  nlohmann::json json = map.ToJson();
  EXPECT_EQ(json.at("num_shards"), 6);
  EXPECT_EQ(json.at("assigned"), true);
  EXPECT_EQ(json.at("workers").size(), 3u);
  EXPECT_EQ(json.at("shard_owners"), nlohmann::json({"w1", "w2", "w1", "w2", "w1", "w2"}));
  auto back = ClusterMap::FromJson(json);
  ASSERT_TRUE(back.ok()) << back.status().ToString();
  ExpectSameMap(map, *back);
}

TEST(ClusterMap, UnassignedMapRoundTrips) {
  ClusterMap map(3);
  map.UpsertWorker("", "a:1");
  auto back = ClusterMap::FromJson(map.ToJson());
  ASSERT_TRUE(back.ok());
  ExpectSameMap(map, *back);
  EXPECT_FALSE(back->assigned());
}

TEST(ClusterMap, FromJsonRejectsBadInput) {
  const nlohmann::json good = SampleMap().ToJson();
  std::vector<nlohmann::json> bad;
  for (const char* field : {"num_shards", "version", "assigned", "workers"}) {
    nlohmann::json j = good;
    j.erase(field);
    bad.push_back(j);
  }
  {
    nlohmann::json j = good;
    j.erase("shard_owners");
    j.erase("shard_replicas");
    bad.push_back(j);
  }
  {
    nlohmann::json j = good;
    j["shard_replicas"].push_back({"w1"});  // 7 replica sets for 6 shards
    bad.push_back(j);
  }
  {
    nlohmann::json j = good;
    j.erase("shard_replicas");
    j["shard_owners"].push_back("w1");  // the first format: 7 owners for 6 shards
    bad.push_back(j);
  }
  {
    nlohmann::json j = good;
    j["num_shards"] = 0;
    j["shard_owners"] = nlohmann::json::array();
    j["shard_replicas"] = nlohmann::json::array();
    bad.push_back(j);
  }
  {
    nlohmann::json j = good;
    j["shard_replicas"][0] = nullptr;
    bad.push_back(j);
  }
  {
    nlohmann::json j = good;
    j["num_shards"] = "six";
    bad.push_back(j);
  }
  {
    nlohmann::json j = good;
    j["workers"][0].erase("address");
    bad.push_back(j);
  }
  {
    nlohmann::json j = good;
    j["workers"][1]["id"] = 7;
    bad.push_back(j);
  }
  {
    nlohmann::json j = good;
    j.erase("shard_replicas");
    j["shard_owners"][0] = nullptr;
    bad.push_back(j);
  }
  bad.push_back(nlohmann::json::array());
  bad.push_back(nlohmann::json("map"));
  bad.push_back(nlohmann::json());
  for (const auto& j : bad) {
    auto r = ClusterMap::FromJson(j);
    EXPECT_FALSE(r.ok()) << j.dump();
    if (!r.ok()) {
      EXPECT_EQ(r.status().code(), Code::kInvalidRequest) << j.dump();
    }
  }
}

TEST(ClusterMap, ReplicaSetsAreDistinctWorkersRoundRobin) {
  ClusterMap map(8, 3);
  for (int i = 1; i <= 4; ++i) map.UpsertWorker("w" + std::to_string(i), "10.0.0." + std::to_string(i) + ":8081");
  map.AssignRoundRobin();
  EXPECT_EQ(map.replication_factor(), 3u);
  std::map<std::string, int> load;
  for (uint32_t s = 0; s < 8; ++s) {
    auto set = map.Replicas(s);
    ASSERT_EQ(set.size(), 3u);
    std::set<std::string> distinct;
    for (auto* w : set) distinct.insert(w->id);
    EXPECT_EQ(distinct.size(), 3u);
    EXPECT_EQ(map.Owner(s), set[0]);
    EXPECT_EQ(set[0]->id, "w" + std::to_string(s % 4 + 1));
    for (auto* w : set) ++load[w->id];
  }
  for (const auto& [id, n] : load) EXPECT_EQ(n, 6) << id;  // 8 shards x 3 replicas over 4 workers
  EXPECT_EQ(map.ShardsOf("w1").size(), 6u);
}

TEST(ClusterMap, AutomaticReplicationFactorIsThreeFromThreeWorkers) {
  ClusterMap two(4, 0);
  two.UpsertWorker("a", "10.0.0.1:8081");
  two.UpsertWorker("b", "10.0.0.2:8081");
  two.AssignRoundRobin();
  EXPECT_EQ(two.replication_factor(), 1u);  // two replicas would survive no failure
  ClusterMap three(4, 0);
  for (const char* id : {"a", "b", "c", "d"}) three.UpsertWorker(id, std::string("10.0.0.9:") + id);
  three.AssignRoundRobin();
  EXPECT_EQ(three.replication_factor(), 3u);
  EXPECT_EQ(three.Replicas(0).size(), 3u);
  auto back = ClusterMap::FromJson(three.ToJson());
  ASSERT_TRUE(back.ok());
  EXPECT_EQ(back->replication_factor(), 3u);  // decided once, kept
}

TEST(ClusterMap, FewerWorkersThanTheReplicationFactor) {
  ClusterMap map(4, 3);
  map.UpsertWorker("a", "10.0.0.1:8081");
  map.UpsertWorker("b", "10.0.0.2:8081");
  map.AssignRoundRobin();
  for (uint32_t s = 0; s < 4; ++s) EXPECT_EQ(map.Replicas(s).size(), 2u);
}

TEST(ClusterMap, RaftIdsAreStableAndNeverReused) {
  ClusterMap map(4);
  map.UpsertWorker("", "10.0.0.1:8081");  // WORKER_HOSTS entry: no id yet
  map.UpsertWorker("b", "10.0.0.2:8081");
  EXPECT_EQ(map.FindWorker("b")->raft_id, 1u);
  map.UpsertWorker("a", "10.0.0.1:8081");  // learns its id
  EXPECT_EQ(map.FindWorker("a")->raft_id, 2u);
  EXPECT_TRUE(map.SetRaftAddress("a", "10.0.0.1:9081"));
  EXPECT_FALSE(map.SetRaftAddress("a", "10.0.0.1:9081"));
  EXPECT_FALSE(map.SetRaftAddress("nobody", "x:1"));
  auto back = ClusterMap::FromJson(map.ToJson());
  ASSERT_TRUE(back.ok());
  EXPECT_EQ(back->FindWorker("a")->raft_id, 2u);
  EXPECT_EQ(back->FindWorker("a")->raft_address, "10.0.0.1:9081");
  back->UpsertWorker("c", "10.0.0.3:8081");
  EXPECT_EQ(back->FindWorker("c")->raft_id, 3u);
}

TEST(ClusterMap, ReadsTheFirstFormatWithOneOwnerPerShard) {
  nlohmann::json old = {{"num_shards", 2}, {"version", 3}, {"assigned", true},
                        {"workers", {{{"id", "w1"}, {"address", "10.0.0.1:8081"}},
                                     {{"id", "w2"}, {"address", "10.0.0.2:8081"}}}},
                        {"shard_owners", {"w2", "w1"}}};
  auto map = ClusterMap::FromJson(old);
  ASSERT_TRUE(map.ok()) << map.status().ToString();
  EXPECT_EQ(map->replication_factor(), 1u);
  EXPECT_EQ(map->Owner(0)->id, "w2");
  EXPECT_EQ(map->Replicas(1).size(), 1u);
  EXPECT_EQ(map->FindWorker("w1")->raft_id, 1u);
  EXPECT_EQ(map->FindWorker("w2")->raft_id, 2u);
}

TEST(ClusterMap, SaveThenLoad) {
  TempDir dir;
  ClusterMap map = SampleMap();
  ASSERT_TRUE(map.Save(dir.File("cluster.json")).ok());
  EXPECT_FALSE(fs::exists(dir.File("cluster.json.tmp")));
  auto loaded = ClusterMap::Load(dir.File("cluster.json"));
  ASSERT_TRUE(loaded.ok()) << loaded.status().ToString();
  ASSERT_TRUE(loaded->has_value());
  ExpectSameMap(map, **loaded);
}

TEST(ClusterMap, SaveReplacesThePreviousFile) {
  TempDir dir;
  ClusterMap map(2);
  map.UpsertWorker("w1", "a:1");
  ASSERT_TRUE(map.Save(dir.File("cluster.json")).ok());
  map.AssignRoundRobin();
  ASSERT_TRUE(map.Save(dir.File("cluster.json")).ok());
  auto loaded = ClusterMap::Load(dir.File("cluster.json"));
  ASSERT_TRUE(loaded.ok() && loaded->has_value());
  EXPECT_TRUE((*loaded)->assigned());
  EXPECT_EQ((*loaded)->version(), map.version());
}

TEST(ClusterMap, LoadOfMissingFileIsEmpty) {
  TempDir dir;
  auto loaded = ClusterMap::Load(dir.File("nope.json"));
  ASSERT_TRUE(loaded.ok());
  EXPECT_FALSE(loaded->has_value());
}

TEST(ClusterMap, LoadOfCorruptFileIsAStorageError) {
  TempDir dir;
  std::ofstream(dir.File("cluster.json")) << "{\"num_shards\": 4, ";
  auto loaded = ClusterMap::Load(dir.File("cluster.json"));
  ASSERT_FALSE(loaded.ok());
  EXPECT_EQ(loaded.status().code(), Code::kStorage);
}

TEST(ClusterMap, LoadOfInvalidMapFails) {
  TempDir dir;
  std::ofstream(dir.File("cluster.json")) << R"({"num_shards": 2, "version": 1, "assigned": false,
                                                 "workers": [], "shard_owners": [""]})";
  auto loaded = ClusterMap::Load(dir.File("cluster.json"));
  EXPECT_FALSE(loaded.ok());
}

TEST(ClusterMap, SaveIntoMissingDirectoryFails) {
  TempDir dir;
  Status s = SampleMap().Save(dir.File("no/such/dir/cluster.json"));
  EXPECT_FALSE(s.ok());
  EXPECT_EQ(s.code(), Code::kStorage);
}

TEST(ClusterMap, SaveReplacesTheFileWholeAndLeavesNoTemporary) {
  TempDir dir;
  const std::string path = dir.File("cluster_map.json");
  ASSERT_TRUE(SampleMap().Save(path).ok());
  ClusterMap bigger = SampleMap();
  ASSERT_TRUE(bigger.UpsertWorker("worker-9", "127.0.0.1:9999"));
  ASSERT_TRUE(bigger.Save(path).ok());
  auto loaded = ClusterMap::Load(path);
  ASSERT_TRUE(loaded.ok() && *loaded) << loaded.status().ToString();
  EXPECT_NE((*loaded)->FindWorker("worker-9"), nullptr);
  EXPECT_FALSE(std::filesystem::exists(path + ".tmp"));
}

}  // namespace
}  // namespace rm
