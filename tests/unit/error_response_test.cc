// Tests of src/net/error_response: the single mapping from Status codes to HTTP
// statuses and the seed's error shape.
#include "src/net/error_response.h"

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <string>

namespace rm {
namespace {

std::string HeaderOf(const HttpResponse& r, const std::string& name) {
  for (const auto& [k, v] : r.headers) {
    if (k == name) return v;
  }
  return "";
}

TEST(ErrorResponse, StatusMapping) {
  EXPECT_EQ(HttpStatusFor(Code::kOk), 200);
  EXPECT_EQ(HttpStatusFor(Code::kValidation), 400);
  EXPECT_EQ(HttpStatusFor(Code::kInvalidRequest), 400);
  EXPECT_EQ(HttpStatusFor(Code::kNotFound), 404);
  EXPECT_EQ(HttpStatusFor(Code::kMethodNotAllowed), 405);
  EXPECT_EQ(HttpStatusFor(Code::kPayloadTooLarge), 413);
  EXPECT_EQ(HttpStatusFor(Code::kUnavailable), 503);
  EXPECT_EQ(HttpStatusFor(Code::kTimeout), 503);
  EXPECT_EQ(HttpStatusFor(Code::kStorage), 500);
  EXPECT_EQ(HttpStatusFor(Code::kInternal), 500);
}

TEST(ErrorResponse, CodeNames) {
  EXPECT_STREQ(ErrorCodeName(Code::kValidation), "VALIDATION_ERROR");
  EXPECT_STREQ(ErrorCodeName(Code::kInvalidRequest), "INVALID_REQUEST");
  EXPECT_STREQ(ErrorCodeName(Code::kNotFound), "NOT_FOUND");
  EXPECT_STREQ(ErrorCodeName(Code::kMethodNotAllowed), "METHOD_NOT_ALLOWED");
  EXPECT_STREQ(ErrorCodeName(Code::kPayloadTooLarge), "PAYLOAD_TOO_LARGE");
  EXPECT_STREQ(ErrorCodeName(Code::kUnavailable), "UNAVAILABLE");
  EXPECT_STREQ(ErrorCodeName(Code::kTimeout), "TIMEOUT");
  EXPECT_STREQ(ErrorCodeName(Code::kStorage), "STORAGE_ERROR");
  EXPECT_STREQ(ErrorCodeName(Code::kInternal), "INTERNAL_ERROR");
}

TEST(ErrorResponse, BodyHasTheSeedShape) {
  HttpResponse r = ErrorResponse(Status(Code::kValidation, "Invalid request parameters",
                                        {{"fields", {{{"field", "value"}, {"error", "is required"}}}}}));
  EXPECT_EQ(r.status, 400);
  EXPECT_EQ(r.content_type, "application/json");
  auto body = nlohmann::json::parse(r.body);
  EXPECT_EQ(body.at("error"), true);
  EXPECT_EQ(body.at("code"), "VALIDATION_ERROR");
  EXPECT_EQ(body.at("message"), "Invalid request parameters");
  EXPECT_EQ(body.at("details").at("fields")[0].at("field"), "value");
  EXPECT_EQ(body.size(), 4u);
  EXPECT_TRUE(r.headers.empty());
}

// Found by tests/fuzz/fuzz_http_request and fuzz_query_params: a detail that
// echoes non-UTF-8 request bytes (GET /%FF, ?%FF=1) made dump() throw, and the
// server answered 500 INTERNAL_ERROR instead of the 404 / 400.
TEST(ErrorResponse, NonUtf8DetailsAreReplacedNotThrown) {
  HttpResponse r;
  ASSERT_NO_THROW(r = ErrorResponse(Status(Code::kNotFound, "No such endpoint", {{"path", "/\xff\xfe"}})));
  EXPECT_EQ(r.status, 404);
  auto body = nlohmann::json::parse(r.body);
  EXPECT_EQ(body.at("code"), "NOT_FOUND");
  EXPECT_EQ(body.at("details").at("path"), "/\xef\xbf\xbd\xef\xbf\xbd");  // two U+FFFD
  Status bad_name(Code::kValidation, "Invalid request parameters",
                  {{"fields", {{{"field", "\xc3"}, {"error", "unknown parameter"}}}}});
  ASSERT_NO_THROW(r = ErrorResponse(bad_name));
  EXPECT_EQ(r.status, 400);
}

TEST(ErrorResponse, DetailsDefaultToAnEmptyObject) {
  auto body = nlohmann::json::parse(ErrorResponse(Status(Code::kInternal, "boom")).body);
  EXPECT_TRUE(body.at("details").is_object());
  EXPECT_TRUE(body.at("details").empty());
}

TEST(ErrorResponse, RetryAfterHeaderFromDetails) {
  HttpResponse r = ErrorResponse(Status(Code::kUnavailable, "later", {{"retry_after", "5s"}}));
  EXPECT_EQ(r.status, 503);
  EXPECT_EQ(HeaderOf(r, "Retry-After"), "5");
  HttpResponse bare = ErrorResponse(Status(Code::kUnavailable, "later", {{"retry_after", "2"}}));
  EXPECT_EQ(HeaderOf(bare, "Retry-After"), "2");
}

TEST(ErrorResponse, NoRetryAfterWithoutAStringHint) {
  EXPECT_EQ(HeaderOf(ErrorResponse(Status(Code::kUnavailable, "x")), "Retry-After"), "");
  EXPECT_EQ(HeaderOf(ErrorResponse(Status(Code::kUnavailable, "x", {{"retry_after", 5}})), "Retry-After"), "");
}

TEST(Status, ToStringIncludesDetails) {
  EXPECT_EQ(Status::Ok().ToString(), "OK");
  EXPECT_EQ(Status(Code::kInternal, "boom").ToString(), "boom");
  EXPECT_EQ(Status(Code::kInternal, "boom", {{"a", 1}}).ToString(), "boom {\"a\":1}");
}

TEST(Result, OkStatusIsNotAValue) {
  Result<int> r = Status::Ok();
  EXPECT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), Code::kInternal);
  Result<int> v = 5;
  ASSERT_TRUE(v.ok());
  EXPECT_EQ(*v, 5);
}

}  // namespace
}  // namespace rm
