#include "src/wire/point_parser.h"

#include "proto/raftmetrics.pb.h"
#include "src/common/time_util.h"

#include <simdjson.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <mutex>
#include <optional>

using namespace std::string_view_literals;
#include <unordered_map>

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
  size_t total() const { return total_; }
  Status ToStatus() const {
    nlohmann::json details = {{"fields", fields_}};
    if (total_ > fields_.size()) details["total_errors"] = total_;
    return Status(Code::kValidation, "Invalid request parameters", std::move(details));
  }

 private:
  nlohmann::json fields_ = nlohmann::json::array();
  size_t total_ = 0;
};

// Where a point sits in the request, for error messages; rendered only on error
// so that the happy path builds no strings.
struct PointPath {
  const char* list = nullptr;  // "points", "series", or nullptr for a single point
  size_t index = 0;

  std::string Field(const char* field) const {
    if (!list) return field;
    return std::string(list) + "[" + std::to_string(index) + "]." + field;
  }
  std::string Self() const {
    return list ? std::string(list) + "[" + std::to_string(index) + "]" : "body";
  }
};

// Checks and normalises one point (shared by the JSON and protobuf paths).
// For /metrics without an explicit partition key, the key (the series) is left
// empty here and derived once per new series by SeriesAccumulator.
void Finish(ParsedPoint& p, bool has_partition_key, bool has_metric, InsertDialect dialect,
            const PointPath& path, Errors& errors) {
  if (!has_metric) {
    if (dialect == InsertDialect::kMetrics) {
      errors.Add(path.Field("key"), "is required");
    } else {
      p.metric = "default";
    }
  } else if (!IsValidName(p.metric) || p.metric.size() > kMaxNameLength) {
    errors.Add(path.Field("key"), "must match pattern ^[a-zA-Z0-9_.-]+$ (at most 256 characters)");
  }
  if (p.tags.size() > 1) std::sort(p.tags.begin(), p.tags.end());
  for (size_t i = 0; i < p.tags.size(); ++i) {
    const auto& [k, v] = p.tags[i];
    if (!IsValidName(k) || k.size() > kMaxNameLength) {
      errors.Add(path.Field("tags") + "." + k, "tag key must match pattern ^[a-zA-Z0-9_.-]+$");
    } else if (i > 0 && p.tags[i - 1].first == k) {
      errors.Add(path.Field("tags") + "." + k, "duplicate tag key");
    }
    if (v.size() > kMaxTagValueLength) {
      errors.Add(path.Field("tags") + "." + k, "tag value longer than 1024 bytes");
    }
  }
  if (p.tags.size() > kMaxTagsPerPoint) errors.Add(path.Field("tags"), "more than 64 tags");
  if (!std::isfinite(p.value)) errors.Add(path.Field("value"), "must be a finite number");
  if (has_partition_key) {
    if (p.partition_key.empty()) {
      errors.Add(path.Field("partition_key"), "must be a non-empty string");
    } else if (p.partition_key.size() > kMaxPartitionKeyLength) {
      errors.Add(path.Field("partition_key"), "longer than 1024 bytes");
    }
  } else if (dialect == InsertDialect::kInsert) {
    errors.Add(path.Field("partition_key"), "is required");
  } else {
    p.partition_key.clear();
  }
}

// Groups validated points into columnar series as they are parsed, so a batch
// allocates per series, not per point.
class SeriesAccumulator {
 public:
  void Add(const ParsedPoint& p) {
    scratch_.clear();
    AppendSeriesIdentity(scratch_, p.partition_key, p.metric, p.tags);
    auto it = index_.find(scratch_);
    raftmetrics::v1::SeriesPoints* s;
    if (it == index_.end()) {
      s = &series_.emplace_back();
      s->set_metric(p.metric);
      s->set_partition_key(p.partition_key.empty() ? SeriesKey(p.metric, p.tags) : p.partition_key);
      for (const auto& [k, v] : p.tags) (*s->mutable_tags())[k] = v;
      index_.emplace(scratch_, series_.size() - 1);
    } else {
      s = &series_[it->second];
    }
    s->add_timestamps_us(p.timestamp_us);
    s->add_values(p.value);
  }
  std::vector<raftmetrics::v1::SeriesPoints> Take() { return std::move(series_); }

