#include "src/common/log_limiter.h"

#include <algorithm>

namespace rm {

LogLimiter::LogLimiter(uint32_t per_minute, size_t max_causes)
    : per_minute_(std::max<uint32_t>(1, per_minute)), max_causes_(std::max<size_t>(1, max_causes)) {}

bool LogLimiter::Allow(const std::string& cause, int64_t now_us, uint64_t* suppressed) {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = causes_.find(cause);
  if (it == causes_.end()) {
    if (causes_.size() >= max_causes_) {
      causes_.erase(lru_.back());
      lru_.pop_back();
    }
    lru_.push_front(cause);
    it = causes_.emplace(cause, Cause{static_cast<double>(per_minute_), now_us, 0, lru_.begin()}).first;
  } else {
    lru_.splice(lru_.begin(), lru_, it->second.lru);
  }
  Cause& c = it->second;
  const double per_us = per_minute_ / 60e6;
  c.tokens = std::min<double>(per_minute_, c.tokens + std::max<int64_t>(0, now_us - c.updated_us) * per_us);
  c.updated_us = std::max(c.updated_us, now_us);
  if (c.tokens < 1.0) {
    ++c.suppressed;
    return false;
  }
  c.tokens -= 1.0;
  *suppressed = c.suppressed;
  c.suppressed = 0;
  return true;
}

}  // namespace rm
