// Parses insert request bodies into points, validating every field.
//
// Accepted bodies (by Content-Type):
//   application/json (default)  one point object | [point, ...] | {"points": [point, ...]}
//   application/x-ndjson        one point object per line (blank lines ignored)
//   application/x-protobuf      raftmetrics.v1.InsertRequest
// Bodies read as JSON (application/json, none, text/plain,
// application/x-www-form-urlencoded) that are not one JSON document but whose
// first non-blank line is a whole JSON object and another non-blank line follows
// are read as NDJSON: clients forget its Content-Type. Every other malformed
// JSON body's error has a details.hint naming application/x-ndjson.
// A point object (seed 000 / seed 001 field names both accepted):
//   partition_key  string        required on /insert; /metrics defaults it to the series
//   key | metric   string        ^[a-zA-Z0-9_.-]+$; required on /metrics, "default" on /insert
//   value          number        finite
//   timestamp      string|number ISO 8601 or an epoch time (ParseTimestamp in
//                                time_util.h); optional
//   tags | metadata object       string values; keys ^[a-zA-Z0-9_.-]+$
// A protobuf Point's `timestamp` string is read like the JSON one; its
// `timestamp_us` is used when the string is empty.
// Errors: malformed JSON/protobuf -> kInvalidRequest; field problems ->
// kValidation with details.fields = [{"field": "points[3].value", "error": ...}],
// listing every bad field (up to a cap). Nothing is partially accepted.
#pragma once

#include "proto/raftmetrics.pb.h"
#include "src/common/status.h"
#include "src/wire/point.h"

#include <string_view>
#include <vector>

namespace rm {

enum class InsertDialect {
  kInsert,   // seed 000 /insert: partition_key required
  kMetrics,  // seed 001 /metrics: key required, partitioned by series
};

// A parsed request: validated points grouped into columnar series (each series
// described once, in order of first appearance; points keep their input order
// within a series). Metric and partition_key are always set ("default" metric on
// /insert; the series key on /metrics); timestamps are 0 where the receiver
// fills in "now". Columnar protobuf series are kept as they came (no copies).
struct ParsedInsert {
  std::vector<raftmetrics::v1::SeriesPoints> series;
  bool is_batch = false;  // a single point object (or one-point protobuf) is not a batch

  size_t PointCount() const;
  // The points one by one, in series order (for tests and small consumers).
  std::vector<ParsedPoint> Flatten() const;
};

// `precision` is the request's `precision` parameter, the unit of epoch
// timestamps (ParseEpochUnit); empty: each one's unit follows from its
// magnitude. A precision it does not know is a kValidation error on field
// "precision", whatever the body.
Result<ParsedInsert> ParseInsertBody(std::string_view body, std::string_view content_type,
                                     InsertDialect dialect, std::string_view precision = {});

// Limits applied to every point.
inline constexpr size_t kMaxNameLength = 256;
inline constexpr size_t kMaxPartitionKeyLength = 1024;
inline constexpr size_t kMaxTagValueLength = 1024;
inline constexpr size_t kMaxTagsPerPoint = 64;
inline constexpr size_t kMaxReportedErrors = 100;

}  // namespace rm
