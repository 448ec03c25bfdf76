// ShardStore::AggregateQuery: the shard side of /aggregate.
//
// Filters (metric, tags, host and datacenter wildcards) are resolved against the
// in-memory series catalog first; DuckDB then reads only the selected series
// within the time range. Count, sum, min and max come from the hourly rollup
// for the whole hours of the range (hourly_rollup.h) and from the points for
// the rest; min/max only when asked. That SQL groups by series id and bucket (a
// perfect hash aggregate on small integers); each series' rows are then folded
// into the requested groups here, from the catalog: mapping groups inside SQL
// (a per-row lookup in a bound list) cost more than the scan itself. Buckets
// are integer divisions of the time since an aligned origin at or before
// `from` (no modulo per row). Percentiles stream the matching values out of
// DuckDB and count their QuantileSketch bins here (sketch_bin_counter.h), or
// ship them raw for exact percentiles. Measurements: docs/benchmarks.md,
// "Where the time of Q1–Q6 goes".
#include "src/common/glob.h"
#include "src/query/quantile_sketch.h"
#include "src/storage/hourly_rollup.h"
#include "src/storage/shard_store.h"
#include "src/storage/sketch_bin_counter.h"
#include "src/storage/sql_filters.h"

#include <cmath>
#include <limits>
#include <map>
#include <vector>

namespace rm {

namespace pb = raftmetrics::v1;

namespace {

std::string TagOf(const Tags& tags, const std::string& key) {
  for (const auto& [k, v] : tags) {
    if (k == key) return v;
  }
  return "";
}

bool AnyGlob(const google::protobuf::RepeatedPtrField<std::string>& patterns, const std::string& value) {
  if (patterns.empty()) return true;
  for (const auto& p : patterns) {
    if (GlobMatch(p, value)) return true;
  }
  return false;
}

// QuantileSketch bins of one group and bucket.
struct SketchBins {
  SketchBinCounter positive, negative;
  uint64_t zeros = 0;

  void Add(double v) {
    const double m = std::fabs(v);
    if (m < QuantileSketch::kMinMagnitude || std::isnan(v)) {
      ++zeros;
    } else {
      (v > 0 ? positive : negative).Add(QuantileSketch::BinOf(m));
    }
  }
  void CopyTo(pb::SketchBins& out) const {
    positive.ForEach([&](int32_t bin, uint64_t n) {
      out.add_positive_bins(bin);
      out.add_positive_counts(n);
    });
    negative.ForEach([&](int32_t bin, uint64_t n) {
      out.add_negative_bins(bin);
      out.add_negative_counts(n);
    });
    out.set_zeros(out.zeros() + zeros);
  }
};

// The sketches of one group, by bucket number; points of a series arrive
// mostly in time order, so the last bucket is looked up first.
struct SketchBuckets {
  std::map<int64_t, SketchBins> by_bucket;
  int64_t last_bucket = 0;
  SketchBins* last = nullptr;

  SketchBins& For(int64_t bucket) {
    if (last == nullptr || bucket != last_bucket) {
      last = &by_bucket[bucket];
      last_bucket = bucket;
    }
    return *last;
  }
};

// A shard's answer under construction: one GroupPartial per (group, bucket
// start), created on first use.
class GroupPartials {
 public:
  GroupPartials(pb::AggregateShardResult& result, const std::vector<std::vector<std::string>>& groups, bool min_max)
      : result_(result), groups_(groups), min_max_(min_max) {}

  pb::GroupPartial* For(int64_t group, int64_t bucket_start) {
    auto [it, inserted] = by_key_.emplace(std::make_pair(group, bucket_start), nullptr);
    if (inserted) {
      it->second = result_.add_groups();
      for (const auto& k : groups_.at(static_cast<size_t>(group))) it->second->add_key(k);
      it->second->set_bucket(bucket_start);
      if (min_max_) {
        it->second->mutable_aggregate()->set_min(std::numeric_limits<double>::infinity());
        it->second->mutable_aggregate()->set_max(-std::numeric_limits<double>::infinity());
      }
    }
    return it->second;
  }
  // Folds in the count, sum, min and max of some points (min/max only when asked).
  void Add(int64_t group, int64_t bucket_start, uint64_t n, double sum, double lo, double hi) {
    auto* a = For(group, bucket_start)->mutable_aggregate();
    a->set_count(a->count() + n);
    a->set_sum(a->sum() + sum);
    if (min_max_) {
      a->set_min(std::min(a->min(), lo));
      a->set_max(std::max(a->max(), hi));
    }
    total_ += n;
  }
  uint64_t total() const { return total_; }

