#include "src/query/aggregation.h"

#include "src/query/aggregate_spec.h"

#include <algorithm>

namespace rm {

Status ValidateAggregations(const std::vector<std::string>& names, const std::string& field) {
  nlohmann::json fields = nlohmann::json::array();
  for (const auto& n : names) {
    if (std::find(kSimpleAggregations.begin(), kSimpleAggregations.end(), n) == kSimpleAggregations.end() &&
        !PercentileOf(n)) {
      fields.push_back({{"field", field}, {"error", "unknown aggregation '" + n +
                                                        "': use avg, min, max, sum, count or pNN (e.g. p95)"}});
    }
  }
  if (names.empty()) fields.push_back({{"field", field}, {"error", "must name at least one aggregation"}});
  if (fields.empty()) return Status::Ok();
  return Status(Code::kValidation, "Invalid request parameters", {{"fields", fields}});
}

nlohmann::json RenderAggregations(const PartialAggregate& agg, const std::vector<std::string>& names) {
  nlohmann::json out = nlohmann::json::object();
  for (const auto& n : names) {
    if (n == "count") {
      out[n] = agg.count;
    } else if (n == "sum") {
      out[n] = agg.sum;
    } else if (agg.count == 0) {
      out[n] = nullptr;
    } else if (n == "avg") {
      out[n] = *agg.Average();
    } else if (n == "min") {
      out[n] = agg.min;
    } else if (n == "max") {
      out[n] = agg.max;
    }
  }
  return out;
}

}  // namespace rm
