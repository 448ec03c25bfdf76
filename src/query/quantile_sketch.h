// QuantileSketch: a mergeable, bounded quantile sketch with a relative-error
// guarantee (the DDSketch construction, Masson et al., VLDB 2019).
//
// Bins. A positive value x falls in bin i = ceil(log_gamma(x)), which holds the
// magnitudes (gamma^(i-1), gamma^i], gamma = 1 + kRelativeAccuracy. Negative
// values use a mirrored set of bins of |x|; values with |x| < kMinMagnitude
// count as zero.
//
// Estimates. The value of rank r (0-based, ascending) is estimated inside the
// bin that holds rank r, by r's place among the bin's c values: the geometric
// interpolation between the bin's edges at fraction (r - s + 0.5) / c, s being
// the bin's first rank; so data that differs within a bin gives different
// answers. The true value lies in the same bin, hence:
//   |estimate(r) - value(r)| < kRelativeAccuracy * |value(r)|   (0.25%)
// (either way: gamma^i / gamma^(i-1) - 1 = kRelativeAccuracy). Quantile(q)
// follows DuckDB's quantile_cont: position q * (n - 1), interpolated linearly
// between the two neighbouring ranks' estimates. When those two values have the
// same sign (or one is zero) the answer is within 0.25% of quantile_cont itself;
// across zero, within 0.25% of the larger of their magnitudes. The exact min
// and max (tracked by Add, or passed in) answer ranks 0 and n - 1 exactly, so
// p0, p100 and groups of one or two values are exact, and every estimate is
// kept inside [min, max]. Values with |x| < kMinMagnitude are off by at most
// kMinMagnitude.
//
// Bounded. Each sign keeps at most kMaxBins consecutive bins: when the bins of
// one sign span more, the lowest-magnitude ones are folded into the lowest bin
// kept (DDSketch's "collapsing lowest" store). That happens only for values
// spread over more than gamma^(kMaxBins - 1) ~ 7.6e8 (8.9 decades) on one side
// of zero; the guarantee above then still holds for every rank outside the
// folded bin, and ranks in it are off by less than max|x| / 7.6e8 of that sign
// (an absolute, not a relative, bound).
//
// Merging adds bin counts and takes the min of mins and max of maxes. The bins
// kept are a function of the multiset of values alone (every bin more than
// kMaxBins - 1 below the highest, and only those, is folded), so shards may
// add and merge in any order and tree shape with the same result.
//
// A value type; not thread-safe. Shards count bins themselves (BinOf, and the
// same folding in storage/sketch_bin_counter.h) and the control node rebuilds
// the sketch with AddBin.
#pragma once

#include <cstdint>
#include <limits>
#include <map>
#include <optional>
#include <utility>

namespace rm {

class QuantileSketch {
 public:
  static constexpr double kRelativeAccuracy = 0.0025;
  static constexpr double kGamma = 1 + kRelativeAccuracy;
  static constexpr double kMinMagnitude = 1e-9;
  static constexpr int32_t kMaxBins = 8192;  // per sign

  using Bins = std::map<int32_t, uint64_t>;  // bin -> count

  // value: finite (NaN counts as zero).
  void Add(double value, uint64_t count = 1);
  void Merge(const QuantileSketch& other);
  // Adds `count` values that fell in `bin` (sign: -1, 0 for zero, +1), as a
  // shard counted them. Cheapest in ascending order of bin.
  void AddBin(int sign, int32_t bin, uint64_t count);

  // Estimate of quantile_cont(q), q in [0, 1] (clamped); nullopt when empty.
  // Uses the exact min and max of the values given to Add, widened to the
  // outer edges of the extreme bins once AddBin was used (0 for zeros).
  std::optional<double> Quantile(double q) const;
  // The same with the caller's exact min and max of the values (a
  // PartialAggregate's); ignored unless min <= max.
  std::optional<double> Quantile(double q, double min, double max) const;

  uint64_t count() const { return count_; }
  const Bins& positive() const { return positive_; }
  const Bins& negative() const { return negative_; }  // bins of |x|
  uint64_t zeros() const { return zeros_; }

  // Bin of a magnitude in [kMinMagnitude, DBL_MAX]; bin i holds (UpperEdgeOf(i - 1), UpperEdgeOf(i)].
  static int32_t BinOf(double magnitude);
  static double UpperEdgeOf(int32_t bin);
  // Adds `count` to `bin` of one sign's bins, keeping them bounded: bins more
  // than kMaxBins - 1 below the highest are folded into the lowest one kept.
  static void AddCollapsing(Bins& bins, int32_t bin, uint64_t count);

 private:
  // Estimate of the value of `rank` (< count_), inside [lo, hi].
  double ValueAt(uint64_t rank, double lo, double hi) const;
  // Adds the (bin, count) pairs of `from` (ascending) in one pass, then folds.
  static void MergeBins(Bins& into, const Bins& from);
  // Folds the bins more than kMaxBins - 1 below the highest into the lowest kept.
  static void Fold(Bins& bins);
  // [min, max] for Quantile(q): see there.
  std::pair<double, double> Bounds() const;

  Bins positive_;
  Bins negative_;
  uint64_t zeros_ = 0;
  uint64_t count_ = 0;
  // Of the values given to Add; AddBin only sets binned_ (edges computed when asked).
  double min_ = std::numeric_limits<double>::infinity();
  double max_ = -std::numeric_limits<double>::infinity();
  bool binned_ = false;
};

}  // namespace rm
