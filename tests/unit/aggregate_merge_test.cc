#include "src/query/aggregate_merge.h"

#include "src/common/time_util.h"

#include <gtest/gtest.h>

namespace rm {
namespace {

namespace pb = raftmetrics::v1;

const int64_t kNow = 1705795200LL * 1000000;  // 2024-01-21T00:00:00Z
const int64_t kMin = 60LL * 1000000;

int64_t At(const char* iso) { return *ParseIso8601(iso); }

// One shard's answer: a point of `value` in each of the given buckets.
pb::AggregateShardResult Shard(const std::vector<std::pair<int64_t, double>>& buckets) {
  pb::AggregateShardResult r;
  for (const auto& [bucket, value] : buckets) {
    auto* g = r.add_groups();
    g->add_key("us-west");
    g->set_bucket(bucket);
    auto* a = g->mutable_aggregate();
    a->set_count(1);
    a->set_sum(value);
    a->set_min(value);
    a->set_max(value);
  }
  return r;
}

TEST(AggregateMerge, RollingWindowsReadBeforeFromAndTheRangeStaysExact) {
  auto spec = ParseAggregateParams({{"metric", "cpu"},
                                    {"from", "2024-01-20T10:00:00Z"},
                                    {"to", "2024-01-20T10:10:00Z"},
                                    {"window", "1h"},
                                    {"rolling", "true"},
                                    {"step", "5m"},
                                    {"agg", "avg,count"}},
                                   kNow);
  ASSERT_TRUE(spec.ok()) << spec.status().ToString();
  // The shards read from an hour before `from`, in 5-minute buckets anchored at it.
  EXPECT_EQ(spec->query.from_us(), At("2024-01-20T09:00:00Z"));
  EXPECT_EQ(spec->query.bucket_anchor_us(), At("2024-01-20T10:00:00Z"));
  EXPECT_EQ(spec->query.bucket_us(), 5 * kMin);

  AggregateMerger merger(*spec);
  merger.Add(Shard({{At("2024-01-20T09:20:00Z"), 10}, {At("2024-01-20T10:05:00Z"), 20}}));
  auto body = merger.Finish();
  ASSERT_TRUE(body.ok()) << body.status().ToString();
  const auto& series = (*body)["series"];
  ASSERT_EQ(series.size(), 3u) << body->dump();
  // t = from: the hour before it, whole.
  EXPECT_EQ(series[0]["start"], "2024-01-20T09:00:00Z");
  EXPECT_EQ(series[0]["end"], "2024-01-20T10:00:00Z");
  EXPECT_EQ(series[0]["aggregations"]["count"], 1);
  EXPECT_EQ(series[1]["end"], "2024-01-20T10:05:00Z");
  EXPECT_EQ(series[1]["aggregations"]["count"], 1);
  EXPECT_EQ(series[2]["start"], "2024-01-20T09:10:00Z");
  EXPECT_EQ(series[2]["end"], "2024-01-20T10:10:00Z");
  EXPECT_EQ(series[2]["aggregations"]["avg"], 15.0);
  // The range's own aggregations: only the point inside [from, to].
  EXPECT_EQ((*body)["aggregations"]["count"], 1);
  EXPECT_EQ((*body)["aggregations"]["avg"], 20.0);
  EXPECT_EQ((*body)["by_datacenter"]["us-west"]["count"], 1);
  EXPECT_EQ(merger.PointsInRange(), 1u);
  EXPECT_TRUE(merger.Warnings().empty());
}

TEST(AggregateMerge, AnEmptyAnswerExplainsItself) {
  auto spec = ParseAggregateParams({{"metric", "cpu_usge"}}, kNow);
  ASSERT_TRUE(spec.ok());
  AggregateMerger none(*spec);
  pb::AggregateShardResult r;
  r.mutable_presence()->add_similar_metrics("cpu_usage");
  none.Add(r);
  none.Add(pb::AggregateShardResult());
  ASSERT_EQ(none.Warnings().size(), 1u);
  EXPECT_EQ(none.Warnings()[0], "no series for metric cpu_usge (did you mean cpu_usage?)");

  spec = ParseAggregateParams({{"metric", "cpu"}}, kNow);
  ASSERT_TRUE(spec.ok());
  AggregateMerger old(*spec);
  for (auto [first, last] : {std::pair{At("2024-01-01T00:00:00Z"), At("2024-01-02T00:00:00Z")},
                             std::pair{At("2023-12-31T12:00:00Z"), At("2024-01-01T06:00:00Z")}}) {
    pb::AggregateShardResult p;
    p.mutable_presence()->set_series(2);
    p.mutable_presence()->set_matching_series(2);
    p.mutable_presence()->set_first_us(first);
    p.mutable_presence()->set_last_us(last);
    old.Add(p);
  }
  ASSERT_EQ(old.Warnings().size(), 1u);
  EXPECT_EQ(old.Warnings()[0],
            "no points in the default range (last 24 h, 2024-01-20T00:00:00Z to 2024-01-21T00:00:00Z); "
            "the metric has points from 2023-12-31T12:00:00Z to 2024-01-02T00:00:00Z");

  spec = ParseAggregateParams({{"metric", "cpu"}, {"datacenters", "mars"}}, kNow);
  ASSERT_TRUE(spec.ok());
  AggregateMerger filtered(*spec);
  pb::AggregateShardResult f;
  f.mutable_presence()->set_series(3);
  filtered.Add(f);
  ASSERT_EQ(filtered.Warnings().size(), 1u);
  EXPECT_EQ(filtered.Warnings()[0],
            "no series of metric cpu match the filters (tags, hosts, datacenters); it has 3 series");
}

}  // namespace
}  // namespace rm
