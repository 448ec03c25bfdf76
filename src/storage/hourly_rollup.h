// Hourly rollups: one row per (series, hour) with the count, sum, min and max of
// that series' points in that hour, kept by every shard next to its points.
//
// Why: a query over a day of 10M points reads 24,000 rollup rows instead of
// 10M points (docs/benchmarks.md, "Where the time of Q1–Q6 goes"). A query's
// range splits into whole hours, answered from the rollup, and at most two
// partial hours at its ends, answered from the points (SplitRange).
//
// The rollup is written in the same transaction as the points it summarises,
// one row per (series, hour) of each command (RollupBuilder), so it always
// equals the points it covers, and every replica appends the same rows for the
// same command. Rows of one (series, hour) from many commands are merged later
// by compaction; readers aggregate rows anyway, so compaction only changes how
// many rows there are, never an answer (beyond the rounding of a sum's order).
#pragma once

#include "src/query/partial_aggregate.h"
#include "src/storage/duckdb.h"

#include <cstdint>
#include <map>
#include <optional>
#include <utility>
#include <vector>

namespace rm {

inline constexpr int64_t kHourUs = 3600LL * 1000000;
// Below this many points a shard reads only its points. DuckDB skips data by
// time only in whole row groups of 122,880 rows: a shard of one or two row
// groups reads them all for the partial edge hours anyway, and the rollup
// would only add statements.
inline constexpr uint64_t kRollupMinPoints = 2 * 122880;
// Rollup rows appended before a compaction is tried.
inline constexpr uint64_t kRollupCompactEvery = 4096;

// The hour holding `ts_us` (floor division: instants before 1970 have negative hours).
int64_t HourOf(int64_t ts_us);

// The table the rollup rows live in, and its columns, in order (the order of
// RollupBuilder's batch columns).
inline constexpr const char* kRollupTable = "rollup_1h";
inline constexpr const char* kRollupSchema =
    "CREATE TABLE IF NOT EXISTS rollup_1h(series_id INTEGER NOT NULL, hour BIGINT NOT NULL, "
    "n BIGINT NOT NULL, total DOUBLE NOT NULL, lo DOUBLE NOT NULL, hi DOUBLE NOT NULL)";
// An empty batch with the rollup's columns (series_id, hour, n, total, lo, hi).
db::ColumnBatch EmptyRollupBatch();
// The hour of a `ts` column in SQL, with HourOf's floor semantics.
std::string SqlHourOf(const std::string& ts_column);

// Collects the partials of one command's points per (series, hour).
class RollupBuilder {
 public:
  void Add(int32_t series, const int64_t* ts_us, const double* values, size_t n);
  // Appends one row per (series, hour) added since the last call, in (series,
  // hour) order, to `batch` (which it sets up on first use), and starts over.
  void AppendTo(db::ColumnBatch& batch);
  bool empty() const { return partials_.empty(); }
  // The range of hours added since the last AppendTo (nullopt when none).
  std::optional<std::pair<int64_t, int64_t>> hours() const;

 private:
  std::map<std::pair<int32_t, int64_t>, PartialAggregate> partials_;
};

// How an inclusive time range [from, to] (either end open) splits between the
// rollup and the points.
struct RangeSplit {
  // Whole hours inside the range, inclusive; nullopt when there is none. With an
  // open end the bound is the lowest/highest representable hour.
  std::optional<std::pair<int64_t, int64_t>> hours;
  // Inclusive microsecond ranges to read from the points: the partial hours at
  // the ends, or the whole range when it holds no whole hour.
  std::vector<std::pair<int64_t, int64_t>> edges;
};
RangeSplit SplitRange(std::optional<int64_t> from_us, std::optional<int64_t> to_us);

}  // namespace rm
