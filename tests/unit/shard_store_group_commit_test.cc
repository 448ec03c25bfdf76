// Group commit: many threads applying to one shard at once, with and without
// the write buffer (shard_store.h). The one difference the tests see: with the
// buffer a duplicate stores nothing and takes no log index.
#include "src/storage/shard_store.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <atomic>
#include <filesystem>
#include <thread>
#include <vector>

namespace rm {
namespace {

raftmetrics::v1::ShardCommand Command(const std::string& key, const std::string& host, int points) {
  raftmetrics::v1::ShardCommand cmd;
  cmd.set_shard(0);
  cmd.set_idempotency_key(key);
  cmd.set_issued_us(1000);
  cmd.set_key_expires_us(1LL << 62);
  auto* s = cmd.add_series();
  s->set_metric("m");
  s->set_partition_key(host);
  (*s->mutable_tags())["host"] = host;
  for (int i = 0; i < points; ++i) {
    s->add_timestamps_us(1000 + i);
    s->add_values(1.0);
  }
  return cmd;
}

class ShardStoreGroupCommit : public ::testing::TestWithParam<uint64_t> {
 protected:
  ShardStoreOptions Options() const {
    ShardStoreOptions o;
    o.write_buffer_points = GetParam();
    o.write_buffer_min_free_bytes = 0;
    return o;
  }
  bool Buffered() const { return GetParam() > 0; }
};

INSTANTIATE_TEST_SUITE_P(WriteBuffer, ShardStoreGroupCommit, ::testing::Values(uint64_t{0}, kWriteBufferPoints));

TEST_P(ShardStoreGroupCommit, ConcurrentAppliesStoreEveryPointOnceAndSurviveReopen) {
  auto dir = std::filesystem::temp_directory_path() / ("rm-group-" + std::to_string(::getpid()) + "-" + std::to_string(GetParam()));
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir);
  const std::string path = (dir / "shard-0.duckdb").string();
  constexpr int kThreads = 8, kPerThread = 25, kPoints = 10;
  {
    auto store = ShardStore::Open(path, 0, Options());
    ASSERT_TRUE(store.ok()) << store.status().ToString();
    std::atomic<uint64_t> stored{0}, duplicates{0};
    std::vector<std::thread> threads;
    for (int t = 0; t < kThreads; ++t) {
      threads.emplace_back([&, t] {
        for (int i = 0; i < kPerThread; ++i) {
          // Every command is sent twice (a retry racing its original): stored once.
          auto cmd = Command("k-" + std::to_string(t) + "-" + std::to_string(i), "h" + std::to_string(i % 5), kPoints);
          for (int attempt = 0; attempt < 2; ++attempt) {
            auto r = (*store)->ApplyNext(cmd);
            ASSERT_TRUE(r.ok()) << r.status().ToString();
            (r->duplicate ? duplicates : stored) += r->duplicate ? 1 : r->stored;
            if (r->duplicate) {
              EXPECT_EQ(r->stored, static_cast<uint64_t>(kPoints));
            }
          }
        }
      });
    }
    for (auto& th : threads) th.join();
    EXPECT_EQ(stored.load(), static_cast<uint64_t>(kThreads * kPerThread * kPoints));
    EXPECT_EQ(duplicates.load(), static_cast<uint64_t>(kThreads * kPerThread));
    auto agg = (*store)->Aggregate({});
    ASSERT_TRUE(agg.ok());
    EXPECT_EQ(agg->count, static_cast<uint64_t>(kThreads * kPerThread * kPoints));
    EXPECT_EQ((*store)->applied_index(), static_cast<uint64_t>((Buffered() ? 1 : 2) * kThreads * kPerThread));
  }
  auto reopened = ShardStore::Open(path, 0, Options());
  ASSERT_TRUE(reopened.ok());
  auto agg = (*reopened)->Aggregate({});
  ASSERT_TRUE(agg.ok());
  EXPECT_EQ(agg->count, static_cast<uint64_t>(kThreads * kPerThread * kPoints));
  EXPECT_EQ((*reopened)->applied_index(), static_cast<uint64_t>((Buffered() ? 1 : 2) * kThreads * kPerThread));
  // A key applied before the reopen is still known.
  auto again = (*reopened)->ApplyNext(Command("k-0-0", "h0", kPoints));
  ASSERT_TRUE(again.ok());
  EXPECT_TRUE(again->duplicate);
  std::filesystem::remove_all(dir);
}

TEST_P(ShardStoreGroupCommit, SameKeyTwiceInOneGroupIsStoredOnce) {
  auto dir = std::filesystem::temp_directory_path() / ("rm-group2-" + std::to_string(::getpid()) + "-" + std::to_string(GetParam()));
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir);
  auto store = ShardStore::Open((dir / "shard-0.duckdb").string(), 0, Options());
  ASSERT_TRUE(store.ok());
  // Many threads racing with the very same key: exactly one stores.
  std::atomic<int> firsts{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 8; ++t) {
    threads.emplace_back([&] {
      auto r = (*store)->ApplyNext(Command("same", "h", 3));
      ASSERT_TRUE(r.ok());
      if (!r->duplicate) ++firsts;
      EXPECT_EQ(r->stored, 3u);
    });
  }
  for (auto& th : threads) th.join();
  EXPECT_EQ(firsts.load(), 1);
  EXPECT_EQ((*store)->Aggregate({})->count, 3u);
  std::filesystem::remove_all(dir);
}