 private:
  std::string scratch_;
  std::unordered_map<std::string, size_t> index_;
  std::vector<raftmetrics::v1::SeriesPoints> series_;
};

void ParseTags(simdjson::dom::element el, const PointPath& path, const char* field, ParsedPoint& p,
               Errors& errors) {
  simdjson::dom::object obj;
  if (el.get_object().get(obj)) {
    errors.Add(path.Field(field), "must be an object of string values");
    return;
  }
  for (auto [k, v] : obj) {
    std::string_view sv;
    if (v.get_string().get(sv)) {
      errors.Add(path.Field(field) + "." + std::string(k), "tag value must be a string");
      continue;
    }
    p.tags.emplace_back(std::string(k), std::string(sv));
  }
}

// Parses one point object into `p` (cleared first; its buffers are reused).
// Returns false when the point has errors.
bool ParseJsonPoint(simdjson::dom::element el, const PointPath& path, InsertDialect dialect,
                    ParsedPoint& p, Errors& errors) {
  const size_t errors_before = errors.total();
  simdjson::dom::object obj;
  if (el.get_object().get(obj)) {
    errors.Add(path.Self(), "must be a JSON object");
    return false;
  }
  p.metric.clear();
  p.partition_key.clear();
  p.tags.clear();
  p.value = 0;
  p.timestamp_us = 0;
  bool has_pk = false, has_metric = false, has_value = false;
  for (auto [key, v] : obj) {
    if (key == "partition_key") {
      std::string_view sv;
      if (v.get_string().get(sv)) {
        errors.Add(path.Field("partition_key"), "must be a string");
        p.partition_key = "-";  // reported once: Finish must not add "non-empty"
      } else {
        p.partition_key.assign(sv);
      }
      has_pk = true;
    } else if (key == "key" || key == "metric") {
      std::string_view sv;
      has_metric = true;
      if (v.get_string().get(sv)) {
        errors.Add(path.Field("key"), "must be a string");
        p.metric = "-";  // reported once: Finish must not add a pattern error
        continue;
      }
      p.metric.assign(sv);
    } else if (key == "value") {
      has_value = true;
      double d;
      std::string_view marker;
      if (v.is_number() && !v.get_double().get(d)) {
        p.value = d;
      } else if (!v.get_string().get(marker) && marker == "\0overflow"sv) {
        errors.Add(path.Field("value"), "must be a finite number");
      } else {
        errors.Add(path.Field("value"), "must be a number");
      }
    } else if (key == "timestamp") {
      std::string_view sv;
      if (v.is_null()) continue;
      if (v.get_string().get(sv)) {
        errors.Add(path.Field("timestamp"), "must be a valid ISO 8601 timestamp");
        continue;
      }
      auto ts = ParseIso8601(sv);
      if (!ts) {
        errors.Add(path.Field("timestamp"), "must be a valid ISO 8601 timestamp");
      } else {
        // 0 means "unset" internally; the epoch itself is kept 1 us later.
        p.timestamp_us = *ts == 0 ? 1 : *ts;
      }
    } else if (key == "tags" || key == "metadata") {
      if (!v.is_null()) ParseTags(v, path, key == "tags" ? "tags" : "metadata", p, errors);
    }
  }
  if (!has_value) errors.Add(path.Field("value"), "is required");
  Finish(p, has_pk, has_metric, dialect, path, errors);
  return errors.total() == errors_before;
}

// JSON numbers too large for a double (1e400) make simdjson reject the whole
// document. To still name the offending field, such literals are rewritten to a
// marker string that ParseJsonPoint reports as "must be a finite number".
constexpr std::string_view kOverflowMarker = "\\u0000overflow";

std::optional<std::string> RewriteOverflowingNumbers(std::string_view body) {
  std::string out;
  bool changed = false, in_string = false;
  for (size_t i = 0; i < body.size();) {
    char c = body[i];
    if (in_string) {
      out += c;
      if (c == '\\' && i + 1 < body.size()) {
        out += body[++i];
      } else if (c == '"') {
        in_string = false;
      }
      ++i;
    } else if (c == '"') {
      in_string = true;
      out += c;
      ++i;
    } else if (c == '-' || (c >= '0' && c <= '9')) {
      size_t j = i + 1;
      while (j < body.size() && (std::isdigit(static_cast<unsigned char>(body[j])) || body[j] == '.' ||
                                 body[j] == 'e' || body[j] == 'E' || body[j] == '+' || body[j] == '-')) {
        ++j;
      }
      std::string token(body.substr(i, j - i));
      double v = std::strtod(token.c_str(), nullptr);
      if (!std::isfinite(v)) {
        out += '"';
        out += kOverflowMarker;
        out += '"';
        changed = true;
      } else {
        out += token;
      }
      i = j;
    } else {
      out += c;
      ++i;
    }
  }
  if (!changed) return std::nullopt;
  return out;
}

