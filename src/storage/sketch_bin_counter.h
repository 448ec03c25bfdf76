// SketchBinCounter: a shard's counts of QuantileSketch bins of one sign, for
// one (group, bucket) of an /aggregate query with percentiles
// (storage/shard_aggregate.cc counts every matching value here).
//
// Two layouts, chosen by occupancy. Dense: an array over the span of bins
// seen, one increment per value (values of one metric usually fill their bins
// densely). Sparse: a sorted list of (bin, count), a binary search per value,
// for few values spread over many bins (two values at 1e-3 and 1e3 span 5,500
// bins). The counter is dense while the span is at most 16 x (distinct bins +
// 64) and turns sparse again past 32 x that, so it holds 16 bytes per distinct
// bin sparse, and dense at most 256 bytes per distinct bin plus 16 KiB.
//
// Bounded like QuantileSketch: bins more than QuantileSketch::kMaxBins - 1
// below the highest are folded into the lowest kept (AddCollapsing's rule), so
// a counter never holds more than kMaxBins counts (64 KiB dense) and ForEach
// yields exactly the bins QuantileSketch would hold for the same values.
//
// Not thread-safe; one per (group, bucket, sign) of one query.
#pragma once

#include "src/query/quantile_sketch.h"

#include <cstddef>
#include <cstdint>
#include <utility>
#include <vector>

namespace rm {

class SketchBinCounter {
 public:
  // Counts one value of bin `bin` (QuantileSketch::BinOf of its magnitude).
  void Add(int32_t bin) {
    if (dense_ && bin >= first_ && bin - first_ < static_cast<int32_t>(counts_.size())) {
      if (counts_[static_cast<size_t>(bin - first_)]++ == 0) ++nonempty_;
      return;
    }
    AddOutsideArray(bin);
  }

  // Calls fn(bin, count) for every non-empty bin, in ascending order.
  template <class Fn>
  void ForEach(Fn&& fn) const {
    for (size_t i = 0; i < counts_.size(); ++i) {
      if (counts_[i] > 0) fn(first_ + static_cast<int32_t>(i), counts_[i]);
    }
    for (const auto& [bin, n] : sparse_) fn(bin, n);
  }

  bool dense() const { return dense_; }
  // Bytes held by the counts (capacity, not size).
  size_t MemoryBytes() const {
    return counts_.capacity() * sizeof(uint64_t) + sparse_.capacity() * sizeof(sparse_[0]);
  }

 private:
  void AddOutsideArray(int32_t bin);
  void AddSparse(int32_t bin);
  void ToDense();
  void ToSparse();
  // Dense: folds the slots below `lowest_kept` into it.
  void FoldDenseBelow(int32_t lowest_kept);

  bool dense_ = false;
  int32_t first_ = 0;             // dense: bin of counts_[0]
  std::vector<uint64_t> counts_;  // dense only
  size_t nonempty_ = 0;           // dense: slots > 0
  std::vector<std::pair<int32_t, uint64_t>> sparse_;  // sparse only: ascending bins, folded
};

}  // namespace rm
