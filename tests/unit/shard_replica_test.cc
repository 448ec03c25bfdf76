// Tests of src/raft/shard_replica: three shard stores kept identical by Raft
// (real replicas over TCP on 127.0.0.1), idempotency through the log, a
// restarted replica replaying without applying anything twice, follower refusal.
#include "src/raft/shard_replica.h"

#include "tests/unit/raft_test_util.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <filesystem>
#include <map>
#include <memory>
#include <thread>

namespace rm::raft {
namespace {

using namespace std::chrono_literals;
using testing_util::FreePort;
using testing_util::WaitFor;

raftmetrics::v1::ShardCommand Command(const std::string& key, const std::string& host, int points) {
  return testing_util::PointsCommand(3, key, host, points);
}

struct Node {
  std::unique_ptr<RaftLoop> loop;
  std::unique_ptr<ShardStore> store;
  std::unique_ptr<ShardReplica> replica;
};

class ReplicatedShard : public testing::Test {
 protected:
  void SetUp() override {
    dir_ = testing::TempDir() + "/shard_replica_test_" + std::to_string(getpid()) + "_" +
           testing::UnitTest::GetInstance()->current_test_info()->name();
    std::filesystem::remove_all(dir_);
    for (uint64_t id = 1; id <= 3; ++id) peers_.push_back({id, "127.0.0.1:" + std::to_string(FreePort())});
    for (uint64_t id = 1; id <= 3; ++id) Open(id);
  }
  void TearDown() override {
    for (auto& [id, n] : nodes_) Shut(n);
    std::filesystem::remove_all(dir_);
  }
  // `bootstrap` false: a new replica joining an existing group (no configuration of its own).
  void Open(uint64_t id, bool bootstrap = true) {
    while (peers_.size() < id) peers_.push_back({peers_.size() + 1, "127.0.0.1:" + std::to_string(FreePort())});
    Node n;
    std::string d = dir_ + "/n" + std::to_string(id);
    std::filesystem::create_directories(d);
    auto store = ShardStore::Open(d + "/shard-3.duckdb", 3, {});
    ASSERT_TRUE(store.ok()) << store.status().ToString();
    n.store = std::move(*store);
    n.loop = std::make_unique<RaftLoop>();
    ASSERT_TRUE(n.loop->Start().ok());
    RaftGroupOptions o;
    o.id = id;
    o.address = peers_[id - 1].address;
    o.dir = d + "/raft-3";
    o.election_timeout_ms = 300;
    o.heartbeat_timeout_ms = 50;
    o.snapshot_threshold = snapshot_threshold_;
    o.snapshot_trailing = snapshot_trailing_;
    // Snapshots travel out of band; here straight from a store that has applied enough.
    auto fetch = [this](uint32_t, uint64_t min_index, uint64_t source) -> Result<std::string> {
      ++fetches_;
      for (auto& [id, other] : nodes_) {
        if (other.store && other.store->applied_index() >= min_index && (id == source || source == 0)) {
          return other.store->ExportSnapshot();
        }
      }
      return Status(Code::kUnavailable, "no replica has that index yet");
    };
    n.replica = std::make_unique<ShardReplica>(*n.loop, o, *n.store, fetch);
    Status s = n.replica->Start(bootstrap ? std::vector<RaftPeer>(peers_.begin(), peers_.begin() + 3)
                                          : std::vector<RaftPeer>{});
    ASSERT_TRUE(s.ok()) << s.ToString();
    nodes_[id] = std::move(n);
  }
  static void Shut(Node& n) {
    if (n.replica) n.replica->Close();
    n.replica.reset();
    if (n.loop) n.loop->Stop();
    n.loop.reset();
    n.store.reset();
  }
  uint64_t Leader() {
    uint64_t found = 0;
    WaitFor([&] {
      for (auto& [id, n] : nodes_) {
        if (n.replica && n.replica->GetStatus().role == "leader") found = id;
      }
      return found != 0;
    }, 10s);
    return found;
  }

