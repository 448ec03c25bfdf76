// ShardStore::AggregateQuery and DescribeMetric: an empty answer that explains
// itself. When a shard has no point for an /aggregate query, it says what it
// knows of the metric instead (MetricPresence): how many series it has, how
// many pass the filters, the first and last timestamps of those, and metric
// names one or two edits away when it has none. The control node turns that
// into the answer's `warnings`. Only empty answers pay for it: one scan of the
// series catalog and one read of the hourly rollup (a row per series and hour,
// not the points).
#include "src/storage/hourly_rollup.h"
#include "src/storage/shard_store.h"
#include "src/storage/sql_filters.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <set>
#include <string_view>
#include <vector>

namespace rm {

namespace pb = raftmetrics::v1;

namespace {

// Levenshtein distance, giving up (returning limit + 1) once it exceeds `limit`.
size_t EditDistance(std::string_view a, std::string_view b, size_t limit) {
  if (a.size() > b.size() + limit || b.size() > a.size() + limit) return limit + 1;
  std::vector<size_t> row(b.size() + 1);
  for (size_t j = 0; j <= b.size(); ++j) row[j] = j;
  for (size_t i = 1; i <= a.size(); ++i) {
    size_t diagonal = row[0];
    row[0] = i;
    size_t best = row[0];
    for (size_t j = 1; j <= b.size(); ++j) {
      const size_t up = row[j];
      row[j] = std::min({row[j] + 1, row[j - 1] + 1, diagonal + (a[i - 1] == b[j - 1] ? 0 : 1)});
      diagonal = up;
      best = std::min(best, row[j]);
    }
    if (best > limit) return limit + 1;
  }
  return row[b.size()];
}

constexpr size_t kMaxSimilarMetrics = 5;

}  // namespace

Result<pb::AggregateShardResult> ShardStore::AggregateQuery(const pb::AggregateQuery& query) {
  auto result = AggregatePoints(query);
  if (!result.ok() || !query.describe_when_empty()) return result;
  for (const auto& g : result->groups()) {
    if (g.aggregate().count() > 0) return result;
  }
  // The answer stands without its explanation.
  auto presence = DescribeMetric(query);
  if (!presence.ok()) {
    spdlog::warn("shard {}: cannot describe metric {} for an empty answer: {}", shard_, query.metric(),
                 presence.status().ToString());
    return result;
  }
  *result->mutable_presence() = std::move(*presence);
  return result;
}

Result<pb::MetricPresence> ShardStore::DescribeMetric(const pb::AggregateQuery& query) {
  pb::MetricPresence presence;
  auto conn = TakeReader();  // first: the series ids selected must match the file read
  if (!conn.ok()) return conn.status();
  pb::AggregateQuery unfiltered;
  unfiltered.set_metric(query.metric());
  auto all = SelectSeries(unfiltered);
  if (!all.ok()) return all.status();
  presence.set_series(all->ids.size());
  if (all->ids.empty()) {
    std::set<std::string_view> names;  // distinct: a metric has many series
    std::shared_lock<std::shared_mutex> catalog(catalog_mu_);
    for (const auto& s : series_) names.insert(s.metric);
    for (const auto& m : names) {
      if (presence.similar_metrics_size() >= static_cast<int>(kMaxSimilarMetrics)) break;
      if (EditDistance(m, query.metric(), 2) <= 2) presence.add_similar_metrics(std::string(m));
    }
    return presence;
  }
  pb::AggregateQuery filtered = query;
  filtered.clear_group_by();
  filtered.set_max_groups(0);
  auto matching = SelectSeries(filtered);
  if (!matching.ok()) return matching.status();
  presence.set_matching_series(matching->ids.size());
  if (matching->ids.empty()) return presence;
  auto rows = (**conn).Query("SELECT min(coalesce(t0, hour * " + std::to_string(kHourUs) +
                             ")), max(coalesce(t1, (hour + 1) * " + std::to_string(kHourUs) +
                             " - 1)) FROM rollup_1h WHERE " + SeriesIdFilter(matching->ids));
  if (!rows.ok()) return rows.status();
  if (rows->size() == 1 && !rows->IsNull(0, 0)) {
    presence.set_first_us(rows->Int(0, 0));
    presence.set_last_us(rows->Int(1, 0));
  }
  return presence;
}

}  // namespace rm
