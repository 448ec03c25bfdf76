#include "src/wire/point_parser.h"

#include "proto/raftmetrics.pb.h"
#include "src/common/time_util.h"

#include <simdjson.h>

#include <algorithm>
#include <cmath>

namespace rm {
namespace {

// Collects field errors, capped so that a million bad points make a small reply.
class Errors {
 public:
  void Add(const std::string& field, const std::string& error) {
    ++total_;
    if (fields_.size() < kMaxReportedErrors) fields_.push_back({{"field", field}, {"error", error}});
  }
  bool empty() const { return total_ == 0; }
  Status ToStatus() const {
    nlohmann::json details = {{"fields", fields_}};
    if (total_ > fields_.size()) details["total_errors"] = total_;
    return Status(Code::kValidation, "Invalid request parameters", std::move(details));
  }

 private:
  nlohmann::json fields_ = nlohmann::json::array();
  size_t total_ = 0;
};

std::string FieldName(const std::string& prefix, const char* field) {
  return prefix.empty() ? std::string(field) : prefix + "." + field;
}

// Checks and normalises one point (shared by the JSON and protobuf paths).
void Finish(ParsedPoint& p, bool has_partition_key, bool has_metric, InsertDialect dialect,
            const std::string& prefix, Errors& errors) {
  if (!has_metric) {
    if (dialect == InsertDialect::kMetrics) {
      errors.Add(FieldName(prefix, "key"), "is required");
    } else {
      p.metric = "default";
    }
  } else if (!IsValidName(p.metric) || p.metric.size() > kMaxNameLength) {
    errors.Add(FieldName(prefix, "key"), "must match pattern ^[a-zA-Z0-9_.-]+$ (at most 256 characters)");
  }
  std::sort(p.tags.begin(), p.tags.end());
  for (size_t i = 0; i < p.tags.size(); ++i) {
    const auto& [k, v] = p.tags[i];
    if (!IsValidName(k) || k.size() > kMaxNameLength) {
      errors.Add(FieldName(prefix, "tags") + "." + k, "tag key must match pattern ^[a-zA-Z0-9_.-]+$");
    } else if (i > 0 && p.tags[i - 1].first == k) {
      errors.Add(FieldName(prefix, "tags") + "." + k, "duplicate tag key");
    }
    if (v.size() > kMaxTagValueLength) {
      errors.Add(FieldName(prefix, "tags") + "." + k, "tag value longer than 1024 bytes");
    }
  }
  if (p.tags.size() > kMaxTagsPerPoint) errors.Add(FieldName(prefix, "tags"), "more than 64 tags");
  if (!std::isfinite(p.value)) errors.Add(FieldName(prefix, "value"), "must be a finite number");
  if (has_partition_key) {
    if (p.partition_key.empty()) {
      errors.Add(FieldName(prefix, "partition_key"), "must be a non-empty string");
    } else if (p.partition_key.size() > kMaxPartitionKeyLength) {
      errors.Add(FieldName(prefix, "partition_key"), "longer than 1024 bytes");
    }
  } else if (dialect == InsertDialect::kInsert) {
    errors.Add(FieldName(prefix, "partition_key"), "is required");
  } else {
    p.partition_key = SeriesKey(p.metric, p.tags);
  }
}

void ParseTags(simdjson::dom::element el, const std::string& field, ParsedPoint& p, Errors& errors) {
  simdjson::dom::object obj;
  if (el.get_object().get(obj)) {
    errors.Add(field, "must be an object of string values");
    return;
  }
  for (auto [k, v] : obj) {
    std::string_view sv;
    if (v.get_string().get(sv)) {
      errors.Add(field + "." + std::string(k), "tag value must be a string");
      continue;
    }
    p.tags.emplace_back(std::string(k), std::string(sv));
  }
}

void ParseJsonPoint(simdjson::dom::element el, const std::string& prefix, InsertDialect dialect,
                    std::vector<ParsedPoint>& out, Errors& errors) {
  simdjson::dom::object obj;
  if (el.get_object().get(obj)) {
    errors.Add(prefix.empty() ? "body" : prefix, "must be a JSON object");
    return;
  }
  ParsedPoint p;
  bool has_pk = false, has_metric = false, has_value = false;
  for (auto [key, v] : obj) {
    if (key == "partition_key") {
      std::string_view sv;
      if (v.get_string().get(sv)) {
        errors.Add(FieldName(prefix, "partition_key"), "must be a string");
      } else {
        p.partition_key = std::string(sv);
      }
      has_pk = true;
    } else if (key == "key" || key == "metric") {
      std::string_view sv;
      if (v.get_string().get(sv)) {
        errors.Add(FieldName(prefix, "key"), "must be a string");
        has_metric = true;
        p.metric = "";
        continue;
      }
      p.metric = std::string(sv);
      has_metric = true;
    } else if (key == "value") {
      has_value = true;
      double d;
      if (v.is_double() || v.is_int64() || v.is_uint64()) {
        if (!v.get_double().get(d)) p.value = d;
      } else {
        errors.Add(FieldName(prefix, "value"), "must be a number");
      }
    } else if (key == "timestamp") {
      std::string_view sv;
      if (v.is_null()) continue;
      if (v.get_string().get(sv)) {
        errors.Add(FieldName(prefix, "timestamp"), "must be a valid ISO 8601 timestamp");
        continue;
      }
      auto ts = ParseIso8601(sv);
      if (!ts) {
        errors.Add(FieldName(prefix, "timestamp"), "must be a valid ISO 8601 timestamp");
      } else if (*ts == 0) {
        p.timestamp_us = 1;  // 0 means "unset" internally; the epoch itself is kept 1 us later
      } else {
        p.timestamp_us = *ts;
      }
    } else if (key == "tags" || key == "metadata") {
      if (!v.is_null()) ParseTags(v, FieldName(prefix, std::string(key).c_str()), p, errors);
    }
  }
  if (!has_value) errors.Add(FieldName(prefix, "value"), "is required");
  Finish(p, has_pk, has_metric, dialect, prefix, errors);
  out.push_back(std::move(p));
}

Result<ParsedInsert> ParseJson(std::string_view body, InsertDialect dialect, bool ndjson) {
  ParsedInsert result;
  Errors errors;
  simdjson::dom::parser parser;
  if (ndjson) {
    result.is_batch = true;
    size_t line_no = 0, pos = 0;
    while (pos < body.size()) {
      size_t nl = body.find('\n', pos);
      if (nl == std::string_view::npos) nl = body.size();
      std::string_view line = body.substr(pos, nl - pos);
      pos = nl + 1;
      if (line.find_first_not_of(" \t\r") == std::string_view::npos) {
        ++line_no;
        continue;
      }
      simdjson::dom::element el;
      if (parser.parse(line.data(), line.size()).get(el)) {
        return Status(Code::kInvalidRequest, "Malformed JSON",
                      {{"line", line_no + 1}, {"reason", "invalid JSON on this NDJSON line"}});
      }
      ParseJsonPoint(el, "points[" + std::to_string(result.points.size()) + "]", dialect,
                     result.points, errors);
      ++line_no;
    }
  } else {
    simdjson::dom::element root;
    auto err = parser.parse(body.data(), body.size()).get(root);
    if (err) {
      return Status(Code::kInvalidRequest, "Malformed JSON", {{"reason", simdjson::error_message(err)}});
    }
    simdjson::dom::array arr;
    bool is_array = !root.get_array().get(arr);
    if (!is_array && root.is_object()) {
      simdjson::dom::element points;
      if (!root["points"].get(points)) {
        if (points.get_array().get(arr)) {
          errors.Add("points", "must be an array");
          return errors.ToStatus();
        }
        is_array = true;
      }
    }
    if (is_array) {
      result.is_batch = true;
      size_t i = 0;
      for (auto el : arr) {
        ParseJsonPoint(el, "points[" + std::to_string(i++) + "]", dialect, result.points, errors);
      }
    } else {
      ParseJsonPoint(root, "", dialect, result.points, errors);
    }
  }
  if (result.points.empty() && errors.empty()) errors.Add("points", "must contain at least one point");
  if (!errors.empty()) return errors.ToStatus();
  return result;
}

Result<ParsedInsert> ParseProtobuf(std::string_view body, InsertDialect dialect) {
  raftmetrics::v1::InsertRequest req;
  if (!req.ParseFromArray(body.data(), static_cast<int>(body.size()))) {
    return Status(Code::kInvalidRequest, "Malformed protobuf",
                  {{"reason", "body is not a raftmetrics.v1.InsertRequest"}});
  }
  ParsedInsert result;
  Errors errors;
  result.is_batch = !(req.points_size() == 1 && req.series_size() == 0);
  auto convert_ts = [&](const std::string& text, int64_t us, const std::string& field) -> int64_t {
    if (!text.empty()) {
      auto ts = ParseIso8601(text);
      if (!ts) {
        errors.Add(field, "must be a valid ISO 8601 timestamp");
        return 0;
      }
      return *ts == 0 ? 1 : *ts;
    }
    return us;
  };
  for (int i = 0; i < req.points_size(); ++i) {
    const auto& pt = req.points(i);
    std::string prefix = result.is_batch ? "points[" + std::to_string(i) + "]" : "";
    ParsedPoint p;
    p.metric = pt.metric();
    p.partition_key = pt.partition_key();
    p.value = pt.value();
    p.timestamp_us = convert_ts(pt.timestamp(), pt.timestamp_us(), FieldName(prefix, "timestamp"));
    for (const auto& [k, v] : pt.tags()) p.tags.emplace_back(k, v);
    Finish(p, !pt.partition_key().empty() || dialect == InsertDialect::kInsert, !pt.metric().empty(),
           dialect, prefix, errors);
    result.points.push_back(std::move(p));
  }
  result.series.reserve(req.series_size());
  for (int i = 0; i < req.series_size(); ++i) {
    auto& s = *req.mutable_series(i);
    std::string prefix = "series[" + std::to_string(i) + "]";
    if (s.timestamps_us_size() != s.values_size()) {
      errors.Add(prefix + ".values", "must have as many entries as timestamps_us");
      continue;
    }
    if (s.values_size() == 0) {
      errors.Add(prefix + ".values", "must contain at least one value");
      continue;
    }
    ParsedPoint head;  // validates the series description once
    head.metric = s.metric();
    head.partition_key = s.partition_key();
    for (const auto& [k, v] : s.tags()) head.tags.emplace_back(k, v);
    Finish(head, !s.partition_key().empty() || dialect == InsertDialect::kInsert, !s.metric().empty(),
           dialect, prefix, errors);
    for (int j = 0; j < s.values_size(); ++j) {
      if (!std::isfinite(s.values(j))) {
        errors.Add(prefix + ".values[" + std::to_string(j) + "]", "must be a finite number");
      }
    }
    s.set_metric(head.metric);
    s.set_partition_key(head.partition_key);
    result.series.push_back(std::move(s));
  }
  if (result.points.empty() && result.series.empty() && errors.empty()) {
    errors.Add("points", "must contain at least one point");
  }
  if (!errors.empty()) return errors.ToStatus();
  return result;
}

}  // namespace

Result<ParsedInsert> ParseInsertBody(std::string_view body, std::string_view content_type,
                                     InsertDialect dialect) {
  std::string ct(content_type.substr(0, content_type.find(';')));
  while (!ct.empty() && ct.back() == ' ') ct.pop_back();
  for (auto& c : ct) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  if (ct == "application/x-protobuf" || ct == "application/protobuf") return ParseProtobuf(body, dialect);
  if (ct == "application/x-ndjson" || ct == "application/ndjson") return ParseJson(body, dialect, true);
  // curl -d sends application/x-www-form-urlencoded by default: read it as JSON too.
  if (ct.empty() || ct == "application/json" || ct == "text/plain" ||
      ct == "application/x-www-form-urlencoded") {
    return ParseJson(body, dialect, false);
  }
  return Status(Code::kInvalidRequest, "Unsupported Content-Type",
                {{"content_type", std::string(content_type)},
                 {"supported", {"application/json", "application/x-ndjson", "application/x-protobuf"}}});
}

}  // namespace rm