  std::string dir_;
  std::vector<RaftPeer> peers_;
  std::map<uint64_t, Node> nodes_;
  unsigned snapshot_threshold_ = 1024;
  unsigned snapshot_trailing_ = 512;
  std::atomic<int> fetches_{0};
};

// The same with a tiny log: a snapshot every 4 entries, 2 kept behind it.
class CompactingShard : public ReplicatedShard {
 protected:
  void SetUp() override {
    snapshot_threshold_ = 4;
    snapshot_trailing_ = 2;
    ReplicatedShard::SetUp();
  }
};

TEST_F(ReplicatedShard, EveryReplicaStoresEveryAcknowledgedPointOnce) {
  uint64_t leader = Leader();
  ASSERT_NE(leader, 0u);
  uint64_t acked = 0;
  for (int i = 0; i < 30; ++i) {
    auto r = nodes_[leader].replica->Write(Command("k" + std::to_string(i), "h" + std::to_string(i % 4), 10), 5s);
    ASSERT_TRUE(r.ok()) << r.status().ToString();
    EXPECT_FALSE(r->duplicate);
    acked += r->stored;
  }
  EXPECT_EQ(acked, 300u);
  // A retried key is applied once, on every replica.
  auto again = nodes_[leader].replica->Write(Command("k7", "h3", 10), 5s);
  ASSERT_TRUE(again.ok());
  EXPECT_TRUE(again->duplicate);
  EXPECT_EQ(again->stored, 10u);
  for (auto& [id, n] : nodes_) {
    EXPECT_TRUE(WaitFor([&] { return n.store->point_count() == 300; }, 10s))
        << "replica " << id << " has " << n.store->point_count();
  }
}

TEST_F(ReplicatedShard, FollowerRefusesWithALeaderHint) {
  uint64_t leader = Leader();
  ASSERT_NE(leader, 0u);
  ASSERT_TRUE(nodes_[leader].replica->Write(Command("a", "h", 1), 5s).ok());
  uint64_t follower = leader == 1 ? 2 : 1;
  ASSERT_TRUE(WaitFor([&] { return nodes_[follower].store->point_count() == 1; }, 10s));
  auto r = nodes_[follower].replica->Write(Command("b", "h", 1), 5s);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), Code::kUnavailable);
  EXPECT_EQ(r.status().details()["leader_id"], leader);
}

TEST_F(ReplicatedShard, RestartReplaysWithoutApplyingTwice) {
  uint64_t leader = Leader();
  ASSERT_NE(leader, 0u);
  for (int i = 0; i < 10; ++i) ASSERT_TRUE(nodes_[leader].replica->Write(Command("r" + std::to_string(i), "h", 5), 5s).ok());
  uint64_t follower = leader == 3 ? 2 : 3;
  ASSERT_TRUE(WaitFor([&] { return nodes_[follower].store->point_count() == 50; }, 10s));
  Shut(nodes_[follower]);
  // Writes go on while it is away (two of three is a majority).
  for (int i = 10; i < 20; ++i) ASSERT_TRUE(nodes_[leader].replica->Write(Command("r" + std::to_string(i), "h", 5), 5s).ok());
  Open(follower);  // replays its log (entries it already has are skipped by index), then catches up
  EXPECT_TRUE(WaitFor([&] { return nodes_[follower].store->point_count() == 100; }, 10s))
      << nodes_[follower].store->point_count();
  std::this_thread::sleep_for(200ms);
  EXPECT_EQ(nodes_[follower].store->point_count(), 100u);
  EXPECT_EQ(nodes_[follower].store->applied_index(), nodes_[leader].store->applied_index());
}

// Applied entries wait in each store's write buffer; Raft's log is what keeps
// them. Killing every replica (no flush) loses nothing acknowledged.
TEST_F(ReplicatedShard, BufferedEntriesSurviveTheLossOfEveryReplica) {
  uint64_t leader = Leader();
  ASSERT_NE(leader, 0u);
  for (int i = 0; i < 10; ++i) ASSERT_TRUE(nodes_[leader].replica->Write(Command("w" + std::to_string(i), "h", 5), 5s).ok());
  for (auto& [id, n] : nodes_) {
    ASSERT_TRUE(WaitFor([&] { return n.store->applied_index() >= 10; }, 10s)) << id;
    EXPECT_LT(n.store->durable_index(), n.store->applied_index()) << id << ": nothing was buffered";
  }
  for (auto& [id, n] : nodes_) Shut(n);  // destroys the stores unflushed, as kill -9 would
  for (uint64_t id = 1; id <= 3; ++id) Open(id);
  leader = Leader();
  ASSERT_NE(leader, 0u);
  // The retry of an acknowledged write is still a duplicate: its key came back too.
  auto again = nodes_[leader].replica->Write(Command("w3", "h", 5), 5s);
  ASSERT_TRUE(again.ok()) << again.status().ToString();
  EXPECT_TRUE(again->duplicate);
  for (auto& [id, n] : nodes_) {
    EXPECT_TRUE(WaitFor([&] { return n.store->point_count() == 50; }, 10s)) << id << ": " << n.store->point_count();
    auto agg = n.store->Aggregate({});
    ASSERT_TRUE(agg.ok());
    EXPECT_EQ(agg->count, 50u) << id;
  }
}

