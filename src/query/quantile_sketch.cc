#include "src/query/quantile_sketch.h"

#include <algorithm>
#include <cmath>

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

void QuantileSketch::AddCollapsing(Bins& bins, int32_t bin, uint64_t count) {
  const int32_t highest = bins.empty() ? bin : std::max(bin, bins.rbegin()->first);
  const int32_t lowest_kept = highest - (kMaxBins - 1);
  bins[std::max(bin, lowest_kept)] += count;
  if (bins.begin()->first >= lowest_kept) return;
  uint64_t folded = 0;
  auto it = bins.begin();
  for (; it != bins.end() && it->first < lowest_kept; ++it) folded += it->second;
  bins.erase(bins.begin(), it);
  bins[lowest_kept] += folded;
}

void QuantileSketch::AddBin(int sign, int32_t bin, uint64_t count) {
  if (count == 0) return;
  if (sign == 0) {
    zeros_ += count;
    min_ = std::min(min_, -kMinMagnitude);
    max_ = std::max(max_, kMinMagnitude);
  } else {
    AddCollapsing(sign > 0 ? positive_ : negative_, bin, count);
    const double lo = UpperEdgeOf(bin - 1), hi = UpperEdgeOf(bin);
    min_ = std::min(min_, sign > 0 ? lo : -hi);
    max_ = std::max(max_, sign > 0 ? hi : -lo);
  }
  count_ += count;
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
  for (const auto& [b, c] : other.positive_) AddCollapsing(positive_, b, c);
  for (const auto& [b, c] : other.negative_) AddCollapsing(negative_, b, c);
  zeros_ += other.zeros_;
  count_ += other.count_;
  min_ = std::min(min_, other.min_);
  max_ = std::max(max_, other.max_);
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

std::optional<double> QuantileSketch::Quantile(double q) const { return Quantile(q, min_, max_); }

std::optional<double> QuantileSketch::Quantile(double q, double min, double max) const {
  if (count_ == 0) return std::nullopt;
  if (!(min <= max)) {
    min = min_;
    max = max_;
  }
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
