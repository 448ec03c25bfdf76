// Tests of src/query/partial_aggregate.h and src/query/aggregation: merging
// partial states, rendering them, and validating aggregation names.
#include "src/query/partial_aggregate.h"

#include "src/query/aggregation.h"

#include <gtest/gtest.h>

#include <vector>

namespace rm {
namespace {

PartialAggregate Of(std::initializer_list<double> values) {
  PartialAggregate p;
  for (double v : values) p.Add(v);
  return p;
}

void ExpectSame(const PartialAggregate& a, const PartialAggregate& b) {
  EXPECT_EQ(a.count, b.count);
  EXPECT_DOUBLE_EQ(a.sum, b.sum);
  EXPECT_EQ(a.min, b.min);
  EXPECT_EQ(a.max, b.max);
}

TEST(PartialAggregate, EmptyHasNoAverage) {
  PartialAggregate p;
  EXPECT_EQ(p.count, 0u);
  EXPECT_EQ(p.sum, 0);
  EXPECT_EQ(p.Average(), std::nullopt);
}

TEST(PartialAggregate, AddTracksCountSumMinMax) {
  PartialAggregate p = Of({3, -1, 7.5, 2});
  EXPECT_EQ(p.count, 4u);
  EXPECT_EQ(p.sum, 11.5);
  EXPECT_EQ(p.min, -1);
  EXPECT_EQ(p.max, 7.5);
  EXPECT_EQ(p.Average(), 11.5 / 4);
}

TEST(PartialAggregate, MergeEqualsAddingEveryValue) {
  PartialAggregate a = Of({1, 2});
  a.Merge(Of({-5, 10, 3}));
  ExpectSame(a, Of({1, 2, -5, 10, 3}));
}

TEST(PartialAggregate, MergingEmptyChangesNothing) {
  PartialAggregate a = Of({4, 6});
  a.Merge(PartialAggregate{});
  ExpectSame(a, Of({4, 6}));
  PartialAggregate empty;
  empty.Merge(Of({4, 6}));
  ExpectSame(empty, Of({4, 6}));
  PartialAggregate both;
  both.Merge(PartialAggregate{});
  EXPECT_EQ(both.count, 0u);
  EXPECT_EQ(both.Average(), std::nullopt);
}

TEST(PartialAggregate, MergeIsAssociativeAndCommutative) {
  const std::vector<PartialAggregate> parts = {Of({1, 9}), Of({}), Of({-3}), Of({4, 4, 8}), Of({0.5})};
  PartialAggregate left;  // ((((a b) c) d) e)
  for (const auto& p : parts) left.Merge(p);
  PartialAggregate right;  // (a (b (c (d e))))
  for (auto it = parts.rbegin(); it != parts.rend(); ++it) {
    PartialAggregate x = *it;
    x.Merge(right);
    right = x;
  }
  PartialAggregate pairs = parts[0];  // (a b) (c (d e))
  pairs.Merge(parts[1]);
  PartialAggregate de = parts[3];
  de.Merge(parts[4]);
  PartialAggregate cde = parts[2];
  cde.Merge(de);
  pairs.Merge(cde);
  ExpectSame(left, right);
  ExpectSame(left, pairs);
  EXPECT_EQ(left.count, 7u);
  EXPECT_EQ(left.min, -3);
  EXPECT_EQ(left.max, 9);
}

TEST(RenderAggregations, AllAggregationsOfData) {
  auto json = RenderAggregations(Of({1, 2, 6}), {"avg", "min", "max", "sum", "count"});
  EXPECT_EQ(json.at("avg"), 3.0);
  EXPECT_EQ(json.at("min"), 1.0);
  EXPECT_EQ(json.at("max"), 6.0);
  EXPECT_EQ(json.at("sum"), 9.0);
  EXPECT_EQ(json.at("count"), 3);
  EXPECT_EQ(json.size(), 5u);
}

TEST(RenderAggregations, EmptyAggregateRendersNullsAndZeroes) {
  auto json = RenderAggregations(PartialAggregate{}, {"avg", "min", "max", "sum", "count"});
  EXPECT_TRUE(json.at("avg").is_null());
  EXPECT_TRUE(json.at("min").is_null());
  EXPECT_TRUE(json.at("max").is_null());
  EXPECT_EQ(json.at("sum"), 0.0);
  EXPECT_EQ(json.at("count"), 0);
}

TEST(RenderAggregations, OnlyRequestedNamesAppear) {
  auto json = RenderAggregations(Of({5}), {"count"});
  EXPECT_EQ(json, nlohmann::json({{"count", 1}}));
  EXPECT_TRUE(RenderAggregations(Of({5}), {}).empty());
}

TEST(ValidateAggregations, KnownNamesAreAccepted) {
  EXPECT_TRUE(ValidateAggregations({"avg"}, "aggregations").ok());
  EXPECT_TRUE(ValidateAggregations(kSimpleAggregations, "aggregations").ok());
}

TEST(ValidateAggregations, EveryUnknownNameIsListed) {
  Status s = ValidateAggregations({"avg", "median", "p999", "count"}, "aggregations");
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.code(), Code::kValidation);
  const auto& fields = s.details().at("fields");
  ASSERT_EQ(fields.size(), 2u);
  EXPECT_EQ(fields[0].at("field"), "aggregations");
  EXPECT_NE(fields[0].at("error").get<std::string>().find("median"), std::string::npos);
  EXPECT_NE(fields[1].at("error").get<std::string>().find("p999"), std::string::npos);
}

TEST(ValidateAggregations, PercentilesAreAccepted) {
  EXPECT_TRUE(ValidateAggregations({"p50", "p95", "p99", "p99.9", "p0", "p100"}, "aggs").ok());
  for (const char* bad : {"p", "p-1", "p1e2", "p.5", "p5.", "p9.9.9", "p100.1", "P95", "q95"}) {
    EXPECT_FALSE(ValidateAggregations({bad}, "aggs").ok()) << bad;
  }
}

TEST(ValidateAggregations, NamesAreCaseSensitive) {
  EXPECT_FALSE(ValidateAggregations({"AVG"}, "aggs").ok());
}

TEST(ValidateAggregations, EmptyListIsRejected) {
  Status s = ValidateAggregations({}, "aggs");
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.code(), Code::kValidation);
  EXPECT_EQ(s.details().at("fields")[0].at("field"), "aggs");
  EXPECT_EQ(s.details().at("fields")[0].at("error"), "must name at least one aggregation");
}

}  // namespace
}  // namespace rm
