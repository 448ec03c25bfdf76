#include "src/query/quantile_sketch.h"

#include <cmath>

namespace rm {
namespace {

const double kGamma = (1 + QuantileSketch::kRelativeAccuracy) / (1 - QuantileSketch::kRelativeAccuracy);
const double kLogGamma = std::log(kGamma);

}  // namespace

int32_t QuantileSketch::BinOf(double magnitude) {
  return static_cast<int32_t>(std::ceil(std::log(magnitude) / kLogGamma));
}

double QuantileSketch::ValueOf(int32_t bin) { return 2 * std::pow(kGamma, bin) / (kGamma + 1); }

void QuantileSketch::AddBin(int sign, int32_t bin, uint64_t count) {
  if (count == 0) return;
  if (sign > 0) {
    positive_[bin] += count;
  } else if (sign < 0) {
    negative_[bin] += count;
  } else {
    zeros_ += count;
  }
  count_ += count;
}

void QuantileSketch::Add(double value, uint64_t count) {
  double m = std::fabs(value);
  if (m < kMinMagnitude) {
    AddBin(0, 0, count);
  } else {
    AddBin(value > 0 ? 1 : -1, BinOf(m), count);
  }
}

void QuantileSketch::Merge(const QuantileSketch& other) {
  for (const auto& [b, c] : other.positive_) positive_[b] += c;
  for (const auto& [b, c] : other.negative_) negative_[b] += c;
  zeros_ += other.zeros_;
  count_ += other.count_;
}

std::optional<double> QuantileSketch::Quantile(double q) const {
  if (count_ == 0) return std::nullopt;
  if (q < 0) q = 0;
  if (q > 1) q = 1;
  // Same rank convention as quantile_cont: position q * (n - 1), interpolated
  // between the two neighbouring ranks' representatives.
  const double pos = q * static_cast<double>(count_ - 1);
  const auto lo = static_cast<uint64_t>(std::floor(pos));
  const uint64_t hi = std::min<uint64_t>(lo + 1, count_ - 1);
  auto value_at = [&](uint64_t rank) -> double {
    uint64_t seen = 0;
    // Ascending order: most negative first (largest |x| bins of negative_), zeros, positives.
    for (auto it = negative_.rbegin(); it != negative_.rend(); ++it) {
      seen += it->second;
      if (rank < seen) return -ValueOf(it->first);
    }
    seen += zeros_;
    if (rank < seen) return 0.0;
    for (const auto& [b, c] : positive_) {
      seen += c;
      if (rank < seen) return ValueOf(b);
    }
    return positive_.empty() ? 0.0 : ValueOf(positive_.rbegin()->first);
  };
  const double a = value_at(lo);
  if (hi == lo) return a;
  const double frac = pos - static_cast<double>(lo);
  return a + (value_at(hi) - a) * frac;
}

}  // namespace rm
