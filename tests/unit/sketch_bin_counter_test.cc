#include "src/storage/sketch_bin_counter.h"

#include "src/query/quantile_sketch.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <random>
#include <vector>

namespace rm {
namespace {

QuantileSketch::Bins BinsOf(const SketchBinCounter& c) {
  QuantileSketch::Bins out;
  c.ForEach([&](int32_t bin, uint64_t n) { out[bin] += n; });
  return out;
}

// Counts the magnitudes both ways; the counter must hold the sketch's bins.
void ExpectSameAsSketch(const std::vector<double>& magnitudes, SketchBinCounter* out = nullptr) {
  SketchBinCounter c;
  QuantileSketch s;
  for (double m : magnitudes) {
    c.Add(QuantileSketch::BinOf(m));
    s.Add(m);
  }
  EXPECT_EQ(BinsOf(c), s.positive());
  std::vector<int32_t> order;
  c.ForEach([&](int32_t bin, uint64_t) { order.push_back(bin); });
  EXPECT_TRUE(std::is_sorted(order.begin(), order.end()));
  if (out) *out = c;
}

std::vector<double> LogUniform(double lo_exp, double hi_exp, int n, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::uniform_real_distribution<double> e(lo_exp, hi_exp);
  std::vector<double> v;
  for (int i = 0; i < n; ++i) v.push_back(std::pow(10.0, e(rng)));
  return v;
}

TEST(SketchBinCounter, DenseValuesUseAnArray) {
  std::mt19937_64 rng(1);
  std::vector<double> v;
  for (int i = 0; i < 100000; ++i) v.push_back(static_cast<double>(1 + rng() % 10000) / 100.0);
  SketchBinCounter c;
  ExpectSameAsSketch(v, &c);
  EXPECT_TRUE(c.dense());
}

TEST(SketchBinCounter, FewSpreadValuesStaySmall) {
  // A hundred values over five decades: 4,600 bins of span.
  SketchBinCounter c;
  ExpectSameAsSketch(LogUniform(-2, 3, 100, 2), &c);
  EXPECT_FALSE(c.dense());
  EXPECT_LE(c.MemoryBytes(), 100u * 2 * 16);
  SketchBinCounter two;
  ExpectSameAsSketch({1e-3, 1e3}, &two);
  EXPECT_LE(two.MemoryBytes(), 64u);
}

TEST(SketchBinCounter, TurnsDenseAsValuesFillTheSpan) {
  std::vector<double> v = LogUniform(-2, 3, 100, 3);
  for (double m : LogUniform(-2, 3, 100000, 4)) v.push_back(m);
  SketchBinCounter c;
  ExpectSameAsSketch(v, &c);
  EXPECT_TRUE(c.dense());
}

TEST(SketchBinCounter, FoldsLikeTheSketchAcrossHugeRanges) {
  for (uint64_t seed : {5, 6}) {
    SketchBinCounter c;
    ExpectSameAsSketch(LogUniform(-9, 300, 100000, seed), &c);
    EXPECT_LE(c.MemoryBytes(), static_cast<size_t>(QuantileSketch::kMaxBins) * 16 * 2);
  }
  // Dense, then pushed out of the window from above and from below.
  std::vector<double> v = LogUniform(0, 2, 50000, 7);
  for (double m : LogUniform(10, 12, 50000, 8)) v.push_back(m);
  for (double m : LogUniform(-9, -5, 1000, 9)) v.push_back(m);
  ExpectSameAsSketch(v);
}

TEST(SketchBinCounter, AscendingAndDescendingRampsMatchTheSketch) {
  std::vector<double> up;
  for (int i = 0; i < 20000; ++i) up.push_back(std::pow(10.0, -9 + i * 0.001));  // 20 decades
  ExpectSameAsSketch(up);
  std::reverse(up.begin(), up.end());
  ExpectSameAsSketch(up);
}

TEST(SketchBinCounter, RandomClustersMatchTheSketch) {
  // Clusters at random decades, in random order: every switch between the
  // layouts and every fold, against QuantileSketch's bins.
  std::mt19937_64 rng(10);
  for (int trial = 0; trial < 300; ++trial) {
    std::vector<double> v;
    const int clusters = 1 + static_cast<int>(rng() % 5);
    for (int k = 0; k < clusters; ++k) {
      const double centre = std::uniform_real_distribution<double>(-9, 300)(rng);
      const double width = std::uniform_real_distribution<double>(0, 6)(rng);
      const int n = 1 + static_cast<int>(rng() % 2000);
      for (double m : LogUniform(centre, std::min(centre + width, 307.0), n, rng())) v.push_back(m);
    }
    if (rng() % 2) std::shuffle(v.begin(), v.end(), rng);
    ExpectSameAsSketch(v);
  }
}

}  // namespace
}  // namespace rm
