#include "src/storage/hourly_rollup.h"

#include <algorithm>
#include <limits>
#include <string>

namespace rm {

int64_t HourOf(int64_t ts_us) { return ts_us >= 0 ? ts_us / kHourUs : -((-(ts_us + 1)) / kHourUs) - 1; }

std::string SqlHourOf(const std::string& ts) {
  const std::string h = std::to_string(kHourUs);
  return "(CASE WHEN " + ts + " >= 0 THEN " + ts + " // " + h + " ELSE -((-(" + ts + " + 1)) // " + h +
         ") - 1 END)";
}

std::string SqlAddRollupExtents() {
  const std::string h = std::to_string(kHourUs);
  return "ALTER TABLE rollup_1h ADD COLUMN t0 BIGINT; ALTER TABLE rollup_1h ADD COLUMN t1 BIGINT; "
         "UPDATE rollup_1h SET t0 = hour * " + h + ", t1 = hour * " + h + " + " + std::to_string(kHourUs - 1) + ";";
}

db::ColumnBatch EmptyRollupBatch() {
  db::ColumnBatch batch;
  batch.columns = {std::vector<int32_t>{}, std::vector<int64_t>{}, std::vector<int64_t>{}, std::vector<double>{},
                   std::vector<double>{},  std::vector<double>{},  std::vector<int64_t>{}, std::vector<int64_t>{}};
  return batch;
}

void WidenSpan(HourSpans& spans, int64_t hour, int64_t first, int64_t last) {
  auto [it, inserted] = spans.emplace(hour, std::make_pair(first, last));
  if (!inserted) {
    it->second.first = std::min(it->second.first, first);
    it->second.second = std::max(it->second.second, last);
  }
}

void HourExtents::Replace(HourSpans spans) {
  std::lock_guard<std::mutex> lock(mu_);
  spans_ = std::move(spans);
}

void HourExtents::Widen(const HourSpans& spans) {
  std::lock_guard<std::mutex> lock(mu_);
  for (const auto& [hour, span] : spans) WidenSpan(spans_, hour, span.first, span.second);
}

std::optional<std::pair<int64_t, int64_t>> HourExtents::Get(int64_t hour) const {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = spans_.find(hour);
  if (it == spans_.end()) return std::nullopt;
  return it->second;
}

void RollupBuilder::Add(int32_t series, const int64_t* ts_us, const double* values, size_t n) {
  // Points of a series mostly arrive hour by hour: look the partial up again
  // only when the hour changes.
  Partial* current = nullptr;
  int64_t current_hour = 0;
  for (size_t i = 0; i < n; ++i) {
    const int64_t hour = HourOf(ts_us[i]);
    if (current == nullptr || hour != current_hour) {
      auto [it, inserted] = partials_.try_emplace({series, hour});
      current = &it->second;
      if (inserted) current->first_us = current->last_us = ts_us[i];
      current_hour = hour;
    }
    current->values.Add(values[i]);
    current->first_us = std::min(current->first_us, ts_us[i]);
    current->last_us = std::max(current->last_us, ts_us[i]);
  }
}

void RollupBuilder::AppendTo(db::ColumnBatch& batch, HourSpans* spans) {
  if (batch.columns.empty()) batch = EmptyRollupBatch();
  for (const auto& [key, p] : partials_) {
    batch.col<int32_t>(0).push_back(key.first);
    batch.col<int64_t>(1).push_back(key.second);
    batch.col<int64_t>(2).push_back(static_cast<int64_t>(p.values.count));
    batch.col<double>(3).push_back(p.values.sum);
    batch.col<double>(4).push_back(p.values.min);
    batch.col<double>(5).push_back(p.values.max);
    batch.col<int64_t>(6).push_back(p.first_us);
    batch.col<int64_t>(7).push_back(p.last_us);
    if (spans) WidenSpan(*spans, key.second, p.first_us, p.last_us);
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

RangeSplit WidenSplit(const RangeSplit& split, const HourExtents& extents, std::vector<AssumedEdge>& assumed) {
  RangeSplit out;
  out.hours = split.hours;
  assumed.clear();
  for (const auto& [lo, hi] : split.edges) {
    const int64_t hour = HourOf(lo);
    bool inside = HourOf(hi) == hour;
    if (inside) {
      auto span = extents.Get(hour);
      inside = !span || (span->first >= lo && span->second <= hi);
    }
    if (inside && !out.hours) {
      out.hours = std::make_pair(hour, hour);
    } else if (inside && hour == out.hours->first - 1) {
      out.hours->first = hour;
    } else if (inside && hour == out.hours->second + 1) {
      out.hours->second = hour;
    } else {
      out.edges.push_back({lo, hi});
      continue;
    }
    assumed.push_back({hour, lo, hi});
  }
  return out;
}

std::string EdgeViolationFilter(const std::vector<AssumedEdge>& assumed, std::vector<db::Param>& params) {
  std::string sql;
  for (const auto& a : assumed) {
    sql += std::string(sql.empty() ? "" : " OR ") + "(hour = ? AND (t0 < ? OR t1 > ?))";
    params.push_back(db::Param::Int(a.hour));
    params.push_back(db::Param::Int(a.lo));
    params.push_back(db::Param::Int(a.hi));
  }
  return sql.empty() ? "false" : "(" + sql + ")";
}

}  // namespace rm
