#include "src/query/aggregate_merge.h"

#include "src/common/time_util.h"

#include <algorithm>
#include <cmath>
#include <limits>

namespace rm {

namespace pb = raftmetrics::v1;

double QuantileCont(const std::vector<double>& sorted, double q) {
  const double pos = q * static_cast<double>(sorted.size() - 1);
  const auto lo = static_cast<size_t>(std::floor(pos));
  const size_t hi = std::min(lo + 1, sorted.size() - 1);
  return sorted[lo] + (sorted[hi] - sorted[lo]) * (pos - static_cast<double>(lo));
}

void AggregateMerger::Acc::Merge(const Acc& o) {
  agg.Merge(o.agg);
  sketch.Merge(o.sketch);
  values.insert(values.end(), o.values.begin(), o.values.end());
}

void AggregateMerger::Add(const pb::AggregateShardResult& shard) {
  if (shard.has_presence()) {
    const auto& p = shard.presence();
    presence_.series += p.series();
    presence_.matching_series += p.matching_series();
    if (p.first_us() != 0 || p.last_us() != 0) {
      presence_.first_us = presence_.first_us == 0 ? p.first_us() : std::min(presence_.first_us, p.first_us());
      presence_.last_us = std::max(presence_.last_us, p.last_us());
    }
    presence_.similar_metrics.insert(p.similar_metrics().begin(), p.similar_metrics().end());
  }
  for (const auto& g : shard.groups()) {
    std::vector<std::string> key(g.key().begin(), g.key().end());
    Acc& acc = data_[key][g.bucket()];
    const auto& a = g.aggregate();
    if (a.count() > 0) acc.agg.Merge(PartialAggregate{a.count(), a.sum(), a.min(), a.max()});
    const auto& sk = g.sketch();
    for (int i = 0; i < sk.positive_bins_size() && i < sk.positive_counts_size(); ++i) {
      acc.sketch.AddBin(1, sk.positive_bins(i), sk.positive_counts(i));
    }
    for (int i = 0; i < sk.negative_bins_size() && i < sk.negative_counts_size(); ++i) {
      acc.sketch.AddBin(-1, sk.negative_bins(i), sk.negative_counts(i));
    }
    acc.sketch.AddBin(0, 0, sk.zeros());
    acc.values.insert(acc.values.end(), g.values().begin(), g.values().end());
  }
}

nlohmann::json AggregateMerger::Render(Acc& acc) const {
  nlohmann::json out = nlohmann::json::object();
  const bool empty = acc.agg.count == 0;
  if (spec_.exact) std::sort(acc.values.begin(), acc.values.end());
  for (const auto& name : spec_.aggs) {
    if (name == "count") {
      out[name] = acc.agg.count;
    } else if (name == "sum") {
      out[name] = acc.agg.sum;
    } else if (empty) {
      out[name] = nullptr;
    } else if (name == "avg") {
      out[name] = *acc.agg.Average();
    } else if (name == "min") {
      out[name] = acc.agg.min;
    } else if (name == "max") {
      out[name] = acc.agg.max;
    } else if (auto q = PercentileOf(name)) {
      double v;
      if (spec_.exact) {
        v = acc.values.empty() ? 0 : QuantileCont(acc.values, *q);
      } else {
        // The partials carry the exact min and max whenever a percentile is
        // asked (skip_min_max is off): p0 and p100 are then exact, and every
        // estimate stays inside them.
        v = acc.sketch.Quantile(*q, acc.agg.min, acc.agg.max).value_or(acc.agg.min);
      }
      out[name] = v;
    }
  }
  return out;
}

namespace {

// Sort key for order_by: the finalized value of an aggregation (null last).
struct Ordered {
  nlohmann::json item;
  std::optional<double> value;
};

void OrderAndLimit(std::vector<Ordered>& items, const AggregateSpec& spec) {
  if (!spec.order_agg.empty()) {
    std::stable_sort(items.begin(), items.end(), [&](const Ordered& a, const Ordered& b) {
      if (a.value.has_value() != b.value.has_value()) return a.value.has_value();
      if (!a.value) return false;
      return spec.order_desc ? *a.value > *b.value : *a.value < *b.value;
    });
  }
  if (spec.limit && items.size() > *spec.limit) items.resize(*spec.limit);
}

std::optional<double> ValueOf(const nlohmann::json& aggs, const std::string& name) {
  if (name.empty() || !aggs.contains(name) || !aggs[name].is_number()) return std::nullopt;
  return aggs[name].get<double>();
}

}  // namespace

bool AggregateMerger::InRange(int64_t bucket) const {
  // Rolling windows read from `from - window`; those buckets feed windows only.
  return !spec_.rolling || bucket >= spec_.from_us;
}

AggregateMerger::Acc AggregateMerger::InRangeOf(const std::map<int64_t, Acc>& buckets) const {
  Acc acc;
  for (auto it = buckets.lower_bound(spec_.rolling ? spec_.from_us : std::numeric_limits<int64_t>::min()); it != buckets.end(); ++it) {
    acc.Merge(it->second);
  }
  return acc;
}

nlohmann::json AggregateMerger::Overall() {
  Acc overall;
  for (const auto& [key, buckets] : data_) overall.Merge(InRangeOf(buckets));
  return Render(overall);
}

std::map<std::vector<std::string>, nlohmann::json> AggregateMerger::PerGroup() {
  std::map<std::vector<std::string>, nlohmann::json> out;
  for (const auto& [key, buckets] : data_) {
    Acc acc = InRangeOf(buckets);
    if (acc.agg.count > 0) out[key] = Render(acc);
  }
  return out;
}

uint64_t AggregateMerger::PointsInRange() const {
  uint64_t n = 0;
  for (const auto& [key, buckets] : data_) {
    for (const auto& [b, acc] : buckets) n += InRange(b) ? acc.agg.count : 0;
  }
  return n;
}

std::vector<std::string> AggregateMerger::Warnings() const {
  std::vector<std::string> out;
  if (PointsInRange() > 0) return out;
  const auto& q = spec_.query;
  // Shards that sent points (before `from`, for rolling windows) sent no presence.
  const bool has_series = presence_.series > 0 || !data_.empty();
  if (!has_series) {
    std::string w = "no series for metric " + q.metric();
    if (!presence_.similar_metrics.empty()) {
      w += " (did you mean ";
      size_t i = 0;
      for (const auto& m : presence_.similar_metrics) w += (i++ ? " or " : "") + m;
      w += "?)";
    }
    out.push_back(w);
    return out;
  }
  const bool filtered = q.tags_size() > 0 || q.hosts_size() > 0 || q.datacenters_size() > 0;
  if (filtered && presence_.matching_series == 0 && data_.empty()) {
    out.push_back("no series of metric " + q.metric() + " match the filters (tags, hosts, datacenters); it has " +
                  std::to_string(presence_.series) + " series");
    return out;
  }
  std::string w = spec_.default_range ? "no points in the default range (last 24 h, " +
                                            FormatIso8601(spec_.from_us) + " to " + FormatIso8601(spec_.to_us) + ")"
                                      : "no points between " + FormatIso8601(spec_.from_us) + " and " +
                                            FormatIso8601(spec_.to_us);
  if (presence_.first_us != 0 || presence_.last_us != 0) {
    w += "; the metric has points from " + FormatIso8601(presence_.first_us) + " to " +
         FormatIso8601(presence_.last_us);
    if (filtered) w += " (of the series matching the filters)";
  }
  out.push_back(w);
  return out;
}

Result<nlohmann::json> AggregateMerger::Finish() {
  const auto& q = spec_.query;
  if (!spec_.group_by.empty() && data_.size() > kMaxGroups) {
    return Status(Code::kValidation, "Too many groups",
                  {{"fields", {{{"field", "group_by"},
                                {"error", "more than " + std::to_string(kMaxGroups) +
                                              " groups; filter further or group by fewer fields"}}}},
                   {"max_groups", kMaxGroups}});
  }
  // The windows (start, end) of the answer, per bucket of the merged data.
  auto series_of = [&](const std::map<int64_t, Acc>& buckets) -> std::vector<Ordered> {
    std::vector<Ordered> out;
    if (!spec_.rolling) {
      for (const auto& [start, acc] : buckets) {
        Acc copy = acc;
        nlohmann::json aggs = Render(copy);
        out.push_back({{{"start", FormatIso8601(std::max(start, spec_.from_us))},
                        {"end", FormatIso8601(std::min(start + spec_.window_us, spec_.to_us))},
                        {"aggregations", aggs}},
                       ValueOf(aggs, spec_.order_agg)});
      }
      return out;
    }
    // Rolling: a window ends at every t = from + k * step in [from, to] (as
    // Prometheus evaluates a range query) and covers [t - window, t) in full,
    // reading before `from` as needed: the merge of window/step consecutive
    // step buckets, which the shards anchored at `from`.
    for (int64_t t = spec_.from_us; t <= spec_.to_us; t += spec_.step_us) {
      Acc acc;
      for (auto it = buckets.lower_bound(t - spec_.window_us); it != buckets.end() && it->first < t; ++it) {
        acc.Merge(it->second);
      }
      if (acc.agg.count == 0) continue;
      nlohmann::json aggs = Render(acc);
      out.push_back({{{"start", FormatIso8601(t - spec_.window_us)},
                      {"end", FormatIso8601(t)},
                      {"aggregations", aggs}},
                     ValueOf(aggs, spec_.order_agg)});
    }
    return out;
  };

  nlohmann::json body = {{"metric", q.metric()},
                         {"from", FormatIso8601(spec_.from_us)},
                         {"to", FormatIso8601(spec_.to_us)}};
  // Overall: every group merged, per bucket.
  std::map<int64_t, Acc> overall_buckets;
  for (const auto& [key, buckets] : data_) {
    for (const auto& [b, acc] : buckets) overall_buckets[b].Merge(acc);
  }
  Acc overall = InRangeOf(overall_buckets);
  body["aggregations"] = Render(overall);
  if (spec_.window_us > 0 && spec_.group_by.empty()) {
    auto series = series_of(overall_buckets);
    OrderAndLimit(series, spec_);
    body["series"] = nlohmann::json::array();
    for (auto& s : series) body["series"].push_back(std::move(s.item));
  }

  if (spec_.group_by.empty()) {
    // Seed 001's example: by_datacenter with avg and count.
    nlohmann::json by_dc = nlohmann::json::object();
    for (const auto& [key, buckets] : data_) {
      Acc acc;
      for (const auto& [b, a] : buckets) {
        if (InRange(b)) acc.agg.Merge(a.agg);
      }
      if (acc.agg.count == 0 || key.empty() || key[0].empty()) continue;
      by_dc[key[0]] = {{"avg", *acc.agg.Average()}, {"count", acc.agg.count}};
    }
    body["by_datacenter"] = by_dc;
    return body;
  }

  std::vector<Ordered> groups;
  for (auto& [key, buckets] : data_) {
    Acc acc = InRangeOf(buckets);
    if (acc.agg.count == 0) continue;
    nlohmann::json k = nlohmann::json::object();
    for (size_t i = 0; i < spec_.group_by.size() && i < key.size(); ++i) k[spec_.group_by[i]] = key[i];
    nlohmann::json aggs = Render(acc);
    nlohmann::json item = {{"key", k}, {"aggregations", aggs}};
    if (spec_.window_us > 0) {
      auto series = series_of(buckets);
      item["series"] = nlohmann::json::array();
      for (auto& s : series) item["series"].push_back(std::move(s.item));
    }
    groups.push_back({std::move(item), ValueOf(aggs, spec_.order_agg)});
  }
  OrderAndLimit(groups, spec_);
  body["groups"] = nlohmann::json::array();
  if (spec_.group_by.size() == 1) {
    nlohmann::json by = nlohmann::json::object();
    for (const auto& g : groups) by[g.item["key"][spec_.group_by[0]].get<std::string>()] = g.item["aggregations"];
    body["by_" + spec_.group_by[0]] = by;
  }
  for (auto& g : groups) body["groups"].push_back(std::move(g.item));
  return body;
}

}  // namespace rm
