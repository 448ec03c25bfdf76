// AggregateSpec: a validated /aggregate request (seed 001 "Query Parameters").
// Parsed from the query string by ParseAggregateParams; the shard-side part is a
// raftmetrics.v1.AggregateQuery sent to every shard.
#pragma once

#include "proto/raftmetrics.pb.h"
#include "src/common/status.h"

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

namespace rm {

// Which replica answers for a replicated shard (rqlite's levels):
//   none    any healthy replica, possibly stale;
//   weak    the leader (default);
//   strong  the leader after a Raft barrier: every write acknowledged before the
//           query started is in the answer.
enum class ReadConsistency { kNone, kWeak, kStrong };
// "none" | "weak" | "strong"; nullopt for anything else.
std::optional<ReadConsistency> ParseConsistency(const std::string& text);

struct AggregateSpec {
  raftmetrics::v1::AggregateQuery query;  // filters, range, bucket size, group_by
  // The range asked for. Rolling windows make the shards read from
  // from_us - window_us (query.from_us()); the answer's aggregations cover only this.
  int64_t from_us = 0;
  int64_t to_us = 0;
  bool default_range = false;             // neither from nor to was given (last 24 h)
  std::vector<std::string> aggs;          // e.g. {"avg", "p95"}, in request order
  std::vector<std::string> group_by;      // as requested (empty: overall + by_datacenter)
  int64_t window_us = 0;                  // 0: no time buckets
  bool rolling = false;
  int64_t step_us = 0;                    // rolling: distance between window ends
  std::string order_agg;                  // "" when no order_by
  bool order_desc = false;
  std::optional<uint64_t> limit;
  bool exact = false;
  bool deny_partial = false;
  ReadConsistency consistency = ReadConsistency::kWeak;
};

inline constexpr uint64_t kMaxGroups = 10000;            // per query, after merging
inline constexpr uint64_t kMaxExactPoints = 1000000;     // exact=true cap
inline constexpr uint64_t kMaxBuckets = 100000;          // windows per query

// Query parameters as a map (decoded). `now_us` fixes the default range (last 24 h).
// from/to are ISO 8601 or epoch times (ParseTimestamp); `precision` is the unit
// of epoch ones (ParseEpochUnit), else each one's magnitude decides.
Result<AggregateSpec> ParseAggregateParams(const std::map<std::string, std::string>& params, int64_t now_us);

// Percentile of an aggregation name: "p95" -> 0.95, "p99.9" -> 0.999; nullopt otherwise.
std::optional<double> PercentileOf(const std::string& agg);

}  // namespace rm
