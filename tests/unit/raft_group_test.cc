// Tests of src/raft: entry framing, and three real replicas (each on its own
// loop, as on three nodes) over TCP on 127.0.0.1: election, replication in log
// order, refusals on followers, failover after the leader goes away, and a
// restarted replica catching up from its log.
#include "src/raft/election_log.h"
#include "src/raft/raft_group.h"
#include "src/raft/raft_network.h"

#include "tests/unit/raft_test_util.h"

#include <gtest/gtest.h>
#include <spdlog/sinks/ringbuffer_sink.h>
#include <spdlog/spdlog.h>

#include <chrono>
#include <filesystem>
#include <map>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

namespace rm::raft {
namespace {

using namespace std::chrono_literals;
using testing_util::FreePort;

TEST(RaftEntry, FramesToMultiplesOfEight) {
  for (size_t n : {0, 1, 7, 8, 9, 100, 4096}) {
    std::string command(n, 'x');
    std::string entry = RaftGroup::EncodeEntry(command);
    EXPECT_EQ(entry.size() % 8, 0u) << n;
    EXPECT_GE(entry.size(), n + 8);
    EXPECT_LT(entry.size(), n + 16);
    std::string_view back;
    ASSERT_TRUE(RaftGroup::DecodeEntry(entry.data(), entry.size(), &back)) << n;
    EXPECT_EQ(back, command);
  }
  std::string_view out;
  EXPECT_FALSE(RaftGroup::DecodeEntry("abc", 3, &out));
  std::string bad = RaftGroup::EncodeEntry("hello");
  bad[0] = 100;  // length beyond the buffer
  EXPECT_FALSE(RaftGroup::DecodeEntry(bad.data(), bad.size(), &out));
  std::string padded = RaftGroup::EncodeEntry("hello") + std::string(8, '\0');  // too much padding
  EXPECT_FALSE(RaftGroup::DecodeEntry(padded.data(), padded.size(), &out));
}

// Records what was applied (the applying thread is the loop; tests read from theirs).
class RecordingMachine : public StateMachine {
 public:
  Status Apply(uint64_t index, std::string_view command) override {
    std::lock_guard<std::mutex> lock(mu_);
    entries_.emplace_back(index, std::string(command));
    return Status::Ok();
  }
  // No out-of-band state to ship: these groups never compact their log.
  Result<std::string> Snapshot(uint64_t) override { return Status(Code::kUnavailable, "no snapshots"); }
  Status Restore(std::string_view) override { return Status(Code::kInternal, "no snapshots"); }
  std::vector<std::pair<uint64_t, std::string>> entries() {
    std::lock_guard<std::mutex> lock(mu_);
    return entries_;
  }

 private:
  std::mutex mu_;
  std::vector<std::pair<uint64_t, std::string>> entries_;
};

struct Replica {
  std::unique_ptr<RaftLoop> loop;
  std::unique_ptr<RecordingMachine> sm;
  std::unique_ptr<RaftGroup> group;
};

class ThreeReplicas : public testing::Test {
 protected:
  void SetUp() override {
    dir_ = testing::TempDir() + "/raft_group_test_" + std::to_string(getpid()) + "_" +
           testing::UnitTest::GetInstance()->current_test_info()->name();
    std::filesystem::remove_all(dir_);
    for (uint64_t id = 1; id <= 3; ++id) peers_.push_back({id, "127.0.0.1:" + std::to_string(FreePort())});
    for (uint64_t id = 1; id <= 3; ++id) Open(id);
  }
  void TearDown() override {
    for (auto& [id, r] : replicas_) Shut(r);
    std::filesystem::remove_all(dir_);
  }