TEST_F(ReplicatedShard, WithoutQuorumAWriteTimesOutAndIsNeverAcknowledged) {
  uint64_t leader = Leader();
  ASSERT_NE(leader, 0u);
  for (uint64_t id = 1; id <= 3; ++id) {
    if (id != leader) Shut(nodes_[id]);
  }
  auto r = nodes_[leader].replica->Write(Command("lonely", "h", 3), 1500ms);
  ASSERT_FALSE(r.ok());
  // Timed out; or the leader stepped down with the entry in flight (kRaft), or
  // before it was proposed (not the leader: kUnavailable).
  EXPECT_TRUE(r.status().code() == Code::kTimeout || r.status().code() == Code::kRaft ||
              r.status().code() == Code::kUnavailable)
      << r.status().ToString();
  EXPECT_EQ(nodes_[leader].store->point_count(), 0u);
}

TEST_F(CompactingShard, AFollowerBehindTheLogCatchesUpBySnapshot) {
  uint64_t leader = Leader();
  ASSERT_NE(leader, 0u);
  for (int i = 0; i < 5; ++i) ASSERT_TRUE(nodes_[leader].replica->Write(Command("a" + std::to_string(i), "h1", 3), 5s).ok());
  uint64_t follower = leader == 3 ? 2 : 3;
  ASSERT_TRUE(WaitFor([&] { return nodes_[follower].store->point_count() == 15; }, 10s));
  Shut(nodes_[follower]);
  // Far more entries than the leader keeps: the follower cannot catch up from the log.
  for (int i = 0; i < 30; ++i) {
    ASSERT_TRUE(nodes_[leader].replica->Write(Command("b" + std::to_string(i), "h" + std::to_string(i % 3), 2), 5s).ok());
  }
  Open(follower);
  EXPECT_TRUE(WaitFor([&] { return nodes_[follower].store->point_count() == 75; }, 15s))
      << nodes_[follower].store->point_count();
  EXPECT_TRUE(WaitFor([&] { return nodes_[follower].replica->snapshots_installed() >= 1; }, 5s));
  // And it follows the log again afterwards, each entry once.
  for (int i = 0; i < 5; ++i) ASSERT_TRUE(nodes_[leader].replica->Write(Command("c" + std::to_string(i), "h9", 1), 5s).ok());
  EXPECT_TRUE(WaitFor([&] { return nodes_[follower].store->point_count() == 80; }, 10s));
  // A retry of a key stored before the snapshot is still recognised after it.
  auto again = nodes_[leader].replica->Write(Command("b3", "h0", 2), 5s);
  ASSERT_TRUE(again.ok());
  EXPECT_TRUE(again->duplicate);
  EXPECT_TRUE(WaitFor([&] {
    return nodes_[follower].store->applied_index() == nodes_[leader].store->applied_index();
  }, 10s));
  EXPECT_EQ(nodes_[follower].store->point_count(), 80u);
  auto a = nodes_[leader].store->Aggregate({});
  auto b = nodes_[follower].store->Aggregate({});
  ASSERT_TRUE(a.ok() && b.ok());
  EXPECT_EQ(a->count, b->count);
  EXPECT_DOUBLE_EQ(a->sum, b->sum);
}

TEST_F(CompactingShard, ARestartWithItsOwnSnapshotNeedsNoTransfer) {
  uint64_t leader = Leader();
  ASSERT_NE(leader, 0u);
  for (int i = 0; i < 20; ++i) ASSERT_TRUE(nodes_[leader].replica->Write(Command("k" + std::to_string(i), "h", 2), 5s).ok());
  for (auto& [id, n] : nodes_) ASSERT_TRUE(WaitFor([&] { return n.store->point_count() == 40; }, 10s));
  // Every replica has compacted by now; restart them all.
  for (auto& [id, n] : nodes_) Shut(n);
  fetches_ = 0;
  for (uint64_t id = 1; id <= 3; ++id) Open(id);
  leader = Leader();
  ASSERT_NE(leader, 0u);
  ASSERT_TRUE(nodes_[leader].replica->Write(Command("after", "h", 1), 5s).ok());
  for (auto& [id, n] : nodes_) {
    EXPECT_TRUE(WaitFor([&] { return n.store->point_count() == 41; }, 10s)) << id << ": " << n.store->point_count();
    EXPECT_EQ(n.replica->snapshots_installed(), 0u);
  }
  EXPECT_EQ(fetches_.load(), 0);
}

