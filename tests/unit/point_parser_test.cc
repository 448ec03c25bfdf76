// Tests of src/wire/point_parser: every accepted body form, both dialects, and
// every validation error with its field path.
#include "src/wire/point_parser.h"

#include "proto/raftmetrics.pb.h"
#include "src/common/time_util.h"

#include <gtest/gtest.h>

#include <thread>
#include <nlohmann/json.hpp>

#include <limits>
#include <string>
#include <vector>

namespace rm {
namespace {

constexpr auto kInsert = InsertDialect::kInsert;
constexpr auto kMetrics = InsertDialect::kMetrics;
constexpr int64_t kJan20 = 1705764600LL * 1000000;  // 2024-01-20T15:30:00Z

Result<ParsedInsert> Json(const std::string& body, InsertDialect dialect = kInsert) {
  return ParseInsertBody(body, "application/json", dialect);
}

Result<ParsedInsert> Ndjson(const std::string& body, InsertDialect dialect = kInsert) {
  return ParseInsertBody(body, "application/x-ndjson", dialect);
}

Result<ParsedInsert> Proto(const raftmetrics::v1::InsertRequest& req, InsertDialect dialect = kInsert) {
  return ParseInsertBody(req.SerializeAsString(), "application/x-protobuf", dialect);
}

// The parsed points one by one (series order; input order within a series).
std::vector<ParsedPoint> Points(const Result<ParsedInsert>& r) { return r->Flatten(); }

// The fields named in a validation error, in order.
std::vector<std::string> Fields(const Status& s) {
  std::vector<std::string> out;
  if (!s.details().contains("fields")) return out;
  for (const auto& f : s.details()["fields"]) out.push_back(f.at("field").get<std::string>());
  return out;
}

// The error message for `field`, or "" when the field is not reported.
std::string ErrorFor(const Status& s, const std::string& field) {
  if (!s.details().contains("fields")) return "";
  for (const auto& f : s.details()["fields"]) {
    if (f.at("field") == field) return f.at("error").get<std::string>();
  }
  return "";
}

// Expects a kValidation error that names `field`.
void ExpectFieldError(const Result<ParsedInsert>& r, const std::string& field) {
  ASSERT_FALSE(r.ok()) << "expected an error on " << field;
  EXPECT_EQ(r.status().code(), Code::kValidation) << r.status().ToString();
  EXPECT_EQ(r.status().message(), "Invalid request parameters");
  EXPECT_NE(ErrorFor(r.status(), field), "") << "no error on " << field << ": " << r.status().ToString();
}

// ---------------------------------------------------------------------------
// Accepted JSON forms
// ---------------------------------------------------------------------------

TEST(PointParser, SingleJsonPointIsNotABatch) {
  auto r = Json(R"({"partition_key":"h1","value":1.5,"timestamp":"2024-01-20T15:30:00Z",
                    "metric":"cpu","tags":{"host":"a"}})");
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_FALSE(r->is_batch);
  ASSERT_EQ(r->PointCount(), 1u);
  ASSERT_EQ(r->series.size(), 1u);
  const ParsedPoint p = Points(r)[0];
  EXPECT_EQ(p.partition_key, "h1");
  EXPECT_EQ(p.metric, "cpu");
  EXPECT_EQ(p.value, 1.5);
  EXPECT_EQ(p.timestamp_us, kJan20);
  EXPECT_EQ(p.tags, (Tags{{"host", "a"}}));
}

TEST(PointParser, JsonArrayIsABatchInOrder) {
  auto r = Json(R"([{"partition_key":"a","value":1},{"partition_key":"b","value":2},
                    {"partition_key":"c","value":3}])");
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_TRUE(r->is_batch);
  ASSERT_EQ(r->PointCount(), 3u);
  EXPECT_EQ(Points(r)[0].partition_key, "a");
  EXPECT_EQ(Points(r)[1].partition_key, "b");
  EXPECT_EQ(Points(r)[2].value, 3);
}

TEST(PointParser, ReusedParseBuffersNeverLeakAnEarlierBody) {
  // Parsers and input buffers are reused across requests: a short body after a
  // long one must not see the long one's bytes, on any thread, nor a truncated
  // one parse as valid.
  std::string big = "[";
  for (int i = 0; i < 2000; ++i) big += std::string(i ? "," : "") + R"({"partition_key":"k)" + std::to_string(i) + R"(","value":)" + std::to_string(i) + "}";
  big += "]";
  auto check = [&] {
    for (int round = 0; round < 20; ++round) {
      auto a = Json(big);
      ASSERT_TRUE(a.ok()) << a.status().ToString();
      ASSERT_EQ(a->PointCount(), 2000u);
      auto b = Json(R"({"partition_key":"x","value":7})");
      ASSERT_TRUE(b.ok()) << b.status().ToString();
      ASSERT_EQ(Points(b).size(), 1u);
      EXPECT_EQ(Points(b)[0].value, 7);
      EXPECT_FALSE(Json(big.substr(0, big.size() / 2)).ok());
      auto c = Ndjson("{\"partition_key\":\"y\",\"value\":1}\n{\"partition_key\":\"z\",\"value\":2}\n");
      ASSERT_TRUE(c.ok()) << c.status().ToString();
      EXPECT_EQ(c->PointCount(), 2u);
    }
  };
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) threads.emplace_back(check);
  for (auto& t : threads) t.join();
}

TEST(PointParser, PointsWrapperObjectIsABatch) {
  auto r = Json(R"({"points":[{"partition_key":"a","value":1},{"partition_key":"b","value":2}]})");
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_TRUE(r->is_batch);
  ASSERT_EQ(r->PointCount(), 2u);
  EXPECT_EQ(Points(r)[1].partition_key, "b");
}

TEST(PointParser, SingleElementArrayIsStillABatch) {
  auto r = Json(R"([{"partition_key":"a","value":1}])");
  ASSERT_TRUE(r.ok());
  EXPECT_TRUE(r->is_batch);
}

