#include "src/query/aggregate_spec.h"

#include "src/common/time_util.h"

#include <gtest/gtest.h>

#include <set>

namespace rm {
namespace {

const int64_t kNow = 1705795200LL * 1000000;  // 2024-01-21T00:00:00Z

TEST(AggregateSpec, DefaultsAreLastDayAndSeedAggregations) {
  auto spec = ParseAggregateParams({{"metric", "cpu_usage"}}, kNow);
  ASSERT_TRUE(spec.ok()) << spec.status().ToString();
  EXPECT_EQ(spec->query.to_us(), kNow);
  EXPECT_EQ(spec->query.from_us(), kNow - 86400LL * 1000000);
  EXPECT_EQ(spec->aggs, (std::vector<std::string>{"avg", "min", "max", "count", "p95"}));
  EXPECT_TRUE(spec->query.want_sketch());
  ASSERT_EQ(spec->query.group_by_size(), 1);  // by_datacenter
  EXPECT_EQ(spec->query.group_by(0), "datacenter");
}

TEST(AggregateSpec, ParsesEveryParameter) {
  auto spec = ParseAggregateParams({{"metric", "cpu"},
                                    {"from", "2024-01-20T00:00:00Z"},
                                    {"to", "2024-01-20T23:59:59Z"},
                                    {"window", "1h"},
                                    {"rolling", "true"},
                                    {"step", "5m"},
                                    {"tags", "environment:prod,service:api"},
                                    {"hosts", "web-*,api-*"},
                                    {"datacenters", "us-west,us-east"},
                                    {"agg", "avg,p99.9"},
                                    {"group_by", "datacenter,host"},
                                    {"order_by", "value:asc"},
                                    {"limit", "10"},
                                    {"exact", "true"},
                                    {"partial", "deny"}},
                                   kNow);
  ASSERT_TRUE(spec.ok()) << spec.status().ToString();
  EXPECT_EQ(spec->window_us, 3600LL * 1000000);
  EXPECT_TRUE(spec->rolling);
  EXPECT_EQ(spec->query.bucket_us(), 300LL * 1000000);
  EXPECT_EQ(spec->query.tags_size(), 2);
  EXPECT_EQ(spec->query.hosts_size(), 2);
  EXPECT_EQ(spec->query.datacenters_size(), 2);
  EXPECT_EQ(spec->order_agg, "avg");
  EXPECT_FALSE(spec->order_desc);
  EXPECT_EQ(*spec->limit, 10u);
  EXPECT_TRUE(spec->query.want_values());
  EXPECT_FALSE(spec->query.want_sketch());
  EXPECT_TRUE(spec->deny_partial);
}

TEST(AggregateSpec, ListsEveryBadField) {
  auto spec = ParseAggregateParams({{"metric", "cpu usage"},
                                    {"from", "yesterday"},
                                    {"window", "5x"},
                                    {"agg", "avg,median"},
                                    {"order_by", "speed:desc"},
                                    {"limit", "-1"},
                                    {"tags", "novalue"}},
                                   kNow);
  ASSERT_FALSE(spec.ok());
  EXPECT_EQ(spec.status().code(), Code::kValidation);
  std::set<std::string> fields;
  for (const auto& f : spec.status().details()["fields"]) fields.insert(f["field"].get<std::string>());
  for (const char* f : {"metric", "from", "window", "agg", "order_by", "limit", "tags"}) {
    EXPECT_TRUE(fields.count(f)) << f;
  }
}

TEST(AggregateSpec, EpochFromAndToInSecondsOrMilliseconds) {
  // As Grafana and scripts send them: seconds, or milliseconds by magnitude.
  auto spec = ParseAggregateParams({{"metric", "cpu"}, {"from", "1705708800"}, {"to", "1705795199000"}}, kNow);
  ASSERT_TRUE(spec.ok()) << spec.status().ToString();
  EXPECT_EQ(spec->query.from_us(), 1705708800LL * 1000000);  // 2024-01-20T00:00:00Z
  EXPECT_EQ(spec->query.to_us(), 1705795199LL * 1000000);    // 2024-01-20T23:59:59Z
}

TEST(AggregateSpec, PrecisionSetsTheUnitOfEpochFromAndTo) {
  auto spec = ParseAggregateParams(
      {{"metric", "cpu"}, {"from", "1705708800000000000"}, {"to", "1705795199"}, {"precision", "ns"}}, kNow);
  EXPECT_FALSE(spec.ok());  // precision=ns applies to `to` too: 1705795199 ns is in 1970, before from
  auto ok = ParseAggregateParams({{"metric", "cpu"}, {"from", "1705708800000"}, {"precision", "ms"}}, kNow);
  ASSERT_TRUE(ok.ok()) << ok.status().ToString();
  EXPECT_EQ(ok->query.from_us(), 1705708800LL * 1000000);
  auto bad = ParseAggregateParams({{"metric", "cpu"}, {"precision", "days"}}, kNow);
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.status().details()["fields"][0]["field"], "precision");
  EXPECT_EQ(bad.status().details()["fields"][0]["error"], kPrecisionError);
}

TEST(AggregateSpec, BadTimestampErrorNamesTheAcceptedForms) {
  auto spec = ParseAggregateParams({{"metric", "cpu"}, {"from", "yesterday"}, {"to", "-5"}}, kNow);
  ASSERT_FALSE(spec.ok());
  const auto& fields = spec.status().details()["fields"];
  ASSERT_GE(fields.size(), 2u);
  EXPECT_EQ(fields[0]["field"], "from");
  EXPECT_EQ(fields[0]["error"], kTimestampForms);
  EXPECT_EQ(fields[1]["field"], "to");
  EXPECT_NE(fields[1]["error"].get<std::string>().find("negative"), std::string::npos);
  EXPECT_NE(fields[1]["error"].get<std::string>().find(kTimestampForms), std::string::npos);
}

TEST(AggregateSpec, FromNotBeforeToIsAnError) {
  auto spec = ParseAggregateParams(
      {{"metric", "cpu"}, {"from", "2024-01-20T10:00:00Z"}, {"to", "2024-01-20T10:00:00Z"}}, kNow);
  EXPECT_FALSE(spec.ok());
}

TEST(AggregateSpec, PercentileNames) {
  EXPECT_DOUBLE_EQ(*PercentileOf("p95"), 0.95);
  EXPECT_DOUBLE_EQ(*PercentileOf("p99.9"), 0.999);
  EXPECT_DOUBLE_EQ(*PercentileOf("p0"), 0.0);
  EXPECT_FALSE(PercentileOf("p101").has_value());
  EXPECT_FALSE(PercentileOf("p").has_value());
  EXPECT_FALSE(PercentileOf("p9x").has_value());
  EXPECT_FALSE(PercentileOf("avg").has_value());
}

}  // namespace
}  // namespace rm
