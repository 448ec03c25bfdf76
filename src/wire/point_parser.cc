#include "src/wire/point_parser.h"

#include "proto/raftmetrics.pb.h"
#include "src/common/time_util.h"

#include <simdjson.h>

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <mutex>
#include <optional>
#include <system_error>
#include <unordered_map>

using namespace std::string_view_literals;

namespace rm {
namespace {

// How points are read, the same for every point of a request.
struct PointRules {
  InsertDialect dialect;
  std::optional<EpochUnit> precision;  // the unit of epoch timestamps; nullopt: by magnitude
};

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

// A point's `timestamp`: an ISO 8601 or epoch string, or an epoch number.
// A number is read from its decimal text, so that it obeys exactly the rules of
// the same digits in a string: integers as written, other doubles as the
// shortest decimal that reads back as the same double (1705764600.123, not
// 1705764600.1229999).
void ParseJsonTimestamp(simdjson::dom::element v, const PointPath& path, std::optional<EpochUnit> precision,
                        ParsedPoint& p, Errors& errors) {
  std::string_view text;
  char buf[400];  // the longest shortest-round-trip double in fixed notation is 327 characters
  int64_t i;
  uint64_t u;
  double d;
  std::to_chars_result written{};  // ptr stays null for a string
  if (!v.get_int64().get(i)) {
    written = std::to_chars(buf, buf + sizeof buf, i);
  } else if (!v.get_uint64().get(u)) {
    written = std::to_chars(buf, buf + sizeof buf, u);
  } else if (!v.get_double().get(d)) {
    written = std::to_chars(buf, buf + sizeof buf, d, std::chars_format::fixed);
  } else if (v.get_string().get(text)) {
    errors.Add(path.Field("timestamp"), std::string(kTimestampForms));
    return;
  }
  if (written.ptr && written.ec == std::errc()) text = std::string_view(buf, written.ptr - buf);
  auto ts = ParseTimestamp(text, precision);
  if (!ts) {
    errors.Add(path.Field("timestamp"), BadTimestampError(text, precision));
  } else {
    // 0 means "unset" internally; the epoch itself is kept 1 us later.
    p.timestamp_us = *ts == 0 ? 1 : *ts;
  }
}

// Parses one point object into `p` (cleared first; its buffers are reused).
// Returns false when the point has errors.
bool ParseJsonPoint(simdjson::dom::element el, const PointPath& path, const PointRules& rules,
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
      if (!v.is_null()) ParseJsonTimestamp(v, path, rules.precision, p, errors);
    } else if (key == "tags" || key == "metadata") {
      if (!v.is_null()) ParseTags(v, path, key == "tags" ? "tags" : "metadata", p, errors);
    }
  }
  if (!has_value) errors.Add(path.Field("value"), "is required");
  Finish(p, has_pk, has_metric, rules.dialect, path, errors);
  return errors.total() == errors_before;
}

// JSON numbers too large for a double (1e400) make simdjson reject the whole
// document. To still name the offending field, such literals are rewritten to a
// marker string that ParseJsonPoint reports as "must be a finite number".
// Integers beyond 64 bits (a 21-digit nanosecond timestamp) are refused by
// simdjson too, though they are finite doubles: they get a ".0" so that simdjson
// reads them as the doubles they are, and the field's own check applies.
constexpr std::string_view kOverflowMarker = "\\u0000overflow";

