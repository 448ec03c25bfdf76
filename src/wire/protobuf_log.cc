#include "src/wire/protobuf_log.h"

#include "src/common/log_limiter.h"
#include "src/common/time_util.h"

#include <google/protobuf/stubs/logging.h>
#include <spdlog/spdlog.h>

#include <string>

namespace rm {
namespace {

LogLimiter& Limiter() {
  static LogLimiter limiter(10);
  return limiter;
}

void Handle(google::protobuf::LogLevel level, const char* filename, int line, const std::string& message) {
  const std::string cause = std::string(filename ? filename : "?") + ":" + std::to_string(line);
  uint64_t suppressed = 0;
  if (!Limiter().Allow(cause, NowMicros(), &suppressed)) return;
  const auto spd = level >= google::protobuf::LOGLEVEL_FATAL  ? spdlog::level::critical
                   : level >= google::protobuf::LOGLEVEL_ERROR ? spdlog::level::warn
                                                                : spdlog::level::info;
  if (suppressed > 0) {
    spdlog::log(spd, "protobuf: {} ({} similar lines suppressed)", message, suppressed);
  } else {
    spdlog::log(spd, "protobuf: {}", message);
  }
}

}  // namespace

void InstallProtobufLogHandler() { google::protobuf::SetLogHandler(&Handle); }

}  // namespace rm
