// Deterministic tests of the shard state machine (ShardStateMachine over a real
// ShardStore, bound through FsmBinding exactly as RaftGroup binds it) on
// libraft's in-memory raft_fixture: simulated time and network, so elections,
// partitions and snapshot installs happen in the same order on every run.
//
// Every check compares the replicas' DuckDB stores: applied index, point count
// and sum of values must be equal, and equal to what the test committed.
#include "src/raft/fsm_binding.h"
#include "src/raft/shard_state_machine.h"
#include "tests/unit/raft_test_util.h"

extern "C" {
#include <raft/fixture.h>
}

#include <gtest/gtest.h>

#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <memory>
#include <unistd.h>

namespace rm::raft {
namespace {

constexpr unsigned kServers = 3;
constexpr uint32_t kShard = 5;

// A command of `points` points of host `host`, values 0..points-1 (sum known).
std::string Command(const std::string& key, const std::string& host, int points) {
  return testing_util::PointsCommand(kShard, key, host, points).SerializeAsString();
}

struct raft_tracer kQuiet = {nullptr, 2, [](struct raft_tracer*, int, const void*) {}};

struct Replica {
  std::unique_ptr<ShardStore> store;
  std::unique_ptr<ShardStateMachine> sm;
  FsmBinding binding;
};

struct StoreState {
  uint64_t applied = 0;
  uint64_t count = 0;
  double sum = 0;
  bool operator==(const StoreState&) const = default;
};

std::ostream& operator<<(std::ostream& os, const StoreState& s) {
  return os << "{applied " << s.applied << ", count " << s.count << ", sum " << s.sum << "}";
}

class ShardFixture : public testing::Test {
 protected:
  void SetUp() override {
    dir_ = testing::TempDir() + "/shard_fixture_test_" + std::to_string(getpid()) + "_" +
           testing::UnitTest::GetInstance()->current_test_info()->name();
    std::filesystem::remove_all(dir_);
    ASSERT_EQ(raft_fixture_init(&f_), 0);
    for (unsigned i = 0; i < kServers; ++i) {
      auto& r = replicas_[i];
      const std::string d = dir_ + "/n" + std::to_string(i + 1);
      std::filesystem::create_directories(d);
      auto store = ShardStore::Open(d + "/shard.duckdb", kShard, {});
      ASSERT_TRUE(store.ok()) << store.status().ToString();
      r.store = std::move(*store);
      // Snapshots travel out of band; here straight from another replica's store.
      r.sm = std::make_unique<ShardStateMachine>(*r.store, i + 1, [this](uint32_t, uint64_t min_index, uint64_t source) {
        ++fetches_;
        ShardStore* from = source >= 1 && source <= kServers ? replicas_[source - 1].store.get() : nullptr;
        for (auto& other : replicas_) {
          if (from && from->applied_index() >= min_index) break;
          from = other.store.get();
        }
        if (from && from->applied_index() >= min_index) return from->ExportSnapshot();
        return Result<std::string>(Status(Code::kUnavailable, "no replica has applied that far"));
      });
      r.binding.sm = r.sm.get();
      r.binding.id = i + 1;
      r.binding.Bind();
      ASSERT_EQ(raft_fixture_grow(&f_, &r.binding.fsm), 0);
      r.binding.raft = raft_fixture_get(&f_, i);
      // The fixture traces every step to stdout; keep it for debugging only.
      if (getenv("RM_FIXTURE_TRACE") == nullptr) r.binding.raft->tracer = &kQuiet;
    }
    struct raft_configuration conf;
    ASSERT_EQ(raft_fixture_configuration(&f_, kServers, &conf), 0);
    ASSERT_EQ(raft_fixture_bootstrap(&f_, &conf), 0);
    raft_configuration_close(&conf);
    ASSERT_EQ(raft_fixture_start(&f_), 0);
    fixture_open_ = true;
  }

  void TearDown() override {
    if (fixture_open_) raft_fixture_close(&f_);
    for (auto& r : replicas_) r.store.reset();
    std::filesystem::remove_all(dir_);
  }

  struct raft* Raft(unsigned i) { return raft_fixture_get(&f_, i); }

  // Appends `command` on server `i` (which must believe it leads); returns the
  // entry's index, or 0 when the library refused it.
  uint64_t Propose(unsigned i, const std::string& command) {
    struct raft_buffer buf;
    const std::string entry = RaftGroup::EncodeEntry(command);
    buf.len = entry.size();
    buf.base = raft_malloc(buf.len);
    memcpy(buf.base, entry.data(), buf.len);
    auto* req = new struct raft_apply;
    const uint64_t index = raft_last_index(Raft(i)) + 1;
    int rv = raft_apply(Raft(i), req, &buf, 1, [](struct raft_apply* r, int, void*) { delete r; });
    if (rv != 0) {
      raft_free(buf.base);
      delete req;
      return 0;
    }
    return index;
  }