TEST(PointParser, NdjsonSkipsBlankLines) {
  auto r = Ndjson("{\"partition_key\":\"a\",\"value\":1}\n"
                  "\n"
                  "  \t\r\n"
                  "{\"partition_key\":\"b\",\"value\":2}\r\n"
                  "{\"partition_key\":\"c\",\"value\":3}");  // no final newline
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_TRUE(r->is_batch);
  ASSERT_EQ(r->PointCount(), 3u);
  EXPECT_EQ(Points(r)[0].partition_key, "a");
  EXPECT_EQ(Points(r)[1].partition_key, "b");
  EXPECT_EQ(Points(r)[2].partition_key, "c");
}

TEST(PointParser, NdjsonFieldPathsCountPointsNotLines) {
  auto r = Ndjson("{\"partition_key\":\"a\",\"value\":1}\n\n{\"partition_key\":\"b\"}\n");
  ExpectFieldError(r, "points[1].value");
}

TEST(PointParser, NdjsonMalformedLineNamesTheLine) {
  auto r = Ndjson("{\"partition_key\":\"a\",\"value\":1}\n\n{not json\n");
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), Code::kInvalidRequest);
  EXPECT_EQ(r.status().details().at("line"), 3);
}

TEST(PointParser, NdjsonNonObjectLineDoesNotShiftLaterFieldPaths) {
  // Regression: field paths once used the number of parsed points as the index,
  // so a non-object line shifted every later path down by one.
  auto r = Ndjson("5\n{\"partition_key\":\"b\"}\n");
  ExpectFieldError(r, "points[0]");
  ExpectFieldError(r, "points[1].value");
  EXPECT_EQ(ErrorFor(r.status(), "points[0].value"), "");
}

TEST(PointParser, EmptyNdjsonBodyHasNoPoints) {
  ExpectFieldError(Ndjson("\n\n"), "points");
  ExpectFieldError(Ndjson(""), "points");
}

TEST(PointParser, ContentTypeParametersAndCaseAreIgnored) {
  const std::string body = R"({"partition_key":"a","value":1})";
  for (const char* ct : {"application/json", "Application/JSON; charset=utf-8", "application/json ;x=y",
                         "", "text/plain", "application/x-www-form-urlencoded"}) {
    auto r = ParseInsertBody(body, ct, kInsert);
    EXPECT_TRUE(r.ok()) << "content type '" << ct << "': " << r.status().ToString();
  }
  EXPECT_TRUE(ParseInsertBody(body, "application/ndjson", kInsert).ok());
  EXPECT_TRUE(ParseInsertBody(body, "APPLICATION/X-NDJSON", kInsert).ok());
}

TEST(PointParser, UnsupportedContentTypeIsInvalidRequest) {
  auto r = ParseInsertBody("<point/>", "application/xml", kInsert);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), Code::kInvalidRequest);
  EXPECT_EQ(r.status().message(), "Unsupported Content-Type");
  EXPECT_EQ(r.status().details().at("content_type"), "application/xml");
  EXPECT_TRUE(r.status().details().at("supported").is_array());
}

TEST(PointParser, MalformedJsonIsInvalidRequest) {
  for (const char* body : {"{", "{\"value\":}", "[1,", "nope", "{\"a\":1}}", ""}) {
    auto r = Json(body);
    ASSERT_FALSE(r.ok()) << body;
    EXPECT_EQ(r.status().code(), Code::kInvalidRequest) << body;
    EXPECT_EQ(r.status().message(), "Malformed JSON") << body;
    EXPECT_TRUE(r.status().details().contains("reason")) << body;
  }
}

TEST(PointParser, PointsOfOneSeriesAreGroupedInInputOrder) {
  auto r = Json(R"([{"partition_key":"a","metric":"cpu","value":1,"tags":{"h":"x","d":"1"}},
                    {"partition_key":"b","metric":"cpu","value":2},
                    {"partition_key":"a","metric":"cpu","value":3,"tags":{"d":"1","h":"x"}},
                    {"partition_key":"a","metric":"mem","value":4},
                    {"partition_key":"a","metric":"cpu","value":5,"tags":{"h":"x","d":"1"}},
                    {"partition_key":"a","metric":"cpu","value":6,"tags":{"h":"y","d":"1"}}])");
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->PointCount(), 6u);
  ASSERT_EQ(r->series.size(), 4u);  // in order of first appearance
  const auto& first = r->series[0];
  EXPECT_EQ(first.partition_key(), "a");
  EXPECT_EQ(first.metric(), "cpu");
  EXPECT_EQ(first.tags().at("h"), "x");
  EXPECT_EQ(std::vector<double>(first.values().begin(), first.values().end()), (std::vector<double>{1, 3, 5}));
  EXPECT_EQ(first.timestamps_us_size(), 3);
  EXPECT_EQ(r->series[1].partition_key(), "b");
  EXPECT_EQ(r->series[2].metric(), "mem");
  EXPECT_EQ(r->series[3].tags().at("h"), "y");
}

TEST(PointParser, TagValuesWithSeparatorsStayDistinctSeries) {
  auto r = Json(R"([{"partition_key":"p","metric":"m","value":1,"tags":{"a":"1,b=2"}},
                    {"partition_key":"p","metric":"m","value":2,"tags":{"a":"1","b":"2"}}])");
  ASSERT_TRUE(r.ok());
  ASSERT_EQ(r->series.size(), 2u);
  EXPECT_EQ(r->series[0].tags_size(), 1);
  EXPECT_EQ(r->series[1].tags_size(), 2);
}

// ---------------------------------------------------------------------------
// Dialects
// ---------------------------------------------------------------------------

TEST(PointParser, InsertDialectDefaultsMetricToDefault) {
  auto r = Json(R"({"partition_key":"a","value":1})");
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(Points(r)[0].metric, "default");
}

TEST(PointParser, InsertDialectRequiresPartitionKey) {
  auto r = Json(R"({"value":1,"metric":"cpu"})");
  ExpectFieldError(r, "partition_key");
  EXPECT_EQ(ErrorFor(r.status(), "partition_key"), "is required");
}

