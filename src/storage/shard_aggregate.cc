// ShardStore::AggregateQuery: the shard side of /aggregate.
//
// Filters (metric, tags, host and datacenter wildcards) are resolved against the
// in-memory series catalog first; DuckDB then scans only the selected series'
// points within the time range. The SQL groups by series id and bucket (a
// perfect hash aggregate on small integers); each series' rows are then folded
// into the requested groups here, from the catalog: mapping groups inside SQL
// (a per-row lookup in a bound list) cost more than the scan itself. Buckets
// are integer divisions of the time since an aligned origin at or before
// `from` (no modulo per row). Up to three statements run: the count/sum
// (min/max only when asked) partials, the sketch bins when percentiles are
// wanted, and the raw values for exact percentiles. Measurements:
// docs/benchmarks.md, "Where the time of Q1–Q6 goes".
#include "src/common/glob.h"
#include "src/query/quantile_sketch.h"
#include "src/storage/hourly_rollup.h"
#include "src/storage/shard_store.h"
#include "src/storage/sql_filters.h"

#include <cmath>
#include <cstdio>
#include <limits>
#include <map>

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

Result<pb::AggregateShardResult> ShardStore::AggregateQuery(const pb::AggregateQuery& query) {
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
  const int64_t b = query.bucket_us();
  // Buckets are aligned to multiples of `b` since the epoch; `origin` is the
  // aligned start at or before `from`, so (ts - origin) is never negative in
  // range and its integer division is the bucket number.
  int64_t origin = 0;
  if (b > 0) origin = query.from_us() - (((query.from_us() % b) + b) % b);
  const std::string bucket_expr = b > 0 ? "((ts - (" + std::to_string(origin) + "))::BIGINT // " +
                                              std::to_string(b) + ")"
                                        : "0::BIGINT";
  auto bucket_start = [&](int64_t n) { return b > 0 ? origin + n * b : 0; };
  std::string where = " WHERE ts >= ? AND ts <= ?";
  params.push_back(db::Param::Int(query.from_us()));
  params.push_back(db::Param::Int(query.to_us()));
  if (!sel->all) where += " AND " + SeriesIdFilter(sel->ids);
  auto group_of = [&](int64_t series) { return grouped ? sel->group_of.at(static_cast<size_t>(series)) : 0; };

  db::Connection& c = **conn;

  // Partials per (group, bucket).
  std::map<std::pair<int64_t, int64_t>, pb::GroupPartial*> by_key;
  auto partial_for = [&](int64_t g, int64_t bucket) -> pb::GroupPartial* {
    auto [it, inserted] = by_key.emplace(std::make_pair(g, bucket), nullptr);
    if (inserted) {
      it->second = result.add_groups();
      for (const auto& k : sel->groups.at(static_cast<size_t>(g))) it->second->add_key(k);
      it->second->set_bucket(bucket);
      if (!query.skip_min_max()) {
        it->second->mutable_aggregate()->set_min(std::numeric_limits<double>::infinity());
        it->second->mutable_aggregate()->set_max(-std::numeric_limits<double>::infinity());
      }
    }
    return it->second;
  };
  const bool min_max = !query.skip_min_max();
  uint64_t total = 0;
  // Rows of (series or 0, bucket number, count, sum[, min, max]).
  auto fold = [&](const db::Rows& rows) {
    for (size_t r = 0; r < rows.size(); ++r) {
      auto* a = partial_for(group_of(rows.Int(0, r)), bucket_start(rows.Int(1, r)))->mutable_aggregate();
      const auto n = static_cast<uint64_t>(rows.Int(2, r));
      a->set_count(a->count() + n);
      a->set_sum(a->sum() + rows.Double(3, r));
      if (min_max) {
        a->set_min(std::min(a->min(), rows.Double(4, r)));
        a->set_max(std::max(a->max(), rows.Double(5, r)));
      }
      total += n;
    }
  };
  // Whole hours come from the hourly rollup when every hour falls in one bucket
  // (no buckets, or buckets of whole hours); the partial hours at the ends, or
  // the whole range otherwise, from the points.
  const RangeSplit split = b == 0 || b % kHourUs == 0
                               ? SplitRange(query.from_us(), query.to_us())
                               : RangeSplit{std::nullopt, {{query.from_us(), query.to_us()}}};
  if (split.hours) {
    // origin is a multiple of b, so of an hour: the bucket of an hour is a
    // division of whole hours, never negative in range.
    const std::string hour_bucket = b > 0 ? "((hour - (" + std::to_string(origin / kHourUs) + "))::BIGINT // " +
                                                std::to_string(b / kHourUs) + ")"
                                          : "0::BIGINT";
    auto rows = c.Query("SELECT " + series_expr + " AS sid, " + hour_bucket + " AS b, sum(n)::BIGINT, sum(total)" +
                            (min_max ? ", min(lo), max(hi)" : "") + " FROM rollup_1h WHERE hour BETWEEN ? AND ?" +
                            (sel->all ? "" : " AND " + SeriesIdFilter(sel->ids)) + " GROUP BY sid, b",
                        {db::Param::Int(split.hours->first), db::Param::Int(split.hours->second)});
    if (!rows.ok()) return rows.status();
    fold(*rows);
  }
  for (const auto& [lo, hi] : split.edges) {
    auto rows = c.Query("SELECT " + series_expr + " AS sid, " + bucket_expr + " AS b, count(value), sum(value)" +
                            (min_max ? ", min(value), max(value)" : "") + " FROM points WHERE ts >= ? AND ts <= ?" +
                            (sel->all ? "" : " AND " + SeriesIdFilter(sel->ids)) + " GROUP BY sid, b",
                        {db::Param::Int(lo), db::Param::Int(hi)});
    if (!rows.ok()) return rows.status();
    fold(*rows);
  }

  if (query.want_sketch() && total > 0) {
    char log_gamma[64];
    const double gamma = (1 + QuantileSketch::kRelativeAccuracy) / (1 - QuantileSketch::kRelativeAccuracy);
    std::snprintf(log_gamma, sizeof log_gamma, "%.17g", std::log(gamma));
    char min_mag[32];
    std::snprintf(min_mag, sizeof min_mag, "%.17g", QuantileSketch::kMinMagnitude);
    auto bins = c.Query("SELECT " + series_expr + " AS sid, " + bucket_expr +
                            " AS b, CASE WHEN abs(value) < " + min_mag +
                            " THEN 0 ELSE sign(value)::INTEGER END AS s, CASE WHEN abs(value) < " + min_mag +
                            " THEN 0 ELSE ceil(ln(abs(value)) / " + log_gamma +
                            ")::INTEGER END AS bin, count(*) FROM points" + where + " GROUP BY sid, b, s, bin",
                        params);
    if (!bins.ok()) return bins.status();
    // Several series of one group fill the same bins: add them up here, so each
    // group ships every bin once.
    std::map<std::pair<int64_t, int64_t>, std::map<std::pair<int64_t, int32_t>, uint64_t>> counts;
    for (size_t r = 0; r < bins->size(); ++r) {
      const int64_t sign = bins->Int(2, r);
      counts[{group_of(bins->Int(0, r)), bucket_start(bins->Int(1, r))}]
            [{sign, sign == 0 ? 0 : static_cast<int32_t>(bins->Int(3, r))}] += static_cast<uint64_t>(bins->Int(4, r));
    }
    for (const auto& [key, group_bins] : counts) {
      auto* sk = partial_for(key.first, key.second)->mutable_sketch();
      for (const auto& [bin, n] : group_bins) {
        if (bin.first > 0) {
          sk->add_positive_bins(bin.second);
          sk->add_positive_counts(n);
        } else if (bin.first < 0) {
          sk->add_negative_bins(bin.second);
          sk->add_negative_counts(n);
        } else {
          sk->set_zeros(sk->zeros() + n);
        }
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
    auto values = c.Query("SELECT " + series_expr + " AS sid, " + bucket_expr + " AS b, value FROM points" + where,
                          params);
    if (!values.ok()) return values.status();
    for (size_t r = 0; r < values->size(); ++r) {
      partial_for(group_of(values->Int(0, r)), bucket_start(values->Int(1, r)))->add_values(values->Double(2, r));
    }
  }
  return result;
}

}  // namespace rm