  void Open(uint64_t id) {
    Replica r;
    r.loop = std::make_unique<RaftLoop>();
    ASSERT_TRUE(r.loop->Start().ok());
    r.sm = std::make_unique<RecordingMachine>();
    RaftGroupOptions o;
    o.id = id;
    o.address = peers_[id - 1].address;
    o.dir = dir_ + "/r" + std::to_string(id);
    o.election_timeout_ms = 300;
    o.heartbeat_timeout_ms = 50;
    r.group = std::make_unique<RaftGroup>(*r.loop, o, *r.sm);
    Status s = r.group->Start(peers_);
    ASSERT_TRUE(s.ok()) << s.ToString();
    replicas_[id] = std::move(r);
  }
  static void Shut(Replica& r) {
    if (r.group) r.group->Close();
    r.group.reset();
    if (r.loop) r.loop->Stop();
    r.loop.reset();
  }

  // The id of the replica that leads (among those open), waiting up to 10 s.
  uint64_t WaitLeader() {
    auto deadline = std::chrono::steady_clock::now() + 10s;
    while (std::chrono::steady_clock::now() < deadline) {
      for (auto& [id, r] : replicas_) {
        if (r.group && r.group->GetStatus().role == "leader") return id;
      }
      std::this_thread::sleep_for(20ms);
    }
    return 0;
  }

  // Waits until replica `id` applied `n` commands.
  bool WaitApplied(uint64_t id, size_t n) {
    auto deadline = std::chrono::steady_clock::now() + 10s;
    while (std::chrono::steady_clock::now() < deadline) {
      if (replicas_[id].sm->entries().size() >= n) return true;
      std::this_thread::sleep_for(10ms);
    }
    return false;
  }

  std::vector<uint64_t> ProposeAll(uint64_t leader, const std::string& prefix, int n) {
    std::vector<std::future<Result<uint64_t>>> futures;
    for (int i = 0; i < n; ++i) futures.push_back(replicas_[leader].group->Propose(prefix + std::to_string(i)));
    std::vector<uint64_t> indexes;
    for (auto& f : futures) {
      EXPECT_EQ(f.wait_for(10s), std::future_status::ready);
      auto r = f.get();
      EXPECT_TRUE(r.ok()) << r.status().ToString();
      if (r.ok()) indexes.push_back(*r);
    }
    return indexes;
  }

  std::string dir_;
  std::vector<RaftPeer> peers_;
  std::map<uint64_t, Replica> replicas_;
};

TEST_F(ThreeReplicas, ElectReplicateInOrderEverywhere) {
  uint64_t leader = WaitLeader();
  ASSERT_NE(leader, 0u);
  auto indexes = ProposeAll(leader, "cmd-", 50);
  ASSERT_EQ(indexes.size(), 50u);
  for (size_t i = 1; i < indexes.size(); ++i) EXPECT_EQ(indexes[i], indexes[i - 1] + 1);
  for (uint64_t id = 1; id <= 3; ++id) {
    ASSERT_TRUE(WaitApplied(id, 50)) << "replica " << id;
    auto entries = replicas_[id].sm->entries();
    ASSERT_EQ(entries.size(), 50u);
    for (size_t i = 0; i < entries.size(); ++i) {
      EXPECT_EQ(entries[i].second, "cmd-" + std::to_string(i));
      EXPECT_EQ(entries[i].first, indexes[i]);
    }
  }
  auto st = replicas_[leader].group->GetStatus();
  EXPECT_GE(st.term, 1u);
  EXPECT_GE(st.commit_index, indexes.back());
  EXPECT_EQ(st.leader_id, leader);
}

TEST_F(ThreeReplicas, FollowersRefuseAndNameTheLeader) {
  uint64_t leader = WaitLeader();
  ASSERT_NE(leader, 0u);
  ProposeAll(leader, "x", 1);  // every replica has heard from the leader
  uint64_t follower = leader == 1 ? 2 : 1;
  ASSERT_TRUE(WaitApplied(follower, 1));
  auto r = replicas_[follower].group->Propose("nope").get();
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), Code::kUnavailable);
  EXPECT_EQ(r.status().details()["leader_id"], leader);
  EXPECT_EQ(r.status().details()["leader_address"], peers_[leader - 1].address);
}