TEST(PointParser, MetricsDialectRequiresKey) {
  auto r = Json(R"({"value":1,"partition_key":"a"})", kMetrics);
  ExpectFieldError(r, "key");
  EXPECT_EQ(ErrorFor(r.status(), "key"), "is required");
}

TEST(PointParser, MetricsDialectPartitionsBySeriesKey) {
  auto r = Json(R"({"key":"cpu","value":1,"tags":{"host":"a","dc":"eu"}})", kMetrics);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(Points(r)[0].metric, "cpu");
  EXPECT_EQ(Points(r)[0].partition_key, "cpu{dc=eu,host=a}");
}

TEST(PointParser, MetricsDialectKeepsAnExplicitPartitionKey) {
  auto r = Json(R"({"key":"cpu","value":1,"partition_key":"rack-7"})", kMetrics);
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(Points(r)[0].partition_key, "rack-7");
}

TEST(PointParser, KeyAndMetricAreSynonyms) {
  auto a = Json(R"({"partition_key":"p","value":1,"key":"cpu"})");
  auto b = Json(R"({"partition_key":"p","value":1,"metric":"cpu"})");
  ASSERT_TRUE(a.ok());
  ASSERT_TRUE(b.ok());
  EXPECT_EQ(Points(a)[0].metric, "cpu");
  EXPECT_EQ(Points(b)[0].metric, "cpu");
}

TEST(PointParser, MetadataIsASynonymOfTags) {
  auto r = Json(R"({"partition_key":"p","value":1,"metadata":{"host":"h","datacenter":"d"}})");
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(Points(r)[0].tags, (Tags{{"datacenter", "d"}, {"host", "h"}}));
}

TEST(PointParser, TagsAndMetadataAreMergedAndSorted) {
  auto r = Json(R"({"partition_key":"p","value":1,"tags":{"z":"1","b":"2"},"metadata":{"a":"3"}})");
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(Points(r)[0].tags, (Tags{{"a", "3"}, {"b", "2"}, {"z", "1"}}));
}

TEST(PointParser, NullTagsAndNullTimestampAreIgnored) {
  auto r = Json(R"({"partition_key":"p","value":1,"tags":null,"metadata":null,"timestamp":null})");
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_TRUE(Points(r)[0].tags.empty());
  EXPECT_EQ(Points(r)[0].timestamp_us, 0);
}

TEST(PointParser, UnknownFieldsAreIgnored) {
  auto r = Json(R"({"partition_key":"p","value":1,"unit":"ms","extra":{"x":[1,2]}})");
  EXPECT_TRUE(r.ok());
}

TEST(PointParser, MissingTimestampIsLeftUnset) {
  auto r = Json(R"({"partition_key":"p","value":1})");
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(Points(r)[0].timestamp_us, 0);
}

TEST(PointParser, EpochTimestampIsKeptDistinctFromUnset) {
  auto r = Json(R"({"partition_key":"p","value":1,"timestamp":"1970-01-01T00:00:00Z"})");
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(Points(r)[0].timestamp_us, 1);
}

TEST(PointParser, TimestampWithOffsetIsConvertedToUtc) {
  auto r = Json(R"({"partition_key":"p","value":1,"timestamp":"2024-01-20T17:30:00+02:00"})");
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(Points(r)[0].timestamp_us, kJan20);
}

TEST(PointParser, IntegerAndExponentValuesAreAccepted) {
  auto r = Json(R"([{"partition_key":"p","value":-7},{"partition_key":"p","value":18446744073709551615},
                    {"partition_key":"p","value":2.5e3},{"partition_key":"p","value":0}])");
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(Points(r)[0].value, -7);
  EXPECT_EQ(Points(r)[1].value, 18446744073709551615.0);
  EXPECT_EQ(Points(r)[2].value, 2500);
  EXPECT_EQ(Points(r)[3].value, 0);
}

// ---------------------------------------------------------------------------
// Validation errors and their field paths
// ---------------------------------------------------------------------------

TEST(PointParser, SinglePointErrorsHaveBareFieldNames) {
  auto r = Json(R"({"partition_key":"p","value":"x"})");
  ExpectFieldError(r, "value");
  EXPECT_EQ(ErrorFor(r.status(), "value"), "must be a number");
}

TEST(PointParser, BatchErrorsNameThePointIndex) {
  auto r = Json(R"([{"partition_key":"a","value":1},{"partition_key":"b","value":2},
                    {"partition_key":"c","value":"three"}])");
  ExpectFieldError(r, "points[2].value");
  EXPECT_EQ(Fields(r.status()), (std::vector<std::string>{"points[2].value"}));
}

TEST(PointParser, WrapperErrorsNameThePointIndex) {
  auto r = Json(R"({"points":[{"partition_key":"a","value":1},{"value":2}]})");
  ExpectFieldError(r, "points[1].partition_key");
}

TEST(PointParser, EveryBadFieldIsReportedAtOnce) {
  auto r = Json(R"([{"partition_key":"a"},{"partition_key":"b","value":1,"timestamp":"yesterday"},
                    {"value":true,"key":"bad key"}])");
  ASSERT_FALSE(r.ok());
  ExpectFieldError(r, "points[0].value");
  ExpectFieldError(r, "points[1].timestamp");
  ExpectFieldError(r, "points[2].value");
  ExpectFieldError(r, "points[2].key");
  ExpectFieldError(r, "points[2].partition_key");
  EXPECT_EQ(Fields(r.status()).size(), 5u);
}

TEST(PointParser, NothingIsPartiallyAccepted) {
  auto r = Json(R"([{"partition_key":"a","value":1},{"partition_key":"b"}])");
  EXPECT_FALSE(r.ok());
}

TEST(PointParser, MissingValueIsRequired) {
  auto r = Json(R"({"partition_key":"p"})");
  ExpectFieldError(r, "value");
  EXPECT_EQ(ErrorFor(r.status(), "value"), "is required");
}

