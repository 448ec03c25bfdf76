// Tests of src/storage/hourly_rollup: hour arithmetic, how a range splits between
// rollup and points, and the rows one command adds.
#include "src/storage/hourly_rollup.h"

#include <gtest/gtest.h>

#include <limits>

namespace rm {
namespace {

constexpr int64_t H = kHourUs;

TEST(HourlyRollup, HourOfIsFloorDivision) {
  EXPECT_EQ(HourOf(0), 0);
  EXPECT_EQ(HourOf(H - 1), 0);
  EXPECT_EQ(HourOf(H), 1);
  EXPECT_EQ(HourOf(-1), -1);
  EXPECT_EQ(HourOf(-H), -1);
  EXPECT_EQ(HourOf(-H - 1), -2);
  EXPECT_EQ(HourOf(473353 * H + 5), 473353);
}

TEST(HourlyRollup, AlignedRangeIsAllRollup) {
  // [10:00, 13:00 - 1us]: hours 10, 11, 12 and nothing from the points.
  RangeSplit s = SplitRange(10 * H, 13 * H - 1);
  ASSERT_TRUE(s.hours);
  EXPECT_EQ(s.hours->first, 10);
  EXPECT_EQ(s.hours->second, 12);
  EXPECT_TRUE(s.edges.empty());
}

TEST(HourlyRollup, UnalignedEndsAreReadFromPoints) {
  // The benchmark's "last 24 h": (end - 24 h, end], inclusive from = +1us... here 1 ms.
  RangeSplit s = SplitRange(10 * H + 1000, 34 * H);
  ASSERT_TRUE(s.hours);
  EXPECT_EQ(s.hours->first, 11);
  EXPECT_EQ(s.hours->second, 33);
  ASSERT_EQ(s.edges.size(), 2u);
  EXPECT_EQ(s.edges[0], std::make_pair(10 * H + 1000, 11 * H - 1));
  EXPECT_EQ(s.edges[1], std::make_pair(34 * H, 34 * H));
}

TEST(HourlyRollup, RangeWithoutAWholeHourIsAllPoints) {
  RangeSplit s = SplitRange(10 * H + 1, 11 * H + 5);
  EXPECT_FALSE(s.hours);
  ASSERT_EQ(s.edges.size(), 1u);
  EXPECT_EQ(s.edges[0], std::make_pair(10 * H + 1, 11 * H + 5));
  // Exactly one whole hour.
  s = SplitRange(10 * H, 11 * H - 1);
  ASSERT_TRUE(s.hours);
  EXPECT_EQ(*s.hours, std::make_pair(int64_t{10}, int64_t{10}));
  EXPECT_TRUE(s.edges.empty());
}

TEST(HourlyRollup, NegativeTimesSplitLikePositiveOnes) {
  RangeSplit s = SplitRange(-3 * H + 7, -H);
  ASSERT_TRUE(s.hours);
  EXPECT_EQ(*s.hours, std::make_pair(int64_t{-2}, int64_t{-2}));
  ASSERT_EQ(s.edges.size(), 2u);
  EXPECT_EQ(s.edges[0], std::make_pair(-3 * H + 7, -2 * H - 1));
  EXPECT_EQ(s.edges[1], std::make_pair(-H, -H));
}

TEST(HourlyRollup, OpenEndsReadOnlyTheRollupOnThatSide) {
  RangeSplit s = SplitRange(std::nullopt, std::nullopt);
  ASSERT_TRUE(s.hours);
  EXPECT_TRUE(s.edges.empty());
  EXPECT_LT(s.hours->first, HourOf(-62135596800LL * 1000000));  // year 1
  EXPECT_GT(s.hours->second, HourOf(253402300799LL * 1000000));  // year 9999
  s = SplitRange(5 * H + 1, std::nullopt);
  ASSERT_TRUE(s.hours);
  EXPECT_EQ(s.hours->first, 6);
  ASSERT_EQ(s.edges.size(), 1u);
  EXPECT_EQ(s.edges[0], std::make_pair(5 * H + 1, 6 * H - 1));
  s = SplitRange(std::numeric_limits<int64_t>::min(), 5 * H);
  ASSERT_TRUE(s.hours);
  EXPECT_EQ(s.hours->second, 4);
  ASSERT_EQ(s.edges.size(), 1u);
  EXPECT_EQ(s.edges[0], std::make_pair(5 * H, 5 * H));
}

TEST(HourlyRollup, EmptyRangeReadsNothing) {
  RangeSplit s = SplitRange(5 * H, 5 * H - 1);
  EXPECT_FALSE(s.hours);
  EXPECT_TRUE(s.edges.empty());
}

TEST(HourlyRollup, BuilderEmitsOneRowPerSeriesAndHourInOrder) {
  RollupBuilder b;
  const int64_t ts2[] = {H + 1, 2 * H, 2 * H + 5, -1};
  const double v2[] = {1, 2, 3, -4};
  b.Add(2, ts2, v2, 4);
  const int64_t ts1[] = {H};
  const double v1[] = {7};
  b.Add(1, ts1, v1, 1);
  b.Add(2, ts1, v1, 1);  // the same series again: same row as its first point
  ASSERT_TRUE(b.hours());
  EXPECT_EQ(*b.hours(), std::make_pair(int64_t{-1}, int64_t{2}));
  db::ColumnBatch batch;
  b.AppendTo(batch);
  EXPECT_TRUE(b.empty());
  ASSERT_EQ(batch.rows(), 4u);
  EXPECT_EQ(batch.col<int32_t>(0), (std::vector<int32_t>{1, 2, 2, 2}));
  EXPECT_EQ(batch.col<int64_t>(1), (std::vector<int64_t>{1, -1, 1, 2}));
  EXPECT_EQ(batch.col<int64_t>(2), (std::vector<int64_t>{1, 1, 2, 2}));
  EXPECT_EQ(batch.col<double>(3), (std::vector<double>{7, -4, 8, 5}));
  EXPECT_EQ(batch.col<double>(4), (std::vector<double>{7, -4, 1, 2}));
  EXPECT_EQ(batch.col<double>(5), (std::vector<double>{7, -4, 7, 3}));
  EXPECT_EQ(batch.col<int64_t>(6), (std::vector<int64_t>{H, -1, H, 2 * H}));
  EXPECT_EQ(batch.col<int64_t>(7), (std::vector<int64_t>{H, -1, H + 1, 2 * H + 5}));
}

TEST(HourlyRollup, BuilderReportsEachHoursExtent) {
  RollupBuilder b;
  const int64_t ts[] = {H + 9, H + 2, 3 * H};
  const double v[] = {1, 2, 3};
  b.Add(0, ts, v, 3);
  const int64_t ts2[] = {H + 20};
  b.Add(1, ts2, v, 1);
  db::ColumnBatch batch;
  HourSpans spans;
  WidenSpan(spans, 1, H + 1, H + 3);  // known before: widened, not replaced
  b.AppendTo(batch, &spans);
  EXPECT_EQ(spans, (HourSpans{{1, {H + 1, H + 20}}, {3, {3 * H, 3 * H}}}));
}

TEST(HourlyRollup, EdgesWhosePointsLieInsideJoinTheWholeHours) {
  HourExtents extents;
  extents.Replace({{9, {9 * H + 10, 9 * H + 50}}, {12, {12 * H, 12 * H + 99}}});
  std::vector<AssumedEdge> assumed;
  // [9h+5, 12h+100]: hours 10-11 whole; hour 9's points are inside its edge,
  // hour 12's too.
  RangeSplit s = WidenSplit(SplitRange(9 * H + 5, 12 * H + 100), extents, assumed);
  ASSERT_TRUE(s.hours);
  EXPECT_EQ(*s.hours, std::make_pair(int64_t{9}, int64_t{12}));
  EXPECT_TRUE(s.edges.empty());
  ASSERT_EQ(assumed.size(), 2u);
  EXPECT_EQ(assumed[0].hour, 9);
  EXPECT_EQ(assumed[0].lo, 9 * H + 5);
  EXPECT_EQ(assumed[0].hi, 10 * H - 1);
  EXPECT_EQ(assumed[1].hour, 12);
  EXPECT_EQ(assumed[1].hi, 12 * H + 100);
  // A point outside the range in the edge hour keeps that edge on the points.
  s = WidenSplit(SplitRange(9 * H + 11, 12 * H + 100), extents, assumed);
  EXPECT_EQ(*s.hours, std::make_pair(int64_t{10}, int64_t{12}));
  ASSERT_EQ(s.edges.size(), 1u);
  EXPECT_EQ(s.edges[0], std::make_pair(9 * H + 11, 10 * H - 1));
  ASSERT_EQ(assumed.size(), 1u);
  // An hour with no point known is assumed empty (and checked by the read).
  s = WidenSplit(SplitRange(20 * H + 1, 20 * H + 5), extents, assumed);
  EXPECT_EQ(*s.hours, std::make_pair(int64_t{20}, int64_t{20}));
  EXPECT_TRUE(s.edges.empty());
  // A range over parts of two hours and no whole one stays on the points.
  s = WidenSplit(SplitRange(9 * H + 5, 10 * H + 5), extents, assumed);
  EXPECT_FALSE(s.hours);
  EXPECT_EQ(s.edges.size(), 1u);
  EXPECT_TRUE(assumed.empty());
  // The check: one clause per assumed hour, its parameters in order.
  std::vector<db::Param> params;
  WidenSplit(SplitRange(9 * H + 5, 12 * H + 100), extents, assumed);
  EXPECT_EQ(EdgeViolationFilter(assumed, params),
            "((hour = ? AND (t0 < ? OR t1 > ?)) OR (hour = ? AND (t0 < ? OR t1 > ?)))");
  ASSERT_EQ(params.size(), 6u);
  EXPECT_EQ(params[0].i, 9);
  EXPECT_EQ(params[1].i, 9 * H + 5);
  EXPECT_EQ(params[5].i, 12 * H + 100);
  params.clear();
  EXPECT_EQ(EdgeViolationFilter({}, params), "false");
}

}  // namespace
}  // namespace rm
