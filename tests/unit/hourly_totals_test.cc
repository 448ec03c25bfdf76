// HourlyTotals (src/storage/hourly_totals.h): which cells a range counts, when
// the totals refuse a range, and the budget of cells.
#include "src/storage/hourly_totals.h"

#include <gtest/gtest.h>

#include <limits>
#include <optional>
#include <vector>

namespace rm {
namespace {

constexpr int64_t kH = kHourUs;
constexpr int64_t kMin = std::numeric_limits<int64_t>::min();

struct Seen {
  int32_t series;
  int64_t hour;
  uint64_t n;
};

// Fold over every series; nullopt when the totals refuse.
std::optional<std::vector<Seen>> FoldAll(const HourlyTotals& t, std::optional<int64_t> from,
                                         std::optional<int64_t> to, int32_t only_series = -1) {
  std::vector<Seen> seen;
  auto lock = t.ReadLock();
  const bool ok = t.Fold(
      from, to, [&](int32_t s) { return only_series < 0 || s == only_series; },
      [&](int32_t s, int64_t hour, const HourCell& c) { seen.push_back({s, hour, c.n}); });
  if (!ok) {
    EXPECT_TRUE(seen.empty()) << "a refused fold visited cells";
    return std::nullopt;
  }
  return seen;
}

uint64_t Count(const std::vector<Seen>& seen) {
  uint64_t n = 0;
  for (const auto& s : seen) n += s.n;
  return n;
}

TEST(HourlyTotals, WholeHoursCountAndCutHoursCountOnlyCellsWhollyInside) {
  HourlyTotals t(100);
  t.Reset(kMin);
  t.MergeRow(1, 1, 2, 3.0, 1.0, 2.0, kH + 10, kH + 20);          // hour 1: points at +10..+20
  t.MergeRow(2, 1, 1, 5.0, 5.0, 5.0, kH + 500, kH + 500);        // hour 1: point at +500
  t.MergeRow(1, 2, 4, 8.0, 1.0, 3.0, 2 * kH, 3 * kH - 1);        // hour 2: its whole span
  t.MergeRow(1, 1, 1, 1.0, 1.0, 1.0, kH + 15, kH + 15);          // merges into hour 1's cell
  EXPECT_EQ(t.cells(), 3u);

  // Whole hours 1 and 2.
  auto all = FoldAll(t, kH, 3 * kH - 1);
  ASSERT_TRUE(all);
  EXPECT_EQ(Count(*all), 8u);
  // Hour 1 cut at +10: series 1 (+10..+20) and 2 (+500) lie inside.
  ASSERT_TRUE(FoldAll(t, kH + 10, 3 * kH - 1));
  EXPECT_EQ(Count(*FoldAll(t, kH + 10, 3 * kH - 1)), 8u);
  // Cut at +21: series 1 lies wholly outside (skipped), series 2 inside.
  EXPECT_EQ(Count(*FoldAll(t, kH + 21, 3 * kH - 1)), 5u);
  // Cut at +15: series 1 has points on both sides: refused ...
  EXPECT_FALSE(FoldAll(t, kH + 15, 3 * kH - 1));
  // ... unless the query does not select it.
  EXPECT_EQ(Count(*FoldAll(t, kH + 15, 3 * kH - 1, 2)), 1u);
  // The same at the upper end, and a range inside one hour.
  EXPECT_EQ(Count(*FoldAll(t, kH, kH + 20)), 3u);
  EXPECT_FALSE(FoldAll(t, kH, kH + 19));
  EXPECT_EQ(Count(*FoldAll(t, kH + 21, kH + 499)), 0u);
  EXPECT_FALSE(FoldAll(t, kH + 21, 2 * kH + 5));  // hour 2's cell spans the cut
  // Open ends.
  EXPECT_EQ(Count(*FoldAll(t, std::nullopt, std::nullopt)), 8u);
  EXPECT_EQ(Count(*FoldAll(t, 2 * kH, std::nullopt)), 4u);
  EXPECT_EQ(Count(*FoldAll(t, std::nullopt, kH + 20)), 3u);
  // Ends of int64 (no overflow).
  EXPECT_EQ(Count(*FoldAll(t, kMin, std::numeric_limits<int64_t>::max())), 8u);
  // An empty range.
  EXPECT_FALSE(FoldAll(t, 3 * kH, 2 * kH));
}

TEST(HourlyTotals, NegativeHoursAreHoursToo) {
  HourlyTotals t(100);
  t.Reset(kMin);
  t.MergeRow(1, -1, 1, 1.0, 1.0, 1.0, -kH + 3, -kH + 3);
  t.MergeRow(1, 0, 1, 1.0, 1.0, 1.0, 7, 7);
  EXPECT_EQ(Count(*FoldAll(t, -kH, kH - 1)), 2u);
  EXPECT_EQ(Count(*FoldAll(t, -kH + 4, 7)), 1u);
  EXPECT_EQ(Count(*FoldAll(t, -kH + 3, 6)), 1u);
}

TEST(HourlyTotals, AddCommittedMergesARollupBatch) {
  HourlyTotals t(100);
  t.Reset(kMin);
  db::ColumnBatch batch = EmptyRollupBatch();
  RollupBuilder builder;
  const std::vector<int64_t> ts = {10, 20, kH + 5};
  const std::vector<double> v = {1.0, -2.0, 4.0};
  builder.Add(7, ts.data(), v.data(), ts.size());
  builder.AppendTo(batch);
  t.AddCommitted(batch);
  t.AddCommitted(batch);  // a second command with the same rows
  EXPECT_EQ(t.cells(), 2u);
  auto lock = t.ReadLock();
  HourCell hour0;
  ASSERT_TRUE(t.Fold(0, kH - 1, [](int32_t s) { return s == 7; },
                     [&](int32_t, int64_t, const HourCell& c) { hour0 = c; }));
  EXPECT_EQ(hour0.n, 4u);
  EXPECT_DOUBLE_EQ(hour0.sum, -2.0);
  EXPECT_DOUBLE_EQ(hour0.lo, -2.0);
  EXPECT_DOUBLE_EQ(hour0.hi, 1.0);
  EXPECT_EQ(hour0.t0, 10);
  EXPECT_EQ(hour0.t1, 20);
}

TEST(HourlyTotals, OverBudgetTheOldestHoursGoAndRangesReachingThemAreRefused) {
  HourlyTotals t(4);
  t.Reset(kMin);
  for (int64_t hour = 0; hour < 3; ++hour) {
    for (int32_t s = 0; s < 2; ++s) t.MergeRow(s, hour, 1, 1.0, 1.0, 1.0, hour * kH, hour * kH);
  }
  // 6 cells for a budget of 4: hour 0 went.
  EXPECT_EQ(t.cells(), 4u);
  EXPECT_EQ(t.floor(), 1);
  EXPECT_FALSE(FoldAll(t, 0, 3 * kH - 1));
  EXPECT_FALSE(FoldAll(t, std::nullopt, std::nullopt));
  EXPECT_EQ(Count(*FoldAll(t, kH, std::nullopt)), 4u);
  // A late point for a dropped hour is not kept (the hour is not held).
  t.MergeRow(0, 0, 1, 1.0, 1.0, 1.0, 0, 0);
  EXPECT_EQ(t.cells(), 4u);
  // Reset starts over from a given floor.
  t.Reset(2);
  t.MergeRow(0, 1, 1, 1.0, 1.0, 1.0, kH, kH);
  EXPECT_EQ(t.cells(), 0u);
  EXPECT_FALSE(FoldAll(t, kH, 3 * kH - 1));
  EXPECT_TRUE(FoldAll(t, 2 * kH, 3 * kH - 1));
}

TEST(HourlyTotals, ABudgetOfZeroKeepsNothing) {
  HourlyTotals t(0);
  t.Reset(kMin);
  t.MergeRow(1, 0, 1, 1.0, 1.0, 1.0, 0, 0);
  EXPECT_EQ(t.cells(), 0u);
  EXPECT_FALSE(FoldAll(t, 0, kH - 1));
}

}  // namespace
}  // namespace rm