TEST_F(CompactingShard, AReplicaMovesToANewNodeWhileWritesGoOn) {
  uint64_t leader = Leader();
  ASSERT_NE(leader, 0u);
  for (int i = 0; i < 20; ++i) ASSERT_TRUE(nodes_[leader].replica->Write(Command("m" + std::to_string(i), "h", 2), 5s).ok());
  // Node 4 starts empty and joins: it catches up by snapshot (the log is compacted), then votes.
  Open(4, /*bootstrap=*/false);
  Status added = nodes_[leader].replica->AddVoter(4, peers_[3].address, 20s);
  ASSERT_TRUE(added.ok()) << added.ToString();
  EXPECT_TRUE(WaitFor([&] { return nodes_[4].store->point_count() == 40; }, 10s)) << nodes_[4].store->point_count();
  // Adding it again changes nothing.
  EXPECT_TRUE(nodes_[leader].replica->AddVoter(4, peers_[3].address, 5s).ok());
  // A follower leaves; the group is {leader, other, 4}.
  uint64_t leaving = leader == 1 ? 2 : 1;
  Status removed = nodes_[leader].replica->RemoveMember(leaving, 10s);
  ASSERT_TRUE(removed.ok()) << removed.ToString();
  auto voters = nodes_[leader].replica->Voters();
  std::sort(voters.begin(), voters.end());
  std::vector<uint64_t> expected;
  for (uint64_t id = 1; id <= 4; ++id) {
    if (id != leaving) expected.push_back(id);
  }
  EXPECT_EQ(voters, expected);
  Shut(nodes_[leaving]);
  // A majority of the new group acknowledges writes, node 4 among the replicas.
  for (int i = 0; i < 10; ++i) ASSERT_TRUE(nodes_[leader].replica->Write(Command("n" + std::to_string(i), "h", 1), 5s).ok());
  EXPECT_TRUE(WaitFor([&] { return nodes_[4].store->point_count() == 50; }, 10s)) << nodes_[4].store->point_count();
  // Followers refuse membership changes and name the leader.
  uint64_t follower = 4;
  Status refused = nodes_[follower].replica->RemoveMember(leader, 5s);
  EXPECT_EQ(refused.code(), Code::kUnavailable);
  EXPECT_EQ(refused.details()["leader_id"], leader);
}

TEST_F(ReplicatedShard, ALeaderAskedToRemoveItselfHandsOverFirst) {
  uint64_t leader = Leader();
  ASSERT_NE(leader, 0u);
  ASSERT_TRUE(nodes_[leader].replica->Write(Command("before", "h", 3), 5s).ok());
  // Writes keep arriving at the old leader during the hand-over: each is
  // stored or refused ("not the leader"), never a crash or a hang.
  std::atomic<bool> stop{false};
  std::atomic<int> stored{0}, refused{0};
  std::thread writer([&] {
    for (int i = 0; i < 500 && !stop; ++i) {
      auto r = nodes_[leader].replica->Write(Command("during" + std::to_string(i), "h", 1), 2s);
      if (r.ok()) {
        ++stored;
        continue;
      }
      ++refused;
      EXPECT_TRUE(r.status().code() == Code::kUnavailable || r.status().code() == Code::kRaft) << r.status().ToString();
    }
  });
  Status handed = nodes_[leader].replica->RemoveMember(leader, 5s);
  stop = true;
  writer.join();
  RecordProperty("writes_refused_during_hand_over", refused.load());
  ASSERT_EQ(handed.code(), Code::kUnavailable) << handed.ToString();
  const uint64_t next = handed.details()["leader_id"].get<uint64_t>();
  ASSERT_NE(next, 0u);
  ASSERT_NE(next, leader);
  EXPECT_EQ(nodes_[next].replica->GetStatus().role, "leader");
  // The new leader removes the old one; the group goes on with the other two.
  Status removed = nodes_[next].replica->RemoveMember(leader, 5s);
  ASSERT_TRUE(removed.ok()) << removed.ToString();
  auto voters = nodes_[next].replica->Voters();
  EXPECT_EQ(voters.size(), 2u);
  EXPECT_EQ(std::count(voters.begin(), voters.end(), leader), 0);
  ASSERT_TRUE(nodes_[next].replica->Write(Command("after", "h", 2), 5s).ok());
  const uint64_t expected = 3 + stored + 2;
  for (auto& [id, n] : nodes_) {
    if (id == leader) continue;
    EXPECT_TRUE(WaitFor([&] { return n.store->point_count() == expected; }, 5s)) << id << ": " << n.store->point_count();
  }
}

}  // namespace
}  // namespace rm::raft
