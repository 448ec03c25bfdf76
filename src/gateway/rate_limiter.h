// Per-token rate limiting: a token bucket of `per_minute` capacity refilled
// continuously at per_minute/60 per second. A request takes one token; an empty
// bucket refuses it. Thread-safe: the check and the take are one step under a
// lock, so concurrent clients cannot slip extra requests through.
//
// Memory is bounded: at most `max_keys` buckets are kept. A bucket that has
// refilled completely is indistinguishable from a new one, so those are dropped
// first; if every bucket is still partly empty the least recently used goes.
#pragma once

#include <cstdint>
#include <list>
#include <mutex>
#include <string>
#include <unordered_map>

namespace rm {

struct RateDecision {
  bool allowed = true;
  uint32_t limit = 0;       // capacity (requests per minute)
  uint32_t remaining = 0;   // whole requests left after this one
  int64_t retry_after_us = 0;  // until the next request is allowed (0 when allowed)
  int64_t reset_at_us = 0;     // when the bucket is full again
};

class RateLimiter {
 public:
  // per_minute 0 disables limiting (every request is allowed).
  explicit RateLimiter(uint32_t per_minute, size_t max_keys = 65536);

  RateDecision Take(const std::string& key, int64_t now_us);
  bool enabled() const { return per_minute_ > 0; }
  uint32_t per_minute() const { return per_minute_; }
  size_t tracked_keys() const;

 private:
  struct Bucket {
    double tokens;
    int64_t updated_us;
    std::list<std::string>::iterator lru;
  };
  void Refill(Bucket& b, int64_t now_us) const;
  void MakeRoom(int64_t now_us);

  const uint32_t per_minute_;
  const size_t max_keys_;
  const double per_us_;  // tokens added per microsecond
  mutable std::mutex mu_;
  std::unordered_map<std::string, Bucket> buckets_;
  std::list<std::string> lru_;  // front = most recently used
};

}  // namespace rm
