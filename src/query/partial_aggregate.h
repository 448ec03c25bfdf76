// Partial aggregate state, computed next to the data and merged by the control
// node (Sink -> Combine -> Finalize). Merging is associative and commutative, so
// shards may answer in any order.
#pragma once

#include <cstdint>
#include <limits>
#include <optional>

namespace rm {

struct PartialAggregate {
  uint64_t count = 0;
  double sum = 0;
  double min = std::numeric_limits<double>::infinity();
  double max = -std::numeric_limits<double>::infinity();

  void Add(double v) {
    ++count;
    sum += v;
    if (v < min) min = v;
    if (v > max) max = v;
  }
  void Merge(const PartialAggregate& o) {
    count += o.count;
    sum += o.sum;
    if (o.min < min) min = o.min;
    if (o.max > max) max = o.max;
  }
  // nullopt when no value was seen (JSON null).
  std::optional<double> Average() const {
    if (count == 0) return std::nullopt;
    return sum / static_cast<double>(count);
  }
};

}  // namespace rm
