#include "src/common/request_context.h"

#include <cstdint>
#include <cstdio>
#include <random>

namespace rm {

namespace {
thread_local std::string current_request_id;
}  // namespace

const std::string& CurrentRequestId() { return current_request_id; }

RequestIdScope::RequestIdScope(std::string id) : previous_(std::move(current_request_id)) {
  current_request_id = std::move(id);
}

RequestIdScope::~RequestIdScope() { current_request_id = std::move(previous_); }

std::string NewRequestId() {
  thread_local std::mt19937_64 rng{std::random_device{}()};
  char buf[17];
  std::snprintf(buf, sizeof buf, "%016llx", static_cast<unsigned long long>(rng()));
  return buf;
}

bool IsAcceptableRequestId(const std::string& id) {
  if (id.empty() || id.size() > 128) return false;
  for (unsigned char c : id) {
    bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' ||
              c == '_' || c == ':' || c == '-';
    if (!ok) return false;
  }
  return true;
}

}  // namespace rm
