// Tests of src/net/http_types: URL decoding/encoding, query strings and the
// request accessors.
#include "src/net/http_types.h"

#include <gtest/gtest.h>

#include <map>
#include <string>

namespace rm {
namespace {

TEST(UrlDecode, PercentEscapesAndPlus) {
  EXPECT_EQ(UrlDecode("a%20b"), "a b");
  EXPECT_EQ(UrlDecode("a+b"), "a b");
  EXPECT_EQ(UrlDecode("%2B%2b"), "++");
  EXPECT_EQ(UrlDecode("2024-01-20T15%3A30%3A00%2B02%3A00"), "2024-01-20T15:30:00+02:00");
  EXPECT_EQ(UrlDecode("caf%C3%A9"), "caf\xc3\xa9");
  EXPECT_EQ(UrlDecode(""), "");
  EXPECT_EQ(UrlDecode("plain"), "plain");
}

TEST(UrlDecode, InvalidEscapesAreKeptLiterally) {
  EXPECT_EQ(UrlDecode("100%"), "100%");
  EXPECT_EQ(UrlDecode("%zz"), "%zz");
  EXPECT_EQ(UrlDecode("%4"), "%4");
  EXPECT_EQ(UrlDecode("%g1%41"), "%g1A");
}

TEST(UrlDecode, EscapeAtTheVeryEndIsDecoded) {
  EXPECT_EQ(UrlDecode("%41"), "A");
  EXPECT_EQ(UrlDecode("x%41"), "xA");
}

TEST(UrlEncode, ReservedCharactersAreEscaped) {
  EXPECT_EQ(UrlEncode("a-b_c.d~e"), "a-b_c.d~e");
  EXPECT_EQ(UrlEncode("a b+c&d=e/f"), "a%20b%2Bc%26d%3De%2Ff");
  EXPECT_EQ(UrlEncode("\xc3\xa9"), "%C3%A9");
}

TEST(UrlEncode, RoundTripsThroughDecode) {
  for (const char* s : {"2024-01-20T15:30:00+02:00", "cpu{host=a,dc=eu}", "100% & more", "\x01\xff"}) {
    EXPECT_EQ(UrlDecode(UrlEncode(s)), s);
  }
}

TEST(ParseQueryString, SplitsAndDecodesPairs) {
  auto q = ParseQueryString("metric=cpu.usage&from=2024-01-20T15%3A30%3A00Z&partition_key=a+b");
  EXPECT_EQ(q, (std::map<std::string, std::string>{
                   {"metric", "cpu.usage"}, {"from", "2024-01-20T15:30:00Z"}, {"partition_key", "a b"}}));
}

TEST(ParseQueryString, EmptyPartsAndBareKeys) {
  EXPECT_TRUE(ParseQueryString("").empty());
  EXPECT_TRUE(ParseQueryString("&&").empty());
  auto q = ParseQueryString("flag&x=&=v&y=1");
  EXPECT_EQ(q, (std::map<std::string, std::string>{{"flag", ""}, {"x", ""}, {"", "v"}, {"y", "1"}}));
}

TEST(ParseQueryString, LastValueWins) {
  EXPECT_EQ(ParseQueryString("a=1&a=2").at("a"), "2");
}

TEST(ParseQueryString, OnlyTheFirstEqualsSplits) {
  EXPECT_EQ(ParseQueryString("expr=a=b").at("expr"), "a=b");
}

TEST(ParseQueryString, EncodedSeparatorsDoNotSplit) {
  auto q = ParseQueryString("k%26x=v%3Dw");
  EXPECT_EQ(q, (std::map<std::string, std::string>{{"k&x", "v=w"}}));
}

TEST(HttpRequest, HeaderAndParamAccessors) {
  HttpRequest req;
  req.headers["content-type"] = "application/json";
  req.query["metric"] = "cpu";
  EXPECT_EQ(req.Header("content-type"), "application/json");
  EXPECT_EQ(req.Header("accept"), "");
  ASSERT_NE(req.Param("metric"), nullptr);
  EXPECT_EQ(*req.Param("metric"), "cpu");
  EXPECT_EQ(req.Param("from"), nullptr);
}

TEST(HttpResponse, JsonHelperSetsStatusBodyAndType) {
  HttpResponse r = HttpResponse::Json(201, "{}");
  EXPECT_EQ(r.status, 201);
  EXPECT_EQ(r.body, "{}");
  EXPECT_EQ(r.content_type, "application/json");
  EXPECT_TRUE(r.headers.empty());
}

}  // namespace
}  // namespace rm