TEST(PointParser, NonNumericValuesAreRejected) {
  for (const char* v : {"\"1\"", "true", "null", "[1]", "{}"}) {
    auto r = Json(std::string(R"({"partition_key":"p","value":)") + v + "}");
    ExpectFieldError(r, "value");
  }
}

TEST(PointParser, InvalidTimestampsAreRejectedNamingTheAcceptedForms) {
  for (const char* ts : {"\"2024-13-01T00:00:00Z\"", "\"2023-02-29\"", "\"2024-01-20T24:00:00Z\"",
                         "\"yesterday\"", "\"\"", "true", "{}", "[1705764600]", "\"1705764600s\"",
                         "\"1.7e9\"", "\" 1705764600\""}) {
    auto r = Json(std::string(R"({"partition_key":"p","value":1,"timestamp":)") + ts + "}");
    ExpectFieldError(r, "timestamp");
    EXPECT_EQ(ErrorFor(r.status(), "timestamp"), kTimestampForms) << ts;
  }
}

// ---------------------------------------------------------------------------
// Epoch timestamps
// ---------------------------------------------------------------------------

// The timestamp of a one-point JSON body with "timestamp": `ts` (JSON text).
int64_t TimestampOf(const std::string& ts, std::string_view precision = {}) {
  auto r = ParseInsertBody(std::string(R"({"partition_key":"p","value":1,"timestamp":)") + ts + "}",
                           "application/json", kInsert, precision);
  EXPECT_TRUE(r.ok()) << ts << ": " << r.status().ToString();
  return r.ok() ? Points(r)[0].timestamp_us : -1;
}

// The error on "timestamp" for such a body, or "" when it parses.
std::string TimestampErrorOf(const std::string& ts, std::string_view precision = {}) {
  auto r = ParseInsertBody(std::string(R"({"partition_key":"p","value":1,"timestamp":)") + ts + "}",
                           "application/json", kInsert, precision);
  return r.ok() ? "" : ErrorFor(r.status(), "timestamp");
}

TEST(PointParser, EpochSecondsAsNumberAndString) {
  EXPECT_EQ(TimestampOf("1705764600"), kJan20);
  EXPECT_EQ(TimestampOf(R"("1705764600")"), kJan20);
}

TEST(PointParser, EpochUnitFollowsTheMagnitude) {
  EXPECT_EQ(TimestampOf("1705764600123"), kJan20 + 123000);
  EXPECT_EQ(TimestampOf(R"("1705764600123")"), kJan20 + 123000);
  EXPECT_EQ(TimestampOf("1705764600123456"), kJan20 + 123456);
  EXPECT_EQ(TimestampOf(R"("1705764600123456")"), kJan20 + 123456);
  EXPECT_EQ(TimestampOf("1705764600123456789"), kJan20 + 123456);
  EXPECT_EQ(TimestampOf(R"("1705764600123456789")"), kJan20 + 123456);
  // Past int64 (simdjson's uint64): nanoseconds, 2286-11-20T17:46:40Z.
  EXPECT_EQ(TimestampOf("10000000000000000000"), 10000000000000000LL);
}

TEST(PointParser, EpochMagnitudeBoundaries) {
  EXPECT_EQ(TimestampOf("99999999999"), 99999999999LL * 1000000);        // s
  EXPECT_EQ(TimestampOf("100000000000"), 100000000000LL * 1000);         // ms
  EXPECT_EQ(TimestampOf("99999999999999"), 99999999999999LL * 1000);     // ms
  EXPECT_EQ(TimestampOf("100000000000000"), 100000000000000LL);          // us
  EXPECT_EQ(TimestampOf("99999999999999999"), 99999999999999999LL);      // us
  EXPECT_EQ(TimestampOf("100000000000000000"), 100000000000000LL);       // ns
}

TEST(PointParser, FractionalEpochSecondsKeepTheDecimalsWritten) {
  // As a double 1705764600.123 is 1705764600.12299990654; it reads as written.
  EXPECT_EQ(TimestampOf("1705764600.123"), kJan20 + 123000);
  EXPECT_EQ(TimestampOf("1705764600.123456"), kJan20 + 123456);
  EXPECT_EQ(TimestampOf(R"("1705764600.123456")"), kJan20 + 123456);
  EXPECT_EQ(TimestampOf("1705764600.5"), kJan20 + 500000);
  EXPECT_EQ(TimestampOf("1705764600123.5"), kJan20 + 123500);  // ms with a fraction
  EXPECT_EQ(TimestampOf("1.7057646e9"), kJan20);               // exponents are numbers too
  EXPECT_EQ(TimestampOf("1705764600.0"), kJan20);
}

TEST(PointParser, EpochZeroIsKeptDistinctFromUnset) {
  EXPECT_EQ(TimestampOf("0"), 1);
  EXPECT_EQ(TimestampOf(R"("0")"), 1);
}

TEST(PointParser, PrecisionParameterSetsTheEpochUnit) {
  EXPECT_EQ(TimestampOf("1705764600", "s"), kJan20);
  EXPECT_EQ(TimestampOf("1705764600123", "ms"), kJan20 + 123000);
  EXPECT_EQ(TimestampOf("1705764600123456", "us"), kJan20 + 123456);
  EXPECT_EQ(TimestampOf("1705764600123456", "u"), kJan20 + 123456);
  EXPECT_EQ(TimestampOf("1705764600123456", "\xc2\xb5s"), kJan20 + 123456);
  EXPECT_EQ(TimestampOf("1705764600123456789", "ns"), kJan20 + 123456);
  EXPECT_EQ(TimestampOf(R"("1705764600123456789")", "n"), kJan20 + 123456);
  // The precision wins over the magnitude.
  EXPECT_EQ(TimestampOf("86400000", "ms"), 86400LL * 1000000);  // by magnitude: 1972-09-27
  EXPECT_EQ(TimestampOf("5", "ns"), 1);                          // under a microsecond: 0, kept as 1
  // ISO 8601 ignores it.
  EXPECT_EQ(TimestampOf(R"("2024-01-20T15:30:00Z")", "ns"), kJan20);
}

