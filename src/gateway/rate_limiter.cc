#include "src/gateway/rate_limiter.h"

#include <algorithm>
#include <cmath>

namespace rm {

RateLimiter::RateLimiter(uint32_t per_minute, size_t max_keys)
    : per_minute_(per_minute), max_keys_(std::max<size_t>(1, max_keys)), per_us_(per_minute / 60e6) {}

void RateLimiter::Refill(Bucket& b, int64_t now_us) const {
  if (now_us > b.updated_us) {
    b.tokens = std::min<double>(per_minute_, b.tokens + (now_us - b.updated_us) * per_us_);
    b.updated_us = now_us;
  }
}

void RateLimiter::MakeRoom(int64_t now_us) {
  for (auto it = buckets_.begin(); it != buckets_.end();) {
    Refill(it->second, now_us);
    if (it->second.tokens >= per_minute_) {
      lru_.erase(it->second.lru);
      it = buckets_.erase(it);
    } else {
      ++it;
    }
  }
  while (buckets_.size() >= max_keys_ && !lru_.empty()) {
    buckets_.erase(lru_.back());
    lru_.pop_back();
  }
}

RateDecision RateLimiter::Take(const std::string& key, int64_t now_us) {
  RateDecision d;
  d.limit = per_minute_;
  if (per_minute_ == 0) return d;
  std::lock_guard<std::mutex> lock(mu_);
  auto it = buckets_.find(key);
  if (it == buckets_.end()) {
    if (buckets_.size() >= max_keys_) MakeRoom(now_us);
    lru_.push_front(key);
    it = buckets_.emplace(key, Bucket{static_cast<double>(per_minute_), now_us, lru_.begin()}).first;
  } else {
    lru_.splice(lru_.begin(), lru_, it->second.lru);
    Refill(it->second, now_us);
  }
  Bucket& b = it->second;
  if (b.tokens >= 1.0) {
    b.tokens -= 1.0;
    d.allowed = true;
  } else {
    d.allowed = false;
    d.retry_after_us = static_cast<int64_t>(std::ceil((1.0 - b.tokens) / per_us_));
  }
  d.remaining = static_cast<uint32_t>(std::floor(b.tokens));
  d.reset_at_us = now_us + static_cast<int64_t>(std::ceil((per_minute_ - b.tokens) / per_us_));
  return d;
}

size_t RateLimiter::tracked_keys() const {
  std::lock_guard<std::mutex> lock(mu_);
  return buckets_.size();
}

}  // namespace rm
