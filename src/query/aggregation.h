// The simple aggregations of the foundation (avg, min, max, sum, count):
// validation of names and rendering of a merged PartialAggregate as JSON.
#pragma once

#include "src/common/status.h"
#include "src/query/partial_aggregate.h"

#include <nlohmann/json.hpp>

#include <string>
#include <vector>

namespace rm {

inline const std::vector<std::string> kSimpleAggregations = {"avg", "min", "max", "sum", "count"};

// Checks every name; the error lists the bad ones.
Status ValidateAggregations(const std::vector<std::string>& names, const std::string& field);
// {"avg": 1.5, "count": 2, ...}; avg/min/max/sum are null when count is 0 (sum is 0).
nlohmann::json RenderAggregations(const PartialAggregate& agg, const std::vector<std::string>& names);

}  // namespace rm