TEST(PointParser, UnknownPrecisionIsAValidationErrorNamingTheField) {
  for (const char* precision : {"sec", "S", "m", "h", "nanoseconds", " ms"}) {
    auto r = ParseInsertBody(R"({"partition_key":"p","value":1})", "application/json", kInsert, precision);
    ExpectFieldError(r, "precision");
    EXPECT_EQ(ErrorFor(r.status(), "precision"), kPrecisionError) << precision;
    EXPECT_EQ(Fields(r.status()), (std::vector<std::string>{"precision"}));
  }
  // Whatever the body: protobuf too.
  auto r = ParseInsertBody("", "application/x-protobuf", kInsert, "x");
  ExpectFieldError(r, "precision");
}

TEST(PointParser, NegativeEpochTimestampsAreRefused) {
  for (const char* ts : {"-1705764600", R"("-1705764600")", "-1", "-0.5"}) {
    const std::string error = TimestampErrorOf(ts);
    EXPECT_EQ(error.rfind("is a negative epoch time", 0), 0u) << ts << ": " << error;
    EXPECT_NE(error.find(kTimestampForms), std::string::npos) << error;
  }
}

TEST(PointParser, EpochTimestampsAfterYear9999AreRefused) {
  const std::string error = TimestampErrorOf("1705764600123", "s");
  EXPECT_EQ(error.rfind("is after 9999-12-31T23:59:59.999999Z as epoch seconds", 0), 0u) << error;
  EXPECT_NE(error.find(kTimestampForms), std::string::npos) << error;
  EXPECT_NE(TimestampErrorOf("1e300"), "");
  // Past uint64, which simdjson alone refuses as malformed JSON.
  const std::string big = TimestampErrorOf("253402300800000000000");
  EXPECT_EQ(big.rfind("is after 9999-12-31T23:59:59.999999Z as epoch nanoseconds", 0), 0u) << big;
  EXPECT_EQ(TimestampErrorOf(R"("253402300799999999999")"), "");  // as a string it is exact
  EXPECT_EQ(TimestampErrorOf("1e400"), kTimestampForms);  // not even a finite double
}

TEST(PointParser, IntegersBeyond64BitsAreNumbersNotMalformedJson) {
  auto r = Json(R"([{"partition_key":"p","value":123456789012345678901234567890},
                    {"partition_key":"p","value":-123456789012345678901234567890}])");
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_DOUBLE_EQ(Points(r)[0].value, 1.2345678901234568e29);
  EXPECT_DOUBLE_EQ(Points(r)[1].value, -1.2345678901234568e29);
}

TEST(PointParser, EpochTimestampErrorsNameThePoint) {
  auto r = Json(R"([{"partition_key":"a","value":1,"timestamp":1705764600},
                    {"partition_key":"b","value":1,"timestamp":-1}])");
  ExpectFieldError(r, "points[1].timestamp");
  EXPECT_EQ(Fields(r.status()), (std::vector<std::string>{"points[1].timestamp"}));
}

TEST(PointParser, NdjsonAndProtobufReadEpochTimestamps) {
  auto nd = ParseInsertBody("{\"partition_key\":\"a\",\"value\":1,\"timestamp\":1705764600123}\n"
                            "{\"partition_key\":\"a\",\"value\":2,\"timestamp\":\"1705764600\"}\n",
                            "application/x-ndjson", kInsert, "");
  ASSERT_TRUE(nd.ok()) << nd.status().ToString();
  EXPECT_EQ(Points(nd)[0].timestamp_us, kJan20 + 123000);
  EXPECT_EQ(Points(nd)[1].timestamp_us, kJan20);

  raftmetrics::v1::InsertRequest req;
  req.add_points()->set_partition_key("a");
  req.mutable_points(0)->set_timestamp("1705764600123");
  req.add_points()->set_partition_key("b");
  req.mutable_points(1)->set_timestamp("1705764600");
  auto pb = ParseInsertBody(req.SerializeAsString(), "application/x-protobuf", kInsert, "ms");
  ASSERT_TRUE(pb.ok()) << pb.status().ToString();
  EXPECT_EQ(Points(pb)[0].timestamp_us, kJan20 + 123000);
  EXPECT_EQ(Points(pb)[1].timestamp_us, kJan20 / 1000);  // precision=ms applies to every point

  req.mutable_points(1)->set_timestamp("-5");
  auto bad = Proto(req);
  ExpectFieldError(bad, "points[1].timestamp");
  EXPECT_NE(ErrorFor(bad.status(), "points[1].timestamp").find(kTimestampForms), std::string::npos);
}

// ---------------------------------------------------------------------------
// NDJSON sent as JSON
// ---------------------------------------------------------------------------

TEST(PointParser, NdjsonPostedAsJsonIsReadAsNdjson) {
  const std::string body = "{\"partition_key\":\"a\",\"value\":1}\n"
                           "{\"partition_key\":\"b\",\"value\":2}\r\n"
                           "\n"
                           "{\"partition_key\":\"c\",\"value\":3}";
  for (const char* ct : {"application/json", "", "text/plain", "application/x-www-form-urlencoded",
                         "application/json; charset=utf-8"}) {
    auto r = ParseInsertBody(body, ct, kInsert);
    ASSERT_TRUE(r.ok()) << "content type '" << ct << "': " << r.status().ToString();
    EXPECT_TRUE(r->is_batch);
    ASSERT_EQ(r->PointCount(), 3u);
    EXPECT_EQ(Points(r)[0].partition_key, "a");
    EXPECT_EQ(Points(r)[2].partition_key, "c");
  }
}

TEST(PointParser, NdjsonPostedAsJsonReportsFieldsByPoint) {
  auto r = Json("{\"partition_key\":\"a\",\"value\":1}\n{\"partition_key\":\"b\"}\n");
  ExpectFieldError(r, "points[1].value");
}