 private:
  pb::AggregateShardResult& result_;
  const std::vector<std::vector<std::string>>& groups_;
  const bool min_max_;
  std::map<std::pair<int64_t, int64_t>, pb::GroupPartial*> by_key_;
  uint64_t total_ = 0;
};

}  // namespace

Result<ShardStore::SeriesSelection> ShardStore::SelectSeries(const pb::AggregateQuery& query) const {
  SeriesSelection sel;
  std::map<std::vector<std::string>, int32_t> group_index;
  std::shared_lock<std::shared_mutex> catalog(catalog_mu_);
  sel.group_of.assign(series_.size(), -1);
  for (const auto& s : series_) {
    if (!query.metric().empty() && s.metric != query.metric()) continue;
    bool ok = true;
    for (const auto& f : query.tags()) {
      if (TagOf(s.tags, f.key()) != f.value()) {
        ok = false;
        break;
      }
    }
    if (!ok || !AnyGlob(query.hosts(), TagOf(s.tags, "host"))) continue;
    if (!query.datacenters().empty()) {
      const std::string dc = TagOf(s.tags, "datacenter");
      bool any = false;
      for (const auto& d : query.datacenters()) any = any || d == dc;
      if (!any) continue;
    }
    std::vector<std::string> key;
    key.reserve(query.group_by_size());
    for (const auto& field : query.group_by()) {
      if (field == "metric") {
        key.push_back(s.metric);
      } else if (field == "partition_key") {
        key.push_back(s.partition_key);
      } else {
        key.push_back(TagOf(s.tags, field));
      }
    }
    auto [it, inserted] = group_index.emplace(std::move(key), static_cast<int32_t>(sel.groups.size()));
    if (inserted) {
      if (query.max_groups() > 0 && sel.groups.size() >= query.max_groups()) {
        return Status(Code::kValidation, "Too many groups",
                      {{"fields", {{{"field", "group_by"},
                                    {"error", "more than " + std::to_string(query.max_groups()) +
                                                  " groups; filter further or group by fewer fields"}}}},
                       {"max_groups", query.max_groups()}});
      }
      sel.groups.push_back(it->first);
    }
    sel.group_of[s.id] = it->second;
    sel.ids.push_back(s.id);
  }
  sel.all = !sel.ids.empty() && sel.ids.size() == series_.size();
  return sel;
}

Result<pb::AggregateShardResult> ShardStore::AggregatePoints(const pb::AggregateQuery& query) {
  if (Status flushed = Flush(); !flushed.ok()) return flushed;  // reads see every acknowledged write
  const int64_t b = query.bucket_us();
  // Buckets start at bucket_anchor_us + k * b (the epoch by default); `origin`
  // is the bucket start at or before `from`, so (ts - origin) is never negative
  // in range and its integer division is the bucket number.
  int64_t origin = 0;
  if (b > 0) {
    const int64_t offset = query.from_us() - query.bucket_anchor_us();
    origin = query.from_us() - (((offset % b) + b) % b);
  }
  auto bucket_start = [&](int64_t n) { return b > 0 ? origin + n * b : 0; };
  const bool min_max = !query.skip_min_max();
  // Hourly rollups and totals answer buckets made of whole clock hours only.
  const bool whole_hours = b == 0 || (b % kHourUs == 0 && origin % kHourUs == 0);

  // Count, sum, min and max of whole hours (or buckets of them): from the
  // totals in memory when they answer exactly (hourly_totals.h).
  if (!query.want_sketch() && !query.want_values() && whole_hours) {
    std::shared_lock<std::shared_mutex> swap(swap_mu_);  // no snapshot install mid-read
    if (db_) {
      auto totals = hourly_totals_.ReadLock();  // before the series: see hourly_totals_
      auto sel = SelectSeries(query);
      if (!sel.ok()) return sel.status();
      pb::AggregateShardResult result;
      result.set_shard(shard_);
      if (sel->ids.empty()) return result;
      GroupPartials partials(result, sel->groups, min_max);
      const auto& group_of = sel->group_of;
      const bool answered = hourly_totals_.Fold(
          query.from_us(), query.to_us(),
          [&](int32_t s) { return static_cast<size_t>(s) < group_of.size() && group_of[static_cast<size_t>(s)] >= 0; },
          [&](int32_t s, int64_t hour, const HourCell& c) {
            const int64_t start = b > 0 ? origin + (hour * kHourUs - origin) / b * b : 0;
            partials.Add(group_of[static_cast<size_t>(s)], start, c.n, c.sum, c.lo, c.hi);
          });
      if (answered) {
        ++reads_from_totals_;
        return result;
      }
    }
  }

  pb::AggregateShardResult result;
  result.set_shard(shard_);
  auto conn = TakeReader();  // first: the series ids selected must match the file read
  if (!conn.ok()) return conn.status();
  auto sel = SelectSeries(query);
  if (!sel.ok()) return sel.status();
  if (sel->ids.empty()) return result;

  std::vector<db::Param> params;
  // One group: no need to tell series apart in SQL.
  const bool grouped = sel->groups.size() > 1;
  const std::string series_expr = grouped ? "series_id" : "0";
  const std::string bucket_expr = b > 0 ? "((ts - (" + std::to_string(origin) + "))::BIGINT // " +
                                              std::to_string(b) + ")"
                                        : "0::BIGINT";
  std::string where = " WHERE ts >= ? AND ts <= ?";
  params.push_back(db::Param::Int(query.from_us()));
  params.push_back(db::Param::Int(query.to_us()));
  if (!sel->all) where += " AND " + SeriesIdFilter(sel->ids);
  auto group_of = [&](int64_t series) { return grouped ? sel->group_of.at(static_cast<size_t>(series)) : 0; };

  db::Connection& c = **conn;
  GroupPartials partials(result, sel->groups, min_max);
  // Rows of (series or 0, bucket number, count, sum[, min, max]).
  auto fold = [&](const db::Rows& rows) {
    for (size_t r = 0; r < rows.size(); ++r) {
      if (rows.Int(0, r) == -1) continue;  // the edge check (below)
      partials.Add(group_of(rows.Int(0, r)), bucket_start(rows.Int(1, r)), static_cast<uint64_t>(rows.Int(2, r)),
                   rows.Double(3, r), min_max ? rows.Double(4, r) : 0, min_max ? rows.Double(5, r) : 0);
    }
  };
  // Whole hours come from the hourly rollup when every hour falls in one bucket
  // (no buckets, or buckets of whole hours); the partial hours at the ends, or
  // the whole range otherwise, from the points — except edge hours whose
  // points all lie in the range (QueryPartials).
  const bool rollup_path = RollupPays() && whole_hours;
  const RangeSplit plain = rollup_path ? SplitRange(query.from_us(), query.to_us())
                                      : RangeSplit{std::nullopt, {{query.from_us(), query.to_us()}}};
  // One statement (one plan) for the rollup's whole hours and the edges.
  const std::string series_filter = sel->all ? "" : " AND " + SeriesIdFilter(sel->ids);
  auto build = [&](const RangeSplit& split, const std::vector<AssumedEdge>& assumed,
                   std::vector<db::Param>& partial_params) {
    std::vector<std::string> parts;
    if (split.hours) {
      // origin and b are whole hours: the bucket of an hour is a division of
      // whole hours, never negative in range.
      const std::string hour_bucket = b > 0 ? "((hour - (" + std::to_string(origin / kHourUs) + "))::BIGINT // " +
                                                  std::to_string(b / kHourUs) + ")"
                                            : "0::BIGINT";
      parts.push_back("SELECT " + series_expr + " AS sid, " + hour_bucket + " AS b, sum(n)::BIGINT, sum(total)" +
                      (min_max ? ", min(lo), max(hi)" : "") + " FROM rollup_1h WHERE hour BETWEEN ? AND ?" +
                      series_filter + " GROUP BY sid, b");
      partial_params.push_back(db::Param::Int(split.hours->first));
      partial_params.push_back(db::Param::Int(split.hours->second));
    }
    for (const auto& [lo, hi] : split.edges) {
      parts.push_back("SELECT " + series_expr + " AS sid, " + bucket_expr + " AS b, count(value), sum(value)" +
                      (min_max ? ", min(value), max(value)" : "") + " FROM points WHERE ts >= ? AND ts <= ?" +
                      series_filter + " GROUP BY sid, b");
      partial_params.push_back(db::Param::Int(lo));
      partial_params.push_back(db::Param::Int(hi));
    }
    if (!assumed.empty()) {
      parts.push_back("SELECT -1 AS sid, 0::BIGINT AS b, count(*)::BIGINT, 0.0" +
                      std::string(min_max ? ", NULL::DOUBLE, NULL::DOUBLE" : "") + " FROM rollup_1h WHERE " +
                      EdgeViolationFilter(assumed, partial_params) + series_filter);
    }
    return JoinUnionAll(parts);
  };
  auto rows = QueryPartials(c, plain, rollup_path, /*check_col=*/2, build);
  if (!rows.ok()) return rows.status();
  fold(*rows);

  // The values themselves, streamed: (group's series or 0, bucket number, value).
  const std::string value_sql = "SELECT " + std::string(grouped ? "series_id" : "0::INTEGER") + " AS sid, " +
                                bucket_expr + " AS b, value FROM points" + where;
  const std::vector<db::ColumnType> value_types = {db::ColumnType::kInteger, db::ColumnType::kBigint,
                                                   db::ColumnType::kDouble};

  const uint64_t total = partials.total();
  if (query.want_sketch() && total > 0) {
    // Binned here rather than in SQL: DuckDB's ln() and a four-key hash
    // aggregate per row cost about 3x this loop (docs/benchmarks.md).
    std::vector<SketchBuckets> bins(sel->groups.size());
    Status s = c.Scan(value_sql, params, value_types, [&](const db::Chunk& chunk) {
      const int32_t* sid = chunk.col<int32_t>(0);
      const int64_t* bucket = chunk.col<int64_t>(1);
      const double* value = chunk.col<double>(2);
      for (size_t r = 0; r < chunk.rows; ++r) bins[group_of(sid[r])].For(bucket[r]).Add(value[r]);
    });
    if (!s.ok()) return s;
    for (size_t g = 0; g < bins.size(); ++g) {
      for (const auto& [bucket, group_bins] : bins[g].by_bucket) {
        group_bins.CopyTo(*partials.For(static_cast<int64_t>(g), bucket_start(bucket))->mutable_sketch());
      }
    }
  }

  if (query.want_values() && total > 0) {
    if (query.max_values() > 0 && total > query.max_values()) {
      return Status(Code::kValidation, "Too many points for exact percentiles",
                    {{"fields", {{{"field", "exact"},
                                  {"error", "the query touches more than " + std::to_string(query.max_values()) +
                                                " points; narrow the time range or filters, or use the sketch"}}}},
                     {"max_points", query.max_values()}});
    }
    Status s = c.Scan(value_sql, params, value_types, [&](const db::Chunk& chunk) {
      const int32_t* sid = chunk.col<int32_t>(0);
      const int64_t* bucket = chunk.col<int64_t>(1);
      const double* value = chunk.col<double>(2);
      for (size_t r = 0; r < chunk.rows; ++r) {
        partials.For(group_of(sid[r]), bucket_start(bucket[r]))->add_values(value[r]);
      }
    });
    if (!s.ok()) return s;
  }
  return result;
}

}  // namespace rm