// A parser and a padded copy of the input, reused across requests (see
// JsonScratchPool). A fresh parser (and simdjson's own padded copy of the body)
// per request put a third of the control node's CPU for 50,000-point JSON
// batches into page faults (perf, 2026-12-05). Bodies larger than
// kKeepJsonBytes still parse, but their buffers are released afterwards: one
// huge request must not stay resident.
class JsonScratch {
 public:
  static constexpr size_t kKeepJsonBytes = size_t{8} << 20;

  // Parses `text` from a copy in the reused buffer, followed by simdjson's padding.
  simdjson::error_code Parse(std::string_view text, simdjson::dom::element& out) {
    const size_t need = text.size() + simdjson::SIMDJSON_PADDING;
    if (need > capacity_) {
      buffer_ = std::make_unique_for_overwrite<char[]>(need);
      capacity_ = need;
    }
    std::memcpy(buffer_.get(), text.data(), text.size());
    std::memset(buffer_.get() + text.size(), 0, simdjson::SIMDJSON_PADDING);
    return parser_.parse(buffer_.get(), text.size(), false).get(out);
  }
  // After the parsed elements are no longer used.
  void Trim() {
    if (capacity_ > kKeepJsonBytes + simdjson::SIMDJSON_PADDING) {
      buffer_.reset();
      capacity_ = 0;
    }
    if (parser_.capacity() > kKeepJsonBytes) parser_ = simdjson::dom::parser();
  }

 private:
  simdjson::dom::parser parser_;
  std::unique_ptr<char[]> buffer_;
  size_t capacity_ = 0;
};

// Scratches shared by all threads, not one per thread: requests run on any of
// the server's 32 handler threads, so a thread-local scratch was rarely warm.
// Holds at most kKept idle scratches (about the number of concurrent inserts).
class JsonScratchPool {
 public:
  static constexpr size_t kKept = 8;
  std::unique_ptr<JsonScratch> Take() {
    std::lock_guard<std::mutex> lock(mu_);
    if (idle_.empty()) return std::make_unique<JsonScratch>();
    auto scratch = std::move(idle_.back());
    idle_.pop_back();
    return scratch;
  }
  void Return(std::unique_ptr<JsonScratch> scratch) {
    scratch->Trim();
    std::lock_guard<std::mutex> lock(mu_);
    if (idle_.size() < kKept) idle_.push_back(std::move(scratch));
  }

 private:
  std::mutex mu_;
  std::vector<std::unique_ptr<JsonScratch>> idle_;
};