TEST(PointParser, OneObjectWithATrailingNewlineIsStillASinglePoint) {
  auto r = Json("{\"partition_key\":\"a\",\"value\":1}\n\n");
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_FALSE(r->is_batch);
}

TEST(PointParser, NdjsonPostedAsJsonWithABadLineNamesLineAndContentType) {
  auto r = Json("{\"partition_key\":\"a\",\"value\":1}\n{\"partition_key\":\"b\",\"value\":2}\n{oops\n");
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), Code::kInvalidRequest);
  EXPECT_EQ(r.status().message(), "Malformed JSON");
  EXPECT_EQ(r.status().details().at("line"), 3);
  EXPECT_NE(r.status().details().at("hint").get<std::string>().find("application/x-ndjson"), std::string::npos);
}

TEST(PointParser, MalformedJsonSaysWhichContentTypeNdjsonNeeds) {
  // Neither JSON nor NDJSON: two objects on one line, an incomplete first line,
  // a first line that is not an object.
  for (const char* body : {"{\"partition_key\":\"a\",\"value\":1}{\"partition_key\":\"b\",\"value\":2}",
                           "{\"partition_key\":\"a\",\n\"value\":1}}\n{}", "[1]\n{\"a\":1}", "{"}) {
    auto r = Json(body);
    ASSERT_FALSE(r.ok()) << body;
    EXPECT_EQ(r.status().code(), Code::kInvalidRequest) << body;
    EXPECT_EQ(r.status().message(), "Malformed JSON") << body;
    EXPECT_TRUE(r.status().details().contains("reason")) << body;
    EXPECT_NE(r.status().details().value("hint", "").find("Content-Type: application/x-ndjson"),
              std::string::npos)
        << body;
  }
}

TEST(PointParser, MetricNameMustMatchPattern) {
  for (const char* key : {"cpu usage", "cpu/usage", "cpu{x}", ""}) {
    auto r = Json(std::string(R"({"partition_key":"p","value":1,"key":")") + key + "\"}");
    ExpectFieldError(r, "key");
  }
}

TEST(PointParser, MetricNameLengthIsCapped) {
  std::string ok(kMaxNameLength, 'm');
  std::string too_long(kMaxNameLength + 1, 'm');
  EXPECT_TRUE(Json(R"({"partition_key":"p","value":1,"key":")" + ok + "\"}").ok());
  ExpectFieldError(Json(R"({"partition_key":"p","value":1,"key":")" + too_long + "\"}"), "key");
}

TEST(PointParser, NonStringMetricIsRejected) {
  auto r = Json(R"({"partition_key":"p","value":1,"metric":5})");
  ExpectFieldError(r, "key");
  EXPECT_EQ(ErrorFor(r.status(), "key"), "must be a string");
}

TEST(PointParser, PartitionKeyMustBeANonEmptyString) {
  ExpectFieldError(Json(R"({"partition_key":"","value":1})"), "partition_key");
  ExpectFieldError(Json(R"({"partition_key":42,"value":1})"), "partition_key");
  ExpectFieldError(Json(R"({"partition_key":null,"value":1})"), "partition_key");
}

TEST(PointParser, PartitionKeyLengthIsCapped) {
  std::string ok(kMaxPartitionKeyLength, 'k');
  std::string too_long(kMaxPartitionKeyLength + 1, 'k');
  EXPECT_TRUE(Json(R"({"value":1,"partition_key":")" + ok + "\"}").ok());
  auto r = Json(R"({"value":1,"partition_key":")" + too_long + "\"}");
  ExpectFieldError(r, "partition_key");
  EXPECT_EQ(ErrorFor(r.status(), "partition_key"), "longer than 1024 bytes");
}

TEST(PointParser, TagsMustBeAnObject) {
  ExpectFieldError(Json(R"({"partition_key":"p","value":1,"tags":["a"]})"), "tags");
  ExpectFieldError(Json(R"({"partition_key":"p","value":1,"metadata":"x"})"), "metadata");
}

TEST(PointParser, TagValuesMustBeStrings) {
  auto r = Json(R"({"partition_key":"p","value":1,"tags":{"host":5}})");
  ExpectFieldError(r, "tags.host");
  EXPECT_EQ(ErrorFor(r.status(), "tags.host"), "tag value must be a string");
  ExpectFieldError(Json(R"({"partition_key":"p","value":1,"metadata":{"dc":null}})"), "metadata.dc");
}

TEST(PointParser, TagKeysMustMatchPattern) {
  auto r = Json(R"([{"partition_key":"p","value":1,"tags":{"bad key":"v"}}])");
  ExpectFieldError(r, "points[0].tags.bad key");
}

TEST(PointParser, TagKeyLengthIsCapped) {
  std::string k(kMaxNameLength + 1, 't');
  ExpectFieldError(Json(R"({"partition_key":"p","value":1,"tags":{")" + k + R"(":"v"}})"), "tags." + k);
}

TEST(PointParser, TagValueLengthIsCapped) {
  std::string ok(kMaxTagValueLength, 'v');
  std::string too_long(kMaxTagValueLength + 1, 'v');
  EXPECT_TRUE(Json(R"({"partition_key":"p","value":1,"tags":{"h":")" + ok + "\"}}").ok());
  auto r = Json(R"({"partition_key":"p","value":1,"tags":{"h":")" + too_long + "\"}}");
  ExpectFieldError(r, "tags.h");
  EXPECT_EQ(ErrorFor(r.status(), "tags.h"), "tag value longer than 1024 bytes");
}

TEST(PointParser, DuplicateTagKeyIsRejected) {
  auto r = Json(R"({"partition_key":"p","value":1,"tags":{"host":"a"},"metadata":{"host":"b"}})");
  ExpectFieldError(r, "tags.host");
  EXPECT_EQ(ErrorFor(r.status(), "tags.host"), "duplicate tag key");
}