TEST_F(ThreeReplicas, FailoverAndCatchUpAfterRestart) {
  uint64_t leader = WaitLeader();
  ASSERT_NE(leader, 0u);
  ProposeAll(leader, "a", 20);
  Shut(replicas_[leader]);  // the leader goes away
  replicas_.erase(leader);
  uint64_t next = WaitLeader();
  ASSERT_NE(next, 0u);
  EXPECT_NE(next, leader);
  ProposeAll(next, "b", 20);
  // The old leader comes back with its log and catches up.
  Open(leader);
  ASSERT_TRUE(WaitApplied(leader, 40));
  auto entries = replicas_[leader].sm->entries();
  ASSERT_EQ(entries.size(), 40u);
  EXPECT_EQ(entries[19].second, "a19");
  EXPECT_EQ(entries[39].second, "b19");
  for (auto& [id, r] : replicas_) {
    ASSERT_TRUE(WaitApplied(id, 40));
    EXPECT_EQ(r.sm->entries(), entries) << "replica " << id << " diverged";
  }
}

// The library's account of an election reaches the node's log (ElectionLog),
// named by group; its per-heartbeat diagnostics do not.
TEST_F(ThreeReplicas, ElectionsAreLoggedWithTheLibrarysReasons) {
  uint64_t leader = WaitLeader();
  ASSERT_NE(leader, 0u);
  auto sink = std::make_shared<spdlog::sinks::ringbuffer_sink_mt>(1000);
  auto previous = spdlog::default_logger();
  spdlog::set_default_logger(std::make_shared<spdlog::logger>("election-test", sink));
  ProposeAll(leader, "a", 5);
  Shut(replicas_[leader]);
  replicas_.erase(leader);
  uint64_t next = WaitLeader();
  spdlog::set_default_logger(previous);
  ASSERT_NE(next, 0u);
  bool candidate = false, elected = false;
  for (const auto& line : sink->last_formatted()) {
    candidate |= line.find("raft group 0 raft: convert to candidate") != std::string::npos;
    elected |= line.find("raft group 0 raft: quorum reached") != std::string::npos;
    EXPECT_EQ(line.find("sending"), std::string::npos) << line;  // replication chatter stays out
  }
  EXPECT_TRUE(candidate);
  EXPECT_TRUE(elected);
}

TEST(ElectionLog, KeepsElectionSourcesAndAnyWarning) {
  EXPECT_TRUE(ElectionLog::Keeps("src/election.c", 3));
  EXPECT_TRUE(ElectionLog::Keeps("/build/raft/src/timeout.c", 3));
  EXPECT_TRUE(ElectionLog::Keeps("recv_request_vote_result.c", 3));
  EXPECT_FALSE(ElectionLog::Keeps("src/replication.c", 3));
  EXPECT_FALSE(ElectionLog::Keeps("src/reelection.c", 3));
  EXPECT_FALSE(ElectionLog::Keeps("src/election.c", 5));
  EXPECT_TRUE(ElectionLog::Keeps("src/replication.c", 2));
  EXPECT_FALSE(ElectionLog::Keeps(nullptr, 3));
}

TEST_F(ThreeReplicas, NoQuorumNoCommit) {
  uint64_t leader = WaitLeader();
  ASSERT_NE(leader, 0u);
  for (uint64_t id = 1; id <= 3; ++id) {
    if (id != leader) {
      Shut(replicas_[id]);
      replicas_.erase(id);
    }
  }
  auto f = replicas_[leader].group->Propose("alone");
  // Without a majority the entry never commits: it fails when leadership is
  // lost (the lone leader steps down) or is still pending; never a success.
  if (f.wait_for(3s) == std::future_status::ready) {
    EXPECT_FALSE(f.get().ok());
  }
  EXPECT_TRUE(replicas_[leader].sm->entries().empty());
}

}  // namespace
}  // namespace rm::raft

