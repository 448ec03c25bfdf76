#include "src/control/query_params.h"

#include "src/common/time_util.h"
#include "src/wire/point.h"

#include <nlohmann/json.hpp>

namespace rm {

Result<AnalyticsParams> ParseAnalyticsParams(const HttpRequest& req) {
  AnalyticsParams p;
  nlohmann::json errors = nlohmann::json::array();
  if (const std::string* m = req.Param("metric"); m && !m->empty()) {
    if (!IsValidName(*m)) {
      errors.push_back({{"field", "metric"}, {"error", "must match pattern ^[a-zA-Z0-9_.-]+$"}});
    } else {
      p.metric = *m;
    }
  }
  if (const std::string* k = req.Param("partition_key"); k && !k->empty()) p.partition_key = *k;
  std::optional<EpochUnit> precision;
  if (const std::string* u = req.Param("precision"); u && !u->empty()) {
    precision = ParseEpochUnit(*u);
    if (!precision) errors.push_back({{"field", "precision"}, {"error", std::string(kPrecisionError)}});
  }
  for (const char* name : {"from", "to"}) {
    const std::string* v = req.Param(name);
    if (!v || v->empty()) continue;
    auto ts = ParseTimestamp(*v, precision);
    if (!ts) {
      errors.push_back({{"field", name}, {"error", BadTimestampError(*v, precision)}});
    } else if (std::string(name) == "from") {
      p.from_us = ts;
    } else {
      p.to_us = ts;
    }
  }
  if (const std::string* c = req.Param("consistency"); c && !c->empty()) {
    if (auto level = ParseConsistency(*c)) {
      p.consistency = *level;
    } else {
      errors.push_back({{"field", "consistency"}, {"error", "must be one of: none, weak, strong"}});
    }
  }
  if (p.from_us && p.to_us && *p.from_us > *p.to_us) {
    errors.push_back({{"field", "from"}, {"error", "must not be after to"}});
  }
  if (!errors.empty()) {
    return Status(Code::kValidation, "Invalid request parameters", {{"fields", errors}});
  }
  return p;
}

}  // namespace rm
