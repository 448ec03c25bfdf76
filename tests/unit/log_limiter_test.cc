#include "src/common/log_limiter.h"

#include <gtest/gtest.h>

namespace rm {
namespace {

const int64_t kMinute = 60LL * 1000000;

TEST(LogLimiter, ACauseWritesItsQuotaThenCountsWhatItSuppressed) {
  LogLimiter limiter(10);
  uint64_t suppressed = 99;
  int allowed = 0;
  for (int i = 0; i < 1000; ++i) allowed += limiter.Allow("protobuf:utf8", 0, &suppressed) ? 1 : 0;
  EXPECT_EQ(allowed, 10);
  EXPECT_EQ(suppressed, 0u);
  // Another cause has its own quota.
  EXPECT_TRUE(limiter.Allow("access 503 /insert", 0, &suppressed));
  // Six seconds refill one line, which says how many were refused meanwhile.
  EXPECT_FALSE(limiter.Allow("protobuf:utf8", kMinute / 20, &suppressed));
  ASSERT_TRUE(limiter.Allow("protobuf:utf8", kMinute / 10, &suppressed));
  EXPECT_EQ(suppressed, 991u);
}

TEST(LogLimiter, CausesAreBoundedAndTheOldestIsForgotten) {
  LogLimiter limiter(1, /*max_causes=*/3);
  uint64_t suppressed = 0;
  for (const char* c : {"a", "b", "c"}) EXPECT_TRUE(limiter.Allow(c, 0, &suppressed));
  EXPECT_FALSE(limiter.Allow("a", 0, &suppressed));  // a is now the most recent
  EXPECT_TRUE(limiter.Allow("d", 0, &suppressed));   // b, the least recent, goes
  EXPECT_TRUE(limiter.Allow("b", 0, &suppressed));   // a fresh quota
  EXPECT_FALSE(limiter.Allow("a", 0, &suppressed));
}

}  // namespace
}  // namespace rm