namespace rm::raft {
namespace {

using namespace std::chrono_literals;

// Three nodes, each with one RaftNetwork (one port) hosting four groups: every
// group elects, replicates only its own commands, and survives a node leaving.
TEST(RaftNetworkTest, ManyGroupsShareOnePortPerNode) {
  constexpr int kNodes = 3, kGroups = 4;
  std::string dir = testing::TempDir() + "/raft_network_test_" + std::to_string(getpid());
  std::filesystem::remove_all(dir);
  struct NodeState {
    std::unique_ptr<RaftLoop> loop;
    std::unique_ptr<RaftNetwork> net;
    std::vector<std::unique_ptr<RecordingMachine>> sms;
    std::vector<std::unique_ptr<RaftGroup>> groups;
  };
  std::vector<NodeState> nodes(kNodes);
  std::vector<RaftPeer> peers;
  for (int n = 0; n < kNodes; ++n) {
    nodes[n].loop = std::make_unique<RaftLoop>();
    ASSERT_TRUE(nodes[n].loop->Start().ok());
    nodes[n].net = std::make_unique<RaftNetwork>(*nodes[n].loop, "127.0.0.1:0");
    Status s = nodes[n].net->Start();
    ASSERT_TRUE(s.ok()) << s.ToString();
    peers.push_back({static_cast<uint64_t>(n + 1), "127.0.0.1:" + std::to_string(nodes[n].net->port())});
  }
  for (int n = 0; n < kNodes; ++n) {
    for (int g = 0; g < kGroups; ++g) {
      nodes[n].sms.push_back(std::make_unique<RecordingMachine>());
      RaftGroupOptions o;
      o.id = n + 1;
      o.address = peers[n].address;
      o.dir = dir + "/n" + std::to_string(n) + "/g" + std::to_string(g);
      o.network = nodes[n].net.get();
      o.group_id = 100 + g;
      o.election_timeout_ms = 300;
      o.heartbeat_timeout_ms = 50;
      nodes[n].groups.push_back(std::make_unique<RaftGroup>(*nodes[n].loop, o, *nodes[n].sms.back()));
      Status s = nodes[n].groups.back()->Start(peers);
      ASSERT_TRUE(s.ok()) << s.ToString();
    }
  }
  auto leader_of = [&](int g, int skip) {
    int found = -1;
    testing_util::WaitFor([&] {
      for (int n = 0; n < kNodes; ++n) {
        if (n != skip && nodes[n].groups[g] && nodes[n].groups[g]->GetStatus().role == "leader") found = n;
      }
      return found >= 0;
    }, 10s);
    return found;
  };
  auto propose = [&](int g, int leader, const std::string& prefix) {
    for (int i = 0; i < 10; ++i) {
      auto r = nodes[leader].groups[g]->Propose(prefix + std::to_string(i)).get();
      ASSERT_TRUE(r.ok()) << r.status().ToString();
    }
  };
  for (int g = 0; g < kGroups; ++g) {
    int leader = leader_of(g, -1);
    ASSERT_GE(leader, 0) << "group " << g;
    propose(g, leader, "g" + std::to_string(g) + "-");
  }
  for (int n = 0; n < kNodes; ++n) {
    for (int g = 0; g < kGroups; ++g) {
      ASSERT_TRUE(testing_util::WaitFor([&] { return nodes[n].sms[g]->entries().size() == 10; }, 10s))
          << "node " << n << " group " << g;
      EXPECT_EQ(nodes[n].sms[g]->entries()[9].second, "g" + std::to_string(g) + "-9");
    }
  }
  // Node 0 goes away entirely; every group still commits on the other two.
  for (auto& g : nodes[0].groups) g->Close();
  nodes[0].net->Close();
  for (int g = 0; g < kGroups; ++g) {
    int leader = leader_of(g, 0);
    ASSERT_GE(leader, 1) << "group " << g;
    propose(g, leader, "after-");
  }
  for (int n = 0; n < kNodes; ++n) {
    for (auto& g : nodes[n].groups) g->Close();
    nodes[n].net->Close();
    nodes[n].groups.clear();
    nodes[n].loop->Stop();
  }
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace rm::raft
