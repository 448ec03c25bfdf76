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
//
// Each row also keeps the first and last timestamp of its points (t0, t1). An
// edge hour of a query whose points all lie inside the range is then as good
// as a whole hour: a day queried from 00:00:00.001 reads no points at all. The
// shard keeps what its rows say of each hour's extent in memory (HourExtents)
// to decide that before it plans; the statement re-checks the rows it relied
// on, in its own snapshot, and the shard reads the points when a write raced
// the decision (WidenSplit, EdgeViolationFilter).
#pragma once

#include "src/query/partial_aggregate.h"
#include "src/storage/duckdb.h"

#include <cstdint>
#include <map>
#include <mutex>
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
    "n BIGINT NOT NULL, total DOUBLE NOT NULL, lo DOUBLE NOT NULL, hi DOUBLE NOT NULL, t0 BIGINT, t1 BIGINT)";
// Files from before t0/t1: the columns are added and old rows claim their whole
// hour (so no edge ever relies on them).
std::string SqlAddRollupExtents();
// An empty batch with the rollup's columns (series_id, hour, n, total, lo, hi, t0, t1).
db::ColumnBatch EmptyRollupBatch();

// First and last timestamp of the points per hour.
using HourSpans = std::map<int64_t, std::pair<int64_t, int64_t>>;
void WidenSpan(HourSpans& spans, int64_t hour, int64_t first, int64_t last);

// A shard's view of HourSpans, shared by its applies (which widen it) and its
// reads. Thread-safe. A hint only: reads verify what they relied on.
class HourExtents {
 public:
  void Replace(HourSpans spans);
  void Widen(const HourSpans& spans);
  // nullopt: no point known in that hour.
  std::optional<std::pair<int64_t, int64_t>> Get(int64_t hour) const;

 private:
  mutable std::mutex mu_;
  HourSpans spans_;
};
// The hour of a `ts` column in SQL, with HourOf's floor semantics.
std::string SqlHourOf(const std::string& ts_column);

// Collects the partials of one command's points per (series, hour).
class RollupBuilder {
 public:
  void Add(int32_t series, const int64_t* ts_us, const double* values, size_t n);
  // Appends one row per (series, hour) added since the last call, in (series,
  // hour) order, to `batch` (which it sets up on first use), widens `spans`
  // with their extents, and starts over.
  void AppendTo(db::ColumnBatch& batch, HourSpans* spans = nullptr);
  bool empty() const { return partials_.empty(); }
  // The range of hours added since the last AppendTo (nullopt when none).
  std::optional<std::pair<int64_t, int64_t>> hours() const;

 private:
  struct Partial {
    PartialAggregate values;
    int64_t first_us = 0, last_us = 0;
  };
  std::map<std::pair<int32_t, int64_t>, Partial> partials_;
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

// An edge hour answered from the rollup because every point in it was thought
// to lie inside [lo, hi] (the part of the range in that hour).
struct AssumedEdge {
  int64_t hour = 0, lo = 0, hi = 0;
};
// Moves each edge that is one hour, whose points `extents` places inside the
// edge (or that holds none), into the whole hours when it borders them;
// `assumed` lists the hours so moved.
RangeSplit WidenSplit(const RangeSplit& split, const HourExtents& extents, std::vector<AssumedEdge>& assumed);
// SQL over rollup_1h true for a row that breaks an assumption (a point of its
// hour outside the edge), appending its parameters to `params`.
std::string EdgeViolationFilter(const std::vector<AssumedEdge>& assumed, std::vector<db::Param>& params);

}  // namespace rm