TEST(PointParser, AtMost64Tags) {
  nlohmann::json point = {{"partition_key", "p"}, {"value", 1}};
  for (size_t i = 0; i < kMaxTagsPerPoint; ++i) point["tags"]["t" + std::to_string(i)] = "v";
  EXPECT_TRUE(Json(point.dump()).ok());
  point["tags"]["one_more"] = "v";
  auto r = Json(point.dump());
  ExpectFieldError(r, "tags");
  EXPECT_EQ(ErrorFor(r.status(), "tags"), "more than 64 tags");
}

TEST(PointParser, NonObjectBodyIsRejected) {
  ExpectFieldError(Json("5"), "body");
  ExpectFieldError(Json("\"point\""), "body");
  ExpectFieldError(Json("null"), "body");
}

TEST(PointParser, NonObjectArrayElementIsRejected) {
  auto r = Json(R"([1,{"partition_key":"p","value":1}])");
  ExpectFieldError(r, "points[0]");
  EXPECT_EQ(ErrorFor(r.status(), "points[0]"), "must be a JSON object");
}

TEST(PointParser, PointsMustBeAnArray) {
  auto r = Json(R"({"points":{"partition_key":"p","value":1}})");
  ExpectFieldError(r, "points");
  EXPECT_EQ(ErrorFor(r.status(), "points"), "must be an array");
}

TEST(PointParser, EmptyBatchIsRejected) {
  ExpectFieldError(Json("[]"), "points");
  ExpectFieldError(Json(R"({"points":[]})"), "points");
  EXPECT_EQ(ErrorFor(Json("[]").status(), "points"), "must contain at least one point");
}

TEST(PointParser, ErrorListIsCappedWithATotal) {
  std::string body = "[";
  for (int i = 0; i < 150; ++i) body += std::string(i ? "," : "") + R"({"partition_key":"p"})";
  body += "]";
  auto r = Json(body);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(Fields(r.status()).size(), kMaxReportedErrors);
  EXPECT_EQ(Fields(r.status()).front(), "points[0].value");
  EXPECT_EQ(Fields(r.status()).back(), "points[99].value");
  EXPECT_EQ(r.status().details().at("total_errors"), 150);
}

TEST(PointParser, NoTotalWhenErrorsFitUnderTheCap) {
  std::string body = "[";
  for (size_t i = 0; i < kMaxReportedErrors; ++i) body += std::string(i ? "," : "") + R"({"partition_key":"p"})";
  body += "]";
  auto r = Json(body);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(Fields(r.status()).size(), kMaxReportedErrors);
  EXPECT_FALSE(r.status().details().contains("total_errors"));
}

// ---------------------------------------------------------------------------
// Protobuf
// ---------------------------------------------------------------------------

raftmetrics::v1::Point* AddPoint(raftmetrics::v1::InsertRequest& req, const std::string& pk, double value) {
  auto* p = req.add_points();
  p->set_partition_key(pk);
  p->set_value(value);
  return p;
}

TEST(PointParser, ProtobufSinglePointIsNotABatch) {
  raftmetrics::v1::InsertRequest req;
  auto* p = AddPoint(req, "h1", 2.5);
  p->set_metric("cpu");
  p->set_timestamp("2024-01-20T15:30:00Z");
  (*p->mutable_tags())["host"] = "a";
  (*p->mutable_tags())["dc"] = "eu";
  auto r = Proto(req);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_FALSE(r->is_batch);
  ASSERT_EQ(r->PointCount(), 1u);
  EXPECT_EQ(Points(r)[0].partition_key, "h1");
  EXPECT_EQ(Points(r)[0].metric, "cpu");
  EXPECT_EQ(Points(r)[0].value, 2.5);
  EXPECT_EQ(Points(r)[0].timestamp_us, kJan20);
  EXPECT_EQ(Points(r)[0].tags, (Tags{{"dc", "eu"}, {"host", "a"}}));
}

TEST(PointParser, ProtobufContentTypeAliases) {
  raftmetrics::v1::InsertRequest req;
  AddPoint(req, "h1", 1);
  EXPECT_TRUE(ParseInsertBody(req.SerializeAsString(), "application/protobuf", kInsert).ok());
  EXPECT_TRUE(ParseInsertBody(req.SerializeAsString(), "Application/X-Protobuf; proto=x", kInsert).ok());
}

TEST(PointParser, ProtobufTimestampUsIsUsedWhenTextIsEmpty) {
  raftmetrics::v1::InsertRequest req;
  AddPoint(req, "a", 1)->set_timestamp_us(123);
  AddPoint(req, "b", 2);
  auto r = Proto(req);
  ASSERT_TRUE(r.ok());
  EXPECT_TRUE(r->is_batch);
  EXPECT_EQ(Points(r)[0].timestamp_us, 123);
  EXPECT_EQ(Points(r)[1].timestamp_us, 0);
  EXPECT_EQ(Points(r)[0].metric, "default");
}

TEST(PointParser, ProtobufEpochTimestampIsKeptDistinctFromUnset) {
  raftmetrics::v1::InsertRequest req;
  AddPoint(req, "a", 1)->set_timestamp("1970-01-01T00:00:00Z");
  auto r = Proto(req);
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(Points(r)[0].timestamp_us, 1);
}

TEST(PointParser, ProtobufSeriesExpandIntoPoints) {
  raftmetrics::v1::InsertRequest req;
  auto* s = req.add_series();
  s->set_metric("temp");
  s->set_partition_key("sensor-1");
  (*s->mutable_tags())["room"] = "r1";
  for (int i = 0; i < 4; ++i) {
    s->add_timestamps_us(1000 + i);
    s->add_values(i * 0.5);
  }
  auto r = Proto(req);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_TRUE(r->is_batch);
  ASSERT_EQ(r->PointCount(), 4u);
  for (int i = 0; i < 4; ++i) {
    EXPECT_EQ(Points(r)[i].metric, "temp");
    EXPECT_EQ(Points(r)[i].partition_key, "sensor-1");
    EXPECT_EQ(Points(r)[i].tags, (Tags{{"room", "r1"}}));
    EXPECT_EQ(Points(r)[i].timestamp_us, 1000 + i);
    EXPECT_EQ(Points(r)[i].value, i * 0.5);
  }
}

