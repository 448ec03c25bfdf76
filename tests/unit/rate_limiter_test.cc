// Tests of src/gateway/rate_limiter: token bucket arithmetic, headers' inputs,
// exactness under concurrency and bounded memory.
#include "src/gateway/rate_limiter.h"

#include <gtest/gtest.h>

#include <atomic>
#include <thread>
#include <vector>

namespace rm {
namespace {

constexpr int64_t kSecond = 1000000;
constexpr int64_t kT0 = 1700000000LL * kSecond;

TEST(RateLimiter, AllowsTheCapacityThenRefuses) {
  RateLimiter limiter(60);  // one per second
  for (int i = 0; i < 60; ++i) {
    auto d = limiter.Take("t", kT0);
    ASSERT_TRUE(d.allowed) << i;
    EXPECT_EQ(d.remaining, static_cast<uint32_t>(59 - i));
    EXPECT_EQ(d.limit, 60u);
  }
  auto d = limiter.Take("t", kT0);
  EXPECT_FALSE(d.allowed);
  EXPECT_EQ(d.remaining, 0u);
  EXPECT_EQ(d.retry_after_us, kSecond);
  EXPECT_EQ(d.reset_at_us, kT0 + 60 * kSecond);
}

TEST(RateLimiter, RefillsContinuously) {
  RateLimiter limiter(60);
  for (int i = 0; i < 60; ++i) ASSERT_TRUE(limiter.Take("t", kT0).allowed);
  EXPECT_FALSE(limiter.Take("t", kT0 + kSecond / 2).allowed);
  auto d = limiter.Take("t", kT0 + kSecond);  // one token back after a second
  EXPECT_TRUE(d.allowed);
  EXPECT_FALSE(limiter.Take("t", kT0 + kSecond).allowed);
  // Half a minute later: 30 more.
  int allowed = 0;
  for (int i = 0; i < 100; ++i) allowed += limiter.Take("t", kT0 + 31 * kSecond).allowed;
  EXPECT_EQ(allowed, 30);
}

TEST(RateLimiter, NeverExceedsCapacityAfterIdling) {
  RateLimiter limiter(10);
  int allowed = 0;
  for (int i = 0; i < 100; ++i) allowed += limiter.Take("t", kT0 + 3600 * kSecond).allowed;
  EXPECT_EQ(allowed, 10);
}

TEST(RateLimiter, KeysAreIndependent) {
  RateLimiter limiter(2);
  EXPECT_TRUE(limiter.Take("a", kT0).allowed);
  EXPECT_TRUE(limiter.Take("a", kT0).allowed);
  EXPECT_FALSE(limiter.Take("a", kT0).allowed);
  EXPECT_TRUE(limiter.Take("b", kT0).allowed);
}

TEST(RateLimiter, ZeroDisables) {
  RateLimiter limiter(0);
  EXPECT_FALSE(limiter.enabled());
  for (int i = 0; i < 10000; ++i) ASSERT_TRUE(limiter.Take("t", kT0).allowed);
  EXPECT_EQ(limiter.tracked_keys(), 0u);
}

TEST(RateLimiter, ExactUnderConcurrentClients) {
  RateLimiter limiter(1000);
  std::atomic<int> allowed{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 8; ++t) {
    threads.emplace_back([&] {
      for (int i = 0; i < 500; ++i) allowed += limiter.Take("shared", kT0).allowed;
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(allowed.load(), 1000);  // 4000 tried at one instant: exactly the capacity passes
}

TEST(RateLimiter, MemoryIsBoundedForManyKeys) {
  RateLimiter limiter(100, /*max_keys=*/1000);
  for (int i = 0; i < 100000; ++i) limiter.Take("key-" + std::to_string(i), kT0 + i);
  EXPECT_LE(limiter.tracked_keys(), 1000u);
  // A hot key that keeps its bucket partly empty is not forgotten (it is recent).
  RateLimiter hot(3, 4);
  for (int i = 0; i < 3; ++i) hot.Take("hot", kT0);
  for (int i = 0; i < 10; ++i) {
    EXPECT_FALSE(hot.Take("hot", kT0).allowed) << i;
    hot.Take("other-" + std::to_string(i), kT0);
  }
}

}  // namespace
}  // namespace rm
