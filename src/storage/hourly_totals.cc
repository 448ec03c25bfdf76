#include "src/storage/hourly_totals.h"

namespace rm {

void HourlyTotals::Reset(int64_t floor_hour) {
  std::unique_lock<std::shared_mutex> lock(mu_);
  hours_.clear();
  cells_ = 0;
  floor_ = max_cells_ == 0 ? std::numeric_limits<int64_t>::max() : floor_hour;
}

void HourlyTotals::MergeRow(int32_t series, int64_t hour, uint64_t n, double sum, double lo, double hi, int64_t t0,
                            int64_t t1) {
  std::unique_lock<std::shared_mutex> lock(mu_);
  if (hour < floor_) return;
  auto [it, inserted] = hours_[hour].try_emplace(series);
  cells_ += inserted ? 1 : 0;
  it->second.Merge(n, sum, lo, hi, t0, t1);
  DropOldestWhileOverLocked();
}

void HourlyTotals::AddCommitted(const db::ColumnBatch& rollup) {
  if (max_cells_ == 0 || rollup.columns.empty()) return;
  const auto& series = rollup.col<int32_t>(0);
  const auto& hour = rollup.col<int64_t>(1);
  const auto& n = rollup.col<int64_t>(2);
  const auto& total = rollup.col<double>(3);
  const auto& lo = rollup.col<double>(4);
  const auto& hi = rollup.col<double>(5);
  const auto& t0 = rollup.col<int64_t>(6);
  const auto& t1 = rollup.col<int64_t>(7);
  std::unique_lock<std::shared_mutex> lock(mu_);
  // Rows come in (series, hour) order per command: look an hour up again only
  // when it changes.
  Hour* current = nullptr;
  int64_t current_hour = 0;
  for (size_t r = 0; r < series.size(); ++r) {
    if (hour[r] < floor_) continue;
    if (current == nullptr || hour[r] != current_hour) {
      current = &hours_[hour[r]];
      current_hour = hour[r];
    }
    auto [it, inserted] = current->try_emplace(series[r]);
    cells_ += inserted ? 1 : 0;
    it->second.Merge(static_cast<uint64_t>(n[r]), total[r], lo[r], hi[r], t0[r], t1[r]);
  }
  DropOldestWhileOverLocked();
}

void HourlyTotals::DropOldestWhileOverLocked() {
  while (cells_ > max_cells_ && !hours_.empty()) {
    auto oldest = hours_.begin();
    cells_ -= oldest->second.size();
    floor_ = oldest->first + 1;
    hours_.erase(oldest);
  }
}

size_t HourlyTotals::cells() const {
  std::shared_lock<std::shared_mutex> lock(mu_);
  return cells_;
}

int64_t HourlyTotals::floor() const {
  std::shared_lock<std::shared_mutex> lock(mu_);
  return floor_;
}

}  // namespace rm
