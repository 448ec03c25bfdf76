// What ShardStore's files share and nothing else needs.
#pragma once

#include "src/storage/shard_store.h"

#include <cstdint>
#include <string>

namespace rm {

// How often expired idempotency keys are pruned (in command time).
inline constexpr int64_t kKeyPruneIntervalUs = 60LL * 1000000;
// The write buffer's command log, next to the shard's DuckDB file.
inline constexpr const char* kCommandLogSuffix = ".wlog";

inline std::string TagValue(const Tags& tags, const std::string& key) {
  for (const auto& [k, v] : tags) {
    if (k == key) return v;
  }
  return "";
}

}  // namespace rm
