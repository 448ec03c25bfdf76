// libFuzzer target: query strings as the control node's read endpoints receive
// them. Input: the part of the target after '?', e.g.
//   metric=cpu&from=2024-01-20T00:00:00Z&window=1h&agg=avg,p95&hosts=web-*
//
// Runs ParseQueryString (src/net/http_types.h), then GET /aggregate's
// ParseAggregateParams (src/query/aggregate_spec.h) and GET /analytics'
// ParseAnalyticsParams (src/control/query_params.h); errors are rendered as the
// reply (ErrorResponse). Every decoded value also goes through the time parsers
// (src/common/time_util.h: ISO 8601, epoch times in every unit, durations) and,
// as a pattern and as a text, the glob matcher the workers apply to hosts= /
// datacenters= (src/common/glob.h).
#include "src/common/glob.h"
#include "src/common/time_util.h"
#include "src/control/query_params.h"
#include "src/net/error_response.h"
#include "src/net/http_types.h"
#include "src/query/aggregate_spec.h"

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <optional>
#include <string>

namespace {

constexpr int64_t kNow = 1705764600LL * 1000000;  // 2024-01-20T15:30:00Z
// 0001-01-01T00:00:00Z and 9999-12-31T23:59:59.999999Z: what FormatIso8601 can
// write so that ParseIso8601 reads it back.
constexpr int64_t kMinFormattable = -62135596800LL * 1000000;
constexpr int64_t kMaxFormattable = 253402300800LL * 1000000 - 1;

void Check(bool ok, const char* what) {
  if (!ok) {
    std::fprintf(stderr, "fuzz_query_params: invariant broken: %s\n", what);
    std::abort();
  }
}

void RenderError(const rm::Status& status) {
  Check(status.code() == rm::Code::kValidation, "parameter error is not a VALIDATION_ERROR");
  rm::HttpResponse reply = rm::ErrorResponse(status);
  Check(reply.status == 400, "parameter error reply is not a 400");
}

void TimeParsers(const std::string& value) {
  if (auto ts = rm::ParseIso8601(value)) {
    if (*ts >= kMinFormattable && *ts <= kMaxFormattable) {
      auto back = rm::ParseIso8601(rm::FormatIso8601(*ts));
      Check(back && *back == *ts, "FormatIso8601 does not read back as the same instant");
    }
  }
  // Epoch times: inside [1970, 9999] in every unit, and a smaller unit never
  // reads the same digits as a later instant.
  std::optional<int64_t> previous;
  for (auto unit : {rm::EpochUnit::kSeconds, rm::EpochUnit::kMillis, rm::EpochUnit::kMicros,
                    rm::EpochUnit::kNanos}) {
    auto ts = rm::ParseEpoch(value, unit);
    if (ts) Check(*ts >= 0 && *ts <= kMaxFormattable, "epoch time out of range");
    if (previous) Check(ts && *ts <= *previous, "a smaller epoch unit reads a later instant");
    previous = ts;
  }
  if (!rm::ParseTimestamp(value, std::nullopt)) {
    Check(!rm::BadTimestampError(value, std::nullopt).empty(), "timestamp error without a message");
  }
  if (auto d = rm::ParseDuration(value)) {
    Check(*d > 0 && *d <= 100LL * 365 * 86400 * 1000000, "duration out of range");
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string query(reinterpret_cast<const char*>(data), size);
  rm::HttpRequest req;
  req.method = "GET";
  req.path = "/aggregate";
  req.target = "/aggregate?" + query;
  req.query = rm::ParseQueryString(query);

  auto spec = rm::ParseAggregateParams(req.query, kNow);
  if (spec.ok()) {
    Check(spec->query.from_us() < spec->query.to_us(), "empty time range accepted");
    Check(!spec->aggs.empty(), "no aggregation");
    if (spec->window_us > 0) {
      const int64_t unit = spec->query.bucket_us();
      Check(unit > 0, "window without a bucket size");
      Check((spec->query.to_us() - spec->query.from_us()) / unit <= static_cast<int64_t>(rm::kMaxBuckets),
            "more buckets than kMaxBuckets");
    }
    for (const auto& a : spec->aggs) {
      if (auto p = rm::PercentileOf(a)) Check(*p >= 0 && *p <= 1, "percentile out of [0, 1]");
    }
    // The workers' filter: every hosts= pattern against every decoded value.
    for (const auto& pattern : spec->query.hosts()) {
      for (const auto& [k, v] : req.query) {
        rm::GlobMatch(pattern, v);
        rm::GlobMatch(pattern, k);
      }
      Check(rm::GlobMatch(pattern, pattern) || pattern.find_first_of("*?") != std::string::npos,
            "a literal pattern does not match itself");
    }
  } else {
    RenderError(spec.status());
  }

  auto analytics = rm::ParseAnalyticsParams(req);
  if (analytics.ok()) {
    if (analytics->from_us && analytics->to_us)
      Check(*analytics->from_us <= *analytics->to_us, "from after to");
  } else {
    RenderError(analytics.status());
  }

  for (const auto& [k, v] : req.query) {
    TimeParsers(k);
    TimeParsers(v);
    Check(rm::GlobMatch("*", v), "'*' does not match everything");
    Check(rm::GlobMatch(v, v) || v.find_first_of("*?") != std::string::npos,
          "a literal pattern does not match itself");
    rm::GlobMatch(v, k);
  }
  // The raw input as a pattern against itself exercises long, star-heavy patterns.
  rm::GlobMatch(query, query);
  return 0;
}
