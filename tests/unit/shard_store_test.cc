// Tests of src/storage/shard_store: the per-shard state machine over one DuckDB
// file (apply, aggregate, idempotency, replay, persistence, determinism).
#include "src/storage/shard_store.h"

#include "src/query/quantile_sketch.h"
#include "src/storage/duckdb.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <atomic>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <map>
#include <random>
#include <set>
#include <string>
#include <thread>
#include <vector>

namespace rm {
namespace {

namespace fs = std::filesystem;
using raftmetrics::v1::ShardCommand;

struct SeriesSpec {
  std::string metric;
  std::string partition_key;
  std::vector<std::pair<std::string, std::string>> tags;  // insertion order into the proto map
  std::vector<std::pair<int64_t, double>> points;         // (ts, value)
};

ShardCommand Command(const std::vector<SeriesSpec>& series, const std::string& key = "",
                     int64_t issued_us = 1, int64_t key_expires_us = 1LL << 62) {
  ShardCommand cmd;
  cmd.set_shard(3);
  cmd.set_idempotency_key(key);
  cmd.set_issued_us(issued_us);
  cmd.set_key_expires_us(key_expires_us);
  for (const auto& spec : series) {
    auto* s = cmd.add_series();
    s->set_metric(spec.metric);
    s->set_partition_key(spec.partition_key);
    for (const auto& [k, v] : spec.tags) (*s->mutable_tags())[k] = v;
    for (const auto& [ts, v] : spec.points) {
      s->add_timestamps_us(ts);
      s->add_values(v);
    }
  }
  return cmd;
}

class ShardStoreTest : public ::testing::Test {
 protected:
  void SetUp() override {
    static int counter = 0;
    dir_ = fs::temp_directory_path() /
           ("rm_shard_store_test_" + std::to_string(::getpid()) + "_" + std::to_string(counter++));
    fs::remove_all(dir_);
    fs::create_directories(dir_);
  }
  void TearDown() override {
    std::error_code ec;
    fs::remove_all(dir_, ec);
  }

  // Most tests read DuckDB: the totals in memory (hourly_totals.h) would answer
  // their whole-hour queries first. The tests of the totals turn them on.
  size_t totals_cells_ = 0;
  // Most tests check what reaches DuckDB with each apply: the write buffer
  // (ShardStoreBufferTest) is off unless a test turns it on.
  uint64_t write_buffer_points_ = 0;
  uint64_t write_buffer_min_free_bytes_ = 0;
  std::function<uint64_t(const std::string&)> free_disk_bytes_;

  std::string Path(const std::string& name = "shard-3.duckdb") const { return (dir_ / name).string(); }

  std::unique_ptr<ShardStore> Open(uint32_t shard = 3, const std::string& name = "shard-3.duckdb",
                                   uint64_t rollup_min_points = 0) {  // 0: the rollup path from the first point
    ShardStoreOptions options;
    options.rollup_min_points = rollup_min_points;
    options.hourly_totals_cells = totals_cells_;
    options.write_buffer_points = write_buffer_points_;
    options.write_buffer_min_free_bytes = write_buffer_min_free_bytes_;
    options.free_disk_bytes = free_disk_bytes_;
    auto store = ShardStore::Open(Path(name), shard, options);
    EXPECT_TRUE(store.ok()) << store.status().ToString();
    return store.ok() ? std::move(*store) : nullptr;
  }

  static ApplyOutcome MustApply(ShardStore& store, const ShardCommand& cmd) {
    auto r = store.ApplyNext(cmd);
    EXPECT_TRUE(r.ok()) << r.status().ToString();
    return r.ok() ? *r : ApplyOutcome{};
  }

  static PartialAggregate MustAggregate(ShardStore& store, const PointFilter& filter = {}) {
    auto r = store.Aggregate(filter);
    EXPECT_TRUE(r.ok()) << r.status().ToString();
    return r.ok() ? *r : PartialAggregate{};
  }

  // Every row of `sql` on a closed store's file; `sql` must select VARCHAR columns
  // (db::Rows only keeps text for VARCHAR cells).
  std::vector<std::string> Dump(const std::string& path, const std::string& sql) {
    std::vector<std::string> out;
    auto db = db::Database::Open(path, {});
    EXPECT_TRUE(db.ok()) << db.status().ToString();
    if (!db.ok()) return out;
    auto conn = (*db)->Connect();
    EXPECT_TRUE(conn.ok());
    if (!conn.ok()) return out;
    auto rows = (*conn)->Query(sql);
    EXPECT_TRUE(rows.ok()) << rows.status().ToString();
    if (!rows.ok()) return out;
    for (size_t r = 0; r < rows->size(); ++r) {
      std::string line;
      for (size_t c = 0; c < rows->columns(); ++c) line += "|" + (rows->IsNull(c, r) ? "NULL" : rows->Text(c, r));
      out.push_back(line);
    }
    return out;
  }

