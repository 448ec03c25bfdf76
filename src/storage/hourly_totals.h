// HourlyTotals: a shard's hourly rollup (hourly_rollup.h) kept in memory as
// well, one cell per (series, hour), for the most recent hours that fit a
// budget of cells.
//
// Why: the rollup made a day's query read 1,500 rows per shard instead of
// 600,000 points, but each shard still paid a DuckDB statement for it, about
// 1 ms of CPU whatever the rows (docs/benchmarks.md, "Q6"): 16 shards on 2
// cores put a floor of ~10-20 ms under every query. Summing a few thousand
// cells in memory takes microseconds, so queries of count/sum/min/max/avg over
// recent data answer without DuckDB at all.
//
// Exactness: a cell holds exactly what the rollup rows of its (series, hour)
// add up to, including the first and last timestamp of its points (t0, t1).
// A query's hours strictly inside its range count whole; at a partial hour at
// either end a cell counts whole when all its points lie inside the range,
// not at all when none do, and the totals refuse the query (Fold returns
// false, the shard reads DuckDB) when a cell has points on both sides.
//
// Consistency: the shard adds a command's cells only after DuckDB committed
// them, and a reader holds ReadLock() across choosing its series and folding,
// so a read sees whole commands, never part of one.
//
// Memory: at most `max_cells` cells (about 80 bytes each). When a write goes
// over, the oldest hours are dropped whole and the totals hold only the hours
// from floor() on; queries reaching further back read DuckDB as before.
#pragma once

#include "src/storage/duckdb.h"
#include "src/storage/hourly_rollup.h"

#include <algorithm>
#include <cstdint>
#include <limits>
#include <map>
#include <mutex>
#include <optional>
#include <shared_mutex>
#include <unordered_map>

namespace rm {

// The default budget per shard: 200,000 cells, about 16 MB; a week of 1,000
// series per shard.
inline constexpr size_t kHourlyTotalsCells = 200000;

struct HourCell {
  uint64_t n = 0;
  double sum = 0;
  double lo = std::numeric_limits<double>::infinity();
  double hi = -std::numeric_limits<double>::infinity();
  int64_t t0 = std::numeric_limits<int64_t>::max();  // first point's timestamp
  int64_t t1 = std::numeric_limits<int64_t>::min();  // last point's timestamp

  void Merge(uint64_t count, double total, double min, double max, int64_t first, int64_t last) {
    n += count;
    sum += total;
    lo = std::min(lo, min);
    hi = std::max(hi, max);
    t0 = std::min(t0, first);
    t1 = std::max(t1, last);
  }
};

class HourlyTotals {
 public:
  // 0 cells: keep nothing (every Fold returns false).
  explicit HourlyTotals(size_t max_cells) : max_cells_(max_cells) {}

  // Starts over with nothing held below `floor_hour` (the lowest int64 holds
  // every hour). Requires no ReadLock held by the caller.
  void Reset(int64_t floor_hour);
  // Merges one rollup row (the shard loads its file with this after Reset).
  void MergeRow(int32_t series, int64_t hour, uint64_t n, double sum, double lo, double hi, int64_t t0, int64_t t1);
  // Merges the rows of a committed rollup batch (EmptyRollupBatch's columns),
  // then drops the oldest hours while over budget.
  void AddCommitted(const db::ColumnBatch& rollup);

  size_t max_cells() const { return max_cells_; }
  size_t cells() const;
  // The first hour held (every later hour is held, too).
  int64_t floor() const;

  // Held across a read: writers wait for it.
  std::shared_lock<std::shared_mutex> ReadLock() const { return std::shared_lock<std::shared_mutex>(mu_); }

  // With ReadLock() held: calls visit(series, hour, cell) for every cell of a
  // series that `selected(series)` accepts and whose points lie in [from, to]
  // (inclusive, either end open), and returns true, when the totals answer
  // that exactly (see above). Returns false, having visited nothing, when they
  // cannot: an hour of the range is not held, or a cell at a partial end hour
  // has points both inside and outside the range.
  template <typename Selected, typename Visit>
  bool Fold(std::optional<int64_t> from_us, std::optional<int64_t> to_us, Selected&& selected, Visit&& visit) const;

 private:
  using Hour = std::unordered_map<int32_t, HourCell>;
  void DropOldestWhileOverLocked();

  const size_t max_cells_;
  mutable std::shared_mutex mu_;
  std::map<int64_t, Hour> hours_;
  size_t cells_ = 0;
  int64_t floor_ = std::numeric_limits<int64_t>::min();
};

template <typename Selected, typename Visit>
bool HourlyTotals::Fold(std::optional<int64_t> from_us, std::optional<int64_t> to_us, Selected&& selected,
                        Visit&& visit) const {
  if (max_cells_ == 0) return false;
  const int64_t first = from_us ? HourOf(*from_us) : std::numeric_limits<int64_t>::min();
  const int64_t last = to_us ? HourOf(*to_us) : std::numeric_limits<int64_t>::max();
  if (first < floor_ || first > last) return false;
  auto inside = [&](const HourCell& c) { return (!from_us || c.t0 >= *from_us) && (!to_us || c.t1 <= *to_us); };
  auto outside = [&](const HourCell& c) { return (from_us && c.t1 < *from_us) || (to_us && c.t0 > *to_us); };
  // Only the end hours can be cut by the range (floor remainders: no
  // overflow at the ends of int64).
  auto within_hour = [](int64_t ts) { return ((ts % kHourUs) + kHourUs) % kHourUs; };
  const bool first_cut = from_us && within_hour(*from_us) != 0;
  const bool last_cut = to_us && within_hour(*to_us) != kHourUs - 1;
  for (auto [hour, cut] : {std::make_pair(first, first_cut), std::make_pair(last, last_cut)}) {
    if (!cut) continue;
    auto it = hours_.find(hour);
    if (it == hours_.end()) continue;
    for (const auto& [series, cell] : it->second) {
      if (selected(series) && !inside(cell) && !outside(cell)) return false;
    }
  }
  for (auto it = hours_.lower_bound(first); it != hours_.end() && it->first <= last; ++it) {
    const bool cut = (it->first == first && first_cut) || (it->first == last && last_cut);
    for (const auto& [series, cell] : it->second) {
      if (!selected(series) || (cut && outside(cell))) continue;
      visit(series, it->first, cell);
    }
  }
  return true;
}

}  // namespace rm
