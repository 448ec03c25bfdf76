#include "src/query/aggregate_merge.h"
#include "src/query/quantile_sketch.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <random>
#include <vector>

namespace rm {
namespace {

// The documented bound: within 1% of quantile_cont for dense data.
void ExpectWithinBound(std::vector<double> values, const QuantileSketch& sketch) {
  std::sort(values.begin(), values.end());
  for (double q : {0.0, 0.01, 0.1, 0.25, 0.5, 0.75, 0.9, 0.95, 0.99, 0.999, 1.0}) {
    double exact = QuantileCont(values, q);
    double approx = *sketch.Quantile(q);
    EXPECT_LE(std::fabs(approx - exact), 0.01 * std::fabs(exact) + 1e-9) << "q=" << q;
  }
}

TEST(QuantileSketch, EmptyHasNoQuantile) { EXPECT_FALSE(QuantileSketch().Quantile(0.5).has_value()); }

TEST(QuantileSketch, UniformDataWithinOnePercent) {
  std::mt19937_64 rng(1);
  std::uniform_real_distribution<double> d(1, 1000);
  std::vector<double> v;
  QuantileSketch s;
  for (int i = 0; i < 100000; ++i) {
    v.push_back(d(rng));
    s.Add(v.back());
  }
  ExpectWithinBound(v, s);
}

TEST(QuantileSketch, NegativeZeroAndPositiveValues) {
  std::mt19937_64 rng(2);
  std::normal_distribution<double> d(0, 50);
  std::vector<double> v;
  QuantileSketch s;
  for (int i = 0; i < 50000; ++i) {
    double x = i % 100 == 0 ? 0.0 : d(rng);
    v.push_back(x);
    s.Add(x);
  }
  // Near zero the relative bound degenerates (values cross zero); check the tails.
  std::sort(v.begin(), v.end());
  for (double q : {0.01, 0.05, 0.95, 0.99}) {
    double exact = QuantileCont(v, q);
    EXPECT_LE(std::fabs(*s.Quantile(q) - exact), 0.01 * std::fabs(exact)) << q;
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
  for (double q : {0.1, 0.5, 0.95}) {
    EXPECT_DOUBLE_EQ(*merged.Quantile(q), *all.Quantile(q));
    EXPECT_DOUBLE_EQ(*other_order.Quantile(q), *all.Quantile(q));
  }
  EXPECT_EQ(merged.count(), 1000u);
}

TEST(QuantileSketch, BinRoundTripWithinAccuracy) {
  for (double x : {1e-6, 0.37, 1.0, 42.0, 12345.678, 9.9e12}) {
    double rep = QuantileSketch::ValueOf(QuantileSketch::BinOf(x));
    EXPECT_LE(std::fabs(rep - x), QuantileSketch::kRelativeAccuracy * x * 1.0000001) << x;
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
