#include "src/query/aggregate_merge.h"
#include "src/query/quantile_sketch.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <random>
#include <set>
#include <vector>

namespace rm {
namespace {

constexpr double kA = QuantileSketch::kRelativeAccuracy;
const std::vector<double> kQs = {0.0, 0.001, 0.01, 0.1, 0.25, 0.5, 0.75, 0.9, 0.95, 0.99, 0.999, 1.0};

QuantileSketch SketchOf(const std::vector<double>& values) {
  QuantileSketch s;
  for (double v : values) s.Add(v);
  return s;
}

// The documented bound: within kRelativeAccuracy of each neighbouring rank's
// value, so of quantile_cont itself when they have the same sign.
void ExpectWithinBound(std::vector<double> values, const QuantileSketch& sketch) {
  std::sort(values.begin(), values.end());
  for (double q : kQs) {
    const double pos = q * static_cast<double>(values.size() - 1);
    const double lo = values[static_cast<size_t>(std::floor(pos))];
    const double hi = values[std::min(static_cast<size_t>(std::floor(pos)) + 1, values.size() - 1)];
    const double frac = pos - std::floor(pos);
    const double allowed = kA * ((1 - frac) * std::fabs(lo) + frac * std::fabs(hi)) * (1 + 1e-9) + 1e-12;
    EXPECT_LE(std::fabs(*sketch.Quantile(q) - QuantileCont(values, q)), allowed) << "q=" << q;
  }
}

TEST(QuantileSketch, EmptyHasNoQuantile) { EXPECT_FALSE(QuantileSketch().Quantile(0.5).has_value()); }

TEST(QuantileSketch, UniformDataWithinAccuracy) {
  std::mt19937_64 rng(1);
  std::uniform_real_distribution<double> d(1, 1000);
  std::vector<double> v;
  for (int i = 0; i < 100000; ++i) v.push_back(d(rng));
  ExpectWithinBound(v, SketchOf(v));
}

TEST(QuantileSketch, LognormalDataWithinAccuracy) {
  std::mt19937_64 rng(3);
  std::lognormal_distribution<double> d(2, 1.5);  // about 5 decades
  std::vector<double> v;
  for (int i = 0; i < 100000; ++i) v.push_back(d(rng));
  ExpectWithinBound(v, SketchOf(v));
}

TEST(QuantileSketch, WholeHundredthsWithinAccuracy) {
  // The benchmark's values: many duplicates, several per bin.
  std::mt19937_64 rng(4);
  std::vector<double> v;
  for (int i = 0; i < 100000; ++i) v.push_back(static_cast<double>(rng() % 10001) / 100.0);
  ExpectWithinBound(v, SketchOf(v));
}

TEST(QuantileSketch, NegativeZeroAndPositiveValuesWithinAccuracy) {
  std::mt19937_64 rng(2);
  std::normal_distribution<double> d(20, 50);
  std::vector<double> v;
  for (int i = 0; i < 50000; ++i) v.push_back(i % 100 == 0 ? 0.0 : d(rng));
  ExpectWithinBound(v, SketchOf(v));
  std::vector<double> negative;
  for (double x : v) negative.push_back(-std::fabs(x) - 1);
  ExpectWithinBound(negative, SketchOf(negative));
}

TEST(QuantileSketch, ConstantDataIsExact) {
  for (double c : {42.5, -3.25, 0.0, 1e-12}) {
    QuantileSketch s;
    s.Add(c, 1000);
    for (double q : kQs) EXPECT_EQ(*s.Quantile(q), c) << c << " q=" << q;
  }
}

TEST(QuantileSketch, ExtremesAreTheExactMinAndMax) {
  std::mt19937_64 rng(5);
  std::uniform_real_distribution<double> d(-7.3, 1234.567);
  std::vector<double> v;
  for (int i = 0; i < 10000; ++i) v.push_back(d(rng));
  const QuantileSketch s = SketchOf(v);
  EXPECT_EQ(*s.Quantile(0), *std::min_element(v.begin(), v.end()));
  EXPECT_EQ(*s.Quantile(1), *std::max_element(v.begin(), v.end()));
  // Two values: every quantile is exact.
  const QuantileSketch two = SketchOf({10.01, 10.02});
  for (double q : kQs) EXPECT_DOUBLE_EQ(*two.Quantile(q), QuantileCont({10.01, 10.02}, q)) << q;
}

TEST(QuantileSketch, CallersMinAndMaxBoundBinsAddedByIndex) {
  // The control node rebuilds sketches from shards' bins and knows the exact
  // min and max from the partial aggregates.
  const QuantileSketch values = SketchOf({3.001, 3.002, 3.003, 7.5});
  QuantileSketch bins;
  for (const auto& [b, c] : values.positive()) bins.AddBin(1, b, c);
  EXPECT_LE(*bins.Quantile(0), 3.001);  // a bin edge without the exact min
  EXPECT_EQ(*bins.Quantile(0, 3.001, 7.5), 3.001);
  EXPECT_EQ(*bins.Quantile(1, 3.001, 7.5), 7.5);
  const double median = *bins.Quantile(0.5, 3.001, 7.5);
  EXPECT_NEAR(median, (3.002 + 3.003) / 2, kA * 3.003);
  EXPECT_EQ(*bins.Quantile(0.5, 3.001, 7.5), *values.Quantile(0.5));
  // Bounds that cannot be right (min > max) are ignored.
  EXPECT_EQ(*bins.Quantile(0.5, 1, 0), *bins.Quantile(0.5));
}

// Issue 19: four datacenters with different data reported the same p95
// (95.1092, the representative of the bin (94.636, 95.587]) because both
// neighbouring ranks fell in that bin.
TEST(QuantileSketch, DifferentDataInOneBinGivesDifferentP95s) {
  std::set<double> p95s;
  for (double top : {99.8, 100.0, 100.2, 100.4}) {
    std::vector<double> v;
    for (int i = 0; i <= 10000; ++i) v.push_back(top * i / 10000.0);  // exact p95: 0.95 * top
    const QuantileSketch s = SketchOf(v);
    const double p95 = *s.Quantile(0.95);
    EXPECT_NEAR(p95, 0.95 * top, kA * 0.95 * top) << top;
    p95s.insert(p95);
  }
  EXPECT_EQ(p95s.size(), 4u);
}

TEST(QuantileSketch, InterpolatesWithinABin) {
  // 1000 values inside one bin, evenly spaced: the estimates follow them
  // rather than all reading the bin's middle.
  const double lo = QuantileSketch::UpperEdgeOf(QuantileSketch::BinOf(50.0) - 1);
  const double hi = QuantileSketch::UpperEdgeOf(QuantileSketch::BinOf(50.0));
  std::vector<double> v;
  for (int i = 1; i <= 1000; ++i) v.push_back(lo + (hi - lo) * i / 1001.0);
  const QuantileSketch s = SketchOf(v);
  ASSERT_EQ(s.positive().size(), 1u);
  std::sort(v.begin(), v.end());
  for (double q : {0.1, 0.25, 0.5, 0.75, 0.9}) {
    // Geometric vs linear spacing differ by far less than a bin here.
    EXPECT_NEAR(*s.Quantile(q), QuantileCont(v, q), (hi - lo) * 0.01) << q;
  }
}

TEST(QuantileSketch, BinsAreBoundedAcrossHugeRanges) {
  std::mt19937_64 rng(6);
  std::uniform_real_distribution<double> exponent(-9, 300);
  std::vector<double> v;
  QuantileSketch s;
  for (int i = 0; i < 200000; ++i) {
    const double x = std::pow(10.0, exponent(rng)) * (i % 2 ? 1 : -1);
    v.push_back(x);
    s.Add(x);
  }
  for (const auto* bins : {&s.positive(), &s.negative()}) {
    ASSERT_FALSE(bins->empty());
    EXPECT_LE(bins->size(), static_cast<size_t>(QuantileSketch::kMaxBins));
    EXPECT_LT(bins->rbegin()->first - bins->begin()->first, QuantileSketch::kMaxBins);
  }
  // The top 8.9 decades of each sign keep the relative bound; the folded
  // lowest magnitudes keep an absolute one.
  std::sort(v.begin(), v.end());
  for (double q : {0.0, 0.005, 0.01, 0.99, 0.995, 1.0}) {
    const double exact = QuantileCont(v, q);
    EXPECT_LE(std::fabs(*s.Quantile(q) - exact), kA * std::fabs(exact) * (1 + 1e-9)) << q;
  }
  const double largest = std::max(-v.front(), v.back());  // of either sign: about 1e300 both
  for (double q : {0.25, 0.5, 0.75}) {
    EXPECT_LE(std::fabs(*s.Quantile(q) - QuantileCont(v, q)), largest / 7.6e8) << q;
  }
}

TEST(QuantileSketch, MergeEqualsSketchOfUnion) {
  QuantileSketch a, b, all;
  for (int i = 1; i <= 1000; ++i) {
    (i % 3 ? a : b).Add(i * 1.5);
    all.Add(i * 1.5);
  }
  QuantileSketch merged = a;
  merged.Merge(b);
  QuantileSketch other_order = b;
  other_order.Merge(a);
  for (double q : kQs) {
    EXPECT_DOUBLE_EQ(*merged.Quantile(q), *all.Quantile(q));
    EXPECT_DOUBLE_EQ(*other_order.Quantile(q), *all.Quantile(q));
  }
  EXPECT_EQ(merged.count(), 1000u);
}

TEST(QuantileSketch, MergeOrderDoesNotMatterWhenBinsAreFolded) {
  // Values over 40 decades, so each sign folds its lowest bins; spread over
  // eight "shards" and merged in two orders and tree shapes.
  std::mt19937_64 rng(7);
  std::uniform_real_distribution<double> exponent(-9, 31);
  std::vector<QuantileSketch> shards(8);
  QuantileSketch all;
  for (int i = 0; i < 40000; ++i) {
    const double x = std::pow(10.0, exponent(rng)) * (i % 3 ? 1 : -1);
    shards[rng() % shards.size()].Add(x);
    all.Add(x);
  }
  QuantileSketch forward, tree;
  for (const auto& s : shards) forward.Merge(s);
  QuantileSketch left, right;
  for (size_t i = shards.size(); i-- > 0;) (i % 2 ? left : right).Merge(shards[i]);
  tree = right;
  tree.Merge(left);
  for (const QuantileSketch* m : {&forward, &tree}) {
    EXPECT_EQ(m->positive(), all.positive());
    EXPECT_EQ(m->negative(), all.negative());
    EXPECT_EQ(m->zeros(), all.zeros());
    for (double q : kQs) EXPECT_DOUBLE_EQ(*m->Quantile(q), *all.Quantile(q)) << q;
  }
}

TEST(QuantileSketch, AddCollapsingKeepsTheHighestBins) {
  QuantileSketch::Bins bins;
  QuantileSketch::AddCollapsing(bins, 100, 1);
  QuantileSketch::AddCollapsing(bins, 100 + QuantileSketch::kMaxBins - 1, 2);  // still fits
  EXPECT_EQ(bins.size(), 2u);
  QuantileSketch::AddCollapsing(bins, 100 + QuantileSketch::kMaxBins + 9, 3);  // 10 higher: folds 100
  EXPECT_EQ(bins, (QuantileSketch::Bins{{110, 1}, {100 + QuantileSketch::kMaxBins - 1, 2},
                                         {100 + QuantileSketch::kMaxBins + 9, 3}}));
  QuantileSketch::AddCollapsing(bins, 5, 4);  // below the window: into its lowest bin
  EXPECT_EQ(bins.begin()->first, 110);
  EXPECT_EQ(bins.begin()->second, 5u);
}

TEST(QuantileSketch, BinHoldsItsRangeOfMagnitudes) {
  for (double x : {1e-9, 1e-6, 0.37, 1.0, 42.0, 12345.678, 9.9e12, 1e300}) {
    const int32_t b = QuantileSketch::BinOf(x);
    EXPECT_GT(x, QuantileSketch::UpperEdgeOf(b - 1) * (1 - 1e-12)) << x;
    EXPECT_LE(x, QuantileSketch::UpperEdgeOf(b) * (1 + 1e-12)) << x;
    EXPECT_NEAR(QuantileSketch::UpperEdgeOf(b) / QuantileSketch::UpperEdgeOf(b - 1), 1 + kA, 1e-12) << x;
  }
}

TEST(QuantileCont, InterpolatesLikeDuckDB) {
  std::vector<double> v = {1, 2, 3, 4};
  EXPECT_DOUBLE_EQ(QuantileCont(v, 0.5), 2.5);
  EXPECT_DOUBLE_EQ(QuantileCont(v, 0.0), 1);
  EXPECT_DOUBLE_EQ(QuantileCont(v, 1.0), 4);
  EXPECT_DOUBLE_EQ(QuantileCont({7}, 0.95), 7);
}

}  // namespace
}  // namespace rm
