#include "src/storage/sketch_bin_counter.h"

#include <algorithm>

namespace rm {
namespace {

constexpr int32_t kMaxBins = QuantileSketch::kMaxBins;

// Dense while the span is at most kDenseSpan * (distinct bins + kSmall); sparse
// again past kSparseSpan * that. kSmall keeps small arrays (8 KiB) dense: a
// sorted list pays a memmove per new bin, which beats an array only when the
// array would be far larger.
constexpr size_t kSmall = 64;
constexpr size_t kDenseSpan = 16;
constexpr size_t kSparseSpan = 32;

bool DenseFits(size_t distinct, size_t span) { return span <= kDenseSpan * (distinct + kSmall); }
bool DenseTooWide(size_t distinct, size_t span) { return span > kSparseSpan * (distinct + kSmall); }

}  // namespace

void SketchBinCounter::AddOutsideArray(int32_t bin) {
  if (!dense_) {
    AddSparse(bin);
    const auto span = static_cast<size_t>(sparse_.back().first - sparse_.front().first) + 1;
    if (DenseFits(sparse_.size(), span)) ToDense();
    return;
  }
  const int32_t last = first_ + static_cast<int32_t>(counts_.size()) - 1;
  if (bin > last) {
    const int32_t lowest_kept = bin - (kMaxBins - 1);
    const auto span = static_cast<size_t>(bin - std::max(first_, lowest_kept)) + 1;
    if (DenseTooWide(nonempty_ + 1, span)) {
      ToSparse();
      AddSparse(bin);
      return;
    }
    counts_.resize(static_cast<size_t>(bin - first_) + 1, 0);
    if (lowest_kept > first_) FoldDenseBelow(lowest_kept);
  } else {
    bin = std::max(bin, last - (kMaxBins - 1));  // below the window: its lowest bin
    if (bin < first_) {
      if (DenseTooWide(nonempty_ + 1, static_cast<size_t>(last - bin) + 1)) {
        ToSparse();
        AddSparse(bin);
        return;
      }
      counts_.insert(counts_.begin(), static_cast<size_t>(first_ - bin), 0);
      first_ = bin;
    }
  }
  if (counts_[static_cast<size_t>(bin - first_)]++ == 0) ++nonempty_;
}

void SketchBinCounter::FoldDenseBelow(int32_t lowest_kept) {
  const auto n = static_cast<size_t>(lowest_kept - first_);
  uint64_t folded = 0;
  for (size_t i = 0; i < n; ++i) {
    folded += counts_[i];
    if (counts_[i] > 0) --nonempty_;
  }
  counts_.erase(counts_.begin(), counts_.begin() + static_cast<std::ptrdiff_t>(n));
  first_ = lowest_kept;
  if (folded > 0 && counts_[0] == 0) ++nonempty_;
  counts_[0] += folded;
}

void SketchBinCounter::AddSparse(int32_t bin) {
  if (!sparse_.empty()) bin = std::max(bin, sparse_.back().first - (kMaxBins - 1));
  auto it = std::lower_bound(sparse_.begin(), sparse_.end(), bin,
                             [](const std::pair<int32_t, uint64_t>& e, int32_t b) { return e.first < b; });
  if (it != sparse_.end() && it->first == bin) {
    ++it->second;
    return;
  }
  const bool highest = it == sparse_.end();
  sparse_.insert(it, {bin, 1});
  if (!highest) return;
  // A new highest bin may push the lowest ones out of the window.
  const int32_t lowest_kept = bin - (kMaxBins - 1);
  auto kept = std::lower_bound(sparse_.begin(), sparse_.end(), lowest_kept,
                               [](const std::pair<int32_t, uint64_t>& e, int32_t b) { return e.first < b; });
  if (kept == sparse_.begin()) return;
  uint64_t folded = 0;
  for (auto f = sparse_.begin(); f != kept; ++f) folded += f->second;
  sparse_.erase(sparse_.begin(), kept);
  if (sparse_.front().first == lowest_kept) {
    sparse_.front().second += folded;
  } else {
    sparse_.insert(sparse_.begin(), {lowest_kept, folded});
  }
}

void SketchBinCounter::ToDense() {
  first_ = sparse_.front().first;
  counts_.assign(static_cast<size_t>(sparse_.back().first - first_) + 1, 0);
  for (const auto& [bin, n] : sparse_) counts_[static_cast<size_t>(bin - first_)] = n;
  nonempty_ = sparse_.size();
  std::vector<std::pair<int32_t, uint64_t>>().swap(sparse_);
  dense_ = true;
}

void SketchBinCounter::ToSparse() {
  sparse_.reserve(nonempty_ + 1);
  for (size_t i = 0; i < counts_.size(); ++i) {
    if (counts_[i] > 0) sparse_.emplace_back(first_ + static_cast<int32_t>(i), counts_[i]);
  }
  std::vector<uint64_t>().swap(counts_);
  nonempty_ = 0;
  dense_ = false;
}

}  // namespace rm
