// The in-memory form of a point as parsed from any input format, before it is
// grouped into per-shard commands.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace rm {

using Tags = std::vector<std::pair<std::string, std::string>>;  // sorted by key, unique keys

struct ParsedPoint {
  std::string metric;         // validated metric name
  std::string partition_key;  // never empty after parsing
  double value = 0;
  int64_t timestamp_us = 0;   // 0: not given (the control node fills in "now")
  Tags tags;
};

// Canonical series identity: metric{k1=v1,k2=v2} with tags sorted by key.
// Seed 001's /metrics partitions by this string.
std::string SeriesKey(const std::string& metric, const Tags& tags);

// Unambiguous identity of a series (partition key, metric, tags), for hash
// maps: every part is length-prefixed, so no tag value can make two different
// series collide (SeriesKey cannot promise that: values may contain ',' '=' '}').
std::string SeriesIdentity(std::string_view partition_key, std::string_view metric, const Tags& tags);
void AppendSeriesIdentity(std::string& out, std::string_view partition_key, std::string_view metric,
                          const Tags& tags);

// True when `name` matches ^[a-zA-Z0-9_.-]+$ (metric keys and tag keys).
bool IsValidName(const std::string& name);

}  // namespace rm
