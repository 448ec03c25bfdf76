// QuantileSketch: a mergeable quantile sketch with a relative-error guarantee
// (the DDSketch construction, Masson et al., VLDB 2019).
//
// Values are counted in logarithmic bins: a positive value x falls in bin
// i = ceil(log_gamma(x)) with gamma = (1 + a) / (1 - a), and the bin's
// representative 2 * gamma^i / (gamma + 1) is within relative error a of every
// value in the bin. Negative values use a mirrored set of bins; values with
// |x| < kMinMagnitude count as zero. So the sketch's q-quantile is within
// relative error a of the value of rank floor(q * (n - 1)) ... ceil(q * (n - 1))
// of the data, whatever the distribution; a = 0.5% by default, so answers are
// within 1% of DuckDB's quantile_cont for data that is not extremely sparse
// between neighbouring ranks (see docs/architecture.md, "Percentiles").
//
// Merging adds bin counts: associative and commutative, so shards may merge in
// any order with the same result. A value type; not thread-safe.
#pragma once

#include <cstdint>
#include <map>
#include <optional>

namespace rm {

class QuantileSketch {
 public:
  static constexpr double kRelativeAccuracy = 0.005;
  static constexpr double kMinMagnitude = 1e-9;

  void Add(double value, uint64_t count = 1);
  void Merge(const QuantileSketch& other);
  // q in [0, 1]; nullopt when empty.
  std::optional<double> Quantile(double q) const;
  uint64_t count() const { return count_; }

  // Bin index of a value's magnitude (for shards that bin in SQL) and back.
  static int32_t BinOf(double magnitude);
  static double ValueOf(int32_t bin);
  // Adds `count` values that fell in `bin` (sign: -1, 0 for zero, +1).
  void AddBin(int sign, int32_t bin, uint64_t count);

  const std::map<int32_t, uint64_t>& positive() const { return positive_; }
  const std::map<int32_t, uint64_t>& negative() const { return negative_; }
  uint64_t zeros() const { return zeros_; }

 private:
  std::map<int32_t, uint64_t> positive_;  // bin -> count
  std::map<int32_t, uint64_t> negative_;  // bin of |x| -> count
  uint64_t zeros_ = 0;
  uint64_t count_ = 0;
};

}  // namespace rm
