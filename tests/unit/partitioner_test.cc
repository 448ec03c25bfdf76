// Tests of src/partition/partitioner and src/common/hash: which shard a key maps
// to, and how parsed points are grouped into one command per shard.
#include "src/partition/partitioner.h"

#include "src/common/hash.h"
#include "src/wire/point_parser.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace rm {
namespace {

CommandOptions Options(int64_t now_us, std::string key = "", int64_t expires_us = 0) {
  CommandOptions o;
  o.now_us = now_us;
  o.idempotency_key = std::move(key);
  o.key_expires_us = expires_us;
  return o;
}

ParsedPoint Pt(std::string metric, std::string pk, double value, int64_t ts = 0, Tags tags = {}) {
  ParsedPoint p;
  p.metric = std::move(metric);
  p.partition_key = std::move(pk);
  p.value = value;
  p.timestamp_us = ts;
  p.tags = std::move(tags);
  return p;
}

TEST(StableHash, MatchesPublishedXxh3Values) {
  // Computed once with XXH3_64bits from libxxhash; XXH3("") is the published test
  // vector 0x2D06800538D394C2. A change of hash function reshuffles every shard.
  EXPECT_EQ(StableHash(""), 0x2D06800538D394C2ULL);
  EXPECT_EQ(StableHash(""), 3244421341483603138ULL);
  EXPECT_EQ(StableHash("a"), 16629034431890738719ULL);
  EXPECT_EQ(StableHash("host-1"), 3515855730165516042ULL);
  EXPECT_EQ(StableHash("server01"), 17247562138350409157ULL);
  EXPECT_EQ(StableHash("sensor-42"), 18328385707469281735ULL);
}

TEST(ShardFor, PinnedShardsForKnownKeys) {
  EXPECT_EQ(ShardFor("", 16), 2u);
  EXPECT_EQ(ShardFor("a", 16), 15u);
  EXPECT_EQ(ShardFor("host-1", 16), 10u);
  EXPECT_EQ(ShardFor("server01", 16), 5u);
  EXPECT_EQ(ShardFor("sensor-42", 16), 7u);
  EXPECT_EQ(ShardFor("cpu.usage{host=a}", 16), 10u);
  EXPECT_EQ(ShardFor("host-1", 7), 4u);
  EXPECT_EQ(ShardFor("cpu.usage{host=a}", 7), 0u);
}

TEST(ShardFor, IsStableAcrossCalls) {
  for (int i = 0; i < 100; ++i) {
    std::string key = "key-" + std::to_string(i);
    EXPECT_EQ(ShardFor(key, 16), ShardFor(std::string(key), 16));
  }
}

TEST(ShardFor, IsAlwaysInRange) {
  for (uint32_t shards : {1u, 2u, 3u, 16u, 17u, 1024u}) {
    for (int i = 0; i < 2000; ++i) {
      EXPECT_LT(ShardFor("k" + std::to_string(i), shards), shards);
    }
  }
  EXPECT_EQ(ShardFor("anything", 1), 0u);
}

TEST(ShardFor, SpreadsKeysEvenlyOverSixteenShards) {
  constexpr int kKeys = 16000;
  std::vector<int> counts(16);
  for (int i = 0; i < kKeys; ++i) ++counts[ShardFor("sensor-" + std::to_string(i), 16)];
  // Expect 1000 per shard; a good hash stays well within +-15%.
  for (int s = 0; s < 16; ++s) {
    EXPECT_GT(counts[s], 850) << "shard " << s;
    EXPECT_LT(counts[s], 1150) << "shard " << s;
  }
}

TEST(BuildShardCommands, EmptyInputGivesNoCommands) {
  EXPECT_TRUE(BuildShardCommands(std::vector<ParsedPoint>{}, 16, CommandOptions{}).empty());
}

TEST(BuildShardCommands, GroupsPointsByShard) {
  std::vector<ParsedPoint> points;
  for (int i = 0; i < 200; ++i) points.push_back(Pt("m", "key-" + std::to_string(i), i, 1000 + i));
  auto cmds = BuildShardCommands(points, 16, Options(5));
  uint64_t total = 0;
  for (const auto& [shard, cmd] : cmds) {
    EXPECT_EQ(cmd.shard(), shard);
    total += PointCount(cmd);
    for (const auto& s : cmd.series()) EXPECT_EQ(ShardFor(s.partition_key(), 16), shard);
  }
  EXPECT_EQ(total, 200u);
  EXPECT_GT(cmds.size(), 10u);  // 200 keys land on (nearly) every shard
}

TEST(BuildShardCommands, OneSeriesEntryPerSeriesWithinAShard) {
  std::vector<ParsedPoint> points = {
      Pt("cpu", "host-1", 1, 10, {{"dc", "eu"}}),
      Pt("mem", "host-1", 2, 11, {{"dc", "eu"}}),
      Pt("cpu", "host-1", 3, 12, {{"dc", "eu"}}),
      Pt("cpu", "host-1", 4, 13, {{"dc", "us"}}),
      Pt("cpu", "host-1", 5, 14, {{"dc", "eu"}}),
  };
  auto cmds = BuildShardCommands(points, 16, {});
  ASSERT_EQ(cmds.size(), 1u);
  const auto& cmd = cmds.begin()->second;
  EXPECT_EQ(cmds.begin()->first, ShardFor("host-1", 16));
  ASSERT_EQ(cmd.series_size(), 3);
  // Series appear in order of first appearance; points keep input order.
  EXPECT_EQ(cmd.series(0).metric(), "cpu");
  EXPECT_EQ(cmd.series(0).tags().at("dc"), "eu");
  EXPECT_EQ(std::vector<double>(cmd.series(0).values().begin(), cmd.series(0).values().end()),
            (std::vector<double>{1, 3, 5}));
  EXPECT_EQ(std::vector<int64_t>(cmd.series(0).timestamps_us().begin(),
                                 cmd.series(0).timestamps_us().end()),
            (std::vector<int64_t>{10, 12, 14}));
  EXPECT_EQ(cmd.series(1).metric(), "mem");
  EXPECT_EQ(cmd.series(1).values_size(), 1);
  EXPECT_EQ(cmd.series(2).tags().at("dc"), "us");
  EXPECT_EQ(cmd.series(2).values(0), 4);
  EXPECT_EQ(PointCount(cmd), 5u);
}

TEST(BuildShardCommands, SamePartitionKeyDifferentSeriesAreSeparate) {
  // Same metric and tags but two partition keys are two series (even if they
  // happen to land on the same shard).
  std::vector<ParsedPoint> points = {Pt("cpu", "a", 1, 1), Pt("cpu", "a", 2, 2)};
  for (int i = 0; i < 50; ++i) points.push_back(Pt("cpu", "b" + std::to_string(i), 3, 3));
  auto cmds = BuildShardCommands(points, 1, {});
  ASSERT_EQ(cmds.size(), 1u);
  EXPECT_EQ(cmds.at(0).series_size(), 51);
  EXPECT_EQ(cmds.at(0).series(0).partition_key(), "a");
  EXPECT_EQ(cmds.at(0).series(0).values_size(), 2);
}

TEST(BuildShardCommands, MissingTimestampsAreFilledWithNow) {
  std::vector<ParsedPoint> points = {Pt("m", "k", 1, 0), Pt("m", "k", 2, 777), Pt("m", "k", 3, 0)};
  auto cmds = BuildShardCommands(points, 16, Options(123456));
  ASSERT_EQ(cmds.size(), 1u);
  const auto& s = cmds.begin()->second.series(0);
  EXPECT_EQ(std::vector<int64_t>(s.timestamps_us().begin(), s.timestamps_us().end()),
            (std::vector<int64_t>{123456, 777, 123456}));
}

TEST(BuildShardCommands, EveryCommandCarriesKeyExpiryAndIssueTime) {
  std::vector<ParsedPoint> points;
  for (int i = 0; i < 64; ++i) points.push_back(Pt("m", "k" + std::to_string(i), i, 1));
  CommandOptions options = Options(42, "req-1", 99);
  auto cmds = BuildShardCommands(points, 8, options);
  ASSERT_GT(cmds.size(), 1u);
  for (const auto& [shard, cmd] : cmds) {
    EXPECT_EQ(cmd.shard(), shard);
    EXPECT_EQ(cmd.idempotency_key(), "req-1");
    EXPECT_EQ(cmd.key_expires_us(), 99);
    EXPECT_EQ(cmd.issued_us(), 42);
  }
}

TEST(BuildShardCommands, SeriesCarriesMetricPartitionKeyAndTags) {
  auto cmds = BuildShardCommands({Pt("cpu.usage", "h1", 0.5, 9, {{"dc", "eu"}, {"host", "h1"}})}, 4, {});
  ASSERT_EQ(cmds.size(), 1u);
  const auto& s = cmds.begin()->second.series(0);
  EXPECT_EQ(s.metric(), "cpu.usage");
  EXPECT_EQ(s.partition_key(), "h1");
  ASSERT_EQ(s.tags_size(), 2);
  EXPECT_EQ(s.tags().at("dc"), "eu");
  EXPECT_EQ(s.tags().at("host"), "h1");
  EXPECT_EQ(s.values(0), 0.5);
}

TEST(BuildShardCommands, TagValuesWithSeparatorsStayDistinctSeries) {
  // BUG src/partition/partitioner.cc:34-37 (AddPoints): a series' identity is
  // partition_key + '\0' + SeriesKey(metric, tags), and SeriesKey is ambiguous
  // when tag values contain ',' '=' or '}': {a="1,b=2"} and {a="1", b="2"} both
  // render as m{a=1,b=2}, so the second point is appended to the first series and
  // stored under the wrong tags. (The parser's SeriesAccumulator keeps them apart.)
  auto cmds = BuildShardCommands({Pt("m", "p", 1, 1, {{"a", "1,b=2"}}), Pt("m", "p", 2, 2, {{"a", "1"}, {"b", "2"}})},
                                 16, Options(1));
  ASSERT_EQ(cmds.size(), 1u);
  const auto& cmd = cmds.begin()->second;
  ASSERT_EQ(cmd.series_size(), 2);
  EXPECT_EQ(cmd.series(0).tags_size(), 1);
  EXPECT_EQ(cmd.series(1).tags_size(), 2);
}

ParsedInsert Parsed(const std::string& json) {
  auto r = ParseInsertBody(json, "application/json", InsertDialect::kInsert);
  EXPECT_TRUE(r.ok()) << r.status().ToString();
  return r.ok() ? std::move(r).value() : ParsedInsert{};
}

TEST(SplitIntoShardCommands, RoutesEachSeriesToItsShard) {
  std::string body = "[";
  for (int i = 0; i < 100; ++i) {
    body += std::string(i ? "," : "") + R"({"partition_key":"k)" + std::to_string(i) + R"(","value":)" +
            std::to_string(i) + "}";
  }
  body += "]";
  auto cmds = SplitIntoShardCommands(Parsed(body), 16, Options(7, "key-1", 99));
  uint64_t total = 0;
  for (const auto& [shard, cmd] : cmds) {
    EXPECT_EQ(cmd.shard(), shard);
    EXPECT_EQ(cmd.idempotency_key(), "key-1");
    EXPECT_EQ(cmd.key_expires_us(), 99);
    EXPECT_EQ(cmd.issued_us(), 7);
    for (const auto& s : cmd.series()) EXPECT_EQ(ShardFor(s.partition_key(), 16), shard);
    total += PointCount(cmd);
  }
  EXPECT_EQ(total, 100u);
}

TEST(SplitIntoShardCommands, FillsOnlyMissingTimestampsWithNow) {
  auto cmds = SplitIntoShardCommands(
      Parsed(R"([{"partition_key":"k","value":1},{"partition_key":"k","value":2,"timestamp":"1970-01-01T00:00:01Z"},
                 {"partition_key":"k","value":3}])"),
      16, Options(555));
  ASSERT_EQ(cmds.size(), 1u);
  const auto& s = cmds.begin()->second.series(0);
  EXPECT_EQ(std::vector<int64_t>(s.timestamps_us().begin(), s.timestamps_us().end()),
            (std::vector<int64_t>{555, 1000000, 555}));
  EXPECT_EQ(std::vector<double>(s.values().begin(), s.values().end()), (std::vector<double>{1, 2, 3}));
}