  // Steps until server `i` (kServers: every server) has applied `index`.
  bool AppliedEverywhere(uint64_t index, unsigned i = kServers) {
    return raft_fixture_step_until_applied(&f_, i, index, 10000);
  }

  StoreState State(unsigned i) {
    auto agg = replicas_[i].store->Aggregate(PointFilter{});
    EXPECT_TRUE(agg.ok()) << agg.status().ToString();
    return {replicas_[i].store->applied_index(), agg.ok() ? agg->count : 0, agg.ok() ? agg->sum : 0};
  }

  void ExpectReplicasEqual(uint64_t count, double sum) {
    const StoreState first = State(0);
    EXPECT_EQ(first.count, count);
    EXPECT_DOUBLE_EQ(first.sum, sum);
    for (unsigned i = 1; i < kServers; ++i) EXPECT_EQ(State(i), first) << "replica " << i + 1;
  }

  void Isolate(unsigned i) {
    for (unsigned j = 0; j < kServers; ++j) {
      if (j == i) continue;
      raft_fixture_disconnect(&f_, i, j);
      raft_fixture_disconnect(&f_, j, i);
    }
  }
  void Heal(unsigned i) {
    for (unsigned j = 0; j < kServers; ++j) {
      if (j == i) continue;
      raft_fixture_reconnect(&f_, i, j);
      raft_fixture_reconnect(&f_, j, i);
    }
  }

