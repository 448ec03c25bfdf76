// AggregateMerger: the Combine and Finalize steps of /aggregate. Shards' partial
// aggregates (count/sum/min/max, sketch bins, raw values for exact=true) are
// combined per (group, bucket); Finish() computes the requested aggregations,
// rolling windows, order_by and limit over the merged data (a true global
// top-N) and renders the seed's response shape. Not thread-safe.
#pragma once

#include "src/common/status.h"
#include "src/query/aggregate_spec.h"
#include "src/query/partial_aggregate.h"
#include "src/query/quantile_sketch.h"

#include <nlohmann/json.hpp>

#include <map>
#include <set>
#include <string>
#include <vector>

namespace rm {

class AggregateMerger {
 public:
  explicit AggregateMerger(const AggregateSpec& spec) : spec_(spec) {}

  void Add(const raftmetrics::v1::AggregateShardResult& shard);
  // The response body (without the partial-result fields, which the caller adds).
  Result<nlohmann::json> Finish();
  // Just the finalized aggregations: overall, and per group over all buckets
  // (the worker's seed-001 /compute answer).
  nlohmann::json Overall();
  std::map<std::vector<std::string>, nlohmann::json> PerGroup();
  // Points merged so far inside the asked range (rolling windows also read before it).
  uint64_t PointsInRange() const;
  // Why an answer without points is empty, from what the shards said of the
  // metric (MetricPresence): e.g. "no series for metric cpu_usge (did you mean
  // cpu_usage?)". Empty when the answer has points.
  std::vector<std::string> Warnings() const;

  struct Acc {
    PartialAggregate agg;
    QuantileSketch sketch;
    std::vector<double> values;
    void Merge(const Acc& o);
  };

 private:
  nlohmann::json Render(Acc& acc) const;
  bool InRange(int64_t bucket) const;
  Acc InRangeOf(const std::map<int64_t, Acc>& buckets) const;

  const AggregateSpec& spec_;
  // group key -> bucket start -> accumulated partials
  std::map<std::vector<std::string>, std::map<int64_t, Acc>> data_;
  // What shards without points said of the metric, summed.
  struct Presence {
    uint64_t series = 0;
    uint64_t matching_series = 0;
    int64_t first_us = 0;  // 0: none known
    int64_t last_us = 0;
    std::set<std::string> similar_metrics;
  };
  Presence presence_;
};

// quantile_cont over sorted values (q in [0, 1]).
double QuantileCont(const std::vector<double>& sorted, double q);

}  // namespace rm
