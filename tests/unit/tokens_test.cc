// Tests of src/gateway/tokens: AUTH_TOKENS and tokens-file parsing, expiry,
// bearer header parsing, constant-time comparison and the derived secret.
#include "src/gateway/tokens.h"

#include "src/common/time_util.h"

#include <gtest/gtest.h>

#include <cstdio>
#include <fstream>
#include <set>

namespace rm {
namespace {

const int64_t kNow = *ParseIso8601("2026-06-01T00:00:00Z");

TEST(TokenStore, NoTokensMeansDisabled) {
  auto store = TokenStore::Load("", "");
  ASSERT_TRUE(store.ok());
  EXPECT_FALSE(store->enabled());
  EXPECT_EQ(store->DerivedClusterSecret().empty(), false);  // defined, but unused when disabled
}

TEST(TokenStore, AuthTokensAreCommaSeparated) {
  auto store = TokenStore::Load(" alpha , beta,,", "");
  ASSERT_TRUE(store.ok()) << store.status().ToString();
  EXPECT_EQ(store->size(), 2u);
  EXPECT_EQ(store->Check("alpha", kNow).status, TokenStatus::kValid);
  EXPECT_EQ(store->Check("beta", kNow).status, TokenStatus::kValid);
  EXPECT_EQ(store->Check("gamma", kNow).status, TokenStatus::kInvalid);
  EXPECT_EQ(store->Check("alph", kNow).status, TokenStatus::kInvalid);
  EXPECT_EQ(store->Check("alphaa", kNow).status, TokenStatus::kInvalid);
  EXPECT_EQ(store->Check(std::nullopt, kNow).status, TokenStatus::kMissing);
  EXPECT_EQ(store->Check("", kNow).status, TokenStatus::kMissing);
  EXPECT_EQ(store->Check("alpha", kNow).entry->name, "env-1");
}

TEST(TokenStore, RejectsTokensThatCannotTravelInAHeader) {
  EXPECT_FALSE(TokenStore::Load("has space", "").ok());
  EXPECT_FALSE(TokenStore::Load(std::string(600, 'a'), "").ok());
}

TEST(TokenStore, FileLinesWithNamesAndExpiry) {
  auto entries = TokenStore::ParseFile(
      "# ops tokens\n"
      "\n"
      "grafana:tok-g\n"
      "  ci : tok-ci : 2026-12-31T00:00:00Z \n"
      "old:tok-old:2026-01-01T00:00:00Z\n",
      "tokens.txt");
  ASSERT_TRUE(entries.ok()) << entries.status().ToString();
  ASSERT_EQ(entries->size(), 3u);
  EXPECT_EQ((*entries)[0].name, "grafana");
  EXPECT_EQ((*entries)[0].token, "tok-g");
  EXPECT_FALSE((*entries)[0].expires_us.has_value());
  EXPECT_EQ((*entries)[1].name, "ci");
  EXPECT_EQ((*entries)[1].token, "tok-ci");
  EXPECT_EQ(*(*entries)[1].expires_us, *ParseIso8601("2026-12-31T00:00:00Z"));
}

TEST(TokenStore, FileErrorsNameTheLine) {
  auto bad = TokenStore::ParseFile("a:b\nnocolon\n", "t.txt");
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.status().message().find("t.txt:2"), std::string::npos) << bad.status().message();
  auto bad_expiry = TokenStore::ParseFile("a:b:tomorrow\n", "t.txt");
  ASSERT_FALSE(bad_expiry.ok());
  EXPECT_NE(bad_expiry.status().message().find("ISO 8601"), std::string::npos);
  EXPECT_FALSE(TokenStore::ParseFile(":tok\n", "t.txt").ok());
  EXPECT_FALSE(TokenStore::ParseFile("name:\n", "t.txt").ok());
}

TEST(TokenStore, ExpiredTokensAreRecognisedAsExpired) {
  std::string path = testing::TempDir() + "/tokens_test.txt";
  {
    std::ofstream f(path);
    f << "live:tok-live:2026-12-31T00:00:00Z\nold:tok-old:2026-01-01T00:00:00Z\n";
  }
  auto store = TokenStore::Load("plain", path);
  ASSERT_TRUE(store.ok()) << store.status().ToString();
  EXPECT_EQ(store->size(), 3u);
  EXPECT_EQ(store->Check("tok-live", kNow).status, TokenStatus::kValid);
  auto old = store->Check("tok-old", kNow);
  EXPECT_EQ(old.status, TokenStatus::kExpired);
  ASSERT_NE(old.entry, nullptr);
  EXPECT_EQ(FormatIso8601(*old.entry->expires_us), "2026-01-01T00:00:00Z");
  // Expiry is exclusive of the instant itself.
  EXPECT_EQ(store->Check("tok-live", *ParseIso8601("2026-12-31T00:00:00Z")).status, TokenStatus::kExpired);
  std::remove(path.c_str());
}

TEST(TokenStore, MissingFileIsAnError) {
  auto store = TokenStore::Load("", "/nonexistent/tokens.txt");
  ASSERT_FALSE(store.ok());
  EXPECT_NE(store.status().message().find("/nonexistent/tokens.txt"), std::string::npos);
}

TEST(TokenStore, DerivedSecretDependsOnEveryTokenNotTheirOrder) {
  auto a = TokenStore::Load("x,y", "");
  auto b = TokenStore::Load("y,x", "");
  auto c = TokenStore::Load("x,z", "");
  EXPECT_EQ(a->DerivedClusterSecret(), b->DerivedClusterSecret());
  EXPECT_NE(a->DerivedClusterSecret(), c->DerivedClusterSecret());
  EXPECT_EQ(a->Check(a->DerivedClusterSecret(), kNow).status, TokenStatus::kInvalid);
}

TEST(BearerToken, ParsesTheScheme) {
  EXPECT_EQ(BearerToken("Bearer abc"), "abc");
  EXPECT_EQ(BearerToken("bearer abc"), "abc");
  EXPECT_EQ(BearerToken("BEARER   abc  "), "abc");
  EXPECT_EQ(BearerToken("Bearer "), "");
  EXPECT_FALSE(BearerToken("").has_value());
  EXPECT_FALSE(BearerToken("Basic YWxhZGRpbg==").has_value());
  EXPECT_FALSE(BearerToken("Bearerabc").has_value());
  EXPECT_FALSE(BearerToken("abc").has_value());
}

TEST(ConstantTimeEquals, ComparesWholeStrings) {
  EXPECT_TRUE(ConstantTimeEquals("", ""));
  EXPECT_TRUE(ConstantTimeEquals("secret", "secret"));
  EXPECT_FALSE(ConstantTimeEquals("secret", "secreT"));
  EXPECT_FALSE(ConstantTimeEquals("secret", "secret2"));
  EXPECT_FALSE(ConstantTimeEquals("secret", ""));
  EXPECT_FALSE(ConstantTimeEquals(std::string("a\0b", 3), "a"));
}

TEST(GenerateToken, IsRandomHex) {
  std::set<std::string> seen;
  for (int i = 0; i < 100; ++i) {
    std::string t = GenerateToken();
    ASSERT_EQ(t.size(), 32u);
    EXPECT_EQ(t.find_first_not_of("0123456789abcdef"), std::string::npos) << t;
    seen.insert(t);
  }
  EXPECT_EQ(seen.size(), 100u);
}

}  // namespace
}  // namespace rm