  std::string dir_;
  struct raft_fixture f_ {};
  bool fixture_open_ = false;
  Replica replicas_[kServers];
  int fetches_ = 0;
};

// Sum of 0..n-1.
double Tri(int n) { return n * (n - 1) / 2.0; }

TEST_F(ShardFixture, ElectionsKeepReplicasIdentical) {
  raft_fixture_elect(&f_, 0);
  uint64_t last = 0;
  for (int i = 0; i < 10; ++i) ASSERT_NE(last = Propose(0, Command("a" + std::to_string(i), "h1", 10)), 0u);
  ASSERT_TRUE(AppliedEverywhere(last));
  ExpectReplicasEqual(100, 10 * Tri(10));

  // Depose the leader: another server wins, and its writes reach every store.
  raft_fixture_depose(&f_);
  ASSERT_TRUE(raft_fixture_step_until_has_leader(&f_, 10000));
  const unsigned leader = raft_fixture_leader_index(&f_);
  for (int i = 0; i < 5; ++i) ASSERT_NE(last = Propose(leader, Command("b" + std::to_string(i), "h2", 4)), 0u);
  ASSERT_TRUE(AppliedEverywhere(last));
  ExpectReplicasEqual(120, 10 * Tri(10) + 5 * Tri(4));
}

TEST_F(ShardFixture, PartitionedLeaderCannotCommitAndItsEntryIsDiscarded) {
  raft_fixture_elect(&f_, 0);
  uint64_t last = Propose(0, Command("before", "h1", 7));
  ASSERT_TRUE(AppliedEverywhere(last));

  // The leader is cut off; it still accepts an entry into its log...
  Isolate(0);
  const uint64_t orphan = Propose(0, Command("orphan", "h1", 1000));
  ASSERT_NE(orphan, 0u);
  // ...but never commits it, while the majority elects a new leader and serves.
  ASSERT_TRUE(raft_fixture_step_until_state_is(&f_, 1, RAFT_LEADER, 10000) ||
              raft_fixture_step_until_state_is(&f_, 2, RAFT_LEADER, 10000));
  const unsigned leader = raft_state(Raft(1)) == RAFT_LEADER ? 1 : 2;
  ASSERT_NE(last = Propose(leader, Command("majority", "h2", 3)), 0u);
  ASSERT_TRUE(AppliedEverywhere(last, leader));
  ASSERT_TRUE(AppliedEverywhere(last, 3 - leader));
  EXPECT_EQ(State(0).count, 7u) << "the isolated leader applied an entry it could not commit";
  EXPECT_NE(raft_state(Raft(0)), RAFT_LEADER) << "an isolated leader keeps believing it leads";

  // Healing: the old leader drops its orphan entry and converges.
  Heal(0);
  ASSERT_TRUE(AppliedEverywhere(last));
  ExpectReplicasEqual(10, Tri(7) + Tri(3));
}

TEST_F(ShardFixture, ApplyIsIdempotent) {
  raft_fixture_elect(&f_, 0);
  // The same idempotency key committed twice (a client's retry) stores once.
  uint64_t first = Propose(0, Command("retry", "h1", 6));
  uint64_t second = Propose(0, Command("retry", "h1", 6));
  ASSERT_NE(second, 0u);
  ASSERT_TRUE(AppliedEverywhere(second));
  ExpectReplicasEqual(6, Tri(6));

  // An entry handed over again (a replay after a restart) is skipped.
  for (auto& r : replicas_) {
    Result<ApplyOutcome> again = r.sm->ApplyEntry(first, Command("retry", "h1", 6));
    ASSERT_TRUE(again.ok()) << again.status().ToString();
    EXPECT_TRUE(again->duplicate);
    Result<ApplyOutcome> other = r.sm->ApplyEntry(first, Command("other-key", "h1", 6));
    ASSERT_TRUE(other.ok());
    EXPECT_TRUE(other->duplicate) << "an index applied before is applied again";
  }
  ExpectReplicasEqual(6, Tri(6));
  // A malformed entry is an error, never silently skipped.
  EXPECT_FALSE(replicas_[0].sm->ApplyEntry(second + 1, "\x01\x02 not a command").ok());
}

TEST_F(ShardFixture, EntriesAppliedTogetherStopAtAMalformedOne) {
  ShardStateMachine& sm = *replicas_[0].sm;
  const std::string a = Command("b1", "h1", 4), b = Command("b2", "h2", 3), c = Command("b3", "h3", 2);
  // One transaction for three entries; a replayed index inside is skipped.
  auto results = sm.ApplyEntries({{10, a}, {11, b}, {11, c}, {12, c}});
  ASSERT_EQ(results.size(), 4u);
  for (const auto& r : results) ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(results[0]->stored, 4u);
  EXPECT_TRUE(results[2]->duplicate);
  EXPECT_EQ(results[3]->stored, 2u);
  EXPECT_EQ(State(0), (StoreState{12, 9, Tri(4) + Tri(3) + Tri(2)}));
  // Entries after a malformed one are not applied.
  results = sm.ApplyEntries({{13, Command("b4", "h1", 5)}, {14, "junk"}, {15, Command("b5", "h1", 5)}});
  ASSERT_EQ(results.size(), 2u);
  EXPECT_TRUE(results[0].ok());
  EXPECT_FALSE(results[1].ok());
  EXPECT_EQ(State(0), (StoreState{13, 14, Tri(4) + Tri(3) + Tri(2) + Tri(5)}));
}

TEST_F(ShardFixture, LaggingReplicaCatchesUpBySnapshotWithEqualState) {
  for (unsigned i = 0; i < kServers; ++i) {
    raft_set_snapshot_threshold(Raft(i), 4);
    raft_set_snapshot_trailing(Raft(i), 1);
  }
  raft_fixture_elect(&f_, 0);
  uint64_t last = Propose(0, Command("k0", "h1", 5));
  ASSERT_TRUE(AppliedEverywhere(last));

  // Replica 3 is away while the log moves on and is compacted past its position.
  raft_fixture_kill(&f_, 2);
  int points = 5;
  double sum = Tri(5);
  for (int i = 1; i <= 20; ++i) {
    ASSERT_NE(last = Propose(0, Command("k" + std::to_string(i), "h" + std::to_string(i % 3), i)), 0u);
    points += i;
    sum += Tri(i);
    ASSERT_TRUE(AppliedEverywhere(last, 0));
  }
  ASSERT_TRUE(AppliedEverywhere(last, 1));

  raft_fixture_revive(&f_, 2);
  ASSERT_TRUE(AppliedEverywhere(last, 2));
  // Only a snapshot could bring it back: the leader's log no longer has its next entry.
  EXPECT_GE(replicas_[2].sm->snapshots_installed(), 1u);
  EXPECT_GE(fetches_, 1);
  ExpectReplicasEqual(points, sum);

  // After the install it follows the log again, and keys stay deduplicated.
  ASSERT_NE(last = Propose(0, Command("k20", "h2", 20)), 0u);
  ASSERT_NE(last = Propose(0, Command("after", "h9", 2)), 0u);
  ASSERT_TRUE(AppliedEverywhere(last));
  ExpectReplicasEqual(points + 2, sum + Tri(2));
}

TEST_F(ShardFixture, SnapshotPayloadRoundTrips) {
  raft_fixture_elect(&f_, 0);
  uint64_t last = Propose(0, Command("x", "h1", 3));
  ASSERT_TRUE(AppliedEverywhere(last));
  // The entry waits in the write buffer; a snapshot writes it to DuckDB first
  // (libraft drops the log behind a snapshot).
  EXPECT_LT(replicas_[1].store->durable_index(), replicas_[1].store->applied_index());
  Result<std::string> payload = replicas_[1].sm->Snapshot(last);
  ASSERT_TRUE(payload.ok()) << payload.status().ToString();
  EXPECT_EQ(replicas_[1].store->durable_index(), replicas_[1].store->applied_index());
  Result<ShardSnapshotRef> ref = ShardStateMachine::ParseSnapshot(*payload);
  ASSERT_TRUE(ref.ok());
  EXPECT_EQ(ref->index, replicas_[1].store->applied_index());
  EXPECT_EQ(ref->source_id, 2u);
  EXPECT_FALSE(ShardStateMachine::ParseSnapshot("short").ok());
  // Restoring a snapshot the store already has (a restart) fetches nothing.
  EXPECT_TRUE(replicas_[1].sm->Restore(replicas_[1].sm->SnapshotPayload()).ok());
  EXPECT_EQ(fetches_, 0);
}

}  // namespace
}  // namespace rm::raft