TEST(PointParser, ProtobufPointsAndSeriesTogether) {
  raftmetrics::v1::InsertRequest req;
  AddPoint(req, "p", 1);
  auto* s = req.add_series();
  s->set_partition_key("q");
  s->add_timestamps_us(5);
  s->add_values(2);
  auto r = Proto(req);
  ASSERT_TRUE(r.ok());
  EXPECT_TRUE(r->is_batch);
  ASSERT_EQ(r->PointCount(), 2u);
  EXPECT_EQ(Points(r)[0].partition_key, "p");
  EXPECT_EQ(Points(r)[1].partition_key, "q");
  EXPECT_EQ(Points(r)[1].metric, "default");
}

TEST(PointParser, ProtobufMetricsDialectPartitionsBySeriesKey) {
  raftmetrics::v1::InsertRequest req;
  auto* p = AddPoint(req, "", 1);
  p->set_metric("cpu");
  (*p->mutable_tags())["host"] = "a";
  auto* s = req.add_series();
  s->set_metric("mem");
  s->add_timestamps_us(1);
  s->add_values(1);
  auto r = Proto(req, kMetrics);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(Points(r)[0].partition_key, "cpu{host=a}");
  EXPECT_EQ(Points(r)[1].partition_key, "mem{}");
}

TEST(PointParser, ProtobufMetricsDialectRequiresMetric) {
  raftmetrics::v1::InsertRequest req;
  AddPoint(req, "p", 1);
  ExpectFieldError(Proto(req, kMetrics), "key");
  auto* s = req.add_series();
  s->add_timestamps_us(1);
  s->add_values(1);
  auto r = Proto(req, kMetrics);
  ExpectFieldError(r, "points[0].key");
  ExpectFieldError(r, "series[0].key");
}

TEST(PointParser, ProtobufInsertDialectRequiresPartitionKey) {
  raftmetrics::v1::InsertRequest req;
  AddPoint(req, "", 1);
  ExpectFieldError(Proto(req), "partition_key");
  auto* s = req.add_series();
  s->add_timestamps_us(1);
  s->add_values(1);
  ExpectFieldError(Proto(req), "series[0].partition_key");
}

TEST(PointParser, ProtobufNonFiniteValuesAreRejected) {
  raftmetrics::v1::InsertRequest req;
  AddPoint(req, "a", 1);
  AddPoint(req, "b", std::numeric_limits<double>::quiet_NaN());
  AddPoint(req, "c", std::numeric_limits<double>::infinity());
  auto* s = req.add_series();
  s->set_partition_key("s");
  for (double v : {1.0, -std::numeric_limits<double>::infinity(), 2.0}) {
    s->add_timestamps_us(1);
    s->add_values(v);
  }
  auto r = Proto(req);
  ExpectFieldError(r, "points[1].value");
  ExpectFieldError(r, "points[2].value");
  ExpectFieldError(r, "series[0].values[1]");
  EXPECT_EQ(Fields(r.status()).size(), 3u);
}

TEST(PointParser, ProtobufSingleNanPointHasBareFieldName) {
  raftmetrics::v1::InsertRequest req;
  AddPoint(req, "a", std::numeric_limits<double>::quiet_NaN());
  auto r = Proto(req);
  ExpectFieldError(r, "value");
  EXPECT_EQ(ErrorFor(r.status(), "value"), "must be a finite number");
}

TEST(PointParser, ProtobufBadTimestampNamesThePoint) {
  raftmetrics::v1::InsertRequest req;
  AddPoint(req, "a", 1);
  AddPoint(req, "b", 1)->set_timestamp("2023-02-29T00:00:00Z");
  ExpectFieldError(Proto(req), "points[1].timestamp");
}

TEST(PointParser, ProtobufSeriesLengthMismatchIsRejected) {
  raftmetrics::v1::InsertRequest req;
  auto* s = req.add_series();
  s->set_partition_key("s");
  s->add_timestamps_us(1);
  s->add_timestamps_us(2);
  s->add_values(1);
  auto r = Proto(req);
  ExpectFieldError(r, "series[0].values");
  EXPECT_EQ(ErrorFor(r.status(), "series[0].values"), "must have as many entries as timestamps_us");
}

TEST(PointParser, ProtobufTagValidation) {
  raftmetrics::v1::InsertRequest req;
  auto* p = AddPoint(req, "a", 1);
  (*p->mutable_tags())["bad key"] = "v";
  (*p->mutable_tags())["long"] = std::string(kMaxTagValueLength + 1, 'x');
  p->set_metric("bad metric");
  auto r = Proto(req);
  ExpectFieldError(r, "tags.bad key");
  ExpectFieldError(r, "tags.long");
  ExpectFieldError(r, "key");
}

TEST(PointParser, EmptyProtobufRequestHasNoPoints) {
  raftmetrics::v1::InsertRequest req;
  ExpectFieldError(Proto(req), "points");
}

TEST(PointParser, ProtobufSeriesWithoutValuesIsRejected) {
  raftmetrics::v1::InsertRequest req;
  req.add_series()->set_partition_key("s");
  auto r = Proto(req);
  ExpectFieldError(r, "series[0].values");
  EXPECT_EQ(ErrorFor(r.status(), "series[0].values"), "must contain at least one value");
}

TEST(PointParser, MalformedProtobufIsInvalidRequest) {
  // Field 1 (points), length-delimited, claims 5 bytes but only 2 follow.
  const std::string truncated("\x0a\x05\x0a\x01", 4);
  // Wire type 7 does not exist.
  const std::string bad_wire_type("\x0f\x01", 2);
  for (const std::string& body : {truncated, bad_wire_type, std::string(R"({"value":1})")}) {
    auto r = ParseInsertBody(body, "application/x-protobuf", kInsert);
    ASSERT_FALSE(r.ok());
    EXPECT_EQ(r.status().code(), Code::kInvalidRequest);
    EXPECT_EQ(r.status().message(), "Malformed protobuf");
  }
}

}  // namespace
}  // namespace rm