Result<ParsedInsert> ParseJson(std::string_view body, InsertDialect dialect, bool ndjson) {
  ParsedInsert result;
  Errors errors;
  SeriesAccumulator acc;
  ParsedPoint scratch;
  size_t count = 0;
  auto add = [&](simdjson::dom::element el, PointPath path) {
    if (ParseJsonPoint(el, path, dialect, scratch, errors) && errors.empty()) acc.Add(scratch);
    ++count;
  };
  static JsonScratchPool pool;
  struct Lease {  // returned to the pool when the parsed elements are no longer used
    std::unique_ptr<JsonScratch> scratch = pool.Take();
    ~Lease() { pool.Return(std::move(scratch)); }
  } lease;
  JsonScratch& json = *lease.scratch;
  if (ndjson) {
    result.is_batch = true;
    size_t line_no = 0, pos = 0;
    while (pos < body.size()) {
      size_t nl = body.find('\n', pos);
      if (nl == std::string_view::npos) nl = body.size();
      std::string_view line = body.substr(pos, nl - pos);
      pos = nl + 1;
      ++line_no;
      if (line.find_first_not_of(" \t\r") == std::string_view::npos) continue;
      simdjson::dom::element el;
      auto err = json.Parse(line, el);
      std::optional<std::string> rewritten;
      if (err == simdjson::NUMBER_ERROR && (rewritten = RewriteOverflowingNumbers(line))) {
        err = json.Parse(*rewritten, el);
      }
      if (err) {
        return Status(Code::kInvalidRequest, "Malformed JSON",
                      {{"line", line_no}, {"reason", "invalid JSON on this NDJSON line"}});
      }
      add(el, PointPath{"points", count});
    }
  } else {
    simdjson::dom::element root;
    auto err = json.Parse(body, root);
    std::optional<std::string> rewritten;
    if (err == simdjson::NUMBER_ERROR && (rewritten = RewriteOverflowingNumbers(body))) {
      err = json.Parse(*rewritten, root);
    }
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
      for (auto el : arr) add(el, PointPath{"points", count});
    } else {
      add(root, PointPath{});
    }
  }
  if (count == 0 && errors.empty()) errors.Add("points", "must contain at least one point");
  if (!errors.empty()) return errors.ToStatus();
  result.series = acc.Take();
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
  SeriesAccumulator acc;
  result.is_batch = !(req.points_size() == 1 && req.series_size() == 0);
  for (int i = 0; i < req.points_size(); ++i) {
    const auto& pt = req.points(i);
    PointPath path{result.is_batch ? "points" : nullptr, static_cast<size_t>(i)};
    ParsedPoint p;
    p.metric = pt.metric();
    p.partition_key = pt.partition_key();
    p.value = pt.value();
    p.timestamp_us = pt.timestamp_us();
    if (!pt.timestamp().empty()) {
      auto ts = ParseIso8601(pt.timestamp());
      if (!ts) {
        errors.Add(path.Field("timestamp"), "must be a valid ISO 8601 timestamp");
      } else {
        p.timestamp_us = *ts == 0 ? 1 : *ts;
      }
    }
    for (const auto& [k, v] : pt.tags()) p.tags.emplace_back(k, v);
    Finish(p, !pt.partition_key().empty() || dialect == InsertDialect::kInsert, !pt.metric().empty(),
           dialect, path, errors);
    if (errors.empty()) acc.Add(p);
  }
  std::vector<raftmetrics::v1::SeriesPoints> columnar;
  columnar.reserve(req.series_size());
  for (int i = 0; i < req.series_size(); ++i) {
    auto& s = *req.mutable_series(i);
    PointPath path{"series", static_cast<size_t>(i)};
    if (s.timestamps_us_size() != s.values_size()) {
      errors.Add(path.Field("values"), "must have as many entries as timestamps_us");
      continue;
    }
    if (s.values_size() == 0) {
      errors.Add(path.Field("values"), "must contain at least one value");
      continue;
    }
    ParsedPoint head;  // validates the series description once
    head.metric = s.metric();
    head.partition_key = s.partition_key();
    for (const auto& [k, v] : s.tags()) head.tags.emplace_back(k, v);
    Finish(head, !s.partition_key().empty() || dialect == InsertDialect::kInsert, !s.metric().empty(),
           dialect, path, errors);
    for (int j = 0; j < s.values_size(); ++j) {
      if (!std::isfinite(s.values(j))) {
        errors.Add(path.Field("values") + "[" + std::to_string(j) + "]", "must be a finite number");
      }
    }
    s.set_metric(head.metric);
    s.set_partition_key(head.partition_key.empty() ? SeriesKey(head.metric, head.tags) : head.partition_key);
    columnar.push_back(std::move(s));
  }
  if (req.points_size() == 0 && req.series_size() == 0 && errors.empty()) {
    errors.Add("points", "must contain at least one point");
  }
  if (!errors.empty()) return errors.ToStatus();
  result.series = acc.Take();
  for (auto& s : columnar) result.series.push_back(std::move(s));
  return result;
}

}  // namespace

size_t ParsedInsert::PointCount() const {
  size_t n = 0;
  for (const auto& s : series) n += static_cast<size_t>(s.values_size());
  return n;
}

std::vector<ParsedPoint> ParsedInsert::Flatten() const {
  std::vector<ParsedPoint> out;
  out.reserve(PointCount());
  for (const auto& s : series) {
    Tags tags(s.tags().begin(), s.tags().end());
    std::sort(tags.begin(), tags.end());
    for (int i = 0; i < s.values_size(); ++i) {
      out.push_back({s.metric(), s.partition_key(), s.values(i), s.timestamps_us(i), tags});
    }
  }
  return out;
}

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
