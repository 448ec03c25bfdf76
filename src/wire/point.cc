#include "src/wire/point.h"

namespace rm {

std::string SeriesKey(const std::string& metric, const Tags& tags) {
  std::string out = metric;
  out += '{';
  bool first = true;
  for (const auto& [k, v] : tags) {
    if (!first) out += ',';
    first = false;
    out += k;
    out += '=';
    out += v;
  }
  out += '}';
  return out;
}

namespace {
void AppendPart(std::string& out, std::string_view part) {
  out += std::to_string(part.size());
  out += ':';
  out += part;
}
}  // namespace

void AppendSeriesIdentity(std::string& out, std::string_view partition_key, std::string_view metric,
                          const Tags& tags) {
  AppendPart(out, partition_key);
  AppendPart(out, metric);
  for (const auto& [k, v] : tags) {
    AppendPart(out, k);
    AppendPart(out, v);
  }
}

std::string SeriesIdentity(std::string_view partition_key, std::string_view metric, const Tags& tags) {
  std::string out;
  AppendSeriesIdentity(out, partition_key, metric, tags);
  return out;
}

bool IsValidName(const std::string& name) {
  if (name.empty()) return false;
  for (char c : name) {
    bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '_' || c == '.' || c == '-';
    if (!ok) return false;
  }
  return true;
}

}  // namespace rm
