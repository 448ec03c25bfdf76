// ShardStore's reads for /analytics and /compute: the series a filter selects
// (from the in-memory catalog), and their count/sum/min/max from the hourly
// totals, the rollup or the points. /aggregate's reads are in shard_aggregate.cc.
#include "src/storage/shard_store.h"

#include "src/storage/shard_store_internal.h"

#include "src/storage/file_sync.h"
#include "src/storage/hourly_rollup.h"
#include "src/storage/snapshot_bundle.h"
#include "src/storage/sql_filters.h"

#include <nlohmann/json.hpp>

#include <fcntl.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <limits>
#include <sstream>
#include <system_error>

namespace rm {

std::optional<std::vector<int32_t>> ShardStore::MatchingSeries(const PointFilter& filter) const {
  if (filter.metric.empty() && filter.partition_key.empty()) return std::nullopt;
  std::vector<int32_t> ids;
  std::shared_lock<std::shared_mutex> catalog(catalog_mu_);
  for (const auto& s : series_) {
    if (!filter.metric.empty() && s.metric != filter.metric) continue;
    if (!filter.partition_key.empty() && s.partition_key != filter.partition_key) continue;
    ids.push_back(s.id);
  }
  if (!ids.empty() && ids.size() == series_.size()) return std::nullopt;  // no need to filter
  return ids;
}

namespace {

PartialAggregate RowToPartial(const db::Rows& rows, size_t row, size_t first_col) {
  PartialAggregate p;
  p.count = static_cast<uint64_t>(rows.Int(first_col, row));
  if (p.count > 0) {
    p.sum = rows.Double(first_col + 1, row);
    if (!rows.IsNull(first_col + 2, row)) p.min = rows.Double(first_col + 2, row);
    if (!rows.IsNull(first_col + 3, row)) p.max = rows.Double(first_col + 3, row);
  }
  return p;
}

}  // namespace

Result<db::Rows> ShardStore::QueryPartials(db::Connection& conn, const RangeSplit& plain, bool widen,
                                           size_t check_col, const PartialsSql& build) {
  std::vector<AssumedEdge> assumed;
  const RangeSplit split = widen ? WidenSplit(plain, hour_extents_, assumed) : plain;
  std::vector<db::Param> params;
  const std::string sql = build(split, assumed, params);
  if (sql.empty()) return db::Rows();
  auto rows = conn.QueryCached(sql, params);
  if (!rows.ok() || assumed.empty()) return rows;
  for (size_t r = 0; r < rows->size(); ++r) {
    if (rows->Int(0, r) == -1 && rows->Int(check_col, r) > 0) {
      return QueryPartials(conn, plain, /*widen=*/false, check_col, build);  // a write raced the hint
    }
  }
  return rows;
}

Result<std::vector<std::pair<int32_t, PartialAggregate>>> ShardStore::ScanPartials(
    db::Connection& conn, const PointFilter& filter, const std::optional<std::vector<int32_t>>& ids, bool by_series) {
  std::vector<std::pair<int32_t, PartialAggregate>> out;
  const std::string sid = by_series ? "series_id" : "0";
  const std::string series = ids ? " AND " + SeriesIdFilter(*ids) : "";
  const bool rollup = filter.use_rollup && RollupPays();
  const RangeSplit plain = rollup ? SplitRange(filter.from_us, filter.to_us)
                                  : RangeSplit{std::nullopt,
                                               {{filter.from_us.value_or(std::numeric_limits<int64_t>::min()),
                                                 filter.to_us.value_or(std::numeric_limits<int64_t>::max())}}};
  // One statement (one plan) for the rollup's whole hours and the edges.
  auto build = [&](const RangeSplit& split, const std::vector<AssumedEdge>& assumed, std::vector<db::Param>& params) {
    std::vector<std::string> parts;
    if (split.hours) {
      parts.push_back("SELECT " + sid + " AS sid, sum(n)::BIGINT, sum(total), " +
                      (filter.min_max ? "min(lo), max(hi)" : "NULL::DOUBLE, NULL::DOUBLE") +
                      " FROM rollup_1h WHERE hour BETWEEN ? AND ?" + series + " GROUP BY sid");
      params.push_back(db::Param::Int(split.hours->first));
      params.push_back(db::Param::Int(split.hours->second));
    }
    for (const auto& [lo, hi] : split.edges) {
      parts.push_back("SELECT " + sid + " AS sid, count(value), sum(value), " +
                      (filter.min_max ? "min(value), max(value)" : "NULL::DOUBLE, NULL::DOUBLE") +
                      " FROM points WHERE ts >= ? AND ts <= ?" + series + " GROUP BY sid");
      params.push_back(db::Param::Int(lo));
      params.push_back(db::Param::Int(hi));
    }
    if (!assumed.empty()) {
      parts.push_back("SELECT -1 AS sid, count(*)::BIGINT, 0.0, NULL::DOUBLE, NULL::DOUBLE FROM rollup_1h WHERE " +
                      EdgeViolationFilter(assumed, params) + series);
    }
    return JoinUnionAll(parts);
  };
  auto rows = QueryPartials(conn, plain, rollup, /*check_col=*/1, build);
  if (!rows.ok()) return rows.status();
  for (size_t r = 0; r < rows->size(); ++r) {
    if (rows->Int(0, r) == -1) continue;  // the edge check
    PartialAggregate p = RowToPartial(*rows, r, 1);
    if (p.count > 0) out.emplace_back(static_cast<int32_t>(rows->Int(0, r)), p);
  }
  return out;
}

std::optional<std::vector<std::pair<int32_t, PartialAggregate>>> ShardStore::PartialsFromTotals(
    const PointFilter& filter, bool by_series) {
  if (!filter.use_rollup || !db_) return std::nullopt;
  auto totals = hourly_totals_.ReadLock();  // before the series: see hourly_totals_
  const auto ids = MatchingSeries(filter);
  std::vector<bool> selected;
  if (ids) {
    selected.resize(ids->empty() ? 0 : static_cast<size_t>(ids->back()) + 1);
    for (int32_t id : *ids) selected[static_cast<size_t>(id)] = true;
  }
  std::map<int32_t, PartialAggregate> per_series;
  const bool answered = hourly_totals_.Fold(
      filter.from_us, filter.to_us,
      [&](int32_t s) { return !ids || (static_cast<size_t>(s) < selected.size() && selected[static_cast<size_t>(s)]); },
      [&](int32_t s, int64_t, const HourCell& c) {
        PartialAggregate& p = per_series[by_series ? s : 0];
        p.count += c.n;
        p.sum += c.sum;
        if (filter.min_max) {
          p.min = std::min(p.min, c.lo);
          p.max = std::max(p.max, c.hi);
        }
      });
  if (!answered) return std::nullopt;
  ++reads_from_totals_;
  return std::vector<std::pair<int32_t, PartialAggregate>>(per_series.begin(), per_series.end());
}

Result<PartialAggregate> ShardStore::Aggregate(const PointFilter& filter) {
  auto total_of = [](const std::vector<std::pair<int32_t, PartialAggregate>>& partials) {
    PartialAggregate total;
    for (const auto& [series, p] : partials) total.Merge(p);
    return total;
  };
  if (Status flushed = Flush(); !flushed.ok()) return flushed;  // reads see every acknowledged write
  {
    std::shared_lock<std::shared_mutex> swap(swap_mu_);  // no snapshot install mid-read
    if (auto partials = PartialsFromTotals(filter, /*by_series=*/false)) return total_of(*partials);
  }
  auto conn = TakeReader();  // first: the series ids below must match the file read
  if (!conn.ok()) return conn.status();
  auto ids = MatchingSeries(filter);
  if (ids && ids->empty()) return PartialAggregate{};
  auto partials = ScanPartials(**conn, filter, ids, /*by_series=*/false);
  if (!partials.ok()) return partials.status();
  return total_of(*partials);
}

Result<std::map<std::vector<std::string>, PartialAggregate>> ShardStore::AggregateGroups(
    const PointFilter& filter, const std::vector<std::string>& group_by) {
  std::map<std::vector<std::string>, PartialAggregate> groups;
  auto group = [&](const std::vector<std::pair<int32_t, PartialAggregate>>& partials) {
    std::shared_lock<std::shared_mutex> catalog(catalog_mu_);
    for (const auto& [series, p] : partials) {
      const Series& s = series_.at(static_cast<size_t>(series));
      std::vector<std::string> key;
      key.reserve(group_by.size());
      for (const auto& field : group_by) {
        if (field == "metric") {
          key.push_back(s.metric);
        } else if (field == "partition_key") {
          key.push_back(s.partition_key);
        } else {
          key.push_back(TagValue(s.tags, field));
        }
      }
      groups[key].Merge(p);
    }
  };
  if (Status flushed = Flush(); !flushed.ok()) return flushed;  // reads see every acknowledged write
  {
    std::shared_lock<std::shared_mutex> swap(swap_mu_);  // no snapshot install mid-read
    if (auto partials = PartialsFromTotals(filter, /*by_series=*/true)) {
      group(*partials);
      return groups;
    }
  }
  auto conn = TakeReader();  // first: the series ids below must match the file read
  if (!conn.ok()) return conn.status();
  auto ids = MatchingSeries(filter);
  if (ids && ids->empty()) return groups;
  auto partials = ScanPartials(**conn, filter, ids, /*by_series=*/true);
  if (!partials.ok()) return partials.status();
  group(*partials);
  return groups;
}

}  // namespace rm
