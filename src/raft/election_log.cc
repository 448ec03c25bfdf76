#include "src/raft/election_log.h"

#include "src/common/time_util.h"

#include <spdlog/spdlog.h>

#include <cstring>

namespace rm::raft {

namespace {
// The library's sources whose diagnostics are about elections and leadership.
constexpr const char* kElectionSources[] = {"timeout.c", "election.c", "convert.c", "recv_request_vote.c",
                                            "recv_request_vote_result.c", "recv_timeout_now.c"};
constexpr int64_t kMinuteUs = 60'000'000;

bool EndsWith(const char* s, const char* suffix) {
  const size_t n = std::strlen(s), m = std::strlen(suffix);
  return n >= m && std::strcmp(s + n - m, suffix) == 0 && (n == m || s[n - m - 1] == '/');
}
}  // namespace

void ElectionLog::Attach(struct raft* r, std::string name) {
  name_ = std::move(name);
  tracer_.impl = this;
  tracer_.version = 2;
  tracer_.emit = &ElectionLog::Emit;
  r->tracer = &tracer_;
}

bool ElectionLog::Keeps(const char* file, int level) {
  if (level <= 2) return true;
  if (level > 3 || file == nullptr) return false;
  for (const char* source : kElectionSources) {
    if (EndsWith(file, source)) return true;
  }
  return false;
}

void ElectionLog::Emit(struct raft_tracer* t, int type, const void* data) {
  if (type != RAFT_TRACER_DIAGNOSTIC || t == nullptr || t->impl == nullptr) return;
  const auto* info = static_cast<const struct raft_tracer_info*>(data);
  if (!Keeps(info->diagnostic.file, info->diagnostic.level)) return;
  static_cast<ElectionLog*>(t->impl)->Log(info->diagnostic.message, info->diagnostic.level);
}

void ElectionLog::Log(const char* message, int level) {
  const int64_t now = NowMicros();
  if (now - window_start_us_ >= kMinuteUs) {
    if (suppressed_ > 0) spdlog::info("{} raft: {} more election messages in the last minute not logged", name_, suppressed_);
    window_start_us_ = now;
    lines_ = 0;
    suppressed_ = 0;
  }
  if (++lines_ > kLinesPerMinute) {
    ++suppressed_;
    return;
  }
  while (*message == ' ') ++message;  // the library indents its lines
  spdlog::log(level <= 1 ? spdlog::level::err : level == 2 ? spdlog::level::warn : spdlog::level::info, "{} raft: {}",
              name_, message);
}

}  // namespace rm::raft
