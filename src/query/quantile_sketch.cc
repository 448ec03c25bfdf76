#include "src/query/quantile_sketch.h"

#include <algorithm>
#include <cmath>
#include <tuple>

namespace rm {
namespace {

const double kLogGamma = std::log(QuantileSketch::kGamma);

// The point at fraction f of the way from a to b on a log scale (0 < a <= b).
double Geometric(double a, double b, double f) { return a * std::pow(b / a, f); }

}  // namespace

int32_t QuantileSketch::BinOf(double magnitude) {
  return static_cast<int32_t>(std::ceil(std::log(magnitude) / kLogGamma));
}

double QuantileSketch::UpperEdgeOf(int32_t bin) { return std::exp(static_cast<double>(bin) * kLogGamma); }

void QuantileSketch::Fold(Bins& bins) {
  if (bins.empty()) return;
  const int32_t lowest_kept = bins.rbegin()->first - (kMaxBins - 1);
  if (bins.begin()->first >= lowest_kept) return;
  uint64_t folded = 0;
  auto it = bins.begin();
  for (; it != bins.end() && it->first < lowest_kept; ++it) folded += it->second;
  bins.erase(bins.begin(), it);
  bins[lowest_kept] += folded;
}

void QuantileSketch::AddCollapsing(Bins& bins, int32_t bin, uint64_t count) {
  if (bins.empty() || bin > bins.rbegin()->first) {
    bins.emplace_hint(bins.end(), bin, count);
    Fold(bins);  // a new highest bin may push the lowest ones out
    return;
  }
  // Bins are always folded, so the highest bin (unchanged) sets the window.
  bins[std::max(bin, bins.rbegin()->first - (kMaxBins - 1))] += count;
}

void QuantileSketch::MergeBins(Bins& into, const Bins& from) {
  // One pass over both (ascending): a short walk from the last position, or a
  // lookup when the next bin is further away.
  auto hint = into.begin();
  for (const auto& [b, c] : from) {
    for (int steps = 0; hint != into.end() && hint->first < b; ++hint) {
      if (++steps > 8) {
        hint = into.lower_bound(b);
        break;
      }
    }
    if (hint != into.end() && hint->first == b) {
      hint->second += c;
    } else {
      hint = into.emplace_hint(hint, b, c);
    }
    ++hint;
  }
  Fold(into);
}

void QuantileSketch::AddBin(int sign, int32_t bin, uint64_t count) {
  if (count == 0) return;
  if (sign == 0) {
    zeros_ += count;
  } else {
    AddCollapsing(sign > 0 ? positive_ : negative_, bin, count);
  }
  count_ += count;
  binned_ = true;
}

void QuantileSketch::Add(double value, uint64_t count) {
  if (count == 0) return;
  const double m = std::fabs(value);
  if (m < kMinMagnitude || std::isnan(value)) {
    zeros_ += count;
    if (std::isnan(value)) value = 0;
  } else {
    AddCollapsing(value > 0 ? positive_ : negative_, BinOf(m), count);
  }
  min_ = std::min(min_, value);
  max_ = std::max(max_, value);
  count_ += count;
}

void QuantileSketch::Merge(const QuantileSketch& other) {
  MergeBins(positive_, other.positive_);
  MergeBins(negative_, other.negative_);
  zeros_ += other.zeros_;
  count_ += other.count_;
  min_ = std::min(min_, other.min_);
  max_ = std::max(max_, other.max_);
  binned_ = binned_ || other.binned_;
}

std::pair<double, double> QuantileSketch::Bounds() const {
  double lo = min_, hi = max_;
  if (binned_) {
    // The outer edges of the extreme bins (zeros read as 0).
    lo = std::min(lo, !negative_.empty() ? -UpperEdgeOf(negative_.rbegin()->first)
                      : zeros_ > 0       ? 0.0
                                         : UpperEdgeOf(positive_.begin()->first - 1));
    hi = std::max(hi, !positive_.empty() ? UpperEdgeOf(positive_.rbegin()->first)
                      : zeros_ > 0       ? 0.0
                                         : -UpperEdgeOf(negative_.begin()->first - 1));
  }
  return {lo, hi};
}

double QuantileSketch::ValueAt(uint64_t rank, double lo, double hi) const {
  // Ascending order: negatives by decreasing magnitude, zeros, positives.
  // Inside a bin, the value is interpolated between the bin's edges narrowed
  // to [lo, hi] (the bins holding the min and max are then tighter).
  uint64_t seen = 0;
  for (auto it = negative_.rbegin(); it != negative_.rend(); ++it) {
    const auto [bin, c] = *it;
    if (rank < seen + c) {
      const double f = (static_cast<double>(rank - seen) + 0.5) / static_cast<double>(c);
      const double small = std::max(UpperEdgeOf(bin - 1), -hi), large = std::min(UpperEdgeOf(bin), -lo);
      // Values ascend as magnitudes descend.
      if (small > 0 && small <= large) return -Geometric(small, large, 1 - f);
      return -Geometric(UpperEdgeOf(bin - 1), UpperEdgeOf(bin), 1 - f);
    }
    seen += c;
  }
  if (rank < seen + zeros_) return 0.0;
  seen += zeros_;
  for (const auto& [bin, c] : positive_) {
    if (rank < seen + c) {
      const double f = (static_cast<double>(rank - seen) + 0.5) / static_cast<double>(c);
      const double small = std::max(UpperEdgeOf(bin - 1), lo), large = std::min(UpperEdgeOf(bin), hi);
      if (small > 0 && small <= large) return Geometric(small, large, f);
      return Geometric(UpperEdgeOf(bin - 1), UpperEdgeOf(bin), f);
    }
    seen += c;
  }
  return hi;  // unreachable: the bins hold count_ values
}

std::optional<double> QuantileSketch::Quantile(double q) const {
  if (count_ == 0) return std::nullopt;
  const auto [min, max] = Bounds();
  return Quantile(q, min, max);
}

std::optional<double> QuantileSketch::Quantile(double q, double min, double max) const {
  if (count_ == 0) return std::nullopt;
  if (!(min <= max)) std::tie(min, max) = Bounds();
  q = std::clamp(q, 0.0, 1.0);
  // quantile_cont's rank convention: position q * (n - 1), interpolated
  // between the two neighbouring ranks.
  const uint64_t last = count_ - 1;
  auto value_at = [&](uint64_t rank) {
    if (rank == 0) return min;
    if (rank == last) return max;
    return std::clamp(ValueAt(rank, min, max), min, max);
  };
  const double pos = q * static_cast<double>(last);
  const auto lo = std::min(static_cast<uint64_t>(std::floor(pos)), last);
  const uint64_t hi = std::min(lo + 1, last);
  const double a = value_at(lo);
  if (hi == lo) return a;
  return a + (value_at(hi) - a) * (pos - static_cast<double>(lo));
}

}  // namespace rm