TEST_P(ShardStoreGroupCommit, SeveralCommandsAtOnceKeepTheirOwnResultsAndIndexes) {
  auto dir = std::filesystem::temp_directory_path() / ("rm-group3-" + std::to_string(::getpid()) + "-" + std::to_string(GetParam()));
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir);
  const std::string path = (dir / "shard-0.duckdb").string();
  {
    auto store = ShardStore::Open(path, 0, Options());
    ASSERT_TRUE(store.ok());
    ASSERT_TRUE((*store)->ApplyNext(Command("earlier", "h1", 2)).ok());
    const uint64_t before = (*store)->applied_index();
    // What a control node sends when it merged four clients' inserts: one key
    // already applied, one repeated within the call.
    auto a = Command("a", "h1", 3), b = Command("b", "h2", 4), again = Command("a", "h1", 3),
         old = Command("earlier", "h1", 2);
    auto results = (*store)->ApplyNext(std::vector<const raftmetrics::v1::ShardCommand*>{&a, &b, &again, &old});
    ASSERT_EQ(results.size(), 4u);
    for (const auto& r : results) ASSERT_TRUE(r.ok()) << r.status().ToString();
    EXPECT_FALSE(results[0]->duplicate);
    EXPECT_EQ(results[0]->stored, 3u);
    EXPECT_FALSE(results[1]->duplicate);
    EXPECT_EQ(results[1]->stored, 4u);
    EXPECT_TRUE(results[2]->duplicate);
    EXPECT_EQ(results[2]->stored, 3u);
    EXPECT_TRUE(results[3]->duplicate);
    EXPECT_EQ(results[3]->stored, 2u);
    EXPECT_EQ((*store)->applied_index(), before + (Buffered() ? 2 : 4));  // one log index per command stored
    EXPECT_EQ((*store)->Aggregate({})->count, 9u);
    EXPECT_TRUE((*store)->ApplyNext(std::vector<const raftmetrics::v1::ShardCommand*>{}).empty());
  }
  auto reopened = ShardStore::Open(path, 0, Options());
  ASSERT_TRUE(reopened.ok());
  EXPECT_EQ((*reopened)->Aggregate({})->count, 9u);
  auto retry = (*reopened)->ApplyNext(Command("b", "h2", 4));
  ASSERT_TRUE(retry.ok());
  EXPECT_TRUE(retry->duplicate);
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace rm
