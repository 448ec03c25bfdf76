// Parsing and validation of query-string parameters of the control node's read
// endpoints. Every bad field is reported at once (VALIDATION_ERROR, seed 001).
#pragma once

#include "src/common/status.h"
#include "src/net/http_types.h"
#include "src/query/aggregate_spec.h"

#include <cstdint>
#include <optional>
#include <string>

namespace rm {

// GET /analytics: metric, partition_key, from, to (all optional; both ends
// inclusive; ISO 8601 or epoch times, see ParseTimestamp), precision (the unit
// of epoch from/to, see ParseEpochUnit), consistency (none | weak | strong).
struct AnalyticsParams {
  std::string metric;
  std::string partition_key;
  std::optional<int64_t> from_us;
  std::optional<int64_t> to_us;
  ReadConsistency consistency = ReadConsistency::kWeak;
};

Result<AnalyticsParams> ParseAnalyticsParams(const HttpRequest& req);

}  // namespace rm