// An integer literal that fits neither int64 nor uint64.
bool IsIntegerBeyond64Bits(std::string_view token) {
  if (token.find_first_of(".eE") != std::string_view::npos) return false;
  const char* end = token.data() + token.size();
  std::from_chars_result r;
  if (token.front() == '-') {
    int64_t v;
    r = std::from_chars(token.data(), end, v);
  } else {
    uint64_t v;
    r = std::from_chars(token.data(), end, v);
  }
  return r.ec == std::errc::result_out_of_range && r.ptr == end;
}

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
      } else if (IsIntegerBeyond64Bits(token)) {
        out += token;
        out += ".0";
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

// Parses `text` into `out`, again with overflowing numbers rewritten when
// simdjson refused one (RewriteOverflowingNumbers).
simdjson::error_code ParseJsonText(JsonScratch& json, std::string_view text, simdjson::dom::element& out) {
  auto err = json.Parse(text, out);
  if (err == simdjson::NUMBER_ERROR) {
    if (auto rewritten = RewriteOverflowingNumbers(text)) err = json.Parse(*rewritten, out);
  }
  return err;
}

// Steps to the next line of `body` that is not blank: `line` and its 1-based
// number `line_no`; `pos` moves past it. False at the end of the body.
bool NextLine(std::string_view body, size_t& pos, size_t& line_no, std::string_view& line) {
  while (pos < body.size()) {
    size_t nl = body.find('\n', pos);
    if (nl == std::string_view::npos) nl = body.size();
    line = body.substr(pos, nl - pos);
    pos = nl + 1;
    ++line_no;
    if (line.find_first_not_of(" \t\r") != std::string_view::npos) return true;
  }
  return false;
}

// A body that is not one JSON document but NDJSON sent without its
// Content-Type: the first line that is not blank is a whole JSON object, and
// another such line follows. Called only after the document failed to parse, so
// valid JSON never pays for it.
bool LooksLikeNdjson(std::string_view body, JsonScratch& json) {
  size_t pos = 0, line_no = 0;
  std::string_view line;
  if (!NextLine(body, pos, line_no, line)) return false;
  simdjson::dom::element first;
  if (ParseJsonText(json, line, first) || !first.is_object()) return false;
  return NextLine(body, pos, line_no, line);
}

// Part of every "Malformed JSON" error of a body read as JSON, whose Content-Type
// may have been meant as NDJSON.
constexpr std::string_view kNdjsonHint =
    "one JSON object per line (NDJSON) needs Content-Type: application/x-ndjson "
    "(with curl use --data-binary: -d drops the newlines)";

// Reads the points of a JSON or NDJSON body into series. Malformed JSON ends a
// read with an error; field errors are collected and reported by Finish.
class JsonBodyReader {
 public:
  JsonBodyReader(JsonScratch& json, const PointRules& rules) : json_(json), rules_(rules) {}

  // One document: a point, [point, ...] or {"points": [point, ...]}. Falls back
  // to ReadLines when the document is malformed but LooksLikeNdjson.
  Status ReadDocument(std::string_view body) {
    simdjson::dom::element root;
    if (auto err = ParseJsonText(json_, body, root)) {
      if (LooksLikeNdjson(body, json_)) return ReadLines(body, /*detected=*/true);
      return Status(Code::kInvalidRequest, "Malformed JSON",
                    {{"reason", simdjson::error_message(err)}, {"hint", kNdjsonHint}});
    }
    simdjson::dom::array arr;
    bool is_array = !root.get_array().get(arr);
    if (!is_array && root.is_object()) {
      simdjson::dom::element points;
      if (!root["points"].get(points)) {
        if (points.get_array().get(arr)) {
          errors_.Add("points", "must be an array");
          return Status::Ok();
        }
        is_array = true;
      }
    }
    if (is_array) {
      is_batch_ = true;
      for (auto el : arr) Add(el, PointPath{"points", count_});
    } else {
      Add(root, PointPath{});
    }
    return Status::Ok();
  }

  // One point per line, blank lines skipped. `detected`: the Content-Type said
  // JSON, so a malformed line's error says how to send NDJSON.
  Status ReadLines(std::string_view body, bool detected) {
    is_batch_ = true;
    size_t pos = 0, line_no = 0;
    std::string_view line;
    while (NextLine(body, pos, line_no, line)) {
      simdjson::dom::element el;
      if (ParseJsonText(json_, line, el)) {
        nlohmann::json details = {{"line", line_no}, {"reason", "invalid JSON on this NDJSON line"}};
        if (detected) {
          details["reason"] = "invalid JSON on this line (the body was read as NDJSON: it is not one JSON "
                              "document, and its first line is a JSON object)";
          details["hint"] = kNdjsonHint;
        }
        return Status(Code::kInvalidRequest, "Malformed JSON", std::move(details));
      }
      Add(el, PointPath{"points", count_});
    }
    return Status::Ok();
  }

  Result<ParsedInsert> Finish() {
    if (count_ == 0 && errors_.empty()) errors_.Add("points", "must contain at least one point");
    if (!errors_.empty()) return errors_.ToStatus();
    ParsedInsert result;
    result.series = acc_.Take();
    result.is_batch = is_batch_;
    return result;
  }

 private:
  void Add(simdjson::dom::element el, PointPath path) {
    if (ParseJsonPoint(el, path, rules_, scratch_, errors_) && errors_.empty()) acc_.Add(scratch_);
    ++count_;
  }

  JsonScratch& json_;
  const PointRules& rules_;
  Errors errors_;
  SeriesAccumulator acc_;
  ParsedPoint scratch_;
  size_t count_ = 0;
  bool is_batch_ = false;
};

Result<ParsedInsert> ParseJson(std::string_view body, const PointRules& rules, bool ndjson) {
  static JsonScratchPool pool;
  struct Lease {  // returned to the pool when the parsed elements are no longer used
    std::unique_ptr<JsonScratch> scratch = pool.Take();
    ~Lease() { pool.Return(std::move(scratch)); }
  } lease;
  JsonBodyReader reader(*lease.scratch, rules);
  Status read = ndjson ? reader.ReadLines(body, /*detected=*/false) : reader.ReadDocument(body);
  if (!read.ok()) return read;
  return reader.Finish();
}

Result<ParsedInsert> ParseProtobuf(std::string_view body, const PointRules& rules) {
  const InsertDialect dialect = rules.dialect;
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
      auto ts = ParseTimestamp(pt.timestamp(), rules.precision);
      if (!ts) {
        errors.Add(path.Field("timestamp"), BadTimestampError(pt.timestamp(), rules.precision));
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
                                     InsertDialect dialect, std::string_view precision) {
  PointRules rules{dialect, std::nullopt};
  if (!precision.empty() && !(rules.precision = ParseEpochUnit(precision))) {
    Errors errors;
    errors.Add("precision", std::string(kPrecisionError));
    return errors.ToStatus();
  }
  std::string ct(content_type.substr(0, content_type.find(';')));
  while (!ct.empty() && ct.back() == ' ') ct.pop_back();
  for (auto& c : ct) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  if (ct == "application/x-protobuf" || ct == "application/protobuf") return ParseProtobuf(body, rules);
  if (ct == "application/x-ndjson" || ct == "application/ndjson") return ParseJson(body, rules, true);
  // curl -d sends application/x-www-form-urlencoded by default: read it as JSON too.
  if (ct.empty() || ct == "application/json" || ct == "text/plain" ||
      ct == "application/x-www-form-urlencoded") {
    return ParseJson(body, rules, false);
  }
  return Status(Code::kInvalidRequest, "Unsupported Content-Type",
                {{"content_type", std::string(content_type)},
                 {"supported", {"application/json", "application/x-ndjson", "application/x-protobuf"}}});
}

}  // namespace rm
