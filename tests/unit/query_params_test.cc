// Tests of src/control/query_params: validation of GET /analytics parameters.
#include "src/control/query_params.h"

#include "src/common/time_util.h"

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <map>
#include <string>
#include <vector>

namespace rm {
namespace {

constexpr int64_t kJan20 = 1705764600LL * 1000000;  // 2024-01-20T15:30:00Z

HttpRequest WithQuery(std::map<std::string, std::string> query) {
  HttpRequest req;
  req.method = "GET";
  req.path = "/analytics";
  req.query = std::move(query);
  return req;
}

std::vector<std::string> Fields(const Status& s) {
  std::vector<std::string> out;
  for (const auto& f : s.details().at("fields")) out.push_back(f.at("field").get<std::string>());
  return out;
}

TEST(ParseAnalyticsParams, NoParametersMeansEverything) {
  auto p = ParseAnalyticsParams(WithQuery({}));
  ASSERT_TRUE(p.ok());
  EXPECT_EQ(p->metric, "");
  EXPECT_EQ(p->partition_key, "");
  EXPECT_EQ(p->from_us, std::nullopt);
  EXPECT_EQ(p->to_us, std::nullopt);
}

TEST(ParseAnalyticsParams, AllParameters) {
  auto p = ParseAnalyticsParams(WithQuery({{"metric", "cpu.usage"},
                                           {"partition_key", "host 1/{a}"},
                                           {"from", "2024-01-20T15:30:00Z"},
                                           {"to", "2024-01-20T17:30:00+02:00"}}));
  ASSERT_TRUE(p.ok()) << p.status().ToString();
  EXPECT_EQ(p->metric, "cpu.usage");
  EXPECT_EQ(p->partition_key, "host 1/{a}");
  EXPECT_EQ(p->from_us, kJan20);
  EXPECT_EQ(p->to_us, kJan20);  // from == to is allowed (both inclusive)
}

TEST(ParseAnalyticsParams, EmptyValuesAreIgnored) {
  auto p = ParseAnalyticsParams(WithQuery({{"metric", ""}, {"partition_key", ""}, {"from", ""}, {"to", ""}}));
  ASSERT_TRUE(p.ok());
  EXPECT_EQ(p->from_us, std::nullopt);
  EXPECT_EQ(p->to_us, std::nullopt);
}

TEST(ParseAnalyticsParams, OpenEndedRanges) {
  auto from_only = ParseAnalyticsParams(WithQuery({{"from", "2024-01-20"}}));
  ASSERT_TRUE(from_only.ok());
  EXPECT_TRUE(from_only->from_us.has_value());
  EXPECT_FALSE(from_only->to_us.has_value());
  auto to_only = ParseAnalyticsParams(WithQuery({{"to", "2024-01-20"}}));
  ASSERT_TRUE(to_only.ok());
  EXPECT_FALSE(to_only->from_us.has_value());
  EXPECT_TRUE(to_only->to_us.has_value());
}

TEST(ParseAnalyticsParams, InvalidMetricIsRejected) {
  auto p = ParseAnalyticsParams(WithQuery({{"metric", "cpu usage"}}));
  ASSERT_FALSE(p.ok());
  EXPECT_EQ(p.status().code(), Code::kValidation);
  EXPECT_EQ(Fields(p.status()), (std::vector<std::string>{"metric"}));
}

TEST(ParseAnalyticsParams, InvalidTimestampsAreRejectedNamingTheAcceptedForms) {
  auto p = ParseAnalyticsParams(WithQuery({{"from", "yesterday"}, {"to", "2024-02-30"}}));
  ASSERT_FALSE(p.ok());
  EXPECT_EQ(Fields(p.status()), (std::vector<std::string>{"from", "to"}));
  EXPECT_EQ(p.status().details().at("fields")[0].at("error"), kTimestampForms);
  EXPECT_EQ(p.status().details().at("fields")[1].at("error"), kTimestampForms);
}

TEST(ParseAnalyticsParams, EpochFromAndToByMagnitude) {
  auto p = ParseAnalyticsParams(WithQuery({{"from", "1705764600"}, {"to", "1705764660000"}}));
  ASSERT_TRUE(p.ok()) << p.status().ToString();
  EXPECT_EQ(p->from_us, kJan20);
  EXPECT_EQ(p->to_us, kJan20 + 60 * 1000000LL);
}

TEST(ParseAnalyticsParams, PrecisionSetsTheUnitOfEpochFromAndTo) {
  auto p = ParseAnalyticsParams(WithQuery({{"from", "1705764600000"}, {"to", "2024-01-20T16:00:00Z"},
                                           {"precision", "us"}}));
  ASSERT_TRUE(p.ok()) << p.status().ToString();
  EXPECT_EQ(p->from_us, kJan20 / 1000);
  auto bad = ParseAnalyticsParams(WithQuery({{"from", "1705764600"}, {"precision", "seconds"}}));
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(Fields(bad.status()), (std::vector<std::string>{"precision"}));
  EXPECT_EQ(bad.status().details().at("fields")[0].at("error"), kPrecisionError);
}

TEST(ParseAnalyticsParams, NegativeEpochIsRejected) {
  auto p = ParseAnalyticsParams(WithQuery({{"from", "-1705764600"}}));
  ASSERT_FALSE(p.ok());
  EXPECT_EQ(Fields(p.status()), (std::vector<std::string>{"from"}));
}

TEST(ParseAnalyticsParams, FromAfterToIsRejected) {
  auto p = ParseAnalyticsParams(WithQuery({{"from", "2024-01-21"}, {"to", "2024-01-20"}}));
  ASSERT_FALSE(p.ok());
  EXPECT_EQ(p.status().code(), Code::kValidation);
  EXPECT_EQ(Fields(p.status()), (std::vector<std::string>{"from"}));
  EXPECT_EQ(p.status().details().at("fields")[0].at("error"), "must not be after to");
}

TEST(ParseAnalyticsParams, OffsetsAreComparedInUtc) {
  // 16:00+02:00 is 14:00Z, before 15:00Z.
  auto p = ParseAnalyticsParams(WithQuery({{"from", "2024-01-20T16:00:00+02:00"}, {"to", "2024-01-20T15:00:00Z"}}));
  EXPECT_TRUE(p.ok());
}

TEST(ParseAnalyticsParams, EveryBadFieldIsReportedAtOnce) {
  auto p = ParseAnalyticsParams(WithQuery({{"metric", "a b"}, {"from", "x"}, {"to", "y"}}));
  ASSERT_FALSE(p.ok());
  EXPECT_EQ(Fields(p.status()), (std::vector<std::string>{"metric", "from", "to"}));
  EXPECT_EQ(p.status().message(), "Invalid request parameters");
}

TEST(ParseAnalyticsParams, UnknownParametersAreIgnored) {
  EXPECT_TRUE(ParseAnalyticsParams(WithQuery({{"limit", "abc"}})).ok());
}

}  // namespace
}  // namespace rm
