#include "src/query/aggregate_spec.h"

#include "src/common/time_util.h"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <cstdlib>

namespace rm {
namespace {

std::vector<std::string> SplitComma(const std::string& text) {
  std::vector<std::string> out;
  size_t pos = 0;
  while (pos <= text.size()) {
    size_t c = text.find(',', pos);
    if (c == std::string::npos) c = text.size();
    std::string item = text.substr(pos, c - pos);
    item.erase(0, item.find_first_not_of(' '));
    item.erase(item.find_last_not_of(' ') + 1);
    out.push_back(item);
    pos = c + 1;
  }
  return out;
}

bool ValidName(const std::string& s) {
  if (s.empty() || s.size() > 256) return false;
  for (char c : s) {
    if (!(std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '.' || c == '-')) return false;
  }
  return true;
}

}  // namespace

std::optional<double> PercentileOf(const std::string& agg) {
  if (agg.size() < 2 || agg[0] != 'p') return std::nullopt;
  const std::string num = agg.substr(1);
  size_t dots = 0;
  for (char c : num) {
    if (c == '.') {
      ++dots;
    } else if (!std::isdigit(static_cast<unsigned char>(c))) {
      return std::nullopt;
    }
  }
  if (dots > 1 || num.front() == '.' || num.back() == '.') return std::nullopt;
  double v = std::strtod(num.c_str(), nullptr);
  if (v < 0 || v > 100) return std::nullopt;
  return v / 100.0;
}

std::optional<ReadConsistency> ParseConsistency(const std::string& text) {
  if (text == "none") return ReadConsistency::kNone;
  if (text == "weak") return ReadConsistency::kWeak;
  if (text == "strong") return ReadConsistency::kStrong;
  return std::nullopt;
}

Result<AggregateSpec> ParseAggregateParams(const std::map<std::string, std::string>& params, int64_t now_us) {
  AggregateSpec spec;
  nlohmann::json errors = nlohmann::json::array();
  auto error = [&](const std::string& field, const std::string& message) {
    errors.push_back({{"field", field}, {"error", message}});
  };
  auto get = [&](const char* name) -> const std::string* {
    auto it = params.find(name);
    return it == params.end() ? nullptr : &it->second;
  };
  static const std::vector<std::string> kKnown = {
      "metric", "from", "to", "window", "rolling", "step", "tags", "hosts", "datacenters", "agg",
      "group_by", "order_by", "limit", "exact", "partial", "consistency", "precision"};
  for (const auto& [k, _] : params) {
    if (std::find(kKnown.begin(), kKnown.end(), k) == kKnown.end()) error(k, "unknown parameter");
  }

  auto& q = spec.query;
  if (const auto* m = get("metric"); !m || m->empty()) {
    error("metric", "is required");
  } else if (!ValidName(*m)) {
    error("metric", "must match pattern ^[a-zA-Z0-9_.-]+$");
  } else {
    q.set_metric(*m);
  }

  std::optional<EpochUnit> precision;
  if (const auto* u = get("precision"); u && !u->empty()) {
    precision = ParseEpochUnit(*u);
    if (!precision) error("precision", std::string(kPrecisionError));
  }
  std::optional<int64_t> from, to;
  for (const char* name : {"from", "to"}) {
    const auto* v = get(name);
    if (!v) continue;
    auto ts = ParseTimestamp(*v, precision);
    if (!ts) {
      error(name, BadTimestampError(*v, precision));
    } else {
      (std::string(name) == "from" ? from : to) = ts;
    }
  }
  const int64_t kDay = 86400LL * 1000000;
  if (!to) to = from ? *from + kDay : now_us;
  if (!from) from = *to - kDay;
  if (*from >= *to) error("from", "must be before to");
  spec.from_us = *from;
  spec.to_us = *to;
  spec.default_range = !get("from") && !get("to");
  q.set_describe_when_empty(true);
  q.set_from_us(*from);
  q.set_to_us(*to);

  if (const auto* w = get("window")) {
    auto d = ParseDuration(*w);
    if (!d) {
      error("window", "must be a duration like 30s, 1m, 5m, 1h, 1d");
    } else {
      spec.window_us = *d;
    }
  }
  if (const auto* r = get("rolling")) {
    if (*r == "true" || *r == "1") {
      spec.rolling = true;
    } else if (*r != "false" && *r != "0") {
      error("rolling", "must be true or false");
    }
  }
  spec.step_us = 60LL * 1000000;
  if (const auto* s = get("step")) {
    auto d = ParseDuration(*s);
    if (!d) {
      error("step", "must be a duration like 30s, 1m, 5m, 1h, 1d");
    } else {
      spec.step_us = *d;
    }
    if (!spec.rolling) error("step", "only applies with rolling=true");
  }
  if (spec.rolling) {
    if (spec.window_us == 0) {
      error("rolling", "needs a window");
    } else if (spec.window_us % spec.step_us != 0) {
      error("step", "window must be a whole multiple of step");
    }
  }
  const bool rolling_ok = spec.rolling && spec.window_us > 0 && spec.step_us > 0 && spec.window_us % spec.step_us == 0;
  if (rolling_ok) {
    // A window ending at t covers [t - window, t) in full, also before `from`:
    // the shards read from `from - window`, in step buckets anchored at `from`.
    q.set_from_us(*from - spec.window_us);
    q.set_bucket_anchor_us(*from);
  }
  if (spec.window_us > 0 && *from < *to) {
    const int64_t unit = spec.rolling ? spec.step_us : spec.window_us;
    if ((*to - q.from_us()) / unit > static_cast<int64_t>(kMaxBuckets)) {
      error(spec.rolling ? "step" : "window",
            "more than " + std::to_string(kMaxBuckets) + " buckets in the range" +
                (spec.rolling ? " and the window before it" : "") + "; use a larger one");
    }
  }
  q.set_bucket_us(spec.window_us > 0 ? (spec.rolling ? spec.step_us : spec.window_us) : 0);

  if (const auto* t = get("tags"); t && !t->empty()) {
    for (const auto& item : SplitComma(*t)) {
      size_t colon = item.find(':');
      if (colon == std::string::npos || colon == 0 || !ValidName(item.substr(0, colon))) {
        error("tags", "must be key:value pairs separated by commas (got '" + item + "')");
        continue;
      }
      auto* f = q.add_tags();
      f->set_key(item.substr(0, colon));
      f->set_value(item.substr(colon + 1));
    }
  }
  for (const char* name : {"hosts", "datacenters"}) {
    const auto* v = get(name);
    if (!v || v->empty()) continue;
    for (const auto& item : SplitComma(*v)) {
      if (item.empty()) {
        error(name, "must be a comma-separated list without empty entries");
        continue;
      }
      if (std::string(name) == "hosts") {
        q.add_hosts(item);
      } else {
        q.add_datacenters(item);
      }
    }
  }

  spec.aggs = {"avg", "min", "max", "count", "p95"};
  if (const auto* a = get("agg")) {
    spec.aggs.clear();
    for (const auto& item : SplitComma(*a)) {
      static const std::vector<std::string> kSimple = {"avg", "min", "max", "sum", "count"};
      if (std::find(kSimple.begin(), kSimple.end(), item) == kSimple.end() && !PercentileOf(item)) {
        error("agg", "unknown aggregation '" + item + "': use avg, min, max, sum, count or pNN (e.g. p95, p99.9)");
        continue;
      }
      if (std::find(spec.aggs.begin(), spec.aggs.end(), item) == spec.aggs.end()) spec.aggs.push_back(item);
    }
    if (spec.aggs.empty()) error("agg", "must name at least one aggregation");
  }

  if (const auto* g = get("group_by"); g && !g->empty()) {
    for (const auto& item : SplitComma(*g)) {
      if (!ValidName(item)) {
        error("group_by", "must be tag keys matching ^[a-zA-Z0-9_.-]+$ (got '" + item + "')");
      } else if (std::find(spec.group_by.begin(), spec.group_by.end(), item) == spec.group_by.end()) {
        spec.group_by.push_back(item);
      }
    }
  }
  // Without group_by the answer also carries by_datacenter (seed 001's example).
  for (const auto& f : spec.group_by.empty() ? std::vector<std::string>{"datacenter"} : spec.group_by) {
    q.add_group_by(f);
  }

  if (const auto* o = get("order_by"); o && !o->empty()) {
    std::string field = *o, dir = "desc";
    size_t colon = o->find(':');
    if (colon != std::string::npos) {
      field = o->substr(0, colon);
      dir = o->substr(colon + 1);
    }
    if (dir != "asc" && dir != "desc") error("order_by", "direction must be asc or desc");
    spec.order_desc = dir == "desc";
    if (field == "value") {
      if (!spec.aggs.empty()) spec.order_agg = spec.aggs.front();
    } else if (std::find(spec.aggs.begin(), spec.aggs.end(), field) != spec.aggs.end()) {
      spec.order_agg = field;
    } else {
      error("order_by", "must be value or one of the requested aggregations, with :asc or :desc");
    }
  }
  if (const auto* l = get("limit"); l) {
    char* end = nullptr;
    long long v = std::strtoll(l->c_str(), &end, 10);
    if (l->empty() || *end != '\0' || v < 0) {
      error("limit", "must be a non-negative integer");
    } else {
      spec.limit = static_cast<uint64_t>(v);
    }
  }
  if (const auto* e = get("exact")) {
    if (*e == "true" || *e == "1") {
      spec.exact = true;
    } else if (*e != "false" && *e != "0") {
      error("exact", "must be true or false");
    }
  }
  if (const auto* c = get("consistency")) {
    if (auto level = ParseConsistency(*c)) {
      spec.consistency = *level;
      q.set_strong_read(*level == ReadConsistency::kStrong);
    } else {
      error("consistency", "must be one of: none, weak, strong");
    }
  }
  if (const auto* p = get("partial")) {
    if (*p == "deny") {
      spec.deny_partial = true;
    } else if (*p != "allow") {
      error("partial", "must be allow or deny");
    }
  }
  bool percentiles = false;
  for (const auto& a : spec.aggs) percentiles = percentiles || PercentileOf(a).has_value();
  q.set_want_sketch(percentiles && !spec.exact);
  q.set_want_values(percentiles && spec.exact);
  const bool min_max = std::find(spec.aggs.begin(), spec.aggs.end(), "min") != spec.aggs.end() ||
                       std::find(spec.aggs.begin(), spec.aggs.end(), "max") != spec.aggs.end();
  q.set_skip_min_max(!min_max && !percentiles);  // sketch estimates are clamped to [min, max]
  q.set_max_values(kMaxExactPoints);
  q.set_max_groups(kMaxGroups);

  if (!errors.empty()) return Status(Code::kValidation, "Invalid request parameters", {{"fields", errors}});
  return spec;
}

}  // namespace rm
