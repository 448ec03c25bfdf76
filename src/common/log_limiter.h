// LogLimiter: bounds how often one cause may write a log line, so a client
// that triggers the same warning on every request (a flood of bad protobuf
// bodies, failing requests) cannot flood the log. Each cause may write
// `per_minute` lines per minute (a token bucket refilled continuously); lines
// over that are counted, and the next line the cause may write says how many
// were suppressed. Causes are strings chosen by the caller (a source location,
// "access 503 /insert"); at most `max_causes` are tracked, the least recently
// seen forgotten first. Thread-safe.
#pragma once

#include <cstdint>
#include <list>
#include <mutex>
#include <string>
#include <unordered_map>

namespace rm {

class LogLimiter {
 public:
  explicit LogLimiter(uint32_t per_minute, size_t max_causes = 1024);

  // Whether a line of `cause` may be written now. When it may, `*suppressed`
  // is the number of its lines refused since its last line (0 usually).
  bool Allow(const std::string& cause, int64_t now_us, uint64_t* suppressed);

 private:
  struct Cause {
    double tokens;
    int64_t updated_us;
    uint64_t suppressed;
    std::list<std::string>::iterator lru;
  };
  const uint32_t per_minute_;
  const size_t max_causes_;
  std::mutex mu_;
  std::unordered_map<std::string, Cause> causes_;
  std::list<std::string> lru_;  // front = most recently seen
};

}  // namespace rm