TEST(SplitIntoShardCommands, AgreesWithBuildShardCommands) {
  const std::string body = R"([{"partition_key":"a","metric":"cpu","value":1,"tags":{"h":"x"}},
                               {"partition_key":"b","metric":"cpu","value":2},
                               {"partition_key":"a","metric":"cpu","value":3,"tags":{"h":"x"}},
                               {"partition_key":"c","metric":"mem","value":4,"timestamp":"2024-01-20T15:30:00Z"}])";
  ParsedInsert parsed = Parsed(body);
  auto from_points = BuildShardCommands(parsed.Flatten(), 8, Options(42, "k", 9));
  auto from_series = SplitIntoShardCommands(std::move(parsed), 8, Options(42, "k", 9));
  ASSERT_EQ(from_points.size(), from_series.size());
  for (const auto& [shard, cmd] : from_points) {
    ASSERT_TRUE(from_series.count(shard)) << shard;
    EXPECT_EQ(cmd.SerializeAsString(), from_series.at(shard).SerializeAsString()) << shard;
  }
}

TEST(PointCount, SumsValuesOverSeries) {
  raftmetrics::v1::ShardCommand cmd;
  EXPECT_EQ(PointCount(cmd), 0u);
  auto* a = cmd.add_series();
  a->add_values(1);
  a->add_values(2);
  cmd.add_series();
  auto* c = cmd.add_series();
  c->add_values(3);
  EXPECT_EQ(PointCount(cmd), 3u);
}

TEST(SeriesKey, SortedTagsInBraces) {
  EXPECT_EQ(SeriesKey("cpu", {}), "cpu{}");
  EXPECT_EQ(SeriesKey("cpu", {{"dc", "eu"}, {"host", "a"}}), "cpu{dc=eu,host=a}");
}

TEST(IsValidName, AcceptsOnlyThePattern) {
  EXPECT_TRUE(IsValidName("cpu.usage_1-a"));
  EXPECT_TRUE(IsValidName("A"));
  EXPECT_FALSE(IsValidName(""));
  EXPECT_FALSE(IsValidName("cpu usage"));
  EXPECT_FALSE(IsValidName("cpu{x}"));
  EXPECT_FALSE(IsValidName("h\xc3\xa9"));
}

}  // namespace
}  // namespace rm