  fs::path dir_;
};

TEST_F(ShardStoreTest, EmptyStoreAggregatesToNothing) {
  auto store = Open();
  ASSERT_TRUE(store);
  EXPECT_EQ(store->applied_index(), 0u);
  EXPECT_EQ(store->shard(), 3u);
  EXPECT_EQ(store->path(), Path());
  PartialAggregate agg = MustAggregate(*store);
  EXPECT_EQ(agg.count, 0u);
  EXPECT_EQ(agg.Average(), std::nullopt);
}

TEST_F(ShardStoreTest, ApplyThenAggregateIsExact) {
  auto store = Open();
  ASSERT_TRUE(store);
  auto out = MustApply(*store, Command({{"cpu", "h1", {}, {{100, 1.5}, {200, -2.25}, {300, 10}}},
                                        {"cpu", "h2", {}, {{150, 0.75}}}}));
  EXPECT_EQ(out.stored, 4u);
  EXPECT_FALSE(out.duplicate);
  EXPECT_EQ(store->applied_index(), 1u);
  PartialAggregate agg = MustAggregate(*store);
  EXPECT_EQ(agg.count, 4u);
  EXPECT_DOUBLE_EQ(agg.sum, 10.0);
  EXPECT_EQ(agg.min, -2.25);
  EXPECT_EQ(agg.max, 10);
  EXPECT_GT(store->DiskBytes(), 0u);
}

TEST_F(ShardStoreTest, ManyPointsAcrossAppenderChunks) {
  auto store = Open();
  ASSERT_TRUE(store);
  SeriesSpec s{"m", "k", {}, {}};
  for (int i = 0; i < 5000; ++i) s.points.push_back({i, static_cast<double>(i)});
  EXPECT_EQ(MustApply(*store, Command({s})).stored, 5000u);
  PartialAggregate agg = MustAggregate(*store);
  EXPECT_EQ(agg.count, 5000u);
  EXPECT_EQ(agg.sum, 4999.0 * 5000 / 2);
  EXPECT_EQ(agg.min, 0);
  EXPECT_EQ(agg.max, 4999);
}

TEST_F(ShardStoreTest, FiltersByMetricAndPartitionKey) {
  auto store = Open();
  ASSERT_TRUE(store);
  MustApply(*store, Command({{"cpu", "h1", {}, {{1, 1}, {2, 2}}},
                             {"cpu", "h2", {}, {{1, 10}}},
                             {"mem", "h1", {}, {{1, 100}}}}));
  PointFilter f;
  f.metric = "cpu";
  EXPECT_EQ(MustAggregate(*store, f).count, 3u);
  EXPECT_EQ(MustAggregate(*store, f).sum, 13);
  f.partition_key = "h1";
  EXPECT_EQ(MustAggregate(*store, f).count, 2u);
  EXPECT_EQ(MustAggregate(*store, f).max, 2);
  f.metric = "";
  EXPECT_EQ(MustAggregate(*store, f).count, 3u);
  EXPECT_EQ(MustAggregate(*store, f).sum, 103);
  f.metric = "disk";
  EXPECT_EQ(MustAggregate(*store, f).count, 0u);
  f.metric = "cpu";
  f.partition_key = "h9";
  EXPECT_EQ(MustAggregate(*store, f).count, 0u);
}

TEST_F(ShardStoreTest, TimeBoundsAreInclusive) {
  auto store = Open();
  ASSERT_TRUE(store);
  MustApply(*store, Command({{"m", "k", {}, {{100, 1}, {200, 2}, {300, 3}, {400, 4}}}}));
  PointFilter f;
  f.from_us = 200;
  f.to_us = 300;
  EXPECT_EQ(MustAggregate(*store, f).count, 2u);
  EXPECT_EQ(MustAggregate(*store, f).sum, 5);
  f.from_us = 100;
  f.to_us = 100;
  EXPECT_EQ(MustAggregate(*store, f).count, 1u);
  f.from_us = 101;
  f.to_us = 199;
  EXPECT_EQ(MustAggregate(*store, f).count, 0u);
  PointFilter from_only;
  from_only.from_us = 300;
  EXPECT_EQ(MustAggregate(*store, from_only).count, 2u);
  PointFilter to_only;
  to_only.to_us = 300;
  EXPECT_EQ(MustAggregate(*store, to_only).count, 3u);
  to_only.metric = "m";
  to_only.partition_key = "k";
  EXPECT_EQ(MustAggregate(*store, to_only).count, 3u);
}

TEST_F(ShardStoreTest, FilterMatchingScatteredSeries) {
  // Series ids 0..9; metric "a" on ids {0,1,2,4,7,8}: runs and single ids.
  auto store = Open();
  ASSERT_TRUE(store);
  const char* metrics[] = {"a", "a", "a", "b", "a", "b", "b", "a", "a", "b"};
  std::vector<SeriesSpec> series;
  for (int i = 0; i < 10; ++i) {
    series.push_back({metrics[i], "pk" + std::to_string(i), {}, {{i, static_cast<double>(1 << i)}}});
  }
  MustApply(*store, Command(series));
  PointFilter f;
  f.metric = "a";
  PartialAggregate a = MustAggregate(*store, f);
  EXPECT_EQ(a.count, 6u);
  EXPECT_EQ(a.sum, 1 + 2 + 4 + 16 + 128 + 256);
  f.metric = "b";
  EXPECT_EQ(MustAggregate(*store, f).sum, 8 + 32 + 64 + 512);
  f.metric = "";
  f.partition_key = "pk4";
  EXPECT_EQ(MustAggregate(*store, f).sum, 16);
  auto groups = store->AggregateGroups(PointFilter{"a", "", std::nullopt, std::nullopt}, {"partition_key"});
  ASSERT_TRUE(groups.ok());
  EXPECT_EQ(groups->size(), 6u);
  EXPECT_EQ(groups->at({"pk7"}).sum, 128);
}

TEST_F(ShardStoreTest, TagValuesWithSeparatorsStayDistinctSeries) {
  // BUG src/storage/shard_store.cc:16-20 (Identity): the series catalog keys a
  // series by partition_key + '\0' + SeriesKey(metric, tags), which is ambiguous
  // when tag values contain ',' '=' or '}': {a="1,b=2"} and {a="1", b="2"} both
  // render as m{a=1,b=2}, so the second series reuses the first one's id and its
  // points are reported under the first series' tags (group by "b" below gives one
  // group). Tag values are free-form strings, so any client can hit this.
  auto store = Open();
  ASSERT_TRUE(store);
  MustApply(*store, Command({{"m", "p", {{"a", "1,b=2"}}, {{1, 1}}}, {"m", "p", {{"a", "1"}, {"b", "2"}}, {{2, 10}}}}));
  auto groups = store->AggregateGroups({}, {"b"});
  ASSERT_TRUE(groups.ok());
  ASSERT_EQ(groups->size(), 2u);
  EXPECT_EQ(groups->at({"2"}).sum, 10);
  EXPECT_EQ(groups->at({""}).sum, 1);
}

TEST_F(ShardStoreTest, AggregateGroupsByTag) {
  auto store = Open();
  ASSERT_TRUE(store);
  MustApply(*store, Command({{"cpu", "a", {{"host", "h1"}, {"dc", "eu"}}, {{1, 1}, {2, 3}}},
                             {"cpu", "b", {{"host", "h2"}, {"dc", "eu"}}, {{1, 5}}},
                             {"cpu", "c", {{"host", "h1"}, {"dc", "us"}}, {{1, 7}}},
                             {"cpu", "d", {}, {{1, 100}}}}));
  auto groups = store->AggregateGroups({}, {"host"});
  ASSERT_TRUE(groups.ok()) << groups.status().ToString();
  ASSERT_EQ(groups->size(), 3u);
  const auto& h1 = groups->at({"h1"});
  EXPECT_EQ(h1.count, 3u);
  EXPECT_EQ(h1.sum, 11);
  EXPECT_EQ(h1.min, 1);
  EXPECT_EQ(h1.max, 7);
  EXPECT_EQ(groups->at({"h2"}).count, 1u);
  EXPECT_EQ(groups->at({""}).sum, 100);  // a series without the tag

  auto by_two = store->AggregateGroups({}, {"dc", "host"});
  ASSERT_TRUE(by_two.ok());
  EXPECT_EQ(by_two->size(), 4u);
  EXPECT_EQ(by_two->at({"eu", "h1"}).count, 2u);
  EXPECT_EQ(by_two->at({"us", "h1"}).sum, 7);
}

TEST_F(ShardStoreTest, AggregateGroupsByMetricAndPartitionKeyWithFilter) {
  auto store = Open();
  ASSERT_TRUE(store);
  MustApply(*store, Command({{"cpu", "a", {}, {{1, 1}, {5, 2}}},
                             {"mem", "a", {}, {{1, 4}}},
                             {"cpu", "b", {}, {{1, 8}}}}));
  auto by_metric = store->AggregateGroups({}, {"metric"});
  ASSERT_TRUE(by_metric.ok());
  EXPECT_EQ(by_metric->at({"cpu"}).count, 3u);
  EXPECT_EQ(by_metric->at({"mem"}).sum, 4);
  PointFilter f;
  f.metric = "cpu";
  f.to_us = 1;
  auto by_pk = store->AggregateGroups(f, {"partition_key"});
  ASSERT_TRUE(by_pk.ok());
  ASSERT_EQ(by_pk->size(), 2u);
  EXPECT_EQ(by_pk->at({"a"}).count, 1u);
  EXPECT_EQ(by_pk->at({"b"}).sum, 8);
  f.metric = "none";
  auto none = store->AggregateGroups(f, {"metric"});
  ASSERT_TRUE(none.ok());
  EXPECT_TRUE(none->empty());
}

TEST_F(ShardStoreTest, TagOrderDoesNotSplitASeries) {
  auto store = Open();
  ASSERT_TRUE(store);
  MustApply(*store, Command({{"cpu", "a", {{"host", "h"}, {"dc", "eu"}}, {{1, 1}}}}));
  MustApply(*store, Command({{"cpu", "a", {{"dc", "eu"}, {"host", "h"}}, {{2, 2}}}}));
  auto groups = store->AggregateGroups({}, {"partition_key"});
  ASSERT_TRUE(groups.ok());
  EXPECT_EQ(groups->at({"a"}).count, 2u);
  store.reset();
  EXPECT_EQ(Dump(Path(), "SELECT count(*)::VARCHAR FROM series"), (std::vector<std::string>{"|1"}));
}

TEST_F(ShardStoreTest, IdempotencyKeyIsAppliedOnce) {
  auto store = Open();
  ASSERT_TRUE(store);
  auto first = MustApply(*store, Command({{"m", "k", {}, {{1, 1}, {2, 2}, {3, 3}}}}, "req-1"));
  EXPECT_EQ(first.stored, 3u);
  EXPECT_FALSE(first.duplicate);
  // A retry (even with different content) stores nothing and reports the first count.
  auto again = MustApply(*store, Command({{"m", "k", {}, {{4, 4}, {5, 5}}}}, "req-1"));
  EXPECT_TRUE(again.duplicate);
  EXPECT_EQ(again.stored, 3u);
  EXPECT_EQ(MustAggregate(*store).count, 3u);
  EXPECT_EQ(MustAggregate(*store).sum, 6);
  // The duplicate still consumed its log index.
  EXPECT_EQ(store->applied_index(), 2u);
  // Another key is applied.
  EXPECT_EQ(MustApply(*store, Command({{"m", "k", {}, {{4, 4}}}}, "req-2")).stored, 1u);
  EXPECT_EQ(MustAggregate(*store).count, 4u);
}

TEST_F(ShardStoreTest, KeysOfAFileWithAnIndexedKeyTableSurviveItsMigration) {
  {
    auto store = Open();
    ASSERT_TRUE(store);
    MustApply(*store, Command({{"m", "k", {}, {{1, 1}, {2, 2}}}}, "req-1"));
  }
  {  // what applied_writes looked like before: a PRIMARY KEY on the key
    auto db = db::Database::Open(Path(), {});
    ASSERT_TRUE(db.ok());
    auto conn = (*db)->Connect();
    ASSERT_TRUE(conn.ok());
    ASSERT_TRUE((*conn)->Execute("CREATE TABLE old_keys AS SELECT * FROM applied_writes; DROP TABLE applied_writes;"
                                 "CREATE TABLE applied_writes(key VARCHAR PRIMARY KEY, stored BIGINT NOT NULL, "
                                 "expires_us BIGINT NOT NULL); INSERT INTO applied_writes SELECT * FROM old_keys;"
                                 "DROP TABLE old_keys")
                    .ok());
  }
  {
    auto store = Open();
    ASSERT_TRUE(store);
    EXPECT_TRUE(MustApply(*store, Command({{"m", "k", {}, {{3, 3}}}}, "req-1")).duplicate);
    EXPECT_EQ(MustApply(*store, Command({{"m", "k", {}, {{3, 3}}}}, "req-2")).stored, 1u);
  }
  auto db = db::Database::Open(Path(), {});
  ASSERT_TRUE(db.ok());
  auto conn = (*db)->Connect();
  ASSERT_TRUE(conn.ok());
  auto indexes = (*conn)->Query("SELECT count(*) FROM duckdb_constraints() WHERE table_name = 'applied_writes' "
                                "AND constraint_type = 'PRIMARY KEY'");
  ASSERT_TRUE(indexes.ok());
  EXPECT_EQ(indexes->Int(0, 0), 0);
  auto keys = (*conn)->Query("SELECT key, stored FROM applied_writes ORDER BY key");
  ASSERT_TRUE(keys.ok());
  ASSERT_EQ(keys->size(), 2u);
  EXPECT_EQ(keys->Text(0, 0), "req-1");
  EXPECT_EQ(keys->Int(1, 0), 2);
  EXPECT_EQ(keys->Text(0, 1), "req-2");
}

TEST_F(ShardStoreTest, CommandsWithoutKeyAreNeverDeduplicated) {
  auto store = Open();
  ASSERT_TRUE(store);
  auto cmd = Command({{"m", "k", {}, {{1, 1}}}});
  EXPECT_FALSE(MustApply(*store, cmd).duplicate);
  EXPECT_FALSE(MustApply(*store, cmd).duplicate);
  EXPECT_EQ(MustAggregate(*store).count, 2u);
}

TEST_F(ShardStoreTest, ReplayedEntryIsAppliedOnce) {
  auto store = Open();
  ASSERT_TRUE(store);
  auto cmd = Command({{"m", "k", {}, {{1, 1}, {2, 2}}}});
  auto first = store->Apply(cmd, 1);
  ASSERT_TRUE(first.ok());
  EXPECT_EQ(first->stored, 2u);
  auto replay = store->Apply(cmd, 1);
  ASSERT_TRUE(replay.ok());
  EXPECT_TRUE(replay->duplicate);
  EXPECT_EQ(replay->stored, 0u);
  EXPECT_EQ(store->applied_index(), 1u);
  EXPECT_EQ(MustAggregate(*store).count, 2u);
}

TEST_F(ShardStoreTest, IndexAtOrBelowAppliedIndexIsSkipped) {
  auto store = Open();
  ASSERT_TRUE(store);
  ASSERT_TRUE(store->Apply(Command({{"m", "k", {}, {{1, 1}}}}), 5).ok());
  EXPECT_EQ(store->applied_index(), 5u);
  for (uint64_t index : {0u, 1u, 4u, 5u}) {
    auto r = store->Apply(Command({{"m", "k", {}, {{2, 2}}}}), index);
    ASSERT_TRUE(r.ok());
    EXPECT_TRUE(r->duplicate) << index;
  }
  EXPECT_EQ(store->applied_index(), 5u);
  EXPECT_EQ(MustAggregate(*store).count, 1u);
  auto next = store->Apply(Command({{"m", "k", {}, {{2, 2}}}}), 6);
  ASSERT_TRUE(next.ok());
  EXPECT_FALSE(next->duplicate);
  EXPECT_EQ(store->applied_index(), 6u);
}

TEST_F(ShardStoreTest, StateSurvivesCloseAndReopen) {
  {
    auto store = Open();
    ASSERT_TRUE(store);
    MustApply(*store, Command({{"cpu", "a", {{"host", "h1"}}, {{1, 1}, {2, 2}}},
                               {"mem", "b", {}, {{1, 5}}}},
                              "req-1"));
    MustApply(*store, Command({{"cpu", "a", {{"host", "h1"}}, {{3, 3}}}}));
    EXPECT_EQ(store->applied_index(), 2u);
  }
  auto store = Open();
  ASSERT_TRUE(store);
  EXPECT_EQ(store->applied_index(), 2u);
  PartialAggregate agg = MustAggregate(*store);
  EXPECT_EQ(agg.count, 4u);
  EXPECT_EQ(agg.sum, 11);
  // The idempotency key is remembered across the restart.
  auto dup = MustApply(*store, Command({{"cpu", "a", {}, {{9, 9}}}}, "req-1"));
  EXPECT_TRUE(dup.duplicate);
  EXPECT_EQ(dup.stored, 3u);
  // The series catalog is reloaded: an existing series keeps its id, tags still group.
  MustApply(*store, Command({{"cpu", "a", {{"host", "h1"}}, {{4, 4}}}, {"disk", "c", {}, {{1, 1}}}}));
  auto groups = store->AggregateGroups({}, {"host"});
  ASSERT_TRUE(groups.ok());
  EXPECT_EQ(groups->at({"h1"}).count, 4u);
  EXPECT_EQ(store->applied_index(), 4u);
  store.reset();
  EXPECT_EQ(Dump(Path(), "SELECT id::VARCHAR, metric, partition_key, tags FROM series ORDER BY id"),
            (std::vector<std::string>{"|0|cpu|a|{\"host\":\"h1\"}", "|1|mem|b|{}", "|2|disk|c|{}"}));
}

TEST_F(ShardStoreTest, ReplayAfterReopenIsSkipped) {
  auto cmd = Command({{"m", "k", {}, {{1, 1}}}});
  {
    auto store = Open();
    ASSERT_TRUE(store);
    ASSERT_TRUE(store->Apply(cmd, 1).ok());
    ASSERT_TRUE(store->Apply(cmd, 2).ok());
  }
  auto store = Open();
  ASSERT_TRUE(store);
  auto r = store->Apply(cmd, 2);
  ASSERT_TRUE(r.ok());
  EXPECT_TRUE(r->duplicate);
  EXPECT_EQ(MustAggregate(*store).count, 2u);
}

TEST_F(ShardStoreTest, ExpiredKeysArePruned) {
  constexpr int64_t kMinute = 60LL * 1000000;
  auto store = Open();
  ASSERT_TRUE(store);
  MustApply(*store, Command({{"m", "k", {}, {{1, 1}}}}, "old", /*issued_us=*/0, /*expires=*/kMinute));
  MustApply(*store, Command({{"m", "k", {}, {{1, 1}}}}, "fresh", 0, 100 * kMinute));
  // Before expiry the key dedupes.
  EXPECT_TRUE(MustApply(*store, Command({{"m", "k", {}, {{2, 2}}}}, "old", 10)).duplicate);
  // A later command (past the prune interval and the expiry) prunes expired keys.
  MustApply(*store, Command({{"m", "k", {}, {{3, 3}}}}, "", 5 * kMinute));
  // The pruned key is forgotten, in memory and on disk.
  auto reused = MustApply(*store, Command({{"m", "k", {}, {{4, 4}}}}, "old", 6 * kMinute, 200 * kMinute));
  EXPECT_FALSE(reused.duplicate);
  EXPECT_EQ(reused.stored, 1u);
  // An unexpired key is kept.
  EXPECT_TRUE(MustApply(*store, Command({{"m", "k", {}, {{5, 5}}}}, "fresh", 7 * kMinute)).duplicate);
  store.reset();
  EXPECT_EQ(Dump(Path(), "SELECT key, expires_us::VARCHAR FROM applied_writes ORDER BY key"),
            (std::vector<std::string>{"|fresh|" + std::to_string(100 * kMinute),
                                      "|old|" + std::to_string(200 * kMinute)}));
}

// Whether a key still dedupes depends on the command's time alone, not on
// whether this replica has pruned it yet (replicas prune at different moments).
TEST_F(ShardStoreTest, AnExpiredKeyNotYetPrunedDoesNotDedupe) {
  constexpr int64_t kMinute = 60LL * 1000000;
  auto store = Open();
  ASSERT_TRUE(store);
  // Issued at 0: the first apply prunes, and the next prune is due at 1 minute.
  MustApply(*store, Command({{"m", "k", {}, {{1, 1}}}}, "short", 0, 10));
  // At 20 µs the key has expired, but no prune has run since it was stored.
  auto again = MustApply(*store, Command({{"m", "k", {}, {{2, 2}}}}, "short", 20, kMinute));
  EXPECT_FALSE(again.duplicate);
  EXPECT_EQ(MustAggregate(*store).count, 2u);
  // The key's second life dedupes, before and after a reopen (its file holds
  // both rows until a prune; the later-expiring one counts).
  EXPECT_TRUE(MustApply(*store, Command({{"m", "k", {}, {{3, 3}}}}, "short", 30)).duplicate);
  store.reset();
  store = Open();
  ASSERT_TRUE(store);
  EXPECT_TRUE(MustApply(*store, Command({{"m", "k", {}, {{3, 3}}}}, "short", 30)).duplicate);
  EXPECT_EQ(MustAggregate(*store).count, 2u);
}

TEST_F(ShardStoreTest, PrunedKeyStaysForgottenAfterReopen) {
  constexpr int64_t kMinute = 60LL * 1000000;
  {
    auto store = Open();
    ASSERT_TRUE(store);
    MustApply(*store, Command({{"m", "k", {}, {{1, 1}}}}, "old", 0, kMinute));
    MustApply(*store, Command({{"m", "k", {}, {{2, 2}}}}, "", 5 * kMinute));
  }
  auto store = Open();
  ASSERT_TRUE(store);
  auto r = MustApply(*store, Command({{"m", "k", {}, {{3, 3}}}}, "old", 6 * kMinute));
  EXPECT_FALSE(r.duplicate);
  EXPECT_EQ(MustAggregate(*store).count, 3u);
}

TEST_F(ShardStoreTest, FileOfAnotherShardIsRefused) {
  {
    auto store = Open(3);
    ASSERT_TRUE(store);
    MustApply(*store, Command({{"m", "k", {}, {{1, 1}}}}));
  }
  auto other = ShardStore::Open(Path(), 4, ShardStoreOptions{});
  ASSERT_FALSE(other.ok());
  EXPECT_EQ(other.status().code(), Code::kStorage);
  EXPECT_EQ(other.status().details().at("expected_shard"), 4);
  EXPECT_EQ(other.status().details().at("found_shard"), 3);
  // The right shard still opens it.
  auto again = Open(3);
  ASSERT_TRUE(again);
  EXPECT_EQ(MustAggregate(*again).count, 1u);
}

TEST_F(ShardStoreTest, UnopenablePathIsAStorageError) {
  auto store = ShardStore::Open((dir_ / "missing-dir" / "shard.duckdb").string(), 0, ShardStoreOptions{});
  ASSERT_FALSE(store.ok());
  EXPECT_EQ(store.status().code(), Code::kStorage);
}

TEST_F(ShardStoreTest, SeriesIdsAreDeterministic) {
  // Two replicas fed the same commands (tags given in a different order) end with
  // identical files.
  std::vector<ShardCommand> a_cmds, b_cmds;
  for (int round = 0; round < 3; ++round) {
    std::vector<SeriesSpec> a, b;
    for (int i = 0; i < 5; ++i) {
      std::string metric = "m" + std::to_string((i + round) % 3);
      std::string pk = "pk" + std::to_string(i % 2);
      std::vector<std::pair<std::string, std::string>> tags = {{"host", "h" + std::to_string(i)},
                                                               {"dc", "eu"}, {"rack", "r1"}};
      std::vector<std::pair<int64_t, double>> pts = {{round * 10 + i, i * 1.5}, {round * 10 + i + 1, -i}};
      std::vector<std::pair<std::string, std::string>> reversed(tags.rbegin(), tags.rend());
      a.push_back({metric, pk, tags, pts});
      b.push_back({metric, pk, reversed, pts});
    }
    a_cmds.push_back(Command(a, "k" + std::to_string(round)));
    b_cmds.push_back(Command(b, "k" + std::to_string(round)));
  }
  a_cmds.push_back(a_cmds[0]);  // a duplicate key on both
  b_cmds.push_back(b_cmds[0]);
  {
    auto a = Open(3, "a.duckdb");
    auto b = Open(3, "b.duckdb");
    ASSERT_TRUE(a && b);
    for (size_t i = 0; i < a_cmds.size(); ++i) {
      auto ra = MustApply(*a, a_cmds[i]);
      auto rb = MustApply(*b, b_cmds[i]);
      EXPECT_EQ(ra.stored, rb.stored);
      EXPECT_EQ(ra.duplicate, rb.duplicate);
    }
    EXPECT_EQ(a->applied_index(), b->applied_index());
  }
  for (const char* sql :
       {"SELECT id::VARCHAR, metric, partition_key, host, datacenter, tags FROM series ORDER BY id",
        "SELECT series_id::VARCHAR, ts::VARCHAR, value::VARCHAR FROM points ORDER BY series_id, ts, value",
        "SELECT key, stored::VARCHAR, expires_us::VARCHAR FROM applied_writes ORDER BY key",
        "SELECT shard::VARCHAR, applied_index::VARCHAR FROM shard_state"}) {
    auto a_rows = Dump(Path("a.duckdb"), sql);
    EXPECT_FALSE(a_rows.empty()) << sql;
    EXPECT_EQ(a_rows, Dump(Path("b.duckdb"), sql)) << sql;
  }
  // New series got dense ids in first-appearance order.
  auto ids = Dump(Path("a.duckdb"), "SELECT id::VARCHAR, metric, partition_key FROM series ORDER BY id LIMIT 2");
  EXPECT_EQ(ids, (std::vector<std::string>{"|0|m0|pk0", "|1|m1|pk1"}));
}

TEST_F(ShardStoreTest, HostAndDatacenterAreFirstClassColumns) {
  {
    auto store = Open();
    ASSERT_TRUE(store);
    MustApply(*store, Command({{"cpu", "a", {{"host", "h1"}, {"datacenter", "dc1"}, {"x", "y"}}, {{1, 1}}},
                               {"cpu", "b", {}, {{1, 1}}}}));
  }
  EXPECT_EQ(Dump(Path(), "SELECT host, datacenter FROM series ORDER BY id"),
            (std::vector<std::string>{"|h1|dc1", "||"}));
}

TEST_F(ShardStoreTest, SnapshotInstallReplacesTheWholeState) {
  auto source = Open(3, "source.duckdb");
  auto target = Open(3, "target.duckdb");
  ASSERT_TRUE(source && target);
  MustApply(*source, Command({{"cpu", "h1", {{"host", "a"}}, {{100, 1}, {200, 2}}}}, "key-1"));
  MustApply(*source, Command({{"mem", "h2", {{"host", "b"}}, {{300, 5}}}}));
  // The target has older, different data: all of it is replaced.
  MustApply(*target, Command({{"disk", "h9", {}, {{1, 100}}}}));

  auto blob = source->ExportSnapshot();
  ASSERT_TRUE(blob.ok()) << blob.status().ToString();
  ASSERT_TRUE(target->InstallSnapshot(*blob).ok());
  EXPECT_EQ(target->applied_index(), 2u);
  EXPECT_EQ(target->point_count(), 3u);
  PartialAggregate agg = MustAggregate(*target);
  EXPECT_EQ(agg.count, 3u);
  EXPECT_DOUBLE_EQ(agg.sum, 8.0);
  EXPECT_EQ(MustAggregate(*target, {"disk", "", {}, {}}).count, 0u);

  // The idempotency key and the series catalog came along: a retry is still a
  // duplicate, and a new series gets the next dense id on both stores alike.
  EXPECT_TRUE(MustApply(*target, Command({{"cpu", "h1", {{"host", "a"}}, {{100, 1}}}}, "key-1")).duplicate);
  auto next = Command({{"net", "h3", {}, {{400, 7}}}, {"cpu", "h1", {{"host", "a"}}, {{500, 1}}}});
  MustApply(*source, next);
  MustApply(*target, next);
  source.reset();
  target.reset();
  const std::string q = "SELECT id::VARCHAR, metric FROM series ORDER BY id";
  EXPECT_EQ(Dump(Path("source.duckdb"), q), Dump(Path("target.duckdb"), q));

  // And it all survives a reopen.
  auto reopened = Open(3, "target.duckdb");
  ASSERT_TRUE(reopened);
  EXPECT_EQ(reopened->applied_index(), 4u);
  EXPECT_EQ(MustAggregate(*reopened).count, 5u);
}

TEST_F(ShardStoreTest, SnapshotWithUncheckpointedWalIsComplete) {
  auto source = Open(3, "source.duckdb");
  ASSERT_TRUE(source);
  for (int i = 0; i < 20; ++i) MustApply(*source, Command({{"cpu", "h" + std::to_string(i), {}, {{i, 1.0 * i}}}}));
  auto blob = source->ExportSnapshot();
  ASSERT_TRUE(blob.ok());
  auto target = Open(3, "target.duckdb");
  ASSERT_TRUE(target);
  ASSERT_TRUE(target->InstallSnapshot(*blob).ok());
  EXPECT_EQ(target->applied_index(), 20u);
  EXPECT_EQ(MustAggregate(*target).count, 20u);
  EXPECT_DOUBLE_EQ(MustAggregate(*target).sum, 190.0);
}

TEST_F(ShardStoreTest, BadSnapshotsAreRefusedAndChangeNothing) {
  auto source = Open(3, "source.duckdb");
  auto other_shard = Open(4, "shard-4.duckdb");
  auto target = Open(3, "target.duckdb");
  ASSERT_TRUE(source && other_shard && target);
  MustApply(*source, Command({{"cpu", "h1", {}, {{1, 1}}}}));
  MustApply(*source, Command({{"cpu", "h1", {}, {{2, 1}}}}));
  MustApply(*other_shard, Command({{"cpu", "h1", {}, {{1, 1}}}}));
  MustApply(*target, Command({{"cpu", "h1", {}, {{1, 42}}}}));
  auto blob = source->ExportSnapshot();
  ASSERT_TRUE(blob.ok());

  std::string flipped = *blob;
  flipped[flipped.size() / 2] ^= 0x40;
  EXPECT_EQ(target->InstallSnapshot(flipped).code(), Code::kStorage);
  EXPECT_EQ(target->InstallSnapshot(blob->substr(0, blob->size() - 9)).code(), Code::kStorage);
  EXPECT_EQ(target->InstallSnapshot("not a snapshot").code(), Code::kStorage);
  auto foreign = other_shard->ExportSnapshot();
  ASSERT_TRUE(foreign.ok());
  EXPECT_EQ(target->InstallSnapshot(*foreign).code(), Code::kStorage);
  EXPECT_DOUBLE_EQ(MustAggregate(*target).sum, 42.0);

  // A snapshot that is not newer than the store is ignored.
  MustApply(*target, Command({{"cpu", "h1", {}, {{2, 1}}}}));
  MustApply(*target, Command({{"cpu", "h1", {}, {{3, 1}}}}));
  ASSERT_TRUE(target->InstallSnapshot(*blob).ok());
  EXPECT_EQ(target->applied_index(), 3u);
  EXPECT_DOUBLE_EQ(MustAggregate(*target).sum, 44.0);
}

// ---- Hourly rollups (src/storage/hourly_rollup.h) -----------------------------

constexpr int64_t kH = 3600LL * 1000000;

struct StoredPoint {
  int host;
  int64_t ts;
  double value;
};

// Many small commands of 6 hosts over 12 hours around 1970 (negative times
// too), with duplicate timestamps and negative values: enough rollup rows to be
// compacted several times.
std::vector<StoredPoint> ApplyRandomHours(ShardStore& store, uint32_t seed, int commands) {
  std::mt19937_64 rng(seed);
  std::vector<StoredPoint> all;
  for (int c = 0; c < commands; ++c) {
    std::vector<SeriesSpec> series;
    for (int host = 0; host < 6; ++host) {
      SeriesSpec spec{"cpu", "h" + std::to_string(host), {{"host", "h" + std::to_string(host)}, {"dc", host % 2 ? "a" : "b"}}, {}};
      for (int k = 0; k < 4; ++k) {
        const int64_t ts = -3 * kH + static_cast<int64_t>(rng() % static_cast<uint64_t>(12 * kH));
        const double v = static_cast<double>(static_cast<int64_t>(rng() % 20001) - 10000) / 100;
        spec.points.push_back({ts, v});
        all.push_back({host, ts, v});
        if (k == 0) {  // a duplicate timestamp
          spec.points.push_back({ts, v + 1});
          all.push_back({host, ts, v + 1});
        }
      }
      series.push_back(std::move(spec));
    }
    auto r = store.ApplyNext(Command(series));
    EXPECT_TRUE(r.ok()) << r.status().ToString();
  }
  return all;
}

PartialAggregate Expected(const std::vector<StoredPoint>& points, int64_t from, int64_t to, int host = -1) {
  PartialAggregate p;
  for (const auto& pt : points) {
    if (pt.ts >= from && pt.ts <= to && (host < 0 || pt.host == host)) p.Add(pt.value);
  }
  return p;
}

void ExpectSame(const PartialAggregate& have, const PartialAggregate& want, const std::string& what) {
  EXPECT_EQ(have.count, want.count) << what;
  EXPECT_NEAR(have.sum, want.sum, 1e-6) << what;
  if (want.count > 0) {
    EXPECT_EQ(have.min, want.min) << what;
    EXPECT_EQ(have.max, want.max) << what;
  }
}

// Range ends on and off hour boundaries, inside and outside the data.
std::vector<std::pair<int64_t, int64_t>> TestRanges(uint32_t seed) {
  std::vector<std::pair<int64_t, int64_t>> ranges = {
      {-3 * kH, 9 * kH - 1}, {-2 * kH, kH - 1}, {-2 * kH + 1, 4 * kH}, {0, 0},
      {5 * kH + 7, 5 * kH + 9}, {-10 * kH, 20 * kH}, {kH - 1, 2 * kH}, {7 * kH, 7 * kH + kH - 1}};
  std::mt19937_64 rng(seed);
  for (int i = 0; i < 20; ++i) {
    int64_t a = -4 * kH + static_cast<int64_t>(rng() % static_cast<uint64_t>(14 * kH));
    int64_t b = a + static_cast<int64_t>(rng() % static_cast<uint64_t>(6 * kH));
    if (i % 3 == 0) a = a / kH * kH;  // on a boundary
    if (i % 4 == 0) b = b / kH * kH - 1;
    ranges.push_back({a, b});
  }
  return ranges;
}

TEST_F(ShardStoreTest, RollupAnswersEqualThePointsForAnyRange) {
  auto store = Open();
  ASSERT_TRUE(store);
  auto points = ApplyRandomHours(*store, 7, 300);
  // 300 commands x 6 hosts x up to 12 hours: compaction ran, and merged rows.
  for (const auto& [from, to] : TestRanges(11)) {
    const std::string what = std::to_string(from) + ".." + std::to_string(to);
    PointFilter f;
    f.from_us = from;
    f.to_us = to;
    ExpectSame(MustAggregate(*store, f), Expected(points, from, to), what);
    f.use_rollup = false;
    ExpectSame(MustAggregate(*store, f), Expected(points, from, to), what + " points only");
    f.use_rollup = true;
    f.partition_key = "h3";
    ExpectSame(MustAggregate(*store, f), Expected(points, from, to, 3), what + " h3");
    f.partition_key.clear();
    auto groups = store->AggregateGroups(f, {"host"});
    ASSERT_TRUE(groups.ok());
    for (int host = 0; host < 6; ++host) {
      auto it = groups->find({"h" + std::to_string(host)});
      PartialAggregate want = Expected(points, from, to, host);
      if (want.count == 0) {
        EXPECT_TRUE(it == groups->end() || it->second.count == 0) << what;
      } else {
        ASSERT_TRUE(it != groups->end()) << what;
        ExpectSame(it->second, want, what + " group h" + std::to_string(host));
      }
    }
  }
  PointFilter all;
  ExpectSame(MustAggregate(*store, all), Expected(points, INT64_MIN, INT64_MAX), "all time");
  store.reset();
  auto rows = Dump(Path(), "SELECT count(*)::VARCHAR FROM rollup_1h");
  ASSERT_EQ(rows.size(), 1u);
  // Without compaction there would be a row per command, host and hour touched
  // (over 7,000); merged there are at most 6 x 12 plus the rows since the last merge.
  EXPECT_LT(std::stoi(rows[0].substr(1)), 6 * 12 + 4096);
}

// Both read paths: DuckDB (rollup + points), and the totals in memory
// wherever they answer (hourly_totals.h), which must then be the same.
TEST_F(ShardStoreTest, RollupBucketsEqualThePoints) {
  for (size_t cells : {size_t{0}, kHourlyTotalsCells}) {
  SCOPED_TRACE("hourly_totals_cells " + std::to_string(cells));
  totals_cells_ = cells;
  const std::string name = "shard-" + std::to_string(cells) + ".duckdb";
  auto store = Open(3, name);
  ASSERT_TRUE(store);
  auto points = ApplyRandomHours(*store, 5, 60);
  for (int64_t bucket : {int64_t{0}, kH, 2 * kH, 24 * kH, kH / 4}) {
    for (const auto& [from, to] : TestRanges(static_cast<uint32_t>(bucket % 1000))) {
      raftmetrics::v1::AggregateQuery q;
      q.set_metric("cpu");
      q.set_from_us(from);
      q.set_to_us(to);
      q.set_bucket_us(bucket);
      q.add_group_by("dc");
      auto r = store->AggregateQuery(q);
      ASSERT_TRUE(r.ok()) << r.status().ToString();
      std::map<std::pair<std::string, int64_t>, PartialAggregate> want;
      for (const auto& pt : points) {
        if (pt.ts < from || pt.ts > to) continue;
        const int64_t start = bucket == 0 ? 0 : pt.ts - (((pt.ts % bucket) + bucket) % bucket);
        want[{pt.host % 2 ? "a" : "b", start}].Add(pt.value);
      }
      const std::string what = std::to_string(bucket) + " " + std::to_string(from) + ".." + std::to_string(to);
      ASSERT_EQ(static_cast<size_t>(r->groups_size()), want.size()) << what;
      for (const auto& g : r->groups()) {
        ASSERT_EQ(g.key_size(), 1);
        auto it = want.find({g.key(0), g.bucket()});
        ASSERT_TRUE(it != want.end()) << what << " bucket " << g.bucket();
        PartialAggregate have{g.aggregate().count(), g.aggregate().sum(), g.aggregate().min(), g.aggregate().max()};
        ExpectSame(have, it->second, what);
      }
    }
  }
  // Whole hours and cells wholly inside cut hours come from memory.
  if (cells > 0) {
    EXPECT_GT(store->reads_from_totals(), 10u);
  } else {
    EXPECT_EQ(store->reads_from_totals(), 0u);
  }
  }
}

TEST_F(ShardStoreTest, FileWithoutRollupGetsOneBuiltAtOpen) {
  std::vector<StoredPoint> points;
  {
    auto store = Open();
    ASSERT_TRUE(store);
    points = ApplyRandomHours(*store, 3, 20);
  }
  {  // what a file written before rollups existed looks like
    auto db = db::Database::Open(Path(), {});
    ASSERT_TRUE(db.ok());
    auto conn = (*db)->Connect();
    ASSERT_TRUE(conn.ok());
    ASSERT_TRUE((*conn)->Execute("DROP TABLE rollup_1h").ok());
  }
  auto store = Open();
  ASSERT_TRUE(store);
  for (const auto& [from, to] : TestRanges(2)) {
    PointFilter f;
    f.from_us = from;
    f.to_us = to;
    ExpectSame(MustAggregate(*store, f), Expected(points, from, to), std::to_string(from) + ".." + std::to_string(to));
  }
  // And it keeps being maintained after the migration.
  auto more = ApplyRandomHours(*store, 4, 5);
  points.insert(points.end(), more.begin(), more.end());
  ExpectSame(MustAggregate(*store, {}), Expected(points, INT64_MIN, INT64_MAX), "all time");
}

TEST_F(ShardStoreTest, WholeHoursAreReadFromTheRollup) {
  {
    auto store = Open();
    ASSERT_TRUE(store);
    MustApply(*store, Command({{"cpu", "h1", {}, {{kH + 5, 2.0}, {2 * kH + 1, 4.0}}}}));
  }
  {  // make the rollup tell a different story from the points
    auto db = db::Database::Open(Path(), {});
    ASSERT_TRUE(db.ok());
    auto conn = (*db)->Connect();
    ASSERT_TRUE(conn.ok());
    ASSERT_TRUE((*conn)->Execute("UPDATE rollup_1h SET total = total + 100 WHERE hour = 1").ok());
  }
  auto store = Open();
  ASSERT_TRUE(store);
  PointFilter f;
  f.from_us = kH;
  f.to_us = 2 * kH + 1;  // hour 1 whole, hour 2 partly: rollup + points
  EXPECT_DOUBLE_EQ(MustAggregate(*store, f).sum, 106.0);
  f.use_rollup = false;
  EXPECT_DOUBLE_EQ(MustAggregate(*store, f).sum, 6.0);
  f.use_rollup = true;
  f.from_us = kH + 1;  // no whole hour left
  EXPECT_DOUBLE_EQ(MustAggregate(*store, f).sum, 6.0);
  // A shard below rollup_min_points reads its points only.
  store.reset();
  store = Open(3, "shard-3.duckdb", 3);
  ASSERT_TRUE(store);
  f.from_us = kH;
  EXPECT_DOUBLE_EQ(MustAggregate(*store, f).sum, 6.0);
}

// Changes hour `hour`'s rollup rows in the closed file, so that a read that
// uses them tells (the points themselves stay as they are).
void Tamper(const std::string& path, const std::string& sql) {
  auto db = db::Database::Open(path, {});
  ASSERT_TRUE(db.ok());
  auto conn = (*db)->Connect();
  ASSERT_TRUE(conn.ok());
  ASSERT_TRUE((*conn)->Execute(sql).ok()) << sql;
}

TEST_F(ShardStoreTest, EdgeHoursWhosePointsAllFallInTheRangeComeFromTheRollup) {
  {
    auto store = Open();
    ASSERT_TRUE(store);
    MustApply(*store, Command({{"cpu", "h1", {}, {{kH + 5, 1.0}, {2 * kH + 10, 2.0}, {3 * kH + 7, 4.0}}}}));
  }
  Tamper(Path(), "UPDATE rollup_1h SET total = total + 100 WHERE hour IN (1, 3)");
  auto store = Open();
  ASSERT_TRUE(store);
  PointFilter f;
  f.from_us = kH + 2;  // hour 1 partly, but its one point is inside
  f.to_us = 3 * kH + 7;
  EXPECT_DOUBLE_EQ(MustAggregate(*store, f).sum, 207.0);
  f.from_us = kH + 6;  // now hour 1's point is outside: its edge is read from the points
  EXPECT_DOUBLE_EQ(MustAggregate(*store, f).sum, 106.0);
  // /aggregate plans the same way.
  raftmetrics::v1::AggregateQuery q;
  q.set_metric("cpu");
  q.set_from_us(kH + 2);
  q.set_to_us(3 * kH + 7);
  auto r = store->AggregateQuery(q);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  ASSERT_EQ(r->groups_size(), 1);
  EXPECT_DOUBLE_EQ(r->groups(0).aggregate().sum(), 207.0);
  EXPECT_EQ(r->groups(0).aggregate().count(), 3u);

  // A write that lands between the plan and the read (here: a hint that has
  // not seen it) is caught by the statement's own check: the edges are read
  // from the points again, and the point outside the range stays out.
  MustApply(*store, Command({{"cpu", "h1", {}, {{3 * kH + 9, 8.0}}}}));
  HourSpans stale;
  WidenSpan(stale, 1, kH + 5, kH + 5);
  WidenSpan(stale, 2, 2 * kH + 10, 2 * kH + 10);
  WidenSpan(stale, 3, 3 * kH + 7, 3 * kH + 7);
  store->hour_extents().Replace(stale);
  f.from_us = kH + 2;
  EXPECT_DOUBLE_EQ(MustAggregate(*store, f).sum, 7.0);  // hour 2 from the rollup, hours 1 and 3 from the points
  r = store->AggregateQuery(q);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_DOUBLE_EQ(r->groups(0).aggregate().sum(), 7.0);
  EXPECT_EQ(r->groups(0).aggregate().count(), 3u);
}

TEST_F(ShardStoreTest, RollupRowsWithoutExtentsAreMigratedAndNeverStandInForAnEdge) {
  {
    auto store = Open();
    ASSERT_TRUE(store);
    MustApply(*store, Command({{"cpu", "h1", {}, {{kH + 5, 1.0}, {2 * kH + 10, 2.0}}}}));
  }
  // A file from before t0/t1, with hour 1's rollup telling a different story.
  Tamper(Path(), "ALTER TABLE rollup_1h DROP COLUMN t0; ALTER TABLE rollup_1h DROP COLUMN t1; "
                 "UPDATE rollup_1h SET total = total + 100 WHERE hour = 1");
  auto store = Open();
  ASSERT_TRUE(store);
  PointFilter f;
  f.from_us = kH + 2;
  f.to_us = 3 * kH - 1;  // hour 2 whole; hour 1 an edge its old row cannot vouch for
  EXPECT_DOUBLE_EQ(MustAggregate(*store, f).sum, 3.0);
  f.from_us = kH;  // hour 1 whole: its (tampered) rollup row is read
  EXPECT_DOUBLE_EQ(MustAggregate(*store, f).sum, 103.0);
  // New rows carry their extents.
  MustApply(*store, Command({{"cpu", "h1", {}, {{3 * kH + 7, 4.0}}}}));
  f.to_us = 3 * kH + 8;
  EXPECT_DOUBLE_EQ(MustAggregate(*store, f).sum, 107.0);
}

// ---- The rollup's totals in memory (src/storage/hourly_totals.h) --------------

TEST_F(ShardStoreTest, TotalsInMemoryAnswerWholeHoursAndCellsInsideTheRange) {
  totals_cells_ = kHourlyTotalsCells;
  {
    auto store = Open();
    ASSERT_TRUE(store);
    MustApply(*store, Command({{"cpu", "h1", {}, {{kH + 5, 1.0}, {2 * kH + 10, 2.0}, {3 * kH + 7, 4.0}}}}));
  }
  // The totals are loaded from the rollup at open: tampering with hour 1 shows
  // which reads used them.
  Tamper(Path(), "UPDATE rollup_1h SET total = total + 100 WHERE hour = 1");
  auto store = Open();
  ASSERT_TRUE(store);
  EXPECT_EQ(store->hourly_totals().cells(), 3u);
  PointFilter f;
  f.from_us = kH + 2;  // hour 1 cut, but its one point is inside
  f.to_us = 3 * kH + 7;
  EXPECT_DOUBLE_EQ(MustAggregate(*store, f).sum, 107.0);
  raftmetrics::v1::AggregateQuery q;
  q.set_metric("cpu");
  q.set_from_us(kH + 2);
  q.set_to_us(3 * kH + 7);
  auto r = store->AggregateQuery(q);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  ASSERT_EQ(r->groups_size(), 1);
  EXPECT_DOUBLE_EQ(r->groups(0).aggregate().sum(), 107.0);
  EXPECT_EQ(store->reads_from_totals(), 2u);
  // Hour 1's point outside the range: wholly outside, so skipped.
  f.from_us = kH + 6;
  EXPECT_DOUBLE_EQ(MustAggregate(*store, f).sum, 6.0);
  EXPECT_EQ(store->reads_from_totals(), 3u);
  // A cell with points on both sides of the cut is refused: DuckDB answers
  // (hour 2 from the rollup, hour 3's edge from the points).
  MustApply(*store, Command({{"cpu", "h1", {}, {{3 * kH + 9, 8.0}}}}));
  EXPECT_DOUBLE_EQ(MustAggregate(*store, f).sum, 6.0);
  EXPECT_EQ(store->reads_from_totals(), 3u);
  // Percentiles need the values: never from the totals.
  q.set_want_sketch(true);
  ASSERT_TRUE(store->AggregateQuery(q).ok());
  EXPECT_EQ(store->reads_from_totals(), 3u);
  // Replica checksums read every point.
  f.from_us = std::nullopt;
  f.to_us = std::nullopt;
  f.use_rollup = false;
  EXPECT_DOUBLE_EQ(MustAggregate(*store, f).sum, 15.0);
  f.use_rollup = true;
  EXPECT_DOUBLE_EQ(MustAggregate(*store, f).sum, 115.0);
  EXPECT_EQ(store->reads_from_totals(), 4u);
}

TEST_F(ShardStoreTest, TotalsKeepTheNewestHoursWithinTheirBudget) {
  totals_cells_ = 30;  // 6 hosts: 5 hours of the 12
  auto store = Open();
  ASSERT_TRUE(store);
  auto points = ApplyRandomHours(*store, 3, 40);
  for (int reopen = 0; reopen < 2; ++reopen) {
    SCOPED_TRACE(reopen ? "reopened" : "as written");
    EXPECT_LE(store->hourly_totals().cells(), 30u);
    EXPECT_GE(store->hourly_totals().floor(), 4);
    const uint64_t before = store->reads_from_totals();
    for (const auto& [from, to] : TestRanges(4)) {
      PointFilter f;
      f.from_us = from;
      f.to_us = to;
      ExpectSame(MustAggregate(*store, f), Expected(points, from, to), std::to_string(from) + ".." + std::to_string(to));
    }
    // The recent hours are held; anything older is read from DuckDB.
    PointFilter recent;
    recent.from_us = 7 * kH;
    ExpectSame(MustAggregate(*store, recent), Expected(points, 7 * kH, INT64_MAX), "recent");
    EXPECT_GT(store->reads_from_totals(), before);
    PointFilter all;
    const uint64_t recent_reads = store->reads_from_totals();
    ExpectSame(MustAggregate(*store, all), Expected(points, INT64_MIN, INT64_MAX), "all");
    EXPECT_EQ(store->reads_from_totals(), recent_reads);
    store.reset();
    store = Open();
    ASSERT_TRUE(store);
  }
}

TEST_F(ShardStoreTest, TotalsFollowASnapshotInstall) {
  totals_cells_ = kHourlyTotalsCells;
  auto source = Open(3, "source.duckdb");
  auto target = Open(3, "target.duckdb");
  ASSERT_TRUE(source && target);
  auto points = ApplyRandomHours(*source, 8, 20);
  MustApply(*target, Command({{"cpu", "other", {}, {{kH, 1000.0}}}}));
  auto blob = source->ExportSnapshot();
  ASSERT_TRUE(blob.ok());
  ASSERT_TRUE(target->InstallSnapshot(*blob).ok());
  EXPECT_EQ(target->hourly_totals().cells(), source->hourly_totals().cells());
  const uint64_t before = target->reads_from_totals();
  ExpectSame(MustAggregate(*target, {}), Expected(points, INT64_MIN, INT64_MAX), "after install");
  EXPECT_EQ(target->reads_from_totals(), before + 1);
}

// Every command adds a new series with a point in hour 0 and one in hour 2,
// and a point in hour 1 to a series all share: a read that saw part of a
// command (its hour 0 but not its hour 2, or its points but not its new
// series) would count a total that is not a multiple of 3.
TEST_F(ShardStoreTest, ReadsFromTotalsSeeWholeCommands) {
  totals_cells_ = kHourlyTotalsCells;
  auto store = Open();
  ASSERT_TRUE(store);
  std::atomic<bool> done{false};
  std::thread writer([&] {
    for (int c = 0; c < 150; ++c) {
      const std::string host = "n" + std::to_string(c);
      MustApply(*store, Command({{"cpu", host, {{"host", host}}, {{10 + c, 1.0}, {2 * kH + c, 1.0}}},
                                 {"cpu", "shared", {{"host", "shared"}}, {{kH + c, 1.0}}}}));
    }
    done = true;
  });
  raftmetrics::v1::AggregateQuery q;
  q.set_metric("cpu");
  q.set_from_us(0);
  q.set_to_us(3 * kH - 1);
  q.add_group_by("host");
  PointFilter f;
  f.from_us = 0;
  f.to_us = 3 * kH - 1;
  int reads = 0;
  for (; !done && reads < 100000; ++reads) {
    const uint64_t n = MustAggregate(*store, f).count;
    ASSERT_EQ(n % 3, 0u) << "read " << reads;
    auto r = store->AggregateQuery(q);
    ASSERT_TRUE(r.ok()) << r.status().ToString();
    uint64_t grouped = 0;
    for (const auto& g : r->groups()) grouped += g.aggregate().count();
    ASSERT_EQ(grouped % 3, 0u) << "read " << reads;
  }
  writer.join();
  EXPECT_EQ(MustAggregate(*store, f).count, 450u);
  EXPECT_GT(store->reads_from_totals(), 0u);
}

TEST_F(ShardStoreTest, SketchBinsEqualTheSketchOfTheValues) {
  auto store = Open();
  ASSERT_TRUE(store);
  // Values over 40 orders of magnitude (sparse counters, their lowest bins
  // folded), negatives, zeros, two groups and two buckets.
  std::vector<std::pair<int64_t, double>> a, b;
  std::mt19937_64 rng(9);
  for (int i = 0; i < 3000; ++i) {
    const double mag = std::pow(10.0, static_cast<double>(static_cast<int>(rng() % 40)) - 20) * (1 + (rng() % 1000) / 1000.0);
    const double v = i % 7 == 0 ? 0.0 : (i % 3 == 0 ? -mag : mag);
    (i % 2 ? a : b).push_back({static_cast<int64_t>(rng() % static_cast<uint64_t>(2 * kH)), v});
  }
  for (int i = 0; i < 500; ++i) a.push_back({kH + i, 50 + (i % 100) / 10.0});  // a dense run
  MustApply(*store, Command({{"cpu", "a", {{"dc", "x"}}, a}, {"cpu", "b", {{"dc", "y"}}, b}}));
  raftmetrics::v1::AggregateQuery q;
  q.set_metric("cpu");
  q.set_from_us(0);
  q.set_to_us(2 * kH - 1);
  q.set_bucket_us(kH);
  q.add_group_by("dc");
  q.set_want_sketch(true);
  q.set_want_values(true);
  auto r = store->AggregateQuery(q);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  std::map<std::pair<std::string, int64_t>, QuantileSketch> want;
  std::map<std::pair<std::string, int64_t>, std::multiset<double>> want_values;
  for (const auto& [points, dc] : {std::make_pair(&a, "x"), std::make_pair(&b, "y")}) {
    for (const auto& [ts, v] : *points) {
      want[{dc, ts / kH * kH}].Add(v);
      want_values[{dc, ts / kH * kH}].insert(v);
    }
  }
  ASSERT_EQ(static_cast<size_t>(r->groups_size()), want.size());
  for (const auto& g : r->groups()) {
    const auto key = std::make_pair(g.key(0), g.bucket());
    ASSERT_TRUE(want.count(key));
    // As shipped (already folded), not re-folded by a sketch.
    QuantileSketch::Bins positive, negative;
    for (int i = 0; i < g.sketch().positive_bins_size(); ++i) positive[g.sketch().positive_bins(i)] += g.sketch().positive_counts(i);
    for (int i = 0; i < g.sketch().negative_bins_size(); ++i) negative[g.sketch().negative_bins(i)] += g.sketch().negative_counts(i);
    EXPECT_EQ(positive, want[key].positive());
    EXPECT_EQ(negative, want[key].negative());
    EXPECT_EQ(g.sketch().zeros(), want[key].zeros());
    ASSERT_FALSE(positive.empty());
    EXPECT_LT(positive.rbegin()->first - positive.begin()->first, QuantileSketch::kMaxBins);
    EXPECT_EQ(g.aggregate().count(), want[key].count());
    EXPECT_EQ(std::multiset<double>(g.values().begin(), g.values().end()), want_values[key]);
  }
}

TEST_F(ShardStoreTest, ReplayedAndDuplicateCommandsAddNoRollupRows) {
  auto store = Open();
  ASSERT_TRUE(store);
  auto cmd = Command({{"cpu", "h1", {}, {{kH + 5, 2.0}, {3 * kH, 4.0}}}}, "key-1");
  ASSERT_TRUE(store->Apply(cmd, 1).ok());
  ASSERT_TRUE(store->Apply(cmd, 1).ok());  // replay
  ASSERT_TRUE(store->Apply(cmd, 2).ok());  // same idempotency key
  PointFilter f;
  f.from_us = 0;
  f.to_us = 10 * kH - 1;
  PartialAggregate agg = MustAggregate(*store, f);
  EXPECT_EQ(agg.count, 2u);
  EXPECT_DOUBLE_EQ(agg.sum, 6.0);
}

// The write buffer (ApplyNext without Raft): commands are acknowledged from the
// command log and reach DuckDB together, at the threshold or before a read.
class ShardStoreBufferTest : public ShardStoreTest {
 protected:
  void SetUp() override {
    ShardStoreTest::SetUp();
    write_buffer_points_ = 1000;
  }
  std::string LogPath() const { return Path() + ".wlog"; }
  uint64_t PointsInFile() {
    auto rows = Dump(Path(), "SELECT count(*)::VARCHAR FROM points");
    return rows.size() == 1 ? std::stoull(rows[0].substr(1)) : ~0ull;
  }
};

TEST_F(ShardStoreBufferTest, AcknowledgedWritesWaitInTheLogAndReadsSeeThem) {
  auto store = Open();
  ASSERT_TRUE(store);
  auto out = MustApply(*store, Command({{"cpu", "h1", {}, {{100, 1.5}, {200, 2.5}}}}));
  EXPECT_EQ(out.stored, 2u);
  MustApply(*store, Command({{"cpu", "h2", {{"dc", "x"}}, {{300, 4}}}}));
  EXPECT_EQ(store->buffered_points(), 3u);
  EXPECT_EQ(store->point_count(), 3u);
  EXPECT_EQ(store->applied_index(), 2u);
  EXPECT_GT(fs::file_size(LogPath()), 0u);
  // A read flushes first, so it sees every acknowledged write.
  PartialAggregate agg = MustAggregate(*store);
  EXPECT_EQ(agg.count, 3u);
  EXPECT_DOUBLE_EQ(agg.sum, 8.0);
  EXPECT_EQ(store->buffered_points(), 0u);
  EXPECT_EQ(store->point_count(), 3u);
  EXPECT_EQ(fs::file_size(LogPath()), 0u);
  // Grouped reads and /aggregate reads flush too.
  MustApply(*store, Command({{"cpu", "h2", {{"dc", "x"}}, {{400, 6}}}}));
  auto groups = store->AggregateGroups({}, {"dc"});
  ASSERT_TRUE(groups.ok());
  EXPECT_EQ((*groups)[{"x"}].count, 2u);
  MustApply(*store, Command({{"cpu", "h2", {{"dc", "x"}}, {{500, 8}}}}));
  raftmetrics::v1::AggregateQuery q;
  q.set_from_us(0);
  q.set_to_us(1000);
  q.set_max_groups(10);
  auto r = store->AggregateQuery(q);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  ASSERT_EQ(r->groups_size(), 1);
  EXPECT_EQ(r->groups(0).aggregate().count(), 5u);
  store.reset();
  EXPECT_EQ(PointsInFile(), 5u);
}

TEST_F(ShardStoreBufferTest, ThresholdWritesTheBufferInOneTransaction) {
  auto store = Open();
  ASSERT_TRUE(store);
  std::vector<std::pair<int64_t, double>> pts;
  for (int i = 0; i < 400; ++i) pts.push_back({i, 1.0});
  MustApply(*store, Command({{"m", "a", {}, pts}}));
  MustApply(*store, Command({{"m", "b", {}, pts}}));
  EXPECT_EQ(store->buffered_points(), 800u);
  MustApply(*store, Command({{"m", "c", {}, pts}}));  // 1,200 >= 1,000
  EXPECT_EQ(store->buffered_points(), 0u);
  EXPECT_EQ(store->applied_index(), 3u);
  EXPECT_EQ(fs::file_size(LogPath()), 0u);
  store.reset();
  EXPECT_EQ(PointsInFile(), 1200u);
  EXPECT_EQ(Dump(Path(), "SELECT applied_index::VARCHAR FROM shard_state"), std::vector<std::string>{"|3"});
}

TEST_F(ShardStoreBufferTest, AtTheThresholdOnlyWholeRowGroupsGoToDuckDB) {
  write_buffer_points_ = kWriteBufferPoints;
  std::vector<std::pair<int64_t, double>> pts;
  for (int i = 0; i < 40000; ++i) pts.push_back({i, 1.0});
  {
    auto store = Open();
    ASSERT_TRUE(store);
    for (const char* key : {"a", "b", "c"}) MustApply(*store, Command({{"m", key, {}, pts}}));
    EXPECT_EQ(store->buffered_points(), 120000u);
    // 160,000 >= 131,072: the three oldest commands (120,000 points, the most
    // that fit one 122,880-row group) go; the fourth stays, and so does its record.
    MustApply(*store, Command({{"m", "d", {}, pts}}, "key-d"));
    EXPECT_EQ(store->buffered_points(), 40000u);
    EXPECT_EQ(store->point_count(), 160000u);
    EXPECT_EQ(store->applied_index(), 4u);
    EXPECT_TRUE(MustApply(*store, Command({{"m", "d", {}, pts}}, "key-d")).duplicate);
    auto records = CommandLog::ReadAll(LogPath());
    ASSERT_TRUE(records.ok());
    ASSERT_EQ(records->size(), 1u);
    EXPECT_EQ((*records)[0].index, 4u);
  }  // killed
  EXPECT_EQ(PointsInFile(), 120000u);
  auto store = Open();
  ASSERT_TRUE(store);
  EXPECT_EQ(MustAggregate(*store).count, 160000u);
  EXPECT_TRUE(MustApply(*store, Command({{"m", "d", {}, pts}}, "key-d")).duplicate);
}

TEST_F(ShardStoreBufferTest, KillAfterAcknowledgementLosesNothing) {
  {
    auto store = Open();
    ASSERT_TRUE(store);
    MustApply(*store, Command({{"cpu", "h1", {}, {{100, 1}}}}, "key-1"));
    MustApply(*store, Command({{"cpu", "h9", {}, {{200, 2}, {300, 3}}}}));
    EXPECT_EQ(store->buffered_points(), 3u);
    // Destroying the store without a read or flush is what kill -9 leaves:
    // nothing of the buffer reached DuckDB.
  }
  EXPECT_EQ(PointsInFile(), 0u);
  auto store = Open();
  ASSERT_TRUE(store);
  EXPECT_EQ(store->buffered_points(), 0u);  // replayed into DuckDB at open
  EXPECT_FALSE(fs::exists(LogPath()));
  EXPECT_EQ(store->applied_index(), 2u);
  EXPECT_EQ(store->point_count(), 3u);
  EXPECT_EQ(MustAggregate(*store).count, 3u);
  // The key came back with its command: a retry is a duplicate (which stores
  // nothing, so it is not logged and takes no index).
  auto retry = MustApply(*store, Command({{"cpu", "h1", {}, {{100, 1}}}}, "key-1"));
  EXPECT_TRUE(retry.duplicate);
  EXPECT_EQ(retry.stored, 1u);
  EXPECT_EQ(store->applied_index(), 2u);
  EXPECT_EQ(MustAggregate(*store).count, 3u);
}

TEST_F(ShardStoreBufferTest, DuplicateKeysInTheBufferAreStoredOnce) {
  auto store = Open();
  ASSERT_TRUE(store);
  auto cmd = Command({{"cpu", "h1", {}, {{100, 1}, {200, 2}}}}, "key-1");
  EXPECT_FALSE(MustApply(*store, cmd).duplicate);
  auto again = MustApply(*store, cmd);
  EXPECT_TRUE(again.duplicate);
  EXPECT_EQ(again.stored, 2u);
  // Two in one group (one ApplyNext call) as well.
  auto other = Command({{"cpu", "h2", {}, {{300, 3}}}}, "key-2");
  auto both = store->ApplyNext(std::vector<const ShardCommand*>{&other, &other});
  ASSERT_TRUE(both[0].ok() && both[1].ok());
  EXPECT_FALSE(both[0]->duplicate);
  EXPECT_TRUE(both[1]->duplicate);
  EXPECT_EQ(store->buffered_points(), 3u);
  PartialAggregate agg = MustAggregate(*store);
  EXPECT_EQ(agg.count, 3u);
  EXPECT_DOUBLE_EQ(agg.sum, 6.0);
  EXPECT_TRUE(MustApply(*store, cmd).duplicate);  // and after the flush, from DuckDB's keys
  store.reset();
  EXPECT_EQ(Dump(Path(), "SELECT key, stored::VARCHAR FROM applied_writes ORDER BY key"),
            (std::vector<std::string>{"|key-1|2", "|key-2|1"}));
}

TEST_F(ShardStoreBufferTest, ATornLogTailIsCutOffAndTheRestReplayed) {
  {
    auto store = Open();
    ASSERT_TRUE(store);
    MustApply(*store, Command({{"cpu", "h1", {}, {{100, 1}}}}));
    MustApply(*store, Command({{"cpu", "h1", {}, {{200, 2}}}}));
  }
  const auto whole = fs::file_size(LogPath());
  {  // a crash in the middle of a third append
    std::ofstream out(LogPath(), std::ios::binary | std::ios::app);
    out << std::string("\x40\x00\x00\x00\x03\x00\x00", 7);
  }
  ASSERT_EQ(fs::file_size(LogPath()), whole + 7);
  auto store = Open();
  ASSERT_TRUE(store);
  EXPECT_EQ(store->applied_index(), 2u);
  PartialAggregate agg = MustAggregate(*store);
  EXPECT_EQ(agg.count, 2u);
  EXPECT_DOUBLE_EQ(agg.sum, 3.0);
}

TEST_F(ShardStoreBufferTest, RaftAppliesAndSnapshotsFollowTheBuffer) {
  auto store = Open();
  ASSERT_TRUE(store);
  MustApply(*store, Command({{"cpu", "h1", {}, {{100, 1}}}}));
  // A Raft entry after buffered writes: DuckDB gets the buffer first.
  ASSERT_TRUE(store->Apply(Command({{"cpu", "h1", {}, {{200, 2}}}}), 2).ok());
  EXPECT_EQ(store->buffered_points(), 0u);
  EXPECT_EQ(store->applied_index(), 2u);
  // A snapshot holds the buffered writes.
  MustApply(*store, Command({{"cpu", "h1", {}, {{300, 3}}}}));
  auto blob = store->ExportSnapshot();
  ASSERT_TRUE(blob.ok()) << blob.status().ToString();
  auto target = Open(3, "target.duckdb");
  ASSERT_TRUE(target);
  MustApply(*target, Command({{"disk", "h9", {}, {{1, 100}}}}));  // buffered there: replaced
  ASSERT_TRUE(target->InstallSnapshot(*blob).ok());
  EXPECT_EQ(target->buffered_points(), 0u);
  EXPECT_FALSE(fs::exists(Path("target.duckdb") + ".wlog"));
  PartialAggregate agg = MustAggregate(*target);
  EXPECT_EQ(agg.count, 3u);
  EXPECT_DOUBLE_EQ(agg.sum, 6.0);
  EXPECT_EQ(target->applied_index(), 3u);
}

// Raft's entries (ApplyBatch with may_buffer) wait in the buffer without the
// command log: Raft's log is their durability, and replays them after a crash.
TEST_F(ShardStoreBufferTest, RaftEntriesWaitWithoutACommandLogAndAReplayRebuildsThem) {
  const auto a = Command({{"cpu", "h1", {}, {{100, 1}, {200, 2}}}}, "key-1");
  const auto b = Command({{"cpu", "h2", {}, {{300, 3}}}});
  // Entry 3 retries key-1 (a duplicate); entry 2 comes twice (a replay).
  const std::vector<ShardStore::Entry> entries{{&a, 1}, {&b, 2}, {&b, 2}, {&a, 3}};
  auto check = [&](const std::vector<Result<ApplyOutcome>>& out) {
    ASSERT_EQ(out.size(), 4u);
    for (const auto& r : out) ASSERT_TRUE(r.ok()) << r.status().ToString();
    EXPECT_EQ(out[0]->stored, 2u);
    EXPECT_FALSE(out[0]->duplicate);
    EXPECT_EQ(out[1]->stored, 1u);
    EXPECT_TRUE(out[2]->duplicate);   // replay
    EXPECT_EQ(out[2]->stored, 0u);
    EXPECT_TRUE(out[3]->duplicate);   // same key
    EXPECT_EQ(out[3]->stored, 2u);
  };
  {
    auto store = Open();
    ASSERT_TRUE(store);
    check(store->ApplyBatch(entries, /*may_buffer=*/true));
    EXPECT_EQ(store->buffered_points(), 3u);
    EXPECT_EQ(store->applied_index(), 3u);
    EXPECT_EQ(store->durable_index(), 0u);
    EXPECT_FALSE(fs::exists(LogPath()));
    // A crash now loses the buffer: nothing was written anywhere.
  }
  EXPECT_EQ(PointsInFile(), 0u);
  auto store = Open();
  ASSERT_TRUE(store);
  EXPECT_EQ(store->applied_index(), 0u);
  // Raft replays its log from DuckDB's index: the same outcomes.
  check(store->ApplyBatch(entries, /*may_buffer=*/true));
  // A flush leaves DuckDB at the last entry, the trailing duplicate's index
  // included (a snapshot of this store claims index 3).
  ASSERT_TRUE(store->Flush().ok());
  EXPECT_EQ(store->durable_index(), 3u);
  EXPECT_EQ(store->buffered_points(), 0u);
  // Duplicates alone after a flush move DuckDB's index too.
  ASSERT_TRUE(store->ApplyBatch({{&a, 4}}, true).front()->duplicate);
  EXPECT_EQ(store->applied_index(), 4u);
  EXPECT_EQ(store->durable_index(), 3u);
  ASSERT_TRUE(store->Flush().ok());
  EXPECT_EQ(store->durable_index(), 4u);
  // Without may_buffer, an entry writes the buffer and itself through.
  const auto c = Command({{"cpu", "h3", {}, {{400, 4}}}});
  ASSERT_TRUE(store->ApplyBatch({{&b, 5}}, true).front().ok());
  EXPECT_EQ(store->durable_index(), 4u);
  ASSERT_TRUE(store->ApplyBatch({{&c, 6}}, false).front().ok());
  EXPECT_EQ(store->durable_index(), 6u);
  store.reset();
  EXPECT_EQ(PointsInFile(), 5u);
  EXPECT_EQ(Dump(Path(), "SELECT applied_index::VARCHAR FROM shard_state"), (std::vector<std::string>{"|6"}));
}

TEST_F(ShardStoreBufferTest, RaftEntriesReachDuckDBAtTheThreshold) {
  auto store = Open();
  ASSERT_TRUE(store);
  std::vector<ShardCommand> commands;
  for (int i = 0; i < 12; ++i) {
    std::vector<std::pair<int64_t, double>> pts;
    for (int p = 0; p < 100; ++p) pts.push_back({i * 1000 + p, 1.0});
    commands.push_back(Command({{"cpu", "h" + std::to_string(i % 3), {}, pts}}));
  }
  for (size_t i = 0; i < commands.size(); ++i) {
    ASSERT_TRUE(store->ApplyBatch({{&commands[i], i + 1}}, true).front().ok());
    // The threshold is 1,000 points: the tenth entry writes the buffer out.
    EXPECT_EQ(store->buffered_points(), i < 9 ? (i + 1) * 100 : (i - 9) * 100) << i;
  }
  EXPECT_EQ(store->durable_index(), 10u);
  EXPECT_EQ(store->applied_index(), 12u);
  EXPECT_EQ(MustAggregate(*store).count, 1200u);
  EXPECT_EQ(store->durable_index(), 12u);
}

TEST_F(ShardStoreBufferTest, RaftEntriesAfterLoggedWritesRetireTheCommandLog) {
  auto store = Open();
  ASSERT_TRUE(store);
  MustApply(*store, Command({{"cpu", "h1", {}, {{100, 1}}}}));
  EXPECT_GT(fs::file_size(LogPath()), 0u);
  const auto b = Command({{"cpu", "h2", {}, {{200, 2}}}});
  ASSERT_TRUE(store->ApplyBatch({{&b, 2}}, true).front().ok());
  // The logged command went to DuckDB first; the Raft entry waits, unlogged.
  EXPECT_EQ(store->durable_index(), 1u);
  EXPECT_EQ(store->buffered_points(), 1u);
  EXPECT_EQ(fs::file_size(LogPath()), 0u);
  EXPECT_EQ(MustAggregate(*store).count, 2u);
}

TEST_F(ShardStoreBufferTest, WithLittleFreeDiskWritesGoStraightToDuckDB) {
  write_buffer_min_free_bytes_ = ~0ull;  // more than any disk has
  auto store = Open();
  ASSERT_TRUE(store);
  MustApply(*store, Command({{"cpu", "h1", {}, {{100, 1}}}}));
  EXPECT_EQ(store->buffered_points(), 0u);
  EXPECT_FALSE(fs::exists(LogPath()));
  store.reset();
  EXPECT_EQ(PointsInFile(), 1u);
}

TEST_F(ShardStoreBufferTest, RaftEntriesBufferedBeforeTheDiskRunsLowReachDuckDBBeforeWritesThrough) {
  std::atomic<uint64_t> free_bytes{~0ull};
  write_buffer_min_free_bytes_ = 1000;
  free_disk_bytes_ = [&](const std::string&) { return free_bytes.load(); };
  const auto a = Command({{"cpu", "h1", {}, {{100, 1}}}}, "key-a");
  const auto b = Command({{"cpu", "h2", {}, {{200, 2}, {201, 3}}}}, "key-b");
  const auto c = Command({{"cpu", "h3", {}, {{300, 4}}}}, "key-c");
  {
    auto store = Open();
    ASSERT_TRUE(store);
    ASSERT_TRUE(store->ApplyBatch({{&a, 1}, {&b, 2}}, true).front().ok());
    EXPECT_EQ(store->buffered_points(), 3u);
    EXPECT_EQ(store->durable_index(), 0u);
    free_bytes = 10;  // the disk runs low: the next entry writes through
    auto out = store->ApplyBatch({{&c, 3}}, true);
    ASSERT_TRUE(out.front().ok()) << out.front().status().ToString();
    EXPECT_EQ(out.front()->stored, 1u);
    EXPECT_EQ(store->buffered_points(), 0u);
    EXPECT_EQ(store->durable_index(), 3u);
    EXPECT_EQ(MustAggregate(*store).count, 4u);
    // A retry of a buffered key is a duplicate, not stored twice.
    auto again = store->ApplyBatch({{&b, 4}}, true);
    ASSERT_TRUE(again.front().ok());
    EXPECT_TRUE(again.front()->duplicate);
  }
  // Every entry is in the file, under DuckDB's index.
  EXPECT_EQ(PointsInFile(), 4u);
}

TEST_F(ShardStoreBufferTest, ConcurrentWritersAndReadersSeeEveryAcknowledgedPoint) {
  auto store = Open();
  ASSERT_TRUE(store);
  constexpr int kWriters = 4, kCommands = 60;
  std::atomic<uint64_t> acked{0};
  std::atomic<bool> failed{false};
  std::vector<std::thread> threads;
  for (int w = 0; w < kWriters; ++w) {
    threads.emplace_back([&, w] {
      for (int i = 0; i < kCommands; ++i) {
        std::vector<std::pair<int64_t, double>> pts;
        for (int p = 0; p < 25; ++p) pts.push_back({i * 100 + p, 1.0});
        auto r = store->ApplyNext(Command({{"m", "w" + std::to_string(w), {}, pts}}));
        if (!r.ok()) failed = true;
        acked += r.ok() ? r->stored : 0;
        // Every read sees at least what was acknowledged before it began.
        if (i % 10 == 0) {
          const uint64_t before = acked.load();
          auto agg = store->Aggregate({});
          if (!agg.ok() || agg->count < before) failed = true;
        }
      }
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_FALSE(failed);
  EXPECT_EQ(acked.load(), uint64_t{kWriters * kCommands * 25});
  EXPECT_EQ(MustAggregate(*store).count, acked.load());
  EXPECT_EQ(store->applied_index(), uint64_t{kWriters * kCommands});
}

}  // namespace
}  // namespace rm
