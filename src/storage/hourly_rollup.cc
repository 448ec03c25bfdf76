#include "src/storage/hourly_rollup.h"

#include <limits>
#include <string>

namespace rm {

int64_t HourOf(int64_t ts_us) { return ts_us >= 0 ? ts_us / kHourUs : -((-(ts_us + 1)) / kHourUs) - 1; }

std::string SqlHourOf(const std::string& ts) {
  const std::string h = std::to_string(kHourUs);
  return "(CASE WHEN " + ts + " >= 0 THEN " + ts + " // " + h + " ELSE -((-(" + ts + " + 1)) // " + h +
         ") - 1 END)";
}

db::ColumnBatch EmptyRollupBatch() {
  db::ColumnBatch batch;
  batch.columns = {std::vector<int32_t>{}, std::vector<int64_t>{}, std::vector<int64_t>{},
                   std::vector<double>{},  std::vector<double>{},  std::vector<double>{}};
  return batch;
}

void RollupBuilder::Add(int32_t series, const int64_t* ts_us, const double* values, size_t n) {
  // Points of a series mostly arrive hour by hour: look the partial up again
  // only when the hour changes.
  PartialAggregate* current = nullptr;
  int64_t current_hour = 0;
  for (size_t i = 0; i < n; ++i) {
    const int64_t hour = HourOf(ts_us[i]);
    if (current == nullptr || hour != current_hour) {
      current = &partials_[{series, hour}];
      current_hour = hour;
    }
    current->Add(values[i]);
  }
}

void RollupBuilder::AppendTo(db::ColumnBatch& batch) {
  if (batch.columns.empty()) batch = EmptyRollupBatch();
  for (const auto& [key, p] : partials_) {
    batch.col<int32_t>(0).push_back(key.first);
    batch.col<int64_t>(1).push_back(key.second);
    batch.col<int64_t>(2).push_back(static_cast<int64_t>(p.count));
    batch.col<double>(3).push_back(p.sum);
    batch.col<double>(4).push_back(p.min);
    batch.col<double>(5).push_back(p.max);
  }
  partials_.clear();
}

std::optional<std::pair<int64_t, int64_t>> RollupBuilder::hours() const {
  if (partials_.empty()) return std::nullopt;
  int64_t lo = std::numeric_limits<int64_t>::max(), hi = std::numeric_limits<int64_t>::min();
  for (const auto& entry : partials_) {
    lo = std::min(lo, entry.first.second);
    hi = std::max(hi, entry.first.second);
  }
  return std::make_pair(lo, hi);
}

RangeSplit SplitRange(std::optional<int64_t> from_us, std::optional<int64_t> to_us) {
  constexpr int64_t kMin = std::numeric_limits<int64_t>::min(), kMax = std::numeric_limits<int64_t>::max();
  if (from_us == kMin) from_us.reset();
  if (to_us == kMax) to_us.reset();
  RangeSplit split;
  if (from_us && to_us && *from_us > *to_us) return split;  // empty range
  // First whole hour: the hour starting at or after `from`.
  int64_t first = HourOf(kMin) + 1;
  if (from_us) first = HourOf(*from_us) + (*from_us == HourOf(*from_us) * kHourUs ? 0 : 1);
  // Last whole hour: the hour ending (its last microsecond) at or before `to`.
  int64_t last = HourOf(kMax) - 1;
  if (to_us) last = HourOf(*to_us) - ((*to_us + 1) % kHourUs == 0 ? 0 : 1);
  if (first > last) {
    split.edges.push_back({from_us.value_or(kMin), to_us.value_or(kMax)});
    return split;
  }
  split.hours = std::make_pair(first, last);
  if (from_us && *from_us < first * kHourUs) split.edges.push_back({*from_us, first * kHourUs - 1});
  if (to_us && (last + 1) * kHourUs <= *to_us) split.edges.push_back({(last + 1) * kHourUs, *to_us});
  return split;
}

}  // namespace rm
