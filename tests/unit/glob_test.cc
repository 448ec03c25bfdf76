#include "src/common/glob.h"

#include <gtest/gtest.h>

namespace rm {
namespace {

TEST(GlobMatch, StarAndQuestionMark) {
  EXPECT_TRUE(GlobMatch("web-*", "web-1"));
  EXPECT_TRUE(GlobMatch("web-*", "web-"));
  EXPECT_FALSE(GlobMatch("web-*", "api-1"));
  EXPECT_TRUE(GlobMatch("web-1?", "web-12"));
  EXPECT_FALSE(GlobMatch("web-1?", "web-1"));
  EXPECT_TRUE(GlobMatch("*-1*", "api-17"));
  EXPECT_TRUE(GlobMatch("*", ""));
  EXPECT_TRUE(GlobMatch("a*b*c", "axxbyyc"));
  EXPECT_FALSE(GlobMatch("a*b*c", "axxbyy"));
}

// Found by tests/fuzz/fuzz_query_params: a '*' in the pattern met a '*' in the
// text, was taken as a literal, and the star's backtracking was lost.
TEST(GlobMatch, StarStillMatchesTextContainingStarsAndQuestionMarks) {
  EXPECT_TRUE(GlobMatch("*", "*?*"));
  EXPECT_TRUE(GlobMatch("*", "a*b"));
  EXPECT_TRUE(GlobMatch("web-*", "web-*x"));
  EXPECT_TRUE(GlobMatch("*x", "**x"));
  EXPECT_TRUE(GlobMatch("a*", "a*"));
  EXPECT_FALSE(GlobMatch("*y", "*x"));
}

TEST(GlobMatch, EverythingElseIsLiteral) {
  EXPECT_FALSE(GlobMatch("web.1", "webx1"));
  EXPECT_TRUE(GlobMatch("x' OR 1=1 --", "x' OR 1=1 --"));
  EXPECT_FALSE(GlobMatch("[ab]", "a"));
  EXPECT_FALSE(GlobMatch("%", "anything"));
}

}  // namespace
}  // namespace rm
